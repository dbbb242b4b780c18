"""Derivatives in the tails: every activation of symgrad.functions, the unary ops (as the
SymPy frontend translates them) and the losses, in float64 and float32, against mpmath.

The error is measured in ulp of the exact result rounded to the kernel's dtype, at points
reaching the ends of the float range (|x| up to 745 in float64, 104 in float32), where a rule
that computes a slope from a saturated forward value (sigma (1 - sigma), 1 - tanh**2,
expm1(x) + 1, softmax - target) returns 0 or a few ulp of 1 instead of a tiny number.  It
must be at most ``ULP`` wherever the exact result is a normal number, and within the smallest
normal number of it where that is subnormal or 0; an exact result beyond the largest finite
number must come out as an infinity of its sign.  A few functions have a documented bound of
their own, where the exact derivative is itself the small difference of two larger terms
(near the zero of mish', of a soft target's p - t), or where x**y rounds y - 1.

The references are sympy.diff's derivatives of the same SymPy expressions (the smooth
maximum's and the losses' are closed forms), evaluated by mpmath with enough digits (``DPS``)
that the cancellations inside those formulas leave 50 correct digits; each reference is
checked once against a second evaluation with more digits and against mpmath.diff at 50
digits.  Both the compiled kernel and the reference interpreter (symgrad.reference.evaluate,
numpy's exp and log) are checked, so a loss of accuracy in the rules shows in both.
"""

import functools
from fractions import Fraction
from typing import Callable, NamedTuple

import mpmath
import numpy as np
import pytest
import sympy

import symgrad as sg
from symgrad import functions, ir, losses
from symgrad.autodiff.reverse import vjp
from symgrad.frontend.sympy_functions import expm1, log1p, sigmoid, softplus
from symgrad.reference.evaluate import evaluate

ULP = 8
# Digits for the references: 50 plus what a formula can lose to cancellation at |x| = 745
# (e^-745 = 5e-324, 324 digits below 1).
DPS = 450

x = sg.symbols("x")

P64 = [-745.0, -700.0, -500.0, -100.0, -40.0, -30.0, -20.0, -10.0, -5.0, -2.5, -1.0, -0.5,
       -1e-8, 0.0, 1e-8, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 40.0, 100.0, 500.0, 700.0]
P32 = [-104.0, -100.0, -88.0, -87.0, -40.0, -30.0, -20.0, -17.0, -10.0, -5.0, -1.0, -0.5,
       -1e-4, 0.0, 1e-4, 0.5, 1.0, 5.0, 10.0, 17.0, 20.0, 30.0, 40.0, 87.0, 88.0]
POINTS = {"float64": P64, "float32": P32}
POSITIVE = {"float64": [5e-324, 1e-300, 1e-30, 1e-8, 0.5, 1.0, 2.0, 10.0, 1e8, 1e30, 1e300,
                        1.7e308],
            "float32": [1e-45, 1e-38, 1e-30, 1e-4, 0.5, 1.0, 2.0, 10.0, 1e8, 1e30, 3e38]}
DTYPES = ["float64", "float32"]


# ---------------------------------------------------------------------------------------------
# Errors in ulp
# ---------------------------------------------------------------------------------------------

def ulp_errors(got, exact, dtype, scale=None):
    """Error of each ``got`` (floats) against ``exact`` (mpf), in ulp of ``scale`` (default:
    the exact value) rounded to ``dtype``; 0 where the exact value is below the smallest normal
    number and ``got`` is within that of it, inf where an overflow or NaN does not match."""
    info = np.finfo(dtype)
    scale = exact if scale is None else scale
    errors = []
    for value, want, size in zip(np.ravel(got), exact, scale):
        value = float(value)
        if abs(want) > info.max:
            errors.append(0.0 if value == (np.inf if want > 0 else -np.inf) else np.inf)
            continue
        if not np.isfinite(value):
            errors.append(np.inf)
            continue
        difference = abs(mpmath.mpf(value) - want)
        if abs(size) < info.tiny:
            errors.append(0.0 if difference <= info.tiny else np.inf)
            continue
        spacing = float(np.spacing(np.abs(np.array(float(size), dtype))))
        errors.append(float(difference / spacing))
    return np.array(errors)


def assert_ulp(got, exact, dtype, what, points, bound=ULP, scale=None):
    errors = ulp_errors(got, exact, dtype, scale)
    bad = errors > bound
    assert not bad.any(), (
        f"{what} ({dtype}): more than {bound} ulp at x = "
        f"{[p for p, b in zip(points, bad) if b]}: errors "
        f"{[round(float(e), 1) for e in errors[bad]]}, got "
        f"{[float(g) for g, b in zip(np.ravel(got), bad) if b]}, want "
        f"{[mpmath.nstr(e, 17) for e, b in zip(exact, bad) if b]}")


