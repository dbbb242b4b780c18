"""Memory a process keeps per kernel compiled and dropped.

A notebook that recompiles as its user edits compiles many distinct kernels and drops each one;
whatever a dropped kernel leaves behind adds up.  Each row compiles kernels one after the
other, calls each once and drops it, and prints how much the process grew per kernel, measured
after a warm-up (first compiles fill process-wide things: the GEMM library, the workers' code,
SymPy's bounded cache) and after ``gc.collect()``:

* ``RSS KB``: growth of the resident set (``/proc/self/statm``) per kernel, after glibc's
  ``malloc_trim`` has given the allocator's free pages back (else the figure is mostly how
  much freed memory the allocator happens to keep: 0.5-2 MB either way over 100 tensor
  kernels);
* ``heap KB``: growth of the C heap in use (glibc's ``mallinfo2``: LLVM's and Python's
  allocations, not the pages an allocator keeps free) per kernel;
* ``ms``: compile (and call) time per kernel.

Cases, each in a process of its own:

* ``scalar cold``: ``x*y + k`` for distinct ``k``, no disk cache (every compile is LLVM's);
* ``scalar hits``: the same kernels again from a disk cache filled beforehand;
* ``scalar threads``: cold, each kernel called on 2**16 elements on two threads;
* ``tensor cold``: mean squared error of MLPs 4-w-1 of distinct widths ``w``, no disk cache;
* ``tensor hits``: the same from a disk cache filled beforehand;
* ``tensor threads``: cold, each kernel called twice on a batch large enough for the native
  worker threads (the second call runs on them);
* ``llvm pipeline``, ``llvm engine``: LLVM's pieces alone, per module: the optimisation
  pipeline and code generation of :func:`symgrad.codegen.compile.jit.compile_object` on a
  small kernel's module, and an MCJIT engine created, loaded with that object code and deleted.

``--profile`` adds, per case, the Python objects left (``tracemalloc``) and the five places
that allocated most of them (the heap column then counts tracemalloc's own records too).

    python benchmarks/memory.py [--quick] [--profile] [CASE ...]
"""

import argparse
import ctypes
import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

CASES = {
    # name: (kernels measured, warm-up kernels); --quick divides both by 4
    "scalar cold": (400, 60),
    "scalar hits": (400, 60),
    "scalar threads": (200, 40),
    "tensor cold": (60, 24),
    "tensor hits": (60, 12),
    "tensor threads": (40, 16),
    "llvm pipeline": (400, 40),
    "llvm engine": (400, 40),
}


def resident_bytes():
    """The resident set of this process, in bytes."""
    with open("/proc/self/statm") as stream:
        return int(stream.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


def settle():
    """Collect garbage and give the C heap's free pages back to the system (glibc), so that
    the resident set counts what is in use."""
    gc.collect()
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except AttributeError:
        pass


def heap_bytes():
    """Bytes of the C heap in use (allocated blocks, mapped ones included), or None without
    glibc's ``mallinfo2``."""
    try:
        mallinfo2 = ctypes.CDLL(None).mallinfo2
    except AttributeError:
        return None
    mallinfo2.restype = _MallInfo2
    info = mallinfo2()
    return info.uordblks + info.hblkhd


def _scalar(threads):
    import numpy as np

    import symgrad as sg
    x, y = sg.symbols("x y")
    if threads:
        sg.set_num_threads(2)
    values = np.linspace(-1.0, 1.0, 1 << 16) if threads else 0.5

    def compile_one(number):
        kernel = sg.compile(x * y + (number + 0.5), wrt=[x, y])
        kernel(values, 2.0)
    return compile_one


def _tensor(threads):
    import numpy as np

    import symgrad as sg
    X, Y = sg.tensor("X", ("n", 4)), sg.tensor("Y", ("n", 1))
    if threads:
        sg.set_num_threads(2)
    rows = 1 << 14 if threads else 8
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(rows, 4)), rng.normal(size=(rows, 1))

    def compile_one(number):
        net = sg.nn.MLP([4, 8 + number, 1], activation=sg.tanh, seed=0)
        loss = sg.losses.mean_squared_error(net(X), Y)
        kernel = sg.compile(loss, wrt=net.parameters(), inputs=[X, Y])
        for _ in range(2 if threads else 1):
            kernel(net.values(), x, y)
    return compile_one


def _small_module():
    import symgrad as sg
    from symgrad.autodiff.reverse import value_and_grad
    from symgrad.codegen.compile.jit import CompiledModule
    from symgrad.codegen.lower.elementwise import lower_elementwise as lower_function
    x, y = sg.symbols("x y")
    fused = value_and_grad(sg.trace(x * y + 3.5, wrt=[x, y]), ["x", "y"])
    return CompiledModule(lambda: lower_function(fused, "kernel", True), "memory").llvm_ir


