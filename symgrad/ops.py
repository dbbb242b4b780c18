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

    def __repr__(self):
        return f"Op.{self.name}"


UNARY_MATH = frozenset({Op.NEG, Op.EXP, Op.LOG, Op.SQRT, Op.SIN, Op.COS, Op.TANH, Op.ABS, Op.SIGN})
BINARY_MATH = frozenset({Op.ADD, Op.SUB, Op.MUL, Op.DIV, Op.POW, Op.MAX, Op.MIN})
COMPARISONS = frozenset({Op.LT, Op.LE, Op.GT, Op.GE, Op.EQ, Op.NE})
LOGIC = frozenset({Op.AND, Op.OR, Op.NOT})
LEAVES = frozenset({Op.CONST, Op.INPUT})

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
}

# Ops whose result is boolean.
BOOLEAN_RESULT = COMPARISONS | LOGIC
