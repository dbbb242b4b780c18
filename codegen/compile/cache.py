"""The on-disk cache of compiled kernels.

An entry holds the native object code (and the optimised LLVM IR, for inspection) of one
module, or of the modules compiled together as one (the parts of a
:class:`symgrad.codegen.compile.jit.CompiledModule`), keyed by a hash of everything that
determines it: the kernel's symgrad IR (:func:`fingerprint`) and the source of the code
generator that lowers it, the target triple, CPU name and features, the optimisation settings,
and the llvmlite and LLVM versions. A hit therefore skips lowering too, not only LLVM.
Each entry carries a checksum of its contents: an entry that is truncated, corrupt or written
by another format is rebuilt, never loaded.

The cache lives in ``$SYMGRAD_CACHE_DIR``, else ``$XDG_CACHE_HOME/symgrad``, else
``~/.cache/symgrad``; :func:`set_cache_dir` changes it (None switches caching off).

Whom it trusts
--------------
An entry is native code that the process runs, so a file of the cache is read only when no
one but this user (or root) can have written it, as ssh reads its keys, or, with a key, when
its tag shows that it was written by a holder of the key:

* Without a key, the cache directory and every file read from it (entries, the generator's
  digest ``generator.json``) must be owned by this user or root and writable by no one else
  (no group or other write bit).  Directories are created 0700 and files written 0600,
  whatever the umask, each file atomically (a temporary file renamed over it).
* With a key (:func:`set_authentication_key`, ``$SYMGRAD_CACHE_KEY``, else the key file
  :func:`key_file`), every file carries an HMAC-SHA256 tag of its contents under that key,
  and is read only when the tag verifies: a cache shared by a group (a team's folder, the
  workers of a cluster) then needs no trust in who wrote a file.  The directory may be owned
  by another user and writable by its group, when this user is a member of that group; files
  are written 0640 where the directory's group may read it, for the others to load.
* A directory writable by every user is refused, key or not; so is a file that is a symbolic
  link, or not a regular file.

The checks are made on the opened directory and files (``fstat`` of the descriptors, the
files opened relative to the directory's descriptor, without following links), so the file
checked is the file read.  The directories above the cache directory are not checked: one
writable by another user lets that user move the cache directory away or put another in its
place, but whatever the path leads to is checked as above, so that user can make the cache
miss, never make it load code of theirs.

A refused directory is not used (the kernel is compiled, not stored); a refused file is not
loaded (its kernel is compiled again and the file replaced).  Each is said once per process
and directory by a :class:`CacheTrustWarning` naming the path, what was found, what is
expected and how to fix it; :func:`refusals` lists them all, and a
:class:`symgrad.codegen.compile.jit.CompiledModule` keeps the one that concerned it
(``cache_refusal``).
Where the operating system does not provide these checks (no ``dir_fd`` opens) the disk cache
is not used.
"""

import dataclasses
import errno
import hashlib
import hmac
import json
import os
import pathlib
import secrets
import stat
import sys
import threading
import warnings

import llvmlite
import llvmlite.binding as llvm

from symgrad import config
from symgrad.locks import once

FORMAT = "symgrad-object-3"
_MAGIC = FORMAT.encode() + b"\n"
_MEMO_MAGIC = b"symgrad-generator-2\n"
_MEMO = "generator.json"
_UNTAGGED = b"-"

#: ``set_cache_dir(DEFAULT)`` goes back to the directory chosen by the environment, and
#: ``set_authentication_key(DEFAULT)`` to the key chosen by the environment or key file.
DEFAULT = "<default>"
_settings = {"directory": DEFAULT, "key": DEFAULT}

#: The environment variable holding the key (its text, encoded as UTF-8).
KEY_VARIABLE = "SYMGRAD_CACHE_KEY"
#: A shorter key is refused: it could be guessed.
MIN_KEY_BYTES = 16

# Opening relative to a directory's descriptor, without following links: the checks need it.
_SUPPORTED = ({os.open, os.rename, os.unlink} <= os.supports_dir_fd
              and hasattr(os, "O_NOFOLLOW") and hasattr(os, "O_DIRECTORY")
              and hasattr(os, "geteuid"))
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
# The code generator: the folder of symgrad.codegen.
_SOURCES = pathlib.Path(__file__).resolve().parent.parent


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
    return config.cache_dir()


