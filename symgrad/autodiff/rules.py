"""Vector-Jacobian product rules: one line per differentiable op.

A rule has one signature, ``rule(ct, out, *operands)``: ``ct`` is the cotangent arriving at the
node, ``out`` the node itself (its forward value, reused where it helps: ``exp`` gives
``ct * out``) and ``operands`` its operands.  It returns one cotangent contribution per operand,
built from IR nodes, or ``None`` where the contribution is zero.

Kink conventions (documented in the README):

* ``max(x, c)`` / ``min(x, c)`` with a constant ``c`` (ReLU and its kin): derivative 0 at the
  kink, as ``torch.relu`` and ``jax.nn.relu`` give.  Between two non-constant operands a tie
  splits the cotangent equally, as ``torch.maximum`` and ``jnp.maximum`` do.
* ``abs``: ``sign(x)``, so 0 at 0.  ``sign`` and the Heaviside step: derivative 0 everywhere
  (the Dirac delta at 0 is not represented).
* ``x ** y`` with respect to ``y`` at ``x == 0``: 0 (the limit from the side where it exists);
  with respect to ``x`` where ``y == 0``: 0 (``x ** 0`` is constant), as JAX does.
* ``amax``, ``amin``: ties share the cotangent equally.
* ``prod``: the product of the other elements, exact where the reduced elements hold zeros.
* ``select(c, a, b)`` (``Piecewise``): the derivative of the branch taken; the branch not
  taken contributes exactly 0, never NaN (see :mod:`symgrad.autodiff.reverse`).
"""

import math
from typing import NamedTuple

from symgrad import ir
from symgrad.ir.ops import BOOLEAN_RESULT, Op


class Guarded(NamedTuple):
    """A contribution that only holds where ``condition`` does (the branch of a select, the
    active side of ``max(x, c)``).  Reverse mode masks it with the condition where it meets
    other contributions, so 0 * inf further down the inactive side never becomes NaN."""

    value: object
    condition: object


def _half(ct):
    return ir.mul(ir.const(0.5, ct.dtype), ct)


def _max_rule(ct, out, a, b, greater=Op.GT):
    zero = ir.const(0.0, ct.dtype)
    if b.is_const:
        return Guarded(ct, ir.compare(greater, a, b)), None
    if a.is_const:
        return None, Guarded(ct, ir.compare(greater, b, a))
    tie = ir.select(ir.compare(Op.EQ, a, b), _half(ct), zero)
    return (ir.select(ir.compare(greater, a, b), ct, tie),
            ir.select(ir.compare(greater, b, a), ct, tie))


def _min_rule(ct, out, a, b):
    return _max_rule(ct, out, a, b, greater=Op.LT)


def _pow_rule(ct, out, base, exponent):
    one = ir.const(1.0, ct.dtype)
    zero = ir.const(0.0, ct.dtype)
    slope = ir.mul(exponent, ir.power(base, ir.sub(exponent, one)))
    if exponent.is_const:
        return ir.mul(ct, slope), None
    # y * x**(y-1) is 0 * inf at x == 0, y == 0; x**0 is constant in x, so its slope is 0.
    slope = ir.select(ir.compare(Op.EQ, exponent, zero), zero, slope)
    safe_base = ir.select(ir.compare(Op.EQ, base, zero), one, base)
    return ir.mul(ct, slope), ir.mul(ct, ir.mul(out, ir.log(safe_base)))


def _select_rule(ct, out, cond, if_true, if_false):
    return None, Guarded(ct, cond), Guarded(ct, ir.logical_not(cond))


def _amax_rule(ct, out, x):
    # Ties share the cotangent equally, as jnp.max and torch.amax do.
    axes = out.attrs
    hit = ir.select(ir.compare(Op.EQ, x, ir.broadcast_to(out, x.shape)),
                    ir.const(1.0, x.dtype), ir.const(0.0, x.dtype))
    count = ir.reduce_sum(hit, axes, keepdims=True)
    return (ir.mul(hit, ir.broadcast_to(ir.div(ct, count), x.shape)),)


