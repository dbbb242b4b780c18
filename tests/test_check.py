"""gradcheck: passes on every supported function, fails loudly with a table on a wrong one."""

import numpy as np
import pytest
import sympy

import symgrad as sg
from symgrad import ir
from symgrad.codegen import Kernel

x, y = sg.symbols("x y")

# Every supported function, at a point where it is smooth.
FUNCTIONS = [
    x + y, x - y, x * y, x / y, x**3, x**-2, x**2.5, x**y, sympy.exp(x), sympy.log(x),
    sympy.sqrt(x), sympy.sin(x), sympy.cos(x), sympy.tanh(x), sympy.Abs(x - 2), sympy.Max(x, y),
    sympy.Min(x, y), sympy.Max(x, 0), sympy.Heaviside(x - 2) * y, sympy.sign(x - 2) * y,
    sympy.Piecewise((x * y, x > y), (sympy.exp(y), True)),
    sympy.Piecewise((sympy.log(x), x > 2), (x**2, True)),
    x**2 + x * y + (x + y)**2,
]


@pytest.mark.parametrize("expr", FUNCTIONS, ids=str)
def test_gradcheck_passes_on_every_supported_function(expr):
    assert sg.gradcheck(expr, wrt=[x, y], at={x: 1.3, y: 0.7}) is True
    assert sg.gradcheck(expr, wrt=[x, y], at={x: np.array([1.3, 2.6, 3.1]), y: 0.7}) is True


def test_gradcheck_with_a_compiled_kernel_and_extra_inputs():
    a = sg.symbols("a")
    k = sg.compile(a * sympy.tanh(x * y), wrt=[x, y], inputs=[a])
    assert sg.gradcheck(k, wrt=[x, y], at={x: 0.3, y: -1.2, a: 2.0})
    assert sg.gradcheck(a * sympy.tanh(x), wrt=[x], at={x: 0.3, a: 2.0})


def test_gradcheck_reports_a_wrong_gradient_with_a_table():
    u = ir.input_node("x")
    wrong = ir.Function([u], [ir.mul(u, u), ir.mul(ir.const(3.0), u)], ["f", "df/dx"])
    kernel = Kernel(wrong)
    with pytest.raises(sg.GradcheckError) as info:
        sg.gradcheck(kernel, wrt=[x], at={x: np.array([1.0, 0.0, 2.0])})
    message = str(info.value)
    assert "2 mismatching entries" in message
    assert "analytic" in message and "finite difference" in message
    lines = message.splitlines()
    assert any(line.split()[:2] == ["x", "0"] and "3" in line.split()[2] for line in lines)
    assert any(line.split()[:2] == ["x", "2"] for line in lines)
    with pytest.raises(sg.GradcheckError):
        sg.gradcheck(kernel, wrt=[x], at={x: 1.0})


def test_gradcheck_argument_errors():
    with pytest.raises(ValueError, match=r"no value for \['y'\]"):
        sg.gradcheck(sg.compile(x * y, wrt=[x, y]), wrt=[x], at={x: 1.0})
    with pytest.raises(ValueError, match="not arguments"):
        sg.gradcheck(sg.compile(x, wrt=[x]), wrt=[x], at={x: 1.0, "q": 2.0})
