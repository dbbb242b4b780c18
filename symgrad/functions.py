"""The lecture's activation functions.

Each is written once, as a SymPy formula of scalars, and works two ways: on SymPy arguments it
returns that SymPy expression (which ``symgrad.grad``, ``symgrad.compile`` and ``sympy.diff``
accept); on tensors it applies elementwise (broadcasting the tensors together).  Parameters such
as PReLU's slope or Swish's beta may be numbers, SymPy symbols or tensors (learnable: put them in
``wrt``).

>>> import symgrad as sg
>>> x = sg.symbols("x")
>>> sg.relu(x)
Max(0, x)
>>> sg.sigmoid(x)
sigmoid(x)
"""

import functools
import inspect

import sympy

from symgrad import ir
from symgrad.frontend.sympy_functions import expm1
from symgrad.frontend.sympy_functions import sigmoid as _sigmoid
from symgrad.frontend.sympy_functions import softplus as _softplus
from symgrad.frontend.sympy_to_ir import sympify
from symgrad.ir.ops import Op
from symgrad.tensors import Tensor, _derived, elementwise, where

__all__ = [
    "activation", "sigmoid", "tanh", "step", "relu", "leaky_relu", "prelu", "elu", "softplus",
    "swish", "gelu", "mish", "smooth_max", "acon_a", "acon_b", "acon_c",
]


