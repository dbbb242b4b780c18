"""Layers and networks: :class:`Dense` and :class:`MLP`; :class:`Conv2d`, :class:`MaxPool2d`,
:class:`AvgPool2d`, :class:`Flatten` and :class:`Sequential` for convolutional networks.

A layer computes the lecture's :math:`a^{(l)} = h(W^{(l)} a^{(l-1)} + b^{(l)})` for a batch
of examples stored as rows: ``A @ W.T + b`` with ``W`` of shape ``(out, in)`` (PyTorch's
convention).  Its parameters are symbolic tensors (``W1``, ``b1``, ...), which is what the
compiler differentiates; their current values are numpy arrays kept beside them.

>>> import symgrad as sg
>>> net = sg.nn.MLP([2, 4, 1], activation=sg.sigmoid, seed=0)
>>> [p.name for p in net.parameters()]
['W1', 'b1', 'W2', 'b2']
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from symgrad import ir
from symgrad.arguments import as_real_array
from symgrad.functions import elu, leaky_relu, prelu, relu
from symgrad.tensors import Tensor, label, tensor

_RELU_LIKE = (relu, leaky_relu, elu, prelu)


def _initial_weight(rng, fan_in, fan_out, activation, init, dtype):
    if init == "auto":
        init = "he" if activation in _RELU_LIKE else "glorot"
    if init == "glorot":
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-limit, limit, (fan_out, fan_in)).astype(dtype)
    if init == "he":
        return (rng.standard_normal((fan_out, fan_in)) * np.sqrt(2.0 / fan_in)).astype(dtype)
    raise ValueError(f"init must be 'auto', 'glorot' or 'he', got {init!r}")


class Dense:
    """A dense layer ``h(A @ W.T + b)``.

    Parameters
    ----------
    in_features, out_features : int
    activation : callable or None
        An activation from :mod:`symgrad.functions` (or any function of a tensor); None for
        the identity.
    name : str
        Suffix of the parameter names (``W{name}``, ``b{name}``) and of the names a
        derivation shows (``z{name}``, ``a{name}``, ``delta{name}``).
    prefix : str
        Prefix of the parameter names (``{prefix}W{name}``), to keep two networks apart.
    seed : int or numpy.random.Generator
    dtype : {'float64', 'float32'}
    init : {'auto', 'glorot', 'he'}
        Glorot-uniform, or He-normal (the default for ReLU-like activations).
    """

    def __init__(self, in_features: int, out_features: int,
                 activation: Callable[[Tensor], Tensor] | None = None, name: str = "",
                 seed: int | np.random.Generator = 0, dtype: str = "float64",
                 init: str = "auto", prefix: str = "") -> None:
        for argument, value in (("in_features", in_features), ("out_features", out_features)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{argument} must be a positive int, got {value!r}")
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        self.activation = activation
        self.name = name
        self.weight = tensor(f"{prefix}W{name}", (out_features, in_features), dtype)
        self.bias = tensor(f"{prefix}b{name}", (out_features,), dtype)
        self.weight_value = _initial_weight(rng, in_features, out_features, activation, init,
                                            dtype)
        self.bias_value = np.zeros(out_features, dtype)
        self.last_z: Tensor | None = None
        self.last_a: Tensor | None = None

    def __call__(self, inputs: Tensor) -> Tensor:
        if not isinstance(inputs, Tensor):
            raise TypeError(f"a layer takes a Tensor, got {type(inputs).__name__}")
        if inputs.ndim != 2 or inputs.shape[1] != self.weight.shape[1]:
            raise ir.ShapeError(
                f"layer {self.weight.name}: expected inputs of shape (batch, "
                f"{self.weight.shape[1]}), got {inputs.shape}")
        z = inputs @ self.weight.T + self.bias
        z = label(z, f"z{self.name}", f"delta{self.name}")
        a = z if self.activation is None else label(self.activation(z), f"a{self.name}")
        self.last_z, self.last_a = z, a
        return a

    def parameters(self) -> list[Tensor]:
        return [self.weight, self.bias]

    def values(self) -> list[np.ndarray]:
        return [self.weight_value, self.bias_value]

    def set_values(self, values: Sequence[np.ndarray]) -> None:
        weight, bias = values
        self.weight_value = _checked(weight, self.weight)
        self.bias_value = _checked(bias, self.bias)


def _checked(value, parameter):
    array = as_real_array(parameter.name, value, noun="parameter")
    if array.shape != parameter.shape:
        raise ValueError(f"parameter {parameter.name!r} must have shape {parameter.shape}, got "
                         f"{array.shape}")
    if array.dtype.kind != "f" or array.dtype.itemsize != np.dtype(parameter.dtype).itemsize:
        raise TypeError(f"parameter {parameter.name!r} must have dtype {parameter.dtype}, got "
                        f"{array.dtype}")
    return array.astype(parameter.dtype)        # a copy, in native byte order


class _Layers:
    """Layers applied in turn (``self.layers``), their parameters in order."""

    layers: list

    def __call__(self, inputs: Tensor) -> Tensor:
        for layer in self.layers:
            inputs = layer(inputs)
        return inputs

    def parameters(self) -> list[Tensor]:
        """The symbolic parameters, layer by layer (``[W1, b1, W2, b2, ...]``)."""
        return [p for layer in self.layers for p in layer.parameters()]

    def values(self) -> list[np.ndarray]:
        """The current parameter values, in the order of :meth:`parameters`."""
        return [v for layer in self.layers for v in layer.values()]

    def set_values(self, values: Sequence[np.ndarray]) -> None:
        """Replace the parameter values (checked against the declared shapes and dtype)."""
        values = list(values)
        expected = len(self.parameters())
        if len(values) != expected:
            raise ValueError(f"expected {expected} arrays, got {len(values)}")
        start = 0
        for layer in self.layers:
            count = len(layer.parameters())
            layer.set_values(values[start:start + count])
            start += count


class MLP(_Layers):
    """A multilayer perceptron: dense layers ``a^(l) = h(W^(l) a^(l-1) + b^(l))``.

    Parameters
    ----------
    sizes : sequence of int
        ``[inputs, hidden..., outputs]``, at least two entries.
    activation : callable
        The hidden layers' activation ``h``.
    output_activation : callable, None or "same"
        The last layer's activation: the same as the hidden layers (the lecture's network,
        default), None for raw outputs (logits), or any activation.
    seed : int
        Seeds the initial weights.
    dtype : {'float64', 'float32'}
    name : str
        Prefix of the parameter names (``{name}W1``...), to keep two networks apart.
    """

    def __init__(self, sizes: Sequence[int], activation: Callable[[Tensor], Tensor],
                 output_activation: Callable[[Tensor], Tensor] | str | None = "same",
                 seed: int = 0, dtype: str = "float64", name: str = "",
                 init: str = "auto") -> None:
        sizes = list(sizes)
        if len(sizes) < 2:
            raise ValueError(f"sizes needs at least an input and an output size, got {sizes}")
        if isinstance(output_activation, str):
            if output_activation != "same":
                raise ValueError(f"output_activation must be an activation, None or 'same', "
                                 f"got {output_activation!r}")
            output_activation = activation
        rng = np.random.default_rng(seed)
        self.layers = []
        for index, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
            last = index == len(sizes) - 1
            self.layers.append(Dense(fan_in, fan_out,
                                     output_activation if last else activation,
                                     name=f"{index}", seed=rng, dtype=dtype, init=init,
                                     prefix=name))
        self.sizes = sizes
        self.dtype = dtype

    def zs(self) -> list[Tensor | None]:
        """The pre-activations ``z^(l)`` of the last call, one tensor per layer."""
        return [layer.last_z for layer in self.layers]

    def activations(self) -> list[Tensor | None]:
        """The activations ``a^(l)`` of the last call, one tensor per layer."""
        return [layer.last_a for layer in self.layers]


# ---- convolutional networks ------------------------------------------------------------------

def _pair(value, argument, layer, minimum):
    pair = (value, value) if isinstance(value, int) and not isinstance(value, bool) else \
        tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v >= minimum
                                 for v in pair):
        raise ValueError(f"{layer}: {argument} must be an int >= {minimum} or a pair of them, "
                         f"got {value!r}")
    return pair


def _windows(inputs, kernel, stride, padding, fill, layer):
    """``(offsets, (out_h, out_w))``: for each offset ``(a, b)`` of the kernel window, the
    view of the (padded) inputs that the window's element ``(a, b)`` reads at every output
    position: a strided slice, no copy."""
    from symgrad.shapes import pad

    if not isinstance(inputs, Tensor):
        raise TypeError(f"{layer} takes a Tensor, got {type(inputs).__name__}")
    if inputs.ndim != 4 or any(isinstance(d, str) for d in inputs.shape[1:]):
        raise ir.ShapeError(f"{layer}: expected inputs of shape (batch, channels, height, "
                            f"width) with known channels, height and width, got "
                            f"{inputs.shape}")
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    if ph or pw:
        inputs = pad(inputs, ((0, 0), (0, 0), (ph, ph), (pw, pw)), fill)
    height, width = inputs.shape[2:]
    out_h, out_w = (height - kh) // sh + 1, (width - kw) // sw + 1
    if out_h < 1 or out_w < 1:
        raise ir.ShapeError(f"{layer}: a {kh}x{kw} window does not fit in inputs of "
                            f"{height - 2 * ph}x{width - 2 * pw} (padding {ph}, {pw})")
    offsets = {(a, b): inputs[:, :, a:a + sh * (out_h - 1) + 1:sh, b:b + sw * (out_w - 1) + 1:sw]
               for a in range(kh) for b in range(kw)}
    return offsets, (out_h, out_w)


class Conv2d:
    """A 2-D convolution (cross-correlation, as PyTorch's ``Conv2d``) of inputs
    ``(batch, in_channels, height, width)`` with a weight ``(out_channels, in_channels, kh,
    kw)`` and a bias ``(out_channels,)``, then ``activation``.

    Each element of the kernel window reads a strided view of the inputs (no im2col copy);
    the products over channels and window are summed in the kernel's loops, and reverse
    mode gives the gradients of the weight, the bias and the inputs as contractions of the
    same views.

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size, stride, padding : int or pair of int
        ``padding`` zeros on each side of the height and width.
    activation : callable or None
    name, prefix, seed, dtype, init
        As for :class:`Dense` (fan-in ``in_channels * kh * kw``).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | Sequence[int],
                 stride: int | Sequence[int] = 1, padding: int | Sequence[int] = 0,
                 activation: Callable[[Tensor], Tensor] | None = None, name: str = "",
                 seed: int | np.random.Generator = 0, dtype: str = "float64",
                 init: str = "auto", prefix: str = "") -> None:
        for argument, value in (("in_channels", in_channels), ("out_channels", out_channels)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"Conv2d: {argument} must be a positive int, got {value!r}")
        self.kernel_size = _pair(kernel_size, "kernel_size", "Conv2d", 1)
        self.stride = _pair(stride, "stride", "Conv2d", 1)
        self.padding = _pair(padding, "padding", "Conv2d", 0)
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        kh, kw = self.kernel_size
        self.activation = activation
        self.name = name
        self.weight = tensor(f"{prefix}K{name}", (out_channels, in_channels, kh, kw), dtype)
        self.bias = tensor(f"{prefix}c{name}", (out_channels,), dtype)
        fan_in = in_channels * kh * kw
        flat = _initial_weight(rng, fan_in, out_channels, activation, init, dtype)
        self.weight_value = flat.reshape(out_channels, in_channels, kh, kw)
        self.bias_value = np.zeros(out_channels, dtype)

    def __call__(self, inputs: Tensor) -> Tensor:
        from symgrad.contract import einsum

        if isinstance(inputs, Tensor) and inputs.ndim == 4 and \
                inputs.shape[1] != self.weight.shape[1]:
            raise ir.ShapeError(f"Conv2d {self.weight.name}: expected {self.weight.shape[1]} "
                                f"input channels, got inputs of shape {inputs.shape}")
        offsets, _ = _windows(inputs, self.kernel_size, self.stride, self.padding, 0.0,
                              "Conv2d")
        total = None
        for (a, b), view in offsets.items():
            term = einsum("nchw,oc->nohw", view, self.weight[:, :, a, b])
            total = term if total is None else total + term
        z = total + self.bias.reshape(1, self.bias.shape[0], 1, 1)
        z = label(z, f"z{self.name}", f"delta{self.name}")
        return z if self.activation is None else label(self.activation(z), f"a{self.name}")

    def parameters(self) -> list[Tensor]:
        return [self.weight, self.bias]

    def values(self) -> list[np.ndarray]:
        return [self.weight_value, self.bias_value]

    def set_values(self, values: Sequence[np.ndarray]) -> None:
        weight, bias = values
        self.weight_value = _checked(weight, self.weight)
        self.bias_value = _checked(bias, self.bias)


