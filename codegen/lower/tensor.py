"""Lowering of tensor IR functions: loop nests over buffers, one LLVM function per kernel.

The generated function has the C signature::

    void NAME(const int64_t *sizes, T **buffers)

``sizes`` holds the runtime value of each symbolic size (in ``function.size_names`` order);
``buffers`` points at contiguous row-major arrays: the inputs, then the outputs, then the
temporaries of the schedule (:mod:`symgrad.codegen.lower.schedule`). Every loop of the schedule
becomes a loop nest; elementwise work is fused into the loops that need it, and a map over a
product that symgrad's GEMM computes (a layer's bias and activation) runs inside the product,
on the columns each unit of work has just computed.
"""

from typing import NamedTuple

from llvmlite import ir as llvm_ir

from symgrad.codegen.lower.abi import MULTIPLY_ADDS_PER_ELEMENT, STATE_WORDS
from symgrad.codegen.lower.builder import FoldingBuilder
from symgrad.codegen.lower.mathlib import LOWERING_RULES, MathDeclarations, fused_routine
from symgrad.codegen.lower.matmul import PRODUCT_RULES, epilogue, gemm_operands
from symgrad.codegen.lower.schedule import (
    CHUNK_ELEMENTS,
    IMMEDIATE_OPS,
    INDEXED_OPS,
    REDUCTION_OPS,
    VIEW_OPS,
    TensorLoweringError,
    copied_sources,
    moves_unit_axes,
    schedule,
)
from symgrad.codegen.lower.types import (
    INDEX,
    KERNEL_SYMBOL,
    POINTER,
    check_symbol,
    item_bytes,
    llvm_type,
)
from symgrad.codegen.lower.workers import emit_spin
from symgrad.ir.ops import Op

# ---- one entry per tensor op, by the kind of step the schedule makes of it (STEP_KIND) ----

def _transpose_view(lowering, node, access):
    base, strides = access
    return base, [strides[axis] for axis in node.attrs]


def _broadcast_view(lowering, node, access):
    base, strides = access
    operand = node.args[0]
    offset = len(node.shape) - len(operand.shape)
    result = []
    for axis, size in enumerate(node.shape):
        if axis < offset or (operand.shape[axis - offset] == 1 and size != 1):
            result.append(INDEX(0))
        else:
            result.append(strides[axis - offset])
    return base, result


def _reshape_view(lowering, node, access):
    base, strides = access
    if moves_unit_axes(node):       # the other axes keep their strides
        kept = iter([stride for stride, size in zip(strides, node.args[0].shape)
                     if size != 1])
        return base, [INDEX(0) if size == 1 else next(kept) for size in node.shape]
    return base, lowering.contiguous_strides(node.shape)    # the operand is stored contiguous


def _slice_view(lowering, node, access):
    # The first element taken, then ``step`` elements of the operand per element taken (the
    # pointer arithmetic in the prologue, where every loop sees it).
    base, strides = access
    prologue = lowering.prologue
    offset = INDEX(0)
    for (start, _), stride in zip(node.attrs, strides):
        if start:
            offset = prologue.add(offset, prologue.mul(INDEX(start), stride))
    first = prologue.gep(base, [offset], source_etype=llvm_type(node.dtype))
    lowering.alias_metadata[id(first)] = lowering.alias_metadata.get(id(base))
    return first, [prologue.mul(INDEX(step), stride) if step != 1 else stride
                   for (_, step), stride in zip(node.attrs, strides)]


#: The ``(base pointer, strides)`` through which a view reads its operand's buffer:
#: rule(lowering, node, the operand's (base, strides)).
VIEW_RULES = {Op.TRANSPOSE: _transpose_view, Op.BROADCAST: _broadcast_view,
              Op.RESHAPE: _reshape_view, Op.SLICE: _slice_view}


class Reduction(NamedTuple):
    """A reduction's start value, and ``combine(lowering, node, current, value, ordered)``."""
    identity: float
    combine: object


def _add(lowering, node, current, value, ordered):
    # reassoc, on the accumulation only: the only fast-math flag used anywhere.  It lets the
    # vectoriser keep one partial sum per lane (a different order of the same additions, like
    # numpy's pairwise sum); NaN, inf and signed-zero semantics are untouched.  Partial
    # results of chunks are added in chunk order.
    return lowering.builder.fadd(current, value, flags=() if ordered else ("reassoc",))


def _multiply(lowering, node, current, value, ordered):
    # As _add: one partial product per lane.
    return lowering.builder.fmul(current, value, flags=() if ordered else ("reassoc",))


def _maximum(lowering, node, current, value, ordered):
    return lowering.builder.call(lowering.math.intrinsic("maximum", node.dtype, 2),
                                 [current, value])


def _minimum(lowering, node, current, value, ordered):
    return lowering.builder.call(lowering.math.intrinsic("minimum", node.dtype, 2),
                                 [current, value])


#: How each reduction accumulates.
REDUCTION_RULES = {Op.SUM: Reduction(0.0, _add), Op.AMAX: Reduction(float("-inf"), _maximum),
                   Op.AMIN: Reduction(float("inf"), _minimum), Op.PROD: Reduction(1.0, _multiply)}


def _own_indices(node, indices):
    """The indices of ``node``'s element at the loop index (of a loop whose shape ``node``
    broadcasts to): 0 along its axes of size 1."""
    offset = len(indices) - len(node.shape)
    return [INDEX(0) if size == 1 else indices[axis + offset]
            for axis, size in enumerate(node.shape)]


