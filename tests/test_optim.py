"""Optimisers, the fused training step, fit(), histories, save/load, the perceptron and Hebb
rules and compile_function, against independent numpy oracles: closed-form minima of
quadratic problems, numpy optimiser steps written here from PyTorch's formulas, hand-replayed
shuffled mini-batch gradient descent, and the numpy formulas of the learning rules."""

import io
import math
import pickle
import sys
import zipfile

import numpy as np
import pytest

import symgrad as sg
from symgrad.optim import Adam, GradientDescent, Momentum, Trainer

# ---------------------------------------------------------------------------------------------
# Problems and their numpy oracles
# ---------------------------------------------------------------------------------------------


def linear_problem(dtype="float64", d=3, k=2):
    """Least squares ``mean((X W^T + b - Y)^2)`` with W (k, d), b (k,)."""
    X = sg.tensor("X", ("n", d), dtype)
    Y = sg.tensor("Y", ("n", k), dtype)
    W = sg.tensor("W", (k, d), dtype)
    b = sg.tensor("b", (k,), dtype)
    loss = ((X @ W.T + b - Y) ** 2).mean()
    return loss, [W, b], [X, Y]


def linear_loss_and_grads(W, b, x, y):
    """numpy: the loss above and its gradients, by hand."""
    r = x @ W.T + b - y
    scale = 2.0 / r.size
    return np.mean(r ** 2), [scale * (r.T @ x), scale * r.sum(axis=0)]


def linear_data(n=30, d=3, k=2, seed=0, noise=0.3):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    y = x @ rng.normal(size=(d, k)) + rng.normal(size=k) + noise * rng.normal(size=(n, k))
    return x, y


def least_squares_solution(x, y):
    """Closed form: the (W, b) minimising mean((x W^T + b - y)^2)."""
    augmented = np.hstack([x, np.ones((len(x), 1))])
    solution, *_ = np.linalg.lstsq(augmented, y, rcond=None)
    return solution[:-1].T, solution[-1]


def weighted_quadratic(dtype="float64", d=5):
    """``sum(C * (w - S)^2)`` over rows of C (n, d) > 0 and S (n, d)."""
    w = sg.tensor("w", (d,), dtype)
    C = sg.tensor("C", ("n", d), dtype)
    S = sg.tensor("S", ("n", d), dtype)
    return (C * (w - S) ** 2).sum(), w, [C, S]


def weighted_quadratic_data(n=4, d=5, seed=1):
    rng = np.random.default_rng(seed)
    c = rng.uniform(0.5, 3.0, (n, d))
    s = rng.normal(size=(n, d)) * 2.0
    # d/dw_j sum_n c_nj (w_j - s_nj)^2 = 0  <=>  w_j = sum_n c_nj s_nj / sum_n c_nj
    return c, s, (c * s).sum(axis=0) / c.sum(axis=0)


# Optimiser steps, written from PyTorch's documented formulas (not from symgrad's references).

def numpy_gd(lr):
    def step(params, grads, state, t):
        return [p - lr * g for p, g in zip(params, grads)], state
    return step, lambda params: None


def numpy_momentum(lr, beta):
    def step(params, grads, velocities, t):
        velocities = [beta * v + g for v, g in zip(velocities, grads)]
        return [p - lr * v for p, v in zip(params, velocities)], velocities
    return step, lambda params: [np.zeros_like(p) for p in params]


def numpy_adam(lr, beta1, beta2, eps):
    def step(params, grads, state, t):
        new_params, new_state = [], []
        for p, g, (m, v) in zip(params, grads, state):
            m = beta1 * m + (1 - beta1) * g
            v = beta2 * v + (1 - beta2) * g * g
            m_hat = m / (1 - beta1 ** t)
            v_hat = v / (1 - beta2 ** t)
            new_params.append(p - lr * m_hat / (np.sqrt(v_hat) + eps))
            new_state.append((m, v))
        return new_params, new_state
    return step, lambda params: [(np.zeros_like(p), np.zeros_like(p)) for p in params]


OPTIMIZERS = {
    "gd": (lambda: GradientDescent(lr=0.1), numpy_gd(0.1)),
    "momentum": (lambda: Momentum(lr=0.05, beta=0.7), numpy_momentum(0.05, 0.7)),
    "adam": (lambda: Adam(lr=0.05, betas=(0.8, 0.95), eps=1e-6),
             numpy_adam(0.05, 0.8, 0.95, 1e-6)),
}


def flat_state(name, state):
    """The reference state as a list of arrays per parameter, as Trainer keeps it."""
    if name == "gd":
        return None
    if name == "momentum":
        return [[v] for v in state]
    return [[m, v] for m, v in state]


# ---------------------------------------------------------------------------------------------
# 1. Convergence to closed-form minima (full batch)
# ---------------------------------------------------------------------------------------------

CONVERGENCE = {
    "gd": (lambda: GradientDescent(lr=0.05), 300),
    "momentum": (lambda: Momentum(lr=0.02, beta=0.8), 300),
    "adam": (lambda: Adam(lr=0.05), 1500),
}


