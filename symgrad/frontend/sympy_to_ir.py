"""SymPy -> IR: the translation of scalar SymPy formulas into IR nodes.

Supported: numbers (integers, rationals, floats, ``pi``, ``E``, ``oo``, ``nan``), symbols,
``+ - * /``, integer and real powers, ``exp``, ``log``, ``sqrt``, ``sin``, ``cos``, ``tan``,
``asin``, ``acos``, ``atan``, ``atan2``, ``sinh``, ``cosh``, ``tanh``, ``asinh``, ``acosh``,
``atanh``, ``erf``, ``erfc``, ``floor``, ``ceiling``, ``Abs``, ``sign``, ``Max``, ``Min``,
``Heaviside``, symgrad's ``sigmoid``, ``softplus`` and ``round_even``, ``expm1``, ``log1p``,
``log2``, ``log10``, ``exp2`` and ``hypot`` (``sympy.codegen.cfunctions``) and ``Piecewise``
whose conditions are comparisons combined with ``And``, ``Or``, ``Not``.  Anything else raises
:class:`~symgrad.errors.UnsupportedExpressionError` naming the function and the sub-expression.

Every walk here is iterative and keys SymPy objects by identity (hashing one hashes all of
it, recursively), so a nest 100,000 deep translates without recursion.
"""

import sympy

from symgrad import ir
from symgrad.errors import ShapeError, UnknownSymbolError, UnsupportedExpressionError
from symgrad.frontend.sympy_functions import (
    exp2,
    expm1,
    hypot,
    log1p,
    log2,
    log10,
    round_even,
    sigmoid,
    softplus,
)
from symgrad.ir.ops import Op
from symgrad.messages import bounded_list, bounded_text

_UNARY = {
    sympy.exp: ir.exp,
    sympy.log: ir.log,
    sympy.sin: ir.sin,
    sympy.cos: ir.cos,
    sympy.tanh: ir.tanh,
    sympy.Abs: ir.absolute,
    sympy.sign: ir.sign,
    sigmoid: ir.sigmoid,
    softplus: ir.softplus,
    expm1: ir.expm1,
    log1p: ir.log1p,
    log2: ir.log2,
    log10: ir.log10,
    exp2: ir.exp2,
    sympy.tan: ir.tan,
    sympy.asin: ir.asin,
    sympy.acos: ir.acos,
    sympy.atan: ir.atan,
    sympy.sinh: ir.sinh,
    sympy.cosh: ir.cosh,
    sympy.asinh: ir.asinh,
    sympy.acosh: ir.acosh,
    sympy.atanh: ir.atanh,
    sympy.erf: ir.erf,
    sympy.erfc: ir.erfc,
    sympy.floor: ir.floor,
    sympy.ceiling: ir.ceil,
    round_even: ir.round_even,
}

_BINARY = {sympy.atan2: ir.atan2, hypot: ir.hypot}

_RELATIONS = {
    sympy.StrictLessThan: Op.LT,
    sympy.LessThan: Op.LE,
    sympy.StrictGreaterThan: Op.GT,
    sympy.GreaterThan: Op.GE,
    sympy.Equality: Op.EQ,
    sympy.Unequality: Op.NE,
}


def _product(factors):
    result = factors[0]
    for factor in factors[1:]:
        result = ir.mul(result, factor)
    return result


def _is_reciprocal(expr, node):
    """Whether SymPy's printers put ``expr``, a factor of a product, in the denominator, and
    its translation ``node`` is ``1 / denominator`` (a constant one is folded instead)."""
    return (expr.is_Pow and expr.exp.is_Rational and expr.exp.is_negative
            and node.op is Op.DIV and node.args[0].op is Op.CONST)


