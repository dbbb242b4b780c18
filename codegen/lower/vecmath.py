"""Elementary functions the loop vectoriser can vectorise: exp, expm1, log, log1p, tanh, and
the functions built on them (sigmoid, softplus, log2, log10, exp2, sinh, cosh, asinh, acosh,
atanh, erf, erfc).

A call to libm's ``exp`` inside a loop keeps the loop scalar: LLVM cannot widen an opaque
call.  The routines here are straight-line LLVM IR (arithmetic, integer bit operations on the
float's representation, selects; no branches, no calls but intrinsics that lower to single
instructions), emitted as internal ``alwaysinline`` functions.  Once inlined into a loop they
vectorise with the rest of the body, 8 float64 or 16 float32 lanes per AVX-512 instruction.

Method (the classical one, as in fdlibm and Cody & Waite):

* ``exp``: ``x = k ln2 + r`` with ``k = rint(x / ln2)`` and ``|r| <= ln2 / 2`` (``ln2`` split
  in a high part whose products with ``k`` are exact and a low part); ``exp(r)`` by its Taylor
  polynomial (degree 13 in float64, 7 in float32, truncation far below half an ulp), its tail
  evaluated by Estrin's scheme (short dependency chains: these loops are bound by latency)
  and its last two steps by exact multiply-adds; the result is scaled by ``2**k`` in two
  steps so that subnormal results round once and overflow gives inf.
* ``expm1``: the same reduction; ``expm1(x) = 2**k expm1(r) + (2**k - 1)``, so no cancellation
  for small ``x``.
* ``log``: ``x = 2**e m`` with ``m`` in ``[sqrt(1/2), sqrt(2))`` read from the bits (subnormal
  inputs scaled first); ``log(m) = 2 atanh(s)``, ``s = f / (2 + f)``, ``f = m - 1``, in
  fdlibm's arrangement ``f - f**2/2 + s (f**2/2 + R(s**2))``.
* ``log1p(x) = log(u) - ((u - 1) - x) / u`` with ``u = 1 + x``: the rounding error of ``u``
  corrected to first order.
* ``tanh(x) = sign(x) * -t / (2 + t)`` with ``t = expm1(-2|x|)``: accurate near 0 and saturating
  to exactly 1.

Special values follow C99 Annex F: NaN propagates, ``log`` of a negative number is NaN and of
zero ``-inf``, overflow gives inf, signed zeros are kept.  Accuracy, checked against numpy and
mpmath in ``tests/test_vecmath.py``: a few ulp over the whole float range.
"""

from dataclasses import dataclass
from fractions import Fraction
from math import factorial

from llvmlite import ir as llvm_ir

from symgrad.codegen.lower.types import llvm_type


@dataclass(frozen=True)
class _Format:
    """The constants of one floating-point format."""

    bits: int            # width of the representation
    mantissa: int        # explicit mantissa bits
    bias: int
    exp_low: float       # exp(x) rounds to 0 below this
    exp_high: float      # exp(x) overflows above this
    expm1_floor: int     # 2**k expm1(r) + (2**k - 1) rounds to -1 for k at or below this
    expm1_direct: int    # largest k for which 2**k expm1(r) + (2**k - 1) is used
    ln2_high: float      # ln 2 with trailing zero bits: k * ln2_high is exact
    ln2_low: float       # ln 2 - ln2_high
    sqrt_half_bits: int  # the representation of sqrt(1/2)
    subnormal_shift: int  # 2**shift makes a subnormal number normal
    exp_degree: int      # Taylor degree for exp and expm1 on |r| <= ln2 / 2
    log_terms: int       # terms of R(z) = 2z/3 + 2z^2/5 + ... for log on |s| <= 0.1716


