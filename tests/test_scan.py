"""Recurrences along an axis: sg.cumsum, sg.cumprod, sg.linear_recurrence, compiled against
numpy (bit for bit: the same additions and products in the same order, special values
included), gradients against central differences (cumprod through zeros), and the errors."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import symgrad as sg

RNG = np.random.default_rng(31)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(1, 5), min_size=1, max_size=3), st.data())
def test_cumsum_and_cumprod_bit_for_bit_as_numpy(shape, data):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    x = RNG.normal(size=shape) * 3
    specials = data.draw(st.lists(st.sampled_from([0.0, -0.0, np.inf, -np.inf, np.nan]),
                                  max_size=3))
    for value in specials:
        x.flat[RNG.integers(x.size)] = value
    X = sg.tensor("X", tuple(shape))
    kernel = sg.compile_function([sg.cumsum(X, axis), sg.cumprod(X, axis), X.cumsum(),
                                  X.cumprod()], [X])
    got = kernel(x)
    with np.errstate(all="ignore"):
        wants = [np.cumsum(x, axis), np.cumprod(x, axis), np.cumsum(x), np.cumprod(x)]
    for value, want in zip(got, wants):
        np.testing.assert_array_equal(value, want)
        np.testing.assert_array_equal(np.signbit(value[want == 0]), np.signbit(want[want == 0]))


def _central(kernel, params, weights, position, flat, eps=1e-6):
    up = [p.copy() for p in params]
    down = [p.copy() for p in params]
    up[position].flat[flat] += eps
    down[position].flat[flat] -= eps
    return (kernel(up, weights)[0] - kernel(down, weights)[0]) / (2 * eps)


@pytest.mark.parametrize("axis", [0, 1])
def test_gradients_against_central_differences_zeros_included(axis):
    X = sg.tensor("X", (4, 6))
    W = sg.tensor("W", (4, 6))
    loss = (W * sg.cumprod(X, axis)).sum() + (sg.sin(sg.cumsum(X, axis)) * W).sum()
    kernel = sg.compile(loss, wrt=[X], inputs=[W])
    x = RNG.normal(size=(4, 6))
    x[1, 2] = x[3, 0] = x[0, 4] = 0.0        # cumprod's gradient where elements are zero
    weights = RNG.normal(size=(4, 6))
    _, (gradient,) = kernel([x], weights)
    assert np.all(np.isfinite(gradient))
    for flat in range(x.size):
        numeric = _central(kernel, [x], weights, 0, flat)
        assert gradient.flat[flat] == pytest.approx(numeric, rel=1e-6, abs=1e-8)


def test_linear_recurrence_as_a_discounted_return_over_a_symbolic_batch():
    # G[t] = r[t] + gamma[t] G[t+1] backwards in time, per episode of a symbolic batch,
    # against a Python loop; the gradients w.r.t. rewards and discounts by differences.
    R = sg.tensor("R", ("n", 8))
    D = sg.tensor("D", ("n", 8))
    flipped = sg.linear_recurrence(D[:, ::-1], R[:, ::-1], axis=1)[:, ::-1]
    kernel = sg.compile((flipped ** 2).sum(), wrt=[R, D])
    returns = sg.compile_function(flipped, [R, D])
    n = 300
    r, d = RNG.normal(size=(n, 8)), RNG.uniform(0.5, 1.0, size=(n, 8))
    want = np.zeros_like(r)
    running = np.zeros(n)
    for t in range(7, -1, -1):
        running = r[:, t] + (d[:, t] * running if t < 7 else 0.0)
        want[:, t] = running
    (got,) = returns(r, d)
    np.testing.assert_allclose(got, want, rtol=1e-14, atol=1e-14)
    # The differences on a few episodes of the same kernel: over all 300 the loss's rounding
    # would swamp them.
    r, d = r[:5], d[:5]
    _, grads = kernel([r, d])
    for position in (0, 1):
        for flat in RNG.choice(r.size, 6, replace=False):
            params = [r.copy(), d.copy()]
            numeric = _central(lambda p, w: kernel(p), params, None, position, flat)
            assert grads[position].flat[flat] == pytest.approx(numeric, rel=1e-6, abs=1e-8)


def test_a_scan_in_a_threaded_kernel_gives_the_same_bits():
    X = sg.tensor("X", ("n", 16))
    loss = (sg.cumsum(sg.tanh(X), axis=1) ** 2).sum()
    kernel = sg.compile(loss, wrt=[X])
    x = RNG.normal(size=(20000, 16))
    previous = sg.num_threads()
    try:
        results = []
        for threads in (1, 2):
            sg.set_num_threads(threads)
            results.append(kernel([x]))
    finally:
        sg.set_num_threads(previous)
    assert results[0][0] == results[1][0]
    np.testing.assert_array_equal(results[0][1][0], results[1][1][0])
    assert results[0][0] == pytest.approx(float((np.cumsum(np.tanh(x), 1) ** 2).sum()),
                                          rel=1e-12)


def test_float32():
    X = sg.tensor("X", (3, 7), dtype="float32")
    x = RNG.normal(size=(3, 7)).astype(np.float32)
    got = sg.compile_function([sg.cumsum(X, 1), sg.cumprod(X, 0)], [X])(x)
    np.testing.assert_array_equal(got[0], np.cumsum(x, 1))
    np.testing.assert_array_equal(got[1], np.cumprod(x, 0))
    assert got[0].dtype == np.float32


def test_errors():
    X = sg.tensor("X", ("n", 4))
    with pytest.raises(sg.ShapeError, match="symbolic size 'n'"):
        sg.cumprod(X, 0)
    with pytest.raises(sg.ShapeError, match="symbolic size 'n'"):
        sg.linear_recurrence(0.5, X, 0)
    with pytest.raises(sg.ShapeError, match="give the axis"):
        sg.cumsum(X)
    with pytest.raises(sg.ShapeError, match="out of range"):
        sg.cumsum(X, 2)
