"""Reverse mode: per-op rules against finite differences (IR and reference interpreter only),
symbolic gradients against sympy.diff, kink conventions and branches."""

import math

import numpy as np
import pytest
import sympy

import symgrad as sg
from symgrad import ir
from symgrad.autodiff.reverse import value_and_grad, vjp
from symgrad.autodiff.rules import VJP_RULES
from symgrad.ir.ops import ELEMENTWISE, Op
from symgrad.reference.evaluate import evaluate

x, y = sg.symbols("x y")

# ---------------------------------------------------------------------------------------------
# Per-op specs: every rule of VJP_RULES against central differences of the reference
# interpreter, at points away from kinks and from domain edges.
# ---------------------------------------------------------------------------------------------

def test_stop_gradient_is_the_identity_without_gradient():
    a = ir.input_node("a")
    out = ir.mul(a, ir.stop_gradient(ir.exp(a)))       # d/da = exp(a), not 2 exp(2a)
    fused = value_and_grad(ir.Function([a], [out], ["f"]), ["a"])
    value, gradient = evaluate(fused, A)
    np.testing.assert_allclose(value, A * np.exp(A), rtol=1e-15)
    np.testing.assert_allclose(gradient, np.exp(A), rtol=1e-15)


TENSOR_OPS = set(VJP_RULES) - ELEMENTWISE
A = np.array([0.3, 1.7, 2.2, 0.9, 3.1])
B = np.array([1.1, 0.6, 2.9, 0.45, 1.3])


def _builders(a, b):
    cond = ir.compare(Op.GT, a, b)
    quarter = ir.const(0.25)
    return {
        Op.NEG: ir.neg(a), Op.ADD: ir.add(a, b), Op.SUB: ir.sub(a, b), Op.MUL: ir.mul(a, b),
        Op.DIV: ir.div(a, b), Op.POW: ir.power(a, b), Op.MAX: ir.maximum(a, b),
        Op.MIN: ir.minimum(a, b), Op.EXP: ir.exp(a), Op.LOG: ir.log(a), Op.SQRT: ir.sqrt(a),
        Op.SIN: ir.sin(a), Op.COS: ir.cos(a), Op.TANH: ir.tanh(a),
        Op.ABS: ir.absolute(ir.sub(a, ir.const(1.0))), Op.SIGN: ir.sign(ir.sub(a, b)),
        Op.SELECT: ir.select(cond, ir.mul(a, a), ir.sin(b)),
        Op.EXPM1: ir.expm1(ir.mul(a, b)), Op.LOG1P: ir.log1p(ir.mul(a, b)),
        Op.SIGMOID: ir.sigmoid(ir.sub(a, b)), Op.SOFTPLUS: ir.softplus(ir.sub(b, a)),
        Op.LOG2: ir.log2(ir.mul(a, b)), Op.LOG10: ir.log10(ir.mul(a, b)),
        Op.EXP2: ir.exp2(ir.sub(a, b)), Op.TAN: ir.tan(ir.mul(quarter, a)),
        Op.ASIN: ir.asin(ir.mul(quarter, a)), Op.ACOS: ir.acos(ir.mul(quarter, b)),
        Op.ATAN: ir.atan(ir.sub(a, b)), Op.SINH: ir.sinh(ir.sub(a, b)),
        Op.COSH: ir.cosh(ir.sub(a, b)), Op.ASINH: ir.asinh(ir.sub(a, b)),
        Op.ACOSH: ir.acosh(ir.add(a, b)), Op.ATANH: ir.atanh(ir.mul(quarter, ir.sub(a, b))),
        Op.ERF: ir.erf(ir.sub(a, b)), Op.ERFC: ir.erfc(ir.sub(a, b)),
        # Piecewise constant: 0 (the points keep away from the jumps).
        Op.FLOOR: ir.mul(ir.floor(ir.mul(a, b)), a), Op.CEIL: ir.mul(ir.ceil(ir.mul(a, b)), b),
        Op.ROUND: ir.mul(ir.round_even(ir.mul(a, b)), a),
        Op.ATAN2: ir.atan2(ir.sub(a, b), b), Op.HYPOT: ir.hypot(ir.sub(a, b), b),
        # Through an integer: 0 for a (the points keep away from whole numbers), x for b.
        Op.CAST: ir.mul(ir.cast(ir.cast(ir.mul(a, ir.const(3.0)), "int64"), "float64"), b),
        Op.FLOOR_DIV: ir.mul(ir.cast(ir.floor_divide(ir.cast(ir.mul(a, ir.const(10.3)),
                                                             "int64"),
                                                     ir.const(-7.0, "int64")), "float64"), b),
        Op.MOD: ir.mul(ir.cast(ir.remainder(ir.cast(ir.mul(a, ir.const(10.3)), "int64"),
                                            ir.const(7.0, "int64")), "float64"), b),
    }