FORMATS = {
    "float64": _Format(
        bits=64, mantissa=52, bias=1023, exp_low=-746.0, exp_high=710.0, expm1_floor=-60,
        expm1_direct=60, ln2_high=6.93147180369123816490e-01,
        ln2_low=1.90821492927058770002e-10, sqrt_half_bits=0x3FE6A09E667F3BCD,
        subnormal_shift=54, exp_degree=13, log_terms=10),
    "float32": _Format(
        bits=32, mantissa=23, bias=127, exp_low=-104.0, exp_high=89.0, expm1_floor=-30,
        expm1_direct=28, ln2_high=0.693359375, ln2_low=-2.12194440e-4,
        sqrt_half_bits=0x3F3504F3, subnormal_shift=25, exp_degree=7, log_terms=5),
}

LOG2_E = 1.4426950408889634
LN2 = 0.6931471805599453
LOG10_E = 0.4342944819032518
LOG10_2 = 0.30102999566398120
# log10(2) with trailing zero bits, so that its products with an exponent k are exact.
LOG10_2_HIGH = {"float64": 3.01029995663611771306e-01, "float32": 0.301025390625}


class _Emitter:
    """Helpers for writing one routine's body with an IRBuilder."""

    def __init__(self, builder, dtype, math):
        self.b = builder
        self.dtype = dtype
        self.math = math
        self.fmt = FORMATS[dtype]
        self.float = llvm_type(dtype)
        self.int = llvm_ir.IntType(self.fmt.bits)

    def const(self, value):
        return llvm_ir.Constant(self.float, value)

    def iconst(self, value):
        return llvm_ir.Constant(self.int, value)

    def call(self, name, *operands):
        return self.b.call(self.math.intrinsic(name, self.dtype, len(operands)), list(operands))

    def estrin(self, x, coefficients):
        """The polynomial c[0] + c[1] x + ... by Estrin's scheme: pairs c[i] + c[i+1] x, then
        pairs of those with x^2, x^4, ...  A chain of log2(degree) multiply-adds instead of
        Horner's degree: the latency, not the operation count, bounds these loops."""
        terms = [self.const(c) for c in coefficients]
        power = x
        while len(terms) > 1:
            paired = [self.call("fmuladd", terms[i + 1], power, terms[i])
                      for i in range(0, len(terms) - 1, 2)]
            if len(terms) % 2:
                paired.append(terms[-1])
            terms = paired
            if len(terms) > 1:
                power = self.b.fmul(power, power)
        return terms[0]

    def is_nan(self, x):
        return self.b.fcmp_unordered("uno", x, x)

    def power_of_two(self, k):
        """2**k for an integer k in the normal exponent range, from its bits."""
        biased = self.b.add(k, self.iconst(self.fmt.bias))
        return self.b.bitcast(self.b.shl(biased, self.iconst(self.fmt.mantissa)), self.float)

    def reduce(self, x, low, high):
        """(k as float, k as integer, r) with x = k ln2 + r, x clamped to [low, high] first."""
        clamped = self.call("minnum", self.call("maxnum", x, self.const(low)), self.const(high))
        k = self.call("rint", self.b.fmul(clamped, self.const(LOG2_E)))
        r = self.b.fsub(clamped, self.b.fmul(k, self.const(self.fmt.ln2_high)))
        r = self.b.fsub(r, self.b.fmul(k, self.const(self.fmt.ln2_low)))
        return k, self.b.fptosi(k, self.int), r

    def scale(self, value, k):
        """value * 2**k in two steps, so that the exponent may leave the normal range."""
        half = self.b.ashr(k, self.iconst(1))
        rest = self.b.sub(k, half)
        return self.b.fmul(self.b.fmul(value, self.power_of_two(half)),
                           self.power_of_two(rest))


def _taylor(first, degree):
    """1/first!, 1/(first+1)!, ..., 1/degree!"""
    return [float(Fraction(1, factorial(n))) for n in range(first, degree + 1)]


