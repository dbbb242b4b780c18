"""symgrad's own GEMM (symgrad.codegen.lower.gemm): products against numpy in float64, every
operand layout the kernels pass, edge tiles, and the same bits whichever range of columns a
call computes (threads share a product by columns)."""

import ctypes

import numpy as np
import pytest

import symgrad as sg
from symgrad.codegen.runtime import libraries, workers
from symgrad.codegen.runtime import threads as runtime_threads
from symgrad.reference.evaluate import evaluate

_INDEX, _POINTER = ctypes.c_int64, ctypes.c_void_p
_SIGNATURE = ctypes.CFUNCTYPE(None, _INDEX, _INDEX, _INDEX, _POINTER, _INDEX, _INDEX, _POINTER,
                              _INDEX, _INDEX, _POINTER, _INDEX, _INDEX, _INDEX)


def _product(a, b, first=None, last=None):
    """C = a @ b through the library (a, b: views with unit stride on one axis); columns
    outside first..last are left as NaN."""
    function = _SIGNATURE(libraries.library(a.dtype.name).address)
    (m, k), n = a.shape, b.shape[1]
    c = np.full((m, n), np.nan, a.dtype)
    size = a.itemsize
    function(m, n, k, a.ctypes.data, a.strides[0] // size, a.strides[1] // size, b.ctypes.data,
             b.strides[0] // size, b.strides[1] // size, c.ctypes.data, n,
             0 if first is None else first, n if last is None else last)
    return c


def _operand(rng, rows, columns, transposed, dtype):
    if transposed:
        return rng.standard_normal((columns, rows)).astype(dtype).T
    return rng.standard_normal((rows, columns)).astype(dtype)


# Edges of the row tiles of every host (4, 6 or 12 rows): full tiles, one row more, one less.
SHAPES = [(1, 1, 1), (3, 5, 7), (12, 32, 3), (13, 33, 1), (11, 31, 2), (14, 32, 3),
          (15, 33, 1), (24, 16, 9), (29, 47, 13), (17, 40, 300), (128, 70, 64), (0, 5, 5),
          (5, 0, 5), (6, 4, 0)]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("m, n, k", SHAPES)
@pytest.mark.parametrize("a_transposed, b_transposed",
                         [(False, False), (True, False), (False, True), (True, True)])
def test_products_match_numpy(dtype, m, n, k, a_transposed, b_transposed):
    rng = np.random.default_rng(m * 10000 + n * 100 + k)
    a = _operand(rng, m, k, a_transposed, dtype)
    b = _operand(rng, k, n, b_transposed, dtype)
    got = _product(a, b)
    want = a.astype(np.float64) @ b.astype(np.float64)
    assert got.dtype == np.dtype(dtype)
    eps = np.finfo(dtype).eps
    # Error bound of a dot product of length k: k * eps * sum |a_i b_i|.
    bound = (k + 1) * eps * (np.abs(a).astype(np.float64) @ np.abs(b).astype(np.float64))
    assert np.all(np.abs(got - want) <= bound)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("b_transposed", [False, True])
def test_any_range_of_columns_gives_the_same_bits(dtype, b_transposed):
    rng = np.random.default_rng(3)
    a = _operand(rng, 31, 300, False, dtype)
    b = _operand(rng, 300, 75, b_transposed, dtype)
    whole = _product(a, b)
    tile = libraries.library(dtype).column_tile
    for bounds in ([0, 75], [0, tile, 75], [0, 5, 40, 41, 75], [0, 2 * tile, 75]):
        pieces = np.full_like(whole, np.nan)
        for first, last in zip(bounds, bounds[1:]):
            part = _product(a, b, first, last)
            assert np.isnan(np.delete(part, np.s_[first:last], axis=1)).all()
            pieces[:, first:last] = part[:, first:last]
        np.testing.assert_array_equal(pieces, whole)


def test_non_finite_values_propagate_as_in_numpy():
    a = np.array([[1.0, np.inf], [np.nan, 1.0], [0.0, 2.0]])
    b = np.array([[0.0, 1.0], [1.0, -np.inf]])
    with np.errstate(invalid="ignore"):
        want = a @ b
    np.testing.assert_array_equal(_product(a, b), want)


def test_a_product_shared_by_threads_gives_the_bits_of_one_thread(monkeypatch):
    # A layer wide enough that its columns are split among threads, in a call large enough
    # to run on them.
    X = sg.tensor("X", ("n", 50))
    W = sg.tensor("W", (100, 50))
    T = sg.tensor("T", ("n", 100))
    step = sg.compile(((sg.tanh(X @ W.T) - T) ** 2).mean(), wrt=[W], inputs=[X, T])
    rng = np.random.default_rng(4)
    w, x, t = (rng.standard_normal(shape) for shape in [(100, 50), (1000, 50), (1000, 100)])
    monkeypatch.setattr(runtime_threads, "available_cpus", lambda: 4)
    workers.start(3)
    before = workers.jobs_run()
    results = {}
    previous = runtime_threads.set_num_threads(1)
    try:
        for threads in (1, 2, 3, 4):
            runtime_threads.set_num_threads(threads)
            for _ in range(5):                  # workers may join only the later calls
                results[threads] = step([w], x, t)
    finally:
        runtime_threads.set_num_threads(previous)
    assert workers.jobs_run() > before           # the workers took part
    value, (grad,) = results[1]
    for other_value, (other_grad,) in results.values():
        assert other_value == value
        np.testing.assert_array_equal(other_grad, grad)
    reference = evaluate(step.function, w, x, t)
    np.testing.assert_allclose(value, reference[0], rtol=1e-12)
    np.testing.assert_allclose(grad, reference[1], rtol=1e-10, atol=1e-14)


def test_the_matrix_product_library_is_chosen_by_the_environment(monkeypatch):
    # symgrad's GEMM by default; numpy's OpenBLAS with SYMGRAD_GEMM=blas; loop nests with
    # SYMGRAD_BLAS=0.  The same products to rounding in every case.
    X = sg.tensor("X", ("n", 40))
    W = sg.tensor("W", (30, 40))
    loss = (sg.tanh(X @ W.T) ** 2).sum()
    rng = np.random.default_rng(5)
    w, x = rng.standard_normal((30, 40)), rng.standard_normal((50, 40))
    results = {}
    for name, environment in [("symgrad", {}), ("blas", {"SYMGRAD_GEMM": "blas"}),
                              ("loops", {"SYMGRAD_BLAS": "0"})]:
        for variable in ("SYMGRAD_GEMM", "SYMGRAD_BLAS"):
            monkeypatch.delenv(variable, raising=False)
        for variable, value in environment.items():
            monkeypatch.setenv(variable, value)
        step = sg.compile(loss, wrt=[W], inputs=[X])
        calls = [line for line in step.llvm_ir.splitlines() if "call" in line]
        assert any("symgrad.gemm.f64" in line for line in calls) == (name == "symgrad")
        assert any("dgemm" in line for line in calls) == (name == "blas" and
                                                           step.target.gemm is not None)
        results[name] = step([w], x)
    for value, (grad,) in results.values():
        assert value == pytest.approx(results["symgrad"][0], rel=1e-12)
        np.testing.assert_allclose(grad, results["symgrad"][1][0], rtol=1e-10, atol=1e-12)
    monkeypatch.setenv("SYMGRAD_GEMM", "mkl")
    with pytest.raises(ValueError, match="SYMGRAD_GEMM"):
        sg.compile(loss, wrt=[W], inputs=[X])
