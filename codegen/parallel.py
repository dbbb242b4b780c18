"""Threads for large kernel calls: how many, and the pool for elementwise kernels.

A tensor kernel call with enough work (:data:`MIN_PARALLEL_ELEMENTS`) runs on several threads
at once (:mod:`codegen.workers`): each takes its share of the chunks of rows of every
elementwise step (:func:`codegen.schedule.chunking`) and of the columns of every matrix
product, with barriers between steps.  The chunks are fixed by the sizes alone, partial sums
are added in chunk order, and every element of a product is computed the same way whatever
thread computes it, so the results are the same, bit for bit, whatever the number of threads.

An elementwise kernel (compiled from a scalar formula) computes every element alone: a large
call hands contiguous blocks of elements to the threads of a Python pool.

The number of threads is ``$SYMGRAD_NUM_THREADS`` if set, else the number of CPUs this
process may use; :func:`set_num_threads` changes it.  Kernels' native entries read it from
:func:`codegen.fastcall.runtime`, set when codegen loads and by :func:`set_num_threads`
(a later change of the environment variable reaches only the Python path).
"""

import concurrent.futures
import os
import platform
import threading

#: A tensor kernel call runs on threads only when its work (the elements of its chunked
#: steps, and its matrix products' multiply-adds, see below) reaches this (below, one native
#: call costs less than the threads' dispatch saves).
MIN_PARALLEL_ELEMENTS = 1 << 18

#: ... counting this many multiply-adds of matrix products as one element.
MULTIPLY_ADDS_PER_ELEMENT = 16

#: An elementwise (scalar) kernel shares its elements among threads, in blocks of MAP_BLOCK,
#: from this many elements.
MIN_PARALLEL_MAP_ELEMENTS = 1 << 15
MAP_BLOCK = 1 << 13

_settings = {"threads": None}
_pool = {"executor": None, "workers": 0}
_lock = threading.Lock()


def available_cpus():
    """The number of CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:                    # not on Linux
        return os.cpu_count() or 1


def num_threads():
    """The number of threads a large kernel call uses."""
    if _settings["threads"] is not None:
        return _settings["threads"]
    value = os.environ.get("SYMGRAD_NUM_THREADS")
    if value:
        try:
            threads = int(value)
        except ValueError:
            raise ValueError(f"SYMGRAD_NUM_THREADS must be a positive integer, got "
                             f"{value!r}") from None
        if threads < 1:
            raise ValueError(f"SYMGRAD_NUM_THREADS must be a positive integer, got {value!r}")
        return threads
    return available_cpus()


def set_num_threads(threads):
    """Use ``threads`` threads (a positive integer; None: the default) for large kernel
    calls.  Returns the previous setting."""
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int)
                                or threads < 1):
        raise ValueError(f"threads must be a positive integer or None, got {threads!r}")
    previous = _settings["threads"]
    _settings["threads"] = threads
    publish_threads()
    return previous


def publish_threads():
    """Tell kernels' native call entries how many threads a large call uses: the setting (or
    the environment's), at most one per CPU (waiting threads spin)."""
    from codegen import fastcall, workers
    if fastcall.available():
        threads = call_threads()
        workers.more(threads - 1)          # the native entries do not start them
        fastcall.runtime()[fastcall.RUNTIME_THREADS] = threads


def call_threads(threads=None):
    """The threads a large tensor kernel call runs on: ``threads`` (default
    :func:`num_threads`), at most one per CPU (waiting threads spin; results do not
    change)."""
    return max(1, min(num_threads() if threads is None else threads, available_cpus()))


def _forget_pool():
    # A forked child has none of the parent's threads: it starts a pool of its own.
    _pool["executor"] = None
    _pool["workers"] = 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def _executor(workers):
    with _lock:
        if _pool["executor"] is None or _pool["workers"] < workers:
            # A larger pool replaces the old one, which is not shut down: a call still using
            # it finishes there, and its idle threads end when it is collected.
            _pool["executor"] = concurrent.futures.ThreadPoolExecutor(
                workers, thread_name_prefix="symgrad")
            _pool["workers"] = workers
        return _pool["executor"]


def run_chunks(run_range, count, threads):
    """Call ``run_range(first, last)`` on ``threads`` contiguous ranges of the chunks
    ``0 .. count - 1``, the first range in the calling thread, and wait for all."""
    threads = max(1, min(threads, count))
    bounds = [count * part // threads for part in range(threads + 1)]
    if threads == 1:
        run_range(0, count)
        return
    executor = _executor(threads - 1)
    futures = [executor.submit(run_range, bounds[part], bounds[part + 1])
               for part in range(1, threads)]
    try:
        run_range(bounds[0], bounds[1])
    finally:
        for future in futures:
            future.result()


def pause_instruction():
    """Whether kernels spin with x86's ``pause``."""
    return platform.machine().lower() in ("x86_64", "amd64")