def set_authentication_key(key):
    """Authenticate the cache's files with ``key``: each is written with an HMAC-SHA256 tag
    and read only when its tag verifies.

    Parameters
    ----------
    key : bytes, str, None or DEFAULT
        The key (a str is encoded as UTF-8), at least :data:`MIN_KEY_BYTES` bytes; None: no
        key, whatever the environment says; :data:`DEFAULT`: ``$SYMGRAD_CACHE_KEY``, else the
        contents of :func:`key_file` when it exists.

    Returns
    -------
    The previous setting, which can be passed back.

    Examples
    --------
    >>> import secrets
    >>> previous = set_authentication_key(secrets.token_hex(32))
    >>> _ = set_authentication_key(previous)
    """
    if key is not None and not (isinstance(key, str) and key == DEFAULT):
        if isinstance(key, str):
            key = key.encode()
        if not isinstance(key, (bytes, bytearray)):
            raise TypeError(f"set_authentication_key: key must be bytes, str, None or DEFAULT, "
                            f"got {type(key).__name__}")
        if len(key) < MIN_KEY_BYTES:
            raise ValueError(f"set_authentication_key: key must have at least {MIN_KEY_BYTES} "
                             f"bytes, got {len(key)}")
        key = bytes(key)
    previous = _settings["key"]
    _settings["key"] = key
    return previous


def key_file():
    """The key file read when no key is set otherwise: ``$XDG_CONFIG_HOME/symgrad/cache.key``,
    else ``~/.config/symgrad/cache.key``.  It must be owned by this user and readable by no
    one else (mode 0600 or 0400); its contents, less surrounding white space, are the key."""
    return pathlib.Path(_key_path())


def _key_path():
    # Looked up by every read and write of the cache: strings, not paths (a tenth of the cost).
    return config.key_file()


def authentication_key():
    """The key in use (bytes), or None: set by :func:`set_authentication_key`, else
    ``$SYMGRAD_CACHE_KEY``, else :func:`key_file`.  A key that is refused (too short, or a key
    file that others can read or write) is said by a :class:`CacheTrustWarning` and not used:
    the cache then trusts its files' owners and modes alone, never more."""
    key = _settings["key"]
    if key is None or isinstance(key, bytes):
        return key
    text = config.cache_key_text()
    if text:
        key = text.encode()
        if len(key) >= MIN_KEY_BYTES:
            return key
        _refuse(f"${KEY_VARIABLE}", f"${KEY_VARIABLE}", f"a key of {len(key)} bytes",
                f"at least {MIN_KEY_BYTES} bytes", f"{_KEYLESS}: set it to a random text such "
                f"as `python -c 'import secrets; print(secrets.token_hex(32))'` prints")
        return None
    return _key_from_file(_key_path())


_KEYLESS = "The cache is used without a key (its files' owners and modes decide). Fix"
_key_files = {}


def _key_from_file(path):
    try:
        status = os.stat(path)
    except OSError:
        return None
    signature = (status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns,
                 status.st_mode, status.st_uid)
    known = _key_files.get(path)
    if known is not None and known[0] == signature:
        return known[1]
    key = None
    try:
        with open(os.open(path, os.O_RDONLY | os.O_NONBLOCK | _CLOEXEC), "rb") as stream:
            # The file read is the file checked (a link is followed, its target checked).
            status = os.fstat(stream.fileno())
            mode = stat.S_IMODE(status.st_mode)
            if not stat.S_ISREG(status.st_mode):
                found = "not a regular file"
            elif status.st_uid not in _owners():
                found = f"owned by uid {status.st_uid} (mode {mode:04o})"
            elif mode & 0o077:
                found = f"readable or writable by others (mode {mode:04o})"
            else:
                found = None
                key = stream.read().strip()
                if len(key) < MIN_KEY_BYTES:
                    found, key = f"a key of {len(key)} bytes", None
    except OSError:
        return None
    if found is not None:
        _refuse(path, path, found, f"a regular file of at least {MIN_KEY_BYTES} bytes owned by "
                f"uid {os.geteuid()} (this user), mode 0600 or 0400",
                f"{_KEYLESS}: chown {os.geteuid()} {path} && chmod 600 {path}; a key others "
                f"could read is no longer secret: make a new one")
    _key_files[path] = (signature, key)
    return key


# ---------------------------------------------------------------------------------------------
# Refusals

class CacheTrustWarning(UserWarning):
    """The kernel cache's directory, or a file in it, is not trusted, so it is not used."""