# ---------------------------------------------------------------------------------------------
# References: sympy.diff, evaluated by mpmath
# ---------------------------------------------------------------------------------------------

MPMATH_NAMES = {"sigmoid": lambda u: 1 / (1 + mpmath.exp(-u)),
                "softplus": lambda u: mpmath.log1p(mpmath.exp(u)),
                "expm1": mpmath.expm1, "log1p": mpmath.log1p}


def _lambdify(symbols, expr):
    # The Dirac delta of the Heaviside step's derivative is not represented (convention: 0).
    expr = sympy.sympify(expr).replace(sympy.DiracDelta, lambda *args: sympy.S.Zero)
    return sympy.lambdify(symbols, expr, modules=[MPMATH_NAMES, "mpmath"])


def reference(expr, symbols, arguments, dps=DPS):
    """``expr`` and its sympy.diff partials in ``symbols`` at each row of ``arguments``
    (floats), as lists of mpf: [values, d/d symbols[0], ...]."""
    functions_ = [_lambdify(symbols, expr)] + [_lambdify(symbols, sympy.diff(expr, s))
                                               for s in symbols]
    with mpmath.workdps(dps):
        columns = [[+f(*[mpmath.mpf(float(a)) for a in row]) for row in arguments]
                   for f in functions_]
    return columns


def _rows(points, params):
    return [[p, *params] for p in points]


# ---------------------------------------------------------------------------------------------
# 1. Activations: every name in symgrad.functions
# ---------------------------------------------------------------------------------------------

class Spec(NamedTuple):
    build: Callable            # build(x, **parameter symbols) -> SymPy expression
    params: tuple = ({},)      # parameter values to test, each a dict name -> value
    kinked: bool = False       # x = 0 is a kink (its convention is tested in test_functions)
    # 'value' or 'd/dx', ... -> scale(x, *params), the size of the largest term (mpf)
    scales: dict = None


def _mish_scale(u):
    # mish'(x) = tanh(softplus(x)) + x sigma(x) sech^2(softplus(x)) vanishes at x = -1.19:
    # near it the error is a few ulp of the first term, not of their difference.
    return mpmath.tanh(mpmath.log1p(mpmath.exp(u)))


def _gelu_scale(order):
    # x/2 erfc(-x/sqrt 2): the rounding of -x/sqrt(2) (half an ulp, which no rule can undo)
    # moves erfc by x**2 half-ulps on the left tail: the error is a few ulp of the value (or
    # of the derivative's larger term) times 1 + x**2.
    def scale(u):
        phi = mpmath.exp(-u * u / 2) / mpmath.sqrt(2 * mpmath.pi)
        cdf = mpmath.erfc(-u / mpmath.sqrt(2)) / 2
        size = abs(u * cdf) if order == 0 else max(abs(cdf), abs(u * phi))
        return size * (1 + u * u)
    return scale


def _switch_scales(parts, names):
    """The largest term of ACON's S = low + g sigma(s), s = beta g (= high - g sigma(-s)),
    and of each partial, in the form where the sigmoid is at most 1/2: the value and the
    partials vanish where those terms cancel (S'(x) = 0 at the minimum of ACON-C with p1 < 0
    < p2; d/da of ACON-B holds 1 - s sigma(s), 0 at s = 1.28), and there the error is a few ulp
    of the terms.  ``parts(x, *params)`` gives (high, low, gap, beta)."""
    def term_sizes(position, u, *params):
        args = [u, *params]
        high, low, gap, beta = parts(*args)
        switch = beta * gap
        small = 1 / (1 + mpmath.exp(abs(switch)))          # sigma(-|s|)
        big = 1 - small
        if position is None:
            return max(abs(low if switch < 0 else high), abs(gap) * small)

        def partial(k):
            return mpmath.diff(lambda *a: parts(*a)[k], args,
                               [int(i == position) for i in range(len(args))])
        d_high, d_low, d_gap, d_beta = (partial(k) for k in range(4))
        side = d_low if switch < 0 else d_high
        return max(abs(side), abs(d_gap) * small, abs(d_gap) * small * abs(switch) * big,
                   abs(d_beta) * gap ** 2 * small * big)
    scales = {"value": lambda *a: term_sizes(None, *a)}
    for position, name in enumerate(names):
        scales[f"d/d{name}"] = functools.partial(term_sizes, position)
    return scales


