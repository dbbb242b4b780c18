"""Every op has an entry in every interpretation's table."""

from codegen.lower_tensor import STEP_LOWERING
from codegen.mathlib import LOWERING_RULES
from symgrad.eval import NUMPY_RULES
from symgrad.ops import ELEMENTWISE, LEAVES, Op
from symgrad.printing import _FLATTENED, _SYMPY_BINARY, _SYMPY_UNARY
from symgrad.rules import NON_DIFFERENTIABLE, VJP_RULES

NON_LEAF = set(Op) - LEAVES


def test_reference_interpreter_covers_every_op():
    assert set(NUMPY_RULES) == NON_LEAF


def test_lowering_covers_every_op():
    assert set(LOWERING_RULES) == set(ELEMENTWISE)
    assert set(LOWERING_RULES) | set(STEP_LOWERING) == NON_LEAF


def test_every_op_is_differentiable_or_explicitly_not():
    assert set(VJP_RULES) | set(NON_DIFFERENTIABLE) == NON_LEAF
    assert not set(VJP_RULES) & set(NON_DIFFERENTIABLE)


def test_sympy_printer_covers_every_elementwise_op():
    assert set(_SYMPY_UNARY) | set(_SYMPY_BINARY) | set(_FLATTENED) | {Op.SELECT} == \
        set(ELEMENTWISE)
