"""Handwritten digits: a multilayer perceptron trained with mini-batch Adam, over 97% on test.

Rosenblatt's first perceptron recognised digits; this one has a hidden layer.  The data is
scikit-learn's bundled 8x8 digits (1797 images, no download), pixels scaled to [0, 1] and
split into training and test sets with a seed.  The network is 64-128-10: ReLU hidden units
and 10 logits, trained on softmax cross-entropy computed from the logits (log-sum-exp), with
mini-batches of 32 and Adam.  Every step (forward, backward and Adam's update of all four
parameters) is one native kernel.  It prints the loss and test accuracy per epoch, the time
per epoch, the final test accuracy and the test mistakes, and a finite-difference check of
the gradient on a small batch (random directions, since the network has 9 610 weights).

Needs scikit-learn (``pip install -e ".[examples]"``); shows a progress bar when tqdm is
installed and the output is a terminal.

    python examples/digits.py
"""

import sys

import numpy as np

import symgrad as sg

HIDDEN = 128
EPOCHS = 40
BATCH_SIZE = 32
LEARNING_RATE = 1e-3


def load_data(seed=0, test_fraction=0.25):
    """(x_train, labels_train, x_test, labels_test), pixels in [0, 1]."""
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError:
        sys.exit('This example needs scikit-learn: pip install -e ".[examples]" '
                 '(or pip install scikit-learn)')
    digits = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(
        digits.data / 16.0, digits.target, test_size=test_fraction, random_state=seed,
        stratify=digits.target)
    return x_train, y_train, x_test, y_test


def main():
    x_train, y_train, x_test, y_test = load_data()
    one_hot = np.eye(10)[y_train]
    print(f"8x8 digits: {len(x_train)} training and {len(x_test)} test images, "
          f"64 pixels each")

    X = sg.tensor("X", ("n", 64))
    Y = sg.tensor("Y", ("n", 10))
    net = sg.nn.MLP([64, HIDDEN, 10], activation=sg.relu, output_activation=None, seed=0)
    logits = net(X)
    loss = sg.losses.softmax_cross_entropy(logits, Y)
    forward = sg.compile_function([logits], net.parameters() + [X], names=["logits"])
    n_weights = sum(v.size for v in net.values())
    print(f"network 64-{HIDDEN}-10 (ReLU, softmax cross-entropy from logits), "
          f"{n_weights} weights")

    def predict(values, x):
        return forward(*values, x)[0].argmax(axis=1)

    # The gradient, checked against central differences on a small batch.  Above 2000
    # entries gradcheck compares directional derivatives along random unit directions
    # (and 32 random entries) instead of every entry.
    at = dict(zip(net.parameters(), net.values()))
    at.update({X: x_train[:8], Y: one_hot[:8]})
    checked = sg.gradcheck(loss, net.parameters(), at=at)
    print(f"finite-difference gradient check on a batch of 8 "
          f"(random directions, {n_weights} weights): {checked}")
    assert checked

    print(f"\nmini-batch Adam (eta = {LEARNING_RATE}, batches of {BATCH_SIZE}), "
          f"{EPOCHS} epochs")
    history = sg.fit(net, loss, [X, Y], (x_train, one_hot),
                     optimizer=sg.optim.Adam(lr=LEARNING_RATE), epochs=EPOCHS,
                     batch_size=BATCH_SIZE, seed=0, progress=None,
                     metrics={"test accuracy":
                              lambda v: float(np.mean(predict(v, x_test) == y_test))})
    print(f"{'epoch':>6} {'loss':>9} {'test accuracy':>14}")
    for epoch in (1, 2, 3, 5, 10, 20, 30, EPOCHS):
        print(f"{epoch:>6} {history.loss[epoch - 1]:>9.5f} "
              f"{history.metrics['test accuracy'][epoch - 1]:>14.2%}")

    batches = -(-len(x_train) // BATCH_SIZE)
    per_epoch = float(np.median(history.epoch_time))
    print(f"\ntime per epoch: {per_epoch * 1e3:.1f} ms median ({batches} native steps, "
          f"{per_epoch / batches * 1e6:.0f} us per step of {BATCH_SIZE} images), "
          f"{sum(history.epoch_time):.2f} s in all")

    predicted = predict(net.values(), x_test)
    train_accuracy = float(np.mean(predict(net.values(), x_train) == y_train))
    test_accuracy = float(np.mean(predicted == y_test))
    print(f"training accuracy: {train_accuracy:.2%}")
    print(f"test accuracy: {test_accuracy:.2%} ({int(np.sum(predicted == y_test))} of "
          f"{len(y_test)})")
    mistakes = [(int(t), int(p)) for t, p in zip(y_test, predicted) if t != p]
    print("test mistakes (true -> predicted): "
          + ", ".join(f"{t}->{p}" for t, p in mistakes))
    assert test_accuracy >= 0.97, f"test accuracy {test_accuracy:.2%} is below 97%"


if __name__ == "__main__":
    main()
