"""Every activation of the lecture, its derivative, and how each behaves at kinks and extremes.

For each activation: the SymPy formula, the derivative symgrad derived by reverse mode, and a
table of values and derivatives from one compiled kernel per activation (including x = 0 and
|x| = 1000, where naive formulas overflow), checked against finite differences.  With
matplotlib installed (``pip install matplotlib``) it also saves ``activations.png``; pass
``--no-plot`` to skip it.

    python examples/activations.py
"""

import argparse

import numpy as np
import sympy

import symgrad as sg

x = sg.symbols("x")


@sg.activation
def lif_rate(current, tau=1, resistance=1, rest=0, reset=0, threshold=1):
    """The leaky-integrate-and-fire firing rate f(I) of the lecture."""
    drive = rest + resistance * current
    rate = 1 / (tau * sympy.log((drive - reset) / (drive - threshold)))
    return sympy.Piecewise((rate, drive > threshold), (0, True))


@sg.activation
def shifted_sigmoids(v, terms=10):
    """sigma(x + 1/2) + sigma(x - 1/2) + sigma(x - 3/2) + ...: approximates softplus."""
    return sympy.Add(*[sg.sigmoid(v - k + sympy.Rational(1, 2)) for k in range(terms)])


ACTIVATIONS = {
    "sigmoid": sg.sigmoid(x),
    "tanh": sg.tanh(x),
    "step": sg.step(x),
    "relu": sg.relu(x),
    "leaky_relu(a=0.1)": sg.leaky_relu(x, 0.1),
    "prelu(a=0.25)": sg.prelu(x, 0.25),
    "elu(alpha=1)": sg.elu(x, 1),
    "softplus": sg.softplus(x),
    "swish(beta=1)": sg.swish(x, 1),
    "mish": sg.mish(x),
    "smooth_max(x, 0; beta=2)": sg.smooth_max([x, 0], 2),
    "acon_a(beta=1)": sg.acon_a(x, 1),
    "acon_b(a=0.2)": sg.acon_b(x, 0.2),
    "acon_c(p1=1.2, p2=0.1)": sg.acon_c(x, 1.2, 0.1, 1),
    "lif_rate": lif_rate(x),
    "shifted_sigmoids": shifted_sigmoids(x),
}

POINTS = np.array([-1000.0, -5.0, -1.0, 0.0, 0.5, 1.5, 5.0, 1000.0])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-plot", action="store_true", help="do not save activations.png")
    args = parser.parse_args()

    header = " ".join(f"{p:>10g}" for p in POINTS)
    kernels = {}
    for name, expr in ACTIVATIONS.items():
        derivative = sg.grad(expr, x)
        print(f"{name}\n  f(x)  = {expr}\n  f'(x) = {derivative}")
        kernel = sg.compile(expr, wrt=[x])
        kernels[name] = kernel
        values, (slopes,) = kernel(POINTS)
        print(f"  {'x':>6} {header}")
        print(f"  {'f':>6} " + " ".join(f"{v:>10.4g}" for v in values))
        print(f"  {'df/dx':>6} " + " ".join(f"{d:>10.4g}" for d in slopes))
        assert np.all(np.isfinite(values)) and np.all(np.isfinite(slopes)), name
        smooth = np.array([-2.3, -0.7, 0.4, 1.1, 2.9])
        if name == "lif_rate":
            smooth = np.array([1.5, 2.0, 3.0, 5.0])
        assert sg.gradcheck(kernel, wrt=[x], at={x: smooth})
        print()
    print("Every value and derivative above is finite, and every derivative matches central "
          "finite differences away from the kinks.")

    if not args.no_plot:
        try:
            import matplotlib
        except ImportError:
            print("(matplotlib is not installed: no plot)")
            return
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        grid = np.linspace(-4, 4, 801)
        columns = 4
        rows = -(-len(kernels) // columns)
        figure, axes = plt.subplots(rows, columns, figsize=(4 * columns, 3 * rows))
        for axis, (name, kernel) in zip(axes.ravel(), kernels.items()):
            values, (slopes,) = kernel(grid)
            axis.plot(grid, values, label="f")
            axis.plot(grid, slopes, "--", label="df/dx")
            axis.set_title(name, fontsize=9)
            axis.grid(alpha=0.3)
        for axis in axes.ravel()[len(kernels):]:
            axis.axis("off")
        axes.ravel()[0].legend()
        figure.tight_layout()
        figure.savefig("activations.png", dpi=80)
        print("saved activations.png")


if __name__ == "__main__":
    main()
