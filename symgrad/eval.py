"""The numpy reference interpreter: evaluates any IR :class:`~symgrad.ir.Function`.

It is the oracle that every compiled kernel is tested against.  It favours clarity over speed:
one numpy expression per op, in one table.
"""

import numpy as np

from symgrad.ir import Function
from symgrad.ops import Op

NUMPY_DTYPES = {"float64": np.float64, "float32": np.float32, "bool": np.bool_}


def _sign(x):
    return np.sign(x)


def _select(cond, if_true, if_false):
    return np.where(cond, if_true, if_false)


# One numpy implementation per non-leaf op.
NUMPY_RULES = {
    Op.NEG: np.negative,
    Op.ADD: np.add,
    Op.SUB: np.subtract,
    Op.MUL: np.multiply,
    Op.DIV: np.divide,
    Op.POW: np.power,
    Op.MAX: np.maximum,
    Op.MIN: np.minimum,
    Op.EXP: np.exp,
    Op.LOG: np.log,
    Op.SQRT: np.sqrt,
    Op.SIN: np.sin,
    Op.COS: np.cos,
    Op.TANH: np.tanh,
    Op.ABS: np.abs,
    Op.SIGN: _sign,
    Op.LT: np.less,
    Op.LE: np.less_equal,
    Op.GT: np.greater,
    Op.GE: np.greater_equal,
    Op.EQ: np.equal,
    Op.NE: np.not_equal,
    Op.AND: np.logical_and,
    Op.OR: np.logical_or,
    Op.NOT: np.logical_not,
    Op.SELECT: _select,
}


def fold_constant(op, values, dtype):
    """Evaluate ``op`` on Python floats in ``dtype`` arithmetic; returns a Python float."""
    np_dtype = NUMPY_DTYPES[dtype]
    with np.errstate(all="ignore"):
        result = NUMPY_RULES[op](*[np_dtype(v) for v in values])
    return float(result)


def evaluate(function, *args, **kwargs):
    """Evaluate ``function`` on numpy arrays with numpy's broadcasting.

    Parameters
    ----------
    function : Function
    *args, **kwargs
        One array (or number) per input, positionally or by input name.

    Returns
    -------
    tuple of numpy.ndarray
        One array per output, broadcast to the common shape of the arguments.
    """
    if not isinstance(function, Function):
        raise TypeError(f"function must be a symgrad Function, got {type(function).__name__}")
    values = _bind(function, args, kwargs)
    env = {}
    with np.errstate(all="ignore"):
        for node in function.nodes:
            if node.op is Op.CONST:
                env[id(node)] = np.full(node.shape, node.attrs, NUMPY_DTYPES[node.dtype])
            elif node.op is Op.INPUT:
                env[id(node)] = values[node.attrs]
            else:
                env[id(node)] = NUMPY_RULES[node.op](*[env[id(a)] for a in node.args])
        outputs = [env[id(out)] for out in function.outputs]
    shape = np.broadcast_shapes(*(np.shape(v) for v in values.values()), *(np.shape(o) for o in outputs))
    return tuple(np.broadcast_to(np.asarray(o, NUMPY_DTYPES[n.dtype]), shape).copy()
                 for o, n in zip(outputs, function.outputs))


def _bind(function, args, kwargs):
    names = function.input_names
    if len(args) > len(names):
        raise TypeError(f"expected at most {len(names)} arguments {list(names)}, got {len(args)}")
    values = dict(zip(names, args))
    for name, value in kwargs.items():
        if name not in names:
            raise TypeError(f"unknown argument {name!r}; arguments are {list(names)}")
        if name in values:
            raise TypeError(f"argument {name!r} given twice")
        values[name] = value
    missing = [n for n in names if n not in values]
    if missing:
        raise TypeError(f"missing arguments {missing}")
    dtypes = {n.attrs: NUMPY_DTYPES[n.dtype] for n in function.inputs}
    return {name: np.asarray(value, dtypes[name]) for name, value in values.items()}
