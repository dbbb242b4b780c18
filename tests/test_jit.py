"""The JIT: modules compiled at the same time in threads, modules compiled in parts that call
each other, background compiles, and the disk cache of the parts."""

import ctypes
import threading

import pytest
from llvmlite import ir as llvm_ir

from symgrad.codegen.compile import cache, jit


def _module(name, body):
    """A module with ``double NAME(double)`` computing ``body(builder, x)``; other functions
    it calls are declared with the same type."""
    module = llvm_ir.Module(name=name)
    double = llvm_ir.DoubleType()
    kind = llvm_ir.FunctionType(double, [double])
    function = llvm_ir.Function(module, kind, name)
    builder = llvm_ir.IRBuilder(function.append_basic_block("entry"))

    def call(callee, value):
        target = module.globals.get(callee) or llvm_ir.Function(module, kind, callee)
        return builder.call(target, [value])
    builder.ret(body(builder, function.args[0], call))
    return module


def _loop_module(count):
    """A module of ``count`` functions with vectorisable loops: something to compile."""
    module = llvm_ir.Module(name="loops")
    double, index = llvm_ir.DoubleType(), llvm_ir.IntType(64)
    pointer = llvm_ir.PointerType()
    for number in range(count):
        function = llvm_ir.Function(module, llvm_ir.FunctionType(
            llvm_ir.VoidType(), [pointer, pointer, index]), f"loop{number}")
        out, source, n = function.args
        entry = function.append_basic_block("entry")
        loop = function.append_basic_block("loop")
        done = function.append_basic_block("done")
        builder = llvm_ir.IRBuilder(entry)
        builder.cbranch(builder.icmp_signed(">", n, index(0)), loop, done)
        builder.position_at_end(loop)
        i = builder.phi(index)
        i.add_incoming(index(0), entry)
        value = builder.load(builder.gep(source, [i], source_etype=double), typ=double)
        value = builder.fadd(builder.fmul(value, double(number + 1.5)), double(0.25))
        builder.store(value, builder.gep(out, [i], source_etype=double))
        following = builder.add(i, index(1))
        i.add_incoming(following, loop)
        builder.cbranch(builder.icmp_signed("<", following, n), loop, done)
        builder.position_at_end(done)
        builder.ret_void()
    return module


def _text(module):
    machine = jit.host_target_machine()
    module.triple = machine.triple
    module.data_layout = str(machine.target_data)
    return str(module)


def test_modules_compiled_at_the_same_time_give_the_code_compiled_alone():
    texts = [_text(_loop_module(count)) for count in (6, 9)]
    alone = [jit.compile_object(text) for text in texts]
    together = [None, None]
    threads = [threading.Thread(target=lambda i=i: together.__setitem__(
        i, jit.compile_object(texts[i]))) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert together == alone
    assert all(len(code) > 0 and "loop0" in optimized for code, optimized in alone)


def test_llvmlite_without_the_functions_called_unlocked_compiles_the_same(monkeypatch):
    text = _text(_loop_module(3))
    expected = jit.compile_object(text)
    monkeypatch.setattr(jit, "_unlocked", lambda name: None)
    assert jit.compile_object(text) == expected


def _parts_module(identity="main", **options):
    # main(x) = helper(x) + 1 in one module, helper(x) = 2 x in the other.
    return jit.CompiledModule(
        lambda: _module("main", lambda b, x, call: b.fadd(call("helper", x),
                                                           llvm_ir.DoubleType()(1.0))),
        identity,
        parts=[(lambda: _module("helper", lambda b, x, call: b.fmul(
            x, llvm_ir.DoubleType()(2.0))), "helper")], **options)


def _run(compiled, name, value):
    return ctypes.CFUNCTYPE(ctypes.c_double, ctypes.c_double)(compiled.address(name))(value)


@pytest.mark.parametrize("background", [False, True])
def test_parts_call_each_other_and_are_kept_in_the_cache_together(tmp_path, background):
    previous = cache.set_cache_dir(tmp_path)
    try:
        first = _parts_module(background=background)
        assert _run(first, "main", 3.0) == 7.0
        assert _run(first, "helper", 3.0) == 6.0
        assert not first.from_cache and first.lowered
        assert 'define double @"main"' in first.llvm_ir
        assert 'define double @"helper"' in first.llvm_ir
        assert "define double @helper" in first.optimized_llvm_ir
        assert "main:" in first.asm and "helper:" in first.asm
        assert len(list(tmp_path.glob("*.entry"))) == 1      # the parts together
        second = _parts_module(background=background)
        assert second.from_cache and not second.lowered
        assert _run(second, "main", 0.5) == 2.0
        # The entry's key sees every part: another main module does not load the first one's
        # parts, nor another part the first main module.
        other = _parts_module("another main", background=background)
        assert not other.from_cache
        other.wait()
        assert len(list(tmp_path.glob("*.entry"))) == 2
    finally:
        cache.set_cache_dir(previous)


def test_an_error_in_a_background_compile_is_raised_where_its_code_is_asked_for():
    def broken():
        module = _module("broken", lambda b, x, call: x)
        # A block without a terminator: LLVM refuses the module.
        function = module.globals["broken"]
        function.append_basic_block("dangling")
        return module
    previous = cache.set_cache_dir(None)
    try:
        compiled = jit.CompiledModule(broken, "broken", background=True)
        with pytest.raises(RuntimeError):
            compiled.address("broken")
    finally:
        cache.set_cache_dir(previous)


def test_a_library_compiled_in_the_background_is_linked_into_the_module_that_calls_it(
        tmp_path):
    events = []
    previous = cache.set_cache_dir(tmp_path)
    try:
        def library():
            events.append("compile library")
            return jit.CompiledModule(
                lambda: _module("helper", lambda b, x, call: b.fmul(
                    x, llvm_ir.DoubleType()(2.0))), "helper", background=True)
        holder = {}

        def start():
            events.append("start")
            holder["library"] = library()

        def calling():
            return jit.CompiledModule(
                lambda: _module("main", lambda b, x, call: b.fadd(
                    call("helper", x), llvm_ir.DoubleType()(1.0))), "main",
                before_compile=start, libraries=lambda: holder["library"].objects())
        compiled = calling()
        assert events == ["start", "compile library"]
        assert _run(compiled, "main", 1.0) == 3.0
        assert holder["library"]._engine is None        # linked, never loaded on its own
        events.clear()
        compiled = calling()                             # the caller from the cache:
        assert events == []                              # nothing compiled, nothing started
        holder["library"] = library()                    # (the library from the cache too)
        assert holder["library"].from_cache
        assert _run(compiled, "main", 2.0) == 5.0
    finally:
        cache.set_cache_dir(previous)


def test_an_error_while_generating_a_part_is_raised_by_the_constructor():
    def failing():
        raise ValueError("no such part")
    previous = cache.set_cache_dir(None)
    try:
        with pytest.raises(ValueError, match="no such part"):
            jit.CompiledModule(lambda: _module("main", lambda b, x, call: x), "main",
                               parts=[(failing, "failing")])
    finally:
        cache.set_cache_dir(previous)
