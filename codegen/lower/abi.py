"""What emitted code and the runtime share: entry flags, object layouts, the words of the
process's runtime block and of the workers' block, and the thresholds of threaded calls.

The lowering (:mod:`symgrad.codegen.lower`) emits code that reads these; the runtime
(:mod:`symgrad.codegen.runtime`) writes them and checks the layouts against the running
interpreter and numpy (:func:`symgrad.codegen.runtime.process.available`).  Plain numbers:
this module imports nothing.
"""

# ---- CPython and numpy object layouts (checked by runtime.process.available) ----
TYPE_OFFSET = 8            # PyObject: ob_refcnt, then ob_type
FLOAT_VALUE_OFFSET = 16    # PyFloatObject: PyObject header, then ob_fval
# numpy's PyArrayObject_fields: the PyObject header, then data, nd, dimensions, strides, base,
# descr, flags (checked against the running numpy by available()).
ARRAY_DATA_OFFSET = 16
ARRAY_ND_OFFSET = 24
ARRAY_DIMENSIONS_OFFSET = 32
ARRAY_DESCR_OFFSET = 56
ARRAY_FLAGS_OFFSET = 64
C_CONTIGUOUS = 0x0001
ALIGNED = 0x0100
#: numpy's type numbers (``np.dtype(dtype).num``) of the float dtypes.
NUMPY_TYPE_NUMBERS = {"float64": 12, "float32": 11}
METH_FASTCALL_KEYWORDS = 0x0080 | 0x0002
METH_FASTCALL = 0x0080
#: The CPython functions and objects emitted entries call, registered with the JIT by address.
C_API_SYMBOLS = ("PyFloat_FromDouble", "PyTuple_New", "PyTuple_SetItem", "PyObject_Vectorcall",
                 "PyFloat_Type", "Py_IncRef", "PyEval_SaveThread", "PyEval_RestoreThread",
                 "PyLong_FromLongLong", "Py_DecRef", "PyMem_RawMalloc", "PyMem_RawFree")

# ---- the runtime block ----
# The block through which a kernel's call entry runs large calls on the worker threads
# (``symgrad.runtime``, words): the number of threads to use, the workers' ``run_parallel``
# and their shared block (both 0 until the workers are ready).  Never freed: kernels read it.
RUNTIME_THREADS, RUNTIME_RUNNER, RUNTIME_POOL = 0, 1, 2
RUNTIME_SYMBOL = "symgrad.runtime"
#: numpy's C-API table, registered with the JIT under this name.
NUMPY_API_SYMBOL = "symgrad.numpy_api"

# ---- threaded calls ----
#: A tensor kernel call runs on threads only when its work (the elements of its chunked
#: steps, and its matrix products' multiply-adds, see below) reaches this (below, one native
#: call costs less than the threads' dispatch saves).
MIN_PARALLEL_ELEMENTS = 1 << 18

#: ... counting this many multiply-adds of matrix products as one element.
MULTIPLY_ADDS_PER_ELEMENT = 16

# Words (int64) of a threaded call's state per step: the units claimed, the units finished
# (then padding, so that steps' counters do not share a cache line).
STATE_WORDS = 8

# ---- the workers' shared block ----
# Words (int64) of the shared block; each group on a cache line of its own.
GENERATION, ACTIVE, BUSY, JOB = 0, 8, 16, 24
FUNCTION, SIZES, BUFFERS, THREADS, STATE, CLOSED = range(JOB, JOB + 6)
JOBS_RUN = 32          # jobs the workers took part in (for tests and diagnostics)
WORKER_BLOCK_WORDS = 40

# ---- CBLAS ----
ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112
