"""The example scripts run and print what they promise."""

import os
import pathlib
import subprocess
import sys

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


def run_example(name, *args):
    # The examples print Unicode (o, delta): read as UTF-8 whatever the locale.
    completed = subprocess.run([sys.executable, str(EXAMPLES / name), *args],
                               capture_output=True, text=True, encoding="utf-8", timeout=300,
                               env={**os.environ, "PYTHONIOENCODING": "utf-8"})
    assert completed.returncode == 0, completed.stderr
    return completed.stdout


def test_seed_function():
    output = run_example("seed_function.py")
    assert "df/dx = 4*x + 3*y" in output
    assert "df/dy = 3*x + 2*y" in output
    assert "LaTeX: 4 x + 3 y" in output
    assert "kernel(x: f64[], y: f64[]) -> (f, df/dx, df/dy)" in output
    assert "At (x, y) = (3, -2): f = 4.0, df/dx = 6.0, df/dy = 5.0" in output
    assert "Gradient check (central differences, eps=1e-6, atol=1e-5, rtol=1e-3): True" in output


def test_activations():
    output = run_example("activations.py", "--no-plot")
    for name in ("sigmoid", "tanh", "step", "relu", "leaky_relu", "prelu", "elu", "softplus",
                 "swish", "mish", "smooth_max", "acon_a", "acon_b", "acon_c", "lif_rate",
                 "shifted_sigmoids"):
        assert f"\n{name}" in "\n" + output
    assert "f'(x) = sigmoid(-x)*sigmoid(x)" in output
    assert "every derivative matches central finite differences" in output


def test_mlp_gradients():
    output = run_example("mlp_gradients.py")
    assert "delta2 = (delta3*W3) ∘ (4*(sigmoid.(2*z2) ∘ sigmoid.(-2*z2)))" in output
    assert "delta1 = (delta2*W2) ∘ (4*(sigmoid.(2*z1) ∘ sigmoid.(-2*z1)))" in output
    assert "dC/dW1 = delta1.T*X" in output and "dC/db1 = 1*delta1" in output
    assert "\\delta_{1} &= \\left(\\delta_{2} W_{2}\\right) \\circ" in output
    assert "finite-difference check (every entry): True" in output
    assert "MLP 784-256-128-10 (235146 weights, float32)" in output


def test_benchmark_runs_and_every_result_checks():
    # Timings are not asserted (benchmarks print tables, tests do not time); what is asserted
    # is that the script runs and that every implementation's result matched the reference.
    output = run_example("benchmark.py", "--quick", "w1", "w4")
    assert "W1 scalar call" in output and "W4 tiny network" in output
    rows = [line for line in output.splitlines() if line.strip().startswith(
        ("symgrad", "hand-written Python", "sympy.lambdify", "torch", "JAX"))]
    assert len(rows) >= 4
    assert all(line.rstrip().endswith("ok") for line in rows), output
    assert "MISMATCH" not in output
