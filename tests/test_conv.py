"""Conv2d, MaxPool2d, AvgPool2d, Flatten and Sequential: compiled values against direct numpy
loops (and PyTorch where installed), gradients against central differences, and the
errors."""

import numpy as np
import pytest

import symgrad as sg

RNG = np.random.default_rng(29)


def _windows(x, kernel, stride, padding, fill):
    """Every window of the padded ``x``: shape (n, c, out_h, out_w, kh, kw)."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    padded = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=fill)
    out_h = (padded.shape[2] - kh) // sh + 1
    out_w = (padded.shape[3] - kw) // sw + 1
    windows = np.empty(x.shape[:2] + (out_h, out_w, kh, kw))
    for i in range(out_h):
        for j in range(out_w):
            windows[:, :, i, j] = padded[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw]
    return windows


def _conv(x, w, b, stride, padding):
    windows = _windows(x, w.shape[2:], stride, padding, 0.0)
    return np.einsum("ncijab,ocab->noij", windows, w) + b[None, :, None, None]


@pytest.mark.parametrize("kernel, stride, padding", [
    (3, 1, 0), (3, 1, 1), ((3, 2), (2, 1), (1, 0)), (1, 2, 0), (2, 2, 1)])
def test_conv2d_against_numpy_and_central_differences(kernel, stride, padding):
    X = sg.tensor("X", ("n", 3, 7, 6))
    conv = sg.nn.Conv2d(3, 4, kernel, stride=stride, padding=padding, name="1")
    out = conv(X)
    x = RNG.normal(size=(2, 3, 7, 6))
    weight, bias = conv.weight_value, RNG.normal(size=4)
    (got,) = sg.compile_function(out, conv.parameters() + [X])(weight, bias, x)
    pair = (lambda v: (v, v) if isinstance(v, int) else v)
    want = _conv(x, weight, bias, pair(stride), pair(padding))
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-13)
    W = sg.tensor("W", out.shape)
    weights = RNG.normal(size=want.shape)
    kernel_ = sg.compile((sg.tanh(out) * W).sum(), wrt=[conv.weight, conv.bias, X], inputs=[W])
    params = [weight, bias, x]
    _, grads = kernel_(params, weights)
    eps = 1e-6
    for position, point in enumerate(params):
        for flat in RNG.choice(point.size, 4, replace=False):
            step = np.zeros(point.size)
            step[flat] = eps
            up, down = list(params), list(params)
            up[position] = point + step.reshape(point.shape)
            down[position] = point - step.reshape(point.shape)
            numeric = (kernel_(up, weights)[0] - kernel_(down, weights)[0]) / (2 * eps)
            assert grads[position].flat[flat] == pytest.approx(numeric, rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("layer, fill, reduce", [
    (sg.nn.MaxPool2d(2), -np.inf, np.max), (sg.nn.MaxPool2d(3, stride=2, padding=1), -np.inf,
                                            np.max),
    (sg.nn.AvgPool2d(2), 0.0, np.mean), (sg.nn.AvgPool2d((3, 2), stride=(1, 2), padding=(1, 0)),
                                         0.0, np.mean)])
def test_pooling_against_numpy(layer, fill, reduce):
    X = sg.tensor("X", ("n", 2, 6, 7))
    x = RNG.normal(size=(3, 2, 6, 7))
    (got,) = sg.compile_function(layer(X), [X])(x)
    want = reduce(_windows(x, layer.kernel_size, layer.stride, layer.padding, fill),
                  axis=(4, 5))
    np.testing.assert_allclose(got, want, rtol=1e-14)
    # Max pooling's gradient: 1 at each window's maximum (distinct values: no ties).
    _, (gradient,) = sg.compile(layer(X).sum(), wrt=[X])([x])
    numeric = np.zeros_like(x)
    eps = 1e-6
    for flat in RNG.choice(x.size, 6, replace=False):
        step = np.zeros(x.size)
        step[flat] = eps
        step = step.reshape(x.shape)
        up = reduce(_windows(x + step, layer.kernel_size, layer.stride, layer.padding, fill),
                    axis=(4, 5)).sum()
        down = reduce(_windows(x - step, layer.kernel_size, layer.stride, layer.padding, fill),
                      axis=(4, 5)).sum()
        numeric.flat[flat] = (up - down) / (2 * eps)
        assert gradient.flat[flat] == pytest.approx(numeric.flat[flat], abs=1e-7)


def test_against_pytorch_where_installed():
    torch = pytest.importorskip("torch")
    x = RNG.normal(size=(2, 3, 9, 8))
    conv = sg.nn.Conv2d(3, 5, 3, stride=2, padding=1, name="1")
    pool = sg.nn.MaxPool2d(2)
    X = sg.tensor("X", ("n", 3, 9, 8))
    out = pool(conv(X))
    (got,) = sg.compile_function(out, conv.parameters() + [X])(*conv.values(), x)
    reference = torch.nn.functional.max_pool2d(torch.nn.functional.conv2d(
        torch.from_numpy(x), torch.from_numpy(conv.weight_value),
        torch.from_numpy(conv.bias_value), stride=2, padding=1), 2)
    np.testing.assert_allclose(got, reference.numpy(), rtol=1e-12, atol=1e-12)


def test_sequential_composes_and_trains_as_one_model():
    model = sg.nn.Sequential(sg.nn.Conv2d(1, 2, 3, padding=1, activation=sg.relu, name="1"),
                             sg.nn.AvgPool2d(2), sg.nn.Flatten(), sg.nn.Dense(8, 3, name="2"))
    assert [p.name for p in model.parameters()] == ["K1", "c1", "W2", "b2"]
    X = sg.tensor("X", ("n", 1, 4, 4))
    assert model(X).shape == ("n", 3)
    model.set_values(model.values())
    with pytest.raises(ValueError, match="expected 4 arrays"):
        model.set_values([])
    with pytest.raises(ValueError, match="appear twice"):
        sg.nn.Sequential(sg.nn.Dense(2, 2), sg.nn.Dense(2, 2))


def test_errors_name_what_is_wrong():
    conv = sg.nn.Conv2d(3, 4, 3)
    with pytest.raises(sg.ShapeError, match="expected 3 input channels"):
        conv(sg.tensor("X", ("n", 2, 5, 5)))
    with pytest.raises(sg.ShapeError, match="batch, channels, height, width"):
        conv(sg.tensor("X", ("n", 3, 5)))
    with pytest.raises(sg.ShapeError, match="does not fit"):
        conv(sg.tensor("X", ("n", 3, 2, 5)))
    with pytest.raises(ValueError, match="kernel_size must be an int >= 1"):
        sg.nn.Conv2d(3, 4, 0)
    with pytest.raises(ValueError, match="at most half"):
        sg.nn.MaxPool2d(2, padding=2)
