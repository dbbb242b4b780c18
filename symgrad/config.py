"""symgrad's settings from the environment: every ``SYMGRAD_*`` variable is read here.

=========================  =========================  ==============================================
Variable                   Default                    Meaning
=========================  =========================  ==============================================
``SYMGRAD_NUM_THREADS``    the CPUs this process may  threads of a large kernel call
                           use                        (:func:`symgrad.set_num_threads` overrides it)
``SYMGRAD_GEMM``           ``symgrad``                matrix products by symgrad's GEMM, or
                                                      ``blas``: numpy's OpenBLAS
``SYMGRAD_BLAS``           ``1``                      ``0``: no library at all, matrix products as
                                                      loop nests (for comparisons)
``SYMGRAD_CACHE_DIR``      ``$XDG_CACHE_HOME/symgrad``  the disk cache of compiled kernels
                           or ``~/.cache/symgrad``
``SYMGRAD_CACHE_KEY``      the file                   the key that authenticates cache entries
                           ``~/.config/symgrad/cache.key``
=========================  =========================  ==============================================

Each function reads the environment when called (a change of a variable reaches the next
kernel compiled); a bad value is a ValueError naming the variable, what it may be and what it
was.  This module imports only the standard library.
"""

import os
import pathlib

#: The variables, with their defaults (None: computed) and what they mean.
VARIABLES = {
    "SYMGRAD_NUM_THREADS": (None, "threads of a large kernel call (default: the CPUs this "
                                  "process may use)"),
    "SYMGRAD_GEMM": ("symgrad", "matrix products by symgrad's GEMM ('symgrad') or numpy's "
                                "OpenBLAS ('blas')"),
    "SYMGRAD_BLAS": ("1", "'0': matrix products as loop nests, no library"),
    "SYMGRAD_CACHE_DIR": (None, "the disk cache of compiled kernels (default: "
                                "$XDG_CACHE_HOME/symgrad, else ~/.cache/symgrad)"),
    "SYMGRAD_CACHE_KEY": (None, "the key that authenticates cache entries (default: the "
                                "file ~/.config/symgrad/cache.key)"),
}


def num_threads():
    """``$SYMGRAD_NUM_THREADS`` as a positive int, or None where it is not set."""
    value = os.environ.get("SYMGRAD_NUM_THREADS")
    if not value:
        return None
    try:
        threads = int(value)
    except ValueError:
        threads = 0
    if threads < 1:
        raise ValueError(f"SYMGRAD_NUM_THREADS must be a positive integer, got {value!r}")
    return threads


def gemm_library():
    """Which library computes matrix products: ``'symgrad'``, ``'blas'``, or None (loop
    nests: ``$SYMGRAD_BLAS=0``)."""
    library = os.environ.get("SYMGRAD_GEMM", "symgrad")
    if library not in ("symgrad", "blas"):
        raise ValueError(f"SYMGRAD_GEMM must be 'symgrad' or 'blas', got {library!r}")
    return None if os.environ.get("SYMGRAD_BLAS", "1") == "0" else library


def cache_dir():
    """The default directory of the disk cache."""
    if os.environ.get("SYMGRAD_CACHE_DIR"):
        return pathlib.Path(os.environ["SYMGRAD_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return pathlib.Path(base) / "symgrad"


def cache_key_text():
    """``$SYMGRAD_CACHE_KEY``, or None where it is not set."""
    return os.environ.get("SYMGRAD_CACHE_KEY") or None


def key_file():
    """The key file read when no key is set otherwise: ``$XDG_CONFIG_HOME/symgrad/cache.key``,
    else ``~/.config/symgrad/cache.key`` (a string: looked up by every read and write of the
    cache)."""
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"),
                                                             ".config")
    return os.path.join(base, "symgrad", "cache.key")