@dataclasses.dataclass(frozen=True)
class Refusal:
    """Why a file or directory of the cache was not used.

    Attributes
    ----------
    path : str
        The directory or file refused.
    found : str
        What was found (its owner's uid and its mode, a bad tag, ...).
    expected : str
        What the cache trusts.
    remedy : str
        How to fix it.
    """

    path: str
    found: str
    expected: str
    remedy: str

    def __str__(self):
        return f"{self.path}: {self.found}; expected {self.expected}. {self.remedy}."


# symgrad's own folders (the code generator's and the rest's), for warnings said where the user's
# code called symgrad.
_PACKAGES = tuple(str(path) + os.sep for path in
                  (_SOURCES, pathlib.Path(config.__file__).resolve().parent))
_refused = {}
_warned = set()
_refusals_lock = threading.Lock()


def refusals():
    """The :class:`Refusal` of every directory and file of the cache refused in this process,
    in the order they were first refused (each once)."""
    with _refusals_lock:
        return list(_refused.values())


def _refuse(scope, path, found, expected, remedy, warn=True):
    """Record a refusal; the first one of ``scope`` (a directory, a key file) in this process
    is said by a warning."""
    refusal = Refusal(str(path), found, expected, remedy)
    with _refusals_lock:
        _refused.setdefault((refusal.path, found), refusal)
        first = warn and str(scope) not in _warned
        if first:
            _warned.add(str(scope))
    if first:
        # Said where the user's code called symgrad.
        frame, level = sys._getframe(), 1
        while frame is not None and frame.f_code.co_filename.startswith(_PACKAGES):
            frame, level = frame.f_back, level + 1
        warnings.warn(f"symgrad's kernel cache does not trust {refusal}", CacheTrustWarning,
                      stacklevel=level)
    return refusal


def _owners():
    return (os.geteuid(), 0)


def _groups():
    return {os.getegid(), *os.getgroups()}


def _owner_text():
    return f"owned by uid {os.geteuid()} (this user) or root"


def _key_advice():
    return (f"a folder shared by a group needs a key (${KEY_VARIABLE} or {_key_path()}, the "
            f"same for each of its users)")


_REPLACED = "Not loaded; replaced by what this process computes"


def _directory_problem(path, status, key):
    """What makes the cache directory ``path`` untrusted, as (found, expected, remedy), or
    None."""
    mode = stat.S_IMODE(status.st_mode)
    found = f"owner uid {status.st_uid}, group {status.st_gid}, mode {mode:04o}"
    unused = "Kernels are compiled without the cache. Fix"
    if mode & stat.S_IWOTH:
        return (f"writable by every user ({found})",
                "a directory that only its owner (and, with a key, its group) can write",
                f"{unused}: chmod 700 {path} (a directory of your own) or chmod 2770 {path} "
                f"(shared by its group, with a key), or set $SYMGRAD_CACHE_DIR to another")
    if key is not None:
        if mode & stat.S_IWGRP and status.st_gid not in _groups():
            return (f"writable by a group this user is not a member of ({found})",
                    "with a key, a directory writable by no group but one of this user's",
                    f"{unused}: chgrp the group that shares it, or chmod g-w {path}")
        return None
    if status.st_uid not in _owners():
        return (f"another user's ({found})", f"{_owner_text()}, writable by no one else",
                f"{unused}: chown {os.geteuid()} {path} && chmod 700 {path}, or set "
                f"$SYMGRAD_CACHE_DIR to a directory of your own; {_key_advice()}")
    if mode & stat.S_IWGRP:
        return (f"writable by its group ({found})", f"{_owner_text()}, writable by no one else",
                f"{unused}: chmod 700 {path}; {_key_advice()}")
    return None


def _file_problem(path, status, key):
    """What makes the file ``path`` of the cache untrusted, as (found, expected, remedy), or
    None."""
    if not stat.S_ISREG(status.st_mode):
        return "not a regular file", "a regular file", f"{_REPLACED}: rm {path}"
    if key is not None:
        return None                        # its tag decides
    mode = stat.S_IMODE(status.st_mode)
    found = f"owner uid {status.st_uid}, mode {mode:04o}"
    if status.st_uid not in _owners():
        return (f"another user's ({found})", f"{_owner_text()}, writable by no one else",
                f"{_REPLACED}; find out who wrote it there; {_key_advice()}")
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        return (f"writable by others ({found})", f"{_owner_text()}, writable by no one else",
                f"{_REPLACED} (mode 0600)")
    return None


