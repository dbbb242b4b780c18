"""Every kind of input a kernel may be given: each one either gives what numpy gives on
``np.asarray`` of it, in the dtype of the README's rule, or is refused by a TypeError or
ValueError naming the argument, what was expected and what came, before any native code runs.

Scalar kernels (from SymPy formulas) and tensor kernels, small calls (the native entries) and
large ones (threads); the oracle is numpy on ``np.asarray`` of the input (scalar kernels) and
the reference interpreter (tensor kernels), and the kernel on a plain copy of the same numbers,
bit for bit.
"""

import re

import numpy as np
import pytest
import sympy
from hypothesis import given, settings
from hypothesis import strategies as st

import symgrad as sg
from symgrad.codegen.lower import abi
from symgrad.codegen.runtime import threads as runtime_threads
from symgrad.reference.evaluate import evaluate

pytestmark = pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")

x, y = sg.symbols("x y")
SMALL = 7
LARGE = runtime_threads.MIN_PARALLEL_MAP_ELEMENTS + 5      # threads, and a partial last block


@pytest.fixture(scope="module")
def scalar_kernel():
    return sg.compile(sympy.tanh(x) * y + x**2 / (1 + y**2), wrt=[x], inputs=[y])


@pytest.fixture
def two_threads():
    previous = runtime_threads.set_num_threads(2)
    yield
    runtime_threads.set_num_threads(previous)


def _numpy_reference(xs, ys):
    """The formula and its x-derivative, by numpy in float64."""
    xs, ys = np.asarray(xs, np.float64), np.asarray(ys, np.float64)
    t = np.tanh(xs)
    return t * ys + xs**2 / (1 + ys**2), (1 - t * t) * ys + 2 * xs / (1 + ys**2)


def _assert_close(got, want, dtype):
    tolerance = 1e-13 if dtype == np.float64 else 2e-6
    np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=tolerance,
                               atol=tolerance)


# ---------------------------------------------------------------------------------------------
# Inputs that are not plain arrays
# ---------------------------------------------------------------------------------------------

class WithArray:
    """A container that numpy reads through ``__array__`` alone (as many data frames do)."""

    def __init__(self, values):
        self._values = np.asarray(values)

    def __array__(self, dtype=None, copy=None):
        return self._values if dtype is None else self._values.astype(dtype)


class WithInterface:
    """An object exposing its memory through ``__array_interface__``."""

    def __init__(self, values):
        self._keep = np.ascontiguousarray(values)
        self.__array_interface__ = self._keep.__array_interface__


class LabelledSeries(WithArray):
    """Like a pandas Series: it takes over numpy's ufuncs (and would align labels there)."""

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        return NotImplemented


class NoUfuncs(WithArray):
    """An object that opts out of numpy's ufuncs (numpy raises for them)."""

    __array_ufunc__ = None


class MaskedInside:
    """An object whose ``__array__`` gives a masked array."""

    def __array__(self, dtype=None, copy=None):
        return np.ma.masked_array([1.0, 2.0, 3.0], mask=[False, True, False])


class PlainSubclass(np.ndarray):
    pass


class FloatSubclass(float):
    pass


def unaligned(array):
    """A copy of ``array`` whose memory starts one byte past an aligned address."""
    buffer = bytearray(array.nbytes + array.itemsize)
    copy = np.ndarray(array.shape, array.dtype, buffer=buffer, offset=1)
    copy[...] = array
    assert not copy.flags.aligned or array.itemsize == 1 or array.size == 0
    return copy


def _memmap(tmp_path, array, mode):
    path = tmp_path / f"values-{mode}-{array.dtype.str}-{array.size}.bin"
    writer = np.memmap(path, array.dtype, "w+", shape=array.shape)
    writer[...] = array
    writer.flush()
    if mode == "w+":
        return writer
    return np.memmap(path, array.dtype, mode, shape=array.shape)


def _read_only(array):
    array = array.copy()
    array.flags.writeable = False
    return array


def _swapped(array):
    return array.astype(array.dtype.newbyteorder("<" if not np.little_endian else ">"))


def _rounded(array, dtype):
    rounded = np.round(np.asarray(array, np.float64) * 20)
    return (np.abs(rounded) if np.dtype(dtype).kind == "u" else rounded).astype(dtype)


