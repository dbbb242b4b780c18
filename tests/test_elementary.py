"""The elementary functions beyond the lecture's (sg.sinh, sg.arctan2, sg.erf, sg.floor, ...):
compiled values against mpmath and numpy, gradients against central differences and
sympy.diff, special values as C99 and numpy give them, the SymPy path and bad arguments.

The vectorised routines (log2, log10, exp2, sinh, cosh, asinh, acosh, atanh) are measured in
ulp over the whole float range in tests/test_vecmath.py; here every function, those of the C
library included, is checked through the public API.
"""

import math

import mpmath
import numpy as np
import pytest
import sympy

import symgrad as sg
from symgrad import ir
from symgrad.codegen import Kernel

RNG = np.random.default_rng(11)

# name: (points where it is smooth, mpmath oracle)
UNARY = {
    "tan": (lambda n: RNG.uniform(-1.5, 1.5, n), mpmath.tan),
    "arcsin": (lambda n: RNG.uniform(-0.99, 0.99, n), mpmath.asin),
    "arccos": (lambda n: RNG.uniform(-0.99, 0.99, n), mpmath.acos),
    "arctan": (lambda n: RNG.normal(0, 5, n), mpmath.atan),
    "sinh": (lambda n: RNG.normal(0, 5, n), mpmath.sinh),
    "cosh": (lambda n: RNG.normal(0, 5, n), mpmath.cosh),
    "arcsinh": (lambda n: RNG.normal(0, 50, n), mpmath.asinh),
    "arccosh": (lambda n: 1.01 + RNG.exponential(5, n), mpmath.acosh),
    "arctanh": (lambda n: RNG.uniform(-0.99, 0.99, n), mpmath.atanh),
    "erf": (lambda n: RNG.normal(0, 2, n), mpmath.erf),
    "erfc": (lambda n: RNG.normal(1, 3, n), mpmath.erfc),
    "log2": (lambda n: RNG.exponential(10, n) + 1e-3, lambda v: mpmath.log(v, 2)),
    "log10": (lambda n: RNG.exponential(10, n) + 1e-3, mpmath.log10),
    "exp2": (lambda n: RNG.normal(0, 20, n), lambda v: mpmath.power(2, v)),
}
# Largest error in ulp through the public API: the C library's functions (glibc's are
# within an ulp; tan, arcsin, arccos, arctan and arctan2 go to its vector
# library where it has one, documented within 4 ulp: 2 measured) and symgrad's routines
# (tests/test_vecmath.py's bounds; erf and erfc among them).
# SymPy's cfunctions, for mpmath.
_MPMATH = [{"exp2": lambda v: mpmath.power(2, v), "log2": lambda v: mpmath.log(v, 2),
            "log10": mpmath.log10, "hypot": mpmath.hypot}, "mpmath"]
ULP = {"tan": 4, "arcsin": 4, "arccos": 4, "arctan": 4, "erf": 2, "erfc": 4, "sinh": 3,
       "cosh": 3, "arcsinh": 3, "arccosh": 3, "arctanh": 3, "log2": 2, "log10": 2, "exp2": 2}


def _ulp(got, want):
    return np.abs(got - want) / np.spacing(np.abs(want))


def _mp(function, values):
    with mpmath.workdps(40):
        return np.array([float(function(mpmath.mpf(float(v)))) for v in values])


def _compiled(output, inputs):
    """The compiled function of one output, returning that output's array."""
    kernel = sg.compile_function(output, inputs)
    return lambda *arrays: kernel(*arrays)[0]


def _central(f, x, eps=1e-6):
    return (f(x + eps) - f(x - eps)) / (2 * eps)


@pytest.mark.parametrize("name", UNARY)
def test_value_against_mpmath_and_gradient_against_central_differences(name):
    points, oracle = UNARY[name]
    x = points(400)
    X = sg.tensor("X", ("n",))
    function = getattr(sg, name)
    kernel = sg.compile(function(X).sum(), wrt=[X])
    values = _compiled(function(X), [X])
    got = values(x)
    want = _mp(oracle, x)
    assert _ulp(got, want).max() <= ULP[name] + 0.5, name
    _, (gradient,) = kernel([x])
    numeric = _central(values, x)
    np.testing.assert_allclose(gradient, numeric, rtol=2e-6, atol=1e-9)
    # The derivative of the SymPy form, evaluated by mpmath.
    s = sympy.Symbol("s", real=True)
    slope = sympy.lambdify(s, sympy.diff(function(s), s), _MPMATH)
    np.testing.assert_allclose(gradient, _mp(slope, x), rtol=1e-13, atol=1e-300)