@pytest.mark.parametrize("name", sorted(CONVERGENCE))
def test_fit_reaches_the_minimum_of_a_weighted_quadratic(name):
    make, epochs = CONVERGENCE[name]
    loss, w, inputs = weighted_quadratic()
    c, s, minimum = weighted_quadratic_data()
    start = np.zeros(5)
    history = sg.fit({w: start}, loss, inputs, [c, s], optimizer=make(), epochs=epochs)
    (found,) = history.values
    np.testing.assert_allclose(found, minimum, atol=1e-4 if name == "adam" else 1e-8)
    np.testing.assert_array_equal(start, 0)           # the caller's array is not touched
    assert len(history.loss) == epochs
    best = np.sum(c * (minimum - s) ** 2)
    assert history.loss[-1] == pytest.approx(best, rel=1e-6)
    assert history.loss[0] == pytest.approx(np.sum(c * s ** 2))   # at w = 0, before the step


@pytest.mark.parametrize("name", sorted(CONVERGENCE))
def test_fit_reaches_the_least_squares_solution(name):
    optimizer = {"gd": GradientDescent(lr=0.2), "momentum": Momentum(lr=0.05, beta=0.9),
                 "adam": Adam(lr=0.02)}[name]
    x, y = linear_data()
    W_star, b_star = least_squares_solution(x, y)
    layer = sg.nn.Dense(3, 2, activation=None, seed=0)
    X, Y = sg.tensor("X", ("n", 3)), sg.tensor("Y", ("n", 2))
    loss = sg.losses.mean_squared_error(layer(X), Y)
    history = sg.fit(layer, loss, [X, Y], [x, y], optimizer=optimizer,
                     epochs=1500 if name == "adam" else 400)
    tolerance = 1e-4 if name == "adam" else 1e-8
    np.testing.assert_allclose(layer.weight_value, W_star, atol=tolerance)
    np.testing.assert_allclose(layer.bias_value, b_star, atol=tolerance)
    best, _ = linear_loss_and_grads(W_star, b_star, x, y)
    assert history.loss[-1] == pytest.approx(best, rel=1e-6)


def test_stochastic_gradient_descent_reaches_an_exact_fit():
    """Noise-free data: every example's gradient vanishes at the solution, so SGD (batch size
    1) converges to it, not just near it."""
    x, y = linear_data(n=12, noise=0.0, seed=4)
    W_star, b_star = least_squares_solution(x, y)
    loss, params, inputs = linear_problem()
    history = sg.fit(list(zip(params, [np.zeros((2, 3)), np.zeros(2)])), loss, inputs, [x, y],
                     optimizer=GradientDescent(lr=0.1), epochs=150, batch_size=1, seed=3)
    np.testing.assert_allclose(history.values[0], W_star, atol=1e-8)
    np.testing.assert_allclose(history.values[1], b_star, atol=1e-8)


# ---------------------------------------------------------------------------------------------
# 2. Fused (and unfused) steps against numpy steps written here
# ---------------------------------------------------------------------------------------------

TOLERANCES = {"float64": dict(rtol=1e-10, atol=1e-12), "float32": dict(rtol=3e-4, atol=3e-5)}


@pytest.fixture(scope="module")
def trainers():
    """Trainer[(optimizer name, dtype, fused)], compiled once for the module."""
    cache = {}

    def get(name, dtype, fused):
        key = (name, dtype, fused)
        if key not in cache:
            loss, params, inputs = linear_problem(dtype)
            cache[key] = Trainer(loss, params, inputs, OPTIMIZERS[name][0](), fused=fused)
        return cache[key]
    return get


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "unfused"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_steps_equal_a_numpy_reference(trainers, name, dtype, fused):
    trainer = trainers(name, dtype, fused)
    reference_step, reference_init = OPTIMIZERS[name][1]
    rng = np.random.default_rng(7)
    x, y = linear_data(n=40, seed=2)
    x, y = x.astype(dtype), y.astype(dtype)
    values = [rng.normal(size=(2, 3)).astype(dtype), rng.normal(size=2).astype(dtype)]
    state = trainer.initial_state(values)
    # The reference runs in float64 on the same (float32-rounded) numbers.
    want = [v.astype(np.float64) for v in values]
    want_state = reference_init(want)
    for t in range(1, 8):
        chosen = rng.choice(40, size=int(rng.integers(1, 15)), replace=False)
        batch = (x[chosen], y[chosen])
        want_loss, grads = linear_loss_and_grads(*want, *[a.astype(np.float64) for a in batch])
        want, want_state = reference_step(want, grads, want_state, t)
        values, state, loss = trainer.step(values, state, batch, step=t)
        assert isinstance(loss, float)
        assert loss == pytest.approx(want_loss, rel=TOLERANCES[dtype]["rtol"])
        for got, expected in zip(values, want):
            assert got.dtype == np.dtype(dtype) and got.shape == expected.shape
            np.testing.assert_allclose(got, expected, **TOLERANCES[dtype],
                                       err_msg=f"{name} {dtype} step {t}")
        expected_state = flat_state(name, want_state)
        if expected_state is None:
            assert state == [[], []]
        else:
            for got_group, want_group in zip(state, expected_state):
                assert len(got_group) == len(want_group)
                for got, expected in zip(got_group, want_group):
                    assert got.dtype == np.dtype(dtype)
                    np.testing.assert_allclose(got, expected, **TOLERANCES[dtype])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_fused_and_unfused_steps_agree(trainers, name, dtype):
    fused, unfused = trainers(name, dtype, True), trainers(name, dtype, False)
    x, y = linear_data(n=16, seed=5)
    batch = (x.astype(dtype), y.astype(dtype))
    start = [np.full((2, 3), 0.5, dtype), np.full(2, -0.25, dtype)]
    a_values, a_state = start, fused.initial_state(start)
    b_values, b_state = start, unfused.initial_state(start)
    tolerance = dict(rtol=1e-12, atol=1e-14) if dtype == "float64" else dict(rtol=1e-5,
                                                                            atol=1e-6)
    for t in range(1, 6):
        a_values, a_state, a_loss = fused.step(a_values, a_state, batch, step=t)
        b_values, b_state, b_loss = unfused.step(b_values, b_state, batch, step=t)
        assert a_loss == pytest.approx(b_loss, rel=tolerance["rtol"])
        for got, want in zip(a_values + sum(a_state, []), b_values + sum(b_state, [])):
            np.testing.assert_allclose(got, want, **tolerance)
    # Nothing was updated in place: the starting arrays are as they were.
    np.testing.assert_array_equal(start[0], 0.5)
    np.testing.assert_array_equal(start[1], -0.25)


