"""The lecture's loss functions, on tensors (and, where it makes sense, on SymPy scalars).

Each returns a scalar tensor.  ``reduction`` is ``'mean'`` (over every element, or every
example for softmax cross-entropy) or ``'sum'``.  The stable forms are used throughout: binary
cross-entropy from logits is ``(1 - t) softplus(z) + t softplus(-z)``; from probabilities that
come out of a sigmoid it is rewritten to the logits form; softmax cross-entropy uses
log-sum-exp.
"""

from __future__ import annotations

from symgrad import ir
from symgrad.ir.ops import Op
from symgrad.tensors import Normalizer, Tensor, _derived, as_tensor, where

__all__ = ["perceptron_criterion", "mean_squared_error", "mse", "binary_cross_entropy",
           "binary_cross_entropy_with_logits", "softmax_cross_entropy"]


def _reduce(values, reduction):
    if reduction == "mean":
        return values.mean()
    if reduction == "sum":
        return values.sum()
    raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")


def _pair(prediction, target, name):
    if not isinstance(prediction, Tensor):
        raise TypeError(f"{name}: the prediction must be a Tensor, got "
                        f"{type(prediction).__name__}")
    target = as_tensor(target, prediction)
    ir.broadcast_shapes(prediction.shape, target.shape,
                        context=f"{name}: prediction and target")
    return prediction, target


def perceptron_criterion(y: Tensor, t: Tensor | float, reduction: str = "sum") -> Tensor:
    r"""Rosenblatt's criterion :math:`E_P = -\sum_{n \in M} t_n y_n` over the misclassified
    set :math:`M = \{n : t_n y_n \le 0\}`, with targets :math:`t_n \in \{-1, +1\}` and
    outputs :math:`y_n = w^T x_n`.

    A point on the boundary (:math:`t_n y_n = 0`) counts as misclassified, as in Rosenblatt's
    rule, so one gradient step with rate eta is exactly :func:`symgrad.optim.perceptron_rule`
    (from w = 0 too).
    """
    y, t = _pair(y, t, "perceptron_criterion")
    margin = t * y
    return _reduce(where(margin <= 0, -margin, 0.0), reduction)


def mean_squared_error(y: Tensor, t: Tensor | float, reduction: str = "mean") -> Tensor:
    r""":math:`\frac{1}{N} \sum (y - t)^2`."""
    y, t = _pair(y, t, "mean_squared_error")
    return _reduce((y - t) ** 2, reduction)


mse = mean_squared_error


def binary_cross_entropy_with_logits(z: Tensor, t: Tensor | float,
                                     reduction: str = "mean") -> Tensor:
    r""":math:`-[t \log \sigma(z) + (1 - t) \log(1 - \sigma(z))] = (1 - t)
    \operatorname{softplus}(z) + t \operatorname{softplus}(-z)`, exact for any logit.

    Both terms are positive, so nothing cancels: at z = 40 the loss is 40 for t = 0 and
    softplus(-40) = 4.2e-18 for t = 1 (``softplus(z) - t z`` gives 0 there), and the gradient
    :math:`(1 - t) \sigma(z) - t \sigma(-z)` is :math:`-\sigma(-40)`, not
    :math:`\sigma(40) - 1 = 0`.  The two softplus terms share :math:`e^{-|z|}` and its
    logarithm in the compiled loop.
    """
    z, t = _pair(z, t, "binary_cross_entropy_with_logits")
    per_element = (1 - t) * _derived(ir.softplus(z.node), z) + \
        t * _derived(ir.softplus(ir.neg(z.node)), z)
    return _reduce(per_element, reduction)


def binary_cross_entropy(p: Tensor, t: Tensor | float, reduction: str = "mean") -> Tensor:
    r""":math:`-[t \log p + (1 - t) \log(1 - p)]` for probabilities ``p``.

    When ``p`` is a sigmoid of logits, the logits form is used (exact for any logit);
    otherwise each logarithm is clamped at -100, as PyTorch does, so p = 0 or 1 gives a large
    finite loss rather than inf or NaN.
    """
    p, t = _pair(p, t, "binary_cross_entropy")
    if p.node.op is Op.SIGMOID:
        return binary_cross_entropy_with_logits(_derived(p.node.args[0], p), t,
                                                reduction)
    floor = ir.const(-100.0, p.dtype)
    log_p = _derived(ir.maximum(ir.log(p.node), floor), p)
    log_not_p = _derived(ir.maximum(ir.log1p(ir.neg(p.node)), floor), p)
    return _reduce(-(t * log_p + (1 - t) * log_not_p), reduction)


def softmax_cross_entropy(logits: Tensor, t: Tensor, axis: int = -1,
                          reduction: str = "mean") -> Tensor:
    r""":math:`-\sum_k t_k \log \operatorname{softmax}(z)_k = \sum_k t_k
    (\operatorname{logsumexp}(z) - z_k)` for each example (one-hot or probability targets
    ``t`` along ``axis``), averaged (or summed) over the examples.

    Written as :math:`\sum_k t_k (m - z_k) + (\sum_k t_k) \log(\sum_i e^{z_i - m})`, ``m``
    the maximum, with the pieces of :class:`~symgrad.tensors.Normalizer`: every term is
    positive, so a confident right answer (logits [40, 0], target [1, 0]) has the loss
    4.2e-18 rather than 0, and the gradient :math:`(\sum_k t_k) \operatorname{softmax}(z) -
    t` at the first logit is -4.2e-18, computed from the other class, rather than
    :math:`p_1 - 1 = 0`.

    A class with target 0 contributes nothing, even where its logit is ``-inf`` (a masked,
    impossible class: ``0 log 0 = 0``, the entropy's convention); a target class whose logit
    is ``-inf`` gives an infinite loss.
    """
    logits, t = _pair(logits, t, "softmax_cross_entropy")
    parts = Normalizer(logits, axis)
    # sum of t_k (m - z_k) = -sum of t_k centred_k, from sums that need no more than the
    # maximum (one pass over the logits fewer): the terms off the maxima, their offset and,
    # where no element dominates, the maxima's (0-valued) terms.
    zero = ir.const(0.0, logits.dtype)
    at_maximum = _derived(parts.at_maximum, logits)
    # A class with target 0 adds nothing, even where its logit is -inf (0 log 0 = 0).
    distance = t * where(at_maximum, 0.0, _derived(ir.neg(parts.gaps), logits))
    untargeted = ir.compare(Op.EQ, t.node, zero)
    off_maxima = _derived(ir.select(untargeted, zero, distance.node), distance).sum(axis, True)
    weight_off_maxima = (t * where(at_maximum, 0.0, 1.0)).sum(axis, True)
    on_maxima = (t * where(at_maximum, _derived(ir.neg(parts.gaps), logits), 0.0)).sum(axis,
                                                                                  True)
    distances = off_maxima + _derived(parts.offset, logits) * weight_off_maxima + \
        _derived(ir.select(parts.dominant, zero, on_maxima.node), on_maxima)
    normalizers = t.sum(axis, keepdims=True) * _derived(parts.log_total, logits)
    return _reduce((distances + normalizers).sum(axis), reduction)     # drops the axis