def _iota(lowering, node, indices, memo):
    index = _own_indices(node, indices)[node.attrs]
    return lowering.builder.sitofp(index, llvm_type(node.dtype))


def _pad(lowering, node, indices, memo):
    # Along each padded axis, the operand's element (i - low) / (interior + 1) where that is
    # a whole number in range; the fill elsewhere.  The index is clamped to 0 outside before
    # the load, so that no address outside the operand is ever formed.
    builder = lowering.builder
    operand = node.args[0]
    (widths, fill) = node.attrs
    inside = None
    operand_indices = []
    for index, (low, interior), size, padded in zip(_own_indices(node, indices), widths,
                                                    operand.shape, node.shape):
        if size == padded:          # not padded (a symbolic axis never is)
            operand_indices.append(index)
            continue
        shifted = builder.sub(index, INDEX(low)) if low else index
        span = (size - 1) * (interior + 1) + 1
        condition = builder.icmp_unsigned("<", shifted, INDEX(span))
        if interior:
            condition = builder.and_(condition, builder.icmp_unsigned(
                "==", builder.urem(shifted, INDEX(interior + 1)), INDEX(0)))
            shifted = builder.udiv(shifted, INDEX(interior + 1))
        inside = condition if inside is None else builder.and_(inside, condition)
        operand_indices.append(builder.select(condition, shifted, INDEX(0)))
    value = _read(lowering, operand, operand_indices, memo)
    if inside is None:
        return value
    return builder.select(inside, value, llvm_ir.Constant(llvm_type(node.dtype), fill))


def _read(lowering, operand, indices, memo):
    """``operand``'s element at ``indices`` (its own, not the loop's): a constant or a load."""
    if operand.op in IMMEDIATE_OPS:
        return lowering.value(operand, indices, memo)
    return lowering.load(operand, indices)


def _index_in_range(lowering, position, size):
    """``(index, inside)``: an index from ``-size`` to ``size - 1`` as one from 0 (numpy's
    negative indices), and whether it was in that range.  Outside (an index argument never
    is: the caller refuses it; a computed index may be) the index is 0, so that no address
    outside the operand is ever formed, and the gathers give NaN there (JAX's "fill")."""
    builder = lowering.builder
    extent = lowering.extent(size)
    wrapped = builder.select(builder.icmp_signed("<", position, INDEX(0)),
                             builder.add(position, extent), position)
    inside = builder.icmp_unsigned("<", wrapped, extent)
    return builder.select(inside, wrapped, INDEX(0)), inside


def _index_axes(node, along):
    """``(first, count)``: the axes of the result (or of a scatter's values) that the index
    of ``node`` (a gather or a scatter) is read at, and how many of them the values' index
    takes the place of: the index's own axes for take and scatter_add; every axis, the one
    ``axis`` replaced, for take_along and put_add_along."""
    axis = node.attrs if node.op in (Op.GATHER, Op.TAKE_ALONG) else node.attrs[0]
    return axis, 1 if along else len(node.args[1].shape)


def _gather(lowering, node, indices, memo, along=False):
    x, idx = node.args
    axis, rank = _index_axes(node, along)
    own = _own_indices(node, indices)
    position, inside = _index_in_range(
        lowering, lowering.value(idx, own if along else own[axis:axis + rank], memo),
        x.shape[axis])
    value = _read(lowering, x, own[:axis] + [position] + own[axis + rank:], memo)
    return lowering.builder.select(inside, value,
                                   llvm_ir.Constant(llvm_type(node.dtype), float("nan")))


def _take_along(lowering, node, indices, memo):
    return _gather(lowering, node, indices, memo, along=True)


#: How each indexed op computes its element at the loop index: rule(lowering, node, indices,
#: memo) -> the value.
INDEXED_RULES = {Op.PAD: _pad, Op.IOTA: _iota, Op.GATHER: _gather, Op.TAKE_ALONG: _take_along}


def _scatter(lowering, step, along=False):
    """Zero the result, then add each operand element at its index, in row-major order (one
    thread: the same sums, in the same order, whatever the number of threads)."""
    builder = lowering.builder
    (node,), (slot,) = step.nodes, step.slots
    values, idx = node.args
    size = node.attrs[1]
    axis, rank = _index_axes(node, along)
    target = (lowering.buffers[slot], lowering.contiguous_strides(node.shape))
    element = llvm_type(node.dtype)
    zero = llvm_ir.Constant(element, 0.0)

    def clear(indices):
        address = lowering.address(target, node.shape, indices, node.dtype)
        lowering.annotate(builder.store(zero, address), target[0])
    lowering.loop_nest(node.shape, clear)

    def add(indices):
        memo = {}
        position, inside = _index_in_range(lowering, lowering.value(
            idx, indices if along else indices[axis:axis + rank], memo), size)
        # A contribution from outside the range (a computed index) is dropped.
        value = builder.select(inside, lowering.value(values, indices, memo), zero)
        address = lowering.address(target, node.shape,
                                   indices[:axis] + [position] + indices[axis + rank:],
                                   node.dtype)
        current = lowering.annotate(builder.load(address, typ=element), target[0])
        lowering.annotate(builder.store(builder.fadd(current, value), address), target[0])
    lowering.loop_nest(values.shape, add)


