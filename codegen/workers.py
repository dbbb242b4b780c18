"""Native worker threads for tensor kernels that run on several threads.

Handing work to a Python thread pool costs tens of microseconds a call (waking a sleeping
thread), as much as the work of a mid-sized kernel.  The workers here are threads parked in
native code: after a job they spin for a while (with x86's ``pause``), so that the next call
finds them awake, and only then sleep between checks.  A call publishes its job (the kernel's
``NAME.parallel`` function and its arguments) in a shared block and runs it itself as thread
0; workers join as they come and take units of work from the same counters
(:meth:`codegen.lower_tensor._Lowering.run`).  A worker that comes late, or not at all (its CPU
busy with another library's threads), only leaves more units to the others: the call never
waits for a worker to arrive, only for the units under way to finish.

One job at a time: a call that finds the workers busy (another Python thread's call) runs
alone, which gives the same results.  After ``fork`` a child starts workers of its own.
"""

import ctypes
import functools
import os
import threading

import llvmlite.binding as llvm
from llvmlite import ir as llvm_ir

from codegen import fastcall, parallel
from codegen.fastcall import _c_function
from codegen.types import INDEX, POINTER

# Words (int64) of the shared block; each group on a cache line of its own.
_GENERATION, _ACTIVE, _BUSY, _JOB = 0, 8, 16, 24
_FUNCTION, _SIZES, _BUFFERS, _THREADS, _STATE, _CLOSED = range(_JOB, _JOB + 6)
_JOBS_RUN = 32          # jobs the workers took part in (for tests and diagnostics)
_WORDS = 40

#: An idle worker spins (each spin a ``pause``) for about this many cycles of the time-stamp
#: counter (some 0.2 ms) before it starts to sleep: enough for the next call of a training
#: loop, short enough not to take a CPU from other libraries' threads (a BLAS) for long.
IDLE_CYCLES = 1 << 19
#: ... or this many spins, where the time-stamp counter reads zero.
IDLE_SPINS = 1 << 22
#: Microseconds an idle worker then sleeps between checks ...
IDLE_SLEEP_US = 100
#: ... and, idle for this many times IDLE_CYCLES (some 0.1 s), this long: a worker costs
#: next to nothing while the process does other things.  (A call never waits for a worker to
#: wake up: the threads that are there do the work.)
LONG_IDLE = 1 << 9
LONG_IDLE_SLEEP_US = 2000

_PARALLEL_TYPE = llvm_ir.FunctionType(llvm_ir.VoidType(),
                                      [POINTER, POINTER, INDEX, INDEX, POINTER])


@functools.lru_cache(maxsize=None)
def _libc_symbol(name):
    """Register libc's ``name`` with the JIT as ``symgrad.NAME``; None where it is missing."""
    try:
        function = getattr(ctypes.CDLL(None), name)
    except (OSError, AttributeError):
        return None
    llvm.add_symbol(f"symgrad.{name}", ctypes.cast(function, ctypes.c_void_p).value)
    return f"symgrad.{name}"


def symbols():
    """The libc functions waiting threads call, registered: (sched_yield, usleep) names."""
    return _libc_symbol("sched_yield"), _libc_symbol("usleep")


