"""Dense layers and MLPs: parameters and initialisation, compiled gradients against a
hand-written numpy implementation of the backprop delta rules, one native call per training
step, a 784-256-128-10 network, and the errors of bad sizes."""

import numpy as np
import pytest

import symgrad as sg
from symgrad import ir
from symgrad.reference.evaluate import evaluate

# ---------------------------------------------------------------------------------------------
# 1. Parameters and initialisation
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_parameters_have_the_right_names_shapes_and_dtypes(dtype):
    net = sg.nn.MLP([3, 5, 4, 2], activation=sg.sigmoid, seed=0, dtype=dtype)
    params = net.parameters()
    assert [p.name for p in params] == ["W1", "b1", "W2", "b2", "W3", "b3"]
    assert [p.shape for p in params] == [(5, 3), (5,), (4, 5), (4,), (2, 4), (2,)]
    assert all(p.dtype == dtype for p in params)
    values = net.values()
    assert [v.shape for v in values] == [p.shape for p in params]
    assert all(v.dtype == np.dtype(dtype) for v in values)
    for bias in values[1::2]:
        np.testing.assert_array_equal(bias, 0)
    # Glorot-uniform for sigmoid: |W| <= sqrt(6 / (fan_in + fan_out)), not all tiny.
    for weight, (fan_out, fan_in) in zip(values[0::2], [(5, 3), (4, 5), (2, 4)]):
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        assert np.all(np.abs(weight) <= limit)
        assert np.max(np.abs(weight)) > limit / 4
    assert len(net.layers) == 3


def test_named_networks_keep_their_parameters_apart():
    a = sg.nn.MLP([2, 3, 1], activation=sg.tanh, name="g")
    b = sg.nn.MLP([2, 3, 1], activation=sg.tanh, name="d")
    assert [p.name for p in a.parameters()] == ["gW1", "gb1", "gW2", "gb2"]
    assert not {p.name for p in a.parameters()} & {p.name for p in b.parameters()}


@pytest.mark.parametrize("name", ["", "net", "W"])
def test_a_derivation_names_the_layers_values_whatever_the_network_is_called(name):
    net = sg.nn.MLP([2, 3, 4, 1], activation=sg.tanh, name=name)
    X = sg.tensor("X", ("n", 2))
    T = sg.tensor("T", ("n", 1))
    derivation = sg.grad(sg.losses.mse(net(X), T), net.parameters())
    names = [n for n, _ in derivation.equations]
    assert names == ["z1", "a1", "z2", "a2", "z3", "a3", "delta3", "delta2", "delta1"] + [
        f"dC/d{name}{kind}{layer}" for layer in (1, 2, 3) for kind in ("W", "b")]
    assert "delta1 = " in str(derivation) and r"\delta_{1}" in derivation.latex()


def test_labels_go_with_the_expression_not_with_its_nodes():
    # The same nodes built by hand (interned: the very nodes the network's call made) carry
    # no labels: a derivation shows what the expression it is given was labelled with.
    net = sg.nn.MLP([2, 3, 1], activation=sg.tanh)
    X = sg.tensor("X", ("n", 2))
    T = sg.tensor("T", ("n", 1))
    labelled = sg.losses.mse(net(X), T)
    W1, b1, W2, b2 = net.parameters()
    by_hand = sg.losses.mse(sg.tanh(sg.tanh(X @ W1.T + b1) @ W2.T + b2), T)
    assert by_hand.node is labelled.node
    assert [n for n, _ in sg.grad(by_hand, net.parameters()).equations] == [
        "dC/dW1", "dC/db1", "dC/dW2", "dC/db2"]
    assert [n for n, _ in sg.grad(labelled, net.parameters()).equations][:2] == ["z1", "a1"]
    # sg.label names a value of one's own, on the tensor it returns.
    hidden = sg.label(sg.tanh(X @ W1.T + b1), "h", "dh")
    assert [n for n, _ in sg.grad(sg.losses.mse(hidden @ W2.T + b2, T),
                                  net.parameters()).equations][:2] == ["h", "dh"]


