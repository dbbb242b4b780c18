"""Each stage loads alone: imported in a fresh interpreter, it loads nothing of the stages
above it (README: "How it is built"), and no stage imports another that imports it back."""

import ast
import json
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent

# stage -> modules it must NOT load.
NOT_LOADED = {
    "symgrad": ["sympy", "numpy", "llvmlite", "symgrad.codegen", "symgrad.api"],
    "symgrad.ir": ["sympy", "llvmlite", "numpy", "symgrad.codegen", "symgrad.frontend",
                   "symgrad.display", "symgrad.reference", "symgrad.autodiff"],
    "symgrad.ir.text": ["sympy", "llvmlite", "numpy"],
    "symgrad.autodiff.reverse": ["sympy", "llvmlite", "numpy", "symgrad.codegen",
                                 "symgrad.display", "symgrad.frontend"],
    "symgrad.frontend.sympy_to_ir": ["llvmlite", "symgrad.codegen", "symgrad.autodiff",
                                     "symgrad.display"],
    "symgrad.frontend.trace": ["llvmlite", "symgrad.codegen", "symgrad.autodiff"],
    "symgrad.display.to_sympy": ["llvmlite", "symgrad.codegen"],
    "symgrad.display.derivation": ["llvmlite", "symgrad.codegen"],
    "symgrad.reference.evaluate": ["sympy", "llvmlite", "symgrad.codegen"],
    "symgrad.reference.gradcheck": ["llvmlite", "symgrad.codegen"],
    "symgrad.config": ["sympy", "numpy", "llvmlite", "symgrad.ir"],
    "symgrad.codegen": ["sympy", "llvmlite", "numpy", "symgrad.codegen.runtime"],
    "symgrad.codegen.lower.tensor": ["sympy", "llvmlite.binding", "numpy",
                                     "symgrad.codegen.compile", "symgrad.codegen.runtime",
                                     "symgrad.frontend", "symgrad.display"],
    "symgrad.codegen.lower.elementwise": ["sympy", "llvmlite.binding", "numpy",
                                          "symgrad.codegen.compile",
                                          "symgrad.codegen.runtime"],
    "symgrad.codegen.lower.entries": ["sympy", "llvmlite.binding", "numpy",
                                      "symgrad.codegen.runtime"],
    "symgrad.codegen.compile.jit": ["sympy", "numpy", "symgrad.ir", "symgrad.codegen.lower",
                                    "symgrad.codegen.runtime"],
    "symgrad.codegen.compile.cache": ["sympy", "numpy", "symgrad.codegen.lower",
                                      "symgrad.codegen.runtime"],
    "symgrad.codegen.runtime.tensor_kernel": ["sympy", "symgrad.frontend", "symgrad.display",
                                              "symgrad.api"],
    "symgrad.codegen.runtime.elementwise_kernel": ["sympy", "symgrad.frontend",
                                                   "symgrad.display"],
}

_PROBE = """
import json, sys
import {module}
print(json.dumps(sorted(name for name in sys.modules)))
"""


def _loaded(module):
    result = subprocess.run([sys.executable, "-c", _PROBE.format(module=module)],
                            capture_output=True, text=True, encoding="utf-8", check=True,
                            cwd=ROOT / "tests")
    return set(json.loads(result.stdout))


@pytest.mark.parametrize("module", sorted(NOT_LOADED))
def test_a_stage_loads_nothing_above_it(module):
    loaded = _loaded(module)
    assert module in loaded
    unwanted = [name for name in NOT_LOADED[module]
                if name in loaded or any(m.startswith(name + ".") for m in loaded)]
    assert not unwanted, f"import {module} loads {unwanted}"


def _sources(folder):
    return sorted((ROOT / folder).rglob("*.py"))


def _imports(path):
    """The modules ``path`` imports, at load time or inside functions, as dotted names."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _module_name(path):
    relative = path.relative_to(ROOT).with_suffix("")
    parts = list(relative.parts)
    if parts[0] == "codegen":
        parts = ["symgrad"] + parts
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def test_the_lowering_reads_no_environment_and_calls_no_native_code():
    # No llvmlite.binding, ctypes, threads or os in any module of the lowering (nor the
    # runtime's or the compiler's modules): it is told its target.
    for path in _sources("codegen/lower"):
        imported = _imports(path)
        bad = {name for name in imported
               if name.split(".")[0] in ("ctypes", "os", "threading", "numpy", "sympy")
               or name.startswith(("llvmlite.binding", "symgrad.codegen.runtime",
                                   "symgrad.codegen.compile"))}
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"
        text = path.read_text(encoding="utf-8")
        assert "os.environ" not in text and "getenv" not in text, path


def test_every_environment_variable_is_read_in_symgrad_config():
    for path in _sources("symgrad") + _sources("codegen"):
        if path.name == "config.py":
            continue
        text = path.read_text(encoding="utf-8")
        assert "os.environ" not in text and "getenv" not in text, path


def test_no_module_imports_one_that_imports_it_back():
    # The graph of imports between symgrad's modules (lazy ones included) has no cycle,
    # except a package's __init__ re-exporting its own modules.
    paths = _sources("symgrad") + _sources("codegen")
    names = {_module_name(path): path for path in paths}
    graph = {}
    for name, path in names.items():
        targets = set()
        for imported in _imports(path):
            while imported and imported not in names:
                imported = imported.rpartition(".")[0]
            if imported and imported != name and not (
                    path.name == "__init__.py" and imported.startswith(name + ".")):
                targets.add(imported)
        graph[name] = targets
    cycles = _cycles(graph)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def _cycles(graph):
    """The cycles a depth-first walk of ``graph`` (node -> set of nodes) meets."""
    state, cycles = {}, []

    def visit(start):
        stack = [(start, iter(sorted(graph[start])))]
        path = [start]
        state[start] = "open"
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                stack.pop()
                path.pop()
                state[node] = "done"
            elif state.get(child) == "open":
                cycles.append(path[path.index(child):] + [child])
            elif child not in state:
                state[child] = "open"
                path.append(child)
                stack.append((child, iter(sorted(graph[child]))))
    for name in sorted(graph):
        if name not in state:
            visit(name)
    return cycles


def test_the_cycle_finder_finds_cycles():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
