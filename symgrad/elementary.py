"""Elementary functions under numpy's names (and the short ones numpy 2 and JAX also give).

Each works two ways, like the activations of :mod:`symgrad.functions`: on SymPy arguments it
returns the SymPy expression (``sg.sinh(x)`` is ``sinh(x)``, which ``sympy.diff`` and
``sg.grad`` take), on tensors it applies elementwise, broadcasting the tensors together, and
compiles to the IR op of that name (each with its derivative; see the README's list of which
are vectorised routines and which call the C library).

>>> import symgrad as sg
>>> x = sg.symbols("x")
>>> sg.arcsinh(x)
asinh(x)
>>> X = sg.tensor("X", ("n",))
>>> sg.hypot(X, 1.0).shape
('n',)
"""

import sympy

from symgrad.frontend import sympy_functions as _functions
from symgrad.functions import activation

__all__ = [
    "abs", "acos", "acosh", "arccos", "arccosh", "arcsin", "arcsinh", "arctan", "arctan2",
    "arctanh", "asin", "asinh", "atan", "atan2", "atanh", "ceil", "clip", "cos", "cosh", "erf",
    "erfc", "exp", "exp2", "expm1", "floor", "hypot", "log", "log1p", "log2", "log10", "rint",
    "round", "sign", "sin", "sinh", "sqrt", "tan",
]


def _unary(function, name, doc):
    def formula(x):
        return function(x)
    formula.__name__ = formula.__qualname__ = name
    formula.__doc__ = doc
    return activation(formula)


exp = _unary(sympy.exp, "exp", "Elementwise exp(x).")
exp2 = _unary(_functions.exp2, "exp2", "Elementwise 2**x (exact at integers).")
expm1 = _unary(_functions.expm1, "expm1", "Elementwise exp(x) - 1, accurate near 0.")
log = _unary(sympy.log, "log", "Elementwise natural logarithm.")
log2 = _unary(_functions.log2, "log2", "Elementwise base-2 logarithm (exact at powers of two).")
log10 = _unary(_functions.log10, "log10", "Elementwise base-10 logarithm.")
log1p = _unary(_functions.log1p, "log1p", "Elementwise log(1 + x), accurate near 0.")
sqrt = _unary(sympy.sqrt, "sqrt", "Elementwise square root.")
sin = _unary(sympy.sin, "sin", "Elementwise sine.")
cos = _unary(sympy.cos, "cos", "Elementwise cosine.")
tan = _unary(sympy.tan, "tan", "Elementwise tangent.")
arcsin = asin = _unary(sympy.asin, "arcsin", "Elementwise inverse sine, on [-1, 1].")
arccos = acos = _unary(sympy.acos, "arccos", "Elementwise inverse cosine, on [-1, 1].")
arctan = atan = _unary(sympy.atan, "arctan", "Elementwise inverse tangent.")
sinh = _unary(sympy.sinh, "sinh", "Elementwise hyperbolic sine.")
cosh = _unary(sympy.cosh, "cosh", "Elementwise hyperbolic cosine.")
arcsinh = asinh = _unary(sympy.asinh, "arcsinh", "Elementwise inverse hyperbolic sine.")
arccosh = acosh = _unary(sympy.acosh, "arccosh",
                         "Elementwise inverse hyperbolic cosine, on [1, inf).")
arctanh = atanh = _unary(sympy.atanh, "arctanh",
                         "Elementwise inverse hyperbolic tangent, on [-1, 1].")
erf = _unary(sympy.erf, "erf", "Elementwise error function.")
erfc = _unary(sympy.erfc, "erfc", "Elementwise complementary error function, 1 - erf(x).")
floor = _unary(sympy.floor, "floor", "Elementwise floor; derivative 0.")
ceil = _unary(sympy.ceiling, "ceil", "Elementwise ceiling; derivative 0.")
rint = _unary(_functions.round_even, "rint",
              "Elementwise nearest integer, ties to even (numpy.rint); derivative 0.")
sign = _unary(sympy.sign, "sign", "Elementwise sign (-1, 0 or 1; NaN stays NaN).")
abs = _unary(sympy.Abs, "abs", "Elementwise absolute value.")


@activation
def arctan2(y, x):
    """Elementwise atan2(y, x): the angle of the point (x, y), in [-pi, pi]."""
    return sympy.atan2(y, x)


atan2 = arctan2


@activation
def hypot(x, y):
    """Elementwise sqrt(x**2 + y**2), without overflow or underflow."""
    return _functions.hypot(x, y)


def round(x, decimals=0):
    """Elementwise nearest integer, ties to even, like ``numpy.round``; derivative 0.
    Only ``decimals=0`` is supported."""
    if decimals != 0:
        raise ValueError(f"round: decimals must be 0 (other roundings are not supported yet), "
                         f"got {decimals!r}")
    return rint(x)


def clip(x, a_min=None, a_max=None):
    """``x`` limited to ``[a_min, a_max]`` elementwise (either may be None), as
    ``numpy.clip``: NaN stays NaN; the derivative is 1 inside and 0 outside."""
    if a_min is None and a_max is None:
        raise ValueError("clip: give a_min, a_max or both (both are None)")
    result = x
    if a_min is not None:
        result = _maximum(result, a_min)
    if a_max is not None:
        result = _minimum(result, a_max)
    return result


@activation
def _maximum(x, bound):
    return sympy.Max(x, bound)


@activation
def _minimum(x, bound):
    return sympy.Min(x, bound)
