"""The closed set of IR operations.

Every interpretation of the IR (the reference interpreter, the vector-Jacobian rules, the
printers, the LLVM lowering) keeps one table keyed by :class:`Op`, and the tests check that
each table covers every op.  Sugar (subtraction of a negation, ``x**2`` as a product, ...)
is resolved by the smart constructors in :mod:`symgrad.ir`, never by new ops.
"""

import enum


class Op(enum.Enum):
    """An IR operation; ``value`` is the name used in printed IR."""

    # ---- leaves ----
    CONST = "const"      # attrs: the float value
    INPUT = "input"      # attrs: the argument name
    DIM = "dim"          # attrs: the name of a symbolic size; its runtime value, as a float
    IOTA = "iota"        # attrs: an axis; each element's index along that axis, as a float

    # ---- elementwise arithmetic ----
    NEG = "neg"
    ADD = "add"
    SUB = "sub"
    MUL = "mul"
    DIV = "div"
    POW = "pow"          # x ** y, real exponent
    MAX = "max"          # propagates NaN, like numpy.maximum
    MIN = "min"

    # ---- elementwise transcendental functions ----
    EXP = "exp"
    LOG = "log"
    SQRT = "sqrt"
    SIN = "sin"
    COS = "cos"
    TANH = "tanh"
    ABS = "abs"
    SIGN = "sign"        # -1, 0 or 1; NaN stays NaN
    EXPM1 = "expm1"      # exp(x) - 1, accurate near 0
    LOG1P = "log1p"      # log(1 + x), accurate near 0
    SIGMOID = "sigmoid"  # 1 / (1 + exp(-x)), never NaN
    SOFTPLUS = "softplus"  # log(1 + exp(x)) as max(x, 0) + log1p(exp(-|x|))
    STOP_GRADIENT = "stop_gradient"  # the identity, through which no gradient flows
    LOG2 = "log2"
    LOG10 = "log10"
    EXP2 = "exp2"
    TAN = "tan"
    ASIN = "asin"
    ACOS = "acos"
    ATAN = "atan"
    SINH = "sinh"
    COSH = "cosh"
    ASINH = "asinh"
    ACOSH = "acosh"
    ATANH = "atanh"
    ERF = "erf"
    ERFC = "erfc"
    FLOOR = "floor"
    CEIL = "ceil"
    ROUND = "round"      # to the nearest integer, ties to even, like numpy.round
    ATAN2 = "atan2"      # atan2(y, x): the angle of the point (x, y), C99's special values
    HYPOT = "hypot"      # sqrt(x**2 + y**2) without overflow or underflow
    FLOOR_DIV = "floor_div"  # integers: a // b rounded down, as numpy (0 where b is 0)
    MOD = "mod"          # integers: a % b with b's sign, as numpy (0 where b is 0)

    # ---- comparisons and logic (boolean results, never differentiated) ----
    LT = "lt"
    LE = "le"
    GT = "gt"
    GE = "ge"
    EQ = "eq"
    NE = "ne"
    AND = "and"
    OR = "or"
    NOT = "not"

    # ---- selection ----
    SELECT = "select"    # select(cond, a, b): a where cond holds, b elsewhere

    # ---- conversion ----
    CAST = "cast"        # to the node's dtype: int64 -> float exactly rounded; float ->
                         # int64 toward zero, saturating, NaN -> 0 (as XLA converts)

    # ---- shapes, reductions, contractions ----
    BROADCAST = "broadcast"  # attrs: the target shape (numpy broadcasting)
    RESHAPE = "reshape"      # attrs: the target shape (same size, row-major order)
    TRANSPOSE = "transpose"  # attrs: the permutation of the axes
    SUM = "sum"              # attrs: the reduced axes; they stay in the shape with size 1
    AMAX = "amax"            # attrs: the reduced axes, kept with size 1; NaN propagates
    AMIN = "amin"            # attrs: the reduced axes, kept with size 1; NaN propagates
    PROD = "prod"            # attrs: the reduced axes, kept with size 1
    SLICE = "slice"          # attrs: (start, step) per axis; the shape says how many are taken
    PAD = "pad"              # attrs: ((low, interior) per axis, fill): the operand's elements
                             # spread over a larger shape, ``fill`` between and around them
    MATMUL = "matmul"        # (m, k) @ (k, n) -> (m, n)
    GATHER = "gather"        # gather(x, idx), attrs: the axis; x's elements at the integer
                             # indices idx along it (numpy.take): shape x[:axis] idx x[axis+1:]
    TAKE_ALONG = "take_along"  # take_along(x, idx), attrs: the axis: x's element at idx's
                             # index along it, at idx's position on the others (numpy's
                             # take_along_axis; idx has x's rank, shape idx's)
    PUT_ADD_ALONG = "put_add_along"  # put_add_along(v, idx), attrs: (axis, size): its
                             # transpose, v added into zeros with ``size`` along the axis
    LINREC = "linrec"        # linrec(a, b), attrs: the axis: h[0] = b[0], h[t] = a[t] h[t-1]
                             # + b[t] along it (cumsum: a = 1; cumprod: b = -0.0 after t = 0)
    SCATTER_ADD = "scatter_add"  # scatter_add(v, idx), attrs: (axis, size): zeros of v's
                             # shape with the idx axes replaced by one of ``size``, and v's
                             # elements added at the indices (duplicates summed)

    def __repr__(self):
        return f"Op.{self.name}"


