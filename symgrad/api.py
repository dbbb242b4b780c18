"""The public entry points: ``symbols``, ``trace``, ``grad`` and ``compile``."""

import sympy

from symgrad import ir
from symgrad.errors import UnknownSymbolError
from symgrad.frontend import free_symbols, sympify, to_ir
from symgrad.grad import value_and_grad, vjp
from symgrad.messages import bounded_list
from symgrad.printing import to_sympy


def symbols(names, **assumptions):
    """Real SymPy symbols, as ``sympy.symbols`` makes them.

    Examples
    --------
    >>> x, y = symbols("x y")
    >>> x.is_real
    True
    """
    assumptions.setdefault("real", True)
    return sympy.symbols(names, **assumptions)


def _symbol_list(argument, name):
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


def _input_nodes(symbol_list):
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
    expr = sympify(expr)
    wrt_list, _ = _symbol_list(wrt, "wrt")
    input_list, _ = _symbol_list(inputs, "inputs")
    both = set(wrt_list) & set(input_list)
    if both:
        raise ValueError(f"symbols {bounded_list(sorted(map(str, both)))} are both in wrt and in inputs")
    arguments = wrt_list + input_list
    undeclared = free_symbols(expr) - set(arguments)
    if undeclared:
        raise UnknownSymbolError(
            f"the expression has free symbols {bounded_list(sorted(map(str, undeclared)))} "
            f"that are neither in wrt {bounded_list(map(str, wrt_list))} nor in inputs "
            f"{bounded_list(map(str, input_list))}")
    nodes = _input_nodes(arguments)
    output = to_ir(expr, nodes)
    return ir.Function([nodes[s] for s in arguments], [output], ["f"])


def grad(expr, wrt):
    """The gradient of a scalar SymPy expression, by reverse mode over symgrad's IR.

    Parameters
    ----------
    expr : sympy.Expr or Tensor
    wrt : sympy.Symbol or sequence of sympy.Symbol, or sequence of Tensor

    Returns
    -------
    sympy.Expr, list of sympy.Expr, or symgrad.derivation.Derivation
        For a SymPy expression, one derivative per symbol of ``wrt`` (a single expression when
        ``wrt`` is a single symbol); a symbol that ``expr`` does not depend on gets 0.  For a
        scalar tensor expression, a :class:`~symgrad.derivation.Derivation`: the gradients as
        SymPy matrix expressions and the named equations reverse mode derived (for a network,
        the backpropagation rules), printable as text and LaTeX.

    Examples
    --------
    >>> x, y = symbols("x y")
    >>> grad(x**2 + x*y + (x + y)**2, [x, y])
    [4*x + 3*y, 3*x + 2*y]
    """
    from symgrad.tensor import Tensor

    if isinstance(expr, Tensor):
        from symgrad.check import _inputs_of
        from symgrad.derivation import Derivation

        wrt_list = _tensor_list(wrt, "wrt")
        names = {t.name for t in wrt_list}
        inputs = [t for t in _inputs_of(expr) if t.name not in names]
        return Derivation(expr, wrt_list, inputs)
    expr = sympify(expr)
    wrt_list, single = _symbol_list(wrt, "wrt")
    free = sorted(free_symbols(expr) - set(wrt_list), key=str)
    nodes = _input_nodes(wrt_list + free)
    output = to_ir(expr, nodes)
    gradients = vjp(output, [nodes[s] for s in wrt_list])
    expressions = to_sympy(gradients, {node.attrs: symbol for symbol, node in nodes.items()})
    return expressions[0] if single else expressions


def _tensor_list(argument, name):
    from symgrad.tensor import Tensor

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
    wrt_list = _tensor_list(wrt, "wrt")
    input_list = _tensor_list(inputs, "inputs")
    arguments = wrt_list + input_list
    names = [t.name for t in arguments]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"arguments {bounded_list(repeated)} are given more than once (in wrt or inputs)")
    if expr.shape != ():
        raise ValueError(f"the expression to differentiate must be a scalar, got shape "
                         f"{expr.shape}; reduce it with .sum() or .mean()")
    _check_declared([expr], arguments,
                    f"neither in wrt {bounded_list(names[:len(wrt_list)])} nor in inputs "
                    f"{bounded_list(names[len(wrt_list):])}")
    return ir.Function([t.node for t in arguments], [expr.node], ["loss"]), wrt_list


