"""The derivative of a tensor expression, shown as the equations reverse mode derived.

:class:`Derivation` names the values a network labelled (pre-activations ``z1``, activations
``a1``...) and the cotangents of the pre-activations (``delta1`` = dC/dz1, the lecture's
errors), and writes the forward values, the deltas and the parameter gradients as SymPy
matrix expressions in terms of those names.  For a multilayer perceptron they read as the
lecture's backpropagation rules (examples are rows, so the rules appear transposed)::

    delta1 = (delta2*W2) o (a1 o sigmoid.(-z1))   delta^(l) = (W^(l+1)^T delta^(l+1)) (.) h'(z^(l))
    dC/dW1 = delta1.T*X                           dC/dW^(l) = delta^(l) (a^(l-1))^T
    dC/db1 = 1*delta1                             dC/db^(l) = delta^(l), summed over the batch
"""

import sys

import sympy
from sympy.matrices.expressions import (
    HadamardPower,
    HadamardProduct,
    MatrixExpr,
    MatrixSymbol,
    OneMatrix,
)
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction
from sympy.printing.str import StrPrinter

from symgrad import ir
from symgrad.autodiff.reverse import reverse
from symgrad.display.to_sympy import (
    SYMPY_FUNCTIONS,
    evaluated_height,
    heights,
    sympy_constant,
    to_sympy,
)
from symgrad.errors import DepthError
from symgrad.ir.ops import ELEMENTWISE, UNARY_MATH, Op
from symgrad.ir.text import function_to_dot


class ElementwiseMap(ElementwiseApplyFunction):
    """A scalar function applied to every element of a matrix, printed as ``f.(M)``."""

    def _function_name(self):
        function = self.function
        if isinstance(function, sympy.Lambda) and len(function.variables) == 1:
            body = function.expr
            if isinstance(body, sympy.Function) and body.args == function.variables:
                return body.func
        return None

    def _sympystr(self, printer):
        name = self._function_name()
        if name is not None:
            return f"{name}.({printer._print(self.expr)})"
        (variable,) = self.function.variables
        body = self.function.expr.subs(variable, sympy.Symbol("u"))
        return f"(u -> {printer._print(body)}).({printer._print(self.expr)})"

    def _latex(self, printer):
        name = self._function_name()
        argument = printer._print(self.expr)
        if name is not None:
            return printer._print(name(sympy.Symbol(argument)))
        (variable,) = self.function.variables
        body = printer._print(self.function.expr.subs(variable, sympy.Symbol("u")))
        return rf"\left(u \mapsto {body}\right)_\circ\left({argument}\right)"


class _EquationPrinter(StrPrinter):
    """Text for matrix equations: ``A ∘ B`` for the elementwise product, ``A∘²`` for the
    elementwise square, ``1`` for a column or row of ones."""

    def _print_HadamardProduct(self, expr):
        return " ∘ ".join(self.parenthesize(arg, 50) for arg in expr.args)

    def _print_HadamardPower(self, expr):
        exponent = expr.exp
        if exponent == 2:
            return f"{self.parenthesize(expr.base, 60)}∘²"
        return f"{self.parenthesize(expr.base, 60)}∘^({self._print(exponent)})"

    def _print_OneMatrix(self, expr):
        return "1"


def _dims(shape):
    def size(d):
        return sympy.Symbol(d, integer=True, positive=True) if isinstance(d, str) else \
            sympy.Integer(d)
    if len(shape) == 0:
        return None
    if len(shape) == 1:
        return (sympy.Integer(1), size(shape[0]))
    if len(shape) == 2:
        return (size(shape[0]), size(shape[1]))
    raise NotImplementedError(f"derivations are shown for tensors of rank <= 2, got {shape}")


def _expand(value, shape, target):
    """A matrix (or scalar) of ``shape`` broadcast to ``target`` with matrices of ones."""
    to = _dims(target)
    if to is None:
        return value
    if not isinstance(value, MatrixExpr):
        return value * OneMatrix(*to)
    if shape == target:
        return value
    source = _dims(shape)
    if source[0] == 1 and to[0] != 1:
        value = OneMatrix(to[0], 1) * value
    if source[1] == 1 and to[1] != 1:
        value = value * OneMatrix(1, to[1])
    return value


