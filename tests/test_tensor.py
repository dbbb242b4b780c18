"""Tensor programs end to end: shape errors at build time, compiled value and gradients against
the numpy reference interpreter and finite differences, symbolic batch sizes, dtypes, argument
checking of tensor kernels, and gradcheck on tensor kernels."""

import dataclasses
import sys

import numpy as np
import pytest
import sympy
from hypothesis import Phase, example, given, settings
from hypothesis import strategies as st

import symgrad as sg
from symgrad import ir
from symgrad.codegen.runtime.tensor_kernel import TensorKernel
from symgrad.ir.ops import Op
from symgrad.reference.evaluate import evaluate

RNG = np.random.default_rng(0)


# ---------------------------------------------------------------------------------------------
# 1. Shape errors when the graph is built
# ---------------------------------------------------------------------------------------------

def _shape_error(build):
    with pytest.raises(sg.ShapeError) as info:
        build()
    return str(info.value)


def test_matmul_shape_error_names_both_shapes():
    X = sg.tensor("X", ("n", 2))
    W = sg.tensor("W", (3, 4))
    message = _shape_error(lambda: X @ W)
    assert "('n', 2)" in message and "(3, 4)" in message
    message = _shape_error(lambda: sg.matmul(W, X))
    assert "(3, 4)" in message and "('n', 2)" in message
    v = sg.tensor("v", (2,))
    message = _shape_error(lambda: v @ X)
    assert "(2,)" in message and "('n', 2)" in message


def test_broadcast_shape_error_names_both_shapes():
    X = sg.tensor("X", ("n", 2))
    Y = sg.tensor("Y", ("m", 2))
    message = _shape_error(lambda: X + Y)
    assert "('n', 2)" in message and "('m', 2)" in message
    Z = sg.tensor("Z", ("n", 3))
    message = _shape_error(lambda: X * Z)
    assert "('n', 2)" in message and "('n', 3)" in message
    message = _shape_error(lambda: sg.where(X > 0, X, Y))
    assert "('n', 2)" in message and "('m', 2)" in message


def test_elementwise_shape_error_is_a_shape_error():
    # Tensors that do not broadcast, combined by a SymPy function or an activation with a
    # tensor parameter, are a shape error like ``X + Z`` (not an unsupported expression).
    X = sg.tensor("X", ("n", 2))
    Z = sg.tensor("Z", ("n", 3))
    message = _shape_error(lambda: sg.elementwise(sympy.Max, X, Z))
    assert "('n', 2)" in message and "('n', 3)" in message
    message = _shape_error(lambda: sg.prelu(X, sg.tensor("alpha", (3,))))
    assert "('n', 2)" in message and "(3,)" in message


def test_reshape_to_a_wrong_size():
    X = sg.tensor("X", ("n", 2))
    message = _shape_error(lambda: X.reshape("n", 3))
    assert "('n', 2)" in message and "('n', 3)" in message
    message = _shape_error(lambda: X.reshape(2, "m"))
    assert "('n', 2)" in message and "(2, 'm')" in message
    message = _shape_error(lambda: sg.tensor("W", (3, 4)).reshape(5, 2))
    assert "(3, 4)" in message and "(5, 2)" in message
    # The same size in another order is fine.
    assert X.reshape(2, "n").shape == (2, "n")
    assert X.reshape(("n", 2, 1)).shape == ("n", 2, 1)


def test_transpose_with_a_bad_permutation():
    X = sg.tensor("X", ("n", 2))
    for perm in [(0, 0), (1, 2), (0,), (0, 1, 2)]:
        message = _shape_error(lambda: X.transpose(*perm))
        assert str(list(perm)) in message and "[0, 1]" in message
    assert X.transpose(1, 0).shape == (2, "n")
    assert X.T.shape == (2, "n")


@pytest.mark.parametrize("reduce", ["sum", "mean", "max"])
@pytest.mark.parametrize("axis", [2, -3, (0, 2)])
def test_reduction_over_a_bad_axis(reduce, axis):
    X = sg.tensor("X", ("n", 2))
    message = _shape_error(lambda: getattr(X, reduce)(axis))
    assert "rank-2" in message
    assert str(axis if isinstance(axis, int) else 2) in message


def test_logsumexp_and_softmax_over_a_bad_axis():
    X = sg.tensor("X", ("n", 2))
    with pytest.raises(sg.ShapeError):
        sg.logsumexp(X, axis=2)
    with pytest.raises(sg.ShapeError):
        sg.softmax(X, axis=-3)


# ---------------------------------------------------------------------------------------------
# 2. Random tensor programs: compiled value and gradients against the reference interpreter
#    and against finite differences
# ---------------------------------------------------------------------------------------------

K = 3   # the width of every intermediate (n, K) value


def _positive(a):
    return a * a + 0.5


