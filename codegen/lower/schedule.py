"""Scheduling a tensor IR function: which values get a buffer, and which loops compute them.

Every node falls in one class:

* ``immediate``: constants and symbolic sizes, materialised as LLVM constants or loads;
* ``buffer``: inputs, outputs, matrix products, reductions, and the elementwise values that
  must be stored (see :func:`_must_store`): each has a contiguous row-major buffer;
* ``view``: transpose, broadcast, reshape and slices of a stored value: strides over its
  buffer, no data moved;
* ``inline``: every other elementwise value, computed in registers inside the loop that needs
  it, where forward and backward values of the same element share the loop body.  The
  ``indexed`` ops (padding, element indices) are computed in loops too, from the loop index:
  a pad reads its operand at other elements, which must therefore be stored (or a view).

The steps are loops in dependency order: fused elementwise groups (all the stored elementwise
values and reductions over one shape that can be computed in the same pass: a reduction
accumulates inside the loop that computes its operand), matrix products, and copies into
outputs.
"""

from dataclasses import dataclass, field

from symgrad.ir.ops import ELEMENTWISE, Op

#: How a tensor kernel computes each op that is not elementwise (elementwise ops are fused
#: into the loops and lowered by :data:`symgrad.codegen.lower.mathlib.LOWERING_RULES`):
#: ``"view"``, a strided view of its operand, no loop of its own (its strides:
#: :data:`symgrad.codegen.lower.tensor.VIEW_RULES`); ``"reduction"``, accumulated in the loop
#: over its operand (:data:`~symgrad.codegen.lower.tensor.REDUCTION_RULES`); ``"matmul"``, a
#: step of its own (:data:`symgrad.codegen.lower.matmul.PRODUCT_RULES`); ``"indexed"``,
#: computed in the loops like an elementwise value, from the loop index
#: (:data:`~symgrad.codegen.lower.tensor.INDEXED_RULES`); ``"scatter"``, a step of its own
#: that adds its operand's elements into a zeroed buffer at their indices, in order, on one
#: thread (:data:`~symgrad.codegen.lower.tensor.SCATTER_RULES`); ``"scan"``, a step of its
#: own that runs along an axis, each element from the one before it
#: (:data:`~symgrad.codegen.lower.tensor.SCAN_RULES`).
STEP_KIND = {
    Op.BROADCAST: "view", Op.RESHAPE: "view", Op.TRANSPOSE: "view", Op.SLICE: "view",
    Op.SUM: "reduction", Op.AMAX: "reduction", Op.AMIN: "reduction", Op.PROD: "reduction",
    Op.MATMUL: "matmul",
    Op.PAD: "indexed", Op.IOTA: "indexed", Op.GATHER: "indexed",
    Op.SCATTER_ADD: "scatter", Op.TAKE_ALONG: "indexed", Op.PUT_ADD_ALONG: "scatter",
    Op.LINREC: "scan",
}
VIEW_OPS = frozenset(op for op, kind in STEP_KIND.items() if kind == "view")
REDUCTION_OPS = frozenset(op for op, kind in STEP_KIND.items() if kind == "reduction")
PRODUCT_OPS = frozenset(op for op, kind in STEP_KIND.items() if kind == "matmul")
INDEXED_OPS = frozenset(op for op, kind in STEP_KIND.items() if kind == "indexed")
SCATTER_OPS = frozenset(op for op, kind in STEP_KIND.items() if kind == "scatter")
SCAN_OPS = frozenset(op for op, kind in STEP_KIND.items() if kind == "scan")
# Ops computed by a step of their own, on one thread, from stored operands.
OWN_STEP_OPS = SCATTER_OPS | SCAN_OPS
# The indexed ops that read their operand at other elements than the loop's.
GATHERING_OPS = frozenset(op for op in INDEXED_OPS if op is not Op.IOTA)
# The ops computed in the loops, stored or inline.
LOOP_OPS = ELEMENTWISE | INDEXED_OPS

class TensorLoweringError(NotImplementedError):
    """The IR function uses something this lowering does not handle."""


IMMEDIATE_OPS = frozenset({Op.CONST, Op.DIM})

# The most levels of inline values one loop body computes: a deeper chain of elementwise
# values is stored every so many levels.  Planning stays linear in the graph and a loop body
# small enough for LLVM, whose time grows faster than linearly in a body's size, while one
# more pass over memory per this many levels of arithmetic costs next to nothing.
MAX_INLINE_DEPTH = 48