def _quotient(factors, nodes):
    """A SymPy product as its printers (and lambdify) write it: the numerator's factors
    multiplied in order, divided by the product of the denominator's, so that ``x*y**-1`` is
    one correctly rounded ``x / y``."""
    pairs = list(zip(factors, nodes))
    numerator = [node for factor, node in pairs if not _is_reciprocal(factor, node)]
    denominator = [node.args[1] for factor, node in pairs if _is_reciprocal(factor, node)]
    if not denominator:
        return _product(numerator)
    top = _product(numerator) if numerator else ir.const(1.0, denominator[0].dtype)
    return ir.div(top, _product(denominator))


def _number(expr, dtype):
    if expr is sympy.nan:
        return ir.const(float("nan"), dtype)
    if expr is sympy.zoo or expr.is_extended_real is False:
        raise UnsupportedExpressionError(
            f"symgrad computes with real numbers; the constant {bounded_text(expr)} is not "
            f"real")
    return ir.const(float(expr), dtype)


def _power(base, exponent_expr, exponent):
    # A negative rational power is a reciprocal, as SymPy prints it (x**-2 is 1/x**2,
    # x**(-1/2) is 1/sqrt(x)); :func:`_quotient` relies on this form.
    if exponent_expr.is_Rational and exponent_expr.is_negative:
        positive = -exponent_expr
        denominator = ir.sqrt(base) if positive == sympy.Rational(1, 2) else \
            ir.power(base, ir.const(float(positive), base.dtype))
        return ir.div(ir.const(1.0, base.dtype), denominator)
    return ir.power(base, exponent)


def free_symbols(expr):
    """The symbols of ``expr``, found by an iterative walk (SymPy's ``free_symbols`` recurses
    once per level of nesting).  Bound symbols (of ``Lambda``, ``Integral``, ...) are not
    translated anyway, so every ``Symbol`` found counts."""
    found = set()
    seen = set()
    stack = [expr]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, sympy.Symbol):
            found.add(current)
        elif isinstance(current, sympy.Basic):
            stack.extend(current.args)
    return found


def _children(expr):
    if isinstance(expr, sympy.Piecewise):
        return [part for pair in expr.args for part in pair.args]
    return list(expr.args)


def _translate_one(expr, args, symbols, dtype):
    """One SymPy node, its operands already translated to ``args``."""
    if isinstance(expr, sympy.Symbol):
        if expr not in symbols:
            raise UnknownSymbolError(f"symbol {bounded_text(expr)} is not declared; declared "
                                     f"symbols are {bounded_list(sorted(map(str, symbols)))}")
        return symbols[expr]
    if expr in (sympy.true, sympy.false):
        return ir.const(bool(expr), "bool")
    if (expr.is_Number or isinstance(expr, sympy.NumberSymbol)
            or expr in (sympy.oo, -sympy.oo, sympy.zoo)):
        return _number(expr, dtype)
    if expr is sympy.I or isinstance(expr, sympy.core.numbers.ImaginaryUnit):
        raise UnsupportedExpressionError(
            f"symgrad computes with real numbers; the sub-expression {bounded_text(expr)} is "
            f"complex")
    func = expr.func
    if func is sympy.Add:
        return ir.balanced(ir.add, args)
    if func is sympy.Mul:
        factors, nodes = list(expr.args), list(args)
        coefficient = factors[0]
        if coefficient.is_Number and coefficient.is_negative and len(args) > 1:
            # -c a b ... as the negation of c a b ... (exactly the same number): the same
            # node as that product negated elsewhere (sigmoid(-u) beside sigmoid(u), which
            # then share exp(-|u|)).
            if coefficient == -1:
                factors, nodes = factors[1:], nodes[1:]
            else:
                factors[0], nodes[0] = -coefficient, _number(-coefficient, dtype)
            return ir.neg(_quotient(factors, nodes))
        return _quotient(factors, nodes)
    if func is sympy.Pow:
        if expr.exp == sympy.Rational(1, 2):
            return ir.sqrt(args[0])
        return _power(args[0], expr.exp, args[1])
    if func in _UNARY:
        if len(args) != 1:
            raise UnsupportedExpressionError(
                f"{func.__name__} with {len(args)} arguments is not supported, in "
                f"{bounded_text(expr)}")
        return _UNARY[func](args[0])
    if func in _BINARY:
        return _BINARY[func](*args)
    if func is sympy.Max:
        return ir.balanced(ir.maximum, args)
    if func is sympy.Min:
        return ir.balanced(ir.minimum, args)
    if func is sympy.Heaviside:
        x, at_zero = args[0], args[1] if len(args) > 1 else ir.const(0.5, dtype)
        zero = ir.const(0.0, x.dtype)
        nan = ir.const(float("nan"), x.dtype)
        at_kink = ir.select(ir.compare(Op.EQ, x, zero), at_zero, nan)
        return ir.select(ir.compare(Op.GT, x, zero), ir.const(1.0, x.dtype),
                         ir.select(ir.compare(Op.LT, x, zero), zero, at_kink))
    if func in _RELATIONS:
        return ir.compare(_RELATIONS[func], args[0], args[1])
    if func is sympy.And:
        return ir.balanced(ir.logical_and, args)
    if func is sympy.Or:
        return ir.balanced(ir.logical_or, args)
    if func is sympy.Not:
        return ir.logical_not(args[0])
    if func is sympy.ITE:
        # SymPy's boolean if-then-else (it writes comparisons of a Piecewise this way).
        cond, if_true, if_false = args
        return ir.logical_or(ir.logical_and(cond, if_true),
                             ir.logical_and(ir.logical_not(cond), if_false))
    if func is sympy.Piecewise:
        # Piecewise((e1, c1), (e2, c2), ...): the first true condition wins; none -> NaN.
        result = ir.const(float("nan"), dtype)
        for index in range(len(args) - 2, -1, -2):
            result = ir.select(args[index + 1], args[index], result)
        return result
    name = getattr(func, "__name__", type(expr).__name__)
    raise UnsupportedExpressionError(
        f"symgrad does not support the function {name!r} (in the sub-expression "
        f"{bounded_text(expr)})")