ACTIVATIONS = {
    "sigmoid": Spec(lambda u: sg.sigmoid(u)),
    "tanh": Spec(lambda u: sg.tanh(u)),
    "step": Spec(lambda u: sg.step(u), kinked=True),
    "relu": Spec(lambda u: sg.relu(u), kinked=True),
    "leaky_relu": Spec(lambda u, a: sg.leaky_relu(u, a), ({"a": 0.01}, {"a": 0.2}),
                       kinked=True),
    "prelu": Spec(lambda u, a: sg.prelu(u, a), ({"a": 0.3},), kinked=True),
    "elu": Spec(lambda u, alpha: sg.elu(u, alpha), ({"alpha": 1.0}, {"alpha": 1.7}),
                kinked=True),
    "softplus": Spec(lambda u: sg.softplus(u)),
    "swish": Spec(lambda u, beta: sg.swish(u, beta), ({"beta": 1.0}, {"beta": 1.5})),
    "mish": Spec(lambda u: sg.mish(u), scales={"d/dx": _mish_scale}),
    "gelu": Spec(lambda u: sg.gelu(u), scales={"value": _gelu_scale(0), "d/dx": _gelu_scale(1)}),
    "acon_a": Spec(lambda u, beta: sg.acon_a(u, beta), ({"beta": 1.0}, {"beta": 0.75})),
    "acon_b": Spec(lambda u, a, beta: sg.acon_b(u, a, beta),
                   ({"a": 0.25, "beta": 1.0}, {"a": 0.875, "beta": 2.0}),
                   scales=_switch_scales(lambda u, a, beta: (u, a * u, (1 - a) * u, beta),
                                         ["x", "a", "beta"])),
    # p1 close to p2: the switch's gap (p1 - p2) x is small against p1 x.
    "acon_c": Spec(lambda u, p1, p2, beta: sg.acon_c(u, p1, p2, beta),
                   ({"p1": 1.0, "p2": 0.25, "beta": 1.0},
                    {"p1": 1.0, "p2": 0.984375, "beta": 1.0},
                    {"p1": -0.5, "p2": 2.0, "beta": 0.5}),
                   scales=_switch_scales(
                       lambda u, p1, p2, beta: (p1 * u, p2 * u, (p1 - p2) * u, beta),
                       ["x", "p1", "p2", "beta"])),
}
# Parameters are dyadic (0.75, not 0.8), so that products such as beta x are exact at the
# points: a rounded product t would move e^t by |t| half-ulps (240 ulp at beta x = -596), an
# error of the argument that no rule can undo.
# smooth_max takes several values: section 4.
MULTIVARIATE = {"smooth_max"}


def test_every_activation_is_covered():
    names = set(functions.__all__) - {"activation"}
    assert names == set(ACTIVATIONS) | MULTIVARIATE, (
        "give each activation of symgrad.functions a spec here: "
        f"{sorted(names - set(ACTIVATIONS) - MULTIVARIATE)}")


def _cases():
    for name, spec in ACTIVATIONS.items():
        for index in range(len(spec.params)):
            for dtype in DTYPES:
                yield pytest.param(name, index, dtype, id=f"{name}-{index}-{dtype}")


@functools.lru_cache(maxsize=None)
def _activation_kernel(name):
    spec = ACTIVATIONS[name]
    symbols = [sg.symbols(p) for p in spec.params[0]]
    expr = spec.build(x, **{s.name: s for s in symbols})
    return expr, [x, *symbols], sg.compile(expr, wrt=[x, *symbols])


def _check_function(expr, symbols, kernel, points, params, dtype, what, scales=None,
                    bounds=None):
    """Kernel and reference interpreter against sympy.diff + mpmath at ``points``."""
    numpy_dtype = np.dtype(dtype)
    xs = np.array(points, numpy_dtype)
    rounded = [float(numpy_dtype.type(v)) for v in params]
    rows = _rows(xs.astype(np.float64), rounded)
    exact = reference(expr, symbols, rows)
    with np.errstate(all="ignore"):
        value, grads = kernel(xs, *[numpy_dtype.type(v) for v in rounded])
        interpreted = evaluate(kernel.function.with_dtype(dtype), xs,
                               *[numpy_dtype.type(v) for v in rounded])
    names = ["value"] + [f"d/d{s}" for s in symbols]
    for position, (got, by_interpreter, want) in enumerate(
            zip([value, *grads], interpreted, exact)):
        name = names[position]
        scale = None
        if scales and name in scales:
            with mpmath.workdps(DPS):
                scale = [max(abs(w), abs(scales[name](mpmath.mpf(float(p)), *rounded)))
                         for w, p in zip(want, xs)]
        bound = (bounds or {}).get(name, ULP)
        assert got.dtype == numpy_dtype
        assert_ulp(got, want, dtype, f"{what} {name} (kernel)", xs.tolist(), bound, scale)
        assert_ulp(by_interpreter, want, dtype, f"{what} {name} (reference interpreter)",
                   xs.tolist(), bound, scale)


@pytest.mark.parametrize("name, index, dtype", list(_cases()))
def test_activation_values_and_derivatives_in_the_tails(name, index, dtype):
    spec = ACTIVATIONS[name]
    expr, symbols, kernel = _activation_kernel(name)
    points = [p for p in POINTS[dtype] if not (spec.kinked and p == 0.0)]
    _check_function(expr, symbols, kernel, points, list(spec.params[index].values()), dtype,
                    f"{name}{spec.params[index] or ''}", spec.scales)


