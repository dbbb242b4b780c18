"""Indexing, joins and shapes of symbolic tensors, with numpy's names and semantics.

Each is built from a few IR ops (slices, pads, reshapes, broadcasts, element indices), so
that the reverse rules, the reference interpreter and the native lowering are those of the
ops (:mod:`symgrad.ir.ops`): a slice is a strided view of its operand's buffer, a join is a
sum of pads (each a select on the loop index inside the fused loop), and nothing is copied
that a view can read in place.

>>> import symgrad as sg
>>> X = sg.tensor("X", (4, 3))
>>> X[1:, ::-1].shape
(3, 3)
>>> sg.concatenate([X, X[:2]]).shape
(6, 3)
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

from symgrad import ir
from symgrad.ir.ops import Op
from symgrad.tensors import Tensor, _axis, _derived, _flatten, _integer, getitem, squeeze, where

__all__ = [
    "arange", "broadcast_to", "concatenate", "expand_dims", "flip", "getitem", "pad", "repeat",
    "roll", "split", "squeeze", "stack", "tile", "tril", "tril_to_vector", "triu", "vector_to_tril",
]


def _tensor(value, argument, function):
    if not isinstance(value, Tensor):
        raise TypeError(f"{function}: {argument} must be a symgrad Tensor, got "
                        f"{type(value).__name__}")
    return value


def _concrete(x, axis, function):
    size = x.shape[axis]
    if isinstance(size, str):
        raise ir.ShapeError(f"{function}: axis {axis} has the symbolic size {size!r}; this needs "
                            f"a fixed size")
    return size


# ---- joins -----------------------------------------------------------------------------------

def _pad_node(node, widths, fill=0.0):
    return ir.pad(node, widths, fill)


def concatenate(tensors: Sequence[Tensor], axis: int = 0) -> Tensor:
    """The tensors joined along ``axis`` (a fixed-size axis); the other sizes must agree."""
    tensors = [_tensor(t, f"tensors[{i}]", "concatenate") for i, t in enumerate(tensors)]
    if not tensors:
        raise ValueError("concatenate needs at least one tensor")
    first = tensors[0]
    if first.ndim == 0:
        raise ir.ShapeError("concatenate: zero-dimensional tensors cannot be concatenated")
    axis = _axis(axis, first.ndim, "concatenate")
    dtypes = {t.dtype for t in tensors}
    if len(dtypes) > 1:
        raise TypeError(f"concatenate: the tensors must have one dtype, got {sorted(dtypes)}")
    for index, t in enumerate(tensors):
        if t.ndim != first.ndim or any(a != b for k, (a, b) in enumerate(
                zip(t.shape, first.shape)) if k != axis):
            raise ir.ShapeError(f"concatenate along axis {axis}: tensors[{index}] has shape "
                                f"{t.shape}, tensors[0] {first.shape}")
        _concrete(t, axis, "concatenate")
    total = sum(t.shape[axis] for t in tensors)
    # Each piece padded to the whole with -0.0, the additive identity (x + -0.0 is x, bit for
    # bit, -0.0, inf and NaN included): the sum is the join.
    pieces, offset = [], 0
    for t in tensors:
        size = t.shape[axis]
        if size:
            widths = [(0, 0, 0)] * first.ndim
            widths[axis] = (offset, total - offset - size, 0)
            pieces.append(_pad_node(t.node, widths, -0.0))
        offset += size
    if not pieces:
        shape = list(first.shape)
        shape[axis] = 0
        return _derived(ir.const(0.0, first.dtype, tuple(shape)), *tensors)
    return _derived(ir.balanced(ir.add, pieces), *tensors)


def stack(tensors: Sequence[Tensor], axis: int = 0) -> Tensor:
    """The tensors (of one shape) joined along a new axis ``axis``."""
    tensors = [_tensor(t, f"tensors[{i}]", "stack") for i, t in enumerate(tensors)]
    if not tensors:
        raise ValueError("stack needs at least one tensor")
    shape = tensors[0].shape
    for index, t in enumerate(tensors):
        if t.shape != shape:
            raise ir.ShapeError(f"stack: tensors[{index}] has shape {t.shape}, tensors[0] "
                                f"{shape}; stacked tensors need one shape")
    axis = _axis(axis, len(shape) + 1, "stack")
    return concatenate([expand_dims(t, axis) for t in tensors], axis)


def split(x: Tensor, indices_or_sections, axis: int = 0) -> list[Tensor]:
    """``x`` cut along ``axis``: into that many equal parts (an integer), or at the given
    indices (a sequence), as ``numpy.split``."""
    x = _tensor(x, "x", "split")
    axis = _axis(axis, x.ndim, "split")
    size = _concrete(x, axis, "split")
    if isinstance(indices_or_sections, numbers.Integral) and \
            not isinstance(indices_or_sections, bool):
        sections = int(indices_or_sections)
        if sections <= 0 or size % sections:
            raise ValueError(f"split: axis {axis} of size {size} does not divide into "
                             f"{sections} equal sections")
        cuts = [size // sections * k for k in range(1, sections)]
    else:
        cuts = [_integer(c, "indices_or_sections", "split") for c in indices_or_sections]
    bounds = [0] + [min(max(c + size if c < 0 else c, 0), size) for c in cuts] + [size]
    parts = []
    for start, stop in zip(bounds, bounds[1:]):
        key = [slice(None)] * x.ndim
        key[axis] = slice(start, max(start, stop))
        parts.append(getitem(x, tuple(key)))
    return parts


def pad(x: Tensor, pad_width, constant_values: float = 0.0) -> Tensor:
    """``x`` with ``constant_values`` around it, as ``numpy.pad`` in its ``constant`` mode:
    ``pad_width`` is an integer, a pair ``(before, after)`` for every axis, or one pair per
    axis."""
    x = _tensor(x, "x", "pad")
    if isinstance(constant_values, bool) or not isinstance(constant_values, numbers.Real):
        raise TypeError(f"pad: constant_values must be a number, got {constant_values!r}")
    widths = _pad_widths(pad_width, x.ndim)
    return _derived(_pad_node(x.node, [(low, high, 0) for low, high in widths],
                              float(constant_values)), x)


def _pad_widths(pad_width, rank):
    def pair(value):
        if isinstance(value, numbers.Integral) and not isinstance(value, bool):
            return (int(value), int(value))
        value = tuple(value)
        if len(value) == 1:
            return pair(value[0])
        if len(value) != 2 or not all(isinstance(v, numbers.Integral) and not isinstance(
                v, bool) for v in value):
            raise ValueError(f"pad: pad_width must hold integer pairs (before, after), got "
                             f"{pad_width!r}")
        return (int(value[0]), int(value[1]))
    try:
        if isinstance(pad_width, numbers.Integral) or len(pad_width) in (1, 2) and all(
                isinstance(v, numbers.Integral) for v in pad_width):
            widths = [pair(pad_width)] * rank
        else:
            widths = [pair(v) for v in pad_width]
    except TypeError:
        raise ValueError(f"pad: pad_width must be an integer or integer pairs (before, after), "
                         f"got {pad_width!r}") from None
    if len(widths) != rank:
        raise ValueError(f"pad: pad_width has {len(widths)} pairs for a rank-{rank} tensor")
    if any(v < 0 for w in widths for v in w):
        raise ValueError(f"pad: pad_width must be at least 0, got {pad_width!r}")
    return widths


def roll(x: Tensor, shift, axis=None) -> Tensor:
    """``x`` with its elements shifted by ``shift`` along ``axis`` (those past the end come
    back at the start), as ``numpy.roll``; without ``axis``, over the flattened tensor."""
    x = _tensor(x, "x", "roll")
    if axis is None:
        return _derived(ir.reshape(roll(_flatten(x, "roll"), shift, 0).node, x.shape), x)
    shifts = shift if isinstance(shift, (tuple, list)) else [shift]
    axes = axis if isinstance(axis, (tuple, list)) else [axis]
    if len(shifts) == 1:
        shifts = list(shifts) * len(axes)
    if len(shifts) != len(axes):
        raise ValueError(f"roll: shift and axis must have the same length, got {shift!r} and "
                         f"{axis!r}")
    result = x
    for s, a in zip(shifts, axes):
        a = _axis(a, x.ndim, "roll")
        size = _concrete(x, a, "roll")
        s = _integer(s, "shift", "roll") % size if size else 0
        if s:
            key_tail = [slice(None)] * x.ndim
            key_head = [slice(None)] * x.ndim
            key_tail[a], key_head[a] = slice(size - s, None), slice(None, size - s)
            result = concatenate([getitem(result, tuple(key_tail)),
                                  getitem(result, tuple(key_head))], a)
    return result


def flip(x: Tensor, axis=None) -> Tensor:
    """``x`` with the order of its elements reversed along ``axis`` (all axes by default)."""
    x = _tensor(x, "x", "flip")
    axes = range(x.ndim) if axis is None else [axis] if not isinstance(axis, (tuple, list)) \
        else axis
    key = [slice(None)] * x.ndim
    for a in axes:
        a = _axis(a, x.ndim, "flip")
        _concrete(x, a, "flip")
        key[a] = slice(None, None, -1)
    return getitem(x, tuple(key))


# ---- shapes ----------------------------------------------------------------------------------

def expand_dims(x: Tensor, axis) -> Tensor:
    """``x`` with new axes of size 1 at the positions ``axis`` (of the result)."""
    x = _tensor(x, "x", "expand_dims")
    axes = axis if isinstance(axis, (tuple, list)) else [axis]
    rank = x.ndim + len(axes)
    positions = {_axis(a, rank, "expand_dims") for a in axes}
    if len(positions) != len(axes):
        raise ValueError(f"expand_dims: repeated axis in {axis!r}")
    sizes = iter(x.shape)
    return _derived(ir.reshape(x.node, tuple(1 if a in positions else next(sizes)
                                            for a in range(rank))), x)


def broadcast_to(x: Tensor, shape) -> Tensor:
    """``x`` broadcast to ``shape`` (numpy's rules)."""
    return _tensor(x, "x", "broadcast_to").broadcast_to(tuple(shape))


def repeat(x: Tensor, repeats: int, axis=None) -> Tensor:
    """Each element of ``x`` repeated ``repeats`` times along ``axis`` (over the flattened
    tensor without one), as ``numpy.repeat`` with one count."""
    x = _tensor(x, "x", "repeat")
    repeats = _integer(repeats, "repeats", "repeat")
    if repeats < 0:
        raise ValueError(f"repeat: repeats must be at least 0, got {repeats}")
    if axis is None:
        x, axis = _flatten(x, "repeat"), 0
    axis = _axis(axis, x.ndim, "repeat")
    size = _concrete(x, axis, "repeat")
    spread = expand_dims(x, axis + 1)
    shape = list(spread.shape)
    shape[axis + 1] = repeats
    wide = broadcast_to(spread, shape)
    result = list(x.shape)
    result[axis] = size * repeats
    return _derived(ir.reshape(wide.node, tuple(result)), x)


def tile(x: Tensor, reps) -> Tensor:
    """``x`` repeated ``reps`` times along each axis, as ``numpy.tile``."""
    x = _tensor(x, "x", "tile")
    reps = (reps,) if isinstance(reps, numbers.Integral) else tuple(reps)
    reps = tuple(_integer(r, "reps", "tile") for r in reps)
    if any(r < 0 for r in reps):
        raise ValueError(f"tile: reps must be at least 0, got {reps}")
    rank = max(len(reps), x.ndim)
    reps = (1,) * (rank - len(reps)) + reps
    x = _derived(ir.reshape(x.node, (1,) * (rank - x.ndim) + tuple(x.shape)), x)
    for a, r in enumerate(reps):
        if r != 1:
            _concrete(x, a, "tile")
    interleaved = []
    for a in range(rank):
        interleaved += [1, x.shape[a]]
    spread = _derived(ir.reshape(x.node, tuple(interleaved)), x)
    wide = broadcast_to(spread, tuple(v for a in range(rank) for v in (reps[a], x.shape[a])))
    return _derived(ir.reshape(wide.node, tuple(
        r * d if not isinstance(d, str) else d for r, d in zip(reps, x.shape))), x)


# ---- triangles and ranges --------------------------------------------------------------------

def _triangle_mask(x, k, function, lower):
    if x.ndim < 2:
        raise ir.ShapeError(f"{function} needs a tensor of rank at least 2, got shape {x.shape}")
    k = _integer(k, "k", function)
    shape = x.shape[-2:]
    rows = ir.iota(shape, 0, x.dtype) if shape[0] != 1 else ir.const(0.0, x.dtype, shape)
    columns = ir.iota(shape, 1, x.dtype) if shape[1] != 1 else ir.const(0.0, x.dtype, shape)
    shifted = ir.add(rows, ir.const(float(k), x.dtype))
    return Tensor(ir.compare(Op.GE if lower else Op.LE, shifted, columns))


def tril(x: Tensor, k: int = 0) -> Tensor:
    """``x`` with the elements above the ``k``-th diagonal zero (over the last two axes)."""
    x = _tensor(x, "x", "tril")
    return where(_triangle_mask(x, k, "tril", True), x, 0.0)


def triu(x: Tensor, k: int = 0) -> Tensor:
    """``x`` with the elements below the ``k``-th diagonal zero (over the last two axes)."""
    x = _tensor(x, "x", "triu")
    return where(_triangle_mask(x, k, "triu", False), x, 0.0)


def vector_to_tril(v: Tensor) -> Tensor:
    """The ``(n, n)`` lower-triangular matrix whose elements on and below the diagonal are
    those of ``v`` (of length ``n (n + 1) / 2``) in row-major order, ``m[numpy.tril_indices(n)]
    == v`` (a Cholesky factor packed as a vector); zeros above.  Over the last axis of
    ``v``."""
    v = _tensor(v, "v", "vector_to_tril")
    if v.ndim < 1:
        raise ir.ShapeError("vector_to_tril needs a tensor of rank at least 1")
    length = _concrete(v, v.ndim - 1, "vector_to_tril")
    n = (math.isqrt(8 * length + 1) - 1) // 2
    if n * (n + 1) // 2 != length:
        raise ir.ShapeError(f"vector_to_tril: the last axis has {length} elements, not a "
                            f"triangular number n (n + 1) / 2")
    batch = v.shape[:-1]
    rows = []
    for i in range(n):
        start = i * (i + 1) // 2
        row = getitem(v, (Ellipsis, slice(start, start + i + 1)))
        rows.append(pad(row, [(0, 0)] * len(batch) + [(0, n - 1 - i)]))
    return stack(rows, axis=-2)


def tril_to_vector(m: Tensor) -> Tensor:
    """The elements on and below the diagonal of the ``(n, n)`` matrix ``m`` (its last two
    axes), row by row: ``m[numpy.tril_indices(n)]``, the inverse of :func:`vector_to_tril`."""
    m = _tensor(m, "m", "tril_to_vector")
    if m.ndim < 2:
        raise ir.ShapeError(f"tril_to_vector needs a tensor of rank at least 2, got shape "
                            f"{m.shape}")
    n = _concrete(m, m.ndim - 1, "tril_to_vector")
    if m.shape[-2] != n:
        raise ir.ShapeError(f"tril_to_vector needs square matrices, got shape {m.shape}")
    return concatenate([getitem(m, (Ellipsis, i, slice(0, i + 1))) for i in range(n)],
                       axis=-1)


def arange(start, stop=None, step=1, dtype: str = "float64") -> Tensor:
    """``start, start + step, ...`` below ``stop`` (as ``numpy.arange``), as a constant
    float tensor."""
    if stop is None:
        start, stop = 0, start
    for name, value in (("start", start), ("stop", stop), ("step", step)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"arange: {name} must be a number, got {value!r}")
    if step == 0:
        raise ValueError("arange: step must not be 0")
    if dtype not in ir.FLOAT_DTYPES:
        raise ValueError(f"arange: dtype must be one of {ir.FLOAT_DTYPES}, got {dtype!r}")
    count = max(0, math.ceil((stop - start) / step))
    if count == 0:
        return Tensor(ir.const(0.0, dtype, (0,)))
    index = ir.iota((count,), 0, dtype)
    if step != 1:
        index = ir.mul(index, ir.const(float(step), dtype))
    if start != 0:
        index = ir.add(index, ir.const(float(start), dtype))
    return Tensor(index)