INDICES = np.array([2, 0, 2, -1, 1])


def _tensor_builders(a, b, i):
    """a: (3, 4), b: (4,), i: integer indices (5,) into both axes of a."""
    return {
        Op.GATHER: ir.mul(ir.take(ir.sin(a), i, 1),
                          ir.broadcast_to(ir.reshape(ir.take(b, i, 0), (1, 5)), (3, 5))),
        Op.TAKE_ALONG: ir.mul(ir.take_along(ir.sin(a), ir.reshape(i, (1, 5)), 1),
                              ir.take_along(a, ir.reshape(i, (1, 5)), 1)),
        Op.PUT_ADD_ALONG: ir.mul(ir.put_add_along(
            ir.broadcast_to(ir.reshape(ir.mul(b, b), (4, 1)), (4, 5)),
            ir.broadcast_to(ir.reshape(i, (1, 5)), (4, 5)), 1, 3), ir.transpose(a)),
        Op.LINREC: ir.linear_recurrence(ir.sin(a), ir.mul(a, a), 1),
        Op.SCATTER_ADD: ir.mul(ir.scatter_add(ir.mul(ir.take(a, i, 1), ir.take(a, i, 1)), i, 1,
                                              4), a),
        Op.BROADCAST: ir.mul(ir.broadcast_to(b, (2, 3, 4)), ir.sin(ir.broadcast_to(b, (3, 4)))),
        Op.RESHAPE: ir.mul(ir.reshape(a, (2, 6)), ir.reshape(ir.exp(a), (2, 6))),
        Op.TRANSPOSE: ir.mul(ir.transpose(a), ir.reshape(ir.tanh(a), (4, 3))),
        Op.SUM: ir.mul(ir.reduce_sum(ir.mul(a, a), 1, keepdims=True), a),
        Op.AMAX: ir.add(ir.reduce_max(ir.mul(a, b), 0), b),
        Op.AMIN: ir.add(ir.reduce_min(ir.mul(a, b), 1), ir.reduce_sum(b)),
        Op.PROD: ir.mul(ir.reduce_prod(ir.sin(a), 0, keepdims=True), a),
        Op.SLICE: ir.mul(ir.slice_axes(a, [(2, -1, 2), (1, 2, 2)]),
                         ir.slice_axes(ir.exp(a), [(0, 2, 2), (3, -3, 2)])),
        Op.PAD: ir.mul(ir.pad(ir.sin(a), [(1, 0, 1), (0, 2, 0)], 0.5),
                       ir.pad(b, [(1, 1, 0)], -1.0)),
        Op.MATMUL: ir.matmul(ir.sin(a), ir.reshape(ir.mul(b, b), (4, 1))),
    }


@pytest.mark.parametrize("op", sorted(TENSOR_OPS, key=lambda op: op.value),
                         ids=lambda op: op.value)
def test_tensor_rule_against_central_differences(op):
    a, b = ir.input_node("a", shape=(3, 4)), ir.input_node("b", shape=(4,))
    i = ir.input_node("i", "int64", INDICES.shape)
    out = _tensor_builders(a, b, i)[op]
    assert op in {n.op for n in ir.toposort([out])}
    rng = np.random.default_rng(3)
    weights = ir.input_node("w", shape=out.shape)
    loss = ir.reduce_sum(ir.mul(out, weights))
    fused = value_and_grad(ir.Function([a, b, weights, i], [loss], ["f"]), ["a", "b"])
    point = [rng.normal(size=(3, 4)), rng.normal(size=4), rng.normal(size=out.shape), INDICES]
    _, grad_a, grad_b = evaluate(fused, *point)
    eps = 1e-6
    for position, analytic in ((0, grad_a), (1, grad_b)):
        numeric = np.zeros_like(point[position])
        for index in np.ndindex(*numeric.shape):
            up = [p.copy() for p in point]
            down = [p.copy() for p in point]
            up[position][index] += eps
            down[position][index] -= eps
            numeric[index] = (evaluate(fused, *up)[0] - evaluate(fused, *down)[0]) / (2 * eps)
        np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("op", [op for op in VJP_RULES
                                if op not in TENSOR_OPS and op is not Op.STOP_GRADIENT],
                         ids=lambda op: op.value)
