"""IR as SymPy expressions, for display and LaTeX."""

import math
import sys
from fractions import Fraction

import sympy

from symgrad.frontend.sympy_functions import (
    exp2,
    expm1,
    hypot,
    log1p,
    log2,
    log10,
    round_even,
    sigmoid,
    softplus,
)
from symgrad.ir.ops import Op


def sympy_constant(value):
    """A float as the simplest exact SymPy number that rounds to it (1/2 for 0.5), else a
    Float carrying every digit."""
    if math.isnan(value):
        return sympy.nan
    if math.isinf(value):
        return sympy.oo if value > 0 else -sympy.oo
    if value == int(value) and abs(value) < 2 ** 53:
        return sympy.Integer(int(value))
    fraction = Fraction(value).limit_denominator(1000)
    if float(fraction) == value:
        return sympy.Rational(fraction.numerator, fraction.denominator)
    return sympy.Float(repr(value), 17)


def _piecewise(cond, if_true, if_false):
    return sympy.Piecewise((if_true, cond), (if_false, True))


#: The SymPy form of every elementwise op: a function of the operands' SymPy values.  (ADD
#: and MUL take any number of operands: chains of them are shown flattened; SELECT is shown
#: as one Piecewise of a whole chain of selections where SymPy can take it.)
SYMPY_FUNCTIONS = {
    Op.ADD: sympy.Add, Op.MUL: sympy.Mul,
    Op.NEG: lambda x: -x, Op.SUB: lambda a, b: a - b, Op.DIV: lambda a, b: a / b,
    Op.POW: lambda a, b: a ** b, Op.MAX: sympy.Max, Op.MIN: sympy.Min,
    Op.EXP: sympy.exp, Op.LOG: sympy.log, Op.SQRT: sympy.sqrt, Op.SIN: sympy.sin,
    Op.COS: sympy.cos, Op.TANH: sympy.tanh, Op.ABS: sympy.Abs, Op.SIGN: sympy.sign,
    Op.SIGMOID: sigmoid, Op.SOFTPLUS: softplus, Op.EXPM1: expm1, Op.LOG1P: log1p,
    Op.STOP_GRADIENT: lambda x: x,
    Op.LOG2: log2, Op.LOG10: log10, Op.EXP2: exp2, Op.TAN: sympy.tan, Op.ASIN: sympy.asin,
    Op.ACOS: sympy.acos, Op.ATAN: sympy.atan, Op.SINH: sympy.sinh, Op.COSH: sympy.cosh,
    Op.ASINH: sympy.asinh, Op.ACOSH: sympy.acosh, Op.ATANH: sympy.atanh, Op.ERF: sympy.erf,
    Op.ERFC: sympy.erfc, Op.FLOOR: sympy.floor, Op.CEIL: sympy.ceiling, Op.ROUND: round_even,
    Op.ATAN2: sympy.atan2, Op.HYPOT: hypot, Op.CAST: sympy.Function("cast"),
    Op.FLOOR_DIV: lambda a, b: sympy.floor(a / b), Op.MOD: sympy.Mod,
    # Unevaluated: a comparison with a NaN-valued piece (Heaviside's) must still print.
    Op.LT: lambda a, b: sympy.Lt(a, b, evaluate=False),
    Op.LE: lambda a, b: sympy.Le(a, b, evaluate=False),
    Op.GT: lambda a, b: sympy.Gt(a, b, evaluate=False),
    Op.GE: lambda a, b: sympy.Ge(a, b, evaluate=False),
    Op.EQ: lambda a, b: sympy.Eq(a, b, evaluate=False),
    Op.NE: lambda a, b: sympy.Ne(a, b, evaluate=False),
    Op.AND: sympy.And, Op.OR: sympy.Or, Op.NOT: sympy.Not,
    Op.SELECT: _piecewise,
}
#: Ops whose chains are shown as one flat sum or product.
_FLATTENED = frozenset({Op.ADD, Op.MUL})
_WHERE = sympy.Function("where")


def _flat_operands(node):
    """Operands of a chain of the same associative op (ADD or MUL), flattened iteratively."""
    operands = []
    stack = [node]
    while stack:
        current = stack.pop()
        if current.op is node.op:
            stack.extend(reversed(current.args))
        else:
            operands.append(current)
    return operands


def _select_pieces(node):
    """select(c1, a, select(c2, b, d)) -> [(a, c1), (b, c2), (d, True)]."""
    pieces = []
    while node.op is Op.SELECT:
        pieces.append((node.args[1], node.args[0]))
        node = node.args[2]
    pieces.append((node, None))
    return pieces


def _heaviside_parts(node):
    """(x, H0) when ``node`` is the frontend's translation of ``Heaviside(x, H0)``."""
    pieces = _select_pieces(node)
    if len(pieces) != 4 or pieces[3][0].op is not Op.CONST or \
            not math.isnan(pieces[3][0].attrs):
        return None
    (one, above), (zero, below), (at_zero, at) = pieces[:3]
    x = above.args[0] if above.op is Op.GT else None
    expected = [(above, Op.GT), (below, Op.LT), (at, Op.EQ)]
    if x is None or any(c.op is not op or c.args[0] is not x or not _is_zero(c.args[1])
                        for c, op in expected):
        return None
    if not (one.op is Op.CONST and one.attrs == 1.0 and _is_zero(zero)
            and at_zero.op is Op.CONST):
        return None
    return x, at_zero.attrs


