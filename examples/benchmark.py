"""symgrad against its peers on the CPU: one table per workload, ratios from the same run.

Workloads (median of several repeats; every result checked against a float64 numpy reference):

* W1 scalar call: f(x, y) = x^2 + xy + (x+y)^2, value and gradient at one point, one call at a
  time (hand-written Python, sympy.lambdify, JAX jit(value_and_grad), torch).
* W2 batched activation: L = sum(mish(x) * w) and dL/dx for 1e6 elements, float64 and float32.
* W3 MLP step: 784-128-10 and 784-256-128-10, tanh, softmax cross-entropy, batch 128, float32
  and float64: loss and all parameter gradients (hand-written numpy backprop, torch, JAX).
* W4 tiny network: XOR 2-4-1, sigmoid, BCE, batch 4, float64: one forward+backward call.
* W5 compile time: declaration to first gradient for W1 and W3, cold and with the disk cache.
* W6 GMM objective: ADBench's Gaussian mixture log-likelihood (no Wishart prior), d=64, k=100,
  n=1000, float64: value and gradient w.r.t. the weights, means, log-diagonals and lower
  triangles of the k inverse Cholesky factors (hand-written numpy, JAX, torch); symgrad's
  compile time.
* W7 bundle adjustment: the Snavely reprojection residuals (Rodrigues rotation, translation,
  focal length, two radial distortion terms) of 100 cameras, 10,000 points and 100,000
  observations, float64: the residuals, J^T u (a vector-Jacobian product) and J v (symgrad:
  reverse over reverse), checked against central differences of the numpy residuals.

In W6 and W7 symgrad and torch run on every core and on one thread; JAX, whose threads are set
when it is imported, on every core, and on one core in a process of its own.

First the machine's limits: its peak FLOP/s (``benchmarks/peak.py``: fused multiply-adds on every
core at once, the rate no matrix product passes), numpy's 1024x1024 matmul rate with the BLAS
kernels it runs, and memory copy bandwidth.  W3 gives the rate of symgrad's matrix products
over the whole step as a share of that peak.

Peers are optional (the ``bench`` extra, or ``pip install jax`` and
``pip install torch==2.13.0``); a missing one is left out of the tables.

    python examples/benchmark.py            # add --quick for fewer repeats
    python examples/benchmark.py w2 w3      # some workloads only
    python examples/benchmark.py w6 w7 --quick
"""

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time
import timeit

import numpy as np
import sympy

import symgrad as sg

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "benchmarks"))
import peak  # noqa: E402  (benchmarks/peak.py: the peak-rate probe)

try:
    import torch
    torch.set_num_threads(os.cpu_count() or 1)
except ImportError:
    torch = None
try:
    import jax
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
except ImportError:
    jax = None


# Seconds to wait before each timing: thread pools (OpenBLAS's, torch's, XLA's, symgrad's)
# spin for a while after their last job and would take a core from the one timed next
# (measured here: symgrad's W3 step right after numpy's ran on one core for 0.1-0.2 s).
SETTLE = 0.5
# Seconds each timing lasts, at least (the calls in a timing run back to back).
TIMING = 0.05


def _calls_per_timing(function):
    number = 1
    while timeit.timeit(function, number=number) < TIMING and number < 1_000_000:
        number *= 4
    return number


