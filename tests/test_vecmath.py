"""The vectorisable elementary functions (symgrad.codegen.lower.vecmath) against
high-precision oracles.

Accuracy is measured in ulp of the correctly rounded result over the whole float range and
over the ranges where each method is most delicate (tiny arguments, the overflow and underflow
thresholds, subnormal inputs, arguments near 1 for log).  The oracle is numpy on 80-bit long
doubles (64-bit mantissa, 2048 times finer than float64) and mpmath at 50 digits on a sample;
special values must match C99 exactly.
"""

import math

import mpmath
import numpy as np
import pytest

from symgrad import ir
from symgrad.codegen import Kernel
from symgrad.codegen.compile import vector_library
from symgrad.codegen.compile.jit import host_features

RNG = np.random.default_rng(7)
EXTENDED = np.finfo(np.longdouble).eps < 1e-18


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _softplus(x):
    return np.logaddexp(0, x)


# name: (IR constructor, long-double oracle, mpmath oracle)
FUNCTIONS = {
    "exp": (ir.exp, np.exp, mpmath.exp),
    "expm1": (ir.expm1, np.expm1, mpmath.expm1),
    "log": (ir.log, np.log, mpmath.log),
    "log1p": (ir.log1p, np.log1p, lambda x: mpmath.log1p(x)),
    "tanh": (ir.tanh, np.tanh, mpmath.tanh),
    "sigmoid": (ir.sigmoid, _sigmoid, lambda x: 1 / (1 + mpmath.exp(-x))),
    "softplus": (ir.softplus, _softplus, lambda x: mpmath.log(1 + mpmath.exp(x))),
    # As in mish: one routine of x (symgrad.codegen.lower.mathlib.FUSED_ROUTINES).
    "tanh_softplus": (lambda x: ir.tanh(ir.softplus(x)), lambda x: np.tanh(_softplus(x)),
                      lambda x: mpmath.tanh(mpmath.log(1 + mpmath.exp(x)))),
    "log2": (ir.log2, np.log2, lambda x: mpmath.log(x, 2)),
    "log10": (ir.log10, np.log10, mpmath.log10),
    "exp2": (ir.exp2, np.exp2, lambda x: mpmath.power(2, x)),
    "sinh": (ir.sinh, np.sinh, mpmath.sinh),
    "cosh": (ir.cosh, np.cosh, mpmath.cosh),
    "asinh": (ir.asinh, np.arcsinh, mpmath.asinh),
    "acosh": (ir.acosh, np.arccosh, mpmath.acosh),
    "atanh": (ir.atanh, np.arctanh, mpmath.atanh),
}

# Largest error allowed, in ulp, per function (measured maxima, float64 / float32: exp
# 0.80 / 0.88, expm1 1.95 / 1.60, log 0.76 / 0.82, log1p 1.43 / 1.43, tanh 2.47 / 2.48,
# sigmoid 2.27 / 1.96, softplus 1.61 / 1.61; tanh_softplus 3.09 / 3.26 over 10^7 arguments
# in [-30, 30], most of it exp's error in E = exp(-|x|), which the result inherits; log2
# 1.64 / 1.54, log10 1.62 / 1.79, exp2 0.88 / 0.87, sinh 2.51 / 2.33, cosh 2.64 / 2.65,
# asinh 1.51 / 1.51, acosh 2.20 / 2.19, atanh 1.82 / 2.02).
ULP_BOUND = {"exp": 1, "expm1": 2, "log": 1, "log1p": 2, "tanh": 3, "sigmoid": 3,
             "softplus": 2, "tanh_softplus": 4, "log2": 2, "log10": 2, "exp2": 2, "sinh": 3,
             "cosh": 3, "asinh": 3, "acosh": 3, "atanh": 3}


def _log_uniform(low, high, size, signs=(1,)):
    magnitudes = np.exp(RNG.uniform(np.log(low), np.log(high), size))
    return magnitudes * RNG.choice(signs, size)


