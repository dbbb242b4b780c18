"""A dropped kernel leaves nothing behind: its native code, its engine, its IR and the
interned nodes nobody else holds are freed at once (by reference counting, no garbage
collection needed); nothing process-wide (workers, runtime block, compile threads) keeps a
pointer into it; and the process does not grow with the number of kernels compiled and
dropped (slow tests, measured by benchmarks/memory.py)."""

import contextlib
import gc
import json
import pathlib
import subprocess
import sys
import weakref

import numpy as np
import pytest

import symgrad as sg
from symgrad import ir
from symgrad.autodiff.reverse import value_and_grad
from symgrad.codegen.compile import jit
from symgrad.codegen.compile.jit import CompiledModule
from symgrad.codegen.lower import abi
from symgrad.codegen.lower.elementwise import lower_elementwise as lower_function
from symgrad.codegen.runtime import process, workers
from symgrad.codegen.runtime import threads as runtime_threads

ROOT = pathlib.Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def no_garbage_collection():
    """Only reference counting frees objects inside (a cycle would stay)."""
    gc.collect()
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _references(kernel):
    """Weak references to a kernel, its compiled modules, its IR and one of its nodes (the
    tests name their arguments apart from other tests', whose live kernels would share the
    interned nodes)."""
    modules = [kernel.compiled] if hasattr(kernel, "compiled") else \
        [variant.compiled for variant in kernel._calls.variants.values()]
    # (A network keeps the graph of its last forward pass; the gradients are the kernel's.)
    node = kernel.function.outputs[-1]
    return [weakref.ref(kernel), weakref.ref(kernel.function), weakref.ref(node)] + \
        [weakref.ref(module) for module in modules]


def _assert_freed(references):
    alive = [reference() for reference in references if reference() is not None]
    assert not alive, f"still alive: {[type(obj).__name__ for obj in alive]}"


def test_a_dropped_scalar_kernel_is_freed_at_once():
    with no_garbage_collection():
        x, y = sg.symbols("freed_x freed_y")
        kernel = sg.compile(sg.tanh(x) * y + 0.125, wrt=[x, y])
        value, grads = kernel(0.5, 2.0)                            # the native fast entry
        assert value == pytest.approx(np.tanh(0.5) * 2 + 0.125, rel=1e-15)
        kernel(np.linspace(0, 1, 5), 2.0)                          # the general path
        kernel(np.float32(0.5), np.float32(2.0))                   # a float32 variant
        assert set(kernel._calls.variants) == {"float64", "float32"}
        references = _references(kernel)
        del kernel
        _assert_freed(references)


def test_a_dropped_tensor_kernel_is_freed_at_once():
    with no_garbage_collection():
        X, Y = sg.tensor("freed_X", ("n", 3)), sg.tensor("freed_Y", ("n", 1))
        net = sg.nn.MLP([3, 5, 1], activation=sg.tanh, seed=0, name="freed")
        kernel = sg.compile(sg.losses.mean_squared_error(net(X), Y), wrt=net.parameters(),
                            inputs=[X, Y])
        x, y = np.ones((4, 3)), np.ones((4, 1))
        kernel(net.values(), x, y)                                 # the native call entry
        kernel(dict(zip(kernel.param_names, net.values())), freed_X=x, freed_Y=y)  # Python
        references = _references(kernel)
        # What only this network and kernel used goes too, once the network is dropped.
        del kernel, net
        _assert_freed(references)


def test_function_kernels_and_trainers_are_freed_at_once():
    with no_garbage_collection():
        X = sg.tensor("freed_X", ("n", 2))
        kernel = sg.compile_function([(X * X).sum()], [X])
        assert kernel(np.ones((3, 2))) == (6.0,)
        references = _references(kernel)
        del kernel
        _assert_freed(references)

        Y = sg.tensor("freed_Y", ("n", 1))
        net = sg.nn.MLP([2, 3, 1], activation=sg.tanh, seed=1, name="freed")
        for fused in (True, False):
            trainer = sg.optim.Trainer(sg.losses.mean_squared_error(net(X), Y),
                                       net.parameters(), [X, Y], sg.optim.Adam(1e-2), fused)
            state = trainer.initial_state(net.values())
            trainer.step(net.values(), state, (np.ones((4, 2)), np.zeros((4, 1))), 1)
            references = _references(trainer.kernel)
            del trainer, state
            _assert_freed(references)


@pytest.fixture
def two_threads():
    previous = runtime_threads.set_num_threads(2)
    try:
        yield
    finally:
        runtime_threads.set_num_threads(previous)


