"""The public entry points: ``symbols``, ``trace``, ``grad`` and ``compile``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from symgrad.codegen import FunctionKernel, Kernel, TensorKernel
    from symgrad.tensors import Tensor

import sympy

from symgrad import ir
from symgrad.autodiff.reverse import value_and_grad, vjp
from symgrad.display.to_sympy import to_sympy
from symgrad.frontend.sympy_to_ir import free_symbols, sympify, to_ir
from symgrad.frontend.trace import (
    check_declared,
    input_nodes,
    inputs_of,
    symbol_list,
    tensor_list,
    trace,
    trace_many,
    trace_tensor,
)
from symgrad.messages import bounded_list

__all__ = ["symbols", "trace", "grad", "compile", "compile_function"]


def symbols(names: str, **assumptions: object) -> Any:
    """Real SymPy symbols, as ``sympy.symbols`` makes them.

    Examples
    --------
    >>> x, y = symbols("x y")
    >>> x.is_real
    True
    """
    assumptions.setdefault("real", True)
    return sympy.symbols(names, **assumptions)


def grad(expr: sympy.Expr | Tensor, wrt: Any) -> Any:
    """The gradient of a scalar SymPy expression, by reverse mode over symgrad's IR.

    Parameters
    ----------
    expr : sympy.Expr or Tensor
    wrt : sympy.Symbol or sequence of sympy.Symbol, or sequence of Tensor

    Returns
    -------
    sympy.Expr, list of sympy.Expr, or symgrad.derivation.Derivation
        For a SymPy expression, one derivative per symbol of ``wrt`` (a single expression when
        ``wrt`` is a single symbol); a symbol that ``expr`` does not depend on gets 0.  For a
        scalar tensor expression, a :class:`~symgrad.derivation.Derivation`: the gradients as
        SymPy matrix expressions and the named equations reverse mode derived (for a network,
        the backpropagation rules), printable as text and LaTeX.

    Examples
    --------
    >>> x, y = symbols("x y")
    >>> grad(x**2 + x*y + (x + y)**2, [x, y])
    [4*x + 3*y, 3*x + 2*y]
    """
    from symgrad.tensors import Tensor

    if isinstance(expr, Tensor):
        from symgrad.display.derivation import Derivation

        wrt_list = tensor_list(wrt, "wrt")
        names = {t.name for t in wrt_list}
        inputs = [t for t in inputs_of(expr) if t.name not in names]
        return Derivation(expr, wrt_list, inputs)
    expr = sympify(expr)
    wrt_list, single = symbol_list(wrt, "wrt")
    free = sorted(free_symbols(expr) - set(wrt_list), key=str)
    nodes = input_nodes(wrt_list + free)
    output = to_ir(expr, nodes)
    gradients = vjp(output, [nodes[s] for s in wrt_list])
    expressions = to_sympy(gradients, {node.attrs: symbol for symbol, node in nodes.items()})
    return expressions[0] if single else expressions


def compile_function(outputs: Any, inputs: Sequence[Any],
                     names: Sequence[str] | None = None) -> FunctionKernel | SympyFunction:
    """Compile expressions (no differentiation) into one native kernel.

    For SymPy expressions, a counterpart of ``sympy.lambdify(inputs, outputs)``: ``outputs``
    is an expression, a SymPy matrix, or a (nested) list or tuple of them, ``inputs`` the
    symbols in call order; the kernel computes every element in one pass over the
    broadcast arguments and returns what lambdify would, in the same structure: an array for
    an expression, a list for a list, an array of shape ``(rows, cols) + broadcast shape``
    for a matrix (lambdify's layout), Python floats for Python numbers.  See
    :class:`SympyFunction`.  For tensors, as follows.

    Parameters
    ----------
    outputs : Tensor or sequence of Tensor
    inputs : sequence of Tensor
        The argument tensors, in call order.
    names : sequence of str, optional
        Names of the outputs (for printing).

    Returns
    -------
    symgrad.codegen.runtime.tensor_kernel.FunctionKernel
        ``kernel(*arrays, **arrays_by_name)`` returns a tuple with one array per output.

    Examples
    --------
    >>> X = tensor("X", ("n", 3)); w = tensor("w", (3,))
    >>> k = compile_function([X @ w.reshape(3, 1)], [X, w])
    """
    from symgrad.codegen import FunctionKernel
    from symgrad.tensors import Tensor

    if not (isinstance(outputs, Tensor) or (
            isinstance(outputs, (list, tuple)) and any(isinstance(o, Tensor) for o in outputs))):
        return SympyFunction(outputs, inputs)
    outputs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    for output in outputs:
        if not isinstance(output, Tensor):
            raise TypeError(f"outputs must be tensors (or all SymPy expressions), got "
                            f"{type(output).__name__}")
    arguments = tensor_list(inputs, "inputs")
    argument_names = [t.name for t in arguments]
    repeated = sorted({n for n in argument_names if argument_names.count(n) > 1})
    if repeated:
        raise ValueError(f"inputs {bounded_list(repeated)} are given more than once")
    check_declared(outputs, arguments, f"not in inputs {bounded_list(argument_names)}")
    function = ir.Function([t.node for t in arguments], [o.node for o in outputs], names)
    return FunctionKernel(function)


def compile(expr: sympy.Expr | Tensor, wrt: Any, inputs: Any = ()) -> Kernel | TensorKernel:
    """Compile a scalar SymPy expression and its gradient into one native kernel.

    Parameters
    ----------
    expr : sympy.Expr or Tensor
        A scalar SymPy expression, or a scalar tensor expression (a loss).
    wrt : sequence of sympy.Symbol, or of Tensor
        What to differentiate with respect to: the kernel's first arguments.
    inputs : sequence of sympy.Symbol, or of Tensor
        Further arguments the expression depends on, not differentiated.

    Returns
    -------
    symgrad.codegen.Kernel or symgrad.codegen.runtime.tensor_kernel.TensorKernel
        For a SymPy expression, ``kernel(*wrt_values, *input_values)`` (or by symbol name as
        keywords) returns ``(value, (d/d wrt[0], d/d wrt[1], ...))``, elementwise over numpy
        broadcasting.  For a tensor expression, ``kernel(params, *inputs, **inputs)`` takes
        the ``wrt`` values as one sequence and returns ``(loss, grads)``, all of it in one
        native call.

    Examples
    --------
    >>> x, y = symbols("x y")
    >>> k = compile(x**2 + x*y + (x + y)**2, wrt=[x, y])
    >>> k(3.0, -2.0)
    (4.0, (6.0, 5.0))
    """
    from symgrad.codegen import Kernel
    from symgrad.tensors import Tensor

    if isinstance(expr, Tensor):
        from symgrad.codegen import TensorKernel

        function, wrt_list = trace_tensor(expr, wrt, inputs)
        fused = value_and_grad(function, [t.name for t in wrt_list])
        return TensorKernel(fused, num_params=len(wrt_list))
    function = trace(expr, wrt, inputs)
    wrt_list, _ = symbol_list(wrt, "wrt")
    fused = value_and_grad(function, [s.name for s in wrt_list])
    return Kernel(fused, value_and_grad=True)


class SympyFunction:
    """A compiled list (or matrix, or nest) of SymPy expressions: what
    :func:`compile_function` returns for SymPy outputs.

    ``f(*values)`` (or by symbol name as keywords) broadcasts the values like numpy and
    returns the outputs in the structure they were given in.

    Attributes
    ----------
    kernel : symgrad.codegen.Kernel
        The elementwise kernel of all the outputs (one output per element, row-major).
    """

    def __init__(self, outputs, inputs):
        from symgrad.codegen import Kernel

        flat = []
        self._structure = self._flatten(outputs, flat)
        if not flat:
            raise ValueError("compile_function needs at least one output expression")
        symbols, _ = symbol_list(inputs, "inputs")
        self.inputs = symbols
        self.kernel = Kernel(trace_many(flat, (), symbols), value_and_grad=False)

    @classmethod
    def _flatten(cls, outputs, flat):
        """``outputs``' elements appended to ``flat``; returns how to rebuild the structure."""
        if isinstance(outputs, sympy.MatrixBase):
            start = len(flat)
            flat.extend(outputs)
            return ("matrix", outputs.shape, start)
        if isinstance(outputs, (list, tuple)):
            return (type(outputs), [cls._flatten(item, flat) for item in outputs])
        if isinstance(outputs, sympy.MatrixExpr) or hasattr(outputs, "__array__"):
            raise TypeError(f"outputs must be SymPy expressions, matrices or lists of them (or "
                            f"tensors), got {type(outputs).__name__}")
        flat.append(sympify(outputs))
        return ("expression", len(flat) - 1)

    def __call__(self, *args, **kwargs):
        results = self.kernel(*args, **kwargs)
        return self._rebuild(self._structure, results)

    @classmethod
    def _rebuild(cls, structure, results):
        import numpy as np

        kind = structure[0]
        if kind == "expression":
            return results[structure[1]]
        if kind == "matrix":
            (rows, columns), start = structure[1], structure[2]
            elements = results[start:start + rows * columns]
            stacked = np.array(np.broadcast_arrays(*elements) if elements else elements)
            return stacked.reshape((rows, columns) + stacked.shape[1:])
        return kind(cls._rebuild(item, results) for item in structure[1])

    def __repr__(self):
        names = ", ".join(s.name for s in self.inputs)
        return f"<symgrad.SympyFunction ({names}) -> {len(self.kernel.function.outputs)} values>"
