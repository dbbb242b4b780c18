"""The command line: ``python -m symgrad {demo,grad,ir,check}``.

* ``demo``: the lecture's worked example differentiated and printed, then an MLP trained on
  scikit-learn's digits with a progress bar, its accuracy, the time and a gradient check;
* ``grad "<expr>" --wrt x,y``: the derivative expressions;
* ``ir "<expr>" --wrt x``: the LLVM IR of the fused kernel (``--optimized``, ``--asm``);
* ``check``: finite-difference checks of every activation, loss and a network.
"""

import argparse
import sys

import numpy as np
import sympy
from sympy.parsing.sympy_parser import parse_expr, standard_transformations

import symgrad as sg
from symgrad.frontend.sympy_functions import sigmoid, softplus


def _parse(text, wrt_text):
    names = [n.strip() for n in wrt_text.split(",") if n.strip()] if wrt_text else []
    known = {"sigmoid": sigmoid, "softplus": softplus, "Max": sympy.Max, "Min": sympy.Min,
             "Abs": sympy.Abs, "Heaviside": sympy.Heaviside, "Piecewise": sympy.Piecewise}
    try:
        expr = parse_expr(text, local_dict=dict(known), transformations=standard_transformations)
    except (SyntaxError, TypeError, ValueError, sympy.SympifyError) as error:
        raise SystemExit(f"error: cannot parse the expression {text!r}: {error}") from None
    # Every symbol becomes a real symbol, as symgrad.symbols makes them.
    real = {s: sympy.Symbol(s.name, real=True) for s in expr.free_symbols}
    expr = expr.xreplace(real)
    by_name = {s.name: s for s in expr.free_symbols}
    wrt = [by_name.get(n, sympy.Symbol(n, real=True)) for n in names] or \
        sorted(expr.free_symbols, key=lambda s: s.name)
    return expr, wrt


def command_grad(args):
    expr, wrt = _parse(args.expr, args.wrt)
    gradients = sg.grad(expr, wrt)
    print(f"f = {expr}")
    for symbol, gradient in zip(wrt, gradients):
        print(f"df/d{symbol} = {gradient}")
        if args.latex:
            print(f"    LaTeX: {sympy.latex(gradient)}")
    return 0


def command_ir(args):
    expr, wrt = _parse(args.expr, args.wrt)
    others = sorted(expr.free_symbols - set(wrt), key=lambda s: s.name)
    kernel = sg.compile(expr, wrt=wrt, inputs=others)
    if args.asm:
        print(kernel.asm)
    elif args.optimized:
        print(kernel.optimized_llvm_ir)
    else:
        print(kernel.llvm_ir)
    return 0


def _check_rows():
    x, a, b, c = sg.symbols("x a b c")
    yield "worked example x^2 + xy + (x+y)^2", (x**2 + x * a + (x + a)**2), [x, a], \
        {x: np.array([3.0, -1.3]), a: np.array([-2.0, 0.7])}
    activations = {
        "sigmoid": sg.sigmoid(x), "tanh": sg.tanh(x), "relu": sg.relu(x),
        "leaky_relu": sg.leaky_relu(x, a), "prelu": sg.prelu(x, a), "elu": sg.elu(x, a),
        "softplus": sg.softplus(x), "swish": sg.swish(x, a), "mish": sg.mish(x),
        "smooth_max": sg.smooth_max([x, a], b), "acon_a": sg.acon_a(x, a),
        "acon_b": sg.acon_b(x, a, b), "acon_c": sg.acon_c(x, a, b, c), "step": sg.step(x),
    }
    for name, expr in activations.items():
        point = {x: np.array([-2.1, -0.4, 0.3, 1.7, 30.0, -30.0]), a: 0.3, b: 1.4, c: 0.8}
        used = [s for s in (x, a, b, c) if s in expr.free_symbols]
        yield name, expr, used, {s: v for s, v in point.items() if s in used}


