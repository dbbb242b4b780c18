"""The host's peak floating-point rate, measured: what "a share of the machine's peak" is out of.

A native loop keeps ``ACCUMULATORS`` independent vectors (at the width symgrad's GEMM uses)
in registers and updates each with one fused multiply-add per iteration,
``acc = acc * 0.5 + 1``: no loads, no stores, enough independent chains to cover the latency of
the multiply-add units.  Run on every core at once, it reaches the number of multiply-adds the
cores can start per second (two floating-point operations each), the rate no matrix product
can pass.  The values stay normal (they tend to 2), so no slow path is taken.
"""

import ctypes
import functools
import threading
import time

import numpy as np
from llvmlite import ir as llvm_ir

from symgrad.codegen.lower.types import INDEX, INTRINSIC_SUFFIX, POINTER, llvm_type

# Independent chains: more than latency x units of any current core (4 cycles x 2 units), and
# few enough (with the constants) to stay in 32 vector registers.
ACCUMULATORS = 16
SCALE, STEP = 0.5, 1.0


def _module(dtype, lanes):
    """``void peak(i64 count, ptr out)``: ``count`` iterations, then lane 0 of the sum of the
    accumulators stored at ``out``."""
    module = llvm_ir.Module(name=f"symgrad.peak.{dtype}")
    vector = llvm_ir.VectorType(llvm_type(dtype), lanes)
    fma = llvm_ir.Function(module, llvm_ir.FunctionType(vector, [vector] * 3),
                           f"llvm.fma.v{lanes}{INTRINSIC_SUFFIX[dtype]}")
    function = llvm_ir.Function(
        module, llvm_ir.FunctionType(llvm_ir.VoidType(), [INDEX, POINTER]), name="peak")
    count, out = function.args
    entry, body, done = (function.append_basic_block(name) for name in ("entry", "body", "done"))
    builder = llvm_ir.IRBuilder(entry)
    builder.branch(body)
    builder.position_at_end(body)
    index = builder.phi(INDEX)
    index.add_incoming(llvm_ir.Constant(INDEX, 0), entry)
    accumulators = []
    for k in range(ACCUMULATORS):
        accumulator = builder.phi(vector)
        accumulator.add_incoming(llvm_ir.Constant(vector, [float(k)] * lanes), entry)
        accumulators.append(accumulator)
    scale = llvm_ir.Constant(vector, [SCALE] * lanes)
    step = llvm_ir.Constant(vector, [STEP] * lanes)
    updated = [builder.call(fma, [accumulator, scale, step]) for accumulator in accumulators]
    following = builder.add(index, llvm_ir.Constant(INDEX, 1))
    index.add_incoming(following, body)
    for accumulator, value in zip(accumulators, updated):
        accumulator.add_incoming(value, body)
    builder.cbranch(builder.icmp_unsigned("<", following, count), body, done)
    builder.position_at_end(done)
    total = updated[0]
    for value in updated[1:]:
        total = builder.fadd(total, value)
    builder.store(builder.extract_element(total, llvm_ir.Constant(llvm_ir.IntType(32), 0)), out)
    builder.ret_void()
    return module


@functools.lru_cache(maxsize=None)
def probe(dtype):
    """``(function, lanes)``: the compiled loop for ``dtype`` (``function(count, address)``,
    a ctypes function, which releases the GIL) and its vector width in elements."""
    from symgrad.codegen.compile.jit import CompiledModule
    from symgrad.codegen.runtime.libraries import library
    lanes = library(dtype).vector_bytes // np.dtype(dtype).itemsize
    # Hand-written: no IR pipeline; the code generator's full register allocation keeps the
    # accumulators in registers.
    compiled = CompiledModule(lambda: _module(dtype, lanes), f"symgrad peak {dtype} x{lanes}",
                              opt_level=0, codegen_opt_level=3)
    function = ctypes.CFUNCTYPE(None, ctypes.c_int64, ctypes.c_void_p)(compiled.address("peak"))
    function._symgrad_module = compiled        # the engine lives as long as the function
    return function, lanes


def peak_flops(dtype, threads, seconds=0.1, repeats=3):
    """Floating-point operations per second of fused multiply-adds on ``threads`` threads at
    once (the best of ``repeats`` runs of about ``seconds`` each)."""
    function, lanes = probe(dtype)
    out = np.zeros(threads, dtype)
    per_iteration = 2 * ACCUMULATORS * lanes
    count = 1000
    while True:                                # iterations for about `seconds` on one thread
        start = time.perf_counter()
        function(count, out.ctypes.data)
        elapsed = time.perf_counter() - start
        if elapsed >= seconds / 4:
            count = max(1, int(count * seconds / elapsed))
            break
        count *= 4
    best = 0.0
    for _ in range(repeats):
        workers = [threading.Thread(target=function, args=(count, out[t:].ctypes.data))
                   for t in range(threads)]
        start = time.perf_counter()
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        elapsed = time.perf_counter() - start
        best = max(best, threads * count * per_iteration / elapsed)
    return best
