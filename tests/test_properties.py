"""Property tests over random SymPy expressions in two real symbols.

The strategy :func:`expressions` builds depth-bounded formulas from numbers, ``x``, ``y``,
``+ - * /``, integer and real powers, ``exp``, ``log``, ``sqrt``, ``sin``, ``cos``, ``tanh``,
``Abs``, ``Max``, ``Min``, ``Heaviside`` and ``Piecewise``.  On them we check that

* ``sg.grad`` agrees with ``sympy.diff`` at random points away from kinks and singularities;
* the compiled kernel agrees with the numpy reference interpreter on the fused forward and
  backward IR, in float64 and in float32;
* ``sg.gradcheck`` (central finite differences on the kernel) passes away from kinks.
"""

import contextlib
import math
import signal
import threading

import numpy as np
import pytest
import sympy
from hypothesis import HealthCheck, assume, given, note, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import symgrad as sg
from symgrad.autodiff.reverse import value_and_grad
from symgrad.ir.ops import Op
from symgrad.reference.evaluate import NUMPY_DTYPES, NUMPY_RULES, evaluate

X, Y = sg.symbols("x y")

# ---------------------------------------------------------------------------------------------
# The expression strategy
# ---------------------------------------------------------------------------------------------

# One strategy (not a one_of, which hypothesis would flatten into the leaves' choice) so that
# numbers are a third of the leaves rather than most of them.
_NUMBERS = st.sampled_from(
    [sympy.Integer(n) for n in range(-3, 4)]
    + [sympy.Rational(1, 2), sympy.Rational(-1, 3), sympy.Rational(3, 4), sympy.Rational(5, 2)]
    + [sympy.Float(v) for v in (0.5, -1.25, 2.0, 0.1, 3.75, -0.7)])
_LEAVES = st.one_of(st.just(X), st.just(Y), _NUMBERS)


def _positive(kind, e):
    """A sub-expression that is positive (and finite where ``e`` is) for every real ``e``."""
    if kind == "exp":
        return sympy.exp(e)
    if kind == "square":
        return e**2 + 1
    return 1 + sympy.Abs(e)


_POSITIVE_KIND = st.sampled_from(["exp", "square", "abs"])
_RELATIONS = st.sampled_from([sympy.StrictGreaterThan, sympy.StrictLessThan,
                              sympy.GreaterThan, sympy.LessThan])

_NON_FINITE = (sympy.zoo, sympy.nan, sympy.oo, -sympy.oo)


def _exp_depth(expr):
    """How many ``exp`` are nested along the deepest path of ``expr``."""
    if expr.is_Atom:
        return 0
    inner = max(_exp_depth(a) for a in expr.args)
    return inner + 1 if isinstance(expr, sympy.exp) else inner


def _checked(build):
    """``build`` made total: None where SymPy refuses (``Max(zoo, x)``), where the result holds
    a non-finite constant (``1/0`` folds to ``zoo``), a constant over 1e3 in size or more than
    two nested ``exp``; such draws are filtered out.

    The last two keep magnitudes within what SymPy can evaluate or even print quickly:
    ``exp(exp(exp(exp(3))))`` takes mpmath minutes, and printing a sum holding it evaluates it.
    """
    def checked(operands):
        try:
            result = build(*operands)
            if result.has(*_NON_FINITE) or _exp_depth(result) > 2:
                return None
            if not result.free_symbols and abs(complex(result)) > 1e3:
                return None
        except (ValueError, TypeError, ZeroDivisionError, OverflowError):
            return None
        return result
    return checked