def _put_add_along(lowering, step):
    _scatter(lowering, step, along=True)


#: How each scatter op's step is lowered: rule(lowering, step).
SCATTER_RULES = {Op.SCATTER_ADD: _scatter, Op.PUT_ADD_ALONG: _put_add_along}


def _linrec(lowering, step):
    """h[0] = b[0], h[t] = a[t] h[t-1] + b[t] along the axis, in row-major order over the
    result (so h[t-1] is written before h[t] is computed), on one thread.  The product and
    the sum round separately, as numpy's cumsum and cumprod do."""
    builder = lowering.builder
    (node,), (slot,) = step.nodes, step.slots
    a, b = node.args
    axis = node.attrs
    target = (lowering.buffers[slot], lowering.contiguous_strides(node.shape))
    element = llvm_type(node.dtype)

    def body(indices):
        memo = {}
        first = builder.icmp_signed("==", indices[axis], INDEX(0))
        previous = list(indices)
        previous[axis] = builder.select(first, INDEX(0), builder.sub(indices[axis], INDEX(1)))
        before = lowering.annotate(builder.load(lowering.address(
            target, node.shape, previous, node.dtype), typ=element), target[0])
        added = lowering.value(b, indices, memo)
        step_value = builder.fadd(builder.fmul(lowering.value(a, indices, memo), before), added)
        value = builder.select(first, added, step_value)
        address = lowering.address(target, node.shape, indices, node.dtype)
        lowering.annotate(builder.store(value, address), target[0])
    lowering.loop_nest(node.shape, body)


#: How each scan op's step is lowered: rule(lowering, step).
SCAN_RULES = {Op.LINREC: _linrec}


def _chunking(builder, rows, row_size):
    """:func:`symgrad.codegen.lower.schedule.chunking` in LLVM: ``(rows per chunk, number of
    chunks)``."""
    row_size = builder.select(builder.icmp_signed(">", row_size, INDEX(1)), row_size, INDEX(1))
    per_chunk = builder.sdiv(INDEX(CHUNK_ELEMENTS), row_size)
    per_chunk = builder.select(builder.icmp_signed(">", per_chunk, INDEX(1)), per_chunk,
                               INDEX(1))
    count = builder.sdiv(builder.add(rows, builder.sub(per_chunk, INDEX(1))), per_chunk)
    return per_chunk, count


def workspace_counts(function, plan):
    """For :func:`symgrad.codegen.lower.entries.add_call_entry`: emits the element counts of the
    temporaries (the schedule's, then the partials of reductions over chunks, as
    ``TensorKernel._new_workspace`` allocates them) and the work of a call (the elements of
    the chunked steps and the multiply-adds of the products, as ``_new_workspace`` counts
    them)."""
    names = function.size_names

    def emit(builder, size):
        known = {}      # shape -> its element count, emitted once

        def count(shape):
            shape = tuple(shape)
            if shape not in known:
                total = INDEX(1)
                for extent in shape:
                    total = builder.mul(total, size(names.index(extent))
                                        if isinstance(extent, str) else INDEX(extent))
                known[shape] = total
            return known[shape]
        counts = [count(node.shape) for node in plan.temporaries]
        for node, step_shape in plan.partials:
            rows = count(step_shape[:1])
            _, chunks = _chunking(builder, rows, count(step_shape[1:]))
            counts.append(builder.mul(chunks, count(node.shape)))
        work, products = INDEX(0), INDEX(0)
        for step in plan.steps:
            if step.chunked:
                work = builder.add(work, count(step.shape))
            if step.kind == "matmul":
                node = step.nodes[0]
                products = builder.add(products, count(
                    (node.shape[0], node.args[0].shape[1], node.shape[1])))
        return counts, builder.add(work, builder.sdiv(
            products, INDEX(MULTIPLY_ADDS_PER_ELEMENT)))
    return emit


_STEP_TYPE = llvm_ir.FunctionType(llvm_ir.VoidType(), [POINTER, POINTER, INDEX, INDEX])


def _share_function(module, target):
    """``symgrad.share(step, sizes, buffers, counters, units, scale, limit)``: a thread's part
    in a step shared by threads.  It takes units from ``counters[0]`` one at a time and runs
    ``step(sizes, buffers, min(u scale, limit), min((u + 1) scale, limit))`` for each,
    counting them done in ``counters[1]``; then it waits until every unit is done (the ones
    other threads took included).  One copy per module, called for every step."""
    existing = module.globals.get("symgrad.share")
    if existing is not None:
        return existing
    function = llvm_ir.Function(module, llvm_ir.FunctionType(llvm_ir.VoidType(), [
        _STEP_TYPE.as_pointer(), POINTER, POINTER, POINTER, INDEX, INDEX, INDEX]),
        "symgrad.share")
    function.linkage = "internal"
    function.attributes.add("noinline")
    step, sizes, buffers, counters, units, scale, limit = function.args
    builder = llvm_ir.IRBuilder(function.append_basic_block("entry"))
    finished = builder.gep(counters, [INDEX(1)], source_etype=INDEX)
    claim = function.append_basic_block("claim")
    run = function.append_basic_block("run")
    wait = function.append_basic_block("wait")
    builder.branch(claim)
    builder.position_at_end(claim)
    unit = builder.atomic_rmw("add", counters, INDEX(1), "seq_cst")
    builder.cbranch(builder.icmp_signed("<", unit, units), run, wait)
    builder.position_at_end(run)

    def bound(value):
        value = builder.mul(value, scale)
        return builder.select(builder.icmp_signed("<", value, limit), value, limit)
    builder.call(step, [sizes, buffers, bound(unit), bound(builder.add(unit, INDEX(1)))])
    builder.atomic_rmw("add", finished, INDEX(1), "seq_cst")
    builder.branch(claim)
    builder.position_at_end(wait)
    emit_spin(builder, function, lambda b: b.icmp_signed(
        ">=", b.load_atomic(finished, "seq_cst", 8, typ=INDEX), units), target.pause,
        target.yield_symbol,
        label="join")
    builder.ret_void()
    return function


