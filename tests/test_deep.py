"""Graphs thousands of levels deep, and errors that stay readable at any size.

SymPy's own walks (``free_symbols``, hashing, its evaluating constructors and printers) recurse
once per level; symgrad's walks must not, and where a step must go through SymPy's recursion
it either stays within the room left or raises :class:`~symgrad.errors.DepthError` first.
The oracles are the chain rule run in a Python loop with the math module, numpy loops of
forward and backward passes, and the reference interpreter.
"""

import contextlib
import math
import sys

import numpy as np
import pytest
import sympy

import symgrad as sg
from symgrad.autodiff.reverse import value_and_grad
from symgrad.codegen.lower.schedule import MAX_INLINE_DEPTH, MAX_STEP_NODES, schedule
from symgrad.codegen.lower.target import Target
from symgrad.codegen.lower.tensor import lower_tensor
from symgrad.codegen.lower.tensor import plan as plan_for
from symgrad.errors import DepthError, UnknownSymbolError, UnsupportedExpressionError
from symgrad.frontend.sympy_to_ir import free_symbols
from symgrad.frontend.trace import trace_tensor
from symgrad.ir.text import function_to_text
from symgrad.reference import evaluate as reference
from symgrad.tensors import label

x, y = sg.symbols("x y")


@contextlib.contextmanager
def recursion_limit(limit):
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(limit)
    try:
        yield
    finally:
        sys.setrecursionlimit(old)


# Each kind: how a level is built from the one below (unevaluated, as SymPy itself cannot
# build such nests otherwise), and one level of the oracle: (value, d/dx, d/dy) from those of
# the level below, by the chain rule.
def _tanh(e, i):
    return sympy.tanh(e, evaluate=False)


def _tanh_step(v, dx, dy, i, yv):
    t = math.tanh(v)
    return t, (1 - t * t) * dx, (1 - t * t) * dy


def _sin_plus_y(e, i):
    return sympy.Add(sympy.sin(e, evaluate=False), y, evaluate=False)


def _sin_plus_y_step(v, dx, dy, i, yv):
    return math.sin(v) + yv, math.cos(v) * dx, math.cos(v) * dy + 1


def _sqrt_of_next(e, i):
    return sympy.Pow(sympy.Add(e, 1, evaluate=False), sympy.Rational(1, 2), evaluate=False)


def _sqrt_of_next_step(v, dx, dy, i, yv):
    r = math.sqrt(v + 1)
    return r, dx / (2 * r), dy / (2 * r)


def _scaled(e, i):
    return sympy.Mul(e, sympy.Add(y, sympy.Rational(1, i + 2), evaluate=False),
                     evaluate=False)


def _scaled_step(v, dx, dy, i, yv):
    c = yv + 1 / (i + 2)
    return v * c, dx * c, dy * c + v


def _piecewise(e, i):
    return sympy.Piecewise((sympy.sin(e, evaluate=False), sympy.Gt(y, 0, evaluate=False)),
                           (sympy.tanh(e, evaluate=False), True), evaluate=False)


def _piecewise_step(v, dx, dy, i, yv):
    if yv > 0:
        return math.sin(v), math.cos(v) * dx, math.cos(v) * dy
    t = math.tanh(v)
    return t, (1 - t * t) * dx, (1 - t * t) * dy


KINDS = {
    "tanh": (_tanh, _tanh_step),
    "sin_plus_y": (_sin_plus_y, _sin_plus_y_step),
    "sqrt_of_next": (_sqrt_of_next, _sqrt_of_next_step),
    "scaled": (_scaled, _scaled_step),
    "piecewise": (_piecewise, _piecewise_step),
}


def _nest(kind, depth):
    build, _ = KINDS[kind]
    expr = x
    for i in range(depth):
        expr = build(expr, i)
    return expr


def _oracle(kind, depth, xv, yv):
    _, step = KINDS[kind]
    v, dx, dy = xv, 1.0, 0.0
    for i in range(depth):
        v, dx, dy = step(v, dx, dy, i, yv)
    return v, dx, dy


def _close(actual, expected, rtol=1e-9, atol=1e-12):
    return abs(actual - expected) <= atol + rtol * abs(expected)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_deep_sympy_nest_compiles_and_matches_the_chain_rule(kind):
    expr = _nest(kind, 1000)
    with recursion_limit(200):
        k = sg.compile(expr, [x, y])
        value, (gx, gy) = k(0.3, 0.2)
        gradients = sg.grad(expr, [x, y])
    ev, ex, ey = _oracle(kind, 1000, 0.3, 0.2)
    assert _close(value, ev) and _close(gx, ex) and _close(gy, ey), (value, gx, gy, ev, ex, ey)
    # The gradient came back as SymPy expressions (unevaluated where SymPy could not
    # evaluate them), over the same symbols.
    assert all(isinstance(g, sympy.Basic) for g in gradients)
    assert free_symbols(gradients[0]) <= {x, y}
    # And it is the same function: translated again, it evaluates to the oracle's numbers.
    with recursion_limit(200):
        again = sg.compile(gradients[0], [x, y])
    assert _close(float(again(0.3, 0.2)[0]), ex)


