"""IR as readable text (jaxpr-like) and as Graphviz DOT."""

from symgrad.ir.node import format_constant, toposort, type_string
from symgrad.ir.ops import Op


def _operand_text(node, names):
    if node.op is Op.DIM:
        return f"size({node.attrs})"
    if node.op is Op.CONST:
        if node.dtype == "bool":
            return "true" if node.attrs else "false"
        return format_constant(node.attrs)
    return names[id(node)]


def function_to_text(function, title="lambda"):
    """The function as text, one operation a line, in evaluation order.

    Every operation is computed once and named once (``%0``, ``%1``, ...); shared
    subexpressions, such as forward values reused by the backward pass, are referred to by
    name wherever they are used.
    """
    names = {id(node): node.attrs for node in function.inputs}
    params = ", ".join(f"{node.attrs}: {type_string(node)}" for node in function.inputs)
    lines = [f"{title}({params}) -> ({', '.join(function.output_names)})"]
    counter = 0
    for node in function.nodes:
        if node.op in (Op.CONST, Op.INPUT, Op.DIM):
            continue
        name = f"%{counter}"
        counter += 1
        names[id(node)] = name
        operands = " ".join(_operand_text(a, names) for a in node.args)
        if _attrs_text(node):
            operands += f" {_attrs_text(node)}"
        lines.append(f"  {name}: {type_string(node)} = {node.op.value} {operands}")
    results = ", ".join(f"{label} = {_operand_text(out, names)}"
                        for label, out in zip(function.output_names, function.outputs))
    lines.append(f"  return {results}")
    return "\n".join(lines)


def _attrs_text(node):
    if node.op is Op.TRANSPOSE:
        return f"perm={list(node.attrs)}"
    if node.op in (Op.SUM, Op.AMAX, Op.AMIN, Op.PROD):
        return f"axes={list(node.attrs)}"
    if node.op in (Op.IOTA, Op.GATHER, Op.LINREC, Op.TAKE_ALONG):
        return f"axis={node.attrs}"
    if node.op in (Op.SCATTER_ADD, Op.PUT_ADD_ALONG):
        return f"axis={node.attrs[0]} size={node.attrs[1]}"
    if node.op is Op.SLICE:
        return "start,step=" + ",".join(f"{start}:{step}" for start, step in node.attrs)
    if node.op is Op.PAD:
        lows = ",".join(f"{low}:{interior}" for low, interior in node.attrs[0])
        return f"low,interior={lows} fill={format_constant(node.attrs[1])}"
    return ""


def function_to_dot(function):
    """The function's graph in Graphviz DOT: one box per operation, edges from operands."""
    lines = ["digraph symgrad {", "  rankdir=BT;", '  node [fontname="monospace"];']
    ids = {}
    for index, node in enumerate(toposort(function.outputs)):
        ids[id(node)] = f"n{index}"
        if node.op is Op.CONST:
            label, shape = format_constant(node.attrs), "plaintext"
        elif node.op is Op.INPUT:
            label, shape = node.attrs, "ellipse"
        else:
            label, shape = node.op.value, "box"
        lines.append(f'  n{index} [label="{label}\\n{type_string(node)}", shape={shape}];')
        for position, arg in enumerate(node.args):
            lines.append(f'  {ids[id(arg)]} -> n{index} [label="{position}"];')
    for name, out in zip(function.output_names, function.outputs):
        lines.append(f'  "{name}" [shape=doubleoctagon];')
        lines.append(f'  {ids[id(out)]} -> "{name}";')
    lines.append("}")
    return "\n".join(lines)
