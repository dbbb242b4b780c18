"""IR nodes: :class:`Node`, the intern table, dtypes, and the deterministic walk.

A :class:`Node` is immutable and interned: building the same operation on the same operands
twice returns the same object, so common subexpressions are shared for free and node identity
is structural equality.  Nodes are built only through the smart constructors of
:mod:`symgrad.ir.build`.

Thread safety: the intern table is guarded by :data:`INTERN_LOCK`; two threads building the
same structure at once get the same node.
"""

import math
import threading
import weakref

from symgrad.ir.ops import ARITY, Op

FLOAT_DTYPES = ("float64", "float32")
# Integer tensors are index arrays: they select elements (gather, scatter), nothing else yet.
INDEX_DTYPES = ("int64",)
DTYPES = FLOAT_DTYPES + ("bool",) + INDEX_DTYPES


class Node:
    """One IR operation: an op, its operands, static attributes, a dtype and a shape.

    Do not call the constructor: use the smart constructors of :mod:`symgrad.ir.build`
    (``add``, ``exp``, ...), which intern the node.  ``shape`` is a tuple whose entries are
    ints or names of symbolic sizes (strings).
    """

    __slots__ = ("op", "args", "attrs", "dtype", "shape", "__weakref__")
    op: Op
    args: tuple
    attrs: object
    dtype: str
    shape: tuple

    def __init__(self, op, args, attrs, dtype, shape):
        for name, value in (("op", op), ("args", args), ("attrs", attrs), ("dtype", dtype),
                            ("shape", shape)):
            object.__setattr__(self, name, value)

    def __repr__(self):
        if self.op is Op.CONST:
            return f"Node(const {format_constant(self.attrs)}:{type_string(self)})"
        if self.op is Op.INPUT:
            return f"Node(input {self.attrs}:{type_string(self)})"
        return f"Node({self.op.value}/{len(self.args)}:{type_string(self)})"

    def __setattr__(self, name, value):
        raise AttributeError("IR nodes are immutable")

    def __reduce__(self):
        raise TypeError("IR nodes are interned and cannot be pickled")

    @property
    def is_const(self):
        return self.op is Op.CONST


# Interning table: structure -> node.  Weak, so graphs nobody holds are freed.
_INTERNED: weakref.WeakValueDictionary[tuple, Node] = weakref.WeakValueDictionary()
#: Guards :data:`_INTERNED`: looking a structure up and adding it is one step, so that two
#: threads building the same node get one object.
INTERN_LOCK = threading.Lock()


def _attrs_key(op, attrs):
    # Floats are keyed by their exact bit pattern so that 0.0 and -0.0 stay distinct and NaN
    # equals itself.
    if op is Op.CONST:
        return float(attrs).hex()
    if op is Op.PAD:
        return attrs[0], float(attrs[1]).hex()
    return attrs


def make_node(op, args, attrs=None, dtype="float64", shape=()):
    """Return the interned node for this structure, creating it if needed."""
    if len(args) != ARITY[op]:
        raise ValueError(f"op {op.value!r} takes {ARITY[op]} operands, got {len(args)}")
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    args = tuple(args)
    shape = tuple(shape)
    key = (op, args, _attrs_key(op, attrs), dtype, shape)
    with INTERN_LOCK:
        node = _INTERNED.get(key)
        if node is None:
            node = Node(op, args, attrs, dtype, shape)
            _INTERNED[key] = node
    return node


def type_string(node):
    """``f64[]``, ``f32[n,3]``, ``bool[]``: the short type used in printed IR."""
    short = {"float64": "f64", "float32": "f32", "bool": "bool", "int64": "i64"}[node.dtype]
    return f"{short}[{','.join(str(d) for d in node.shape)}]"


def format_constant(value):
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if value == int(value) and abs(value) < 1e16:
        return repr(float(value))
    return repr(value)


def toposort(roots):
    """All nodes reachable from ``roots``, operands before users, in a deterministic order.

    Iterative depth-first post-order: deep graphs never hit Python's recursion limit.
    """
    order = []
    seen = set()
    for root in roots:
        if id(root) in seen:
            continue
        stack = [(root, 0)]
        seen.add(id(root))
        while stack:
            node, next_arg = stack[-1]
            if next_arg < len(node.args):
                stack[-1] = (node, next_arg + 1)
                child = node.args[next_arg]
                if id(child) not in seen:
                    seen.add(id(child))
                    stack.append((child, 0))
            else:
                stack.pop()
                order.append(node)
    return order
