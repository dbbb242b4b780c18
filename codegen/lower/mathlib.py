"""One table from IR op to LLVM instructions, intrinsics or symgrad's own routines.

Each lowering function has the signature ``lower_x(builder, node, operands, math)``: it receives
the IRBuilder, the IR node (for its dtype and constant operands) and the already lowered operand
values, and returns the LLVM value of the node.  ``math`` declares intrinsics (``sin``, ``cos``
and ``pow`` among them, which LLVM lowers to libm calls) and defines the vectorisable routines
of :mod:`symgrad.codegen.lower.vecmath` in the module being built.
"""

from llvmlite import ir as llvm_ir

from symgrad.codegen.lower import vecmath
from symgrad.codegen.lower.types import INTRINSIC_SUFFIX, llvm_type
from symgrad.ir.ops import Op


class MathDeclarations:
    """Declares (once per module) the intrinsics and routines that lowering calls; with
    ``inline`` false the routines are called rather than inlined
    (:func:`vecmath.define_routine`)."""

    def __init__(self, module, inline=True):
        self.module = module
        self.inline = inline
        self._declared = {}

    def _function(self, name, dtype, arity):
        key = (name, dtype)
        if key not in self._declared:
            element = llvm_type(dtype)
            function_type = llvm_ir.FunctionType(element, [element] * arity)
            self._declared[key] = llvm_ir.Function(self.module, function_type, name)
        return self._declared[key]

    def intrinsic(self, name, dtype, arity=1):
        return self._function(f"llvm.{name}.{INTRINSIC_SUFFIX[dtype]}", dtype, arity)

    def routine(self, name, dtype):
        """One of symgrad's vectorisable routines (:mod:`symgrad.codegen.lower.vecmath`),
        defined on first use."""
        key = ("routine", name, dtype)
        if key not in self._declared:
            self._declared[key] = vecmath.define_routine(self.module, name, dtype, self,
                                                         self.inline)
        return self._declared[key]


def _intrinsic(name, arity=1):
    def lower(builder, node, operands, math):
        return builder.call(math.intrinsic(name, node.dtype, arity), operands)
    lower.__name__ = f"lower_{name}"
    return lower



def lower_pow(builder, node, operands, math):
    base, exponent = node.args
    if exponent.op is Op.CONST and exponent.attrs == 2.0:
        # x*x is exactly what a correctly rounded pow(x, 2) gives, at a fraction of the cost.
        return builder.fmul(operands[0], operands[0])
    return builder.call(math.intrinsic("pow", node.dtype, 2), operands)


def lower_sign(builder, node, operands, math):
    (x,) = operands
    element = llvm_type(node.dtype)
    zero = llvm_ir.Constant(element, 0.0)
    # x itself where x is 0 or NaN: keeps -0.0 and propagates NaN, like numpy.sign.
    negative = builder.select(builder.fcmp_ordered("<", x, zero),
                              llvm_ir.Constant(element, -1.0), x)
    return builder.select(builder.fcmp_ordered(">", x, zero),
                          llvm_ir.Constant(element, 1.0), negative)


def _routine(name):
    def lower(builder, node, operands, math):
        return builder.call(math.routine(name, node.dtype), operands)
    lower.__name__ = f"lower_{name}"
    return lower


def lower_hypot(builder, node, operands, math):
    # big * sqrt(1 + (small / big)**2): no overflow or underflow in between.  inf wins over
    # NaN (C99: hypot(inf, NaN) = inf); NaN otherwise propagates; hypot(0, 0) = 0.
    dtype = node.dtype
    element = llvm_type(dtype)
    x, y = (builder.call(math.intrinsic("fabs", dtype), [v]) for v in operands)
    big = builder.call(math.intrinsic("maxnum", dtype, 2), [x, y])
    small = builder.call(math.intrinsic("minnum", dtype, 2), [x, y])
    ratio = builder.fdiv(small, big)
    one = llvm_ir.Constant(element, 1.0)
    root = builder.call(math.intrinsic("sqrt", dtype),
                        [builder.call(math.intrinsic("fmuladd", dtype, 3), [ratio, ratio, one])])
    result = builder.fmul(big, root)
    zero = llvm_ir.Constant(element, 0.0)
    inf = llvm_ir.Constant(element, float("inf"))
    result = builder.select(builder.fcmp_ordered("==", big, zero), zero, result)
    nan = builder.or_(builder.fcmp_unordered("uno", x, x), builder.fcmp_unordered("uno", y, y))
    result = builder.select(nan, llvm_ir.Constant(element, float("nan")), result)
    infinite = builder.or_(builder.fcmp_ordered("==", x, inf), builder.fcmp_ordered("==", y, inf))
    return builder.select(infinite, inf, result)


