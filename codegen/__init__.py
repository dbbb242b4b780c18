"""Lowering of symgrad IR functions to LLVM IR, JIT compilation and the callable Kernel.

This package reads only the IR (:mod:`symgrad.ir`, :mod:`symgrad.ops`); it never sees SymPy.
"""

from codegen.kernel import Kernel
from codegen.lower import lower_function

__all__ = ["Kernel", "lower_function"]