# Where the old rules failed, and what the exact values are (float64): the saturated slopes.
SATURATED = [
    (lambda u: sg.sigmoid(u), 40.0, 4.248354255291589e-18),
    (lambda u: sg.tanh(u), 20.0, 1.6993417021166355e-17),
    (lambda u: sg.elu(u), -40.0, 4.248354255291589e-18),
    (lambda u: sg.swish(u, 1.0), 40.0, 1.0000000000000002),
]


@pytest.mark.parametrize("build, point, exact", SATURATED)
def test_saturated_slopes_are_not_rounded_to_the_constant(build, point, exact):
    _, (slope,) = sg.compile(build(x), wrt=[x])(point)
    assert slope == pytest.approx(exact, rel=8 * np.finfo(float).eps)


def test_sigmoid_slope_is_symmetric_bit_for_bit():
    # sigma(x) sigma(-x): the same two factors at x and -x.
    kernel = sg.compile(sg.sigmoid(x), wrt=[x])
    xs = np.array([p for p in P64 if p > 0])
    _, (right,) = kernel(xs)
    _, (left,) = kernel(-xs)
    np.testing.assert_array_equal(right, left)


# ---------------------------------------------------------------------------------------------
# 2. Unary ops, as the frontend translates SymPy
# ---------------------------------------------------------------------------------------------

def _power_bound(exponent):
    """x**y's slope y x**(y-1) with y - 1 rounded to the dtype: the rounding d of y - 1 moves
    x**(y-1) by the factor x**d, |log x| |d| relative, or |log x| |d| / (eps / 2) ulp at most,
    which the bound allows on top of ``ULP``."""
    def bound(u, dtype):
        y = np.array(exponent, dtype)
        rounded = Fraction(float(np.array(y - np.array(1.0, dtype), dtype)))
        d = abs(rounded - (Fraction(float(y)) - 1))
        eps = float(np.finfo(dtype).eps)
        return ULP + float(abs(mpmath.log(u))) * float(d) / (eps / 2)
    return bound


def _power(exponent):
    # x**y for the y the kernel computes with: the exponent rounded to its dtype.
    return lambda dtype: x**sympy.Rational(float(np.array(exponent, dtype)))


class Unary(NamedTuple):
    expr: object               # a SymPy expression, or dtype -> SymPy expression
    domain: str = "all"        # 'all', 'positive', 'above -1', 'moderate'
    power: float = None        # the exponent, for the documented bound of x**y

    def at(self, dtype):
        return self.expr(dtype) if callable(self.expr) else self.expr


UNARIES = {
    "exp": Unary(sympy.exp(x)),
    "expm1": Unary(expm1(x)),
    "log": Unary(sympy.log(x), "positive"),
    "log1p": Unary(log1p(x), "above -1"),
    "sqrt": Unary(sympy.sqrt(x), "positive"),
    "1/sqrt": Unary(1 / sympy.sqrt(x), "positive"),
    "1/x": Unary(1 / x, "positive"),
    "sigmoid": Unary(sigmoid(x)),
    "1/(1+exp(-x))": Unary(1 / (1 + sympy.exp(-x))),
    "softplus": Unary(softplus(x)),
    "log(1+exp(x))": Unary(sympy.log(1 + sympy.exp(x))),
    "log1p(exp(x))": Unary(log1p(sympy.exp(x))),
    "log(sigmoid(x))": Unary(sympy.log(sigmoid(x))),
    "log(1-sigmoid(x))": Unary(sympy.log(1 - sigmoid(x))),
    "tanh": Unary(sympy.tanh(x)),
    "tanh(softplus(x))": Unary(sympy.tanh(softplus(x))),
    "sin": Unary(sympy.sin(x), "moderate"),
    "cos": Unary(sympy.cos(x), "moderate"),
    "abs": Unary(sympy.Abs(x)),
    "x**3": Unary(x**3),
    "x**2.5": Unary(x**sympy.Rational(5, 2), "positive"),
    "x**(1/3)": Unary(_power(1 / 3), "positive", 1 / 3),
    "x**-0.3": Unary(_power(-0.3), "positive", -0.3),
}


def _unary_points(domain, dtype):
    if domain == "positive":
        return POSITIVE[dtype]
    if domain == "above -1":
        near = [-0.999999, -0.75] if dtype == "float64" else [-0.999, -0.75]
        return near + [p for p in POINTS[dtype] if p > -1]
    if domain == "moderate":          # sin, cos: where their slopes are away from zeros
        return [p for p in POINTS[dtype] if abs(p) <= 100]
    return POINTS[dtype]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", UNARIES)
