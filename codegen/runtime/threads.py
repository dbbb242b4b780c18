"""Threads for large kernel calls: how many, and the pool for elementwise kernels.

A tensor kernel call with enough work (:data:`~symgrad.codegen.lower.abi.MIN_PARALLEL_ELEMENTS`)
runs on several threads at once (:mod:`symgrad.codegen.runtime.workers`): each takes its share
of the chunks of rows of every elementwise step (:func:`symgrad.codegen.lower.schedule.chunking`)
and of the columns of every matrix
product, with barriers between steps.  The chunks are fixed by the sizes alone, partial sums
are added in chunk order, and every element of a product is computed the same way whatever
thread computes it, so the results are the same, bit for bit, whatever the number of threads.

An elementwise kernel (compiled from a scalar formula) computes every element alone: a large
call hands contiguous blocks of elements to the threads of a Python pool.

The number of threads is ``$SYMGRAD_NUM_THREADS`` if set, else the number of CPUs this
process may use; :func:`set_num_threads` changes it.  Kernels' native entries read it from
the runtime block (:func:`runtime_block`), set when the first tensor kernel is made and by
:func:`set_num_threads` (a later change of the environment variable reaches only the Python
path).  The pool and the setting are guarded by one lock.
"""

from __future__ import annotations

import concurrent.futures
import os
import platform
import threading

from symgrad import config
from symgrad.codegen.lower.abi import RUNTIME_THREADS
from symgrad.codegen.runtime import process, workers
from symgrad.locks import once

#: An elementwise (scalar) kernel shares its elements among threads, in blocks of MAP_BLOCK,
#: from this many elements.
MIN_PARALLEL_MAP_ELEMENTS = 1 << 15
MAP_BLOCK = 1 << 13

_settings: dict[str, int | None] = {"threads": None}
_pool = {"executor": None, "workers": 0}
_lock = threading.Lock()


def available_cpus() -> int:
    """The number of CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:                    # not on Linux
        return os.cpu_count() or 1


def num_threads() -> int:
    """The number of threads a large kernel call uses."""
    if _settings["threads"] is not None:
        return _settings["threads"]
    threads = config.num_threads()
    return available_cpus() if threads is None else threads


def set_num_threads(threads: int | None) -> int | None:
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
    if process.available():
        threads = call_threads()
        workers.more(threads - 1)          # the native entries do not start them
        runtime_block()[RUNTIME_THREADS] = threads


@once
def runtime_block():
    """The process's runtime block (:func:`symgrad.codegen.runtime.process.runtime`), its
    thread word set from the setting the first time (a bad ``$SYMGRAD_NUM_THREADS``: one
    thread, and the Python path reports it)."""
    block = process.runtime()
    try:
        block[RUNTIME_THREADS] = call_threads()
    except ValueError:
        block[RUNTIME_THREADS] = 1
    return block


def call_threads(threads: int | None = None) -> int:
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


def _executor(count):
    with _lock:
        if _pool["executor"] is None or _pool["workers"] < count:
            # A larger pool replaces the old one, which is not shut down: a call still using
            # it finishes there, and its idle threads end when it is collected.
            _pool["executor"] = concurrent.futures.ThreadPoolExecutor(
                count, thread_name_prefix="symgrad")
            _pool["workers"] = count
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