def _extend(sub):
    """One more level of expression over sub-expressions drawn from ``sub``.

    The operation is drawn with ``sampled_from`` and its operands with ``flatmap``: a flat
    ``one_of`` over the operations visited the first few far more often than the rest.
    """
    real_exponents = st.sampled_from([sympy.Float(0.5), sympy.Float(1.5), sympy.Float(2.5),
                                      sympy.Rational(3, 2), sympy.Float(-0.5)])
    # (operand strategies, builder)
    operations = [
        ((sub, sub), lambda a, b: a + b),
        ((sub, sub), lambda a, b: a - b),
        ((sub, sub), lambda a, b: a * b),
        ((sub, sub), lambda a, b: a / b),
        ((sub, st.integers(-3, 4)), lambda a, k: a**k),
        ((_POSITIVE_KIND, sub, real_exponents), lambda kind, a, r: _positive(kind, a)**r),
        ((sub,), sympy.exp),
        ((sub,), lambda a: sympy.log(1 + a**2)),
        ((sub,), lambda a: sympy.log(sympy.exp(a))),
        ((_POSITIVE_KIND, sub), lambda kind, a: sympy.sqrt(_positive(kind, a))),
        ((sub,), sympy.sin),
        ((sub,), sympy.cos),
        ((sub,), sympy.tanh),
        ((sub,), sympy.atan),
        ((sub,), sympy.asinh),
        ((sub,), sympy.erf),
        ((sub,), sympy.Abs),
        ((sub, sub), sympy.Max),
        ((sub, sub), sympy.Min),
        ((sub,), sympy.Heaviside),
        ((sub, sub, sub, _RELATIONS),
         lambda a, b, c, relation: sympy.Piecewise((a, relation(c, 0)), (b, True))),
    ]
    return st.sampled_from(operations).flatmap(
        lambda operation: st.tuples(*operation[0]).map(_checked(operation[1]))
        .filter(lambda e: e is not None))


def expressions(max_depth=4):
    """SymPy expressions over ``x, y`` at most ``max_depth`` operations deep."""
    strategy = _LEAVES
    for _ in range(max_depth):
        # A leaf a quarter of the time, an operation otherwise.
        strategy = st.sampled_from([False, True, True, True]).flatmap(
            lambda grow, leaves=_LEAVES, bigger=_extend(strategy): bigger if grow else leaves)
    return strategy


def _with_symbols(expr):
    # A constant has nothing to differentiate and would only test the constant folder; mapping
    # (rather than filtering) keeps hypothesis from giving up on constant-heavy draws.
    return expr if expr.free_symbols else expr * X + Y


# SymPy rewrites a Piecewise nested inside a condition into ITE(...); the strategy makes some
# (test_piecewise_in_a_condition pins one down).
_EXPRS = expressions(4).map(_with_symbols)


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------

_PREC = 40


def kink_arguments(expr):
    """Expressions whose zeros are where ``expr`` or its derivative may jump or blow up:
    arguments of ``Abs``, ``sign``, ``Heaviside``, differences of ``Max``/``Min`` operands,
    ``lhs - rhs`` of Piecewise conditions, and bases of negative or fractional powers."""
    kinks = []
    for node in sympy.preorder_traversal(expr):
        if isinstance(node, (sympy.Abs, sympy.sign, sympy.Heaviside)):
            kinks.append(node.args[0])
        elif isinstance(node, (sympy.Max, sympy.Min)):
            args = node.args
            kinks.extend(a - b for i, a in enumerate(args) for b in args[i + 1:])
        elif isinstance(node, sympy.core.relational.Relational):
            kinks.append(node.lhs - node.rhs)
        elif isinstance(node, sympy.Pow) and (node.exp.is_negative or not node.exp.is_integer):
            kinks.append(node.base)
        elif isinstance(node, sympy.log):
            kinks.append(node.args[0])
    return kinks


class _TooSlow(Exception):
    pass