class _Loaded(dict):
    """Values loaded in a function's prologue on first use (a step uses a few buffers)."""

    def __init__(self, load):
        super().__init__()
        self._load = load

    def __missing__(self, key):
        self[key] = value = self._load(key)
        return value


class _Lowering:
    """Emits the steps of one schedule: one LLVM function per step, ``NAME.stepK(sizes,
    buffers, first, last)`` (a chunked step computes its chunks ``first`` to ``last - 1``;
    other steps ignore the two), and the kernel ``NAME(sizes, buffers)``, which runs every
    step, all its chunks in order, one step after the other."""

    def __init__(self, function, plan, module, name, target):
        self.function = function
        self.plan = plan
        self.module = module
        self.name = name
        self.target = target
        self.gemm = target.gemm
        self.math = MathDeclarations(module)
        self.size_numbers = {size: number for number, size in enumerate(function.size_names)}
        self.buffer_count = (len(function.inputs) + len(function.outputs)
                             + len(plan.temporaries) + len(plan.partials))
        self.scopes = self._alias_scopes()
        self.order_index = {id(node): index for index, node in enumerate(function.nodes)}
        # The products computed by symgrad's GEMM, whose columns threads share in tiles:
        # step number -> the columns.
        self.column_steps = {}
        for number, step in enumerate(plan.steps):
            if step.kind == "matmul" and self.gemm is not None and \
                    self.gemm.kind == "symgrad" and \
                    gemm_operands(plan, self.gemm, step.nodes[0]) is not None:
                self.column_steps[number] = step.nodes[0].shape[1]
        # Elementwise steps computed inside the product before them, tile by tile (see
        # matmul.epilogue): product step number -> the step; and the numbers of the steps so
        # folded in, which are no step of their own.
        self.epilogues = {number: plan.steps[number + 1] for number in self.column_steps
                          if target.epilogues and epilogue(plan, number)}
        self.folded = {number + 1 for number in self.epilogues}

    def _alias_scopes(self):
        """Per buffer, its ``(alias.scope, noalias)`` metadata, saying that no access to a
        buffer touches another.  (Outputs and temporaries are fresh arrays; inputs are only
        read, so inputs that share memory are no exception.)  With this, loops vectorise
        without run-time overlap checks and accumulators stay in registers.

        The buffers are told apart by the bits of their numbers: one scope domain per bit,
        with a scope for each value of the bit.  A buffer is in the scopes of its own bits and
        does not alias the scopes of the other values; two different buffers differ in some
        bit, where each one's scope is in the other's noalias list (LLVM's rule for scoped
        no-alias).  The metadata grows as B log B in the number of buffers, not B squared."""
        bits = max(1, (self.buffer_count - 1).bit_length())
        scopes = []
        for bit in range(bits):
            domain = self.module.add_metadata([f"{self.name}.bit{bit}"])
            scopes.append([self.module.add_metadata([f"bit{bit}={value}", domain])
                           for value in (0, 1)])
        result = []
        for index in range(self.buffer_count):
            own = [scopes[bit][(index >> bit) & 1] for bit in range(bits)]
            other = [scopes[bit][1 - ((index >> bit) & 1)] for bit in range(bits)]
            result.append((self.module.add_metadata(own), self.module.add_metadata(other)))
        return result

    def begin_function(self, llvm_function):
        """Start emitting ``llvm_function(sizes, buffers, ...)``: sizes, buffer pointers and
        strides are computed in its entry block (the prologue), loops from the next block."""
        sizes_arg, buffers_arg = llvm_function.args[:2]
        sizes_arg.name, buffers_arg.name = "sizes", "buffers"
        for argument in (sizes_arg, buffers_arg):
            argument.add_attribute("noalias")
        self.prologue = FoldingBuilder(llvm_function.append_basic_block("entry"))
        self.body = llvm_function.append_basic_block("body")
        self.builder = FoldingBuilder(self.body)
        # (The loaders close over these, not over the lowering, which would then refer to
        # itself: a cycle, keeping the module until a garbage collection.)
        prologue, numbers, scopes = self.prologue, self.size_numbers, self.scopes
        alias_metadata = self.alias_metadata = {}
        # Values by the size's number: a size's own name may be any identifier.
        self.sizes = _Loaded(lambda name: prologue.load(
            prologue.gep(sizes_arg, [INDEX(numbers[name])], source_etype=INDEX),
            name=f"size{numbers[name]}", typ=INDEX))

        def buffer(index):
            pointer = prologue.load(prologue.gep(buffers_arg, [INDEX(index)],
                                                 source_etype=POINTER),
                                    name=f"buffer{index}", typ=POINTER)
            alias_metadata[id(pointer)] = scopes[index]
            return pointer
        self.buffers = _Loaded(buffer)
        self.accesses = {}
        self.stride_cache = {}

    def end_function(self):
        self.builder.ret_void()
        self.prologue.branch(self.body)

    def annotate(self, instruction, base):
        """Attach the alias scopes of the buffer ``base`` points into."""
        scopes = self.alias_metadata.get(id(base))
        if scopes is not None:
            instruction.set_metadata("alias.scope", scopes[0])
            instruction.set_metadata("noalias", scopes[1])
        return instruction

    # ---- shapes and addresses ------------------------------------------------------------

    def extent(self, size):
        """The extent of one axis: a symbolic size, a number, or an LLVM value already."""
        if isinstance(size, llvm_ir.Value):
            return size
        return self.sizes[size] if isinstance(size, str) else INDEX(size)

    def contiguous_strides(self, shape):
        # Computed once per shape, in the prologue, so that every loop may use them.
        shape = tuple(shape)
        if shape not in self.stride_cache:
            self.stride_cache[shape] = self._strides(shape)
        return self.stride_cache[shape]

    def _strides(self, shape):
        strides = []
        running = INDEX(1)
        for size in reversed(shape):
            strides.append(running)
            running = self.prologue.mul(running, self.extent(size))
        return list(reversed(strides))

    def element_count(self, shape, builder):
        count = INDEX(1)
        for size in shape:
            count = builder.mul(count, self.extent(size))
        return count

    def chunks(self, shape, builder):
        """``(rows per chunk, number of chunks)`` of a chunked step over ``shape``, as
        :func:`symgrad.codegen.lower.schedule.chunking` computes them."""
        return _chunking(builder, self.extent(shape[0]),
                         self.element_count(shape[1:], builder))

    def access(self, node):
        """(base pointer, strides) through which ``node``'s elements are read."""
        key = id(node)
        if key in self.accesses:
            return self.accesses[key]
        if key in self.plan.slots:
            result = (self.buffers[self.plan.slots[key]], self.contiguous_strides(node.shape))
        elif node.op in VIEW_OPS:
            result = self.view_access(node, self.access(node.args[0]))
        else:
            raise TensorLoweringError(f"node {node!r} has no buffer")
        self.accesses[key] = result
        return result

    def view_access(self, node, operand_access):
        return VIEW_RULES[node.op](self, node, operand_access)

    def address(self, access, node_shape, indices, dtype):
        """Address of the element of a ``node_shape`` value that the loop index ``indices``
        (of a loop whose shape the value broadcasts to) refers to."""
        base, strides = access
        offset = len(indices) - len(node_shape)
        linear = INDEX(0)
        for axis, size in enumerate(node_shape):
            if size == 1:
                continue
            linear = self.builder.add(linear, self.builder.mul(indices[axis + offset],
                                                               strides[axis]))
        return self.builder.gep(base, [linear], source_etype=llvm_type(dtype))

    def load(self, node, indices, access=None):
        access = access or self.access(node)
        address = self.address(access, node.shape, indices, node.dtype)
        return self.annotate(self.builder.load(address, typ=llvm_type(node.dtype)), access[0])

    # ---- loops ---------------------------------------------------------------------------

    def loop_nest(self, shape, body, rows=None, columns=None):
        """Nested loops over ``shape`` (outermost first); ``body(indices)`` emits the body.
        ``rows``: ``(begin, end)`` of the outermost loop, instead of the whole axis;
        ``columns``: the same for the innermost loop of a matrix.  Axes of extent 1 get no
        loop (their index is 0)."""
        ranges = {}
        if rows is not None:
            ranges[0] = rows
        if columns is not None:
            ranges[1] = columns
        indices = []
        exits = []
        for axis, size in enumerate(shape):
            if size == 1 and axis not in ranges:
                indices.append(INDEX(0))
                continue
            start, extent = ranges.get(axis, (INDEX(0), self.extent(size)))
            preheader = self.builder.block
            header = self.builder.append_basic_block("loop")
            after = self.builder.append_basic_block("after")
            self.builder.cbranch(self.builder.icmp_signed(">", extent, start), header, after)
            self.builder.position_at_end(header)
            index = self.builder.phi(INDEX, name="i")
            index.add_incoming(start, preheader)
            indices.append(index)
            exits.append((index, extent, header, after))
        body(indices)
        for index, extent, header, after in reversed(exits):
            following = self.builder.add(index, INDEX(1))
            index.add_incoming(following, self.builder.block)
            self.builder.cbranch(self.builder.icmp_signed("<", following, extent), header,
                                 after)
            self.builder.position_at_end(after)

    def value(self, node, indices, memo):
        """The value of ``node`` at the loop index: from the loop body, a buffer or a view."""
        key = id(node)
        if key in memo:
            return memo[key]
        if node.op is Op.CONST:
            element = llvm_type(node.dtype)
            return llvm_ir.Constant(element, int(node.attrs) if node.dtype in ("bool", "int64")
                                    else node.attrs)
        if node.op is Op.DIM:
            return self.builder.sitofp(self.sizes[node.attrs], llvm_type(node.dtype))
        return self.load(node, indices)

    def compute(self, node, indices, memo):
        """Emit ``node``'s own operation from its operands' values."""
        if node.op in VIEW_OPS:
            return self.load(node, indices, self.view_access(node, self.access(node.args[0])))
        if node.op in INDEXED_OPS:
            return INDEXED_RULES[node.op](self, node, indices, memo)
        fusion = fused_routine(node)
        if fusion is not None and id(node.args[0]) in memo:
            # The operand computed in this loop: its own operand is at hand here too.
            routine, argument = fusion
            return self.builder.call(self.math.routine(routine, node.dtype),
                                     [self.value(argument, indices, memo)])
        operands = [self.value(arg, indices, memo) for arg in node.args]
        return LOWERING_RULES[node.op](self.builder, node, operands, self.math)

    def store(self, slot, node, indices, value):
        access = (self.buffers[slot], self.contiguous_strides(node.shape))
        address = self.address(access, node.shape, indices, node.dtype)
        self.annotate(self.builder.store(value, address), access[0])

    # ---- steps ---------------------------------------------------------------------------

    def copy_rows(self, step, sources):
        """A copying step as block copies: the rows ``begin`` to ``end - 1`` of a chunked
        step, else the whole value."""
        builder = self.builder
        row = self.element_count(step.shape[1:] if step.chunked else step.shape, builder)
        start, rows = (self.begin, builder.sub(self.end, self.begin)) if step.chunked else \
            (INDEX(0), INDEX(1))
        memcpy = self.module.globals.get("llvm.memcpy.p0.p0.i64") or llvm_ir.Function(
            self.module, llvm_ir.FunctionType(llvm_ir.VoidType(), [
                POINTER, POINTER, INDEX, llvm_ir.IntType(1)]), "llvm.memcpy.p0.p0.i64")
        skip = builder.append_basic_block("copy.done")
        work = builder.append_basic_block("copy")
        builder.cbranch(builder.icmp_signed(">", rows, INDEX(0)), work, skip)
        builder.position_at_end(work)
        offset = builder.mul(start, row)
        for node, slot, source in zip(step.nodes, step.slots, sources):
            element = llvm_type(node.dtype)
            target = builder.gep(self.buffers[slot], [offset], source_etype=element)
            origin = builder.gep(self.buffers[self.plan.slots[id(source)]], [offset],
                                 source_etype=element)
            size = builder.mul(builder.mul(rows, row), INDEX(item_bytes(node.dtype)))
            builder.call(memcpy, [target, origin, size, llvm_ir.Constant(llvm_ir.IntType(1), 0)])
        builder.branch(skip)
        builder.position_at_end(skip)

    def elementwise(self, step, columns=None):
        """An elementwise step: its chunk range of rows where chunked; or, with ``columns``
        (``(begin, end)``), those columns of every row (a product's epilogue)."""
        sources = copied_sources(self.plan, step)
        if sources is not None:
            self.copy_rows(step, sources)
            return
        members = {id(node): slot for node, slot in zip(step.nodes, step.slots)}
        work = sorted(step.inline + step.nodes, key=self.position)
        rows = (self.begin, self.end) if step.chunked and columns is None else None
        targets = {}
        for node in step.nodes:
            if node.op in REDUCTION_OPS:
                targets[id(node)] = self.reduction_target(node, members[id(node)])
                # A partial result is this chunk's alone; a reduction keeping the first axis
                # shares its buffer with the other chunks, one row range each.
                partial = self.plan.partial_slot(node) is not None
                self.initialise(node, targets[id(node)], None if partial else rows)

        def body(indices):
            memo = {}
            for node in work:
                if node.op in REDUCTION_OPS:
                    self.accumulate(node, targets[id(node)], indices, memo)
                    continue
                memo[id(node)] = self.compute(node, indices, memo)
                if id(node) in members:
                    self.store(members[id(node)], node, indices, memo[id(node)])
        self.loop_nest(step.shape, body, rows, columns)

    def copy(self, step):
        (node,), (slot,) = step.nodes, step.slots

        def body(indices):
            memo = {}
            for inline in step.inline:
                memo[id(inline)] = self.compute(inline, indices, memo)
            if node.op in IMMEDIATE_OPS or node.op is Op.INPUT or id(node) in memo:
                value = self.value(node, indices, memo)
            elif id(node) in self.plan.slots or node.op in VIEW_OPS:
                value = self.load(node, indices)
            else:
                value = self.compute(node, indices, memo)
            self.store(slot, node, indices, value)
        self.loop_nest(step.shape, body)

    def reduction_target(self, node, slot):
        """(base, strides) a reduction accumulates into: its buffer, or where it reduces the
        first axis of a chunked step, this chunk's partial result."""
        strides = self.contiguous_strides(node.shape)
        partial = self.plan.partial_slot(node)
        if partial is None:
            return self.buffers[slot], strides
        offset = self.builder.mul(self.chunk, self.element_count(node.shape, self.prologue))
        base = self.builder.gep(self.buffers[partial], [offset],
                                source_etype=llvm_type(node.dtype))
        self.alias_metadata[id(base)] = self.scopes[partial]
        return base, strides

    @staticmethod
    def identity(node):
        return llvm_ir.Constant(llvm_type(node.dtype), REDUCTION_RULES[node.op].identity)

    def initialise(self, node, target, rows):
        """Fill a reduction's target (``rows`` of it, or all) with the identity of its
        operation."""
        start = self.identity(node)

        def body(indices):
            address = self.address(target, node.shape, indices, node.dtype)
            self.annotate(self.builder.store(start, address), target[0])
        self.loop_nest(node.shape, body, rows)

    def combine_operation(self, node, current, value, ordered=False):
        return REDUCTION_RULES[node.op].combine(self, node, current, value, ordered)

    def accumulate(self, node, target, indices, memo):
        """Add (or take the maximum of) the operand's element at ``indices`` into the
        reduction's target; the reduced axes have size 1 there, so they address one element."""
        element = llvm_type(node.dtype)
        value = self.value(node.args[0], indices, memo)
        address = self.address(target, node.shape, indices, node.dtype)
        current = self.annotate(self.builder.load(address, typ=element), target[0])
        updated = self.combine_operation(node, current, value)
        self.annotate(self.builder.store(updated, address), target[0])

    def combine(self, step):
        """Each reduction of a chunked step: its partial results, added in chunk order."""
        _, count = self.chunks(step.shape, self.prologue)
        for node, slot in zip(step.nodes, step.slots):
            element = llvm_type(node.dtype)
            final = (self.buffers[slot], self.contiguous_strides(node.shape))
            partial_shape = (count,) + tuple(node.shape)
            partials = (self.buffers[self.plan.partial_slot(node)],
                        self.contiguous_strides(partial_shape))
            start = self.identity(node)
            self.loop_nest(node.shape, lambda indices: self.annotate(self.builder.store(
                start, self.address(final, node.shape, indices, node.dtype)), final[0]))

            def body(indices):
                address = self.address(final, node.shape, indices[1:], node.dtype)
                current = self.annotate(self.builder.load(address, typ=element), final[0])
                value = self.annotate(self.builder.load(self.address(
                    partials, partial_shape, indices, node.dtype), typ=element), partials[0])
                updated = self.combine_operation(node, current, value, ordered=True)
                self.annotate(self.builder.store(updated, address), final[0])
            self.loop_nest(partial_shape, body)

    def position(self, node):
        return self.order_index[id(node)]

    def run(self, defined=None, entry=True):
        """Emit the step functions, ``NAME.parallel`` and the kernel; returns the kernel.

        ``NAME.parallel(sizes, buffers, thread, threads, state)`` is run by ``threads`` threads
        at once.  The work of a step is cut into units fixed by the sizes alone: the chunks of
        a chunked step, the tiles of columns of a matrix product, else the whole step.
        Threads take units one at a time from the step's counter in ``state`` (zeroed
        words, :data:`STATE_WORDS` per step) and move to the next step once every unit of
        this one is finished; a thread alone runs each step whole.  A unit is the same native
        code whichever thread runs it, so the results do not depend on the number of
        threads, nor on which threads take part.  The kernel ``NAME(sizes, buffers)`` is a
        thread alone.

        ``defined``: the numbers of the steps this module defines (default: all); the others
        are declared, defined by modules loaded with it.  Without ``entry``, the module holds
        the steps alone (external, for the module that runs them), and None is returned."""
        lowering = {"elementwise": self.elementwise, "copy": self.copy,
                    "matmul": lambda step: PRODUCT_RULES[step.nodes[0].op](self, step),
                    "scatter": lambda step: SCATTER_RULES[step.nodes[0].op](self, step),
                    "scan": lambda step: SCAN_RULES[step.nodes[0].op](self, step),
                    "combine": self.combine}
        step_functions = []
        for number, step in enumerate(self.plan.steps):
            step_function = llvm_ir.Function(self.module, _STEP_TYPE,
                                             name=f"{self.name}.step{number}")
            step_functions.append(step_function)
            if (defined is not None and number not in defined) or number in self.folded:
                continue
            if entry:
                step_function.linkage = "internal"
            # One copy of each step, called once per unit of work (inlined, the optimiser
            # would copy it for the thread alone and for threads sharing).
            step_function.attributes.add("noinline")
            self.begin_function(step_function)
            first, last = step_function.args[2:]
            first.name, last.name = "first", "last"
            self.step_range, self.step_number = (first, last), number
            if step.chunked:
                self.chunk_loop(step, first, last, lowering[step.kind])
            else:
                lowering[step.kind](step)
            self.end_function()
        if not entry:
            return None
        parallel_function = self.parallel_function(step_functions)

        kernel = llvm_ir.Function(self.module, llvm_ir.FunctionType(
            llvm_ir.VoidType(), [POINTER, POINTER]), name=self.name)
        sizes, buffers = kernel.args
        builder = llvm_ir.IRBuilder(kernel.append_basic_block("entry"))
        builder.call(parallel_function, [sizes, buffers, INDEX(0), INDEX(1),
                                         llvm_ir.Constant(POINTER, None)])
        builder.ret_void()
        return kernel

    def parallel_function(self, step_functions):
        """``NAME.parallel(sizes, buffers, thread, threads, state)``: see :meth:`run`."""
        function = llvm_ir.Function(self.module, llvm_ir.FunctionType(
            llvm_ir.VoidType(), [POINTER, POINTER, INDEX, INDEX, POINTER]),
            name=f"{self.name}.parallel")
        self.begin_function(function)
        sizes, buffers, thread, threads, state = function.args
        thread.name, threads.name, state.name = "thread", "threads", "state"
        builder = self.builder
        alone = self.prologue.icmp_signed("==", threads, INDEX(1))
        share = _share_function(self.module, self.target)
        for number, (step, step_function) in enumerate(zip(self.plan.steps, step_functions)):
            if number in self.folded:
                continue
            # Units of work: [min(u scale, limit), min((u + 1) scale, limit)) for u < units.
            if step.chunked:
                units = self.chunks(step.shape, self.prologue)[1]
                scale, limit = INDEX(1), units
            elif number in self.column_steps:
                # Columns in whole tiles of the GEMM.
                limit = self.extent(self.column_steps[number])
                scale = INDEX(self.gemm.column_tile)
                units = self.prologue.sdiv(self.prologue.add(limit, INDEX(
                    self.gemm.column_tile - 1)), scale)
            else:
                units, scale, limit = INDEX(1), INDEX(0), INDEX(0)
            single = function.append_basic_block(f"step{number}.alone")
            shared = function.append_basic_block(f"step{number}.shared")
            after = function.append_basic_block(f"step{number}.done")
            builder.cbranch(alone, single, shared)
            builder.position_at_end(single)
            whole = builder.mul(units, scale)
            builder.call(step_function, [sizes, buffers, INDEX(0), builder.select(
                builder.icmp_signed("<", whole, limit), whole, limit)])
            builder.branch(after)
            builder.position_at_end(shared)
            counters = builder.gep(state, [INDEX(STATE_WORDS * number)], source_etype=INDEX)
            builder.call(share, [step_function, sizes, buffers, counters, units, scale, limit])
            builder.branch(after)
            builder.position_at_end(after)
        self.end_function()
        return function

    def chunk_loop(self, step, first, last, lower_step):
        """The chunks ``first`` to ``last - 1`` of a chunked step.  Where no reduction of the
        step keeps a partial result per chunk, the chunks are one range of rows, one loop
        (the same elements, in the same order, as chunk after chunk)."""
        per_chunk, _ = self.chunks(step.shape, self.prologue)
        rows = self.extent(step.shape[0])
        if not any(self.plan.partial_slot(node) is not None for node in step.nodes):
            builder = self.builder
            self.chunk = None
            self.begin = builder.mul(first, per_chunk)
            end = builder.mul(last, per_chunk)
            self.end = builder.select(builder.icmp_signed("<", end, rows), end, rows)
            lower_step(step)
            return

        def body(indices):
            (self.chunk,) = indices
            self.begin = self.builder.mul(self.chunk, per_chunk)
            end = self.builder.add(self.begin, per_chunk)
            self.end = self.builder.select(self.builder.icmp_signed("<", end, rows), end, rows)
            lower_step(step)
        self.loop_nest((last,), body, rows=(first, last))