def measure(rows, repeats):
    """``rows`` of ``(name, function, ok)`` -> ``(name, median seconds per call, ok)``.

    The implementations are timed in turns, ``repeats`` rounds of one timing each, so that
    the host's slow and fast moments (shared cores) fall on all of them alike.  Before each
    timing: a pause for the previous implementation's threads to go idle (one pause in all
    for a single implementation), then a few untimed calls, which wake the timed one's own
    threads."""
    numbers = []
    for _, function, _ in rows:
        function()                                 # warm up (and JIT for JAX)
        numbers.append(_calls_per_timing(function))
    times = [[] for _ in rows]
    time.sleep(SETTLE)
    for _ in range(repeats):
        for (_, function, _), number, seconds in zip(rows, numbers, times):
            if len(rows) > 1:                      # (after another implementation)
                time.sleep(SETTLE)
            timeit.timeit(function, number=max(1, number // 16))
            seconds.append(timeit.timeit(function, number=number) / number)
    return [(name, float(np.median(seconds)), ok)
            for (name, _, ok), seconds in zip(rows, times)]


def median_time(function, repeats):
    """Median seconds per call of ``function`` alone (see :func:`measure`)."""
    return measure([("", function, True)], repeats)[0][1]


def table(title, rows, baseline="symgrad"):
    """rows: list of (name, seconds or None, ok), from :func:`measure`."""
    reference = next((t for name, t, _ in rows if name == baseline), None)
    print(f"\n{title}")
    print(f"  {'implementation':<28} {'median':>12} {'/ symgrad':>10}  check")
    for name, seconds, ok in rows:
        if seconds is None:
            print(f"  {name:<28} {'n/a':>12}")
            continue
        unit, scale = ("us", 1e6) if seconds < 1e-3 else ("ms", 1e3)
        ratio = seconds / reference if reference else float("nan")
        print(f"  {name:<28} {seconds * scale:>9.2f} {unit} {ratio:>10.2f}  "
              f"{'ok' if ok else 'MISMATCH'}")


# ---------------------------------------------------------------------------------------------

def _blas_kernel():
    """numpy's BLAS and the kernels it runs (threadpoolctl, from the examples extra)."""
    try:
        import threadpoolctl
    except ImportError:
        return "numpy's BLAS"
    for pool in threadpoolctl.threadpool_info():
        if pool.get("user_api") == "blas":
            return f"{pool.get('internal_api')} ({pool.get('architecture')} kernels)"
    return "numpy's BLAS"


def machine_limits():
    """Print the machine's practical limits; returns its peak GFLOP/s per dtype (fused
    multiply-adds on every core: the rate no matrix product passes)."""
    threads = os.cpu_count() or 1
    peaks = {dtype: peak.peak_flops(dtype, threads) / 1e9 for dtype in ("float32", "float64")}
    rates = {}
    for dtype in ("float32", "float64"):
        a = np.random.default_rng(0).standard_normal((1024, 1024)).astype(dtype)
        rates[dtype] = 2 * 1024**3 / median_time(lambda: a @ a, 5) / 1e9
    big = np.ones(25_000_000, np.float32)
    out = np.empty_like(big)
    copy = median_time(lambda: np.copyto(out, big), 5)
    print(f"machine: {threads} cores; peak {peaks['float32']:.0f} GFLOP/s in float32, "
          f"{peaks['float64']:.0f} in float64 (fused multiply-adds on every core); "
          f"numpy 1024x1024 matmul {rates['float32']:.1f} and {rates['float64']:.1f} GFLOP/s "
          f"with {_blas_kernel()}; memory copy {2 * big.nbytes / copy / 1e9:.1f} GB/s")
    return peaks


def _matmul_flops(function, sizes):
    """Floating-point operations of the matrix products of a tensor IR function."""
    def size(d):
        return sizes[d] if isinstance(d, str) else d
    return sum(2 * size(node.args[0].shape[0]) * size(node.args[0].shape[1])
               * size(node.args[1].shape[1]) for node in function.nodes
               if node.op.value == "matmul")


def w1(repeats):
    x, y = sg.symbols("x y")
    f = x**2 + x * y + (x + y)**2
    kernel = sg.compile(f, wrt=[x, y])
    expected = (4.0, (6.0, 5.0))

    def python(a, b):
        return a * a + a * b + (a + b) ** 2, (4 * a + 3 * b, 3 * a + 2 * b)
    lambdified = sympy.lambdify((x, y), [f, sympy.diff(f, x), sympy.diff(f, y)])
    rows = [("symgrad", lambda: kernel(3.0, -2.0), kernel(3.0, -2.0) == expected),
            ("hand-written Python", lambda: python(3.0, -2.0), python(3.0, -2.0) == expected),
            ("sympy.lambdify", lambda: lambdified(3.0, -2.0),
             lambdified(3.0, -2.0) == [4.0, 6.0, 5.0])]
    if jax is not None:
        function = jax.jit(jax.value_and_grad(
            lambda a, b: a * a + a * b + (a + b) ** 2, argnums=(0, 1)))
        result = function(3.0, -2.0)
        rows.append(("JAX jit(value_and_grad)",
                     lambda: jax.block_until_ready(function(3.0, -2.0)),
                     float(result[0]) == 4.0 and tuple(map(float, result[1])) == (6.0, 5.0)))
    if torch is not None:
        def torch_call():
            a = torch.tensor(3.0, dtype=torch.float64, requires_grad=True)
            b = torch.tensor(-2.0, dtype=torch.float64, requires_grad=True)
            value = a * a + a * b + (a + b) ** 2
            value.backward()
            return value.item(), (a.grad.item(), b.grad.item())
        rows.append(("torch (autograd)", torch_call, torch_call() == expected))
    rows = measure(rows, repeats)
    table("W1 scalar call: f = x^2 + xy + (x+y)^2, value and gradient at one point", rows)


def _mish_reference(x, w):
    x = x.astype(np.float64)
    w = w.astype(np.float64)
    softplus = np.logaddexp(0, x)
    tanh_sp = np.tanh(softplus)
    sigmoid = 1 / (1 + np.exp(-x))
    return np.sum(x * tanh_sp * w), w * (tanh_sp + x * (1 - tanh_sp**2) * sigmoid)


def w2(repeats, size=1_000_000):
    rng = np.random.default_rng(0)
    for dtype in ("float64", "float32"):
        x = rng.uniform(-5, 5, size).astype(dtype)
        w = rng.uniform(-1, 1, size).astype(dtype)
        value_ref, grad_ref = _mish_reference(x, w)
        tolerance = 1e-9 if dtype == "float64" else 2e-3

        def close(value, grad):
            return (abs(float(value) - value_ref) <= tolerance * np.sum(np.abs(w)) and
                    np.allclose(np.asarray(grad, np.float64), grad_ref, rtol=tolerance,
                                atol=tolerance))
        X = sg.tensor("x", (size,), dtype)
        W = sg.tensor("w", (size,), dtype)
        step = sg.compile((sg.mish(X) * W).sum(), wrt=[X], inputs=[W])
        value, (grad,) = step([x], w)
        rows = [("symgrad", lambda: step([x], w), close(value, grad))]

        def numpy_step():
            with np.errstate(over="ignore"):
                softplus = np.logaddexp(0, x)
                tanh_sp = np.tanh(softplus)
                sigmoid = 1 / (1 + np.exp(-x))
            return np.sum(x * tanh_sp * w), w * (tanh_sp + x * (1 - tanh_sp * tanh_sp) * sigmoid)
        rows.append(("numpy (hand-written)", numpy_step, close(*numpy_step())))
        if torch is not None:
            tx, tw = torch.from_numpy(x), torch.from_numpy(w)

            def torch_step():
                xx = tx.clone().requires_grad_(True)
                loss = (torch.nn.functional.mish(xx) * tw).sum()
                loss.backward()
                return loss.item(), xx.grad.numpy()
            rows.append(("torch", torch_step, close(*torch_step())))
        if jax is not None:
            jx, jw = jnp.asarray(x), jnp.asarray(w)
            function = jax.jit(jax.value_and_grad(
                lambda a, b: jnp.sum(a * jnp.tanh(jax.nn.softplus(a)) * b)))
            result = function(jx, jw)
            rows.append(("JAX jit(value_and_grad)",
                         lambda: jax.block_until_ready(function(jx, jw)),
                         close(result[0], np.asarray(result[1]))))
        rows = measure(rows, repeats)
        table(f"W2 batched activation: sum(mish(x) * w) and dL/dx, 1e6 elements, {dtype}", rows)


def _numpy_mlp(weights, biases, x, y):
    activations = [x]
    for k, (w, b) in enumerate(zip(weights, biases)):
        z = activations[-1] @ w.T + b
        activations.append(z if k == len(weights) - 1 else np.tanh(z))
    logits = activations[-1]
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_softmax = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    n = x.shape[0]
    loss = -np.sum(y * log_softmax) / n
    delta = (np.exp(log_softmax) - y) / n
    grads = []
    for k in reversed(range(len(weights))):
        grads = [delta.T @ activations[k], delta.sum(axis=0)] + grads
        if k:
            delta = (delta @ weights[k]) * (1 - activations[k] ** 2)
    return loss, grads


def w3(repeats, peaks, batch=128):
    rng = np.random.default_rng(0)
    for sizes in ([784, 128, 10], [784, 256, 128, 10]):
        for dtype in ("float32", "float64"):
            X = sg.tensor("X", ("n", sizes[0]), dtype)
            Y = sg.tensor("Y", ("n", sizes[-1]), dtype)
            net = sg.nn.MLP(sizes, activation=sg.tanh, output_activation=None, dtype=dtype)
            step = sg.compile(sg.losses.softmax_cross_entropy(net(X), Y), net.parameters(),
                              [X, Y])
            x = rng.standard_normal((batch, sizes[0])).astype(dtype)
            y = np.eye(sizes[-1], dtype=dtype)[rng.integers(0, sizes[-1], batch)]
            values = net.values()
            loss_ref, grads_ref = _numpy_mlp([v.astype(np.float64) for v in values[0::2]],
                                             [v.astype(np.float64) for v in values[1::2]],
                                             x.astype(np.float64), y.astype(np.float64))
            tolerance = 1e-9 if dtype == "float64" else 1e-3

            def close(loss, grads):
                return abs(float(loss) - loss_ref) <= tolerance * (1 + abs(loss_ref)) and all(
                    np.allclose(np.asarray(g, np.float64), r, rtol=tolerance, atol=tolerance)
                    for g, r in zip(grads, grads_ref))
            rows = [("symgrad", lambda: step(values, x, y), close(*step(values, x, y)))]
            rows.append(("numpy (hand-written)",
                         lambda: _numpy_mlp(values[0::2], values[1::2], x, y),
                         close(*_numpy_mlp(values[0::2], values[1::2], x, y))))
            if torch is not None:
                tensors = [torch.from_numpy(v.copy()).requires_grad_(True) for v in values]
                tx, ty = torch.from_numpy(x), torch.from_numpy(y)

                def torch_step():
                    for t in tensors:
                        t.grad = None
                    a = tx
                    for k in range(0, len(tensors), 2):
                        a = a @ tensors[k].T + tensors[k + 1]
                        if k + 2 < len(tensors):
                            a = torch.tanh(a)
                    loss = torch.nn.functional.cross_entropy(a, ty)
                    loss.backward()
                    return loss.item(), [t.grad.numpy() for t in tensors]
                rows.append(("torch", torch_step, close(*torch_step())))
            if jax is not None:
                def jax_loss(params, a, target):
                    for k in range(0, len(params), 2):
                        a = a @ params[k].T + params[k + 1]
                        if k + 2 < len(params):
                            a = jnp.tanh(a)
                    return -jnp.mean(jnp.sum(target * jax.nn.log_softmax(a), axis=1))
                function = jax.jit(jax.value_and_grad(jax_loss))
                jparams = [jnp.asarray(v) for v in values]
                jx, jy = jnp.asarray(x), jnp.asarray(y)
                result = function(jparams, jx, jy)
                rows.append(("JAX jit(value_and_grad)",
                             lambda: jax.block_until_ready(function(jparams, jx, jy)),
                             close(result[0], [np.asarray(g) for g in result[1]])))
            title = f"W3 MLP step {'-'.join(map(str, sizes))}, tanh, softmax CE, batch {batch}"
            rows = measure(rows, repeats)
            table(f"{title}, {dtype}", rows)
            gflops = _matmul_flops(step.function, {"n": batch}) / rows[0][1] / 1e9
            print(f"  symgrad: {gflops:.1f} GFLOP/s in its matrix products, "
                  f"{100 * gflops / peaks[dtype]:.0f}% of the machine's {dtype} peak")


def w4(repeats):
    X = sg.tensor("X", ("n", 2))
    T = sg.tensor("T", ("n", 1))
    net = sg.nn.MLP([2, 4, 1], activation=sg.sigmoid, seed=0)
    step = sg.compile(sg.losses.binary_cross_entropy(net(X), T), net.parameters(), [X, T])
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], float)
    t = np.array([[0], [1], [1], [0]], float)
    values = net.values()
    loss_ref = float(step(values, x, t)[0])
    grads_ref = step(values, x, t)[1]
    rows = [("symgrad", lambda: step(values, x, t), True)]

    def close(loss, grads):
        return abs(float(loss) - loss_ref) < 1e-12 and all(
            np.allclose(np.asarray(g), r, rtol=1e-9, atol=1e-12) for g, r in zip(grads, grads_ref))
    if torch is not None:
        tensors = [torch.from_numpy(v.copy()).requires_grad_(True) for v in values]
        tx, tt = torch.from_numpy(x), torch.from_numpy(t)

        def torch_step():
            for p in tensors:
                p.grad = None
            hidden = torch.sigmoid(tx @ tensors[0].T + tensors[1])
            out = torch.sigmoid(hidden @ tensors[2].T + tensors[3])
            loss = torch.nn.functional.binary_cross_entropy(out, tt)
            loss.backward()
            return loss.item(), [p.grad.numpy() for p in tensors]
        rows.append(("torch", torch_step, close(*torch_step())))
    if jax is not None:
        def jax_loss(params, a, target):
            hidden = jax.nn.sigmoid(a @ params[0].T + params[1])
            z = hidden @ params[2].T + params[3]
            return jnp.mean(jax.nn.softplus(z) - target * z)
        function = jax.jit(jax.value_and_grad(jax_loss))
        jparams = [jnp.asarray(v) for v in values]
        result = function(jparams, jnp.asarray(x), jnp.asarray(t))
        rows.append(("JAX jit(value_and_grad)",
                     lambda: jax.block_until_ready(function(jparams, x, t)),
                     close(result[0], [np.asarray(g) for g in result[1]])))
    rows = measure(rows, repeats)
    table("W4 tiny network: XOR 2-4-1, sigmoid, BCE, batch 4, float64", rows)


