"""symgrad: declare a model in SymPy, differentiate it in reverse mode, see the derivative,
and run forward and backward passes together as one native kernel compiled with LLVM.

>>> import symgrad as sg
>>> x, y = sg.symbols("x y")
>>> sg.grad(x**2 + x*y + (x + y)**2, [x, y])
[4*x + 3*y, 3*x + 2*y]
"""

from symgrad.api import compile, grad, symbols, trace
from symgrad.check import gradcheck
from symgrad.errors import (GradcheckError, ShapeError, UnknownSymbolError,
                            UnsupportedExpressionError)

__version__ = "0.1.0"

__all__ = [
    "symbols", "grad", "compile", "gradcheck", "trace",
    "GradcheckError", "ShapeError", "UnknownSymbolError", "UnsupportedExpressionError",
]