def plan(function, target):
    """Check that ``function`` can be lowered and schedule it for ``target`` (matrix products
    through ``target.gemm`` where there is one, else loop nests)."""
    for node in function.outputs:
        if node.dtype == "bool":
            raise TensorLoweringError("kernel outputs must be numbers, got a boolean output")
    float_dtypes = function.float_dtypes
    if len(float_dtypes) > 1:
        raise TensorLoweringError(
            f"a kernel computes in one float dtype, got {sorted(float_dtypes)}")
    return schedule(function, blas=target.gemm is not None)


def lower_tensor(function, plan, target, name=KERNEL_SYMBOL, steps=None):
    """Lower ``function``, scheduled as ``plan`` (see :func:`plan`), to an LLVM module.

    The module holds the kernel ``NAME`` and ``NAME.parallel``, which threads run together
    (see :meth:`_Lowering.run`).  ``steps``: the numbers of the steps the module defines
    (default: all); the others come from modules of :func:`lower_steps` loaded with it.
    ``name`` is a symbol (:func:`symgrad.codegen.lower.types.check_symbol`); the names of the
    function's inputs, outputs and symbolic sizes do not appear in the module.
    """
    check_symbol(name)
    module = llvm_ir.Module(name=name)
    _Lowering(function, plan, module, name, target).run(steps)
    return module


