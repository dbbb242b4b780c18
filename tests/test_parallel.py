"""Threads over the batch: a large call shares the chunks of every step among threads, and the
results are the same, bit for bit, whatever the number of threads (and equal to the numpy
reference interpreter)."""

import dataclasses

import numpy as np
import pytest

import symgrad as sg
from symgrad.codegen.lower import abi
from symgrad.codegen.lower.schedule import CHUNK_ELEMENTS, chunking
from symgrad.codegen.runtime import process, workers
from symgrad.codegen.runtime import threads as runtime_threads
from symgrad.reference.evaluate import evaluate


@pytest.fixture
def threads():
    previous = runtime_threads.set_num_threads(None)
    yield runtime_threads.set_num_threads
    runtime_threads.set_num_threads(previous)


def _model(k=20, classes=7):
    # Reductions of every kind: over the batch (the loss, the bias gradient, a maximum), and
    # along rows (the softmax's log-sum-exp) within a step that is chunked over the batch.
    X = sg.tensor("X", ("n", k))
    T = sg.tensor("T", ("n", classes))
    W = sg.tensor("W", (classes, k))
    b = sg.tensor("b", (classes,))
    logits = X @ W.T + b
    loss = sg.losses.softmax_cross_entropy(logits, T) + 0.01 * (logits.max(axis=0) ** 2).sum()
    return sg.compile(loss, wrt=[W, b], inputs=[X, T]), (k, classes)


def _arguments(shape, n, seed):
    k, classes = shape
    rng = np.random.default_rng(seed)
    params = [rng.normal(size=(classes, k)), rng.normal(size=classes)]
    targets = np.zeros((n, classes))
    targets[np.arange(n), rng.integers(0, classes, n)] = 1.0
    return params, rng.normal(size=(n, k)), targets


