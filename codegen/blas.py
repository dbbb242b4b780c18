"""Matrix products through a BLAS: the OpenBLAS that numpy's wheels ship.

With ``SYMGRAD_GEMM=blas`` (or where symgrad's own GEMM, :mod:`codegen.gemm`, is not used),
kernels call ``cblas_?gemm`` for their matrix products when one is found.  The library is
located next to numpy, its symbol registered with the JIT, and it is checked on a small product
against numpy before it is trusted; without it, kernels keep their own loop nests.
``SYMGRAD_BLAS=0`` switches matrix-product libraries off altogether (for comparisons).
"""

import ctypes
import functools
import glob
import os

import numpy as np
import llvmlite.binding as llvm

# (library file pattern, symbol for float32, symbol for float64, 64-bit integers)
_CANDIDATES = [
    ("libscipy_openblas64_*.so*", "scipy_cblas_sgemm64_", "scipy_cblas_dgemm64_", True),
    ("libscipy_openblas*.so*", "scipy_cblas_sgemm", "scipy_cblas_dgemm", False),
    ("libopenblas64_*.so*", "cblas_sgemm64_", "cblas_dgemm64_", True),
    ("libopenblas*.so*", "cblas_sgemm", "cblas_dgemm", False),
]

ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112


class Gemm:
    """A located gemm: its JIT symbol names per dtype and its integer width."""

    def __init__(self, symbols, ilp64):
        self.symbols = symbols          # dtype -> symbol name
        self.ilp64 = ilp64

    def describe(self):
        """What of the gemm the generated code depends on (for cache keys)."""
        return repr((sorted(self.symbols.items()), self.ilp64))


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


@functools.lru_cache(maxsize=None)
def find_gemm():
    """The BLAS gemm kernels can call, registered with the JIT; None when there is none."""
    if os.environ.get("SYMGRAD_BLAS", "1") == "0":
        return None
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
                return Gemm({"float32": single, "float64": double}, ilp64)
    return None
