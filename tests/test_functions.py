"""Activations (symgrad.functions): values and derivatives of the compiled kernels against
mpmath at 50 digits on a grid reaching |x| = 1000, the tensor forms (float64 and float32),
finite differences (learnable parameters included), the conventions at kinks, agreement with
sympy.diff, user-defined activations, the smooth maximum and ACON-C's limits."""

import functools
from typing import Callable, NamedTuple

import mpmath
import numpy as np
import pytest
import sympy

import symgrad as sg

# A private mpmath context, so that other test modules keep mpmath's global precision.
MP = mpmath.MPContext()
MP.dps = 50

x = sg.symbols("x")

GRID = np.array([-1000.0, -700.0, -50.0, -3.0, -0.5, 0.1, 2.0, 30.0, 700.0, 1000.0])
SMOOTH_GRID = np.sort(np.append(GRID, 0.0))
AWAY_FROM_KINKS = np.array([-3.1, -1.3, -0.45, 0.35, 1.1, 2.7])

F64_EPS = np.finfo(np.float64).eps
F32_EPS = float(np.finfo(np.float32).eps)


# ---------------------------------------------------------------------------------------------
# Independent mpmath references: values and closed-form partial derivatives.
# ---------------------------------------------------------------------------------------------

def mp_sigmoid(u):
    return 1 / (1 + MP.exp(-u))


def mp_dsigmoid(u):
    """sigma'(u) = sigma(u) sigma(-u), exact on both tails."""
    return mp_sigmoid(u) * mp_sigmoid(-u)


def mp_softplus(u):
    return MP.log1p(MP.exp(u))


def ref_sigmoid(u):
    return mp_sigmoid(u), {"x": mp_dsigmoid(u)}


def ref_tanh(u):
    return MP.tanh(u), {"x": MP.sech(u) ** 2}


def ref_step(u):
    return (MP.mpf(1) if u > 0 else MP.mpf(0) if u < 0 else MP.mpf(0.5)), {"x": MP.mpf(0)}


def ref_relu(u):
    return (u if u > 0 else MP.mpf(0)), {"x": MP.mpf(1 if u > 0 else 0)}


def ref_leaky(u, a=0.01):
    a = MP.mpf(a)
    return (u if u > 0 else a * u), {"x": MP.mpf(1) if u > 0 else a,
                                     "a": MP.mpf(0) if u > 0 else u}


def ref_elu(u, alpha=1.0):
    alpha = MP.mpf(alpha)
    if u > 0:
        return u, {"x": MP.mpf(1), "alpha": MP.mpf(0)}
    return alpha * MP.expm1(u), {"x": alpha * MP.exp(u), "alpha": MP.expm1(u)}


def ref_softplus(u):
    return mp_softplus(u), {"x": mp_sigmoid(u)}


def ref_swish(u, beta=1):
    beta = MP.mpf(beta)
    v = beta * u
    return u * mp_sigmoid(v), {"x": mp_sigmoid(v) + v * mp_dsigmoid(v),
                               "beta": u * u * mp_dsigmoid(v)}


def ref_mish(u):
    sp = mp_softplus(u)
    return u * MP.tanh(sp), {"x": MP.tanh(sp) + u * MP.sech(sp) ** 2 * mp_sigmoid(u)}


def ref_acon_b(u, a, beta=1):
    a, beta = MP.mpf(a), MP.mpf(beta)
    c = 1 - a
    v = beta * c * u
    slope = mp_sigmoid(v) + v * mp_dsigmoid(v)
    return c * u * mp_sigmoid(v) + a * u, {"x": c * slope + a, "a": u * (1 - slope),
                                           "beta": (c * u) ** 2 * mp_dsigmoid(v)}


def ref_acon_c(u, p1, p2, beta=1):
    p1, p2, beta = MP.mpf(p1), MP.mpf(p2), MP.mpf(beta)
    d = p1 - p2
    v = beta * d * u
    slope = mp_sigmoid(v) + v * mp_dsigmoid(v)
    return d * u * mp_sigmoid(v) + p2 * u, {"x": d * slope + p2, "p1": u * slope,
                                            "p2": u * (1 - slope),
                                            "beta": (d * u) ** 2 * mp_dsigmoid(v)}


class Spec(NamedTuple):
    name: str
    build: Callable          # build(x, **params) -> SymPy expression or Tensor
    reference: Callable      # reference(mp x, **params) -> (value, {name: partial})
    params: dict             # learnable parameters and their values
    kinked: bool = False


