"""What each elementwise op computes on numbers: one numpy function per op.

The reference interpreter (:mod:`symgrad.reference.evaluate`) evaluates elementwise ops with
this table, and the IR's constant folding (:mod:`symgrad.ir.build`) folds with it, so that a
folded constant has the reference interpreter's bits.
"""

import math

import numpy as np

from symgrad.ir.ops import Op

NUMPY_DTYPES = {"float64": np.float64, "float32": np.float32, "bool": np.bool_, "int64": np.int64}


def _sigmoid(x):
    # Two forms, each used where it cannot overflow.
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def _softplus(x):
    return np.logaddexp(0, x)


def _maximum(a, b):
    # IEEE 754-2019 maximum, as the kernels compute it: NaN propagates and -0.0 < +0.0.
    # (np.maximum returns either zero on a tie, depending on the code path it takes.)
    return np.where(a == b, np.where(np.signbit(a), b, a), np.maximum(a, b))[()]


def _minimum(a, b):
    # IEEE 754-2019 minimum: NaN propagates and -0.0 < +0.0.
    return np.where(a == b, np.where(np.signbit(a), a, b), np.minimum(a, b))[()]


def _from_math(function):
    """A function of the ``math`` module (which numpy lacks, like erf) on arrays: computed in
    float64, rounded to the operand's dtype."""
    vectorised = np.vectorize(function, otypes=[np.float64])

    def apply(x):
        x = np.asarray(x)
        return vectorised(x.astype(np.float64)).astype(x.dtype)[()]
    apply.__name__ = function.__name__
    return apply


_INT64_MAX = np.iinfo(np.int64).max
_INT64_MIN = np.iinfo(np.int64).min


def _integer_division(function):
    """numpy's integer ``//`` or ``%``, quietly (0 where the divisor is 0)."""
    def divide(a, b):
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            return function(a, b)
    divide.__name__ = function.__name__
    return divide


def _cast_to(dtype):
    """The CAST to ``dtype`` of an array: floats to int64 toward zero, saturating, NaN as 0
    (as the kernels' llvm.fptosi.sat); int64 to floats, rounded."""
    def cast(x):
        x = np.asarray(x)
        if np.dtype(dtype).kind == "i" and x.dtype.kind == "f":
            wide = np.trunc(x.astype(np.float64))
            big = wide >= 2.0 ** 63
            small = wide < -(2.0 ** 63)
            safe = np.where(big | small | np.isnan(wide), 0.0, wide).astype(np.int64)
            return np.where(big, _INT64_MAX, np.where(small, _INT64_MIN, safe))[()]
        return x.astype(dtype)[()]
    return cast


def _cast(x):
    # (The target dtype is the node's: evaluate_elementwise passes it.)
    raise TypeError("CAST needs its target dtype: use evaluate_elementwise")


def cast_constant(value, source, target):
    """A constant's CAST from dtype ``source`` to ``target``, as a Python float."""
    array = np.array([value], NUMPY_DTYPES[source])
    return float(_cast_to(NUMPY_DTYPES[target])(array)[0])


def evaluate_elementwise(op, operands, dtype):
    """``op`` on numpy ``operands``, its result of ``dtype`` (for CAST, the target)."""
    if op is Op.CAST:
        return _cast_to(NUMPY_DTYPES[dtype])(operands[0])
    return ELEMENTWISE_RULES[op](*operands)


# One numpy implementation per elementwise op, on arrays (or numpy scalars).
ELEMENTWISE_RULES = {
    Op.NEG: np.negative,
    Op.ADD: np.add,
    Op.SUB: np.subtract,
    Op.MUL: np.multiply,
    Op.DIV: np.divide,
    Op.POW: np.power,
    Op.MAX: _maximum,
    Op.MIN: _minimum,
    Op.EXP: np.exp,
    Op.LOG: np.log,
    Op.SQRT: np.sqrt,
    Op.SIN: np.sin,
    Op.COS: np.cos,
    Op.TANH: np.tanh,
    Op.ABS: np.abs,
    Op.SIGN: np.sign,
    Op.EXPM1: np.expm1,
    Op.LOG1P: np.log1p,
    Op.SIGMOID: _sigmoid,
    Op.SOFTPLUS: _softplus,
    Op.STOP_GRADIENT: np.positive,
    Op.LOG2: np.log2,
    Op.LOG10: np.log10,
    Op.EXP2: np.exp2,
    Op.TAN: np.tan,
    Op.ASIN: np.arcsin,
    Op.ACOS: np.arccos,
    Op.ATAN: np.arctan,
    Op.SINH: np.sinh,
    Op.COSH: np.cosh,
    Op.ASINH: np.arcsinh,
    Op.ACOSH: np.arccosh,
    Op.ATANH: np.arctanh,
    Op.ERF: _from_math(math.erf),
    Op.ERFC: _from_math(math.erfc),
    Op.FLOOR: np.floor,
    Op.CEIL: np.ceil,
    Op.ROUND: np.rint,
    Op.ATAN2: np.arctan2,
    Op.HYPOT: np.hypot,
    Op.FLOOR_DIV: _integer_division(np.floor_divide),
    Op.MOD: _integer_division(np.remainder),
    Op.LT: np.less,
    Op.LE: np.less_equal,
    Op.GT: np.greater,
    Op.GE: np.greater_equal,
    Op.EQ: np.equal,
    Op.NE: np.not_equal,
    Op.AND: np.logical_and,
    Op.OR: np.logical_or,
    Op.NOT: np.logical_not,
    Op.SELECT: np.where,
    Op.CAST: _cast,
}



def fold_constant(op, values, dtype):
    """Evaluate ``op`` on Python floats in ``dtype`` arithmetic; returns a Python float."""
    np_dtype = NUMPY_DTYPES[dtype]
    # On arrays, not numpy scalars: the scalars compute some operations otherwise than the
    # arrays a kernel's operands are (np.float32(-0.0) ** 0.5 is +0.0, sqrt's -0.0 on arrays).
    with np.errstate(all="ignore"):
        result = ELEMENTWISE_RULES[op](*[np.array([v], np_dtype) for v in values])
    return float(np.asarray(result)[0])