def test_the_numpy_references_agree_with_the_libraries_references():
    """symgrad's own Optimizer.reference (used by fused=False) and the formulas above."""
    rng = np.random.default_rng(0)
    param, grads = rng.normal(size=(3, 2)), [rng.normal(size=(3, 2)) for _ in range(4)]
    for name, (make, (reference_step, reference_init)) in OPTIMIZERS.items():
        optimizer = make()
        ours, ours_state = param, optimizer.initial_state([param])[0]
        want, want_state = [param], reference_init([param])
        for t, g in enumerate(grads, start=1):
            ours, ours_state = optimizer.reference(ours, g, ours_state, t)
            want, want_state = reference_step(want, [g], want_state, t)
            np.testing.assert_allclose(ours, want[0], rtol=1e-13, err_msg=name)


def test_adam_first_step_moves_every_weight_by_about_lr():
    """Bias correction: at step 1, m_hat / sqrt(v_hat) = g / |g|."""
    loss, params, inputs = linear_problem()
    trainer = Trainer(loss, params, inputs, Adam(lr=0.01, eps=1e-12))
    x, y = linear_data(n=10)
    start = [np.zeros((2, 3)), np.zeros(2)]
    values, _, _ = trainer.step(start, trainer.initial_state(start), (x, y), step=1)
    _, grads = linear_loss_and_grads(*start, x, y)
    for got, g in zip(values, grads):
        np.testing.assert_allclose(got, -0.01 * np.sign(g), rtol=1e-9)


def test_hyperparameters_are_arguments_not_constants():
    """Changing lr after compiling changes the step (no recompilation)."""
    loss, params, inputs = linear_problem()
    optimizer = GradientDescent(lr=0.1)
    trainer = Trainer(loss, params, inputs, optimizer)
    x, y = linear_data(n=10)
    start = [np.zeros((2, 3)), np.zeros(2)]
    _, grads = linear_loss_and_grads(*start, x, y)
    for lr in (0.1, 0.5):
        optimizer.lr = lr
        values, _, _ = trainer.step(start, [[], []], (x, y), step=1)
        np.testing.assert_allclose(values[0], -lr * grads[0], rtol=1e-12)


def test_fused_steps_match_torch_optim():
    torch = pytest.importorskip("torch")
    x, y = linear_data(n=20, seed=9)
    cases = [
        (GradientDescent(lr=0.1), lambda ps: torch.optim.SGD(ps, lr=0.1)),
        (Momentum(lr=0.05, beta=0.7), lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.7)),
        (Adam(lr=0.05, betas=(0.8, 0.95), eps=1e-6),
         lambda ps: torch.optim.Adam(ps, lr=0.05, betas=(0.8, 0.95), eps=1e-6)),
    ]
    rng = np.random.default_rng(1)
    start = [rng.normal(size=(2, 3)), rng.normal(size=2)]
    batches = [rng.choice(20, size=8, replace=False) for _ in range(6)]
    for optimizer, make_torch in cases:
        loss, params, inputs = linear_problem()
        trainer = Trainer(loss, params, inputs, optimizer)
        values, state = start, trainer.initial_state(start)
        torch_params = [torch.tensor(v, dtype=torch.float64, requires_grad=True)
                        for v in start]
        torch_optimizer = make_torch(torch_params)
        for t, chosen in enumerate(batches, start=1):
            values, state, value = trainer.step(values, state, (x[chosen], y[chosen]), step=t)
            torch_optimizer.zero_grad()
            xb = torch.tensor(x[chosen], dtype=torch.float64)
            yb = torch.tensor(y[chosen], dtype=torch.float64)
            torch_loss = ((xb @ torch_params[0].T + torch_params[1] - yb) ** 2).mean()
            torch_loss.backward()
            torch_optimizer.step()
            assert value == pytest.approx(torch_loss.item(), rel=1e-10)
            for got, want in zip(values, torch_params):
                np.testing.assert_allclose(got, want.detach().numpy(), rtol=1e-10, atol=1e-12,
                                           err_msg=f"{optimizer!r} step {t}")


