"""symgrad's code generator: IR functions into native kernels, in three stages.

- :mod:`symgrad.codegen.lower`: IR -> LLVM IR (llvmlite's ``ir`` builder only: no
  ``llvmlite.binding``, no ctypes, no environment), for a described
  :class:`~symgrad.codegen.lower.target.Target`;
- :mod:`symgrad.codegen.compile`: LLVM IR text -> object code -> loaded machine code
  (``llvmlite.binding``), and the disk cache;
- :mod:`symgrad.codegen.runtime`: the process's native state (threads, workers, libraries)
  and the kernels users call.

This package reads only the IR (:mod:`symgrad.ir`): never SymPy.  In the repository it is the
top-level folder ``codegen/``; installed, it is ``symgrad.codegen`` (so that an unrelated
package named ``codegen`` cannot take its place).  Names load on first use.
"""

import importlib

_NAMES = {
    "Kernel": "symgrad.codegen.runtime.elementwise_kernel",
    "TensorKernel": "symgrad.codegen.runtime.tensor_kernel",
    "FunctionKernel": "symgrad.codegen.runtime.tensor_kernel",
    "num_threads": "symgrad.codegen.runtime.threads",
    "set_num_threads": "symgrad.codegen.runtime.threads",
}

__all__ = sorted(_NAMES)


def __getattr__(name):
    if name not in _NAMES:
        raise AttributeError(f"module 'symgrad.codegen' has no attribute {name!r}")
    value = getattr(importlib.import_module(_NAMES[name]), name)
    globals()[name] = value
    return value
