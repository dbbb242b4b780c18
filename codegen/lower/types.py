"""The one table of dtypes for the generated code: LLVM types, element sizes, intrinsic
suffixes; and the names the generated code gives its symbols."""

import re

from llvmlite import ir as llvm_ir

INDEX = llvm_ir.IntType(64)
BOOL = llvm_ir.IntType(1)
POINTER = llvm_ir.PointerType()

FLOAT_TYPES = {
    "float64": llvm_ir.DoubleType(),
    "float32": llvm_ir.FloatType(),
}

# Suffix of overloaded intrinsic names (llvm.sin.f64), and of symgrad's routines.
INTRINSIC_SUFFIX = {"float64": "f64", "float32": "f32", "int64": "i64"}
#: Bytes of one element.
ITEM_BYTES = {"float64": 8, "float32": 4, "bool": 1, "int64": 8}


def item_bytes(dtype):
    """Bytes of one element of ``dtype``."""
    return ITEM_BYTES[dtype]


def llvm_type(dtype):
    """The LLVM type of one element of ``dtype``."""
    if dtype == "bool":
        return BOOL
    if dtype == "int64":
        return INDEX
    return FLOAT_TYPES[dtype]


#: The symbol of a kernel's function in its LLVM module (with ``.element``, ``.call``...
#: appended for the others).  Names chosen by users (of symbols, tensors, sizes, outputs,
#: kernels) never reach LLVM: they may be of any length and hold any character, and LLVM
#: truncates local names at 1024 bytes, reads its text up to a NUL and treats a few names
#: specially; the generated code names values by number (``in0``, ``size1``).
KERNEL_SYMBOL = "symgrad_kernel"

_SYMBOL = re.compile(r"[A-Za-z_][A-Za-z0-9_.]{0,199}")


def check_symbol(name, argument="name"):
    """``name``, when it can name a module's functions: ASCII letters, digits, ``_`` and
    ``.``, not starting with a digit, at most 200 characters; else a ValueError naming
    ``argument``."""
    if not isinstance(name, str) or _SYMBOL.fullmatch(name) is None:
        shown = repr(name) if len(repr(name)) <= 80 else repr(name)[:77] + "..."
        raise ValueError(f"{argument} must be a symbol for the generated code (ASCII letters, "
                         f"digits, '_' and '.', not starting with a digit, at most 200 "
                         f"characters), got {shown}")
    return name
