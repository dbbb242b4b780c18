"""The disk cache of compiled kernels: hit, miss, corrupt and stale entries."""

import hashlib
import hmac
import json
import os
import pathlib
import warnings

import numpy as np
import pytest

import symgrad as sg
from symgrad import ir
from symgrad.codegen.compile import cache


@pytest.fixture
def cache_dir(tmp_path):
    previous = cache.set_cache_dir(tmp_path)
    yield tmp_path
    cache.set_cache_dir(previous)


def _kernel(power=3):
    x, y = sg.symbols("x y")
    return sg.compile(x**power * sg.tanh(y), wrt=[x, y])


def _check(kernel, power=3):
    xs, ys = np.array([1.5, -2.0]), np.array([0.3, 0.7])
    value, (dx, dy) = kernel(xs, ys)
    np.testing.assert_allclose(value, xs**power * np.tanh(ys), rtol=1e-14)
    np.testing.assert_allclose(dx, power * xs**(power - 1) * np.tanh(ys), rtol=1e-14)
    np.testing.assert_allclose(dy, xs**power * (1 - np.tanh(ys)**2), rtol=1e-14)


def test_miss_then_hit(cache_dir):
    first = _kernel()
    assert not first.variant("float64").compiled.from_cache
    assert len(list(cache_dir.glob("*.entry"))) == 1
    second = _kernel()
    compiled = second.variant("float64").compiled
    assert compiled.from_cache
    assert compiled.optimized_llvm_ir == first.variant("float64").compiled.optimized_llvm_ir
    assert "symgrad_kernel:" in second.asm
    _check(second)


def test_different_ir_is_a_different_entry(cache_dir):
    _kernel(3)
    other = _kernel(4)
    assert not other.variant("float64").compiled.from_cache
    assert len(list(cache_dir.glob("*.entry"))) == 2
    _check(other, 4)


def test_a_hit_skips_lowering_and_the_llvm_ir_is_still_there(cache_dir):
    X = sg.tensor("X", ("n", 3))
    W = sg.tensor("W", (2, 3))
    T = sg.tensor("T", ("n", 2))
    loss = sg.losses.mse(X @ W.T, T)
    first = sg.compile(loss, wrt=[W], inputs=[X, T])
    second = sg.compile(loss, wrt=[W], inputs=[X, T])
    assert second.compiled.from_cache
    assert not second.compiled.lowered                  # not lowered
    assert second.llvm_ir == first.llvm_ir              # lowered when asked for
    rng = np.random.default_rng(0)
    args = [rng.normal(size=(2, 3))], rng.normal(size=(4, 3)), rng.normal(size=(4, 2))
    value, grads = second(*args)
    want_value, want_grads = first(*args)
    assert value == want_value
    np.testing.assert_array_equal(grads[0], want_grads[0])


def test_the_key_sees_every_bit_of_a_constant(cache_dir):
    x = sg.symbols("x")
    a = sg.compile(x * 0.1, wrt=[x])
    b = sg.compile(x * float(np.nextafter(0.1, 1.0)), wrt=[x])
    assert not b.variant("float64").compiled.from_cache
    assert a(1.0)[0] == 0.1 and b(1.0)[0] == float(np.nextafter(0.1, 1.0))