# Each op takes the latest value ``a``, a value ``b`` from the pool and the arguments ``p``
# (W: (K, K), v: (K,), s: (), X: (n, K), Y: (n, 1)) and returns an (n, K) tensor.
OPS = {
    # elementwise
    "neg": lambda a, b, p: -a,
    "exp": lambda a, b, p: sg.elementwise(sympy.exp, sg.tanh(a)),
    "gauss": lambda a, b, p: sg.elementwise(lambda u: sympy.exp(-u**2 / 2), a),
    "tanh": lambda a, b, p: sg.tanh(a),
    "sigmoid": lambda a, b, p: sg.sigmoid(a),
    "softplus": lambda a, b, p: sg.softplus(a),
    "log": lambda a, b, p: sg.elementwise(sympy.log, _positive(a)),
    "sqrt": lambda a, b, p: sg.elementwise(sympy.sqrt, _positive(a)),
    "pow": lambda a, b, p: _positive(a) ** 1.5,
    "square": lambda a, b, p: a ** 2,
    "abs": lambda a, b, p: abs(a),
    "add": lambda a, b, p: a + b,
    "sub": lambda a, b, p: b - a,
    "mul": lambda a, b, p: a * b,
    "div": lambda a, b, p: a / _positive(b),
    "rdiv": lambda a, b, p: 1.0 / _positive(a),
    "max": lambda a, b, p: sg.elementwise(sympy.Max, a, b),
    "min": lambda a, b, p: sg.elementwise(sympy.Min, a, 0.25 * b),
    "relu": lambda a, b, p: sg.relu(a),
    "where": lambda a, b, p: sg.where(a > b, sg.tanh(a), b * 0.5),
    "affine": lambda a, b, p: 2.0 * a - 1.0,
    # broadcasting against (K,), (n, 1) and () values
    "add_v": lambda a, b, p: a + p["v"],
    "mul_v": lambda a, b, p: p["v"] * a,
    "add_Y": lambda a, b, p: a + p["Y"],
    "mul_Y": lambda a, b, p: a * p["Y"],
    "mul_s": lambda a, b, p: p["s"] * a,
    "div_v": lambda a, b, p: a / _positive(p["v"]),
    # matrix products and transposes
    "matmul_W": lambda a, b, p: a @ p["W"],
    "matmul_WT": lambda a, b, p: a @ p["W"].T,
    "gram": lambda a, b, p: 0.2 * (a @ (b.T @ p["X"])),
    "transposes": lambda a, b, p: (p["W"] @ a.T).T,
    # reshapes
    "reshape_T": lambda a, b, p: a.reshape(K, "n").T,
    "reshape_3d": lambda a, b, p: a.reshape("n", K, 1).sum(axis=2) + a.reshape(
        "n", 1, K).max(axis=1),
    # reductions broadcast back
    "center_max": lambda a, b, p: a - a.max(axis=1, keepdims=True),
    "mean_rows": lambda a, b, p: a * a.mean(axis=0, keepdims=True),
    "sum_cols": lambda a, b, p: a + b.sum(axis=1, keepdims=True),
    "max_rows": lambda a, b, p: b * a.max(axis=0, keepdims=True),
    "softmax": lambda a, b, p: sg.softmax(a, axis=1),
    "log_softmax": lambda a, b, p: sg.log_softmax(a, axis=1),
    "logsumexp": lambda a, b, p: a - sg.logsumexp(a, axis=1, keepdims=True),
    "mean_all": lambda a, b, p: a - a.mean(),
}

# Reductions of the final (n, K) value to a scalar.
FINAL = {
    "sum": lambda a, p: a.sum(),
    "mean": lambda a, p: a.mean(),
    "max": lambda a, p: a.max(),
    "sum0_dot_v": lambda a, p: (a.sum(axis=0) * p["v"]).sum(),
    "mean1_mean": lambda a, p: a.mean(axis=1).mean(),
    "max1_sum": lambda a, p: a.max(axis=1).sum(),
    "TY": lambda a, p: (a.T @ p["Y"]).sum(),
    "logsumexp": lambda a, p: sg.logsumexp(a, axis=1).mean(),
    "squares": lambda a, p: (a ** 2).mean(axis=(0, 1)),
}

PARAM_SHAPES = {"W": (K, K), "v": (K,), "s": ()}
INPUT_SHAPES = {"X": ("n", K), "Y": ("n", 1)}


def _build_program(program, dtype):
    """The loss of ``program`` over tensors of ``dtype``, with its parameters and inputs."""
    instructions, final = program
    p = {name: sg.tensor(name, shape, dtype)
         for name, shape in {**PARAM_SHAPES, **INPUT_SHAPES}.items()}
    pool = [p["X"], p["X"] @ p["W"].T + p["v"]]
    for op, index in instructions:
        pool.append(OPS[op](pool[-1], pool[index % len(pool)], p))
    loss = FINAL[final](pool[-1], p)
    return loss, [p[n] for n in PARAM_SHAPES], [p[n] for n in INPUT_SHAPES]


def _random_arguments(seed, n, dtype):
    rng = np.random.default_rng(seed)
    params = [rng.uniform(-1, 1, shape).astype(dtype) for shape in PARAM_SHAPES.values()]
    inputs = [rng.uniform(-1, 1, tuple(n if d == "n" else d for d in shape)).astype(dtype)
              for shape in INPUT_SHAPES.values()]
    return params, inputs


def _assert_close_to_reference(got, want, rtol, atol_scale, term_scale=1.0):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape
    assert got.dtype == want.dtype
    # atol: sums and products are accumulated in another order than numpy's, so a result
    # that cancels to far below its terms can differ by a few ulps of the terms (the largest
    # value the function computes on the way, ``term_scale``).
    atol = atol_scale * max(1.0, float(np.max(np.abs(want), initial=0.0)), term_scale)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, equal_nan=True)


def _term_scale(function, *args):
    """The largest finite magnitude among the values ``function`` computes on ``args``."""
    nodes = [n for n in function.nodes if n.dtype != "bool" and n.op is not Op.INPUT]
    values = evaluate(ir.Function(function.inputs, nodes), *args)
    return max((float(np.max(np.abs(v[np.isfinite(v)]), initial=0.0)) for v in values),
               default=0.0)


programs = st.tuples(
    st.lists(st.tuples(st.sampled_from(sorted(OPS)), st.integers(0, 20)), min_size=1,
             max_size=6),
    st.sampled_from(sorted(FINAL)))