# ---------------------------------------------------------------------------------------------
# 3. fit(): batches, shuffling, history, models, errors
# ---------------------------------------------------------------------------------------------


def replay_gd(start, x, y, lr, epochs, batch_size, seed, shuffle=True):
    """numpy: fit's mini-batch gradient descent, replayed by hand with the same permutations."""
    n = len(x)
    batch_size = n if batch_size is None else batch_size
    rng = np.random.default_rng(seed)
    values = [v.copy() for v in start]
    epoch_losses, steps = [], 0
    for _ in range(epochs):
        order = rng.permutation(n) if shuffle else np.arange(n)
        losses = []
        for begin in range(0, n, batch_size):
            chosen = order[begin:begin + batch_size]
            value, grads = linear_loss_and_grads(*values, x[chosen], y[chosen])
            values = [v - lr * g for v, g in zip(values, grads)]
            losses.append(value)
            steps += 1
        epoch_losses.append(sum(losses) / len(losses))
    return values, epoch_losses, steps


@pytest.mark.parametrize("batch_size, shuffle", [(None, True), (1, True), (3, True), (4, True),
                                                 (10, True), (25, True), (3, False)])
def test_fit_replays_shuffled_minibatch_gradient_descent(batch_size, shuffle):
    x, y = linear_data(n=10, seed=3)
    start = [np.full((2, 3), 0.1), np.zeros(2)]
    loss, params, inputs = linear_problem()
    history = sg.fit(dict(zip(params, start)), loss, inputs, [x, y],
                     optimizer=GradientDescent(lr=0.05), epochs=3, batch_size=batch_size,
                     shuffle=shuffle, seed=11)
    want, want_losses, _ = replay_gd(start, x, y, 0.05, 3, batch_size, 11, shuffle)
    for got, expected in zip(history.values, want):
        np.testing.assert_allclose(got, expected, rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(history.loss, want_losses, rtol=1e-11)


@pytest.mark.parametrize("batch_size, steps_per_epoch",
                         [(None, 1), (1, 10), (3, 4), (4, 3), (9, 2), (10, 1), (11, 1)])
def test_fit_takes_ceil_n_over_batch_size_steps_per_epoch(batch_size, steps_per_epoch):
    """loss = mean(X w) with X = 1 has gradient exactly 1 whatever the batch: with lr = 1 and
    w = 0 at start, w = -(number of steps so far), and the batch loss is w before the step."""
    X = sg.tensor("X", ("n", 1))
    w = sg.tensor("w", (1,))
    epochs, n = 3, 10
    history = sg.fit({w: np.zeros(1)}, (X * w).mean(), [X], [np.ones((n, 1))],
                     optimizer=GradientDescent(lr=1.0), epochs=epochs, batch_size=batch_size,
                     metrics={"w": lambda values: float(values[0][0])})
    assert steps_per_epoch == math.ceil(n / (batch_size or n))
    s = steps_per_epoch
    assert history.values[0][0] == pytest.approx(-epochs * s, abs=1e-9)
    assert history.metrics["w"] == pytest.approx([-(e + 1) * s for e in range(epochs)],
                                                 abs=1e-9)
    # one entry per epoch: the mean of that epoch's batch losses w = -(e s), ..., -(e s + s-1)
    assert history.loss == pytest.approx([-(e * s + (s - 1) / 2) for e in range(epochs)],
                                         abs=1e-9)
    assert len(history.epoch_time) == epochs
    assert all(t > 0 for t in history.epoch_time)
    assert repr(history).startswith(f"<History: {epochs} epochs, final loss")


def _sgd_run(seed, epochs=2):
    x, y = linear_data(n=12, seed=6)
    loss, params, inputs = linear_problem()
    return sg.fit(dict(zip(params, [np.zeros((2, 3)), np.zeros(2)])), loss, inputs, [x, y],
                  optimizer=GradientDescent(lr=0.05), epochs=epochs, batch_size=1, seed=seed)


def test_shuffling_is_deterministic_for_a_seed_and_differs_across_seeds():
    first, again, other = _sgd_run(0), _sgd_run(0), _sgd_run(1)
    for a, b in zip(first.values, again.values):
        np.testing.assert_array_equal(a, b)
    assert first.loss == again.loss
    assert not np.allclose(first.values[0], other.values[0], rtol=1e-9, atol=0)
    # Each epoch draws a new permutation: not the same order every epoch.
    x, y = linear_data(n=12, seed=6)
    start = [np.zeros((2, 3)), np.zeros(2)]
    want, _, steps = replay_gd(start, x, y, 0.05, 2, 1, 1)
    assert steps == 24
    np.testing.assert_allclose(other.values[0], want[0], rtol=1e-11, atol=1e-13)


def test_fit_updates_an_mlp_and_records_metrics():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 2))
    t = np.tanh(x[:, :1] - 0.5 * x[:, 1:])
    net = sg.nn.MLP([2, 3, 1], activation=sg.tanh, seed=2)
    before = [v.copy() for v in net.values()]
    X, T = sg.tensor("X", ("n", 2)), sg.tensor("T", ("n", 1))
    loss = sg.losses.mean_squared_error(net(X), T)

    def numpy_mse(values):
        W1, b1, W2, b2 = values
        return float(np.mean((np.tanh(np.tanh(x @ W1.T + b1) @ W2.T + b2) - t) ** 2))

    seen = []
    history = sg.fit(net, loss, [X, T], [x, t], optimizer=Adam(lr=0.05), epochs=6,
                     batch_size=5, metrics={"mse": numpy_mse,
                                            "calls": lambda values: seen.append(1) or len(seen)})
    assert history.metrics["calls"] == [1, 2, 3, 4, 5, 6]
    assert len(history.metrics["mse"]) == len(history.loss) == 6
    # the model holds the final values, and History.values too
    for got, final in zip(net.values(), history.values):
        np.testing.assert_array_equal(got, final)
    for got, old in zip(net.values(), before):
        assert not np.array_equal(got, old)
    assert history.metrics["mse"][-1] == pytest.approx(numpy_mse(net.values()), rel=1e-12)
    assert history.metrics["mse"][-1] < numpy_mse(before)


