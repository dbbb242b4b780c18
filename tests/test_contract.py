"""Contractions: batched and broadcast matmul, einsum, tensordot, dot, inner, outer, compiled
against numpy, gradients against central differences, the matrix products that go to GEMM,
and the errors."""

import numpy as np
import pytest

import symgrad as sg
from symgrad import ir

RNG = np.random.default_rng(23)

SHAPES = {"A": (4, 3, 5), "B": (4, 5, 2), "C": (5, 2), "v": (5,), "w": (3,), "M": (3, 5),
          "S": (1, 5, 2)}
CASES = [
    ("A @ B", lambda t: t["A"] @ t["B"]),
    ("A @ C", lambda t: t["A"] @ t["C"]),
    ("A @ S", lambda t: t["A"] @ t["S"]),
    ("A @ v", lambda t: t["A"] @ t["v"]),
    ("v @ C", lambda t: t["v"] @ t["C"]),
    ("w @ M", lambda t: t["w"] @ t["M"]),
    ("v @ v", lambda t: t["v"] @ t["v"]),
    ("einsum('bij,bjk->bik', A, B)", None),
    ("einsum('bij,jk', A, C)", None),
    ("einsum('ij,ij->i', M, M)", None),
    ("einsum('bij->jb', A)", None),
    ("einsum('ik,kj->ji', M, C)", None),
    ("einsum('i,j,k->ijk', w, v, w)", None),
    ("einsum('...ij,...jk->...ik', A, S)", None),
    ("einsum('...j,j', A, v)", None),
    ("einsum('i...->...', M)", None),
    ("tensordot(A, B, ([0, 2], [0, 1]))", None),
    ("tensordot(M, C, 1)", None),
    ("dot(v, v)", None),
    ("dot(M, C)", None),
    ("dot(A, C)", None),
    ("inner(A, v)", None),
    ("outer(w, v)", None),
]


def _evaluate(text, namespace):
    return eval(text, namespace)


@pytest.mark.parametrize("text", [case for case, _ in CASES])
def test_against_numpy_and_central_differences(text):
    names = list(SHAPES)
    tensors = {name: sg.tensor(name, shape) for name, shape in SHAPES.items()}
    arrays = {name: RNG.normal(size=shape) for name, shape in SHAPES.items()}
    sym = _evaluate(text, {**tensors, "einsum": sg.einsum, "tensordot": sg.tensordot,
                           "dot": sg.dot, "inner": sg.inner, "outer": sg.outer})
    want = _evaluate(text, {**arrays, "einsum": np.einsum, "tensordot": np.tensordot,
                            "dot": np.dot, "inner": np.inner, "outer": np.outer})
    assert sym.shape == np.shape(want)
    inputs = [tensors[n] for n in names]
    (got,) = sg.compile_function(sym, inputs)(*[arrays[n] for n in names])
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-13)
    # The gradient of sum(weights * sin(result)) against central differences.
    W = sg.tensor("W", sym.shape)
    weights = RNG.normal(size=np.shape(want))
    used = [n for n in names if id(tensors[n].node) in
            {id(node) for node in ir.toposort([sym.node])}]
    kernel = sg.compile((W * sg.sin(sym)).sum(), wrt=[tensors[n] for n in used],
                        inputs=[W])
    params = [arrays[n] for n in used]
    _, grads = kernel(params, weights)
    eps = 1e-6
    for position, point in enumerate(params):
        for flat in RNG.choice(point.size, min(point.size, 3), replace=False):
            step = np.zeros(point.size)
            step[flat] = eps
            up = [p.copy() for p in params]
            down = [p.copy() for p in params]
            up[position] = point + step.reshape(point.shape)
            down[position] = point - step.reshape(point.shape)
            numeric = (kernel(up, weights)[0] - kernel(down, weights)[0]) / (2 * eps)
            assert grads[position].flat[flat] == pytest.approx(numeric, rel=1e-6, abs=1e-8)


def _matmuls(tensor):
    return sum(node.op is ir.Op.MATMUL for node in ir.toposort([tensor.node]))


def test_matrix_products_go_to_the_matrix_product_op():
    A, C, M = sg.tensor("A", (4, 3, 5)), sg.tensor("C", (5, 2)), sg.tensor("M", (3, 5))
    assert _matmuls(A @ C) == 1                     # a stack of known size, one GEMM
    assert _matmuls(sg.einsum("ik,kj->ij", M, C)) == 1
    assert _matmuls(sg.einsum("ki,kj->ij", M.T, C)) == 1
    assert _matmuls(sg.einsum("ik,kj->ji", M, C)) == 1
    assert _matmuls(sg.tensordot(M, C, 1)) == 1


def test_a_batch_of_symbolic_size_over_threads():
    # Small matrices per example (a skeleton's 3x3 rotations applied to 3-vectors), as a
    # broadcast product over a symbolic batch; one and two threads give the same bits.
    R = sg.tensor("R", ("n", 3, 3))
    p = sg.tensor("p", ("n", 3))
    T = sg.tensor("T", (3, 4))
    rotated = sg.einsum("nij,nj->ni", R, p)
    out = ((rotated @ T) ** 2).sum() + (R @ R).sum()
    kernel = sg.compile(out, wrt=[R, p, T])
    n = 20000
    r, q, t = RNG.normal(size=(n, 3, 3)), RNG.normal(size=(n, 3)), RNG.normal(size=(3, 4))
    want = ((np.einsum("nij,nj->ni", r, q) @ t) ** 2).sum() + (r @ r).sum()
    previous = sg.num_threads()
    results = []
    try:
        for threads in (1, 2):
            sg.set_num_threads(threads)
            results.append(kernel([r, q, t]))
    finally:
        sg.set_num_threads(previous)
    assert results[0][0] == pytest.approx(want, rel=1e-12)
    for a, b in zip(results[0][1], results[1][1]):
        np.testing.assert_array_equal(a, b)
    grad_t = 2 * np.einsum("ni,nj->ij", np.einsum("nij,nj->ni", r, q),
                           np.einsum("nij,nj->ni", r, q) @ t)
    np.testing.assert_allclose(results[0][1][2], grad_t, rtol=1e-11)


def test_errors_name_the_shapes():
    A, C = sg.tensor("A", (4, 3, 5)), sg.tensor("C", (4, 2))
    with pytest.raises(sg.ShapeError, match=r"matmul: shapes \(4, 3, 5\) and \(4, 2\)"):
        A @ C
    with pytest.raises(sg.ShapeError, match="index 'j' has size 5 in one operand and 4"):
        sg.einsum("bij,jk->bik", A, C)
    with pytest.raises(ValueError, match="repeats within one operand"):
        sg.einsum("ii->i", C)
    with pytest.raises(sg.ShapeError, match="do not broadcast"):
        sg.einsum("...ij,...jk", A, sg.tensor("B", (3, 5, 2)))
    with pytest.raises(ValueError, match="names 1 operands, got 2"):
        sg.einsum("ij", C, C)
    with pytest.raises(sg.ShapeError, match="names 2 axes"):
        sg.einsum("ij->i", A)
    with pytest.raises(sg.ShapeError, match="do not broadcast"):
        sg.tensor("X", (2, 3, 4)) @ sg.tensor("Y", (3, 4, 5))
