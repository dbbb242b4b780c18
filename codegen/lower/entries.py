"""Direct entries from Python into the kernels, without ctypes: emitted CPython functions.

For a kernel of scalar arguments, :func:`add_fast_entry` emits a CPython ``METH_FASTCALL``
function in the kernel's own LLVM module: when every argument is a Python ``float`` it reads
them from the objects, runs the element function and builds ``(value, (grad, ...))`` with
``PyFloat_FromDouble``; in every other case (arrays, ints, keywords, a wrong count) it hands the
call to the general Python path, which checks and reports.  The runtime wraps the native
function in a builtin function object (:func:`symgrad.codegen.runtime.process.make_callable`),
so a call costs about as much as calling a builtin.

For a tensor kernel, :func:`add_call_entry` emits the whole call of a small kernel in native
code: it checks the arguments (exactly numpy arrays of the kernel's dtype in native byte
order, C-contiguous and aligned, of the declared shapes, symbolic sizes consistent), allocates
the outputs through numpy's C API and the temporaries, and runs the kernel with the GIL
released; anything else it hands back to the Python path, which converts, reports or runs
large calls on threads.

The object layouts these read are :mod:`symgrad.codegen.lower.abi`'s.
"""

from llvmlite import ir as llvm_ir

from symgrad.codegen.lower.abi import (
    ALIGNED,
    ARRAY_DATA_OFFSET,
    ARRAY_DESCR_OFFSET,
    ARRAY_DIMENSIONS_OFFSET,
    ARRAY_FLAGS_OFFSET,
    ARRAY_ND_OFFSET,
    C_CONTIGUOUS,
    FLOAT_VALUE_OFFSET,
    MIN_PARALLEL_ELEMENTS,
    NUMPY_API_SYMBOL,
    NUMPY_TYPE_NUMBERS,
    RUNTIME_POOL,
    RUNTIME_RUNNER,
    RUNTIME_SYMBOL,
    RUNTIME_THREADS,
    STATE_WORDS,
    TYPE_OFFSET,
)
from symgrad.codegen.lower.builder import c_function, c_object
from symgrad.codegen.lower.tensor import workspace_counts
from symgrad.codegen.lower.types import INDEX, POINTER, check_symbol, item_bytes