def emit_exp(e, x):
    _, k, r = e.reduce(x, e.fmt.exp_low, e.fmt.exp_high)
    # 1 + r (1 + r Q(r)), Q(r) = 1/2 + r/6 + ... by Estrin's scheme: the two last steps, where
    # the result takes its value, are exact multiply-adds, as in Horner's scheme.
    inner = e.call("fmuladd", e.estrin(r, _taylor(2, e.fmt.exp_degree)), r, e.const(1.0))
    result = e.scale(e.call("fmuladd", inner, r, e.const(1.0)), k)
    return e.b.select(e.is_nan(x), x, result)


def emit_expm1(e, x, nonpositive=False):
    """expm1; ``nonpositive``: for x <= 0 or NaN only (as tanh uses it), where neither the
    large-argument path nor the zero's sign matters."""
    b = e.b
    # The reduction and the polynomial are exp's, instruction for instruction: where exp and
    # expm1 of one argument meet in a loop (elu and its derivative, tanh and its derivative),
    # they share them.
    _, k, r = e.reduce(x, e.fmt.exp_low, e.fmt.exp_high)
    # expm1(r) = r + r^2 (1/2 + r/6 + ...): exact for r = x when k = 0.
    small = b.fadd(r, b.fmul(b.fmul(r, r), e.estrin(r, _taylor(2, e.fmt.exp_degree))))
    limit = e.iconst(e.fmt.expm1_direct)
    # Below 2**expm1_floor the result is -1 to the last bit, and 2**k stays a normal number.
    floor = e.iconst(e.fmt.expm1_floor)
    direct_k = b.select(b.icmp_signed("<", k, floor), floor, k)
    if not nonpositive:
        direct_k = b.select(b.icmp_signed(">", direct_k, limit), limit, direct_k)
    two_k = e.power_of_two(direct_k)
    direct = e.call("fmuladd", two_k, small, b.fsub(two_k, e.const(1.0)))
    if nonpositive:
        return b.select(e.is_nan(x), x, direct)
    # Beyond 2**expm1_direct the -1 is below a hundredth of an ulp: exp(x) itself.
    large = e.scale(b.fadd(small, e.const(1.0)), k)
    result = b.select(b.icmp_signed(">", k, limit), large, direct)
    # x itself for NaN and for zeros (keeps the sign of -0.0).
    keep = b.or_(e.is_nan(x), b.fcmp_ordered("==", x, e.const(0.0)))
    return b.select(keep, x, result)


def _log_parts(e, x, unit):
    """(k, log(m)) with x = 2**k m, m in [sqrt(1/2), sqrt(2)); log(m) as the pair (f, rest)
    whose sum it is, f = m - 1 exact."""
    b, fmt = e.b, e.fmt
    if unit:
        scaled, exponent_shift = x, e.const(0.0)
    else:
        subnormal = b.fcmp_ordered("<", x, e.const(2.0 ** (1 - fmt.bias)))
        scaled = b.select(subnormal, b.fmul(x, e.const(2.0 ** fmt.subnormal_shift)), x)
        exponent_shift = b.select(subnormal, e.const(-float(fmt.subnormal_shift)),
                                  e.const(0.0))
    # Shift the bits so that the exponent field counts from sqrt(1/2): m in [sqrt(1/2), sqrt(2)).
    one_bits = fmt.bias << fmt.mantissa
    bits = b.add(b.bitcast(scaled, e.int), e.iconst(one_bits - fmt.sqrt_half_bits))
    exponent = b.sub(b.ashr(bits, e.iconst(fmt.mantissa)), e.iconst(fmt.bias))
    mantissa_bits = b.add(b.and_(bits, e.iconst((1 << fmt.mantissa) - 1)),
                          e.iconst(fmt.sqrt_half_bits))
    m = b.bitcast(mantissa_bits, e.float)
    k = b.fadd(b.sitofp(exponent, e.float), exponent_shift)
    f = b.fsub(m, e.const(1.0))
    half_f2 = b.fmul(e.const(0.5), b.fmul(f, f))
    s = b.fdiv(f, b.fadd(e.const(2.0), f))
    z = b.fmul(s, s)
    series = [2.0 / (2 * n + 1) for n in range(1, fmt.log_terms + 1)]
    big_r = b.fmul(z, e.estrin(z, series))
    return k, f, half_f2, b.fmul(s, b.fadd(half_f2, big_r))


