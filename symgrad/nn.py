"""Layers and networks: :class:`Dense` and :class:`MLP`.

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


class MLP:
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

    def __call__(self, inputs: Tensor) -> Tensor:
        a = inputs
        for layer in self.layers:
            a = layer(a)
        return a

    def parameters(self) -> list[Tensor]:
        """The symbolic parameters, ``[W1, b1, W2, b2, ...]``."""
        return [p for layer in self.layers for p in layer.parameters()]

    def values(self) -> list[np.ndarray]:
        """The current parameter values, in the order of :meth:`parameters`."""
        return [v for layer in self.layers for v in layer.values()]

    def set_values(self, values: Sequence[np.ndarray]) -> None:
        """Replace the parameter values (checked against the declared shapes and dtype)."""
        values = list(values)
        if len(values) != 2 * len(self.layers):
            raise ValueError(f"expected {2 * len(self.layers)} arrays, got {len(values)}")
        for index, layer in enumerate(self.layers):
            layer.set_values(values[2 * index: 2 * index + 2])

    def zs(self) -> list[Tensor | None]:
        """The pre-activations ``z^(l)`` of the last call, one tensor per layer."""
        return [layer.last_z for layer in self.layers]

    def activations(self) -> list[Tensor | None]:
        """The activations ``a^(l)`` of the last call, one tensor per layer."""
        return [layer.last_a for layer in self.layers]