# Ops shown as a function applied elementwise to a matrix, ``f.(M)``.
_MAPPED = UNARY_MATH - {Op.NEG, Op.STOP_GRADIENT}


class _MatrixPrinter:
    """IR nodes -> SymPy matrix expressions, with named nodes shown by their names."""

    def __init__(self, names):
        self.names = names            # id(node) -> SymPy symbol or MatrixSymbol
        self.memo = {}

    def convert(self, node, root=False):
        if not root and id(node) in self.names:
            return self.names[id(node)]
        key = (id(node), root)
        if key not in self.memo:
            self.memo[key] = self._convert(node)
        return self.memo[key]

    def _convert(self, node):
        op = node.op
        if op is Op.CONST:
            value = sympy_constant(node.attrs)
            return _expand(value, (), node.shape)
        if op is Op.DIM:
            return sympy.Symbol(node.attrs, integer=True, positive=True)
        if op is Op.INPUT:
            dims = _dims(node.shape)
            return sympy.Symbol(node.attrs) if dims is None else MatrixSymbol(node.attrs, *dims)
        if op is Op.IOTA:
            return _named_form(f"index[axis {node.attrs}]", node)
        args = [self.convert(a) for a in node.args]
        if op is Op.STOP_GRADIENT:
            return args[0]
        if op in ELEMENTWISE:
            return self._elementwise(node, args)
        return MATRIX_FORMS[op](self, node, args)

    def _elementwise(self, node, args):
        shapes = [a.shape for a in node.args]
        matrices = [isinstance(a, MatrixExpr) for a in args]
        op = node.op
        if not any(matrices):
            return to_sympy([node], {}, leaf_values=dict(zip(map(id, node.args), args)))[0]
        expanded = [_expand(a, s, node.shape) if m else a
                    for a, s, m in zip(args, shapes, matrices)]
        if op is Op.ADD:
            return expanded[0] + expanded[1] if all(matrices) else \
                _expand(args[0], shapes[0], node.shape) + _expand(args[1], shapes[1], node.shape)
        if op is Op.SUB:
            return _expand(args[0], shapes[0], node.shape) - \
                _expand(args[1], shapes[1], node.shape)
        if op is Op.NEG:
            return -args[0]
        if op is Op.MUL:
            if all(matrices):
                return HadamardProduct(*expanded)
            return args[0] * args[1] if matrices[1] else args[1] * args[0]
        if op is Op.DIV:
            if matrices[0] and not matrices[1]:
                return (1 / args[1]) * args[0]
            denominator = HadamardPower(expanded[1], -1)
            if matrices[0]:
                return HadamardProduct(expanded[0], denominator)
            return args[0] * denominator
        if op is Op.SELECT and node.args[2].op is Op.CONST and node.args[2].attrs == 0.0:
            # select(c, a, 0) = a o [c]: the indicator of the condition, elementwise.
            indicator = self._elementwise_formula(node.args[0], sympy.Piecewise)
            if indicator is not None and matrices[1]:
                return HadamardProduct(expanded[1], indicator)
        if op is Op.POW and matrices[0] and not matrices[1]:
            return HadamardPower(args[0], args[1])
        if op in _MAPPED:
            function = SYMPY_FUNCTIONS[op]
            variable = sympy.Dummy("u")
            return ElementwiseMap(sympy.Lambda(variable, function(variable)), args[0])
        formula = self._elementwise_formula(node)
        if formula is not None:
            return formula
        text = ", ".join(str(a) for a in args)
        return MatrixSymbol(f"{op.value}.({text})", *_dims(node.shape))

    def _elementwise_formula(self, node, indicator=None):
        """Anything else (max, select, comparisons...): a scalar formula of the one matrix it
        reads, applied elementwise; None when it reads several matrices.  With ``indicator``,
        a boolean node becomes its 0/1 indicator."""
        args = [self.convert(a) for a in node.args]
        matrices = [isinstance(a, MatrixExpr) for a in args]
        matrix_args = {id(n): a for n, a, m in zip(node.args, args, matrices) if m}
        if len(set(map(str, matrix_args.values()))) == 1:
            variable = sympy.Dummy("u")
            leaves = {key: variable for key in matrix_args}
            leaves.update({id(n): a for n, a, m in zip(node.args, args, matrices) if not m})
            body = to_sympy([node], {}, leaf_values=leaves)[0]
            if indicator is not None:
                body = sympy.Piecewise((1, body), (0, True))
            return ElementwiseMap(sympy.Lambda(variable, body), next(iter(matrix_args.values())))
        return None