def activation(formula):
    """Make an activation from a SymPy formula of scalars.

    The result returns ``formula(*args)`` for SymPy (or number) arguments, and applies
    ``formula`` elementwise when any argument is a :class:`~symgrad.tensors.Tensor`.

    Examples
    --------
    The lecture's leaky-integrate-and-fire firing rate, as a user-defined activation:

    >>> @activation
    ... def lif_rate(current, tau=1, resistance=1, rest=0, reset=0, threshold=1):
    ...     drive = rest + resistance * current
    ...     rate = 1 / (tau * sympy.log((drive - reset) / (drive - threshold)))
    ...     return sympy.Piecewise((rate, drive > threshold), (0, True))
    """

    signature = inspect.signature(formula)

    @functools.wraps(formula)
    def apply(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        values = dict(bound.arguments)
        tensors = [name for name, value in values.items() if isinstance(value, Tensor)]
        if tensors:
            def scalar_formula(*symbols):
                return formula(**{**values, **dict(zip(tensors, symbols))})
            return elementwise(scalar_formula, *[values[name] for name in tensors])
        return formula(**{name: sympify(value) for name, value in values.items()})

    apply.formula = formula
    return apply


@activation
def sigmoid(x):
    r"""The logistic sigmoid :math:`\sigma(x) = 1/(1 + e^{-x})`; never overflows."""
    return _sigmoid(x)


@activation
def tanh(x):
    r""":math:`\tanh x = (e^x - e^{-x}) / (e^x + e^{-x})`."""
    return sympy.tanh(x)


@activation
def step(x):
    """The Heaviside step: 0 for x < 0, 1 for x > 0 and SymPy's 1/2 at 0; derivative 0."""
    return sympy.Heaviside(x)


@activation
def relu(x):
    """``max(x, 0)``; derivative 0 at the kink, as torch.relu."""
    return sympy.Max(x, 0)


@activation
def leaky_relu(x, a=0.01):
    """``x`` for x > 0, ``a x`` otherwise (derivative ``a`` at 0, as PyTorch)."""
    return sympy.Piecewise((x, x > 0), (a * x, True))


@activation
def prelu(x, a):
    """Parametric ReLU: ``x`` for x > 0, ``a x`` otherwise, with a learnable slope ``a``."""
    return sympy.Piecewise((x, x > 0), (a * x, True))


@activation
def elu(x, alpha=1.0):
    """``x`` for x > 0, ``alpha (e^x - 1)`` otherwise (computed with expm1)."""
    return sympy.Piecewise((x, x > 0), (alpha * expm1(x), True))


@activation
def softplus(x):
    r""":math:`\log(1 + e^x)`, computed as ``max(x, 0) + log1p(exp(-|x|))``."""
    return _softplus(x)


@activation
def swish(x, beta=1):
    r"""Swish :math:`x \sigma(\beta x)` (Ramachandran et al. 2017), ``beta`` learnable."""
    return x * _sigmoid(beta * x)


@activation
def gelu(x):
    r"""GELU :math:`x \Phi(x)` (Hendrycks and Gimpel 2016), :math:`\Phi` the standard normal
    distribution function, written :math:`\frac{x}{2} \operatorname{erfc}(-x / \sqrt 2)`:
    exact on both tails (``1 + erf`` would cancel below -4), as PyTorch's default
    ``gelu``."""
    # (Unevaluated: SymPy would write erfc(-u) as 2 - erfc(u), which cancels.)
    return x * sympy.erfc(-x / sympy.sqrt(2), evaluate=False) / 2


@activation
def mish(x):
    r"""Mish :math:`x \tanh(\operatorname{softplus}(x))` (Misra 2019)."""
    return x * sympy.tanh(_softplus(x))


@activation
def acon_a(x, beta=1):
    r"""ACON-A :math:`S_\beta(x, 0) = x \sigma(\beta x)` (Ma et al. 2021): Swish."""
    return x * _sigmoid(beta * x)


@activation
def acon_b(x, a, beta=1):
    r"""ACON-B :math:`S_\beta(x, a x) = (1 - a) x \sigma(\beta (1 - a) x) + a x`."""
    return _smooth_switch(x, a * x, (1 - a) * x, beta)


@activation
def acon_c(x, p1, p2, beta=1):
    r"""ACON-C :math:`(p_1 - p_2) x \sigma(\beta (p_1 - p_2) x) + p_2 x`, with ``p1``, ``p2``
    and ``beta`` learnable; its slope tends to ``p1`` as x -> +inf and ``p2`` as x -> -inf."""
    return _smooth_switch(p1 * x, p2 * x, (p1 - p2) * x, beta)


def _smooth_switch(high, low, gap, beta):
    r"""ACON's :math:`S_\beta(\eta_a, \eta_b) = (\eta_a - \eta_b) \sigma(\beta (\eta_a -
    \eta_b)) + \eta_b`, given ``high`` = :math:`\eta_a`, ``low`` = :math:`\eta_b` and ``gap``
    = :math:`\eta_a - \eta_b` written so that it rounds once (``(1 - a) x`` rather than
    ``x - a x``).

    The derivative of :math:`\eta_b + g \sigma(d)`, :math:`d = \beta g`, with respect to
    :math:`\eta_b`'s parameter holds :math:`1 - \sigma(d)`, which loses its digits as
    :math:`\sigma(d)` nears 1 (ACON-C's d/dp2 at x = 40, p1 = 1, p2 = 1/4 came out
    -1.0844e-10 instead of -1.0855e-10, and 0 once :math:`\sigma(d)` rounds to 1).  So the
    function is written on each side of :math:`d = 0` in the form where that sigmoid is at
    most 1/2: :math:`\eta_b + g \sigma(d)` for d < 0 and :math:`\eta_a - g \sigma(-d)`
    otherwise (the same function: :math:`\sigma(d) = 1 - \sigma(-d)`).
    """
    switch = beta * gap
    return sympy.Piecewise((low + gap * _sigmoid(switch), switch < 0),
                           (high - gap * _sigmoid(-switch), True))


def smooth_max(xs, beta=1, axis=-1):
    r"""The smooth maximum :math:`S_\beta(x_1..x_n) = \sum_i x_i e^{\beta x_i} /
    \sum_i e^{\beta x_i}` (Ma et al. 2021).

    Parameters
    ----------
    xs : sequence of SymPy expressions, or Tensor
        The values; for a tensor, along ``axis``.
    beta : number, symbol or scalar tensor
        beta -> inf gives the maximum, beta = 0 the mean, beta -> -inf the minimum.

    The sum is taken about the value ``c`` of largest weight, :math:`S = c + \sum_i (x_i - c)
    w_i` with :math:`w_i \propto e^{\beta (x_i - c)}`: no exponent is positive, so nothing
    overflows, and the derivatives :math:`w_j (1 + \beta (x_j - S))` and :math:`\sum_j w_j
    x_j (x_j - S)` (d/dbeta, a weighted variance) come out of reverse mode as differences of
    :math:`x_j - c`, small where the weights are large, rather than of the values themselves
    (d/dbeta at x = [-700, 0, 700] was 0 instead of 4.8e-299).
    """
    if isinstance(xs, Tensor):
        scaled = xs * beta
        top = ir.reduce_max(scaled.node, axis, True)
        at_maximum = where(_derived(ir.compare(Op.EQ, scaled.node, top), scaled), 1.0, 0.0)
        # c: the mean of the values of largest weight (one value, unless beta is 0).  S does
        # not depend on it, so no gradient flows through it.
        mean = (xs * at_maximum).sum(axis, keepdims=True) / at_maximum.sum(axis, keepdims=True)
        center = _derived(ir.stop_gradient(mean.node), mean)
        offsets = xs - center
        exponentials = _derived(ir.exp((offsets * beta).node), offsets)
        weights = exponentials / exponentials.sum(axis, keepdims=True)
        return (center + (offsets * weights).sum(axis, keepdims=True)).sum(axis)
    values = [sympify(x) for x in xs]
    if not values:
        raise ValueError("smooth_max needs at least one value")
    beta = sympify(beta)
    top = sympy.Max(*[beta * x for x in values])
    # c: the first value of largest weight.
    center = sympy.Piecewise(*[(x, sympy.Eq(beta * x, top)) for x in values[:-1]],
                             (values[-1], True))
    weights = [sympy.exp(beta * (x - center)) for x in values]
    return center + sympy.Add(*[(x - center) * w for x, w in zip(values, weights)]) / \
        sympy.Add(*weights)