def test_unary_values_and_derivatives_in_the_tails(name, dtype):
    unary = UNARIES[name]
    expr = unary.at(dtype)
    kernel = sg.compile(expr, wrt=[x])
    points = [p for p in _unary_points(unary.domain, dtype)
              if not (name == "abs" and p == 0.0)]
    bounds = None
    if unary.power is not None:
        # Not where x**(y - 1) overflows though y x**(y - 1) does not (x = 1e-30, y = -0.3
        # in float32): the slope is computed in that order.
        largest = float(np.finfo(dtype).max)
        points = [p for p in points
                  if abs(mpmath.mpf(p) ** (mpmath.mpf(unary.power) - 1)) < largest]
        bound = _power_bound(unary.power)
        bounds = {"d/dx": max(bound(mpmath.mpf(float(np.array(p, dtype))), dtype)
                              for p in points)}
    _check_function(expr, [x], kernel, points, [], dtype, name, bounds=bounds)


def test_power_bound_is_the_rounding_of_the_exponent():
    # The documented bound of x**(1/3) is needed (y - 1 is not a double) and tight: the slope
    # at 1e300 is off by about |log x| |d| / eps = 690 * 5.6e-17 / 2.2e-16 = 174 ulp.
    expr = _power(1 / 3)("float64")
    kernel = sg.compile(expr, wrt=[x])
    _, (slope,) = kernel(np.array([1e300, 1e-300]))
    exact = reference(expr, [x], [[1e300], [1e-300]])[1]
    errors = ulp_errors(slope, exact, "float64")
    bounds = [_power_bound(1 / 3)(mpmath.mpf(p), "float64") for p in (1e300, 1e-300)]
    assert np.all(errors <= bounds)
    assert np.all(errors > ULP)


# ---------------------------------------------------------------------------------------------
# 3. The references themselves
# ---------------------------------------------------------------------------------------------

def _all_references():
    for name, spec in ACTIVATIONS.items():
        expr, symbols, _ = _activation_kernel(name)
        yield name, expr, symbols, list(spec.params[0].values())
    for name, unary in UNARIES.items():
        yield name, unary.at("float64"), [x], []


@pytest.mark.parametrize("name, expr, symbols, params",
                         [pytest.param(*case, id=case[0]) for case in _all_references()])
def test_references_are_exact_and_agree_with_mpmath_diff(name, expr, symbols, params):
    points = [p for p in P64 if p > 0] if name in UNARIES and UNARIES[name].domain != "all" \
        else P64
    if name in UNARIES and UNARIES[name].domain == "moderate":
        points = [p for p in points if abs(p) <= 100]
    points = [p for p in points if p != 0.0]
    rows = _rows(points, params)
    at_dps, wider = reference(expr, symbols, rows), reference(expr, symbols, rows, DPS + 150)
    with mpmath.workdps(60):
        for column, other in zip(at_dps, wider):
            for got, want in zip(column, other):
                assert mpmath.almosteq(got, want, rel_eps=mpmath.mpf(10) ** -50,
                                       abs_eps=mpmath.mpf(10) ** -340), (name, got, want)
    # sympy.diff's partials against mpmath.diff of the value, away from the kinks
    moderate = [p for p in (-3.1, -0.7, 0.45, 1.9, 6.2)
                if not (name in UNARIES and UNARIES[name].domain != "all" and p <= 0)]
    value = _lambdify(symbols, expr)
    context = mpmath.MPContext()
    context.dps = 50
    for point in moderate:
        args = [mpmath.mpf(point)] + [mpmath.mpf(v) for v in params]
        partials = reference(expr, symbols, [args], 50)[1:]
        for position, partial in enumerate(partials):
            orders = [int(i == position) for i in range(len(args))]
            with mpmath.workdps(50):
                numeric = mpmath.diff(value, args, orders)
                assert mpmath.almosteq(partial[0], numeric, rel_eps=mpmath.mpf(10) ** -30,
                                       abs_eps=mpmath.mpf(10) ** -30), (name, point, position)


# ---------------------------------------------------------------------------------------------
# 4. The smooth maximum (scalar and tensor forms)
# ---------------------------------------------------------------------------------------------

def mp_smooth_max(row, beta):
    """S and its partials: dS/dx_j = w_j (1 + beta (x_j - S)), dS/dbeta = sum_j w_j x_j
    (x_j - S)."""
    with mpmath.workdps(DPS):
        beta = mpmath.mpf(beta)
        values = [mpmath.mpf(float(v)) for v in row]
        top = max(beta * v for v in values)
        raw = [mpmath.exp(beta * v - top) for v in values]
        weights = [r / sum(raw) for r in raw]
        s = sum(v * w for v, w in zip(values, weights))
        return (+s, [+(w * (1 + beta * (v - s))) for v, w in zip(values, weights)],
                +sum(w * v * (v - s) for v, w in zip(values, weights)))