def _reshape_form(printer, node, args):
    value = args[0]
    if _dims(node.shape) is not None or not isinstance(value, MatrixExpr):
        return value
    return value[0, 0]


def _broadcast_form(printer, node, args):
    if not isinstance(args[0], MatrixExpr):
        return args[0]          # a broadcast scalar reads as the scalar itself
    return _expand(args[0], node.args[0].shape, node.shape)


def _sum_form(printer, node, args):
    value = args[0]
    source = _dims(node.args[0].shape)
    rank = len(node.args[0].shape)
    axes = {axis + (2 - rank) for axis in node.attrs}
    if 0 in axes:
        value = OneMatrix(1, source[0]) * value
    if 1 in axes:
        value = value * OneMatrix(source[1], 1)
    return value


def _named_form(text, node):
    dims = _dims(node.shape)
    return sympy.Symbol(text) if dims is None else MatrixSymbol(text, *dims)


def _reduction_form(name):
    def form(printer, node, args):
        axes = ",".join(str(a) for a in node.attrs)
        return _named_form(f"{name}[axis {axes}]({args[0]})", node)
    return form


def _slice_form(printer, node, args):
    parts = []
    for (start, step), count in zip(node.attrs, node.shape):
        if isinstance(count, str):
            parts.append(":")
        else:
            stop = start + step * count
            parts.append(f"{start}:{'' if stop < 0 else stop}" + (f":{step}" if step != 1 else ""))
    return _named_form(f"({args[0]})[{', '.join(parts)}]", node)


def _pad_form(printer, node, args):
    return _named_form(f"pad({args[0]})", node)


def _call_form(name, sized=False):
    """``name(a, b, axis=..)`` (and ``size=..`` where the attributes are (axis, size))."""
    def form(printer, node, args):
        attributes = (f"axis={node.attrs[0]}, size={node.attrs[1]}" if sized
                      else f"axis={node.attrs}")
        return _named_form(f"{name}({', '.join(str(a) for a in args)}, {attributes})", node)
    return form


#: The SymPy matrix form of each tensor op that is not elementwise (elementwise ops:
#: SYMPY_FUNCTIONS, applied elementwise): rule(printer, node, the operands' forms).
MATRIX_FORMS = {
    Op.MATMUL: lambda printer, node, args: args[0] * args[1],
    Op.TRANSPOSE: lambda printer, node, args: args[0].T,
    Op.RESHAPE: _reshape_form,
    Op.BROADCAST: _broadcast_form,
    Op.SUM: _sum_form,
    Op.AMAX: _reduction_form("max"),
    Op.AMIN: _reduction_form("min"),
    Op.PROD: _reduction_form("prod"),
    Op.SLICE: _slice_form,
    Op.PAD: _pad_form,
    Op.GATHER: _call_form("take"),
    Op.SCATTER_ADD: _call_form("scatter_add", sized=True),
    Op.TAKE_ALONG: _call_form("take_along_axis"),
    Op.PUT_ADD_ALONG: _call_form("put_add_along", sized=True),
    Op.LINREC: _call_form("linrec"),
}


# Python frames per level of an equation that SymPy's matrix expressions and printers take,
# with a margin of three: an equation 68 levels deep takes about 250.
MATRIX_FRAMES_PER_LEVEL = 12


def _check_depth(roots, names):
    """Raise :class:`DepthError` when an equation, the expression of a root down to the named
    values, is deeper than SymPy's matrix expressions and printers can take (they recurse
    once per level), found by an iterative walk."""
    _, root_heights = heights(roots, names)
    deepest = max(root_heights, default=0)
    limit = evaluated_height(MATRIX_FRAMES_PER_LEVEL)
    if deepest > limit:
        raise DepthError(
            f"the derivation's longest equation is {deepest} operations deep, and SymPy's "
            f"matrix expressions and printers recurse once per level: at most {limit} fit "
            f"in the recursion limit ({sys.getrecursionlimit()}).  Name intermediate values "
            f"with symgrad.label(tensor, name, cotangent_name), computing on the tensor it "
            f"returns, so that each equation stays short (as the layers of symgrad.nn do), "
            f"or raise the limit with "
            f"sys.setrecursionlimit; compiling does not need the derivation")