# Each snippet prints two times: declaring the model, then compiling it and running the first
# gradient.  Run in fresh processes, after the imports (not counted).
_W5_SNIPPETS = {
    ("symgrad", "W1"): """
import time
start = time.perf_counter()
import symgrad as sg
imported = time.perf_counter()
x, y = sg.symbols("x y")
f = x**2 + x*y + (x + y)**2
declared = time.perf_counter()
k = sg.compile(f, wrt=[x, y]); k(3.0, -2.0)
print(imported - start, declared - imported, time.perf_counter() - declared)
""",
    ("symgrad", "W3"): """
import time
start = time.perf_counter()
import numpy as np
import symgrad as sg
imported = time.perf_counter()
X = sg.tensor("X", ("n", 784), "float32"); Y = sg.tensor("Y", ("n", 10), "float32")
net = sg.nn.MLP([784, 128, 10], activation=sg.tanh, output_activation=None, dtype="float32")
loss = sg.losses.softmax_cross_entropy(net(X), Y)
declared = time.perf_counter()
step = sg.compile(loss, net.parameters(), [X, Y])
step(net.values(), np.zeros((128, 784), np.float32), np.eye(10, dtype=np.float32)[:1].repeat(128, 0))
print(imported - start, declared - imported, time.perf_counter() - declared)
""",
    ("JAX", "W1"): """
import time
start = time.perf_counter()
import jax
imported = time.perf_counter()
f = jax.jit(jax.value_and_grad(lambda x, y: x**2 + x*y + (x + y)**2, argnums=(0, 1)))
declared = time.perf_counter()
jax.block_until_ready(f(3.0, -2.0))
print(imported - start, declared - imported, time.perf_counter() - declared)
""",
    ("JAX", "W3"): """
import time
start = time.perf_counter()
import numpy as np
import jax, jax.numpy as jnp
imported = time.perf_counter()
rng = np.random.default_rng(0)
params = [rng.standard_normal(s).astype(np.float32) * 0.05 for s in [(128, 784), (128,), (10, 128), (10,)]]
def loss(p, a, t):
    a = jnp.tanh(a @ p[0].T + p[1]); a = a @ p[2].T + p[3]
    return -jnp.mean(jnp.sum(t * jax.nn.log_softmax(a), axis=1))
f = jax.jit(jax.value_and_grad(loss))
declared = time.perf_counter()
jax.block_until_ready(f(params, np.zeros((128, 784), np.float32), np.eye(10, dtype=np.float32)[:1].repeat(128, 0)))
print(imported - start, declared - imported, time.perf_counter() - declared)
""",
}


