"""LLVM types of the IR dtypes."""

from llvmlite import ir as llvm_ir

INDEX = llvm_ir.IntType(64)
BOOL = llvm_ir.IntType(1)
POINTER = llvm_ir.PointerType()

FLOAT_TYPES = {
    "float64": llvm_ir.DoubleType(),
    "float32": llvm_ir.FloatType(),
}

# Suffix of overloaded intrinsic names (llvm.sin.f64).
INTRINSIC_SUFFIX = {"float64": "f64", "float32": "f32"}


def llvm_type(dtype):
    """The LLVM type of one element of ``dtype``."""
    if dtype == "bool":
        return BOOL
    return FLOAT_TYPES[dtype]