def test_rule_against_central_differences(op):
    a, b = ir.input_node("a"), ir.input_node("b")
    out = _builders(a, b)[op]
    assert op in {n.op for n in ir.toposort([out])}
    fused = value_and_grad(ir.Function([a, b], [out], ["f"]), ["a", "b"])
    _, grad_a, grad_b = evaluate(fused, A, B)
    eps = 1e-6
    for position, analytic in ((0, grad_a), (1, grad_b)):
        up = [A, B]
        down = [A, B]
        up[position] = up[position] + eps
        down[position] = down[position] - eps
        numeric = (evaluate(fused, *up)[0] - evaluate(fused, *down)[0]) / (2 * eps)
        np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8)


# ---------------------------------------------------------------------------------------------
# Symbolic gradients against sympy.diff
# ---------------------------------------------------------------------------------------------

def test_worked_example_of_the_lecture():
    f = x**2 + x * y + (x + y)**2
    assert sg.grad(f, [x, y]) == [4 * x + 3 * y, 3 * x + 2 * y]
    assert sg.grad(f, x) == 4 * x + 3 * y


SMOOTH = [
    x**2 + x * y + (x + y)**2, x * sympy.exp(-x * y), sympy.log(1 + x**2) / (1 + y**2),
    sympy.sqrt(x**2 + y**2), sympy.sin(x) * sympy.cos(y) - sympy.tanh(x * y),
    x**y, (x + 2)**sympy.Rational(5, 2), 1 / (x - 3 * y), sympy.exp(sympy.sin(x * y)) ** 2,
    sympy.tanh(sympy.tanh(sympy.tanh(x + y))), sympy.Abs(x - y) * y, sympy.Max(x, y**2),
    sympy.Min(x, 0) + sympy.Max(y, 0), sympy.Heaviside(x - 1) * y,
    sympy.Piecewise((x**2, x > y), (sympy.sin(y), True)),
    sympy.Piecewise((sympy.log(x), x > 1), (x - 1, True)) * y,
]


@pytest.mark.parametrize("expr", SMOOTH, ids=str)
def test_gradient_equals_sympy_diff_away_from_kinks(expr):
    gradient = sg.grad(expr, [x, y])
    for a, b in [(0.7, 1.3), (2.5, 0.4), (1.9, -0.8), (0.35, 2.6)]:
        point = {x: a, y: b}
        for ours, symbol in zip(gradient, (x, y)):
            expected = sympy.diff(expr, symbol).subs(point).evalf(30)
            got = ours.subs(point).evalf(30)
            assert not got.has(sympy.DiracDelta, sympy.Heaviside)
            if expected.is_real is False or expected.has(sympy.zoo, sympy.nan):
                continue
            assert float(got) == pytest.approx(float(expected), rel=1e-12, abs=1e-14)


def test_symbol_not_in_expression_gets_zero():
    z = sg.symbols("z")
    assert sg.grad(x * y, [x, z]) == [y, 0]


def test_gradients_never_hold_dirac_delta_or_heaviside():
    for expr in [sympy.Heaviside(x), sympy.Max(x, 0), sympy.Abs(x), sympy.sign(x)]:
        for derivative in sg.grad(expr, [x]):
            assert not derivative.has(sympy.DiracDelta, sympy.Heaviside)
    # A step that multiplies stays a value in the product rule; its own derivative is 0.
    product = sympy.Piecewise((x, x > 0), (0, True)) * sympy.Heaviside(x - 2)
    (derivative,) = sg.grad(product, [x])
    assert not derivative.has(sympy.DiracDelta)
    assert derivative == sympy.Piecewise((sympy.Heaviside(x - 2), x > 0), (0, True))


# ---------------------------------------------------------------------------------------------
# Kinks: one convention, as torch.relu and jax.nn.relu (0 at 0 for ReLU-like and steps)
# ---------------------------------------------------------------------------------------------

def _grad_at(expr, wrt, point):
    k = sg.compile(expr, wrt=wrt)
    return k(*point)[1]


