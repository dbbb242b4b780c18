"""sg.norm against numpy.linalg.norm, its gradient against central differences, and the
Euclidean norm's range (no overflow or underflow where the norm itself has none)."""

import numpy as np
import pytest

import symgrad as sg

RNG = np.random.default_rng(37)
CASES = [(None, None), (None, 1), (1, 0), (np.inf, 1), (-np.inf, 1), (3, 1), (0.5, 0),
         ("fro", (0, 1)), (2, 0)]


@pytest.mark.parametrize("ord, axis", CASES)
def test_against_numpy_and_central_differences(ord, axis):
    X = sg.tensor("X", (4, 5))
    x = RNG.normal(size=(4, 5))
    (got,) = sg.compile_function(sg.norm(X, ord, axis), [X])(x)
    np.testing.assert_allclose(got, np.linalg.norm(x, ord, axis), rtol=1e-14)
    (kept,) = sg.compile_function(sg.norm(X, ord, axis, keepdims=True), [X])(x)
    np.testing.assert_allclose(kept, np.linalg.norm(x, ord, axis, keepdims=True), rtol=1e-14)
    kernel = sg.compile(sg.norm(X, ord, axis).sum(), wrt=[X])
    _, (gradient,) = kernel([x])
    eps = 1e-6
    for flat in range(x.size):
        step = np.zeros(x.size)
        step[flat] = eps
        step = step.reshape(x.shape)
        numeric = (kernel([x + step])[0] - kernel([x - step])[0]) / (2 * eps)
        assert gradient.flat[flat] == pytest.approx(numeric, rel=1e-6, abs=1e-8)


def test_the_euclidean_norm_neither_overflows_nor_underflows():
    X = sg.tensor("X", (5, 3))
    x = np.array([[1e200, 1e200, 0.0], [3e-200, 4e-200, 0.0], [0.0, 0.0, 0.0],
                  [np.inf, 1.0, 0.0], [np.inf, 1.0, np.nan]])
    (got,) = sg.compile_function(sg.norm(X, axis=1), [X])(x)
    np.testing.assert_allclose(got[:3], [np.sqrt(2) * 1e200, 5e-200, 0.0], rtol=1e-15)
    # As numpy: inf with an infinite element, NaN with a NaN (even beside an inf).
    assert got[3] == np.inf and np.isnan(got[4])
    assert np.isnan(np.linalg.norm(x[4]))


def test_bad_orders_are_named():
    X = sg.tensor("X", (4, 5))
    with pytest.raises(ValueError, match="only the Frobenius norm"):
        sg.norm(X, 1, (0, 1))
    with pytest.raises(ValueError, match="ord must be"):
        sg.norm(X, -1, 0)
