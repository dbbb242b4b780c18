"""symgrad: declare a model in SymPy, differentiate it in reverse mode, see the derivative,
and run forward and backward passes together as one native kernel compiled with LLVM.

>>> import symgrad as sg
>>> x, y = sg.symbols("x y")
>>> sg.grad(x**2 + x*y + (x + y)**2, [x, y])
[4*x + 3*y, 3*x + 2*y]
"""

from symgrad import losses, nn, optim
from symgrad.api import compile, compile_function, grad, symbols, trace
from symgrad.check import gradcheck
from symgrad.errors import (GradcheckError, ShapeError, UnknownSymbolError,
                            UnsupportedExpressionError)
from symgrad.functions import (acon_a, acon_b, acon_c, activation, elu, leaky_relu, mish,
                               prelu, relu, sigmoid, smooth_max, softplus, step, swish, tanh)
from symgrad.training import History, fit, load, save
from symgrad.tensor import (Tensor, elementwise, log_softmax, logsumexp, matmul, softmax,
                            tensor, where)

__version__ = "0.1.0"

__all__ = [
    "symbols", "grad", "compile", "compile_function", "gradcheck", "trace",
    "tensor", "Tensor", "elementwise", "matmul", "where", "softmax", "log_softmax",
    "logsumexp",
    "activation", "sigmoid", "tanh", "step", "relu", "leaky_relu", "prelu", "elu", "softplus",
    "swish", "mish", "smooth_max", "acon_a", "acon_b", "acon_c",
    "nn", "losses", "optim", "fit", "History", "save", "load",
    "GradcheckError", "ShapeError", "UnknownSymbolError", "UnsupportedExpressionError",
    "num_threads", "set_num_threads",
]

# The JIT backend (llvmlite and LLVM) loads with symgrad, as JAX loads XLA: a first compile
# then costs compiling only.  (Where codegen is imported first, it is already loading.)
import codegen  # noqa: E402,F401
from codegen.parallel import num_threads, set_num_threads  # noqa: E402
