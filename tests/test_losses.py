"""Losses (symgrad.losses): values and gradients of compiled tensor kernels against mpmath and
numpy references and against finite differences, the stable forms at extreme logits,
clamping of probabilities at 0 and 1, reductions, float32, and bad input."""

import mpmath
import numpy as np
import pytest
import sympy

import symgrad as sg
from symgrad import losses

# A private mpmath context, so that other test modules keep mpmath's global precision.
MP = mpmath.MPContext()
MP.dps = 50


def _rng(seed):
    """A generator per test, so that each test sees the same numbers however it is selected."""
    return np.random.default_rng(seed)


def mp_sigmoid(u):
    return 1 / (1 + MP.exp(-MP.mpf(u)))


def mp_softplus(u):
    return MP.log1p(MP.exp(MP.mpf(u)))


def mp_logsumexp(row):
    row = [MP.mpf(float(v)) for v in row]
    top = max(row)
    return top + MP.log(sum(MP.exp(v - top) for v in row))


def _vector_kernel(loss_function, shape=("n",), dtype="float64", **kwargs):
    Y = sg.tensor("Y", shape, dtype)
    T = sg.tensor("T", shape, dtype)
    return sg.compile(loss_function(Y, T, **kwargs), wrt=[Y], inputs=[T])


def _run(kernel, y, t):
    with np.errstate(all="raise"):
        value, (gradient,) = kernel([y], T=t)
    return float(value), gradient


# ---------------------------------------------------------------------------------------------
# Binary cross-entropy from logits
# ---------------------------------------------------------------------------------------------

LOGITS = np.array([-1000.0, -700.0, -40.0, -3.0, -0.5, 0.0, 0.7, 5.0, 40.0, 700.0, 1000.0])


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_bce_with_logits_against_mpmath(reduction):
    kernel = _vector_kernel(losses.binary_cross_entropy_with_logits, reduction=reduction)
    n = LOGITS.size
    for t in [np.zeros(n), np.ones(n), np.linspace(0, 1, n)]:
        value, gradient = _run(kernel, LOGITS, t)
        per_element = [mp_softplus(z) - MP.mpf(tt) * MP.mpf(z) for z, tt in zip(LOGITS, t)]
        slopes = [mp_sigmoid(z) - MP.mpf(tt) for z, tt in zip(LOGITS, t)]
        divisor = n if reduction == "mean" else 1
        assert value == pytest.approx(float(sum(per_element) / divisor), rel=1e-14)
        assert np.all(np.isfinite(gradient))
        # sigma(z) - t at z = 40 is 1 - 4e-18 in exact arithmetic: an ulp of 1 in float64
        np.testing.assert_allclose(gradient, [float(s / divisor) for s in slopes], rtol=1e-14,
                                   atol=2e-16 / divisor)


def test_bce_with_logits_extremes_are_exact():
    kernel = _vector_kernel(losses.binary_cross_entropy_with_logits)
    assert _run(kernel, np.array([40.0]), np.array([0.0])) == (40.0, np.array([1.0]))
    value, gradient = _run(kernel, np.array([-1000.0]), np.array([1.0]))
    assert value == 1000.0 and gradient.tolist() == [-1.0]
    value, gradient = _run(kernel, np.array([1000.0, -1000.0]), np.array([1.0, 0.0]))
    assert value == 0.0 and gradient.tolist() == [0.0, 0.0]
    value, gradient = _run(kernel, np.array([1000.0, -1000.0]), np.array([0.0, 1.0]))
    assert value == 1000.0 and gradient.tolist() == [0.5, -0.5]


def test_bce_with_logits_matrix_and_gradcheck():
    rng = _rng(1)
    Z = sg.tensor("Z", ("n", 3))
    T = sg.tensor("T", ("n", 3))
    loss = losses.binary_cross_entropy_with_logits(Z, T)
    z = rng.normal(scale=3.0, size=(4, 3))
    t = rng.uniform(size=(4, 3))
    assert sg.gradcheck(loss, wrt=[Z], at={Z: z, T: t})
    value, (gradient,) = sg.compile(loss, wrt=[Z], inputs=[T])([z], T=t)
    expected = np.mean(np.logaddexp(0, z) - t * z)
    assert value == pytest.approx(expected, rel=1e-14)
    np.testing.assert_allclose(gradient, (1 / (1 + np.exp(-z)) - t) / z.size, rtol=1e-13)