class Derivation:
    """Reverse mode's derivative of a scalar tensor expression, as named equations.

    ``labels``: ``(node, name, cotangent name or None)`` entries naming the values to show by
    name (default: the labels ``loss`` carries, as the layers of :mod:`symgrad.nn` and
    :func:`symgrad.label` set them).

    Attributes
    ----------
    equations : list of (str, sympy expression)
        Forward definitions of the labelled values, then the deltas, then the gradients.
    gradients : list of sympy expressions
        One per parameter, in terms of the named values.
    function : symgrad.ir.Function
        The fused forward and backward IR.
    """

    def __init__(self, loss, wrt, inputs, labels=None):
        from symgrad.frontend.trace import trace_tensor

        function, wrt_list = trace_tensor(loss, wrt, inputs)
        if labels is None:
            labels = loss.labels
        names_of = {}
        for node, name, cotangent_name in labels:
            names_of.setdefault(id(node), (name, cotangent_name))
        order = ir.toposort([loss.node])
        labelled = [n for n in order if id(n) in names_of]
        recorded = [n for n in labelled if names_of[id(n)][1]]
        gradients, cotangents = reverse(loss.node, [t.node for t in wrt_list], recorded)
        names = {}
        for node in function.inputs:
            names[id(node)] = _MatrixPrinter({}).convert(node)
        for node in labelled:
            dims = _dims(node.shape)
            name = names_of[id(node)][0]
            names[id(node)] = sympy.Symbol(name) if dims is None else MatrixSymbol(name, *dims)
        for node in recorded:
            ct = cotangents.get(id(node))
            if ct is not None and ct.op not in (Op.CONST, Op.INPUT):
                dims = _dims(node.shape)
                name = names_of[id(node)][1]
                names[id(ct)] = sympy.Symbol(name) if dims is None else \
                    MatrixSymbol(name, *dims)
        roots = labelled + [cotangents[id(n)] for n in recorded if id(n) in cotangents] + \
            list(gradients)
        _check_depth(roots, names)
        printer = _MatrixPrinter(names)
        self.equations = [(names_of[id(n)][0], printer.convert(n, root=True)) for n in labelled]
        for node in reversed(recorded):
            ct = cotangents.get(id(node))
            if ct is not None and id(ct) in names:
                self.equations.append((names_of[id(node)][1], printer.convert(ct, root=True)))
        self.gradients = [printer.convert(g) for g in gradients]
        for tensor, gradient in zip(wrt_list, self.gradients):
            self.equations.append((f"dC/d{tensor.name}", gradient))
        from symgrad.autodiff.reverse import value_and_grad
        self.function = value_and_grad(function, [t.name for t in wrt_list])
        self.parameters = wrt_list

    def __str__(self):
        width = max(len(name) for name, _ in self.equations)
        printer = _EquationPrinter()
        return "\n".join(f"{name:>{width}} = {printer.doprint(expr)}"
                         for name, expr in self.equations)

    def __repr__(self):
        return f"<Derivation of {len(self.gradients)} gradients>\n{self}"

    def __iter__(self):
        return iter(self.gradients)

    def __len__(self):
        return len(self.gradients)

    def __getitem__(self, index):
        return self.gradients[index]

    def latex(self):
        """The equations as a LaTeX ``aligned`` block."""
        lines = []
        for name, expr in self.equations:
            if name.startswith("dC/d"):
                symbol = sympy.latex(sympy.Symbol(name[4:]))
                lhs = rf"\frac{{\partial C}}{{\partial {symbol}}}"
            else:
                lhs = sympy.latex(sympy.Symbol(name))
            lines.append(rf"{lhs} &= {sympy.latex(expr)}")
        return "\\begin{aligned}\n" + " \\\\\n".join(lines) + "\n\\end{aligned}"

    def to_dot(self):
        """The fused forward and backward graph in Graphviz DOT."""
        return function_to_dot(self.function)