def _log_special(e, x, result):
    """C99's log specials on top of ``result``: inf, -inf at zero, NaN below, NaN kept."""
    b = e.b
    result = b.select(b.fcmp_ordered("==", x, e.const(float("inf"))), x, result)
    result = b.select(b.fcmp_ordered("==", x, e.const(0.0)), e.const(float("-inf")), result)
    result = b.select(b.fcmp_ordered("<", x, e.const(0.0)), e.const(float("nan")), result)
    return b.select(e.is_nan(x), x, result)


def emit_log(e, x, unit=False):
    """log; ``unit``: for x in [1, 2] only (as log1p of [0, 1] uses it): no subnormal
    scaling, no special values."""
    b, fmt = e.b, e.fmt
    k, f, half_f2, tail = _log_parts(e, x, unit)
    # k ln2_high - ((f^2/2 - (s (f^2/2 + R) + k ln2_low)) - f)
    inner = b.fadd(tail, b.fmul(k, e.const(fmt.ln2_low)))
    result = b.fsub(b.fmul(k, e.const(fmt.ln2_high)), b.fsub(b.fsub(half_f2, inner), f))
    return result if unit else _log_special(e, x, result)


def _log_base(e, x, scale_high, scale_low, per_e):
    """log(x) / log(base) = k log_base(2) + log(m) / log(base): ``scale_high + scale_low``
    is log_base(2) (the high part's products with k exact), ``per_e`` is 1 / log(base)."""
    b = e.b
    k, f, half_f2, tail = _log_parts(e, x, False)
    log_m = b.fadd(f, b.fsub(tail, half_f2))
    low = e.call("fmuladd", log_m, e.const(per_e), b.fmul(k, e.const(scale_low)))
    result = b.fadd(b.fmul(k, e.const(scale_high)), low)
    return _log_special(e, x, result)


def emit_log2(e, x):
    # k + log(m) log2(e): exactly k at powers of two.
    return _log_base(e, x, 1.0, 0.0, LOG2_E)


def emit_log10(e, x):
    high = LOG10_2_HIGH[e.dtype]
    return _log_base(e, x, high, LOG10_2 - high, LOG10_E)


def emit_exp2(e, x):
    # x = k + r, |r| <= 1/2 (exact); 2**r = exp(r ln2), |r ln2| <= ln2 / 2 as in exp, the
    # rounding of r ln2 below half an ulp of the result; scaled by 2**k in two steps.
    b = e.b
    bound = 1100.0 if e.dtype == "float64" else 160.0
    clamped = e.call("minnum", e.call("maxnum", x, e.const(-bound)), e.const(bound))
    k = e.call("rint", clamped)
    y = b.fmul(b.fsub(clamped, k), e.const(LN2))
    inner = e.call("fmuladd", e.estrin(y, _taylor(2, e.fmt.exp_degree)), y, e.const(1.0))
    result = e.scale(e.call("fmuladd", inner, y, e.const(1.0)), b.fptosi(k, e.int))
    return b.select(e.is_nan(x), x, result)


# Where the exponentials of sinh and cosh stop using exp(|x|): beyond, exp(-|x|) is below an
# ulp of the result, which is exp(|x|/2)**2 / 2 (so it overflows only where the result does).
_HYPERBOLIC_SPLIT = 20.0


