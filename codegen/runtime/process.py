"""The process's native state: the object-layout probe, numpy's C-API table, the runtime
block, memory that is never freed, and builtin function objects over native entries.

The object layout the emitted entries read (``ob_type``, a float's value, a numpy array's data
pointer, dimensions, dtype and flags: :mod:`symgrad.codegen.lower.abi`) is checked against the
running interpreter and numpy by :func:`available`; where it differs, kernels keep the general
path only.

Thread safety: every function here that changes process state (registering JIT symbols,
allocating the runtime block) runs once, under a lock of its own (:func:`symgrad.locks.once`).
"""

import ctypes
import importlib
import pathlib
import re
import sys

import llvmlite.binding as llvm
import numpy as np

from symgrad.codegen.lower.abi import (
    ALIGNED,
    ARRAY_DATA_OFFSET,
    ARRAY_DESCR_OFFSET,
    ARRAY_DIMENSIONS_OFFSET,
    ARRAY_FLAGS_OFFSET,
    ARRAY_ND_OFFSET,
    C_API_SYMBOLS,
    C_CONTIGUOUS,
    FLOAT_VALUE_OFFSET,
    METH_FASTCALL_KEYWORDS,
    NUMPY_API_SYMBOL,
    NUMPY_TYPE_NUMBERS,
    RUNTIME_SYMBOL,
    TYPE_OFFSET,
)
from symgrad.locks import once

# The objects a check entry compares with, registered by address under these names.
_OBJECT_SYMBOLS = {"symgrad.ndarray": np.ndarray, "symgrad.descr.float64": np.dtype("float64"),
                   "symgrad.descr.float32": np.dtype("float32")}


# Prototypes of our own for the CPython functions called through ctypes (setting restype and
# argtypes on ctypes.pythonapi's would change them for every other library too).
_CAPSULE_GET_POINTER = ctypes.PYFUNCTYPE(ctypes.c_void_p, ctypes.py_object, ctypes.c_char_p)
_FUNCTION_NEW = ctypes.PYFUNCTYPE(ctypes.py_object, ctypes.c_void_p, ctypes.py_object,
                                  ctypes.c_void_p)(("PyCFunction_NewEx", ctypes.pythonapi))


class _MethodDef(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("function", ctypes.c_void_p),
                ("flags", ctypes.c_int), ("doc", ctypes.c_char_p)]


@once
def available():
    """Whether this interpreter's object layout is the one the fast entry reads."""
    if sys.implementation.name != "cpython" or ctypes.sizeof(ctypes.c_void_p) != 8:
        return False
    if getattr(sys, "_is_gil_enabled", lambda: True)() is False:
        return False        # free-threaded builds have another object header
    try:
        addresses = {name: ctypes.cast(getattr(ctypes.pythonapi, name), ctypes.c_void_p).value
                     for name in C_API_SYMBOLS}
    except AttributeError:
        return False
    sample = 1.25
    if ctypes.c_void_p.from_address(id(sample) + TYPE_OFFSET).value != id(float):
        return False
    if ctypes.c_double.from_address(id(sample) + FLOAT_VALUE_OFFSET).value != sample:
        return False
    if addresses["PyFloat_Type"] != id(float):
        return False
    if not _array_layout_matches():
        return False
    for name, address in addresses.items():
        llvm.add_symbol(name, address)
    llvm.add_symbol("_Py_NoneStruct", id(None))
    runtime()
    for name, value in _OBJECT_SYMBOLS.items():
        llvm.add_symbol(name, id(value))
    return True


