"""Show: IR as SymPy expressions (:mod:`~symgrad.display.to_sympy`) and a tensor model's
derivative as named equations (:mod:`~symgrad.display.derivation`).  IR as text and DOT is
the IR's own (:mod:`symgrad.ir.text`)."""
