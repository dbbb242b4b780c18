"""IEEE 754 semantics: no rewrite of symgrad's IR changes a NaN, an inf or the sign of a zero.

The oracle is numpy evaluating the expression *as written*, operation by operation (the
reference interpreter evaluates the IR after the rewrites, so it cannot see them).  Compiled
results must equal numpy's bit for bit (NaN equal to NaN) for the correctly rounded
operations; for the elementary functions, the NaN/inf pattern and the sign of zeros must agree
and the values agree within the library's accuracy.
"""

import itertools
import math

import mpmath
import numpy as np
import pytest
import sympy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import symgrad as sg
from symgrad import ir
from symgrad.ir.numeric import _maximum, _minimum
from symgrad.ir.ops import Op
from symgrad.tensors import Tensor

SPECIALS = [np.inf, -np.inf, np.nan, 0.0, -0.0, 1.0, -1.0, 2.5, -3.0, 0.5, 1e-310, -5e-324,
            1e308, -1e308, 7.0]
SPECIALS32 = [np.inf, -np.inf, np.nan, 0.0, -0.0, 1.0, -1.0, 2.5, -3.0, 0.5, 1e-40, -1e-45,
              3e38, -3e38, 7.0]


def _pairs(values, dtype):
    """Every pair of special values, as two arrays of one shape."""
    pairs = np.array(list(itertools.product(values, repeat=2)), dtype=dtype)
    return np.ascontiguousarray(pairs[:, 0]), np.ascontiguousarray(pairs[:, 1])