def _pipeline(threads):
    from symgrad.codegen.compile.jit import compile_object
    text = _small_module()
    return lambda number: compile_object(text)


def _engine(threads):
    import llvmlite.binding as llvm

    from symgrad.codegen.compile.jit import compile_object, host_target_machine
    object_code, _ = compile_object(_small_module())

    def load(number):
        machine = host_target_machine()
        empty = llvm.parse_assembly("")
        empty.triple = machine.triple
        engine = llvm.create_mcjit_compiler(empty, machine)
        engine.add_object_file(llvm.ObjectFileRef.from_data(object_code))
        engine.finalize_object()
        engine.get_function_address("kernel")
        engine.close()
    return load


def _workload(case):
    kind, mode = case.split(" ", 1)
    builders = {"scalar": _scalar, "tensor": _tensor, "llvm pipeline": _pipeline,
                "llvm engine": _engine}
    return builders.get(kind, builders.get(case)), mode


def run_case(case, count, warm_up, profile):
    """Measure one case in this process; returns the row's figures."""
    from symgrad.codegen.compile import cache
    build, mode = _workload(case)
    directory = tempfile.mkdtemp(prefix="symgrad-memory-") if mode == "hits" else None
    cache.set_cache_dir(directory)
    compile_one = build(mode == "threads")
    if mode == "hits":
        for number in range(warm_up + count):       # fills the cache, not measured
            compile_one(number)
    for number in range(warm_up):
        compile_one(number)
    if profile:
        import tracemalloc
        tracemalloc.start(12)
    settle()
    rss, heap, start = resident_bytes(), heap_bytes(), time.perf_counter()
    if profile:
        before = tracemalloc.take_snapshot()
    for number in range(warm_up, warm_up + count):
        compile_one(number)
    elapsed = time.perf_counter() - start
    settle()
    row = {"case": case, "kernels": count, "ms": 1e3 * elapsed / count,
           "rss": (resident_bytes() - rss) / count / 1024,
           "heap": None if heap is None else (heap_bytes() - heap) / count / 1024}
    if profile:
        after = tracemalloc.take_snapshot()
        differences = after.compare_to(before, "traceback")
        row["python"] = sum(d.size_diff for d in differences) / count / 1024
        row["sites"] = [(d.size_diff / count, d.traceback.format()[-6:])
                        for d in differences[:5]]
    if directory is not None:
        shutil.rmtree(directory, ignore_errors=True)
    return row


def _cpu_name():
    try:
        with open("/proc/cpuinfo") as stream:
            for line in stream:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("cases", nargs="*", help=f"among {list(CASES)} (default: all)")
    parser.add_argument("--quick", action="store_true", help="a quarter of the kernels")
    parser.add_argument("--profile", action="store_true", help="Python objects left, by site")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.child:
        count, warm_up = json.loads(arguments.child)
        print(json.dumps(run_case(arguments.cases[0], count, warm_up, arguments.profile)))
        return
    cases = arguments.cases or list(CASES)
    unknown = sorted(set(cases) - set(CASES))
    if unknown:
        parser.error(f"unknown cases {unknown}; the cases are {list(CASES)}")
    print(f"{_cpu_name()}, {os.cpu_count()} CPUs; Python {sys.version.split()[0]}")
    print(f"{'case':<16} {'kernels':>7} {'ms':>8} {'RSS KB':>8} {'heap KB':>8}"
          + (f" {'Python KB':>10}" if arguments.profile else ""))
    for case in cases:
        count, warm_up = CASES[case]
        if arguments.quick:
            count, warm_up = max(count // 4, 1), max(warm_up // 4, 1)
        command = [sys.executable, __file__, case, "--child", json.dumps([count, warm_up])]
        if arguments.profile:
            command.append("--profile")
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        row = json.loads(output.strip().splitlines()[-1])
        heap = "-" if row["heap"] is None else f"{row['heap']:.1f}"
        line = (f"{row['case']:<16} {row['kernels']:>7} {row['ms']:>8.1f} {row['rss']:>8.1f} "
                f"{heap:>8}")
        if arguments.profile:
            line += f" {row['python']:>10.2f}"
        print(line, flush=True)
        for size, trace in row.get("sites", []):
            print(f"    {size / 1024:7.2f} KB per kernel from")
            for frame in trace:
                print(f"        {frame}")


if __name__ == "__main__":
    main()