def _prod_rule(ct, out, x):
    # d prod / d x_i is the product of the other elements, right where x holds zeros: with
    # no zero it is prod / x_i; with one zero, the product of the non-zero elements at the
    # zero and 0 elsewhere; with two or more, 0 everywhere.
    axes = out.attrs
    zero, one = ir.const(0.0, x.dtype), ir.const(1.0, x.dtype)
    is_zero = ir.compare(Op.EQ, x, zero)
    zeros = ir.reduce_sum(ir.select(is_zero, one, zero), axes, keepdims=True)
    others = ir.broadcast_to(ir.reduce_prod(ir.select(is_zero, one, x), axes, keepdims=True),
                             x.shape)
    ct = ir.broadcast_to(ct, x.shape)
    one_zero = ir.logical_and(is_zero, ir.compare(Op.EQ, zeros, one))
    at_one_zero = ir.select(one_zero, ir.mul(ct, others), zero)
    return (ir.select(ir.compare(Op.EQ, zeros, zero), ir.mul(ct, ir.div(others, x)),
                      at_one_zero),)


def _slice_rule(ct, out, x):
    # The cotangent scattered back into zeros: a pad with zeros before, after and between
    # the elements taken (a negative step takes them in reverse order: flip first).
    widths, spec = [], []
    for (start, step), count, size in zip(out.attrs, out.shape, x.shape):
        if isinstance(size, str):
            widths.append((0, 0, 0))
            spec.append((0, 1, size))
            continue
        first = start if step > 0 else start + step * (count - 1)
        last = first + abs(step) * (count - 1)
        widths.append((first, size - 1 - last, abs(step) - 1))
        spec.append((0, 1, count) if step > 0 else (count - 1, -1, count))
    return (ir.pad(ir.slice_axes(ct, spec), widths, 0.0),)


def _pad_rule(ct, out, x):
    (lows_interiors, _fill) = out.attrs
    spec = [(0, 1, size) if isinstance(size, str) else (low, interior + 1, size)
            for (low, interior), size in zip(lows_interiors, x.shape)]
    return (ir.slice_axes(ct, spec),)


def _gather_rule(ct, out, x, idx):
    # Each selected element's cotangent added back at its index: duplicates sum.
    return ir.scatter_add(ct, idx, out.attrs, x.shape[out.attrs]), None


def _scatter_add_rule(ct, out, values, idx):
    return ir.take(ct, idx, out.attrs[0]), None


def _take_along_rule(ct, out, x, idx):
    return ir.put_add_along(ct, idx, out.attrs, x.shape[out.attrs]), None


def _put_add_along_rule(ct, out, values, idx):
    return ir.take_along(ct, idx, out.attrs[0]), None


def _along(x, axis, start, stop, step=1):
    """``x[start:stop:step]`` along ``axis`` (of known size), the other axes whole."""
    count = len(range(start, stop, step))
    return ir.slice_axes(x, [(start, step, count) if a == axis else (0, 1, size)
                             for a, size in enumerate(x.shape)])


def _padded(x, axis, low, high):
    return ir.pad(x, [(low, high, 0) if a == axis else (0, 0, 0) for a in range(len(x.shape))],
                  0.0)


def _linrec_rule(ct, out, a, b):
    # With g[t] = ct[t] + a[t+1] g[t+1] (a recurrence run backwards: flipped, a forward one),
    # d/db = g and d/da[t] = g[t] h[t-1] (0 at t = 0, which a[0] does not reach).
    axis = out.attrs
    n = out.shape[axis]
    following = _padded(_along(a, axis, 1, n), axis, 0, 1)       # a[t+1], and 0 at the end
    backward = ir.linear_recurrence(_along(following, axis, n - 1, -1, -1),
                                    _along(ct, axis, n - 1, -1, -1), axis)
    g = _along(backward, axis, n - 1, -1, -1)
    slope = _padded(ir.mul(_along(g, axis, 1, n), _along(out, axis, 0, n - 1)), axis, 1, 0)
    return slope, g


def _transpose_rule(ct, out, x):
    inverse = [0] * len(out.attrs)
    for position, axis in enumerate(out.attrs):
        inverse[axis] = position
    return (ir.transpose(ct, inverse),)


# ---- slopes that would cancel if computed from the forward value ----
# Where the forward value saturates, s (1 - s), 1 - t**2 and expm1(x) + 1 subtract two numbers
# that agree to the last bit (sigma'(40) = 4.2e-18 came out 0, tanh'(20) and elu'(-40) too).
# The rules use products of factors that are each exact to a few ulp on both tails:
# sigma(x) sigma(-x) (in the compiled loop the two sigmoids share exp(-|x|) and one division),
# 4 sigma(2x) sigma(-2x) for tanh and exp(x) for expm1.