SPECS = [
    Spec("sigmoid", lambda u: sg.sigmoid(u), ref_sigmoid, {}),
    Spec("tanh", lambda u: sg.tanh(u), ref_tanh, {}),
    Spec("step", lambda u: sg.step(u), ref_step, {}, kinked=True),
    Spec("relu", lambda u: sg.relu(u), ref_relu, {}, kinked=True),
    Spec("leaky_relu", lambda u: sg.leaky_relu(u), ref_leaky, {}, kinked=True),
    Spec("leaky_relu_0.2", lambda u: sg.leaky_relu(u, a=0.2),
         lambda u: ref_leaky(u, 0.2), {}, kinked=True),
    Spec("prelu", lambda u, a: sg.prelu(u, a), ref_leaky, {"a": 0.3}, kinked=True),
    Spec("elu", lambda u: sg.elu(u), ref_elu, {}, kinked=True),
    Spec("elu_alpha", lambda u, alpha: sg.elu(u, alpha=alpha), ref_elu, {"alpha": 1.7},
         kinked=True),
    Spec("softplus", lambda u: sg.softplus(u), ref_softplus, {}),
    Spec("swish", lambda u: sg.swish(u), ref_swish, {}),
    Spec("swish_beta", lambda u, beta: sg.swish(u, beta=beta), ref_swish, {"beta": 1.5}),
    Spec("mish", lambda u: sg.mish(u), ref_mish, {}),
    Spec("acon_a", lambda u: sg.acon_a(u), ref_swish, {}),
    Spec("acon_a_beta", lambda u, beta: sg.acon_a(u, beta=beta), ref_swish, {"beta": 0.8}),
    Spec("acon_b", lambda u, a, beta: sg.acon_b(u, a, beta=beta), ref_acon_b,
         {"a": 0.3, "beta": 1.25}),
    Spec("acon_c", lambda u, p1, p2, beta: sg.acon_c(u, p1, p2, beta=beta), ref_acon_c,
         {"p1": 1.2, "p2": 0.25, "beta": 0.75}),
]
BY_NAME = {spec.name: spec for spec in SPECS}
KINKED = [spec for spec in SPECS if spec.kinked]


def _ids(spec):
    return spec.name


def _grid(spec):
    return GRID if spec.kinked else SMOOTH_GRID


def _param_symbols(spec):
    return {name: sg.symbols(name) for name in spec.params}


@functools.lru_cache(maxsize=None)
def _scalar(name):
    """(expression, parameter symbols, kernel differentiated w.r.t. x and the parameters)."""
    spec = BY_NAME[name]
    symbols = _param_symbols(spec)
    expr = spec.build(x, **symbols)
    kernel = sg.compile(expr, wrt=[x, *symbols.values()])
    return expr, symbols, kernel


def _reference(spec, points, params=None):
    """mpmath values and partials (x first, then the parameters) at ``points``, as float64."""
    params = spec.params if params is None else params
    values, partials = [], []
    for point in np.asarray(points, dtype=np.float64).ravel():
        value, derivatives = spec.reference(MP.mpf(float(point)),
                                            **{k: float(v) for k, v in params.items()})
        values.append(float(value))
        partials.append([float(derivatives[key]) for key in ["x", *spec.params]])
    shape = np.shape(points)
    return (np.array(values).reshape(shape),
            [np.array(column).reshape(shape) for column in zip(*partials)])


def assert_close(got, expected, rtol, atol, what=""):
    got = np.asarray(got, dtype=np.float64)
    expected = np.broadcast_to(np.asarray(expected, dtype=np.float64), got.shape)
    assert np.all(np.isfinite(got)), f"{what}: not finite: {got}"
    bad = ~(np.abs(got - expected) <= atol + rtol * np.abs(expected))
    assert not bad.any(), (f"{what}: mismatch at {np.nonzero(bad)}:\n got      {got[bad]}\n"
                           f" expected {expected[bad]}")


def _derivative_atol(spec, eps):
    """A floor for derivatives that round to 0 or to a subnormal number: a few ulp of the
    parameters' size.  The saturating slopes (sigma' = sigma(x) sigma(-x), tanh' = 4 sigma(2x)
    sigma(-2x), elu' = exp(x)) keep their relative accuracy on the tails, also where the
    chain rule multiplies them by x (swish, ACON); test_tails.py measures them in ulp."""
    scale = max([1.0] + [abs(v) for v in spec.params.values()])
    return 8 * eps * scale ** 2


# ---------------------------------------------------------------------------------------------
# 1. Scalar kernels against mpmath on the grid (float64 and float32)
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("spec", SPECS, ids=_ids)
def test_scalar_kernel_against_mpmath(spec):
    _, _, kernel = _scalar(spec.name)
    grid = _grid(spec)
    with np.errstate(all="raise"):
        value, grads = kernel(grid, *spec.params.values())
    expected_value, expected_partials = _reference(spec, grid)
    # 1e-300: values below the smallest normal float64 (e^-1000) may round to 0.
    assert_close(value, expected_value, rtol=1e-13, atol=1e-300, what=f"{spec.name} value")
    for name, got, expected in zip(["x", *spec.params], grads, expected_partials):
        assert_close(got, expected, rtol=1e-13, atol=_derivative_atol(spec, F64_EPS),
                     what=f"d {spec.name}/d{name}")


@pytest.mark.parametrize("spec", SPECS, ids=_ids)
def test_scalar_kernel_float32_against_mpmath(spec):
    _, _, kernel = _scalar(spec.name)
    grid = _grid(spec).astype(np.float32)
    value, grads = kernel(grid, *spec.params.values())
    assert value.dtype == np.float32 and all(g.dtype == np.float32 for g in grads)
    # The kernel rounds the parameters to float32; so does the reference.
    params = {k: float(np.float32(v)) for k, v in spec.params.items()}
    expected_value, expected_partials = _reference(spec, grid.astype(np.float64), params)
    assert_close(value, expected_value, rtol=4e-6, atol=1e-37, what=f"{spec.name} f32 value")
    for name, got, expected in zip(["x", *spec.params], grads, expected_partials):
        assert_close(got, expected, rtol=1e-5, atol=_derivative_atol(spec, F32_EPS),
                     what=f"f32 d {spec.name}/d{name}")