@pytest.mark.parametrize("damage", ["flip", "truncate", "empty", "garbage_header"])
def test_corrupt_entries_are_rebuilt_not_loaded(cache_dir, damage):
    _kernel()
    (entry,) = cache_dir.glob("*.entry")
    data = bytearray(entry.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0x40
    elif damage == "truncate":
        data = data[: len(data) // 3]
    elif damage == "empty":
        data = bytearray()
    else:
        data = bytearray(b"symgrad-object-1\n{not json\n") + data
    entry.write_bytes(bytes(data))
    rebuilt = _kernel()
    assert not rebuilt.variant("float64").compiled.from_cache
    _check(rebuilt)
    assert _kernel().variant("float64").compiled.from_cache     # the entry was rewritten


def test_stale_entries_are_not_used(cache_dir, monkeypatch):
    _kernel()
    monkeypatch.setattr(cache.llvmlite, "__version__", "0.0.0-other")
    stale = _kernel()
    assert not stale.variant("float64").compiled.from_cache
    _check(stale)


def test_tensor_kernels_are_cached(cache_dir):
    X = sg.tensor("X", ("n", 3))
    T = sg.tensor("T", ("n", 1))

    def build():
        net = sg.nn.MLP([3, 4, 1], activation=sg.tanh, seed=0)
        step = sg.compile(sg.losses.mean_squared_error(net(X), T), net.parameters(), [X, T])
        return net, step
    net, first = build()
    _, second = build()
    assert not first.compiled.from_cache and second.compiled.from_cache
    x, t = np.ones((5, 3)), np.zeros((5, 1))
    a, b = first(net.values(), x, t), second(net.values(), x, t)
    assert a[0] == b[0] and all(np.array_equal(g, h) for g, h in zip(a[1], b[1]))


def test_no_cache_directory_means_no_cache(tmp_path):
    previous = cache.set_cache_dir(None)
    try:
        assert not _kernel().variant("float64").compiled.from_cache
        assert not _kernel().variant("float64").compiled.from_cache
    finally:
        cache.set_cache_dir(previous)


def test_unwritable_cache_directory_still_compiles(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    previous = cache.set_cache_dir(blocker / "cache")
    try:
        _check(_kernel())
    finally:
        cache.set_cache_dir(previous)


def _write_memo(path, stored, tag=b"-"):
    path.write_bytes(cache._MEMO_MAGIC + tag + b"\n" + json.dumps(stored).encode())


def _read_memo(path):
    magic, tag, payload = path.read_bytes().split(b"\n", 2)
    assert magic + b"\n" == cache._MEMO_MAGIC
    return tag, json.loads(payload)


def _generator_files():
    """Every Python file of the code generator's folder (codegen/ in the repository), its
    subfolders included, found by a walk of its own."""
    root = pathlib.Path(__file__).resolve().parent.parent / "codegen"
    assert cache._SOURCES == root
    found = []
    for folder, _, names in os.walk(root):
        found += [pathlib.Path(folder, name) for name in names if name.endswith(".py")]
    assert {path.parent.name for path in found} >= {"codegen", "lower", "compile", "runtime"}
    return sorted(found)


def test_a_change_to_one_lowering_file_misses_the_cache(cache_dir, tmp_path, monkeypatch):
    # A copy of the code generator's sources, one file of a subfolder changed: another
    # generator digest, hence another key for the same kernel, and a miss.
    import shutil
    copy = tmp_path / "codegen"
    shutil.copytree(cache._SOURCES, copy, ignore=shutil.ignore_patterns("__pycache__"))
    function = ir.Function([ir.input_node("x")], [ir.exp(ir.input_node("x"))])
    host = ("x86_64-unknown-linux-gnu", "generic", "")
    keys = []
    monkeypatch.setattr(cache, "_SOURCES", copy)
    try:
        for change in (None, "lower/tensor.py", "lower/tensor.py"):
            if change is not None:
                with open(copy / change, "a") as file:
                    file.write("\n# changed\n")
            cache.generator_digest.cache_clear()
            keys.append(cache.cache_key(cache.fingerprint(function), host, {}))
    finally:
        cache.generator_digest.cache_clear()
    assert len(set(keys)) == 3
    cache.store(keys[0], [(b"object", "text")])
    assert cache.lookup(keys[0])[0] == [(b"object", "text")]
    assert cache.lookup(keys[1])[0] is None and cache.lookup(keys[2])[0] is None


def test_the_generator_digest_is_the_hash_of_the_sources(cache_dir):
    # Kept with the sizes and modification times of the sources: a memo whose signature
    # differs from the files is hashed again (never trusted), and rewritten.
    paths = _generator_files()
    want = cache._source_digest(paths)
    memo = cache_dir / "generator.json"
    for stale in ([], [["runtime/tensor_kernel.py", 1, 2]]):
        cache.generator_digest.cache_clear()
        _write_memo(memo, {"sources": stale, "digest": "0" * 64})
        assert cache.generator_digest() == want
        _, stored = _read_memo(memo)
        assert stored["digest"] == want
        assert [name for name, _, _ in stored["sources"]] == \
            [path.relative_to(cache._SOURCES).as_posix() for path in paths]
    memo.write_text("not json")
    cache.generator_digest.cache_clear()
    assert cache.generator_digest() == want
    # With the memo's signature that of the files, the digest comes from the memo.
    _, stored = _read_memo(memo)
    _write_memo(memo, {"sources": stored["sources"], "digest": "f" * 64})
    cache.generator_digest.cache_clear()
    try:
        assert cache.generator_digest() == "f" * 64
    finally:
        cache.generator_digest.cache_clear()


# ---------------------------------------------------------------------------------------------
# Whom the cache trusts.  The tests run as root: another user is uid 12345, a group this user
# is not a member of gid 54321.

STRANGER, STRANGERS = 12345, 54321


def _key_of(kernel):
    return kernel.variant("float64").compiled._key


def _compiled(kernel):
    return kernel.variant("float64").compiled


def _plant(power=3, donor_power=4):
    """Put the native code of ``x**donor_power * tanh(y)`` under the key of ``x**power *
    tanh(y)``, as a valid entry (checksum, and tag under the key in use): loaded, it computes
    the wrong numbers.  Returns the entry's path."""
    donor = _key_of(_kernel(donor_power))
    victim = _key_of(_kernel(power))
    cache.store(victim, cache.load(donor))
    return cache.cache_dir() / f"{victim}.entry"


def _loads_the_planted_code(power=3, donor_power=4):
    """Whether the kernel of ``power`` came from the cache and computes the donor's numbers."""
    kernel = _kernel(power)
    xs, ys = np.array([1.5, -2.0]), np.array([0.3, 0.7])
    value, _ = kernel(xs, ys)
    return (_compiled(kernel).from_cache
            and np.allclose(value, xs**donor_power * np.tanh(ys), rtol=1e-14))


def _trust_warnings(record):
    return [str(w.message) for w in record if issubclass(w.category, cache.CacheTrustWarning)]


def _mode(path):
    return os.lstat(path).st_mode & 0o7777


def test_a_planted_entry_of_this_user_is_loaded(cache_dir):
    # The control of the tests below: the planted entries would be loaded if trusted.
    _plant()
    assert _loads_the_planted_code()


@pytest.mark.parametrize("attack", ["foreign owner", "world-writable", "group-writable",
                                    "foreign and world-writable", "symbolic link", "fifo"])
def test_an_untrusted_entry_is_compiled_again_and_replaced(cache_dir, attack):
    entry = _plant()
    if attack == "foreign owner":
        os.chown(entry, STRANGER, STRANGERS)
    elif attack == "world-writable":
        os.chmod(entry, 0o666)
    elif attack == "group-writable":
        os.chmod(entry, 0o620)
    elif attack == "foreign and world-writable":
        os.chown(entry, STRANGER, STRANGERS)
        os.chmod(entry, 0o666)
    elif attack == "symbolic link":
        # The link's target is a file of this user, mode 0600: still refused.
        target = cache_dir.parent / f"{cache_dir.name}-elsewhere.entry"
        os.replace(entry, target)
        entry.symlink_to(target)
    else:
        entry.unlink()
        os.mkfifo(entry)                 # opening it must not block
    with pytest.warns(cache.CacheTrustWarning) as record:
        kernel = _kernel()
    compiled = _compiled(kernel)
    assert not compiled.from_cache
    _check(kernel)                        # the right numbers: the planted code did not run
    (message,) = _trust_warnings(record)
    assert str(entry) in message
    refusal = compiled.cache_refusal
    assert refusal is not None and refusal.path == str(entry)
    assert refusal in cache.refusals()
    want = {"foreign owner": f"uid {STRANGER}", "world-writable": "0666",
            "group-writable": "0620", "foreign and world-writable": f"uid {STRANGER}",
            "symbolic link": "symbolic link", "fifo": "not a regular file"}[attack]
    assert want in refusal.found and want in message
    # Replaced by this user's entry, 0600, which the next compile loads.
    status = os.lstat(entry)
    assert status.st_uid == os.geteuid() and _mode(entry) == 0o600
    assert os.path.isfile(entry) and not os.path.islink(entry)
    again = _kernel()
    assert _compiled(again).from_cache and _compiled(again).cache_refusal is None
    _check(again)


def test_a_read_only_entry_of_this_user_is_loaded(cache_dir):
    # Readable by others is not a reason to refuse (as ssh's public keys).
    entry = _plant()
    os.chmod(entry, 0o444)
    assert _loads_the_planted_code()


@pytest.mark.parametrize("attack", ["foreign owner", "group-writable", "world-writable",
                                    "world-writable sticky"])
def test_an_untrusted_directory_is_not_used(tmp_path, attack):
    directory = tmp_path / "cache"
    previous = cache.set_cache_dir(directory)
    try:
        entry = _plant()                 # a valid entry that computes the wrong numbers
        names = sorted(path.name for path in directory.iterdir())
        if attack == "foreign owner":
            os.chown(directory, STRANGER, STRANGERS)
        else:
            os.chmod(directory, {"group-writable": 0o770, "world-writable": 0o777,
                                 "world-writable sticky": 0o1777}[attack])
        with pytest.warns(cache.CacheTrustWarning) as record:
            kernels = [_kernel(3), _kernel(3), _kernel(5), _kernel(4)]
        (message,) = _trust_warnings(record)     # one warning for the directory
        assert str(directory) in message
        want = {"foreign owner": f"uid {STRANGER}", "group-writable": "0770",
                "world-writable": "0777", "world-writable sticky": "1777"}[attack]
        assert want in message
        assert "chmod 700" in message
        for kernel, power in zip(kernels, [3, 3, 5, 4]):
            assert not _compiled(kernel).from_cache
            assert _compiled(kernel).cache_refusal.path == str(directory)
            _check(kernel, power)
        # Nothing written there either.
        assert sorted(path.name for path in directory.iterdir()) == names
        assert entry.exists()
    finally:
        cache.set_cache_dir(previous)


@pytest.mark.parametrize("umask", [0o000, 0o022, 0o277])
def test_new_directories_are_0700_and_files_0600_whatever_the_umask(tmp_path, umask):
    top = tmp_path / "made"
    directory = top / "by" / "symgrad"
    previous = cache.set_cache_dir(directory)
    old_umask = os.umask(umask)
    cache.generator_digest.cache_clear()         # writes the generator's memo there too
    try:
        kernel = _kernel()
        _check(kernel)
    finally:
        os.umask(old_umask)
        cache.set_cache_dir(previous)
        cache.generator_digest.cache_clear()
    for path in (top, top / "by", directory):
        assert _mode(path) == 0o700, path
    files = sorted(directory.iterdir())
    assert [path.name for path in files if path.suffix == ".entry"]
    assert "generator.json" in [path.name for path in files]
    assert not [path for path in files if path.suffix == ".tmp"]
    for path in files:
        assert _mode(path) == 0o600, path
    assert _mode(tmp_path) == 0o700              # an existing parent is left as it was


def test_an_existing_private_directory_keeps_its_mode(tmp_path):
    # 0755 (made by a umask of 022) can only be written by its owner: used as it is.
    directory = tmp_path / "cache"
    directory.mkdir(mode=0o755)
    os.chmod(directory, 0o755)
    previous = cache.set_cache_dir(directory)
    try:
        _kernel()
        assert _compiled(_kernel()).from_cache
        assert _mode(directory) == 0o755
    finally:
        cache.set_cache_dir(previous)


def test_an_untrusted_generator_memo_is_not_used(cache_dir):
    # The memo says the digest without hashing the sources: one of another user, or
    # writable by others, is hashed again (and replaced).
    paths = _generator_files()
    want = cache._source_digest(paths)
    memo = cache_dir / "generator.json"
    cache.generator_digest.cache_clear()
    try:
        cache.generator_digest()
        _, stored = _read_memo(memo)
        for change, trusted in [(lambda: os.chown(memo, STRANGER, STRANGERS), False),
                                (lambda: os.chmod(memo, 0o646), False),
                                (lambda: os.chmod(memo, 0o644), True)]:      # the control
            _write_memo(memo, {"sources": stored["sources"], "digest": "f" * 64})
            os.chmod(memo, 0o600)
            change()
            cache.generator_digest.cache_clear()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", cache.CacheTrustWarning)
                assert cache.generator_digest() == ("f" * 64 if trusted else want)
            if not trusted:                  # replaced by this user's
                assert os.stat(memo).st_uid == os.geteuid() and _mode(memo) == 0o600
                assert _read_memo(memo)[1]["digest"] == want
    finally:
        cache.generator_digest.cache_clear()


# With a key --------------------------------------------------------------------------------

KEY = b"a key of the team: 0123456789abcdef"


@pytest.fixture
def keyed(cache_dir):
    previous = cache.set_authentication_key(KEY)
    yield cache_dir
    cache.set_authentication_key(previous)


def _entry_of(kernel):
    return cache.cache_dir() / f"{_key_of(kernel)}.entry"


def _split(entry):
    magic, tag, rest = entry.read_bytes().split(b"\n", 2)
    assert magic + b"\n" == cache._MAGIC
    return tag, rest


def test_with_a_key_entries_are_tagged_and_loaded(keyed):
    first = _kernel()
    assert not _compiled(first).from_cache
    tag, rest = _split(_entry_of(first))
    assert tag == hmac.new(KEY, rest, hashlib.sha256).hexdigest().encode()
    second = _kernel()
    assert _compiled(second).from_cache
    _check(second)


def test_with_a_key_a_planted_tagged_entry_is_loaded(keyed):
    # The control of the tests below: the tag, not the owner, decides.
    entry = _plant()
    os.chown(entry, STRANGER, STRANGERS)
    os.chmod(entry, 0o664)
    assert _loads_the_planted_code()


def test_with_a_key_an_untagged_entry_is_compiled_again_and_replaced(keyed):
    previous = cache.set_authentication_key(None)
    entry = _plant()                     # valid checksum, no tag
    cache.set_authentication_key(previous)
    assert _split(entry)[0] == b"-"
    kernel = _kernel()
    assert not _compiled(kernel).from_cache
    assert "no tag" in _compiled(kernel).cache_refusal.found
    _check(kernel)
    assert _split(entry)[0] != b"-"      # rewritten, tagged
    assert _compiled(_kernel()).from_cache


@pytest.mark.parametrize("tampering", ["body", "tag", "header"])
def test_with_a_key_a_tampered_entry_is_refused(keyed, tampering):
    victim = _kernel()
    entry = _entry_of(victim)
    tag, rest = _split(entry)
    header, body = rest.split(b"\n", 1)
    if tampering == "body":
        # The donor's code with a checksum that matches it, under the victim's old tag.
        donor = _entry_of(_kernel(4))
        _, donor_rest = _split(donor)
        donor_header, body = donor_rest.split(b"\n", 1)
        fields = json.loads(donor_header)
        fields["key"] = json.loads(header)["key"]
        fields["sha256"] = hashlib.sha256(body).hexdigest()
        header = json.dumps(fields).encode()
    elif tampering == "tag":
        tag = bytes(reversed(tag))
    else:
        fields = json.loads(header)
        fields["sizes"][0] = [fields["sizes"][0][0] + 1, fields["sizes"][0][1] - 1]
        header = json.dumps(fields).encode()
    entry.write_bytes(cache._MAGIC + tag + b"\n" + header + b"\n" + body)
    with pytest.warns(cache.CacheTrustWarning) as record:
        kernel = _kernel()
    assert not _compiled(kernel).from_cache
    _check(kernel)
    (message,) = _trust_warnings(record)
    assert str(entry) in message and "does not verify" in message
    assert _compiled(_kernel()).from_cache           # replaced by a tagged entry


def test_a_wrong_key_refuses(keyed):
    _plant()                              # tagged under KEY
    cache.set_authentication_key(b"another key, not the team's one")
    with pytest.warns(cache.CacheTrustWarning, match="does not verify"):
        kernel = _kernel()
    assert not _compiled(kernel).from_cache
    _check(kernel)
    # The entry was replaced, tagged under the other key: KEY refuses it in turn (said by
    # the refusal: the directory had its one warning).
    cache.set_authentication_key(KEY)
    again = _kernel()
    assert not _compiled(again).from_cache
    assert "does not verify" in _compiled(again).cache_refusal.found


@pytest.mark.parametrize("owner, group, mode, trusted", [
    (STRANGER, 0, 0o2770, True),          # a team's folder, of a group of this user's
    (0, 0, 0o770, True),
    (STRANGER, STRANGERS, 0o755, True),   # another user's, only they write: the tag decides
    (STRANGER, STRANGERS, 0o770, False),  # writable by a group this user is not in
    (STRANGER, 0, 0o777, False),          # writable by every user, key or not
    (0, 0, 0o1777, False),
])
def test_with_a_key_a_group_shared_directory(tmp_path, owner, group, mode, trusted):
    directory = tmp_path / "team"
    previous = (cache.set_cache_dir(directory), cache.set_authentication_key(KEY))
    try:
        _kernel()
        for entry in directory.glob("*.entry"):
            os.chown(entry, STRANGER, group)      # written by another member of the team
            os.chmod(entry, 0o660)
        os.chown(directory, owner, group)
        os.chmod(directory, mode)
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            kernel = _kernel()
        _check(kernel)
        assert _compiled(kernel).from_cache == trusted
        assert bool(_trust_warnings(record)) == (not trusted)
        # Without the key, the same folder is refused (another user's files, or a group's).
        cache.set_authentication_key(None)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", cache.CacheTrustWarning)
            assert not _compiled(_kernel()).from_cache
    finally:
        cache.set_cache_dir(previous[0])
        cache.set_authentication_key(previous[1])


def test_the_key_from_the_environment_and_the_key_file(cache_dir, tmp_path, monkeypatch):
    previous = cache.set_authentication_key(cache.DEFAULT)
    config = tmp_path / "config"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config))
    monkeypatch.delenv("SYMGRAD_CACHE_KEY", raising=False)
    try:
        assert cache.key_file() == config / "symgrad" / "cache.key"
        assert cache.authentication_key() is None            # no file: no key
        path = cache.key_file()
        path.parent.mkdir(parents=True)
        path.write_bytes(b"  the key in the file, 0123456789\n")
        os.chmod(path, 0o600)
        assert cache.authentication_key() == b"the key in the file, 0123456789"
        tag, rest = _split(_entry_of(_kernel()))
        assert tag == hmac.new(b"the key in the file, 0123456789", rest,
                               hashlib.sha256).hexdigest().encode()
        # The environment comes first.
        monkeypatch.setenv("SYMGRAD_CACHE_KEY", "the key in the environment")
        assert cache.authentication_key() == b"the key in the environment"
        monkeypatch.delenv("SYMGRAD_CACHE_KEY")
        # A key file others can read, or another user's, is refused: no key.
        for change in [lambda: os.chmod(path, 0o640), lambda: os.chmod(path, 0o604),
                       lambda: os.chown(path, STRANGER, STRANGERS)]:
            os.chmod(path, 0o600)
            os.chown(path, 0, 0)
            change()
            with warnings.catch_warnings(record=True) as record:
                warnings.simplefilter("always")
                assert cache.authentication_key() is None
            assert all(str(path) in message for message in _trust_warnings(record))
        assert any(refusal.path == str(path) for refusal in cache.refusals())
        # A short key is refused too, from the environment or the file.
        os.chown(path, 0, 0)
        os.chmod(path, 0o600)
        path.write_bytes(b"short")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", cache.CacheTrustWarning)
            assert cache.authentication_key() is None
            monkeypatch.setenv("SYMGRAD_CACHE_KEY", "short too")
            assert cache.authentication_key() is None
    finally:
        cache.set_authentication_key(previous)


@pytest.mark.parametrize("key, error", [(b"short", ValueError), ("fifteen chars..", ValueError),
                                        (12345, TypeError)])
def test_set_authentication_key_refuses_bad_keys(key, error):
    with pytest.raises(error, match="key"):
        cache.set_authentication_key(key)


@pytest.mark.parametrize("mode, key, want", [
    (0o2770, KEY, 0o640),     # a group's folder, with a key: its group loads the entries
    (0o750, KEY, 0o640),
    (0o700, KEY, 0o600),
    (0o750, None, 0o600),     # without a key, files are this user's alone
    (0o2770, None, None),     # refused: nothing written
])
def test_the_mode_of_the_files_written_in_a_group_folder(tmp_path, mode, key, want):
    directory = tmp_path / "team"
    directory.mkdir()
    os.chmod(directory, mode)
    previous = (cache.set_cache_dir(directory), cache.set_authentication_key(key))
    old_umask = os.umask(0)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", cache.CacheTrustWarning)
            _check(_kernel())
    finally:
        os.umask(old_umask)
        cache.set_cache_dir(previous[0])
        cache.set_authentication_key(previous[1])
    entries = list(directory.glob("*.entry"))
    assert [_mode(entry) for entry in entries] == ([] if want is None else [want])


def test_a_tensor_kernel_compiles_without_an_untrusted_cache(tmp_path):
    # Its modules (kernel, steps, call entry) and the libraries it calls are looked up in the
    # same directory: refused, they are compiled and give numpy's numbers.
    directory = tmp_path / "cache"
    directory.mkdir()
    os.chown(directory, STRANGER, STRANGERS)
    previous = cache.set_cache_dir(directory)
    try:
        X, W, T = sg.tensor("X", ("n", 3)), sg.tensor("W", (2, 3)), sg.tensor("T", ("n", 2))
        with pytest.warns(cache.CacheTrustWarning, match=f"uid {STRANGER}"):
            step = sg.compile(sg.losses.mse(X @ W.T, T), wrt=[W], inputs=[X, T])
        assert not step.compiled.from_cache
        assert step.compiled.cache_refusal.path == str(directory)
        rng = np.random.default_rng(1)
        w, x, t = rng.normal(size=(2, 3)), rng.normal(size=(5, 3)), rng.normal(size=(5, 2))
        value, (grad,) = step([w], x, t)
        residual = x @ w.T - t
        np.testing.assert_allclose(value, np.mean(residual**2), rtol=1e-13)
        np.testing.assert_allclose(grad, 2 * residual.T @ x / residual.size, rtol=1e-13)
        assert list(directory.iterdir()) == []
    finally:
        cache.set_cache_dir(previous)
