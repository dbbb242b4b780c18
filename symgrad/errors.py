"""Exceptions raised by symgrad, each a subclass of a standard Python exception."""


class ShapeError(ValueError):
    """Shapes that do not fit together (the message names both)."""


class UnsupportedExpressionError(TypeError):
    """A SymPy expression that symgrad cannot translate (the message names the function and the
    sub-expression)."""


class UnknownSymbolError(ValueError):
    """A free symbol that was not declared as an argument."""


class GradcheckError(AssertionError):
    """Analytic and finite-difference gradients disagree (the message holds a table)."""


class DepthError(RecursionError):
    """An expression nested too deeply for a step that must recurse once per level (SymPy's
    constructors and printers): raised before the recursion limit is reached, with the depth
    found and what to do."""