def emit_spin(builder, function, ready, yield_symbol, sleep_symbol=None, label="spin"):
    """Emit ``while not ready(builder): wait``, where waiting is a ``pause`` (on x86), with
    ``sched_yield`` every 1024 spins, or, once ``IDLE_CYCLES`` have passed and
    ``sleep_symbol`` is given, a sleep of ``IDLE_SLEEP_US`` (``LONG_IDLE_SLEEP_US`` after
    ``LONG_IDLE`` times as long).  Leaves the builder after it."""
    module = function.module
    if sleep_symbol is not None:
        clock = _c_function(module, "llvm.readcyclecounter", INDEX, [])
        start = builder.call(clock, [])
    before = builder.block
    header = function.append_basic_block(f"{label}.check")
    wait = function.append_basic_block(f"{label}.wait")
    after = function.append_basic_block(f"{label}.done")
    builder.branch(header)
    builder.position_at_end(header)
    spins = builder.phi(INDEX, name=f"{label}.spins")
    spins.add_incoming(INDEX(0), before)
    builder.cbranch(ready(builder), after, wait)
    builder.position_at_end(wait)
    if parallel.pause_instruction():
        builder.call(_c_function(module, "llvm.x86.sse2.pause", llvm_ir.VoidType(), []), [])

    def call_libc(name, arguments, argument_types):
        builder.call(_c_function(module, name, llvm_ir.IntType(32), argument_types), arguments)
    if sleep_symbol is not None:
        sleep = function.append_basic_block(f"{label}.sleep")
        awake = function.append_basic_block(f"{label}.awake")
        waited = builder.sub(builder.call(clock, []), start)
        idle = builder.or_(builder.icmp_unsigned(">=", waited, INDEX(IDLE_CYCLES)),
                           builder.icmp_signed(">=", spins, INDEX(IDLE_SPINS)))
        builder.cbranch(idle, sleep, awake)
        builder.position_at_end(sleep)
        int32 = llvm_ir.IntType(32)
        long_idle = builder.icmp_unsigned(">=", waited, INDEX(IDLE_CYCLES * LONG_IDLE))
        call_libc(sleep_symbol, [builder.select(long_idle, int32(LONG_IDLE_SLEEP_US),
                                                int32(IDLE_SLEEP_US))], [int32])
        builder.branch(awake)
        builder.position_at_end(awake)
    if yield_symbol is not None:
        rest = function.append_basic_block(f"{label}.yield")
        spin = function.append_basic_block(f"{label}.again")
        builder.cbranch(builder.icmp_signed("==", builder.and_(spins, INDEX(1023)),
                                            INDEX(1023)), rest, spin)
        builder.position_at_end(rest)
        call_libc(yield_symbol, [], [])
        builder.branch(spin)
        builder.position_at_end(spin)
    spins.add_incoming(builder.add(spins, INDEX(1)), builder.block)
    builder.branch(header)
    builder.position_at_end(after)


def _word(builder, block, index):
    return builder.gep(block, [INDEX(index)], source_etype=INDEX)


def _load(builder, block, index):
    return builder.load_atomic(_word(builder, block, index), "seq_cst", 8, typ=INDEX)


def _store(builder, block, index, value):
    # (An exchange: llvmlite's atomic store wants typed pointers.)
    builder.atomic_rmw("xchg", _word(builder, block, index), value, "seq_cst")


