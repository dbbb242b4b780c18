"""SymPy -> IR: what is translated, what is refused and how."""

import math

import numpy as np
import pytest
import sympy

import symgrad as sg
from symgrad.reference.evaluate import evaluate

x, y = sg.symbols("x y")

SUPPORTED = [
    x + y, x - y, x * y, x / y, -x, x**3, x**-2, x**2.5, x**sympy.Rational(1, 3), y**x,
    sympy.exp(x), sympy.log(x), sympy.sqrt(x), 1 / sympy.sqrt(x), sympy.sin(x), sympy.cos(x),
    sympy.tanh(x), sympy.Abs(x - 1), sympy.sign(x - 1), sympy.Max(x, y, 1), sympy.Min(x, y),
    sympy.Heaviside(x - 1), sympy.Heaviside(x - 1, 1),
    sympy.Piecewise((x, x < 1), (y, sympy.And(x >= 1, y > 0)), (0, True)),
    sympy.Piecewise((x, sympy.Or(sympy.Eq(x, y), sympy.Ne(y, 2))), (1, True)),
    sympy.Piecewise((x, sympy.Not(x <= y)), (-y, True)),
    sympy.pi * x + sympy.E, sympy.Float("0.1") * x + sympy.Rational(2, 7),
    sympy.log(x, 2), sympy.exp(-x**2 / 2) / sympy.sqrt(2 * sympy.pi),
]


@pytest.mark.parametrize("expr", SUPPORTED, ids=str)
def test_supported_expressions_evaluate_like_sympy(expr):
    fn = sg.trace(expr, wrt=[x, y])
    points = [(0.7, 1.3), (2.5, 0.4), (1.0, 2.0), (1.0, 1.0), (3.0, -1.0)]
    got = evaluate(fn, np.array([p[0] for p in points]), np.array([p[1] for p in points]))[0]
    for (a, b), value in zip(points, got):
        expected = complex(expr.subs({x: a, y: b}).evalf(30))
        if expected.imag != 0 or not math.isfinite(expected.real):
            assert not math.isfinite(value) or expected.imag != 0
            continue
        assert value == pytest.approx(expected.real, rel=1e-13, abs=1e-300)


def test_heaviside_at_zero_follows_sympy_h0():
    fn = sg.trace(sympy.Heaviside(x), wrt=[x])
    assert evaluate(fn, np.array([-1.0, 0.0, 2.0]))[0].tolist() == [0.0, 0.5, 1.0]
    fn = sg.trace(sympy.Heaviside(x, 0), wrt=[x])
    assert evaluate(fn, np.array([0.0]))[0].tolist() == [0.0]
    assert math.isnan(evaluate(fn, np.array([np.nan]))[0][0])


def test_piecewise_without_default_is_nan_where_no_condition_holds():
    fn = sg.trace(sympy.Piecewise((x, x > 0)), wrt=[x])
    value = evaluate(fn, np.array([1.0, -1.0]))[0]
    assert value[0] == 1.0 and math.isnan(value[1])


@pytest.mark.parametrize("expr, function", [
    (sympy.gamma(x), "gamma"),
    (sympy.besselj(0, x) + 1, "besselj"),
    (sympy.Function("f")(x) * 2, "f"),
    (sympy.Mod(y, x), "Mod"),
    (sympy.loggamma(x), "loggamma"),
])
def test_unsupported_functions_are_named(expr, function):
    with pytest.raises(sg.UnsupportedExpressionError) as info:
        sg.trace(expr, wrt=[x, y])
    message = str(info.value)
    assert repr(function) in message
    sub_expression = next(a for a in sympy.preorder_traversal(expr)
                          if getattr(a.func, "__name__", "") == function)
    assert str(sub_expression) in message


def test_complex_constants_are_refused():
    with pytest.raises(sg.UnsupportedExpressionError, match="complex|not real"):
        sg.trace(x + sympy.I, wrt=[x])
    with pytest.raises(sg.UnsupportedExpressionError, match="not real"):
        sg.trace(x + sympy.zoo, wrt=[x])


def test_undeclared_symbols_are_named():
    z = sympy.Symbol("z")
    with pytest.raises(sg.UnknownSymbolError, match=r"\['z'\]"):
        sg.trace(x + z, wrt=[x])


def test_bad_expression_arguments():
    with pytest.raises(TypeError, match="not a string"):
        sg.trace("x + 1", wrt=[x])
    with pytest.raises(TypeError, match="wrt must hold SymPy symbols"):
        sg.trace(x, wrt=[x, 2])
    with pytest.raises(ValueError, match="both named 'x'"):
        sg.grad(x + sympy.Symbol("x"), [x])
    with pytest.raises(ValueError, match="both in wrt and in inputs"):
        sg.trace(x, wrt=[x], inputs=[x])


def test_shared_subexpressions_become_one_node():
    shared = sympy.exp(x * y)
    fn = sg.trace(shared * sympy.sin(shared) + sympy.cos(shared), wrt=[x, y])
    exps = [n for n in fn.nodes if n.op.value == "exp"]
    assert len(exps) == 1
