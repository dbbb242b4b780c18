"""The smart constructors: every node is built here.

Each constructor checks shapes and dtypes, folds constants (with the reference interpreter's
numbers, :mod:`symgrad.ir.numeric`) and applies a few algebraic identities (``x + 0``,
``x * 1``, ``select(c, a, a)``...).  :data:`BUILDERS` maps each op to its constructor, for code
that rebuilds nodes generically.
"""

import math

from symgrad.errors import ShapeError
from symgrad.ir.node import FLOAT_DTYPES, INDEX_DTYPES, make_node, type_string
from symgrad.ir.ops import COMPARISONS, INTEGER_ONLY_OPS, INTEGER_OPS, Op

# ---------------------------------------------------------------------------------------------
# Shapes and dtypes
# ---------------------------------------------------------------------------------------------

def broadcast_shapes(*shapes, context="elementwise operation"):
    """Numpy broadcasting of shapes whose entries may be symbolic sizes (strings).

    Raises :class:`ShapeError` naming every shape when they do not broadcast.
    """
    first = shapes[0]
    if all(shape == first for shape in shapes):
        return tuple(first)
    rank = max((len(s) for s in shapes), default=0)
    result = []
    for axis in range(rank):
        size = 1
        for shape in shapes:
            index = axis - (rank - len(shape))
            if index < 0:
                continue
            dim = shape[index]
            if dim == 1:
                continue
            if size == 1:
                size = dim
            elif dim != size:
                listed = ", ".join(str(tuple(s)) for s in shapes)
                raise ShapeError(f"{context}: shapes {listed} do not broadcast "
                                 f"(axis {axis}: {size} vs {dim})")
        result.append(size)
    return tuple(result)


def _float_dtype(operands, op):
    if any(a.dtype in INDEX_DTYPES for a in operands):
        return _integer_dtype(operands, op)
    if op in INTEGER_ONLY_OPS:
        raise TypeError(f"op {op.value!r} takes integer tensors; for floats write "
                        f"sg.floor(a / b) or a - b * sg.floor(a / b)")
    first = operands[0].dtype
    if first != "bool" and all(a.dtype == first for a in operands):
        return first
    dtypes = {a.dtype for a in operands}
    if "bool" in dtypes:
        raise TypeError(f"op {op.value!r} takes numbers, got a boolean operand")
    # Constants adapt to the other operand, like Python scalars in numpy.
    non_const = {a.dtype for a in operands if a.op is not Op.CONST}
    if len(non_const) > 1:
        raise TypeError(f"op {op.value!r}: operands have different dtypes {sorted(non_const)}")
    if non_const:
        return non_const.pop()
    return "float64" if "float64" in dtypes else dtypes.pop()


def _integer_dtype(operands, op):
    """int64 for an op of integer operands (constants adapt, if they are whole numbers)."""
    if op not in INTEGER_OPS:
        raise TypeError(f"op {op.value!r} takes floats, got an integer operand: integer "
                        f"tensors add, subtract, multiply, divide with // and %, compare and "
                        f"index; convert with .astype('float64') for the rest")
    for operand in operands:
        if operand.op is Op.CONST and operand.dtype != "bool":
            if not float(operand.attrs).is_integer():
                raise TypeError(f"op {op.value!r}: the constant {operand.attrs!r} with an "
                                f"integer tensor is not a whole number; convert the tensor "
                                f"with .astype('float64') first")
            continue
        if operand.dtype in INDEX_DTYPES:
            continue
        raise TypeError(f"op {op.value!r} mixes an integer tensor with a {operand.dtype} one "
                        f"({type_string(operand)}); convert with .astype() first")
    return "int64"


def cast(x, dtype):
    """``x`` in ``dtype``: an integer tensor as floats (exactly rounded), or floats as
    integers (toward zero; saturating at the int64 range, NaN as 0)."""
    if x.dtype == dtype:
        return x
    if {x.dtype, dtype} - set(FLOAT_DTYPES + INDEX_DTYPES) or \
            (x.dtype in FLOAT_DTYPES) == (dtype in FLOAT_DTYPES):
        raise TypeError(f"cast converts between int64 and a float dtype, got {x.dtype} to "
                        f"{dtype} (a kernel computes in one float dtype)")
    if x.op is Op.CONST:
        from symgrad.ir.numeric import cast_constant
        return const(cast_constant(x.attrs, x.dtype, dtype), dtype, x.shape)
    return make_node(Op.CAST, (x,), None, dtype, x.shape)


# ---------------------------------------------------------------------------------------------
# Leaves
# ---------------------------------------------------------------------------------------------

def const(value, dtype="float64", shape=()):
    """A constant (a float, or for ``dtype='bool'`` a truth value), broadcast to ``shape``."""
    if dtype == "bool":
        value = 1.0 if value else 0.0
    return make_node(Op.CONST, (), float(value), dtype, shape)


