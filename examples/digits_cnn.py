"""Handwritten digits with a small convolutional network, against the MLP of digits.py.

The same data and split as ``examples/digits.py`` (scikit-learn's 8x8 digits, pixels in
[0, 1], a stratified quarter held out).  The network: two 3x3 convolutions to 32 channels
with padding 1 and ReLU, 2x2 max pooling and a dense layer to 10 logits; softmax
cross-entropy from the logits, mini-batches of 32, Adam.  Every training step (both
convolutions, the pooling, the dense layer, the loss, every gradient and Adam's update) is
one native kernel.

It trains the MLP of digits.py on the same split for the same number of epochs, prints both
test accuracies, the time per epoch of each, and a finite-difference check of the CNN's
gradient, and exits non-zero unless the CNN's test accuracy is above the MLP's.

Needs scikit-learn (``pip install -e ".[examples]"``).

    python examples/digits_cnn.py
"""

import pathlib
import sys

import numpy as np

import symgrad as sg

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from digits import HIDDEN, load_data  # noqa: E402  (the same data and split)

EPOCHS = 30
BATCH_SIZE = 32
LEARNING_RATE = 2e-3      # (both networks)


def cnn(seed=0):
    return sg.nn.Sequential(
        sg.nn.Conv2d(1, 32, 3, padding=1, activation=sg.relu, name="1", seed=seed),
        sg.nn.Conv2d(32, 32, 3, padding=1, activation=sg.relu, name="2", seed=seed + 1),
        sg.nn.MaxPool2d(2),
        sg.nn.Flatten(),
        sg.nn.Dense(32 * 4 * 4, 10, name="3", seed=seed + 2),
    )


def train(model, logits, X, Y, x_train, one_hot, x_test, y_test):
    loss = sg.losses.softmax_cross_entropy(logits, Y)
    forward = sg.compile_function([logits], model.parameters() + [X], names=["logits"])

    def accuracy(values, x, y):
        return float(np.mean(forward(*values, x)[0].argmax(axis=1) == y))
    history = sg.fit(model, loss, [X, Y], (x_train, one_hot),
                     optimizer=sg.optim.Adam(lr=LEARNING_RATE), epochs=EPOCHS,
                     batch_size=BATCH_SIZE, seed=0, progress=None,
                     metrics={"test accuracy": lambda v: accuracy(v, x_test, y_test)})
    return loss, history, accuracy(model.values(), x_test, y_test)


def main():
    x_train, y_train, x_test, y_test = load_data()
    one_hot = np.eye(10)[y_train]
    print(f"8x8 digits: {len(x_train)} training and {len(x_test)} test images")

    X = sg.tensor("X", ("n", 64))
    Y = sg.tensor("Y", ("n", 10))
    model = cnn()
    logits = model(X.reshape(("n", 1, 8, 8)))
    n_weights = sum(v.size for v in model.values())
    print(f"CNN conv3x3(32)-relu-conv3x3(32)-relu-maxpool2-dense(10), {n_weights} weights")

    # The gradient against central differences, at a point away from the kinks: on the
    # digits' blank borders every pre-activation is exactly 0 (zero pixels, zero biases),
    # where ReLU and the max of tied windows have no derivative for differences to find.
    rng = np.random.default_rng(1)
    at = {p: v + 0.1 * rng.standard_normal(v.shape)
          for p, v in zip(model.parameters(), model.values())}
    at.update({X: x_train[:4] + 0.1 * rng.standard_normal((4, 64)), Y: one_hot[:4]})
    checked = sg.gradcheck(sg.losses.softmax_cross_entropy(logits, Y), model.parameters(),
                           at=at)
    print(f"finite-difference gradient check on a batch of 4 (noisy images and "
          f"parameters): {checked}")
    assert checked

    loss, history, cnn_accuracy = train(model, logits, X, Y, x_train, one_hot, x_test, y_test)
    print(f"\n{'epoch':>6} {'loss':>9} {'test accuracy':>14}")
    for epoch in (1, 2, 5, 10, 20, EPOCHS):
        print(f"{epoch:>6} {history.loss[epoch - 1]:>9.5f} "
              f"{history.metrics['test accuracy'][epoch - 1]:>14.2%}")
    cnn_epoch = float(np.median(history.epoch_time))

    mlp = sg.nn.MLP([64, HIDDEN, 10], activation=sg.relu, output_activation=None, seed=0)
    _, mlp_history, mlp_accuracy = train(mlp, mlp(X), X, Y, x_train, one_hot, x_test, y_test)
    mlp_epoch = float(np.median(mlp_history.epoch_time))

    batches = -(-len(x_train) // BATCH_SIZE)
    print(f"\ntime per epoch ({batches} native steps of {BATCH_SIZE} images): CNN "
          f"{cnn_epoch * 1e3:.1f} ms, MLP 64-{HIDDEN}-10 {mlp_epoch * 1e3:.1f} ms")
    print(f"MLP test accuracy: {mlp_accuracy:.2%}")
    print(f"CNN test accuracy: {cnn_accuracy:.2%}")
    assert cnn_accuracy > mlp_accuracy, \
        f"the CNN's {cnn_accuracy:.2%} is not above the MLP's {mlp_accuracy:.2%}"


if __name__ == "__main__":
    main()