def test_fit_with_zero_epochs_changes_nothing():
    loss, w, inputs = weighted_quadratic()
    c, s, _ = weighted_quadratic_data()
    start = np.arange(5.0)
    history = sg.fit({w: start}, loss, inputs, [c, s], epochs=0)
    assert history.loss == [] and history.epoch_time == [] and history.metrics == {}
    np.testing.assert_array_equal(history.values[0], start)


def test_fit_default_optimizer_is_gradient_descent_with_lr_0_1():
    loss, w, inputs = weighted_quadratic()
    c, s, _ = weighted_quadratic_data()
    history = sg.fit({w: np.zeros(5)}, loss, inputs, [c, s], epochs=1)
    grad = -2 * (c * s).sum(axis=0)                    # at w = 0
    np.testing.assert_allclose(history.values[0], -0.1 * grad, rtol=1e-12)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(data="mismatched"), ValueError, "same number of examples"),
    (dict(data="one"), ValueError, "one array per input"),
    (dict(data="three"), ValueError, "one array per input"),
    (dict(data="scalar"), ValueError, "number of examples"),
    (dict(data="empty"), ValueError, "no examples"),
    (dict(epochs=-1), ValueError, "epochs"),
    (dict(epochs=2.5), ValueError, "epochs"),
    (dict(batch_size=0), ValueError, "batch_size"),
    (dict(batch_size=-3), ValueError, "batch_size"),
    (dict(batch_size=2.0), ValueError, "batch_size"),
    (dict(optimizer="adam"), TypeError, "Optimizer.*str"),
    (dict(optimizer=Adam), TypeError, "Optimizer"),
])
def test_fit_rejects_bad_arguments(kwargs, error, match):
    loss, params, inputs = linear_problem()
    x, y = linear_data(n=6)
    data = {"mismatched": [x, y[:5]], "one": [x], "three": [x, y, y], "scalar": [x, 1.0],
            "empty": [x[:0], y[:0]], None: [x, y]}[kwargs.pop("data", None)]
    model = dict(zip(params, [np.zeros((2, 3)), np.zeros(2)]))
    with pytest.raises(error, match=match):
        sg.fit(model, loss, inputs, data, **kwargs)


def test_trainer_and_optimizers_reject_bad_arguments():
    loss, params, inputs = linear_problem()
    with pytest.raises(TypeError, match="Optimizer"):
        Trainer(loss, params, inputs, "sgd")
    trainer = Trainer(loss, params, inputs, GradientDescent(0.1), fused=False)
    values = [np.zeros((2, 3)), np.zeros(2)]
    x, y = linear_data(n=4)
    with pytest.raises(TypeError, match="2 arrays"):
        trainer.step(values, [[], []], (x,), step=1)
    for make, match in [(lambda: GradientDescent(lr=-0.1), "lr"),
                        (lambda: GradientDescent(lr=float("inf")), "lr"),
                        (lambda: Momentum(beta=float("nan")), "beta"),
                        (lambda: Adam(eps=-1e-8), "eps"),
                        (lambda: Adam(betas=(0.9, -0.5)), r"betas\[1\]"),
                        (lambda: Adam(lr="0.1"), "lr")]:
        with pytest.raises(ValueError, match=match):
            make()
    assert sg.optim.SGD is GradientDescent


# ---------------------------------------------------------------------------------------------
# 4. Progress bar and verbose output
# ---------------------------------------------------------------------------------------------


def _count_fit(**kwargs):
    X = sg.tensor("X", ("n", 1))
    w = sg.tensor("w", (1,))
    return sg.fit({w: np.zeros(1)}, (X * w).mean(), [X], [np.ones((4, 1))],
                  optimizer=GradientDescent(lr=0.5), epochs=3, **kwargs)


def test_no_progress_bar_when_disabled(capsys):
    _count_fit(progress=False)
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""


def test_progress_bar_on_stderr_when_enabled(capsys):
    pytest.importorskip("tqdm")
    _count_fit(progress=True)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "3/3" in captured.err and "loss=" in captured.err


def test_progress_bar_by_default_only_on_a_terminal(capsys, monkeypatch):
    _count_fit()                                     # captured stderr is not a terminal
    assert capsys.readouterr().err == ""
    pytest.importorskip("tqdm")

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    _count_fit()
    assert "3/3" in terminal.getvalue()


