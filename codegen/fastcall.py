"""A direct entry from Python into a scalar kernel, without ctypes.

For a kernel of scalar arguments, :func:`add_fast_entry` emits a CPython ``METH_FASTCALL``
function in the kernel's own LLVM module: when every argument is a Python ``float`` it reads
them from the objects, runs the element function and builds ``(value, (grad, ...))`` with
``PyFloat_FromDouble``; in every other case (arrays, ints, keywords, a wrong count) it hands the
call to the general Python path, which checks and reports.  :func:`make_callable` wraps the
native function in a builtin function object, so a call costs about as much as calling a
builtin.

For a tensor kernel, :func:`add_buffers_entry` emits the same kind of entry taking the
kernel's buffers as numpy arrays, already checked in Python: it replaces building a ctypes
pointer array (about a microsecond per array) by one load per array.

The object layout it reads (``ob_type``, a float's value, a numpy array's data pointer) is
checked against the running interpreter by :func:`available`; where it differs, kernels keep
the general path only.
"""

import ctypes
import functools
import sys

import llvmlite.binding as llvm
import numpy as np
from llvmlite import ir as llvm_ir

from codegen.types import INDEX, POINTER

_TYPE_OFFSET = 8            # PyObject: ob_refcnt, then ob_type
_FLOAT_VALUE_OFFSET = 16    # PyFloatObject: PyObject header, then ob_fval
_ARRAY_DATA_OFFSET = 16     # numpy's PyArrayObject_fields: PyObject header, then data
_METH_FASTCALL_KEYWORDS = 0x0080 | 0x0002
METH_FASTCALL = 0x0080
_SYMBOLS = ("PyFloat_FromDouble", "PyTuple_New", "PyTuple_SetItem", "PyObject_Vectorcall",
            "PyFloat_Type", "Py_IncRef", "PyEval_SaveThread", "PyEval_RestoreThread")


class _MethodDef(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("function", ctypes.c_void_p),
                ("flags", ctypes.c_int), ("doc", ctypes.c_char_p)]


@functools.lru_cache(maxsize=None)
def available():
    """Whether this interpreter's object layout is the one the fast entry reads."""
    if sys.implementation.name != "cpython" or ctypes.sizeof(ctypes.c_void_p) != 8:
        return False
    if getattr(sys, "_is_gil_enabled", lambda: True)() is False:
        return False        # free-threaded builds have another object header
    try:
        addresses = {name: ctypes.cast(getattr(ctypes.pythonapi, name), ctypes.c_void_p).value
                     for name in _SYMBOLS}
    except AttributeError:
        return False
    sample = 1.25
    if ctypes.c_void_p.from_address(id(sample) + _TYPE_OFFSET).value != id(float):
        return False
    if ctypes.c_double.from_address(id(sample) + _FLOAT_VALUE_OFFSET).value != sample:
        return False
    if addresses["PyFloat_Type"] != id(float):
        return False
    array = np.arange(3.0)
    if ctypes.c_void_p.from_address(id(array) + _ARRAY_DATA_OFFSET).value != array.ctypes.data:
        return False
    for name, address in addresses.items():
        llvm.add_symbol(name, address)
    llvm.add_symbol("_Py_NoneStruct", id(None))
    return True


