"""TensorKernel and FunctionKernel: compiled tensor IR functions, their arguments checked (or,
for a small call of arrays exactly as the kernel wants them, the whole call in native code),
their temporaries kept between calls, large calls run on the worker threads.

A kernel is planned and lowered for a :class:`~symgrad.codegen.lower.target.Target` that
:func:`target_for` builds from the host, the libraries found and :mod:`symgrad.config`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from symgrad.ir import Function

import ctypes
import functools
import math
import weakref

import numpy as np

from symgrad.arguments import as_real_array, bind, describe, is_python_number
from symgrad.codegen.compile import cache
from symgrad.codegen.compile.jit import CompiledModule
from symgrad.codegen.lower.abi import (
    METH_FASTCALL,
    MIN_PARALLEL_ELEMENTS,
    MULTIPLY_ADDS_PER_ELEMENT,
    STATE_WORDS,
)
from symgrad.codegen.lower.elementwise import is_large
from symgrad.codegen.lower.entries import lower_call_entry
from symgrad.codegen.lower.schedule import VIEW_OPS, chunking
from symgrad.codegen.lower.target import Target
from symgrad.codegen.lower.tensor import lower_steps, lower_tensor, plan, split_steps
from symgrad.codegen.lower.types import KERNEL_SYMBOL
from symgrad.codegen.runtime import libraries, process, threads, workers
from symgrad.ir.node import INDEX_DTYPES
from symgrad.ir.numeric import NUMPY_DTYPES
from symgrad.ir.ops import Op
from symgrad.ir.text import function_to_text
from symgrad.messages import bounded_list

# The dtypes a kernel's arrays may have besides its float dtype: index arrays and masks.
_OTHER_DTYPES = INDEX_DTYPES + ("bool",)

# The level of LLVM's IR pipeline for the call entries of tensor kernels: none (straight
# checks and calls, which it does not make faster: measured on the 2-4-1 network's calls).
CALL_ENTRY_LEVEL = 0


def target_for(function):
    """``(target, library)``: the :class:`Target` a kernel of ``function`` is lowered for,
    and the GEMM library it calls and links (None for a BLAS or loop nests)."""
    dtypes = function.float_dtypes
    gemm, library = libraries.gemm_for(next(iter(dtypes)) if len(dtypes) == 1 else None)
    # (The symbols the threads' code calls are registered before it is built or loaded.)
    return Target(gemm=gemm, pause=workers.pause_instruction(),
                  yield_symbol=workers.symbols()[0]), library


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
    target : symgrad.codegen.lower.target.Target, optional
        What to lower for (default: :func:`target_for` the host and the settings).

    Notes
    -----
    A kernel is freed, native code and all, as soon as nothing refers to it; the worker
    threads keep no pointer into it once a call returns.
    """

    # Workspaces (temporary buffers) kept for reuse: at most this many distinct sets of sizes,
    # and this many workspaces for one set (calls from several threads at once).
    _WORKSPACE_SIZES = 4
    _WORKSPACES_PER_SIZE = 2

    def __init__(self, function: Function, num_params: int, name: str = KERNEL_SYMBOL,
                 target: Target | None = None) -> None:
        self.function = function
        self.num_params = num_params
        self.name = name
        self.param_names = function.input_names[:num_params]
        self.input_names = function.input_names[num_params:]
        dtypes = function.float_dtypes
        self.dtype = dtypes.pop() if dtypes else "float64"
        self._numpy_dtype = np.dtype(NUMPY_DTYPES[self.dtype])
        self._layouts = [tuple(node.shape) for node in function.inputs]
        self._size_names = function.size_names
        self._output_shapes = [self._template(n.shape) for n in function.outputs]
        self._dtypes = [self._array_dtype(n) for n in function.outputs]
        self._input_dtypes = [self._array_dtype(n) for n in function.inputs]
        self._index_checks = _index_checks(function, self._template)
        self._workspaces: dict[tuple, list] = {}
        # Index arrays are checked against the sizes they index, in Python (below), before
        # the native code runs: not by the native call entry.
        fast = process.available() and not any(
            n.dtype in _OTHER_DTYPES for n in (*function.inputs, *function.outputs))
        if target is None:
            target, self._library = target_for(function)
        else:
            self._library = libraries.library(self.dtype) if (
                target.gemm is not None and target.gemm.kind == "symgrad") else None
        self.target = target
        self.schedule = plan(function, target)
        self._temporary_shapes = [self._template(n.shape) for n in self.schedule.temporaries]
        self._temporary_dtypes = [self._array_dtype(n) for n in self.schedule.temporaries]
        self._partial_shapes = [(self._template(step_shape), self._template(node.shape))
                                for node, step_shape in self.schedule.partials]
        self._chunked_shapes = [self._template(step.shape) for step in self.schedule.steps
                                if step.chunked]
        self._products = [self._template((step.nodes[0].shape[0], step.nodes[0].args[0].shape[1],
                                          step.nodes[0].shape[1]))
                          for step in self.schedule.steps if step.kind == "matmul"]
        array_new = process.array_new_index() if fast else None
        if fast:
            threads.runtime_block()         # its thread word set before an entry reads it
        self.compiled = self._compile(array_new)
        if threads.num_threads() > 1:
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
            self._call_native, owner.definition = process.make_callable(
                self.compiled.address(f"{KERNEL_SYMBOL}.call"), owner,
                f"{KERNEL_SYMBOL}.call", flags=METH_FASTCALL)
            # The temporaries the call entry keeps are freed with the entry (the finalizer
            # holds the module, so its code is still there).
            weakref.finalize(owner, _release, ctypes.CFUNCTYPE(None)(
                self.compiled.address(f"{KERNEL_SYMBOL}.release")), self.compiled)

    def _compile(self, array_new):
        """The kernel's modules: the kernel with some of its steps, modules of the other steps
        (:func:`symgrad.codegen.lower.tensor.split_steps`), and with ``array_new`` the call
        entry (:func:`symgrad.codegen.lower.entries.lower_call_entry`), all compiled at the
        same time."""
        # (The modules are built from the function and its plan, never from the kernel: the
        # compiled module outlives it in the call entry's finalizer.)
        function, schedule, target = self.function, self.schedule, self.target
        identity = cache.fingerprint(function, "tensor", KERNEL_SYMBOL, target.describe())
        groups = split_steps(schedule, target)
        parts = [(functools.partial(lower_steps, function, schedule, target, KERNEL_SYMBOL,
                                    group), f"steps {group}") for group in groups[1:]]
        if array_new is not None:
            parts.append((functools.partial(lower_call_entry, function, schedule,
                                            KERNEL_SYMBOL, array_new),
                          f"call entry {array_new}", CALL_ENTRY_LEVEL))
        library = self._library
        return CompiledModule(
            functools.partial(lower_tensor, function, schedule, target, KERNEL_SYMBOL,
                              groups[0] if len(groups) > 1 else None),
            identity, codegen_opt_level=0 if is_large(function) else 3, unroll=False,
            parts=parts, before_compile=functools.partial(self._start_libraries, library),
            libraries=library and library.objects)

    @staticmethod
    def _start_libraries(library):
        """Start compiling what the kernel calls (the GEMM library, the workers' code where
        threads may run it) while it compiles itself."""
        if library is not None:
            library.start()
        if threads.num_threads() > 1:
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

    def _array_dtype(self, node):
        """The numpy dtype of ``node``'s array: its own for index arrays and masks, else the
        kernel's."""
        return np.dtype(NUMPY_DTYPES[node.dtype]) if node.dtype in _OTHER_DTYPES else \
            self._numpy_dtype

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
        if node.dtype in _OTHER_DTYPES:
            return self._check_other(node, value, sizes)
        numpy_dtype = self._numpy_dtype
        if node.shape == () and (is_python_number(value) or isinstance(value, np.generic)):
            # A number takes the kernel's dtype (bools, complex and the like are refused).
            return np.array(as_real_array(name, value), numpy_dtype)
        array = as_real_array(name, value, dtypes=f"{numpy_dtype}, the kernel's dtype")
        if array.dtype.kind != "f" or array.dtype.itemsize != numpy_dtype.itemsize:
            raise TypeError(f"argument {name!r} must have dtype {numpy_dtype} (the kernel's, "
                            f"fixed when it was compiled), got {describe(value, array)}; "
                            f"convert it with np.asarray(value, dtype=np.{numpy_dtype})")
        self._check_shape(name, node, array, sizes)
        # Either byte order; any layout or alignment: the kernel reads aligned C order.
        try:
            return np.require(array, numpy_dtype, "CA")
        except MemoryError as error:
            raise MemoryError(f"argument {name!r}: no memory for the aligned C-order copy the "
                              f"kernel reads (shape {array.shape}, {numpy_dtype}): "
                              f"{error}") from None

    @staticmethod
    def _check_shape(name, node, array, sizes):
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

    def _check_other(self, node, value, sizes):
        """An index argument (an array of any integer dtype whose values int64 holds, as
        int64) or a mask (an array of numpy bools, one byte each, 0 or 1)."""
        name = node.attrs
        array = np.asarray(value)
        dtype = array.dtype
        if node.dtype == "bool":
            if dtype != np.bool_:
                raise TypeError(f"argument {name!r} is a mask: it must be an array of bools, "
                                f"got {describe(value, array)}")
        elif dtype.kind not in "iu" or (dtype.kind == "u" and dtype.itemsize >= 8):
            raise TypeError(f"argument {name!r} holds indices: it must be an array of integers "
                            f"(int64 or int32), got {describe(value, array)}")
        self._check_shape(name, node, array, sizes)
        return np.require(array, self._array_dtype(node), "CA")

    def _check_index_ranges(self, values, sizes):
        """Every index argument's values against the sizes of the axes it indexes (from
        -size to size - 1, as numpy): an error naming the argument before any native code
        runs, never a read outside an array."""
        for position, template, what in self._index_checks:
            array = values[position]
            if not array.size:
                continue
            size = self._concrete((template,), sizes)[0]
            low, high = int(array.min()), int(array.max())
            if low < -size or high >= size:
                bad = low if low < -size else high
                name = self.function.inputs[position].attrs
                raise IndexError(f"argument {name!r}: index {bad} is out of bounds for {what} "
                                 f"of size {size} (indices run from {-size} to {size - 1})")

    def __call__(self, params: Sequence[Any] | Mapping[str, Any], *args: Any,
                 **kwargs: Any) -> tuple[Any, Any]:
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

    def run(self, values: Sequence[Any]) -> list[np.ndarray]:
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
            found: dict[str, tuple[int, str]] = {}
            values = [self._check(node, value, found)
                      for node, value in zip(self.function.inputs, values)]
            sizes = tuple(found[name][0] for name in self._size_names)
        if self._index_checks:
            self._check_index_ranges(values, sizes)
        kept = self._workspaces.get(sizes)
        try:
            workspace = kept.pop()  # type: ignore[union-attr]  # atomic, see below
        except (AttributeError, IndexError):   # none kept, or another thread emptied the list
            workspace = self._new_workspace(sizes)
        size_array, temporaries, large, output_shapes = workspace
        outputs = list(map(np.empty, output_shapes, self._dtypes))
        if large:
            self._run_threaded(threads.num_threads(), size_array,
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

    def _run_threaded(self, count, size_array, buffers):
        """Run ``NAME.parallel`` on ``threads`` threads at once (the calling thread is one, the
        others :mod:`symgrad.codegen.runtime.workers`): they share the units of work of every
        step, each the same native code whatever thread runs it, hence the same results."""
        pointers = (ctypes.c_void_p * len(buffers))(*[b.ctypes.data for b in buffers])
        state = np.zeros(self._state_words, np.int64)  # the steps' counters of units
        workers.run(self._parallel_address, size_array.ctypes.data, pointers,
                    threads.call_threads(count), state.ctypes.data)

    def _sizes_if_ready(self, values):
        """The symbolic sizes, when every value is already an aligned C-contiguous array of the
        kernel's dtype (native byte order) and of its declared shape, or a Python float for a
        scalar (the common cases, checked quickly; floats are replaced in ``values`` by
        arrays); else None."""
        dtype = self._numpy_dtype
        found = {}
        for index, (value, layout, wanted) in enumerate(zip(values, self._layouts,
                                                            self._input_dtypes)):
            if type(value) is float and layout == () and wanted is dtype:
                values[index] = np.array(value, dtype)
                continue
            if type(value) is not np.ndarray or value.dtype is not wanted:
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
        temporaries = [np.empty(self._concrete(shape, sizes), dtype)
                       for shape, dtype in zip(self._temporary_shapes, self._temporary_dtypes)]
        for step_shape, shape in self._partial_shapes:
            rows, *row = self._concrete(step_shape, sizes)
            _, count = chunking(rows, math.prod(row))
            temporaries.append(np.empty((count,) + self._concrete(shape, sizes),
                                        self._numpy_dtype))
        work = sum(math.prod(self._concrete(shape, sizes)) for shape in self._chunked_shapes)
        work += sum(math.prod(self._concrete(shape, sizes))
                    for shape in self._products) // MULTIPLY_ADDS_PER_ELEMENT
        return (np.array(sizes or (0,), np.int64), temporaries,
                work >= MIN_PARALLEL_ELEMENTS,
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

    def __init__(self, function: Function, name: str = KERNEL_SYMBOL,
                 target: Target | None = None) -> None:
        super().__init__(function, 0, name, target)

    def __call__(self, *args: Any, **kwargs: Any) -> tuple[Any, ...]:
        outputs = self.run(self._arrays([], args, kwargs))
        return tuple(o[()] if o.ndim == 0 else o for o in outputs)

    def __repr__(self):
        return f"<symgrad.FunctionKernel ({', '.join(self.input_names)}) -> " \
               f"({', '.join(self.function.output_names)}) {self.dtype}>"


class _CallEntryOwner:
    """The ``self`` of a tensor kernel's call entry (its native code ignores it): holds what
    the entry needs for as long as it lives, its method definition and its module."""

    __slots__ = ("compiled", "definition", "__weakref__")

    def __init__(self, compiled):
        self.compiled = compiled
        self.definition = None


def _release(release, compiled):
    release()


def _index_checks(function, template):
    """``(input position, size template, description)`` for each axis an index input
    indexes (through views of it), by the gathers and scatters of ``function``."""
    positions = {id(node): index for index, node in enumerate(function.inputs)}
    checks = []
    for node in function.nodes:
        if node.op in (Op.GATHER, Op.TAKE_ALONG):
            axis = node.attrs
            size, what = node.args[0].shape[axis], f"axis {axis} of a take"
        elif node.op in (Op.SCATTER_ADD, Op.PUT_ADD_ALONG):
            axis, size = node.attrs
            what = f"axis {axis} of a scatter"
        else:
            continue
        base = node.args[1]
        while base.op in VIEW_OPS:
            base = base.args[0]
        if base.op is not Op.INPUT:
            continue        # computed indices: out of range, the gather gives NaN
        check = (positions[id(base)], template((size,))[0], what)
        if check not in checks:
            checks.append(check)
    return checks


def _shape_text(shape):
    return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"