def test_verbose_prints_one_line_per_epoch(capsys):
    _count_fit(progress=False, verbose=True, metrics={"w": lambda values: values[0][0]})
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    assert lines[0].split()[:4] == ["epoch", "1", "loss", "0"]
    assert "w -0.5" in lines[0]


# ---------------------------------------------------------------------------------------------
# 5. History.plot
# ---------------------------------------------------------------------------------------------


def test_history_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    history = sg.History()
    history.loss = [1.0, 0.5, 0.25]
    path = tmp_path / "loss.png"
    figure = history.plot(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    axis = figure.axes[0]
    np.testing.assert_array_equal(axis.lines[0].get_ydata(), [1.0, 0.5, 0.25])
    np.testing.assert_array_equal(axis.lines[0].get_xdata(), [1, 2, 3])
    # A loss that is not positive (a perceptron criterion reaching 0) still plots.
    history.loss = [2.0, 0.0]
    second = history.plot(tmp_path / "zero.png")
    assert (tmp_path / "zero.png").read_bytes()[:4] == b"\x89PNG"
    import matplotlib.pyplot as plt
    plt.close(figure)
    plt.close(second)


# ---------------------------------------------------------------------------------------------
# 6. save / load
# ---------------------------------------------------------------------------------------------

_UNPICKLED = []


def _record_unpickling(tag):
    _UNPICKLED.append(tag)
    return tag


class _Payload:
    """Unpickling this would run _record_unpickling."""

    def __reduce__(self):
        return _record_unpickling, ("code ran",)


def test_save_and_load_round_trip(tmp_path):
    net = sg.nn.MLP([3, 4, 2], activation=sg.tanh, seed=0)
    values = net.values()
    values[1] = np.array([0.1, -0.2, 0.3, -0.4])
    net.set_values(values)
    path = tmp_path / "net.npz"
    sg.save(path, net)
    with np.load(path, allow_pickle=False) as archive:
        assert sorted(archive.files) == ["W1", "W2", "b1", "b2"]
        np.testing.assert_array_equal(archive["b1"], values[1])
    fresh = sg.nn.MLP([3, 4, 2], activation=sg.tanh, seed=99)
    assert not np.array_equal(fresh.values()[0], values[0])
    loaded = sg.load(path, fresh)
    for got, returned, want in zip(fresh.values(), loaded, net.values()):
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(returned, want)
        assert got.dtype == want.dtype


def test_save_and_load_explicit_parameters(tmp_path):
    w = sg.tensor("w", (3,), "float32")
    v = sg.tensor("v", (2, 2), "float32")
    values = {w: np.arange(3, dtype=np.float32), v: np.eye(2, dtype=np.float32)}
    sg.save(tmp_path / "p.npz", values)
    loaded = sg.load(tmp_path / "p.npz", {w: np.zeros(3, np.float32),
                                          v: np.zeros((2, 2), np.float32)})
    np.testing.assert_array_equal(loaded[0], values[w])
    np.testing.assert_array_equal(loaded[1], values[v])
    with pytest.raises(ValueError, match="distinct"):
        sg.save(tmp_path / "q.npz", [(w, np.zeros(3)), (sg.tensor("w", (3,)), np.zeros(3))])


def test_load_into_a_different_architecture_names_the_parameter(tmp_path):
    net = sg.nn.MLP([3, 4, 2], activation=sg.tanh, seed=0)
    path = tmp_path / "net.npz"
    sg.save(path, net)
    wider = sg.nn.MLP([3, 5, 2], activation=sg.tanh, seed=1)
    before = [v.copy() for v in wider.values()]
    with pytest.raises(ValueError, match="'W1'"):
        sg.load(path, wider)
    for got, want in zip(wider.values(), before):     # a refused load changes nothing
        np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError, match="W3"):
        sg.load(path, sg.nn.MLP([3, 4, 4, 2], activation=sg.tanh))
    with pytest.raises(ValueError, match="'W1'.*float64.*float32"):
        sg.load(path, sg.nn.MLP([3, 4, 2], activation=sg.tanh, dtype="float32"))


def test_load_refuses_pickled_objects(tmp_path):
    net = sg.nn.MLP([3, 4, 2], activation=sg.tanh, seed=0)
    W1, b1, W2, b2 = net.values()
    payload = np.empty((4, 3), dtype=object)
    payload[...] = _Payload()
    path = tmp_path / "evil.npz"
    np.savez(path, W1=payload, b1=b1, W2=W2, b2=b2)
    # The file really holds a pickle that would run code: loading it unsafely does.
    with np.load(path, allow_pickle=True) as archive:
        archive["W1"]
    assert _UNPICKLED and _UNPICKLED[0] == "code ran"
    _UNPICKLED.clear()

    before = [v.copy() for v in net.values()]
    with pytest.raises(ValueError, match="[Pp]ickle|allow_pickle|[Oo]bject"):
        sg.load(path, net)
    assert _UNPICKLED == []
    for got, want in zip(net.values(), before):
        np.testing.assert_array_equal(got, want)

    # A whole-file pickle (not an npz at all) is refused too.
    pickled = tmp_path / "pickled.npz"
    pickled.write_bytes(pickle.dumps({"W1": _Payload()}))
    with pytest.raises(ValueError, match="not a parameter file"):
        sg.load(pickled, net)
    assert _UNPICKLED == []


