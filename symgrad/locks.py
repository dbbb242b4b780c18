"""Process-wide state and its locks, in one place.

Every cache of process-wide state is built once, under a lock, so that two threads asking at
once get the same object (and native state, such as symbols registered with the JIT, is set
up once):

- the IR's intern table: :data:`symgrad.ir.node.INTERN_LOCK`;
- values computed once per process (the host's CPU, the code generator's digest, the
  object-layout probe, numpy's C-API table, the runtime block, the BLAS found): :func:`once`,
  each function with a lock of its own;
- the thread setting and the Python pool: ``symgrad.codegen.runtime.threads._lock``;
- the worker threads and their code: ``symgrad.codegen.runtime.workers._lock``;
- the GEMM libraries: ``symgrad.codegen.runtime.libraries._LIBRARIES_LOCK`` (and one per
  library for its compile);
- compiles in flight and loading code into engines:
  ``symgrad.codegen.compile.jit._running_lock`` and ``_load_lock``;
- the cache's refusals: ``symgrad.codegen.compile.cache._refusals_lock``.

This module imports only the standard library.
"""

import functools
import threading


def once(function):
    """``function()`` (no arguments) computed once, under a lock of its own: a second caller
    waits for the first and gets its result.  ``cache_clear()`` forgets it (for tests)."""
    lock = threading.RLock()
    results = []

    @functools.wraps(function)
    def wrapper():
        if not results:
            with lock:
                if not results:
                    results.append(function())
        return results[0]

    def cache_clear():
        with lock:
            results.clear()
    wrapper.cache_clear = cache_clear
    wrapper.lock = lock
    return wrapper
