"""The libraries kernels call for matrix products: symgrad's GEMM, compiled and registered
once per process, or the OpenBLAS that numpy's wheels ship.

symgrad's GEMM (:mod:`symgrad.codegen.lower.gemm` emits it) is the default.  With
``SYMGRAD_GEMM=blas`` kernels call ``cblas_?gemm`` instead, when one is found: the library is
located next to numpy, its symbol registered with the JIT, and it is checked on a small
product against numpy before it is trusted; without it, kernels keep their own loop nests.
``SYMGRAD_BLAS=0`` switches matrix-product libraries off altogether (for comparisons).
:func:`gemm_for` makes the choice (:mod:`symgrad.config`) as the lowering is told it (a
:class:`~symgrad.codegen.lower.target.Gemm`).
"""

import ctypes
import glob
import os
import threading

import llvmlite.binding as llvm
import numpy as np

from symgrad import config
from symgrad.codegen.compile.jit import CompiledModule, host_features
from symgrad.codegen.lower import gemm
from symgrad.codegen.lower.abi import NO_TRANS, ROW_MAJOR, TRANS
from symgrad.codegen.lower.target import Gemm
from symgrad.locks import once


def gemm_shape(features):
    """(vector bytes, rows per tile) for the host: 2 * rows accumulators, two vectors of B
    and one broadcast must fit in the vector registers (32 with AVX-512, else 16).  With
    AVX-512, 12 rows rather than the 14 that fit: a batch of 128 rows is ten tiles and one
    of 8 rows, where 14-row tiles compute 12 rows for nothing in the last (measured on the
    W3 steps: 4-6% faster in both dtypes)."""
    if "+avx512f" in features:
        return 64, 12
    if "+avx" in features:
        return 32, 6
    return 16, 4




class Library:
    """One dtype's compiled GEMM, registered with the JIT under ``gemm.NAMES[dtype]``.

    Compiled on first need: :meth:`start` begins it, in the background where it is not in
    the disk cache (a kernel that calls it starts it once its own module is generated, so
    that both compile at once, and links its object code into its own engine:
    :meth:`objects`)."""

    def __init__(self, dtype, vector_bytes, rows):
        self.dtype = dtype
        self.vector_bytes = vector_bytes
        self.rows = rows
        self.column_tile = gemm.column_tile(dtype, vector_bytes)
        self.compiled = None
        self._address = None
        self._lock = threading.Lock()

    def _build(self):
        return gemm.build(self.dtype, self.vector_bytes, self.rows)

    def start(self):
        """Begin compiling the native code (or loading it from the disk cache), once."""
        with self._lock:
            if self.compiled is None:
                # Written vectorised and register-blocked: LLVM's IR pipeline adds nothing to
                # it (measured: the same GFLOP/s) and would take half of its compile time.
                self.compiled = CompiledModule(self._build, self.describe(), opt_level=0,
                                               codegen_opt_level=3, background=True)

    def objects(self):
        """The object code, for the engine of a kernel that calls the library: linked there,
        it needs no engine of its own."""
        self.start()
        return self.compiled.objects()

    def ready(self):
        """Wait for the native code, load it and register it with the JIT (once): for calls
        from other code than kernels."""
        if self._address is None:
            self.start()
            address = self.compiled.address(gemm.NAMES[self.dtype])
            llvm.add_symbol(gemm.NAMES[self.dtype], address)
            self._address = address

    @property
    def address(self):
        """The native address of the GEMM."""
        self.ready()
        return self._address

    def describe(self):
        """What of the library the generated code depends on (for cache keys)."""
        return (f"symgrad gemm {self.dtype}: {self.vector_bytes}-byte vectors, "
                f"{self.rows}-row tiles")


# (library file pattern, symbol for float32, symbol for float64, 64-bit integers)
_CANDIDATES = [
    ("libscipy_openblas64_*.so*", "scipy_cblas_sgemm64_", "scipy_cblas_dgemm64_", True),
    ("libscipy_openblas*.so*", "scipy_cblas_sgemm", "scipy_cblas_dgemm", False),
    ("libopenblas64_*.so*", "cblas_sgemm64_", "cblas_dgemm64_", True),
    ("libopenblas*.so*", "cblas_sgemm", "cblas_dgemm", False),
]

def _library_dirs():
    base = os.path.dirname(np.__file__)
    return [os.path.join(base, "..", "numpy.libs"), os.path.join(base, ".libs"),
            os.path.join(base, "_core")]


def _check(function, ctype, integer, dtype):
    """Run one small product through ``function`` and compare it with numpy."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((3, 5)).astype(dtype)
    b = rng.standard_normal((4, 5)).astype(dtype)          # used transposed
    c = np.full((3, 4), np.nan, dtype)
    function.restype = None
    function.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int, integer, integer, integer,
                         ctype, ctypes.c_void_p, integer, ctypes.c_void_p, integer, ctype,
                         ctypes.c_void_p, integer]
    function(ROW_MAJOR, NO_TRANS, TRANS, 3, 4, 5, 1.0, a.ctypes.data, 5, b.ctypes.data, 5, 0.0,
             c.ctypes.data, 4)
    return np.allclose(c, a @ b.T, rtol=1e-5 if dtype == np.float32 else 1e-12)


@once
def find_blas():
    """The BLAS gemm kernels can call (a :class:`~symgrad.codegen.lower.target.Gemm`),
    registered with the JIT; None when there is none."""
    for pattern, single, double, ilp64 in _CANDIDATES:
        for directory in _library_dirs():
            for path in sorted(glob.glob(os.path.join(directory, pattern))):
                try:
                    library = ctypes.CDLL(path)
                    functions = {"float32": getattr(library, single),
                                 "float64": getattr(library, double)}
                except (OSError, AttributeError):
                    continue
                integer = ctypes.c_int64 if ilp64 else ctypes.c_int32
                try:
                    ok = (_check(functions["float32"], ctypes.c_float, integer, np.float32)
                          and _check(functions["float64"], ctypes.c_double, integer,
                                     np.float64))
                except Exception:       # a foreign ABI must never take the process down
                    ok = False
                if not ok:
                    continue
                for name, function in ((single, functions["float32"]),
                                       (double, functions["float64"])):
                    llvm.add_symbol(name, ctypes.cast(function, ctypes.c_void_p).value)
                symbols = (("float32", single), ("float64", double))
                return Gemm("blas", repr((symbols, ilp64)), symbols=symbols, ilp64=ilp64)
    return None


_libraries = {}
_LIBRARIES_LOCK = threading.Lock()


def library(dtype):
    """symgrad's GEMM for ``dtype``, compiled (or loaded from the disk cache) and registered
    once per process."""
    with _LIBRARIES_LOCK:
        if dtype not in _libraries:
            _libraries[dtype] = Library(dtype, *gemm_shape(host_features()))
        return _libraries[dtype]


def gemm_for(dtype):
    """``(the Gemm the lowering is told, the library to start and link, or None)`` for a
    kernel computing in ``dtype`` (None for a kernel without floats), as
    :func:`symgrad.config.gemm_library` chooses: symgrad's GEMM, a BLAS, or neither."""
    choice = config.gemm_library()
    if choice is None or dtype is None:
        return None, None
    if choice == "blas":
        return find_blas(), None
    own = library(dtype)
    return Gemm("symgrad", own.describe(), column_tile=own.column_tile), own
