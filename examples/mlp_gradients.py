"""The backpropagation rules, derived by symgrad for a 3-layer MLP and checked.

Declares a 2-4-3-1 network with tanh hidden layers and a sigmoid output, and the binary
cross-entropy loss; prints the derivative equations reverse mode produced (they read as the
lecture's delta rules, with examples as rows), their LaTeX, compiles forward + backward + loss
into one native kernel, and checks its gradients against a hand-written numpy implementation of
the rules and against finite differences.  Finally it compiles a 784-256-128-10 network to show
that compile time does not grow with the number of weights.

    python examples/mlp_gradients.py
"""

import time

import numpy as np

import symgrad as sg


def numpy_backprop(weights, biases, x, t):
    """The lecture's rules by hand: delta^(L) = dC/da^(L) h'(z^(L)),
    delta^(l) = (delta^(l+1) W^(l+1)) h'(z^(l)), dC/dW = delta^T a^(l-1), dC/db = sum delta."""
    activations = [x]
    zs = []
    for layer, (w, b) in enumerate(zip(weights, biases)):
        z = activations[-1] @ w.T + b
        zs.append(z)
        last = layer == len(weights) - 1
        activations.append(1 / (1 + np.exp(-z)) if last else np.tanh(z))
    n = x.shape[0]
    p = activations[-1]
    loss = -np.mean(t * np.log(p) + (1 - t) * np.log(1 - p))
    grad_a = (p - t) / (p * (1 - p)) / n           # dC/da^(L)
    delta = grad_a * p * (1 - p)                    # times sigmoid'(z^(L))
    grads_w, grads_b = [], []
    for layer in reversed(range(len(weights))):
        grads_w.insert(0, delta.T @ activations[layer])
        grads_b.insert(0, delta.sum(axis=0))
        if layer:
            delta = (delta @ weights[layer]) * (1 - activations[layer] ** 2)   # tanh'
    return loss, grads_w, grads_b


def main():
    X = sg.tensor("X", ("n", 2))
    T = sg.tensor("T", ("n", 1))
    net = sg.nn.MLP([2, 4, 3, 1], activation=sg.tanh, output_activation=sg.sigmoid, seed=0)
    loss = sg.losses.binary_cross_entropy(net(X), T)

    derivation = sg.grad(loss, net.parameters())
    print("What reverse mode derived (rows are examples, o is the elementwise product,")
    print("1 a column or row of ones, so 1*delta sums delta over the batch):\n")
    print(derivation)
    print("\nIn LaTeX:\n")
    print(derivation.latex())

    start = time.perf_counter()
    step = sg.compile(loss, wrt=net.parameters(), inputs=[X, T])
    print(f"\nForward + backward + loss compiled into one native kernel in "
          f"{(time.perf_counter() - start) * 1e3:.0f} ms")

    rng = np.random.default_rng(1)
    x = rng.normal(size=(32, 2))
    t = (x[:, :1] * x[:, 1:] > 0).astype(float)
    value, grads = step(net.values(), X=x, T=t)
    values = net.values()
    expected_loss, grads_w, grads_b = numpy_backprop(values[0::2], values[1::2], x, t)
    expected = [g for pair in zip(grads_w, grads_b) for g in pair]
    print(f"\nloss on a batch of 32: {value:.12f} (numpy: {expected_loss:.12f})")
    print(f"{'parameter':>10} {'shape':>8} {'max |symgrad - numpy delta rules|':>36}")
    for parameter, got, want in zip(net.parameters(), grads, expected):
        error = float(np.max(np.abs(got - want)))
        print(f"{parameter.name:>10} {str(parameter.shape):>8} {error:>36.3e}")
        assert np.allclose(got, want, rtol=1e-10, atol=1e-14)
    at = dict(zip(net.parameters(), net.values()))
    at.update({X: x, T: t})
    print("finite-difference check (every entry):", sg.gradcheck(step, net.parameters(), at))

    X = sg.tensor("X", ("n", 784), "float32")
    Y = sg.tensor("Y", ("n", 10), "float32")
    start = time.perf_counter()
    big = sg.nn.MLP([784, 256, 128, 10], activation=sg.tanh, output_activation=None,
                    dtype="float32")
    big_step = sg.compile(sg.losses.softmax_cross_entropy(big(X), Y), wrt=big.parameters(),
                          inputs=[X, Y])
    elapsed = time.perf_counter() - start
    weights = sum(v.size for v in big.values())
    print(f"\nMLP 784-256-128-10 ({weights} weights, float32): declared, differentiated and "
          f"compiled in {elapsed * 1e3:.0f} ms")
    x = rng.normal(size=(128, 784)).astype(np.float32)
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 128)]
    value, grads = big_step(big.values(), X=x, Y=y)
    print(f"one step on a batch of 128: loss {value:.4f}, "
          f"{len(grads)} gradients in one native call")


if __name__ == "__main__":
    main()
