"""Compiling: LLVM IR text -> optimised object code -> machine code loaded in this process
(:mod:`~symgrad.codegen.compile.jit`), with the disk cache of object code
(:mod:`~symgrad.codegen.compile.cache`).  Reads no IR and no SymPy: text in, code out."""