# No shrinking: every shrink step compiles two kernels, and a failing program is at most six
# instructions long anyway.
@settings(max_examples=35, deadline=None, report_multiple_bugs=False,
          phases=(Phase.explicit, Phase.reuse, Phase.generate))
@given(program=programs, seed=st.integers(0, 2**32 - 1),
       n=st.one_of(st.integers(1, 6), st.sampled_from([17, 64])))
# Losses that cancel to 0 after several sums: their values and gradients are rounding noise,
# larger in the kernel's summation order than in numpy's.
@example(program=([("max_rows", 15), ("div_v", 11), ("mean_all", 11), ("div_v", 12),
                   ("max_rows", 15), ("mean_all", 11)], "sum"), seed=11, n=17)
@example(program=([("sum_cols", 13), ("sum_cols", 13), ("center_max", 3), ("sum_cols", 13),
                   ("add_Y", 8), ("mean_all", 19)], "mean"), seed=406168, n=64)
def test_random_programs_match_reference_and_finite_differences(program, seed, n):
    # float64: the kernel against the reference interpreter on the same fused graph.
    loss, params, inputs = _build_program(program, "float64")
    step = sg.compile(loss, wrt=params, inputs=inputs)
    param_values, input_values = _random_arguments(seed, n, np.float64)
    value, grads = step(param_values, *input_values)
    expected = evaluate(step.function, *param_values, *input_values)
    assert len(grads) == len(params)
    scale = _term_scale(step.function, *param_values, *input_values)
    _assert_close_to_reference(value, expected[0], 1e-12, 1e-13, scale)
    for grad, want, param in zip(grads, expected[1:], params):
        assert grad.shape == param.shape
        _assert_close_to_reference(grad, want, 1e-12, 1e-13, scale)

    # Central finite differences on a few entries of every parameter.
    if np.isfinite(value):
        eps = 1e-6
        for k, param in enumerate(param_values):
            for index in list(np.ndindex(*param.shape))[:3]:
                up = [q.copy() for q in param_values]
                down = [q.copy() for q in param_values]
                up[k][index] += eps
                down[k][index] -= eps
                above = (step(up, *input_values)[0] - value) / eps
                below = (value - step(down, *input_values)[0]) / eps
                if abs(above - below) > 1e-3 * (1 + abs(above) + abs(below)):
                    continue        # a kink (where, max, min) lies within eps: no derivative
                numeric = (above + below) / 2
                analytic = grads[k][index]
                assert abs(analytic - numeric) <= 1e-5 * (1 + abs(value)) + 1e-4 * abs(numeric), \
                    (params[k].name, index, analytic, numeric)

    # float32: the same program built in float32 computes in float32.
    loss32, params32, inputs32 = _build_program(program, "float32")
    step32 = sg.compile(loss32, wrt=params32, inputs=inputs32)
    param32 = [q.astype(np.float32) for q in param_values]
    input32 = [q.astype(np.float32) for q in input_values]
    value32, grads32 = step32(param32, *input32)
    expected32 = evaluate(step32.function, *param32, *input32)
    scale32 = _term_scale(step32.function, *param32, *input32)
    assert value32.dtype == np.float32
    _assert_close_to_reference(value32, expected32[0], 1e-4, 1e-5, scale32)
    for grad, want in zip(grads32, expected32[1:]):
        assert grad.dtype == np.float32
        _assert_close_to_reference(grad, want, 1e-4, 1e-5, scale32)


def test_a_fixed_program_against_hand_written_numpy():
    """An independent check of the oracle itself on one program with every kind of op."""
    W = sg.tensor("W", (3, 3))
    v = sg.tensor("v", (3,))
    X = sg.tensor("X", ("n", 3))
    Y = sg.tensor("Y", ("n", 1))
    H = sg.tanh(X @ W.T + v)
    loss = (sg.softmax(H * Y, axis=1).max(axis=1) + H.reshape(3, "n").T.sum(axis=1)).mean()
    step = sg.compile(loss, wrt=[W, v], inputs=[X, Y])
    w, b = RNG.normal(size=(3, 3)), RNG.normal(size=3)
    x, y = RNG.normal(size=(5, 3)), RNG.normal(size=(5, 1))

    def numpy_loss(w, b):
        h = np.tanh(x @ w.T + b)
        z = h * y
        e = np.exp(z - z.max(axis=1, keepdims=True))
        soft = e / e.sum(axis=1, keepdims=True)
        return np.mean(soft.max(axis=1) + h.reshape(3, 5).T.sum(axis=1))

    value, (dw, db) = step([w, b], X=x, Y=y)
    assert value == pytest.approx(numpy_loss(w, b), rel=1e-13)
    eps = 1e-6
    for k, (array, grad) in enumerate([(w, dw), (b, db)]):
        for index in np.ndindex(*array.shape):
            up, down = array.copy(), array.copy()
            up[index] += eps
            down[index] -= eps
            args_up = [up, b] if k == 0 else [w, up]
            args_down = [down, b] if k == 0 else [w, down]
            numeric = (numpy_loss(*args_up) - numpy_loss(*args_down)) / (2 * eps)
            assert grad[index] == pytest.approx(numeric, rel=1e-6, abs=1e-8)


def test_gradient_of_a_sum_of_a_matrix_product():
    """The cotangent of ``sum(X @ W.T)`` is a constant matrix of ones, and the gradient is a
    product with it (a common loss: the sum or mean of a linear layer's output)."""
    W = sg.tensor("W", (2, 3))
    X = sg.tensor("X", ("n", 3))
    x, w = RNG.normal(size=(4, 3)), RNG.normal(size=(2, 3))
    for loss, scale in [((X @ W.T).sum(), 1.0), ((X @ W.T).mean(), 1 / 8)]:
        step = sg.compile(loss, wrt=[W], inputs=[X])
        value, (grad,) = step([w], X=x)
        assert value == pytest.approx(scale * (x @ w.T).sum(), rel=1e-13)
        np.testing.assert_allclose(grad, scale * np.ones((2, 4)) @ x, rtol=1e-13)