def emit_sinh(e, x):
    b = e.b
    a = e.call("fabs", x)
    # (t + t / (t + 1)) / 2, t = expm1(|x|): both terms positive, nothing cancels near 0.
    t = b.call(e.math.routine("expm1", e.dtype), [a])
    small = b.fmul(e.const(0.5), b.fadd(t, b.fdiv(t, b.fadd(t, e.const(1.0)))))
    h = b.call(e.math.routine("exp", e.dtype), [b.fmul(e.const(0.5), a)])
    large = b.fmul(b.fmul(e.const(0.5), h), h)
    result = b.select(b.fcmp_ordered("<", a, e.const(_HYPERBOLIC_SPLIT)), small, large)
    return e.call("copysign", result, x)


def emit_cosh(e, x):
    b = e.b
    a = e.call("fabs", x)
    is_small = b.fcmp_ordered("<", a, e.const(_HYPERBOLIC_SPLIT))
    # One exp: of |x| (then (h + 1/h) / 2) or of |x| / 2 (then h**2 / 2).
    h = b.call(e.math.routine("exp", e.dtype),
               [b.select(is_small, a, b.fmul(e.const(0.5), a))])
    half = b.fmul(e.const(0.5), h)
    small = b.fadd(half, b.fdiv(e.const(0.5), h))
    return b.select(is_small, small, b.fmul(half, h))


def _big(e):
    """Beyond this, sqrt(x**2 + 1) is |x| to the last bit."""
    return e.const(2.0 ** 28 if e.dtype == "float64" else 2.0 ** 12)


def emit_asinh(e, x):
    b = e.b
    a = e.call("fabs", x)
    one = e.const(1.0)
    # log1p(a + a**2 / (1 + sqrt(1 + a**2))): no cancellation near 0; log(a) + ln2 for large a.
    a2 = b.fmul(a, a)
    moderate = b.fadd(a, b.fdiv(a2, b.fadd(one, e.call("sqrt", b.fadd(one, a2)))))
    near = b.call(e.math.routine("log1p", e.dtype), [moderate])
    far = b.fadd(b.call(e.math.routine("log", e.dtype), [a]), e.const(LN2))
    result = b.select(b.fcmp_ordered("<", a, _big(e)), near, far)
    return e.call("copysign", result, x)


def emit_acosh(e, x):
    b = e.b
    # log1p(t + sqrt(t (t + 2))), t = x - 1 (exact near 1); log(x) + ln2 for large x.
    t = b.fsub(x, e.const(1.0))
    near = b.call(e.math.routine("log1p", e.dtype),
                  [b.fadd(t, e.call("sqrt", b.fmul(t, b.fadd(t, e.const(2.0)))))])
    far = b.fadd(b.call(e.math.routine("log", e.dtype), [x]), e.const(LN2))
    result = b.select(b.fcmp_ordered("<", x, _big(e)), near, far)
    # Below 1 (and NaN) t (t + 2) < 0 gives NaN on the near side already.
    return b.select(b.fcmp_unordered("<", x, e.const(1.0)), e.const(float("nan")), result)


def emit_atanh(e, x):
    b = e.b
    a = e.call("fabs", x)
    # log1p(2a / (1 - a)) / 2: 1 - a exact near 1, inf at 1, NaN beyond (log1p of < -1).
    quotient = b.fdiv(b.fmul(e.const(2.0), a), b.fsub(e.const(1.0), a))
    half = b.fmul(e.const(0.5), b.call(e.math.routine("log1p", e.dtype), [quotient]))
    result = b.select(b.fcmp_ordered(">", a, e.const(1.0)), e.const(float("nan")), half)
    return e.call("copysign", result, x)


# erf and erfc: fdlibm's rational approximations (s_erf.c) on [0, 0.84375], [0.84375, 1.25],
# [1.25, 1/0.35] and [1/0.35, 28], each region computed and the right one selected.
_ERX = 8.45062911510467529297e-01
_ERF_PP = [1.28379167095512558561e-01, -3.25042107247001499370e-01, -2.84817495755985104766e-02,
           -5.77027029648944159157e-03, -2.37630166566501626084e-05]
_ERF_QQ = [1.0, 3.97917223959155352819e-01, 6.50222499887672944485e-02,
           5.08130628187576562776e-03, 1.32494738004321644526e-04, -3.96022827877536812320e-06]