@pytest.mark.parametrize("n, k, classes", [
    # just over the threshold (the (n, 7) steps count twice), a partial last chunk
    (abi.MIN_PARALLEL_ELEMENTS // 14 + 1, 20, 7),
    (abi.MIN_PARALLEL_ELEMENTS // 7, 20, 7),
    (8, 3, abi.MIN_PARALLEL_ELEMENTS // 8),   # rows longer than a chunk: a row per chunk
])
def test_results_do_not_depend_on_the_number_of_threads(threads, monkeypatch, n, k, classes):
    step, shape = _model(k, classes)
    params, x, t = _arguments(shape, n, seed=n)
    shared = []
    original = workers.run
    monkeypatch.setattr(workers, "run", lambda *arguments: (
        shared.append(arguments[3]), original(*arguments)))
    # As many threads as asked for (a kernel uses at most one per CPU).
    monkeypatch.setattr(runtime_threads, "available_cpus", lambda: 8)
    workers.start(7)
    before = workers.jobs_run()
    results = {}
    for count in (1, 2, 3, 8):
        threads(count)
        assert process.runtime()[abi.RUNTIME_THREADS] == count
        results[count] = step(params, x, t)            # the native entry runs them
    # The same through the Python path (the entry taken away), which says its thread count.
    call, step._call_native = step._call_native, None
    try:
        for count in (1, 2, 3, 8):
            threads(count)
            results[f"python {count}"] = step(params, x, t)
    finally:
        step._call_native = call
    assert shared == [1, 2, 3, 8]               # (one thread or several, natively: none)
    # Workers took part (a call never waits for them: a worker just woken up may find the
    # work done; a few more calls make sure they join).
    for _ in range(50):
        if workers.jobs_run() > before:
            break
        step(params, x, t)
    assert workers.jobs_run() > before
    value, grads = results[1]
    for count, (other_value, other_grads) in results.items():
        assert other_value == value, count
        for got, want in zip(other_grads, grads):
            np.testing.assert_array_equal(got, want, err_msg=f"{count} threads")
    reference = evaluate(step.function, *params, x, t)
    np.testing.assert_allclose(value, reference[0], rtol=1e-12)
    for got, want in zip(grads, reference[1:]):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_large_calls_run_on_threads_and_small_ones_in_one_call(threads, monkeypatch):
    step, shape = _model()
    calls = []
    original = workers.run

    def counting(*arguments):
        calls.append(arguments[3])
        return original(*arguments)
    monkeypatch.setattr(workers, "run", counting)
    monkeypatch.setattr(runtime_threads, "available_cpus", lambda: 2)
    step._call_native = None                    # the Python path, which reports its threads
    threads(2)
    step(*_arguments(shape, 8, seed=0))
    assert calls == []
    n = abi.MIN_PARALLEL_ELEMENTS // 7
    step(*_arguments(shape, n, seed=0))
    assert calls == [2]
    threads(1)
    step(*_arguments(shape, n, seed=0))
    assert calls == [2, 1]
    threads(4)                                  # at most one thread per CPU
    step(*_arguments(shape, n, seed=0))
    assert calls == [2, 1, 2]
    assert process.runtime()[abi.RUNTIME_THREADS] == 2     # and so for native calls


def test_a_call_that_finds_the_workers_busy_runs_alone(threads):
    # Two Python threads calling at once: one gets the workers, the other runs with one
    # thread; both give the results of a serial call.
    import concurrent.futures

    workers.start(1)
    step, shape = _model()
    arguments = _arguments(shape, abi.MIN_PARALLEL_ELEMENTS // 7, seed=3)
    threads(1)
    value, grads = step(*arguments)
    threads(2)
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: step(*arguments), range(16)))
    for other_value, other_grads in results:
        assert other_value == value
        for got, want in zip(other_grads, grads):
            np.testing.assert_array_equal(got, want)


def test_chunking_is_fixed_by_the_sizes():
    assert chunking(0, 10) == (CHUNK_ELEMENTS // 10, 0)
    assert chunking(1, 10**6) == (1, 1)
    per_chunk, count = chunking(10**6, 1)
    assert per_chunk == CHUNK_ELEMENTS and (count - 1) * per_chunk < 10**6 <= count * per_chunk


def test_thread_settings_are_checked(threads, monkeypatch):
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="threads must be a positive integer"):
            threads(bad)
    monkeypatch.setenv("SYMGRAD_NUM_THREADS", "3")
    assert runtime_threads.num_threads() == 3
    threads(2)
    assert runtime_threads.num_threads() == 2          # the setting wins over the environment
    threads(None)
    monkeypatch.setenv("SYMGRAD_NUM_THREADS", "many")
    with pytest.raises(ValueError, match="SYMGRAD_NUM_THREADS"):
        runtime_threads.num_threads()


_INHERITED = {}


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs fork")
def test_a_forked_child_runs_threaded_calls(threads):
    import multiprocessing

    step, shape = _model()
    arguments = _arguments(shape, abi.MIN_PARALLEL_ELEMENTS // 7, seed=1)
    threads(2)
    want_value, _ = step(*arguments)          # the parent's pool now has threads
    _INHERITED.update(step=step, arguments=arguments)
    try:
        with multiprocessing.get_context("fork").Pool(1) as pool:
            got_value = pool.apply_async(_call_in_child).get(timeout=60)
    finally:
        _INHERITED.clear()
    assert got_value == want_value


def _call_in_child():
    return float(_INHERITED["step"](*_INHERITED["arguments"])[0])


@pytest.mark.parametrize("count", [runtime_threads.MIN_PARALLEL_MAP_ELEMENTS + 4097, 3, 1])
def test_elementwise_kernels_with_broadcast_arguments_and_threads(threads, count):
    # A scalar broadcast to every element is read from a block of copies (so that the loop
    # vectorises); blocks are shared among threads: results equal the reference interpreter
    # and do not depend on the number of threads.
    import sympy

    x, y, z = sg.symbols("x y z")
    f = sympy.tanh(x) * sympy.exp(-y**2) + sympy.log(1 + x**2) * z
    kernel = sg.compile(f, wrt=[x, y], inputs=[z])
    rng = np.random.default_rng(count)
    xs = rng.normal(size=count)
    arguments = [(xs, 0.25, 2.0), (xs, rng.normal(size=count), np.float64(-1.5)),
                 (xs[::-1], np.array([0.5]), rng.normal(size=count)),
                 (xs.astype(np.float32), np.float32(0.5), np.float32(3.0))]
    for args in arguments:
        results = {}
        for thread_count in (1, 2, 3):
            threads(thread_count)
            results[thread_count] = kernel(*args)
        value, grads = results[1]
        for other_value, other_grads in results.values():
            np.testing.assert_array_equal(other_value, value)
            for got, want in zip(other_grads, grads):
                np.testing.assert_array_equal(got, want)
        dtype = np.asarray(value).dtype
        reference = evaluate(kernel.function.with_dtype(dtype.name),
                             *[np.broadcast_to(np.asarray(a, dtype), (count,)) for a in args])
        tolerance = 1e-13 if dtype == np.float64 else 1e-5
        for got, want in zip([value, *grads], reference):
            np.testing.assert_allclose(got, want, rtol=tolerance, atol=tolerance)


_FIRST_CALL = """
import numpy as np
import symgrad as sg
from symgrad.codegen.lower import abi
from symgrad.codegen.runtime import process, threads as runtime_threads, workers

runtime_threads.available_cpus = lambda: 2
runtime_threads.set_num_threads(2)
X = sg.tensor("X", ("n", 20))
W = sg.tensor("W", (7, 20))
step = sg.compile(((X @ W.T) ** 2).sum(), wrt=[W], inputs=[X])
rng = np.random.default_rng(0)
w, x = rng.normal(size=(7, 20)), rng.normal(size=(abi.MIN_PARALLEL_ELEMENTS // 7, 20))
compiled = workers.compile_soon()
assert compiled is workers.compile_soon()       # started by the compile, once
ready = "wait" in __import__("sys").argv
if ready:
    compiled.wait()
else:
    compiled.done = lambda: False              # as if still being built
first = step([w], x)                           # alone, whatever the workers' code
assert not workers._state["ready"] and workers.jobs_run() == 0
second = step([w], x)                          # starts the workers where their code is there
assert workers._state["ready"] == ready
assert second[0] == first[0] and np.array_equal(second[1][0], first[1][0])
if not ready:
    del compiled.done
for _ in range(100):
    again = step([w], x)
    assert again[0] == first[0] and np.array_equal(again[1][0], first[1][0])
    if workers.jobs_run():
        break
print("workers took part:", workers.jobs_run() > 0)
"""


@pytest.mark.parametrize("ready", [False, True])
def test_the_first_large_call_runs_alone_and_the_next_starts_the_workers(tmp_path, ready):
    # In a fresh process: the workers' code is built in the background from the kernel's
    # compile on.  The first large call runs alone; the next one starts the workers where
    # their code is ready, else it runs alone too, without waiting for it.  Later calls share
    # the work with them, with the same results.
    import subprocess
    import sys

    completed = subprocess.run([sys.executable, "-c", _FIRST_CALL] + ["wait"] * ready,
                               capture_output=True, text=True, timeout=300,
                               env={**__import__("os").environ,
                                    "SYMGRAD_CACHE_DIR": str(tmp_path)})
    assert completed.returncode == 0, completed.stderr
    assert "workers took part: True" in completed.stdout


def test_more_threads_asked_for_start_more_workers(threads, monkeypatch):
    monkeypatch.setattr(runtime_threads, "available_cpus", lambda: 4)
    workers.start(1)
    threads(4)
    assert workers._state["workers"] >= 3
    assert process.runtime()[abi.RUNTIME_THREADS] == 4


def _folded(kernel):
    """The product steps of a kernel whose next step runs inside them."""
    from symgrad.codegen.lower import matmul
    plan = kernel.schedule
    return [number for number, step in enumerate(plan.steps)
            if step.kind == "matmul" and matmul.epilogue(plan, number)]


def test_which_steps_run_inside_the_product_before_them():
    A = sg.tensor("A", (40, 20))
    W = sg.tensor("W", (20, 40))
    product = A @ W
    # A map over the product, read element by element: inside it.
    assert _folded(sg.compile_function([sg.tanh(product) + 1.0], [A, W])) == [0]
    # Read through a reshape, in a loop of another shape: not inside it.
    assert _folded(sg.compile_function([product.reshape((80, 20)) * 2.0], [A, W])) == []
    # A reduction (its order over the rows is fixed by the chunks): not inside it.
    assert _folded(sg.compile_function([(sg.tanh(product) * 2.0).sum(axis=0)], [A, W])) == []
    # The transpose of a product is the product of the transposes, a step of its own; the
    # map that reads both runs inside the second.
    square = sg.tensor("S", (40, 40)) @ sg.tensor("V", (40, 40))
    kernel = sg.compile_function([sg.tanh(square) + square.T],
                                 [sg.tensor("S", (40, 40)), sg.tensor("V", (40, 40))])
    assert [step.kind for step in kernel.schedule.steps] == ["matmul", "matmul", "elementwise"]
    assert _folded(kernel) == [1]
    # An MLP step: the hidden layers' bias and activation are inside their products, the
    # backward steps (which sum over the batch for the bias gradients) are steps of their own.
    X = sg.tensor("X", ("n", 40))
    T = sg.tensor("T", ("n", 10))
    net = sg.nn.MLP([40, 30, 20, 10], activation=sg.tanh, output_activation=None)
    step = sg.compile(sg.losses.softmax_cross_entropy(net(X), T), net.parameters(), [X, T])
    # (The step stores the pre-activation too: tanh's slope 4 sigmoid(2z) sigmoid(-2z) reads
    # it.)
    assert ["tanh" in {node.op.value for node in step.schedule.steps[number + 1].nodes}
            for number in _folded(step)] == [True, True]


def test_a_layer_inside_its_product_gives_the_bits_of_a_step_of_its_own(threads, monkeypatch):
    # Units of 32 or 16 columns (partial tiles included: 80 and 50 columns), shared among
    # threads; each computes its columns of the product, then their bias and activation.
    from symgrad.codegen import TensorKernel
    from symgrad.codegen.compile import cache
    previous = cache.set_cache_dir(None)
    monkeypatch.setattr(runtime_threads, "available_cpus", lambda: 8)
    workers.start(7)
    try:
        for dtype in ("float64", "float32"):
            X = sg.tensor("X", ("n", 64), dtype)
            T = sg.tensor("T", ("n", 10), dtype)
            net = sg.nn.MLP([64, 80, 50, 10], activation=sg.tanh, output_activation=None,
                            seed=4, dtype=dtype)
            loss = sg.losses.softmax_cross_entropy(net(X), T)
            rng = np.random.default_rng(5)
            x = rng.normal(size=(1500, 64)).astype(dtype)
            t = np.eye(10, dtype=dtype)[rng.integers(0, 10, 1500)]
            kernels = {True: sg.compile(loss, net.parameters(), [X, T])}
            separate = dataclasses.replace(kernels[True].target, epilogues=False)
            kernels[False] = TensorKernel(kernels[True].function, 6, target=separate)
            assert _folded(kernels[True]) == [0, 2]
            results = {}
            for inside, kernel in kernels.items():
                for count in (1, 2, 3):
                    threads(count)
                    results[inside, count] = kernel(net.values(), x, t)
            # Large enough to be shared: the Python path says how many threads it ran on.
            shared = []
            original = workers.run
            with monkeypatch.context() as patch:
                patch.setattr(workers, "run", lambda *arguments: (
                    shared.append(arguments[3]), original(*arguments)))
                patch.setattr(kernels[True], "_call_native", None)
                results[True, "python"] = kernels[True](net.values(), x, t)
            assert shared == [3]
            value, grads = results[False, 1]
            for key, (other_value, other_grads) in results.items():
                assert other_value == value, (dtype, key)
                for got, want in zip(other_grads, grads):
                    np.testing.assert_array_equal(got, want, err_msg=f"{dtype} {key}")
            reference = evaluate(kernels[True].function, *net.values(), x, t)
            tolerance = 1e-10 if dtype == "float64" else 2e-4
            np.testing.assert_allclose(value, reference[0], rtol=tolerance)
            for got, want in zip(grads, reference[1:]):
                np.testing.assert_allclose(got, want, rtol=tolerance, atol=tolerance)
    finally:
        cache.set_cache_dir(previous)
