import os
import pathlib

import tempfile

import hypothesis

import codegen
from codegen import cache

ROOT = pathlib.Path(__file__).resolve().parent.parent

# An unrelated distribution named "codegen" exists; these tests must exercise ours.
assert pathlib.Path(codegen.__file__).resolve().parent == ROOT / "codegen", codegen.__file__

hypothesis.settings.register_profile("ci", deadline=None, derandomize=True, print_blob=True)
hypothesis.settings.register_profile("dev", deadline=None)
hypothesis.settings.load_profile("ci" if os.environ.get("CI") else "dev")

# Kernels compiled by the tests go to a fresh cache, never the user's, without the user's key.
cache.set_cache_dir(tempfile.mkdtemp(prefix="symgrad-test-cache-"))
cache.set_authentication_key(None)