def _domain(name, dtype):
    """Arguments: the whole range where the result is finite, plus the delicate regions."""
    f64 = dtype == "float64"
    big = 709.0 if f64 else 88.0
    tiny = 1e-300 if f64 else 1e-37
    subnormal = (5e-324, 2e-308) if f64 else (1.5e-45, 1e-38)
    if name == "exp2":
        low, high = (-1074.0, 1023.9) if f64 else (-149.0, 127.9)
        parts = [RNG.uniform(low, high, 40000), RNG.uniform(-1, 1, 20000),
                 _log_uniform(tiny, 1, 10000, (-1, 1)), RNG.integers(-1074 if f64 else -149,
                                                                     1023 if f64 else 127, 500)]
    elif name in ("sinh", "cosh"):
        top = 710.4 if f64 else 89.4
        parts = [RNG.uniform(-top, top, 40000), RNG.uniform(-25, 25, 20000),
                 _log_uniform(tiny, 1, 20000, (-1, 1)), RNG.uniform(top - 2, top, 2000)]
    elif name in ("asinh", "acosh"):
        top = 1e308 if f64 else 3e38
        parts = [_log_uniform(1, top, 30000, (1,) if name == "acosh" else (-1, 1)),
                 1 + _log_uniform(1e-15 if f64 else 1e-7, 10, 20000)]
        if name == "asinh":
            parts.append(_log_uniform(subnormal[0], 1, 20000, (-1, 1)))
    elif name == "atanh":
        parts = [RNG.uniform(-1, 1, 40000), _log_uniform(tiny, 1, 20000, (-1, 1)),
                 (1 - _log_uniform(1e-15 if f64 else 1e-7, 0.5, 20000)) * RNG.choice((-1, 1),
                                                                                     20000)]
    elif name in ("exp", "expm1"):
        low = -745.0 if f64 else -103.0
        parts = [RNG.uniform(low, big, 40000), RNG.uniform(-1, 1, 20000),
                 _log_uniform(tiny, 1, 20000, (-1, 1)), RNG.uniform(big - 1, big, 2000),
                 RNG.uniform(low, low + 2, 2000)]
    elif name in ("log", "log2", "log10"):
        top = 1e308 if f64 else 3e38
        parts = [_log_uniform(subnormal[0], top, 40000), RNG.uniform(0.5, 2, 20000),
                 1 + _log_uniform(1e-15 if f64 else 1e-7, 1e-2, 10000, (-1, 1)),
                 _log_uniform(*subnormal, 5000)]
    elif name == "log1p":
        top = 1e308 if f64 else 3e38
        parts = [_log_uniform(tiny, top, 30000), _log_uniform(tiny, 1, 20000, (-1,)),
                 RNG.uniform(-1, 1, 20000), -1 + _log_uniform(1e-15 if f64 else 1e-7, 1e-2,
                                                              5000)]
    else:      # tanh, sigmoid, softplus, tanh_softplus: everything, with the saturating tails
        parts = [RNG.uniform(-40, 40, 40000), _log_uniform(tiny, 1e3 if f64 else 80, 40000,
                                                           (-1, 1))]
    values = np.concatenate(parts).astype(dtype)
    return values[np.isfinite(values)]


def _kernel(name):
    x = ir.input_node("x")
    return Kernel(ir.Function([x], [FUNCTIONS[name][0](x)], ["y"]), value_and_grad=False)


def _ulp_error(got, reference, dtype):
    rounded = reference.astype(dtype)
    spacing = np.spacing(np.abs(rounded)).astype(np.longdouble)
    spacing = np.where(spacing > 0, spacing, np.finfo(dtype).smallest_subnormal)
    return np.abs(got.astype(np.longdouble) - reference) / spacing


