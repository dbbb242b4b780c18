"""Contractions: numpy's ``matmul`` (batched, broadcast, 1-D operands), ``einsum``,
``tensordot``, ``dot``, ``inner`` and ``outer``, on tensors (the engine, on IR nodes, and
how each runs: :mod:`symgrad.ir.contraction`)."""

from __future__ import annotations

import string

from symgrad import ir
from symgrad.errors import ShapeError
from symgrad.ir.contraction import contract
from symgrad.tensors import Tensor, _derived, matmul

__all__ = ["dot", "einsum", "inner", "matmul", "outer", "tensordot"]


def _tensor(value, argument, function):
    if not isinstance(value, Tensor):
        raise TypeError(f"{function}: {argument} must be a tensor, got {type(value).__name__}")
    return value


def _contract(operands, subscripts, output):
    return _derived(contract([o.node for o in operands], subscripts, output), *operands)


def _expand_ellipses(text, operands):
    """``text`` with each ``...`` replaced by letters for the axes it stands for (right
    aligned across operands, as numpy broadcasts them), and the operands broadcast so that
    each letter has one size."""
    inputs, arrow, output = text.partition("->")
    terms = inputs.split(",")
    if len(terms) != len(operands):
        raise ValueError(f"einsum: {text!r} names {len(terms)} operands, got {len(operands)}")
    used = set(text)
    spare = [c for c in string.ascii_letters if c not in used]
    extents = [operand.ndim - (len(term) - 3) if "..." in term else 0
               for term, operand in zip(terms, operands)]
    if any(e < 0 for e in extents):
        raise ShapeError(f"einsum: an operand has fewer axes than {text!r} names")
    rank = max(extents)
    letters = "".join(spare[:rank])
    shapes = [operand.shape[term.index("..."):term.index("...") + extent] if extent else ()
              for term, operand, extent in zip(terms, operands, extents)]
    common = ir.broadcast_shapes(*shapes, context="einsum's '...' axes")
    expanded = []
    for index, (term, operand, extent) in enumerate(zip(terms, operands, extents)):
        if "..." not in term:
            expanded.append(term)
            continue
        at = term.index("...")
        target = common[rank - extent:]
        if operand.shape[at:at + extent] != target:
            operands[index] = operand.broadcast_to(operand.shape[:at] + target +
                                                   operand.shape[at + extent:])
        expanded.append(term.replace("...", letters[rank - extent:]))
    if arrow:
        output = output.replace("...", letters)
        return ",".join(expanded) + "->" + output
    # numpy's implicit output with '...': its axes first, then the letters used once.
    joined = "".join(expanded)
    once = "".join(sorted(c for c in set(joined) if joined.count(c) == 1 and c not in letters))
    return ",".join(expanded) + "->" + letters + once


def _parse(subscripts, operands):
    if not isinstance(subscripts, str):
        raise TypeError(f"einsum: subscripts must be a string such as 'ij,jk->ik', got "
                        f"{type(subscripts).__name__}")
    text = subscripts.replace(" ", "")
    if "..." in text:
        text = _expand_ellipses(text, operands)
    inputs, arrow, output = text.partition("->")
    terms = inputs.split(",")
    if len(terms) != len(operands):
        raise ValueError(f"einsum: {subscripts!r} names {len(terms)} operands, got "
                         f"{len(operands)}")
    for term in terms + [output]:
        bad = [c for c in term if c not in string.ascii_letters]
        if bad:
            raise ValueError(f"einsum: {subscripts!r} holds {bad[0]!r}; indices are letters "
                             f"(and '...')")
    if not arrow:
        # numpy's implicit output: the letters that appear once, in alphabetical order.
        letters = "".join(terms)
        output = "".join(sorted(c for c in set(letters) if letters.count(c) == 1))
    for term in terms:
        repeated = [c for c in set(term) if term.count(c) > 1]
        if repeated:
            raise ValueError(f"einsum: index {repeated[0]!r} repeats within one operand (a "
                             f"diagonal or trace), which is not supported yet")
    if len(set(output)) != len(output):
        raise ValueError(f"einsum: the output {output!r} repeats an index")
    unknown = set(output) - set("".join(terms))
    if unknown:
        raise ValueError(f"einsum: the output index {sorted(unknown)[0]!r} is in no operand")
    return terms, output