def test_saturated_tails_are_exact():
    def at(name, points, *params):
        value, grads = _scalar(name)[2](np.array(points, dtype=np.float64), *params)
        return value.tolist(), grads[0].tolist()

    assert at("softplus", [1000.0, -1000.0, 700.0]) == ([1000.0, 0.0, 700.0], [1.0, 0.0, 1.0])
    assert at("sigmoid", [1000.0, -1000.0]) == ([1.0, 0.0], [0.0, 0.0])
    assert at("tanh", [1000.0, -1000.0]) == ([1.0, -1.0], [0.0, 0.0])
    assert at("mish", [1000.0, -1000.0]) == ([1000.0, 0.0], [1.0, 0.0])
    assert at("swish", [1000.0, -1000.0]) == ([1000.0, 0.0], [1.0, 0.0])
    assert at("swish_beta", [1000.0, -1000.0], 1.5) == ([1000.0, 0.0], [1.0, 0.0])
    assert at("elu", [1000.0, -1000.0]) == ([1000.0, -1.0], [1.0, 0.0])
    assert at("relu", [1000.0, -1000.0]) == ([1000.0, 0.0], [1.0, 0.0])
    assert at("leaky_relu", [1000.0, -1000.0]) == ([1000.0, -10.0], [1.0, 0.01])
    value, grads = _scalar("acon_c")[2](np.array([1000.0, -1000.0]), 1.2, 0.25, 0.75)
    assert value.tolist() == pytest.approx([1200.0, -250.0], rel=1e-15)
    assert grads[0].tolist() == pytest.approx([1.2, 0.25], rel=1e-15)


def test_saturated_derivatives_keep_their_relative_accuracy():
    # sigma' = s (1 - s), tanh' = 1 - t**2 and elu' = expm1(x) + 1 (the forms PyTorch and JAX
    # use) cancel on the saturated tail, to a few ulp of 1; symgrad's forms do not.
    points = {"sigmoid": [20.0, 30.0, 40.0], "tanh": [10.0, 20.0, 40.0],
              "elu": [-20.0, -30.0, -40.0]}
    for name, xs in points.items():
        spec = BY_NAME[name]
        _, (derivative,) = _scalar(name)[2](np.array(xs))
        _, (expected,) = _reference(spec, np.array(xs))
        np.testing.assert_allclose(derivative, expected, rtol=8 * np.finfo(float).eps, atol=0,
                                   err_msg=name)
        assert np.all(derivative > 0), name


def test_closed_form_references_agree_with_mpmath_diff():
    """The references' closed-form partials, checked once against mpmath.diff."""
    for spec in SPECS:
        names = ["x", *spec.params]
        for point in AWAY_FROM_KINKS:
            values = [MP.mpf(float(point))] + [MP.mpf(v) for v in spec.params.values()]

            def f(*args):
                return spec.reference(args[0], **dict(zip(spec.params, args[1:])))[0]
            _, partials = spec.reference(values[0], **dict(zip(spec.params, values[1:])))
            for position, name in enumerate(names):
                orders = [int(i == position) for i in range(len(names))]
                numeric = MP.diff(f, values, orders)
                assert MP.almosteq(partials[name], numeric, rel_eps=MP.mpf(10) ** -30,
                                   abs_eps=MP.mpf(10) ** -30), (spec.name, name, point)


# ---------------------------------------------------------------------------------------------
# 2. Tensor forms: sum(activation(X) * W), float64 and float32
# ---------------------------------------------------------------------------------------------

def _tensor_points(spec):
    grid = _grid(spec)
    return np.stack([grid, grid[::-1], 0.5 * grid], axis=1)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("spec", SPECS, ids=_ids)
def test_tensor_form_matches_scalar_derivative(spec, dtype):
    X = sg.tensor("X", ("n", 3), dtype)
    W = sg.tensor("W", ("n", 3), dtype)
    params = {name: sg.tensor(name, (), dtype) for name in spec.params}
    activated = spec.build(X, **params)
    assert isinstance(activated, sg.Tensor) and activated.shape == ("n", 3)
    step = sg.compile((activated * W).sum(), wrt=[X, *params.values()], inputs=[W])

    numpy_dtype = np.dtype(dtype)
    xs = _tensor_points(spec).astype(numpy_dtype)
    ws = np.random.default_rng(0).uniform(0.5, 1.5, xs.shape).astype(numpy_dtype)
    with np.errstate(all="raise"):
        value, grads = step([xs, *spec.params.values()], W=ws)
    assert np.asarray(value).dtype == numpy_dtype
    assert grads[0].shape == xs.shape and grads[0].dtype == numpy_dtype
    assert all(np.shape(g) == () for g in grads[1:])

    # Reference: the float64 scalar kernel at the same (rounded) inputs.
    x64, w64 = xs.astype(np.float64), ws.astype(np.float64)
    rounded = [float(numpy_dtype.type(v)) for v in spec.params.values()]
    ref_value, ref_grads = _scalar(spec.name)[2](x64, *rounded)
    eps = F64_EPS if dtype == "float64" else F32_EPS
    rtol = 1e-13 if dtype == "float64" else 1e-5
    terms = ref_value * w64
    assert_close(value, terms.sum(), rtol=0, atol=rtol * np.abs(terms).sum() + 1e-300,
                 what=f"{spec.name} {dtype} value")
    assert_close(grads[0], ref_grads[0] * w64, rtol=rtol,
                 atol=_derivative_atol(spec, eps) * 1.5, what=f"{spec.name} {dtype} dX")
    for name, got, partial in zip(spec.params, grads[1:], ref_grads[1:]):
        terms = np.broadcast_to(partial, w64.shape) * w64
        assert_close(got, terms.sum(), rtol=0,
                     atol=rtol * np.abs(terms).sum() + 64 * eps * np.abs(w64).sum(),
                     what=f"{spec.name} {dtype} d/d{name}")


