"""The typed, tensor-level intermediate representation: the contract every stage reads.

- :mod:`symgrad.ir.ops`: the closed set of operations (:class:`Op`) and their arities;
- :mod:`symgrad.ir.node`: :class:`Node`, the intern table, dtypes, :func:`toposort`;
- :mod:`symgrad.ir.build`: the smart constructors (``ir.add``, ``ir.exp``, ...) and
  :data:`BUILDERS`;
- :mod:`symgrad.ir.function`: :class:`Function`;
- :mod:`symgrad.ir.numeric`: what each elementwise op computes on numbers (numpy);
- :mod:`symgrad.ir.text`: IR as text and as DOT.

A :class:`Function` names an ordered list of input nodes and an ordered list of outputs; it is
what the reference interpreter evaluates, what reverse mode differentiates and what the code
generator lowers.  This package loads numpy at most (on the first constant fold): neither
SymPy nor llvmlite.
"""

from symgrad.errors import ShapeError
from symgrad.ir.build import (
    BUILDERS,
    absolute,
    acos,
    acosh,
    add,
    asin,
    asinh,
    atan,
    atan2,
    atanh,
    balanced,
    broadcast_shapes,
    broadcast_to,
    cast,
    ceil,
    compare,
    const,
    cos,
    cosh,
    dim,
    div,
    erf,
    erfc,
    exp,
    exp2,
    expm1,
    floor,
    floor_divide,
    hypot,
    input_node,
    iota,
    linear_recurrence,
    log,
    log1p,
    log2,
    log10,
    logical_and,
    logical_not,
    logical_or,
    matmul,
    maximum,
    minimum,
    mul,
    neg,
    normalize_axes,
    pad,
    power,
    put_add_along,
    reduce_max,
    reduce_min,
    reduce_prod,
    reduce_sum,
    remainder,
    reshape,
    round_even,
    scatter_add,
    select,
    sigmoid,
    sign,
    sin,
    sinh,
    size_of,
    slice_axes,
    softplus,
    sqrt,
    stop_gradient,
    sub,
    take,
    take_along,
    tan,
    tanh,
    transpose,
    unbroadcast,
)
from symgrad.ir.function import ATTRIBUTE_BUILDERS, NODE_BUILDERS, Function, rebuild
from symgrad.ir.node import (
    DTYPES,
    FLOAT_DTYPES,
    INDEX_DTYPES,
    INTERN_LOCK,
    Node,
    format_constant,
    make_node,
    toposort,
    type_string,
)
from symgrad.ir.ops import Op

__all__ = [
    "ATTRIBUTE_BUILDERS", "BUILDERS", "DTYPES", "FLOAT_DTYPES", "Function", "INDEX_DTYPES",
    "INTERN_LOCK", "NODE_BUILDERS", "Node", "Op", "ShapeError", "absolute", "acos", "acosh", "add",
    "asin", "asinh", "atan", "atan2", "atanh", "balanced", "broadcast_shapes", "broadcast_to",
    "cast", "ceil", "compare", "const", "cos", "cosh", "dim", "div", "erf", "erfc", "exp", "exp2",
    "expm1", "floor", "floor_divide", "format_constant", "hypot", "input_node", "iota",
    "linear_recurrence", "log", "log10", "log1p", "log2", "logical_and", "logical_not",
    "logical_or", "make_node", "matmul", "maximum", "minimum", "mul", "neg", "normalize_axes",
    "pad", "power", "put_add_along", "rebuild", "reduce_max", "reduce_min", "reduce_prod",
    "reduce_sum", "remainder", "reshape", "round_even", "scatter_add", "select", "sigmoid", "sign",
    "sin", "sinh", "size_of", "slice_axes", "softplus", "sqrt", "stop_gradient", "sub", "take",
    "take_along", "tan", "tanh", "toposort", "transpose", "type_string", "unbroadcast",
]
