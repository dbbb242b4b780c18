"""symgrad: declare a model in SymPy, differentiate it in reverse mode, see the derivative,
and run forward and backward passes together as one native kernel compiled with LLVM.

>>> import symgrad as sg
>>> x, y = sg.symbols("x y")
>>> sg.grad(x**2 + x*y + (x + y)**2, [x, y])
[4*x + 3*y, 3*x + 2*y]

The stages are subpackages: :mod:`symgrad.ir` (the IR), :mod:`symgrad.frontend` (SymPy and
tensor expressions into IR), :mod:`symgrad.autodiff` (reverse mode), :mod:`symgrad.display`
(IR back to SymPy, derivations), :mod:`symgrad.reference` (the numpy interpreter, gradcheck)
and :mod:`symgrad.codegen` (lowering to LLVM, compiling, running).  Public names load on
first use, so that ``import symgrad.ir`` loads neither SymPy nor LLVM.
"""

import importlib

__version__ = "0.2.0"

# Public name -> the module that defines it.
_NAMES = {
    "symbols": "symgrad.api", "grad": "symgrad.api", "compile": "symgrad.api",
    "compile_function": "symgrad.api", "trace": "symgrad.api",
    "gradcheck": "symgrad.reference.gradcheck",
    "GradcheckError": "symgrad.errors", "ShapeError": "symgrad.errors",
    "UnknownSymbolError": "symgrad.errors", "UnsupportedExpressionError": "symgrad.errors",
    "DepthError": "symgrad.errors",
    **{name: "symgrad.functions" for name in (
        "acon_a", "acon_b", "acon_c", "activation", "elu", "gelu", "leaky_relu", "mish", "prelu",
        "relu", "sigmoid", "smooth_max", "softplus", "step", "swish", "tanh")},
    **{name: "symgrad.training" for name in ("History", "fit", "load", "save")},
    **{name: "symgrad.tensors" for name in (
        "Tensor", "argmax", "argmin", "cumprod", "cumsum", "elementwise", "label",
        "linear_recurrence", "log_softmax", "logsumexp", "matmul", "norm", "softmax", "take",
        "take_along_axis", "tensor", "where")},
    **{name: "symgrad.shapes" for name in (
        "arange", "broadcast_to", "concatenate", "expand_dims", "flip", "pad", "repeat", "roll",
        "split", "squeeze", "stack", "tile", "tril", "tril_to_vector", "triu",
        "vector_to_tril")},
    **{name: "symgrad.elementary" for name in (
        "abs", "acos", "acosh", "arccos", "arccosh", "arcsin", "arcsinh", "arctan", "arctan2",
        "arctanh", "asin", "asinh", "atan", "atan2", "atanh", "ceil", "clip", "cos", "cosh",
        "erf", "erfc", "exp", "exp2", "expm1", "floor", "hypot", "log", "log1p", "log2",
        "log10", "rint", "round", "sign", "sin", "sinh", "sqrt", "tan")},
    **{name: "symgrad.contract" for name in (
        "dot", "einsum", "inner", "outer", "tensordot")},
    "num_threads": "symgrad.codegen.runtime.threads",
    "set_num_threads": "symgrad.codegen.runtime.threads",
}
_MODULES = ("nn", "losses", "optim")

# Not star-imported: they would hide the builtins of those names.
_BUILTIN_NAMES = frozenset({"abs", "round"})
__all__ = sorted(set(_NAMES) - _BUILTIN_NAMES) + list(_MODULES)


def __getattr__(name):
    if name in _NAMES:
        value = getattr(importlib.import_module(_NAMES[name]), name)
    elif name in _MODULES:
        value = importlib.import_module(f"symgrad.{name}")
    else:
        raise AttributeError(f"module 'symgrad' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
