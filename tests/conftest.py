import os
import pathlib
import sys
import tempfile

import hypothesis

import symgrad
import symgrad.codegen
from symgrad.codegen.compile import cache

ROOT = pathlib.Path(__file__).resolve().parent.parent

# These tests must exercise this checkout, installed (pip install -e .): symgrad from its
# folder, and the code generator (installed as symgrad.codegen) from the folder codegen/.
assert pathlib.Path(symgrad.__file__).resolve().parent == ROOT / "symgrad", symgrad.__file__
assert pathlib.Path(symgrad.codegen.__file__).resolve().parent == ROOT / "codegen", \
    symgrad.codegen.__file__

# The measuring tools of benchmarks/ (the peak-rate probe) are tested too.
sys.path.insert(0, str(ROOT / "benchmarks"))

hypothesis.settings.register_profile("ci", deadline=None, derandomize=True, print_blob=True)
hypothesis.settings.register_profile("dev", deadline=None)
hypothesis.settings.load_profile("ci" if os.environ.get("CI") else "dev")

# Kernels compiled by the tests go to a fresh cache, never the user's, without the user's key.
cache.set_cache_dir(tempfile.mkdtemp(prefix="symgrad-test-cache-"))
cache.set_authentication_key(None)