# Inputs made from a float array ``a`` (1-d or 2-d): the first ones keep its dtype.
VARIANT_MAKERS = {
    "array": lambda a, tmp: a,
    "list": lambda a, tmp: a.tolist(),
    "tuple": lambda a, tmp: tuple(map(tuple, a.tolist())) if a.ndim == 2 else tuple(a.tolist()),
    "read-only": lambda a, tmp: _read_only(a),
    "byte-swapped": lambda a, tmp: _swapped(a),
    "unaligned": lambda a, tmp: unaligned(a),
    "unaligned byte-swapped": lambda a, tmp: unaligned(_swapped(a)),
    "reversed": lambda a, tmp: a[::-1].copy()[::-1],
    "strided": lambda a, tmp: np.repeat(a, 2, axis=-1)[..., ::2],
    "zero strides": lambda a, tmp: np.broadcast_to(a[..., :1], a.shape),
    "Fortran order": lambda a, tmp: np.asfortranarray(a),
    "memmap r": lambda a, tmp: _memmap(tmp, a, "r"),
    "memmap r+": lambda a, tmp: _memmap(tmp, a, "r+"),
    "memmap w+": lambda a, tmp: _memmap(tmp, a, "w+"),
    "memmap c": lambda a, tmp: _memmap(tmp, a, "c"),
    "matrix": lambda a, tmp: np.matrix(a),
    "__array__": lambda a, tmp: WithArray(a),
    "__array_interface__": lambda a, tmp: WithInterface(a),
    "ndarray subclass": lambda a, tmp: a.view(PlainSubclass),
    # other dtypes
    **{dtype: (lambda a, tmp, dtype=dtype: _rounded(a, dtype))
       for dtype in ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")},
    "huge uint64": lambda a, tmp: np.full(a.shape, 2**64 - 1, np.uint64),
    "float16": lambda a, tmp: a.astype(np.float16),
    "float16 byte-swapped": lambda a, tmp: _swapped(a.astype(np.float16)),
    "float32": lambda a, tmp: a.astype(np.float32),
    "float32 unaligned byte-swapped": lambda a, tmp: unaligned(_swapped(a.astype(np.float32))),
    "float32 memmap r": lambda a, tmp: _memmap(tmp, a.astype(np.float32), "r"),
    "float32 __array__": lambda a, tmp: WithArray(a.astype(np.float32)),
    "zero-size": lambda a, tmp: a[..., :0],
}
VARIANTS = list(VARIANT_MAKERS)
# Those a tensor kernel takes: its own dtype, in any layout, byte order or container.
TENSOR_VARIANTS = VARIANTS[:VARIANTS.index("int8")]


def _expected_dtype(*arguments):
    """The README's rule: float32 when every argument other than a Python number is float16
    or float32 (as numpy makes an array of it), else float64."""
    strong = [np.asarray(a).dtype for a in arguments
              if not (isinstance(a, (int, float)) and not isinstance(a, np.generic))]
    if strong and all(d.kind == "f" and d.itemsize <= 4 for d in strong):
        return np.dtype(np.float32)
    return np.dtype(np.float64)


# ---------------------------------------------------------------------------------------------
# Scalar kernels: what is accepted
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("count", [SMALL, LARGE])
@pytest.mark.parametrize("name", VARIANTS)
def test_array_likes_give_what_numpy_gives_on_their_numbers(scalar_kernel, two_threads,
                                                            tmp_path, monkeypatch, name, count):
    base = np.random.default_rng(count).normal(size=count)
    variant = VARIANT_MAKERS[name](base, tmp_path)
    numbers = np.asarray(variant)
    dtype = _expected_dtype(variant, 0.75)
    chunked = []
    monkeypatch.setattr(runtime_threads, "run_chunks", lambda *a, run=runtime_threads.run_chunks:
                        chunked.append(1) or run(*a))
    value, (dx,) = scalar_kernel(variant, 0.75)
    assert type(value) is np.ndarray and value.dtype == dx.dtype == dtype
    assert value.shape == dx.shape == numbers.shape
    # Large calls share their elements among threads; small ones run in one call.
    assert bool(chunked) == (numbers.size >= runtime_threads.MIN_PARALLEL_MAP_ELEMENTS)
    plain = np.array(numbers, dtype=dtype, order="C")
    want_value, (want_dx,) = scalar_kernel(plain, 0.75)
    np.testing.assert_array_equal(value, want_value)
    np.testing.assert_array_equal(dx, want_dx)
    reference = _numpy_reference(numbers.astype(dtype), np.float64(0.75).astype(dtype))
    _assert_close(value, reference[0], dtype)
    _assert_close(dx, reference[1], dtype)


def test_inputs_are_never_written(scalar_kernel, tmp_path):
    # A memory map of the outputs' size, writable: the outputs are new arrays.
    base = np.linspace(-2, 2, 9)
    mapped = _memmap(tmp_path, base, "r+")
    value, (dx,) = scalar_kernel(mapped, mapped)
    np.testing.assert_array_equal(np.asarray(mapped), base)
    assert not np.shares_memory(value, mapped) and not np.shares_memory(dx, mapped)
    np.testing.assert_allclose(value, _numpy_reference(base, base)[0], rtol=1e-13)


@pytest.mark.parametrize("number, dtype, kind", [
    (1.5, np.float64, float),
    (3, np.float64, float),
    (2**64, np.float64, float),             # numpy makes an object array of it; a float here
    (-(2**70), np.float64, float),
    (FloatSubclass(1.5), np.float64, float),
    (np.float64(1.5), np.float64, np.float64),
    (np.float32(1.5), np.float32, np.float32),
    (np.float16(1.5), np.float32, np.float32),
    (np.int64(3), np.float64, np.float64),
    (np.uint8(200), np.float64, np.float64),
    (np.uint64(2**64 - 1), np.float64, np.float64),
    (np.array(1.5), np.float64, np.float64),
    (np.array(1.5, np.float32), np.float32, np.float32),
    (np.array(1.5, ">f8"), np.float64, np.float64),
])
def test_numbers_and_zero_dimensional_arrays(scalar_kernel, number, dtype, kind):
    value, (dx,) = scalar_kernel(number, 0.75)
    assert type(value) is kind and type(dx) is kind
    if kind is not float:
        assert value.dtype == dtype
    reference = _numpy_reference(np.asarray(float(number), dtype), np.asarray(0.75, dtype))
    _assert_close(value, reference[0], np.dtype(dtype))
    _assert_close(dx, reference[1], np.dtype(dtype))


@pytest.mark.parametrize("first, second, dtype", [
    # float32 when everything but Python numbers is float16 or float32
    (np.float32([0.5, 2]), 0.75, np.float32),
    (np.float32([0.5, 2]), 3, np.float32),
    (np.float16([0.5, 2]), 0.75, np.float32),
    (np.float16([0.5, 2]), np.float32([0.75]), np.float32),
    (np.float16([0.5, 2]), np.float16(0.75), np.float32),
    (np.float32([0.5, 2]), np.float32(0.75), np.float32),
    (np.float32([0.5, 2]), np.array([0.75], ">f4"), np.float32),
    (np.float32([0.5, 2]), WithArray(np.float32([0.75])), np.float32),
    (np.float32([0.5, 2]), [np.float32(0.75)], np.float32),
    # float64 when anything else is float64 or an integer, or Python numbers alone
    (np.float32([0.5, 2]), np.float64([0.75]), np.float64),
    (np.float32([0.5, 2]), np.float64(0.75), np.float64),
    (np.float32([0.5, 2]), np.array(0.75), np.float64),
    (np.float32([0.5, 2]), [0.75], np.float64),           # a list of floats is float64
    (np.float32([0.5, 2]), np.int8([1]), np.float64),
    (np.float16([0.5, 2]), np.int64(1), np.float64),
    (np.float16([0.5, 2]), np.uint16([1]), np.float64),
    (np.int32([1, 2]), 0.75, np.float64),
    ([0.5, 2.0], 0.75, np.float64),
    (0.5, 0.75, float),
    (1, 2, float),
])
def test_the_dtype_rule(scalar_kernel, first, second, dtype):
    assert _expected_dtype(first, second) == np.dtype(float if dtype is float else dtype)
    value, (dx,) = scalar_kernel(first, second)
    if dtype is float:
        assert type(value) is float and type(dx) is float
        dtype = np.float64
    else:
        assert np.asarray(value).dtype == dtype and np.asarray(dx).dtype == dtype
    xs, ys = (np.asarray(a).astype(dtype) for a in (first, second))   # float16: exact
    reference = _numpy_reference(*np.broadcast_arrays(xs, ys))
    _assert_close(value, reference[0], np.dtype(dtype))
    _assert_close(dx, reference[1], np.dtype(dtype))


_KINDS = ["float64", "float32", "float16", "int8", "uint16", "int32", "int64", "uint64", ">f8",
          ">f4", "python float", "python int", "list", "float32 scalar", "float64 scalar"]
_LAYOUTS = ["contiguous", "reversed", "strided", "unaligned", "broadcast", "read-only"]


def _make(kind, layout, values):
    if kind == "python float":
        return float(values[0])
    if kind == "python int":
        return int(np.round(values[0] * 10))
    if kind == "list":
        return values.tolist()
    if kind.endswith("scalar"):
        return np.dtype(kind.split()[0]).type(values[0])
    dtype = np.dtype(kind)
    array = (np.round(values * 10) if dtype.kind in "iu" else values)
    array = (np.abs(array) if dtype.kind == "u" else array).astype(dtype)
    if layout == "reversed":
        return array[::-1].copy()[::-1]
    if layout == "strided":
        return np.repeat(array, 3)[1::3]
    if layout == "unaligned":
        return unaligned(array)
    if layout == "broadcast":
        return np.broadcast_to(array[:1], array.shape)
    if layout == "read-only":
        return _read_only(array)
    return array


_NUMBER_KINDS = ("python float", "python int", "float32 scalar", "float64 scalar")


@settings(max_examples=80)
@given(kinds=st.tuples(st.sampled_from(_KINDS), st.sampled_from(_KINDS)),
       layouts=st.tuples(st.sampled_from(_LAYOUTS), st.sampled_from(_LAYOUTS)),
       count=st.sampled_from([0, 1, 2, 17, LARGE]), seed=st.integers(0, 2**16))
def test_any_mix_of_dtypes_and_layouts(scalar_kernel, kinds, layouts, count, seed):
    values = np.random.default_rng(seed).uniform(0.1, 2, max(count, 1))
    arguments = [_make(kind, layout, values if kind in _NUMBER_KINDS else values[:count])
                 for kind, layout in zip(kinds, layouts)]
    dtype = _expected_dtype(*arguments)
    value, (dx,) = scalar_kernel(*arguments)
    numbers = [np.asarray(a).astype(dtype) for a in arguments]
    shape = np.broadcast_shapes(*(n.shape for n in numbers))
    assert np.shape(value) == np.shape(dx) == shape
    if all(isinstance(a, (int, float)) and not isinstance(a, np.generic) for a in arguments):
        assert type(value) is float and type(dx) is float
    else:
        assert np.asarray(value).dtype == np.asarray(dx).dtype == dtype
    reference = _numpy_reference(*np.broadcast_arrays(*numbers))
    _assert_close(value, reference[0], dtype)
    _assert_close(dx, reference[1], dtype)


# ---------------------------------------------------------------------------------------------
# Scalar kernels: what is refused
# ---------------------------------------------------------------------------------------------

REFUSED = [
    # (value, error, what the message says came)
    (np.ma.masked_array([1.0, 2.0], mask=[False, True]), TypeError,
     r"numpy\.ma\.MaskedArray.*mask would be lost.*filled.*np\.ma\.getdata"),
    (np.ma.masked_array([1.0, 2.0]), TypeError, r"numpy\.ma\.MaskedArray.*filled"),  # no mask
    (np.ma.masked, TypeError, r"numpy\.ma\.MaskedConstant.*filled"),
    (MaskedInside(), TypeError, r"numpy\.ma\.MaskedArray.*filled"),
    (LabelledSeries([1.0, 2.0]), TypeError, r"LabelledSeries.*__array_ufunc__.*np\.asarray"),
    (NoUfuncs([1.0, 2.0]), TypeError, r"NoUfuncs.*__array_ufunc__"),
    (True, TypeError, r"got a bool"),
    (np.bool_(False), TypeError, r"got a bool"),
    (np.array([True, False]), TypeError, r"dtype bool"),
    (1j, TypeError, r"complex"),
    (np.complex64(1), TypeError, r"complex"),
    (np.array([1 + 2j]), TypeError, r"complex"),
    (np.array([1.0, 2.0], dtype=object), TypeError, r"dtype object"),
    ([1.0, None], TypeError, r"a list \(as an array: dtype object\)"),
    (np.array(["2020-01-01"], "datetime64[D]"), TypeError, r"dtype datetime64"),
    (np.datetime64("2020-01-01"), TypeError, r"numpy datetime64 scalar"),
    (np.array([1], "timedelta64[s]"), TypeError, r"dtype timedelta64"),
    ("text", TypeError, r"a str \(as an array: dtype <U4\)"),
    (b"bytes", TypeError, r"a bytes \(as an array: dtype \|S5\)"),
    (np.array(["a", "b"]), TypeError, r"dtype <U1"),
    (None, TypeError, r"got None"),
    ({"x": 1.0}, TypeError, r"a dict"),
    (np.zeros(2, [("a", "f8"), ("b", "f8")]), TypeError, r"dtype \[\('a', '<f8'\)"),
    (np.ones(2, np.longdouble), TypeError, r"dtype float128|dtype longdouble|float96"),
    ([[1.0], [1.0, 2.0]], TypeError, r"a list that numpy cannot make an array of"),
    (10**400, ValueError, r"float64 can hold \(below 2\*\*1024\), got an int of 1329 bits"),
    (-(10**5000), ValueError, r"float64 can hold .*16610 bits"),   # beyond str()'s digits
]


@pytest.mark.parametrize("count", [1, LARGE])
@pytest.mark.parametrize("position", [0, 1])
@pytest.mark.parametrize("bad, error, came", REFUSED, ids=[f"{index}-{type(r[0]).__name__}"
                                                   for index, r in enumerate(REFUSED)])
def test_refused_naming_the_argument_before_native_code(scalar_kernel, monkeypatch, bad, error,
                                                        came, position, count):
    def native(*arguments):
        raise AssertionError("native code ran")
    monkeypatch.setattr(scalar_kernel._calls, "_run", native)     # (its general path's)
    good = 0.5 if count == 1 else np.linspace(0, 1, count)
    arguments = [good, good]
    arguments[position] = bad
    name = "xy"[position]
    with pytest.raises(error) as info:
        scalar_kernel(*arguments)
    message = str(info.value)
    assert f"argument {name!r} must be" in message
    assert "real" in message
    assert re.search(came, message), message
    # By name, the same.
    with pytest.raises(error, match=f"argument {name!r}"):
        scalar_kernel(**dict(zip("xy", arguments)))


def test_outputs_too_large_for_memory_are_reported_naming_the_arguments(scalar_kernel):
    # 2**53 bytes: more than a process's address space (numpy: MemoryError); 2**63 bytes and
    # more: more than numpy can count (ValueError).
    huge = np.broadcast_to(0.0, (2**50,))
    with pytest.raises(MemoryError, match=r"outputs .*shape \(1125899906842624,\).*x has shape"):
        scalar_kernel(huge, 1.0)
    with pytest.raises(ValueError, match=r"outputs .*x has shape \(1073741824,\), y has shape "
                                         r"\(1073741824, 1\)"):
        scalar_kernel(np.broadcast_to(0.0, (2**30,)), np.broadcast_to(0.0, (2**30, 1)))


# ---------------------------------------------------------------------------------------------
# Tensor kernels
# ---------------------------------------------------------------------------------------------

def _tensor_step(dtype):
    W = sg.tensor("W", (4, 8), dtype)
    b = sg.tensor("b", (4,), dtype)
    X = sg.tensor("X", ("n", 8), dtype)
    c = sg.tensor("c", (), dtype)
    loss = (sg.tanh(X @ W.T + b) ** 2).sum() * c
    return sg.compile(loss, wrt=[W, b], inputs=[X, c])


@pytest.fixture(scope="module")
def steps():
    return {dtype: _tensor_step(dtype) for dtype in ("float64", "float32")}


def _tensor_arguments(n, dtype, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(4, 8)).astype(dtype), rng.normal(size=4).astype(dtype),
            rng.normal(size=(n, 8)).astype(dtype))