def test_bce_with_logits_linear_model_gradient():
    # logistic regression: d/dw mean(softplus(Xw) - t Xw) = X^T (sigma(Xw) - t) / n
    rng = _rng(2)
    X = sg.tensor("X", ("n", 3))
    w = sg.tensor("w", (3, 1))
    T = sg.tensor("T", ("n", 1))
    loss = losses.binary_cross_entropy_with_logits(X @ w, T)
    x = rng.normal(size=(6, 3))
    w0 = rng.normal(size=(3, 1))
    t = (rng.uniform(size=(6, 1)) > 0.5).astype(float)
    value, (gradient,) = sg.compile(loss, wrt=[w], inputs=[X, T])([w0], X=x, T=t)
    z = x @ w0
    assert value == pytest.approx(float(np.mean(np.logaddexp(0, z) - t * z)), rel=1e-14)
    np.testing.assert_allclose(gradient, x.T @ (1 / (1 + np.exp(-z)) - t) / 6, rtol=1e-13)
    assert sg.gradcheck(loss, wrt=[w], at={w: w0, X: x, T: t})


# ---------------------------------------------------------------------------------------------
# Binary cross-entropy from probabilities
# ---------------------------------------------------------------------------------------------

def test_bce_of_sigmoid_uses_the_logits_form():
    Z = sg.tensor("Z", ("n",))
    T = sg.tensor("T", ("n",))
    from_probabilities = sg.compile(losses.binary_cross_entropy(sg.sigmoid(Z), T), wrt=[Z],
                                    inputs=[T])
    from_logits = sg.compile(losses.binary_cross_entropy_with_logits(Z, T), wrt=[Z],
                             inputs=[T])
    for t in [np.zeros(LOGITS.size), np.ones(LOGITS.size), np.linspace(0, 1, LOGITS.size)]:
        value, (gradient,) = from_probabilities([LOGITS], T=t)
        expected_value, (expected_gradient,) = from_logits([LOGITS], T=t)
        assert value == expected_value
        np.testing.assert_array_equal(gradient, expected_gradient)
    # |z| = 1000 on the wrong side: exactly 1000, not the clamped 100
    value, (gradient,) = from_probabilities([np.array([1000.0, -1000.0])], T=np.array([0., 1.]))
    assert value == 1000.0 and gradient.tolist() == [0.5, -0.5]
    value, (gradient,) = from_probabilities([np.array([40.0])], T=np.array([0.0]))
    assert value == 40.0 and gradient.tolist() == [1.0]


def test_bce_of_other_sigmoid_forms():
    Z = sg.tensor("Z", ("n",))
    T = sg.tensor("T", ("n",))
    # 1 / (1 + exp(-z)) is recognised as the sigmoid: the exact logits form
    p = 1 / (1 + sg.elementwise(lambda u: sympy.exp(-u), Z))
    kernel = sg.compile(losses.binary_cross_entropy(p, T), wrt=[Z], inputs=[T])
    value, (gradient,) = kernel([np.array([1000.0])], T=np.array([0.0]))
    assert value == 1000.0 and gradient.tolist() == [1.0]
    # (1 + tanh(z / 2)) / 2 is the same function but not the sigmoid op: the probability path,
    # clamped at -100, so at z = 1000, t = 0 the loss is 100 (finite) instead of 1000
    p = (1 + sg.tanh(Z / 2)) / 2
    kernel = sg.compile(losses.binary_cross_entropy(p, T), wrt=[Z], inputs=[T])
    value, _ = kernel([np.array([1000.0])], T=np.array([0.0]))
    assert value == 100.0
    z, t = np.array([0.3, -2.0]), np.array([1.0, 0.0])
    value, (gradient,) = kernel([z], T=t)
    assert value == pytest.approx(float(np.mean(np.logaddexp(0, z) - t * z)), rel=1e-14)
    np.testing.assert_allclose(gradient, (1 / (1 + np.exp(-z)) - t) / 2, rtol=1e-13)


