"""Tracing: SymPy expressions and tensor expressions into IR functions, with the checks of
their argument lists (symbols or tensors, declared, distinct)."""

import sympy

from symgrad import ir
from symgrad.errors import UnknownSymbolError
from symgrad.frontend.sympy_to_ir import free_symbols, sympify, to_ir
from symgrad.messages import bounded_list


def symbol_list(argument, name):
    if isinstance(argument, sympy.Symbol):
        return [argument], True
    if isinstance(argument, (str, bytes)) or not hasattr(argument, "__iter__"):
        raise TypeError(f"{name} must be a SymPy symbol or a sequence of symbols, got "
                        f"{type(argument).__name__}")
    items = list(argument)
    for item in items:
        if not isinstance(item, sympy.Symbol):
            raise TypeError(f"{name} must hold SymPy symbols, got {item!r} "
                            f"({type(item).__name__})")
    return items, False


def input_nodes(symbol_list):
    """One INPUT node per symbol, named by the symbol; distinct symbols need distinct names."""
    nodes = {}
    by_name = {}
    for symbol in symbol_list:
        if symbol in nodes:
            continue
        name = symbol.name
        if name in by_name:
            raise ValueError(f"two different symbols are both named {name!r} "
                             f"({by_name[name]!r} with assumptions "
                             f"{by_name[name].assumptions0} and {symbol!r} with "
                             f"{symbol.assumptions0}); rename one")
        by_name[name] = symbol
        nodes[symbol] = ir.input_node(name)
    return nodes


def trace(expr, wrt=(), inputs=()):
    """Translate a SymPy expression into an IR :class:`~symgrad.ir.Function`.

    The function's arguments are ``wrt`` followed by ``inputs``; every free symbol of ``expr``
    must be among them.

    Returns
    -------
    symgrad.ir.Function
        With one output named ``f``.
    """
    return trace_many([expr], wrt, inputs, ["f"])


def trace_many(exprs, wrt=(), inputs=(), names=None):
    """:func:`trace` of several expressions: one output each (named ``names``, default
    ``f0, f1, ...``), over the same arguments."""
    exprs = [sympify(expr) for expr in exprs]
    wrt_list, _ = symbol_list(wrt, "wrt")
    input_list, _ = symbol_list(inputs, "inputs")
    both = set(wrt_list) & set(input_list)
    if both:
        raise ValueError(f"symbols {bounded_list(sorted(map(str, both)))} are both in wrt and "
                         f"in inputs")
    arguments = wrt_list + input_list
    for expr in exprs:
        undeclared = free_symbols(expr) - set(arguments)
        if undeclared:
            raise UnknownSymbolError(
                f"the expression has free symbols {bounded_list(sorted(map(str, undeclared)))} "
                f"that are neither in wrt {bounded_list(map(str, wrt_list))} nor in inputs "
                f"{bounded_list(map(str, input_list))}")
    nodes = input_nodes(arguments)
    outputs = [to_ir(expr, nodes) for expr in exprs]
    if names is None:
        names = [f"f{index}" for index in range(len(outputs))]
    return ir.Function([nodes[s] for s in arguments], outputs, names)


def tensor_list(argument, name):
    from symgrad.tensors import Tensor

    items = [argument] if isinstance(argument, Tensor) else list(argument)
    for item in items:
        if not isinstance(item, Tensor):
            raise TypeError(f"{name} must hold tensors, got {type(item).__name__}")
        if item.name is None:
            raise TypeError(f"{name} must hold argument tensors (symgrad.tensor or network "
                            f"parameters), got the computed tensor {item!r}")
    return items


def trace_tensor(expr, wrt, inputs=()):
    """The IR function of a scalar tensor expression, with arguments ``wrt`` then ``inputs``."""
    wrt_list = tensor_list(wrt, "wrt")
    input_list = tensor_list(inputs, "inputs")
    arguments = wrt_list + input_list
    names = [t.name for t in arguments]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"arguments {bounded_list(repeated)} are given more than once (in wrt "
                         f"or inputs)")
    if expr.shape != ():
        raise ValueError(f"the expression to differentiate must be a scalar, got shape "
                         f"{expr.shape}; reduce it with .sum() or .mean()")
    check_declared([expr], arguments,
                    f"neither in wrt {bounded_list(names[:len(wrt_list)])} nor in inputs "
                    f"{bounded_list(names[len(wrt_list):])}")
    return ir.Function([t.node for t in arguments], [expr.node], ["loss"]), wrt_list


def check_declared(expressions, arguments, where):
    declared = {id(t.node) for t in arguments}
    undeclared = sorted({n.attrs for n in ir.toposort([e.node for e in expressions])
                         if n.op.value == "input" and id(n) not in declared})
    if undeclared:
        raise UnknownSymbolError(f"the expression uses tensors {bounded_list(undeclared)} that are "
                                 f"{where}")


def inputs_of(expr):
    """The argument tensors a tensor expression uses, in the order of a walk from it."""
    from symgrad.tensors import Tensor

    return [Tensor(n) for n in ir.toposort([expr.node]) if n.op is ir.Op.INPUT]
