"""Symbolic tensors: the user-facing handle on tensor-valued IR nodes.

A :class:`Tensor` wraps one IR node and gives it numpy's operators (``+ - * / ** @``, ``.T``,
``.sum``, ``.mean``...).  Shape errors are raised when the expression is built, naming both
shapes.  Any scalar SymPy function applies elementwise with :func:`elementwise`.

>>> X = tensor("X", ("n", 2))
>>> W = tensor("W", (3, 2))
>>> (X @ W.T).shape
('n', 3)
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable

import numpy as np
import sympy

from symgrad import ir
from symgrad.frontend.sympy_to_ir import to_ir
from symgrad.ir.contraction import general_matmul
from symgrad.ir.ops import Op


class Tensor:
    """A symbolic tensor: a node of symgrad's IR with numpy-like operators.

    Build one with :func:`tensor` (an argument) or from other tensors.
    """

    __slots__ = ("node", "labels")
    node: ir.Node
    labels: tuple
    __array_priority__ = 1000     # numpy arrays on the left defer to our operators

    def __init__(self, node, labels=()):
        if not isinstance(node, ir.Node):
            raise TypeError(f"Tensor wraps an IR node, got {type(node).__name__}")
        object.__setattr__(self, "node", node)
        # Display names of the values this tensor was computed from (see label): a tuple of
        # (node, name, cotangent name or None), carried from operands to results.
        object.__setattr__(self, "labels", labels)

    def __setattr__(self, name, value):
        raise AttributeError("tensors are immutable")

    @property
    def shape(self) -> tuple[int | str, ...]:
        return self.node.shape

    @property
    def dtype(self) -> str:
        return self.node.dtype

    @property
    def ndim(self) -> int:
        return len(self.node.shape)

    @property
    def name(self) -> str | None:
        """The argument name of an input tensor (None for computed tensors)."""
        attrs = self.node.attrs
        return attrs if self.node.op is Op.INPUT and isinstance(attrs, str) else None

    def __repr__(self):
        shape = ", ".join(str(d) for d in self.shape)
        if self.name is not None:
            return f"tensor({self.name!r}, ({shape}{',' if self.ndim == 1 else ''}), {self.dtype})"
        return f"<Tensor {self.node.op.value} ({shape}) {self.dtype}>"

    def __hash__(self):
        return hash(self.node)

    def __eq__(self, other):
        # Structural equality, as SymPy's ==: nodes are interned, so equal structure is the
        # same node.  (Elementwise comparisons are <, <=, >, >=.)
        return isinstance(other, Tensor) and self.node is other.node

    def __bool__(self):
        raise TypeError("a symbolic tensor has no truth value")

    # ---- arithmetic -------------------------------------------------------------------------

    def __add__(self, other):
        return _derived(ir.add(self.node, _node(other, self)), self, other)

    def __radd__(self, other):
        return _derived(ir.add(_node(other, self), self.node), self, other)

    def __sub__(self, other):
        return _derived(ir.sub(self.node, _node(other, self)), self, other)

    def __rsub__(self, other):
        return _derived(ir.sub(_node(other, self), self.node), self, other)

    def __mul__(self, other):
        return _derived(ir.mul(self.node, _node(other, self)), self, other)

    def __rmul__(self, other):
        return _derived(ir.mul(_node(other, self), self.node), self, other)

    def __truediv__(self, other):
        return _derived(ir.div(self.node, _node(other, self)), self, other)

    def __rtruediv__(self, other):
        return _derived(ir.div(_node(other, self), self.node), self, other)

    def __floordiv__(self, other):
        return _derived(ir.floor_divide(self.node, _node(other, self)), self, other)

    def __rfloordiv__(self, other):
        return _derived(ir.floor_divide(_node(other, self), self.node), self, other)

    def __mod__(self, other):
        return _derived(ir.remainder(self.node, _node(other, self)), self, other)

    def __rmod__(self, other):
        return _derived(ir.remainder(_node(other, self), self.node), self, other)

    def __pow__(self, other):
        return _derived(ir.power(self.node, _node(other, self)), self, other)

    def __rpow__(self, other):
        return _derived(ir.power(_node(other, self), self.node), self, other)

    def __neg__(self):
        return _derived(ir.neg(self.node), self)

    def __pos__(self):
        return self

    def __abs__(self):
        return _derived(ir.absolute(self.node), self)

    def __matmul__(self, other):
        return matmul(self, other)

    def __rmatmul__(self, other):
        return matmul(other, self)

    def __and__(self, other):
        return _derived(ir.logical_and(self.node, _node(other, self)), self, other)

    __rand__ = __and__

    def __or__(self, other):
        return _derived(ir.logical_or(self.node, _node(other, self)), self, other)

    __ror__ = __or__

    def __invert__(self):
        return _derived(ir.logical_not(self.node), self)

    def __lt__(self, other):
        return _derived(ir.compare(Op.LT, self.node, _node(other, self)), self, other)

    def __le__(self, other):
        return _derived(ir.compare(Op.LE, self.node, _node(other, self)), self, other)

    def __gt__(self, other):
        return _derived(ir.compare(Op.GT, self.node, _node(other, self)), self, other)

    def __ge__(self, other):
        return _derived(ir.compare(Op.GE, self.node, _node(other, self)), self, other)

    # ---- shapes and reductions ---------------------------------------------------------------

    @property
    def T(self):
        """The transpose (axes reversed)."""
        return _derived(ir.transpose(self.node), self)

    def transpose(self, *perm: int) -> Tensor:
        return _derived(ir.transpose(self.node, perm or None), self)

    def reshape(self, *shape: int | str | tuple) -> Tensor:
        if len(shape) == 1 and isinstance(shape[0], tuple):
            shape = shape[0]
        return _derived(ir.reshape(self.node, shape), self)

    def broadcast_to(self, shape: tuple[int | str, ...]) -> Tensor:
        return _derived(ir.broadcast_to(self.node, shape), self)

    def sum(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
        return _derived(ir.reduce_sum(self.node, axis, keepdims), self)

    def mean(self, axis: int | tuple[int, ...] | None = None,
             keepdims: bool = False) -> Tensor:
        summed = ir.reduce_sum(self.node, axis, keepdims)
        axes = ir.normalize_axes(axis, self.ndim, "mean")
        count = ir.size_of([self.shape[a] for a in axes], self.dtype)
        return _derived(ir.div(summed, count), self)

    def max(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
        return _derived(ir.reduce_max(self.node, axis, keepdims), self)

    def min(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
        return _derived(ir.reduce_min(self.node, axis, keepdims), self)

    def prod(self, axis: int | tuple[int, ...] | None = None,
             keepdims: bool = False) -> Tensor:
        """The product over ``axis``; its gradient is exact where elements are zero (no
        division by the element)."""
        return _derived(ir.reduce_prod(self.node, axis, keepdims), self)

    def var(self, axis: int | tuple[int, ...] | None = None, ddof: int = 0,
            keepdims: bool = False) -> Tensor:
        """The variance over ``axis``: the mean squared deviation from the mean, divided by
        ``count - ddof`` instead of ``count`` (numpy's ``ddof``)."""
        if isinstance(ddof, bool) or not isinstance(ddof, numbers.Integral) or ddof < 0:
            raise TypeError(f"var: ddof must be an integer >= 0, got {ddof!r}")
        axes = ir.normalize_axes(axis, self.ndim, "var")
        count = ir.size_of([self.shape[a] for a in axes], self.dtype)
        deviation = ir.sub(self.node, ir.div(ir.reduce_sum(self.node, axes, True), count))
        squares = ir.reduce_sum(ir.mul(deviation, deviation), axes, keepdims)
        if ddof:
            count = ir.sub(count, ir.const(float(ddof), self.dtype))
        return _derived(ir.div(squares, count), self)

    def std(self, axis: int | tuple[int, ...] | None = None, ddof: int = 0,
            keepdims: bool = False) -> Tensor:
        """The standard deviation over ``axis``: the square root of :meth:`var`."""
        return _derived(ir.sqrt(self.var(axis, ddof, keepdims).node), self)

    def squeeze(self, axis: int | tuple[int, ...] | None = None) -> Tensor:
        return squeeze(self, axis)

    def cumsum(self, axis: int | None = None) -> Tensor:
        return cumsum(self, axis)

    def astype(self, dtype: str) -> Tensor:
        """The tensor in ``dtype``: an integer tensor as floats (``'float64'`` or
        ``'float32'``), or floats as ``'int64'`` (toward zero, saturating, NaN as 0, as JAX
        converts); no gradient flows through the conversion."""
        if dtype not in ir.DTYPES or dtype == "bool":
            raise ValueError(f"astype: dtype must be one of {ir.FLOAT_DTYPES + ir.INDEX_DTYPES},"
                             f" got {dtype!r}")
        return _derived(ir.cast(self.node, dtype), self)

    def argmax(self, axis: int | None = None, keepdims: bool = False) -> Tensor:
        return argmax(self, axis, keepdims)

    def argmin(self, axis: int | None = None, keepdims: bool = False) -> Tensor:
        return argmin(self, axis, keepdims)

    def cumprod(self, axis: int | None = None) -> Tensor:
        return cumprod(self, axis)

    def flatten(self) -> Tensor:
        """The elements in one axis, in row-major order."""
        return _flatten(self, "flatten")

    def __getitem__(self, key) -> Tensor:
        """numpy's indexing: integers, slices (any step), ``...``, ``None`` and one integer
        index tensor (a gather, :func:`getitem`)."""
        return getitem(self, key)

    @property
    def at(self) -> _IndexUpdates:
        """Functional updates, as JAX has them: ``x.at[idx].add(v)`` is ``x`` with ``v``
        added at ``x[idx]`` (duplicate indices add up), ``x.at[idx].set(v)`` with ``x[idx]``
        replaced by ``v``, ``x.at[idx].get()`` is ``x[idx]``; ``x`` itself is unchanged."""
        return _IndexUpdates(self)

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of a 0-d tensor")
        if isinstance(self.shape[0], str):
            raise TypeError(f"len() of a tensor whose first axis has the symbolic size "
                            f"{self.shape[0]!r}")
        return self.shape[0]

    def __iter__(self):
        for index in range(len(self)):
            yield self[index]


# ---- indexing ------------------------------------------------------------------------------

def _integer(value, argument, function):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{function}: {argument} must be an integer, got {value!r}")
    return int(value)


def _axis(axis, rank, function, argument="axis"):
    axis = _integer(axis, argument, function)
    if not -rank <= axis < rank:
        raise ir.ShapeError(f"{function}: {argument} {axis} is out of range for a rank-{rank} "
                            f"tensor")
    return axis % rank


def _gather_item(x, key):
    """``x[key]`` where ``key`` holds one integer index tensor: basic indexing with a ``:`` in
    its place, then the gather along the axis that ``:`` left (numpy puts the index's axes
    there)."""
    positions = [i for i, item in enumerate(key) if isinstance(item, Tensor)]
    if len(positions) > 1:
        raise TypeError("one index tensor per index is supported (x[idx], x[:, idx]); "
                        "index one axis at a time (x[i][:, j]) or flatten")
    (position,) = positions
    idx = key[position]
    if idx.dtype not in ir.INDEX_DTYPES:
        raise TypeError(f"an index tensor must hold integers (dtype 'int64'), got a "
                        f"{idx.dtype} tensor; for a mask of booleans use sg.where")
    used = sum(item is not None and item is not Ellipsis for item in key)
    axis = 0
    for item in key[:position]:
        if item is Ellipsis:
            axis += x.ndim - used
        elif item is None or isinstance(item, slice):
            axis += 1
    basic = getitem(x, key[:position] + (slice(None),) + key[position + 1:])
    return _derived(ir.take(basic.node, idx.node, axis), basic, idx)


def getitem(x: Tensor, key) -> Tensor:
    """``x[key]`` with numpy's indexing: integers (negative count from the end), slices with
    any step, ``...``, ``None`` and one integer index tensor (declared with
    ``dtype="int64"``; a gather, see :func:`take`).  An axis of symbolic size can only be
    taken whole (``:``) or gathered from."""
    if not isinstance(key, tuple):
        key = (key,)
    if any(isinstance(item, Tensor) for item in key):
        return _gather_item(x, key)
    for item in key:
        if isinstance(item, (list, tuple)) or hasattr(item, "__array__"):
            raise TypeError(f"indexing by an array or a list ({type(item).__name__}) is not "
                            f"supported: declare an integer tensor for the indices "
                            f"(sg.tensor(name, shape, dtype='int64')), index with it and pass "
                            f"the array when calling the kernel")
        if not (item is None or item is Ellipsis or isinstance(item, slice) or (
                isinstance(item, numbers.Integral) and not isinstance(item, bool))):
            raise TypeError(f"a tensor index must be an integer, a slice, ... or None, got "
                            f"{item!r}")
    if sum(item is Ellipsis for item in key) > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    used = sum(item is not None and item is not Ellipsis for item in key)
    if used > x.ndim:
        raise IndexError(f"too many indices for a rank-{x.ndim} tensor: {used} were indexed")
    if Ellipsis in key:
        at = key.index(Ellipsis)
        key = key[:at] + (slice(None),) * (x.ndim - used) + key[at + 1:]
    else:
        key = key + (slice(None),) * (x.ndim - used)
    spec: list[tuple[int, int, int | str]] = []
    shape: list[int | str] = []
    axis = 0
    for item in key:
        if item is None:
            shape.append(1)
            continue
        size = x.shape[axis]
        if isinstance(item, slice):
            if isinstance(size, str):
                if item.step not in (None, 1) or item.start not in (None, 0) or \
                        item.stop is not None:
                    raise ir.ShapeError(
                        f"axis {axis} has the symbolic size {size!r}: it can only be taken "
                        f"whole (':'), got {_slice_text(item)}")
                spec.append((0, 1, size))
                shape.append(size)
            else:
                start, stop, step = item.indices(size)
                count = len(range(start, stop, step))
                spec.append((start if count else 0, step, count))
                shape.append(count)
        else:
            index = int(item)
            if isinstance(size, str):
                raise ir.ShapeError(f"axis {axis} has the symbolic size {size!r}: it cannot be "
                                    f"indexed by an integer")
            if not -size <= index < size:
                raise IndexError(f"index {index} is out of bounds for axis {axis} with size "
                                 f"{size}")
            spec.append((index % size, 1, 1))
        axis += 1
    node = ir.slice_axes(x.node, spec)
    return _derived(ir.reshape(node, tuple(shape)), x)


def _slice_text(item):
    parts = ["" if v is None else str(v) for v in (item.start, item.stop, item.step)]
    return ":".join(parts[:2] if item.step is None else parts)


def _flatten(x, function):
    if any(isinstance(d, str) for d in x.shape):
        raise ir.ShapeError(f"{function} without an axis flattens the tensor, whose shape "
                            f"{x.shape} has symbolic sizes: give the axis")
    return _derived(ir.reshape(x.node, (math.prod(x.shape),)), x)


def squeeze(x: Tensor, axis=None) -> Tensor:
    """``x`` without its axes of size 1 (those of ``axis``, which must have size 1)."""
    if not isinstance(x, Tensor):
        raise TypeError(f"squeeze: x must be a symgrad Tensor, got {type(x).__name__}")
    if axis is None:
        axes = {a for a, d in enumerate(x.shape) if d == 1}
    else:
        axes = {_axis(a, x.ndim, "squeeze") for a in (
            axis if isinstance(axis, (tuple, list)) else [axis])}
        for a in axes:
            if x.shape[a] != 1:
                raise ValueError(f"squeeze: axis {a} has size {x.shape[a]}, not 1")
    return _derived(ir.reshape(x.node, tuple(d for a, d in enumerate(x.shape)
                                            if a not in axes)), x)


def _node(value, like):
    """An IR node for a tensor or a Python/numpy number (in ``like``'s dtype)."""
    if isinstance(value, Tensor):
        return value.node
    if isinstance(value, (bool, np.bool_)):
        raise TypeError("booleans are not numbers here; use 0.0 or 1.0")
    if isinstance(value, numbers.Real):
        return ir.const(float(value), like.dtype if like.dtype != "bool" else "float64")
    if isinstance(value, sympy.Basic) and value.is_number and value.is_real:
        return ir.const(float(value), like.dtype)
    if isinstance(value, np.ndarray):
        raise TypeError("constant arrays are not part of a symbolic expression: declare a "
                        "tensor input for them (symgrad.tensor) and pass the array at call time")
    raise TypeError(f"cannot combine a tensor with {type(value).__name__}")


def take(x: Tensor, indices: Tensor, axis: int | None = None) -> Tensor:
    """The elements of ``x`` at ``indices`` (an integer tensor) along ``axis``, as
    ``numpy.take`` (``axis=None``: of the flattened ``x``).

    Indices run from ``-size`` to ``size - 1``; a kernel called with others raises an
    IndexError naming the argument.  Reverse mode adds each index's cotangent back at its
    index, duplicates summed.

    Examples
    --------
    >>> points = tensor("points", ("p", 3)); which = tensor("which", ("n",), dtype="int64")
    >>> take(points, which, axis=0).shape
    ('n', 3)
    """
    if not isinstance(x, Tensor) or not isinstance(indices, Tensor):
        raise TypeError(f"take needs a tensor and an integer index tensor, got "
                        f"{type(x).__name__} and {type(indices).__name__}")
    if axis is None:
        x, axis = _flatten(x, "take"), 0
    axis = _axis(axis, x.ndim, "take")
    if indices.dtype not in ir.INDEX_DTYPES:
        raise TypeError(f"take: indices must be an integer tensor (dtype 'int64'), got a "
                        f"{indices.dtype} tensor")
    return _derived(ir.take(x.node, indices.node, axis), x, indices)


def linear_recurrence(a: Tensor | float, b: Tensor, axis: int = 0) -> Tensor:
    """``h`` with ``h[0] = b[0]`` and ``h[t] = a[t] * h[t-1] + b[t]`` along ``axis`` (of known
    size), elementwise over the other axes, ``a`` and ``b`` broadcast together: cumulative
    sums (``a = 1``), discounted returns, exponential moving averages, linear filters.

    The kernel runs it as one pass along the axis; reverse mode differentiates it with the
    same recurrence run backwards (no division, so zeros in ``a`` are fine)."""
    if not isinstance(b, Tensor):
        raise TypeError(f"linear_recurrence: b must be a tensor, got {type(b).__name__}")
    axis = _axis(axis, max(b.ndim, getattr(a, "ndim", 0)), "linear_recurrence")
    return _derived(ir.linear_recurrence(_node(a, b.node), b.node, axis), a, b)


def norm(x: Tensor, ord: float | str | None = None, axis: int | tuple[int, ...] | None = None,
         keepdims: bool = False) -> Tensor:
    """numpy's ``linalg.norm`` of vectors (``axis`` an integer, or None for the whole
    tensor): ``ord`` None or 2 (Euclidean), 1, ``inf``, ``-inf`` or any ``p > 0``; with
    ``axis`` a pair, the Frobenius norm (``ord`` None or ``'fro'``).

    The Euclidean norm is computed as ``m * sqrt(sum((x / m)**2))`` with ``m`` the largest
    ``|x|``: it neither overflows nor underflows where the norm itself does not (numpy's
    gives inf for ``[1e200, 1e200]``).  Its gradient ``x / norm`` is NaN at the zero vector,
    as JAX's is."""
    if not isinstance(x, Tensor):
        raise TypeError(f"norm takes a tensor, got {type(x).__name__}")
    if axis is None:
        axes = tuple(range(x.ndim))
    elif isinstance(axis, tuple):
        axes = tuple(ir.normalize_axes(axis, x.ndim, "norm"))
    else:
        axes = (_axis(axis, x.ndim, "norm"),)
    if len(axes) > 1 and axis is not None and ord not in (None, "fro"):
        raise ValueError(f"norm: over two axes only the Frobenius norm (ord=None or 'fro') is "
                         f"supported, got ord={ord!r}")
    if ord in (None, 2, 2.0, "fro"):
        if ord == "fro" and len(axes) != 2:
            raise ValueError("norm: ord='fro' needs two axes")
        size = abs(x)
        top = ir.stop_gradient(ir.reduce_max(size.node, axes, True))
        zero, one = ir.const(0.0, x.dtype), ir.const(1.0, x.dtype)
        inf = ir.const(float("inf"), x.dtype)
        scale = ir.select(ir.logical_or(ir.compare(Op.EQ, top, zero),
                                        ir.compare(Op.EQ, top, inf)), one, top)
        scaled = ir.div(x.node, scale)
        result = ir.mul(scale, ir.sqrt(ir.reduce_sum(ir.mul(scaled, scaled), axes, True)))
        result = ir.select(ir.compare(Op.EQ, top, inf), inf, result)
    elif ord in (1, 1.0):
        result = ir.reduce_sum(abs(x).node, axes, True)
    elif ord == float("inf"):
        result = ir.reduce_max(abs(x).node, axes, True)
    elif ord == -float("inf"):
        result = ir.reduce_min(abs(x).node, axes, True)
    elif isinstance(ord, (int, float)) and not isinstance(ord, bool) and ord > 0:
        p = ir.const(float(ord), x.dtype)
        result = ir.power(ir.reduce_sum(ir.power(abs(x).node, p), axes, True),
                          ir.const(1.0 / ord, x.dtype))
    else:
        raise ValueError(f"norm: ord must be None, 2, 1, inf, -inf, a number > 0 or 'fro', "
                         f"got {ord!r}")
    if not keepdims:
        result = ir.reshape(result, tuple(d for a, d in enumerate(x.shape) if a not in axes))
    return _derived(result, x)


def _arg_extreme(x, axis, keepdims, reduce, name):
    if not isinstance(x, Tensor) or x.dtype not in ir.FLOAT_DTYPES:
        raise TypeError(f"{name} takes a float tensor, got {x!r}")
    if axis is None:
        x, axis = _flatten(x, name), 0
    axis = _axis(axis, x.ndim, name)
    size = x.shape[axis]
    if x.dtype == "float32" and not isinstance(size, str) and size > 2 ** 24:
        raise ir.ShapeError(f"{name}: float32 counts positions exactly up to 2**24, the axis "
                            f"has {size}")
    extreme = reduce(x.node, axis, True)
    # The first position holding the extreme, or (numpy's rule) the first NaN.
    hit = ir.logical_or(ir.compare(Op.EQ, x.node, ir.broadcast_to(extreme, x.shape)),
                        ir.compare(Op.NE, x.node, x.node))
    positions = ir.select(hit, ir.iota(x.shape, axis, x.dtype),
                          ir.size_of([size], x.dtype))
    first = ir.reduce_min(positions, axis, keepdims)
    return _derived(ir.cast(first, "int64"), x)


def argmax(x: Tensor, axis: int | None = None, keepdims: bool = False) -> Tensor:
    """The position of the largest element along ``axis`` (of the flattened ``x`` for None)
    as an int64 tensor, the first one on ties, the first NaN where there is one (numpy's
    rules)."""
    return _arg_extreme(x, axis, keepdims, ir.reduce_max, "argmax")


def argmin(x: Tensor, axis: int | None = None, keepdims: bool = False) -> Tensor:
    """The position of the smallest element along ``axis``, as :func:`argmax`."""
    return _arg_extreme(x, axis, keepdims, ir.reduce_min, "argmin")


def _scan_axis(x, axis, function):
    if not isinstance(x, Tensor):
        raise TypeError(f"{function} takes a tensor, got {type(x).__name__}")
    if axis is None:
        return _flatten(x, function), 0
    return x, _axis(axis, x.ndim, function)


def cumsum(x: Tensor, axis: int | None = None) -> Tensor:
    """The cumulative sum along ``axis`` (of the flattened ``x`` for None), as
    ``numpy.cumsum``: added in order, so the same numbers as numpy's."""
    x, axis = _scan_axis(x, axis, "cumsum")
    return _derived(ir.linear_recurrence(ir.const(1.0, x.dtype), x.node, axis), x)


def cumprod(x: Tensor, axis: int | None = None) -> Tensor:
    """The cumulative product along ``axis`` (of the flattened ``x`` for None), as
    ``numpy.cumprod``; its gradient is exact where elements are zero (no division)."""
    x, axis = _scan_axis(x, axis, "cumprod")
    size = x.shape[axis]
    if isinstance(size, str):
        raise ir.ShapeError(f"cumprod: axis {axis} has the symbolic size {size!r}; a "
                            f"cumulative product runs along an axis of known size")
    if size <= 1:
        return x
    # b = (x[0], -0.0, -0.0, ...): h[t] = x[t] h[t-1] + -0.0 is the product itself, signed
    # zeros and all.
    first = ir.slice_axes(x.node, [(0, 1, 1) if a == axis else (0, 1, d)
                                   for a, d in enumerate(x.shape)])
    b = ir.pad(first, [(0, size - 1, 0) if a == axis else (0, 0, 0) for a in range(x.ndim)],
               -0.0)
    return _derived(ir.linear_recurrence(x.node, b, axis), x)


def take_along_axis(x: Tensor, indices: Tensor, axis: int | None) -> Tensor:
    """numpy's ``take_along_axis``: ``indices`` (an integer tensor of ``x``'s rank) picks, at
    each of its positions, the element of ``x`` along ``axis`` (``None``: of the flattened
    ``x``, with 1-D indices); the other axes broadcast.  ``take_along_axis(logp, labels[:,
    None], 1)`` is the log-probability of each example's label.  Reverse mode adds the
    cotangents back at the indices, duplicates summed."""
    if not isinstance(x, Tensor) or not isinstance(indices, Tensor):
        raise TypeError(f"take_along_axis needs a tensor and an integer index tensor, got "
                        f"{type(x).__name__} and {type(indices).__name__}")
    if axis is None:
        x, axis = _flatten(x, "take_along_axis"), 0
    axis = _axis(axis, x.ndim, "take_along_axis")
    return _derived(ir.take_along(x.node, indices.node, axis), x, indices)


class _IndexUpdates:
    """``x.at``: ``x.at[key]`` names the elements an update changes."""

    __slots__ = ("_x",)

    def __init__(self, x):
        self._x = x

    def __getitem__(self, key):
        return _IndexUpdate(self._x, key)


class _IndexUpdate:
    """``x.at[key]``: ``.get()``, ``.add(values)``, ``.set(values)``."""

    __slots__ = ("_x", "_key")

    def __init__(self, x, key):
        self._x, self._key = x, key

    def get(self) -> Tensor:
        return self._x[self._key]

    def _spread(self, values):
        """The transpose of ``x -> x[key]`` applied to ``values`` (a tensor or a number,
        broadcast to the shape of ``x[key]``): zeros of ``x``'s shape with ``values`` added
        where ``x[key]`` reads."""
        from symgrad.autodiff.reverse import vjp
        x = self._x
        selected = x[self._key]
        node = ir.broadcast_to(_node(values, x.node), selected.shape)
        (spread,) = vjp(selected.node, [x.node], cotangent=node)
        return spread

    def add(self, values) -> Tensor:
        """``x`` with ``values`` added at ``x[key]``; duplicate indices add up."""
        return _derived(ir.add(self._x.node, self._spread(values)), self._x, values)

    def set(self, values) -> Tensor:
        """``x`` with ``x[key]`` replaced by ``values``.  Where an index tensor holds one
        index more than once, that element takes the mean of the values written there (JAX
        leaves which one wins unspecified; with equal values the result is that value)."""
        x = self._x
        hits = self._spread(1.0)            # how many times each element is written
        written = self._spread(values)
        key = self._key if isinstance(self._key, tuple) else (self._key,)
        if any(isinstance(item, Tensor) for item in key):
            written = ir.div(written, ir.maximum(hits, ir.const(1.0, x.dtype)))
        hit = ir.compare(Op.GT, hits, ir.const(0.0, x.dtype))
        return _derived(ir.select(hit, written, x.node), x, values)


def tensor(name: str, shape: int | str | tuple[int | str, ...] = (),
           dtype: str = "float64") -> Tensor:
    """A symbolic tensor argument.

    Parameters
    ----------
    name : str
        The argument's name (the kernel takes it by this name).
    shape : tuple
        Sizes: ints, or names of symbolic sizes such as a batch size ``"n"``.
    dtype : {'float64', 'float32', 'int64', 'bool'}
        ``'int64'``: an index argument (for :func:`take`, ``x[idx]``, ``x.at[idx]``) or
        integer values; the kernel takes an array of any integer dtype for it.  ``'bool'``: a
        mask (for :func:`where`, ``&``, ``|``, ``~``), an array of numpy bools.

    Examples
    --------
    >>> X = tensor("X", ("n", 784), dtype="float32")
    """
    if dtype not in ir.DTYPES:
        raise ValueError(f"dtype must be one of {ir.DTYPES}, got {dtype!r}")
    if isinstance(shape, (int, str)):
        shape = (shape,)
    return Tensor(ir.input_node(name, dtype, shape))


def _derived(node, *sources):
    """The tensor of ``node``, computed from ``sources`` (tensors or numbers): it carries
    their labels."""
    labels = ()
    for source in sources:
        extra = getattr(source, "labels", ())
        if not extra or extra is labels:
            continue
        if not labels:
            labels = extra
        else:
            known = {id(entry[0]) for entry in labels}
            labels = labels + tuple(e for e in extra if id(e[0]) not in known)
    return Tensor(node, labels)


def label(tensor: Tensor, name: str, cotangent_name: str | None = None) -> Tensor:
    """``tensor``, named ``name`` for display: a derivation of an expression computed from
    the returned tensor shows this value by its name, and, with ``cotangent_name``, its
    cotangent dC/d(tensor) too (as the layers of :mod:`symgrad.nn` name ``z1`` and
    ``delta1``)."""
    if not isinstance(tensor, Tensor):
        raise TypeError(f"label names a Tensor, got {type(tensor).__name__}")
    for argument, value in (("name", name), ("cotangent_name", cotangent_name)):
        if value is not None and (not isinstance(value, str) or not value):
            raise TypeError(f"{argument} must be a non-empty string, got {value!r}")
    known = tuple(e for e in tensor.labels if e[0] is not tensor.node)
    return Tensor(tensor.node, known + ((tensor.node, name, cotangent_name),))


def as_tensor(value: Tensor | float, like: Tensor | None = None) -> Tensor:
    """``value`` as a Tensor (numbers become constants)."""
    if isinstance(value, Tensor):
        return value
    return _derived(_node(value, like.node if like is not None else ir.const(0.0)), value)


def elementwise(function: Callable[..., sympy.Expr], *tensors: Tensor | float) -> Tensor:
    """Apply a scalar SymPy function elementwise to tensors (broadcast together).

    Parameters
    ----------
    function : callable
        Takes one SymPy symbol per tensor and returns a SymPy expression of them (a Python
        function, a ``sympy.Lambda`` or a SymPy function class such as ``sympy.exp``).
    *tensors : Tensor or number

    Examples
    --------
    >>> X = tensor("X", ("n", 3))
    >>> Y = elementwise(lambda u: sympy.exp(-u**2), X)
    """
    like = next((t for t in tensors if isinstance(t, Tensor)), None)
    if like is None:
        raise TypeError("elementwise needs at least one tensor")
    nodes = [_node(t, like.node) for t in tensors]
    symbols = [sympy.Dummy(f"u{i}", real=True) for i in range(len(tensors))]
    expr = function(*symbols)
    dtype = like.dtype
    return _derived(to_ir(expr, dict(zip(symbols, nodes)), dtype), *tensors)


def matmul(a: Tensor, b: Tensor) -> Tensor:
    """The matrix product, as numpy's ``matmul`` (``@``): batched over leading axes, 1-D
    operands as vectors (:func:`symgrad.contract.matmul`; shape errors name both shapes)."""
    if not isinstance(a, Tensor) or not isinstance(b, Tensor):
        raise TypeError("matmul takes two tensors")
    return _derived(general_matmul(a.node, b.node), a, b)


def where(cond: Tensor, if_true: Tensor | float, if_false: Tensor | float) -> Tensor:
    """``if_true`` where ``cond`` holds, else ``if_false`` (gradients flow to the branch
    taken only, never NaN from the other)."""
    if not isinstance(cond, Tensor) or cond.dtype != "bool":
        raise TypeError("where needs a boolean tensor condition, such as X > 0")
    like = next((v for v in (if_true, if_false) if isinstance(v, Tensor)), None)
    if like is not None:
        like_node = like.node
    else:   # both branches are numbers: compute in the dtype the condition compares
        floats = [n for n in ir.toposort([cond.node]) if n.dtype in ir.FLOAT_DTYPES]
        like_node = ir.const(0.0, floats[0].dtype if floats else "float64")
    return _derived(ir.select(cond.node, _node(if_true, like_node), _node(if_false, like_node)),
                    cond, if_true, if_false)


class Normalizer:
    r"""The log-sum-exp of ``x`` along ``axis``, in pieces that keep their digits where one
    element dominates (the reduced axes stay in the shapes, with size 1).

    With ``m`` the maximum and ``g = x - m`` (exact near the maximum), :math:`\log \sum_i
    e^{x_i} = m + \log(1 + X)` where the excess :math:`X = \sum_i e^{g_i} - 1` is summed
    without the 1 that a maximum contributes (its term is :math:`e^g - 1`, exactly 0 with the
    derivatives of :math:`e^g`; further maxima add 1 each): ``log1p(X)`` keeps the digits
    that the ``log`` of a sum rounded to 1 loses (``logsumexp([0, -40])`` is 4.2e-18, not 0).

    The derivatives need more care where one element ``j`` holds more than half of the sum
    (``X < 1``, which makes it the only maximum): softmax's :math:`p_j (1 - p_j)` and the
    cross-entropy's :math:`p_j - 1` would subtract numbers near 1.  There the pieces are
    functions of :math:`x_j` itself, the other terms being :math:`e^{x_i - x_j}`, so that
    :math:`1 - p_j = X / (1 + X)` comes out of the other elements; ``offset`` (0 in value)
    carries that dependence.  Elsewhere (ties included: there no element holds more than
    half) the maximum is a constant shift, through which no gradient flows.

    Attributes
    ----------
    shift : Node
        ``m``, without gradient.
    offset : Node
        0; as a function, :math:`x_j - m` where ``j`` dominates, else the constant 0.
    gaps : Node
        ``g``, as a function ``x - m`` (no gradient through ``m``).
    at_maximum : Node
        Where ``g`` is 0.
    dominant : Node
        Where one element holds more than half of the sum (a row of one value per example).
    centred : Node
        ``g``; as a function, :math:`x_i - x_j` where ``j`` dominates (the constant 0 at ``j``
        itself).
    excess : Node
        ``X``.
    log_total : Node
        ``log1p(X)``, the logarithm of the sum of :math:`e^{centred}`; 0 for a row of ``-inf``.
    total : Node
        ``1 + X``, the sum of :math:`e^{centred}`; 1 for a row of ``-inf``.

    A row whose maximum is infinite has no finite shift.  Where it is ``-inf`` (every entry
    ``-inf``, a fully masked row) the gaps are ``-inf`` throughout and the sum, empty, is taken
    as 1, so that the log-sum-exp is ``-inf``, the log-softmax ``-inf`` and the softmax 0,
    never ``inf - inf``.  Where it is ``+inf``, the gaps are 0 at the ``+inf`` entries and
    ``-inf`` elsewhere: the limit of a row whose largest entries grow together.  NaN in a row
    makes the whole row NaN.  No gradient flows through the entries of such rows.
    """

    def __init__(self, x, axis):
        node = x.node
        zero, one = ir.const(0.0, node.dtype), ir.const(1.0, node.dtype)
        inf = ir.const(float("inf"), node.dtype)
        self.shift = ir.stop_gradient(ir.reduce_max(node, axis, True))
        infinite = ir.compare(Op.EQ, ir.absolute(self.shift), inf)
        limit = ir.select(ir.compare(Op.EQ, node, inf), zero, ir.neg(inf))
        self.gaps = gaps = ir.select(infinite, limit, ir.sub(node, self.shift))
        self.at_maximum = at_maximum = ir.compare(Op.EQ, gaps, zero)
        exponentials = ir.exp(gaps)
        rest = ir.reduce_sum(ir.select(at_maximum, zero, exponentials), axis, True)
        # e^g - 1 at the maxima: 0, with the derivatives of e^g.
        ties = ir.reduce_sum(ir.select(at_maximum, ir.sub(exponentials, one), zero), axis,
                             True)
        further_maxima = ir.sub(ir.reduce_sum(ir.select(at_maximum, one, zero), axis, True),
                                one)
        self.dominant = dominant = ir.compare(Op.LT, ir.add(rest, further_maxima), one)
        # 0 in value; where one element dominates, its gap as a function of it.
        self.offset = ir.select(dominant, ir.reduce_sum(ir.select(at_maximum, gaps, zero),
                                                        axis, True), zero)
        self.centred = ir.select(ir.logical_and(at_maximum, dominant), zero,
                                 ir.sub(gaps, self.offset))
        self.excess = ir.add(ir.add(ir.mul(rest, ir.exp(ir.neg(self.offset))),
                                    ir.select(dominant, zero, ties)), further_maxima)
        # No element at the maximum: a row of -inf (in a NaN row the excess is NaN anyway).
        empty = ir.compare(Op.EQ, further_maxima, ir.neg(one))
        self.log_total = ir.select(empty, zero, ir.log1p(self.excess))
        self.total = ir.select(empty, one, ir.add(one, self.excess))


def _drop_axes(tensor, x, axis, keepdims):
    if keepdims:
        return tensor
    axes = ir.normalize_axes(axis, x.ndim, "logsumexp")
    return tensor.reshape(tuple(s for a, s in enumerate(x.shape) if a not in axes))


def logsumexp(x: Tensor, axis: int | tuple[int, ...] = -1, keepdims: bool = False) -> Tensor:
    """``log(sum(exp(x)))`` along ``axis``, shifted by the maximum so it never overflows, and
    exact where one element dominates (see :class:`Normalizer`).

    As ``scipy.special.logsumexp`` and ``torch.logsumexp``: a row of ``-inf`` gives ``-inf``,
    a row holding ``+inf`` gives ``+inf``, a row holding NaN gives NaN.  The gradient is
    :func:`softmax` on a row whose maximum is finite, 0 on a row whose maximum is infinite.
    """
    parts = Normalizer(x, axis)
    total = ir.add(ir.add(parts.shift, parts.offset), parts.log_total)
    return _drop_axes(_derived(total, x), x, axis, keepdims)


def log_softmax(x: Tensor, axis: int | tuple[int, ...] = -1) -> Tensor:
    """``x - logsumexp(x)`` along ``axis``, as ``(x - max) - log(sum(exp(x - max)))``: the
    gap ``x - max`` is exact near the maximum, where ``x`` and the log-sum-exp agree in most
    of their digits (see :class:`Normalizer`).

    A row of ``-inf`` (every class masked) gives ``-inf`` throughout; a row holding ``+inf``
    gives ``-log(k)`` at its ``k`` entries that are ``+inf`` and ``-inf`` elsewhere.
    """
    parts = Normalizer(x, axis)
    return _derived(ir.sub(parts.centred, parts.log_total), x)


def softmax(x: Tensor, axis: int | tuple[int, ...] = -1) -> Tensor:
    """``exp(x) / sum(exp(x))`` along ``axis``, as ``exp(x - max) / sum(exp(x - max))``: no
    overflow, and a few ulp in every element and in its derivatives (``exp(log_softmax(x))``
    would round the argument first: 268 ulp off at x = [-700, 0, 0]; see
    :class:`Normalizer`).

    A row of ``-inf`` (every entry masked) gives 0 throughout, with gradient 0 (torch and
    scipy give NaN); a row holding ``+inf`` gives ``1/k`` at its ``k`` entries that are
    ``+inf`` and 0 elsewhere (the limit); a row holding NaN gives NaN.  The gradient is 0 on
    a row whose maximum is infinite.
    """
    parts = Normalizer(x, axis)
    return _derived(ir.div(ir.exp(parts.centred), parts.total), x)
