"""Declare: SymPy formulas into IR nodes (:mod:`~symgrad.frontend.sympy_to_ir`), and
expressions with their argument lists into IR functions (:mod:`~symgrad.frontend.trace`)."""