def test_tensor_form_of_shape_n_against_mpmath():
    X = sg.tensor("X", ("n",))
    W = sg.tensor("W", ("n",))
    for spec in SPECS:
        params = {name: sg.tensor(name, ()) for name in spec.params}
        step = sg.compile((spec.build(X, **params) * W).sum(), wrt=[X, *params.values()],
                          inputs=[W])
        grid = _grid(spec)
        value, grads = step([grid, *spec.params.values()], W=np.ones_like(grid))
        ref_value, ref_partials = _reference(spec, grid)
        assert_close(grads[0], ref_partials[0], rtol=1e-13,
                     atol=_derivative_atol(spec, F64_EPS), what=spec.name)
        assert_close(value, ref_value.sum(), rtol=1e-13, atol=1e-300, what=spec.name)


# ---------------------------------------------------------------------------------------------
# 3. Finite differences, learnable parameters included
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("spec", SPECS, ids=_ids)
def test_gradcheck_scalar_with_parameters(spec):
    expr, symbols, kernel = _scalar(spec.name)
    at = {x: AWAY_FROM_KINKS, **{symbols[k]: v for k, v in spec.params.items()}}
    assert sg.gradcheck(kernel, wrt=[x, *symbols.values()], at=at)
    # and straight from the expression (compiled by gradcheck)
    assert sg.gradcheck(expr, wrt=[x, *symbols.values()],
                        at={x: 0.77, **{symbols[k]: v for k, v in spec.params.items()}})


@pytest.mark.parametrize("spec", SPECS, ids=_ids)
def test_gradcheck_tensor_with_parameters(spec):
    X = sg.tensor("X", ("n", 3))
    W = sg.tensor("W", ("n", 3))
    params = {name: sg.tensor(name, ()) for name in spec.params}
    loss = (spec.build(X, **params) * W).sum()
    rng = np.random.default_rng(1)
    xs = rng.choice(AWAY_FROM_KINKS, size=(4, 3))
    at = {X: xs, W: rng.normal(size=(4, 3)), **{params[k]: v for k, v in spec.params.items()}}
    assert sg.gradcheck(loss, wrt=[X, *params.values()], at=at)


def test_gradcheck_refuses_an_undifferentiated_parameter():
    # the harness cannot silently skip a parameter: one compiled as an input is refused
    a = sg.symbols("a")
    with pytest.raises(ValueError):
        sg.gradcheck(sg.compile(sg.prelu(x, a), wrt=[x], inputs=[a]), wrt=[x, a],
                     at={x: -1.0, a: 0.3})


# ---------------------------------------------------------------------------------------------
# 4. Kinks
# ---------------------------------------------------------------------------------------------

ZEROS = np.array([0.0, -0.0])


def test_kink_conventions_scalar():
    def at_zero(name, *params):
        value, grads = _scalar(name)[2](ZEROS, *params)
        return value.tolist(), [g.tolist() for g in grads]

    assert at_zero("relu") == ([0.0, 0.0], [[0.0, 0.0]])
    assert at_zero("step") == ([0.5, 0.5], [[0.0, 0.0]])
    assert at_zero("leaky_relu") == ([0.0, 0.0], [[0.01, 0.01]])
    assert at_zero("leaky_relu_0.2") == ([0.0, 0.0], [[0.2, 0.2]])
    assert at_zero("prelu", 0.3) == ([0.0, 0.0], [[0.3, 0.3], [0.0, 0.0]])
    assert at_zero("elu") == ([0.0, 0.0], [[1.0, 1.0]])
    assert at_zero("elu_alpha", 1.7) == ([0.0, 0.0], [[1.7, 1.7], [0.0, 0.0]])


def test_step_derivative_is_zero_everywhere():
    points = np.concatenate([GRID, ZEROS, [np.nextafter(0, 1), -np.nextafter(0, 1)]])
    value, (derivative,) = _scalar("step")[2](points)
    assert np.all(derivative == 0)
    assert value.tolist()[-4:] == [0.5, 0.5, 1.0, 0.0]


