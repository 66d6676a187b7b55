"""The project's layers (README "Map"), kept by reading every import of every module.

1. core: the model, presets, checkpoints, the graph contract and artifact descriptions;
2. export, runtime and training, side by side: each imports only core, never one another;
3. calibration: a client of the model and of the runtime's loop; the INT8 export reaches it through a
   parameter (``pahs_export.precision.CalibrationSource``), never by importing it;
4. top: the public API (``pahs``), the parity checks, the first-use export of the default weights, and every
   command-line entry point; these may import anything.

A module may import modules of a lower layer and of its own group. Project imports sit at the top of a file,
except in command-line modules (start-up time); optional heavy libraries (tensorrt, ray...) are not project
imports and may be imported where they are used.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("pahs", "pahs_export", "runtime", "calibration", "training")

CORE = ("__init__", "errors", "presets", "contract", "model", "checkpoint", "files", "cache", "artifact")
CORE += ("tensorrt_artifact", "weights", "info", "signals")
# group -> (layer, module-name prefixes). The longest matching prefix decides a module's group.
GROUPS: dict[str, tuple[int, tuple[str, ...]]] = {
    "core": (1, tuple(f"pahs_export.{m}" for m in CORE)),
    "export": (2, ("pahs_export.onnx_export", "pahs_export.precision", "pahs_export.tensorrt_build")),
    "training": (2, ("training", "training.samples")),
    "runtime": (2, ("runtime",)),
    "calibration": (3, ("calibration",)),
    "top": (
        4,
        (
            "pahs",
            "pahs.verify",
            "pahs.cli.export",
            "pahs.cli.common",
            "pahs.cli.train",
            "pahs.cli.run",
            "pahs.cli.bench",
            "pahs.bench_variants",
        ),
    ),
}
CLI_MODULES = ("pahs.cli",)  # the command-line package: imports inside functions keep start-up fast


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts)


def group_of(module: str) -> str:
    best, best_len = None, -1
    for group, (_, prefixes) in GROUPS.items():
        for prefix in prefixes:
            matches = module == prefix or module.startswith(prefix + ".") or module == prefix + ".__init__"
            if matches and len(prefix) > best_len:
                best, best_len = group, len(prefix)
    if best is None:
        raise AssertionError(f"{module} is in no layer: add it to GROUPS in tests/test_layers.py and the README map")
    return best


def project_modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


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
            if name.split(".")[0] in PACKAGES:
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


def violations() -> list[str]:
    modules = project_modules()
    found = []
    for module, path in modules.items():
        group = group_of(module)
        layer = GROUPS[group][0]
        for name, line, at_top in imports_of(module, path):
            target = resolve(name, modules)
            if target is None or target == module:
                continue
            target_group = group_of(target)
            where = f"{path.relative_to(ROOT)}:{line}"
            if target_group != group and GROUPS[target_group][0] >= layer:
                found.append(f"{where}: {group} (layer {layer}) imports {target} ({target_group})")
            if not at_top and not module.startswith(CLI_MODULES):
                found.append(f"{where}: project import inside a function: {name}")
    return found


def test_no_upward_or_sideways_import():
    problems = violations()
    assert not problems, "\n".join(problems)


def test_every_module_has_a_layer():
    for module in project_modules():
        group_of(module)


def test_the_check_can_fail(tmp_path, monkeypatch):
    """An export module importing the runtime, and a function-level import, are both reported."""
    bad = ROOT / "pahs_export" / "_layer_probe.py"
    monkeypatch.setitem(GROUPS, "export", (2, (*GROUPS["export"][1], "pahs_export._layer_probe")))
    bad.write_text("from runtime.driver import restore_stream\n\n\ndef f():\n    from .model import PAHS\n")
    try:
        problems = violations()
    finally:
        bad.unlink()
    assert any("_layer_probe.py:1: export (layer 2) imports runtime.driver" in p for p in problems), problems
    assert any("_layer_probe.py:5: project import inside a function" in p for p in problems), problems


@pytest.mark.parametrize("group", list(GROUPS))
def test_layer_map_in_readme_names_every_group(group):
    readme = (ROOT / "README.md").read_text()
    assert f"`{group}`" in readme, f"the README's layer map does not name the {group} group"
