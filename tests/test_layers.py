"""The project's layers (docs/ARCHITECTURE.md, "Layers"), kept by reading every import of every module.

Each top-level package is one layer, and a package imports only itself and packages of lower layers:

1. ``pahs_export``: the model, presets, checkpoints, the graph contract, artifacts and manifests, and the
   exporters (ONNX, FP16/INT8, TensorRT). Inside it, the exporters build on the rest, never the reverse;
2. ``runtime`` and ``training``, side by side (neither imports the other): the loop over exported graphs, and
   the synthetic data, dataset readers, training and evaluation;
3. ``calibration``: INT8 calibration clips (training's synthetic content) run through the runtime's loop; the
   INT8 export takes it as a parameter (``pahs_export.precision.CalibrationSource``), never by importing it;
4. ``pahs``: the public API, the first-use export cache, the parity checks, the benchmark's variants, and every
   command-line entry point (``pahs.cli``).

Every import counts, at the top of a file or inside a function. Project imports sit at the top of a file, except
in the command-line package (start-up time); optional heavy libraries (tensorrt, ray...) are not project
imports and may be imported where they are used.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = {"pahs_export": 1, "runtime": 2, "training": 2, "calibration": 3, "pahs": 4}  # package -> layer
EXPORTERS = ("pahs_export.onnx_export", "pahs_export.precision", "pahs_export.tensorrt_build")  # above its core
CLI_PACKAGE = "pahs.cli"  # imports inside functions keep `--help` fast


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


def package_of(module: str) -> str:
    return module.split(".")[0]


def project_modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in LAYERS for p in sorted((ROOT / pkg).rglob("*.py"))}


def imports_of(module: str, path: Path) -> list[tuple[str, int, bool]]:
    """(imported project module, line, at top level of the file) for every import statement."""
    tree = ast.parse(path.read_text(), str(path))
    package = module.rsplit(".", 1)[0] if not path.name == "__init__.py" else module.rsplit(".__init__", 1)[0]
    top_level = {id(n) for n in tree.body}
    for node in tree.body:  # `if TYPE_CHECKING:` blocks are annotations only, never run
        if isinstance(node, ast.If):
            top_level |= {id(n) for n in ast.walk(node)}
    found = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = node.module or ""
            names = [stem] + [f"{stem}.{a.name}" for a in node.names]
        for name in names:
            if name.split(".")[0] in LAYERS:
                found.append((name, node.lineno, id(node) in top_level))
    return found


def resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The project module an imported name refers to (``a.b.c`` may be module a.b's attribute c)."""
    while name:
        if name in modules:
            return name
        if f"{name}.__init__" in modules:
            return f"{name}.__init__"
        name = name.rpartition(".")[0]
    return None


def is_exporter(module: str) -> bool:
    return module.startswith(EXPORTERS)


def violations() -> list[str]:
    modules = project_modules()
    found = []
    for module, path in modules.items():
        package = package_of(module)
        for name, line, at_top in imports_of(module, path):
            target = resolve(name, modules)
            if target is None or target == module:
                continue
            where = f"{path.relative_to(ROOT)}:{line}"
            other = package_of(target)
            if other != package and LAYERS[other] >= LAYERS[package]:
                found.append(f"{where}: {package} (layer {LAYERS[package]}) imports {target} (layer {LAYERS[other]})")
            if package == "pahs_export" and is_exporter(target) and not is_exporter(module):
                found.append(f"{where}: pahs_export's core imports its exporter {target}")
            if not at_top and not module.startswith(CLI_PACKAGE):
                found.append(f"{where}: project import inside a function: {name}")
    return found


def package_graph() -> dict[str, set[str]]:
    """Top-level package -> the other packages it imports (module- and function-level imports alike)."""
    modules = project_modules()
    graph: dict[str, set[str]] = {p: set() for p in LAYERS}
    for module, path in modules.items():
        for name, _, _ in imports_of(module, path):
            target = resolve(name, modules)
            if target is not None and package_of(target) != package_of(module):
                graph[package_of(module)].add(package_of(target))
    return graph


def test_no_upward_or_sideways_import():
    problems = violations()
    assert not problems, "\n".join(problems)


def test_package_graph_has_no_cycle_and_runs_down():
    """Grouped by top-level package, every edge goes to a lower layer, so no two packages import each other."""
    graph = package_graph()
    for package, imported in graph.items():
        for other in imported:
            assert LAYERS[other] < LAYERS[package], f"{package} imports {other}"
            assert package not in graph[other], f"{package} and {other} import each other"


def test_every_package_has_a_layer():
    """A new top-level Python package must be given a layer here (and in docs/ARCHITECTURE.md)."""
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")}
    assert packages == set(LAYERS), packages ^ set(LAYERS)


def violations_with(probe: str) -> list[str]:
    """What the check reports with a module ``pahs_export/_layer_probe.py`` of source ``probe`` added."""
    bad = ROOT / "pahs_export" / "_layer_probe.py"
    bad.write_text(probe)
    try:
        return violations()
    finally:
        bad.unlink()


def test_the_check_can_fail():
    """An export module importing the runtime, and a function-level import, are both reported."""
    problems = violations_with("from runtime.driver import restore_stream\n\n\ndef f():\n    from .model import PAHS\n")
    assert any("_layer_probe.py:1: pahs_export (layer 1) imports runtime.driver" in p for p in problems), problems
    assert any("_layer_probe.py:5: project import inside a function" in p for p in problems), problems


def test_core_importing_an_exporter_is_reported():
    problems = violations_with("from .onnx_export import artifact_from_model\n")
    assert any("_layer_probe.py:1: pahs_export's core imports its exporter" in p for p in problems), problems


@pytest.mark.parametrize("package", list(LAYERS))
def test_layer_table_in_architecture_names_every_package(package):
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    assert f"`{package}`" in text, f"docs/ARCHITECTURE.md's layer table does not name {package}"