def _build_module(yield_symbol, sleep_symbol):
    module = llvm_ir.Module(name="symgrad.workers")

    # worker(block, index, seen): thread index + 1 of every job after generation ``seen`` that
    # has that many threads, unless the job is closed (done) by the time the worker comes.
    # (``seen`` is read before the worker's thread starts, so that a job published while it
    # starts is not taken for an old one.)
    worker = llvm_ir.Function(module, llvm_ir.FunctionType(
        llvm_ir.VoidType(), [POINTER, INDEX, INDEX]), "symgrad.worker")
    block, index, seen = worker.args
    entry = worker.append_basic_block("entry")
    builder = llvm_ir.IRBuilder(entry)
    seen_slot = builder.alloca(INDEX)
    builder.store(seen, seen_slot)
    top = worker.append_basic_block("top")
    builder.branch(top)
    builder.position_at_end(top)
    emit_spin(builder, worker, lambda b: b.icmp_signed(
        "!=", _load(b, block, _GENERATION), b.load(seen_slot, typ=INDEX)),
        yield_symbol, sleep_symbol, "idle")
    generation = _load(builder, block, _GENERATION)
    builder.store(generation, seen_slot)
    threads = _load(builder, block, _THREADS)
    job = [_load(builder, block, k) for k in (_FUNCTION, _SIZES, _BUFFERS, _STATE)]
    # The job read is the one of this generation (else a newer one came meanwhile: go on to it).
    thread = builder.add(index, INDEX(1))
    current = builder.icmp_signed("==", _load(builder, block, _GENERATION), generation)
    enter = worker.append_basic_block("enter")
    builder.cbranch(builder.and_(current, builder.icmp_signed("<", thread, threads)), enter,
                    top)
    # Announce, then check the job is still open: the caller closes it, then waits until no
    # worker is inside (both in one total order: either it sees this worker or the worker
    # sees the job closed).
    builder.position_at_end(enter)
    active = _word(builder, block, _ACTIVE)
    builder.atomic_rmw("add", active, INDEX(1), "seq_cst")
    run = worker.append_basic_block("run")
    leave = worker.append_basic_block("leave")
    builder.cbranch(builder.icmp_signed("==", _load(builder, block, _CLOSED), generation),
                    leave, run)
    builder.position_at_end(run)
    function = builder.inttoptr(job[0], _PARALLEL_TYPE.as_pointer())
    sizes, buffers, state = [builder.inttoptr(value, POINTER) for value in job[1:]]
    builder.call(function, [sizes, buffers, thread, threads, state])
    builder.atomic_rmw("add", _word(builder, block, _JOBS_RUN), INDEX(1), "seq_cst")
    builder.branch(leave)
    builder.position_at_end(leave)
    builder.atomic_rmw("sub", active, INDEX(1), "seq_cst")
    builder.branch(top)

    # run(block, function, sizes, buffers, threads, state): the calling thread's side.
    runner = llvm_ir.Function(module, llvm_ir.FunctionType(
        llvm_ir.VoidType(), [POINTER, _PARALLEL_TYPE.as_pointer(), POINTER, POINTER, INDEX,
                             POINTER]), "symgrad.run_parallel")
    block, callee, sizes, buffers, threads, state = runner.args
    builder = llvm_ir.IRBuilder(runner.append_basic_block("entry"))
    taken = builder.cmpxchg(_word(builder, block, _BUSY), INDEX(0), INDEX(1), "seq_cst",
                            "seq_cst")
    shared = runner.append_basic_block("shared")
    alone = runner.append_basic_block("alone")
    builder.cbranch(builder.extract_value(taken, 1), shared, alone)
    builder.position_at_end(alone)
    builder.call(callee, [sizes, buffers, INDEX(0), INDEX(1), state])
    builder.ret_void()

    builder.position_at_end(shared)
    for slot, value in ((_FUNCTION, callee), (_SIZES, sizes), (_BUFFERS, buffers),
                        (_STATE, state)):
        _store(builder, block, slot, builder.ptrtoint(value, INDEX))
    _store(builder, block, _THREADS, threads)
    generation = builder.add(builder.atomic_rmw("add", _word(builder, block, _GENERATION),
                                                INDEX(1), "seq_cst"), INDEX(1))
    builder.call(callee, [sizes, buffers, INDEX(0), threads, state])
    # Every unit is done; close the job and wait for the workers inside it to leave.
    _store(builder, block, _CLOSED, generation)
    emit_spin(builder, runner, lambda b: b.icmp_signed(
        "==", _load(b, block, _ACTIVE), INDEX(0)), yield_symbol, label="join")
    # No worker enters a closed job; nor does the block keep pointers into the kernel (its
    # code may be freed once the call returns) or into the caller's arrays.
    for slot in (_FUNCTION, _SIZES, _BUFFERS, _STATE):
        _store(builder, block, slot, INDEX(0))
    _store(builder, block, _BUSY, INDEX(0))
    builder.ret_void()
    return module


_module = {"compiled": None}


def compile_soon():
    """Start building (or loading from the disk cache) the workers' code in the background,
    once: a kernel that may run on threads asks for it while it compiles itself, so that its
    large calls find the workers' code ready."""
    from codegen.jit import CompiledModule
    with _lock:
        if _module["compiled"] is None:
            yield_symbol, sleep_symbol = symbols()
            # Hand-written atomics and spin loops: LLVM's IR pipeline adds nothing to them.
            _module["compiled"] = CompiledModule(
                lambda: _build_module(yield_symbol, sleep_symbol),
                f"symgrad workers: {yield_symbol} {sleep_symbol}", opt_level=0,
                codegen_opt_level=3, background=True)
        return _module["compiled"]


@functools.lru_cache(maxsize=None)
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
_lock = threading.RLock()


def _forget():
    # A forked child has no worker threads: it starts its own, on a block of its own.
    _state.update(block=None, workers=0, ready=False, alone=False)
    runtime = fastcall.runtime()
    runtime[fastcall.RUNTIME_RUNNER] = runtime[fastcall.RUNTIME_POOL] = 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget)


def _workers(count):
    """The shared block, with at least ``count`` workers started on it."""
    _, worker, _ = _compiled()
    with _lock:
        if _state["block"] is None:
            _state["block"] = fastcall.permanent_block(_WORDS, "the worker threads' block")
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
    runtime = fastcall.runtime()
    runtime[fastcall.RUNTIME_POOL] = ctypes.addressof(block)
    runtime[fastcall.RUNTIME_RUNNER] = _compiled()[0].address("symgrad.run_parallel")
    _state["ready"] = True


def more(count):
    """Where workers run already, at least ``count`` of them."""
    if _state["ready"] and _state["workers"] < count:
        _workers(count)


def jobs_run():
    """How many times workers took part in a call, so far in this process."""
    block = _state["block"]
    return 0 if block is None else block[_JOBS_RUN]


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
