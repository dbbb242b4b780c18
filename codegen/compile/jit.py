"""JIT compilation for the host CPU with llvmlite: verify, optimise (new pass manager), emit
native code into an MCJIT engine, and keep the texts for inspection."""

import atexit
import ctypes
import os
import threading

import llvmlite.binding as llvm
from llvmlite.binding import ffi

from symgrad.codegen.compile import cache, vector_library
from symgrad.locks import once


@once
def _host_description():
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    features = llvm.get_host_cpu_features().flatten()
    if "+avx512f" in features.split(","):
        # LLVM's tuning for AVX-512 CPUs prefers 256-bit vectors (older parts lowered their
        # clock on 512-bit code); the math routines of the kernels gain about 1.5x from the
        # full width.
        features += ",-prefer-256-bit"
    return llvm.get_process_triple(), llvm.get_host_cpu_name(), features


def host_features():
    """The host CPU's features as LLVM names them (``+avx2,+avx512f,...``)."""
    return _host_description()[2]


def host_target_machine(opt_level=3):
    """A new TargetMachine for this process's CPU and its features (AVX2, AVX-512, ...).

    A new one each time: an MCJIT engine takes ownership of its target machine and frees it
    with the engine, so machines are never shared between engines.
    """
    triple, cpu, features = _host_description()
    target = llvm.Target.from_triple(triple)
    return target.create_target_machine(cpu=cpu, features=features, opt=opt_level, jit=True)


# Loading native code into an engine happens once per module, whichever thread asks first.
_load_lock = threading.RLock()


class _Background:
    """``function(*args)`` in a thread of its own; :meth:`result` waits for it and returns
    its value or raises its exception.  A fork, and the end of the process, wait for the
    threads under way (a child must not inherit LLVM halfway through a compile); where one
    did not run in a process (a child forked before it started), the caller runs
    ``function`` itself."""

    def __init__(self, function, *args):
        self._call = (function, args)
        self._outcome = None
        self._thread = threading.Thread(target=self._run, name="symgrad-compile", daemon=True)
        with _running_lock:
            _running.add(self._thread)
        self._thread.start()

    def _run(self):
        function, args = self._call
        try:
            self._outcome = (True, function(*args))
        except BaseException as error:       # re-raised in the thread that waits
            self._outcome = (False, error)
        finally:
            # What it ran is not kept: it refers to the module that refers to this (a cycle,
            # which would keep a dropped kernel's code until a garbage collection).
            self._call = function = args = None
            with _running_lock:
                _running.discard(self._thread)

    def finished(self):
        return self._outcome is not None

    def result(self):
        if self._thread.ident is not None:
            self._thread.join()
        if self._outcome is None:
            function, args = self._call
            self._outcome = (True, function(*args))
        succeeded, value = self._outcome
        if not succeeded:
            raise value
        return value


_running = set()
_running_lock = threading.Lock()


def _finish_background():
    with _running_lock:
        running = list(_running)
    for thread in running:
        if thread is not threading.current_thread():
            thread.join()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_finish_background)
# Nor may the process end in the middle of one (LLVM's globals go away at exit).
atexit.register(_finish_background)


def _unlocked(name):
    """llvmlite's C function ``name`` without the lock llvmlite takes around every call (one
    lock for the whole process), or None where this llvmlite keeps its functions otherwise.

    LLVM compiles modules of distinct contexts in parallel (each thread its own context,
    module, pass builder and target machine); llvmlite's lock would make the threads take
    turns.  Only parsing, checking, optimising, printing and code generation run unlocked, on
    objects that belong to the calling thread alone; ctypes releases the GIL around them."""
    library = getattr(ffi.lib, "_lib", None)
    function = getattr(library, name, None)
    if function is None or getattr(function, "argtypes", None) is None:
        return None
    return function