def _check_declared(expressions, arguments, where):
    declared = {id(t.node) for t in arguments}
    undeclared = sorted({n.attrs for n in ir.toposort([e.node for e in expressions])
                         if n.op.value == "input" and id(n) not in declared})
    if undeclared:
        raise UnknownSymbolError(f"the expression uses tensors {bounded_list(undeclared)} that are "
                                 f"{where}")


def compile_function(outputs, inputs, names=None):
    """Compile tensor expressions (no differentiation) into one native kernel.

    Parameters
    ----------
    outputs : Tensor or sequence of Tensor
    inputs : sequence of Tensor
        The argument tensors, in call order.
    names : sequence of str, optional
        Names of the outputs (for printing).

    Returns
    -------
    codegen.kernel.FunctionKernel
        ``kernel(*arrays, **arrays_by_name)`` returns a tuple with one array per output.

    Examples
    --------
    >>> X = tensor("X", ("n", 3)); w = tensor("w", (3,))
    >>> k = compile_function([X @ w.reshape(3, 1)], [X, w])
    """
    from codegen.kernel import FunctionKernel
    from symgrad.tensor import Tensor

    outputs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    for output in outputs:
        if not isinstance(output, Tensor):
            raise TypeError(f"outputs must be tensors, got {type(output).__name__}")
    arguments = _tensor_list(inputs, "inputs")
    argument_names = [t.name for t in arguments]
    repeated = sorted({n for n in argument_names if argument_names.count(n) > 1})
    if repeated:
        raise ValueError(f"inputs {bounded_list(repeated)} are given more than once")
    _check_declared(outputs, arguments, f"not in inputs {bounded_list(argument_names)}")
    function = ir.Function([t.node for t in arguments], [o.node for o in outputs], names)
    return FunctionKernel(function)


def compile(expr, wrt, inputs=()):
    """Compile a scalar SymPy expression and its gradient into one native kernel.

    Parameters
    ----------
    expr : sympy.Expr or Tensor
        A scalar SymPy expression, or a scalar tensor expression (a loss).
    wrt : sequence of sympy.Symbol, or of Tensor
        What to differentiate with respect to: the kernel's first arguments.
    inputs : sequence of sympy.Symbol, or of Tensor
        Further arguments the expression depends on, not differentiated.

    Returns
    -------
    codegen.Kernel or codegen.kernel.TensorKernel
        For a SymPy expression, ``kernel(*wrt_values, *input_values)`` (or by symbol name as
        keywords) returns ``(value, (d/d wrt[0], d/d wrt[1], ...))``, elementwise over numpy
        broadcasting.  For a tensor expression, ``kernel(params, *inputs, **inputs)`` takes
        the ``wrt`` values as one sequence and returns ``(loss, grads)``, all of it in one
        native call.

    Examples
    --------
    >>> x, y = symbols("x y")
    >>> k = compile(x**2 + x*y + (x + y)**2, wrt=[x, y])
    >>> k(3.0, -2.0)
    (4.0, (6.0, 5.0))
    """
    from codegen import Kernel
    from symgrad.tensor import Tensor

    if isinstance(expr, Tensor):
        from codegen.kernel import TensorKernel

        function, wrt_list = trace_tensor(expr, wrt, inputs)
        fused = value_and_grad(function, [t.name for t in wrt_list])
        return TensorKernel(fused, num_params=len(wrt_list))
    function = trace(expr, wrt, inputs)
    wrt_list, _ = _symbol_list(wrt, "wrt")
    fused = value_and_grad(function, [s.name for s in wrt_list])
    return Kernel(fused, value_and_grad=True)