def add_fast_entry(module, element, num_inputs, num_outputs, name):
    """Add ``name`` (a ``METH_FASTCALL | METH_KEYWORDS`` function) to ``module``: it calls
    ``element(0, inputs, strides, outputs)`` on float arguments, else the Python fallback
    passed as its ``self``."""
    double = llvm_ir.DoubleType()
    signature = llvm_ir.FunctionType(POINTER, [POINTER, POINTER, INDEX, POINTER])
    fast = llvm_ir.Function(module, signature, name=name)
    fallback_self, args, nargs, kwnames = fast.args
    declare = {
        "from_double": c_function(module, "PyFloat_FromDouble", POINTER, [double]),
        "tuple_new": c_function(module, "PyTuple_New", POINTER, [INDEX]),
        "tuple_set": c_function(module, "PyTuple_SetItem", llvm_ir.IntType(32),
                                 [POINTER, INDEX, POINTER]),
        "vectorcall": c_function(module, "PyObject_Vectorcall", POINTER,
                                  [POINTER, POINTER, INDEX, POINTER]),
    }
    float_type = c_object(module, "PyFloat_Type")

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
        kind = builder.load(builder.gep(obj, [INDEX(TYPE_OFFSET)],
                                        source_etype=llvm_ir.IntType(8)), typ=POINTER)
        value = builder.load(builder.gep(obj, [INDEX(FLOAT_VALUE_OFFSET)],
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


def _check_arguments(fast, layouts, size_count, dtype):
    """Emit, into ``fast(self, args, nargs)``, the checks of its arguments: numpy arrays
    (exactly ``ndarray``) of ``dtype`` (its own descriptor: native byte order), C-contiguous
    and aligned, of the declared shapes (``layouts``:
    numbers, or the index of a symbolic size), the symbolic sizes consistent.  Any failed check
    returns None.  Returns ``(builder, sizes)``: the builder after the checks, and a stack array
    of the symbolic sizes found."""
    module = fast.module
    byte, int32 = llvm_ir.IntType(8), llvm_ir.IntType(32)
    _, args, nargs = fast.args
    ndarray = c_object(module, "symgrad.ndarray")
    descr = c_object(module, f"symgrad.descr.{dtype}")
    none = c_object(module, "_Py_NoneStruct")
    incref = c_function(module, "Py_IncRef", llvm_ir.VoidType(), [POINTER])

    entry = fast.append_basic_block("entry")
    fail = fast.append_basic_block("fail")
    builder = llvm_ir.IRBuilder(fail)
    builder.call(incref, [none])
    builder.ret(none)

    builder = llvm_ir.IRBuilder(entry)
    sizes = builder.alloca(INDEX, size=INDEX(max(size_count, 1)))
    known = [False] * size_count

    def require(condition):
        following = fast.append_basic_block("ok")
        builder.cbranch(condition, following, fail)
        builder.position_at_end(following)

    def field(obj, offset, typ):
        return builder.load(builder.gep(obj, [INDEX(offset)], source_etype=byte), typ=typ)

    require(builder.icmp_signed("==", nargs, INDEX(len(layouts))))
    for index, layout in enumerate(layouts):
        obj = builder.load(builder.gep(args, [INDEX(index)], source_etype=POINTER), typ=POINTER)
        require(builder.icmp_unsigned("==", field(obj, TYPE_OFFSET, POINTER), ndarray))
        require(builder.icmp_unsigned("==", field(obj, ARRAY_DESCR_OFFSET, POINTER), descr))
        flags = field(obj, ARRAY_FLAGS_OFFSET, int32)
        wanted = int32(C_CONTIGUOUS | ALIGNED)
        require(builder.icmp_unsigned("==", builder.and_(flags, wanted), wanted))
        require(builder.icmp_signed("==", field(obj, ARRAY_ND_OFFSET, int32),
                                    int32(len(layout))))
        dimensions = field(obj, ARRAY_DIMENSIONS_OFFSET, POINTER)
        for axis, expected in enumerate(layout):
            actual = builder.load(builder.gep(dimensions, [INDEX(axis)], source_etype=INDEX),
                                  typ=INDEX)
            if expected >= 0:
                require(builder.icmp_signed("==", actual, INDEX(expected)))
                continue
            slot = builder.gep(sizes, [INDEX(~expected)], source_etype=INDEX)
            if known[~expected]:
                require(builder.icmp_signed("==", actual, builder.load(slot, typ=INDEX)))
            else:
                builder.store(actual, slot)
                known[~expected] = True
    builder.require = require
    return builder, sizes


# Temporaries of a call entry start at multiples of this many bytes.
_WORKSPACE_ALIGNMENT = 64


def _workspace_slot(module, name):
    """``NAME.workspace``: the block of temporaries a call entry keeps between calls."""
    slot = llvm_ir.GlobalVariable(module, POINTER, f"{name}.workspace")
    slot.linkage = "internal"
    slot.initializer = llvm_ir.Constant(POINTER, None)
    return slot


def add_release_entry(module, name, call_name):
    """Add ``void name()``: frees the block the call entry ``call_name`` keeps, if any (when
    its kernel is collected)."""
    function = llvm_ir.Function(module, llvm_ir.FunctionType(llvm_ir.VoidType(), []), name)
    builder = llvm_ir.IRBuilder(function.append_basic_block("entry"))
    null = llvm_ir.Constant(POINTER, None)
    kept = builder.atomic_rmw("xchg", module.globals[f"{call_name}.workspace"], null,
                              "seq_cst")
    builder.call(c_function(module, "PyMem_RawFree", llvm_ir.VoidType(), [POINTER]), [kept])
    builder.ret_void()
    return function


def add_call_entry(module, kernel, name, layouts, size_count, dtype, outputs, workspace,
                   array_new, threaded=None):
    """Add ``name`` (a ``METH_FASTCALL`` function) to ``module``: the whole call of a small
    tensor kernel ``kernel(sizes, buffers)`` in native code.  Called with one argument per
    kernel input, it checks them (:func:`_check_arguments`), allocates the outputs
    (numpy arrays, through numpy's ``PyArray_New``, the ``array_new``-th function of its C-API
    table) and the temporaries (one block), runs the kernel with the GIL released and returns
    the tuple of outputs.  It returns None, having run nothing, for arguments it declines and
    for calls of at least ``abi.MIN_PARALLEL_ELEMENTS`` of work (those run on threads),
    which the Python path then handles.  With ``threaded`` (``(NAME.parallel, words of its
    state)``), a large call runs on the worker threads once they are ready
    (:data:`RUNTIME_RUNNER`), instead of being declined.

    ``outputs``: the output shapes (numbers, or ``~index`` of a symbolic size);
    ``workspace(builder, size)``: ``(element counts of the temporaries, work of the call)`` as
    LLVM values, ``size(index)`` being the value of a symbolic size."""
    byte, int32 = llvm_ir.IntType(8), llvm_ir.IntType(32)
    element = item_bytes(dtype)
    fast = llvm_ir.Function(module, llvm_ir.FunctionType(POINTER, [POINTER, POINTER, INDEX]),
                            name=name)
    _, args, _ = fast.args
    null = llvm_ir.Constant(POINTER, None)
    raw_malloc = c_function(module, "PyMem_RawMalloc", POINTER, [INDEX])
    raw_free = c_function(module, "PyMem_RawFree", llvm_ir.VoidType(), [POINTER])
    decref = c_function(module, "Py_DecRef", llvm_ir.VoidType(), [POINTER])
    save = c_function(module, "PyEval_SaveThread", POINTER, [])
    restore = c_function(module, "PyEval_RestoreThread", llvm_ir.VoidType(), [POINTER])
    tuple_new = c_function(module, "PyTuple_New", POINTER, [INDEX])
    tuple_set = c_function(module, "PyTuple_SetItem", int32, [POINTER, INDEX, POINTER])
    ndarray = c_object(module, "symgrad.ndarray")
    api = c_object(module, NUMPY_API_SYMBOL)
    new_type = llvm_ir.FunctionType(POINTER, [POINTER, int32, POINTER, int32, POINTER, POINTER,
                                              int32, int32, POINTER])

    builder, sizes = _check_arguments(fast, layouts, size_count, dtype)

    def size(index):
        return builder.load(builder.gep(sizes, [INDEX(index)], source_etype=INDEX), typ=INDEX)
    counts, work = workspace(builder, size)
    large = builder.icmp_signed(">=", work, INDEX(MIN_PARALLEL_ELEMENTS))
    if threaded is None:
        builder.require(builder.not_(large))
    else:
        # A large call for several threads runs on the workers, once they are there (the
        # Python path starts them); for one thread, it is the kernel alone.
        block = c_object(module, RUNTIME_SYMBOL)

        def word(index):
            return builder.load(builder.gep(block, [INDEX(8 * index)], source_etype=byte),
                                typ=INDEX)
        threads = word(RUNTIME_THREADS)
        runner = word(RUNTIME_RUNNER)
        pool = word(RUNTIME_POOL)
        several = builder.and_(large, builder.icmp_signed(">", threads, INDEX(1)))
        builder.require(builder.not_(builder.and_(
            several, builder.icmp_signed("==", runner, INDEX(0)))))

    # The temporaries: one block, each at an aligned offset.
    offsets, total = [], INDEX(0)
    for count in counts:
        offsets.append(total)
        bytes_ = builder.mul(count, INDEX(element))
        padded = builder.add(bytes_, INDEX(_WORKSPACE_ALIGNMENT - 1))
        total = builder.add(total, builder.and_(padded, INDEX(-_WORKSPACE_ALIGNMENT)))
    # The block of the previous call is kept (in NAME.workspace; its first word holds its
    # size) and reused when it is large enough: fresh memory costs page faults, and a call of
    # a few hundred microseconds can spend a third of its time in them.
    slot = _workspace_slot(module, name)
    needed = builder.add(total, INDEX(2 * _WORKSPACE_ALIGNMENT))
    kept = builder.atomic_rmw("xchg", slot, null, "seq_cst")
    inspect = fast.append_basic_block("workspace.kept")
    discard = fast.append_basic_block("workspace.small")
    allocate = fast.append_basic_block("workspace.new")
    ready = fast.append_basic_block("workspace.ready")
    builder.cbranch(builder.icmp_unsigned("==", kept, null), allocate, inspect)
    builder.position_at_end(inspect)
    builder.cbranch(builder.icmp_signed(">=", builder.load(kept, typ=INDEX), needed), ready,
                    discard)
    builder.position_at_end(discard)
    builder.call(raw_free, [kept])
    builder.branch(allocate)
    builder.position_at_end(allocate)
    fresh = builder.call(raw_malloc, [needed])
    builder.require(builder.icmp_unsigned("!=", fresh, null))  # the Python path reports it
    builder.store(needed, fresh)
    allocated_block = builder.block
    builder.branch(ready)
    builder.position_at_end(ready)
    block = builder.phi(POINTER, name="workspace")
    block.add_incoming(kept, inspect)
    block.add_incoming(fresh, allocated_block)

    def give_back():
        """Keep the block for the next call (freeing one another thread kept meanwhile)."""
        other = builder.atomic_rmw("xchg", slot, block, "seq_cst")
        free = fast.append_basic_block("workspace.free")
        done = fast.append_basic_block("workspace.kept_again")
        builder.cbranch(builder.icmp_unsigned("!=", other, null), free, done)
        builder.position_at_end(free)
        builder.call(raw_free, [other])
        builder.branch(done)
        builder.position_at_end(done)
    address = builder.ptrtoint(block, INDEX)
    base = builder.and_(builder.add(address, INDEX(2 * _WORKSPACE_ALIGNMENT - 1)),
                        INDEX(-_WORKSPACE_ALIGNMENT))
    base = builder.gep(block, [builder.sub(base, address)], source_etype=byte)

    # The outputs, as numpy arrays; a failed allocation raises (MemoryError) after cleaning up.
    array_new_function = builder.load(builder.gep(api, [INDEX(array_new)], source_etype=POINTER),
                                      typ=new_type.as_pointer())
    dimensions = builder.alloca(INDEX, size=INDEX(max((len(s) for s in outputs), default=1) or 1))
    arrays = []
    for shape in outputs:
        for axis, extent in enumerate(shape):
            builder.store(size(~extent) if extent < 0 else INDEX(extent),
                          builder.gep(dimensions, [INDEX(axis)], source_etype=INDEX))
        array = builder.call(array_new_function, [
            ndarray, int32(len(shape)), dimensions, int32(NUMPY_TYPE_NUMBERS[dtype]), null, null,
            int32(0), int32(0), null])
        allocated = fast.append_basic_block("allocated")
        failed = fast.append_basic_block("allocation_failed")
        builder.cbranch(builder.icmp_unsigned("!=", array, null), allocated, failed)
        builder.position_at_end(failed)
        for earlier in arrays:
            builder.call(decref, [earlier])
        give_back()
        builder.ret(null)
        builder.position_at_end(allocated)
        arrays.append(array)

    def data(obj):
        return builder.load(builder.gep(obj, [INDEX(ARRAY_DATA_OFFSET)], source_etype=byte),
                            typ=POINTER)
    objects = [builder.load(builder.gep(args, [INDEX(index)], source_etype=POINTER),
                            typ=POINTER) for index in range(len(layouts))]
    pointers = [data(obj) for obj in objects + arrays]
    pointers += [builder.gep(base, [offset], source_etype=byte) for offset in offsets]
    buffers = builder.alloca(POINTER, size=INDEX(max(len(pointers), 1)))
    for index, pointer in enumerate(pointers):
        builder.store(pointer, builder.gep(buffers, [INDEX(index)], source_etype=POINTER))
    if threaded is not None:
        parallel_function, state_words = threaded
        counters = builder.alloca(INDEX, size=INDEX(max(state_words, 1)))
        memset = c_function(module, "llvm.memset.p0.i64", llvm_ir.VoidType(),
                             [POINTER, byte, INDEX, llvm_ir.IntType(1)])
        builder.call(memset, [counters, byte(0), INDEX(8 * max(state_words, 1)),
                              llvm_ir.IntType(1)(0)])
    gil = builder.call(save, [])
    if threaded is not None:
        run_type = llvm_ir.FunctionType(llvm_ir.VoidType(), [
            POINTER, parallel_function.type, POINTER, POINTER, INDEX, POINTER])
        on_threads = fast.append_basic_block("threads")
        alone = fast.append_basic_block("alone")
        ran = fast.append_basic_block("ran")
        builder.cbranch(several, on_threads, alone)
        builder.position_at_end(on_threads)
        builder.call(builder.inttoptr(runner, run_type.as_pointer()), [
            builder.inttoptr(pool, POINTER), parallel_function, sizes, buffers, threads,
            counters])
        builder.branch(ran)
        builder.position_at_end(alone)
        builder.call(kernel, [sizes, buffers])
        builder.branch(ran)
        builder.position_at_end(ran)
    else:
        builder.call(kernel, [sizes, buffers])
    builder.call(restore, [gil])
    give_back()
    result = builder.call(tuple_new, [INDEX(len(arrays))])
    for index, array in enumerate(arrays):
        builder.call(tuple_set, [result, INDEX(index), array])
    builder.ret(result)
    return fast




def lower_call_entry(function, plan, name, array_new):
    """The module of ``NAME.call``, the whole call of a kernel in native code
    (:func:`add_call_entry`, with ``array_new`` from
    :func:`symgrad.codegen.runtime.process.array_new_index`), and ``NAME.release``.  It calls
    ``NAME`` and ``NAME.parallel`` of the kernel's module
    (:func:`symgrad.codegen.lower.tensor.lower_tensor`), which is loaded
    with it: the two compile at the same time."""
    check_symbol(name)
    module = llvm_ir.Module(name=f"{name}.call")
    kernel = llvm_ir.Function(module, llvm_ir.FunctionType(
        llvm_ir.VoidType(), [POINTER, POINTER]), name=name)
    parallel_function = llvm_ir.Function(module, llvm_ir.FunctionType(
        llvm_ir.VoidType(), [POINTER, POINTER, INDEX, INDEX, POINTER]), name=f"{name}.parallel")
    names = function.size_names

    def template(shape):
        return tuple(~names.index(d) if isinstance(d, str) else d for d in shape)
    dtypes = function.float_dtypes
    add_call_entry(module, kernel, f"{name}.call", [template(n.shape) for n in function.inputs],
                   len(names), dtypes.pop() if dtypes else "float64",
                   [template(n.shape) for n in function.outputs], workspace_counts(function, plan),
                   array_new, threaded=(parallel_function, STATE_WORDS * len(plan.steps)))
    add_release_entry(module, f"{name}.release", f"{name}.call")
    return module