UNARY_MATH = frozenset({Op.NEG, Op.EXP, Op.LOG, Op.SQRT, Op.SIN, Op.COS, Op.TANH, Op.ABS, Op.SIGN,
                        Op.EXPM1, Op.LOG1P, Op.SIGMOID, Op.SOFTPLUS, Op.STOP_GRADIENT,
                        Op.LOG2, Op.LOG10, Op.EXP2, Op.TAN, Op.ASIN, Op.ACOS, Op.ATAN,
                        Op.SINH, Op.COSH, Op.ASINH, Op.ACOSH, Op.ATANH, Op.ERF, Op.ERFC,
                        Op.FLOOR, Op.CEIL, Op.ROUND})
BINARY_MATH = frozenset({Op.ADD, Op.SUB, Op.MUL, Op.DIV, Op.POW, Op.MAX, Op.MIN, Op.ATAN2,
                         Op.HYPOT, Op.FLOOR_DIV, Op.MOD})
COMPARISONS = frozenset({Op.LT, Op.LE, Op.GT, Op.GE, Op.EQ, Op.NE})
LOGIC = frozenset({Op.AND, Op.OR, Op.NOT})
LEAVES = frozenset({Op.CONST, Op.INPUT, Op.DIM, Op.IOTA})
STRUCTURAL = frozenset({Op.BROADCAST, Op.RESHAPE, Op.TRANSPOSE, Op.SLICE, Op.PAD})
REDUCTIONS = frozenset({Op.SUM, Op.AMAX, Op.AMIN, Op.PROD})
# Ops taking (values, integer indices).
INDEXING = frozenset({Op.GATHER, Op.SCATTER_ADD, Op.TAKE_ALONG, Op.PUT_ADD_ALONG})
# Ops computed independently for each element of their (broadcast) result.
ELEMENTWISE = UNARY_MATH | BINARY_MATH | COMPARISONS | LOGIC | {Op.SELECT, Op.CAST}
# The elementwise ops that also take integer (int64) operands.
INTEGER_OPS = frozenset({Op.NEG, Op.ADD, Op.SUB, Op.MUL, Op.MAX, Op.MIN, Op.SELECT,
                         Op.FLOOR_DIV, Op.MOD}) | COMPARISONS
# The elementwise ops of integers alone.
INTEGER_ONLY_OPS = frozenset({Op.FLOOR_DIV, Op.MOD})

# Number of operands of each op.
ARITY = {
    **{op: 0 for op in LEAVES},
    **{op: 1 for op in UNARY_MATH},
    **{op: 2 for op in BINARY_MATH},
    **{op: 2 for op in COMPARISONS},
    Op.AND: 2,
    Op.OR: 2,
    Op.NOT: 1,
    Op.SELECT: 3,
    Op.CAST: 1,
    **{op: 1 for op in STRUCTURAL | REDUCTIONS},
    Op.MATMUL: 2,
    **{op: 2 for op in INDEXING},
    Op.LINREC: 2,
}

# Ops whose result is boolean.
BOOLEAN_RESULT = COMPARISONS | LOGIC
