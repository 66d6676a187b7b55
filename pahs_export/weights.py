"""The project's default weights: trained checkpoints shipped inside the package, per preset."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .artifact import Artifact
from .atomic import file_sha256
from .checkpoint import build_model, load_model, read_metadata
from .errors import PahsError
from .model import PAHS
from .presets import DEFAULT_PRESET, get_preset

WEIGHTS_DIR = Path(__file__).parent / "weights"


def default_checkpoint(preset: str) -> Path | None:
    """The shipped checkpoint of ``preset`` (bidirectional), or None if the project has none for it."""
    path = WEIGHTS_DIR / f"{get_preset(preset).name}.safetensors"
    return path if path.is_file() else None


def resolve_model(
    checkpoint: str | Path | None = None,
    preset: str | None = None,
    *,
    random_init: bool = False,
    seed: int = 0,
    bidirectional: bool | None = None,
) -> tuple[PAHS, dict[str, Any]]:
    """Pick the model a command works on, and describe where its weights came from (for manifests).

    Order: an explicit ``checkpoint``; else the preset's default weights; else random weights, but only
    when ``random_init`` is asked for explicitly (random weights are never used silently).
    """
    if checkpoint is not None:
        if random_init:
            raise PahsError("expected either --checkpoint or --random-init, found both; drop one of them")
        model = load_model(checkpoint, preset=preset, bidirectional=bidirectional)
        return model, _file_source(checkpoint)
    name = get_preset(preset or DEFAULT_PRESET).name
    if random_init:
        torch.manual_seed(seed)
        model = build_model(name, bidirectional=True if bidirectional is None else bidirectional)
        return model, {"kind": "random-init", "seed": seed}
    default = _shipped_checkpoint(name, bidirectional)
    model = load_model(default, preset=name)
    return model, _default_source(default)


def weights_source(checkpoint: str | Path | None = None) -> tuple[str, dict[str, Any]]:
    """The preset and the source description :func:`resolve_model` gives for ``checkpoint`` (None: the default
    weights of the default preset), from the checkpoint's metadata and bytes, without building the model.

    What names a cached export (``pahs.export_cache``): a run that finds it in the cache needs no model. A
    checkpoint that is no PAHS checkpoint, or missing default weights, raise resolve_model's errors."""
    if checkpoint is not None:
        return read_metadata(checkpoint)["preset"], _file_source(checkpoint)
    name = get_preset(DEFAULT_PRESET).name
    return name, _default_source(_shipped_checkpoint(name))


def _file_source(checkpoint: str | Path) -> dict[str, Any]:
    return {"kind": "file", "path": str(Path(checkpoint).resolve()), "sha256": file_sha256(checkpoint)}


def _default_source(default: Path) -> dict[str, Any]:
    return {"kind": "default", "path": f"pahs_export/weights/{default.name}", "sha256": file_sha256(default)}


def _shipped_checkpoint(name: str, bidirectional: bool | None = None) -> Path:
    """The default weights of preset ``name`` (bidirectional), or the one-line error saying why there are none."""
    default = default_checkpoint(name)
    if default is None:
        raise PahsError(
            f"preset {name!r} has no default weights in this project; pass --checkpoint PATH with trained weights, "
            "or --random-init to export random weights on purpose"
        )
    if bidirectional is False:
        raise PahsError(
            f"the default weights of {name!r} are bidirectional, found a request for the unidirectional model; "
            "pass --checkpoint with unidirectional weights"
        )
    return default


def reference_checkpoint(artifact: Artifact, override: str | Path | None = None) -> Path:
    """The checkpoint an artifact was exported from, found again and checked by sha256 (``override``: the
    user's own choice, taken as given)."""
    if override is not None:
        return Path(override)
    source = artifact.manifest.checkpoint or {}
    if "file" in source:  # stored in the folder: the manifest's sha256 table covers it (read_manifest checks)
        path = artifact.file(source["file"])
        expected = artifact.manifest.sha256.get(source["file"])
    else:
        path = _external_checkpoint(artifact, source)
        expected = source.get("sha256")
    if not path.is_file():
        raise PahsError(
            f"expected the checkpoint the artifact was exported from at {path}, found nothing; pass --checkpoint PATH"
        )
    if file_sha256(path) != expected:
        raise PahsError(
            f"the checkpoint at {path} is not the one the artifact was exported from (sha256 differs); "
            "pass the right file with --checkpoint or export again"
        )
    return path


def _external_checkpoint(artifact: Artifact, source: dict[str, Any]) -> Path:
    """Where the manifest says the weights of ``artifact`` live outside it (shipped default, or a file)."""
    if source.get("kind") == "default":  # the package's own copy, wherever the package is installed now
        return WEIGHTS_DIR / Path(source.get("path") or f"{artifact.preset}.safetensors").name
    return Path(source.get("path", ""))


def reference_model(artifact: Artifact, override: str | Path | None = None) -> PAHS:
    """The FP32 PyTorch model an artifact was exported from (its preset and direction checked)."""
    return load_model(
        reference_checkpoint(artifact, override), preset=artifact.preset, bidirectional=artifact.bidirectional
    )