# ---------------------------------------------------------------------------------------------
# Files of the cache: read when trusted, written 0600 in directories made 0700

def _open_directory(directory, key, create=False, warn=True):
    """A descriptor of the cache directory, or None; and the :class:`Refusal` that kept it
    from being used, or None (also when it does not exist, or cannot be created)."""
    if create:
        _make_directories(directory)
    try:
        descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | _CLOEXEC)
    except OSError:
        return None, None
    problem = _directory_problem(directory, os.fstat(descriptor), key)
    if problem is None:
        return descriptor, None
    os.close(descriptor)
    return None, _refuse(directory, directory, *problem, warn=warn)


def _make_directories(directory):
    """Create ``directory`` and its missing parents, each 0700 whatever the umask (as the XDG
    base directory specification says of the directories it creates)."""
    missing = []
    path = pathlib.Path(directory)
    while not os.path.lexists(path) and path != path.parent:
        missing.append(path)
        path = path.parent
    for path in reversed(missing):
        try:
            os.mkdir(path, 0o700)
            os.chmod(path, 0o700)
        except FileExistsError:
            continue               # made by another process meanwhile: checked when opened
        except OSError:
            return


def _read(directory, name, magic, key):
    """The contents of the file ``name`` of the cache directory after its header line
    ``magic`` and its tag line, where the file and the directory are trusted (and the tag
    verifies under ``key``); else None, with the :class:`Refusal`, or None where the file is
    absent or not of this format."""
    descriptor, refusal = _open_directory(directory, key)
    if descriptor is None:
        return None, refusal
    path = os.path.join(directory, name)
    try:
        try:
            handle = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | _CLOEXEC,
                             dir_fd=descriptor)
        except OSError as error:
            if error.errno == errno.ELOOP:         # O_NOFOLLOW met a link
                return None, _refuse(directory, path, "a symbolic link", "a regular file",
                                     f"{_REPLACED}: rm {path}")
            return None, None
        with open(handle, "rb") as stream:
            problem = _file_problem(path, os.fstat(handle), key)
            if problem is not None:
                return None, _refuse(directory, path, *problem)
            data = stream.read()
    except OSError:
        return None, None
    finally:
        os.close(descriptor)
    if not data.startswith(magic):
        return None, None
    tag_end = data.find(b"\n", len(magic))
    if tag_end < 0:
        return None, None
    payload = memoryview(data)[tag_end + 1:]
    if key is None:
        return payload, None
    tag = data[len(magic):tag_end]
    if tag == _UNTAGGED:
        # Written without a key (before one was set): not loaded, rewritten; no warning.
        return None, _refuse(directory, path, "no tag", "a tag under the key in use",
                             _REPLACED, warn=False)
    if not hmac.compare_digest(tag, _tag(key, payload)):
        return None, _refuse(directory, path, "a tag that does not verify under the key in "
                             "use (written with another key, or altered)",
                             "a tag under the key in use", f"{_REPLACED}; every user of the "
                             "cache needs the same key")
    return payload, None


def _tag(key, payload):
    return hmac.new(key, payload, hashlib.sha256).hexdigest().encode()


def _write(directory, name, magic, payload, key):
    """Write ``magic``, the tag of ``payload`` under ``key`` (a dash without a key) and
    ``payload`` to the file ``name`` of the cache directory (created where missing), mode 0600
    and atomically (a concurrent reader sees the old file or the new one); nothing where the
    directory is not trusted.  A read-only or full disk only costs the cache, never the
    kernel.

    With a key, in a directory its group may read (a folder shared by a group), the file is
    0640: the other users of the folder load it (its tag stands for its writer), none can
    change it."""
    tag = _UNTAGGED if key is None else _tag(key, payload)
    # No warning here (a store may run in a compile's thread): the read before it gave one.
    descriptor, _ = _open_directory(directory, key, create=True, warn=False)
    if descriptor is None:
        return
    temporary = f".{name}.{secrets.token_hex(8)}.tmp"
    mode = 0o600
    if key is not None and os.fstat(descriptor).st_mode & 0o050 == 0o050:
        mode = 0o640
    try:
        handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                         | _CLOEXEC, 0o600, dir_fd=descriptor)
        try:
            os.fchmod(handle, mode)        # the umask may have taken a bit away
            with open(handle, "wb", closefd=False) as stream:
                stream.write(magic + tag + b"\n")
                stream.write(payload)
        finally:
            os.close(handle)
        os.replace(temporary, name, src_dir_fd=descriptor, dst_dir_fd=descriptor)
    except OSError:
        try:
            os.unlink(temporary, dir_fd=descriptor)
        except OSError:
            pass
    finally:
        os.close(descriptor)


