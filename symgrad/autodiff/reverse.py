"""Reverse-mode differentiation over the IR.

One iterative pass over the nodes in reverse topological order applies each op's
vector-Jacobian rule (:data:`symgrad.autodiff.rules.VJP_RULES`) and sums the contributions
that reach a node from all its users: the chain rule and the Jacobian sum rule.  The result
is again IR, so the gradient graph shares every forward value it needs with the forward graph.

Branches: a contribution that flows into the ``if_true`` side of ``select(c, a, b)`` is
*guarded* by ``c`` (the ``if_false`` side by ``not c``; nested branches by the conjunction).
Values computed under a guard are meaningful only where it holds (elsewhere they may be NaN:
``log`` or ``1/x`` at 0, ``sqrt`` of a negative number); they are masked with
``select(guard, value, 0)`` where they meet contributions under another guard and where they
reach a differentiation target, so the side not taken contributes exactly 0.
"""

from symgrad import ir
from symgrad.autodiff.rules import NON_DIFFERENTIABLE, VJP_RULES, Guarded
from symgrad.ir.ops import ELEMENTWISE, LEAVES
from symgrad.messages import bounded_list, bounded_text


def _and_guard(guard, cond):
    return cond if guard is None else ir.logical_and(guard, cond)


def _masked(guard, value):
    """``value`` where ``guard`` holds, exactly 0 elsewhere."""
    if guard is None:
        return value
    return ir.select(guard, value, ir.const(0.0, value.dtype))


def _total(incoming):
    """Sum of the contributions ``(value, guard)`` reaching a node, and the guard of the sum.

    Contributions that all carry one guard keep it, unmasked; otherwise each is masked by its
    own guard before the sum, which is then unconditional.
    """
    guards = {id(guard): guard for _, guard in incoming}
    if len(guards) == 1:
        return ir.balanced(ir.add, (value for value, _ in incoming)), incoming[0][1]
    return ir.balanced(ir.add, (_masked(guard, value) for value, guard in incoming)), None


def vjp(output, wrt, cotangent=None):
    """Cotangents of ``output`` with respect to each node of ``wrt``.

    Parameters
    ----------
    output : Node
        A float node.
    wrt : sequence of Node
        The nodes to differentiate with respect to (usually INPUT nodes).
    cotangent : Node, optional
        The seed, of the output's shape; defaults to ones (the gradient of a scalar output).

    Returns
    -------
    list of Node
        ``d output / d w`` for each ``w`` in ``wrt`` (a zero constant where ``output`` does not
        depend on ``w``).
    """
    gradients, _ = reverse(output, wrt, (), cotangent)
    return gradients


def reverse(output, wrt, record=(), cotangent=None):
    """Reverse mode: the gradients of ``output`` with respect to ``wrt``, and the total
    cotangent reaching each node of ``record`` (``id(node) -> Node``; absent where no
    gradient reaches it), as the backward pass uses it."""
    if output.dtype == "bool":
        raise TypeError("cannot differentiate a boolean result")
    if cotangent is None:
        cotangent = ir.const(1.0, output.dtype, output.shape)
    order = ir.toposort([output])
    targets = {id(w) for w in wrt}
    recorded_ids = {id(r) for r in record}
    needs = set()
    for node in order:
        if node.dtype == "bool" or node.dtype in ir.INDEX_DTYPES:
            continue
        if id(node) in targets or any(id(a) in needs for a in node.args):
            needs.add(id(node))

    # contributions[id] = list of (value, guard); guard None means unconditional.
    contributions = {id(output): [(cotangent, None)]}
    totals = {}
    recorded = {}
    for node in reversed(order):
        incoming = contributions.pop(id(node), None)
        if not incoming or id(node) not in needs:
            continue
        ct, guard = _total(incoming)
        if id(node) in targets:
            totals[id(node)] = _masked(guard, ct)
        if id(node) in recorded_ids:
            recorded[id(node)] = ct
        if node.op in LEAVES or node.op in NON_DIFFERENTIABLE:
            continue
        if guard is not None and node.op not in ELEMENTWISE:
            # Contractions, reductions and views move elements around: a guard (which has
            # the node's shape and layout) is applied before, not after, them.
            ct, guard = _masked(guard, ct), None
        outputs = VJP_RULES[node.op](ct, node, *node.args)
        for operand, value in zip(node.args, outputs):
            if value is None or id(operand) not in needs:
                continue
            operand_guard = guard
            if isinstance(value, Guarded):
                operand_guard = _and_guard(guard, value.condition)
                value = value.value
            if operand.shape != node.shape or node.op not in ELEMENTWISE:
                # A guard has the node's shape and layout: apply it before the cotangent is
                # summed, reshaped or contracted into the operand's shape.
                value = ir.unbroadcast(_masked(operand_guard, value), operand.shape)
                operand_guard = None
            contributions.setdefault(id(operand), []).append((value, operand_guard))
    gradients = [totals.get(id(w), ir.const(0.0, w.dtype if w.dtype != "bool" else "float64",
                                            w.shape)) for w in wrt]
    return gradients, recorded


def value_and_grad(function, wrt):
    """A new :class:`~symgrad.ir.Function` computing ``function``'s single output and its
    gradient with respect to the inputs named in ``wrt``, forward and backward together.

    The outputs are ``(value, d value/d wrt[0], d value/d wrt[1], ...)``.
    """
    if len(function.outputs) != 1:
        raise ValueError(f"value_and_grad needs a function with one output, "
                         f"got {len(function.outputs)}")
    by_name = {node.attrs: node for node in function.inputs}
    wrt_nodes = []
    for name in wrt:
        if name not in by_name:
            raise ValueError(f"wrt names {bounded_text(name, quoted=True)}, which is not an "
                             f"input of the function; inputs are {bounded_list(by_name)}")
        if by_name[name].dtype in ir.INDEX_DTYPES + ("bool",):
            kind = "a boolean" if by_name[name].dtype == "bool" else "an integer"
            raise TypeError(f"cannot differentiate with respect to {name!r}: it is {kind} "
                            f"input, through which no gradient flows")
        wrt_nodes.append(by_name[name])
    (value,) = function.outputs
    grads = vjp(value, wrt_nodes)
    names = [function.output_names[0]] + [f"d{function.output_names[0]}/d{n}" for n in wrt]
    return ir.Function(function.inputs, [value, *grads], names)