def _smooth_max_rows(dtype):
    rows = []
    for z in POINTS[dtype]:
        rows += [[z, 0.0, -z], [z, z - 1, 0.0], [z, z, 0.0], [z, z / 2, z / 4]]
    return np.array(rows, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("beta", [1.0, 2.0, -1.0])
def test_smooth_max_in_the_tails(beta, dtype):
    rows = _smooth_max_rows(dtype)
    values = sg.symbols("x1 x2 x3")
    b = sg.symbols("beta")
    scalar = sg.compile(sg.smooth_max(values, beta=b), wrt=[*values, b])
    X = sg.tensor("X", ("n", 3), dtype)
    B = sg.tensor("beta", (), dtype)
    tensor = sg.compile(sg.smooth_max(X, beta=B).sum(), wrt=[X, B])
    for row in rows:
        s, partials, d_beta = mp_smooth_max(row, beta)
        value, grads = scalar(*row, np.array(beta, dtype))
        tensor_value, (dx, dbeta) = tensor([row[None], beta])
        # S is the weighted mean of the row: where it is near 0 while the values are not
        # (x = [1e-8, 0, -1e-8]), a few ulp of the largest value.
        scale = [max(abs(s), max(abs(mpmath.mpf(float(v))) for v in row))]
        for got in (value, tensor_value):
            assert_ulp([got], [s], dtype, f"smooth max at {row}", [row], scale=scale)
        # d/dx_j = w_j (1 + beta (x_j - S)): near a zero of the second factor (x_3 of
        # [1, 0.5, 0.25] for beta = 2) a few ulp of w_j.
        with mpmath.workdps(DPS):
            weights = [abs(p / (1 + mpmath.mpf(beta) * (mpmath.mpf(float(v)) - s)))
                       if p != 0 else 0 for p, v in zip(partials, row)]
        scales = [max(abs(p), w) for p, w in zip(partials, weights)]
        for got in (grads[:3], dx[0]):
            assert_ulp(got, partials, dtype, f"d smooth max/dx at {row}", list(row),
                       scale=scales)
        for got in (grads[3], dbeta):
            assert_ulp([got], [d_beta], dtype, f"d smooth max/dbeta at {row}", [row])


# ---------------------------------------------------------------------------------------------
# 5. Losses, log-sum-exp and softmax
# ---------------------------------------------------------------------------------------------

def _mp(value):
    return mpmath.mpf(float(value))


def _loss_kernel(loss_function, shape, dtype, **kwargs):
    Y = sg.tensor("Y", shape, dtype)
    T = sg.tensor("T", shape, dtype)
    return sg.compile(loss_function(Y, T, reduction="sum", **kwargs), wrt=[Y], inputs=[T])


def _run_loss(kernel, y, t):
    """The kernel's and the reference interpreter's (loss, gradient)."""
    value, (gradient,) = kernel([y], T=t)
    function = kernel.function.with_dtype(str(y.dtype))
    interpreted = evaluate(function, Y=y, T=t)
    return [(value, gradient), (interpreted[0], interpreted[1])]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("target", [0.0, 1.0, 0.25])
def test_bce_with_logits_in_the_tails(target, dtype):
    kernel = _loss_kernel(losses.binary_cross_entropy_with_logits, ("n",), dtype)
    z = np.array(POINTS[dtype], dtype)
    t = np.full_like(z, target)
    with mpmath.workdps(DPS):
        tt = _mp(target)
        sp = [mpmath.log1p(mpmath.exp(_mp(v))) for v in z]
        spn = [mpmath.log1p(mpmath.exp(-_mp(v))) for v in z]
        per_element = [(1 - tt) * a + tt * b for a, b in zip(sp, spn)]
        slopes = [1 / (1 + mpmath.exp(-_mp(v))) - tt for v in z]
        total = +sum(per_element)
        # sigma(z) - t vanishes near z = log(t / (1 - t)) for a soft target: a few ulp of t.
        scale = [max(abs(s), tt) for s in slopes]
    for value, gradient in _run_loss(kernel, z, t):
        assert_ulp([value], [total], dtype, "BCE from logits", ["sum"])
        assert_ulp(gradient, slopes, dtype, f"d BCE/dz, t = {target}", z.tolist(), scale=scale)
    single = _loss_kernel(losses.binary_cross_entropy_with_logits, ("n",), dtype)
    for v, want in zip(z, per_element):
        value, _ = single([np.array([v], dtype)], T=np.array([target], dtype))
        assert_ulp([value], [want], dtype, f"BCE from logits at z = {v}, t = {target}", [v])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("target", [0.0, 1.0, 0.3])
def test_bce_from_probabilities_in_the_tails(target, dtype):
    kernel = _loss_kernel(losses.binary_cross_entropy, ("n",), dtype)
    # Probabilities whose logarithms are above the clamp at -100.
    tiny = [1e-40, 1e-20] if dtype == "float64" else [1e-30, 1e-20]
    p = np.array(tiny + [1e-8, 0.25, 0.5, 0.75, 1 - 1e-8, float(1 - np.finfo(dtype).eps)],
                 dtype)
    p = p[p < 1]
    t = np.full_like(p, target)
    with mpmath.workdps(DPS):
        tt = _mp(target)
        per_element = [-(tt * mpmath.log(_mp(q)) + (1 - tt) * mpmath.log1p(-_mp(q)))
                       for q in p]
        slopes = [-tt / _mp(q) + (1 - tt) / (1 - _mp(q)) for q in p]
        scale = [max(abs(s), tt / _mp(q)) for s, q in zip(slopes, p)]
    for value, gradient in _run_loss(kernel, p, t):
        assert_ulp([value], [+sum(per_element)], dtype, "BCE", ["sum"],
                   scale=[sum(abs(v) for v in per_element)])
        assert_ulp(gradient, slopes, dtype, f"d BCE/dp, t = {target}", p.tolist(), scale=scale)


@pytest.mark.parametrize("dtype", DTYPES)
def test_mean_squared_error_in_the_tails(dtype):
    kernel = _loss_kernel(losses.mean_squared_error, ("n",), dtype)
    y = np.array(POINTS[dtype], dtype)
    t = np.full_like(y, 0.5)
    with mpmath.workdps(DPS):
        squares = [(_mp(v) - _mp(0.5)) ** 2 for v in y]
        slopes = [2 * (_mp(v) - _mp(0.5)) for v in y]
    for value, gradient in _run_loss(kernel, y, t):
        assert_ulp([value], [+sum(squares)], dtype, "MSE", ["sum"])
        assert_ulp(gradient, slopes, dtype, "d MSE/dy", y.tolist())


def _softmax_rows(dtype):
    rows = []
    for z in POINTS[dtype]:
        rows += [[z, 0.0, 0.0], [0.0, z, 0.0], [z, z / 2, 0.0], [z, z, 0.0], [z, -z, 1.0]]
    return np.array(rows, dtype)


def mp_softmax(row):
    with mpmath.workdps(DPS):
        values = [_mp(v) for v in row]
        top = max(values)
        total = sum(mpmath.exp(v - top) for v in values)
        lse = top + mpmath.log(total)
        return lse, [mpmath.exp(v - lse) for v in values]


TARGETS = {"one-hot 0": [1.0, 0.0, 0.0], "one-hot 1": [0.0, 1.0, 0.0],
           "one-hot 2": [0.0, 0.0, 1.0], "soft": [0.7, 0.3, 0.0],
           "soft, sum 2": [0.5, 0.5, 1.0]}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("target", TARGETS)
def test_softmax_cross_entropy_in_the_tails(target, dtype):
    kernel = _loss_kernel(losses.softmax_cross_entropy, ("n", 3), dtype)
    t = np.array([TARGETS[target]], dtype)
    for row in _softmax_rows(dtype):
        lse, p = mp_softmax(row)
        with mpmath.workdps(DPS):
            weights = [_mp(v) for v in t[0]]
            value = +sum(w * (lse - _mp(v)) for w, v in zip(weights, row))
            slopes = [sum(weights) * q - w for q, w in zip(p, weights)]
            # A soft target's p - t vanishes where p = t / sum(t): a few ulp of the larger.
            scale = [max(abs(s), sum(weights) * q, w) if target.startswith("soft") else abs(s)
                     for s, q, w in zip(slopes, p, weights)]
        for got_value, gradient in _run_loss(kernel, row[None], t):
            assert_ulp([got_value], [value], dtype, f"softmax CE at {row}, {target}", [row])
            assert_ulp(gradient[0], slopes, dtype, f"d softmax CE/dz at {row}, {target}",
                       row.tolist(), scale=scale)


@functools.lru_cache(maxsize=None)
def _softmax_kernels(dtype):
    Z = sg.tensor("Z", ("n", 3), dtype)
    C = sg.tensor("C", ("n", 3), dtype)     # a cotangent: one-hot rows pick Jacobian rows
    return {
        "logsumexp": sg.compile(sg.logsumexp(Z, axis=1).sum(), wrt=[Z]),
        "softmax": sg.compile((sg.softmax(Z, axis=1) * C).sum(), wrt=[Z], inputs=[C]),
        "log_softmax": sg.compile((sg.log_softmax(Z, axis=1) * C).sum(), wrt=[Z], inputs=[C]),
        "forward": sg.compile_function([sg.softmax(Z, axis=1), sg.log_softmax(Z, axis=1),
                                        sg.logsumexp(Z, axis=1)], [Z]),
    }


@pytest.mark.parametrize("dtype", DTYPES)
def test_logsumexp_softmax_and_log_softmax_in_the_tails(dtype):
    kernels = _softmax_kernels(dtype)
    for row in _softmax_rows(dtype):
        lse, p = mp_softmax(row)
        z = row[None]
        softmax, log_softmax, total = kernels["forward"](z)
        with mpmath.workdps(DPS):
            logs = [_mp(v) - lse for v in row]
        assert_ulp(total, [lse], dtype, f"logsumexp at {row}", [row])
        assert_ulp(softmax[0], p, dtype, f"softmax at {row}", row.tolist())
        assert_ulp(log_softmax[0], logs, dtype, f"log_softmax at {row}", row.tolist())
        value, (gradient,) = kernels["logsumexp"]([z])
        assert_ulp([value], [lse], dtype, f"logsumexp kernel at {row}", [row])
        assert_ulp(gradient[0], p, dtype, f"d logsumexp at {row}", row.tolist())
        for i in range(3):
            c = np.zeros_like(z)
            c[0, i] = 1
            with mpmath.workdps(DPS):
                # d softmax_i / dz_j = p_i (delta_ij - p_j), d log_softmax_i / dz_j = delta_ij
                # - p_j, the first written as the products of p_i and the other p_k for j = i.
                rest = sum(q for k, q in enumerate(p) if k != i)
                jacobian_row = [p[i] * rest if j == i else -p[i] * p[j] for j in range(3)]
                log_row = [rest if j == i else -p[j] for j in range(3)]
            _, (d_softmax,) = kernels["softmax"]([z], C=c)
            _, (d_log_softmax,) = kernels["log_softmax"]([z], C=c)
            assert_ulp(d_softmax[0], jacobian_row, dtype, f"d softmax_{i} at {row}",
                       row.tolist())
            assert_ulp(d_log_softmax[0], log_row, dtype, f"d log_softmax_{i} at {row}",
                       row.tolist())


# ---------------------------------------------------------------------------------------------
# 6. Second derivatives: the new slopes differentiate again
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["sigmoid", "tanh", "softplus", "mish", "expm1", "elu"])
def test_second_derivatives_in_the_tails(name):
    expr = {"sigmoid": sigmoid(x), "tanh": sympy.tanh(x), "softplus": softplus(x),
            "mish": sg.mish(x), "expm1": expm1(x), "elu": sg.elu(x)}[name]
    function = sg.trace(expr, wrt=[x])
    (slope,) = vjp(function.outputs[0], list(function.inputs))
    (curvature,) = vjp(slope, list(function.inputs))
    second = ir.Function(function.inputs, [curvature], ["d2f"])
    points = [p for p in P64 if p != 0.0 and abs(p) <= 700]
    with mpmath.workdps(DPS):
        exact = [+_lambdify([x], sympy.diff(expr, x, 2))(_mp(p)) for p in points]
        # The second derivative is reverse mode over the first one's graph, a sum of terms
        # the size of the slope: where it is far smaller (near its zeros: sigmoid'' at 0,
        # mish'' at -2.5), a few ulp of the slope.  On the tails the two are alike.
        slope = _lambdify([x], sympy.diff(expr, x))
        scale = [max(abs(e), abs(slope(_mp(p)))) for e, p in zip(exact, points)]
    (got,) = evaluate(second, np.array(points))
    assert_ulp(got, exact, "float64", f"{name}'' (reference interpreter)", points,
               scale=scale)
    from symgrad.codegen import Kernel
    (compiled,) = Kernel(second, value_and_grad=False)(np.array(points))
    assert_ulp(compiled, exact, "float64", f"{name}'' (kernel)", points, scale=scale)


