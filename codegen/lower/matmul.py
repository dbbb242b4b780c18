"""Matrix products: the step that computes ``C = A @ B``.

A product whose operands a library reads in place (stored matrices, or transposes of them)
calls symgrad's GEMM (:mod:`symgrad.codegen.lower.gemm`, on the columns of the step's range:
threads share them in tiles) or a BLAS's ``cblas_?gemm`` (:class:`Target.gemm
<symgrad.codegen.lower.target.Gemm>` says which); the elementwise step after a GEMM product
(a layer's bias and activation) then runs inside it, on the columns just computed
(:func:`epilogue`).  Tiny products and the others are loop nests.  :data:`PRODUCT_RULES` maps
each product op to its lowering; ``lowering`` is the emitter context of
:mod:`symgrad.codegen.lower.tensor` (buffers, accesses, loops).
"""

import math

from llvmlite import ir as llvm_ir

from symgrad.codegen.lower import gemm as gemm_emitter
from symgrad.codegen.lower.abi import NO_TRANS, ROW_MAJOR, TRANS
from symgrad.codegen.lower.schedule import (
    GATHERING_OPS,
    REDUCTION_OPS,
    VIEW_OPS,
    TensorLoweringError,
    copied_sources,
)
from symgrad.codegen.lower.types import INDEX, POINTER, llvm_type
from symgrad.ir.ops import Op

# A matrix product whose fixed dimensions multiply to at most this is a loop nest, not a
# library call (see _library_product).
TINY_PRODUCT = 64


def epilogue(plan, number):
    """Whether the step after product step ``number`` can run inside it, on the columns each
    unit of the product computes (bias and activation of a layer, while the product's
    tile is in the cache): an elementwise map over the product's shape, without reductions
    (their order over rows is fixed by chunks) and without copies, that reads the product
    only element by element (never through a view or a pad, which would read other
    columns)."""
    if number + 1 >= len(plan.steps):
        return False
    product, step = plan.steps[number].nodes[0], plan.steps[number + 1]
    if step.kind != "elementwise" or tuple(step.shape) != tuple(product.shape) or \
            copied_sources(plan, step) is not None:
        return False
    if any(node.op in REDUCTION_OPS or node.op in GATHERING_OPS
           for node in step.inline + step.nodes) or any(
            tuple(node.shape) != tuple(step.shape) for node in step.nodes):
        return False
    for node in step.inline + step.nodes:
        for value in [node, *node.args]:
            while value.op in VIEW_OPS and id(value) not in plan.slots:
                value = value.args[0]
                if value is product:
                    return False
    return True


def blas_operand(plan, node):
    """(transposed, leading dimension) for a product operand a BLAS reads in place: a
    stored matrix or the transpose of one; None otherwise."""
    if id(node) in plan.slots:
        return False, node.shape[1]
    if node.op is Op.TRANSPOSE and id(node.args[0]) in plan.slots:
        return True, node.args[0].shape[1]
    return None


def gemm_operands(plan, gemm, node):
    """The layouts ``(left, right)`` (see :func:`blas_operand`) of a product that calls a
    GEMM; None for a loop nest."""
    left, right = (blas_operand(plan, a) for a in node.args)
    if gemm is None or left is None or right is None:
        return None
    dimensions = (node.shape[0], node.args[0].shape[1], node.shape[1])
    numbers = [d for d in dimensions if not isinstance(d, str)]
    if len(numbers) >= 2 and math.prod(numbers) <= TINY_PRODUCT:
        return None
    return left, right