def input_node(name, dtype="float64", shape=()):
    """A named argument of a function."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"an input needs a non-empty string name, got {name!r}")
    return make_node(Op.INPUT, (), name, dtype, _check_shape(shape))


def dim(name, dtype="float64"):
    """The runtime value of the symbolic size ``name``, as a scalar float."""
    return make_node(Op.DIM, (), name, dtype, ())


def iota(shape, axis, dtype="float64"):
    """Each element's index along ``axis`` of ``shape``, as a number (``numpy.arange`` along
    one axis, broadcast over the others)."""
    shape = _check_shape(shape)
    if not 0 <= axis < len(shape):
        raise ShapeError(f"iota: axis {axis} is out of range for shape {shape}")
    if shape[axis] == 1:
        return const(0.0, dtype, shape)
    return make_node(Op.IOTA, (), axis, dtype, shape)


def _check_shape(shape):
    shape = tuple(shape)
    for size in shape:
        if isinstance(size, bool) or not (isinstance(size, str) and size.isidentifier()
                                          or isinstance(size, int) and size >= 0):
            raise ShapeError(f"a shape holds sizes (ints >= 0) or names of symbolic sizes "
                             f"(identifiers), got {size!r} in {shape}")
    return shape


def size_of(shape, dtype="float64"):
    """The number of elements of ``shape`` as a scalar node (symbolic sizes become DIMs)."""
    result = const(1.0, dtype)
    constant = 1
    for size in shape:
        if isinstance(size, str):
            result = mul(result, dim(size, dtype))
        else:
            constant *= size
    return mul(const(float(constant), dtype), result)


def _like(value, node):
    return const(value, node.dtype if node.dtype != "bool" else "float64", node.shape)


def _is_value(node, value):
    """Whether ``node`` is the float constant ``value``, sign of zero included (``0.0`` and
    ``-0.0`` are different values to the rewrites below)."""
    return (node.op is Op.CONST and node.dtype != "bool" and node.attrs == value
            and math.copysign(1.0, node.attrs) == math.copysign(1.0, value))


# ---------------------------------------------------------------------------------------------
# Elementwise constructors
# ---------------------------------------------------------------------------------------------

def _fold(op, operands, dtype, shape):
    from symgrad.ir.numeric import fold_constant  # (loads numpy on the first fold)
    return const(fold_constant(op, [a.attrs for a in operands], dtype), dtype, shape)


def _elementwise(op, *operands):
    shape = broadcast_shapes(*(a.shape for a in operands), context=f"op {op.value!r}")
    dtype = _float_dtype(operands, op)
    if all(a.op is Op.CONST for a in operands):
        return _fold(op, operands, dtype, shape)
    operands = tuple(_retype_const(a, dtype) for a in operands)
    return make_node(op, operands, None, dtype, shape)


def _retype_const(node, dtype):
    if node.op is Op.CONST and node.dtype != dtype and node.dtype != "bool":
        return const(node.attrs, dtype, node.shape)
    return node


def neg(x):
    # -(a - b) is not b - a: for a == b it is -0.0 where b - a is +0.0.
    if x.op is Op.NEG:
        return x.args[0]
    return _elementwise(Op.NEG, x)


def _merge_selects(combine, a, b):
    """select(c, p, q) (op) select(c, r, s) -> select(c, p (op) r, q (op) s), else None."""
    if a.op is Op.SELECT and b.op is Op.SELECT and a.args[0] is b.args[0]:
        return select(a.args[0], combine(a.args[1], b.args[1]), combine(a.args[2], b.args[2]))
    return None


def add(a, b):
    merged = _merge_selects(add, a, b)
    if merged is not None:
        return merged
    # -0.0 is the identity of IEEE addition; +0.0 is not (-0.0 + 0.0 is +0.0).
    if _is_value(b, -0.0) and not a.is_const:
        return _broadcast_like(a, b)
    if _is_value(a, -0.0) and not b.is_const:
        return _broadcast_like(b, a)
    if b.op is Op.NEG:
        return sub(a, b.args[0])
    if a.op is Op.NEG:
        return sub(b, a.args[0])
    return _elementwise(Op.ADD, a, b)


def sub(a, b):
    merged = _merge_selects(sub, a, b)
    if merged is not None:
        return merged
    # a - 0.0 is a, and -0.0 - b is -b, for every a and b (signed zeros, inf and NaN
    # included); a - (-0.0) and 0.0 - b are not.
    if _is_value(b, 0.0) and not a.is_const:
        return _broadcast_like(a, b)
    if _is_value(a, -0.0) and not b.is_const:
        return _broadcast_like(neg(b), a)
    if b.op is Op.NEG:
        return add(a, b.args[0])
    return _elementwise(Op.SUB, a, b)


def mul(a, b):
    # x * 1 is x and x * -1 is -x exactly.  x * 0 is not 0 (inf * 0 is NaN, -2 * 0 is -0.0),
    # and x * (1/y) is not x / y (two roundings, and 1/y overflows for tiny y): neither is
    # rewritten.  Reverse mode represents "no contribution" by None, not by a product with 0.
    for x, y in ((a, b), (b, a)):
        if y.op is Op.CONST and not x.is_const:
            if y.attrs == 1.0:
                return _broadcast_like(x, y)
            if y.attrs == -1.0:
                return _broadcast_like(neg(x), y)
    if a.op is Op.NEG and b.op is Op.NEG:
        return mul(a.args[0], b.args[0])
    # Constants go first, so that 2*x and x*2 are one node.
    if b.is_const and not a.is_const:
        a, b = b, a
    return _elementwise(Op.MUL, a, b)


def div(a, b):
    if _is_value(a, 1.0) and a.shape == () and b.op is Op.ADD:
        # 1 / (1 + exp(-y)) is the sigmoid: use the form that never overflows.
        for one, other in (b.args, reversed(b.args)):
            if _is_value(one, 1.0) and other.op is Op.EXP:
                return sigmoid(neg(other.args[0]))
    # x / 1 is x; 0 / x is not 0 (0/0 and 0/NaN are NaN, 0/-2 is -0.0).
    if _is_value(b, 1.0) and not a.is_const:
        return _broadcast_like(a, b)
    return _elementwise(Op.DIV, a, b)


def power(base, exponent):
    # numpy computes these exponents the same way (x ** 0.5 is sqrt(x), x ** -1 is 1 / x,
    # x ** 0 is 1 even for NaN), so the rewrites keep numpy's results, signed zeros included;
    # constant bases take them too, so that a folded power is the one computed at run time.
    if exponent.op is Op.CONST:
        if exponent.attrs == 1.0:
            return _broadcast_like(base, exponent)
        if exponent.attrs == 0.0:
            return _broadcast_like(_like(1.0, base), exponent)
        if exponent.attrs == -1.0:
            return div(_like(1.0, base), base)
        if exponent.attrs == 0.5:
            return sqrt(base)
    return _elementwise(Op.POW, base, exponent)


def maximum(a, b):
    if a is b:
        return a
    return _elementwise(Op.MAX, a, b)


def minimum(a, b):
    if a is b:
        return a
    return _elementwise(Op.MIN, a, b)


def _unary(op, absorbed=frozenset()):
    """The constructor of ``op``; ``op(x)`` is ``x`` where x's op is in ``absorbed``."""
    def build(x):
        if x.op in absorbed:
            return x
        return _elementwise(op, x)
    build.__name__ = op.value
    build.__doc__ = f"Elementwise {op.value}."
    return build