def mp_bce(p, t):
    p, t = MP.mpf(p), MP.mpf(t)
    log_p = max(MP.log(p), MP.mpf(-100)) if p > 0 else MP.mpf(-100)
    log_not_p = max(MP.log1p(-p), MP.mpf(-100)) if p < 1 else MP.mpf(-100)
    return -(t * log_p + (1 - t) * log_not_p)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_bce_from_probabilities_against_mpmath(reduction):
    kernel = _vector_kernel(losses.binary_cross_entropy, reduction=reduction)
    p = np.array([1e-40, 1e-9, 0.02, 0.3, 0.5, 0.77, 0.999, 1 - 1e-12])
    divisor = p.size if reduction == "mean" else 1
    for t in [np.zeros(p.size), np.ones(p.size), np.linspace(0, 1, p.size)]:
        value, gradient = _run(kernel, p, t)
        expected = sum(mp_bce(pp, tt) for pp, tt in zip(p, t)) / divisor
        assert value == pytest.approx(float(expected), rel=1e-14)
        slopes = [-(MP.mpf(tt) / MP.mpf(pp) - (1 - MP.mpf(tt)) / (1 - MP.mpf(pp)))
                  for pp, tt in zip(p, t)]
        np.testing.assert_allclose(gradient, [float(s / divisor) for s in slopes], rtol=1e-13)
    P = sg.tensor("Y", ("n",))
    T = sg.tensor("T", ("n",))
    assert sg.gradcheck(losses.binary_cross_entropy(P, T), wrt=[P],
                        at={P: np.array([0.1, 0.45, 0.8]), T: np.array([1.0, 0.3, 0.0])})


def test_bce_from_probabilities_near_0_and_1_is_clamped_and_finite():
    kernel = _vector_kernel(losses.binary_cross_entropy, reduction="sum")
    # log p is clamped at -100 (p < e^-100 ~ 3.7e-44), as torch.nn.BCELoss does
    p = np.array([1e-300, 1e-50, 1e-40, 1 - 2**-53, 0.5])
    t = np.array([1.0, 1.0, 1.0, 0.0, 0.0])
    value, gradient = _run(kernel, p, t)
    expected = [100.0, 100.0, -np.log(1e-40), -np.log1p(-(1 - 2**-53)), np.log(2)]
    assert value == pytest.approx(sum(expected), rel=1e-14)
    assert np.all(np.isfinite(gradient))
    # past the clamp the loss is flat; before it, -1/p and 1/(1 - p)
    np.testing.assert_allclose(gradient, [0.0, 0.0, -1e40, 2.0**53, 2.0], rtol=1e-13)
    # exactly 0 and 1: a large finite loss, never inf or NaN
    Y = sg.tensor("Y", ("n",))
    T = sg.tensor("T", ("n",))
    value_only = sg.compile(losses.binary_cross_entropy(Y, T, reduction="sum"), wrt=[T],
                            inputs=[Y])
    value, _ = value_only([np.array([1.0, 0.0, 0.0, 1.0])], Y=np.array([0.0, 1.0, 0.0, 1.0]))
    assert value == 200.0


def test_bce_from_probabilities_gradient_is_finite_at_0_and_1():
    """The loss at p = 0 or 1 is finite (clamped), and so must its gradient be: a NaN here
    poisons every weight in training.  Where the clamp is not active (p = 0 with t = 0,
    p = 1 with t = 1: a perfect prediction, loss 0) the gradient is the ordinary
    d/dp -log(1 - p) = 1 and d/dp -log(p) = -1."""
    kernel = _vector_kernel(losses.binary_cross_entropy, reduction="sum")
    p = np.array([0.0, 1.0, 0.0, 1.0])
    t = np.array([0.0, 1.0, 1.0, 0.0])
    value, (gradient,) = kernel([p], T=t)
    assert value == 200.0
    assert np.all(np.isfinite(gradient)), gradient
    assert gradient[:2].tolist() == [1.0, -1.0]
    # the same through a saturated probability that is not the sigmoid op: p = 1 at z = 40
    Z = sg.tensor("Z", ("n",))
    T = sg.tensor("T", ("n",))
    p = (1 + sg.tanh(Z / 2)) / 2
    kernel = sg.compile(losses.binary_cross_entropy(p, T), wrt=[Z], inputs=[T])
    value, (gradient,) = kernel([np.array([40.0])], T=np.array([0.0]))
    assert value == 100.0
    assert np.all(np.isfinite(gradient)), gradient


