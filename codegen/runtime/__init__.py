"""The runtime: the process's native state and the kernels users call.

- :mod:`~symgrad.codegen.runtime.process`: the object-layout probe, numpy's C-API table, the
  runtime block, builtin function objects over native entries;
- :mod:`~symgrad.codegen.runtime.threads`: how many threads, the Python pool;
- :mod:`~symgrad.codegen.runtime.workers`: the native worker threads;
- :mod:`~symgrad.codegen.runtime.libraries`: symgrad's GEMM library and BLAS discovery;
- :mod:`~symgrad.codegen.runtime.elementwise_kernel`: :class:`Kernel`, scalar formulas over
  broadcast arrays;
- :mod:`~symgrad.codegen.runtime.tensor_kernel`: :class:`TensorKernel`,
  :class:`FunctionKernel`, and the :class:`~symgrad.codegen.lower.target.Target` they are
  lowered for.
"""