exp = _unary(Op.EXP)
_log = _unary(Op.LOG)
_log1p = _unary(Op.LOG1P)


def log(x):
    """Elementwise natural logarithm, with the stable forms of composite logarithms:
    log(sigmoid(z)) = -softplus(-z), log(1 - sigmoid(z)) = -softplus(z),
    log(1 + exp(z)) = softplus(z), log(exp(z)) = z."""
    if x.op is Op.SIGMOID:
        return neg(softplus(neg(x.args[0])))
    if x.op is Op.EXP:
        return x.args[0]
    if x.op is Op.ADD:
        a, b = x.args
        for one, other in ((a, b), (b, a)):
            if _is_value(one, 1.0):
                return log1p(other)
    if x.op is Op.SUB and _is_value(x.args[0], 1.0):
        return log1p(neg(x.args[1]))
    return _log(x)


def log1p(x):
    """Elementwise log(1 + x); log1p(exp(z)) = softplus(z)."""
    if x.op is Op.EXP:
        return softplus(x.args[0])
    if x.op is Op.NEG and x.args[0].op is Op.SIGMOID:
        return neg(softplus(x.args[0].args[0]))
    return _log1p(x)
sqrt = _unary(Op.SQRT)
sin = _unary(Op.SIN)
cos = _unary(Op.COS)
tanh = _unary(Op.TANH)
sign = _unary(Op.SIGN)


def absolute(x):
    # |exp(x)| is exp(x), NaN included; |sqrt(x)| is not sqrt(x) (sqrt(-0.0) is -0.0).
    if x.op in (Op.ABS, Op.EXP):
        return x
    return _elementwise(Op.ABS, x)


def _broadcast_like(x, other):
    """``x`` broadcast to the common shape of ``x`` and ``other``."""
    return broadcast_to(x, broadcast_shapes(x.shape, other.shape))


def stop_gradient(x):
    """``x`` itself, treated as a constant by reverse mode (used for the shift of a stable
    log-sum-exp, whose derivative cancels exactly)."""
    if x.is_const or x.op is Op.STOP_GRADIENT:
        return x
    return _elementwise(Op.STOP_GRADIENT, x)