def test_gradient_through_where_after_a_matrix_product():
    """The branch mask of ``where`` must apply to the cotangent of the product, before it is
    contracted into the gradient of ``W``."""
    W = sg.tensor("W", (3, 3))
    X = sg.tensor("X", ("n", 3))
    Z = X @ W
    step = sg.compile((sg.where(Z > 0, Z, 0.0) ** 2).sum(), wrt=[W], inputs=[X])
    x, w = RNG.normal(size=(5, 3)), RNG.normal(size=(3, 3))
    value, (grad,) = step([w], X=x)
    r = np.maximum(x @ w, 0)
    assert value == pytest.approx((r ** 2).sum(), rel=1e-13)
    np.testing.assert_allclose(grad, x.T @ (2 * r), rtol=1e-13)


def test_gradient_through_where_after_a_square_matrix_product():
    """With square static shapes the misplaced mask even broadcasts, giving a wrong gradient
    rather than an error."""
    W = sg.tensor("W", (3, 3))
    X = sg.tensor("X", (3, 3))
    Z = X @ W
    step = sg.compile((sg.where(Z > 0, Z, 0.0) ** 2).sum(), wrt=[W], inputs=[X])
    x, w = np.random.default_rng(0).normal(size=(3, 3)), np.random.default_rng(1).normal(
        size=(3, 3))
    _, (grad,) = step([w], X=x)
    np.testing.assert_allclose(grad, x.T @ (2 * np.maximum(x @ w, 0)), rtol=1e-13)


# ---------------------------------------------------------------------------------------------
# 3. One kernel for every batch size
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def regression():
    """A small least-squares model with a mean over the batch, compiled once."""
    W = sg.tensor("W", (2, 3))
    b = sg.tensor("b", (2,))
    X = sg.tensor("X", ("n", 3))
    T = sg.tensor("T", ("n", 2))
    loss = ((sg.tanh(X @ W.T + b) - T) ** 2).mean()
    step = sg.compile(loss, wrt=[W, b], inputs=[X, T])
    params = [RNG.normal(size=(2, 3)), RNG.normal(size=2)]
    return step, params


def _numpy_regression(params, x, t):
    w, b = params
    h = np.tanh(x @ w.T + b)
    with np.errstate(invalid="ignore", divide="ignore"):
        loss = np.mean((h - t) ** 2)
        delta = 2 * (h - t) / t.size * (1 - h ** 2)
    return loss, [delta.T @ x, delta.sum(axis=0)]


@pytest.mark.parametrize("n", [1, 7, 64])
def test_symbolic_batch_size(regression, n):
    step, params = regression
    x, t = RNG.normal(size=(n, 3)), RNG.normal(size=(n, 2))
    value, grads = step(params, X=x, T=t)
    want_value, want_grads = _numpy_regression(params, x, t)
    assert value == pytest.approx(want_value, rel=1e-12)
    for got, want in zip(grads, want_grads):
        np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-14)
    for got, want in zip((value, *grads), evaluate(step.function, *params, x, t)):
        _assert_close_to_reference(got, want, 1e-12, 1e-14)


def test_empty_batch_gives_nan_mean_like_numpy(regression):
    step, params = regression
    x, t = np.empty((0, 3)), np.empty((0, 2))
    value, grads = step(params, X=x, T=t)
    with pytest.warns(RuntimeWarning):
        assert np.isnan(np.mean(np.empty((0, 2))))
    assert np.isnan(value)
    expected = evaluate(step.function, *params, x, t)
    for got, want, param in zip(grads, expected[1:], params):
        assert got.shape == param.shape
        np.testing.assert_array_equal(got, want)
    # And the kernel still works after an empty batch.
    x, t = RNG.normal(size=(4, 3)), RNG.normal(size=(4, 2))
    assert step(params, X=x, T=t)[0] == pytest.approx(_numpy_regression(params, x, t)[0])


def test_empty_batch_sum_is_zero():
    X = sg.tensor("X", ("n", 3))
    w = sg.tensor("w", (3,))
    step = sg.compile((sg.sigmoid(X * w)).sum(), wrt=[w], inputs=[X])
    value, (grad,) = step([np.ones(3)], X=np.empty((0, 3)))
    assert value == 0.0
    np.testing.assert_array_equal(grad, np.zeros(3))


# ---------------------------------------------------------------------------------------------
# 4. dtypes
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_kernels_compute_in_their_dtype(dtype):
    W = sg.tensor("W", (2, 3), dtype)
    X = sg.tensor("X", ("n", 3), dtype)
    loss = ((X @ W.T) ** 2 * 0.1).sum()
    step = sg.compile(loss, wrt=[W], inputs=[X])
    assert step.dtype == dtype
    assert all(node.dtype in (dtype, "bool") for node in step.function.nodes)
    x = np.full((3, 3), 1.0, dtype)
    w = np.full((2, 3), 1.0, dtype)
    value, (grad,) = step([w], X=x)
    assert np.asarray(value).dtype == np.dtype(dtype)
    assert grad.dtype == np.dtype(dtype)
    eps = float(np.finfo(dtype).eps)
    assert value == pytest.approx(5.4, rel=8 * eps)
    np.testing.assert_allclose(grad, np.full((2, 3), 1.8), rtol=8 * eps)
    # In float32 the rounding is float32's: far from float64's 5.4.
    if dtype == "float32":
        assert float(value) != 5.4