def test_initialisation_is_deterministic_for_a_seed_and_differs_across_seeds():
    def weights(seed):
        return sg.nn.MLP([4, 6, 3], activation=sg.tanh, seed=seed).values()

    for first, second in zip(weights(7), weights(7)):
        np.testing.assert_array_equal(first, second)
    assert not np.array_equal(weights(7)[0], weights(8)[0])
    assert not np.array_equal(weights(7)[2], weights(8)[2])
    # Layers of one network do not share a random stream position.
    net = sg.nn.MLP([4, 4, 4], activation=sg.tanh, seed=0)
    assert not np.array_equal(net.values()[0], net.values()[2])


def test_he_initialisation_for_relu():
    net = sg.nn.MLP([400, 300, 2], activation=sg.relu, seed=0)
    weight = net.values()[0]
    assert weight.std() == pytest.approx(np.sqrt(2.0 / 400), rel=0.05)
    assert abs(weight.mean()) < 0.01
    with pytest.raises(ValueError, match="init"):
        sg.nn.MLP([2, 2], activation=sg.relu, init="uniform")


def test_set_values_checks_shapes_and_dtypes():
    net = sg.nn.MLP([3, 4, 2], activation=sg.tanh, seed=0)
    new = [np.full(v.shape, 0.5) for v in net.values()]
    net.set_values(new)
    for got, want in zip(net.values(), new):
        np.testing.assert_array_equal(got, want)
    new[0][0, 0] = 9.0              # the network keeps its own copy
    assert net.values()[0][0, 0] == 0.5

    good = net.values()
    with pytest.raises(ValueError, match="4 arrays"):
        net.set_values(good[:3])
    with pytest.raises(ValueError, match="'W1'.*\\(4, 3\\).*\\(3, 4\\)"):
        net.set_values([good[0].T] + good[1:])
    with pytest.raises(ValueError, match="'b2'.*\\(2,\\)"):
        net.set_values(good[:3] + [np.zeros(3)])
    with pytest.raises(TypeError, match="'W2'.*float64.*float32"):
        net.set_values(good[:2] + [good[2].astype(np.float32)] + good[3:])
    with pytest.raises(TypeError, match="'b1'"):
        net.set_values([good[0], np.zeros(4, int)] + good[2:])
    # A refused call leaves only well-formed values behind.
    for got, want in zip(net.values(), good):
        assert got.shape == want.shape and got.dtype == want.dtype


# ---------------------------------------------------------------------------------------------
# 2. Compiled gradients against numpy backprop with the lecture's delta rules
# ---------------------------------------------------------------------------------------------

def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


# h and h' as functions of z.
NUMPY_ACTIVATIONS = {
    "sigmoid": (_sigmoid, lambda z: _sigmoid(z) * (1.0 - _sigmoid(z))),
    "tanh": (np.tanh, lambda z: 1.0 - np.tanh(z) ** 2),
    None: (lambda z: z, lambda z: np.ones_like(z)),
}
ACTIVATIONS = {"sigmoid": sg.sigmoid, "tanh": sg.tanh, None: None}


def _numpy_loss_and_dC_da(loss, y, t):
    """The loss C (mean reduction) and dC/da^(L) for the output a^(L) = y."""
    if loss == "bce":
        c = np.mean(-(t * np.log(y) + (1 - t) * np.log(1 - y)))
        return c, (-t / y + (1 - t) / (1 - y)) / y.size
    if loss == "mse":
        return np.mean((y - t) ** 2), 2 * (y - t) / y.size
    if loss == "softmax_ce":
        shifted = y - y.max(axis=1, keepdims=True)
        log_softmax = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        c = -np.mean((t * log_softmax).sum(axis=1))
        return c, (np.exp(log_softmax) - t) / y.shape[0]
    raise ValueError(loss)


