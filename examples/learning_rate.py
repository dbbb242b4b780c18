"""The learning rate: too small barely moves, too large diverges, in between it converges.

The lecture's gradient descent ``theta_t = theta_{t-1} - eta grad E(theta_{t-1})`` has one
hyper-parameter, the learning rate eta, and it alone can break training.  This script trains
the same model on the same data with plain full-batch gradient descent for a fixed number of
epochs, once per eta, and prints the loss after each run.

The model is one linear neuron ``y = w^T x + b`` with the mean squared error on a small
synthetic regression problem (the lecture's neuron with ``h = id``).  Its loss is a quadratic
bowl with a constant Hessian ``H``, so the behaviour is exactly predictable: gradient descent
converges for ``eta < 2 / lambda_max(H)`` (the script prints this bound) and diverges above
it, and it creeps along the flattest direction (``lambda_min``) when eta is small.  The
loss is compared with the least-squares optimum (numpy's ``lstsq``).

Pass ``--plot`` to save the loss curves to ``learning_rate.png`` (needs matplotlib, ``pip
install -e ".[examples]"``; the first curve is drawn by ``History.plot``).

    python examples/learning_rate.py [--plot]
"""

import argparse

import numpy as np

import symgrad as sg

EPOCHS = 100
#: learning rates and what the lecture would call them (the script checks the labels)
RATES = [(0.0001, "too small"), (0.001, "too small"), (0.01, "too small"),
         (0.1, "right"), (0.2, "right"),
         (0.3, "too large"), (1.0, "too large")]


def regression_data(n=100, seed=0):
    """Inputs x (n, 2) and targets t = 1.5 x1 - 0.7 x2 + 0.3 + noise, shape (n, 1)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2)) * [1.0, 2.0] + [1.0, -0.5]
    t = x @ np.array([[1.5], [-0.7]]) + 0.3 + 0.1 * rng.normal(size=(n, 1))
    return x, t


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plot", action="store_true",
                        help="save the loss curves to learning_rate.png (matplotlib)")
    arguments = parser.parse_args()

    x, t = regression_data()
    n = len(x)
    design = np.hstack([x, np.ones((n, 1))])
    hessian = 2.0 / n * design.T @ design           # of the mean squared error, constant
    eigenvalues = np.linalg.eigvalsh(hessian)
    solution, *_ = np.linalg.lstsq(design, t, rcond=None)
    best = float(np.mean((design @ solution - t) ** 2))
    print(f"linear neuron y = w^T x + b, mean squared error, {n} examples")
    print(f"Hessian eigenvalues {np.round(eigenvalues, 3)}: gradient descent converges for "
          f"eta < 2 / lambda_max = {2 / eigenvalues.max():.3f}")
    print(f"least-squares optimum (numpy lstsq): loss {best:.6f}")

    X = sg.tensor("X", ("n", 2))
    T = sg.tensor("T", ("n", 1))
    results = []
    for eta, label in RATES:
        neuron = sg.nn.Dense(2, 1, activation=None, seed=0)   # the same start for every eta
        loss = sg.losses.mean_squared_error(neuron(X), T)
        if not results:
            evaluate = sg.compile(loss, wrt=neuron.parameters(), inputs=[X, T])
            initial, _ = evaluate(neuron.values(), X=x, T=t)
            initial = float(initial)
        history = sg.fit(neuron, loss, [X, T], (x, t),
                         optimizer=sg.optim.GradientDescent(lr=eta), epochs=EPOCHS,
                         batch_size=None, shuffle=False, progress=False)
        final, _ = evaluate(neuron.values(), X=x, T=t)
        results.append((eta, label, float(final), history))

    print(f"\nloss after {EPOCHS} epochs of full-batch gradient descent from the same start "
          f"(initial loss {initial:.4f}):")
    print(f"{'eta':>7} {'loss after 10':>14} {'loss after 100':>15} {'above optimum':>14}  "
          f"verdict")
    for eta, label, final, history in results:
        after_10 = history.loss[10]           # history.loss[k]: the loss before step k + 1
        if not np.isfinite(final) or final > initial:
            verdict = "diverges"
        elif final - best < 1e-6:
            verdict = "converged"
        elif final > 0.5 * initial:
            verdict = "barely moved"
        else:
            verdict = "still creeping"
        print(f"{eta:>7g} {after_10:>14.6g} {final:>15.6g} {final - best:>14.3g}  "
              f"{verdict} ({label})")

    finals = {label: [r[2] for r in results if r[1] == label]
              for label in ("too small", "right", "too large")}
    best_right = min(finals["right"])
    print(f"\nlowest loss: eta = {min(results, key=lambda r: r[2])[0]:g}; the best eta sits "
          f"just below the divergence bound, where the flat direction moves fastest")
    assert best_right < min(finals["too small"]), "a too-small eta ended lower"
    assert best_right - best < 1e-6, "the right eta did not converge"
    assert all(not np.isfinite(f) or f > initial for f in finals["too large"]), \
        "a too-large eta did not diverge"
    assert results[0][2] > 0.5 * initial, "eta = 0.0001 was expected to barely move"

    if arguments.plot:
        plot(results)


def plot(results):
    try:
        import matplotlib
    except ImportError:
        print("matplotlib is not installed: pip install -e \".[examples]\" to plot")
        return
    matplotlib.use("Agg")
    first = results[0][3]
    figure = first.plot(title="gradient descent: loss per epoch for each learning rate")
    axis = figure.axes[0]
    axis.lines[0].set_label(f"eta = {results[0][0]:g}")
    for eta, _, _, history in results[1:]:
        axis.plot(range(1, len(history.loss) + 1), history.loss, marker=".",
                  label=f"eta = {eta:g}")
    axis.set_yscale("log")
    axis.set_ylim(1e-3, 1e6)
    axis.legend()
    figure.savefig("learning_rate.png", dpi=80)
    print("saved learning_rate.png")


if __name__ == "__main__":
    main()
