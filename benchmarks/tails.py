"""What the cancellation-free derivatives cost: value-and-gradient kernels of each activation
and of the losses, timed on large arrays.

Each row times one call of ``sum(f(x) * w)`` and its gradient (every learnable parameter
included) on 10^6 elements, or a loss and its gradient, and prints the fastest of the repeats
(on one thread, in CPU time of the calling thread, which leaves out the time other processes
hold the core).  The kernels use one thread unless ``--threads`` says more.  To compare two
checkouts, run it on each from outside both (``cd /tmp && PYTHONPATH=/path/to/checkout
python /path/to/benchmarks/tails.py`` imports that checkout's symgrad).

    python benchmarks/tails.py [--threads N] [--repeats N]
"""

import argparse
import time

import numpy as np

import symgrad as sg

N = 1_000_000


def _best_time(call, repeats, clock):
    # The fastest of the repeats: on a shared machine the others measure the neighbours too.
    call()
    times = []
    for _ in range(repeats):
        start = clock()
        call()
        times.append(clock() - start)
    return float(np.min(times))


def _activation_cases():
    scalar = {"beta": 1.0, "a": 0.25, "p1": 1.0, "p2": 0.25, "alpha": 1.0}
    return [
        ("sigmoid", lambda X, p: sg.sigmoid(X), []),
        ("tanh", lambda X, p: sg.tanh(X), []),
        ("elu", lambda X, p: sg.elu(X), []),
        ("softplus", lambda X, p: sg.softplus(X), []),
        ("swish", lambda X, p: sg.swish(X, beta=p["beta"]), ["beta"]),
        ("mish", lambda X, p: sg.mish(X), []),
        ("acon_b", lambda X, p: sg.acon_b(X, p["a"], beta=p["beta"]), ["a", "beta"]),
        ("acon_c", lambda X, p: sg.acon_c(X, p["p1"], p["p2"], beta=p["beta"]),
         ["p1", "p2", "beta"]),
    ], scalar


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=21)
    args = parser.parse_args()
    sg.set_num_threads(args.threads)
    # On one thread the kernel runs in the calling thread: its CPU time leaves out the time
    # other processes hold the core.
    clock = time.thread_time if args.threads == 1 else time.perf_counter
    rng = np.random.default_rng(0)
    print(f"{'kernel':<34} {'float64 ms':>11} {'float32 ms':>11}")
    cases, scalar = _activation_cases()
    for name, build, learnable in cases:
        row = []
        for dtype in ("float64", "float32"):
            X = sg.tensor("X", ("n",), dtype)
            W = sg.tensor("W", ("n",), dtype)
            params = {k: sg.tensor(k, (), dtype) for k in learnable}
            step = sg.compile((build(X, params) * W).sum(), wrt=[X, *params.values()],
                              inputs=[W])
            x = rng.uniform(-30, 30, N).astype(dtype)
            w = rng.normal(size=N).astype(dtype)
            values = [x, *[scalar[k] for k in learnable]]
            row.append(_best_time(lambda: step(values, W=w), args.repeats, clock))
        print(f"{name + ' value and gradients, 1e6':<34} {row[0] * 1e3:>11.3f} "
              f"{row[1] * 1e3:>11.3f}")

    for name, loss_of, shape in [
            ("BCE from logits, 1e6", sg.losses.binary_cross_entropy_with_logits, ("n",)),
            ("softmax CE, 100000 x 10", sg.losses.softmax_cross_entropy, ("n", 10))]:
        row = []
        for dtype in ("float64", "float32"):
            Z = sg.tensor("Z", shape, dtype)
            T = sg.tensor("T", shape, dtype)
            step = sg.compile(loss_of(Z, T), wrt=[Z], inputs=[T])
            if len(shape) == 1:
                z = rng.normal(scale=10, size=N).astype(dtype)
                t = (rng.uniform(size=N) < 0.5).astype(dtype)
            else:
                z = rng.normal(scale=10, size=(N // 10, 10)).astype(dtype)
                t = np.eye(10, dtype=dtype)[rng.integers(0, 10, N // 10)]
            row.append(_best_time(lambda: step([z], T=t), args.repeats, clock))
        print(f"{name:<34} {row[0] * 1e3:>11.3f} {row[1] * 1e3:>11.3f}")

    row = []
    for dtype in ("float32", "float64"):
        X = sg.tensor("X", ("n", 784), dtype)
        Y = sg.tensor("Y", ("n", 10), dtype)
        net = sg.nn.MLP([784, 128, 10], activation=sg.tanh, output_activation=None, seed=0,
                        dtype=dtype)
        step = sg.compile(sg.losses.softmax_cross_entropy(net(X), Y), wrt=net.parameters(),
                          inputs=[X, Y])
        x = rng.normal(size=(128, 784)).astype(dtype)
        y = np.eye(10, dtype=dtype)[rng.integers(0, 10, 128)]
        values = net.values()
        row.append(_best_time(lambda: step(values, X=x, Y=y), args.repeats * 5, clock))
    print(f"{'MLP 784-128-10 tanh, batch 128':<34} {row[1] * 1e3:>11.3f} {row[0] * 1e3:>11.3f}")


if __name__ == "__main__":
    main()
