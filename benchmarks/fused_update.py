"""Is the optimiser update faster fused into the step kernel or run in numpy after it?

Times one training step (loss, gradients and the Adam / gradient-descent update) both ways for
a few networks and batch sizes, and prints the medians and their ratio.

    python benchmarks/fused_update.py
"""

import time

import numpy as np

import symgrad as sg


def median_step_time(trainer, values, state, batch, repeats):
    times = []
    for step in range(1, repeats + 1):
        start = time.perf_counter()
        values, state, _ = trainer.step(values, state, batch, step)
        times.append(time.perf_counter() - start)
    return float(np.median(times[repeats // 5:]))


def main():
    cases = [([2, 4, 1], 4), ([64, 64, 10], 32), ([784, 128, 10], 128),
             ([784, 256, 128, 10], 128)]
    rng = np.random.default_rng(0)
    print(f"{'network':<18} {'batch':>5} {'optimizer':<16} {'fused us':>10} {'numpy us':>10} "
          f"{'numpy/fused':>11}")
    for sizes, batch_size in cases:
        X = sg.tensor("X", ("n", sizes[0]))
        Y = sg.tensor("Y", ("n", sizes[-1]))
        net = sg.nn.MLP(sizes, activation=sg.tanh, output_activation=None, seed=0)
        loss = sg.losses.softmax_cross_entropy(net(X), Y) if sizes[-1] > 1 else \
            sg.losses.mean_squared_error(net(X), Y)
        x = rng.normal(size=(batch_size, sizes[0]))
        y = np.eye(sizes[-1])[rng.integers(0, sizes[-1], batch_size)]
        repeats = 400 if sizes[0] < 100 else 60
        for optimizer in (sg.optim.GradientDescent(0.01), sg.optim.Adam(1e-3)):
            timings = {}
            for fused in (True, False):
                trainer = sg.optim.Trainer(loss, net.parameters(), [X, Y], optimizer, fused)
                state = trainer.initial_state(net.values())
                timings[fused] = median_step_time(trainer, net.values(), state, (x, y), repeats)
            name = type(optimizer).__name__
            print(f"{'-'.join(map(str, sizes)):<18} {batch_size:>5} {name:<16} "
                  f"{timings[True] * 1e6:>10.1f} {timings[False] * 1e6:>10.1f} "
                  f"{timings[False] / timings[True]:>11.2f}")


if __name__ == "__main__":
    main()
