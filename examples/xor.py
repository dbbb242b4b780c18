"""XOR: one neuron cannot learn it, a network of two layers can (Minsky and Papert 1969).

A single neuron ``sigma(w^T x + b)`` draws one straight line through the plane, and no line
separates XOR's {(0,1), (1,0)} from {(0,0), (1,1)}: at best 3 of the 4 points come out right.
This script shows it three ways on the four XOR points:

* logistic regression (one sigmoid neuron, binary cross-entropy, gradient descent) ends with
  a loss stuck at log 2 and outputs near 0.5: 50-75% accuracy;
* Rosenblatt's perceptron rule (``sg.optim.perceptron_rule``) never has an epoch without
  mistakes;
* a 2-4-1 network (tanh hidden layer, sigmoid output, binary cross-entropy, Adam) classifies
  all four points, and its outputs are printed.

    python examples/xor.py
"""

import numpy as np

import symgrad as sg

POINTS = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)
TARGETS = np.array([[0], [1], [1], [0]], dtype=float)


def predictor(model, X):
    """A kernel ``predict(values, x) -> outputs`` for a model (forward pass only)."""
    output = model(X)
    kernel = sg.compile_function([output], model.parameters() + [X], names=["y"])
    return lambda values, x: kernel(*values, x)[0]


def one_neuron():
    X = sg.tensor("X", ("n", 2))
    T = sg.tensor("T", ("n", 1))
    neuron = sg.nn.Dense(2, 1, activation=sg.sigmoid, seed=0)
    predict = predictor(neuron, X)
    loss = sg.losses.binary_cross_entropy(neuron(X), T)
    history = sg.fit(neuron, loss, [X, T], (POINTS, TARGETS),
                     optimizer=sg.optim.GradientDescent(lr=1.0), epochs=2000, progress=False)
    outputs = predict(neuron.values(), POINTS)
    accuracy = float(np.mean((outputs > 0.5) == (TARGETS > 0.5)))
    print("One neuron, sigma(w^T x + b), 2000 epochs of gradient descent (eta = 1):")
    print(f"  loss {history.loss[0]:.4f} -> {history.loss[-1]:.4f} "
          f"(log 2 = {np.log(2):.4f}: no better than guessing 0.5 everywhere)")
    print(f"  outputs {np.round(outputs.ravel(), 3)} for targets {TARGETS.ravel()}")
    print(f"  one neuron: accuracy {accuracy:.0%}")
    assert 0.5 <= accuracy <= 0.75, accuracy
    assert history.loss[-1] > 0.69, history.loss[-1]
    return accuracy


def perceptron():
    rule = sg.optim.perceptron_rule(3)
    X = np.hstack([POINTS, np.ones((4, 1))])     # a constant input 1 for the bias
    t = 2 * TARGETS - 1                          # targets in {-1, +1}
    w = np.zeros((3, 1))
    rng = np.random.default_rng(0)
    errors_per_epoch = []
    for _ in range(100):
        errors = 0
        for i in rng.permutation(4):
            w, wrong = rule(w, X[i:i + 1], t[i:i + 1], 1.0)
            errors += int(wrong)
        errors_per_epoch.append(errors)
    print("\nRosenblatt's perceptron rule, 100 online epochs:")
    print(f"  errors in the first 10 epochs {errors_per_epoch[:10]}, "
          f"fewest in any epoch: {min(errors_per_epoch)}")
    assert min(errors_per_epoch) > 0, "the perceptron cannot converge on XOR"


def network():
    X = sg.tensor("X", ("n", 2))
    T = sg.tensor("T", ("n", 1))
    net = sg.nn.MLP([2, 4, 1], activation=sg.tanh, output_activation=sg.sigmoid, seed=0)
    predict = predictor(net, X)
    loss = sg.losses.binary_cross_entropy(net(X), T)
    history = sg.fit(net, loss, [X, T], (POINTS, TARGETS),
                     optimizer=sg.optim.Adam(lr=0.05), epochs=500, progress=False)
    outputs = predict(net.values(), POINTS)
    accuracy = float(np.mean((outputs > 0.5) == (TARGETS > 0.5)))
    print("\nA 2-4-1 network (tanh hidden layer, sigmoid output), 500 epochs of Adam "
          "(eta = 0.05):")
    print(f"  loss {history.loss[0]:.4f} -> {history.loss[-1]:.4f}")
    print(f"  {'x1':>4} {'x2':>4} {'target':>7} {'output':>8}")
    for (x1, x2), target, output in zip(POINTS, TARGETS.ravel(), outputs.ravel()):
        print(f"  {x1:>4.0f} {x2:>4.0f} {target:>7.0f} {output:>8.4f}")
    print(f"  2-layer network: accuracy {accuracy:.0%}")
    assert accuracy == 1.0, accuracy
    return accuracy


def main():
    one_neuron()
    perceptron()
    network()
    print("\nOne neuron draws one line and cannot separate XOR; two layers can.")


if __name__ == "__main__":
    main()