# The most values (stored and inline) one loop computes; a value that would join a fuller loop
# starts another over the same shape, for the same reason.
MAX_STEP_NODES = 512


@dataclass
class Step:
    """One loop nest: ``kind`` is 'elementwise', 'matmul', 'scatter', 'copy' or 'combine'.

    For 'elementwise', ``nodes`` are the stored values it computes: elementwise values of
    ``shape`` and reductions whose operand has ``shape`` (accumulated in the loop; nothing in
    the same loop reads them).  For the others, ``nodes`` holds the one node computed.
    ``inline`` lists, in evaluation order, the inline values the loop body computes.

    An elementwise step over at least one axis is ``chunked``: it runs as independent chunks
    of rows (:func:`chunking`), which threads may share.  A reduction over its first axis then
    accumulates one partial result per chunk (:attr:`Schedule.partials`), and the 'combine'
    step after it adds the partials up in chunk order; ``shape`` of a 'combine' step is that
    of the chunked step.
    """

    kind: str
    shape: tuple
    nodes: list
    inline: list = field(default_factory=list)
    slots: list = field(default_factory=list)
    chunked: bool = False      # runs in chunks of rows of its first axis (see chunking())


@dataclass
class Schedule:
    """Buffers and loops for one function.

    Attributes
    ----------
    slots : dict
        ``id(node) -> buffer index`` for every stored node.  Buffers ``0..len(inputs)-1`` are
        the inputs, then one per output, then the temporaries.
    temporaries : list of Node
        The stored nodes that are neither inputs nor outputs, in slot order.
    steps : list of Step
    partials : list of (Node, tuple)
        Reductions over the first axis of a chunked step, with that step's shape: each has a
        buffer of one partial result per chunk, in the slots after the temporaries.
    """

    function: object
    slots: dict
    temporaries: list
    steps: list
    views: set
    partials: list = field(default_factory=list)

    def __post_init__(self):
        base = len(self.function.inputs) + len(self.function.outputs) + len(self.temporaries)
        self._partial_slots = {id(reduction): base + index
                               for index, (reduction, _) in enumerate(self.partials)}

    def partial_slot(self, node):
        """The slot of the partial results of reduction ``node``, or None."""
        return self._partial_slots.get(id(node))


#: Elements per chunk of a chunked step (rows of its first axis, at least one row).
CHUNK_ELEMENTS = 1 << 13