@pytest.mark.parametrize("spec", KINKED, ids=_ids)
def test_kink_conventions_tensor(spec):
    X = sg.tensor("X", ("n",))
    params = {name: sg.tensor(name, ()) for name in spec.params}
    step = sg.compile(spec.build(X, **params).sum(), wrt=[X, *params.values()])
    _, grads = step([ZEROS, *spec.params.values()])
    _, scalar_grads = _scalar(spec.name)[2](ZEROS, *spec.params.values())
    assert grads[0].tolist() == scalar_grads[0].tolist()
    expected = {"step": 0.0, "relu": 0.0, "leaky_relu": 0.01, "leaky_relu_0.2": 0.2,
                "prelu": 0.3, "elu": 1.0, "elu_alpha": 1.7}[spec.name]
    assert grads[0].tolist() == [expected, expected]


@pytest.mark.parametrize("spec", SPECS, ids=_ids)
def test_symbolic_gradient_has_no_dirac_delta_and_follows_kink_convention(spec):
    expr, symbols, _ = _scalar(spec.name)
    gradient = sg.grad(expr, [x, *symbols.values()])
    for derivative in gradient:
        assert not sympy.sympify(derivative).has(sympy.DiracDelta, sympy.Heaviside), derivative
    if spec.kinked:
        subs = {x: 0, **{symbols[k]: v for k, v in spec.params.items()}}
        expected = {"step": 0.0, "relu": 0.0, "leaky_relu": 0.01, "leaky_relu_0.2": 0.2,
                    "prelu": 0.3, "elu": 1.0, "elu_alpha": 1.7}[spec.name]
        assert float(sympy.sympify(gradient[0]).subs(subs)) == pytest.approx(expected,
                                                                               rel=1e-15)


# ---------------------------------------------------------------------------------------------
# 5. sg.grad against sympy.diff
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("spec", SPECS, ids=_ids)
def test_grad_equals_sympy_diff(spec):
    expr, symbols, _ = _scalar(spec.name)
    wrt = [x, *symbols.values()]
    ours = sg.grad(expr, wrt)
    theirs = [sympy.diff(expr, s) for s in wrt]
    for point in [-4.5, -1.2, -0.3, 0.4, 1.7, 6.0]:
        # Exact rationals, so that evalf works at 30 digits throughout: with 15-digit Floats
        # sympy.diff's (1 - sigmoid(u)) sigmoid(u) cancels in SymPy's own arithmetic.
        subs = {x: sympy.Rational(point), **{symbols[k]: sympy.Rational(v)
                                             for k, v in spec.params.items()}}
        for mine, reference, s in zip(ours, theirs, wrt):
            got = sympy.sympify(mine).subs(subs).evalf(30)
            expected = reference.subs(subs).evalf(30)
            assert float(got) == pytest.approx(float(expected), rel=1e-13, abs=1e-15), \
                (spec.name, s, point)


def test_activations_return_sympy_expressions_that_sympy_differentiates():
    a = sg.symbols("a")
    assert sg.relu(x) == sympy.Max(0, x)
    assert sympy.diff(sg.softplus(x), x) == sg.sigmoid(x)
    assert sympy.diff(sg.prelu(x, a), a).subs(x, -2) == -2
    assert float(sg.mish(x).subs(x, 1).evalf(30)) == pytest.approx(
        float(ref_mish(MP.mpf(1))[0]), rel=1e-15)


# ---------------------------------------------------------------------------------------------
# 6. User-defined activations
# ---------------------------------------------------------------------------------------------

@sg.activation
def lif_rate(current, tau=10, resistance=1, rest=-65, reset=-70, threshold=-50):
    """The lecture's leaky-integrate-and-fire firing rate (threshold current 15 by default)."""
    drive = rest + resistance * current
    rate = 1 / (tau * sympy.log((drive - reset) / (drive - threshold)))
    return sympy.Piecewise((rate, drive > threshold), (0, True))


def mp_lif_rate(current, tau=10, resistance=1, rest=-65, reset=-70, threshold=-50):
    drive = rest + resistance * current
    if not drive > threshold:
        return MP.mpf(0)
    return 1 / (tau * MP.log((drive - reset) / (drive - threshold)))


def mp_lif_partials(current, tau=10, resistance=1, **kw):
    """d/dI, d/dtau and d/dR by mpmath.diff (the function is smooth above threshold)."""
    if not -65 + resistance * current > -50:
        return [MP.mpf(0)] * 3
    def f(i, t, r):
        return mp_lif_rate(i, t, r, **kw)
    point = [MP.mpf(current), MP.mpf(tau), MP.mpf(resistance)]
    return [MP.diff(f, point, orders) for orders in ((1, 0, 0), (0, 1, 0), (0, 0, 1))]


LIF_POINTS = np.array([-1000.0, -5.0, 0.0, 10.0, 14.99, 15.0, 15.5, 16.0, 17.25, 20.0, 30.0,
                       100.0, 1000.0])


