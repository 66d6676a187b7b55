"""Every package an optional extra installs is used: imported by a module of the project, or a command the docs
run. An extra that installs what nothing uses costs a download and, for CUDA packages, a build."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("pahs", "pahs_export", "runtime", "calibration", "training")
RUNTIME_EXTRAS = ("gpu", "openvino", "trt", "cluster")  # dev holds tools (pytest, ruff...), not imports
# A distribution whose import name is not its own name with _ for -.
IMPORT_NAMES = {"onnxruntime-gpu": "onnxruntime", "cuda-python": "cuda"}
COMMANDS = ("polygraphy",)  # used as a program (`polygraphy run ...` in the README and docs/TENSORRT.md)


def _imported() -> set[str]:
    names: set[str] = set()
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    names |= {alias.name.split(".")[0] for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    names.add(node.module.split(".")[0])
    return names


def test_every_package_of_an_extra_is_used():
    tomllib = pytest.importorskip("tomllib")
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    imported = _imported()
    docs = (ROOT / "README.md").read_text() + (ROOT / "docs" / "TENSORRT.md").read_text()
    unused = []
    for extra in RUNTIME_EXTRAS:
        for requirement in extras[extra]:
            name = re.match(r"[A-Za-z0-9_.-]+", requirement).group(0).lower()
            if name in COMMANDS:
                if not re.search(rf"^{name} \w", docs, re.MULTILINE):
                    unused.append(f"{extra}: {name} (no command in the docs)")
            elif IMPORT_NAMES.get(name, name.replace("-", "_")) not in imported:
                unused.append(f"{extra}: {name}")
    assert not unused, f"installed by an extra, used by nothing: {unused}"
