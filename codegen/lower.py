"""Lowering: an IR function becomes one LLVM function with a loop over the elements.

The generated function has the C signature::

    void NAME(int64_t n, T **inputs, int64_t *strides, T **outputs)

It evaluates every IR node for each of the ``n`` elements: input ``k`` of element ``i`` is
``inputs[k][i * strides[k]]`` (stride 0 broadcasts a single value), output ``j`` goes to
``outputs[j][i]``.  Forward and backward values are computed in the same loop body, so the
backward pass reuses the forward values from registers.
"""

from llvmlite import ir as llvm_ir

from codegen.mathlib import LOWERING_RULES, MathDeclarations
from codegen.types import INDEX, POINTER, llvm_type
from symgrad.ops import Op


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


def lower_function(function, name="symgrad_kernel"):
    """Lower ``function`` to an LLVM module (llvmlite ``ir.Module``) holding one function."""
    _check_elementwise(function)
    dtypes = {n.dtype for n in function.inputs} | {n.dtype for n in function.outputs}
    float_dtypes = dtypes - {"bool"}
    if len(float_dtypes) > 1:
        raise LoweringError(f"a kernel computes in one float dtype, got {sorted(float_dtypes)}")
    module = llvm_ir.Module(name=name)
    signature = llvm_ir.FunctionType(llvm_ir.VoidType(), [INDEX, POINTER, POINTER, POINTER])
    kernel = llvm_ir.Function(module, signature, name=name)
    n, inputs_arg, strides_arg, outputs_arg = kernel.args
    n.name, inputs_arg.name, strides_arg.name, outputs_arg.name = "n", "inputs", "strides", "outputs"
    for argument in (inputs_arg, strides_arg, outputs_arg):
        argument.add_attribute("noalias")

    entry = kernel.append_basic_block("entry")
    loop = kernel.append_basic_block("loop")
    done = kernel.append_basic_block("done")
    builder = llvm_ir.IRBuilder(entry)

    input_pointers, input_strides = [], []
    for index, node in enumerate(function.inputs):
        slot = builder.gep(inputs_arg, [INDEX(index)], source_etype=POINTER)
        input_pointers.append(builder.load(slot, name=f"{node.attrs}.ptr", typ=POINTER))
        slot = builder.gep(strides_arg, [INDEX(index)], source_etype=INDEX)
        input_strides.append(builder.load(slot, name=f"{node.attrs}.stride", typ=INDEX))
    output_pointers = []
    for index in range(len(function.outputs)):
        slot = builder.gep(outputs_arg, [INDEX(index)], source_etype=POINTER)
        output_pointers.append(builder.load(slot, name=f"out{index}.ptr", typ=POINTER))
    builder.cbranch(builder.icmp_signed(">", n, INDEX(0)), loop, done)

    builder.position_at_end(loop)
    i = builder.phi(INDEX, name="i")
    i.add_incoming(INDEX(0), entry)
    math = MathDeclarations(module)
    values = {}
    for index, node in enumerate(function.inputs):
        element = llvm_type(node.dtype)
        offset = builder.mul(i, input_strides[index])
        address = builder.gep(input_pointers[index], [offset], source_etype=element)
        values[id(node)] = builder.load(address, name=node.attrs, typ=element)
    for node in function.nodes:
        if id(node) in values:
            continue
        if node.op is Op.CONST:
            values[id(node)] = _constant(node)
        elif node.op is Op.INPUT:
            raise LoweringError(f"input {node.attrs!r} is not an argument of the function")
        else:
            operands = [values[id(a)] for a in node.args]
            values[id(node)] = LOWERING_RULES[node.op](builder, node, operands, math)
    for index, node in enumerate(function.outputs):
        element = llvm_type(node.dtype)
        address = builder.gep(output_pointers[index], [i], source_etype=element)
        builder.store(values[id(node)], address)
    following = builder.add(i, INDEX(1), name="i.next")
    i.add_incoming(following, loop)
    builder.cbranch(builder.icmp_signed("<", following, n), loop, done)

    builder.position_at_end(done)
    builder.ret_void()
    return module
