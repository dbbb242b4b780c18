"""The disk cache of compiled kernels: hit, miss, corrupt and stale entries."""

import numpy as np
import pytest

import symgrad as sg
from codegen import cache


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


def test_the_generator_digest_is_the_hash_of_the_sources(cache_dir):
    # Kept with the sizes and modification times of the sources: a memo whose signature
    # differs from the files is hashed again (never trusted), and rewritten.
    import json
    paths = sorted(cache._SOURCES.glob("*.py"))
    want = cache._source_digest(paths)
    memo = cache_dir / "generator.json"
    for stale in ([], [["kernel.py", 1, 2]]):
        cache.generator_digest.cache_clear()
        memo.write_text(json.dumps({"sources": stale, "digest": "0" * 64}))
        assert cache.generator_digest() == want
        stored = json.loads(memo.read_text())
        assert stored["digest"] == want
        assert [name for name, _, _ in stored["sources"]] == [path.name for path in paths]
    memo.write_text("not json")
    cache.generator_digest.cache_clear()
    assert cache.generator_digest() == want
    # With the memo's signature that of the files, the digest comes from the memo.
    stored = json.loads(memo.read_text())
    memo.write_text(json.dumps({"sources": stored["sources"], "digest": "f" * 64}))
    cache.generator_digest.cache_clear()
    try:
        assert cache.generator_digest() == "f" * 64
    finally:
        cache.generator_digest.cache_clear()
