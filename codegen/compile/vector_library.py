"""Vectorised calls of the C library's elementary functions: glibc's libmvec.

LLVM's loop vectoriser widens a loop that calls ``llvm.sin.f64`` into one that calls
``llvm.sin.v8f64``, which the backend would split back into eight scalar calls of ``sin``.
Where glibc's vector math library is in the process, the optimised module's vector calls are
renamed, before code generation, to its entry points of the same width (``_ZGVeN8v_sin``:
AVX-512, 8 lanes; ``_ZGVdN4v_sin``: AVX2, 4; ``_ZGVbN2v_sin``: SSE4, 2), which take and
return the vector in one register, as the x86-64 vector function ABI has them.  glibc
documents them within 4 ulp (``tests/test_vecmath.py`` measures them); a remainder loop's
scalar calls still go to ``sin`` itself.

Nothing is renamed where libmvec is missing (other C libraries, other CPUs), or for a width
the host's instruction set does not have: those calls stay scalar, as before.
"""

import ctypes.util
import re

import llvmlite.binding as llvm

from symgrad.locks import once

#: The functions renamed, by their LLVM intrinsic name, with their number of operands.
FUNCTIONS = {"sin": 1, "cos": 1, "tan": 1, "asin": 1, "acos": 1, "atan": 1, "atan2": 2}

# (element suffix, lanes) -> (ISA letter of the vector ABI, the CPU feature it needs).
_WIDTHS = {
    ("f64", 8): ("e", "+avx512f"), ("f64", 4): ("d", "+avx2"), ("f64", 2): ("b", "+sse4.1"),
    ("f32", 16): ("e", "+avx512f"), ("f32", 8): ("d", "+avx2"), ("f32", 4): ("b", "+sse4.1"),
}

_CALL = re.compile(r"@llvm\.(" + "|".join(FUNCTIONS) + r")\.v(\d+)(f64|f32)\b")


@once
def available():
    """Whether libmvec is loaded into the process (loaded here on first use), so that
    compiled code may call it."""
    if not llvm.get_process_triple().startswith("x86_64"):
        return False
    name = ctypes.util.find_library("mvec")
    if name is None:
        return False
    try:
        llvm.load_library_permanently(name)
    except RuntimeError:
        return False
    return True


def rewrite(text, features):
    """``text`` (an optimised module) with its vector calls of :data:`FUNCTIONS` renamed to
    libmvec's entry points for ``features`` (the host's, as LLVM names them); None where
    nothing is renamed."""
    if "@llvm." not in text or not available():
        return None
    present = set(features.split(","))
    changed = False

    def symbol(match):
        nonlocal changed
        name, lanes, element = match.group(1), int(match.group(2)), match.group(3)
        width = _WIDTHS.get((element, lanes))
        if width is None or width[1] not in present:
            return match.group(0)
        changed = True
        letter = width[0]
        suffix = "f" if element == "f32" else ""
        return f"@_ZGV{letter}N{lanes}{'v' * FUNCTIONS[name]}_{name}{suffix}"

    renamed = _CALL.sub(symbol, text)
    return renamed if changed else None