# ---------------------------------------------------------------------------------------------
# Softmax cross-entropy
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_softmax_cross_entropy_extreme_logits(dtype):
    Z = sg.tensor("Z", ("n", 3), dtype)
    T = sg.tensor("T", ("n", 3), dtype)
    numpy_dtype = np.dtype(dtype)
    z = np.tile([1000.0, 0.0, -1000.0], (3, 1)).astype(numpy_dtype)
    t = np.eye(3, dtype=numpy_dtype)
    expected = [float(mp_logsumexp(row) - MP.fdot(target.tolist(), row.tolist()))
                for row, target in zip(z.astype(float), t.astype(float))]
    assert expected == pytest.approx([0.0, 1000.0, 2000.0], abs=1e-300)
    softmax = np.array([1.0, 0.0, 0.0])     # e^-1000 underflows
    for reduction, divisor in [("mean", 3), ("sum", 1)]:
        step = sg.compile(losses.softmax_cross_entropy(Z, T, reduction=reduction), wrt=[Z],
                          inputs=[T])
        with np.errstate(all="raise"):
            value, (gradient,) = step([z], T=t)
        assert value == sum(expected) / divisor
        assert np.all(np.isfinite(gradient))
        np.testing.assert_allclose(gradient, (softmax - t) / divisor,
                                   rtol=2 * np.finfo(numpy_dtype).eps)
        # one example at a time: each one-hot target separately
        for row in range(3):
            value, (gradient,) = step([z[row:row + 1]], T=t[row:row + 1])
            assert value == expected[row]
            np.testing.assert_array_equal(gradient[0], softmax - t[row])


def test_softmax_cross_entropy_against_mpmath_with_probability_targets():
    rng = _rng(3)
    Z = sg.tensor("Z", ("n", 4))
    T = sg.tensor("T", ("n", 4))
    loss = losses.softmax_cross_entropy(Z, T)
    z = rng.normal(scale=4.0, size=(5, 4))
    z[0] += 700.0          # a row whose naive exp would overflow
    t = rng.uniform(size=(5, 4))
    t /= t.sum(axis=1, keepdims=True)
    value, (gradient,) = sg.compile(loss, wrt=[Z], inputs=[T])([z], T=t)
    expected = sum(mp_logsumexp(row) - MP.fdot(target, row) for row, target in zip(z, t)) / 5
    assert value == pytest.approx(float(expected), rel=1e-13)
    softmax = [[MP.exp(v - mp_logsumexp(row)) for v in row] for row in z]
    np.testing.assert_allclose(gradient, (np.array(softmax, dtype=float) - t) / 5, rtol=1e-12,
                               atol=1e-17)
    t_unit = np.eye(4)[[0, 3, 1, 1, 2]]
    assert sg.gradcheck(loss, wrt=[Z], at={Z: z - z.mean(axis=1, keepdims=True), T: t_unit})


def test_softmax_cross_entropy_other_axis():
    rng = _rng(4)
    Z = sg.tensor("Z", (4, "n"))
    T = sg.tensor("T", (4, "n"))
    loss = losses.softmax_cross_entropy(Z, T, axis=0)
    z = rng.normal(size=(4, 3))
    t = np.eye(4)[:, [2, 0, 3]]
    value, (gradient,) = sg.compile(loss, wrt=[Z], inputs=[T])([z], T=t)
    log_softmax = z - np.log(np.exp(z).sum(axis=0, keepdims=True))
    assert value == pytest.approx(float(-(t * log_softmax).sum(axis=0).mean()), rel=1e-13)
    np.testing.assert_allclose(gradient, (np.exp(log_softmax) - t) / 3, rtol=1e-12)
    assert sg.gradcheck(loss, wrt=[Z], at={Z: z, T: t})


# ---------------------------------------------------------------------------------------------
# Perceptron criterion
# ---------------------------------------------------------------------------------------------

def test_perceptron_criterion_counts_only_misclassified_points():
    kernel = _vector_kernel(losses.perceptron_criterion)        # reduction="sum" by default
    y = np.array([2.0, -1.0, 0.5, -3.0, 0.0, 1e-3, 7.0])
    t = np.array([1.0, 1.0, -1.0, -1.0, 1.0, -1.0, -1.0])
    value, gradient = _run(kernel, y, t)
    # Rosenblatt's misclassified set includes the boundary t y = 0 (it adds 0 to the loss but
    # -t to the gradient, as the perceptron rule updates on it).
    misclassified = t * y <= 0
    assert misclassified.tolist() == [False, True, True, False, True, True, True]
    assert value == pytest.approx(1.0 + 0.5 + 1e-3 + 7.0, rel=1e-15)
    assert gradient.tolist() == np.where(misclassified, -t, 0.0).tolist()
    # all correct: zero loss, zero gradient
    value, gradient = _run(kernel, np.array([1.0, -2.0]), np.array([1.0, -1.0]))
    assert value == 0.0 and gradient.tolist() == [0.0, 0.0]
    mean = _vector_kernel(losses.perceptron_criterion, reduction="mean")
    value, gradient = _run(mean, y, t)
    assert value == pytest.approx((1.0 + 0.5 + 1e-3 + 7.0) / 7, rel=1e-15)
    np.testing.assert_allclose(gradient, np.where(misclassified, -t, 0.0) / 7, rtol=1e-15)


