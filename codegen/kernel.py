"""The Kernel: a compiled IR function that validates its arguments and runs on numpy arrays."""

import ctypes
import functools
import math
import weakref

import numpy as np

from codegen import cache, fastcall, parallel, workers
from codegen.jit import CompiledModule
from codegen.lower import is_large, lower_function
from codegen.lower_tensor import (STATE_WORDS, lower_call_entry, lower_steps,
                                  lower_tensor_function, plan_tensor_function, split_steps)
from codegen.schedule import chunking
from codegen.types import KERNEL_SYMBOL
from symgrad.arguments import as_real_array, bind, describe, is_python_number
from symgrad.messages import bounded_list
from symgrad.printing import function_to_text

_ENTRY_SIGNATURE = ctypes.CFUNCTYPE(None, ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p,
                                    ctypes.c_void_p)
_NUMPY_DTYPES = {"float64": np.float64, "float32": np.float32}
# The level of LLVM's IR pipeline for the call entries of tensor kernels: none (straight
# checks and calls, which it does not make faster: measured on the 2-4-1 network's calls).
CALL_ENTRY_LEVEL = 0


class _Variant:
    """The function compiled for one float dtype."""

    def __init__(self, function, fast_entry=False):
        self.function = function
        self.compiled = CompiledModule(
            functools.partial(lower_function, function, KERNEL_SYMBOL, fast_entry),
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
        (:data:`codegen.types.KERNEL_SYMBOL`), whatever the names of the kernel, its arguments
        and its outputs.

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
    """

    def __init__(self, function, value_and_grad=True, name=KERNEL_SYMBOL):
        self.function = function
        self.value_and_grad = value_and_grad
        self.name = name
        self.arg_names = function.input_names
        self._calls = calls = _Calls(function, value_and_grad)
        # Scalar value-and-gradient kernels get a direct entry from Python for float
        # arguments (codegen.fastcall); everything else takes the general path.
        fast = (value_and_grad and fastcall.available() and len(function.outputs) >= 1
                and all(n.shape == () for n in function.inputs))
        variant = calls.variant("float64", fast_entry=fast)
        if fast:
            entry, calls.definition = fastcall.make_callable(
                variant.fast_address, calls.call, KERNEL_SYMBOL)
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
        if dtype not in _NUMPY_DTYPES:
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
        numpy_dtype = _NUMPY_DTYPES[dtype]
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
        block = parallel.MAP_BLOCK
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
        threads = parallel.num_threads()
        if threads == 1 or count < parallel.MIN_PARALLEL_MAP_ELEMENTS:
            run_blocks(0, blocks)
        else:
            parallel.run_chunks(run_blocks, blocks, threads)


class TensorKernel:
    """A native kernel compiled from a tensor IR function.

    ``kernel(params, *inputs, **inputs_by_name)`` takes the differentiated arguments as one
    sequence (or a dict keyed by name) and the other arguments by position or name; it returns
    ``(value, grads)`` with ``grads`` shaped like ``params`` (a tuple, or a dict).  Every array
    is checked against its declared shape and dtype, and the symbolic sizes (such as a batch
    size ``n``) must agree between arrays, before any native code runs.

    Parameters
    ----------
    function : symgrad.ir.Function
        Outputs ``(value, grad_0, grad_1, ...)``; its first ``num_params`` inputs are the
        differentiated ones.
    num_params : int
    name : str
        A name for display; the native code's symbols are generated, whatever the names of
        the kernel, its arguments, its sizes and its outputs.

    Notes
    -----
    A kernel is freed, native code and all, as soon as nothing refers to it; the worker
    threads keep no pointer into it once a call returns.
    """

    # Workspaces (temporary buffers) kept for reuse: at most this many distinct sets of sizes,
    # and this many workspaces for one set (calls from several threads at once).
    _WORKSPACE_SIZES = 4
    _WORKSPACES_PER_SIZE = 2

    def __init__(self, function, num_params, name=KERNEL_SYMBOL):
        self.function = function
        self.num_params = num_params
        self.name = name
        self.param_names = function.input_names[:num_params]
        self.input_names = function.input_names[num_params:]
        dtypes = {n.dtype for n in function.nodes} - {"bool"}
        self.dtype = dtypes.pop() if dtypes else "float64"
        self._numpy_dtype = np.dtype(_NUMPY_DTYPES[self.dtype])
        self._layouts = [tuple(node.shape) for node in function.inputs]
        self._size_names = function.size_names
        self._output_shapes = [self._template(n.shape) for n in function.outputs]
        self._dtypes = [self._numpy_dtype] * len(function.outputs)
        self._workspaces = {}
        fast = fastcall.available()
        self.schedule, _ = self._planned = plan_tensor_function(function)
        self._temporary_shapes = [self._template(n.shape) for n in self.schedule.temporaries]
        self._partial_shapes = [(self._template(step_shape), self._template(node.shape))
                                for node, step_shape in self.schedule.partials]
        self._chunked_shapes = [self._template(step.shape) for step in self.schedule.steps
                                if step.chunked]
        self._products = [self._template((step.nodes[0].shape[0], step.nodes[0].args[0].shape[1],
                                          step.nodes[0].shape[1]))
                          for step in self.schedule.steps if step.kind == "matmul"]
        # (The symbols the threads' code calls are registered before it is built or loaded.)
        array_new = fastcall.array_new_index() if fast else None
        self.compiled = self._compile(array_new, workers.symbols()[0])
        if parallel.num_threads() > 1:
            # Where the kernel came from the disk cache its compile did not start the
            # workers' code (from the cache too, that is a lookup).
            workers.compile_soon()
        self._parallel_address = self.compiled.address(f"{KERNEL_SYMBOL}.parallel")
        self._state_words = STATE_WORDS * len(self.schedule.steps)
        self._entry = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)(
            self.compiled.address(KERNEL_SYMBOL))
        self._call_native = None
        if array_new is not None:
            owner = _CallEntryOwner(self.compiled)
            self._call_native, owner.definition = fastcall.make_callable(
                self.compiled.address(f"{KERNEL_SYMBOL}.call"), owner,
                f"{KERNEL_SYMBOL}.call", flags=fastcall.METH_FASTCALL)
            # The temporaries the call entry keeps are freed with the entry (the finalizer
            # holds the module, so its code is still there).
            weakref.finalize(owner, _release, ctypes.CFUNCTYPE(None)(
                self.compiled.address(f"{KERNEL_SYMBOL}.release")), self.compiled)

    def _compile(self, array_new, yield_symbol):
        """The kernel's modules: the kernel with some of its steps, modules of the other steps
        (:func:`codegen.lower_tensor.split_steps`), and with ``array_new`` the call entry
        (:func:`codegen.lower_tensor.lower_call_entry`), all compiled at the same time."""
        # (The modules are built from the function and its plan, never from the kernel: the
        # compiled module outlives it in the call entry's finalizer.)
        gemm = self._planned[1]
        identity = cache.fingerprint(self.function, "tensor", KERNEL_SYMBOL, yield_symbol,
                                     gemm and gemm.describe())
        groups = split_steps(self._planned[0])
        parts = [(functools.partial(lower_steps, self.function, KERNEL_SYMBOL, self._planned,
                                    group), f"steps {group}") for group in groups[1:]]
        if array_new is not None:
            parts.append((functools.partial(lower_call_entry, self.function, self._planned[0],
                                            KERNEL_SYMBOL, array_new),
                          f"call entry {array_new}", CALL_ENTRY_LEVEL))
        return CompiledModule(
            functools.partial(_kernel_module, self.function, self._planned, yield_symbol,
                              groups[0] if len(groups) > 1 else None),
            identity, codegen_opt_level=0 if is_large(self.function) else 3, unroll=False,
            parts=parts, before_compile=functools.partial(self._start_libraries, gemm),
            libraries=getattr(gemm, "objects", None))

    @staticmethod
    def _start_libraries(gemm):
        """Start compiling what the kernel calls (the GEMM library, the workers' code where
        threads may run it) while it compiles itself."""
        if hasattr(gemm, "start"):
            gemm.start()
        if parallel.num_threads() > 1:
            workers.compile_soon()

    llvm_ir = property(lambda self: self.compiled.llvm_ir)
    optimized_llvm_ir = property(lambda self: self.compiled.optimized_llvm_ir)
    asm = property(lambda self: self.compiled.asm)

    def __str__(self):
        return function_to_text(self.function, title="kernel")

    def __repr__(self):
        params = ", ".join(self.param_names)
        inputs = ", ".join(self.input_names)
        return f"<symgrad.TensorKernel params=({params}) inputs=({inputs}) {self.dtype}>"

    def _arrays(self, params, args, kwargs):
        if type(params) in (list, tuple) and len(params) == self.num_params and not kwargs \
                and len(args) == len(self.input_names):
            return [*params, *args]             # everything by position: nothing to bind
        if isinstance(params, dict):
            unknown = set(params) - set(self.param_names)
            if unknown:
                raise TypeError(f"params has unknown names {bounded_list(sorted(unknown))}; the "
                                f"parameters are {bounded_list(self.param_names)}")
            missing = [n for n in self.param_names if n not in params]
            if missing:
                raise TypeError(f"params is missing {bounded_list(missing)}")
            param_values = [params[n] for n in self.param_names]
        else:
            if isinstance(params, np.ndarray) or not hasattr(params, "__len__"):
                raise TypeError(f"params must be a sequence (or dict) of {self.num_params} "
                                f"arrays {bounded_list(self.param_names)}, got "
                                f"{type(params).__name__}")
            param_values = list(params)
            if len(param_values) != self.num_params:
                raise TypeError(f"params must hold {self.num_params} arrays "
                                f"{bounded_list(self.param_names)}, got {len(param_values)}")
        return param_values + bind(self.input_names, args, kwargs, noun="input",
                                   after=" after params")

    def _check(self, node, value, sizes):
        name = node.attrs
        numpy_dtype = self._numpy_dtype
        if node.shape == () and (is_python_number(value) or isinstance(value, np.generic)):
            # A number takes the kernel's dtype (bools, complex and the like are refused).
            return np.array(as_real_array(name, value), numpy_dtype)
        array = as_real_array(name, value, dtypes=f"{numpy_dtype}, the kernel's dtype")
        if array.dtype.kind != "f" or array.dtype.itemsize != numpy_dtype.itemsize:
            raise TypeError(f"argument {name!r} must have dtype {numpy_dtype} (the kernel's, "
                            f"fixed when it was compiled), got {describe(value, array)}; "
                            f"convert it with np.asarray(value, dtype=np.{numpy_dtype})")
        if array.ndim != len(node.shape):
            raise ValueError(f"argument {name!r} must have shape {_shape_text(node.shape)}, "
                             f"got {array.shape}")
        for expected, actual in zip(node.shape, array.shape):
            if isinstance(expected, str):
                if expected in sizes and sizes[expected][0] != actual:
                    other, _ = sizes[expected]
                    raise ValueError(
                        f"size {expected!r} is {other} from argument {sizes[expected][1]!r} "
                        f"but {actual} in argument {name!r} (shape {array.shape}, expected "
                        f"{_shape_text(node.shape)})")
                sizes.setdefault(expected, (actual, name))
            elif expected != actual:
                raise ValueError(f"argument {name!r} must have shape {_shape_text(node.shape)}, "
                                 f"got {array.shape}")
        # Either byte order; any layout or alignment: the kernel reads aligned C order.
        try:
            return np.require(array, numpy_dtype, "CA")
        except MemoryError as error:
            raise MemoryError(f"argument {name!r}: no memory for the aligned C-order copy the "
                              f"kernel reads (shape {array.shape}, {numpy_dtype}): "
                              f"{error}") from None

    def __call__(self, params, *args, **kwargs):
        outputs = None
        if self._call_native is not None and type(params) in (list, tuple) and not kwargs \
                and len(params) == self.num_params:
            outputs = self._call_native(*params, *args)     # None: not for this path
        if outputs is None:
            outputs = self.run(self._arrays(params, args, kwargs))
        value = outputs[0]
        if not value.shape:
            value = value[()]
        if isinstance(params, dict):
            return value, dict(zip(self.param_names, outputs[1:]))
        return value, tuple(outputs[1:])

    def run(self, values):
        """Check one value per function input (in order) and run the kernel: the outputs."""
        if self._call_native is not None:
            # Arrays exactly as the kernel wants them, in a call too small for threads: all in
            # native code (checks, outputs, temporaries, the kernel).
            outputs = self._call_native(*values)
            if outputs is not None:
                return outputs
        # Arrays exactly as the kernel wants them and Python floats for scalars are checked
        # quickly; anything else by the full checks, which convert and report.
        values = list(values)
        sizes = self._sizes_if_ready(values)
        if sizes is None:
            found = {}
            values = [self._check(node, value, found)
                      for node, value in zip(self.function.inputs, values)]
            sizes = tuple(found[name][0] for name in self._size_names)
        kept = self._workspaces.get(sizes)
        try:
            workspace = kept.pop()          # atomic: another thread may empty the list first
        except (AttributeError, IndexError):
            workspace = self._new_workspace(sizes)
        size_array, temporaries, large, output_shapes = workspace
        outputs = list(map(np.empty, output_shapes, self._dtypes))
        if large:
            self._run_threaded(parallel.num_threads(), size_array,
                               [*values, *outputs, *temporaries])
        else:
            buffers = [*values, *outputs, *temporaries]
            pointers = (ctypes.c_void_p * len(buffers))(*[b.ctypes.data for b in buffers])
            self._entry(size_array.ctypes.data, pointers)
        if kept is not None and len(kept) < self._WORKSPACES_PER_SIZE:
            kept.append(workspace)
        else:
            self._give_back_workspace(sizes, workspace)
        return outputs

    def _run_threaded(self, threads, size_array, buffers):
        """Run ``NAME.parallel`` on ``threads`` threads at once (the calling thread is one, the
        others :mod:`codegen.workers`): they share the units of work of every step, each the
        same native code whatever thread runs it, hence the same results."""
        pointers = (ctypes.c_void_p * len(buffers))(*[b.ctypes.data for b in buffers])
        state = np.zeros(self._state_words, np.int64)  # the steps' counters of units
        workers.run(self._parallel_address, size_array.ctypes.data, pointers,
                    parallel.call_threads(threads), state.ctypes.data)

    def _sizes_if_ready(self, values):
        """The symbolic sizes, when every value is already an aligned C-contiguous array of the
        kernel's dtype (native byte order) and of its declared shape, or a Python float for a
        scalar (the common cases, checked quickly; floats are replaced in ``values`` by
        arrays); else None."""
        dtype = self._numpy_dtype
        found = {}
        for index, (value, layout) in enumerate(zip(values, self._layouts)):
            if type(value) is float and layout == ():
                values[index] = np.array(value, dtype)
                continue
            if type(value) is not np.ndarray or value.dtype is not dtype:
                return None
            flags = value.flags
            if not (flags.c_contiguous and flags.aligned):
                return None
            shape = value.shape
            if shape == layout:                 # every size a number, and they match
                continue
            if len(shape) != len(layout):
                return None
            for expected, actual in zip(layout, shape):
                if type(expected) is str:
                    if found.setdefault(expected, actual) != actual:
                        return None
                elif expected != actual:
                    return None
        return tuple(found[name] for name in self._size_names)

    def _template(self, shape):
        """``shape`` with each symbolic size ``s`` replaced by ``~index(s)`` (negative)."""
        return tuple(~self._size_names.index(d) if isinstance(d, str) else d for d in shape)

    @staticmethod
    def _concrete(template, sizes):
        return tuple(sizes[~d] if d < 0 else d for d in template)

    def _new_workspace(self, sizes):
        """``(size array, temporaries, large, output shapes)`` for these sizes (``large``: the
        call runs step by step on threads).  Workspaces are kept for reuse per set of sizes:
        the kernel writes every element of a temporary before reading it."""
        temporaries = [np.empty(self._concrete(shape, sizes), self._numpy_dtype)
                       for shape in self._temporary_shapes]
        for step_shape, shape in self._partial_shapes:
            rows, *row = self._concrete(step_shape, sizes)
            _, count = chunking(rows, math.prod(row))
            temporaries.append(np.empty((count,) + self._concrete(shape, sizes),
                                        self._numpy_dtype))
        work = sum(math.prod(self._concrete(shape, sizes)) for shape in self._chunked_shapes)
        work += sum(math.prod(self._concrete(shape, sizes))
                    for shape in self._products) // parallel.MULTIPLY_ADDS_PER_ELEMENT
        return (np.array(sizes or (0,), np.int64), temporaries,
                work >= parallel.MIN_PARALLEL_ELEMENTS,
                [self._concrete(shape, sizes) for shape in self._output_shapes])

    def _give_back_workspace(self, sizes, workspace):
        kept = self._workspaces.get(sizes)
        if kept is None:
            if len(self._workspaces) >= self._WORKSPACE_SIZES:
                self._workspaces.pop(next(iter(self._workspaces)), None)
            kept = self._workspaces.setdefault(sizes, [])
        if len(kept) < self._WORKSPACES_PER_SIZE:
            kept.append(workspace)


class FunctionKernel(TensorKernel):
    """A native kernel for any tensor IR function: ``kernel(*inputs, **inputs_by_name)``
    returns one array per output (a tuple; scalars as numpy scalars)."""

    def __init__(self, function, name=KERNEL_SYMBOL):
        super().__init__(function, 0, name)

    def __call__(self, *args, **kwargs):
        outputs = self.run(self._arrays([], args, kwargs))
        return tuple(o[()] if o.ndim == 0 else o for o in outputs)

    def __repr__(self):
        return f"<symgrad.FunctionKernel ({', '.join(self.input_names)}) -> " \
               f"({', '.join(self.function.output_names)}) {self.dtype}>"


def _kernel_module(function, planned, yield_symbol, steps):
    return lower_tensor_function(function, KERNEL_SYMBOL, planned=planned,
                                 yield_symbol=yield_symbol, steps=steps)[0]


class _CallEntryOwner:
    """The ``self`` of a tensor kernel's call entry (its native code ignores it): holds what
    the entry needs for as long as it lives, its method definition and its module."""

    __slots__ = ("compiled", "definition", "__weakref__")

    def __init__(self, compiled):
        self.compiled = compiled
        self.definition = None


def _release(release, compiled):
    release()


def _shape_text(shape):
    return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"
