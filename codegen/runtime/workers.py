"""Starting, publishing and running the native worker threads of tensor kernels.

The workers' code is emitted by :mod:`symgrad.codegen.lower.workers` (which says how they
work) and compiled once per process, in the background.  After ``fork`` a child starts
workers of its own.  The workers' state is guarded by one lock (:data:`_lock`).
"""

import ctypes
import os
import platform
import threading

import llvmlite.binding as llvm

from symgrad.codegen.compile.jit import CompiledModule
from symgrad.codegen.lower import workers as emitted
from symgrad.codegen.lower.abi import JOBS_RUN, RUNTIME_POOL, RUNTIME_RUNNER, WORKER_BLOCK_WORDS
from symgrad.codegen.runtime import process
from symgrad.locks import once

_lock = threading.RLock()


def pause_instruction():
    """Whether waiting threads spin with x86's ``pause``."""
    return platform.machine().lower() in ("x86_64", "amd64")


_libc = {}


def _libc_symbol(name):
    """Register libc's ``name`` with the JIT as ``symgrad.NAME``; None where it is missing."""
    with _lock:
        if name not in _libc:
            try:
                function = getattr(ctypes.CDLL(None), name)
            except (OSError, AttributeError):
                _libc[name] = None
            else:
                llvm.add_symbol(f"symgrad.{name}", ctypes.cast(function, ctypes.c_void_p).value)
                _libc[name] = f"symgrad.{name}"
        return _libc[name]


def symbols():
    """The libc functions waiting threads call, registered: (sched_yield, usleep) names."""
    return _libc_symbol("sched_yield"), _libc_symbol("usleep")


_module = {"compiled": None}


def compile_soon():
    """Start building (or loading from the disk cache) the workers' code in the background,
    once: a kernel that may run on threads asks for it while it compiles itself, so that its
    large calls find the workers' code ready."""
    with _lock:
        if _module["compiled"] is None:
            yield_symbol, sleep_symbol = symbols()
            pause = pause_instruction()
            # Hand-written atomics and spin loops: LLVM's IR pipeline adds nothing to them.
            _module["compiled"] = CompiledModule(
                lambda: emitted.build(pause, yield_symbol, sleep_symbol),
                f"symgrad workers: {pause} {yield_symbol} {sleep_symbol}", opt_level=0,
                codegen_opt_level=3, background=True)
        return _module["compiled"]


@once
def _compiled():
    compiled = compile_soon()
    worker = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64)(
        compiled.address("symgrad.worker"))
    run = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                           ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p)(
        compiled.address("symgrad.run_parallel"))
    # The workers run this code until the process ends: it must outlive the interpreter's
    # teardown, so one reference is never given back.
    ctypes.pythonapi.Py_IncRef(ctypes.py_object(compiled))
    return compiled, worker, run


_state = {"block": None, "workers": 0, "ready": False, "alone": False}


def _forget():
    # A forked child has no worker threads: it starts its own, on a block of its own.
    _state.update(block=None, workers=0, ready=False, alone=False)
    runtime = process.runtime()
    runtime[RUNTIME_RUNNER] = runtime[RUNTIME_POOL] = 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget)


def _workers(count):
    """The shared block, with at least ``count`` workers started on it."""
    _, worker, _ = _compiled()
    with _lock:
        if _state["block"] is None:
            _state["block"] = process.permanent_block(WORKER_BLOCK_WORDS,
                                                      "the worker threads' block")
        block = _state["block"]
        while _state["workers"] < count:
            index = _state["workers"]
            # Daemon threads parked in native code (the call releases the GIL) for good.
            # A job in flight now (another thread's) needs only the workers it found.
            threading.Thread(target=worker, args=(ctypes.addressof(block), index, block[0]),
                             daemon=True, name=f"symgrad-worker-{index}").start()
            _state["workers"] += 1
        return block


def start(count):
    """Start ``count`` workers now (they are otherwise started by the first call that
    wants them, in the background)."""
    _workers(count)
    _publish()


def _publish():
    """Workers ready: kernels' call entries may run large calls on them natively."""
    block = _state["block"]
    runtime = process.runtime()
    runtime[RUNTIME_POOL] = ctypes.addressof(block)
    runtime[RUNTIME_RUNNER] = _compiled()[0].address("symgrad.run_parallel")
    _state["ready"] = True


def more(count):
    """Where workers run already, at least ``count`` of them."""
    with _lock:
        if _state["ready"] and _state["workers"] < count:
            _workers(count)


def jobs_run():
    """How many times workers took part in a call, so far in this process."""
    block = _state["block"]
    return 0 if block is None else block[JOBS_RUN]


_ALONE = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
                          ctypes.c_int64, ctypes.c_void_p)


def run(function_address, sizes, buffers, threads, state):
    """Run the kernel function ``function_address`` (``NAME.parallel``) on up to ``threads``
    threads, the calling one included (the GIL released meanwhile).

    The first such call in a process runs alone: a gradient computed once never pays for
    threads.  The next one starts the workers (loading their code, built in the background
    since :func:`compile_soon`); while that code is still being built, calls run alone: no
    call waits for it."""
    if threads > 1 and not _state["ready"]:
        if _state["alone"] and compile_soon().done():
            start(threads - 1)
        _state["alone"] = True
    if threads <= 1 or not _state["ready"]:
        _ALONE(function_address)(sizes, buffers, 0, 1, state)
        return
    block = _workers(threads - 1)
    _compiled()[2](ctypes.addressof(block), function_address, sizes, buffers, threads, state)
