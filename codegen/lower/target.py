"""What the lowering is told about the machine and the process: plain data.

The runtime builds a :class:`Target` once from the host (its CPU's features, the libraries
found, the settings of :mod:`symgrad.config`) and hands it to every lowering function, which
never reads the environment or asks the host itself.  Tests build other targets to steer the
lowering (a module split, the BLAS path, another CPU's vector width).
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Gemm:
    """The library that computes matrix products, as the emitted code calls it.

    ``kind`` is ``"symgrad"`` (symgrad's own GEMM, :mod:`symgrad.codegen.lower.gemm`, called
    as ``symgrad.gemm.f32``/``.f64`` with a range of columns) or ``"blas"`` (``cblas_?gemm``
    of a BLAS: ``symbols`` maps dtypes to its symbol names, ``ilp64`` says whether its
    integers are 64-bit).  ``column_tile``: symgrad's GEMM (for the kernel's dtype) computes
    columns in tiles of this many; threads share a product's columns in whole tiles.
    ``description`` enters the cache keys of the kernels that call it.
    """

    kind: str
    description: str
    symbols: tuple = ()                # ((dtype, symbol), ...) for a BLAS
    ilp64: bool = False
    column_tile: int = 0

    def symbol(self, dtype):
        return dict(self.symbols)[dtype]


@dataclass(frozen=True)
class Target:
    """The machine and process a kernel is lowered for.

    Attributes
    ----------
    gemm : Gemm or None
        Where matrix products go; None: loop nests.
    pause : bool
        Whether waiting threads spin with x86's ``pause``.
    yield_symbol : str or None
        The registered ``sched_yield`` that waiting threads call now and then.
    module_cost, max_modules : int
        A kernel's steps are compiled in modules of about ``module_cost`` units of
        :func:`symgrad.codegen.lower.tensor.split_steps`, at most ``max_modules`` of them.
    epilogues : bool
        Whether the elementwise step after a product of symgrad's GEMM runs inside it, on the
        columns each unit has just computed (False: a step of its own, for comparisons).
    """

    gemm: Gemm = None
    pause: bool = True
    yield_symbol: str = None
    module_cost: int = 40
    max_modules: int = 2
    epilogues: bool = True

    def describe(self):
        """What of the target the generated code depends on (for cache keys)."""
        return repr((self.gemm and self.gemm.description, self.pause, self.yield_symbol,
                     self.module_cost, self.max_modules, self.epilogues))