@pytest.mark.skipif(not EXTENDED, reason="needs numpy long doubles wider than float64")
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", FUNCTIONS)
def test_accuracy_in_ulp_against_long_double(name, dtype):
    values = _domain(name, dtype)
    (got,) = _kernel(name)(values)
    assert got.dtype == np.dtype(dtype)
    with np.errstate(over="ignore"):
        reference = FUNCTIONS[name][1](values.astype(np.longdouble))
    finite = np.isfinite(reference.astype(dtype))
    np.testing.assert_array_equal(np.isfinite(got), finite, err_msg=f"{name}: overflow")
    error = _ulp_error(got[finite], reference[finite], dtype)
    worst = int(np.argmax(error))
    assert error[worst] <= ULP_BOUND[name], (
        f"{name} {dtype}: {error[worst]:.2f} ulp at x = {values[finite][worst]!r} "
        f"(got {got[finite][worst]!r}, want {reference[finite][worst]!r})")


@pytest.mark.parametrize("name", FUNCTIONS)
def test_accuracy_against_mpmath(name):
    values = _domain(name, "float64")[::200]
    (got,) = _kernel(name)(values)
    with mpmath.workdps(50):
        reference = np.array([float(FUNCTIONS[name][2](mpmath.mpf(float(v)))) for v in values])
    error = np.abs(got - reference) / np.spacing(np.abs(reference))
    assert error.max() <= ULP_BOUND[name] + 0.5, (
        f"{name}: {error.max():.2f} ulp at x = {values[np.argmax(error)]!r}")


INF, NAN = math.inf, math.nan
SPECIAL = {
    # x: expected result, as C99 Annex F (and numpy) give them
    "exp": [(0.0, 1.0), (-0.0, 1.0), (INF, INF), (-INF, 0.0), (NAN, NAN), (1000.0, INF),
            (-1000.0, 0.0)],
    "expm1": [(0.0, 0.0), (-0.0, -0.0), (INF, INF), (-INF, -1.0), (NAN, NAN), (1000.0, INF),
              (-1000.0, -1.0)],
    "log": [(0.0, -INF), (-0.0, -INF), (1.0, 0.0), (INF, INF), (-INF, NAN), (-1.0, NAN),
            (NAN, NAN)],
    "log1p": [(0.0, 0.0), (-0.0, -0.0), (-1.0, -INF), (-2.0, NAN), (INF, INF), (NAN, NAN)],
    "tanh": [(0.0, 0.0), (-0.0, -0.0), (INF, 1.0), (-INF, -1.0), (NAN, NAN), (50.0, 1.0),
             (-50.0, -1.0)],
    "sigmoid": [(0.0, 0.5), (INF, 1.0), (-INF, 0.0), (NAN, NAN), (-1000.0, 0.0),
                (1000.0, 1.0)],
    "softplus": [(INF, INF), (-INF, 0.0), (NAN, NAN), (-1000.0, 0.0), (1000.0, 1000.0)],
    "tanh_softplus": [(0.0, 0.6), (-0.0, 0.6), (INF, 1.0), (-INF, 0.0), (NAN, NAN),
                      (-1000.0, 0.0), (1000.0, 1.0)],
    "log2": [(0.0, -INF), (-0.0, -INF), (1.0, 0.0), (8.0, 3.0), (0.125, -3.0), (INF, INF),
             (-INF, NAN), (-1.0, NAN), (NAN, NAN)],
    "log10": [(0.0, -INF), (-0.0, -INF), (1.0, 0.0), (10.0, 1.0), (INF, INF), (-1.0, NAN),
              (NAN, NAN)],
    "exp2": [(0.0, 1.0), (-0.0, 1.0), (3.0, 8.0), (-3.0, 0.125), (INF, INF), (-INF, 0.0),
             (NAN, NAN), (5000.0, INF), (-5000.0, 0.0)],
    "sinh": [(0.0, 0.0), (-0.0, -0.0), (INF, INF), (-INF, -INF), (NAN, NAN), (5000.0, INF),
             (-5000.0, -INF)],
    "cosh": [(0.0, 1.0), (-0.0, 1.0), (INF, INF), (-INF, INF), (NAN, NAN), (-5000.0, INF)],
    "asinh": [(0.0, 0.0), (-0.0, -0.0), (INF, INF), (-INF, -INF), (NAN, NAN)],
    "acosh": [(1.0, 0.0), (INF, INF), (0.5, NAN), (-INF, NAN), (NAN, NAN)],
    "atanh": [(0.0, 0.0), (-0.0, -0.0), (1.0, INF), (-1.0, -INF), (2.0, NAN), (INF, NAN),
              (NAN, NAN)],
}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", FUNCTIONS)
def test_special_values(name, dtype):
    arguments, expected = zip(*SPECIAL[name])
    (got,) = _kernel(name)(np.array(arguments, dtype))
    expected = np.array(expected, dtype)
    np.testing.assert_array_equal(got, expected)       # NaN matches NaN
    zero = expected == 0
    np.testing.assert_array_equal(np.signbit(got[zero]), np.signbit(expected[zero]),
                                  err_msg=f"{name}: sign of zero")


