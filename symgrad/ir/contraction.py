"""Contractions of IR nodes: a product of operands indexed by letters, summed over the
letters the output lacks (the engine of ``sg.einsum``, ``sg.tensordot`` and numpy's
``matmul``).

A product of two matrices is the IR's ``matmul`` (symgrad's GEMM, or a BLAS), and so is a
stack of matrices times one matrix when the stack's sizes are known (one product of the
stack's rows).  Every other contraction is a broadcast product summed over the contracted
axes: the kernel computes it in one loop that multiplies and accumulates in registers, the
broadcast product never stored, and its gradient is a contraction of the same kind.
"""

import math

from symgrad.errors import ShapeError
from symgrad.ir.build import (
    broadcast_shapes,
    broadcast_to,
    matmul,
    mul,
    reduce_sum,
    reshape,
    transpose,
)


def contract(nodes, subscripts, output):
    """The sum over the letters not in ``output`` of the product of ``nodes`` (each indexed
    by its letters in ``subscripts``), with its axes in the order of ``output``."""
    sizes = {}
    for node, letters in zip(nodes, subscripts):
        for letter, size in zip(letters, node.shape):
            known = sizes.setdefault(letter, size)
            if known != size:
                raise ShapeError(f"einsum: index {letter!r} has size {known} in one operand and "
                                 f"{size} in another")
    product = _as_matmul(nodes, subscripts, output)
    if product is not None:
        return product
    letters = []
    for term in subscripts:
        for letter in term:
            if letter not in letters:
                letters.append(letter)
    # Each operand's axes in the order of ``letters``, with axes of size 1 for the others.
    for node, term in zip(nodes, subscripts):
        order = sorted(range(len(term)), key=lambda axis: letters.index(term[axis]))
        if order != list(range(len(term))):
            node = transpose(node, order)
        shape = tuple(sizes[letter] if letter in term else 1 for letter in letters)
        if shape != node.shape:
            node = reshape(node, shape)
        product = node if product is None else mul(product, node)
    summed = [axis for axis, letter in enumerate(letters) if letter not in output]
    if summed:
        product = reduce_sum(product, summed)
    kept = [letter for letter in letters if letter in output]
    order = [kept.index(letter) for letter in output]
    if order != list(range(len(order))):
        product = transpose(product, order)
    shape = tuple(sizes[letter] for letter in output)
    if product.shape != shape:
        product = broadcast_to(product, shape)
    return product


def _as_matmul(nodes, subscripts, output):
    """The contraction as the IR's matrix product, where it is one: two operands, the second
    of rank 2, sharing one summed index, the output holding the others (either transposed
    for matrices); the first may be a stack of static size.  Else None."""
    if len(nodes) != 2:
        return None
    (a, b), (sa, sb) = nodes, subscripts
    if len(sb) != 2 or len(sa) < 2:
        return None
    shared = set(sa) & set(sb)
    if len(shared) != 1 or len(set(sa)) != len(sa) or len(set(sb)) != len(sb):
        return None
    (k,) = shared
    if k in output or sorted(output) != sorted((set(sa) | set(sb)) - {k}):
        return None
    (n,) = [letter for letter in sb if letter != k]
    rows = [letter for letter in sa if letter != k]
    if len(sa) > 2 and any(isinstance(a.shape[sa.index(r)], str) for r in rows[:-1]):
        return None             # a stack of symbolic size: its rows cannot be merged
    if len(sa) > 2 and output != "".join(rows) + n:
        return None
    left = a
    order = [sa.index(r) for r in rows] + [sa.index(k)]
    if order != list(range(len(sa))):
        left = transpose(left, order)
    stack = left.shape[:-1]
    if len(stack) != 1:
        left = reshape(left, (math.prod(stack), left.shape[-1]))
    right = b if sb == k + n else transpose(b)
    product = matmul(left, right)
    if len(sa) > 2:
        return reshape(product, stack + (right.shape[1],))
    if output != rows[0] + n:
        product = transpose(product)
    return product


def general_matmul(a, b):
    """numpy's ``matmul`` of two nodes: a product of matrices over the last two axes, the
    batch axes before them broadcast; a 1-D operand is a row (left) or a column (right)
    vector, its axis removed from the result."""
    if not a.shape or not b.shape:
        raise ShapeError(f"matmul: operands must have at least one axis, got shapes {a.shape} "
                         f"and {b.shape} (use * for a scalar)")
    if len(a.shape) == 2 and len(b.shape) == 2:
        return matmul(a, b)
    inner = b.shape[0] if len(b.shape) == 1 else b.shape[-2]
    if a.shape[-1] != inner:
        raise ShapeError(f"matmul: shapes {a.shape} and {b.shape} do not fit "
                         f"({a.shape[-1]} != {inner})")
    a_batch, b_batch = a.shape[:-2], b.shape[:-2]
    shape = broadcast_shapes(a_batch, b_batch, context="matmul's batch axes")
    rank = len(shape)
    # Batch axes of size 1 against larger ones: broadcast first, so that each letter has
    # one size.
    if len(a.shape) > 2 and len(b.shape) > 2:
        if a_batch != shape[rank - len(a_batch):]:
            a = broadcast_to(a, shape[rank - len(a_batch):] + a.shape[-2:])
        if b_batch != shape[rank - len(b_batch):]:
            b = broadcast_to(b, shape[rank - len(b_batch):] + b.shape[-2:])
    batch = "abcdefghlmnopqrstuvwxyz"[:rank]
    sa = batch[rank - len(a_batch):] + ("ik" if len(a.shape) >= 2 else "k")
    sb = batch[rank - len(b_batch):] + ("kj" if len(b.shape) >= 2 else "k")
    out = batch + ("i" if len(a.shape) >= 2 else "") + ("j" if len(b.shape) >= 2 else "")
    return contract([a, b], [sa, sb], out)
