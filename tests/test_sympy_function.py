"""sg.compile_function of SymPy outputs: lists, tuples, nests and matrices of expressions in
one kernel, against sympy.lambdify (the numpy printer) on the same arguments."""

import numpy as np
import pytest
import sympy

import symgrad as sg

x, y, z = sg.symbols("x y z")
RNG = np.random.default_rng(17)


def test_a_list_of_expressions_as_lambdify():
    exprs = [x * y, sympy.sin(x) * sympy.exp(-y**2), sympy.atan2(y, x), sympy.cosh(x - y),
             sympy.Piecewise((x, x > y), (y, True))]
    f = sg.compile_function(exprs, [x, y])
    reference = sympy.lambdify([x, y], exprs, "numpy")
    a, b = RNG.normal(size=50), RNG.normal(size=(3, 1))
    got = f(a, b)
    assert isinstance(got, list) and len(got) == len(exprs)
    for value, want in zip(got, reference(a, b)):
        np.testing.assert_allclose(value, np.broadcast_to(want, (3, 50)), rtol=1e-14)
    scalars = f(0.3, -1.2)
    assert all(type(v) is float for v in scalars)
    np.testing.assert_allclose(scalars, [float(v) for v in reference(0.3, -1.2)], rtol=1e-14)


def test_a_matrix_in_lambdifys_layout():
    # A Jacobian: shape (rows, columns) + the arguments' broadcast shape, as lambdify gives.
    F = sympy.Matrix([x**2 * y, 5 * x + sympy.sin(y), sympy.log(1 + x**2) * z])
    J = F.jacobian([x, y, z])
    f = sg.compile_function(J, [x, y, z])
    a, b, c = RNG.normal(size=7), RNG.normal(size=7), RNG.normal(size=7)
    got = f(a, b, c)
    assert got.shape == (3, 3, 7)
    # (lambdify of the whole matrix fails on its constant entries: element by element.)
    want = np.array([[np.broadcast_to(np.asarray(sympy.lambdify([x, y, z], J[i, j], "numpy")(
        a, b, c), float), (7,)) for j in range(3)] for i in range(3)])
    np.testing.assert_allclose(got, want, rtol=1e-14)
    at_point = f(1.0, 2.0, 3.0)
    assert at_point.shape == (3, 3)
    np.testing.assert_allclose(at_point, np.array(J.subs({x: 1, y: 2, z: 3}).evalf(),
                                                  float), rtol=1e-14)


def test_nested_structures_keep_their_types():
    f = sg.compile_function((x, [y, x + y], sympy.Matrix([[x * y]]), 2), [x, y])
    first, (second, third), matrix, constant = f(1.0, 2.0)
    assert (first, second, third, constant) == (1.0, 2.0, 3.0, 2.0)
    assert isinstance(f(1.0, 2.0), tuple) and isinstance(f(1.0, 2.0)[1], list)
    np.testing.assert_array_equal(matrix, [[2.0]])
    # A constant output takes the broadcast shape, like the others.
    np.testing.assert_array_equal(f(np.ones(4), 2.0)[3], np.full(4, 2.0))


def test_one_kernel_shares_the_common_work():
    shared = sympy.exp(sympy.sin(x) * y)
    f = sg.compile_function([shared + 1, shared * 2, shared**2], [x, y])
    assert f.kernel.function.count_nodes() < 9    # exp(sin(x) y) once, not three times
    a = RNG.normal(size=100)
    e = np.exp(np.sin(a) * 0.5)
    for got, want in zip(f(a, 0.5), (e + 1, e * 2, e**2)):
        np.testing.assert_allclose(got, want, rtol=1e-14)


def test_keywords_and_errors():
    f = sg.compile_function([x + y], [x, y])
    assert f(y=2.0, x=1.0) == [3.0]
    with pytest.raises(sg.UnknownSymbolError, match="free symbols"):
        sg.compile_function([x + z], [x])
    with pytest.raises(ValueError, match="at least one output"):
        sg.compile_function([], [x])
    with pytest.raises(TypeError, match="not a string"):
        sg.compile_function(["x + 1"], [x])
    with pytest.raises(TypeError, match="outputs must be SymPy"):
        sg.compile_function([np.ones(3)], [x])