_ERF_PA = [-2.36211856075265944077e-03, 4.14856118683748331666e-01, -3.72207876035701323847e-01,
           3.18346619901161753674e-01, -1.10894694282396677476e-01, 3.54783043256182359371e-02,
           -2.16637559486879084300e-03]
_ERF_QA = [1.0, 1.06420880400844228286e-01, 5.40397917702171048937e-01,
           7.18286544141962662868e-02, 1.26171219808761642112e-01, 1.36370839120290507362e-02,
           1.19844998467991074170e-02]
_ERF_RA = [-9.86494403484714822705e-03, -6.93858572707181764372e-01, -1.05586262253232909814e+01,
           -6.23753324503260060396e+01, -1.62396669462573470355e+02, -1.84605092906711035994e+02,
           -8.12874355063065934246e+01, -9.81432934416914548592e+00]
_ERF_SA = [1.0, 1.96512716674392571292e+01, 1.37657754143519042600e+02,
           4.34565877475229228821e+02, 6.45387271733267880336e+02, 4.29008140027567833386e+02,
           1.08635005541779435134e+02, 6.57024977031928170135e+00, -6.04244152148580987438e-02]
_ERF_RB = [-9.86494292470009928597e-03, -7.99283237680523006574e-01, -1.77579549177547519889e+01,
           -1.60636384855821916062e+02, -6.37566443368389627722e+02, -1.02509513161107724954e+03,
           -4.83519191608651397019e+02]
_ERF_SB = [1.0, 3.03380607434824582924e+01, 3.25792512996573918826e+02,
           1.53672958608443695994e+03, 3.19985821950859553908e+03, 2.55305040643316442583e+03,
           4.74528541206955367215e+02, -2.24409524465858183362e+01]


def _erf_parts(e, x):
    """The pieces erf and erfc share: |x|, x y on the first region, P/Q on the second, and
    exp(-x**2) R/S-corrected, divided by |x|, on the third and fourth."""
    b = e.b
    a = e.call("fabs", x)
    z2 = b.fmul(x, x)
    y = b.fdiv(e.estrin(z2, _ERF_PP), e.estrin(z2, _ERF_QQ))
    xy = b.fmul(x, y)
    s = b.fsub(a, e.const(1.0))
    pq = b.fdiv(e.estrin(s, _ERF_PA), e.estrin(s, _ERF_QA))
    t = b.fdiv(e.const(1.0), b.fmul(a, a))
    near = b.fcmp_ordered("<", a, e.const(1 / 0.35))
    ratio = b.select(near, b.fdiv(e.estrin(t, _ERF_RA), e.estrin(t, _ERF_SA)),
                     b.fdiv(e.estrin(t, _ERF_RB), e.estrin(t, _ERF_SB)))
    # z: |x| with the low half of its mantissa cleared, so that z**2 is exact.
    low_bits = 32
    mask = e.iconst(~((1 << low_bits) - 1) & ((1 << e.fmt.bits) - 1))
    z = b.bitcast(b.and_(b.bitcast(a, e.int), mask), e.float)
    exp = e.math.routine("exp", e.dtype)
    first = b.call(exp, [b.fsub(b.fneg(b.fmul(z, z)), e.const(0.5625))])
    second = b.call(exp, [b.fadd(b.fmul(b.fsub(z, a), b.fadd(z, a)), ratio)])
    tail = b.fdiv(b.fmul(first, second), a)
    return a, xy, pq, tail


def _in_float64(e, x, name):
    """The float64 routine ``name`` of float32 ``x``, rounded back: the float32 forms of the
    tails lose tens of ulp to the rounding of their exponent."""
    b = e.b
    wide = b.call(e.math.routine(name, "float64"), [b.fpext(x, llvm_type("float64"))])
    return b.fptrunc(wide, e.float)