def _fresh_process(snippet, env):
    out = subprocess.run([sys.executable, "-c", snippet], env=env, capture_output=True,
                         text=True, check=True).stdout
    return [float(t) for t in out.split()]


def w5(repeats=3):
    print(f"\nW5 compile time, in fresh processes from their start: the imports (symgrad loads "
          f"SymPy on the first declaration and LLVM on the first compile), the declaration, "
          f"then compile and first gradient; the total cold and with the disk cache; median of "
          f"{repeats}")
    print(f"  {'implementation':<16} {'workload':<9} {'import':>9} {'declare':>9} "
          f"{'compile':>9} {'total, cold':>12} {'with disk cache':>16}")
    # The implementations take turns within each repeat, so that the machine's drift over
    # the minutes of the run falls on all of them alike.
    runs = [(key, snippet) for key, snippet in _W5_SNIPPETS.items()
            if key[0] != "JAX" or jax is not None]
    cold = {key: [] for key, _ in runs}
    cached = {key: [] for key, _ in runs}
    for _ in range(repeats):
        for key, snippet in runs:
            with tempfile.TemporaryDirectory() as directory:
                env = dict(os.environ, SYMGRAD_CACHE_DIR=directory)
                cold[key].append(_fresh_process(snippet, env))
                if key[0] == "symgrad":
                    cached[key].append(_fresh_process(snippet, env))
    for (peer, name), _ in runs:
        imports, declare, compile_cold = np.median(cold[peer, name], axis=0)
        total = np.median([sum(c) for c in cold[peer, name]])
        cache_text = (f"{np.median([sum(c) for c in cached[peer, name]]) * 1e3:>13.1f} ms"
                      if cached[peer, name] else f"{'n/a':>16}")
        print(f"  {peer:<16} {name:<9} {imports * 1e3:>6.1f} ms {declare * 1e3:>6.1f} ms "
              f"{compile_cold * 1e3:>6.1f} ms {total * 1e3:>9.1f} ms {cache_text}")


# ---- W6 and W7: ADBench's GMM objective and bundle adjustment --------------------------------

def _cores():
    return os.cpu_count() or 1


def _symgrad_on(threads, function):
    """``function`` with symgrad's kernels on ``threads`` threads (the previous setting
    restored after each call)."""
    def call():
        previous = sg.set_num_threads(threads)
        try:
            return function()
        finally:
            sg.set_num_threads(previous)
    return call


def _torch_on(threads, function):
    """``function`` with torch's intra-op threads at ``threads`` (restored after each call)."""
    def call():
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            return function()
        finally:
            torch.set_num_threads(previous)
    return call


def _on_all_and_one(name, function, ok, on):
    """Rows ``name`` (all cores) and ``name, 1 thread`` of ``function``, whose threads
    ``on(threads, function)`` sets; ``ok(result)`` checks each one's result."""
    everywhere, alone = on(_cores(), function), on(1, function)
    return [(name, everywhere, ok(everywhere())), (f"{name}, 1 thread", alone, ok(alone()))]


def _timed_compile(build):
    """``build()``, a symgrad compile, run with an empty disk cache and then again (from the
    cache): its kernel and the two wall times."""
    previous = os.environ.get("SYMGRAD_CACHE_DIR")
    with tempfile.TemporaryDirectory() as directory:
        os.environ["SYMGRAD_CACHE_DIR"] = directory
        try:
            start = time.perf_counter()
            kernel = build()
            cold = time.perf_counter() - start
            start = time.perf_counter()
            build()
            cached = time.perf_counter() - start
        finally:
            if previous is None:
                del os.environ["SYMGRAD_CACHE_DIR"]
            else:
                os.environ["SYMGRAD_CACHE_DIR"] = previous
    return kernel, cold, cached


