"""JIT compilation for the host CPU with llvmlite: verify, optimise (new pass manager), emit
native code into an MCJIT engine, and keep the texts for inspection."""

import functools

import llvmlite.binding as llvm


@functools.lru_cache(maxsize=None)
def host_target_machine(opt_level=3):
    """A TargetMachine for this process's CPU and its features (AVX2, AVX-512, ...)."""
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    target = llvm.Target.from_triple(llvm.get_process_triple())
    return target.create_target_machine(cpu=llvm.get_host_cpu_name(),
                                        features=llvm.get_host_cpu_features().flatten(),
                                        opt=opt_level, jit=True)


class CompiledModule:
    """Native code for one LLVM module; owns the execution engine that keeps it alive.

    Attributes
    ----------
    llvm_ir : str
        The module as generated, before optimisation.
    optimized_llvm_ir : str
        The module after the optimisation pipeline.
    asm : str
        The host assembly.
    """

    def __init__(self, module, opt_level=3):
        machine = host_target_machine(opt_level)
        module.triple = machine.triple
        module.data_layout = str(machine.target_data)
        self.llvm_ir = str(module)
        parsed = llvm.parse_assembly(self.llvm_ir)
        parsed.verify()
        tuning = llvm.create_pipeline_tuning_options(speed_level=opt_level)
        passes = llvm.create_pass_builder(machine, tuning)
        passes.getModulePassManager().run(parsed, passes)
        self.optimized_llvm_ir = str(parsed)
        self.asm = machine.emit_assembly(parsed)
        self._engine = llvm.create_mcjit_compiler(parsed, machine)
        self._engine.finalize_object()

    def address(self, name):
        """The native address of the function ``name``."""
        address = self._engine.get_function_address(name)
        if not address:
            raise LookupError(f"no function {name!r} in the compiled module")
        return address