@contextlib.contextmanager
def _time_limit(seconds):
    """Raise :class:`_TooSlow` in the block after ``seconds`` (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise _TooSlow

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def numeric(expr, a, b):
    """``expr`` at ``x=a, y=b`` evaluated with 40 digits, as a float; None where it is not a
    finite real number (NaN, infinity, complex, an unevaluated DiracDelta(0)...) or where
    mpmath needs more than a second for it (``exp(exp(x**4 * y**4))`` at ``x = y = 3``)."""
    point = {X: sympy.Float(a, _PREC), Y: sympy.Float(b, _PREC)}
    try:
        with _time_limit(1.0):
            value = sympy.N(sympy.sympify(expr).subs(point), _PREC)
    except (TypeError, ValueError, ZeroDivisionError, OverflowError, _TooSlow):
        return None
    if not value.is_Number or value in (sympy.nan, sympy.oo, -sympy.oo, sympy.zoo):
        return None
    result = float(value)
    return result if math.isfinite(result) else None


def away_from_kinks(expr, a, b, distance=1e-3):
    """True when every kink argument of ``expr`` (see :func:`kink_arguments`) is a finite
    number at least ``distance`` from zero at ``(a, b)``."""
    for kink in kink_arguments(expr):
        value = numeric(kink, a, b)
        if value is None or abs(value) < distance:
            return False
    return True


_POINTS = st.lists(st.tuples(st.floats(-3, 3), st.floats(-3, 3)), min_size=3, max_size=3)


# ---------------------------------------------------------------------------------------------
# 1. sg.grad vs sympy.diff
# ---------------------------------------------------------------------------------------------

@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(f=_EXPRS, points=_POINTS)
def test_grad_matches_sympy_diff(f, points):
    gradient = sg.grad(f, [X, Y])
    expected = [sympy.diff(f, X), sympy.diff(f, Y)]
    note(f"f = {f}\nsymgrad: {gradient}\nsympy: {expected}")
    checked = 0
    for a, b in points:
        if numeric(f, a, b) is None or not away_from_kinks(f, a, b):
            continue
        wanted = [numeric(d, a, b) for d in expected]
        if None in wanted:
            continue
        got = [numeric(g, a, b) for g in gradient]
        note(f"at x={a!r}, y={b!r}: symgrad {got}, sympy {wanted}")
        for g, w in zip(got, wanted):
            assert g is not None, "symgrad's derivative is not finite where sympy's is"
            assert math.isclose(g, w, rel_tol=1e-7, abs_tol=1e-9)
        checked += 1
    assume(checked > 0)


# ---------------------------------------------------------------------------------------------
# 2. The compiled kernel vs the numpy reference interpreter
# ---------------------------------------------------------------------------------------------

def _fused(f):
    return value_and_grad(sg.trace(f, wrt=[X, Y]), ["x", "y"])


# Ops whose results the kernel (symgrad.codegen.lower.vecmath, libm) and numpy (its own SIMD
# routines) may round differently, by up to 3 ulp (tests/test_vecmath.py).  Every other op is
# correctly rounded in both.
_LIBM_OPS = frozenset({Op.EXP, Op.LOG, Op.SIN, Op.COS, Op.TANH, Op.POW, Op.EXPM1, Op.LOG1P,
                       Op.SIGMOID, Op.SOFTPLUS, Op.LOG2, Op.LOG10, Op.EXP2, Op.TAN, Op.ASIN,
                       Op.ACOS, Op.ATAN, Op.SINH, Op.COSH, Op.ASINH, Op.ACOSH, Op.ATANH,
                       Op.ERF, Op.ERFC, Op.ATAN2, Op.HYPOT})


def _perturbed_evaluations(function, args, runs=6, ulps=3, seed=0):
    """``function`` evaluated like :func:`evaluate`, ``runs`` times, each time with every libm
    result multiplied by a random ``1 + k * eps``, ``|k| <= ulps``.

    How far these results spread is how much a different (but equally good) libm may move
    each output: it captures the amplification by cancellation (``1 - tanh(y)**2`` near
    saturation) that no fixed relative tolerance can.
    """
    rng = np.random.default_rng(seed)
    values = {node.attrs: np.asarray(a, NUMPY_DTYPES[node.dtype])
              for node, a in zip(function.inputs, args)}
    results = []
    with np.errstate(all="ignore"):
        for _ in range(runs):
            env = {}
            for node in function.nodes:
                np_dtype = NUMPY_DTYPES[node.dtype]
                if node.op is Op.CONST:
                    env[id(node)] = np.full(node.shape, node.attrs, np_dtype)
                elif node.op is Op.INPUT:
                    env[id(node)] = values[node.attrs]
                else:
                    value = NUMPY_RULES[node.op](*[env[id(a)] for a in node.args])
                    if node.op in _LIBM_OPS:
                        eps = np.finfo(np_dtype).eps
                        k = rng.integers(-ulps, ulps + 1, np.shape(value))
                        value = (value * (1 + k * eps)).astype(np_dtype)
                    env[id(node)] = value
            results.append([np.broadcast_to(env[id(out)], np.shape(args[0]))
                            for out in function.outputs])
    return results


def _assert_same(got, want, perturbed, rtol, label):
    """``got`` equals ``want`` up to ``rtol`` plus 4 times the spread of ``perturbed``; NaN
    and infinities must sit at the same places."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype, f"{label}: dtype {got.dtype} vs {want.dtype}"
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=f"{label}: NaNs")
    np.testing.assert_array_equal(np.isposinf(got), np.isposinf(want), err_msg=f"{label}: +inf")
    np.testing.assert_array_equal(np.isneginf(got), np.isneginf(want), err_msg=f"{label}: -inf")
    finite = np.isfinite(want)
    with np.errstate(all="ignore"):
        spread = np.zeros(want.shape, np.float64)
        for other in perturbed:
            gap = np.abs(np.asarray(other, np.float64) - want)
            spread = np.fmax(spread, np.where(np.isfinite(gap), gap, np.inf))
        allowed = rtol * np.abs(want.astype(np.float64)) + 4 * spread + 1e-300
        error = np.abs(got.astype(np.float64) - want)
    bad = finite & ~(error <= allowed)
    assert not bad.any(), (
        f"{label}: kernel and reference differ at {np.flatnonzero(bad).tolist()}: kernel "
        f"{got[bad].tolist()}, reference {want[bad].tolist()}, allowed error "
        f"{allowed[bad].tolist()}")


