"""The exported artifact: a folder of single-step ONNX graphs and the `manifest.json` that describes them.

Graph contract (../shared/DESIGN.md §2). Every graph is one time step with its state as explicit tensors:

| role | inputs | outputs |
| --- | --- | --- |
| forward, backward | frame [N,3,H,W], h_prev [N,c/3,H/4,W/4], feat_prev [N,c,H/4,W/4] | h, feat (state shapes) |
| fuse | frame, feat_fwd [N,c,H/4,W/4], feat_bwd | restored [N,3,H,W] |
| step (online model) | frame, h_prev, feat_prev | restored, h, feat |

N, H and W are dynamic; H and W are multiples of 16. The first step of a sequence gets zeros.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .checkpoint import file_sha256
from .errors import PahsError

MANIFEST = "manifest.json"
FORMAT = "pahs-onnx/1"


@dataclass(frozen=True)
class RoleSpec:
    """One graph of the contract: its I/O names and the model method it wraps."""

    method: str  # the model's step method the graph contains one-to-one
    inputs: tuple[str, ...]  # input names, in call order
    outputs: tuple[str, ...]  # output names, in return order


ROLES: dict[str, RoleSpec] = {
    "forward": RoleSpec("forward_step", ("frame", "h_prev", "feat_prev"), ("h", "feat")),
    "backward": RoleSpec("backward_step", ("frame", "h_prev", "feat_prev"), ("h", "feat")),
    "fuse": RoleSpec("fuse", ("frame", "feat_fwd", "feat_bwd"), ("restored",)),
    "step": RoleSpec("step", ("frame", "h_prev", "feat_prev"), ("restored", "h", "feat")),
}
BIDIRECTIONAL_ROLES = ("forward", "backward", "fuse")
UNIDIRECTIONAL_ROLES = ("step",)


def tensor_shape(name: str, channels: int, hidden: int) -> list[str | int]:
    """Symbolic shape of a contract tensor: ints for fixed axes, names for dynamic ones."""
    if name in ("frame", "restored"):
        return ["N", 3, "H", "W"]
    width = hidden if name.startswith("h") else channels  # h, h_prev vs feat, feat_prev, feat_fwd, feat_bwd
    return ["N", width, "H/4", "W/4"]


def concrete_shape(name: str, channels: int, hidden: int, n: int, height: int, width: int) -> tuple[int, ...]:
    """:func:`tensor_shape` with its dynamic axes filled in for a batch of ``n`` frames of ``height`` x ``width``."""
    env = {"N": n, "H": height, "W": width, "H/4": height // 4, "W/4": width // 4}
    return tuple(env[d] if isinstance(d, str) else d for d in tensor_shape(name, channels, hidden))


@dataclass(frozen=True)
class Artifact:
    """A loaded, checked manifest. ``path`` is the artifact folder."""

    path: Path
    manifest: dict[str, Any]

    @property
    def graphs(self) -> dict[str, Path]:
        """Role -> graph file path."""
        return {role: self.path / name for role, name in self.manifest["graphs"].items()}

    @property
    def bidirectional(self) -> bool:
        return self.manifest["direction"] == "bidirectional"

    @property
    def preset(self) -> str:
        return self.manifest["preset"]

    @property
    def precision(self) -> str:
        return self.manifest["precision"]

    def check_hashes(self) -> None:
        """Raise a :class:`PahsError` if a file differs from the sha256 the manifest records."""
        for name, digest in self.manifest["sha256"].items():
            if file_sha256(self.path / name) != digest:
                raise PahsError(
                    f"{self.path / name} does not match the sha256 in {MANIFEST} (expected {digest[:12]}…); "
                    "the artifact was modified: export it again"
                )


def read_artifact(path: str | Path) -> Artifact:
    """Open an exported ONNX artifact folder (or its manifest.json) and check its structure."""
    path = Path(path)
    if path.name == MANIFEST:
        path = path.parent
    manifest_path = path / MANIFEST
    if not path.exists():
        raise PahsError(f"expected an exported artifact folder, found nothing at {path}; run `pahs-export onnx` first")
    if not manifest_path.is_file():
        raise PahsError(f"expected {MANIFEST} inside {path}, found none; pass a folder written by `pahs-export onnx`")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise PahsError(
            f"expected JSON in {manifest_path}, could not read it ({e}); export the artifact again"
        ) from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise PahsError(f"expected a manifest of format {FORMAT!r}, found {found!r} in {manifest_path}; export again")
    expected_roles = BIDIRECTIONAL_ROLES if manifest.get("direction") == "bidirectional" else UNIDIRECTIONAL_ROLES
    graphs = manifest.get("graphs", {})
    if sorted(graphs) != sorted(expected_roles):
        raise PahsError(
            f"expected graphs {', '.join(expected_roles)} in {manifest_path}, found {', '.join(graphs) or 'none'}; "
            "export the artifact again"
        )
    for role, name in graphs.items():
        if not (path / name).is_file():
            raise PahsError(f"the {role} graph {path / name} named in {MANIFEST} is missing; export the artifact again")
    return Artifact(path, manifest)