def numpy_backprop(weights, biases, activations, loss, x, t):
    """Forward pass, loss and gradients by the delta rules, rows being examples:

    z^(l) = a^(l-1) W^(l)T + b^(l),  a^(l) = h_l(z^(l)),  a^(0) = x
    delta^(L) = dC/da^(L) * h_L'(z^(L))
    delta^(l) = (delta^(l+1) W^(l+1)) * h_l'(z^(l))
    dC/dW^(l) = delta^(l)T a^(l-1),  dC/db^(l) = sum over rows of delta^(l)
    """
    a = [x]
    z = []
    for w, b, name in zip(weights, biases, activations):
        z.append(a[-1] @ w.T + b)
        a.append(NUMPY_ACTIVATIONS[name][0](z[-1]))
    c, dC_da = _numpy_loss_and_dC_da(loss, a[-1], t)
    layers = len(weights)
    deltas = [None] * layers
    deltas[-1] = dC_da * NUMPY_ACTIVATIONS[activations[-1]][1](z[-1])
    for l in range(layers - 2, -1, -1):
        deltas[l] = (deltas[l + 1] @ weights[l + 1]) * NUMPY_ACTIVATIONS[activations[l]][1](z[l])
    grads = []
    for l in range(layers):
        grads += [deltas[l].T @ a[l], deltas[l].sum(axis=0)]
    return c, grads


# loss -> (output size, output activation given the hidden one, symgrad loss)
LOSSES = {
    "bce": (2, lambda hidden: "sigmoid", sg.losses.binary_cross_entropy),
    "mse": (2, lambda hidden: hidden, sg.losses.mean_squared_error),
    "softmax_ce": (4, lambda hidden: None, sg.losses.softmax_cross_entropy),
}


def _targets(loss, rng, n, k):
    if loss == "bce":
        return rng.integers(0, 2, (n, k)).astype(float)
    if loss == "mse":
        return rng.uniform(-0.5, 0.9, (n, k))
    return np.eye(k)[rng.integers(0, k, n)]


@pytest.mark.parametrize("loss", sorted(LOSSES))
@pytest.mark.parametrize("hidden_activation", ["sigmoid", "tanh"])
@pytest.mark.parametrize("hidden", [[4], [4, 5], [4, 5, 3]], ids=["1hidden", "2hidden",
                                                                  "3hidden"])
def test_compiled_gradients_equal_numpy_backprop(loss, hidden_activation, hidden):
    outputs, output_activation, loss_function = LOSSES[loss]
    output_activation = output_activation(hidden_activation)
    sizes = [3, *hidden, outputs]
    activations = [hidden_activation] * len(hidden) + [output_activation]
    rng = np.random.default_rng(len(hidden))
    n = 6
    x = rng.normal(size=(n, 3))
    t = _targets(loss, rng, n, outputs)

    for dtype, rtol in (("float64", 1e-10), ("float32", 2e-4)):
        net = sg.nn.MLP(sizes, activation=ACTIVATIONS[hidden_activation],
                        output_activation=ACTIVATIONS[output_activation], seed=3, dtype=dtype)
        # Non-zero biases so that every term of the rules matters.
        values = net.values()
        values[1::2] = [rng.normal(size=b.shape).astype(dtype) for b in values[1::2]]
        net.set_values(values)
        X = sg.tensor("X", ("n", 3), dtype)
        T = sg.tensor("T", ("n", outputs), dtype)
        step = sg.compile(loss_function(net(X), T), wrt=net.parameters(), inputs=[X, T])
        value, grads = step(net.values(), X=x.astype(dtype), T=t.astype(dtype))

        # The reference runs in float64 on the same (possibly float32-rounded) numbers.
        params64 = [v.astype(np.float64) for v in net.values()]
        want_value, want_grads = numpy_backprop(
            params64[0::2], params64[1::2], activations, loss,
            x.astype(dtype).astype(np.float64), t)
        assert np.asarray(value).dtype == np.dtype(dtype)
        assert float(value) == pytest.approx(want_value, rel=rtol)
        assert len(grads) == len(want_grads) == 2 * len(net.layers)
        for got, want, param in zip(grads, want_grads, net.parameters()):
            assert got.shape == param.shape and got.dtype == np.dtype(dtype)
            scale = float(np.max(np.abs(want)))
            np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * 1e-2 * scale,
                                       err_msg=f"{dtype} d{loss}/d{param.name}")