def lower_steps(function, plan, target, name, steps):
    """A module of the steps numbered ``steps`` alone (``NAME.stepK``, external), for the
    module of :func:`lower_tensor` that runs them: the two compile at the same time."""
    check_symbol(name)
    module = llvm_ir.Module(name=f"{name}.steps")
    _Lowering(function, plan, module, name, target).run(steps, entry=False)
    return module


def _step_cost(plan, step):
    if step.kind == "matmul":
        return 2
    if step.kind == "combine":
        return 4
    if step.kind == "elementwise" and copied_sources(plan, step) is not None:
        return 2
    return 6 + 2 * (len(step.nodes) + len(step.inline))


def split_steps(plan, target):
    """The steps of ``plan`` in groups of about ``target.module_cost`` (in the units of
    :func:`_step_cost`, about a millisecond of LLVM's time each here), at most
    ``target.max_modules`` of them, one module each (the first with the kernel, whose cost
    grows with the number of steps): lists of step numbers, the longest steps spread first
    over the least loaded groups."""
    costs = [_step_cost(plan, step) for step in plan.steps]
    overhead = 5 + len(costs)
    count = max(1, min(target.max_modules,
                      round((sum(costs) + overhead) / target.module_cost)))
    loads = [overhead] + [0] * (count - 1)
    groups = [[] for _ in range(count)]
    for number in sorted(range(len(costs)), key=lambda n: -costs[n]):
        least = loads.index(min(loads))
        groups[least].append(number)
        loads[least] += costs[number]
    return [sorted(group) for group in groups if group or group is groups[0]]


