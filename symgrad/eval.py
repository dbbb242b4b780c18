"""The numpy reference interpreter: evaluates any IR :class:`~symgrad.ir.Function`.

It is the oracle that every compiled kernel is tested against.  It favours clarity over speed:
one numpy expression per op, in one table.
"""

import numpy as np

from symgrad.arguments import bind
from symgrad.ir import Function
from symgrad.ops import Op

NUMPY_DTYPES = {"float64": np.float64, "float32": np.float32, "bool": np.bool_}


def _sigmoid(x):
    # Two forms, each used where it cannot overflow.
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def _softplus(x):
    return np.logaddexp(0, x)


def _axes(node):
    return tuple(node.attrs)


def _maximum(a, b):
    # IEEE 754-2019 maximum, as the kernels compute it: NaN propagates and -0.0 < +0.0.
    # (np.maximum returns either zero on a tie, depending on the code path it takes.)
    return np.where(a == b, np.where(np.signbit(a), b, a), np.maximum(a, b))[()]


def _minimum(a, b):
    # IEEE 754-2019 minimum: NaN propagates and -0.0 < +0.0.
    return np.where(a == b, np.where(np.signbit(a), a, b), np.minimum(a, b))[()]


# One numpy implementation per elementwise op, on arrays (or numpy scalars).
ELEMENTWISE_RULES = {
    Op.NEG: np.negative,
    Op.ADD: np.add,
    Op.SUB: np.subtract,
    Op.MUL: np.multiply,
    Op.DIV: np.divide,
    Op.POW: np.power,
    Op.MAX: _maximum,
    Op.MIN: _minimum,
    Op.EXP: np.exp,
    Op.LOG: np.log,
    Op.SQRT: np.sqrt,
    Op.SIN: np.sin,
    Op.COS: np.cos,
    Op.TANH: np.tanh,
    Op.ABS: np.abs,
    Op.SIGN: np.sign,
    Op.EXPM1: np.expm1,
    Op.LOG1P: np.log1p,
    Op.SIGMOID: _sigmoid,
    Op.SOFTPLUS: _softplus,
    Op.STOP_GRADIENT: np.positive,
    Op.LT: np.less,
    Op.LE: np.less_equal,
    Op.GT: np.greater,
    Op.GE: np.greater_equal,
    Op.EQ: np.equal,
    Op.NE: np.not_equal,
    Op.AND: np.logical_and,
    Op.OR: np.logical_or,
    Op.NOT: np.logical_not,
    Op.SELECT: np.where,
}

# Ops whose result depends on the node's attributes or shape: rule(node, *operands).
STRUCTURAL_RULES = {
    Op.BROADCAST: lambda node, x, shape: np.broadcast_to(x, shape),
    Op.RESHAPE: lambda node, x, shape: np.reshape(x, shape),
    Op.TRANSPOSE: lambda node, x, shape: np.transpose(x, node.attrs),
    Op.SUM: lambda node, x, shape: np.sum(x, axis=_axes(node), keepdims=True),
    Op.AMAX: lambda node, x, shape: np.max(x, axis=_axes(node), keepdims=True),
    Op.MATMUL: lambda node, a, b, shape: np.matmul(a, b),
}

NUMPY_RULES = {**ELEMENTWISE_RULES, **STRUCTURAL_RULES}


def fold_constant(op, values, dtype):
    """Evaluate ``op`` on Python floats in ``dtype`` arithmetic; returns a Python float."""
    np_dtype = NUMPY_DTYPES[dtype]
    # On arrays, not numpy scalars: the scalars compute some operations otherwise than the
    # arrays a kernel's operands are (np.float32(-0.0) ** 0.5 is +0.0, sqrt's -0.0 on arrays).
    with np.errstate(all="ignore"):
        result = ELEMENTWISE_RULES[op](*[np.array([v], np_dtype) for v in values])
    return float(np.asarray(result)[0])


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
                env[id(node)] = STRUCTURAL_RULES[node.op](node, *operands, shape)
            else:
                result = ELEMENTWISE_RULES[node.op](*[env[id(a)] for a in node.args])
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