@pytest.mark.parametrize("content", ["text", "truncated zip", "missing"])
def test_load_refuses_files_that_are_not_npz(tmp_path, content):
    path = tmp_path / "bad.npz"
    if content == "text":
        path.write_text("W1 = [[1, 2, 3]]\n")
    elif content == "truncated zip":
        net = sg.nn.MLP([3, 4, 2], activation=sg.tanh, seed=0)
        sg.save(path, net)
        path.write_bytes(path.read_bytes()[:60])
    net = sg.nn.MLP([3, 4, 2], activation=sg.tanh, seed=0)
    with pytest.raises(ValueError, match="not a parameter file"):
        sg.load(path, net)


def test_load_refuses_an_npy_file(tmp_path):
    """A single array saved with np.save (.npy) is not a parameter file."""
    path = tmp_path / "W1.npy"
    np.save(path, np.zeros((4, 3)))
    with pytest.raises(ValueError, match="not a parameter file"):
        sg.load(path, sg.nn.MLP([3, 4, 2], activation=sg.tanh, seed=0))


def test_load_refuses_an_npz_with_a_corrupt_member(tmp_path):
    """A zip whose members are named like arrays but are not .npy data."""
    path = tmp_path / "corrupt.npz"
    with zipfile.ZipFile(path, "w") as archive:
        for name in ("W1", "b1", "W2", "b2"):
            archive.writestr(f"{name}.npy", b"not an array")
    with pytest.raises(ValueError, match="W1"):
        sg.load(path, sg.nn.MLP([3, 4, 2], activation=sg.tanh, seed=0))


def test_load_refuses_an_npz_with_a_truncated_member(tmp_path):
    net = sg.nn.MLP([3, 4, 2], activation=sg.tanh, seed=0)
    good = tmp_path / "good.npz"
    sg.save(good, net)
    path = tmp_path / "cut.npz"
    with zipfile.ZipFile(good) as source, zipfile.ZipFile(path, "w") as target:
        for member in source.namelist():
            data = source.read(member)
            target.writestr(member, data[:-20] if member == "W1.npy" else data)
    with pytest.raises(ValueError):
        sg.load(path, net)


# ---------------------------------------------------------------------------------------------
# 7. The perceptron rule
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def perceptron():
    """perceptron[dtype]: the rule for 3 features, compiled once per dtype."""
    cache = {}

    class Kernels:
        def __getitem__(self, dtype):
            if dtype not in cache:
                cache[dtype] = sg.optim.perceptron_rule(3, dtype)
            return cache[dtype]
    return Kernels()


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_perceptron_step_equals_the_numpy_formula(perceptron, dtype):
    rng = np.random.default_rng(0)
    w = np.array([[1.0], [-1.0], [0.5]], dtype)
    x = rng.normal(size=(20, 3)).astype(dtype)
    x[0] = [1.0, 1.0, 0.0]          # w.x = 0 exactly: counts as misclassified
    x[1] = [0.0, 0.0, 0.0]          # so does the zero vector
    t = np.where(rng.random((20, 1)) < 0.5, -1.0, 1.0).astype(dtype)
    eta = 0.25
    new_w, errors = perceptron[dtype](w, x, t, eta)

    wrong = (t * (x.astype(float) @ w.astype(float)) <= 0).ravel()
    assert wrong[0] and wrong[1] and 2 < wrong.sum() < 20
    want = w + eta * (t[wrong] * x[wrong]).sum(axis=0).reshape(3, 1)
    assert new_w.shape == (3, 1) and new_w.dtype == np.dtype(dtype)
    np.testing.assert_allclose(new_w, want, rtol=1e-12 if dtype == "float64" else 1e-5)
    assert isinstance(errors, np.generic) and not isinstance(errors, np.ndarray)
    assert errors.dtype == np.dtype(dtype)
    assert errors == wrong.sum()
    # By name, and with no misclassified point nothing changes.
    right = np.sign(x[2:] @ w).astype(dtype)
    same, none = perceptron[dtype](w=w, X=x[2:], t=right, eta=eta)
    np.testing.assert_array_equal(same, w)
    assert none == 0


def test_online_perceptron_converges_on_separable_data(perceptron):
    rng = np.random.default_rng(3)
    w_true = np.array([1.5, -2.0, 0.3])
    x = np.hstack([rng.uniform(-1, 1, (60, 2)), np.ones((60, 1))])    # a bias column
    margin = x @ w_true
    x = x[np.abs(margin) > 0.2]
    t = np.sign(x @ w_true).reshape(-1, 1)
    kernel = perceptron["float64"]
    w = np.zeros((3, 1))
    want = np.zeros(3)
    for epoch in range(200):
        mistakes = 0
        for n in range(len(x)):
            w, errors = kernel(w, x[n:n + 1], t[n:n + 1], 1.0)
            mistakes += int(errors)
            if t[n, 0] * (x[n] @ want) <= 0:        # numpy: the classic online rule
                want = want + t[n, 0] * x[n]
            np.testing.assert_array_equal(w.ravel(), want)
        if mistakes == 0:
            break
    assert mistakes == 0 and epoch > 0
    assert np.all(t.ravel() * (x @ w).ravel() > 0)
    _, errors = kernel(w, x, t, 1.0)
    assert errors == 0