class _NoParameters:
    """A layer without parameters."""

    def parameters(self) -> list[Tensor]:
        return []

    def values(self) -> list[np.ndarray]:
        return []

    def set_values(self, values: Sequence[np.ndarray]) -> None:
        if list(values):
            raise ValueError(f"{type(self).__name__} has no parameters")


class _Pool(_NoParameters):

    def __init__(self, kernel_size: int | Sequence[int],
                 stride: int | Sequence[int] | None = None,
                 padding: int | Sequence[int] = 0) -> None:
        layer = type(self).__name__
        self.kernel_size = _pair(kernel_size, "kernel_size", layer, 1)
        self.stride = self.kernel_size if stride is None else _pair(stride, "stride", layer, 1)
        self.padding = _pair(padding, "padding", layer, 0)
        if any(p > k // 2 for p, k in zip(self.padding, self.kernel_size)):
            raise ValueError(f"{layer}: padding {self.padding} must be at most half the "
                             f"kernel size {self.kernel_size}")



class MaxPool2d(_Pool):
    """The maximum over each window (as PyTorch's ``MaxPool2d``; ``stride`` defaults to the
    kernel size, padding is ``-inf``).  Ties share the gradient equally; NaN propagates."""

    def __call__(self, inputs: Tensor) -> Tensor:
        offsets, _ = _windows(inputs, self.kernel_size, self.stride, self.padding,
                              float("-inf"), "MaxPool2d")
        views = list(offsets.values())
        return _balanced_maximum(views)


class AvgPool2d(_Pool):
    """The mean over each window (as PyTorch's ``AvgPool2d`` with ``count_include_pad``:
    padding zeros count)."""

    def __call__(self, inputs: Tensor) -> Tensor:
        offsets, _ = _windows(inputs, self.kernel_size, self.stride, self.padding, 0.0,
                              "AvgPool2d")
        views = list(offsets.values())
        total = views[0]
        for view in views[1:]:
            total = total + view
        return total * (1.0 / len(views))


def _balanced_maximum(views):
    from symgrad.tensors import _derived
    node = ir.balanced(ir.maximum, [v.node for v in views])
    return _derived(node, *views)


class Flatten(_NoParameters):
    """Every axis but the first in one: ``(batch, ...) -> (batch, features)``."""

    def __call__(self, inputs: Tensor) -> Tensor:
        if not isinstance(inputs, Tensor) or inputs.ndim < 1:
            raise TypeError(f"Flatten takes a tensor with a batch axis, got {inputs!r}")
        rest = inputs.shape[1:]
        if any(isinstance(d, str) for d in rest):
            raise ir.ShapeError(f"Flatten: the axes after the first must have known sizes, got "
                                f"{inputs.shape}")
        return inputs.reshape((inputs.shape[0], math.prod(int(d) for d in rest)))


class Sequential(_Layers):
    """Layers applied in turn; its parameters are theirs, in order (a model for
    :func:`symgrad.fit`)."""

    def __init__(self, *layers) -> None:
        if len(layers) == 1 and isinstance(layers[0], (list, tuple)):
            layers = tuple(layers[0])
        if not layers:
            raise ValueError("Sequential needs at least one layer")
        self.layers = list(layers)
        names = [p.name for layer in self.layers for p in layer.parameters()]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"Sequential: parameters {repeated} appear twice; name the layers "
                             f"apart (name=...)")