def _library_product(lowering, node, slot):
    """C = A @ B through a library (symgrad's GEMM, or a BLAS's cblas_?gemm); False when an
    operand is not laid out for it, or when the product is tiny: every dimension but (at
    most) one is a small number, as in the layers of a 2-4-1 network, where a loop nest costs
    less than a call into the library."""
    operands = gemm_operands(lowering.plan, lowering.gemm, node)
    if operands is None:
        return False
    left, right = operands
    if lowering.gemm.kind == "symgrad":
        _own_gemm(lowering, node, slot, left, right)
        return True
    element = llvm_type(node.dtype)
    integer = llvm_ir.IntType(64 if lowering.gemm.ilp64 else 32)
    enum = llvm_ir.IntType(32)
    name = lowering.gemm.symbol(node.dtype)
    function = lowering.module.globals.get(name)
    if function is None:
        function = llvm_ir.Function(lowering.module, llvm_ir.FunctionType(
            llvm_ir.VoidType(), [enum, enum, enum, integer, integer, integer, element,
                                 POINTER, integer, POINTER, integer, element, POINTER,
                                 integer]), name=name)

    def size(value):
        value = lowering.extent(value) if not isinstance(value, llvm_ir.Value) else value
        return value if integer.width == 64 else lowering.builder.trunc(value, integer)

    def leading(extent):
        # BLAS wants a leading dimension >= 1 even for an empty matrix.
        value = lowering.extent(extent)
        positive = lowering.builder.icmp_signed(">", value, INDEX(0))
        return size(lowering.builder.select(positive, value, INDEX(1)))
    (left_transposed, left_ld), (right_transposed, right_ld) = left, right
    rows, columns = node.shape
    inner = node.args[0].shape[1]
    bases = [lowering.access(a)[0] for a in node.args]
    lowering.builder.call(function, [
        enum(ROW_MAJOR), enum(TRANS if left_transposed else NO_TRANS),
        enum(TRANS if right_transposed else NO_TRANS), size(rows), size(columns), size(inner),
        llvm_ir.Constant(element, 1.0), bases[0], leading(left_ld), bases[1],
        leading(right_ld), llvm_ir.Constant(element, 0.0), lowering.buffers[slot],
        leading(columns)])
    return True


def _own_gemm(lowering, node, slot, left, right):
    """C = A @ B through symgrad's GEMM (:mod:`symgrad.codegen.lower.gemm`), operands read
    in place."""
    def strides(operand):
        transposed, leading = operand
        leading = lowering.extent(leading)
        return (INDEX(1), leading) if transposed else (leading, INDEX(1))
    rows, columns = node.shape
    bases = [lowering.access(a)[0] for a in node.args]
    # The step computes the columns step_range[0] .. step_range[1] - 1 (all of them for a
    # thread alone, a tile of them for threads sharing the product: column_steps).
    columns = lowering.extent(columns)
    lowering.builder.call(gemm_emitter.declare(lowering.module, node.dtype), [
        lowering.extent(rows), columns, lowering.extent(node.args[0].shape[1]),
        bases[0], *strides(left), bases[1], *strides(right), lowering.buffers[slot], columns,
        *lowering.step_range])


def lower_matmul(lowering, step):
    (node,), (slot,) = step.nodes, step.slots
    if _library_product(lowering, node, slot):
        epilogue = lowering.epilogues.get(lowering.step_number)
        if epilogue is not None:
            # The columns this unit just computed, while they are in the cache.
            lowering.elementwise(epilogue, columns=lowering.step_range)
        return
    left, right = node.args
    element = llvm_type(node.dtype)
    rows, columns = node.shape
    inner = left.shape[1]
    target = (lowering.buffers[slot], lowering.contiguous_strides(node.shape))
    lowering.loop_nest(node.shape, lambda indices: lowering.store(
        slot, node, indices, llvm_ir.Constant(element, 0.0)))
    left_access = _operand_access(lowering, left)
    right_access = _operand_access(lowering, right)

    def body(indices):
        i, p, j = indices
        a = lowering.annotate(lowering.builder.load(
            lowering.address(left_access, left.shape, [i, p], node.dtype), typ=element),
            left_access[0])
        b = lowering.annotate(lowering.builder.load(
            lowering.address(right_access, right.shape, [p, j], node.dtype), typ=element),
            right_access[0])
        address = lowering.address(target, node.shape, [i, j], node.dtype)
        current = lowering.annotate(lowering.builder.load(address, typ=element), target[0])
        builder = lowering.builder
        total = builder.fadd(current, builder.fmul(a, b))
        lowering.annotate(builder.store(total, address), target[0])
    # i, p, j order: the innermost loop runs along rows of the right operand and of the
    # result, which are contiguous, so it vectorises.
    lowering.loop_nest((rows, inner, columns), body)


def _operand_access(lowering, node):
    if node.op is Op.CONST:
        raise TensorLoweringError("matmul of a constant matrix is not lowered")
    return lowering.access(node)


#: The step that computes each product: rule(lowering, step).
PRODUCT_RULES = {Op.MATMUL: lower_matmul}