def assert_same_bits(got, want, context=""):
    """Equal values with equal signs of zero; NaN where numpy has NaN."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape and got.dtype == want.dtype, (context, got.dtype, want.dtype)
    nan_got, nan_want = np.isnan(got), np.isnan(want)
    same = np.where(nan_want, nan_got,
                    (got == want) & (np.signbit(got) == np.signbit(want)) & ~nan_got)
    if not same.all():
        bad = np.flatnonzero(~same)[:8]
        raise AssertionError(f"{context}: at {bad.tolist()} got {got.ravel()[bad].tolist()}, "
                             f"numpy {want.ravel()[bad].tolist()}")


# ---- the mirror: one definition of each operation, applied to tensors and to numpy arrays ----

def _tensor_or_array(function_of_nodes, function_of_arrays):
    def apply(*values):
        if isinstance(values[0], Tensor):
            return Tensor(function_of_nodes(*[v.node for v in values]))
        return function_of_arrays(*values)
    return apply


UNARY = {
    "neg": _tensor_or_array(ir.neg, np.negative),
    "abs": _tensor_or_array(ir.absolute, np.abs),
    "sqrt": _tensor_or_array(ir.sqrt, np.sqrt),
    "square": lambda a: a ** 2.0,
    "pow1": lambda a: a ** 1.0,
    "pow0": lambda a: a ** 0.0,
    "pow_neg1": lambda a: a ** -1.0,
    "pow_half": lambda a: a ** 0.5,
}
BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
    "max": _tensor_or_array(ir.maximum, _maximum),
    "min": _tensor_or_array(ir.minimum, _minimum),
    "where_gt": lambda a, b: (sg.where(a > b, a, b) if isinstance(a, Tensor)
                              else np.where(a > b, a, b)),
}
# Constants that the rewrites look for (identities, zeros of both signs) and others.
CONSTANTS = [0.0, -0.0, 1.0, -1.0, 2.0, 0.5, np.inf, -np.inf, np.nan]

expressions = st.recursive(
    st.sampled_from(["X", "Y"]) | st.sampled_from(CONSTANTS).map(lambda c: ("const", c)),
    lambda children: st.one_of(
        st.tuples(st.sampled_from(sorted(UNARY)), children),
        st.tuples(st.sampled_from(sorted(BINARY)), children, children)),
    max_leaves=8)


def _build(expr, env, dtype):
    """``expr`` (a nested tuple) over ``env``: tensors or numpy arrays alike."""
    if isinstance(expr, str):
        return env[expr]
    if expr[0] == "const":
        like = env["X"]
        if isinstance(like, Tensor):
            return Tensor(ir.const(expr[1], like.dtype))
        # An array, not a numpy scalar: numpy's scalars compute some powers otherwise
        # (np.float32(-0.0) ** 0.5 is +0.0; the array's is sqrt's -0.0).
        return np.full(like.shape, expr[1], dtype)
    if expr[0] in UNARY:
        return UNARY[expr[0]](_build(expr[1], env, dtype))
    left, right = _build(expr[1], env, dtype), _build(expr[2], env, dtype)
    return BINARY[expr[0]](left, right)


def _compile_and_compare(expr, dtype):
    name = np.dtype(dtype).name
    X, Y = sg.tensor("X", ("n",), name), sg.tensor("Y", ("n",), name)
    built = _build(expr, {"X": X, "Y": Y}, dtype)
    x, y = _pairs(SPECIALS if dtype is np.float64 else SPECIALS32, dtype)
    with np.errstate(all="ignore"):
        want = _build(expr, {"X": x, "Y": y}, dtype)
    want = np.broadcast_to(np.asarray(want, dtype), x.shape)
    if built.node.op is Op.CONST:
        # The whole expression folded to a constant: its value must be numpy's.
        assert_same_bits(np.full(x.shape, built.node.attrs, dtype), want, f"{expr} folded")
        return
    kernel = sg.compile_function([built], [X, Y])
    (got,) = kernel(x, y)
    assert_same_bits(got, want, f"{expr} ({name})")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expressions)
def test_random_expressions_keep_numpy_results_bit_for_bit(expr):
    _compile_and_compare(expr, np.float64)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expressions)
def test_random_float32_expressions_keep_numpy_results_bit_for_bit(expr):
    _compile_and_compare(expr, np.float32)


# Each pattern that a rewrite of symgrad's IR looks at, with the constant on either side.
PATTERNS = [
    ("add", "X", ("const", 0.0)), ("add", ("const", 0.0), "X"),
    ("add", "X", ("const", -0.0)), ("add", ("const", -0.0), "X"),
    ("sub", "X", ("const", 0.0)), ("sub", "X", ("const", -0.0)),
    ("sub", ("const", 0.0), "X"), ("sub", ("const", -0.0), "X"),
    ("sub", "X", "X"), ("add", "X", ("neg", "X")), ("neg", ("sub", "X", "Y")),
    ("neg", ("neg", "X")), ("add", "X", ("neg", "Y")), ("sub", "X", ("neg", "Y")),
    ("mul", "X", ("const", 0.0)), ("mul", ("const", -0.0), "X"),
    ("mul", "X", ("const", 1.0)), ("mul", "X", ("const", -1.0)),
    ("mul", ("neg", "X"), ("neg", "Y")), ("mul", "X", ("div", ("const", 1.0), "Y")),
    ("mul", ("div", ("const", 1.0), "Y"), "X"),
    ("div", "X", "X"), ("div", ("const", 0.0), "X"), ("div", "X", ("const", 1.0)),
    ("div", ("const", 1.0), "X"),
    ("pow1", "X"), ("pow0", "X"), ("pow_neg1", "X"), ("pow_half", "X"), ("square", "X"),
    ("abs", ("abs", "X")), ("abs", ("sqrt", "X")), ("max", "X", "X"), ("min", "X", "X"),
    ("where_gt", "X", "X"), ("where_gt", "X", "Y"),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("pattern", PATTERNS, ids=str)
def test_each_rewrite_pattern_keeps_nan_inf_and_signed_zeros(pattern, dtype):
    _compile_and_compare(pattern, dtype)


def test_a_product_with_zero_is_nan_where_numpy_has_nan():
    X = sg.tensor("X", ("n",))
    x = np.array([np.inf, -np.inf, np.nan, -2.0, 3.0])
    (got,) = sg.compile_function([X * 0.0], [X])(x)
    with np.errstate(invalid="ignore"):
        assert_same_bits(got, x * 0.0, "X * 0.0")
    assert np.signbit(got[3]) and not np.signbit(got[4])


def test_matrix_products_with_constant_matrices_keep_nan_and_inf():
    # A uniform constant matrix (ones, zeros, c) times B: NaN where B's column has inf or NaN
    # and the product has them, as numpy's matmul.
    B = sg.tensor("B", (3, 2))
    b = np.array([[np.inf, 1.0], [2.0, np.nan], [0.5, -1.0]])
    for c in (0.0, 1.0, -2.0, np.inf):
        left = Tensor(ir.matmul(ir.const(c, "float64", (4, 3)), B.node))
        right = Tensor(ir.matmul(B.T.node, ir.const(c, "float64", (3, 4))))
        got_left, got_right = sg.compile_function([left, right], [B])(b)
        with np.errstate(all="ignore"):
            assert_same_bits(got_left, np.full((4, 3), c) @ b, f"{c} @ B")
            assert_same_bits(got_right, b.T @ np.full((3, 4), c), f"B.T @ {c}")


def test_gradients_multiply_by_zero_like_numpy():
    # d/dx sum(x * c) is c (c = 0 included); d/dW of sum(0 * (X @ W)) sees X's inf as NaN,
    # as the chain rule computed by numpy does (0 * inf).
    X, W = sg.tensor("X", ("n", 2)), sg.tensor("W", (2, 1))
    step = sg.compile(((X @ W) * 0.0).sum(), wrt=[W], inputs=[X])
    x = np.array([[1.0, np.inf], [2.0, 3.0]])
    value, (dw,) = step([np.ones((2, 1))], X=x)
    with np.errstate(invalid="ignore"):
        assert_same_bits(value, np.sum((x @ np.ones((2, 1))) * 0.0), "value")
        assert_same_bits(dw, x.T @ np.zeros((2, 1)), "dW")


# ---- SymPy expressions: SymPy's own numeric meaning (lambdify with numpy) is the oracle ------

SYMPY_CASES = [
    lambda x, y: x / y,
    lambda x, y: x / (y * x),
    lambda x, y: x * y**-1 * (x + 1)**-1,
    lambda x, y: x**-1,
    lambda x, y: x**-2,
    lambda x, y: sympy.sqrt(x),
    lambda x, y: 1 / sympy.sqrt(x),
    lambda x, y: -(x - y),
    lambda x, y: sympy.Abs(sympy.sqrt(x)),
    lambda x, y: sympy.Max(x, y) - sympy.Min(x, y),
    lambda x, y: sympy.Piecewise((x / y, y > 0), (x * y, True)),
    lambda x, y: x * y + 0.0 * y,   # SymPy keeps 0.0*y (a Float), numpy's NaN for inf y
]


@pytest.mark.parametrize("case", range(len(SYMPY_CASES)))
def test_sympy_expressions_keep_lambdify_nan_and_inf(case):
    x, y = sg.symbols("x y")
    expr = SYMPY_CASES[case](x, y)
    kernel = sg.compile(expr, wrt=[x, y])
    reference = sympy.lambdify((x, y), expr, "numpy")
    a, b = _pairs(SPECIALS, np.float64)
    with np.errstate(all="ignore"):
        want = np.broadcast_to(np.asarray(reference(a, b), np.float64), a.shape)
    value, _ = kernel(a, b)
    nan_want = np.isnan(want)
    assert (np.isnan(value) == nan_want).all(), (expr, a[np.isnan(value) != nan_want],
                                                 b[np.isnan(value) != nan_want])
    finite = ~nan_want
    assert (np.isinf(value[finite]) == np.isinf(want[finite])).all(), expr
    assert (np.signbit(value[finite]) == np.signbit(want[finite])).all(), expr
    np.testing.assert_allclose(value[finite], want[finite], rtol=4e-16, atol=0)


# ---- stable forms: NaN and inf inputs give what the written form gives -----------------------

STABLE_FORMS = {
    # name: (the IR as written, the written form in numpy, its exact value in mpmath)
    "log(sigmoid)": (lambda z: ir.log(ir.sigmoid(z)),
                     lambda z: np.log(1 / (1 + np.exp(-z))),
                     lambda z: -mpmath.log1p(mpmath.exp(-z))),
    "log(exp)": (lambda z: ir.log(ir.exp(z)), lambda z: np.log(np.exp(z)), lambda z: z),
    "log(1+x)": (lambda z: ir.log(ir.add(ir.const(1.0), z)), lambda z: np.log(1 + z),
                 lambda z: mpmath.log1p(z)),
    "log(1-x)": (lambda z: ir.log(ir.sub(ir.const(1.0), z)), lambda z: np.log(1 - z),
                 lambda z: mpmath.log1p(-z)),
    "log1p(exp)": (lambda z: ir.log1p(ir.exp(z)), lambda z: np.log1p(np.exp(z)),
                   lambda z: mpmath.log1p(mpmath.exp(z))),
    "log1p(-sigmoid)": (lambda z: ir.log1p(ir.neg(ir.sigmoid(z))),
                        lambda z: np.log1p(-1 / (1 + np.exp(-z))),
                        lambda z: -mpmath.log1p(mpmath.exp(z))),
    "1/(1+exp(-y))": (lambda z: ir.div(ir.const(1.0), ir.add(ir.const(1.0), ir.exp(ir.neg(z)))),
                      lambda z: 1 / (1 + np.exp(-z)),
                      lambda z: 1 / (1 + mpmath.exp(-z))),
}


@pytest.mark.parametrize("name", sorted(STABLE_FORMS))
def test_stable_forms_give_the_written_forms_nan_and_inf(name):
    build, written, exact = STABLE_FORMS[name]
    X = sg.tensor("X", ("n",))
    inputs = np.array(SPECIALS)
    (got,) = sg.compile_function([Tensor(build(X.node))], [X])(inputs)
    with np.errstate(all="ignore"):
        want = written(inputs)
    # For a NaN or infinite input the stable form gives what the written form gives.
    special = ~np.isfinite(inputs)
    assert (np.isnan(got) == np.isnan(want))[special].all(), (got, want)
    assert (got[special & ~np.isnan(want)] == want[special & ~np.isnan(want)]).all(), (got, want)
    # For a finite input it is NaN only where the written form's value is (log of a negative
    # number), and otherwise within a few ulp of the exact value, also where the written form
    # overflows or underflows (log(exp(1e308)) is 1e308, not inf).
    with mpmath.workdps(60):
        for value, result, naive in zip(inputs[~special], got[~special], want[~special]):
            if np.isnan(naive):
                assert np.isnan(result), (value, result)
                continue
            true = float(exact(mpmath.mpf(float(value))))
            if math.isinf(true):
                assert result == true, (value, result, true)
                continue
            assert abs(result - true) <= 4 * np.spacing(abs(true)) + 1e-300, (value, result, true)
def test_nan_constants_and_signed_zero_constants_are_distinct_nodes():
    assert ir.const(0.0) is not ir.const(-0.0)
    assert ir.const(float("nan")) is ir.const(float("nan"))
    assert math.copysign(1.0, ir.add(ir.const(-0.0), ir.const(-0.0)).attrs) == -1.0
    assert math.copysign(1.0, ir.add(ir.const(-0.0), ir.const(0.0)).attrs) == 1.0


# ---- rows with infinite entries: masked classes, impossible events ---------------------------

MASKED_ROWS = np.array([
    [-np.inf, -np.inf, -np.inf, -np.inf],     # fully masked
    [-np.inf, 0.5, -np.inf, 2.0],             # partly masked
    [np.inf, 1.0, -np.inf, 3.0],              # one +inf
    [np.inf, np.inf, 0.0, -np.inf],           # two +inf
    [np.nan, 1.0, 2.0, 3.0],                  # NaN
    [np.nan, -np.inf, -np.inf, -np.inf],      # NaN among masked
    [1000.0, -1000.0, 0.0, 999.0],            # large, finite
    [-1e308, -1e308, -np.inf, -1e308],        # finite, far down
])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_logsumexp_of_rows_with_infinities_is_scipys(dtype):
    from scipy.special import logsumexp as scipy_logsumexp

    X = sg.tensor("X", ("n", 4), dtype)
    with np.errstate(over="ignore"):
        x = MASKED_ROWS.astype(dtype)            # -1e308 is -inf in float32
    (got, got_t) = sg.compile_function([sg.logsumexp(X, axis=1), sg.logsumexp(X.T, axis=0)],
                                       [X])(x)
    with np.errstate(all="ignore"):
        want = scipy_logsumexp(x.astype(np.float64), axis=1).astype(dtype)
    for result in (got, got_t):
        assert (np.isnan(result) == np.isnan(want)).all(), (result, want)
        finite = np.isfinite(want)
        assert (result[~finite & ~np.isnan(want)] == want[~finite & ~np.isnan(want)]).all()
        np.testing.assert_allclose(result[finite], want[finite], rtol=4 * np.finfo(dtype).eps)


def test_softmax_and_log_softmax_of_rows_with_infinities_follow_the_documented_limits():
    X = sg.tensor("X", ("n", 4))
    soft, log_soft = sg.compile_function([sg.softmax(X, axis=1), sg.log_softmax(X, axis=1)],
                                         [X])(MASKED_ROWS)
    # The rule: a fully masked row has no mass; +inf entries share the mass equally; NaN
    # spreads over its row; any other row is the ordinary softmax of its finite entries.
    for row, s, ls in zip(MASKED_ROWS, soft, log_soft):
        if np.isnan(row).any():
            assert np.isnan(s).all() and np.isnan(ls).all()
            continue
        if (row == np.inf).any():
            expected = (row == np.inf) / np.sum(row == np.inf)
            with np.errstate(divide="ignore"):
                expected_log = np.log(expected)
        elif (row == -np.inf).all():
            expected, expected_log = np.zeros(4), np.full(4, -np.inf)
        else:
            finite = row[np.isfinite(row)]
            with mpmath.workdps(40):
                top = mpmath.mpf(float(finite.max()))
                log_total = mpmath.log(mpmath.fsum(mpmath.exp(mpmath.mpf(v) - top)
                                                   for v in finite))
                expected_log = np.array([-np.inf if v == -np.inf else
                                         float(mpmath.mpf(v) - top - log_total) for v in row])
                expected = np.array([0.0 if v == -np.inf else
                                     float(mpmath.exp(mpmath.mpf(v) - top - log_total))
                                     for v in row])
        np.testing.assert_allclose(s, expected, rtol=1e-14, atol=0)
        np.testing.assert_allclose(ls, expected_log, rtol=1e-14, atol=0)
        assert not np.isnan(s).any() and not np.isnan(ls).any()


def test_gradients_through_masked_rows_are_finite_and_match_finite_differences():
    X = sg.tensor("X", ("n", 4))
    W = sg.tensor("W", (4,))
    loss = sg.logsumexp(X + W, axis=1).sum() + (sg.softmax(X + W, axis=1) * W).sum()
    step = sg.compile(loss, wrt=[W], inputs=[X])
    rows = MASKED_ROWS[[0, 1, 6]]         # no +inf, no NaN: the loss is finite or -inf
    w = np.array([0.3, -0.2, 0.1, 0.4])
    value, (dw,) = step([w], X=rows[1:])
    assert np.isfinite(value) and np.isfinite(dw).all()
    eps = 1e-6
    for i in range(4):
        up, down = w.copy(), w.copy()
        up[i] += eps
        down[i] -= eps
        numeric = (step([up], X=rows[1:])[0] - step([down], X=rows[1:])[0]) / (2 * eps)
        assert abs(dw[i] - numeric) <= 1e-6 * (1 + abs(numeric)), (i, dw[i], numeric)
    # A fully masked row adds -inf to the loss and nothing to the gradient.
    value, (dw_all,) = step([w], X=rows)
    assert value == -np.inf
    np.testing.assert_allclose(dw_all, dw, rtol=1e-15)


def test_softmax_cross_entropy_with_masked_classes():
    Z, T = sg.tensor("Z", ("n", 3)), sg.tensor("T", ("n", 3))
    step = sg.compile(sg.losses.softmax_cross_entropy(Z, T, reduction="sum"), wrt=[Z],
                      inputs=[T])
    z = np.array([[0.0, 1.0, -np.inf], [2.0, -np.inf, -np.inf]])
    t = np.array([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    value, (dz,) = step([z], T=t)
    # The masked classes are impossible and not the target: the loss of the other classes.
    want = (np.log(1 + np.e) - 0.0) + 0.0
    assert abs(value - want) <= 1e-15 * want
    np.testing.assert_allclose(dz, [[1 / (1 + np.e) - 1, np.e / (1 + np.e), 0.0],
                                    [0.0, 0.0, 0.0]], rtol=1e-15, atol=1e-16)
    # A masked class as the target: an infinite loss, as torch gives.
    value, _ = step([z], T=np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]))
    assert value == np.inf
