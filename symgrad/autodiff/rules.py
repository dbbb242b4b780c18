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


def _amin_rule(ct, out, x):
    # Ties share the cotangent equally, as for amax.
    return _amax_rule(ct, out, x)


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
    Op.EXPM1:  lambda ct, out, x: (ir.mul(ct, ir.exp(x)),),
    Op.LOG1P:  lambda ct, out, x: (ir.div(ct, ir.add(ir.const(1.0, x.dtype), x)),),
    Op.SIGMOID: lambda ct, out, x: (ir.mul(ct, ir.mul(out, ir.sigmoid(ir.neg(x)))),),
    Op.SOFTPLUS: lambda ct, out, x: (ir.mul(ct, ir.sigmoid(x)),),
    Op.BROADCAST: lambda ct, out, x: (ir.unbroadcast(ct, x.shape),),
    Op.RESHAPE: lambda ct, out, x: (ir.reshape(ct, x.shape),),
    Op.TRANSPOSE: _transpose_rule,
    Op.SUM:    lambda ct, out, x: (ir.broadcast_to(ct, x.shape),),
    Op.AMAX:   _amax_rule,
    Op.AMIN:   _amin_rule,
    Op.PROD:   _prod_rule,
    Op.SLICE:  _slice_rule,
    Op.PAD:    _pad_rule,
    Op.MATMUL: lambda ct, out, a, b: (ir.matmul(ct, ir.transpose(b)),
                                      ir.matmul(ir.transpose(a), ct)),
    Op.SELECT: _select_rule,
}

# Ops through which no gradient flows, because their results are booleans.
NON_DIFFERENTIABLE = BOOLEAN_RESULT