def test_subnormal_results_round_once():
    # exp(x) for x just above the underflow threshold: gradual underflow, correctly rounded
    # to within an ulp of the smallest subnormal.
    values = np.linspace(-745.0, -708.0, 5001)
    (got,) = _kernel("exp")(values)
    reference = np.exp(values.astype(np.longdouble))
    assert np.all(np.abs(got - reference) <= np.spacing(reference.astype(np.float64)))


@pytest.mark.parametrize("name", FUNCTIONS)
def test_routines_vectorise(name):
    # The loop over elements runs on vector registers: the point of these routines.
    x = ir.input_node("x")
    kernel = Kernel(ir.Function([x], [FUNCTIONS[name][0](x)], [name]), value_and_grad=False)
    optimized = kernel.optimized_llvm_ir
    assert "x double>" in optimized
    for libm in ("@exp(", "@log(", "@tanh(", "@expm1(", "@log1p(", "@sinh(", "@cosh(",
                 "@asinh(", "@acosh(", "@atanh(", "@exp2(", "@log2(", "@log10("):
        assert libm not in optimized


def test_mish_and_its_gradient_in_a_tensor_kernel_share_one_exp():
    # sum(mish(x) * w) and its gradient: tanh(softplus(x)) is the fused routine, and the
    # softplus, the derivative's sigmoid and the routine all use one exp(-|x|) per element.
    import symgrad as sg
    X = sg.tensor("X", ("n",))
    W = sg.tensor("W", ("n",))
    step = sg.compile((sg.mish(X) * W).sum(), wrt=[X], inputs=[W])
    assert "@\"symgrad.tanh_softplus.f64\"(" in step.llvm_ir
    optimized = step.optimized_llvm_ir
    assert "symgrad.log" not in optimized and "symgrad.expm1" not in optimized
    x = np.concatenate([RNG.uniform(-40, 40, 5000), [0.0, -0.0, 700.0, -700.0]])
    w = RNG.normal(size=x.size)
    value, (grad,) = step([x], w)
    wide = x.astype(np.longdouble)
    t = np.tanh(_softplus(wide))
    slope = wide * (1 - t * t) * _sigmoid(wide)
    want_grad = w * (t + slope)
    assert value == pytest.approx(float(np.sum(wide * t * w)), rel=1e-13)
    # Relative to the terms' size: the two cancel near mish's minimum.
    scale = np.abs(w) * (np.abs(t) + np.abs(slope))
    assert np.all(np.abs(grad - want_grad) <= 1e-14 * scale)


# ---- the C library's functions, vectorised through glibc's libmvec where it is there ------

LIBMVEC = vector_library.available() and (
    "+avx2" in host_features().split(",") or "+avx512f" in host_features().split(","))
VECTOR_CALLS = {"sin": (ir.sin, np.sin), "cos": (ir.cos, np.cos), "tan": (ir.tan, np.tan),
                "asin": (ir.asin, np.arcsin), "acos": (ir.acos, np.arccos),
                "atan": (ir.atan, np.arctan)}