def emit_erf(e, x):
    if e.dtype == "float32":
        return _in_float64(e, x, "erf")
    b = e.b
    a, xy, pq, tail = _erf_parts(e, x)
    one = e.const(1.0)
    small = b.fadd(x, xy)
    middle = e.call("copysign", b.fadd(e.const(_ERX), pq), x)
    large = e.call("copysign", b.fsub(one, tail), x)
    result = b.select(b.fcmp_ordered("<", a, e.const(1.25)), middle,
                      b.select(b.fcmp_ordered("<", a, e.const(6.0)), large,
                               e.call("copysign", one, x)))
    result = b.select(b.fcmp_ordered("<", a, e.const(0.84375)), small, result)
    return b.select(e.is_nan(x), x, result)


def emit_erfc(e, x):
    if e.dtype == "float32":
        return _in_float64(e, x, "erfc")
    b = e.b
    a, xy, pq, tail = _erf_parts(e, x)
    one, two, half = e.const(1.0), e.const(2.0), e.const(0.5)
    negative = b.fcmp_ordered("<", x, e.const(0.0))
    small = b.select(b.fcmp_ordered("<", x, e.const(0.25)), b.fsub(one, b.fadd(x, xy)),
                     b.fsub(half, b.fadd(b.fsub(x, half), xy)))
    middle = b.select(negative, b.fadd(one, b.fadd(e.const(_ERX), pq)),
                      b.fsub(e.const(1.0 - _ERX), pq))
    large = b.select(negative, b.fsub(two, tail), tail)
    beyond = b.select(negative, two, e.const(0.0))
    result = b.select(b.fcmp_ordered("<", a, e.const(28.0)), large, beyond)
    # Below -6, 2 - erfc(|x|) rounds to 2.
    result = b.select(b.and_(negative, b.fcmp_ordered(">=", a, e.const(6.0))), two, result)
    result = b.select(b.fcmp_ordered("<", a, e.const(1.25)), middle, result)
    result = b.select(b.fcmp_ordered("<", a, e.const(0.84375)), small, result)
    return b.select(e.is_nan(x), x, result)


def emit_log1p(e, x, unit=False):
    """log1p; ``unit``: for x in [0, 1] only (as softplus uses it), without the guards for
    u = 1 + x at 0 or inf and for the sign of zero.  NaN gives some number there: softplus
    adds max(x, 0), NaN already."""
    b = e.b
    u = b.fadd(e.const(1.0), x)
    log_u = b.call(e.math.routine("log.unit" if unit else "log", e.dtype), [u])
    # The rounding error of u, (u - 1) - x, corrected to first order; not where u is 0 or inf.
    # Multiplied by 1/u rather than divided by u: the correction is below an ulp of the result,
    # and 1/(1 + x) is the sigmoid's own quotient (softplus and sigmoid of one argument, as in
    # a softplus and its derivative, then share one division).
    correction = b.fmul(b.fsub(b.fsub(u, e.const(1.0)), x), b.fdiv(e.const(1.0), u))
    if unit:
        return b.fsub(log_u, correction)
    finite = b.and_(b.fcmp_ordered(">", u, e.const(0.0)),
                    b.fcmp_ordered("<", u, e.const(float("inf"))))
    result = b.fsub(log_u, b.select(finite, correction, e.const(0.0)))
    return b.select(b.fcmp_ordered("==", x, e.const(0.0)), x, result)


def emit_tanh(e, x):
    b = e.b
    # -|2x|, written as the sigmoid of 2x (tanh's derivative) writes the argument of its exp:
    # the two then share the reduction.
    t = b.call(e.math.routine("expm1.nonpositive", e.dtype),
               [b.fneg(e.call("fabs", b.fmul(e.const(2.0), x)))])
    positive = b.fdiv(b.fneg(t), b.fadd(t, e.const(2.0)))
    return e.call("copysign", positive, x)


