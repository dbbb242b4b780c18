"""The code is lint clean by the rules of pyproject.toml ([tool.ruff]): ruff, from the dev
extra, over the whole repository."""

import pathlib
import shutil
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_ruff_finds_nothing():
    ruff = shutil.which("ruff", path=str(pathlib.Path(sys.executable).parent)) or \
        shutil.which("ruff")
    assert ruff is not None, "ruff is not installed: pip install -e '.[dev]'"
    result = subprocess.run([ruff, "check", "--no-cache", str(ROOT)], capture_output=True,
                            text=True, encoding="utf-8", cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