def _wide(name, dtype):
    top = 1e300 if dtype == "float64" else 1e38
    if name in ("asin", "acos"):
        parts = [RNG.uniform(-1, 1, 40000), 1 - _log_uniform(1e-15, 1e-2, 5000),
                 _log_uniform(1e-300 if dtype == "float64" else 1e-37, 1e-3, 5000, (-1, 1))]
    else:
        parts = [RNG.uniform(-10, 10, 40000), RNG.uniform(-1e5, 1e5, 20000),
                 _log_uniform(1e-300 if dtype == "float64" else 1e-37, top, 20000, (-1, 1))]
    values = np.concatenate(parts).astype(dtype)
    return values[np.isfinite(values)]


@pytest.mark.skipif(not (LIBMVEC and EXTENDED), reason="needs libmvec, AVX2 and long doubles")
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", VECTOR_CALLS)
def test_vector_library_calls_are_used_and_within_4_ulp(name, dtype):
    x = ir.input_node("x", dtype)
    kernel = Kernel(ir.Function([x], [VECTOR_CALLS[name][0](x)], ["y"]),
                    value_and_grad=False)
    assert "@_ZGV" in kernel.optimized_llvm_ir
    values = _wide(name, dtype)
    (got,) = kernel(values)
    reference = VECTOR_CALLS[name][1](values.astype(np.longdouble))
    error = _ulp_error(got, reference, dtype)
    worst = int(np.argmax(error))
    assert error[worst] <= 4, f"{name} {dtype}: {error[worst]:.2f} ulp at {values[worst]!r}"
    specials = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -1.0], dtype)
    (special,) = kernel(specials)
    with np.errstate(invalid="ignore"):
        want = VECTOR_CALLS[name][1](specials)
    np.testing.assert_array_equal(np.isnan(special), np.isnan(want))
    zero = want == 0
    np.testing.assert_array_equal(np.signbit(special[zero]), np.signbit(want[zero]))


@pytest.mark.skipif(not LIBMVEC, reason="needs libmvec and AVX2")
def test_atan2_vectorised_keeps_c99s_special_values():
    y, x = ir.input_node("y"), ir.input_node("x")
    kernel = Kernel(ir.Function([y, x], [ir.atan2(y, x)], ["a"]), value_and_grad=False)
    assert "@_ZGV" in kernel.optimized_llvm_ir
    zero, inf, nan = 0.0, math.inf, math.nan
    ys = np.array([zero, -zero, zero, -zero, 1.0, -1.0, inf, inf, -inf, nan, 1.0, inf] * 20)
    xs = np.array([zero, zero, -zero, -zero, -inf, -inf, inf, -inf, 1.0, 1.0, nan, nan] * 20)
    (got,) = kernel(ys, xs)
    want = np.arctan2(ys, xs)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(np.signbit(got), np.signbit(want))


@pytest.mark.skipif(not LIBMVEC, reason="needs libmvec and AVX2")
@pytest.mark.parametrize("lanes, element, feature", [(8, "f64", "+avx512f"), (4, "f64", "+avx2"),
                                                     (2, "f64", "+sse4.1"),
                                                     (16, "f32", "+avx512f"),
                                                     (8, "f32", "+avx2"), (4, "f32", "+sse4.1")])