def _integer_or(float_rule, integer_rule):
    """``float_rule`` for float results, ``integer_rule(builder, operands, math)`` for int64
    ones (integer tensors add, subtract, multiply, compare and select)."""
    def lower(builder, node, operands, math):
        if node.dtype == "int64":
            return integer_rule(builder, operands, math)
        return float_rule(builder, node, operands, math)
    lower.__name__ = getattr(float_rule, "__name__", "lower")
    return lower


_INT64_MIN = -(2 ** 63)


def _integer_division(builder, a, b):
    """``(quotient, remainder)`` of numpy's floor division of int64 ``a`` by ``b``: rounded
    down, the remainder of ``b``'s sign, both 0 where ``b`` is 0.  Never LLVM's undefined
    cases: a divisor of 0, and INT64_MIN / -1 (numpy's wraps to INT64_MIN: a / 1 here)."""
    int64 = llvm_type("int64")
    zero, one = llvm_ir.Constant(int64, 0), llvm_ir.Constant(int64, 1)
    by_zero = builder.icmp_signed("==", b, zero)
    overflow = builder.and_(builder.icmp_signed("==", a, llvm_ir.Constant(int64, _INT64_MIN)),
                            builder.icmp_signed("==", b, llvm_ir.Constant(int64, -1)))
    divisor = builder.select(builder.or_(by_zero, overflow), one, b)
    quotient = builder.sdiv(a, divisor)
    remainder = builder.srem(a, divisor)
    # Toward minus infinity: one less, and the remainder moved by the divisor, where the
    # remainder is not 0 and its sign differs from the divisor's.
    adjust = builder.and_(builder.icmp_signed("!=", remainder, zero),
                          builder.xor(builder.icmp_signed("<", remainder, zero),
                                      builder.icmp_signed("<", divisor, zero)))
    quotient = builder.select(adjust, builder.sub(quotient, one), quotient)
    remainder = builder.select(adjust, builder.add(remainder, divisor), remainder)
    return (builder.select(by_zero, zero, quotient), builder.select(by_zero, zero, remainder))


def lower_cast(builder, node, operands, math):
    (x,) = operands
    source = node.args[0].dtype
    if source == "int64":
        return builder.sitofp(x, llvm_type(node.dtype))
    # Toward zero, saturating at the int64 range, NaN as 0: never LLVM's poison.
    name = f"llvm.fptosi.sat.i64.{INTRINSIC_SUFFIX[source]}"
    function = math.module.globals.get(name) or llvm_ir.Function(
        math.module, llvm_ir.FunctionType(llvm_type("int64"), [llvm_type(source)]), name)
    return builder.call(function, [x])


def _compare(predicate, ordered=True):
    def lower(builder, node, operands, math):
        if node.args[0].dtype == "int64":
            return builder.icmp_signed(predicate, *operands)
        if ordered:
            return builder.fcmp_ordered(predicate, *operands)
        return builder.fcmp_unordered(predicate, *operands)
    return lower


def lower_not(builder, node, operands, math):
    return builder.not_(operands[0])


# Compositions lowered as one routine of the inner operation's argument, cheaper than the two
# routines: (outer op, inner op) -> routine.
FUSED_ROUTINES = {(Op.TANH, Op.SOFTPLUS): "tanh_softplus"}


def fused_routine(node):
    """``(routine, argument node)`` where ``node`` is one of :data:`FUSED_ROUTINES` (it is then
    the routine of its operand's operand), else None."""
    if node.args:
        routine = FUSED_ROUTINES.get((node.op, node.args[0].op))
        if routine is not None:
            return routine, node.args[0].args[0]
    return None


