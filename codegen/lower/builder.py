"""Helpers for emitting LLVM IR: a builder that folds index arithmetic on known numbers, and
external functions and objects declared once per module."""

import operator

from llvmlite import ir as llvm_ir

from symgrad.codegen.lower.types import INDEX


def _known(value):
    """The number an i64 constant holds, else None."""
    if isinstance(value, llvm_ir.Constant) and value.type == INDEX and \
            isinstance(value.constant, int):
        return value.constant
    return None


def _index_or_none(number):
    return INDEX(number) if -2**63 <= number < 2**63 else None


class FoldingBuilder(llvm_ir.IRBuilder):
    """An IRBuilder that folds the index arithmetic on numbers known at compile time (sizes,
    strides, chunking of fixed shapes) instead of emitting it: a third of a kernel's
    instructions were ``mul 1, x``, ``add 0, x`` and operations on two constants, which cost
    printing, parsing and optimising for nothing."""

    def _fold(self, emit, combine, identity, lhs, rhs, name):
        """``combine`` of two known numbers, an operand against the ``identity`` (on either
        side for a commutative operation, else on the right: ``identity`` a pair), or
        ``emit``."""
        a, b = _known(lhs), _known(rhs)
        if a is not None and b is not None and _index_or_none(combine(a, b)) is not None:
            return INDEX(combine(a, b))
        left, right = identity
        if a is not None and a == left:
            return rhs
        if b == right:
            return lhs
        return emit(lhs, rhs, name)

    def add(self, lhs, rhs, name=""):
        return self._fold(super().add, operator.add, (0, 0), lhs, rhs, name)

    def sub(self, lhs, rhs, name=""):
        return self._fold(super().sub, operator.sub, (None, 0), lhs, rhs, name)

    def mul(self, lhs, rhs, name=""):
        return self._fold(super().mul, operator.mul, (1, 1), lhs, rhs, name)

    def sdiv(self, lhs, rhs, name=""):
        a, b = _known(lhs), _known(rhs)
        if a is not None and b is not None and b != 0 and not (a == -2**63 and b == -1):
            quotient = abs(a) // abs(b)                  # rounded toward zero, as sdiv
            return INDEX(quotient if (a < 0) == (b < 0) else -quotient)
        if b == 1:
            return lhs
        return super().sdiv(lhs, rhs, name)

    def icmp_signed(self, cmpop, lhs, rhs, name=""):
        a, b = _known(lhs), _known(rhs)
        if a is not None and b is not None:
            result = {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b, "==": a == b,
                      "!=": a != b}[cmpop]
            return llvm_ir.IntType(1)(int(result))
        return super().icmp_signed(cmpop, lhs, rhs, name)

    def select(self, cond, lhs, rhs, name="", flags=()):
        if isinstance(cond, llvm_ir.Constant) and cond.type == llvm_ir.IntType(1) and \
                isinstance(cond.constant, int):
            return lhs if cond.constant else rhs
        if lhs is rhs:
            return lhs
        return super().select(cond, lhs, rhs, name, flags)



def c_function(module, name, result, arguments):
    """The external function (C API, libc, LLVM intrinsic) ``name`` declared in ``module``
    (once, whichever part of the module asks first)."""
    function = module.globals.get(name)
    if function is None:
        function = llvm_ir.Function(module, llvm_ir.FunctionType(result, arguments), name)
    return function


def c_object(module, name):
    """The C-API object (or registered object) ``name``, declared in ``module`` once."""
    variable = module.globals.get(name)
    if variable is None:
        variable = llvm_ir.GlobalVariable(module, llvm_ir.IntType(8), name)
        variable.linkage = "external"
    return variable