def test_cross_entropy_hessian_at_a_tie_and_where_one_class_dominates():
    # The dominant-element form is the same smooth function: its second derivatives are the
    # softmax's p_i (delta_ij - p_j) everywhere, ties included.
    Z = ir.input_node("Z", shape=(1, 3))
    T = ir.input_node("T", shape=(1, 3))
    V = ir.input_node("V", shape=(1, 3))
    loss = losses.softmax_cross_entropy(sg.Tensor(Z), sg.Tensor(T), reduction="sum").node
    (gradient,) = vjp(loss, [Z])
    # The Hessian times V: the gradient of (gradient . V).
    (hessian_v,) = vjp(ir.reduce_sum(ir.mul(gradient, V)), [Z])
    function = ir.Function([Z, T, V], [hessian_v], ["hv"])
    rows = {"tie": [2.0, 2.0, -1.0], "dominant": [30.0, 0.0, -5.0], "spread": [0.5, 0.2, 0.1]}
    for label, row in rows.items():
        _, p = mp_softmax(np.array(row))
        for target in ([1.0, 0.0, 0.0], [0.0, 1.0, 0.0]):
            for j in range(3):
                direction = np.zeros((1, 3))
                direction[0, j] = 1
                (got,) = evaluate(function, Z=np.array([row]), T=np.array([target]),
                                  V=direction)
                with mpmath.workdps(DPS):
                    rest = sum(q for k, q in enumerate(p) if k != j)
                    want = [p[j] * rest if i == j else -p[i] * p[j] for i in range(3)]
                assert_ulp(got[0], want, "float64",
                           f"CE Hessian row {j} at the {label} {row}, target {target}", row)