expm1 = _unary(Op.EXPM1)
sigmoid = _unary(Op.SIGMOID)
softplus = _unary(Op.SOFTPLUS)
log2 = _unary(Op.LOG2)
log10 = _unary(Op.LOG10)
exp2 = _unary(Op.EXP2)
tan = _unary(Op.TAN)
asin = _unary(Op.ASIN)
acos = _unary(Op.ACOS)
atan = _unary(Op.ATAN)
sinh = _unary(Op.SINH)
cosh = _unary(Op.COSH)
asinh = _unary(Op.ASINH)
acosh = _unary(Op.ACOSH)
atanh = _unary(Op.ATANH)
erf = _unary(Op.ERF)
erfc = _unary(Op.ERFC)


# floor, ceil and round of an integer-valued result (another rounding) are that result.
_ROUNDINGS = frozenset({Op.FLOOR, Op.CEIL, Op.ROUND})
floor = _unary(Op.FLOOR, _ROUNDINGS)
ceil = _unary(Op.CEIL, _ROUNDINGS)
round_even = _unary(Op.ROUND, _ROUNDINGS)


def atan2(y, x):
    """Elementwise atan2(y, x), the angle of the point (x, y)."""
    return _elementwise(Op.ATAN2, y, x)


def hypot(x, y):
    """Elementwise sqrt(x**2 + y**2), without overflow or underflow."""
    return _elementwise(Op.HYPOT, x, y)


def floor_divide(a, b):
    """Integers: ``a // b`` rounded toward minus infinity, 0 where ``b`` is 0 (numpy's)."""
    return _elementwise(Op.FLOOR_DIV, a, b)


def remainder(a, b):
    """Integers: ``a % b``, of ``b``'s sign, 0 where ``b`` is 0 (numpy's)."""
    return _elementwise(Op.MOD, a, b)


# ---------------------------------------------------------------------------------------------
# Shapes, reductions, contractions
# ---------------------------------------------------------------------------------------------

def broadcast_to(x, shape):
    """``x`` broadcast to ``shape`` (numpy rules)."""
    shape = _check_shape(shape)
    if broadcast_shapes(x.shape, shape, context="broadcast") != shape:
        raise ShapeError(f"cannot broadcast shape {x.shape} to {shape}")
    if x.shape == shape:
        return x
    if x.op is Op.CONST:
        return const(x.attrs, x.dtype, shape)
    if x.op is Op.BROADCAST:
        x = x.args[0]
    return make_node(Op.BROADCAST, (x,), shape, x.dtype, shape)


def reshape(x, shape):
    """``x`` with a new shape of the same size, in row-major order."""
    shape = _check_shape(shape)
    if x.shape == shape:
        return x
    if _static_size(x.shape) != _static_size(shape) or \
            sorted(d for d in x.shape if isinstance(d, str)) != \
            sorted(d for d in shape if isinstance(d, str)):
        raise ShapeError(f"cannot reshape {x.shape} to {shape}: the sizes differ")
    if x.op is Op.CONST:
        return const(x.attrs, x.dtype, shape)
    if x.op is Op.RESHAPE:
        x = x.args[0]
        if x.shape == shape:
            return x
    return make_node(Op.RESHAPE, (x,), shape, x.dtype, shape)


def _static_size(shape):
    size = 1
    for d in shape:
        if isinstance(d, int):
            size *= d
    return size


def transpose(x, perm=None):
    """``x`` with its axes permuted (reversed by default, as numpy's ``.T``)."""
    rank = len(x.shape)
    perm = tuple(reversed(range(rank))) if perm is None else tuple(perm)
    if sorted(perm) != list(range(rank)):
        raise ShapeError(f"transpose of a rank-{rank} tensor needs a permutation of "
                         f"{list(range(rank))}, got {list(perm)}")
    if perm == tuple(range(rank)):
        return x
    shape = tuple(x.shape[axis] for axis in perm)
    if x.op is Op.CONST:
        return const(x.attrs, x.dtype, shape)
    if x.op is Op.TRANSPOSE:
        inner = x.attrs
        return transpose(x.args[0], tuple(inner[axis] for axis in perm))
    if x.op is Op.MATMUL:
        # (A B)^T = B^T A^T: transposes are free views, and the product reads as the rule.
        return matmul(transpose(x.args[1]), transpose(x.args[0]))
    return make_node(Op.TRANSPOSE, (x,), perm, x.dtype, shape)


def normalize_axes(axes, rank, op_name):
    if axes is None:
        return tuple(range(rank))
    if isinstance(axes, int):
        axes = (axes,)
    normalized = []
    for axis in axes:
        if not -rank <= axis < rank:
            raise ShapeError(f"{op_name}: axis {axis} is out of range for a rank-{rank} tensor")
        normalized.append(axis % rank)
    return tuple(sorted(set(normalized)))


