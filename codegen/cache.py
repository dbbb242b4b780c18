"""The on-disk cache of compiled kernels.

An entry holds the native object code (and the optimised LLVM IR, for inspection) of one
module, or of the modules compiled together as one (:class:`codegen.jit.CompiledModule`'s
parts), keyed by a hash of everything that determines it: the kernel's symgrad IR
(:func:`fingerprint`) and the source of the code generator that lowers it, the target triple,
CPU name and features, the optimisation settings, and the llvmlite and LLVM versions.  A hit
therefore skips lowering too, not only LLVM.
Each entry carries a checksum of its contents: an entry that is truncated, corrupt or written
by another format is rebuilt, never loaded.

The cache lives in ``$SYMGRAD_CACHE_DIR``, else ``$XDG_CACHE_HOME/symgrad``, else
``~/.cache/symgrad``; :func:`set_cache_dir` changes it (None switches caching off).
"""

import functools
import hashlib
import json
import os
import pathlib
import tempfile

import llvmlite
import llvmlite.binding as llvm

FORMAT = "symgrad-object-2"
_MAGIC = FORMAT.encode() + b"\n"

#: ``set_cache_dir(DEFAULT)`` goes back to the directory chosen by the environment.
DEFAULT = "<default>"
_settings = {"directory": DEFAULT}


def set_cache_dir(path):
    """Use ``path`` for the kernel cache (None: no disk cache; :data:`DEFAULT`: the
    environment's choice).  Returns the previous setting, which can be passed back."""
    previous = _settings["directory"]
    _settings["directory"] = path if path in (None, DEFAULT) else str(path)
    return previous


def cache_dir():
    """The cache directory in use, or None when caching is off."""
    directory = _settings["directory"]
    if directory is None:
        return None
    if directory != DEFAULT:
        return pathlib.Path(directory)
    if os.environ.get("SYMGRAD_CACHE_DIR"):
        return pathlib.Path(os.environ["SYMGRAD_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return pathlib.Path(base) / "symgrad"


_SOURCES = pathlib.Path(__file__).parent


def _source_digest(paths):
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


@functools.lru_cache(maxsize=None)
def generator_digest():
    """A hash of the code generator's source (every module of ``codegen``): a new symgrad
    version never loads a kernel an older one lowered.

    Kept in the cache directory with the names, sizes and modification times of the files it
    hashed, and hashed again when any of them differs (as Python checks its own bytecode
    caches): reading and hashing the sources took a millisecond of every process's first
    compile."""
    with os.scandir(_SOURCES) as entries:
        paths = sorted(_SOURCES / entry.name for entry in entries if entry.name.endswith(".py"))
    signature = [[path.name, stat.st_size, stat.st_mtime_ns]
                 for path, stat in ((path, path.stat()) for path in paths)]
    directory = cache_dir()
    memo = directory / "generator.json" if directory is not None else None
    if memo is not None:
        try:
            stored = json.loads(memo.read_text())
            if stored["sources"] == signature and isinstance(stored["digest"], str):
                return stored["digest"]
        except (OSError, ValueError, KeyError, TypeError):
            pass
    digest = _source_digest(paths)
    if memo is not None:
        _write_atomically(memo, json.dumps({"sources": signature, "digest": digest}).encode())
    return digest


def fingerprint(function, *details):
    """A text that determines ``function`` (a symgrad IR function) exactly: every node's op,
    dtype, shape, attributes (floats by their round-tripping repr) and operands, the inputs,
    the outputs and their names; ``details`` (such as the kernel's name and entry points) are
    appended."""
    index = {}
    lines = []

    def ref(node):
        # Nodes in evaluation order, each once; an input the outputs do not use is listed too.
        if id(node) not in index:
            lines.append(f"{node.op.value} {node.dtype} {node.shape!r} {node.attrs!r} "
                         f"{[ref(arg) for arg in node.args]}")
            index[id(node)] = len(index)
        return index[id(node)]
    for node in function.nodes:
        ref(node)
    lines.append(repr([ref(node) for node in function.inputs]))
    lines.append(repr([ref(node) for node in function.outputs]))
    lines.append(repr((tuple(function.input_names), tuple(function.output_names))))
    lines.append(repr(details))
    return "\n".join(lines)


def cache_key(identity, host, settings):
    """The hex key of a module: a hash of what determines it (``identity``: the
    :func:`fingerprint` of its symgrad IR), the code generator, the host and the compiler
    settings."""
    triple, cpu, features = host
    parts = {
        "format": FORMAT, "llvmlite": llvmlite.__version__,
        "llvm": ".".join(map(str, llvm.llvm_version_info)), "triple": triple, "cpu": cpu,
        "features": features, "settings": settings, "generator": generator_digest(),
    }
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True).encode())
    digest.update(identity.encode())
    return digest.hexdigest()


def load(key):
    """The list of ``(object_code, optimized_llvm_ir)`` pairs stored under ``key``, or None
    when absent or not valid."""
    directory = cache_dir()
    if directory is None:
        return None
    try:
        data = (directory / f"{key}.entry").read_bytes()
    except OSError:
        return None
    if not data.startswith(_MAGIC):
        return None
    header_end = data.find(b"\n", len(_MAGIC))
    if header_end < 0:
        return None
    try:
        header = json.loads(data[len(_MAGIC):header_end])
        body = data[header_end + 1:]
        if header["key"] != key or hashlib.sha256(body).hexdigest() != header["sha256"]:
            return None
        modules, offset = [], 0
        for object_size, text_size in header["sizes"]:
            object_code = body[offset:offset + object_size]
            text = body[offset + object_size:offset + object_size + text_size].decode()
            modules.append((object_code, text))
            offset += object_size + text_size
        if offset != len(body) or not modules:
            return None
        return modules
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        return None


def store(key, modules):
    """Write an entry, the ``(object_code, optimized_llvm_ir)`` pairs ``modules``, atomically
    (a concurrent reader sees the old entry or the new one)."""
    directory = cache_dir()
    if directory is None:
        return
    pieces, sizes = [], []
    for object_code, text in modules:
        encoded = text.encode()
        pieces += [bytes(object_code), encoded]
        sizes.append([len(object_code), len(encoded)])
    body = b"".join(pieces)
    header = {"key": key, "sha256": hashlib.sha256(body).hexdigest(), "sizes": sizes}
    _write_atomically(directory / f"{key}.entry",
                      _MAGIC + json.dumps(header).encode() + b"\n" + body)


def _write_atomically(path, data):
    """Write ``path`` so that a concurrent reader sees the old file or the new one."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.replace(temporary, path)
    except OSError:
        pass          # a read-only or full disk only costs the cache, never the kernel