_ARRAYS = hnp.arrays(np.float64, 16, elements=st.floats(-5, 5))


# Beyond the brief's finite inputs: the special values where implementations most often part
# (NaN through max/min and comparisons, infinities, signed zeros, huge and subnormal numbers).
_SPECIAL_ARRAYS = hnp.arrays(np.float64, 16, elements=st.one_of(
    st.sampled_from([0.0, -0.0, math.inf, -math.inf, math.nan, 1e-310, -1e300, 1e300, 710.0]),
    st.floats(-5, 5)))


def _check_kernel_against_reference(f, xs, ys):
    fused = _fused(f)
    note(f"f = {f}\n{fused}")
    kernel = sg.compile(f, wrt=[X, Y])
    for dtype, rtol in (("float64", 1e-12), ("float32", 1e-5)):
        with np.errstate(over="ignore"):  # 1e300 becomes inf in float32, as it should
            args = (xs.astype(dtype), ys.astype(dtype))
        typed = fused.with_dtype(dtype)
        value, (dx, dy) = kernel(*args)
        wanted = evaluate(typed, *args)
        perturbed = list(zip(*_perturbed_evaluations(typed, args)))
        for index, label in enumerate(("f", "df/dx", "df/dy")):
            _assert_same((value, dx, dy)[index], wanted[index], perturbed[index], rtol,
                         f"{dtype} {label}")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(f=_EXPRS, xs=_ARRAYS, ys=_ARRAYS)
def test_kernel_matches_reference_interpreter(f, xs, ys):
    _check_kernel_against_reference(f, xs, ys)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(f=_EXPRS, xs=_SPECIAL_ARRAYS, ys=_SPECIAL_ARRAYS)