def _optimise(module, machine, opt_level, unroll):
    tuning = llvm.create_pipeline_tuning_options(speed_level=opt_level)
    tuning.loop_unrolling = unroll
    passes = llvm.create_pass_builder(machine, tuning)
    manager = passes.getModulePassManager()
    try:
        run = _unlocked("LLVMPY_RunNewModulePassManager")
        if run is None:
            manager.run(module, passes)
        else:
            run(manager, module, passes)
    finally:
        _dispose_pass_manager(manager)
        passes.close()
        tuning.close()


def _dispose_pass_manager(manager):
    """Free a module pass manager.  llvmlite's ``ModulePassManager.close()`` frees nothing:
    its ``_dispose`` is found on ``ffi.ObjectRef`` (a no-op) before the pass managers' own
    base class, so each pipeline, with what its passes kept of the module they ran on (86 KB
    for a small scalar kernel), stayed allocated for the life of the process.  (What remains
    of a compile, 1.5 KB, is the instrumentation callbacks llvmlite allocates with each pass
    builder and never frees.)"""
    dispose = getattr(ffi.lib, "LLVMPY_DisposeNewModulePassManger", None)
    if dispose is not None and type(manager)._dispose is ffi.ObjectRef._dispose:
        dispose(manager)
        manager.detach()
    else:
        manager.close()


def _emit_object(machine, module):
    emit = _unlocked("LLVMPY_TargetMachineEmitToMemory")
    if emit is None:
        return machine.emit_object(module)
    with ffi.OutputString() as error:
        buffer = emit(machine, module, 1, error)
        if not buffer:
            raise RuntimeError(str(error))
    try:
        return ctypes.string_at(ffi.lib.LLVMPY_GetBufferStart(buffer),
                                ffi.lib.LLVMPY_GetBufferSize(buffer))
    finally:
        ffi.lib.LLVMPY_DisposeMemoryBuffer(buffer)


def _parse(text, context):
    parse = _unlocked("LLVMPY_ParseAssembly")
    if parse is None:
        return llvm.parse_assembly(text, context)
    from llvmlite.binding.module import ModuleRef
    with ffi.OutputString() as error:
        module = ModuleRef(parse(context, ctypes.c_char_p(text.encode()), error), context)
        if error:
            module.close()
            raise RuntimeError(f"LLVM IR parsing error\n{error}")
    return module


def _verify(module):
    verify = _unlocked("LLVMPY_VerifyModule")
    if verify is None:
        return module.verify()
    with ffi.OutputString() as message:
        if verify(module, message):
            raise RuntimeError(str(message))


def _text(module):
    print_module = _unlocked("LLVMPY_PrintModuleToString")
    if print_module is None:
        return str(module)
    with ffi.OutputString() as text:
        print_module(module, text)
        return str(text)


def compile_object(llvm_ir, opt_level=3, codegen_opt_level=3, unroll=True):
    """``(object_code, optimized_llvm_ir)`` of a module's text, in a context of its own:
    threads may compile modules at the same time (the parsing, checking, optimising, printing
    and code generation of a module in a context of its own run without llvmlite's lock)."""
    machine = host_target_machine(codegen_opt_level)
    context = llvm.create_context()
    module = _parse(llvm_ir, context)
    _verify(module)
    _optimise(module, machine, opt_level, unroll)
    optimized = _text(module)
    vectorised = vector_library.rewrite(optimized, host_features())
    if vectorised is not None:
        # The vector calls of sin, cos, ... renamed to libmvec's (vector_library).
        module.close()
        module = _parse(vectorised, context)
        optimized = vectorised
    object_code = _emit_object(machine, module)
    module.close()
    return object_code, optimized


class _Part:
    """One LLVM module of a :class:`CompiledModule`: how to build it, its text, and its
    object code (with the optimised text) once compiled."""

    def __init__(self, build, identity, machine_level):
        self.build = build
        self.identity = identity
        self.machine_level = machine_level
        self._llvm_ir = None
        self.compiled = None          # (object code, optimized IR)
        self.pending = None

    @property
    def llvm_ir(self):
        if self._llvm_ir is None:
            machine = host_target_machine(self.machine_level)
            module = self.build()
            module.triple = machine.triple
            module.data_layout = str(machine.target_data)
            self._llvm_ir = str(module)
        return self._llvm_ir