@pytest.mark.parametrize("name", ["arctan2", "hypot"])
def test_binary_functions(name):
    y, x = RNG.normal(0, 3, 300), RNG.normal(0, 3, 300)
    Y, X = sg.tensor("Y", ("n",)), sg.tensor("X", ("n",))
    function = getattr(sg, name)
    kernel = sg.compile(function(Y, X).sum(), wrt=[Y, X])
    values = _compiled(function(Y, X), [Y, X])
    oracle = mpmath.atan2 if name == "arctan2" else mpmath.hypot
    with mpmath.workdps(40):
        want = np.array([float(oracle(mpmath.mpf(a), mpmath.mpf(b))) for a, b in zip(y, x)])
    assert _ulp(values(y, x), want).max() <= 4
    _, (dy, dx) = kernel([y, x])
    np.testing.assert_allclose(dy, _central(lambda v: values(v, x), y), rtol=2e-6, atol=1e-9)
    np.testing.assert_allclose(dx, _central(lambda v: values(y, v), x), rtol=2e-6, atol=1e-9)


def test_hypot_neither_overflows_nor_underflows_and_its_gradient_is_0_at_the_origin():
    X, Y = sg.tensor("X", ("n",)), sg.tensor("Y", ("n",))
    values = _compiled(sg.hypot(X, Y), [X, Y])
    x = np.array([1e300, 3e-310, 3.0, 0.0, -0.0, math.inf, math.nan, math.inf, -math.inf])
    y = np.array([1e300, 4e-310, 4.0, 0.0, 0.0, math.nan, 1.0, 1.0, math.nan])
    np.testing.assert_array_equal(values(x, y), np.hypot(x, y))
    kernel = sg.compile(sg.hypot(X, Y).sum(), wrt=[X, Y])
    _, (gx, gy) = kernel([np.array([0.0, 3.0]), np.array([0.0, -4.0])])
    np.testing.assert_array_equal(gx, [0.0, 0.6])
    np.testing.assert_array_equal(gy, [0.0, -0.8])


SPECIAL = [0.0, -0.0, 0.5, -0.5, 1.5, 2.5, -2.5, 1.0, -1.0, 2.0, 1e300, -1e300, 5e-324,
           math.inf, -math.inf, math.nan, 3.0 - 2 ** -51, 0.49999999999999994]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", ["tan", "arcsin", "arccos", "arctan", "erf", "erfc", "floor",
                                  "ceil", "rint", "sinh", "cosh", "arcsinh", "arccosh",
                                  "arctanh", "log2", "log10", "exp2"])
def test_special_values_as_numpy(name, dtype):
    # NaN, infinities, signed zeros, domain edges and ties: the same numbers as numpy (erf
    # and erfc: as math.erf), bit for bit where the result is exact, else to an ulp or two.
    with np.errstate(over="ignore"):
        x = np.array(SPECIAL, dtype)
    X = sg.tensor("X", ("n",), dtype=dtype)
    got = _compiled(getattr(sg, name)(X), [X])(x)
    assert got.dtype == np.dtype(dtype)
    with np.errstate(all="ignore"):
        if name in ("erf", "erfc"):
            want = np.array([getattr(math, name)(float(v)) for v in x]).astype(dtype)
        else:
            want = getattr(np, name)(x)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    exact = ~np.isfinite(want) | (want == 0) | (want == np.round(want))
    np.testing.assert_array_equal(got[exact], want[exact])
    np.testing.assert_array_equal(np.signbit(got[want == 0]), np.signbit(want[want == 0]))
    finite = np.isfinite(want) & (want != 0)
    assert np.all(_ulp(got[finite], want[finite]) <= 4), (x[finite], got[finite], want[finite])


def test_arctan2_special_values_as_c99():
    zero, inf, nan = 0.0, math.inf, math.nan
    y = np.array([zero, -zero, zero, -zero, 1.0, -1.0, inf, inf, -inf, nan, 1.0, inf])
    x = np.array([zero, zero, -zero, -zero, -inf, -inf, inf, -inf, 1.0, 1.0, nan, nan])
    Y, X = sg.tensor("Y", ("n",)), sg.tensor("X", ("n",))
    got = _compiled(sg.arctan2(Y, X), [Y, X])(y, x)
    want = np.arctan2(y, x)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(np.signbit(got), np.signbit(want))


def test_rounding_functions_have_zero_gradient_and_round_half_to_even():
    X = sg.tensor("X", ("n",))
    x = np.array([0.5, 1.5, 2.5, -0.5, -1.5, 0.3, -2.7])
    np.testing.assert_array_equal(_compiled(sg.round(X), [X])(x), np.round(x))
    kernel = sg.compile((sg.floor(X) * X + sg.ceil(X) + sg.rint(X)).sum(), wrt=[X])
    _, (gradient,) = kernel([x])
    np.testing.assert_array_equal(gradient, np.floor(x))