def _is_zero(node):
    return node.op is Op.CONST and node.attrs == 0.0


def _display_children(node):
    if node.op in _FLATTENED:
        return _flat_operands(node)
    if node.op is Op.SELECT:
        children = []
        for value, cond in _select_pieces(node):
            children.append(value)
            if cond is not None:
                children.append(cond)
        return children
    return list(node.args)


# SymPy's evaluating constructors recurse into their operands (to sort terms, to ask for
# assumptions): a generous allowance of Python frames per level of the operands' height.  A
# node where SymPy reaches the limit all the same is built unevaluated (see to_sympy).
FRAMES_PER_LEVEL = 24


def _stack_depth():
    frame, depth = sys._getframe(), 0
    while frame is not None:
        frame, depth = frame.f_back, depth + 1
    return depth


def evaluated_height(frames_per_level=FRAMES_PER_LEVEL):
    """The greatest height of an expression that SymPy's evaluating constructors can build
    with the recursion room left (a node higher than this is built unevaluated), at
    ``frames_per_level`` Python frames per level."""
    room = sys.getrecursionlimit() - _stack_depth() - 50
    return max(room // frames_per_level, 1)


def heights(roots, leaves=()):
    """``(by_id, root_heights)``: ``id(node) -> height`` over the operands for every node below
    ``roots`` down to the nodes whose ids are in ``leaves`` (height 1), and the height of each
    root (a root in ``leaves`` is measured too, and is a leaf to the others), by an iterative
    walk."""
    by_id = {key: 1 for key in leaves}
    root_heights = []
    for root in roots:
        by_id.pop(id(root), None)
        stack = [root]
        while stack:
            node = stack[-1]
            if id(node) in by_id:
                stack.pop()
                continue
            pending = [a for a in node.args if id(a) not in by_id]
            if pending:
                stack.extend(pending)
                continue
            stack.pop()
            by_id[id(node)] = 1 + max((by_id[id(a)] for a in node.args), default=0)
        root_heights.append(by_id[id(root)])
        if id(root) in leaves:
            by_id[id(root)] = 1
    return by_id, root_heights


def to_sympy(nodes, symbols, leaf_values=None):
    """SymPy expressions for IR nodes.

    Expressions up to :func:`evaluated_height` levels are built by SymPy's evaluating
    constructors (so ``x + x`` is ``2*x``); the levels above, in a graph deeper than SymPy can
    evaluate without reaching the recursion limit, are built unevaluated, as written, by an
    iterative walk.

    Parameters
    ----------
    nodes : sequence of Node
    symbols : dict
        Maps input names to SymPy symbols.
    leaf_values : dict, optional
        ``id(node) -> SymPy value`` for nodes to show as given rather than expand.

    Returns
    -------
    list of sympy.Expr
    """
    memo = dict(leaf_values or {})
    height, _ = heights(nodes, memo)
    limit = evaluated_height()

    def low(node):
        return height[id(node)] <= limit

    def convert(node):
        if node.op is Op.CONST:
            if node.dtype == "bool":
                return sympy.true if node.attrs else sympy.false
            return sympy_constant(node.attrs)
        if node.op is Op.INPUT:
            return symbols[node.attrs]
        if node.op in _FLATTENED:
            operands = _flat_operands(node) if low(node) else node.args
            return SYMPY_FUNCTIONS[node.op](*[memo[id(a)] for a in operands])
        if node.op is Op.SELECT:
            if not low(node):
                # One piece at a time: the chain of selections below is a nest of Piecewise.
                cond, if_true, if_false = (memo[id(a)] for a in node.args)
                if if_false is sympy.nan:
                    return sympy.Piecewise((if_true, cond))
                return SYMPY_FUNCTIONS[Op.SELECT](cond, if_true, if_false)
            step = _heaviside_parts(node)
            if step is not None:
                return sympy.Heaviside(memo[id(step[0])], sympy_constant(step[1]))
            pieces = [(memo[id(value)], True if cond is None else memo[id(cond)])
                      for value, cond in _select_pieces(node)]
            if pieces[-1][0] is sympy.nan:
                # SymPy's Piecewise is NaN where no condition holds: the same without the NaN
                # object (which SymPy cannot compare inside a condition).
                pieces.pop()
            try:
                return sympy.Piecewise(*pieces)
            except (TypeError, ValueError):
                # SymPy refuses some conditions (a Piecewise without a default inside one):
                # show the selection itself.
                pieces = [(memo[id(value)], cond) for value, cond in _select_pieces(node)]
                result = pieces[-1][0]
                for value, cond in reversed(pieces[:-1]):
                    result = _WHERE(memo[id(cond)], value, result)
                return result
        return SYMPY_FUNCTIONS[node.op](*[memo[id(a)] for a in node.args])

    for root in nodes:
        stack = [root]
        while stack:
            node = stack[-1]
            if id(node) in memo:
                stack.pop()
                continue
            children = _display_children(node) if low(node) else node.args
            pending = [c for c in children if id(c) not in memo]
            if pending:
                stack.extend(reversed(pending))
                continue
            stack.pop()
            if low(node):
                try:
                    memo[id(node)] = convert(node)
                    continue
                except RecursionError:
                    pass
            with sympy.evaluate(False):
                value = convert(node)
            # Ask now, one level at a time, what SymPy would otherwise ask of the whole nest
            # at once later (and cache): whether the expression commutes.
            getattr(value, "is_commutative", None)
            memo[id(node)] = value
    return [memo[id(node)] for node in nodes]