class CompiledModule:
    """Native code for one LLVM module (and the modules compiled alongside it); owns the
    execution engine that keeps it alive.

    Parameters
    ----------
    build : callable
        ``build()`` returns the llvmlite ``ir.Module``; called only when the module is not in
        the disk cache, or when its text is asked for.
    identity : str
        A text that determines the module (:func:`symgrad.codegen.compile.cache.fingerprint`
        of the IR it is lowered from): the cache key, so that a hit skips lowering.
    opt_level : int
        Level of the LLVM IR optimisation pipeline (0-3).
    codegen_opt_level : int, optional
        Level of native code generation (default ``opt_level``); 0 selects the fast register
        allocator, which keeps very large kernels compiling in linear time.
    unroll : bool
        Whether LLVM unrolls loops (vectorised loops are interleaved either way); unrolling
        the many loop nests of a tensor kernel costs more compile time than it gains.
    parts : sequence of (build, identity) or (build, identity, opt_level)
        Further modules, generated and compiled in threads of their own while this one
        compiles, and loaded into the same engine: each may call the functions the others
        define (external linkage).  The disk cache keeps them all in one entry.
    background : bool
        Compile in a thread of its own (not when the module is in the cache): the constructor
        returns at once, :meth:`wait` (and :meth:`address`) waits for the native code.  The
        other cores compile meanwhile what the process needs next.
    before_compile : callable, optional
        Called once the module is generated, before LLVM compiles it: to start compiling,
        meanwhile, a library it calls.
    libraries : callable, optional
        Returns the object code of modules compiled elsewhere (:meth:`objects`) that the
        module calls: loaded into its engine with it.

    Attributes
    ----------
    llvm_ir : str
        The module as generated, before optimisation (the parts after it).
    optimized_llvm_ir : str
        The module after the optimisation pipeline (the parts after it).
    asm : str
        The host assembly.
    from_cache : bool
        Whether the native code came from the disk cache (:mod:`symgrad.codegen.compile.cache`).
    cache_refusal : symgrad.codegen.compile.cache.Refusal or None
        Why the disk cache's entry of the module, or the cache directory, was not trusted
        (its path, owner and mode, or a tag that does not verify, and how to fix it), where
        that is why the module was compiled.
    """

    def __init__(self, build, identity, opt_level=3, codegen_opt_level=None, unroll=True,
                 parts=(), background=False, before_compile=None, libraries=None):
        if codegen_opt_level is None:
            codegen_opt_level = opt_level
        self._codegen_opt_level = codegen_opt_level
        self._settings = (opt_level, codegen_opt_level, unroll)
        self._parts = [_Part(part[0], part[1], codegen_opt_level) for part in
                       [(build, identity), *parts]]
        # A part may have its own level of the IR pipeline (hand-written code needs none).
        self._levels = [opt_level] + [part[2] if len(part) > 2 else opt_level for part in parts]
        self._asm = None
        self._engine = None
        self._before_compile = before_compile
        self._libraries = libraries
        self.from_cache = False
        self.cache_refusal = None
        self._stored = False
        self._store_lock = threading.Lock()
        self._key = None
        _host_description()
        if cache.cache_dir() is not None:
            # One entry for all the parts: they are loaded together.
            identity = "\n".join([identity] + [
                f"part {number}: {part.identity} (level {self._levels[number]})"
                for number, part in enumerate(self._parts[1:], 1)])
            self._key = cache.cache_key(identity, _host_description(), list(self._settings))
            entry, self.cache_refusal = cache.lookup(self._key)
            if entry is not None and len(entry) == len(self._parts):
                for part, compiled in zip(self._parts, entry):
                    part.compiled = compiled
                self.from_cache = True
        if self.from_cache:
            if not background:
                self.wait()
        elif background:
            self._parts[0].pending = _Background(self._compile)
        else:
            self._compile()
            self.wait()

    def _compile(self):
        """Generate the main module, start the others, compile it; the others are waited for
        by :meth:`wait`."""
        main, others = self._parts[0], self._parts[1:]
        _ = main.llvm_ir                     # generated first, while the GIL is free
        if self._before_compile is not None:
            self._before_compile()
        for part in others:
            part.pending = _Background(self._compile_part, part)
        main.compiled = self._compile_part(main)
        if not others and self._key is not None:
            # Stored at once (not when first used: code compiled in the background for later,
            # such as the workers', may not be used in this process at all).
            self._store()
        return main.compiled

    def _compile_part(self, part):
        _, codegen_level, unroll = self._settings
        return compile_object(part.llvm_ir, self._levels[self._parts.index(part)], codegen_level,
                              unroll)

    def _store(self):
        with self._store_lock:
            if not self._stored:
                cache.store(self._key, [part.compiled for part in self._parts])
                self._stored = True

    def done(self):
        """Whether the native code is there, to be loaded without waiting for a compile."""
        return all(part.pending is None or part.pending.finished() for part in self._parts)

    def objects(self):
        """The object code of the parts, once compiled (waiting for a background compile);
        not loaded here.  Another module's engine may link it in (see ``libraries``)."""
        with _load_lock:
            for part in self._parts:
                if part.pending is not None:
                    part.compiled = part.pending.result()
                    part.pending = None
            # A part started by a background compile that a fork interrupted: compiled here.
            for part in self._parts:
                if part.compiled is None:
                    part.compiled = self._compile_part(part)
            if self._key is not None and not self.from_cache:
                self._store()
            return [part.compiled[0] for part in self._parts]

    def wait(self):
        """Wait for native code compiled in the background, and load it (once)."""
        if self._engine is not None:
            return
        with _load_lock:
            if self._engine is not None:
                return
            self.objects()
            if not self._load(required=not self.from_cache):
                # Cached code that this LLVM cannot load: rebuilt.
                for part in self._parts:
                    part.compiled = None
                self.from_cache = self._stored = False
                self.objects()
                self._load(required=True)

    @property
    def llvm_ir(self):
        return "\n".join(part.llvm_ir for part in self._parts)

    @property
    def lowered(self):
        """Whether the modules were generated in this process (not when the disk cache had
        them, until their text is asked for)."""
        return any(part._llvm_ir is not None for part in self._parts)

    @property
    def optimized_llvm_ir(self):
        self.wait()
        return "\n".join(part.compiled[1] for part in self._parts)

    def _load(self, required):
        """Load the parts' object code, and the libraries', into one engine (no optimisation,
        no code generation); False where LLVM cannot and ``required`` is False."""
        vector_library.available()      # (code compiled elsewhere may call libmvec)
        machine = host_target_machine(self._codegen_opt_level)
        empty = llvm.parse_assembly("")
        empty.triple = machine.triple
        engine = llvm.create_mcjit_compiler(empty, machine)
        linked = self._libraries() if self._libraries is not None else []
        try:
            for object_code in [part.compiled[0] for part in self._parts] + linked:
                engine.add_object_file(llvm.ObjectFileRef.from_data(object_code))
            engine.finalize_object()
        except RuntimeError:
            if required:
                raise
            return False
        self._engine = engine
        return True

    @property
    def asm(self):
        # Emitted on demand: assembly text costs as much as the native code itself.
        if self._asm is None:
            self.wait()
            machine = host_target_machine(self._codegen_opt_level)
            texts = []
            for part in self._parts:
                # In a context of its own (what LLVM's global context takes in, it keeps).
                context = llvm.create_context()
                module = _parse(part.compiled[1], context)
                texts.append(machine.emit_assembly(module))
                module.close()
            self._asm = "\n".join(texts)
        return self._asm

    def address(self, name):
        """The native address of the function ``name``."""
        self.wait()
        address = self._engine.get_function_address(name)
        if not address:
            raise LookupError(f"no function {name!r} in the compiled module")
        return address