def _reduce(op, x, axes, keepdims):
    if x.dtype == "bool":
        raise TypeError(f"{op.value} takes numbers, got booleans")
    axes = normalize_axes(axes, len(x.shape), op.value)
    kept = tuple(1 if axis in axes else size for axis, size in enumerate(x.shape))
    reduced_away = tuple(size for axis, size in enumerate(x.shape) if axis not in axes)
    if not axes:
        return x
    if x.op is Op.CONST and op in (Op.AMAX, Op.AMIN):
        result = const(x.attrs, x.dtype, kept)
    elif all(x.shape[axis] == 1 for axis in axes):
        result = reshape(x, kept)
    else:
        result = make_node(op, (x,), axes, x.dtype, kept)
    return result if keepdims else reshape(result, reduced_away)


def reduce_min(x, axes=None, keepdims=False):
    """Minimum over ``axes`` (all by default); NaN propagates."""
    return _reduce(Op.AMIN, x, axes, keepdims)


def reduce_prod(x, axes=None, keepdims=False):
    """Product over ``axes`` (all by default)."""
    return _reduce(Op.PROD, x, axes, keepdims)


def reduce_sum(x, axes=None, keepdims=False):
    """Sum over ``axes`` (all by default)."""
    return _reduce(Op.SUM, x, axes, keepdims)


def reduce_max(x, axes=None, keepdims=False):
    """Maximum over ``axes`` (all by default); NaN propagates."""
    return _reduce(Op.AMAX, x, axes, keepdims)


def slice_axes(x, spec):
    """The elements ``start + step * j`` (``j`` below ``count``) along each axis: ``spec``
    holds one ``(start, step, count)`` per axis, checked against the shape (``step`` may be
    negative).  A symbolic axis can only be taken whole: ``(0, 1, size)``."""
    spec = tuple(spec)
    if len(spec) != len(x.shape):
        raise ShapeError(f"slice of a rank-{len(x.shape)} tensor needs one (start, step, "
                         f"count) per axis, got {len(spec)}")
    for axis, ((start, step, count), size) in enumerate(zip(spec, x.shape)):
        if isinstance(size, str):
            if (start, step, count) != (0, 1, size):
                raise ShapeError(f"axis {axis} has the symbolic size {size!r}: it can only be "
                                 f"taken whole (':'), not sliced or indexed")
            continue
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (start, step, count)):
            raise ShapeError(f"slice: axis {axis} needs integer start, step and count, got "
                             f"{(start, step, count)}")
        if step == 0 or count < 0 or (count > 0 and not (
                0 <= start < size and 0 <= start + step * (count - 1) < size)):
            raise ShapeError(f"slice: {(start, step, count)} (start, step, count) reads outside "
                             f"axis {axis} of size {size}")
    shape = tuple(count for _, _, count in spec)
    if all(s == (0, 1, size) for s, size in zip(spec, x.shape)):
        return x
    if x.op is Op.CONST:
        return const(x.attrs, x.dtype, shape)
    if any(count == 0 for count in shape):
        return const(0.0, x.dtype if x.dtype != "bool" else "bool", shape)
    if x.op is Op.PAD or (x.op is Op.ADD and _is_join(x)):
        picked = _slice_of_join(x, spec)
        if picked is not None:
            return picked
    if x.op is Op.GATHER:
        # A slice of a gather that takes the gathered axes whole is the gather of a slice:
        # it reads in place, where the slice of the gather's result would need it stored.
        values, idx = x.args
        axis, rank = x.attrs, len(idx.shape)
        gathered = spec[axis:axis + rank]
        if all(s == (0, 1, size) for s, size in zip(gathered, idx.shape)):
            inner = spec[:axis] + ((0, 1, values.shape[axis]),) + spec[axis + rank:]
            return take(slice_axes(values, inner), idx, axis)
    attrs = tuple((start, step) for start, step, _ in spec)
    if x.op is Op.SLICE:
        attrs = tuple((outer_start + outer_step * start, outer_step * step)
                      for (outer_start, outer_step), (start, step) in zip(x.attrs, attrs))
        x = x.args[0]
    # (An axis of one element takes step 1: the same elements, one node.)
    attrs = tuple((start, 1 if count == 1 else step) for (start, step), count
                  in zip(attrs, shape))
    return make_node(Op.SLICE, (x,), attrs, x.dtype, shape)


def _is_join(node, depth=0):
    """Whether ``node`` is a join: a pad, or a sum of joins of its shape (a concatenation is
    the sum of its pieces padded with -0.0).  Bounded depth: a balanced tree of pads."""
    if node.op is Op.PAD:
        return True
    if node.op is not Op.ADD or depth > 64:
        return False
    return all(arg.shape == node.shape and _is_join(arg, depth + 1) for arg in node.args)


