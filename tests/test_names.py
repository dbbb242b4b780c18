"""Names chosen by users never reach LLVM: kernels compile and run whatever the names of their
symbols, tensors, sizes, outputs and kernels, and keep the names for calls and display."""

import re

import numpy as np
import pytest
import sympy

import symgrad as sg
from symgrad import ir
from symgrad.autodiff.reverse import value_and_grad
from symgrad.codegen import FunctionKernel, Kernel, TensorKernel
from symgrad.codegen.compile import cache
from symgrad.codegen.lower.elementwise import lower_elementwise as lower_function
from symgrad.codegen.lower.target import Target
from symgrad.codegen.lower.tensor import lower_tensor, plan
from symgrad.reference.evaluate import evaluate

LONG = "q" * 1000
# Any string (a symbol's name), including what LLVM's text would misread or truncate: long
# names (LLVM cuts local names at 1024 bytes), names that differ only past that, NUL, quotes,
# backslashes, line breaks, non-ASCII, a lone surrogate, LLVM's sigils and keywords, and the
# names the generated code gives its own values, blocks and functions.
NAMES = [
    LONG, "q" * 5000, "a\0b", "\0", 'say "hi"', "it's", "back\\slash", "\\22", "two\nlines",
    "tab\there", "ñandú", "σ₁", "名前", "🙂", "\ud800", "%x", "@x", "!0", "#1", "a b", " ",
    "define", "double", "ret", "declare", "i", "n", "x.1", "in0", "in0.ptr", "in1.stride",
    "out0.ptr", "inputs", "strides", "outputs", "entry", "loop", "done", "symgrad_kernel",
    "symgrad_kernel.fast", "symgrad.runtime",
]
# Names of symbolic sizes are identifiers; these stress LLVM all the same.
SIZE_NAMES = ["n", "n" * 1000, "n" * 2000, "ñ", "σ", "名前", "define", "size0", "sizes",
              "buffers", "None", "_"]


def _scalar_pairs():
    # Two arguments per kernel: each name with a neighbour, and names that differ only after
    # the 1000th character (LLVM would truncate them to the same name).
    pairs = [(name, NAMES[(index + 7) % len(NAMES)]) for index, name in enumerate(NAMES)]
    pairs += [(LONG + "a", LONG + "b"), ("a\0b", "a\0c"), ("in0", "in1"), (LONG, LONG + "\0")]
    return pairs


def _expected(a, b):
    value = a * a * b + np.sin(a)
    return value, (2 * a * b + np.cos(a), a * a)


@pytest.mark.parametrize("names", _scalar_pairs(), ids=lambda names: repr(names)[:40])
def test_scalar_kernels_of_any_names(names):
    first, second = names
    a, b = sympy.Symbol(first, real=True), sympy.Symbol(second, real=True)
    kernel = sg.compile(a**2 * b + sympy.sin(a), wrt=[a, b])
    value, grads = kernel(0.7, -1.3)                              # the native fast entry
    want_value, want_grads = _expected(0.7, -1.3)
    assert value == pytest.approx(want_value, rel=1e-15)
    assert grads == pytest.approx(want_grads, rel=1e-15)
    # By name, and on arrays (the general path), in both dtypes.
    assert kernel(**{first: 0.7, second: -1.3}) == (value, grads)
    assert kernel(0.7, **{second: -1.3}) == (value, grads)
    xs = np.linspace(-2.0, 2.0, 9)
    for dtype, rtol in ((np.float64, 1e-14), (np.float32, 1e-5)):
        value, grads = kernel(**{first: xs.astype(dtype), second: np.float32(0.5).astype(dtype)})
        assert value.dtype == dtype
        want_value, want_grads = _expected(xs, 0.5)
        np.testing.assert_allclose(value, want_value, rtol=rtol, atol=rtol)
        for got, want in zip(grads, want_grads):
            np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol)
    # The names stay the user's: in the printed IR and in errors.
    text = str(kernel)
    assert f"{first}: f64[]" in text and f"{second}: f64[]" in text
    with pytest.raises(TypeError, match=re.escape(repr(second))):
        kernel(0.7, **{second: "text"})
    # ... and never reach LLVM (test_the_generated_code_does_not_depend_on_names).
    assert kernel.llvm_ir.isascii() and "\0" not in kernel.llvm_ir