def emit_sigmoid(e, x):
    # 1 / (1 + exp(-x)) for x >= 0, exp(x) / (1 + exp(x)) below: exp never overflows.
    b = e.b
    tail = b.call(e.math.routine("exp", e.dtype), [b.fneg(e.call("fabs", x))])
    upper = b.fdiv(e.const(1.0), b.fadd(e.const(1.0), tail))
    return b.select(b.fcmp_ordered(">=", x, e.const(0.0)), upper, b.fmul(tail, upper))


def emit_softplus(e, x):
    # max(x, 0) + log1p(exp(-|x|)): never overflows, exact to a few ulp on both tails.
    b = e.b
    tail = b.call(e.math.routine("exp", e.dtype), [b.fneg(e.call("fabs", x))])
    positive = e.call("maximum", x, e.const(0.0))
    return b.fadd(positive, b.call(e.math.routine("log1p.unit", e.dtype), [tail]))


def emit_tanh_softplus(e, x):
    """tanh(softplus(x)), as in mish, from E = exp(-|x|) alone: with u = 1 + exp(x),
    tanh(log u) = (u^2 - 1) / (u^2 + 1), which is (1 + 2E) / (1 + 2E + 2E^2) for x >= 0 and
    h / (1 + h), h = E + E^2 / 2, below; every term is positive, so nothing cancels, and one
    division serves both sides.  E is the one softplus and sigmoid of x use (so a mish and
    its derivative share one exp)."""
    b = e.b
    tail = b.call(e.math.routine("exp", e.dtype), [b.fneg(e.call("fabs", x))])
    twice = b.fmul(e.const(2.0), tail)                          # exact
    upper_numerator = b.fadd(e.const(1.0), twice)
    upper_denominator = e.call("fmuladd", twice, tail, upper_numerator)
    half = b.fmul(e.const(0.5), tail)                           # exact
    lower_numerator = e.call("fmuladd", half, tail, tail)
    lower_denominator = b.fadd(e.const(1.0), lower_numerator)
    upper = b.fcmp_unordered(">=", x, e.const(0.0))
    return b.fdiv(b.select(upper, upper_numerator, lower_numerator),
                  b.select(upper, upper_denominator, lower_denominator))


ROUTINES = {
    "exp": emit_exp,
    "expm1": emit_expm1,
    "expm1.nonpositive": lambda e, x: emit_expm1(e, x, nonpositive=True),
    "log": emit_log,
    "log.unit": lambda e, x: emit_log(e, x, unit=True),
    "log1p": emit_log1p,
    "log1p.unit": lambda e, x: emit_log1p(e, x, unit=True),
    "tanh": emit_tanh,
    "sigmoid": emit_sigmoid,
    "softplus": emit_softplus,
    "tanh_softplus": emit_tanh_softplus,
    "log2": emit_log2,
    "log10": emit_log10,
    "exp2": emit_exp2,
    "sinh": emit_sinh,
    "cosh": emit_cosh,
    "asinh": emit_asinh,
    "acosh": emit_acosh,
    "atanh": emit_atanh,
    "erf": emit_erf,
    "erfc": emit_erfc,
}


def define_routine(module, name, dtype, math, inline=True):
    """Define ``symgrad.NAME.SUFFIX`` in ``module``: internal, one argument, always inlined
    (or, with ``inline`` false, never: one copy that the code calls, for kernels so large
    that thousands of inlined copies would make LLVM's compile time grow as their square)."""
    element = llvm_type(dtype)
    function = llvm_ir.Function(module, llvm_ir.FunctionType(element, [element]),
                                name=f"symgrad.{name}.{'f64' if dtype == 'float64' else 'f32'}")
    function.linkage = "internal"
    function.attributes.add("alwaysinline" if inline else "noinline")
    function.attributes.add("nounwind")
    builder = llvm_ir.IRBuilder(function.append_basic_block("entry"))
    builder.ret(ROUTINES[name](_Emitter(builder, dtype, math), function.args[0]))
    return function
