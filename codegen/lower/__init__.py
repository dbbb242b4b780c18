"""Lowering: IR functions -> LLVM IR modules, built with llvmlite's ``ir`` builder.

- :mod:`~symgrad.codegen.lower.types`: dtypes as LLVM types and sizes, symbol names;
- :mod:`~symgrad.codegen.lower.mathlib`: one lowering rule per elementwise op
  (:data:`~symgrad.codegen.lower.mathlib.LOWERING_RULES`), over the vectorisable routines of
  :mod:`~symgrad.codegen.lower.vecmath`;
- :mod:`~symgrad.codegen.lower.elementwise`: scalar formulas as one loop over elements;
- :mod:`~symgrad.codegen.lower.schedule`: tensor functions as steps over buffers
  (:data:`~symgrad.codegen.lower.schedule.STEP_KIND` says how each tensor op is computed);
- :mod:`~symgrad.codegen.lower.tensor`: the steps as loop nests, views, reductions, threads'
  shares;
- :mod:`~symgrad.codegen.lower.matmul`: matrix products (GEMM, BLAS or loop nest);
- :mod:`~symgrad.codegen.lower.gemm`: symgrad's register-blocked GEMM;
- :mod:`~symgrad.codegen.lower.entries`: CPython entries (the fast scalar call, the whole
  tensor call);
- :mod:`~symgrad.codegen.lower.workers`: the worker threads' spin loops;
- :mod:`~symgrad.codegen.lower.abi`, :mod:`~symgrad.codegen.lower.target`,
  :mod:`~symgrad.codegen.lower.builder`: what emitted code and the runtime share, what the
  lowering is told about the machine, builder helpers.

Nothing here imports ``llvmlite.binding``, ctypes or the runtime, or reads the environment.
"""