def einsum(subscripts: str, *operands: Tensor) -> Tensor:
    """Einstein summation, as ``numpy.einsum``: ``einsum("ij,jk->ik", a, b)`` is ``a @ b``,
    ``einsum("...ij,...jk->...ik", a, b)`` a broadcast batch of products,
    ``einsum("ij,ij->i", a, b)`` the row-wise dot products; without ``->`` the output holds
    the ``...`` axes and then the indices that appear once, in alphabetical order.  Each
    operand's indices must be distinct (no diagonals)."""
    operands = [_tensor(o, f"operands[{i}]", "einsum") for i, o in enumerate(operands)]
    if not operands:
        raise ValueError("einsum needs at least one operand")
    terms, output = _parse(subscripts, operands)
    for operand, term, index in zip(operands, terms, range(len(terms))):
        if len(term) != operand.ndim:
            raise ShapeError(f"einsum: operand {index} has shape {operand.shape}, but "
                             f"{term!r} names {len(term)} axes")
    return _contract(operands, terms, output)


def tensordot(a: Tensor, b: Tensor, axes=2) -> Tensor:
    """numpy's ``tensordot``: the sum over ``a``'s last ``axes`` axes and ``b``'s first (an
    integer), or over the axes of ``a`` and ``b`` paired in ``axes = (a_axes, b_axes)``."""
    a, b = _tensor(a, "a", "tensordot"), _tensor(b, "b", "tensordot")
    if isinstance(axes, int):
        if not 0 <= axes <= min(a.ndim, b.ndim):
            raise ShapeError(f"tensordot: axes={axes} for shapes {a.shape} and {b.shape}")
        a_axes, b_axes = list(range(a.ndim - axes, a.ndim)), list(range(axes))
    else:
        a_axes, b_axes = ([x] if isinstance(x, int) else list(x) for x in axes)
        if len(a_axes) != len(b_axes):
            raise ShapeError(f"tensordot: axes {axes!r} pair {len(a_axes)} axes of a with "
                             f"{len(b_axes)} of b")
        a_axes = [ax % a.ndim for ax in a_axes]
        b_axes = [ax % b.ndim for ax in b_axes]
    letters = iter(string.ascii_letters)
    sa = [next(letters) for _ in range(a.ndim)]
    sb = [next(letters) for _ in range(b.ndim)]
    for x, y in zip(a_axes, b_axes):
        sb[y] = sa[x]
    out = [c for n, c in enumerate(sa) if n not in a_axes] + \
        [c for n, c in enumerate(sb) if n not in b_axes]
    return _contract([a, b], ["".join(sa), "".join(sb)], "".join(out))


def dot(a: Tensor, b: Tensor) -> Tensor:
    """numpy's ``dot``: the inner product of vectors, the product of matrices, and for
    higher ranks the sum over ``a``'s last axis and ``b``'s second to last."""
    a, b = _tensor(a, "a", "dot"), _tensor(b, "b", "dot")
    if a.ndim <= 2 and b.ndim <= 2 and a.ndim and b.ndim:
        return matmul(a, b)
    if not a.ndim or not b.ndim:
        return a * b
    return tensordot(a, b, ([-1], [-2]))


def inner(a: Tensor, b: Tensor) -> Tensor:
    """numpy's ``inner``: the sum over the last axes of both."""
    a, b = _tensor(a, "a", "inner"), _tensor(b, "b", "inner")
    return tensordot(a, b, ([-1], [-1]))


def outer(a: Tensor, b: Tensor) -> Tensor:
    """numpy's ``outer``: ``a.ravel()[:, None] * b.ravel()[None, :]``."""
    a, b = _tensor(a, "a", "outer").flatten(), _tensor(b, "b", "outer").flatten()
    return _contract([a, b], ["i", "j"], "ij")
