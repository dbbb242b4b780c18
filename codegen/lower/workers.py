"""The native code of the worker threads: spin loops and the workers' module.

Handing work to a Python thread pool costs tens of microseconds a call (waking a sleeping
thread), as much as the work of a mid-sized kernel.  The workers are threads parked in native
code (:mod:`symgrad.codegen.runtime.workers` starts them): after a job they spin for a while
(with x86's ``pause``), so that the next call finds them awake, and only then sleep between
checks.  A call publishes its job (the kernel's ``NAME.parallel`` function and its arguments)
in a shared block (its words: :mod:`symgrad.codegen.lower.abi`) and runs it itself as thread
0; workers join as they come and take units of work from the same counters
(:meth:`symgrad.codegen.lower.tensor._Lowering.run`).  A worker that comes late, or not at
all (its CPU busy with another library's threads), only leaves more units to the others: the
call never waits for a worker to arrive, only for the units under way to finish.

One job at a time: a call that finds the workers busy (another Python thread's call) runs
alone, which gives the same results.
"""

from llvmlite import ir as llvm_ir

from symgrad.codegen.lower.abi import (
    ACTIVE,
    BUFFERS,
    BUSY,
    CLOSED,
    FUNCTION,
    GENERATION,
    JOBS_RUN,
    SIZES,
    STATE,
    THREADS,
)
from symgrad.codegen.lower.builder import c_function
from symgrad.codegen.lower.types import INDEX, POINTER

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

PARALLEL_TYPE = llvm_ir.FunctionType(llvm_ir.VoidType(),
                                      [POINTER, POINTER, INDEX, INDEX, POINTER])


def emit_spin(builder, function, ready, pause, yield_symbol, sleep_symbol=None, label="spin"):
    """Emit ``while not ready(builder): wait``, where waiting is a ``pause`` (with ``pause``:
    on x86), with
    ``sched_yield`` every 1024 spins, or, once ``IDLE_CYCLES`` have passed and
    ``sleep_symbol`` is given, a sleep of ``IDLE_SLEEP_US`` (``LONG_IDLE_SLEEP_US`` after
    ``LONG_IDLE`` times as long).  Leaves the builder after it."""
    module = function.module
    if sleep_symbol is not None:
        clock = c_function(module, "llvm.readcyclecounter", INDEX, [])
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
    if pause:
        builder.call(c_function(module, "llvm.x86.sse2.pause", llvm_ir.VoidType(), []), [])

    def call_libc(name, arguments, argument_types):
        builder.call(c_function(module, name, llvm_ir.IntType(32), argument_types), arguments)
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


def build(pause, yield_symbol, sleep_symbol):
    """The workers' module: ``symgrad.worker(block, index, seen)``, a worker's loop, and
    ``symgrad.run_parallel(block, function, sizes, buffers, threads, state)``, the calling
    thread's side of a job; waiting threads call ``yield_symbol`` and ``sleep_symbol`` (the
    registered ``sched_yield`` and ``usleep``) where given."""
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
        "!=", _load(b, block, GENERATION), b.load(seen_slot, typ=INDEX)),
        pause, yield_symbol, sleep_symbol, "idle")
    generation = _load(builder, block, GENERATION)
    builder.store(generation, seen_slot)
    threads = _load(builder, block, THREADS)
    job = [_load(builder, block, k) for k in (FUNCTION, SIZES, BUFFERS, STATE)]
    # The job read is the one of this generation (else a newer one came meanwhile: go on to it).
    thread = builder.add(index, INDEX(1))
    current = builder.icmp_signed("==", _load(builder, block, GENERATION), generation)
    enter = worker.append_basic_block("enter")
    builder.cbranch(builder.and_(current, builder.icmp_signed("<", thread, threads)), enter,
                    top)
    # Announce, then check the job is still open: the caller closes it, then waits until no
    # worker is inside (both in one total order: either it sees this worker or the worker
    # sees the job closed).
    builder.position_at_end(enter)
    active = _word(builder, block, ACTIVE)
    builder.atomic_rmw("add", active, INDEX(1), "seq_cst")
    run = worker.append_basic_block("run")
    leave = worker.append_basic_block("leave")
    builder.cbranch(builder.icmp_signed("==", _load(builder, block, CLOSED), generation),
                    leave, run)
    builder.position_at_end(run)
    function = builder.inttoptr(job[0], PARALLEL_TYPE.as_pointer())
    sizes, buffers, state = [builder.inttoptr(value, POINTER) for value in job[1:]]
    builder.call(function, [sizes, buffers, thread, threads, state])
    builder.atomic_rmw("add", _word(builder, block, JOBS_RUN), INDEX(1), "seq_cst")
    builder.branch(leave)
    builder.position_at_end(leave)
    builder.atomic_rmw("sub", active, INDEX(1), "seq_cst")
    builder.branch(top)

    # run(block, function, sizes, buffers, threads, state): the calling thread's side.
    runner = llvm_ir.Function(module, llvm_ir.FunctionType(
        llvm_ir.VoidType(), [POINTER, PARALLEL_TYPE.as_pointer(), POINTER, POINTER, INDEX,
                             POINTER]), "symgrad.run_parallel")
    block, callee, sizes, buffers, threads, state = runner.args
    builder = llvm_ir.IRBuilder(runner.append_basic_block("entry"))
    taken = builder.cmpxchg(_word(builder, block, BUSY), INDEX(0), INDEX(1), "seq_cst",
                            "seq_cst")
    shared = runner.append_basic_block("shared")
    alone = runner.append_basic_block("alone")
    builder.cbranch(builder.extract_value(taken, 1), shared, alone)
    builder.position_at_end(alone)
    builder.call(callee, [sizes, buffers, INDEX(0), INDEX(1), state])
    builder.ret_void()

    builder.position_at_end(shared)
    for slot, value in ((FUNCTION, callee), (SIZES, sizes), (BUFFERS, buffers),
                        (STATE, state)):
        _store(builder, block, slot, builder.ptrtoint(value, INDEX))
    _store(builder, block, THREADS, threads)
    generation = builder.add(builder.atomic_rmw("add", _word(builder, block, GENERATION),
                                                INDEX(1), "seq_cst"), INDEX(1))
    builder.call(callee, [sizes, buffers, INDEX(0), threads, state])
    # Every unit is done; close the job and wait for the workers inside it to leave.
    _store(builder, block, CLOSED, generation)
    emit_spin(builder, runner, lambda b: b.icmp_signed(
        "==", _load(b, block, ACTIVE), INDEX(0)), pause, yield_symbol, label="join")
    # No worker enters a closed job; nor does the block keep pointers into the kernel (its
    # code may be freed once the call returns) or into the caller's arrays.
    for slot in (FUNCTION, SIZES, BUFFERS, STATE):
        _store(builder, block, slot, INDEX(0))
    _store(builder, block, BUSY, INDEX(0))
    builder.ret_void()
    return module


