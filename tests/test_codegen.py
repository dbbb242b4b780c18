"""Lowering and JIT on IR built by hand (no SymPy): compiled kernels against the reference
interpreter, IR-level properties of the generated code."""

import numpy as np
import pytest

from symgrad import ir
from symgrad.autodiff.reverse import value_and_grad
from symgrad.codegen import Kernel
from symgrad.codegen.lower.elementwise import LoweringError
from symgrad.codegen.lower.elementwise import lower_elementwise as lower_function
from symgrad.ir.ops import Op
from symgrad.reference.evaluate import evaluate

RNG = np.random.default_rng(0)


def _compile(outputs, names=("a", "b")):
    inputs = [ir.input_node(n) for n in names]
    built = outputs(*inputs)
    fn = ir.Function(inputs, built, [f"o{i}" for i in range(len(built))])
    return fn, Kernel(fn, value_and_grad=False)


UNARY = {
    "neg": ir.neg, "exp": ir.exp, "log": ir.log, "sqrt": ir.sqrt, "sin": ir.sin, "cos": ir.cos,
    "tanh": ir.tanh, "abs": ir.absolute, "sign": ir.sign,
}
BINARY = {
    "add": ir.add, "sub": ir.sub, "mul": ir.mul, "div": ir.div, "pow": ir.power,
    "max": ir.maximum, "min": ir.minimum,
}
SPECIAL = np.array([0.0, -0.0, 1.0, -1.0, 0.5, 2.0, 1e-310, -1e-310, 1e300, -1e300, 700.0,
                    -745.0, 20.0, -20.0, np.inf, -np.inf, np.nan, 3.0, 1e-8])


@pytest.mark.parametrize("name", UNARY)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_unary_ops_match_numpy(name, dtype):
    fn, kernel = _compile(lambda a: [UNARY[name](a)], names=("a",))
    with np.errstate(over="ignore"):
        values = np.concatenate([SPECIAL, RNG.uniform(-50, 50, 200)]).astype(dtype)
    (got,) = kernel(values)
    (expected,) = evaluate(fn.with_dtype(dtype), values)
    assert got.dtype == np.dtype(dtype)
    tolerance = 4 * np.finfo(dtype).eps
    np.testing.assert_allclose(got, expected, rtol=tolerance, atol=0, equal_nan=True)


@pytest.mark.parametrize("name", BINARY)
def test_binary_ops_match_numpy(name):
    fn, kernel = _compile(lambda a, b: [BINARY[name](a, b)])
    a = np.repeat(SPECIAL, len(SPECIAL))
    b = np.tile(SPECIAL, len(SPECIAL))
    (got,) = kernel(a, b)
    (expected,) = evaluate(fn, a, b)
    np.testing.assert_allclose(got, expected, rtol=4e-16, atol=0, equal_nan=True)


@pytest.mark.parametrize("op", [Op.LT, Op.LE, Op.GT, Op.GE, Op.EQ, Op.NE])
def test_comparisons_and_logic_follow_ieee_like_numpy(op):
    def build(a, b):
        cond = ir.compare(op, a, b)
        mixed = ir.logical_or(ir.logical_and(cond, ir.compare(Op.GT, a, ir.const(0.0))),
                              ir.logical_not(ir.compare(Op.LT, b, ir.const(1.0))))
        return [ir.select(cond, ir.const(1.0), ir.const(0.0)),
                ir.select(mixed, a, b)]
    fn, kernel = _compile(build)
    a = np.repeat(SPECIAL, len(SPECIAL))
    b = np.tile(SPECIAL, len(SPECIAL))
    for got, expected in zip(kernel(a, b), evaluate(fn, a, b)):
        np.testing.assert_array_equal(got, expected)


def test_select_does_not_leak_the_untaken_side():
    fn, kernel = _compile(lambda a, b: [
        ir.select(ir.compare(Op.GT, a, ir.const(0.0)), ir.log(a), ir.mul(a, b))])
    (got,) = kernel(np.array([-1.0, 0.0, 2.0]), np.array([3.0, 3.0, 3.0]))
    np.testing.assert_array_equal(got, [-3.0, 0.0, np.log(2.0)])


def test_strided_and_broadcast_inputs():
    fn, kernel = _compile(lambda a, b: [ir.add(ir.mul(a, b), ir.sin(a))])
    a = np.arange(12.0).reshape(3, 4)
    b = np.linspace(-1, 1, 4)
    # (sin may be libmvec's, within a few ulp of numpy's: the layouts are what is checked.)
    (got,) = kernel(a.T, b[None, :3])
    (expected,) = evaluate(fn, a.T, b[None, :3])
    np.testing.assert_allclose(got, expected, rtol=1e-15, atol=1e-15)
    (got,) = kernel(a[:, ::2].ravel()[::-1], 2.0)
    (expected,) = evaluate(fn, a[:, ::2].ravel()[::-1], 2.0)
    np.testing.assert_allclose(got, expected, rtol=1e-15, atol=1e-15)


def test_compiled_gradient_matches_reference_interpreter():
    a, b = ir.input_node("a"), ir.input_node("b")
    out = ir.mul(ir.tanh(ir.mul(a, b)), ir.exp(ir.neg(ir.mul(a, a))))
    fused = value_and_grad(ir.Function([a, b], [out], ["f"]), ["a", "b"])
    kernel = Kernel(fused)
    xs, ys = RNG.normal(size=100), RNG.normal(size=100)
    value, grads = kernel(xs, ys)
    expected = evaluate(fused, xs, ys)
    np.testing.assert_allclose(value, expected[0], rtol=1e-14)
    for got, want in zip(grads, expected[1:]):
        # atol: the gradient sums terms of order 1, so it can cancel to far below them.
        np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-15)


def test_inspection_texts():
    _, kernel = _compile(lambda a, b: [ir.mul(ir.exp(a), b)])
    assert 'define void @"symgrad_kernel"' in kernel.llvm_ir
    assert "symgrad.exp.f64" in kernel.llvm_ir     # the vectorisable routine (vecmath)
    assert "define void @symgrad_kernel" in kernel.optimized_llvm_ir
    assert "symgrad_kernel:" in kernel.asm
    # Never fast-math: no flag that may change NaN or inf results.
    for flag in (" fast ", " nnan ", " ninf ", " reassoc ", " afn "):
        assert flag not in kernel.optimized_llvm_ir


def test_float32_variant_computes_in_float32():
    _, kernel = _compile(lambda a, b: [ir.add(a, ir.mul(ir.const(0.1), b))])
    (got,) = kernel(np.float32([1.0]), np.float32([1.0]))
    assert got.dtype == np.float32
    assert got[0] == np.float32(1.0) + np.float32(0.1) * np.float32(1.0)
    assert "float" in kernel.variant("float32").compiled.llvm_ir


def test_lowering_refuses_what_it_cannot_do():
    a = ir.input_node("a", shape=(3,))
    with pytest.raises(LoweringError, match="shape"):
        lower_function(ir.Function([a], [ir.exp(a)]))
    b = ir.input_node("b")
    with pytest.raises(LoweringError, match="boolean"):
        lower_function(ir.Function([b], [ir.compare(Op.GT, b, ir.const(0.0))]))
