"""symgrad against its peers on the CPU: one table per workload, ratios from the same run.

Workloads (median of several repeats; every result checked against a float64 numpy reference):

* W1 scalar call: f(x, y) = x^2 + xy + (x+y)^2, value and gradient at one point, one call at a
  time (hand-written Python, sympy.lambdify, JAX jit(value_and_grad), torch).
* W2 batched activation: L = sum(mish(x) * w) and dL/dx for 1e6 elements, float64 and float32.
* W3 MLP step: 784-128-10 and 784-256-128-10, tanh, softmax cross-entropy, batch 128, float32
  and float64: loss and all parameter gradients (hand-written numpy backprop, torch, JAX).
* W4 tiny network: XOR 2-4-1, sigmoid, BCE, batch 4, float64: one forward+backward call.
* W5 compile time: declaration to first gradient for W1 and W3, cold and with the disk cache.

First the machine's limits: its peak FLOP/s (``benchmarks/peak.py``: fused multiply-adds on every
core at once, the rate no matrix product passes), numpy's 1024x1024 matmul rate with the BLAS
kernels it runs, and memory copy bandwidth.  W3 gives the rate of symgrad's matrix products
over the whole step as a share of that peak.

Peers are optional (the ``bench`` extra, or ``pip install jax`` and
``pip install torch==2.13.0``); a missing one is left out of the tables.

    python examples/benchmark.py            # add --quick for fewer repeats
    python examples/benchmark.py w2 w3      # some workloads only
"""

import argparse
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("workloads", nargs="*", metavar="W",
                        help="workloads to run: w1 ... w5 (default: all)")
    args = parser.parse_args()
    everything = {"w1", "w2", "w3", "w4", "w5"}
    chosen = {name.lower() for name in args.workloads} or everything
    if chosen - everything:
        parser.error(f"unknown workloads {sorted(chosen - everything)}; choose from w1 ... w5")
    repeats = 3 if args.quick else 7
    peers = [name for name, module in (("JAX", jax), ("torch", torch)) if module is not None]
    print(f"peers available: {', '.join(peers) or 'none (numpy and Python only)'}")
    peaks = machine_limits()
    for name, run in (("w1", w1), ("w2", w2), ("w3", lambda r: w3(r, peaks)), ("w4", w4)):
        if name in chosen:
            run(repeats)
    if "w5" in chosen:
        w5(3 if args.quick else 5)


if __name__ == "__main__":
    main()