def _jax_one_core(workload, repeats):
    """JAX's rows of ``workload`` (:data:`_JAX_PEERS`), timed in a process of their own that
    is pinned to one CPU before it imports JAX (XLA sizes its thread pools at import): ``{table:
    [(name, seconds, ok)]}``, or {} where that cannot be done."""
    if jax is None or not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2:
        return {}
    cpu = min(os.sched_getaffinity(0))
    here = str(pathlib.Path(__file__).resolve().parent)
    snippet = (f"import json, os, sys\nos.sched_setaffinity(0, {{{cpu}}})\n"
               f"sys.path.insert(0, {here!r})\nimport benchmark\n"
               f"print(json.dumps(benchmark._jax_measured({workload!r}, {repeats})))")
    try:
        out = subprocess.run([sys.executable, "-c", snippet], capture_output=True, text=True,
                             check=True).stdout
    except subprocess.CalledProcessError as error:
        last = (error.stderr.strip().splitlines() or ["no message"])[-1]
        print(f"  (JAX on one core failed: {last})")
        return {}
    return {table: [(f"{name.split()[0]}, 1 core", seconds, ok) for name, seconds, ok in rows]
            for table, rows in json.loads(out.splitlines()[-1]).items()}


def _jax_measured(workload, repeats):
    """JAX's rows of ``workload``, measured (in the process of :func:`_jax_one_core`)."""
    return {table: [(name, seconds, bool(ok)) for name, seconds, ok in measure(rows, repeats)]
            for table, rows in _JAX_PEERS[workload]().items()}


def _threads_note(one_core):
    text = (f"  symgrad and torch on all {_cores()} cores and on 1 thread; JAX on all cores (XLA "
            f"sizes its thread pools when it is imported)")
    if one_core:
        text += ", and in its '1 core' rows after the others, in a process pinned to one CPU"
    print(text)


# W6: the objective of ADBench's Gaussian mixture model, without the Wishart prior.
GMM_D, GMM_K, GMM_N = 64, 100, 1000