def test_lif_rate_scalar_against_mpmath():
    current, tau, resistance = sg.symbols("I tau R")
    expr = lif_rate(current, tau=tau, resistance=resistance)
    assert isinstance(expr, sympy.Piecewise)
    kernel = sg.compile(expr, wrt=[current, tau, resistance])
    value, grads = kernel(LIF_POINTS, 10.0, 1.0)
    assert np.all(np.isfinite(value)) and all(np.all(np.isfinite(g)) for g in grads)
    below = LIF_POINTS <= 15.0
    assert np.all(value[below] == 0) and all(np.all(g[below] == 0) for g in grads)
    expected = [float(mp_lif_rate(MP.mpf(i))) for i in LIF_POINTS]
    assert_close(value, expected, rtol=1e-13, atol=0, what="lif rate")
    partials = [mp_lif_partials(float(i)) for i in LIF_POINTS]
    for position, name in enumerate(["I", "tau", "R"]):
        assert_close(grads[position], [float(p[position]) for p in partials], rtol=1e-12,
                     atol=0, what=f"d lif/d{name}")
    assert sg.gradcheck(kernel, wrt=[current, tau, resistance],
                        at={current: np.array([15.5, 17.0, 40.0, 10.0]), tau: 10.0,
                            resistance: 1.0})


def test_lif_rate_tensor_no_nan_below_threshold():
    current = sg.tensor("I", ("n",))
    W = sg.tensor("W", ("n",))
    rate = lif_rate(current, tau=20, reset=-75)
    assert rate.shape == ("n",)
    step = sg.compile((rate * W).sum(), wrt=[current], inputs=[W])
    ws = np.linspace(0.5, 2.0, LIF_POINTS.size)
    with np.errstate(all="raise"):
        value, (gradient,) = step([LIF_POINTS], W=ws)
    I = sg.symbols("I")
    scalar = sg.compile(lif_rate(I, tau=20, reset=-75), wrt=[I])
    ref_value, (ref_gradient,) = scalar(LIF_POINTS)
    assert np.all(np.isfinite(gradient))
    assert value == pytest.approx(float(np.sum(ref_value * ws)), rel=1e-13)
    np.testing.assert_allclose(gradient, ref_gradient * ws, rtol=1e-13, atol=0)
    expected = [float(mp_lif_rate(MP.mpf(i), tau=20, reset=-75)) for i in LIF_POINTS]
    assert_close(ref_value, expected, rtol=1e-13, atol=0, what="lif tensor")
    assert np.all(gradient[LIF_POINTS <= 15] == 0)


@sg.activation
def shifted_sigmoids(u, terms=20):
    """sigma(u + 1/2) + sigma(u - 1/2) + sigma(u - 3/2) + ...: a midpoint-rule softplus."""
    return sympy.Add(*[sg.sigmoid(u + sympy.Rational(1, 2) - k) for k in range(terms)])


def mp_shifted(u, terms=20):
    shifts = [u + MP.mpf(1) / 2 - k for k in range(terms)]
    return sum(mp_sigmoid(s) for s in shifts), sum(mp_dsigmoid(s) for s in shifts)


def test_shifted_sigmoids_scalar_and_tensor():
    expr = shifted_sigmoids(x)
    kernel = sg.compile(expr, wrt=[x])
    points = np.concatenate([SMOOTH_GRID, np.linspace(-8, 12, 21)])
    with np.errstate(all="raise"):
        value, (derivative,) = kernel(points)
    reference = [mp_shifted(MP.mpf(float(p))) for p in points]
    assert_close(value, [float(v) for v, _ in reference], rtol=1e-13, atol=1e-300,
                 what="shifted sigmoids")
    assert_close(derivative, [float(d) for _, d in reference], rtol=1e-12, atol=8 * F64_EPS,
                 what="shifted sigmoids'")
    assert value[points == 1000].tolist() == [20.0] and value[points == -1000].tolist() == [0]
    # A midpoint rule for the integral of sigma(x - t) over t in [-1, 19] (nodes -1/2, 1/2,
    # 3/2, ...), i.e. softplus(x + 1) - softplus(x - 19), with error about sigma'(x + 1) / 24:
    # it approximates softplus, shifted left by one (Nair & Hinton's sum starts at
    # sigma(x - 1/2) and approximates softplus(x) itself).
    moderate = (points >= -8) & (points <= 12)
    integral = np.array([float(mp_softplus(MP.mpf(float(p)) + 1)
                               - mp_softplus(MP.mpf(float(p)) - 19)) for p in points[moderate]])
    np.testing.assert_allclose(value[moderate], integral, atol=0.011)
    softplus = np.array([float(mp_softplus(MP.mpf(float(p)) + 1)) for p in points[moderate]])
    np.testing.assert_allclose(value[moderate], softplus, atol=0.011)
    sigma = 1 / (1 + np.exp(-(points[moderate] + 1)))
    np.testing.assert_allclose(derivative[moderate], sigma, atol=0.011)
    assert sg.gradcheck(kernel, wrt=[x], at={x: np.linspace(-5, 5, 7)})

    X = sg.tensor("X", ("n", 3))
    step = sg.compile(shifted_sigmoids(X).sum(), wrt=[X])
    xs = points[:30].reshape(10, 3)
    tensor_value, (gradient,) = step([xs])
    np.testing.assert_allclose(gradient, derivative[:30].reshape(10, 3), rtol=1e-13, atol=1e-15)
    assert tensor_value == pytest.approx(float(value[:30].sum()), rel=1e-13)