def test_float32_and_float64_builds_agree_to_float32_precision():
    values = {}
    for dtype in ("float32", "float64"):
        W = sg.tensor("W", (4, 3), dtype)
        X = sg.tensor("X", ("n", 3), dtype)
        T = sg.tensor("T", ("n", 4), dtype)
        loss = sg.losses.softmax_cross_entropy(X @ W.T, T)
        step = sg.compile(loss, wrt=[W], inputs=[X, T])
        rng = np.random.default_rng(1)
        w, x = rng.normal(size=(4, 3)), rng.normal(size=(10, 3))
        t = np.eye(4)[rng.integers(0, 4, 10)]
        values[dtype] = step([w.astype(dtype)], X=x.astype(dtype), T=t.astype(dtype))
    (v32, (g32,)), (v64, (g64,)) = values["float32"], values["float64"]
    assert g32.dtype == np.float32 and g64.dtype == np.float64
    assert v32 == pytest.approx(v64, rel=1e-5)
    np.testing.assert_allclose(g32, g64, rtol=1e-4, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# 5. Bad arguments to a tensor kernel
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def classifier():
    W = sg.tensor("W", (2, 3))
    b = sg.tensor("b", (2,))
    X = sg.tensor("X", ("n", 3))
    T = sg.tensor("T", ("n", 2))
    step = sg.compile(sg.losses.softmax_cross_entropy(X @ W.T + b, T), wrt=[W, b],
                      inputs=[X, T])
    rng = np.random.default_rng(2)
    params = [rng.normal(size=(2, 3)), rng.normal(size=2)]
    x = rng.normal(size=(5, 3))
    t = np.eye(2)[rng.integers(0, 2, 5)]
    return step, params, x, t


def _fails(error, pattern, call):
    with pytest.raises(error, match=pattern):
        call()


def test_wrong_params(classifier):
    step, (w, b), x, t = classifier
    _fails(TypeError, "2 arrays", lambda: step([w], X=x, T=t))
    _fails(TypeError, "2 arrays", lambda: step([w, b, b], X=x, T=t))
    # Even where the arguments all together would fill the kernel's inputs by position.
    _fails(TypeError, "2 arrays", lambda: step([w], b, x, t))
    _fails(TypeError, "2 arrays", lambda: step([w, b, x], t))
    _fails(TypeError, "sequence", lambda: step(w, X=x, T=t))
    _fails(TypeError, "sequence", lambda: step(None, X=x, T=t))
    _fails(ValueError, "'W'.*\\(2, 3\\).*\\(3, 2\\)", lambda: step([w.T.copy(), b], X=x, T=t))
    _fails(ValueError, "'b'.*\\(2,\\).*\\(3,\\)", lambda: step([w, np.zeros(3)], X=x, T=t))
    _fails(ValueError, "'b'", lambda: step([w, b[None]], X=x, T=t))
    _fails(TypeError, "'W'.*float64.*float32",
           lambda: step([w.astype(np.float32), b], X=x, T=t))
    _fails(TypeError, "'b'.*int", lambda: step([w, np.array([1, 2])], X=x, T=t))
    _fails(TypeError, "missing", lambda: step({"W": w}, X=x, T=t))
    _fails(TypeError, "unknown.*'c'", lambda: step({"W": w, "b": b, "c": b}, X=x, T=t))


def test_wrong_inputs(classifier):
    step, params, x, t = classifier
    _fails(TypeError, "missing.*'T'", lambda: step(params, X=x))
    _fails(TypeError, "missing.*'X'.*'T'", lambda: step(params))
    _fails(TypeError, "unknown input 'Z'", lambda: step(params, X=x, T=t, Z=t))
    _fails(TypeError, "'X' given twice", lambda: step(params, x, t, X=x))
    _fails(TypeError, "2 inputs", lambda: step(params, x, t, t))
    _fails(ValueError, "'X'.*\\(n, 3\\)", lambda: step(params, X=x[:, :2], T=t))
    _fails(ValueError, "'X'", lambda: step(params, X=x.ravel(), T=t))
    _fails(TypeError, "'T'.*float64.*float32", lambda: step(params, X=x, T=t.astype(np.float32)))


def test_mismatched_batch_sizes_name_both_arguments_and_the_size(classifier):
    step, params, x, t = classifier
    with pytest.raises(ValueError) as info:
        step(params, X=x, T=t[:4])
    message = str(info.value)
    assert "'n'" in message and "'X'" in message and "'T'" in message
    assert "5" in message and "4" in message


@pytest.mark.parametrize("bad", [
    np.zeros((5, 3), complex),
    np.zeros((5, 3), bool),
    np.full((5, 3), "a"),
    np.full((5, 3), None, object),
    [[1.0, 2.0], [3.0]],
    "text",
    None,
])
def test_non_numeric_arrays_are_refused_naming_the_argument(classifier, bad):
    step, params, x, t = classifier
    with pytest.raises((TypeError, ValueError), match="'X'"):
        step(params, X=bad, T=t)
    with pytest.raises((TypeError, ValueError), match="'W'"):
        step([bad, params[1]], X=x, T=t)


def test_python_lists_of_floats_are_accepted(classifier):
    step, params, x, t = classifier
    value, grads = step([params[0].tolist(), params[1].tolist()], X=x.tolist(), T=t.tolist())
    want_value, want_grads = step(params, X=x, T=t)
    assert value == want_value
    for got, want in zip(grads, want_grads):
        np.testing.assert_array_equal(got, want)


def test_non_contiguous_arguments_give_the_same_result(classifier):
    step, params, x, t = classifier
    want_value, want_grads = step(params, X=x, T=t)
    w, b = params

    def read_only(a):
        a = a.copy()
        a.flags.writeable = False
        return a

    variants = [
        ([np.asfortranarray(w), b], np.asfortranarray(x), np.asfortranarray(t)),
        ([np.ascontiguousarray(w.T).T, b], np.ascontiguousarray(x.T).T, t),
        ([w, np.repeat(b, 2)[::2]], np.repeat(x, 2, axis=0)[::2], np.repeat(t, 3, axis=1)[:, ::3]),
        ([w[::-1][::-1], b[::-1].copy()[::-1]], x[::-1].copy()[::-1], t),
        ([read_only(w), read_only(b)], read_only(x), read_only(t)),
        ([np.broadcast_to(w, (2, 2, 3))[0], b], x, t),
    ]
    for param_values, x_view, t_view in variants:
        value, grads = step(param_values, X=x_view, T=t_view)
        assert value == want_value
        for got, want in zip(grads, want_grads):
            np.testing.assert_array_equal(got, want)
    # The arguments are not written to.
    np.testing.assert_array_equal(variants[0][1], x)


def test_batch_sizes_change_between_calls_and_threads_call_at_once(classifier):
    # Temporaries are kept between calls (per set of sizes) and a call from another thread
    # must never share them: every result equals a fresh serial one.
    import concurrent.futures

    step, params, _, _ = classifier
    rng = np.random.default_rng(5)
    batches = []
    for n in [5, 3, 5, 0, 7, 3, 64, 5] * 3:
        x = rng.normal(size=(n, 3))
        batches.append((x, np.eye(2)[rng.integers(0, 2, n)]))
    serial = [step(params, X=x, T=t) for x, t in batches]
    for (x, t), (value, grads) in zip(batches, serial):
        reference = evaluate(step.function, *params, x, t)
        np.testing.assert_allclose(value, reference[0], rtol=1e-12, equal_nan=True)
        for got, want in zip(grads, reference[1:]):
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        threaded = list(pool.map(lambda batch: step(params, X=batch[0], T=batch[1]),
                                 batches * 4))
    for (value, grads), (want_value, want_grads) in zip(threaded, serial * 4):
        np.testing.assert_array_equal(value, want_value)
        for got, want in zip(grads, want_grads):
            np.testing.assert_array_equal(got, want)


def test_native_call_and_ctypes_entry_agree(classifier):
    step, params, x, t = classifier
    if step._call_native is None:
        pytest.skip("no native call entry here (codegen.process.array_new_index)")
    value, grads = step(params, X=x, T=t)
    call, step._call_native = step._call_native, None
    try:
        ctypes_value, ctypes_grads = step(params, X=x, T=t)
    finally:
        step._call_native = call
    assert value == ctypes_value
    for got, want in zip(grads, ctypes_grads):
        np.testing.assert_array_equal(got, want)


def test_native_call_accepts_only_what_the_kernel_reads_directly(classifier):
    step, (w, b), x, t = classifier
    call = step._call_native
    if call is None:
        pytest.skip("no native call entry here (codegen.process.array_new_index)")
    assert len(call(w, b, x, t)) == 3
    assert call(w, b, x[:0], t[:0])[1].shape == (2, 3)

    class Subclass(np.ndarray):
        pass
    rejected = [
        (w, b, x, t[:4]),                               # sizes of n disagree
        (w.T.copy(), b, x, t),                          # a static size differs
        (w, b[None], x, t),                             # another number of dimensions
        (np.asfortranarray(w), b, x, t),                # not C-contiguous
        (w, b, x[::2], t[::2]),                         # strided
        (w.astype(np.float32), b, x, t),                # another dtype
        (w, b.astype(">f8"), x, t),                     # another byte order
        (w.view(Subclass), b, x, t),                    # not exactly an ndarray
        (w.tolist(), b, x, t), (w, 1.0, x, t), (w, None, x, t),
        (w, b, x), (w, b, x, t, t),                     # another number of arguments
    ]
    for arguments in rejected:
        assert call(*arguments) is None
    # What the native call declines, the Python checks accept or report.
    want_value, _ = step([w, b], x, t)
    assert step([np.asfortranarray(w), b], x, t)[0] == want_value
    with pytest.raises(ValueError, match="size 'n'"):
        step([w, b], x, t[:4])


def test_native_call_runs_large_calls_on_the_workers_once_they_are_there(classifier):
    # The native entry runs small calls alone; a large one on the worker threads, or alone
    # for one thread; while workers are wanted but not there yet it returns None, running
    # nothing, and the Python path (which starts them) takes the call.
    from symgrad.codegen.lower import abi
    from symgrad.codegen.runtime import process, workers

    step, (w, b), x, t = classifier
    call = step._call_native
    if call is None:
        pytest.skip("no native call entry here (codegen.process.array_new_index)")
    value, grads = step([w, b], x, t)
    outputs = call(w, b, x, t)
    assert type(outputs) is tuple and len(outputs) == 3
    assert outputs[0][()] == value
    for got, want in zip(outputs[1:], grads):
        np.testing.assert_array_equal(got, want)
    n = abi.MIN_PARALLEL_ELEMENTS          # work for threads
    big_x, big_t = np.zeros((n, 3)), np.zeros((n, 2))
    big_t[:, 0] = 1
    want = np.logaddexp(*b) - b[0]
    runtime = process.runtime()
    threads, runner = runtime[abi.RUNTIME_THREADS], runtime[abi.RUNTIME_RUNNER]
    try:
        runtime[abi.RUNTIME_THREADS] = 2
        runtime[abi.RUNTIME_RUNNER] = 0    # no workers yet
        assert call(w, b, big_x, big_t) is None
        runtime[abi.RUNTIME_RUNNER] = runner
        runtime[abi.RUNTIME_THREADS] = 1
        alone = call(w, b, big_x, big_t)
        assert alone[0][()] == pytest.approx(want)
        workers.start(1)
        runtime[abi.RUNTIME_THREADS] = 2
        before = workers.jobs_run()
        for _ in range(50):
            shared = call(w, b, big_x, big_t)
            assert shared[0][()] == alone[0][()]
            for got, expected in zip(shared[1:], alone[1:]):
                np.testing.assert_array_equal(got, expected)
            if workers.jobs_run() > before:
                break
        assert workers.jobs_run() > before
    finally:
        runtime[abi.RUNTIME_THREADS] = threads
    assert step([w, b], big_x, big_t)[0] == pytest.approx(want)


def test_native_call_outputs_are_fresh_arrays_and_leak_nothing():
    # A kernel with partial sums over chunks of the batch (a reduction over n) and outputs of
    # several shapes; the native call gives what the Python path gives, bit for bit.
    W = sg.tensor("W", (4, 16))
    X = sg.tensor("X", ("n", 16))
    step = sg.compile((sg.tanh(X @ W.T) ** 2).sum() + (X * X).sum(), wrt=[W], inputs=[X])
    function = sg.compile_function(
        [sg.tanh(X).sum(axis=0), sg.elementwise(sympy.exp, X) * 2, (X * X).sum()], [X])
    rng = np.random.default_rng(6)
    w = rng.normal(size=(4, 16))
    for n in [0, 1, 5, 3000]:                   # 3000 rows: several chunks, partial sums
        x = rng.normal(size=(n, 16))
        for kernel, arguments in ((step, ([w], x)), (function, (x,))):
            if kernel._call_native is None:
                pytest.skip("no native call entry here (codegen.process.array_new_index)")
            before = [sys.getrefcount(a) for a in (w, x)]
            native = kernel(*arguments)
            for _ in range(200):
                kernel(*arguments)
            assert [sys.getrefcount(a) for a in (w, x)] == before
            call, kernel._call_native = kernel._call_native, None
            try:
                python = kernel(*arguments)
            finally:
                kernel._call_native = call
            flat_native = [native[0], *native[1]] if kernel is step else list(native)
            flat_python = [python[0], *python[1]] if kernel is step else list(python)
            for got, want in zip(flat_native, flat_python):
                np.testing.assert_array_equal(got, want)
            outputs = list(kernel._call_native(*([w, x] if kernel is step else [x])))
            # Each output referenced by the list alone (and getrefcount's argument).
            counts = [sys.getrefcount(outputs[index]) for index in range(len(outputs))]
            assert counts == [2] * len(outputs)
            for array in outputs:
                assert type(array) is np.ndarray and array.dtype == np.float64
                assert array.flags.c_contiguous and array.flags.writeable and array.flags.owndata


def test_params_as_dict_give_grads_as_dict(classifier):
    step, params, x, t = classifier
    value, grads = step({"b": params[1], "W": params[0]}, X=x, T=t)
    assert set(grads) == {"W", "b"}
    want_value, (dw, db) = step(params, x, t)
    assert value == want_value
    np.testing.assert_array_equal(grads["W"], dw)
    np.testing.assert_array_equal(grads["b"], db)


def test_scalar_inputs_accept_python_numbers():
    w = sg.tensor("w", (3,))
    c = sg.tensor("c")
    X = sg.tensor("X", ("n", 3))
    step = sg.compile((sg.tanh(X * w) * c).sum(), wrt=[w], inputs=[X, c])
    x = RNG.normal(size=(4, 3))
    value, (grad,) = step([np.ones(3)], X=x, c=2.0)
    assert value == pytest.approx(2 * np.tanh(x).sum(), rel=1e-13)
    np.testing.assert_allclose(grad, 2 * (x * (1 - np.tanh(x) ** 2)).sum(axis=0), rtol=1e-13)
    _fails(TypeError, "'c'", lambda: step([np.ones(3)], X=x, c=True))
    _fails(TypeError, "'c'", lambda: step([np.ones(3)], X=x, c=1j))


# ---------------------------------------------------------------------------------------------
# 6. gradcheck on tensor kernels
# ---------------------------------------------------------------------------------------------

def _hand_built_kernel(size, wrong):
    """loss = sum(sin(X * w)) with w of shape (size,) and its gradient sum_rows(cos(X w) X),
    or, when ``wrong``, a gradient that is off by the given mistake."""
    w = ir.input_node("w", "float64", (size,))
    x = ir.input_node("X", "float64", ("n", size))
    product = ir.mul(x, w)
    loss = ir.reduce_sum(ir.sin(product))
    if wrong == "chain":      # forgets the inner derivative
        grad = ir.reduce_sum(ir.cos(product), [0])
    elif wrong == "scale":    # off by 10%
        grad = ir.mul(ir.const(1.1), ir.reduce_sum(ir.mul(ir.cos(product), x), [0]))
    else:
        grad = ir.reduce_sum(ir.mul(ir.cos(product), x), [0])
    function = ir.Function([w, x], [loss, grad], ["loss", "dloss/dw"])
    return TensorKernel(function, num_params=1)


def test_hand_built_kernel_agrees_with_compile():
    kernel = _hand_built_kernel(3, wrong=None)
    w, x = RNG.normal(size=3), RNG.normal(size=(4, 3))
    value, (grad,) = kernel([w], X=x)
    W, X = sg.tensor("w", (3,)), sg.tensor("X", ("n", 3))
    step = sg.compile(sg.elementwise(sympy.sin, X * W).sum(), wrt=[W], inputs=[X])
    want_value, (want_grad,) = step([w], X=x)
    assert value == pytest.approx(want_value, rel=1e-14)
    np.testing.assert_allclose(grad, want_grad, rtol=1e-14, atol=1e-15)


def test_gradcheck_full_passes_on_a_correct_kernel(classifier):
    step, (w, b), x, t = classifier
    assert sg.gradcheck(step, wrt=["W", "b"], at={"W": w, "b": b, "X": x, "T": t}) is True
    kernel = _hand_built_kernel(3, wrong=None)
    assert sg.gradcheck(kernel, wrt=["w"], at={"w": RNG.normal(size=3),
                                               "X": RNG.normal(size=(4, 3))}) is True


def test_gradcheck_on_a_tensor_expression():
    W = sg.tensor("W", (2, 3))
    X = sg.tensor("X", ("n", 3))
    loss = sg.logsumexp(X @ W.T, axis=1).mean()
    assert sg.gradcheck(loss, wrt=[W], at={W: RNG.normal(size=(2, 3)),
                                           X: RNG.normal(size=(4, 3))}) is True


@pytest.mark.parametrize("wrong", ["chain", "scale"])
def test_gradcheck_full_fails_on_a_wrong_kernel(wrong):
    kernel = _hand_built_kernel(3, wrong=wrong)
    at = {"w": RNG.normal(size=3), "X": RNG.normal(size=(4, 3))}
    with pytest.raises(sg.GradcheckError, match="w"):
        sg.gradcheck(kernel, wrt=["w"], at=at)


def test_gradcheck_random_projections_pass_on_a_correct_kernel():
    kernel = _hand_built_kernel(50, wrong=None)
    at = {"w": RNG.normal(size=50), "X": RNG.normal(size=(6, 50))}
    assert sg.gradcheck(kernel, wrt=["w"], at=at, full_limit=10) is True


@pytest.mark.parametrize("wrong", ["chain", "scale"])
def test_gradcheck_random_projections_fail_on_a_wrong_kernel(wrong):
    kernel = _hand_built_kernel(50, wrong=wrong)
    at = {"w": RNG.normal(size=50), "X": RNG.normal(size=(6, 50))}
    with pytest.raises(sg.GradcheckError) as info:
        sg.gradcheck(kernel, wrt=["w"], at=at, full_limit=10)
    # The directional derivatives caught it, not only the sampled entries.
    assert "dir" in str(info.value)


def test_gradcheck_projection_catches_an_error_in_one_entry():
    """A gradient wrong in a single entry is caught by the random directions alone, whichever
    entries happen to be sampled."""
    size = 200
    w = ir.input_node("w", "float64", (size,))
    x = ir.input_node("X", "float64", ("n", size))
    loss = ir.reduce_sum(ir.mul(ir.const(0.5), ir.mul(ir.mul(x, w), ir.mul(x, w))))
    right = ir.reduce_sum(ir.mul(ir.mul(x, x), w), [0])
    mask = np.zeros(size)
    mask[123] = 1.0
    m = ir.input_node("m", "float64", (size,))
    grad = ir.add(right, ir.mul(ir.const(50.0), m))
    kernel = TensorKernel(ir.Function([w, x, m], [loss, grad], ["loss", "dloss/dw"]),
                          num_params=1)
    at = {"w": RNG.normal(size=size), "X": RNG.normal(size=(3, size)), "m": mask}
    with pytest.raises(sg.GradcheckError, match="dir"):
        sg.gradcheck(kernel, wrt=["w"], at=at, full_limit=10, directions=8)
    at["m"] = np.zeros(size)
    assert sg.gradcheck(kernel, wrt=["w"], at=at, full_limit=10) is True


@pytest.mark.parametrize("modules", [2, 5])
def test_a_kernel_compiled_in_several_modules_gives_the_bits_of_one(monkeypatch, modules):
    # The steps are spread over modules compiled at the same time (symgrad.codegen.lower.tensor
    # .split_steps); each step is the same code wherever it lives.
    from symgrad.autodiff.reverse import value_and_grad
    from symgrad.codegen.compile import cache
    from symgrad.codegen.lower import tensor as lower_tensor
    from symgrad.codegen.runtime.tensor_kernel import target_for
    from symgrad.frontend.trace import trace_tensor
    X = sg.tensor("X", ("n", 12))
    T = sg.tensor("T", ("n", 5))
    net = sg.nn.MLP([12, 9, 5], activation=sg.tanh, output_activation=None, seed=3)
    loss = sg.losses.softmax_cross_entropy(net(X), T)
    rng = np.random.default_rng(2)
    x = rng.normal(size=(37, 12))
    t = np.eye(5)[rng.integers(0, 5, 37)]
    previous = cache.set_cache_dir(None)
    try:
        results = []
        for count in (1, modules):
            function, _ = trace_tensor(loss, net.parameters(), [X, T])
            fused = value_and_grad(function, [p.name for p in net.parameters()])
            target = dataclasses.replace(target_for(fused)[0], max_modules=count,
                                         module_cost=1)
            step = TensorKernel(fused, num_params=len(net.parameters()), target=target)
            assert len(lower_tensor.split_steps(step.schedule, target)) == count
            assert step.llvm_ir.count("; ModuleID") == count + 1     # and the call entry
            results.append(step(net.values(), x, t))
    finally:
        cache.set_cache_dir(previous)
    (value, grads), (other_value, other_grads) = results
    assert value == other_value
    for got, want in zip(other_grads, grads):
        np.testing.assert_array_equal(got, want)
    reference = evaluate(step.function, *net.values(), x, t)
    np.testing.assert_allclose(value, reference[0], rtol=1e-12)
