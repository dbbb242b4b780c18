"""JIT compilation for the host CPU with llvmlite: verify, optimise (new pass manager), emit
native code into an MCJIT engine, and keep the texts for inspection."""

import functools

import llvmlite.binding as llvm

from codegen import cache


@functools.lru_cache(maxsize=None)
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


class CompiledModule:
    """Native code for one LLVM module; owns the execution engine that keeps it alive.

    Parameters
    ----------
    build : callable
        ``build()`` returns the llvmlite ``ir.Module``; called only when the module is not in
        the disk cache, or when its text is asked for.
    identity : str
        A text that determines the module (:func:`codegen.cache.fingerprint` of the IR it is
        lowered from): the cache key, so that a hit skips lowering.
    opt_level : int
        Level of the LLVM IR optimisation pipeline (0-3).
    codegen_opt_level : int, optional
        Level of native code generation (default ``opt_level``); 0 selects the fast register
        allocator, which keeps very large kernels compiling in linear time.
    unroll : bool
        Whether LLVM unrolls loops (vectorised loops are interleaved either way); unrolling
        the many loop nests of a tensor kernel costs more compile time than it gains.

    Attributes
    ----------
    llvm_ir : str
        The module as generated, before optimisation.
    optimized_llvm_ir : str
        The module after the optimisation pipeline.
    asm : str
        The host assembly.
    from_cache : bool
        Whether the native code came from the disk cache (:mod:`codegen.cache`).
    """

    def __init__(self, build, identity, opt_level=3, codegen_opt_level=None, unroll=True):
        if codegen_opt_level is None:
            codegen_opt_level = opt_level
        self._build = build
        self._llvm_ir = None
        self._codegen_opt_level = codegen_opt_level
        self._asm = None
        self.from_cache = False
        caching = cache.cache_dir() is not None
        if caching:
            key = cache.cache_key(identity, _host_description(),
                                  [opt_level, codegen_opt_level, unroll])
            if self._load_cached(key):
                return
        machine = host_target_machine(codegen_opt_level)
        parsed = llvm.parse_assembly(self.llvm_ir)
        parsed.verify()
        tuning = llvm.create_pipeline_tuning_options(speed_level=opt_level)
        tuning.loop_unrolling = unroll
        passes = llvm.create_pass_builder(machine, tuning)
        passes.getModulePassManager().run(parsed, passes)
        self.optimized_llvm_ir = str(parsed)
        if not caching:
            self._engine = llvm.create_mcjit_compiler(parsed, machine)
            self._engine.finalize_object()
            return
        # Native code generated once, for the cache and for this process alike.
        object_code = machine.emit_object(parsed)
        cache.store(key, object_code, self.optimized_llvm_ir)
        self._engine = self._load_object(object_code, host_target_machine(codegen_opt_level))

    @property
    def llvm_ir(self):
        if self._llvm_ir is None:
            machine = host_target_machine(self._codegen_opt_level)
            module = self._build()
            module.triple = machine.triple
            module.data_layout = str(machine.target_data)
            self._llvm_ir = str(module)
        return self._llvm_ir

    def _load_cached(self, key):
        entry = cache.load(key)
        if entry is None:
            return False
        try:
            self._engine = self._load_object(entry[0],
                                             host_target_machine(self._codegen_opt_level))
        except RuntimeError:
            return False                       # rebuilt by the caller
        self.optimized_llvm_ir = entry[1]
        self.from_cache = True
        return True

    @staticmethod
    def _load_object(object_code, machine):
        """An engine holding cached object code (no optimisation, no code generation)."""
        empty = llvm.parse_assembly("")
        empty.triple = machine.triple
        engine = llvm.create_mcjit_compiler(empty, machine)
        engine.add_object_file(llvm.ObjectFileRef.from_data(object_code))
        engine.finalize_object()
        return engine

    @property
    def asm(self):
        # Emitted on demand: assembly text costs as much as the native code itself.
        if self._asm is None:
            machine = host_target_machine(self._codegen_opt_level)
            self._asm = machine.emit_assembly(llvm.parse_assembly(self.optimized_llvm_ir))
        return self._asm

    def address(self, name):
        """The native address of the function ``name``."""
        address = self._engine.get_function_address(name)
        if not address:
            raise LookupError(f"no function {name!r} in the compiled module")
        return address
