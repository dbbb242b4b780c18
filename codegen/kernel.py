"""The Kernel: a compiled IR function that validates its arguments and runs on numpy arrays."""

import ctypes

import numpy as np

from codegen.jit import CompiledModule
from codegen.lower import is_large, lower_function
from symgrad.printing import function_to_text

_ENTRY_SIGNATURE = ctypes.CFUNCTYPE(None, ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p,
                                    ctypes.c_void_p)
_NUMPY_DTYPES = {"float64": np.float64, "float32": np.float32}


class _Variant:
    """The function compiled for one float dtype."""

    def __init__(self, function, name):
        self.function = function
        self.compiled = CompiledModule(lower_function(function, name),
                                       codegen_opt_level=0 if is_large(function) else 3)
        self.entry = _ENTRY_SIGNATURE(self.compiled.address(name))


def _as_real_array(name, value):
    """``value`` as a numpy array of real numbers, or a TypeError naming the argument."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"argument {name!r} must be a real number or an array of real numbers, "
                        f"got a bool")
    try:
        array = np.asarray(value)
    except Exception as error:  # numpy raises many types for ragged or odd objects
        raise TypeError(f"argument {name!r} must be a real number or an array of real numbers, "
                        f"got {type(value).__name__}: {error}") from error
    kind = array.dtype.kind
    if kind == "c":
        raise TypeError(f"argument {name!r} must be real, got complex values (dtype "
                        f"{array.dtype})")
    if kind not in "fiu" or (kind == "f" and array.dtype.itemsize > 8):
        raise TypeError(f"argument {name!r} must be a real number or an array of real numbers "
                        f"(float64, float32 or integers), got dtype {array.dtype}")
    return array


def _compute_dtype(values, arrays):
    """float32 when every numpy argument is float32 (or float16); float64 otherwise.

    Python numbers do not decide the dtype, as in numpy's promotion rules.
    """
    strong = [array.dtype for value, array in zip(values, arrays)
              if isinstance(value, (np.ndarray, np.generic))]
    if strong and all(d.kind == "f" and d.itemsize <= 4 for d in strong):
        return "float32"
    return "float64"


def _prepare(array, shape, dtype):
    """A buffer and an element stride that the kernel can read for every element of ``shape``.

    Scalars are read with stride 0, contiguous and 1-d strided arrays in place; anything else
    (a broadcast, a transposed matrix) is copied to a contiguous array first.
    """
    array = array.astype(dtype, copy=False)
    if array.size == 1:
        return np.ascontiguousarray(array.reshape(())), 0
    if array.shape == shape:
        if array.flags.c_contiguous:
            return array, 1
        if array.ndim == 1 and array.strides[0] % array.itemsize == 0:
            return array, array.strides[0] // array.itemsize
    return np.ascontiguousarray(np.broadcast_to(array, shape)), 1


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
        Symbol name of the native function.

    Attributes
    ----------
    function : symgrad.ir.Function
        The fused forward and backward IR that was compiled.
    llvm_ir, optimized_llvm_ir, asm : str
        The float64 kernel's LLVM IR before and after optimisation, and its host assembly.
    """

    def __init__(self, function, value_and_grad=True, name="symgrad_kernel"):
        self.function = function
        self.value_and_grad = value_and_grad
        self.name = name
        self.arg_names = function.input_names
        self._variants = {}
        self.variant("float64")

    def variant(self, dtype):
        """The compiled variant for ``dtype`` ('float64' or 'float32'), compiling it if needed."""
        if dtype not in _NUMPY_DTYPES:
            raise ValueError(f"dtype must be 'float64' or 'float32', got {dtype!r}")
        if dtype not in self._variants:
            self._variants[dtype] = _Variant(self.function.with_dtype(dtype), self.name)
        return self._variants[dtype]

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

    def _bind(self, args, kwargs):
        names = self.arg_names
        if len(args) > len(names):
            raise TypeError(f"kernel takes {len(names)} arguments {list(names)}, "
                            f"got {len(args)} positional arguments")
        bound = dict(zip(names, args))
        for name, value in kwargs.items():
            if name not in names:
                raise TypeError(f"unknown argument {name!r}; the kernel's arguments are "
                                f"{list(names)}")
            if name in bound:
                raise TypeError(f"argument {name!r} given twice, by position and by name")
            bound[name] = value
        missing = [name for name in names if name not in bound]
        if missing:
            raise TypeError(f"missing arguments {missing}; the kernel's arguments are "
                            f"{list(names)}")
        return [bound[name] for name in names]

    def __call__(self, *args, **kwargs):
        values = self._bind(args, kwargs)
        arrays = [_as_real_array(name, value) for name, value in zip(self.arg_names, values)]
        dtype = _compute_dtype(values, arrays)
        try:
            shape = np.broadcast_shapes(*(array.shape for array in arrays))
        except ValueError:
            listed = ", ".join(f"{name} has shape {array.shape}"
                               for name, array in zip(self.arg_names, arrays))
            raise ValueError(f"the arguments do not broadcast together: {listed}") from None
        numpy_dtype = _NUMPY_DTYPES[dtype]
        outputs = [np.empty(shape, numpy_dtype) for _ in self.function.outputs]
        count = int(np.prod(shape, dtype=np.int64))
        if count:
            buffers = [_prepare(array, shape, numpy_dtype) for array in arrays]
            self._run(self.variant(dtype), count, buffers, outputs)
        if shape == ():
            as_python = all(not isinstance(v, (np.ndarray, np.generic)) for v in values)
            outputs = [float(o) if as_python else o[()] for o in outputs]
        if self.value_and_grad:
            return outputs[0], tuple(outputs[1:])
        return tuple(outputs)

    @staticmethod
    def _run(variant, count, buffers, outputs):
        pointers = (ctypes.c_void_p * max(len(buffers), 1))(
            *[buffer.ctypes.data for buffer, _ in buffers])
        strides = (ctypes.c_int64 * max(len(buffers), 1))(*[stride for _, stride in buffers])
        results = (ctypes.c_void_p * len(outputs))(*[output.ctypes.data for output in outputs])
        variant.entry(count, pointers, strides, results)