# ---------------------------------------------------------------------------------------------
# 8. Hebb's rule
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_hebb_rule_equals_numpy(dtype):
    rng = np.random.default_rng(1)
    x = rng.choice([-1.0, 1.0], size=(5, 4)).astype(dtype)
    y = rng.normal(size=(5, 3)).astype(dtype)
    rtol = 1e-12 if dtype == "float64" else 1e-5
    eta = 0.1

    auto = sg.optim.hebb_rule(4, dtype=dtype)
    W = rng.normal(size=(4, 4)).astype(dtype)
    (new,) = auto(W, x, eta)
    want = W.astype(float) + eta * sum(np.outer(row, row) for row in x.astype(float))
    assert new.dtype == np.dtype(dtype) and new.shape == (4, 4)
    np.testing.assert_allclose(new, want, rtol=rtol, atol=rtol)
    increment = new.astype(float) - W
    np.testing.assert_allclose(increment, increment.T, atol=1e-5)  # a symmetric increment

    hetero = sg.optim.hebb_rule(4, 3, dtype=dtype)
    V = np.zeros((3, 4), dtype)
    (new,) = hetero(V, x, y, eta)
    # Delta w_ij = eta sum_n y_nj x_ni  (i: output, j: input)
    want = eta * np.einsum("ni,nj->ij", y.astype(float), x.astype(float))
    assert new.dtype == np.dtype(dtype) and new.shape == (3, 4)
    np.testing.assert_allclose(new, want, rtol=rtol, atol=rtol)
    with pytest.raises(ValueError, match="'n'"):
        hetero(V, x, y[:4], eta)
    with pytest.raises(ValueError, match="'W'"):
        hetero(V.T, x, y, eta)


def test_hebb_memory_recalls_stored_patterns():
    """A Hopfield-style memory from the auto-associative rule recalls its patterns."""
    patterns = np.array([[1, -1, 1, -1, 1, -1, 1, -1],
                         [1, 1, 1, 1, -1, -1, -1, -1]], float)       # orthogonal
    (W,) = sg.optim.hebb_rule(8)(np.zeros((8, 8)), patterns, 1.0 / 8)
    np.fill_diagonal(W, 0.0)
    for p in patterns:
        noisy = p.copy()
        noisy[0] *= -1
        np.testing.assert_array_equal(np.sign(W @ noisy), p)


# ---------------------------------------------------------------------------------------------
# 9. compile_function
# ---------------------------------------------------------------------------------------------


def test_compile_function_multiple_outputs_and_scalars():
    X = sg.tensor("X", ("n", 3))
    w = sg.tensor("w", (3,))
    kernel = sg.compile_function([X @ w.reshape(3, 1), (X ** 2).sum(), 2.0 * w + 1.0],
                                 [X, w], names=["y", "total", "affine"])
    rng = np.random.default_rng(0)
    x, v = rng.normal(size=(5, 3)), rng.normal(size=3)
    outputs = kernel(x, v)
    assert isinstance(outputs, tuple) and len(outputs) == 3
    y, total, affine = outputs
    np.testing.assert_allclose(y, x @ v.reshape(3, 1), rtol=1e-13)
    assert isinstance(total, np.float64) and not isinstance(total, np.ndarray)
    assert total == pytest.approx(np.sum(x ** 2), rel=1e-13)
    np.testing.assert_allclose(affine, 2 * v + 1, rtol=1e-15)
    by_name = kernel(w=v, X=x)
    for a, b in zip(outputs, by_name):
        np.testing.assert_array_equal(a, b)
    # Non-contiguous views are accepted; the batch size comes from the array.
    y_view, _, _ = kernel(np.asfortranarray(x[::-1]), v[::-1].copy())
    np.testing.assert_allclose(y_view, x[::-1] @ v[::-1].reshape(3, 1), rtol=1e-13)

    with pytest.raises(TypeError, match="missing.*'w'"):
        kernel(x)
    with pytest.raises(TypeError, match="unknown input 'Z'"):
        kernel(x, v, Z=1.0)
    with pytest.raises(TypeError, match="2 inputs"):
        kernel(x, v, v)
    with pytest.raises(TypeError, match="given twice"):
        kernel(x, v, X=x)
    with pytest.raises(ValueError, match="'w'.*\\(3,\\)"):
        kernel(x, np.zeros(4))
    with pytest.raises(TypeError, match="'X'.*float64.*float32"):
        kernel(x.astype(np.float32), v)


def test_compile_function_float32_scalar():
    X = sg.tensor("X", ("n", 2), "float32")
    kernel = sg.compile_function(X.sum(), [X])
    (total,) = kernel(np.ones((3, 2), np.float32))
    assert isinstance(total, np.float32) and total == 6.0


def test_compile_function_rejects_undeclared_and_bad_arguments():
    X = sg.tensor("X", ("n", 3))
    v = sg.tensor("v", (3, 1))
    with pytest.raises(sg.UnknownSymbolError, match="v"):
        sg.compile_function([X @ v], [X])
    with pytest.raises(ValueError, match="more than once"):
        sg.compile_function([X.sum()], [X, X])
    with pytest.raises(TypeError, match="outputs must be tensors"):
        sg.compile_function([X.sum(), 1.0], [X])
    with pytest.raises(TypeError, match="computed tensor"):
        sg.compile_function([X.sum()], [X * 2.0])
