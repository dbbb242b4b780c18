"""Packaging: every subpackage ships, one version, a license, type information; an unrelated
package named ``codegen`` installed before or after symgrad changes nothing."""

import ast
import importlib.metadata
import os
import pathlib
import shutil
import subprocess
import sys
import tomllib

import pytest

import symgrad
from symgrad.__main__ import main

ROOT = pathlib.Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_every_folder_of_the_packages_is_listed_in_pyproject():
    setuptools = PYPROJECT["tool"]["setuptools"]
    found = set()
    for package, folder in setuptools["package-dir"].items():
        for init in (ROOT / folder).rglob("__init__.py"):
            found.add(".".join([package, *init.parent.relative_to(ROOT / folder).parts]))
    assert set(setuptools["packages"]) == found
    assert {"symgrad.ir", "symgrad.codegen.lower"} <= found


def test_the_version_has_one_source():
    assert PYPROJECT["project"]["dynamic"] == ["version"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {
        "attr": "symgrad.__version__"}
    assert importlib.metadata.version("symgrad") == symgrad.__version__
    # Written once, as a literal setuptools reads without importing symgrad.
    tree = ast.parse((ROOT / "symgrad" / "__init__.py").read_text(encoding="utf-8"))
    assigned = [node for node in tree.body if isinstance(node, ast.Assign) and
                any(getattr(t, "id", None) == "__version__" for t in node.targets)]
    assert len(assigned) == 1 and isinstance(assigned[0].value, ast.Constant)


def test_version_on_the_command_line(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    output = capsys.readouterr().out
    assert output.startswith(f"symgrad {symgrad.__version__} (Python ")
    for name in ("sympy", "numpy", "llvmlite"):
        assert f"{name} {importlib.metadata.version(name)}" in output


def test_license_and_type_information_ship():
    assert PYPROJECT["project"]["license"] == "MIT"
    assert "MIT License" in (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert (ROOT / "symgrad" / "py.typed").exists()
    assert "py.typed" in PYPROJECT["tool"]["setuptools"]["package-data"]["symgrad"]


_CHECK = """
import pathlib, sys
import symgrad as sg
import symgrad.codegen
x, y = sg.symbols("x y")
kernel = sg.compile(x**2 + x*y, wrt=[x, y])
assert kernel(3.0, -2.0) == (3.0, (4.0, 3.0)), kernel(3.0, -2.0)
X = sg.tensor("X", ("n", 2))
step = sg.compile((X @ sg.tensor("W", (2, 3))).sum(), [sg.tensor("W", (2, 3))], [X])
import numpy as np
value, (grad,) = step([np.ones((2, 3))], np.ones((4, 2)))
assert value == 24.0 and (grad == 4.0).all()
ours = pathlib.Path(symgrad.codegen.__file__).parent
assert ours.name == "codegen" and ours.parent.name == "symgrad", ours
import importlib.util                            # the other package: still there (not
other = importlib.util.find_spec("codegen")      # imported: it needs its dependencies)
assert other is not None and pathlib.Path(other.origin).parent != ours, other
print("ok")
"""


def _python_for_codegen():
    """An interpreter PyPI's "codegen" installs on (it requires Python 3.12 or 3.13)."""
    if (3, 12) <= sys.version_info[:2] <= (3, 13):
        return sys.executable
    candidates = [shutil.which(name) for name in ("python3.12", "python3.13")]
    # pyenv's own versions (its shims run only the version selected).
    pyenv_root = pathlib.Path(os.environ.get("PYENV_ROOT", pathlib.Path.home() / ".pyenv"))
    candidates += sorted(map(str, pyenv_root.glob("versions/3.1[23]*/bin/python3")))
    for found in filter(None, candidates):
        if subprocess.run([found, "-c", "pass"], capture_output=True).returncode == 0:
            return found
    pytest.fail("no Python 3.12 or 3.13 found for PyPI's 'codegen' (it requires one)")


@pytest.mark.slow
def test_an_unrelated_codegen_package_before_or_after_symgrad_changes_nothing(tmp_path):
    # A throwaway venv: PyPI's "codegen" (without its dependencies: its files are what could
    # clash), then symgrad installed from this checkout (not editable: what ships), checked;
    # then "codegen" installed again over it, checked again.
    venv = tmp_path / "venv"
    subprocess.run([_python_for_codegen(), "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    pip = [python, "-m", "pip", "install", "-q", "--disable-pip-version-check"]

    def check():
        result = subprocess.run([python, "-c", _CHECK], capture_output=True, text=True,
                                encoding="utf-8", cwd=tmp_path)
        assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr
    subprocess.run(pip + ["--no-deps", "codegen"], check=True)
    subprocess.run(pip + [str(ROOT)], check=True)
    check()
    subprocess.run(pip + ["--no-deps", "--force-reinstall", "codegen"], check=True)
    check()