# ---------------------------------------------------------------------------------------------
# Keys, entries


def generator_sources():
    """The code generator's source files: every module of ``symgrad.codegen``, its
    subpackages included, in a fixed order."""
    return sorted(_SOURCES.rglob("*.py"))


def _source_digest(paths):
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.relative_to(_SOURCES).as_posix().encode() + b"\0" +
                      path.read_bytes())
    return digest.hexdigest()


@once
def generator_digest():
    """A hash of the code generator's source (:func:`generator_sources`): a new symgrad
    version never loads a kernel an older one lowered.

    Kept in the cache directory with the names, sizes and modification times of the files it
    hashed, and hashed again when any of them differs (as Python checks its own bytecode
    caches): reading and hashing the sources took a millisecond of every process's first
    compile.  The file is trusted as an entry is."""
    paths = generator_sources()
    signature = [[path.relative_to(_SOURCES).as_posix(), stat.st_size, stat.st_mtime_ns]
                 for path, stat in ((path, path.stat()) for path in paths)]
    directory = cache_dir()
    if directory is None or not _SUPPORTED:
        return _source_digest(paths)
    key = authentication_key()
    memo, _ = _read(directory, _MEMO, _MEMO_MAGIC, key)
    if memo is not None:
        try:
            stored = json.loads(bytes(memo))
            if stored["sources"] == signature and isinstance(stored["digest"], str):
                return stored["digest"]
        except (ValueError, KeyError, TypeError):
            pass
    digest = _source_digest(paths)
    _write(directory, _MEMO, _MEMO_MAGIC,
           json.dumps({"sources": signature, "digest": digest}).encode(), key)
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


def lookup(key):
    """The list of ``(object_code, optimized_llvm_ir)`` pairs stored under ``key``, or None
    when absent, not valid or not trusted; and the :class:`Refusal` of the entry or of the
    cache directory, or None.

    An entry is a header line (the format), a tag line (the HMAC-SHA256 of the rest under the
    key, or a dash), a line of JSON (the key, the SHA-256 of the body, the sizes of the pairs)
    and the body, the pairs one after another.  With a key the tag stands for the checksum;
    without, the checksum is verified."""
    directory = cache_dir()
    if directory is None or not _SUPPORTED:
        return None, None
    authentication = authentication_key()
    payload, refusal = _read(directory, f"{key}.entry", _MAGIC, authentication)
    if payload is None:
        return None, refusal
    data = payload.obj
    start = len(data) - len(payload)
    header_end = data.find(b"\n", start)
    if header_end < 0:
        return None, None
    try:
        header = json.loads(data[start:header_end])
        body = memoryview(data)[header_end + 1:]
        if header["key"] != key:
            return None, None
        if authentication is None and hashlib.sha256(body).hexdigest() != header["sha256"]:
            return None, None
        modules, offset = [], 0
        for object_size, text_size in header["sizes"]:
            object_code = bytes(body[offset:offset + object_size])
            text = str(body[offset + object_size:offset + object_size + text_size], "utf-8")
            modules.append((object_code, text))
            offset += object_size + text_size
        if offset != len(body) or not modules:
            return None, None
        return modules, None
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        return None, None


def load(key):
    """The list of ``(object_code, optimized_llvm_ir)`` pairs stored under ``key``, or None
    when absent, not valid or not trusted (:func:`lookup` says why)."""
    return lookup(key)[0]


def store(key, modules):
    """Write an entry, the ``(object_code, optimized_llvm_ir)`` pairs ``modules``, atomically
    (a concurrent reader sees the old entry or the new one), mode 0600, tagged under the key
    in use."""
    directory = cache_dir()
    if directory is None or not _SUPPORTED:
        return
    pieces, sizes = [], []
    for object_code, text in modules:
        encoded = text.encode()
        pieces += [bytes(object_code), encoded]
        sizes.append([len(object_code), len(encoded)])
    body = b"".join(pieces)
    header = {"key": key, "sha256": hashlib.sha256(body).hexdigest(), "sizes": sizes}
    _write(directory, f"{key}.entry", _MAGIC, json.dumps(header).encode() + b"\n" + body,
           authentication_key())
