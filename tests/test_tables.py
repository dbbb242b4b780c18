"""Every op has an entry in every interpretation's table: one test, naming the op and the
table that lacks it (README: "Adding an op")."""

import pytest

from symgrad.autodiff.rules import NON_DIFFERENTIABLE, VJP_RULES
from symgrad.codegen.lower.mathlib import LOWERING_RULES
from symgrad.codegen.lower.matmul import PRODUCT_RULES
from symgrad.codegen.lower.schedule import STEP_KIND
from symgrad.codegen.lower.tensor import (
    INDEXED_RULES,
    REDUCTION_RULES,
    SCAN_RULES,
    SCATTER_RULES,
    VIEW_RULES,
)
from symgrad.display.derivation import MATRIX_FORMS
from symgrad.display.to_sympy import SYMPY_FUNCTIONS
from symgrad.ir import ATTRIBUTE_BUILDERS, BUILDERS, NODE_BUILDERS
from symgrad.ir.numeric import ELEMENTWISE_RULES
from symgrad.ir.ops import ARITY, ELEMENTWISE, LEAVES, Op
from symgrad.reference.evaluate import NUMPY_RULES, STRUCTURAL_RULES

NON_LEAF = set(Op) - LEAVES
# The table that lowers each kind of tensor step (symgrad.codegen.lower.schedule.STEP_KIND).
STEP_TABLES = {"view": ("VIEW_RULES", VIEW_RULES), "reduction": ("REDUCTION_RULES",
                                                                  REDUCTION_RULES),
               "matmul": ("PRODUCT_RULES", PRODUCT_RULES),
               "indexed": ("INDEXED_RULES", INDEXED_RULES),
               "scatter": ("SCATTER_RULES", SCATTER_RULES),
               "scan": ("SCAN_RULES", SCAN_RULES)}
# The module that holds each of those tables.
STEP_TABLE_MODULES = {"view": "tensor", "reduction": "tensor", "matmul": "matmul",
                      "indexed": "tensor", "scatter": "tensor", "scan": "tensor"}
# The leaves a tensor kernel computes in its loops (the others are inputs and immediates).
COMPUTED_LEAVES = LEAVES - {Op.CONST, Op.INPUT, Op.DIM}


def missing_entries(op):
    """The names of the tables that have no entry for ``op``."""
    tables = {
        "ARITY (symgrad.ir.ops)": op in ARITY,
        "BUILDERS, ATTRIBUTE_BUILDERS or NODE_BUILDERS (symgrad.ir)":
            op in BUILDERS or op in ATTRIBUTE_BUILDERS or op in NODE_BUILDERS,
        "NUMPY_RULES (symgrad.reference.evaluate)": op in NUMPY_RULES,
        "VJP_RULES or NON_DIFFERENTIABLE (symgrad.autodiff.rules)":
            (op in VJP_RULES) != (op in NON_DIFFERENTIABLE),
    }
    if op in ELEMENTWISE:
        tables["ELEMENTWISE_RULES (symgrad.ir.numeric)"] = op in ELEMENTWISE_RULES
        tables["SYMPY_FUNCTIONS (symgrad.display.to_sympy)"] = op in SYMPY_FUNCTIONS
        tables["LOWERING_RULES (symgrad.codegen.lower.mathlib)"] = op in LOWERING_RULES
    else:
        tables["STRUCTURAL_RULES (symgrad.reference.evaluate)"] = op in STRUCTURAL_RULES
        tables["MATRIX_FORMS (symgrad.display.derivation)"] = op in MATRIX_FORMS
        tables["STEP_KIND (symgrad.codegen.lower.schedule)"] = op in STEP_KIND
        if op in STEP_KIND:
            name, table = STEP_TABLES[STEP_KIND[op]]
            module = STEP_TABLE_MODULES[STEP_KIND[op]]
            tables[f"{name} (symgrad.codegen.lower.{module})"] = op in table
    return [name for name, present in tables.items() if not present]


@pytest.mark.parametrize("op", sorted(NON_LEAF, key=lambda op: op.value), ids=lambda op: op.value)
def test_every_op_has_an_entry_in_every_table(op):
    missing = missing_entries(op)
    assert not missing, f"op {op.name} has no entry in {', '.join(missing)}"


def test_the_tables_hold_no_entry_for_an_op_they_do_not_interpret():
    elementwise_only = [ELEMENTWISE_RULES, SYMPY_FUNCTIONS, LOWERING_RULES]
    for table in elementwise_only:
        assert set(table) <= ELEMENTWISE, set(table) - ELEMENTWISE
    for table in (STRUCTURAL_RULES, MATRIX_FORMS, STEP_KIND, VIEW_RULES, REDUCTION_RULES,
                  PRODUCT_RULES, INDEXED_RULES, SCATTER_RULES, SCAN_RULES):
        assert set(table) <= (NON_LEAF | COMPUTED_LEAVES) - ELEMENTWISE
    assert not set(VJP_RULES) & set(NON_DIFFERENTIABLE)
    for kind, (_, table) in STEP_TABLES.items():
        assert set(table) == {op for op, k in STEP_KIND.items() if k == kind}


@pytest.mark.parametrize("op", sorted(COMPUTED_LEAVES, key=lambda op: op.value),
                         ids=lambda op: op.value)
def test_every_computed_leaf_is_lowered_and_evaluated(op):
    assert STEP_KIND.get(op) == "indexed", f"leaf {op.name} has no STEP_KIND entry"
    assert op in INDEXED_RULES, f"leaf {op.name} has no INDEXED_RULES entry"
    assert op in NUMPY_RULES or op in STRUCTURAL_RULES, \
        f"leaf {op.name} has no entry in the reference interpreter"


def test_a_missing_entry_is_named(monkeypatch):
    # The test above would fail naming the op and the table: take one entry away.
    monkeypatch.delitem(LOWERING_RULES, Op.TANH)
    monkeypatch.delitem(VJP_RULES, Op.TANH)
    assert missing_entries(Op.TANH) == [
        "VJP_RULES or NON_DIFFERENTIABLE (symgrad.autodiff.rules)",
        "LOWERING_RULES (symgrad.codegen.lower.mathlib)"]
    monkeypatch.delitem(REDUCTION_RULES, Op.AMAX)
    assert missing_entries(Op.AMAX) == ["REDUCTION_RULES (symgrad.codegen.lower.tensor)"]