def _tensor_reference(step, arguments):
    """The reference interpreter in float64 on the kernel's numbers."""
    return evaluate(step.function.with_dtype("float64"),
                    *[np.asarray(a, np.float64) for a in arguments])


def _assert_tensor_close(value, grads, reference, dtype):
    tolerance = 1e-10 if dtype == "float64" else 1e-4
    np.testing.assert_allclose(value, reference[0], rtol=tolerance)
    for got, want in zip(grads, reference[1:]):
        np.testing.assert_allclose(got, want, rtol=tolerance,
                                   atol=tolerance * np.abs(want).max())


@pytest.mark.parametrize("n", [5, abi.MIN_PARALLEL_ELEMENTS // 4])
@pytest.mark.parametrize("name, dtype", [
    (name, dtype) for dtype in ("float64", "float32") for name in TENSOR_VARIANTS
    # numpy makes float64 of a list: a float32 kernel refuses it (see the refusals below)
    if not (dtype == "float32" and name in ("list", "tuple"))])
def test_tensor_kernels_take_any_layout_and_container_of_their_dtype(steps, two_threads,
                                                                    tmp_path, monkeypatch,
                                                                    name, n, dtype):
    step = steps[dtype]
    w, b, xs = _tensor_arguments(n, dtype)
    large = step._new_workspace((n,))[2]
    assert large == (n > 5)
    threaded = []
    monkeypatch.setattr(step, "_run_threaded", lambda *a, run=step._run_threaded:
                        threaded.append(1) or run(*a))
    arguments = [VARIANT_MAKERS[name](a, tmp_path) for a in (w, b, xs)]
    if name == "matrix":
        arguments[1] = b                # a matrix has two dimensions: b has one
    before = [np.array(np.asarray(a)) for a in arguments]
    value, grads = step(arguments[:2], arguments[2], 1.5)
    if name not in ("array", "read-only"):
        # The native entry declines the call; the Python path runs a large one on threads.
        assert bool(threaded) == large
    plain = [np.array(np.asarray(a), dtype=dtype, order="C") for a in arguments]
    want_value, want_grads = step(plain[:2], plain[2], 1.5)
    assert value.dtype == np.dtype(dtype) and value == want_value
    for got, want in zip(grads, want_grads):
        assert type(got) is np.ndarray and got.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(got, want)
    _assert_tensor_close(value, grads, _tensor_reference(step, [*plain, 1.5]), dtype)
    # Nothing was written to the arguments (a memory map of a gradient's shape among them).
    for argument, numbers in zip(arguments, before):
        np.testing.assert_array_equal(np.asarray(argument), numbers)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_tensor_kernels_convert_unaligned_and_byte_swapped_arrays(steps, dtype, tmp_path):
    # The native entry declines them; the Python path gives the kernel an aligned,
    # native-order copy (the numbers the kernel would misread otherwise).
    step = steps[dtype]
    w, b, xs = _tensor_arguments(6, dtype, seed=3)
    want_value, want_grads = step([w, b], xs, 2.0)
    reference = _tensor_reference(step, [w, b, xs, 2.0])
    other_order = np.dtype(dtype).newbyteorder(">" if np.little_endian else "<")
    variants = [
        (unaligned(w), b, unaligned(xs)),
        (w.astype(other_order), b.astype(other_order), xs),
        (unaligned(w.astype(other_order)), unaligned(b), unaligned(xs.astype(other_order))),
        (_memmap(tmp_path, w, "r"), _memmap(tmp_path, b, "c"), _memmap(tmp_path, xs, "w+")),
    ]
    for wv, bv, xv in variants:
        if step._call_native is not None:
            assert step._call_native(wv, bv, xv, np.asarray(2.0, dtype)) is None
        assert step._sizes_if_ready([wv, bv, xv, np.asarray(2.0, dtype)]) is None
        value, grads = step([wv, bv], xv, 2.0)
        assert value == want_value
        for got, want in zip(grads, want_grads):
            np.testing.assert_array_equal(got, want)
        np.testing.assert_allclose(value, reference[0], rtol=1e-5)


@pytest.mark.parametrize("number", [1.5, 3, 2**64, np.float64(1.5), np.float32(1.5),
                                    np.float16(1.5), np.int64(3), np.uint64(2**64 - 1),
                                    FloatSubclass(1.5)])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_scalar_input_takes_any_real_number_in_the_kernels_dtype(steps, number, dtype):
    step = steps[dtype]
    w, b, xs = _tensor_arguments(5, dtype)
    value, grads = step([w, b], xs, number)
    c = np.asarray(float(number)).astype(dtype)
    reference = evaluate(step.function, w, b, xs, c)
    assert value.dtype == np.dtype(dtype)
    assert value == step([w, b], xs, c)[0]
    np.testing.assert_allclose(value, reference[0], rtol=1e-12 if dtype == "float64" else 1e-5)


def _tensor_refusals(dtype, n):
    own = np.dtype(dtype)
    other = "float32" if dtype == "float64" else "float64"
    lists = [("b", [1.0, 2.0, 3.0, 4.0], TypeError, r"a list \(as an array: dtype float64\)")]
    return (lists if dtype == "float32" else []) + [
        # (argument, value, error, what the message says came)
        ("W", np.ma.masked_array(np.ones((4, 8), own)), TypeError,
         r"numpy\.ma\.MaskedArray.*filled.*getdata"),
        ("X", np.ma.masked_array(np.ones((n, 8), own), mask=np.eye(n, 8)), TypeError,
         r"numpy\.ma\.MaskedArray"),
        ("X", LabelledSeries(np.ones((n, 8), own)), TypeError, r"__array_ufunc__"),
        ("b", np.ones(4, other), TypeError,
         rf"must have dtype {own}.*got an array of dtype {other}.*np\.asarray\(value, "
         rf"dtype=np\.{own}\)"),
        ("X", np.ones((n, 8), np.float16), TypeError, r"dtype float16"),
        ("X", np.ones((n, 8), np.int64), TypeError, r"dtype int64"),
        ("b", [1, 2, 3, 4], TypeError, r"a list \(as an array: dtype int64\)"),
        ("X", np.ones((n, 8), bool), TypeError, r"dtype bool"),
        ("X", np.ones((n, 8), complex), TypeError, r"complex"),
        ("X", np.ones((n, 8), object), TypeError, r"dtype object"),
        ("X", np.full((n, 8), "a"), TypeError, r"dtype <U1"),
        ("W", np.zeros((4, 8), [("a", own)]), TypeError, r"dtype \[\('a'"),
        ("W", [[1.0] * 8] * 3 + [[1.0] * 7], TypeError, r"a list that numpy cannot make"),
        ("X", None, TypeError, r"None"),
        ("X", np.zeros((n, 8), "datetime64[s]"), TypeError, r"datetime64"),
        ("c", True, TypeError, r"a bool"),
        ("c", np.bool_(True), TypeError, r"a bool"),
        ("c", 1j, TypeError, r"complex"),
        ("c", np.complex128(1), TypeError, r"complex"),
        ("c", "1.0", TypeError, r"a str"),
        ("c", None, TypeError, r"None"),
        ("c", 10**400, ValueError, r"float64 can hold.*1329 bits"),
        ("c", np.longdouble(1), TypeError, r"float128|longdouble|float96"),
        ("c", np.array(1.0, other), TypeError, rf"must have dtype {own}.*dtype {other}"),
        ("c", np.ma.masked_array(1.0), TypeError, r"numpy\.ma\.MaskedArray"),
    ]


@pytest.mark.parametrize("n", [5, abi.MIN_PARALLEL_ELEMENTS // 4])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_tensor_kernels_refuse_naming_the_argument_before_native_code(steps, dtype, n,
                                                                      monkeypatch):
    step = steps[dtype]
    w, b, xs = _tensor_arguments(n, dtype)

    def native(*arguments):
        raise AssertionError("native code ran")
    for name, bad, error, came in _tensor_refusals(dtype, n):
        values = {"W": w, "b": b, "X": xs, "c": 1.0}
        values[name] = bad
        with monkeypatch.context() as patch:
            patch.setattr(step, "_entry", native)
            patch.setattr(step, "_run_threaded", native)
            with pytest.raises(error) as info:
                step([values["W"], values["b"]], values["X"], values["c"])
        message = str(info.value)
        assert f"argument {name!r} must" in message, message
        assert re.search(came, message), (came, message)


def test_a_copy_too_large_for_memory_is_reported_naming_the_argument(steps):
    step = steps["float64"]
    w, b, _ = _tensor_arguments(1, "float64")
    huge = np.broadcast_to(0.0, (2**46, 8))          # its copy: 2**52 bytes
    with pytest.raises(MemoryError, match=r"argument 'X': no memory .*\(70368744177664, 8\)"):
        step([w, b], huge, 1.0)


def test_function_kernels_check_like_tensor_kernels(tmp_path):
    X = sg.tensor("X", ("n", 3))
    double = sg.compile_function([X * 2 + 1], [X])
    base = np.arange(12.0).reshape(4, 3)
    for variant in (_memmap(tmp_path, base, "r+"), unaligned(base), base.astype(">f8"),
                    WithArray(base), base.tolist()):
        (got,) = double(variant)
        np.testing.assert_array_equal(got, base * 2 + 1)
        np.testing.assert_array_equal(np.asarray(variant), base)    # not written to
    with pytest.raises(TypeError, match=r"argument 'X'.*MaskedArray.*filled"):
        double(np.ma.masked_array(base))
    with pytest.raises(TypeError, match=r"argument 'X' must have dtype float64.*float32"):
        double(base.astype(np.float32))


# ---------------------------------------------------------------------------------------------
# Training and checking
# ---------------------------------------------------------------------------------------------

def test_training_refuses_masked_data_and_values_by_name():
    X = sg.tensor("X", ("n", 2))
    T = sg.tensor("T", ("n", 1))
    net = sg.nn.MLP([2, 1], activation=sg.tanh, output_activation=None, seed=0)
    loss = sg.losses.mean_squared_error(net(X), T)
    data = [np.ones((4, 2)), np.ones((4, 1))]
    masked = np.ma.masked_array(data[0], mask=[[0, 1]] * 4)
    with pytest.raises(TypeError, match=r"the data for input 'X' must be .*MaskedArray.*filled"):
        sg.fit(net, loss, [X, T], [masked, data[1]], epochs=1)
    weight, bias = net.parameters()
    with pytest.raises(TypeError, match=r"the value of parameter 'W1' must be .*MaskedArray"):
        sg.fit({weight: np.ma.masked_array(net.values()[0]), bias: net.values()[1]}, loss,
               [X, T], data, epochs=1)
    with pytest.raises(TypeError, match=r"parameter 'W1' must be .*MaskedArray"):
        net.set_values([np.ma.masked_array(net.values()[0]), net.values()[1]])
    # What numpy makes plain numbers of trains as the plain numbers do.
    plain = sg.fit(net, loss, [X, T], data, epochs=2, shuffle=False)
    other = sg.nn.MLP([2, 1], activation=sg.tanh, output_activation=None, seed=0)
    swapped = sg.fit(other, loss, [X, T], [data[0].astype(">f8"), data[1].tolist()],
                     epochs=2, shuffle=False)
    assert plain.loss == swapped.loss


def test_gradcheck_refuses_masked_points_by_name():
    with pytest.raises(TypeError, match=r"the value at 'y' must be .*MaskedArray.*filled"):
        sg.gradcheck(x**2 * y, wrt=[x, y], at={x: 1.5, y: np.ma.masked_array([2.0, 3.0])})
    W = sg.tensor("W", (2, 3))
    X = sg.tensor("X", ("n", 3))
    loss = ((X @ W.T) ** 2).sum()
    masked = np.ma.masked_array(np.ones((4, 3)), mask=np.eye(4, 3))
    with pytest.raises(TypeError, match=r"the value at 'X' must be .*MaskedArray"):
        sg.gradcheck(loss, wrt=[W], at={W: np.ones((2, 3)), X: masked})
    # The plain numbers pass (a list, a byte-swapped array).
    sg.gradcheck(loss, wrt=[W], at={W: np.ones((2, 3)).tolist(), X: np.ones((4, 3), ">f8")})
