"""The command line, ``python -m symgrad``."""

import os
import subprocess
import sys

import pytest

from symgrad.__main__ import main


def test_grad(capsys):
    assert main(["grad", "x**2 + x*y + (x + y)**2", "--wrt", "x,y", "--latex"]) == 0
    output = capsys.readouterr().out
    assert "df/dx = 4*x + 3*y" in output
    assert "df/dy = 3*x + 2*y" in output
    assert "LaTeX: 4 x + 3 y" in output


def test_grad_of_every_symbol_by_default(capsys):
    assert main(["grad", "sigmoid(a*b)"]) == 0
    output = capsys.readouterr().out
    assert "df/da = b*sigmoid(-a*b)*sigmoid(a*b)" in output
    assert "df/db = a*sigmoid(-a*b)*sigmoid(a*b)" in output


def test_ir(capsys):
    assert main(["ir", "tanh(x)*y", "--wrt", "x"]) == 0
    output = capsys.readouterr().out
    assert 'define void @"symgrad_kernel"' in output and "tanh" in output
    assert main(["ir", "exp(x)", "--wrt", "x", "--optimized"]) == 0
    assert "define void @symgrad_kernel" in capsys.readouterr().out
    assert main(["ir", "exp(x)", "--asm"]) == 0
    assert "symgrad_kernel:" in capsys.readouterr().out


def test_errors_are_messages_not_tracebacks(capsys):
    assert main(["grad", "gamma(x)", "--wrt", "x"]) == 2
    assert "does not support the function 'gamma'" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="cannot parse"):
        main(["grad", "x +* 2"])
    with pytest.raises(SystemExit):
        main(["nonsense"])


def test_check(capsys):
    assert main(["check"]) == 0
    output = capsys.readouterr().out
    for name in ("worked example", "sigmoid", "mish", "acon_c", "softmax_cross_entropy"):
        assert name in output
    assert "FAILED" not in output and "all checks passed" in output


def test_demo_runs_as_a_module():
    pytest.importorskip("sklearn")
    completed = subprocess.run([sys.executable, "-m", "symgrad", "demo", "--epochs", "20"],
                               capture_output=True, text=True, encoding="utf-8", timeout=300,
                               env={**os.environ, "PYTHONIOENCODING": "utf-8"})
    assert completed.returncode == 0, completed.stderr
    output = completed.stdout
    assert "df/dx = 4*x + 3*y" in output
    assert "f(3, -2) = 4.0, gradient (6.0, 5.0)" in output
    accuracy = float(output.split("test accuracy ")[1].split("%")[0])
    assert accuracy >= 97.0
    assert "finite-difference check of the network's gradients: True" in output
    assert completed.stderr == ""          # no progress bar when not on a terminal