@pytest.mark.parametrize("expr, expected", [
    (sympy.Max(x, 0), 0.0), (sympy.Max(0, x), 0.0), (sympy.Min(x, 0), 0.0),
    (sympy.Abs(x), 0.0), (sympy.Heaviside(x), 0.0), (sympy.Heaviside(x, 1), 0.0),
    (sympy.sign(x), 0.0), (sympy.Piecewise((x, x > 0), (0, True)), 0.0),
])
def test_derivative_at_the_kink_is_zero(expr, expected):
    (gradient,) = _grad_at(expr, [x], (0.0,))
    assert gradient == expected
    (gradient,) = _grad_at(expr, [x], (np.array([0.0, -0.0]),))
    assert gradient.tolist() == [expected, expected]


def test_max_of_two_variables_splits_ties_like_torch_maximum():
    assert _grad_at(sympy.Max(x, y), [x, y], (1.0, 1.0)) == (0.5, 0.5)
    assert _grad_at(sympy.Max(x, y), [x, y], (2.0, 1.0)) == (1.0, 0.0)
    assert _grad_at(sympy.Min(x, y), [x, y], (2.0, 1.0)) == (0.0, 1.0)


def test_untaken_branch_never_leaks_nan_or_inf():
    cases = [
        sympy.Piecewise((sympy.log(x), x > 0), (0, True)),
        sympy.Piecewise((1 / x, x > 0), (x**2, True)),
        sympy.Piecewise((sympy.sqrt(x), x > 0), (-x, True)),
        sympy.Piecewise((sympy.sqrt(-x), x < 0), (sympy.log(x + 1), True)),
        sympy.Piecewise((sympy.exp(1000 * x), x < 0), (x, True)),
        sympy.Piecewise((sympy.Piecewise((sympy.log(x), x > 1), (1 / (x - 0.5), True)), x > 0.5),
                        (x**3, True)),
    ]
    points = np.array([-2.0, -1.0, -0.0, 0.0, 0.5, 1.0, 1.5, 3.0])
    for expr in cases:
        k = sg.compile(expr, wrt=[x])
        value, (gradient,) = k(points)
        assert np.all(np.isfinite(value)), expr
        assert np.all(np.isfinite(gradient)), (expr, gradient)
        expected = [float(sympy.diff(expr, x).subs(x, p)) if p not in (0.0, 0.5, 1.0) else g
                    for p, g in zip(points, gradient)]
        np.testing.assert_allclose(gradient, expected, rtol=1e-13)


def test_pow_conventions_at_zero():
    (dx, dy) = _grad_at(x**y, [x, y], (0.0, 0.0))
    assert dx == 0.0 and dy == 0.0
    (dx, dy) = _grad_at(x**y, [x, y], (0.0, 2.0))
    assert dx == 0.0 and dy == 0.0


# ---------------------------------------------------------------------------------------------
# The Jacobian sum rule and shared subexpressions
# ---------------------------------------------------------------------------------------------

def test_contributions_of_all_uses_are_summed():
    u = ir.input_node("u")
    shared = ir.exp(u)
    out = ir.add(ir.mul(shared, shared), ir.sin(shared))   # e^{2u} + sin(e^u)
    (gradient,) = vjp(out, [u])
    fused = ir.Function([u], [gradient])
    value = evaluate(fused, np.array([0.3]))[0][0]
    expected = 2 * math.exp(0.6) + math.cos(math.exp(0.3)) * math.exp(0.3)
    assert value == pytest.approx(expected, rel=1e-14)


def test_backward_graph_reuses_forward_values():
    expr = sympy.tanh(x * y) * sympy.exp(x)
    fused = value_and_grad(sg.trace(expr, wrt=[x, y]), ["x", "y"])
    ops = [n.op for n in fused.nodes]
    # tanh(xy), exp(x) and xy are computed once and shared by the value and both gradients.
    assert ops.count(Op.TANH) == 1 and ops.count(Op.EXP) == 1
    assert sum(1 for n in fused.nodes if n.op is Op.MUL and set(n.args) == set(fused.inputs)) == 1


def test_deterministic_output():
    expr = sympy.Piecewise((sympy.log(x) * y, x > 1), (sympy.tanh(y), True)) + sympy.Max(x, y)
    texts = {str(sg.compile(expr, wrt=[x, y])) for _ in range(3)}
    assert len(texts) == 1