@once
def array_new_index():
    """The index of ``PyArray_New`` in numpy's C-API table, or None where it is not known.

    Read from the C header of the running numpy (its wheels ship them), with the function's
    exact signature, then checked by allocating one array through the table.  The table is
    registered with the JIT as ``symgrad.numpy_api``."""
    if not available():
        return None
    header = pathlib.Path(np.get_include(), "numpy", "__multiarray_api.h")
    try:
        text = header.read_text()
    except OSError:
        return None
    # The definition, with the function's exact signature (found first by a plain search:
    # running the pattern over the whole header costs a millisecond).
    start = text.find("#define PyArray_New ")
    match = start >= 0 and re.compile(
        r"#define PyArray_New \\\s*\(\*\(PyObject \* \(\*\)\(PyTypeObject \*, int, "
        r"npy_intp const \*, int, npy_intp const \*, void \*, int, int, "
        r"PyObject \*\)\) \\\s*PyArray_API\[(\d+)\]\)").match(text, start)
    capsule = None
    for module in ("numpy._core._multiarray_umath", "numpy.core._multiarray_umath"):
        try:
            capsule = importlib.import_module(module)._ARRAY_API
            break
        except (ImportError, AttributeError):
            continue
    if not match or capsule is None:
        return None
    index = int(match.group(1))
    get_pointer = _CAPSULE_GET_POINTER(("PyCapsule_GetPointer", ctypes.pythonapi))
    try:
        table = get_pointer(capsule, None)
    except ValueError:
        return None
    address = ctypes.c_void_p.from_address(table + index * ctypes.sizeof(ctypes.c_void_p))
    new = ctypes.PYFUNCTYPE(ctypes.py_object, ctypes.c_void_p, ctypes.c_int,
                            ctypes.POINTER(ctypes.c_int64), ctypes.c_int, ctypes.c_void_p,
                            ctypes.c_void_p, ctypes.c_int, ctypes.c_int,
                            ctypes.c_void_p)(address.value)
    for dtype in ("float64", "float32"):
        array = new(id(np.ndarray), 2, (ctypes.c_int64 * 2)(3, 5), np.dtype(dtype).num,
                    None, None, 0, 0, None)
        if type(array) is not np.ndarray or array.shape != (3, 5) or \
                array.dtype != np.dtype(dtype) or not array.flags.c_contiguous or \
                not array.flags.writeable or not array.flags.owndata:
            return None
    llvm.add_symbol(NUMPY_API_SYMBOL, table)
    return index


def permanent_block(words, what):
    """``words`` zeroed int64 words that are never freed (native threads and kernels read
    them until the process ends, after the interpreter's own memory is gone)."""
    libc = ctypes.CDLL(None)
    libc.calloc.restype = ctypes.c_void_p
    libc.calloc.argtypes = [ctypes.c_size_t, ctypes.c_size_t]
    address = libc.calloc(words, 8)
    if not address:
        raise MemoryError(f"no memory for {what}")
    return (ctypes.c_int64 * words).from_address(address)


@once
def runtime():
    """The runtime block (:data:`symgrad.codegen.lower.abi.RUNTIME_SYMBOL`), registered with
    the JIT: one thread until :mod:`symgrad.codegen.runtime.threads` says otherwise."""
    block = permanent_block(8, "symgrad's runtime block")
    llvm.add_symbol(RUNTIME_SYMBOL, ctypes.addressof(block))
    block[0] = 1
    return block


def _array_layout_matches():
    """Whether numpy arrays have the field offsets the entries read."""
    def field(array, offset, ctype):
        return ctype.from_address(id(array) + offset).value
    unaligned = np.ndarray((3,), np.float64, buffer=bytearray(32), offset=1)
    for array in (np.arange(6.0).reshape(2, 3), np.arange(6.0, dtype=np.float32)[::2],
                  np.zeros((3, 1, 2)).T, unaligned):
        if field(array, ARRAY_DATA_OFFSET, ctypes.c_void_p) != array.ctypes.data:
            return False
        if field(array, ARRAY_ND_OFFSET, ctypes.c_int) != array.ndim:
            return False
        dimensions = field(array, ARRAY_DIMENSIONS_OFFSET, ctypes.c_void_p)
        if tuple((ctypes.c_int64 * array.ndim).from_address(dimensions)) != array.shape:
            return False
        if field(array, ARRAY_DESCR_OFFSET, ctypes.c_void_p) != id(array.dtype):
            return False
        flags = field(array, ARRAY_FLAGS_OFFSET, ctypes.c_int)
        if bool(flags & C_CONTIGUOUS) != array.flags.c_contiguous or \
                bool(flags & ALIGNED) != array.flags.aligned:
            return False
    return all(np.zeros(1, dtype).dtype is np.dtype(dtype) and
               np.dtype(dtype).num == NUMPY_TYPE_NUMBERS[dtype] for dtype in ("float64", "float32"))


def make_callable(address, fallback, name, flags=METH_FASTCALL_KEYWORDS):
    """A builtin function object running the native ``address`` with ``fallback`` as self.

    Returns ``(callable, keepalive)``: ``keepalive`` must live as long as the callable.
    """
    definition = _MethodDef(name.encode(), address, flags, None)
    function = _FUNCTION_NEW(ctypes.addressof(definition), fallback, None)
    return function, definition