def test_activation_decorator_keeps_formula_and_binds_arguments():
    assert shifted_sigmoids.formula is not None
    assert lif_rate(20).is_number      # plain numbers give a SymPy number
    assert float(lif_rate(20)) == pytest.approx(float(mp_lif_rate(MP.mpf(20))), rel=1e-14)
    with pytest.raises(TypeError):
        lif_rate(x, bogus=1)


# ---------------------------------------------------------------------------------------------
# 7. Smooth maximum
# ---------------------------------------------------------------------------------------------

def mp_smooth_max(values, beta):
    beta = MP.mpf(beta)
    values = [MP.mpf(v) for v in values]
    weights = [MP.exp(beta * v) for v in values]
    return sum(v * w for v, w in zip(values, weights)) / sum(weights)


def mp_smooth_max_partials(values, beta):
    """dS/dx_j = w_j (1 + beta (x_j - S)); dS/dbeta = sum_j w_j x_j (x_j - S)."""
    beta = MP.mpf(beta)
    values = [MP.mpf(v) for v in values]
    top = max(values)
    raw = [MP.exp(beta * (v - top)) for v in values]
    weights = [r / sum(raw) for r in raw]
    s = sum(v * w for v, w in zip(values, weights))
    return ([w * (1 + beta * (v - s)) for v, w in zip(values, weights)],
            sum(w * v * (v - s) for v, w in zip(values, weights)))


SMOOTH_MAX_ROWS = np.array([[1000.0, 999.0, 0.0], [1.0, 2.0, 3.0], [-1000.0, -999.0, -998.0],
                            [0.5, 0.5, 0.5], [700.0, -700.0, 3.0], [-0.25, 4.0, 3.5]])


@pytest.mark.parametrize("beta", [1.0, 0.5, 3.0, -2.0, 0.0])
def test_smooth_max_scalar_form_against_mpmath(beta):
    xs = sg.symbols("x1 x2 x3")
    b = sg.symbols("beta")
    kernel = sg.compile(sg.smooth_max(xs, beta=b), wrt=[*xs, b])
    with np.errstate(all="raise"):
        value, grads = kernel(*SMOOTH_MAX_ROWS.T, beta)
    for row, got_value, *got in zip(SMOOTH_MAX_ROWS, value, *grads):
        expected = float(mp_smooth_max(row, beta))
        partials, d_beta = mp_smooth_max_partials(row, beta)
        scale = float(np.max(np.abs(row)))
        assert got_value == pytest.approx(expected, rel=1e-13, abs=8 * F64_EPS * scale)
        for g, e in zip(got[:3], partials):
            assert g == pytest.approx(float(e), rel=1e-12, abs=8 * F64_EPS * (1 + abs(beta)
                                                                                * scale))
        assert got[3] == pytest.approx(float(d_beta), rel=1e-12, abs=8 * F64_EPS * scale ** 2)


def test_smooth_max_scalar_no_overflow_limits_and_numeric_beta():
    u, v = sg.symbols("u v")
    kernel = sg.compile(sg.smooth_max([u, v]), wrt=[u, v])        # beta = 1
    value, (du, dv) = kernel(1000.0, 999.0)
    assert value == pytest.approx(float(mp_smooth_max([1000, 999], 1)), rel=1e-15)
    partials, _ = mp_smooth_max_partials([1000, 999], 1)
    assert (du, dv) == pytest.approx([float(p) for p in partials], rel=1e-13)
    # a tie: equal weights, derivative 1/2 each whatever Max does with ties
    assert kernel(1000.0, 1000.0) == (1000.0, (0.5, 0.5))
    # beta -> inf gives the maximum, beta -> -inf the minimum, beta = 0 the mean
    sharp = sg.compile(sg.smooth_max([u, v, x], beta=200), wrt=[u, v, x])
    assert sharp(1.0, 2.0, 3.0)[0] == pytest.approx(3.0, abs=1e-15)
    value, grads = sharp(1000.0, 999.0, -5.0)
    assert value == 1000.0
    # dS/dv = w_v (1 + beta (v - S)) = -199 e^-200, tiny but not 0
    assert grads == pytest.approx((1.0, -199 * np.exp(-200.0), 0.0), rel=1e-13, abs=1e-300)
    soft_min = sg.compile(sg.smooth_max([u, v, x], beta=-200), wrt=[u, v, x])
    assert soft_min(1.0, 2.0, 3.0)[0] == pytest.approx(1.0, abs=1e-15)
    mean = sg.smooth_max([u, v, x], beta=0)
    assert sympy.simplify(mean - (u + v + x) / 3) == 0
    assert sg.compile(mean, wrt=[u, v, x])(1.0, 2.0, 6.0) == (3.0, (1 / 3, 1 / 3, 1 / 3))
    with pytest.raises(ValueError):
        sg.smooth_max([])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_smooth_max_tensor_form_against_mpmath(dtype):
    X = sg.tensor("X", ("n", 3), dtype)
    B = sg.tensor("beta", (), dtype)
    W = sg.tensor("W", ("n",), dtype)
    smooth = sg.smooth_max(X, beta=B, axis=-1)
    assert smooth.shape == ("n",)
    step = sg.compile((smooth * W).sum(), wrt=[X, B], inputs=[W])
    numpy_dtype = np.dtype(dtype)
    rows = SMOOTH_MAX_ROWS.astype(numpy_dtype)
    ws = np.linspace(0.5, 1.5, len(rows)).astype(numpy_dtype)
    rtol = 1e-12 if dtype == "float64" else 2e-5
    eps = F64_EPS if dtype == "float64" else F32_EPS
    for beta in [1.0, 0.5, -2.0, 0.0]:
        with np.errstate(all="raise"):
            value, (dx, dbeta) = step([rows, beta], W=ws)
        assert np.isfinite(value) and np.all(np.isfinite(dx)) and np.isfinite(dbeta)
        w64 = ws.astype(np.float64)
        values = np.array([float(mp_smooth_max(r, beta)) for r in rows.astype(np.float64)])
        partials = [mp_smooth_max_partials(r, beta) for r in rows.astype(np.float64)]
        dx_ref = np.array([[float(p) for p in d] for d, _ in partials]) * w64[:, None]
        dbeta_ref = np.array([float(db) for _, db in partials])
        scale = np.max(np.abs(rows.astype(np.float64)), axis=1)
        assert value == pytest.approx(float(np.sum(values * w64)),
                                      rel=rtol, abs=16 * eps * float(np.sum(scale * w64)))
        assert_close(dx, dx_ref, rtol=rtol, atol=16 * eps * (1 + abs(beta) * scale[:, None]),
                     what=f"smooth max dX beta={beta}")
        assert float(dbeta) == pytest.approx(float(np.sum(dbeta_ref * w64)), rel=rtol,
                                             abs=16 * eps * float(np.sum(scale**2 * w64)))
    # beta = 0: the mean, and dS/dbeta is the (population) variance of each row
    value, (dx, dbeta) = step([rows, 0.0], W=np.ones(len(rows), numpy_dtype))
    rows64 = rows.astype(np.float64)
    assert value == pytest.approx(float(rows64.mean(axis=1).sum()), rel=rtol)
    np.testing.assert_allclose(dx, np.full(rows.shape, 1 / 3), rtol=rtol)
    assert float(dbeta) == pytest.approx(float(rows64.var(axis=1).sum()), rel=rtol)
    # large beta: the maximum of each row
    value, (dx, _) = step([rows, 200.0], W=np.ones(len(rows), numpy_dtype))
    assert value == pytest.approx(float(rows64.max(axis=1).sum()), rel=rtol)