LOWERING_RULES = {
    Op.NEG: _integer_or(lambda builder, node, operands, math: builder.fneg(operands[0]),
                        lambda builder, operands, math: builder.neg(operands[0])),
    Op.ADD: _integer_or(lambda builder, node, operands, math: builder.fadd(*operands),
                        lambda builder, operands, math: builder.add(*operands)),
    Op.SUB: _integer_or(lambda builder, node, operands, math: builder.fsub(*operands),
                        lambda builder, operands, math: builder.sub(*operands)),
    Op.MUL: _integer_or(lambda builder, node, operands, math: builder.fmul(*operands),
                        lambda builder, operands, math: builder.mul(*operands)),
    Op.DIV: lambda builder, node, operands, math: builder.fdiv(*operands),
    Op.POW: lower_pow,
    # llvm.maximum/minimum propagate NaN, like numpy.maximum (maxnum would drop it).
    Op.MAX: _integer_or(_intrinsic("maximum", 2), lambda builder, operands, math: builder.call(
        math.intrinsic("smax", "int64", 2), operands)),
    Op.MIN: _integer_or(_intrinsic("minimum", 2), lambda builder, operands, math: builder.call(
        math.intrinsic("smin", "int64", 2), operands)),
    # Elementary functions the loops vectorise (vecmath); sin, cos, pow and the other
    # intrinsics call the C library (vectorised by codegen.compile.vector_library).
    Op.EXP: _routine("exp"),
    Op.LOG: _routine("log"),
    Op.SQRT: _intrinsic("sqrt"),
    Op.SIN: _intrinsic("sin"),
    Op.COS: _intrinsic("cos"),
    Op.TANH: _routine("tanh"),
    Op.ABS: _intrinsic("fabs"),
    Op.SIGN: lower_sign,
    Op.EXPM1: _routine("expm1"),
    Op.LOG1P: _routine("log1p"),
    Op.SIGMOID: _routine("sigmoid"),
    Op.SOFTPLUS: _routine("softplus"),
    Op.STOP_GRADIENT: lambda builder, node, operands, math: operands[0],
    Op.LOG2: _routine("log2"),
    Op.LOG10: _routine("log10"),
    Op.EXP2: _routine("exp2"),
    Op.SINH: _routine("sinh"),
    Op.COSH: _routine("cosh"),
    Op.ASINH: _routine("asinh"),
    Op.ACOSH: _routine("acosh"),
    Op.ATANH: _routine("atanh"),
    # (As intrinsics the loops vectorise, and codegen.compile.vector_library gives their
    # vector calls to libmvec where the C library has it.)
    Op.TAN: _intrinsic("tan"),
    Op.ASIN: _intrinsic("asin"),
    Op.ACOS: _intrinsic("acos"),
    Op.ATAN: _intrinsic("atan"),
    Op.ATAN2: _intrinsic("atan2", 2),
    Op.ERF: _routine("erf"),
    Op.ERFC: _routine("erfc"),
    Op.FLOOR: _intrinsic("floor"),
    Op.CEIL: _intrinsic("ceil"),
    Op.ROUND: _intrinsic("roundeven"),
    Op.HYPOT: lower_hypot,
    Op.FLOOR_DIV: lambda builder, node, operands, math: _integer_division(builder,
                                                                          *operands)[0],
    Op.MOD: lambda builder, node, operands, math: _integer_division(builder, *operands)[1],
    Op.LT: _compare("<"),
    Op.LE: _compare("<="),
    Op.GT: _compare(">"),
    Op.GE: _compare(">="),
    Op.EQ: _compare("=="),
    # NaN != NaN is true, as in numpy: the unordered predicate.
    Op.NE: _compare("!=", ordered=False),
    Op.AND: lambda builder, node, operands, math: builder.and_(*operands),
    Op.OR: lambda builder, node, operands, math: builder.or_(*operands),
    Op.NOT: lower_not,
    Op.SELECT: lambda builder, node, operands, math: builder.select(*operands),
    Op.CAST: lower_cast,
}