@pytest.mark.skipif(runtime_threads.available_cpus() < 2, reason="needs two CPUs")
def test_workers_keep_no_pointer_into_a_kernel(two_threads):
    workers.start(1)
    X, W = sg.tensor("freed_X", ("n", 64)), sg.tensor("freed_W", (64, 64))
    loss = (sg.tanh(X @ W) ** 2).mean()
    x = np.random.default_rng(0).normal(size=(4096, 64))
    w = np.random.default_rng(1).normal(size=(64, 64)) / 8
    results = []
    for native in (True, False):            # the call entry, then the Python path
        with no_garbage_collection():
            kernel = sg.compile(loss, wrt=[W], inputs=[X])
            if not native:
                kernel._call_native = None
            for _ in range(2):
                results.append(kernel([w], x))
            references = _references(kernel)
            del kernel
            _assert_freed(references)
        block = workers._state["block"]
        # A call clears its job's words before it returns: no worker is left pointing at
        # the kernel's code (nor at the caller's arrays), so the kernel may go at once.
        assert [block[slot] for slot in (abi.FUNCTION, abi.SIZES, abi.BUFFERS,
                                         abi.STATE)] == [0, 0, 0, 0]
        assert block[abi.BUSY] == 0 and block[abi.ACTIVE] == 0
    for value, (grad,) in results[1:]:
        assert value == results[0][0]
        np.testing.assert_array_equal(grad, results[0][1][0])
    # The runtime block names the workers' code (process-wide) and no kernel's.
    assert process.runtime()[abi.RUNTIME_RUNNER] == \
        workers._compiled()[0].address("symgrad.run_parallel")


def test_entries_held_past_their_kernel_keep_its_code():
    # Whoever holds a kernel's native entry holds the code it runs (never a freed engine).
    x, y = sg.symbols("x y")
    kernel = sg.compile(x**3 * y, wrt=[x, y])
    entry = type(kernel).__call__
    module = weakref.ref(kernel._calls.variants["float64"].compiled)
    del kernel
    gc.collect()
    assert entry(2.0, 5.0) == (40.0, (60.0, 8.0))
    del entry
    assert module() is None

    X = sg.tensor("X", ("n", 2))
    tensor = sg.compile_function([(X * 3.0).sum()], [X])
    call = tensor._call_native
    module = weakref.ref(tensor.compiled)
    del tensor
    gc.collect()
    assert call(np.ones((4, 2)))[0] == 24.0
    del call
    assert module() is None


def _scalar_module(number, name):
    a = ir.input_node("a")
    function = value_and_grad(ir.Function([a], [ir.mul(a, ir.const(number + 0.5))]), ["a"])
    return lambda: lower_function(function, name)


def _finish_compiles():
    while jit._running:                   # (a compile may start another)
        jit._finish_background()


def test_a_module_dropped_while_it_compiles_is_freed_when_its_threads_end():
    with no_garbage_collection():
        compiled = CompiledModule(_scalar_module(1, "main"), "dropped while compiling",
                                  parts=[(_scalar_module(2, "part"), "a part")],
                                  background=True)
        reference = weakref.ref(compiled)
        del compiled                        # its compile is still running in a thread
        _finish_compiles()
        _assert_freed([reference])

    # When a part fails, the error is raised where the module is waited for; what the error's
    # traceback refers to (the module among them) goes with the error.
    def broken():
        raise RuntimeError("no module")
    compiled = CompiledModule(_scalar_module(3, "main"), "a part fails",
                              parts=[(broken, "broken")], background=True)
    with pytest.raises(RuntimeError, match="no module"):
        compiled.wait()
    reference = weakref.ref(compiled)
    del compiled
    _finish_compiles()
    gc.collect()
    _assert_freed([reference])


# -- Memory per kernel, measured by benchmarks/memory.py in processes of their own ---------

# (case, kernels, warm-up kernels, bound in KB per kernel).  Before kernels were freed, a cold
# scalar kernel kept 87 KB, a tensor kernel 598 KB (257 KB from the disk cache, 23 MB after
# large calls on the workers), and LLVM's optimisation pipeline alone 82 KB a module (llvmlite
# did not free it); the bounds are a quarter of that or less (now: 1-85 KB, see the README).
# The C heap in use, which no allocator's free pages blur, must stay under half the bound.
# Tensor kernels warm up longer: the resident set grows by 2-4 MB over the first few dozen
# (compile threads' stacks and allocator arenas), then stays.
BUDGETS = [
    ("llvm pipeline", 100, 10, 20),
    ("scalar cold", 1000, 50, 20),
    ("scalar hits", 100, 20, 20),
    ("scalar threads", 150, 20, 20),
    ("tensor cold", 40, 24, 150),
    ("tensor hits", 30, 5, 60),
    ("tensor threads", 20, 16, 400),      # (large calls: +-2 MB of allocator noise)
]


@pytest.mark.slow
@pytest.mark.parametrize("case, count, warm_up, bound", BUDGETS,
                         ids=[budget[0] for budget in BUDGETS])
def test_memory_per_kernel_compiled_and_dropped(case, count, warm_up, bound):
    if case.endswith("threads") and runtime_threads.available_cpus() < 2:
        pytest.skip("needs two CPUs")
    path = ROOT / "benchmarks" / "memory.py"
    output = subprocess.run([sys.executable, str(path), case, "--child",
                             json.dumps([count, warm_up])], check=True, capture_output=True,
                            text=True, timeout=900).stdout
    row = json.loads(output.strip().splitlines()[-1])
    assert row["kernels"] == count
    assert row["rss"] < bound, row
    if row["heap"] is not None:
        assert row["heap"] < bound / 2, row
