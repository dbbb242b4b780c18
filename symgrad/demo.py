"""The main job, ``python -m symgrad demo``: the lecture end to end.

1. The worked example ``f(x, y) = x^2 + xy + (x + y)^2``: its derivatives by reverse mode, the
   fused forward+backward graph, the kernel's value and gradient.
2. An MLP trained on scikit-learn's 8x8 digits (Rosenblatt's first perceptron task, grown up)
   with mini-batch Adam, one native call per batch: a progress bar, the test accuracy, the
   time, and a finite-difference check of the gradients.
"""

import time

import numpy as np

import symgrad as sg


def worked_example():
    x, y = sg.symbols("x y")
    f = x**2 + x * y + (x + y)**2
    dfdx, dfdy = sg.grad(f, [x, y])
    print(f"f(x, y) = {f}")
    print(f"  df/dx = {dfdx}\n  df/dy = {dfdy}")
    kernel = sg.compile(f, wrt=[x, y])
    print("\nThe fused forward+backward kernel:")
    print(kernel)
    value, (dx, dy) = kernel(3.0, -2.0)
    print(f"\nf(3, -2) = {value}, gradient ({dx}, {dy})")


def digits_data(seed=0):
    """scikit-learn's digits, scaled to [0, 1], one-hot targets, a 80/20 split."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = (digits.data / 16.0).astype(np.float64)
    onehot = np.eye(10)[digits.target]
    order = np.random.default_rng(seed).permutation(len(images))
    cut = int(0.8 * len(images))
    train, test = order[:cut], order[cut:]
    return images[train], onehot[train], images[test], onehot[test]


def train_digits(epochs=30, hidden=64, batch_size=32, lr=3e-3, seed=0, progress=None):
    """Train a 64-hidden-10 MLP on digits; returns (net, history, test accuracy, X, Y, data)."""
    x_train, y_train, x_test, y_test = digits_data(seed)
    X = sg.tensor("X", ("n", 64))
    Y = sg.tensor("Y", ("n", 10))
    net = sg.nn.MLP([64, hidden, 10], activation=sg.tanh, output_activation=None, seed=seed)
    loss = sg.losses.softmax_cross_entropy(net(X), Y)
    history = sg.fit(net, loss, [X, Y], [x_train, y_train], optimizer=sg.optim.Adam(lr),
                     epochs=epochs, batch_size=batch_size, seed=seed, progress=progress)
    logits = sg.compile_function([net(X)], [*net.parameters(), X])
    (scores,) = logits(*net.values(), x_test)
    accuracy = float(np.mean(scores.argmax(axis=1) == y_test.argmax(axis=1)))
    return net, history, accuracy, (X, Y, loss), (x_train, y_train)


def run_demo(epochs=30, progress=None):
    worked_example()
    try:
        import sklearn  # noqa: F401  (optional: the examples extra)
    except ImportError:
        print("\nThe second part trains on scikit-learn's digits: install the examples extra "
              "with  pip install -e \".[examples]\"")
        return 1
    print("\nTraining an MLP 64-64-10 (tanh, softmax cross-entropy from logits) on the 8x8 "
          "digits with mini-batch Adam:")
    start = time.perf_counter()
    net, history, accuracy, (X, Y, loss), (x_train, y_train) = train_digits(
        epochs=epochs, progress=progress)
    elapsed = time.perf_counter() - start
    per_epoch = np.median(history.epoch_time) * 1e3
    print(f"final training loss {history.loss[-1]:.4f}; test accuracy {accuracy:.2%}")
    origin = "native code from the disk cache" if history.from_cache else "compiled by LLVM"
    print(f"step kernel (forward, backward, Adam update) built in "
          f"{history.compile_time * 1e3:.0f} ms ({origin})")
    print(f"{len(history.loss)} epochs in {elapsed:.2f} s including compilation "
          f"({per_epoch:.1f} ms per epoch)")
    at = dict(zip(net.parameters(), net.values()))
    at.update({X: x_train[:16], Y: y_train[:16]})
    print("finite-difference check of the network's gradients:",
          sg.gradcheck(loss, net.parameters(), at))
    return 0