def _slice_of_pad(x, spec):
    """The slice ``spec`` of pad ``x`` as a slice of its operand (every element taken is one
    of the operand's), or as its fill (along some axis, none is), else None."""
    (widths, fill), operand = x.attrs, x.args[0]
    inner = []
    for (start, step, count), (low, interior), size in zip(spec, widths, operand.shape):
        if isinstance(size, str):
            inner.append((start, step, count))
            continue
        period = interior + 1
        positions = [start + step * i for i in range(count)]
        data = [(p - low) % period == 0 and 0 <= (p - low) // period < size
                for p in positions]
        if not any(data):
            return const(fill, x.dtype, tuple(c for _, _, c in spec))
        if not all(data):
            return None
        first = (positions[0] - low) // period
        inner.append((first, step // period if count > 1 else 1, count))
    return slice_axes(operand, inner)


def _slice_of_join(x, spec):
    """A slice of a join taken from its pieces: a slice of one piece where it reads only that
    one, the pieces' slices summed otherwise; None where a pad's slice mixes its operand
    and its fill."""
    if x.op is Op.PAD:
        return _slice_of_pad(x, spec)
    parts = [_slice_of_join(arg, spec) for arg in x.args]
    if any(part is None for part in parts):
        return None
    return add(*parts)


def pad(x, widths, fill=0.0):
    """``x`` spread over a larger shape, ``fill`` elsewhere: ``widths`` holds one ``(low,
    high, interior)`` per axis, the number of fill elements before the first element, after
    the last and between two (as ``jax.lax.pad``, all at least 0).  A symbolic axis takes
    ``(0, 0, 0)``."""
    widths = tuple(tuple(w) for w in widths)
    if len(widths) != len(x.shape):
        raise ShapeError(f"pad of a rank-{len(x.shape)} tensor needs one (low, high, "
                         f"interior) per axis, got {len(widths)}")
    shape = []
    for axis, ((low, high, interior), size) in enumerate(zip(widths, x.shape)):
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0
                   for v in (low, high, interior)):
            raise ShapeError(f"pad: axis {axis} needs widths (low, high, interior) that are "
                             f"integers >= 0, got {(low, high, interior)}")
        if isinstance(size, str):
            if (low, high, interior) != (0, 0, 0):
                raise ShapeError(f"axis {axis} has the symbolic size {size!r}: it cannot be "
                                 f"padded")
            shape.append(size)
            continue
        shape.append(low + high + size + max(size - 1, 0) * interior)
    shape = tuple(shape)
    if shape == x.shape:
        return x
    fill = float(fill)
    if x.op is Op.CONST and (x.attrs == fill and math.copysign(1, x.attrs) ==
                             math.copysign(1, fill) or math.isnan(x.attrs) and math.isnan(fill)):
        return const(fill, x.dtype, shape)
    if any(size == 0 for size in x.shape):
        return const(fill, x.dtype, shape)
    attrs = (tuple((low, interior) for low, _, interior in widths), fill)
    return make_node(Op.PAD, (x,), attrs, x.dtype, shape)


def _check_index(idx, op_name):
    if idx.dtype not in INDEX_DTYPES:
        raise TypeError(f"{op_name}: the indices must be an integer tensor (int64), got "
                        f"{type_string(idx)}")


def take(x, idx, axis=0):
    """The elements of ``x`` at the integer indices ``idx`` along ``axis`` (``numpy.take``):
    shape ``x.shape[:axis] + idx.shape + x.shape[axis + 1:]``.  Indices from ``-size`` to
    ``size - 1`` select as in numpy; the kernels refuse others when called."""
    _check_index(idx, "take")
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(f"take: the values must be a float tensor, got {type_string(x)}")
    (axis,) = normalize_axes(axis, len(x.shape), "take")
    shape = x.shape[:axis] + idx.shape + x.shape[axis + 1:]
    return make_node(Op.GATHER, (x, idx), axis, x.dtype, shape)


def scatter_add(values, idx, axis, size):
    """Zeros with ``values``' axes ``axis .. axis + idx.ndim - 1`` replaced by one axis of
    ``size``, and each element of ``values`` added at its index (duplicates summed): the
    transpose of :func:`take`."""
    _check_index(idx, "scatter_add")
    if values.dtype not in FLOAT_DTYPES:
        raise TypeError(f"scatter_add: the values must be a float tensor, got "
                        f"{type_string(values)}")
    rank = len(idx.shape)
    if values.shape[axis:axis + rank] != idx.shape:
        raise ShapeError(f"scatter_add: values of shape {values.shape} do not hold the indices' "
                         f"shape {idx.shape} at axis {axis}")
    if not (isinstance(size, str) or (isinstance(size, int) and size >= 0)):
        raise ShapeError(f"scatter_add: size must be an integer >= 0 or a symbolic size, got "
                         f"{size!r}")
    shape = values.shape[:axis] + (size,) + values.shape[axis + rank:]
    return make_node(Op.SCATTER_ADD, (values, idx), (axis, size), values.dtype, shape)


def take_along(x, idx, axis):
    """``numpy.take_along_axis(x, idx, axis)``: ``idx`` (integers, of ``x``'s rank) picks,
    at each of its positions, the element along ``axis`` (the other axes of size 1 in either
    broadcast)."""
    _check_index(idx, "take_along_axis")
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(f"take_along_axis: the values must be a float tensor, got "
                        f"{type_string(x)}")
    if len(idx.shape) != len(x.shape):
        raise ShapeError(f"take_along_axis: the indices need the values' rank {len(x.shape)}, "
                         f"got shape {idx.shape}")
    (axis,) = normalize_axes(axis, len(x.shape), "take_along_axis")
    others = broadcast_shapes(tuple(d for a, d in enumerate(x.shape) if a != axis),
                              tuple(d for a, d in enumerate(idx.shape) if a != axis),
                              context="take_along_axis")
    shape = others[:axis] + (idx.shape[axis],) + others[axis:]
    x = broadcast_to(x, shape[:axis] + (x.shape[axis],) + shape[axis + 1:])
    idx = broadcast_to(idx, shape)
    return make_node(Op.TAKE_ALONG, (x, idx), axis, x.dtype, shape)


def put_add_along(values, idx, axis, size):
    """The transpose of :func:`take_along`: zeros with ``size`` along ``axis`` (else
    ``values``' shape), each element of ``values`` added at its index along the axis."""
    _check_index(idx, "put_add_along")
    if idx.shape != values.shape:
        raise ShapeError(f"put_add_along: indices of shape {idx.shape} for values of shape "
                         f"{values.shape}")
    shape = values.shape[:axis] + (size,) + values.shape[axis + 1:]
    return make_node(Op.PUT_ADD_ALONG, (values, idx), (axis, size), values.dtype, shape)


def linear_recurrence(a, b, axis):
    """``h`` with ``h[0] = b[0]`` and ``h[t] = a[t] h[t-1] + b[t]`` along ``axis`` (of known
    size), elementwise over the other axes; ``a`` and ``b`` broadcast together."""
    dtype = _float_dtype((a, b), Op.LINREC)
    shape = broadcast_shapes(a.shape, b.shape, context="linear_recurrence")
    (axis,) = normalize_axes(axis, len(shape), "linear_recurrence")
    if isinstance(shape[axis], str):
        raise ShapeError(f"linear_recurrence: axis {axis} has the symbolic size "
                         f"{shape[axis]!r}; a recurrence runs along an axis of known size")
    a = broadcast_to(_retype_const(a, dtype), shape)
    b = broadcast_to(_retype_const(b, dtype), shape)
    if shape[axis] <= 1:
        return b
    return make_node(Op.LINREC, (a, b), axis, dtype, shape)


def matmul(a, b):
    """The matrix product of two rank-2 tensors."""
    if len(a.shape) != 2 or len(b.shape) != 2:
        raise ShapeError(f"matmul takes two matrices, got shapes {a.shape} and {b.shape}")
    if a.shape[1] != b.shape[0]:
        raise ShapeError(f"matmul: shapes {a.shape} and {b.shape} do not fit "
                         f"({a.shape[1]} != {b.shape[0]})")
    dtype = _float_dtype((a, b), Op.MATMUL)
    shape = (a.shape[0], b.shape[1])
    # A uniform constant matrix c times B is the column sums of c B on every row (and
    # symmetrically): the gradient of sum(A @ B) needs no matrix of ones.  The sums are of
    # the products c B[k, j] the matrix product forms, so inf and NaN in B (and c = 0) give
    # what the product gives; only the order of the summation is the reduction's.
    if a.op is Op.CONST:
        scaled = mul(const(a.attrs, dtype), _retype_const(b, dtype))
        return broadcast_to(reduce_sum(scaled, 0, keepdims=True), shape)
    if b.op is Op.CONST:
        scaled = mul(_retype_const(a, dtype), const(b.attrs, dtype))
        return broadcast_to(reduce_sum(scaled, 1, keepdims=True), shape)
    return make_node(Op.MATMUL, (_retype_const(a, dtype), _retype_const(b, dtype)), None,
                     dtype, shape)


def unbroadcast(value, shape):
    """Sum ``value`` over the axes that broadcasting added to ``shape``: the adjoint of
    broadcasting ``shape`` to ``value.shape``."""
    if value.shape == shape:
        return value
    value = broadcast_to(value, broadcast_shapes(value.shape, shape, context="unbroadcast"))
    extra = len(value.shape) - len(shape)
    axes = list(range(extra))
    for axis, size in enumerate(shape):
        if size == 1 and value.shape[extra + axis] != 1:
            axes.append(extra + axis)
    summed = reduce_sum(value, axes, keepdims=True) if axes else value
    return reshape(summed, shape)


# ---------------------------------------------------------------------------------------------
# Comparisons, logic, selection
# ---------------------------------------------------------------------------------------------

def compare(op, a, b):
    """A comparison ``a <op> b`` (op one of LT, LE, GT, GE, EQ, NE): a boolean node."""
    if op not in COMPARISONS:
        raise ValueError(f"{op!r} is not a comparison")
    shape = broadcast_shapes(a.shape, b.shape, context=f"comparison {op.value!r}")
    dtype = _float_dtype((a, b), op)
    if a.is_const and b.is_const:
        return const(_fold(op, (a, b), dtype, shape).attrs, "bool", shape)
    a, b = _retype_const(a, dtype), _retype_const(b, dtype)
    return make_node(op, (a, b), None, "bool", shape)


def _check_bool(*nodes):
    for node in nodes:
        if node.dtype != "bool":
            raise TypeError(f"logical operations take booleans, got {type_string(node)}")


def logical_not(x):
    _check_bool(x)
    if x.is_const:
        return const(not x.attrs, "bool", x.shape)
    if x.op is Op.NOT:
        return x.args[0]
    return make_node(Op.NOT, (x,), None, "bool", x.shape)


def logical_and(a, b):
    _check_bool(a, b)
    shape = broadcast_shapes(a.shape, b.shape, context="op 'and'")
    for x, y in ((a, b), (b, a)):
        if x.is_const:
            return _broadcast_like_bool(y, shape) if x.attrs else const(False, "bool", shape)
    if a is b:
        return a
    return make_node(Op.AND, (a, b), None, "bool", shape)


def logical_or(a, b):
    _check_bool(a, b)
    shape = broadcast_shapes(a.shape, b.shape, context="op 'or'")
    for x, y in ((a, b), (b, a)):
        if x.is_const:
            return const(True, "bool", shape) if x.attrs else _broadcast_like_bool(y, shape)
    if a is b:
        return a
    return make_node(Op.OR, (a, b), None, "bool", shape)


def _broadcast_like_bool(x, shape):
    if x.shape == shape:
        return x
    return logical_and(x, const(True, "bool", shape)) if not x.is_const else \
        const(bool(x.attrs), "bool", shape)


def select(cond, if_true, if_false):
    """``if_true`` where ``cond`` holds, ``if_false`` elsewhere (both are computed; the value
    of the side not taken never reaches the result, not even as NaN)."""
    _check_bool(cond)
    shape = broadcast_shapes(cond.shape, if_true.shape, if_false.shape, context="op 'select'")
    dtype = _float_dtype((if_true, if_false), Op.SELECT)
    if cond.is_const:
        chosen = if_true if cond.attrs else if_false
        return _broadcast_like(_retype_const(chosen, dtype), const(0.0, dtype, shape))
    if cond.op is Op.NOT:
        return select(cond.args[0], if_false, if_true)
    # A branch that selects on the same condition again only ever takes one of its sides.
    if if_true.op is Op.SELECT and if_true.args[0] is cond:
        return select(cond, if_true.args[1], if_false)
    if if_false.op is Op.SELECT and if_false.args[0] is cond:
        return select(cond, if_true, if_false.args[2])
    if_true, if_false = _retype_const(if_true, dtype), _retype_const(if_false, dtype)
    if if_true is if_false and if_true.shape == shape:
        return if_true
    return make_node(Op.SELECT, (cond, if_true, if_false), None, dtype, shape)


def balanced(combine, items):
    """``combine`` (an associative constructor: ``add``, ``maximum``, ``logical_and``...) over
    ``items`` as a balanced tree: depth log2(n) rather than n, and, for sums, a smaller
    rounding error than a chain."""
    items = list(items)
    while len(items) > 1:
        paired = [combine(items[i], items[i + 1]) for i in range(0, len(items) - 1, 2)]
        if len(items) % 2:
            paired.append(items[-1])
        items = paired
    return items[0]


# Constructors by op, for code that rebuilds nodes generically.
BUILDERS = {
    Op.NEG: neg, Op.ADD: add, Op.SUB: sub, Op.MUL: mul, Op.DIV: div, Op.POW: power,
    Op.MAX: maximum, Op.MIN: minimum, Op.EXP: exp, Op.LOG: log, Op.SQRT: sqrt, Op.SIN: sin,
    Op.COS: cos, Op.TANH: tanh, Op.ABS: absolute, Op.SIGN: sign, Op.EXPM1: expm1,
    Op.LOG1P: log1p, Op.SIGMOID: sigmoid, Op.SOFTPLUS: softplus, Op.MATMUL: matmul,
    Op.STOP_GRADIENT: stop_gradient,
    Op.LOG2: log2, Op.LOG10: log10, Op.EXP2: exp2, Op.TAN: tan, Op.ASIN: asin, Op.ACOS: acos,
    Op.ATAN: atan, Op.SINH: sinh, Op.COSH: cosh, Op.ASINH: asinh, Op.ACOSH: acosh,
    Op.ATANH: atanh, Op.ERF: erf, Op.ERFC: erfc, Op.FLOOR: floor, Op.CEIL: ceil,
    Op.ROUND: round_even, Op.ATAN2: atan2, Op.HYPOT: hypot, Op.FLOOR_DIV: floor_divide,
    Op.MOD: remainder,
    Op.AND: logical_and, Op.OR: logical_or, Op.NOT: logical_not, Op.SELECT: select,
    **{op: (lambda a, b, op=op: compare(op, a, b)) for op in COMPARISONS},
}
