"""Deep and wide expressions: no RecursionError from our passes, correct gradients."""

import math
import sys

import numpy as np
import pytest
import sympy

import symgrad as sg
from symgrad import ir
from symgrad.autodiff.reverse import value_and_grad
from symgrad.codegen import Kernel
from symgrad.frontend.sympy_to_ir import to_ir

x, y = sg.symbols("x y")


def test_300_deep_tanh_nest():
    expr = x
    for _ in range(300):
        expr = sympy.tanh(expr)
    k = sg.compile(expr, wrt=[x])
    symbolic = sg.grad(expr, x)
    # Our own passes (translation, reverse mode, lowering, JIT) must not recurse at all:
    # run them again under a recursion limit far below the depth of the expression.
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(120)
    try:
        node = to_ir(expr, {x: ir.input_node("x")})
        fused = value_and_grad(ir.Function([ir.input_node("x")], [node], ["f"]), ["x"])
        k_low_limit = Kernel(fused)
        text = str(k_low_limit)
    finally:
        sys.setrecursionlimit(limit)
    assert text == str(k)
    points = np.array([-2.0, -0.3, 0.0, 0.4, 1.5])
    value, (gradient,) = k(points)
    expected_value, expected_gradient = [], []
    for p in points:
        v, d = p, 1.0
        for _ in range(300):
            v = math.tanh(v)
            d *= 1 - v * v
        expected_value.append(v)
        expected_gradient.append(d)
    np.testing.assert_allclose(value, expected_value, rtol=1e-13)
    np.testing.assert_allclose(gradient, expected_gradient, rtol=1e-12)
    assert symbolic.has(sympy.tanh)
    assert sg.gradcheck(k, wrt=[x], at={x: points})


def test_10000_term_sum():
    n = 10_000
    coefficients = [sympy.Integer(i % 7 + 1) for i in range(n)]
    centers = [sympy.Rational(i, 1000) for i in range(n)]
    expr = sympy.Add(*[c * (x - a)**2 * y for c, a in zip(coefficients, centers)])
    assert len(expr.args) == n
    k = sg.compile(expr, wrt=[x, y])
    c = np.array([i % 7 + 1 for i in range(n)], dtype=float)
    a = np.arange(n) / 1000
    for px, py in [(0.5, 2.0), (-3.0, 0.25)]:
        value, (dx, dy) = k(px, py)
        assert value == pytest.approx(np.sum(c * (px - a)**2 * py), rel=1e-12)
        assert dx == pytest.approx(np.sum(2 * c * (px - a) * py), rel=1e-12)
        assert dy == pytest.approx(np.sum(c * (px - a)**2), rel=1e-12)
    gradient = sg.grad(expr, [y])[0]
    assert len(gradient.args) == n
