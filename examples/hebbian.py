"""Hebb's rule as an associative memory: store +-1 patterns, recall them from corrupted ones.

Hebb's rule ``Delta w_ij = eta x_i x_j`` strengthens a connection when both of its ends are
active together; it needs no gradient and no target.  ``sg.optim.hebb_rule`` compiles it
into a native kernel.  This script:

* stores 4 random +-1 patterns of 64 units, one per call of the kernel (auto-associative:
  ``W = eta sum_k x_k x_k^T``, then a zero diagonal, a Hopfield network);
* recalls each one from a copy with 8 of its 64 bits (12.5%) flipped, by iterating
  ``x <- sign(W x)`` (a compiled kernel) until nothing changes, and prints the fraction of
  bits recalled correctly per pattern;
* stores 24 patterns in the same 64 units, far beyond the capacity of about 0.14 x 64 = 9,
  where recall breaks down;
* pairs 4 patterns of 64 units with 4 of 16 (hetero-associative: ``W = eta sum_k y_k
  x_k^T``) and recalls each y from a corrupted x in one step ``y = sign(W x)``.

    python examples/hebbian.py
"""

import numpy as np

import symgrad as sg

UNITS = 64
FLIPPED = 8          # 12.5% of 64


def sign_kernel(n_inputs, n_outputs):
    """``recall(W, X) -> sign(X W^T)`` for a batch of states X (rows), with sign(0) = +1."""
    W = sg.tensor("W", (n_outputs, n_inputs))
    X = sg.tensor("X", ("n", n_inputs))
    return sg.compile_function([sg.where(X @ W.T >= 0, 1.0, -1.0)], [W, X], names=["sign"])


def corrupt(patterns, flips, rng):
    """Each pattern with ``flips`` of its bits (chosen at random) flipped."""
    noisy = patterns.copy()
    for row in noisy:
        row[rng.choice(row.size, flips, replace=False)] *= -1
    return noisy


def store(patterns):
    """Hebb's rule, one pattern per call, then no self-connections."""
    hebb = sg.optim.hebb_rule(UNITS)                 # kernel(W, X, eta) -> (W + eta X^T X,)
    W = np.zeros((UNITS, UNITS))
    for pattern in patterns:
        (W,) = hebb(W, pattern[None, :], 1.0 / UNITS)
    np.fill_diagonal(W, 0.0)
    return W


def recall(W, states, step, max_iterations=20):
    """Iterate x <- sign(W x) (all units at once) until a fixed point; (states, iterations)."""
    for iteration in range(1, max_iterations + 1):
        (updated,) = step(W, states)
        if np.array_equal(updated, states):
            return states, iteration - 1
        states = updated
    return states, max_iterations


def auto_associative(rng, step, count, show=True):
    patterns = rng.choice([-1.0, 1.0], size=(count, UNITS))
    W = store(patterns)
    # The kernel computed eta * sum_k x_k x_k^T, as numpy does.
    expected = patterns.T @ patterns / UNITS
    np.fill_diagonal(expected, 0.0)
    assert np.allclose(W, expected)
    noisy = corrupt(patterns, FLIPPED, rng)
    recalled, iterations = recall(W, noisy, step)
    before = np.mean(noisy == patterns, axis=1)
    after = np.mean(recalled == patterns, axis=1)
    if show:
        print(f"{'pattern':>8} {'bits right in the cue':>22} {'after recall':>13}")
        for k in range(count):
            print(f"{k + 1:>8} {before[k]:>22.2%} {after[k]:>13.2%}")
        print(f"(fixed point after {iterations} synchronous update(s))")
    return after


def hetero_associative(rng):
    n_out = 16
    inputs = rng.choice([-1.0, 1.0], size=(4, UNITS))
    outputs = rng.choice([-1.0, 1.0], size=(4, n_out))
    hebb = sg.optim.hebb_rule(UNITS, n_out)          # kernel(W, X, Y, eta) -> (W + eta Y^T X,)
    (W,) = hebb(np.zeros((n_out, UNITS)), inputs, outputs, 1.0 / UNITS)   # all pairs at once
    (recalled,) = sign_kernel(UNITS, n_out)(W, corrupt(inputs, FLIPPED, rng))
    accuracy = np.mean(recalled == outputs, axis=1)
    print(f"\nHetero-associative: 4 pairs (x of {UNITS} units -> y of {n_out}), "
          f"W = eta sum_k y_k x_k^T; y = sign(W x) from x with {FLIPPED} bits flipped:")
    for k, value in enumerate(accuracy, start=1):
        print(f"  pair {k}: {value:.2%} of the bits of y right")
    return accuracy


def main():
    rng = np.random.default_rng(0)
    step = sign_kernel(UNITS, UNITS)

    print(f"Auto-associative memory: 4 random +-1 patterns of {UNITS} units stored with Hebb's "
          f"rule (eta = 1/{UNITS}, zero diagonal);")
    print(f"each recalled from a cue with {FLIPPED} of {UNITS} bits flipped "
          f"({FLIPPED / UNITS:.1%}) by x <- sign(W x):")
    stored = auto_associative(rng, step, 4)
    print(f"auto-associative recall: {stored.mean():.2%} of the bits right on average")
    assert stored.min() >= 0.95, stored

    crowded = auto_associative(rng, step, 24, show=False)
    print(f"\nThe same memory holding 24 patterns (capacity is about 0.14 x {UNITS} = 9): "
          f"{crowded.mean():.2%} of the bits right on average (the cues had "
          f"{1 - FLIPPED / UNITS:.2%}), "
          f"{int(np.sum(crowded == 1.0))} of 24 patterns recalled exactly")
    assert crowded.mean() < stored.mean()

    paired = hetero_associative(rng)
    print(f"hetero-associative recall: {paired.mean():.2%} of the bits right on average")
    assert paired.min() >= 0.95, paired


if __name__ == "__main__":
    main()
