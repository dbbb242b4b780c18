"""The public API end to end, and every kind of bad input."""

import numpy as np
import pytest
import sympy

import symgrad as sg

x, y = sg.symbols("x y")
F = x**2 + x * y + (x + y)**2


@pytest.fixture(scope="module")
def kernel():
    return sg.compile(F, wrt=[x, y])


def _expected(xs, ys):
    xs, ys = np.broadcast_arrays(np.asarray(xs, float), np.asarray(ys, float))
    return xs**2 + xs * ys + (xs + ys)**2, 4 * xs + 3 * ys, 3 * xs + 2 * ys


def test_scalar_call_returns_python_floats(kernel):
    value, (dx, dy) = kernel(3.0, -2.0)
    assert (value, dx, dy) == (4.0, 6.0, 5.0)
    assert all(type(v) is float for v in (value, dx, dy))
    assert kernel(x=3.0, y=-2.0) == (4.0, (6.0, 5.0))
    assert kernel(3, -2) == (4.0, (6.0, 5.0))


def test_arrays_broadcast_like_numpy(kernel):
    xs = np.linspace(-2, 2, 5)
    ys = np.array([[1.0], [-3.0]])
    value, (dx, dy) = kernel(xs, ys)
    assert value.shape == dx.shape == dy.shape == (2, 5)
    for got, want in zip((value, dx, dy), _expected(xs, ys)):
        np.testing.assert_allclose(got, want, rtol=1e-15)


def test_zero_size_arrays(kernel):
    value, (dx, dy) = kernel(np.zeros((0, 3)), 1.0)
    assert value.shape == dx.shape == (0, 3)


def test_non_contiguous_and_read_only_arrays_match_a_contiguous_copy(kernel):
    base = np.random.default_rng(1).normal(size=(6, 8))
    views = [base.T, base[::2, 1::3], base[:, ::-1], base.ravel()[::3], base.ravel()[::-2]]
    for view in views:
        other = np.full(view.shape, 0.25)
        reference = kernel(np.ascontiguousarray(view), other)
        frozen = view.copy()
        frozen.flags.writeable = False
        for argument in (view, frozen, np.asfortranarray(view)):
            got = kernel(argument, other)
            np.testing.assert_array_equal(got[0], reference[0])
            np.testing.assert_array_equal(got[1][0], reference[1][0])
            np.testing.assert_array_equal(got[1][1], reference[1][1])
    assert base.flags.writeable


def test_dtypes(kernel):
    value, (dx, _) = kernel(np.float32([1.5]), np.float32([2.0]))
    assert value.dtype == dx.dtype == np.float32
    np.testing.assert_allclose(value, _expected(1.5, 2.0)[0], rtol=1e-6)
    value, _ = kernel(np.float32([1.5]), 2.0)        # Python numbers do not promote
    assert value.dtype == np.float32
    value, _ = kernel(np.float32([1.5]), np.float64([2.0]))
    assert value.dtype == np.float64
    value, _ = kernel(np.array([1, 2]), np.array([3, 4], dtype=np.int32))
    assert value.dtype == np.float64 and value.tolist() == [20.0, 48.0]


def test_wrong_number_of_arguments(kernel):
    with pytest.raises(TypeError, match=r"missing arguments \['y'\]"):
        kernel(1.0)
    with pytest.raises(TypeError, match="takes 2 arguments"):
        kernel(1.0, 2.0, 3.0)
    with pytest.raises(TypeError, match="unknown argument 'z'"):
        kernel(1.0, 2.0, z=3.0)
    with pytest.raises(TypeError, match="'x' given twice"):
        kernel(1.0, x=2.0)


def test_arrays_that_do_not_broadcast_are_named(kernel):
    with pytest.raises(ValueError, match=r"x has shape \(3,\), y has shape \(4,\)"):
        kernel(np.zeros(3), np.zeros(4))


@pytest.mark.parametrize("bad, message", [
    (np.array([1 + 2j]), "'y' must be real, got complex"),
    (1j, "'y' must be real, got complex"),
    ("text", "'y' must be a real number"),
    (np.array(["a", "b"]), "'y' must be a real number"),
    (np.array([object()]), "'y' must be a real number"),
    (True, "'y' must be a real number .*bool"),
    (np.array([True]), "'y' must be a real number"),
    (np.ones(2, dtype=np.longdouble), "'y' must be a real number"),
    ([[1.0], [1.0, 2.0]], "'y' must be a real number"),
    (None, "'y' must be a real number"),
])
def test_non_numeric_arguments_are_named(kernel, bad, message):
    with pytest.raises(TypeError, match=message):
        kernel(1.0, bad)


def test_symbol_in_wrt_but_not_in_expression_has_zero_gradient():
    z = sg.symbols("z")
    k = sg.compile(x * y, wrt=[x, z], inputs=[y])
    value, (dx, dz) = k(2.0, 5.0, 3.0)
    assert (value, dx, dz) == (6.0, 3.0, 0.0)
    value, (dx, dz) = k(np.ones(3), 5.0, 3.0)
    assert dz.tolist() == [0.0, 0.0, 0.0]


def test_undeclared_free_symbol_at_compile_time():
    with pytest.raises(sg.UnknownSymbolError, match=r"free symbols \['y'\].*wrt \['x'\]"):
        sg.compile(F, wrt=[x])


def test_inputs_are_arguments_without_gradients():
    a = sg.symbols("a")
    k = sg.compile(a * sympy.sin(x), wrt=[x], inputs=[a])
    value, (dx,) = k(0.5, 2.0)
    assert value == pytest.approx(2 * np.sin(0.5)) and dx == pytest.approx(2 * np.cos(0.5))
    assert k.arg_names == ("x", "a")


def test_constant_expression():
    k = sg.compile(sympy.Integer(3), wrt=[x])
    assert k(np.arange(3.0))[0].tolist() == [3.0, 3.0, 3.0]
    assert k(np.arange(3.0))[1][0].tolist() == [0.0, 0.0, 0.0]


def test_printed_kernel_shows_the_shared_fused_graph(kernel):
    text = str(kernel)
    assert text.startswith("kernel(x: f64[], y: f64[]) -> (f, df/dx, df/dy)")
    assert text.count("add x y") == 1     # x + y computed once, used by f, df/dx, df/dy
    assert "return f = " in text
    assert repr(kernel) == "<symgrad.Kernel (x, y) -> (f, df/dx, df/dy)>"