def test_perceptron_criterion_weight_gradient_is_rosenblatts_update():
    rng = _rng(5)
    X = sg.tensor("X", ("n", 3))
    w = sg.tensor("w", (3, 1))
    T = sg.tensor("T", ("n", 1))
    loss = losses.perceptron_criterion(X @ w, T)
    x = rng.normal(size=(8, 3))
    w0 = rng.normal(size=(3, 1))
    t = np.sign(rng.normal(size=(8, 1)))
    value, (gradient,) = sg.compile(loss, wrt=[w], inputs=[X, T])([w0], X=x, T=t)
    y = x @ w0
    wrong = (t * y < 0).ravel()
    assert 0 < wrong.sum() < 8
    assert value == pytest.approx(float(-(t * y)[wrong].sum()), rel=1e-14)
    np.testing.assert_allclose(gradient, -(x[wrong] * t[wrong]).sum(axis=0)[:, None],
                               rtol=1e-13)
    assert sg.gradcheck(loss, wrt=[w], at={w: w0, X: x, T: t})


# ---------------------------------------------------------------------------------------------
# Mean squared error
# ---------------------------------------------------------------------------------------------

def test_mean_squared_error():
    rng = _rng(6)
    assert losses.mse is losses.mean_squared_error
    Y = sg.tensor("Y", ("n", 3))
    T = sg.tensor("T", ("n", 3))
    y = rng.normal(size=(4, 3))
    t = rng.normal(size=(4, 3))
    for reduction, divisor in [("mean", 12), ("sum", 1)]:
        loss = losses.mse(Y, T, reduction=reduction)
        value, (gradient,) = sg.compile(loss, wrt=[Y], inputs=[T])([y], T=t)
        expected = MP.fsum((MP.mpf(a) - MP.mpf(b)) ** 2 for a, b in zip(y.ravel(), t.ravel()))
        assert value == pytest.approx(float(expected / divisor), rel=1e-14)
        np.testing.assert_allclose(gradient, 2 * (y - t) / divisor, rtol=1e-14)
        assert sg.gradcheck(loss, wrt=[Y], at={Y: y, T: t})
    # a number or a broadcasting tensor as the target
    value, (gradient,) = sg.compile(losses.mse(Y, 0.5), wrt=[Y])([y])
    assert value == pytest.approx(float(np.mean((y - 0.5) ** 2)), rel=1e-14)
    row = sg.tensor("R", (3,))
    r = rng.normal(size=3)
    value, (gradient,) = sg.compile(losses.mse(Y, row), wrt=[Y], inputs=[row])([y], R=r)
    assert value == pytest.approx(float(np.mean((y - r) ** 2)), rel=1e-14)
    np.testing.assert_allclose(gradient, 2 * (y - r) / 12, rtol=1e-14)


# ---------------------------------------------------------------------------------------------
# Every loss: sum vs mean, float32, gradcheck, bad input
# ---------------------------------------------------------------------------------------------

def _cases():
    """(name, loss function, prediction, target, examples counted by 'mean')."""
    rng = _rng(7)
    y = rng.normal(size=(5, 3))
    signs = np.sign(rng.normal(size=(5, 3)))
    probabilities = rng.uniform(0.05, 0.95, size=(5, 3))
    one_hot = np.eye(3)[[0, 2, 1, 1, 0]]
    return [
        ("perceptron_criterion", losses.perceptron_criterion, y, signs, 15),
        ("mean_squared_error", losses.mean_squared_error, y, rng.normal(size=(5, 3)), 15),
        ("binary_cross_entropy", losses.binary_cross_entropy, probabilities,
         (rng.uniform(size=(5, 3)) > 0.5).astype(float), 15),
        ("binary_cross_entropy_with_logits", losses.binary_cross_entropy_with_logits,
         3 * y, rng.uniform(size=(5, 3)), 15),
        ("softmax_cross_entropy", losses.softmax_cross_entropy, 3 * y, one_hot, 5),
    ]


