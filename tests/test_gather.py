"""Gather and scatter by integer index tensors: sg.take, x[idx], x.at[idx].add/set/get.

Compiled values against numpy (np.take, np.add.at, assignment), gradients against
np.add.at's scatter and central differences, duplicate and negative indices, index arrays
checked at call time (never a read outside an array), threads, float32, and the errors.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import symgrad as sg
from symgrad import ir
from symgrad.autodiff.reverse import value_and_grad
from symgrad.reference.evaluate import evaluate

RNG = np.random.default_rng(5)


@st.composite
def _gathers(draw):
    rank = draw(st.integers(1, 3))
    shape = tuple(draw(st.integers(1, 5)) for _ in range(rank))
    axis = draw(st.integers(-rank, rank - 1))
    size = shape[axis]
    index_shape = tuple(draw(st.integers(0, 4)) for _ in range(draw(st.integers(0, 2))))
    count = int(np.prod(index_shape, dtype=int))
    indices = draw(st.lists(st.integers(-size, size - 1), min_size=count, max_size=count))
    return shape, axis, np.array(indices, np.int64).reshape(index_shape)


@settings(max_examples=40, deadline=None)
@given(_gathers())
def test_take_and_its_gradient_against_numpy(case):
    # Duplicates and negative indices included; the gradient of sum(w * take(x)) is w
    # scattered back with np.add.at, and of sum(take(x)**3 * w) checked by differences.
    shape, axis, indices = case
    X = sg.tensor("X", shape)
    I = sg.tensor("I", indices.shape, dtype="int64")
    taken = sg.take(X, I, axis)
    W = sg.tensor("W", taken.shape)
    x = RNG.normal(size=shape)
    w = RNG.normal(size=taken.shape)
    (got,) = sg.compile_function(taken, [X, I])(x, indices)
    np.testing.assert_array_equal(got, np.take(x, indices, axis))
    kernel = sg.compile((taken * W).sum(), wrt=[X], inputs=[I, W])
    _, (gradient,) = kernel([x], indices, w)
    expected = np.zeros_like(x)
    moved = np.moveaxis(expected, axis, 0)
    np.add.at(moved, indices, np.moveaxis(w, list(range(axis % len(shape),
                                                       axis % len(shape) + indices.ndim)),
                                          list(range(indices.ndim))))
    np.testing.assert_allclose(gradient, expected, rtol=1e-14, atol=1e-14)
    cubic = sg.compile((taken ** 3 * W).sum(), wrt=[X], inputs=[I, W])
    _, (slope,) = cubic([x], indices, w)
    eps = 1e-6
    for flat in RNG.choice(x.size, min(x.size, 4), replace=False):
        step = np.zeros(x.size)
        step[flat] = eps
        step = step.reshape(shape)
        numeric = (cubic([x + step], indices, w)[0] - cubic([x - step], indices, w)[0]) / (2 * eps)
        assert slope.flat[flat] == pytest.approx(numeric, rel=1e-6, abs=1e-8)


@pytest.mark.parametrize("key", ["i", ":,i", "0,i", "...,i", "i,1:", "None,i", "1:3,i,::-1"])
def test_indexing_by_an_index_tensor_as_numpy(key):
    x = RNG.normal(size=(4, 5, 3))
    indices = np.array([2, -1, 0, 2])
    X = sg.tensor("X", x.shape)
    I = sg.tensor("I", indices.shape, dtype="int64")
    scope = {"X": X, "I": I, "x": x, "i": indices}
    sym = eval(f"X[{key.replace('i', 'I')}]", scope)
    want = eval(f"x[{key}]", scope)
    assert sym.shape == want.shape
    (got,) = sg.compile_function(sym, [X, I])(x, indices)
    np.testing.assert_array_equal(got, want)


def test_at_add_set_get_as_numpy_and_jax():
    x = RNG.normal(size=(6, 2))
    indices = np.array([4, 0, 4, -1])
    X = sg.tensor("X", x.shape)
    I = sg.tensor("I", indices.shape, dtype="int64")
    V = sg.tensor("V", (4, 2))
    v = RNG.normal(size=(4, 2))
    outputs = [X.at[I].add(V), X.at[I].set(V), X.at[I].get(), X.at[1:3].set(0.5),
               X.at[:, 1].add(X[:, 0]), X.at[I, 0].add(1.0)]
    got = sg.compile_function(outputs, [X, I, V])(x, indices, v)
    added = x.copy()
    np.add.at(added, indices, v)
    np.testing.assert_allclose(got[0], added, rtol=1e-15)
    # set: each row written once takes its value; row 4, written twice, the mean of both.
    expected = x.copy()
    expected[[0, 5]] = v[[1, 3]]
    expected[4] = (v[0] + v[2]) / 2
    np.testing.assert_allclose(got[1], expected, rtol=1e-15)
    np.testing.assert_array_equal(got[2], x[indices])
    sliced = x.copy()
    sliced[1:3] = 0.5
    np.testing.assert_array_equal(got[3], sliced)
    column = x.copy()
    column[:, 1] += x[:, 0]
    np.testing.assert_array_equal(got[4], column)
    counted = x.copy()
    np.add.at(counted[:, 0], indices, 1.0)
    np.testing.assert_array_equal(got[5], counted)
    assert X.at[I].add(V).shape == X.shape


def test_gradients_of_updates_against_central_differences():
    x = RNG.normal(size=(5, 3))
    v = RNG.normal(size=(3, 3))
    indices = np.array([1, 3, 1])
    X, V = sg.tensor("X", x.shape), sg.tensor("V", v.shape)
    I = sg.tensor("I", indices.shape, dtype="int64")
    loss = (sg.sin(X.at[I].add(V * V)) ** 2).sum() + (X.at[I].set(V) ** 3).sum()
    kernel = sg.compile(loss, wrt=[X, V], inputs=[I])
    _, grads = kernel([x, v], indices)
    eps = 1e-6
    for position, point in enumerate((x, v)):
        for flat in range(point.size):
            step = np.zeros(point.size)
            step[flat] = eps
            step = step.reshape(point.shape)
            up = [x, v]
            down = [x, v]
            up[position] = point + step
            down[position] = point - step
            numeric = (kernel(up, indices)[0] - kernel(down, indices)[0]) / (2 * eps)
            assert grads[position].flat[flat] == pytest.approx(numeric, rel=1e-6, abs=1e-8)


def test_bundle_adjustment_shape_of_gather_over_a_symbolic_batch_and_threads():
    # Residuals of observations that gather a camera and a point each, over a symbolic
    # number of observations; 1 and 2 threads give the same bits, equal to the reference.
    points = sg.tensor("points", ("p", 3))
    cameras = sg.tensor("cameras", ("c", 4))
    which_point = sg.tensor("which_point", ("n",), dtype="int64")
    which_camera = sg.tensor("which_camera", ("n",), dtype="int64")
    observed = sg.tensor("observed", ("n", 2))
    point, camera = points[which_point], cameras[which_camera]
    depth = point[:, 2] + camera[:, 3] + 10.0
    projected = sg.stack([point[:, 0] * camera[:, 0], point[:, 1] * camera[:, 1]], axis=1) \
        / depth[:, None] + camera[:, 2:3]
    loss = ((projected - observed) ** 2).sum()
    kernel = sg.compile(loss, wrt=[points, cameras], inputs=[which_point, which_camera,
                                                              observed])
    n, p, c = 40000, 3000, 50
    args = (RNG.integers(0, p, n), RNG.integers(0, c, n), RNG.normal(size=(n, 2)))
    params = [RNG.normal(size=(p, 3)), RNG.normal(size=(c, 4))]
    expected = evaluate(kernel.function, *params, *args)
    previous = sg.num_threads()
    results = []
    try:
        for threads in (1, 2):
            sg.set_num_threads(threads)
            value, grads = kernel(params, *args)
            results.append((value, *grads))
    finally:
        sg.set_num_threads(previous)
    for got, want in zip(results[0], expected):
        np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-11 * np.abs(want).max())
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def test_float32_and_int32_indices():
    x = RNG.normal(size=(7, 3)).astype(np.float32)
    X = sg.tensor("X", ("m", 3), dtype="float32")
    I = sg.tensor("I", ("n",), dtype="int64")
    kernel = sg.compile((X[I] ** 2).sum(), wrt=[X], inputs=[I])
    indices = np.array([6, 0, 6, -7], np.int32)
    value, (gradient,) = kernel([x], indices)
    assert gradient.dtype == np.float32
    expected = np.zeros_like(x)
    np.add.at(expected, indices, 2 * x[indices])
    np.testing.assert_allclose(gradient, expected, rtol=1e-6)
    assert value == pytest.approx(float((x[indices].astype(np.float64) ** 2).sum()), rel=1e-6)


def test_out_of_range_indices_are_refused_at_call_time():
    X = sg.tensor("X", ("m", 3))
    I = sg.tensor("I", ("n",), dtype="int64")
    kernel = sg.compile((X[I] ** 2).sum(), wrt=[X], inputs=[I])
    x = np.ones((4, 3))
    for bad, shown in (([0, 4], "index 4"), ([-5, 1], "index -5")):
        with pytest.raises(IndexError, match=rf"argument 'I': {shown} is out of bounds .* "
                                             rf"size 4"):
            kernel([x], np.array(bad))
    # The symbolic size is the call's: the same indices are fine on a larger X.
    value, _ = kernel([np.ones((5, 3))], np.array([0, 4]))
    assert value == 6.0
    with pytest.raises(IndexError, match="index 9 is out of bounds"):
        sg.compile_function(X.at[I].add(1.0), [X, I])(x, np.array([9]))
    with pytest.raises(IndexError, match="out of bounds"):
        evaluate(ir.Function([X.node, I.node], [X[I].sum().node], ["s"]), x, np.array([7]))


def test_bad_index_arguments_and_expressions_are_named():
    X = sg.tensor("X", (4, 3))
    I = sg.tensor("I", ("n",), dtype="int64")
    kernel = sg.compile_function(X[I], [X, I])
    with pytest.raises(TypeError, match="argument 'I' holds indices: it must be an array of "
                                        "integers .* float64"):
        kernel(np.ones((4, 3)), np.array([0.0, 1.0]))
    with pytest.raises(TypeError, match="argument 'I' holds indices"):
        kernel(np.ones((4, 3)), np.array([1], np.uint64))
    with pytest.raises(TypeError, match="must hold integers"):
        X[X[:, 0]]
    with pytest.raises(TypeError, match="one index tensor per index"):
        X[I, I]
    with pytest.raises(TypeError, match="declare an integer tensor"):
        X[np.array([0, 1])]
    with pytest.raises(TypeError, match="integer operand"):
        I / 2.0
    with pytest.raises(TypeError, match="cannot differentiate with respect to 'I'"):
        sg.compile(X[I].sum(), wrt=[X, I])
    with pytest.raises(ValueError, match="dtype must be one of"):
        sg.tensor("J", (3,), dtype="int32")


def test_the_ir_has_one_gather_and_one_scatter():
    X = sg.tensor("X", (4, 3))
    I = sg.tensor("I", ("n",), dtype="int64")
    traced = ir.Function([X.node, I.node], [((X[I] ** 2).sum()).node], ["s"])
    fused = value_and_grad(traced, ["X"])
    ops = [node.op for node in fused.nodes]
    assert ops.count(ir.Op.GATHER) == 1 and ops.count(ir.Op.SCATTER_ADD) == 1
    assert "gather" in str(fused) and "i64[n]" in str(fused)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(1, 4), min_size=1, max_size=3), st.data())
def test_take_along_axis_and_its_gradient_against_numpy(shape, data):
    axis = data.draw(st.integers(0, len(shape) - 1))
    count = data.draw(st.integers(0, 4))
    index_shape = tuple(count if a == axis else data.draw(st.sampled_from([1, d]))
                        for a, d in enumerate(shape))
    indices = RNG.integers(-shape[axis], shape[axis], index_shape)
    X = sg.tensor("X", tuple(shape))
    I = sg.tensor("I", index_shape, dtype="int64")
    taken = sg.take_along_axis(X, I, axis)
    x = RNG.normal(size=shape)
    want = np.take_along_axis(x, np.where(indices < 0, indices + shape[axis], indices), axis)
    assert taken.shape == want.shape
    (got,) = sg.compile_function(taken, [X, I])(x, indices)
    np.testing.assert_array_equal(got, want)
    W = sg.tensor("W", taken.shape)
    w = RNG.normal(size=want.shape)
    _, (gradient,) = sg.compile((taken * W).sum(), wrt=[X], inputs=[I, W])([x], indices, w)
    expected = np.zeros_like(x)
    positions = list(np.indices(want.shape, sparse=True))
    positions[axis] = np.broadcast_to(indices, want.shape) % shape[axis]
    full = [np.broadcast_to(p, want.shape) for p in positions]
    np.add.at(expected, tuple(full), w)
    np.testing.assert_allclose(gradient, expected, rtol=1e-14, atol=1e-15)


def test_cross_entropy_from_integer_labels():
    L = sg.tensor("L", ("n", 10))
    labels = sg.tensor("labels", ("n",), dtype="int64")
    loss = -sg.take_along_axis(sg.log_softmax(L, axis=1), labels[:, None], 1).mean()
    kernel = sg.compile(loss, wrt=[L], inputs=[labels])
    logits, y = RNG.normal(size=(64, 10)), RNG.integers(0, 10, 64)
    value, (gradient,) = kernel([logits], y)
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    assert value == pytest.approx(-log_p[np.arange(64), y].mean(), rel=1e-14)
    expected = np.exp(log_p)
    expected[np.arange(64), y] -= 1
    np.testing.assert_allclose(gradient, expected / 64, rtol=1e-12, atol=1e-16)
    with pytest.raises(IndexError, match="argument 'labels': index 10 is out of bounds"):
        kernel([logits], np.full(64, 10))
    flat = sg.take_along_axis(sg.tensor("M", (3, 4)), labels, None)
    assert flat.shape == ("n",)


def test_an_unused_index_argument_is_still_checked():
    X = sg.tensor("X", (3,))
    I = sg.tensor("I", (2,), dtype="int64")
    kernel = sg.compile_function(X * 2, [X, I])
    np.testing.assert_array_equal(kernel(np.ones(3), np.array([1, 2]))[0], [2.0, 2.0, 2.0])
    with pytest.raises(TypeError, match="argument 'I' holds indices"):
        kernel(np.ones(3), np.array([1.0, 2.0]))


def test_a_slice_of_a_gather_gathers_a_slice_in_place():
    # T[I][:, 0:1] is T[:, 0:1][I]: the gather reads the slice in place, nothing stored.
    T = sg.tensor("T", (100, 9))
    I = sg.tensor("I", ("m",), dtype="int64")
    kernel = sg.compile_function([T[I][:, 0:1] * 2.0, T[I][:, 3:9:2]], [T, I])
    assert kernel.schedule.temporaries == []
    t, i = RNG.normal(size=(100, 9)), RNG.integers(-100, 100, 500)
    first, second = kernel(t, i)
    np.testing.assert_array_equal(first, t[i][:, 0:1] * 2.0)
    np.testing.assert_array_equal(second, t[i][:, 3:9:2])