@pytest.mark.parametrize("kind", ["tanh", "sin_plus_y"])
def test_10000_deep_sympy_nest_traces_and_differentiates(kind):
    expr = _nest(kind, 10000)
    with recursion_limit(200):
        function = sg.trace(expr, [x], [y])
        fused = value_and_grad(function, ["x"])
        value, gx = reference.evaluate(fused, 0.3, 0.2)
        text = function_to_text(fused)
        gradient = sg.grad(expr, x)
    ev, ex, _ = _oracle(kind, 10000, 0.3, 0.2)
    assert _close(float(value), ev, rtol=1e-8) and _close(float(gx), ex, rtol=1e-8)
    assert text.count("\n") > 10000
    assert isinstance(gradient, sympy.Basic)


@pytest.mark.slow
def test_100000_deep_sympy_nest_through_the_ir_passes():
    expr = _nest("sin_plus_y", 100000)
    with recursion_limit(200):
        assert free_symbols(expr) == {x, y}
        function = sg.trace(expr, [x], [y])
        fused = value_and_grad(function, ["x", "y"])
        value, gx, gy = reference.evaluate(fused, 0.3, 0.2)
    ev, ex, ey = _oracle("sin_plus_y", 100000, 0.3, 0.2)
    assert _close(float(value), ev, rtol=1e-6) and _close(float(gy), ey, rtol=1e-6)
    assert _close(float(gx), ex, rtol=1e-6, atol=1e-300)


def test_shallow_gradients_are_still_evaluated_by_sympy():
    # The unevaluated form is only for what SymPy cannot evaluate: a formula of ordinary depth
    # reads as SymPy writes it.
    assert sg.grad(x**2 + x * y + (x + y) ** 2, [x, y]) == [4 * x + 3 * y, 3 * x + 2 * y]
    with recursion_limit(250):
        assert sg.grad(x * x + x * y + x, [x]) == [2 * x + y + 1]


# ---- tensors ------------------------------------------------------------------------------

def _tensor_chain(depth):
    X = sg.tensor("X", ("n", 4))
    b = sg.tensor("b", (4,))
    h = X
    for _ in range(depth):
        h = sg.tanh(h) + b
    return (h * h).mean(), X, b


def _numpy_chain(depth, X, b):
    """Forward and backward of the chain in numpy: the loss and dloss/db."""
    hs = [X]
    for _ in range(depth):
        hs.append(np.tanh(hs[-1]) + b)
    h = hs[-1]
    loss = np.mean(h * h)
    delta = 2 * h / h.size
    grad_b = np.zeros_like(b)
    for level in range(depth, 0, -1):
        grad_b += delta.sum(axis=0)
        delta = delta * (1 - np.tanh(hs[level - 1]) ** 2)
    return loss, grad_b


def test_deep_tensor_chain_compiles_and_matches_numpy():
    depth = 300
    loss, X, b = _tensor_chain(depth)
    rng = np.random.default_rng(1)
    Xv, bv = rng.standard_normal((5, 4)), 0.1 * rng.standard_normal(4)
    with recursion_limit(200):
        k = sg.compile(loss, [b], [X])
        value, (grad_b,) = k([bv], X=Xv)
    expected, expected_b = _numpy_chain(depth, Xv, bv)
    np.testing.assert_allclose(value, expected, rtol=1e-12)
    np.testing.assert_allclose(grad_b, expected_b, rtol=1e-10, atol=1e-14)


def test_plans_bound_inline_depth_and_loop_size():
    loss, X, b = _tensor_chain(400)
    function, _ = trace_tensor(loss, [b], [X])
    fused = value_and_grad(function, ["b"])
    plan = schedule(fused)
    # No loop computes more than the bound (a value joins a loop below it, bringing its
    # inline operands), and no value is more than MAX_INLINE_DEPTH inline levels above a
    # stored one.
    for step in plan.steps:
        assert len(step.nodes) + len(step.inline) <= 2 * MAX_STEP_NODES
    stored = set(plan.slots)
    depth = {}
    for node in fused.nodes:
        if id(node) in stored or not node.args:
            depth[id(node)] = 0
        else:
            depth[id(node)] = 1 + max(depth[id(a)] for a in node.args)
    assert max(depth.values()) <= MAX_INLINE_DEPTH + 2


def test_alias_metadata_grows_as_b_log_b():
    loss, X, b = _tensor_chain(400)
    function, _ = trace_tensor(loss, [b], [X])
    fused = value_and_grad(function, ["b"])
    target = Target()
    plan = plan_for(fused, target)
    module = lower_tensor(fused, plan, target)
    buffers = len(fused.inputs) + len(fused.outputs) + len(plan.temporaries) + len(plan.partials)
    assert buffers > 500
    # One node per scope (two per bit) and two lists per buffer, each of log2(B) scopes.
    assert len(module.metadata) <= 2 * buffers + 4 * buffers.bit_length()
    text = str(module)
    longest = max(len(line) for line in text.splitlines() if line.startswith("!"))
    assert longest < 40 * buffers.bit_length()