def test_numpy_backprop_itself_agrees_with_finite_differences():
    """The oracle above is checked once, independently of symgrad."""
    rng = np.random.default_rng(0)
    weights = [rng.normal(size=(4, 3)), rng.normal(size=(3, 4))]
    biases = [rng.normal(size=4), rng.normal(size=3)]
    x = rng.normal(size=(5, 3))
    for loss, output_activation in (("bce", "sigmoid"), ("mse", "tanh"),
                                    ("softmax_ce", None)):
        t = _targets(loss, rng, 5, 3)
        activations = ["tanh", output_activation]
        _, grads = numpy_backprop(weights, biases, activations, loss, x, t)
        params = [weights[0], biases[0], weights[1], biases[1]]
        for k, param in enumerate(params):
            for index in np.ndindex(*param.shape):
                shifted = []
                for sign in (1, -1):
                    moved = [p.copy() for p in params]
                    moved[k][index] += sign * 1e-6
                    shifted.append(numpy_backprop(moved[0::2], moved[1::2], activations, loss,
                                                  x, t)[0])
                numeric = (shifted[0] - shifted[1]) / 2e-6
                assert grads[k][index] == pytest.approx(numeric, rel=1e-5, abs=1e-8)


# ---------------------------------------------------------------------------------------------
# 3. One native call per step
# ---------------------------------------------------------------------------------------------

def test_forward_backward_and_loss_are_one_native_call():
    net = sg.nn.MLP([2, 4, 3, 1], activation=sg.sigmoid, seed=0)
    X = sg.tensor("X", ("n", 2))
    T = sg.tensor("T", ("n", 1))
    step = sg.compile(sg.losses.binary_cross_entropy(net(X), T), wrt=net.parameters(),
                      inputs=[X, T])
    # The fused function: parameters then inputs in, loss then every gradient out.
    assert step.function.input_names == ("W1", "b1", "W2", "b2", "W3", "b3", "X", "T")
    assert step.function.output_names[0] == "loss"
    assert len(step.function.outputs) == 1 + 6

    calls = []
    # The native entry in use: the whole call in native code, else ctypes.
    attribute = "_call_native" if step._call_native is not None else "_entry"
    native = getattr(step, attribute)

    def counting(*args):
        calls.append(args)
        return native(*args)

    setattr(step, attribute, counting)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 2))
    t = rng.integers(0, 2, (8, 1)).astype(float)
    value, grads = step(net.values(), X=x, T=t)
    assert len(calls) == 1
    want_value, want_grads = numpy_backprop(net.values()[0::2], net.values()[1::2],
                                            ["sigmoid"] * 3, "bce", x, t)
    assert value == pytest.approx(want_value, rel=1e-12)
    assert len(grads) == 6
    for got, want in zip(grads, want_grads):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-14)

    # By name as a dict, and positionally: still one call each.
    value_by_name, grads_by_name = step(dict(zip(step.param_names, net.values())), x, t)
    assert len(calls) == 2
    assert value_by_name == value
    assert list(grads_by_name) == list(step.param_names)
    for name, got in zip(step.param_names, grads):
        np.testing.assert_array_equal(grads_by_name[name], got)


def test_a_few_steps_of_gradient_descent_reduce_the_loss():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(32, 2))
    t = (x[:, :1] * x[:, 1:] > 0).astype(float)
    net = sg.nn.MLP([2, 8, 1], activation=sg.tanh, output_activation=sg.sigmoid, seed=0)
    X = sg.tensor("X", ("n", 2))
    T = sg.tensor("T", ("n", 1))
    step = sg.compile(sg.losses.binary_cross_entropy(net(X), T), wrt=net.parameters(),
                      inputs=[X, T])
    first, _ = step(net.values(), X=x, T=t)
    for _ in range(200):
        value, grads = step(net.values(), X=x, T=t)
        net.set_values([v - 0.5 * g for v, g in zip(net.values(), grads)])
    assert value < 0.8 * first


# ---------------------------------------------------------------------------------------------
# 4. A network of realistic size
# ---------------------------------------------------------------------------------------------

