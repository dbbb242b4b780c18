"""Rosenblatt's perceptron learns a linearly separable problem, and its criterion goes to 0.

Generates 2-D points on both sides of a line (labels t in {-1, +1}, with a margin so that the
classes are separable), appends a constant input 1 so that the bias is just one more weight,
and trains with ``sg.optim.perceptron_rule``: one native kernel for the lecture's update
``w <- w + eta t_n x_n`` on a misclassified point (``t_n w^T x_n <= 0``).  Training is online
(one example per call), epoch after epoch, until an epoch makes no mistake.  Printed per
epoch: the number of errors and Rosenblatt's criterion
``E_P(w) = -sum_{x in M} t(x) w^T x`` (``sg.losses.perceptron_criterion``, compiled), which
reaches 0 exactly when every point is classified correctly.  Finally it shows that the rule
is gradient descent on ``E_P``: the gradient symgrad derives for ``E_P`` is
``-sum_{n in M} t_n x_n``.

    python examples/perceptron.py
"""

import numpy as np

import symgrad as sg

N_POINTS = 200
MAX_EPOCHS = 100
ETA = 1.0


def separable_data(n, seed=2, margin=0.05):
    """``n`` points in [-1, 1]^2 labelled by the side of the line 0.8 x1 - 0.6 x2 + 0.1 = 0,
    none closer to it than ``margin``; returns (X with a column of ones, t of shape (n, 1))."""
    rng = np.random.default_rng(seed)
    normal, offset = np.array([0.8, -0.6]), 0.1
    points = []
    while len(points) < n:
        p = rng.uniform(-1, 1, 2)
        if abs(p @ normal + offset) >= margin:
            points.append(p)
    points = np.array(points)
    t = np.where(points @ normal + offset > 0, 1.0, -1.0).reshape(-1, 1)
    X = np.hstack([points, np.ones((n, 1))])          # x0 = 1: the bias is w[2]
    return X, t


def main():
    X, t = separable_data(N_POINTS)
    n, d = X.shape
    print(f"{n} points in 2-D, {int((t > 0).sum())} with t = +1 and {int((t < 0).sum())} with "
          f"t = -1; inputs (x1, x2, 1), so w = (w1, w2, bias)")

    rule = sg.optim.perceptron_rule(d)     # kernel(w, X, t, eta) -> (new_w, errors)

    # Rosenblatt's criterion over the whole data set, compiled (no gradient needed here).
    Xs, ts, ws = sg.tensor("X", ("n", d)), sg.tensor("t", ("n", 1)), sg.tensor("w", (d, 1))
    criterion = sg.losses.perceptron_criterion(Xs @ ws, ts)     # sum of max(0, -t w^T x)
    evaluate = sg.compile_function([criterion], [ws, Xs, ts], names=["E_P"])

    rng = np.random.default_rng(1)
    w = np.zeros((d, 1))
    print(f"\n{'epoch':>5} {'errors':>6} {'E_P(w) after the epoch':>24}")
    criteria = []
    converged = False
    for epoch in range(1, MAX_EPOCHS + 1):
        errors = 0
        for i in rng.permutation(n):                         # online: one example per call
            w, wrong = rule(w, X[i:i + 1], t[i:i + 1], ETA)
            errors += int(wrong)
        (value,) = evaluate(w, X, t)
        criteria.append(float(value))
        print(f"{epoch:>5} {errors:>6} {value:>24.6f}")
        if errors == 0:
            converged = True
            break

    print(f"\nconverged after {epoch} epochs (the last one made no mistake)")
    print(f"final weights w = ({w[0, 0]:.4f}, {w[1, 0]:.4f}, bias {w[2, 0]:.4f})")
    scale = 0.8 / w[0, 0]
    print(f"learned boundary, scaled to compare: {w[0, 0] * scale:.3f} x1 "
          f"{w[1, 0] * scale:+.3f} x2 {w[2, 0] * scale:+.3f} = 0 "
          f"(true line: 0.800 x1 -0.600 x2 +0.100 = 0)")
    predictions = np.where(X @ w > 0, 1.0, -1.0)
    accuracy = float(np.mean(predictions == t))
    print(f"training accuracy: {accuracy:.0%}")
    print(f"perceptron criterion E_P: {criteria[0]:.6f} after epoch 1, {criteria[-1]:.6f} at the "
          f"end")
    assert converged, "the perceptron did not converge on separable data"
    assert accuracy == 1.0
    assert criteria[-1] == 0.0

    # The rule is gradient descent on E_P: dE_P/dw = -sum over misclassified n of t_n x_n.
    w_probe = np.array([[0.3], [0.9], [-0.2]])
    _, (gradient,) = sg.compile(criterion, wrt=[ws], inputs=[Xs, ts])([w_probe], X=X, t=t)
    misclassified = (t * (X @ w_probe) < 0).ravel()
    by_hand = -(t[misclassified] * X[misclassified]).sum(axis=0).reshape(-1, 1)
    print(f"\nAt w = {w_probe.ravel()}: {int(misclassified.sum())} points misclassified;")
    print(f"  dE_P/dw from symgrad      = {gradient.ravel()}")
    print(f"  -sum_M t_n x_n (by hand)  = {by_hand.ravel()}")
    assert np.allclose(gradient, by_hand)
    print("so w <- w + eta t_n x_n is a gradient step on E_P, one example at a time")


if __name__ == "__main__":
    main()
