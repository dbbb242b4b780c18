"""IR functions: named inputs, ordered outputs, and rebuilding in another dtype."""

from symgrad.ir.build import (
    BUILDERS,
    broadcast_to,
    cast,
    const,
    dim,
    input_node,
    iota,
    linear_recurrence,
    pad,
    put_add_along,
    reduce_max,
    reduce_min,
    reduce_prod,
    reduce_sum,
    reshape,
    scatter_add,
    slice_axes,
    take,
    take_along,
    transpose,
)
from symgrad.ir.node import FLOAT_DTYPES, INDEX_DTYPES, toposort
from symgrad.ir.ops import Op
from symgrad.messages import bounded_list


class Function:
    """A pure function of named inputs: ``outputs = f(*inputs)`` over the IR.

    Parameters
    ----------
    inputs : sequence of Node
        INPUT nodes, in argument order; names must be distinct.
    outputs : sequence of Node
        The result nodes.
    output_names : sequence of str, optional
        Display names of the outputs (default ``out0, out1, ...``).
    """

    def __init__(self, inputs, outputs, output_names=None):
        self.inputs = tuple(inputs)
        self.outputs = tuple(outputs)
        names = [node.attrs for node in self.inputs]
        for node in self.inputs:
            if node.op is not Op.INPUT:
                raise ValueError(f"function inputs must be INPUT nodes, got {node!r}")
        if len(set(names)) != len(names):
            raise ValueError(f"function inputs have repeated names: {bounded_list(names)}")
        if output_names is None:
            output_names = [f"out{i}" for i in range(len(self.outputs))]
        self.output_names = tuple(output_names)
        if len(self.output_names) != len(self.outputs):
            raise ValueError("one output name per output is needed")
        self.nodes = toposort(self.outputs)
        declared = set(map(id, self.inputs))
        sizes = {d for node in self.inputs for d in node.shape if isinstance(d, str)}
        for node in self.nodes:
            if node.op is Op.INPUT and id(node) not in declared:
                raise ValueError(f"input {node.attrs!r} is used but is not an argument of the "
                                 f"function; arguments are {bounded_list(names)}")
            if node.op is Op.DIM and node.attrs not in sizes:
                raise ValueError(f"the symbolic size {node.attrs!r} is used but no input's "
                                 f"shape has it")

    @property
    def size_names(self):
        """The symbolic sizes of the inputs, in order of first appearance."""
        names = []
        for node in self.inputs:
            for size in node.shape:
                if isinstance(size, str) and size not in names:
                    names.append(size)
        return tuple(names)

    @property
    def float_dtypes(self):
        """The float dtypes the function computes in (a kernel takes one)."""
        return {node.dtype for node in self.nodes} & set(FLOAT_DTYPES)

    @property
    def input_names(self):
        return tuple(node.attrs for node in self.inputs)

    def __repr__(self):
        from symgrad.ir.text import function_to_text
        return function_to_text(self)

    def with_dtype(self, dtype):
        """The same function computing in another float dtype (constants are re-rounded)."""
        if dtype not in FLOAT_DTYPES:
            raise ValueError(f"dtype must be one of {FLOAT_DTYPES}, got {dtype!r}")
        if all(node.dtype in (dtype, "bool") + INDEX_DTYPES for node in self.nodes):
            return self
        rebuilt = {}
        for node in self.nodes:
            rebuilt[id(node)] = _rebuild(node, [rebuilt[id(a)] for a in node.args], dtype)
        inputs = [input_node(n.attrs, dtype, n.shape) if n.dtype in FLOAT_DTYPES else n
                  for n in self.inputs]
        return Function(inputs, [rebuilt[id(o)] for o in self.outputs], self.output_names)

    def count_nodes(self):
        """Number of distinct non-leaf operations."""
        return sum(1 for node in self.nodes if node.op not in (Op.CONST, Op.INPUT))


# Constructors of ops that take their attributes as a second argument.
ATTRIBUTE_BUILDERS = {
    Op.BROADCAST: broadcast_to, Op.RESHAPE: reshape, Op.TRANSPOSE: transpose,
    Op.SUM: lambda x, axes: reduce_sum(x, axes, keepdims=True),
    Op.AMAX: lambda x, axes: reduce_max(x, axes, keepdims=True),
    Op.AMIN: lambda x, axes: reduce_min(x, axes, keepdims=True),
    Op.PROD: lambda x, axes: reduce_prod(x, axes, keepdims=True),
}
# Constructors of ops that need the node itself (its attributes and shape).
NODE_BUILDERS = {
    Op.SLICE: lambda node, x: slice_axes(x, [(start, step, count) for (start, step), count
                                             in zip(node.attrs, node.shape)]),
    Op.PAD: lambda node, x: pad(x, _pad_widths(node, x), node.attrs[1]),
    Op.GATHER: lambda node, x, idx: take(x, idx, node.attrs),
    Op.LINREC: lambda node, a, b: linear_recurrence(a, b, node.attrs),
    Op.CAST: lambda node, x: cast(x, node.dtype),
    Op.TAKE_ALONG: lambda node, x, idx: take_along(x, idx, node.attrs),
    Op.PUT_ADD_ALONG: lambda node, v, idx: put_add_along(v, idx, *node.attrs),
    Op.SCATTER_ADD: lambda node, v, idx: scatter_add(v, idx, *node.attrs),
}


def _pad_widths(node, x):
    widths = []
    for (low, interior), size, out in zip(node.attrs[0], x.shape, node.shape):
        if isinstance(size, str):
            widths.append((0, 0, 0))
        else:
            widths.append((low, out - low - size - max(size - 1, 0) * interior, interior))
    return widths


def rebuild(node, args):
    """The node with the same op and attributes over new operands."""
    if node.op in ATTRIBUTE_BUILDERS:
        return ATTRIBUTE_BUILDERS[node.op](*args, node.attrs)
    if node.op in NODE_BUILDERS:
        return NODE_BUILDERS[node.op](node, *args)
    return BUILDERS[node.op](*args)


def _rebuild(node, args, dtype):
    if node.op is Op.CONST:
        return const(node.attrs, node.dtype if node.dtype == "bool" else dtype, node.shape)
    if node.op is Op.INPUT:
        kept = node.dtype == "bool" or node.dtype in INDEX_DTYPES
        return input_node(node.attrs, node.dtype if kept else dtype, node.shape)
    if node.op is Op.DIM:
        return dim(node.attrs, dtype)
    if node.op is Op.IOTA:
        return iota(node.shape, node.attrs, dtype)
    if node.op is Op.CAST:
        return cast(args[0], node.dtype if node.dtype in INDEX_DTYPES else dtype)
    return rebuild(node, args)