def command_check(args):
    failures = 0
    print(f"{'function':<40} {'wrt':<12} result")
    for name, expr, wrt, at in _check_rows():
        try:
            sg.gradcheck(expr, wrt=wrt, at=at)
            result = "ok"
        except sg.GradcheckError as error:
            failures += 1
            result = "FAILED\n" + str(error)
        print(f"{name:<40} {','.join(map(str, wrt)):<12} {result}")
    rng = np.random.default_rng(0)
    X, T, Y = sg.tensor("X", ("n", 3)), sg.tensor("T", ("n", 1)), sg.tensor("Y", ("n", 4))
    x = rng.normal(size=(8, 3))
    targets = {"T": (rng.random((8, 1)) > 0.5).astype(float),
               "Y": np.eye(4)[rng.integers(0, 4, 8)]}
    losses = {
        "perceptron_criterion": lambda net: sg.losses.perceptron_criterion(net(X), 2 * T - 1),
        "mean_squared_error": lambda net: sg.losses.mean_squared_error(net(X), T),
        "binary_cross_entropy": lambda net: sg.losses.binary_cross_entropy(
            sg.sigmoid(net(X)), T),
        "binary_cross_entropy_with_logits": lambda net: (
            sg.losses.binary_cross_entropy_with_logits(net(X), T)),
    }
    for name, build in losses.items():
        net = sg.nn.MLP([3, 5, 1], activation=sg.tanh, output_activation=None, seed=1)
        at = dict(zip(net.parameters(), net.values()))
        at.update({X: x, T: targets["T"]})
        failures += _check_tensor(f"MLP 3-5-1 + {name}", build(net), net, at)
    net = sg.nn.MLP([3, 6, 4], activation=sg.sigmoid, output_activation=None, seed=2)
    at = dict(zip(net.parameters(), net.values()))
    at.update({X: x, Y: targets["Y"]})
    failures += _check_tensor("MLP 3-6-4 + softmax_cross_entropy",
                              sg.losses.softmax_cross_entropy(net(X), Y), net, at)
    print(f"\n{'all checks passed' if not failures else f'{failures} checks FAILED'}")
    return 1 if failures else 0


def _check_tensor(name, loss, net, at):
    try:
        sg.gradcheck(loss, net.parameters(), at)
        result, failed = "ok", 0
    except sg.GradcheckError as error:
        result, failed = "FAILED\n" + str(error), 1
    print(f"{name:<40} {'W, b':<12} {result}")
    return failed


def command_demo(args):
    from symgrad.demo import run_demo
    return run_demo(epochs=args.epochs, progress=None if not args.no_progress else False)


def _version_text():
    import importlib.metadata
    import platform

    versions = []
    for name in ("sympy", "numpy", "llvmlite"):
        try:
            versions.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            versions.append(f"{name} (not installed)")
    return (f"symgrad {sg.__version__} (Python {platform.python_version()}, "
            f"{', '.join(versions)})")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m symgrad",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=_version_text())
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="the worked example, then an MLP trained on digits")
    demo.add_argument("--epochs", type=int, default=30)
    demo.add_argument("--no-progress", action="store_true", help="no progress bar")
    demo.set_defaults(run=command_demo)
    grad = commands.add_parser("grad", help="print the derivative expressions")
    grad.add_argument("expr", help='a SymPy expression, e.g. "x**2 + x*y + (x + y)**2"')
    grad.add_argument("--wrt", default="", help="comma-separated symbols (default: all)")
    grad.add_argument("--latex", action="store_true", help="also print LaTeX")
    grad.set_defaults(run=command_grad)
    ir = commands.add_parser("ir", help="print the LLVM IR of the compiled kernel")
    ir.add_argument("expr")
    ir.add_argument("--wrt", default="", help="comma-separated symbols (default: all)")
    ir.add_argument("--optimized", action="store_true", help="the IR after optimisation")
    ir.add_argument("--asm", action="store_true", help="the host assembly instead")
    ir.set_defaults(run=command_ir)
    check = commands.add_parser("check", help="finite-difference checks of every activation, "
                                              "loss and a network")
    check.set_defaults(run=command_check)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (sg.UnsupportedExpressionError, sg.UnknownSymbolError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:          # output piped into head, less...: stop quietly
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