def chunking(rows, row_size):
    """``(rows per chunk, number of chunks)`` for a step of ``rows`` rows of ``row_size``
    elements.  Fixed by the sizes alone, never by the number of threads, so that results
    (sums over chunks included) do not depend on it.  The kernels compute the same in LLVM
    (:meth:`symgrad.codegen.lower.tensor._Lowering.chunks`)."""
    per_chunk = max(1, CHUNK_ELEMENTS // max(row_size, 1))
    return per_chunk, -(-rows // per_chunk)


def moves_unit_axes(node):
    """Whether reshape ``node`` only adds or removes axes of size 1: the operand's other axes,
    in order, are the result's, so that it reads any view in place."""
    return [d for d in node.args[0].shape if d != 1] == [d for d in node.shape if d != 1]


def _consumers(nodes):
    users = {id(node): [] for node in nodes}
    for node in nodes:
        for arg in node.args:
            users[id(arg)].append(node)
    return users


def _is_float_elementwise(node):
    return node.op in LOOP_OPS and node.dtype != "bool"


def _must_store(node, users, outputs):
    """Elementwise values stored in a buffer rather than recomputed where used."""
    if id(node) in outputs:
        return True
    for user in users[id(node)]:
        if user.op in PRODUCT_OPS or user.op in VIEW_OPS or user.op in GATHERING_OPS or \
                user.op in OWN_STEP_OPS:
            return True
        if user.op in LOOP_OPS and user.shape != node.shape:
            return True       # broadcast into a larger loop: compute once, not per row
    return False


def _bound_depth(order, stored, views):
    """Store the float elementwise values that are more than :data:`MAX_INLINE_DEPTH` levels
    of inline values above the nearest stored ones."""
    depth = {}
    for node in order:
        key = id(node)
        if key in stored or key in views or node.op in IMMEDIATE_OPS or \
                node.op not in LOOP_OPS:
            depth[key] = 0
            continue
        level = 1 + max((depth[id(arg)] for arg in node.args), default=0)
        if level > MAX_INLINE_DEPTH and node.dtype != "bool":
            stored[key] = node
            level = 0
        depth[key] = level


def _closure(root, stored, views, order_index):
    """Inline nodes that computing ``root`` needs, in evaluation order; the stored or view
    nodes it reads; and the ids of the stored or view nodes it reads at other elements than
    the loop's (operands of pads)."""
    inline, reads, far = {}, {}, set()
    stack = [root]
    while stack:
        node = stack.pop()
        if node.op in GATHERING_OPS:
            far |= {id(arg) for arg in node.args}
        if node is not root:
            key = id(node)
            if key in inline or key in reads or node.op in IMMEDIATE_OPS:
                continue
            if key in stored or key in views or node.op is Op.INPUT:
                reads[key] = node
                continue
            inline[key] = node
        stack.extend(node.args)
    ordered = sorted(inline.values(), key=lambda n: order_index[id(n)])
    return ordered, list(reads.values()), far


def _view_bases(node, views):
    """The stored nodes a view reads (through chains of views)."""
    bases = []
    stack = [node]
    while stack:
        current = stack.pop()
        if id(current) in views:
            stack.extend(current.args)
        else:
            bases.append(current)
    return bases


def schedule(function, blas=False):
    """Plan the buffers and loops that compute ``function`` (``blas``: matrix products go to
    a BLAS, which reads transposed operands in place)."""
    order = function.nodes
    order_index = {id(node): index for index, node in enumerate(order)}
    users = _consumers(order)
    outputs = {id(node) for node in function.outputs}

    stored = {}
    views = set()
    for node in order:
        if node.op is Op.INPUT or node.op in PRODUCT_OPS or node.op in REDUCTION_OPS or \
                node.op in OWN_STEP_OPS:
            stored[id(node)] = node
        elif node.op in VIEW_OPS:
            views.add(id(node))
        elif _is_float_elementwise(node) and _must_store(node, users, outputs):
            stored[id(node)] = node
    _bound_depth(order, stored, views)
    # View operands must be stored; a reshape needs a contiguous buffer (unless it only adds
    # or removes axes of size 1), so a view feeding a reshape is copied into one first.
    # Outputs that are views are stored as well, and so is a transposed right operand of a
    # matrix product: its rows must be contiguous for the product's inner loop to vectorise
    # (the copy costs O(k n), the product O(m k n)).
    for node in order:
        if node.op is Op.MATMUL:
            for position, operand in enumerate(node.args):
                if id(operand) not in views:
                    continue
                # A product reads a stored matrix or the transpose of one in place.
                transposed = operand.op is Op.TRANSPOSE and id(operand.args[0]) not in views
                if not transposed or (position == 1 and not blas):
                    views.discard(id(operand))
                    stored[id(operand)] = operand
        if node.op in GATHERING_OPS or node.op in OWN_STEP_OPS:
            # Read at other elements than the loop's (indices included): stored or views.
            for operand in node.args:
                if id(operand) not in views and operand.op not in IMMEDIATE_OPS:
                    stored[id(operand)] = operand
        if node.op in VIEW_OPS:
            operand = node.args[0]
            if node.op is Op.RESHAPE and id(operand) in views and not moves_unit_axes(node):
                views.discard(id(operand))
                stored[id(operand)] = operand
            elif id(operand) not in views and operand.op not in IMMEDIATE_OPS:
                stored[id(operand)] = operand
        if id(node) in outputs and id(node) in views:
            views.discard(id(node))
            stored[id(node)] = node

    # Values needed by several loops are stored once rather than recomputed in each.
    while True:
        steps = _group(order, stored, views, order_index)
        owner = {}
        shared = []
        for index, step in enumerate(steps):
            for node in step.inline:
                if node.dtype == "bool" or node.op is Op.IOTA:
                    continue
                if owner.setdefault(id(node), index) != index:
                    shared.append(node)
        if not shared:
            break
        for node in shared:
            stored[id(node)] = node

    slots = {}
    for index, node in enumerate(function.inputs):
        slots[id(node)] = index
    copies = []
    for index, node in enumerate(function.outputs):
        slot = len(function.inputs) + index
        if id(node) in slots or node.op in IMMEDIATE_OPS or node.op is Op.INPUT:
            copies.append((node, slot))
        else:
            slots[id(node)] = slot
    temporaries = []
    for node in order:
        if id(node) in stored and id(node) not in slots:
            slots[id(node)] = len(function.inputs) + len(function.outputs) + len(temporaries)
            temporaries.append(node)
    for node, slot in copies:
        inline, _, _ = _closure(node, stored, views, order_index) if node.op not in \
            IMMEDIATE_OPS and node.op is not Op.INPUT else ([], [], set())
        steps.append(Step("copy", node.shape, [node], inline, [slot]))
    for step in steps:
        if step.kind != "copy":
            step.slots = [slots[id(node)] for node in step.nodes]
    # Elementwise loops over at least one axis run in chunks; a reduction over their first
    # axis gets a combine step after them.
    partials = []
    all_steps = []
    for step in steps:
        all_steps.append(step)
        if step.kind != "elementwise" or not step.shape:
            continue
        step.chunked = True
        across = [node for node in step.nodes if node.op in REDUCTION_OPS and 0 in node.attrs]
        if across:
            partials.extend((node, step.shape) for node in across)
            all_steps.append(Step("combine", step.shape, across,
                                  slots=[slots[id(node)] for node in across]))
    return Schedule(function, slots, temporaries, all_steps, views, partials)


def _group(order, stored, views, order_index):
    """Loops in dependency order.  A stored elementwise value or reduction joins the latest
    loop over its shape when everything it reads is computed by then, unless it reads a value
    of that loop through a view (a different element) or a reduction of that loop (complete
    only after it)."""
    steps = []
    producer = {}           # id(stored node) -> index of the step computing it
    latest_loop = {}        # loop shape -> index of the latest elementwise step over it
    members, reductions, known = [], [], []     # per step: ids of its nodes, reductions, inline
    for node in order:
        if id(node) not in stored or node.op is Op.INPUT:
            continue
        if node.op in PRODUCT_OPS or node.op in OWN_STEP_OPS:
            producer[id(node)] = len(steps)
            steps.append(Step(STEP_KIND[node.op], node.shape, [node]))
            members.append({id(node)})
            reductions.append(set())
            known.append(set())
            continue
        inline, reads, far = _closure(node, stored, views, order_index)
        through_views = {id(base) for read in reads if id(read) in views
                         for base in _view_bases(read, views)}
        if node.op in VIEW_OPS:     # a stored view reads its bases at other elements
            through_views |= {id(base) for base in _view_bases(node.args[0], views)}
        # A pad reads its operand at other elements (through views or not).
        through_views |= {id(base) for read in reads if id(read) in far
                          for base in _view_bases(read, views)}
        direct = {id(read) for read in reads if id(read) not in views}
        needed = max([producer.get(key, -1) for key in direct | through_views], default=-1)
        loop_shape = node.args[0].shape if node.op in REDUCTION_OPS else node.shape
        candidate = latest_loop.get(loop_shape, -1)
        joinable = candidate >= needed and candidate >= 0 and \
            len(members[candidate]) + len(known[candidate]) < MAX_STEP_NODES
        if joinable and candidate == needed:
            joinable = not (through_views & members[candidate]) and \
                not (direct & reductions[candidate])
        if not joinable:
            candidate = len(steps)
            latest_loop[loop_shape] = candidate
            steps.append(Step("elementwise", loop_shape, [], []))
            members.append(set())
            reductions.append(set())
            known.append(set())
        step = steps[candidate]
        step.nodes.append(node)
        members[candidate].add(id(node))
        if node.op in REDUCTION_OPS:
            reductions[candidate].add(id(node))
        producer[id(node)] = candidate
        for n in inline:
            if id(n) not in known[candidate]:
                known[candidate].add(id(n))
                step.inline.append(n)
    for step in steps:
        if step.kind == "elementwise":
            step.inline.sort(key=lambda n: order_index[id(n)])
    return steps


def copied_sources(plan, step):
    """The stored values a step copies, one per node, where every node of the step is a
    stored value's identity or reshape (same elements, same row-major order); else None."""
    if step.kind != "elementwise" or step.inline:
        return None
    sources = []
    for node in step.nodes:
        if node.op not in (Op.STOP_GRADIENT, Op.RESHAPE) or id(node.args[0]) not in plan.slots:
            return None
        sources.append(node.args[0])
    return sources