CASES = _cases()


def _numpy_reference(name, y, t):
    """Per-element (or per-example) losses and the gradient of their sum, in float64."""
    if name == "perceptron_criterion":
        return np.maximum(-t * y, 0), np.where(t * y < 0, -t, 0.0)
    if name == "mean_squared_error":
        return (y - t) ** 2, 2 * (y - t)
    if name == "binary_cross_entropy":
        return -(t * np.log(y) + (1 - t) * np.log1p(-y)), -(t / y - (1 - t) / (1 - y))
    if name == "binary_cross_entropy_with_logits":
        return np.logaddexp(0, y) - t * y, 1 / (1 + np.exp(-y)) - t
    shifted = y - y.max(axis=1, keepdims=True)
    log_softmax = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return -(t * log_softmax).sum(axis=1), np.exp(log_softmax) - t


@pytest.mark.parametrize("case", CASES, ids=lambda case: case[0])
def test_sum_is_count_times_mean(case):
    name, function, y, t, count = case
    Y = sg.tensor("Y", ("n", 3))
    T = sg.tensor("T", ("n", 3))
    results = {}
    for reduction in ["mean", "sum"]:
        step = sg.compile(function(Y, T, reduction=reduction), wrt=[Y], inputs=[T])
        results[reduction] = step([y], T=t)
    (mean, (mean_gradient,)), (total, (sum_gradient,)) = results["mean"], results["sum"]
    assert total == pytest.approx(count * mean, rel=1e-14)
    np.testing.assert_allclose(sum_gradient, count * mean_gradient, rtol=1e-14)
    per_item, gradient = _numpy_reference(name, y, t)
    assert total == pytest.approx(float(per_item.sum()), rel=1e-13)
    np.testing.assert_allclose(sum_gradient, gradient, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case[0])
def test_gradcheck(case):
    name, function, y, t, _ = case
    Y = sg.tensor("Y", ("n", 3))
    T = sg.tensor("T", ("n", 3))
    for reduction in ["mean", "sum"]:
        assert sg.gradcheck(function(Y, T, reduction=reduction), wrt=[Y], at={Y: y, T: t})


@pytest.mark.parametrize("case", CASES, ids=lambda case: case[0])
def test_float32(case):
    name, function, y, t, count = case
    Y = sg.tensor("Y", ("n", 3), "float32")
    T = sg.tensor("T", ("n", 3), "float32")
    step = sg.compile(function(Y, T, reduction="mean"), wrt=[Y], inputs=[T])
    y32, t32 = y.astype(np.float32), t.astype(np.float32)
    value, (gradient,) = step([y32], T=t32)
    assert np.asarray(value).dtype == np.float32 and gradient.dtype == np.float32
    per_item, reference = _numpy_reference(name, y32.astype(np.float64), t32.astype(np.float64))
    assert float(value) == pytest.approx(float(per_item.sum()) / count, rel=2e-6)
    np.testing.assert_allclose(gradient, reference / count, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case[0])
def test_mismatched_shapes_raise_shape_error_naming_both(case):
    name, function, *_ = case
    with pytest.raises(sg.ShapeError) as error:
        function(sg.tensor("Y", (4, 3)), sg.tensor("T", (4, 2)))
    message = str(error.value)
    assert "(4, 3)" in message and "(4, 2)" in message and name in message
    with pytest.raises(sg.ShapeError) as error:
        function(sg.tensor("Y", ("n",)), sg.tensor("T", (5, 7)))
    assert "('n',)" in str(error.value) and "(5, 7)" in str(error.value)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case[0])
def test_bad_reduction_and_prediction_type(case):
    name, function, *_ = case
    Y = sg.tensor("Y", ("n", 3))
    T = sg.tensor("T", ("n", 3))
    for reduction in ["avg", "none", None, "Mean"]:
        with pytest.raises(ValueError, match="reduction"):
            function(Y, T, reduction=reduction)
    with pytest.raises(TypeError, match=name):
        function(np.zeros((2, 3)), T)


def test_losses_are_scalar_tensors():
    for name, function, *_ in CASES:
        loss = function(sg.tensor("Y", ("n", 3)), sg.tensor("T", ("n", 3)))
        assert isinstance(loss, sg.Tensor) and loss.shape == (), name
