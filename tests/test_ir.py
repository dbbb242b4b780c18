"""The IR alone: interning, folding, shapes, walks, printing.  No SymPy, no JIT."""

import math

import pytest

from symgrad import ir
from symgrad.errors import ShapeError
from symgrad.ir.ops import ARITY, Op
from symgrad.ir.text import function_to_dot, function_to_text


def test_equal_structure_is_the_same_node():
    x = ir.input_node("x")
    y = ir.input_node("y")
    assert ir.add(ir.mul(x, y), ir.exp(x)) is ir.add(ir.mul(x, y), ir.exp(x))
    assert ir.add(x, y) is not ir.add(y, x)
    assert ir.input_node("x", "float32") is not x


def test_constants_are_keyed_by_bits():
    assert ir.const(0.0) is not ir.const(-0.0)
    assert ir.const(float("nan")) is ir.const(float("nan"))
    assert ir.const(1.0) is ir.const(1)


def test_nodes_are_immutable():
    x = ir.input_node("x")
    with pytest.raises(AttributeError):
        x.op = Op.CONST


def test_constant_folding():
    two, three = ir.const(2.0), ir.const(3.0)
    assert ir.add(two, three) is ir.const(5.0)
    assert ir.power(two, three) is ir.const(8.0)
    assert ir.exp(ir.const(0.0)) is ir.const(1.0)
    assert math.isnan(ir.log(ir.const(-1.0)).attrs)
    assert ir.compare(Op.LT, two, three) is ir.const(True, "bool")


def test_algebraic_identities():
    x = ir.input_node("x")
    zero, negative_zero, one = ir.const(0.0), ir.const(-0.0), ir.const(1.0)
    assert ir.add(x, negative_zero) is x
    assert ir.sub(x, zero) is x
    assert ir.sub(negative_zero, x) is ir.neg(x)
    assert ir.mul(one, x) is x
    assert ir.mul(x, ir.const(-1.0)) is ir.neg(x)
    assert ir.neg(ir.neg(x)) is x
    assert ir.add(x, ir.neg(ir.exp(x))) is ir.sub(x, ir.exp(x))
    assert ir.power(x, one) is x
    assert ir.power(x, ir.const(0.5)) is ir.sqrt(x)
    assert ir.mul(x, ir.const(2.0)) is ir.mul(ir.const(2.0), x)


def test_identities_that_ieee_arithmetic_does_not_have_are_not_applied():
    # Each of these would change a NaN, an inf or the sign of a zero (tests/test_ieee.py
    # checks the numbers); they stay operations.
    x = ir.input_node("x")
    zero, negative_zero, one = ir.const(0.0), ir.const(-0.0), ir.const(1.0)
    assert ir.add(x, zero).op is Op.ADD                       # -0.0 + 0.0 is +0.0
    assert ir.sub(x, negative_zero).op is Op.SUB              # -0.0 - -0.0 is +0.0
    assert ir.sub(zero, x).op is Op.SUB                       # 0.0 - 0.0 is +0.0, -x is -0.0
    assert ir.mul(x, zero).op is Op.MUL                       # inf * 0 is NaN
    assert ir.div(zero, x).op is Op.DIV                       # 0 / 0 is NaN
    assert ir.mul(x, ir.div(one, ir.exp(x))).op is Op.MUL     # two roundings, as written
    assert ir.neg(ir.sub(x, ir.exp(x))).op is Op.NEG          # -(a - a) is -0.0
    assert ir.absolute(ir.sqrt(x)).op is Op.ABS               # sqrt(-0.0) is -0.0
    assert ir.matmul(ir.const(0.0, shape=(2, 3)), ir.input_node("B", shape=(3, 4))).op \
        is not Op.CONST                                       # 0 @ [inf] is NaN


def test_select_simplifications():
    x = ir.input_node("x")
    cond = ir.compare(Op.GT, x, ir.const(0.0))
    a, b, c = ir.exp(x), ir.sin(x), ir.cos(x)
    assert ir.select(ir.const(True, "bool"), a, b) is a
    assert ir.select(cond, a, a) is a
    assert ir.select(cond, ir.select(cond, a, b), c) is ir.select(cond, a, c)
    assert ir.select(ir.logical_not(cond), a, b) is ir.select(cond, b, a)
    assert ir.add(ir.select(cond, a, b), ir.select(cond, c, a)) is \
        ir.select(cond, ir.add(a, c), ir.add(b, a))


