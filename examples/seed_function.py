"""The lecture's worked example, f(x, y) = x^2 + xy + (x + y)^2, through the whole pipeline.

Declares f in SymPy, differentiates it in reverse mode over symgrad's graph, prints the fused
forward+backward graph, the derivatives as SymPy and LaTeX, compiles one native kernel, runs it
on a scalar point and on numpy arrays, and checks it against finite differences and against
sympy.diff.

    python examples/seed_function.py
"""

import time

import numpy as np
import sympy

import symgrad as sg


def main():
    x, y = sg.symbols("x y")
    f = x**2 + x * y + (x + y)**2
    print(f"f(x, y) = {f}\n")

    dfdx, dfdy = sg.grad(f, [x, y])
    print("Derivatives by reverse mode over the graph (chain rule + Jacobian sum rule):")
    print(f"  df/dx = {dfdx}        LaTeX: {sympy.latex(dfdx)}")
    print(f"  df/dy = {dfdy}        LaTeX: {sympy.latex(dfdy)}")
    assert sympy.simplify(dfdx - sympy.diff(f, x)) == 0
    assert sympy.simplify(dfdy - sympy.diff(f, y)) == 0
    print("  (equal to sympy.diff)\n")

    start = time.perf_counter()
    kernel = sg.compile(f, wrt=[x, y])
    elapsed = time.perf_counter() - start
    print(f"Fused forward+backward graph, compiled to native code in {elapsed * 1e3:.1f} ms:")
    print(kernel)
    print()

    value, (dx, dy) = kernel(3.0, -2.0)
    print(f"At (x, y) = (3, -2): f = {value}, df/dx = {dx}, df/dy = {dy}")
    assert (value, dx, dy) == (4.0, 6.0, 5.0)

    xs = np.linspace(-1.0, 1.0, 5)
    ys = np.array([[0.5], [2.0]])
    values, (dxs, dys) = kernel(xs, ys)
    print(f"\nOn a {values.shape} broadcast of x = {xs} and y = {ys.ravel()}:")
    print(f"f =\n{values}\ndf/dx =\n{dxs}\ndf/dy =\n{dys}")

    print("\nGradient check (central differences, eps=1e-6, atol=1e-5, rtol=1e-3):",
          sg.gradcheck(kernel, wrt=[x, y], at={x: xs, y: ys}))

    ir_lines = kernel.optimized_llvm_ir.count("\n")
    asm_lines = kernel.asm.count("\n")
    print(f"\nThe kernel's LLVM IR has {ir_lines} lines after optimisation and "
          f"{asm_lines} lines of assembly: kernel.llvm_ir, kernel.optimized_llvm_ir, "
          f"kernel.asm")


if __name__ == "__main__":
    main()