def test_clip_keeps_nan_and_passes_the_gradient_inside_only():
    X = sg.tensor("X", ("n",))
    x = np.array([-2.0, -0.25, 0.0, 0.75, 3.0, math.nan])
    np.testing.assert_array_equal(_compiled(sg.clip(X, -0.5, 1.0), [X])(x),
                                  np.clip(x, -0.5, 1.0))
    _, (gradient,) = sg.compile(sg.clip(X, -0.5, 1.0).sum(), wrt=[X])([x[:5]])
    np.testing.assert_array_equal(gradient, [0.0, 1.0, 1.0, 1.0, 0.0])
    np.testing.assert_array_equal(_compiled(sg.clip(X, a_max=0.0), [X])(x[:5]),
                                  np.clip(x[:5], None, 0.0))


def test_sympy_forms_translate_and_differentiate():
    x, y = sg.symbols("x y")
    formula = sympy.atan2(y, x) * sympy.asinh(x) + sympy.erfc(y) + sympy.log(x, 2) \
        + sympy.cosh(x * y) + sympy.floor(x)
    kernel = sg.compile(formula, [x, y])
    point = (np.array([0.7, 2.3]), np.array([-0.4, 1.1]))
    value, (gx, gy) = kernel(*point)
    f = sympy.lambdify((x, y), formula, _MPMATH)
    for i in range(2):
        with mpmath.workdps(30):
            args = (mpmath.mpf(point[0][i]), mpmath.mpf(point[1][i]))
            assert value[i] == pytest.approx(float(f(*args)), rel=1e-14)
            assert gx[i] == pytest.approx(float(mpmath.diff(lambda u: f(u, args[1]), args[0])),
                                          rel=1e-10)
            assert gy[i] == pytest.approx(float(mpmath.diff(lambda v: f(args[0], v), args[1])),
                                          rel=1e-10)


def test_sympy_names_map_onto_the_ops():
    x, y = sg.symbols("x y")
    ops = {sympy.tan: ir.Op.TAN, sympy.asin: ir.Op.ASIN, sympy.acos: ir.Op.ACOS,
           sympy.atan: ir.Op.ATAN, sympy.sinh: ir.Op.SINH, sympy.cosh: ir.Op.COSH,
           sympy.asinh: ir.Op.ASINH, sympy.acosh: ir.Op.ACOSH, sympy.atanh: ir.Op.ATANH,
           sympy.erf: ir.Op.ERF, sympy.erfc: ir.Op.ERFC, sympy.floor: ir.Op.FLOOR,
           sympy.ceiling: ir.Op.CEIL}
    for function, op in ops.items():
        traced = sg.trace(function(x), [x])
        assert op in {node.op for node in traced.nodes}, function
    assert ir.Op.ATAN2 in {n.op for n in sg.trace(sympy.atan2(y, x), [x, y]).nodes}
    assert ir.Op.LOG2 in {n.op for n in sg.trace(sg.log2(x), [x]).nodes}
    assert ir.Op.HYPOT in {n.op for n in sg.trace(sg.hypot(x, y), [x, y]).nodes}


def test_the_c_library_functions_and_the_routines_in_one_float32_loop():
    x = ir.input_node("x", dtype="float32")
    outputs = [ir.tan(x), ir.erf(x), ir.sinh(x), ir.log2(ir.absolute(x))]
    kernel = Kernel(ir.Function([x], outputs, ["a", "b", "c", "d"]), value_and_grad=False)
    values = RNG.uniform(-3, 3, 1000).astype(np.float32)
    a, b, c, d = kernel(values)
    wide = values.astype(np.float64)
    np.testing.assert_allclose(a, np.tan(wide), rtol=3e-7)
    np.testing.assert_allclose(b, [math.erf(v) for v in wide], rtol=3e-7, atol=1e-38)
    np.testing.assert_allclose(c, np.sinh(wide), rtol=4e-7)
    np.testing.assert_allclose(d, np.log2(np.abs(wide)), rtol=3e-7, atol=3e-7)


def test_bad_arguments_are_named():
    X = sg.tensor("X", ("n",))
    with pytest.raises(ValueError, match="decimals must be 0"):
        sg.round(X, 2)
    with pytest.raises(ValueError, match="a_min, a_max"):
        sg.clip(X)


def test_builtins_are_not_star_imported():
    namespace = {}
    exec("from symgrad import *", namespace)
    assert "abs" not in namespace and "round" not in namespace
    assert "sinh" in namespace and "arctan2" in namespace