def add_fast_entry(module, element, num_inputs, num_outputs, name):
    """Add ``name`` (a ``METH_FASTCALL | METH_KEYWORDS`` function) to ``module``: it calls
    ``element(0, inputs, strides, outputs)`` on float arguments, else the Python fallback
    passed as its ``self``."""
    double = llvm_ir.DoubleType()
    signature = llvm_ir.FunctionType(POINTER, [POINTER, POINTER, INDEX, POINTER])
    fast = llvm_ir.Function(module, signature, name=name)
    fallback_self, args, nargs, kwnames = fast.args
    declare = {
        "from_double": llvm_ir.Function(module, llvm_ir.FunctionType(POINTER, [double]),
                                        "PyFloat_FromDouble"),
        "tuple_new": llvm_ir.Function(module, llvm_ir.FunctionType(POINTER, [INDEX]),
                                      "PyTuple_New"),
        "tuple_set": llvm_ir.Function(module, llvm_ir.FunctionType(
            llvm_ir.IntType(32), [POINTER, INDEX, POINTER]), "PyTuple_SetItem"),
        "vectorcall": llvm_ir.Function(module, llvm_ir.FunctionType(
            POINTER, [POINTER, POINTER, INDEX, POINTER]), "PyObject_Vectorcall"),
    }
    float_type = llvm_ir.GlobalVariable(module, llvm_ir.IntType(8), "PyFloat_Type")
    float_type.linkage = "external"

    entry = fast.append_basic_block("entry")
    general = fast.append_basic_block("general")
    builder = llvm_ir.IRBuilder(entry)
    simple = builder.and_(builder.icmp_unsigned("==", kwnames, llvm_ir.Constant(POINTER, None)),
                          builder.icmp_signed("==", nargs, INDEX(num_inputs)))
    check = fast.append_basic_block("check0")
    builder.cbranch(simple, check, general)

    values = []
    for index in range(num_inputs):
        builder.position_at_end(check)
        slot = builder.gep(args, [INDEX(index)], source_etype=POINTER)
        obj = builder.load(slot, typ=POINTER)
        kind = builder.load(builder.gep(obj, [INDEX(_TYPE_OFFSET)],
                                        source_etype=llvm_ir.IntType(8)), typ=POINTER)
        value = builder.load(builder.gep(obj, [INDEX(_FLOAT_VALUE_OFFSET)],
                                         source_etype=llvm_ir.IntType(8)), typ=double)
        values.append(value)
        check = fast.append_basic_block(f"check{index + 1}")
        builder.cbranch(builder.icmp_unsigned("==", kind, float_type), check, general)

    builder.position_at_end(check)
    # The element function's arguments: arrays of pointers to one-element buffers.
    inputs = builder.alloca(POINTER, size=INDEX(max(num_inputs, 1)))
    outputs = builder.alloca(POINTER, size=INDEX(num_outputs))
    strides = builder.alloca(INDEX, size=INDEX(max(num_inputs, 1)))
    for index, value in enumerate(values):
        cell = builder.alloca(double)
        builder.store(value, cell)
        builder.store(builder.bitcast(cell, POINTER),
                      builder.gep(inputs, [INDEX(index)], source_etype=POINTER))
        builder.store(INDEX(0), builder.gep(strides, [INDEX(index)], source_etype=INDEX))
    cells = []
    for index in range(num_outputs):
        cell = builder.alloca(double)
        cells.append(cell)
        builder.store(builder.bitcast(cell, POINTER),
                      builder.gep(outputs, [INDEX(index)], source_etype=POINTER))
    builder.call(element, [INDEX(0), builder.bitcast(inputs, POINTER),
                           builder.bitcast(strides, POINTER), builder.bitcast(outputs, POINTER)])
    results = [builder.call(declare["from_double"], [builder.load(c, typ=double)])
               for c in cells]
    grads = builder.call(declare["tuple_new"], [INDEX(num_outputs - 1)])
    for index, item in enumerate(results[1:]):
        builder.call(declare["tuple_set"], [grads, INDEX(index), item])
    pair = builder.call(declare["tuple_new"], [INDEX(2)])
    builder.call(declare["tuple_set"], [pair, INDEX(0), results[0]])
    builder.call(declare["tuple_set"], [pair, INDEX(1), grads])
    builder.ret(pair)

    builder.position_at_end(general)
    builder.ret(builder.call(declare["vectorcall"], [fallback_self, args, nargs, kwnames]))
    return fast


def add_buffers_entry(module, kernel, num_buffers, name):
    """Add ``name`` (a ``METH_FASTCALL`` function) to ``module`` for a tensor kernel
    ``kernel(sizes, buffers)``: called as ``name(sizes, buffer_0, ..., buffer_n-1)`` with numpy
    arrays that the caller has checked (C-contiguous, the kernel's dtype and shapes), it reads
    their data pointers, runs the kernel with the GIL released and returns None."""
    byte = llvm_ir.IntType(8)
    signature = llvm_ir.FunctionType(POINTER, [POINTER, POINTER, INDEX])
    fast = llvm_ir.Function(module, signature, name=name)
    _, args, _ = fast.args
    save = llvm_ir.Function(module, llvm_ir.FunctionType(POINTER, []), "PyEval_SaveThread")
    restore = llvm_ir.Function(module, llvm_ir.FunctionType(llvm_ir.VoidType(), [POINTER]),
                               "PyEval_RestoreThread")
    incref = llvm_ir.Function(module, llvm_ir.FunctionType(llvm_ir.VoidType(), [POINTER]),
                              "Py_IncRef")
    none = llvm_ir.GlobalVariable(module, byte, "_Py_NoneStruct")
    none.linkage = "external"
    builder = llvm_ir.IRBuilder(fast.append_basic_block("entry"))

    def data(index):
        obj = builder.load(builder.gep(args, [INDEX(index)], source_etype=POINTER), typ=POINTER)
        return builder.load(builder.gep(obj, [INDEX(_ARRAY_DATA_OFFSET)], source_etype=byte),
                            typ=POINTER)
    buffers = builder.alloca(POINTER, size=INDEX(max(num_buffers, 1)))
    for index in range(num_buffers):
        builder.store(data(index + 1), builder.gep(buffers, [INDEX(index)],
                                                   source_etype=POINTER))
    sizes = data(0)
    state = builder.call(save, [])
    builder.call(kernel, [sizes, buffers])
    builder.call(restore, [state])
    builder.call(incref, [none])
    builder.ret(none)
    return fast


def make_callable(address, fallback, name, flags=_METH_FASTCALL_KEYWORDS):
    """A builtin function object running the native ``address`` with ``fallback`` as self.

    Returns ``(callable, keepalive)``: ``keepalive`` must live as long as the callable.
    """
    definition = _MethodDef(name.encode(), address, flags, None)
    new = ctypes.pythonapi.PyCFunction_NewEx
    new.restype = ctypes.py_object
    new.argtypes = [ctypes.c_void_p, ctypes.py_object, ctypes.c_void_p]
    function = new(ctypes.addressof(definition), fallback, None)
    return function, definition
