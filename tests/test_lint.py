"""The code is lint clean by the rules of pyproject.toml: ruff ([tool.ruff]) over the whole
repository, and mypy ([tool.mypy]) over the typed public API; both from the dev extra."""

import pathlib
import shutil
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _tool(name):
    found = shutil.which(name, path=str(pathlib.Path(sys.executable).parent)) or \
        shutil.which(name)
    assert found is not None, f"{name} is not installed: pip install -e '.[dev]'"
    return found


def test_ruff_finds_nothing():
    result = subprocess.run([_tool("ruff"), "check", "--no-cache", str(ROOT)],
                            capture_output=True, text=True, encoding="utf-8", cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_finds_nothing_in_the_typed_api(tmp_path):
    result = subprocess.run([_tool("mypy"), "--cache-dir", str(tmp_path)], capture_output=True,
                            text=True, encoding="utf-8", cwd=ROOT)
    assert result.returncode == 0 and "Success" in result.stdout, result.stdout + result.stderr