def test_mnist_sized_mlp_matches_the_reference_interpreter():
    net = sg.nn.MLP([784, 256, 128, 10], activation=sg.tanh, output_activation=None, seed=0,
                    dtype="float32")
    X = sg.tensor("X", ("n", 784), "float32")
    T = sg.tensor("T", ("n", 10), "float32")
    step = sg.compile(sg.losses.softmax_cross_entropy(net(X), T), wrt=net.parameters(),
                      inputs=[X, T])
    rng = np.random.default_rng(0)
    x = rng.random((32, 784), dtype=np.float32)
    t = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 32)]
    value, grads = step(net.values(), X=x, T=t)
    expected = evaluate(step.function, *net.values(), x, t)
    assert np.asarray(value).dtype == np.float32
    assert value == pytest.approx(expected[0], rel=1e-5)
    assert [g.shape for g in grads] == [(256, 784), (256,), (128, 256), (128,), (10, 128),
                                        (10,)]
    for got, want in zip(grads, expected[1:]):
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * np.max(np.abs(want)))
    # And against float64 backprop, to float32 accuracy.
    params64 = [v.astype(np.float64) for v in net.values()]
    want_value, want_grads = numpy_backprop(params64[0::2], params64[1::2],
                                            ["tanh", "tanh", None], "softmax_ce",
                                            x.astype(np.float64), t.astype(np.float64))
    assert float(value) == pytest.approx(want_value, rel=1e-5)
    for got, want in zip(grads, want_grads):
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4 * np.max(np.abs(want)))


# ---------------------------------------------------------------------------------------------
# 5. Logits and errors
# ---------------------------------------------------------------------------------------------

def test_no_output_activation_gives_logits():
    net = sg.nn.MLP([3, 4, 2], activation=sg.tanh, output_activation=None, seed=0)
    X = sg.tensor("X", ("n", 3))
    logits = net(X)
    assert logits.shape == ("n", 2)
    assert net.zs()[-1] is logits or net.zs()[-1].node is logits.node
    assert net.activations()[-1].node is logits.node
    function = ir.Function([p.node for p in net.parameters()] + [X.node], [logits.node])
    w1, b1, w2, b2 = net.values()
    b2 = np.array([5.0, -5.0])
    net.set_values([w1, b1, w2, b2])
    x = np.random.default_rng(0).normal(size=(4, 3)) * 3
    (got,) = evaluate(function, *net.values(), x)
    np.testing.assert_allclose(got, np.tanh(x @ w1.T + b1) @ w2.T + b2, rtol=1e-14)
    assert got.max() > 1 and got.min() < -1       # not squashed by an activation

    same = sg.nn.MLP([3, 4, 2], activation=sg.tanh, seed=0)
    assert same.layers[-1].activation is sg.tanh
    sigmoid_out = sg.nn.MLP([3, 4, 2], activation=sg.tanh, output_activation=sg.sigmoid)
    assert sigmoid_out.layers[-1].activation is sg.sigmoid
    assert sigmoid_out.layers[0].activation is sg.tanh


@pytest.mark.parametrize("sizes", [[3], [], [3, 0], [0, 2], [3, 2.5], [3, -1], [True, 2]])
def test_bad_mlp_sizes(sizes):
    with pytest.raises(ValueError):
        sg.nn.MLP(sizes, activation=sg.tanh)


@pytest.mark.parametrize("fan_in, fan_out", [(0, 2), (2, 0), (2.0, 3), (True, 3), (3, "4")])
def test_bad_dense_sizes(fan_in, fan_out):
    with pytest.raises(ValueError, match="in_features|out_features"):
        sg.nn.Dense(fan_in, fan_out)


def test_a_layer_called_on_a_tensor_of_the_wrong_width():
    net = sg.nn.MLP([3, 4, 2], activation=sg.tanh)
    with pytest.raises(sg.ShapeError) as info:
        net(sg.tensor("X", ("n", 5)))
    message = str(info.value)
    assert "W1" in message and "('n', 5)" in message and "3" in message
    with pytest.raises(sg.ShapeError, match="W1.*\\(3,\\)"):
        net(sg.tensor("x", (3,)))

    layer = sg.nn.Dense(4, 2, activation=sg.sigmoid, name="7")
    with pytest.raises(sg.ShapeError) as info:
        layer(sg.tensor("H", ("n", 3)))
    message = str(info.value)
    assert "W7" in message and "('n', 3)" in message and "4" in message
    assert layer(sg.tensor("H", ("n", 4))).shape == ("n", 2)

    with pytest.raises(TypeError, match="Tensor"):
        net(np.zeros((2, 3)))