def test_smooth_max_tensor_gradcheck_and_other_axis():
    X = sg.tensor("X", (4, "n"))
    B = sg.tensor("beta", ())
    W = sg.tensor("W", ("n",))
    loss = (sg.smooth_max(X, beta=B, axis=0) * W).sum()
    rng = np.random.default_rng(2)
    at = {X: rng.normal(size=(4, 5)), B: 1.3, W: rng.normal(size=5)}
    assert sg.gradcheck(loss, wrt=[X, B], at=at)
    step = sg.compile(loss, wrt=[X, B], inputs=[W])
    value, _ = step([at[X], 1.3], W=at[W])
    expected = sum(float(mp_smooth_max(column, 1.3)) * w for column, w in zip(at[X].T, at[W]))
    assert value == pytest.approx(expected, rel=1e-13)


# ---------------------------------------------------------------------------------------------
# 8. ACON-C's slope tends to p1 on the right and p2 on the left
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("p1, p2, beta", [(1.2, 0.25, 0.75), (0.9, -0.4, 1.0), (2.0, 1.5, 3.0)])
def test_acon_c_slopes_tend_to_p1_and_p2(p1, p2, beta):
    kernel = _scalar("acon_c")[2]
    far = np.array([50.0, -50.0, 1000.0, -1000.0])
    _, (dx, dp1, dp2, dbeta) = kernel(far, p1, p2, beta)
    assert dx.tolist() == pytest.approx([p1, p2, p1, p2], rel=1e-13, abs=1e-13)
    # far right the function is p1 x, far left p2 x
    assert dp1.tolist() == pytest.approx([50.0, 0.0, 1000.0, 0.0], rel=1e-13, abs=1e-9)
    assert dp2.tolist() == pytest.approx([0.0, -50.0, 0.0, -1000.0], rel=1e-13, abs=1e-9)
    assert np.all(np.abs(dbeta) < 1e-9)
    # in between, it is a smooth blend of the two
    _, (middle, *_) = kernel(np.array([0.0]), p1, p2, beta)
    assert middle.tolist() == pytest.approx([(p1 + p2) / 2], rel=1e-15)


def test_acon_c_tensor_slopes():
    X = sg.tensor("X", ("n",))
    P1, P2, B = sg.tensor("p1", ()), sg.tensor("p2", ()), sg.tensor("beta", ())
    step = sg.compile(sg.acon_c(X, P1, P2, beta=B).sum(), wrt=[X, P1, P2, B])
    _, (dx, dp1, dp2, dbeta) = step([np.array([50.0, -50.0]), 1.2, 0.25, 1.0])
    assert dx.tolist() == pytest.approx([1.2, 0.25], rel=1e-13)
    assert float(dp1) == pytest.approx(50.0, rel=1e-13)
    assert float(dp2) == pytest.approx(-50.0, rel=1e-13)