@pytest.mark.slow
def test_100000_deep_tensor_chain_through_the_ir_passes():
    depth = 100000
    with recursion_limit(200):
        loss, X, b = _tensor_chain(depth)
        function, _ = trace_tensor(loss, [b], [X])
        fused = value_and_grad(function, ["b"])
        rng = np.random.default_rng(2)
        Xv, bv = rng.standard_normal((3, 4)), 0.1 * rng.standard_normal(4)
        value, grad_b = reference.evaluate(fused, b=bv, X=Xv)
    expected, expected_b = _numpy_chain(depth, Xv, bv)
    np.testing.assert_allclose(value, expected, rtol=1e-9)
    np.testing.assert_allclose(grad_b, expected_b, rtol=1e-8, atol=1e-12)


def test_deep_derivation_raises_depth_error_and_labels_fix_it():
    loss, X, b = _tensor_chain(200)
    with pytest.raises(DepthError, match=r"operations deep.*label") as caught:
        sg.grad(loss, [b])
    assert isinstance(caught.value, RecursionError)
    assert len(str(caught.value)) < 1000
    # Named levels make every equation short: the derivation is built and printed.
    X = sg.tensor("X", ("n", 4))
    b = sg.tensor("b", (4,))
    h = X
    for i in range(200):
        h = label(sg.tanh(h) + b, f"h{i}", f"d{i}")
    derivation = sg.grad((h * h).mean(), [b])
    text = str(derivation)
    assert "d199" in text and text.count("\n") >= 400
    assert derivation.latex().startswith("\\begin{aligned}")


def test_shallow_derivation_is_unchanged_by_the_depth_check():
    loss, X, b = _tensor_chain(3)
    derivation = sg.grad(loss, [b])
    assert "tanh" in str(derivation)


def test_depth_check_follows_the_recursion_limit():
    loss, X, b = _tensor_chain(8)
    sg.grad(loss, [b])
    with recursion_limit(120):
        with pytest.raises(DepthError):
            sg.grad(loss, [b])


# ---- readable errors ----------------------------------------------------------------------

def _assert_readable(message, first, count):
    assert len(message) < 1000, len(message)
    assert first in message
    assert f"{count} in all" in message


def test_thousands_of_undeclared_symbols():
    many = sg.symbols("s0:5000")
    expr = sympy.Add(*many)
    for call in (lambda: sg.compile(expr, [many[0]]), lambda: sg.trace(expr, [many[0]])):
        with pytest.raises(UnknownSymbolError) as caught:
            call()
        _assert_readable(str(caught.value), "'s1'", 4999)


def test_thousands_of_declared_symbols_in_an_error():
    many = sg.symbols("s0:3000")
    from symgrad import ir
    from symgrad.frontend.sympy_to_ir import to_ir
    nodes = {s: ir.input_node(s.name) for s in many}
    with pytest.raises(UnknownSymbolError) as caught:
        to_ir(x + many[0], nodes)
    _assert_readable(str(caught.value), "'s0'", 3000)


def test_unsupported_function_deep_inside_a_nest():
    expr = sympy.gamma(_nest("tanh", 5000))
    with pytest.raises(UnsupportedExpressionError) as caught:
        sg.compile(expr, [x])
    message = str(caught.value)
    assert "gamma" in message and len(message) < 1000
    assert "tanh(tanh(" in message and "..." in message


def test_unsupported_function_in_a_wide_sum():
    many = sg.symbols("w0:1000")
    expr = sympy.zeta(sympy.Add(*many))
    with pytest.raises(UnsupportedExpressionError) as caught:
        sg.compile(expr, list(many))
    message = str(caught.value)
    assert "zeta" in message and len(message) < 1000


def test_thousands_of_undeclared_tensors():
    tensors = [sg.tensor(f"t{i}", (3,)) for i in range(3000)]
    total = tensors[0]
    for t in tensors[1:]:
        total = total + t
    with pytest.raises(UnknownSymbolError) as caught:
        sg.compile(total.sum(), [tensors[0]])
    _assert_readable(str(caught.value), "'t1", 2999)


def test_kernel_argument_errors_with_thousands_of_names():
    params = [sg.tensor(f"p{i}", (2,)) for i in range(300)]
    total = params[0]
    for p in params[1:]:
        total = total + p
    k = sg.compile(total.sum(), params)
    with pytest.raises(TypeError) as caught:
        k({f"q{i}": np.zeros(2) for i in range(3000)})
    _assert_readable(str(caught.value), "'q0'", 3000)
    with pytest.raises(TypeError) as caught:
        k({"p0": np.zeros(2)})
    _assert_readable(str(caught.value), "'p1'", 299)


def test_long_names_are_cut_in_messages():
    long = sg.symbols("v" * 5000)
    with pytest.raises(UnknownSymbolError) as caught:
        sg.compile(long + x, [x])
    assert len(str(caught.value)) < 1000