def test_shapes_broadcast_and_errors_name_both_shapes():
    assert ir.broadcast_shapes((3, 1), (1, 4)) == (3, 4)
    assert ir.broadcast_shapes(("n", 1), (1, 2)) == ("n", 2)
    assert ir.broadcast_shapes((), (5,)) == (5,)
    with pytest.raises(ShapeError, match=r"\(3,\).*\(4,\)"):
        ir.broadcast_shapes((3,), (4,))
    a = ir.input_node("a", shape=("n", 2))
    b = ir.input_node("b", shape=("m", 2))
    with pytest.raises(ShapeError, match=r"'n', 2\).*\('m', 2"):
        ir.add(a, b)


def test_dtype_rules():
    x32 = ir.input_node("x", "float32")
    x64 = ir.input_node("y", "float64")
    assert ir.mul(ir.const(2.0), x32).dtype == "float32"
    with pytest.raises(TypeError, match="different dtypes"):
        ir.add(x32, x64)
    with pytest.raises(TypeError, match="boolean"):
        ir.add(ir.compare(Op.GT, x64, ir.const(0.0)), x64)


def test_arity_is_checked():
    with pytest.raises(ValueError, match="takes 2 operands"):
        ir.make_node(Op.ADD, (ir.input_node("x"),))
    assert set(ARITY) == set(Op)


def test_toposort_is_iterative_and_deterministic():
    x = ir.input_node("x")
    node = x
    for _ in range(50_000):
        node = ir.sin(node)
    order = ir.toposort([node])
    assert len(order) == 50_001
    assert order[0] is x and order[-1] is node
    assert [id(n) for n in ir.toposort([node])] == [id(n) for n in order]


def test_function_checks_its_inputs():
    x, y = ir.input_node("x"), ir.input_node("y")
    with pytest.raises(ValueError, match="'y' is used but is not an argument"):
        ir.Function([x], [ir.add(x, y)])
    with pytest.raises(ValueError, match="repeated names"):
        ir.Function([x, x], [x])


def test_with_dtype_rebuilds_in_float32():
    x = ir.input_node("x")
    fn = ir.Function([x], [ir.mul(ir.const(0.1), ir.exp(x))])
    fn32 = fn.with_dtype("float32")
    assert all(n.dtype == "float32" for n in fn32.nodes)
    assert fn.with_dtype("float64") is fn


GOLDEN_TEXT = """\
lambda(x: f64[], y: f64[]) -> (f)
  %0: bool[] = gt x 0.0
  %1: f64[] = mul x y
  %2: f64[] = exp %1
  %3: f64[] = add %2 %1
  %4: f64[] = select %0 %3 1.5
  return f = %4"""


def test_golden_text():
    x, y = ir.input_node("x"), ir.input_node("y")
    product = ir.mul(x, y)
    body = ir.add(ir.exp(product), product)
    out = ir.select(ir.compare(Op.GT, x, ir.const(0.0)), body, ir.const(1.5))
    fn = ir.Function([x, y], [out], ["f"])
    assert function_to_text(fn) == GOLDEN_TEXT
    dot = function_to_dot(fn)
    assert dot.startswith("digraph symgrad {") and dot.count("label=\"mul") == 1


def test_graphs_built_by_8_threads_at_once_are_the_same_interned_nodes():
    # The intern table is guarded by a lock (ir.INTERN_LOCK): structure looked up and added in
    # one step, so threads building the same graph at once share every node.
    import sys
    import threading

    def build():
        x = ir.input_node("x", shape=("n", 3))
        w = ir.input_node("w", shape=(3, 2))
        h = ir.tanh(ir.add(ir.matmul(x, w), ir.const(0.5)))
        for k in range(300):
            h = ir.mul(ir.sigmoid(ir.add(h, ir.const(float(k)))), h)
        return ir.reduce_sum(h)

    barrier = threading.Barrier(8)
    results = [None] * 8

    def run(index):
        barrier.wait()
        results[index] = build()
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)           # switch threads as often as possible
    try:
        threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(previous)
    nodes = [ir.toposort([root]) for root in results]
    assert all(len(order) == len(nodes[0]) for order in nodes)
    for order in nodes[1:]:
        assert all(a is b for a, b in zip(order, nodes[0]))