def test_each_vector_width_calls_libmvec_with_its_abi(lanes, element, feature):
    # Every width the renaming knows, whatever width this host's loops pick: a module that
    # computes sin and atan2 of one vector, renamed and run, against numpy.
    if feature not in host_features().split(","):
        pytest.skip(f"the host lacks {feature}")
    import ctypes

    import llvmlite.binding as llvm

    from symgrad.codegen.compile.jit import compile_object, host_target_machine
    kind = "double" if element == "f64" else "float"
    vector = f"<{lanes} x {kind}>"
    text = f"""
declare {vector} @llvm.sin.v{lanes}{element}({vector})
declare {vector} @llvm.atan2.v{lanes}{element}({vector}, {vector})
define void @run(ptr %x, ptr %y) {{
  %v = load {vector}, ptr %x, align 1
  %s = call {vector} @llvm.sin.v{lanes}{element}({vector} %v)
  %a = call {vector} @llvm.atan2.v{lanes}{element}({vector} %s, {vector} %v)
  store {vector} %a, ptr %y, align 1
  ret void
}}"""
    renamed = vector_library.rewrite(text, host_features())
    letter = {"+avx512f": "e", "+avx2": "d", "+sse4.1": "b"}[feature]
    suffix = "f" if element == "f32" else ""
    assert f"@_ZGV{letter}N{lanes}v_sin{suffix}(" in renamed
    assert f"@_ZGV{letter}N{lanes}vv_atan2{suffix}(" in renamed
    assert vector_library.rewrite(text, "+sse2") is None
    object_code, optimized = compile_object(text, opt_level=0, codegen_opt_level=2)
    assert "_ZGV" in optimized
    engine = llvm.create_mcjit_compiler(llvm.parse_assembly(""), host_target_machine())
    engine.add_object_file(llvm.ObjectFileRef.from_data(object_code))
    engine.finalize_object()
    run = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)(
        engine.get_function_address("run"))
    dtype = np.float64 if element == "f64" else np.float32
    x = RNG.uniform(-20, 20, lanes).astype(dtype)
    y = np.empty_like(x)
    run(x.ctypes.data, y.ctypes.data)
    want = np.arctan2(np.sin(x.astype(np.float64)), x.astype(np.float64))
    np.testing.assert_allclose(y, want, rtol=1e-14 if element == "f64" else 2e-6, atol=1e-15)


def _erf_domain(dtype):
    tiny = 1e-300 if dtype == "float64" else 1e-37
    parts = [RNG.uniform(-6.5, 6.5, 6000), RNG.uniform(0.8, 1.3, 2000) * RNG.choice((-1, 1), 2000),
             RNG.uniform(-30, 30, 2000), _log_uniform(tiny, 1, 2000, (-1, 1))]
    return np.concatenate(parts).astype(dtype)


@pytest.mark.parametrize("dtype, erf_bound, erfc_bound", [("float64", 1.5, 3.5),
                                                          ("float32", 0.55, 0.55)])
def test_erf_and_erfc_routines_against_mpmath(dtype, erf_bound, erfc_bound):
    # fdlibm's rational approximations on four ranges, vectorised (measured maxima: erf 1.0,
    # erfc 3.0 ulp in float64, where exp's error in the tail carries over; float32 computes
    # in float64 and rounds once).
    x = ir.input_node("x", dtype)
    kernel = Kernel(ir.Function([x], [ir.erf(x), ir.erfc(x)], ["a", "b"]),
                    value_and_grad=False)
    assert "x double>" in kernel.optimized_llvm_ir
    assert "@erf(" not in kernel.optimized_llvm_ir and "@erfc(" not in kernel.optimized_llvm_ir
    values = _erf_domain(dtype)
    erf, erfc = kernel(values)
    with mpmath.workdps(40):
        want_erf = np.array([float(mpmath.erf(mpmath.mpf(float(v)))) for v in values])
        want_erfc = np.array([float(mpmath.erfc(mpmath.mpf(float(v)))) for v in values])
    for got, want, bound, name in ((erf, want_erf, erf_bound, "erf"),
                                   (erfc, want_erfc, erfc_bound, "erfc")):
        spacing = np.spacing(np.abs(want.astype(dtype))).astype(np.float64)
        spacing = np.maximum(spacing, float(np.finfo(dtype).smallest_subnormal))
        error = np.abs(got.astype(np.float64) - want) / spacing
        worst = int(np.argmax(error))
        assert error[worst] <= bound, f"{name} {dtype}: {error[worst]:.2f} ulp at {values[worst]!r}"
    special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 40.0, -40.0], dtype)
    erf, erfc = kernel(special)
    np.testing.assert_array_equal(erf, np.array([0.0, -0.0, 1, -1, np.nan, 1, -1], dtype))
    np.testing.assert_array_equal(np.signbit(erf[:2]), [False, True])
    np.testing.assert_array_equal(erfc, np.array([1, 1, 0, 2, np.nan, 0, 2], dtype))
