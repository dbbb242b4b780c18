"""Lowering: an IR function becomes one LLVM function with a loop over the elements.

The generated function has the C signature::

    void NAME(int64_t n, T **inputs, int64_t *strides, T **outputs)

It evaluates every IR node for each of the ``n`` elements: input ``k`` of element ``i`` is
``inputs[k][i * strides[k]]`` (stride 0 broadcasts a single value), output ``j`` goes to
``outputs[j][i]``.  Forward and backward values are computed in the same loop body, so the
backward pass reuses the forward values from registers.
"""

from llvmlite import ir as llvm_ir

from symgrad.codegen.lower.entries import add_fast_entry
from symgrad.codegen.lower.mathlib import LOWERING_RULES, MathDeclarations, fused_routine
from symgrad.codegen.lower.types import INDEX, KERNEL_SYMBOL, POINTER, check_symbol, llvm_type
from symgrad.ir.ops import Op


class LoweringError(NotImplementedError):
    """The IR function uses something this lowering does not handle."""


def _check_elementwise(function):
    for node in function.nodes:
        if node.shape != ():
            raise LoweringError(
                f"elementwise kernels need scalar IR nodes; node {node!r} has shape "
                f"{node.shape}")
    for node in function.outputs:
        if node.dtype == "bool":
            raise LoweringError("kernel outputs must be floats, got a boolean output")


def _constant(node):
    return llvm_ir.Constant(llvm_type(node.dtype), int(node.attrs) if node.dtype == "bool"
                            else node.attrs)


# Above this many operations a kernel is "large": its element body stays out of line (hoisting
# thousands of loop-invariant values out of one huge loop swamps the registers) and the JIT
# uses LLVM's fast register allocator (the greedy one is superlinear on such bodies: 13 s
# instead of 0.3 s for a 10,000-term sum).
LARGE_KERNEL_NODES = 2000


def is_large(function):
    """Whether ``function`` is lowered and compiled as a large kernel."""
    return function.count_nodes() > LARGE_KERNEL_NODES


def lower_elementwise(function, name=KERNEL_SYMBOL, fast_entry=False):
    """Lower ``function`` to an LLVM module (llvmlite ``ir.Module``).

    The module holds ``NAME.element``, which computes every output of element ``i``, and the
    exported ``NAME``, the loop over the elements.  Small element functions are inlined into
    the loop (and vectorised there); large ones stay out of line.  With ``fast_entry``, the
    module also holds ``NAME.fast``, a direct CPython entry for scalar float arguments
    (:mod:`symgrad.codegen.lower.entries`).  ``name`` is a symbol
    (:func:`symgrad.codegen.lower.types.check_symbol`);
    the names of the function's inputs and outputs do not appear in the module (its values
    are named by number).
    """
    check_symbol(name)
    _check_elementwise(function)
    dtypes = {n.dtype for n in function.inputs} | {n.dtype for n in function.outputs}
    float_dtypes = dtypes - {"bool"}
    if len(float_dtypes) > 1:
        raise LoweringError(f"a kernel computes in one float dtype, got {sorted(float_dtypes)}")
    module = llvm_ir.Module(name=name)
    signature = llvm_ir.FunctionType(llvm_ir.VoidType(), [INDEX, POINTER, POINTER, POINTER])
    element = llvm_ir.Function(module, signature, name=f"{name}.element")
    element.linkage = "internal"
    large = is_large(function)
    element.attributes.add("noinline" if large else "alwaysinline")
    _lower_element(function, element, MathDeclarations(module, inline=not large))

    kernel = llvm_ir.Function(module, signature, name=name)
    n, inputs_arg, strides_arg, outputs_arg = kernel.args
    n.name, inputs_arg.name = "n", "inputs"
    strides_arg.name, outputs_arg.name = "strides", "outputs"
    for argument in (inputs_arg, strides_arg, outputs_arg):
        argument.add_attribute("noalias")
    entry = kernel.append_basic_block("entry")
    loop = kernel.append_basic_block("loop")
    done = kernel.append_basic_block("done")
    builder = llvm_ir.IRBuilder(entry)
    builder.cbranch(builder.icmp_signed(">", n, INDEX(0)), loop, done)
    builder.position_at_end(loop)
    i = builder.phi(INDEX, name="i")
    i.add_incoming(INDEX(0), entry)
    builder.call(element, [i, inputs_arg, strides_arg, outputs_arg])
    following = builder.add(i, INDEX(1), name="i.next")
    i.add_incoming(following, loop)
    builder.cbranch(builder.icmp_signed("<", following, n), loop, done)
    builder.position_at_end(done)
    builder.ret_void()
    if fast_entry:
        add_fast_entry(module, element, len(function.inputs), len(function.outputs),
                       f"{name}.fast")
    return module


def _lower_element(function, element, math):
    """The body of ``element(i, inputs, strides, outputs)``: one element, every output."""
    i, inputs_arg, strides_arg, outputs_arg = element.args
    i.name, inputs_arg.name = "i", "inputs"
    strides_arg.name, outputs_arg.name = "strides", "outputs"
    for argument in (inputs_arg, strides_arg, outputs_arg):
        argument.add_attribute("noalias")
    builder = llvm_ir.IRBuilder(element.append_basic_block("entry"))
    values = {}
    for index, node in enumerate(function.inputs):
        element_type = llvm_type(node.dtype)
        slot = builder.gep(inputs_arg, [INDEX(index)], source_etype=POINTER)
        pointer = builder.load(slot, name=f"in{index}.ptr", typ=POINTER)
        slot = builder.gep(strides_arg, [INDEX(index)], source_etype=INDEX)
        stride = builder.load(slot, name=f"in{index}.stride", typ=INDEX)
        address = builder.gep(pointer, [builder.mul(i, stride)], source_etype=element_type)
        values[id(node)] = builder.load(address, name=f"in{index}", typ=element_type)
    for node in function.nodes:
        if id(node) in values:
            continue
        if node.op is Op.CONST:
            values[id(node)] = _constant(node)
        elif node.op is Op.INPUT:
            raise LoweringError(f"input {node.attrs!r} is not an argument of the function")
        else:
            fusion = fused_routine(node)
            if fusion is not None:
                routine, argument = fusion
                values[id(node)] = builder.call(math.routine(routine, node.dtype),
                                                [values[id(argument)]])
                continue
            operands = [values[id(a)] for a in node.args]
            values[id(node)] = LOWERING_RULES[node.op](builder, node, operands, math)
    for index, node in enumerate(function.outputs):
        slot = builder.gep(outputs_arg, [INDEX(index)], source_etype=POINTER)
        pointer = builder.load(slot, name=f"out{index}.ptr", typ=POINTER)
        address = builder.gep(pointer, [i], source_etype=llvm_type(node.dtype))
        builder.store(values[id(node)], address)
    builder.ret_void()
