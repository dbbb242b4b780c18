"""The training examples run, reach what they claim, and print it."""

import os
import pathlib
import re
import subprocess
import sys

import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


def run_example(name, *args, cwd=None):
    completed = subprocess.run([sys.executable, str(EXAMPLES / name), *args],
                               capture_output=True, text=True, encoding="utf-8", timeout=300,
                               cwd=cwd, env={**os.environ, "PYTHONIOENCODING": "utf-8"})
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return completed.stdout


def percentage(output, prefix):
    """The percentage printed after ``prefix`` (e.g. 'test accuracy: 95.80%') as a fraction."""
    match = re.search(re.escape(prefix) + r"\s*([0-9.]+)%", output)
    assert match, f"no {prefix!r} line in:\n{output}"
    return float(match.group(1)) / 100


def test_perceptron():
    output = run_example("perceptron.py")
    assert re.search(r"converged after \d+ epochs \(the last one made no mistake\)", output)
    assert "final weights w = (" in output
    assert "training accuracy: 100%" in output
    assert re.search(r"E_P: [0-9.]+ after epoch 1, 0\.000000 at the end", output)
    assert "so w <- w + eta t_n x_n is a gradient step on E_P" in output


def test_logistic_regression():
    pytest.importorskip("sklearn")
    output = run_example("logistic_regression.py")
    assert "full-batch gradient descent" in output
    assert percentage(output, "test accuracy:") >= 0.93


def test_xor():
    output = run_example("xor.py")
    assert 0.5 <= percentage(output, "one neuron: accuracy") <= 0.75
    assert percentage(output, "2-layer network: accuracy") == 1.0
    assert "fewest in any epoch:" in output


def test_digits():
    pytest.importorskip("sklearn")
    output = run_example("digits.py")
    assert "finite-difference gradient check on a batch of 8" in output
    assert re.search(r"gradient check .*: True", output)
    assert re.search(r"time per epoch: [0-9.]+ ms median", output)
    assert percentage(output, "test accuracy:") >= 0.97


def test_digits_cnn():
    pytest.importorskip("sklearn")
    output = run_example("digits_cnn.py")
    assert re.search(r"gradient check .*: True", output)
    cnn, mlp = percentage(output, "CNN test accuracy:"), percentage(output, "MLP test accuracy:")
    assert cnn > mlp and cnn >= 0.98


def test_learning_rate(tmp_path):
    output = run_example("learning_rate.py", cwd=tmp_path)
    rows = {float(m.group(1)): m.group(2)
            for m in re.finditer(r"^\s*([0-9.e-]+) .*  (\w[\w ]*) \(", output, re.MULTILINE)}
    assert rows[0.0001] == "barely moved"
    assert rows[0.2] == "converged"
    assert rows[0.3] == "diverges" and rows[1.0] == "diverges"
    assert "lowest loss: eta = 0.2" in output
    assert not (tmp_path / "learning_rate.png").exists()


def test_learning_rate_plot(tmp_path):
    pytest.importorskip("matplotlib")
    output = run_example("learning_rate.py", "--plot", cwd=tmp_path)
    assert "saved learning_rate.png" in output
    assert (tmp_path / "learning_rate.png").stat().st_size > 0


def test_hebbian():
    output = run_example("hebbian.py")
    assert percentage(output, "auto-associative recall:") >= 0.95
    assert percentage(output, "hetero-associative recall:") >= 0.95
    assert "The same memory holding 24 patterns" in output
