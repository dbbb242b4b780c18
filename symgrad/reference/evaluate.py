"""The numpy reference interpreter: evaluates any IR :class:`~symgrad.ir.Function`.

It is the oracle that every compiled kernel is tested against.  It favours clarity over speed:
one numpy expression per op, in one table (:data:`NUMPY_RULES`: the elementwise ops of
:mod:`symgrad.ir.numeric`, and the structural ops here).
"""

import numpy as np

from symgrad.arguments import bind
from symgrad.ir.function import Function
from symgrad.ir.numeric import ELEMENTWISE_RULES, NUMPY_DTYPES, evaluate_elementwise
from symgrad.ir.ops import Op


def _axes(node):
    return tuple(node.attrs)


def _slice(node, x, shape):
    index = tuple(start + step * np.arange(count) for (start, step), count
                  in zip(node.attrs, shape))
    return x[np.ix_(*index)]


def _pad(node, x, shape):
    out = np.full(shape, node.attrs[1], x.dtype)
    out[tuple(slice(low, low + (interior + 1) * (size - 1) + 1, interior + 1)
              for (low, interior), size in zip(node.attrs[0], x.shape))] = x
    return out


def _iota(node, shape):
    along = [1] * len(shape)
    along[node.attrs] = shape[node.attrs]
    return np.broadcast_to(np.arange(shape[node.attrs], dtype=float).reshape(along), shape)


def _checked_indices(idx, size, op_name):
    """``idx`` with negative indices counted from the end; out-of-range ones raise."""
    idx = np.asarray(idx, np.int64)
    bad = (idx < -size) | (idx >= size)
    if bad.any():
        raise IndexError(f"{op_name}: index {int(idx[bad].flat[0])} is out of bounds for an "
                         f"axis of size {size}")
    return np.where(idx < 0, idx + size, idx)


def _gather(node, x, idx, shape):
    return np.take(x, _checked_indices(idx, x.shape[node.attrs], "take"), axis=node.attrs)


def _scatter_add(node, values, idx, shape):
    axis = node.attrs[0]
    out = np.zeros(shape, values.dtype)
    index = _checked_indices(idx, shape[axis], "scatter_add")
    np.add.at(out, (slice(None),) * axis + (index,), values)
    return out


def _take_along(node, x, idx, shape):
    index = _checked_indices(idx, x.shape[node.attrs], "take_along_axis")
    return np.take_along_axis(x, index, node.attrs)


def _put_add_along(node, values, idx, shape):
    axis = node.attrs[0]
    out = np.zeros(shape, values.dtype)
    index = _checked_indices(idx, shape[axis], "put_add_along")
    positions = list(np.indices(values.shape, sparse=True))
    positions[axis] = index
    np.add.at(out, tuple(positions), values)
    return out


def _linrec(node, a, b, shape):
    a = np.moveaxis(np.broadcast_to(a, shape), node.attrs, 0)
    h = np.moveaxis(np.array(np.broadcast_to(b, shape)), node.attrs, 0)
    for t in range(1, h.shape[0]):
        h[t] = a[t] * h[t - 1] + h[t]
    return np.moveaxis(h, 0, node.attrs)


# Ops whose result depends on the node's attributes or shape: rule(node, *operands, shape).
STRUCTURAL_RULES = {
    Op.IOTA: _iota,
    Op.BROADCAST: lambda node, x, shape: np.broadcast_to(x, shape),
    Op.RESHAPE: lambda node, x, shape: np.reshape(x, shape),
    Op.TRANSPOSE: lambda node, x, shape: np.transpose(x, node.attrs),
    Op.SUM: lambda node, x, shape: np.sum(x, axis=_axes(node), keepdims=True),
    Op.AMAX: lambda node, x, shape: np.max(x, axis=_axes(node), keepdims=True),
    Op.AMIN: lambda node, x, shape: np.min(x, axis=_axes(node), keepdims=True),
    Op.PROD: lambda node, x, shape: np.prod(x, axis=_axes(node), keepdims=True),
    Op.SLICE: _slice,
    Op.PAD: _pad,
    Op.MATMUL: lambda node, a, b, shape: np.matmul(a, b),
    Op.GATHER: _gather,
    Op.SCATTER_ADD: _scatter_add,
    Op.LINREC: _linrec,
    Op.TAKE_ALONG: _take_along,
    Op.PUT_ADD_ALONG: _put_add_along,
}

NUMPY_RULES = {**ELEMENTWISE_RULES, **STRUCTURAL_RULES}


def evaluate(function, *args, **kwargs):
    """Evaluate ``function`` on numpy arrays.

    Inputs of shape ``()`` broadcast like numpy (an elementwise function evaluates over the
    broadcast of its arguments); inputs with a shape must match it, and each symbolic size
    takes the value the arrays give it.

    Parameters
    ----------
    function : Function
    *args, **kwargs
        One array (or number) per input, positionally or by input name.

    Returns
    -------
    tuple of numpy.ndarray
        One array per output.
    """
    if not isinstance(function, Function):
        raise TypeError(f"function must be a symgrad Function, got {type(function).__name__}")
    values = _bind(function, args, kwargs)
    sizes = _bind_sizes(function, values)
    env = {}
    with np.errstate(all="ignore"):
        for node in function.nodes:
            if node.op is Op.INPUT:
                env[id(node)] = values[node.attrs]
                continue
            dtype = NUMPY_DTYPES[node.dtype]
            shape = tuple(sizes[d] if isinstance(d, str) else d for d in node.shape)
            if node.op is Op.CONST:
                env[id(node)] = np.full(shape, node.attrs, dtype)
            elif node.op is Op.DIM:
                env[id(node)] = dtype(sizes[node.attrs])
            elif node.op in STRUCTURAL_RULES:
                operands = [env[id(a)] for a in node.args]
                env[id(node)] = np.asarray(
                    STRUCTURAL_RULES[node.op](node, *operands, shape), dtype)
            else:
                result = evaluate_elementwise(node.op, [env[id(a)] for a in node.args],
                                              node.dtype)
                env[id(node)] = np.asarray(result, dtype)
        outputs = [env[id(out)] for out in function.outputs]
    scalar_inputs = [np.shape(values[n.attrs]) for n in function.inputs if n.shape == ()]
    extra = np.broadcast_shapes(*scalar_inputs) if scalar_inputs else ()
    results = []
    for out, node in zip(outputs, function.outputs):
        shape = np.broadcast_shapes(np.shape(out), extra) if node.shape == () else np.shape(out)
        results.append(np.broadcast_to(np.asarray(out, NUMPY_DTYPES[node.dtype]), shape).copy())
    return tuple(results)


def _bind_sizes(function, values):
    sizes = {}
    for node in function.inputs:
        if node.shape == ():
            continue
        array = values[node.attrs]
        if array.ndim != len(node.shape):
            raise ValueError(f"input {node.attrs!r} must have shape {node.shape}, got "
                             f"{array.shape}")
        for expected, actual in zip(node.shape, array.shape):
            if isinstance(expected, str):
                if sizes.setdefault(expected, actual) != actual:
                    raise ValueError(f"size {expected!r} is {sizes[expected]} from an earlier "
                                     f"input but {actual} in input {node.attrs!r}")
            elif expected != actual:
                raise ValueError(f"input {node.attrs!r} must have shape {node.shape}, got "
                                 f"{array.shape}")
    return sizes


def _bind(function, args, kwargs):
    values = bind(function.input_names, args, kwargs)
    return {node.attrs: np.asarray(value, NUMPY_DTYPES[node.dtype])
            for node, value in zip(function.inputs, values)}