def to_ir(expr, symbols, dtype="float64"):
    """Translate a SymPy expression into an IR node.

    Parameters
    ----------
    expr : sympy.Basic or number
    symbols : dict
        Maps each SymPy symbol that may occur to its IR node (usually an INPUT node).
    dtype : str
        The float dtype of constants.

    Returns
    -------
    Node

    Raises
    ------
    UnsupportedExpressionError
        For a function outside the supported set (the message names it and the
        sub-expression).
    UnknownSymbolError
        For a free symbol missing from ``symbols``.
    """
    expr = sympify(expr)
    memo = {}       # id(SymPy object) -> IR node; ``expr`` keeps every object alive
    stack = [expr]
    while stack:
        current = stack[-1]
        if id(current) in memo:
            stack.pop()
            continue
        children = _children(current)
        pending = [child for child in children if id(child) not in memo]
        if pending:
            stack.extend(reversed(pending))
            continue
        stack.pop()
        try:
            memo[id(current)] = _translate_one(current, [memo[id(c)] for c in children],
                                               symbols, dtype)
        except (TypeError, ValueError) as error:
            if isinstance(error, (UnsupportedExpressionError, UnknownSymbolError, ShapeError)):
                raise
            raise UnsupportedExpressionError(
                f"cannot translate the sub-expression {bounded_text(current)}: "
                f"{bounded_text(error)}") from error
    return memo[id(expr)]


def sympify(expr):
    """``expr`` as a SymPy object; strings are refused (they would be parsed with eval)."""
    if isinstance(expr, str):
        raise TypeError("expr must be a SymPy expression, not a string; use sympy.sympify "
                        "explicitly to parse text")
    if isinstance(expr, bool):
        raise TypeError("expr must be a SymPy expression or a number, got a bool")
    try:
        return sympy.sympify(expr, strict=True)
    except sympy.SympifyError as error:
        raise TypeError(f"expr must be a SymPy expression or a number, got "
                        f"{type(expr).__name__}") from error
