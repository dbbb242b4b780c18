"""Integer (int64) tensors as values: arithmetic, comparisons, conversions, argmax/argmin,
computed indices; against numpy, with the errors and the conversion's edge cases."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import symgrad as sg
from symgrad import ir
from symgrad.reference.evaluate import evaluate

RNG = np.random.default_rng(41)


def test_integer_arithmetic_and_masks_as_numpy():
    I = sg.tensor("I", ("n",), dtype="int64")
    J = sg.tensor("J", ("n",), dtype="int64")
    X = sg.tensor("X", ("n",))
    outputs = [I + J, I - J * 3, -I, I * J + 7, sg.where(I > J, I, J),
               sg.where(I >= 2, X, -X), sg.where(J < 0, 1.0, 0.0), I // J, I % J, I // -3,
               100 % J]
    i = RNG.integers(-10**12, 10**12, 50)
    j = RNG.integers(-5, 5, 50)
    x = RNG.normal(size=50)
    got = sg.compile_function(outputs, [I, J, X])(i, j, x)
    with np.errstate(divide="ignore"):
        wants = [i + j, i - j * 3, -i, i * j + 7, np.where(i > j, i, j),
                 np.where(i >= 2, x, -x), np.where(j < 0, 1.0, 0.0), i // j, i % j, i // -3,
                 100 % j]
    for value, want in zip(got, wants):
        assert value.dtype == want.dtype
        np.testing.assert_array_equal(value, want)


def test_floor_division_and_remainder_at_their_edges_as_numpy():
    I = sg.tensor("I", ("n",), dtype="int64")
    J = sg.tensor("J", ("n",), dtype="int64")
    smallest = np.iinfo(np.int64).min
    i = np.array([7, -7, 7, -7, 0, 5, smallest, smallest, 3, -1])
    j = np.array([2, 2, -2, -2, 3, 0, -1, 1, -4, 7])
    got = sg.compile_function([I // J, I % J], [I, J])(i, j)
    with np.errstate(divide="ignore", over="ignore"):
        np.testing.assert_array_equal(got[0], i // j)   # 0 where j is 0; INT64_MIN / -1 wraps
        np.testing.assert_array_equal(got[1], i % j)
    with pytest.raises(TypeError, match="takes integer tensors; for floats"):
        sg.tensor("X", (3,)) // 2.0


def test_conversions_round_truncate_and_saturate():
    X = sg.tensor("X", ("n",))
    I = sg.tensor("I", ("n",), dtype="int64")
    x = np.array([2.7, -2.7, 0.5, -0.0, 1e300, -1e300, np.inf, -np.inf, np.nan, 2.0**62])
    i = np.array([3, -3, 2**53 + 1, -(2**62), 0, 7, 1, 2, 3, 4])
    to_int, to_float = sg.compile_function([X.astype("int64"), I.astype("float64")], [X, I])(
        x, i)
    maximum, minimum = np.iinfo(np.int64).max, np.iinfo(np.int64).min
    np.testing.assert_array_equal(to_int, [2, -2, 0, 0, maximum, minimum, maximum, minimum, 0,
                                           2**62])
    np.testing.assert_array_equal(to_float, i.astype(np.float64))     # rounded to nearest
    function = ir.Function([X.node, I.node], [X.astype("int64").node], ["i"])
    np.testing.assert_array_equal(evaluate(function, x, i)[0], to_int)
    X32 = sg.tensor("X", ("n",), dtype="float32")
    (small,) = sg.compile_function(I.astype("float32") * X32, [I, X32])(
        i[:2], np.ones(2, np.float32))
    assert small.dtype == np.float32 and list(small) == [3.0, -3.0]


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 4), st.integers(1, 6), st.data())
def test_argmax_and_argmin_as_numpy_ties_and_nan_included(rows, columns, data):
    values = data.draw(st.lists(st.sampled_from([0.0, 1.0, -1.0, 2.0, np.nan, np.inf, -np.inf,
                                                 -0.0]),
                                min_size=rows * columns, max_size=rows * columns))
    x = np.array(values).reshape(rows, columns)
    X = sg.tensor("X", (rows, columns))
    outputs = [X.argmax(1), X.argmin(1), sg.argmax(X, 0), sg.argmin(X), X.argmax(),
               sg.argmax(X, 1, keepdims=True)]
    got = sg.compile_function(outputs, [X])(x)
    wants = [np.argmax(x, 1), np.argmin(x, 1), np.argmax(x, 0), np.argmin(x), np.argmax(x),
             np.argmax(x, 1, keepdims=True)]
    for value, want in zip(got, wants):
        assert value.dtype == np.int64
        np.testing.assert_array_equal(value, want)


def test_computed_indices_gather_nan_outside_and_their_gradient_stays_inside():
    # A computed index has no argument to check: out of range, the gather gives NaN (JAX's
    # default "fill" mode); reverse mode drops that element's contribution.
    X = sg.tensor("X", (5,))
    I = sg.tensor("I", ("n",), dtype="int64")
    taken = sg.take(X, I * 2)
    x = RNG.normal(size=5)
    (got,) = sg.compile_function(taken, [X, I])(x, np.array([0, 1, 2, -1, -2, 3]))
    np.testing.assert_array_equal(got[:5], [x[0], x[2], x[4], x[3], x[1]])
    assert np.isnan(got[5])
    W = sg.tensor("W", ("n",))
    kernel = sg.compile(sg.where(sg.take(X, I * 2 - 1) > -1e300, sg.take(X, I * 2 - 1), 0.0)
                        .__mul__(W).sum(), wrt=[X], inputs=[I, W])
    value, (gradient,) = kernel([x], np.array([1, 2]), np.array([2.0, 3.0]))
    np.testing.assert_array_equal(gradient, [0.0, 2.0, 0.0, 3.0, 0.0])
    _, (gradient,) = kernel([x], np.array([1, 9]), np.array([2.0, 3.0]))
    np.testing.assert_array_equal(gradient, [0.0, 2.0, 0.0, 0.0, 0.0])


def test_a_multi_index_gather_through_integer_arithmetic():
    # x[i, j] as a gather from the flattened x at i * columns + j.
    X = sg.tensor("X", (4, 6))
    I = sg.tensor("I", ("n",), dtype="int64")
    J = sg.tensor("J", ("n",), dtype="int64")
    picked = sg.take(X.flatten(), I * 6 + J)
    kernel = sg.compile((picked ** 2).sum(), wrt=[X], inputs=[I, J])
    x = RNG.normal(size=(4, 6))
    i, j = RNG.integers(0, 4, 30), RNG.integers(0, 6, 30)
    value, (gradient,) = kernel([x], i, j)
    assert value == pytest.approx(float((x[i, j] ** 2).sum()), rel=1e-14)
    expected = np.zeros_like(x)
    np.add.at(expected, (i, j), 2 * x[i, j])
    np.testing.assert_allclose(gradient, expected, rtol=1e-14)


def test_errors_say_what_integers_can_do():
    I = sg.tensor("I", ("n",), dtype="int64")
    X = sg.tensor("X", ("n",))
    with pytest.raises(TypeError, match="op 'div' takes floats.*astype"):
        I / 2
    with pytest.raises(TypeError, match="not a whole number"):
        I * 2.5
    with pytest.raises(TypeError, match="mixes an integer tensor with a float64"):
        I + X
    with pytest.raises(TypeError, match="cast converts between int64 and a float"):
        X.astype("float32")
    with pytest.raises(ValueError, match="astype: dtype must be one of"):
        I.astype("bool")
    with pytest.raises(TypeError, match="argmax takes a float tensor"):
        I.argmax()
    with pytest.raises(TypeError, match="cannot differentiate with respect to 'I'"):
        sg.compile((I.astype("float64") * X).sum(), wrt=[X, I])


def test_boolean_inputs_are_masks():
    M = sg.tensor("M", ("n", 3), dtype="bool")
    X = sg.tensor("X", ("n", 3))
    outputs = [sg.where(M, X, 0.0), sg.where(M & (X > 0), 1.0, 0.0),
               sg.where(~M | (X < 0), X, 7.0)]
    m = RNG.random((40, 3)) < 0.5
    x = RNG.normal(size=(40, 3))
    got = sg.compile_function(outputs, [M, X])(m, x)
    wants = [np.where(m, x, 0.0), np.where(m & (x > 0), 1.0, 0.0),
             np.where(~m | (x < 0), x, 7.0)]
    for value, want in zip(got, wants):
        np.testing.assert_array_equal(value, want)
    kernel = sg.compile((sg.where(M, X, 0.0) ** 2).sum(), wrt=[X], inputs=[M])
    _, (gradient,) = kernel([x], m)
    np.testing.assert_array_equal(gradient, np.where(m, 2 * x, 0.0))
    with pytest.raises(TypeError, match="argument 'M' is a mask: it must be an array of bools"):
        kernel([x], m.astype(np.int64))
    with pytest.raises(TypeError, match="it is a boolean input"):
        sg.compile((sg.where(M, X, 0.0) ** 2).sum(), wrt=[X, M])