def _gmm_problem():
    rng = np.random.default_rng(6)
    d, k = GMM_D, GMM_K
    return {"alphas": rng.standard_normal(k), "means": rng.standard_normal((k, d)),
            "q": 0.1 * rng.standard_normal((k, d)),
            "ls": 0.1 * rng.standard_normal((k, d * (d - 1) // 2)),
            "x": rng.standard_normal((GMM_N, d))}


def _gmm_numpy(alphas, means, q, ls, x):
    """The GMM objective and its gradient (alphas, means, q, ls) by hand in numpy: ``Q_k =
    diag(exp(q_k))`` plus the strictly lower triangle ``ls_k`` (row by row), ``z_ki = Q_k (x_i -
    mu_k)``, ``s_ki = alpha_k + sum(q_k) - |z_ki|^2 / 2``."""
    k, d = means.shape
    n = len(x)
    rows, columns = np.tril_indices(d, -1)
    diagonal = np.arange(d)
    Q = np.zeros((k, d, d))
    Q[:, rows, columns] = ls
    Q[:, diagonal, diagonal] = np.exp(q)
    Z = (Q.reshape(k * d, d) @ x.T).reshape(k, d, n) - Q @ means[:, :, None]
    s = alphas[:, None] + q.sum(axis=1)[:, None] - 0.5 * np.einsum("kdn,kdn->kn", Z, Z)
    top = s.max(axis=0)
    lse = top + np.log(np.exp(s - top).sum(axis=0))
    lse_alphas = alphas.max() + np.log(np.exp(alphas - alphas.max()).sum())
    value = lse.sum() - n * lse_alphas - n * d / 2 * np.log(2 * np.pi)
    w = np.exp(s - lse)                                    # (k, n): the responsibilities
    WZ = w[:, None, :] * Z
    wz = WZ.sum(axis=2)
    dQ = wz[:, :, None] * means[:, None, :] - (WZ.reshape(k * d, n) @ x).reshape(k, d, d)
    return value, [w.sum(axis=1) - n * np.exp(alphas - lse_alphas),
                   (Q.transpose(0, 2, 1) @ wz[:, :, None])[:, :, 0],
                   w.sum(axis=1)[:, None] + np.exp(q) * dQ[:, diagonal, diagonal],
                   dQ[:, rows, columns]]


def _gmm_close(problem):
    """``close(value, grads)``: against :func:`_gmm_numpy`, within 1e-9 of each one's scale."""
    value_ref, grads_ref = _gmm_numpy(**problem)

    def close(value, grads):
        return abs(float(value) - value_ref) <= 1e-9 * (1 + abs(value_ref)) and all(
            np.max(np.abs(np.asarray(g, np.float64) - r)) <= 1e-9 * (1 + np.max(np.abs(r)))
            for g, r in zip(grads, grads_ref))
    return close


def _gmm_symgrad():
    """The compile of W6 in symgrad, as a function of no arguments."""
    d, k = GMM_D, GMM_K
    alphas, means = sg.tensor("alphas", (k,)), sg.tensor("means", (k, d))
    q, ls = sg.tensor("q", (k, d)), sg.tensor("l", (k, d * (d - 1) // 2))
    X = sg.tensor("X", ("n", d))
    # Q_k: l_k as the lower triangle (diagonal included) of a (d-1, d-1) matrix, moved one row
    # down, plus exp(q_k) where row == column (tril of triu).
    lower = sg.pad(sg.vector_to_tril(ls), [(0, 0), (1, 0), (0, 1)])
    Q = sg.tril(sg.triu(sg.broadcast_to(sg.exp(q)[:, None, :], (k, d, d)))) + lower
    QX = (Q.reshape(k * d, d) @ X.T).reshape(k, d, "n")          # Q_k x_i for every k at once
    Z = QX - (Q * means[:, None, :]).sum(axis=2)[:, :, None]      # Q_k (x_i - mu_k)
    s = alphas[:, None] + q.sum(axis=1)[:, None] - 0.5 * (Z * Z).sum(axis=1)
    # sum_i logsumexp_k(s_ki) - n logsumexp(alphas) - n d/2 log(2 pi), one term per x_i.
    loss = (sg.logsumexp(s, axis=0) - sg.logsumexp(alphas, axis=0)
            - d / 2 * np.log(2 * np.pi)).sum()
    return lambda: sg.compile(loss, wrt=[alphas, means, q, ls], inputs=[X])


def _gmm_torch(problem, close):
    d, k = GMM_D, GMM_K
    rows, columns = (torch.from_numpy(i)[None, :] for i in np.tril_indices(d, -1))
    batch = torch.arange(k)[:, None]
    params = [torch.from_numpy(problem[name]).requires_grad_(True)
              for name in ("alphas", "means", "q", "ls")]
    x = torch.from_numpy(problem["x"])

    def torch_step():
        for p in params:
            p.grad = None
        alphas, means, q, ls = params
        Q = torch.diag_embed(torch.exp(q)).index_put((batch, rows, columns), ls)
        Z = (Q.reshape(k * d, d) @ x.T).reshape(k, d, -1) - Q @ means[:, :, None]
        s = alphas[:, None] + q.sum(dim=1)[:, None] - 0.5 * (Z * Z).sum(dim=1)
        loss = (torch.logsumexp(s, dim=0) - torch.logsumexp(alphas, dim=0)
                - d / 2 * np.log(2 * np.pi)).sum()
        loss.backward()
        return loss.item(), [p.grad.numpy() for p in params]
    return _on_all_and_one("torch", torch_step, lambda result: close(*result), _torch_on)


def _gmm_jax(problem, close):
    d, k = GMM_D, GMM_K
    rows, columns = np.tril_indices(d, -1)

    def gmm(alphas, means, q, ls, x):
        Q = jax.vmap(jnp.diag)(jnp.exp(q)).at[:, rows, columns].set(ls)
        Z = (Q.reshape(k * d, d) @ x.T).reshape(k, d, -1) - Q @ means[:, :, None]
        s = alphas[:, None] + q.sum(axis=1)[:, None] - 0.5 * (Z * Z).sum(axis=1)
        return (jax.nn.logsumexp(s, axis=0) - jax.nn.logsumexp(alphas)
                - d / 2 * np.log(2 * np.pi)).sum()
    function = jax.jit(jax.value_and_grad(gmm, argnums=(0, 1, 2, 3)))
    args = [jnp.asarray(problem[name]) for name in ("alphas", "means", "q", "ls", "x")]
    value, grads = function(*args)
    return [("JAX jit(value_and_grad)", lambda: jax.block_until_ready(function(*args)),
             close(value, [np.asarray(g) for g in grads]))]


def _gmm_jax_peers():
    problem = _gmm_problem()
    return {"gmm": _gmm_jax(problem, _gmm_close(problem))}


def w6(repeats, peaks):
    problem = _gmm_problem()
    close = _gmm_close(problem)
    step, cold, cached = _timed_compile(_gmm_symgrad())
    params = [problem[name] for name in ("alphas", "means", "q", "ls")]
    x = problem["x"]
    start = time.perf_counter()
    step(params, x)
    first = time.perf_counter() - start
    rows = _on_all_and_one("symgrad", lambda: step(params, x), lambda result: close(*result),
                           _symgrad_on)
    rows.append(("numpy (hand-written)", lambda: _gmm_numpy(**problem),
                 close(*_gmm_numpy(**problem))))
    if torch is not None:
        rows += _gmm_torch(problem, close)
    if jax is not None:
        rows += _gmm_jax(problem, close)
    rows = measure(rows, repeats)
    one_core = _jax_one_core("w6", repeats)
    rows += one_core.get("gmm", [])
    table(f"W6 GMM objective (ADBench, no Wishart prior), d={GMM_D}, k={GMM_K}, n={GMM_N}, "
          f"float64: value and gradient w.r.t. alphas, means, q, l", rows)
    _threads_note(one_core)
    print(f"  symgrad compile (sg.compile, wall): {cold:.2f} s with an empty disk cache, "
          f"{cached:.2f} s from it; first call {first * 1e3:.0f} ms")
    gflops = _matmul_flops(step.function, {"n": GMM_N}) / rows[0][1] / 1e9
    print(f"  symgrad: {gflops:.1f} GFLOP/s in its matrix products, "
          f"{100 * gflops / peaks['float64']:.0f}% of the machine's float64 peak")


# W7: bundle adjustment, the reprojection error of Ceres's SnavelyReprojectionError (as in
# ADBench): a camera is a Rodrigues rotation vector (3), a translation (3), a focal length and
# two radial distortion coefficients.
BA_CAMERAS, BA_POINTS, BA_OBSERVATIONS = 100, 10_000, 100_000


def _concatenate(xp, arrays):
    return xp.concatenate(arrays, axis=1)


def _ba_project(xp, C, P):
    """The predicted image points ``(m, 2)`` of points ``P (m, 3)`` seen by cameras ``C (m,
    9)``, with numpy's, JAX's, torch's or symgrad's functions ``xp`` (one formula for all)."""
    def column(a, j):
        return a[:, j:j + 1]

    def cross(a, b):
        return _concatenate(xp, [
            column(a, 1) * column(b, 2) - column(a, 2) * column(b, 1),
            column(a, 2) * column(b, 0) - column(a, 0) * column(b, 2),
            column(a, 0) * column(b, 1) - column(a, 1) * column(b, 0)])
    w = C[:, 0:3]
    theta2 = column(w, 0) ** 2 + column(w, 1) ** 2 + column(w, 2) ** 2
    # Rodrigues' formula, or its first order X + w x X near 0 as Ceres has it (the generated
    # angles are 0.05 to 0.3: the first branch is taken; theta2 is kept away from 0 in it so
    # that neither branch makes NaN in a gradient).
    large = theta2 > float(np.finfo(np.float64).eps)
    theta = xp.sqrt(xp.where(large, theta2, 1.0))
    a = w / theta
    cos, sin = xp.cos(theta), xp.sin(theta)
    a_dot_p = column(a, 0) * column(P, 0) + column(a, 1) * column(P, 1) + column(a, 2) * column(
        P, 2)
    rotated = xp.where(large, P * cos + cross(a, P) * sin + a * (a_dot_p * (1 - cos)),
                       P + cross(w, P))
    p = rotated + C[:, 3:6]
    u = -p[:, 0:2] / column(p, 2)
    r2 = column(u, 0) ** 2 + column(u, 1) ** 2
    return column(C, 6) * (1 + column(C, 7) * r2 + column(C, 8) * r2 * r2) * u


def _ba_problem():
    """A generated problem: cameras about 6 units from points in the unit cube, observations of
    random (camera, point) pairs with half a pixel of noise, parameters a little off the truth
    (residuals of a few pixels); the cotangent u and the tangent (dcameras, dpoints) random."""
    rng = np.random.default_rng(7)
    c, p, m = BA_CAMERAS, BA_POINTS, BA_OBSERVATIONS
    axis = rng.standard_normal((c, 3))
    axis /= np.linalg.norm(axis, axis=1, keepdims=True)
    cameras = np.concatenate([axis * rng.uniform(0.05, 0.3, (c, 1)),
                              rng.normal(0, 0.3, (c, 2)), rng.uniform(-7, -5, (c, 1)),
                              rng.uniform(400, 800, (c, 1)), rng.normal(0, 0.05, (c, 1)),
                              rng.normal(0, 0.01, (c, 1))], axis=1)
    points = rng.uniform(-1, 1, (p, 3))
    cam_idx, pt_idx = rng.integers(0, c, m), rng.integers(0, p, m)
    observed = _ba_project(np, cameras[cam_idx], points[pt_idx]) + rng.normal(0, 0.5, (m, 2))
    scale = np.array([1e-3] * 6 + [0.1, 1e-3, 1e-3])
    return {"cameras": cameras + scale * rng.standard_normal(cameras.shape),
            "points": points + 1e-2 * rng.standard_normal(points.shape),
            "cam_idx": cam_idx, "pt_idx": pt_idx, "observed": observed,
            "u": rng.standard_normal((m, 2)), "dcameras": rng.standard_normal((c, 9)),
            "dpoints": rng.standard_normal((p, 3))}


def _ba_checks(problem):
    """``(residuals_ok(r), vjp_ok(dcameras, dpoints), jvp_ok(jv))``, against numpy in float64:
    the residuals, and J^T u and J v from each observation's 2 x 12 Jacobian block by central
    differences of the numpy residuals (within 1e-7 of the largest element)."""
    C = problem["cameras"][problem["cam_idx"]]
    P = problem["points"][problem["pt_idx"]]
    residual_ref = _ba_project(np, C, P) - problem["observed"]
    G = np.concatenate([C, P], axis=1)
    J = np.empty((len(G), 2, 12))
    for j in range(12):
        h = 1e-6 * np.maximum(1.0, np.abs(G[:, j]))
        plus, minus = G.copy(), G.copy()
        plus[:, j] += h
        minus[:, j] -= h
        J[:, :, j] = (_ba_project(np, plus[:, :9], plus[:, 9:]) -
                      _ba_project(np, minus[:, :9], minus[:, 9:])) / (2 * h[:, None])
    g = np.einsum("mij,mi->mj", J, problem["u"])
    dcameras = np.zeros_like(problem["cameras"])
    np.add.at(dcameras, problem["cam_idx"], g[:, :9])
    dpoints = np.zeros_like(problem["points"])
    np.add.at(dpoints, problem["pt_idx"], g[:, 9:])
    jv_ref = np.einsum("mij,mj->mi", J, np.concatenate(
        [problem["dcameras"][problem["cam_idx"]], problem["dpoints"][problem["pt_idx"]]],
        axis=1))
    scale = np.max(np.abs(problem["observed"]))

    def near(value, reference):
        return np.max(np.abs(np.asarray(value, np.float64) - reference)) <= \
            1e-7 * np.max(np.abs(reference))
    return (lambda r: np.max(np.abs(np.asarray(r) - residual_ref)) <= 1e-10 * scale,
            lambda dc, dp: near(dc, dcameras) and near(dp, dpoints),
            lambda jv: near(jv, jv_ref))


def _ba_symgrad():
    """W7's three symgrad compiles, each a function of no arguments: the residuals, J^T u
    (the gradient of sum(residuals * u)) and, where symgrad's reverse mode can be reached, J v
    as the gradient of <J^T u, v> with respect to u (reverse over reverse; or None)."""
    cameras = sg.tensor("cameras", (BA_CAMERAS, 9))
    points = sg.tensor("points", (BA_POINTS, 3))
    cam_idx = sg.tensor("cam_idx", ("m",), dtype="int64")
    pt_idx = sg.tensor("pt_idx", ("m",), dtype="int64")
    observed, u = sg.tensor("observed", ("m", 2)), sg.tensor("u", ("m", 2))
    residuals = _ba_project(sg, cameras[cam_idx], points[pt_idx]) - observed
    data = [cam_idx, pt_idx, observed]
    builds = [lambda: sg.compile_function([residuals], [cameras, points] + data),
              lambda: sg.compile((residuals * u).sum(), wrt=[cameras, points],
                                 inputs=data + [u])]
    try:   # not public API: the reverse mode that sg.compile runs, on IR nodes
        from symgrad.autodiff.reverse import vjp
    except ImportError:
        return builds + [None]
    dcameras = sg.tensor("dcameras", (BA_CAMERAS, 9))
    dpoints = sg.tensor("dpoints", (BA_POINTS, 3))
    jtu = vjp((residuals * u).sum().node, [cameras.node, points.node])
    inner = (sg.Tensor(jtu[0]) * dcameras).sum() + (sg.Tensor(jtu[1]) * dpoints).sum()
    return builds + [lambda: sg.compile(inner, wrt=[u], inputs=[cameras, points] + data +
                                        [dcameras, dpoints])]


def _ba_torch(problem, checks):
    residuals_ok, vjp_ok, jvp_ok = checks
    t = {name: torch.from_numpy(value) for name, value in problem.items()}

    def residuals(cameras, points):
        return _ba_project(torch, cameras[t["cam_idx"]], points[t["pt_idx"]]) - t["observed"]

    def forward():
        with torch.no_grad():
            return residuals(t["cameras"], t["points"]).numpy()

    def backward():
        cameras = t["cameras"].clone().requires_grad_(True)
        points = t["points"].clone().requires_grad_(True)
        r = residuals(cameras, points)
        r.backward(t["u"])
        return cameras.grad.numpy(), points.grad.numpy()

    def forward_ad():
        return torch.func.jvp(residuals, (t["cameras"], t["points"]),
                              (t["dcameras"], t["dpoints"]))[1].numpy()
    return {"residuals": _on_all_and_one("torch", forward, residuals_ok, _torch_on),
            "vjp": _on_all_and_one("torch (backward)", backward,
                                   lambda result: vjp_ok(*result), _torch_on),
            "jvp": _on_all_and_one("torch.func.jvp", forward_ad, jvp_ok, _torch_on)}


def _ba_jax(problem, checks):
    residuals_ok, vjp_ok, jvp_ok = checks
    j = {name: jnp.asarray(value) for name, value in problem.items()}
    data = (j["cam_idx"], j["pt_idx"], j["observed"])

    def residuals(cameras, points, cam_idx, pt_idx, observed):
        return _ba_project(jnp, cameras[cam_idx], points[pt_idx]) - observed

    forward = jax.jit(residuals)
    backward = jax.jit(lambda c, p, ci, pi, obs, u: jax.vjp(
        lambda c, p: residuals(c, p, ci, pi, obs), c, p)[1](u))
    tangent = jax.jit(lambda c, p, ci, pi, obs, dc, dp: jax.jvp(
        lambda c, p: residuals(c, p, ci, pi, obs), (c, p), (dc, dp))[1])
    args = (j["cameras"], j["points"]) + data
    calls = {"residuals": ("JAX jit", lambda: forward(*args), residuals_ok),
             "vjp": ("JAX jit(vjp)", lambda: backward(*args, j["u"]),
                     lambda result: vjp_ok(*result)),
             "jvp": ("JAX jit(jvp)", lambda: tangent(*args, j["dcameras"], j["dpoints"]),
                     jvp_ok)}
    return {key: [(name, lambda call=call: jax.block_until_ready(call()),
                   ok(jax.tree_util.tree_map(np.asarray, call())))]
            for key, (name, call, ok) in calls.items()}


def _ba_jax_peers():
    problem = _ba_problem()
    return _ba_jax(problem, _ba_checks(problem))


def w7(repeats):
    problem = _ba_problem()
    checks = _ba_checks(problem)
    residuals_ok, vjp_ok, jvp_ok = checks
    compiled = [_timed_compile(build) if build else (None, None, None)
                for build in _ba_symgrad()]
    forward, backward, tangent = (kernel for kernel, _, _ in compiled)
    params = [problem["cameras"], problem["points"]]
    data = [problem["cam_idx"], problem["pt_idx"], problem["observed"]]
    tables = {
        "residuals": _on_all_and_one("symgrad", lambda: forward(*params, *data)[0],
                                     residuals_ok, _symgrad_on)
        + [("numpy", lambda: _ba_project(np, params[0][data[0]], params[1][data[1]]) - data[2],
            residuals_ok(_ba_project(np, params[0][data[0]], params[1][data[1]]) - data[2]))],
        "vjp": _on_all_and_one("symgrad", lambda: backward(params, *data, problem["u"]),
                               lambda result: vjp_ok(*result[1]), _symgrad_on),
        "jvp": [] if tangent is None else _on_all_and_one(
            "symgrad", lambda: tangent([problem["u"]], *params, *data, problem["dcameras"],
                                       problem["dpoints"]),
            lambda result: jvp_ok(result[1][0]), _symgrad_on)}
    for peer, rows in (("torch", _ba_torch), ("JAX", _ba_jax)):
        if {"torch": torch, "JAX": jax}[peer] is not None:
            for key, more in rows(problem, checks).items():
                tables[key] += more
    measured = {key: measure(rows, repeats) for key, rows in tables.items() if rows}
    one_core = _jax_one_core("w7", repeats)
    size = (f"{BA_CAMERAS} cameras (9 parameters), {BA_POINTS:,} points, "
            f"{BA_OBSERVATIONS:,} observations, float64")
    titles = {"residuals": f"W7a bundle adjustment residuals (m, 2): {size}",
              "vjp": "W7b J^T u (vjp): the gradient of sum(residuals * u) w.r.t. cameras and "
                     "points",
              "jvp": "W7c J v (jvp) for a tangent (dcameras, dpoints); symgrad has no forward "
                     "mode:\n  its row is reverse over reverse, the gradient of <J^T u, v> "
                     "w.r.t. u"}
    for key, rows in measured.items():
        table(titles[key], rows + one_core.get(key, []))
    if tangent is None:
        print("\nW7c J v: symgrad's reverse mode (symgrad.autodiff.reverse.vjp) not found")
    _threads_note(one_core)
    names = ("residuals", "J^T u", "J v")
    print("  symgrad compile (wall, with an empty disk cache / from it): " + "; ".join(
        f"{name} {cold:.2f} s / {cached:.2f} s" for name, (_, cold, cached)
        in zip(names, compiled) if cold is not None))


_JAX_PEERS = {"w6": _gmm_jax_peers, "w7": _ba_jax_peers}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("workloads", nargs="*", metavar="W",
                        help="workloads to run: w1 ... w7 (default: all)")
    args = parser.parse_args()
    everything = {"w1", "w2", "w3", "w4", "w5", "w6", "w7"}
    chosen = {name.lower() for name in args.workloads} or everything
    if chosen - everything:
        parser.error(f"unknown workloads {sorted(chosen - everything)}; choose from w1 ... w7")
    repeats = 3 if args.quick else 7
    peers = [name for name, module in (("JAX", jax), ("torch", torch)) if module is not None]
    print(f"peers available: {', '.join(peers) or 'none (numpy and Python only)'}")
    peaks = machine_limits()
    for name, run in (("w1", w1), ("w2", w2), ("w3", lambda r: w3(r, peaks)), ("w4", w4),
                      ("w5", lambda r: w5(3 if args.quick else 5)),
                      ("w6", lambda r: w6(r, peaks)), ("w7", w7)):
        if name in chosen:
            run(repeats)


if __name__ == "__main__":
    main()
