"""The Kernel of a scalar formula: a compiled IR function of scalars, run elementwise over the
numpy broadcast of its arguments, each argument checked before any native code runs."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from symgrad.ir import Function

import ctypes
import functools
import weakref

import numpy as np

from symgrad.arguments import as_real_array, bind, is_python_number
from symgrad.codegen.compile import cache
from symgrad.codegen.compile.jit import CompiledModule
from symgrad.codegen.lower.abi import METH_FASTCALL_KEYWORDS
from symgrad.codegen.lower.elementwise import is_large, lower_elementwise
from symgrad.codegen.lower.types import KERNEL_SYMBOL
from symgrad.codegen.runtime import process, threads
from symgrad.ir.numeric import NUMPY_DTYPES
from symgrad.ir.text import function_to_text

_ENTRY_SIGNATURE = ctypes.CFUNCTYPE(None, ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p,
                                    ctypes.c_void_p)


class _Variant:
    """The function compiled for one float dtype."""

    def __init__(self, function, fast_entry=False):
        self.function = function
        self.compiled = CompiledModule(
            functools.partial(lower_elementwise, function, KERNEL_SYMBOL, fast_entry),
            cache.fingerprint(function, "elementwise", KERNEL_SYMBOL, fast_entry),
            codegen_opt_level=0 if is_large(function) else 3)
        self.entry = _ENTRY_SIGNATURE(self.compiled.address(KERNEL_SYMBOL))
        self.fast_address = (self.compiled.address(f"{KERNEL_SYMBOL}.fast") if fast_entry
                             else None)


def _compute_dtype(values, arrays):
    """float32 when every argument other than a Python number is float32 or float16 (which
    float32 holds exactly); float64 otherwise.

    Python numbers do not decide the dtype, as in numpy's promotion rules; everything else
    does as ``np.asarray`` makes it (a list of floats is float64, as in numpy).  Integers
    make it float64 (numpy gives float32 for 8- and 16-bit integers with float32; float64
    holds them exactly).
    """
    strong = [array.dtype for value, array in zip(values, arrays) if not is_python_number(value)]
    if strong and all(d.kind == "f" and d.itemsize <= 4 for d in strong):
        return "float32"
    return "float64"


def _prepare(array, shape, dtype):
    """A buffer and an element stride that the kernel can read for every element of ``shape``.

    Scalars are read with stride 0, aligned contiguous and 1-d strided arrays in place;
    anything else (a broadcast, a transposed matrix, memory not aligned to the element size)
    is copied to a contiguous array first.  Another dtype or byte order is converted.
    """
    array = array.astype(dtype, copy=False)
    if array.size == 1:
        return np.array(array.reshape(())), 0
    if array.shape == shape and array.flags.aligned:
        if array.flags.c_contiguous:
            return array, 1
        if array.ndim == 1 and array.strides[0] % array.itemsize == 0:
            return array, array.strides[0] // array.itemsize
    return np.require(np.broadcast_to(array, shape), requirements="CA"), 1


def _prepared(name, array, shape, dtype):
    """:func:`_prepare`, naming the argument when its copy does not fit in memory."""
    try:
        return _prepare(array, shape, dtype)
    except MemoryError as error:
        raise MemoryError(f"argument {name!r}: no memory for the copy the kernel reads "
                          f"(shape {shape}, {np.dtype(dtype)}): {error}") from None


class Kernel:
    """A native kernel compiled from an IR function.

    Calling it evaluates the function elementwise over the numpy broadcast of its arguments.
    Arguments are checked before any native code runs: their number, names, dtypes (real
    numbers only) and shapes (they must broadcast together).

    Parameters
    ----------
    function : symgrad.ir.Function
        The function to compile (float64; a float32 variant is compiled on first use).
    value_and_grad : bool
        When true, a call returns ``(value, (grad_0, grad_1, ...))``; else a tuple of all the
        outputs.
    name : str
        A name for display; the native code's symbols are generated
        (:data:`symgrad.codegen.lower.types.KERNEL_SYMBOL`), whatever the names of the kernel,
        its arguments and its outputs.

    Attributes
    ----------
    function : symgrad.ir.Function
        The fused forward and backward IR that was compiled.
    llvm_ir, optimized_llvm_ir, asm : str
        The float64 kernel's LLVM IR before and after optimisation, and its host assembly.

    Notes
    -----
    A kernel is freed, native code and all, as soon as nothing refers to it (no garbage
    collection needed).

    A value-and-gradient kernel of scalar arguments (where the interpreter's object layout is
    the one :mod:`symgrad.codegen.lower.entries` reads) takes its class from a subclass of its
    own, made when it is built, whose ``__call__`` is the native entry as a builtin function:
    a call of Python floats then costs about as much as calling a builtin, and anything else
    falls back on the general path, which checks and reports.
    """

    def __init__(self, function: Function, value_and_grad: bool = True,
                 name: str = KERNEL_SYMBOL) -> None:
        self.function = function
        self.value_and_grad = value_and_grad
        self.name = name
        self.arg_names = function.input_names
        self._calls = calls = _Calls(function, value_and_grad)
        # Scalar value-and-gradient kernels get a direct entry from Python for float
        # arguments (symgrad.codegen.lower.entries); everything else takes the general path.
        fast = (value_and_grad and process.available() and len(function.outputs) >= 1
                and all(n.shape == () for n in function.inputs))
        variant = calls.variant("float64", fast_entry=fast)
        if fast:
            entry, calls.definition = process.make_callable(
                variant.fast_address, calls.call, KERNEL_SYMBOL, METH_FASTCALL_KEYWORDS)
            own_class = type("Kernel", (Kernel,), {"__call__": entry,
                                                   "__module__": Kernel.__module__})
            self.__class__ = own_class
            # A class refers to itself (its MRO), so only the garbage collector frees it:
            # its entry, which holds the native code, is taken from it with the kernel.
            weakref.finalize(self, delattr, own_class, "__call__")

    def variant(self, dtype, fast_entry=False):
        """The compiled variant for ``dtype`` ('float64' or 'float32'), compiling it if needed."""
        return self._calls.variant(dtype, fast_entry)

    @property
    def llvm_ir(self):
        return self.variant("float64").compiled.llvm_ir

    @property
    def optimized_llvm_ir(self):
        return self.variant("float64").compiled.optimized_llvm_ir

    @property
    def asm(self):
        return self.variant("float64").compiled.asm

    def __str__(self):
        return function_to_text(self.function, title="kernel")

    def __repr__(self):
        outputs = ", ".join(self.function.output_names)
        return f"<symgrad.Kernel ({', '.join(self.arg_names)}) -> ({outputs})>"

    def _call_general(self, *args, **kwargs):
        return self._calls.call(*args, **kwargs)

    __call__ = _call_general


class _Calls:
    """A scalar kernel's compiled variants and its general call path (every argument
    checked and converted, any shapes, either dtype).

    Apart from the :class:`Kernel`, so that the kernel's fast entry, which falls back on
    :meth:`call`, holds this and not the kernel: the kernel is freed when dropped.  It holds
    the entry's method definition too (``definition``), which must live as long as the entry.
    """

    def __init__(self, function, value_and_grad):
        self.function = function
        self.value_and_grad = value_and_grad
        self.arg_names = function.input_names
        self.variants = {}
        self.definition = None

    def variant(self, dtype, fast_entry=False):
        if dtype not in ("float64", "float32"):
            raise ValueError(f"dtype must be 'float64' or 'float32', got {dtype!r}")
        if dtype not in self.variants:
            self.variants[dtype] = _Variant(self.function.with_dtype(dtype), fast_entry)
        return self.variants[dtype]

    def call(self, *args, **kwargs):
        values = bind(self.arg_names, args, kwargs)
        arrays = [as_real_array(name, value) for name, value in zip(self.arg_names, values)]
        dtype = _compute_dtype(values, arrays)

        def shapes():
            return ", ".join(f"{name} has shape {array.shape}"
                             for name, array in zip(self.arg_names, arrays))
        try:
            shape = np.broadcast_shapes(*(array.shape for array in arrays))
        except ValueError:
            raise ValueError(f"the arguments do not broadcast together: {shapes()}") from None
        numpy_dtype = NUMPY_DTYPES[dtype]
        try:
            outputs = [np.empty(shape, numpy_dtype) for _ in self.function.outputs]
        except (MemoryError, ValueError) as error:      # ValueError: more bytes than addresses
            kind = MemoryError if isinstance(error, MemoryError) else ValueError
            raise kind(f"the outputs ({len(self.function.outputs)} arrays of shape {shape}, "
                       f"{dtype}, the broadcast of the arguments: {shapes()}) do not fit in "
                       f"memory: {error}") from None
        count = int(np.prod(shape, dtype=np.int64))
        if count:
            buffers = [_prepared(name, array, shape, numpy_dtype)
                       for name, array in zip(self.arg_names, arrays)]
            self._run(self.variant(dtype), count, buffers, outputs)
        if shape == ():
            as_python = all(is_python_number(v) for v in values)
            outputs = [float(o) if as_python else o[()] for o in outputs]
        if self.value_and_grad:
            return outputs[0], tuple(outputs[1:])
        return tuple(outputs)

    @staticmethod
    def _run(variant, count, buffers, outputs):
        """Run the element loop over ``count`` elements.

        The loop vectorises when every input has unit stride, so an input broadcast from one
        value (stride 0) is read from a block of copies instead, and the loop runs block by
        block.  A large call shares the blocks among threads.  Every element is computed
        alone, so the results depend on neither.
        """
        width = max(len(buffers), 1)
        itemsize = outputs[0].itemsize
        broadcast = any(stride == 0 for _, stride in buffers) and count > 1
        block = threads.MAP_BLOCK
        keep = []          # the copies: alive until the native calls are done
        inputs, strides = [], []
        for buffer, stride in buffers:
            if broadcast and stride == 0:
                copies = np.full(min(count, block), buffer.reshape(-1)[0])
                keep.append(copies)
                inputs.append((copies.ctypes.data, 0))
                strides.append(1)
            else:
                inputs.append((buffer.ctypes.data, stride * itemsize))
                strides.append(stride)
        strides = (ctypes.c_int64 * width)(*strides)
        results = [output.ctypes.data for output in outputs]

        def run_elements(first, last):
            pointers = (ctypes.c_void_p * width)(*[base + first * step for base, step in inputs])
            targets = (ctypes.c_void_p * len(results))(*[base + first * itemsize
                                                         for base in results])
            variant.entry(last - first, pointers, strides, targets)

        def run_blocks(first, last):
            if not broadcast:
                run_elements(first * block, min(last * block, count))
                return
            for start in range(first * block, min(last * block, count), block):
                run_elements(start, min(start + block, count))

        blocks = -(-count // block)
        count_threads = threads.num_threads()
        if count_threads == 1 or count < threads.MIN_PARALLEL_MAP_ELEMENTS:
            run_blocks(0, blocks)
        else:
            threads.run_chunks(run_blocks, blocks, count_threads)