def _tanh_slope(x):
    """tanh'(x) = sech(x)**2 = 4 sigma(2x) sigma(-2x)."""
    if x.op is Op.SOFTPLUS:
        # tanh(softplus(u)) (mish): with q = sigma(-u) = 1 / (1 + e^u), tanh(softplus(u)) =
        # (1 - q**2) / (1 + q**2) and sech**2 = 4 q**2 / (1 + q**2)**2, every term positive;
        # q shares exp(-|u|) with the forward routine and with softplus'(u) = sigma(u).
        q = ir.sigmoid(ir.neg(x.args[0]))
        q_squared = ir.mul(q, q)
        denominator = ir.add(ir.const(1.0, x.dtype), q_squared)
        return ir.div(ir.mul(ir.const(4.0, x.dtype), q_squared),
                      ir.mul(denominator, denominator))
    twice = ir.mul(ir.const(2.0, x.dtype), x)
    return ir.mul(ir.const(4.0, x.dtype),
                  ir.mul(ir.sigmoid(twice), ir.sigmoid(ir.neg(twice))))


def _times(value, x):
    return ir.mul(ir.const(value, x.dtype), x)


def _unit_root(x, sign=1.0):
    """sqrt(1 - x) sqrt(1 + x) (sign 1) or sqrt(x - 1) sqrt(x + 1) (sign -1): never the
    overflowing or cancelling (1 - x**2)."""
    one = ir.const(1.0, x.dtype)
    if sign > 0:
        return ir.mul(ir.sqrt(ir.sub(one, x)), ir.sqrt(ir.add(one, x)))
    return ir.mul(ir.sqrt(ir.sub(x, one)), ir.sqrt(ir.add(x, one)))


def _erf_slope(x):
    """erf'(x) = 2 / sqrt(pi) exp(-x**2)."""
    return ir.mul(ir.const(2.0 / math.sqrt(math.pi), x.dtype), ir.exp(ir.neg(ir.mul(x, x))))


def _atan2_rule(ct, out, y, x):
    # d/dy = x / (x**2 + y**2), d/dx = -y / (x**2 + y**2), with hypot(x, y)**2 so that the
    # squares neither overflow nor underflow.
    h = ir.hypot(y, x)
    return (ir.mul(ct, ir.div(ir.div(x, h), h)),
            ir.neg(ir.mul(ct, ir.div(ir.div(y, h), h))))


def _hypot_rule(ct, out, x, y):
    # x / hypot and y / hypot; 0 at the origin (the convention of abs, hypot(x, 0) = |x|).
    zero = ir.const(0.0, out.dtype)
    safe = ir.select(ir.compare(Op.EQ, out, zero), ir.const(1.0, out.dtype), out)
    return ir.mul(ct, ir.div(x, safe)), ir.mul(ct, ir.div(y, safe))


