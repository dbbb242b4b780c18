"""Logistic regression: one neuron with a sigmoid, trained by gradient descent on real data.

The lecture's logistic regression is the perceptron with ``h = sigma`` and the loss
``E(w) = -(1/N) sum_i [y_i log sigma(w^T x_i) + (1 - y_i) log(1 - sigma(w^T x_i))]``.  This
script fits it to scikit-learn's bundled breast-cancer data set (569 tumours, 30 features,
malignant or benign; no download), with standardised features and a seeded train/test split,
by full-batch gradient descent (``sg.fit`` with ``sg.optim.GradientDescent``): every step is
one native kernel computing the loss, its gradient and the update together.  It prints the
loss every few epochs and the test accuracy (about 96%).

Needs scikit-learn (``pip install -e ".[examples]"``).

    python examples/logistic_regression.py
"""

import sys

import numpy as np

import symgrad as sg

EPOCHS = 300
LEARNING_RATE = 0.5


def load_data(seed=0, test_fraction=0.25):
    """Standardised (x_train, t_train, x_test, t_test) with targets of shape (n, 1)."""
    try:
        from sklearn.datasets import load_breast_cancer
        from sklearn.model_selection import train_test_split
    except ImportError:
        sys.exit('This example needs scikit-learn: pip install -e ".[examples]" '
                 '(or pip install scikit-learn)')
    data = load_breast_cancer()
    x_train, x_test, t_train, t_test = train_test_split(
        data.data, data.target.astype(float).reshape(-1, 1), test_size=test_fraction,
        random_state=seed, stratify=data.target)
    mean, std = x_train.mean(axis=0), x_train.std(axis=0)   # statistics of the training set
    return (x_train - mean) / std, t_train, (x_test - mean) / std, t_test


def main():
    x_train, t_train, x_test, t_test = load_data()
    n_features = x_train.shape[1]
    print(f"breast-cancer data: {len(x_train)} training and {len(x_test)} test examples, "
          f"{n_features} standardised features, target 1 = benign")

    X = sg.tensor("X", ("n", n_features))
    T = sg.tensor("T", ("n", 1))
    neuron = sg.nn.Dense(n_features, 1, activation=sg.sigmoid, seed=0)   # sigma(X w + b)
    probability = neuron(X)
    loss = sg.losses.binary_cross_entropy(probability, T)   # computed from the logits
    predict = sg.compile_function([probability], neuron.parameters() + [X], names=["p"])

    def accuracy(values, x, t):
        (p,) = predict(*values, x)
        return float(np.mean((p > 0.5) == (t > 0.5)))

    print(f"\nfull-batch gradient descent, eta = {LEARNING_RATE}, {EPOCHS} epochs")
    history = sg.fit(neuron, loss, [X, T], (x_train, t_train),
                     optimizer=sg.optim.GradientDescent(lr=LEARNING_RATE), epochs=EPOCHS,
                     batch_size=None, progress=False,
                     metrics={"test accuracy": lambda v: accuracy(v, x_test, t_test)})

    print(f"{'epoch':>6} {'loss':>10} {'test accuracy':>14}")
    for epoch in (1, 2, 5, 10, 20, 50, 100, 200, EPOCHS):
        print(f"{epoch:>6} {history.loss[epoch - 1]:>10.5f} "
              f"{history.metrics['test accuracy'][epoch - 1]:>14.2%}")

    train_accuracy = accuracy(neuron.values(), x_train, t_train)
    test_accuracy = accuracy(neuron.values(), x_test, t_test)
    print(f"\ntraining accuracy: {train_accuracy:.2%}")
    print(f"test accuracy: {test_accuracy:.2%} ({round(test_accuracy * len(t_test))} of "
          f"{len(t_test)})")
    print(f"time per epoch: {np.median(history.epoch_time) * 1e3:.2f} ms (median)")
    assert history.loss[-1] < history.loss[0] / 4, "the loss did not go down"
    assert test_accuracy >= 0.93, f"test accuracy {test_accuracy:.2%} is below 93%"


if __name__ == "__main__":
    main()
