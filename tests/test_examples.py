"""The example scripts run and print what they promise."""

import pathlib
import subprocess
import sys

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


def run_example(name):
    completed = subprocess.run([sys.executable, str(EXAMPLES / name)], capture_output=True,
                               text=True, timeout=300)
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