VJP_RULES = {
    Op.NEG:    lambda ct, out, x: (ir.neg(ct),),
    Op.ADD:    lambda ct, out, a, b: (ct, ct),
    Op.SUB:    lambda ct, out, a, b: (ct, ir.neg(ct)),
    Op.MUL:    lambda ct, out, a, b: (ir.mul(ct, b), ir.mul(ct, a)),
    Op.DIV:    lambda ct, out, a, b: (ir.div(ct, b), ir.neg(ir.div(ir.mul(ct, out), b))),
    Op.POW:    _pow_rule,
    Op.MAX:    _max_rule,
    Op.MIN:    _min_rule,
    Op.EXP:    lambda ct, out, x: (ir.mul(ct, out),),
    Op.LOG:    lambda ct, out, x: (ir.div(ct, x),),
    Op.SQRT:   lambda ct, out, x: (ir.div(ct, ir.mul(ir.const(2.0, out.dtype), out)),),
    Op.SIN:    lambda ct, out, x: (ir.mul(ct, ir.cos(x)),),
    Op.COS:    lambda ct, out, x: (ir.neg(ir.mul(ct, ir.sin(x))),),
    Op.TANH:   lambda ct, out, x: (ir.mul(ct, _tanh_slope(x)),),
    Op.ABS:    lambda ct, out, x: (ir.mul(ct, ir.sign(x)),),
    Op.SIGN:   lambda ct, out, x: (None,),
    Op.STOP_GRADIENT: lambda ct, out, x: (None,),
    # An int64 result or operand: no gradient flows through a conversion.
    Op.CAST:   lambda ct, out, x: (None,),
    Op.EXPM1:  lambda ct, out, x: (ir.mul(ct, ir.exp(x)),),
    Op.LOG1P:  lambda ct, out, x: (ir.div(ct, ir.add(ir.const(1.0, x.dtype), x)),),
    Op.SIGMOID: lambda ct, out, x: (ir.mul(ct, ir.mul(out, ir.sigmoid(ir.neg(x)))),),
    Op.SOFTPLUS: lambda ct, out, x: (ir.mul(ct, ir.sigmoid(x)),),
    Op.LOG2:   lambda ct, out, x: (ir.div(ct, _times(math.log(2.0), x)),),
    Op.LOG10:  lambda ct, out, x: (ir.div(ct, _times(math.log(10.0), x)),),
    Op.EXP2:   lambda ct, out, x: (ir.mul(ct, _times(math.log(2.0), out)),),
    Op.TAN:    lambda ct, out, x: (ir.mul(ct, ir.add(ir.const(1.0, x.dtype), ir.mul(out, out))),),
    Op.ASIN:   lambda ct, out, x: (ir.div(ct, _unit_root(x)),),
    Op.ACOS:   lambda ct, out, x: (ir.neg(ir.div(ct, _unit_root(x))),),
    Op.ATAN:   lambda ct, out, x: (ir.div(ct, ir.add(ir.const(1.0, x.dtype), ir.mul(x, x))),),
    Op.SINH:   lambda ct, out, x: (ir.mul(ct, ir.cosh(x)),),
    Op.COSH:   lambda ct, out, x: (ir.mul(ct, ir.sinh(x)),),
    Op.ASINH:  lambda ct, out, x: (ir.div(ct, ir.hypot(ir.const(1.0, x.dtype), x)),),
    Op.ACOSH:  lambda ct, out, x: (ir.div(ct, _unit_root(x, -1.0)),),
    Op.ATANH:  lambda ct, out, x: (ir.div(ct, ir.mul(ir.sub(ir.const(1.0, x.dtype), x),
                                                     ir.add(ir.const(1.0, x.dtype), x))),),
    Op.ERF:    lambda ct, out, x: (ir.mul(ct, _erf_slope(x)),),
    Op.ERFC:   lambda ct, out, x: (ir.neg(ir.mul(ct, _erf_slope(x))),),
    # Piecewise constant: derivative 0 (the jumps are not represented), as in JAX.
    Op.FLOOR:  lambda ct, out, x: (None,),
    Op.CEIL:   lambda ct, out, x: (None,),
    Op.ROUND:  lambda ct, out, x: (None,),
    Op.ATAN2:  _atan2_rule,
    # Of integers: no gradient.
    Op.FLOOR_DIV: lambda ct, out, a, b: (None, None),
    Op.MOD:    lambda ct, out, a, b: (None, None),
    Op.HYPOT:  _hypot_rule,
    Op.BROADCAST: lambda ct, out, x: (ir.unbroadcast(ct, x.shape),),
    Op.RESHAPE: lambda ct, out, x: (ir.reshape(ct, x.shape),),
    Op.TRANSPOSE: _transpose_rule,
    Op.SUM:    lambda ct, out, x: (ir.broadcast_to(ct, x.shape),),
    Op.AMAX:   _amax_rule,
    Op.AMIN:   _amax_rule,       # (the elements equal to the result, ties sharing)
    Op.PROD:   _prod_rule,
    Op.SLICE:  _slice_rule,
    Op.PAD:    _pad_rule,
    Op.MATMUL: lambda ct, out, a, b: (ir.matmul(ct, ir.transpose(b)),
                                      ir.matmul(ir.transpose(a), ct)),
    Op.SELECT: _select_rule,
    Op.GATHER: _gather_rule,
    Op.SCATTER_ADD: _scatter_add_rule,
    Op.LINREC: _linrec_rule,
    Op.TAKE_ALONG: _take_along_rule,
    Op.PUT_ADD_ALONG: _put_add_along_rule,
}

# Ops through which no gradient flows, because their results are booleans.
NON_DIFFERENTIABLE = BOOLEAN_RESULT