def test_kernel_matches_reference_interpreter_on_special_values(f, xs, ys):
    _check_kernel_against_reference(f, xs, ys)


# ---------------------------------------------------------------------------------------------
# 3. gradcheck away from kinks
# ---------------------------------------------------------------------------------------------

@settings(max_examples=50, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(f=_EXPRS, points=_POINTS)
def test_gradcheck_away_from_kinks(f, points):
    kernel = sg.compile(f, wrt=[X, Y])
    note(f"f = {f}")
    checked = 0
    for a, b in points:
        value, grads = kernel(a, b)
        # Finite differences lose their digits on huge values and slopes; and near a kink
        # the difference quotient straddles it.
        if not all(math.isfinite(v) and abs(v) < 1e4 for v in (value, *grads)):
            continue
        # The stencil is 2e-6 wide: keep well clear of kinks and poles.
        if not away_from_kinks(f, a, b, distance=1e-2):
            continue
        note(f"at x={a!r}, y={b!r}: value {value}, gradient {grads}")
        assert sg.gradcheck(kernel, wrt=[X, Y], at={X: a, Y: b}) is True
        checked += 1
    assume(checked > 0)


# ---------------------------------------------------------------------------------------------
# Cases the properties above found, pinned down so that they run every time
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("f, a, b", [
    (1 / sympy.Max(X, Y), 0.0, -0.0),
    (1 / sympy.Min(X, Y), -0.0, 0.0),
], ids=["max", "min"])
def test_kernel_and_reference_agree_on_max_min_of_signed_zeros(f, a, b):
    # llvm.maximum orders -0.0 below +0.0 (IEEE 754-2019); numpy.maximum returns its second
    # operand on a tie.  The sign of the zero then decides the sign of 1/Max(x, y).
    kernel = sg.compile(f, wrt=[X, Y])
    reference = evaluate(sg.trace(f, wrt=[X, Y]), np.array([a]), np.array([b]))[0]
    value, _ = kernel(np.array([a]), np.array([b]))
    np.testing.assert_array_equal(value, reference)


@pytest.mark.parametrize("f", [
    sympy.Max(X, sympy.Heaviside(X)),
    X * sympy.Heaviside(sympy.Heaviside(X)),
    sympy.Piecewise((X, sympy.Heaviside(Y) > sympy.Rational(1, 3)), (2 * X, True)),
], ids=["max-x-heaviside", "heaviside-of-heaviside", "heaviside-in-condition"])
def test_grad_of_a_heaviside_compared(f):
    # A Heaviside whose value is compared (by Max, by a nested Heaviside, in a condition):
    # its gradient must convert back to SymPy and match sympy.diff away from the kinks.
    gradient = sg.grad(f, [X, Y])
    for a, b in [(0.7, 0.3), (-0.6, 1.5), (1.2, -0.4)]:
        for got, wanted in zip(gradient, (sympy.diff(f, X), sympy.diff(f, Y))):
            assert math.isclose(numeric(got, a, b), numeric(wanted, a, b),
                                rel_tol=1e-12, abs_tol=1e-12)


def test_piecewise_in_a_condition():
    # SymPy rewrites a comparison of a Piecewise inside a Piecewise condition into ITE:
    # Piecewise((x, ITE(x > 0, y > 0, y < 0)), (2*x, True)).
    f = sympy.Piecewise((X, sympy.Piecewise((Y, X > 0), (-Y, True)) > 0), (2 * X, True))
    kernel = sg.compile(f, wrt=[X, Y])
    for a, b in [(1.0, 2.0), (1.0, -2.0), (-1.0, 2.0), (-1.0, -2.0)]:
        value, (dx, dy) = kernel(a, b)
        assert value == numeric(f, a, b)
        assert (dx, dy) == (numeric(sympy.diff(f, X), a, b), 0.0)