@pytest.mark.parametrize("name", NAMES, ids=lambda name: repr(name)[:30])
def test_tensor_kernels_of_any_names(name):
    W = sg.tensor(name, (3, 2))
    b = sg.tensor(name + "\0b" if name != LONG else LONG + "b", (2,))
    X = sg.tensor("X", ("n", 3))
    loss = (sg.tanh(X @ W + b) ** 2).mean()
    kernel = sg.compile(loss, wrt=[W, b], inputs=[X])
    rng = np.random.default_rng(3)
    w, bias, x = rng.normal(size=(3, 2)), rng.normal(size=2), rng.normal(size=(5, 3))
    want = evaluate(kernel.function, w, bias, x)
    value, (dw, db) = kernel([w, bias], x)                         # the native call entry
    np.testing.assert_allclose(value, want[0], rtol=1e-13)
    np.testing.assert_allclose(dw, want[1], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(db, want[2], rtol=1e-12, atol=1e-15)
    # Parameters by name (a dict back) and inputs by keyword: the Python path.
    value, grads = kernel({name: w, b.name: bias}, X=x)
    assert set(grads) == {name, b.name}
    np.testing.assert_allclose(grads[name], want[1], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(grads[b.name], want[2], rtol=1e-12, atol=1e-15)
    assert f"{name}: f64[3,2]" in str(kernel)
    with pytest.raises(ValueError, match=re.escape(repr(name))):
        kernel({name: w[:2], b.name: bias}, X=x)
    assert kernel.llvm_ir.isascii()


@pytest.mark.parametrize("size", SIZE_NAMES, ids=lambda size: repr(size)[:20])
def test_symbolic_sizes_of_any_identifier(size):
    other = size + "a" if len(size) > 100 else size + "2"       # differs past 1000 chars
    W = sg.tensor("W", (3, 1))
    X, Y = sg.tensor("X", (size, 3)), sg.tensor("Y", (size, 1))
    Z = sg.tensor("Z", (other, 1))
    loss = ((X @ W - Y) ** 2).mean() + Z.sum() / Z.mean()       # means divide by the sizes
    kernel = sg.compile(loss, wrt=[W], inputs=[X, Y, Z])
    rng = np.random.default_rng(4)
    w, x, y = rng.normal(size=(3, 1)), rng.normal(size=(6, 3)), rng.normal(size=(6, 1))
    z = rng.uniform(1, 2, size=(4, 1))
    want = evaluate(kernel.function, w, x, y, z)
    for value, (dw,) in (kernel([w], x, y, z), kernel([w], Z=z, Y=y, X=x)):
        np.testing.assert_allclose(value, want[0], rtol=1e-13)
        np.testing.assert_allclose(dw, want[1], rtol=1e-12)
    with pytest.raises(ValueError, match=re.escape(f"size {size!r} is 6")):
        kernel([w], x, y[:5], z)
    assert kernel.llvm_ir.isascii()


def test_output_names_and_kernel_names_are_for_display():
    X = sg.tensor("X", ("n", 2))
    outputs = [X.sum(), (X * X).sum()]
    names = ["\0total", LONG + " squares"]
    kernel = sg.compile_function(outputs, [X], names=names)
    x = np.arange(6.0).reshape(3, 2)
    total, squares = kernel(x)
    assert (total, squares) == (15.0, 55.0)
    assert kernel.function.output_names == tuple(names)
    assert f"-> ({', '.join(names)})" in str(kernel)
    assert kernel.llvm_ir.isascii() and names[1] not in kernel.llvm_ir

    # A kernel's own name is kept for display; the native code's symbols are generated.
    a, b = sg.symbols("a b")
    fused = value_and_grad(sg.trace(a * b, wrt=[a, b]), ["a", "b"])
    for name in ("x" * 3000, "my kernel\0", "%f", "名前"):
        scalar = Kernel(fused, name=name)
        assert scalar.name == name and scalar(2.0, 3.0) == (6.0, (3.0, 2.0))
        tensor = FunctionKernel(ir.Function([X.node], [X.sum().node]), name=name)
        assert tensor.name == name and tensor(x) == (15.0,)
        assert name not in scalar.llvm_ir and name not in tensor.llvm_ir


def _scalar_function(first, second):
    a, b = ir.input_node(first), ir.input_node(second)
    loss = ir.add(ir.mul(ir.mul(a, a), b), ir.sin(a))
    return value_and_grad(ir.Function([a, b], [loss], [second + "\0" + first]), [first, second])


def test_the_generated_code_does_not_depend_on_names():
    reference = Kernel(_scalar_function("p", "q"))
    for first, second in _scalar_pairs()[::3]:
        kernel = Kernel(_scalar_function(first, second), name=first)
        assert kernel.llvm_ir == reference.llvm_ir
        assert kernel(0.7, -1.3) == reference(0.7, -1.3)

    def tensor_kernel(weights, inputs, size):
        W, X = sg.tensor(weights, (3, 2)), sg.tensor(inputs, (size, 3))
        loss = sg.losses.mean_squared_error(sg.tanh(X @ W), 0.5)
        return sg.compile(loss, wrt=[W], inputs=[X])
    reference = tensor_kernel("W", "X", "n")
    for weights, inputs, size in ((LONG, LONG + "\0", "n" * 1500), ("\0", "in0", "size0"),
                                  ("名前", "🙂", "ñ")):
        assert tensor_kernel(weights, inputs, size).llvm_ir == reference.llvm_ir


def test_the_lowering_takes_symbols_only():
    a = ir.input_node("a")
    function = ir.Function([a], [ir.exp(a)])
    assert "@\"my_kernel.element\"" in str(lower_function(function, "my_kernel"))
    X = ir.input_node("X", shape=("n",))
    tensor_function = ir.Function([X], [ir.reduce_sum(X)])
    for bad in ("", "1abc", "a b", "a\0b", "ñ", "x" * 201, 'a"b', "a\n", None, 3):
        with pytest.raises(ValueError, match="name must be a symbol"):
            lower_function(function, bad)
        with pytest.raises(ValueError, match="name must be a symbol"):
            lower_tensor(tensor_function, plan(tensor_function, Target()), Target(), bad)


def test_disk_cache_files_are_named_by_hashes_only(tmp_path):
    previous = cache.set_cache_dir(tmp_path)
    try:
        for name in ("\0", "a/b", "../up", "名前", LONG):
            symbol = sympy.Symbol(name, real=True)
            first = sg.compile(symbol**3, wrt=[symbol])
            second = sg.compile(symbol**3, wrt=[symbol])
            assert second.variant("float64").compiled.from_cache
            assert first(2.0) == second(**{name: 2.0}) == (8.0, (12.0,))
            W = sg.tensor(name, (2,))
            kernel = sg.compile((W * W).sum(), wrt=[W])
            again = TensorKernel(kernel.function, num_params=1, name=name)
            assert again.compiled.from_cache
            assert again([np.array([1.0, 2.0])])[1][0].tolist() == [2.0, 4.0]
        files = sorted(path.name for path in tmp_path.iterdir())
        assert files and all(re.fullmatch(r"[0-9a-f]{64}\.entry|generator\.json", name)
                             for name in files), files
    finally:
        cache.set_cache_dir(previous)
