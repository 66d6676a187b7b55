"""Checkpoints: safetensors files whose metadata records the preset and the direction.

Loading never executes code from the file (safetensors holds only tensors and string metadata).
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from .errors import PahsError
from .model import PAHS, BidirectionalPAHS, UnidirectionalPAHS
from .presets import DEFAULT_PRESET, get_preset

FORMAT = "pahs-checkpoint/1"


def build_model(preset: str = DEFAULT_PRESET, *, bidirectional: bool = True) -> torch.nn.Module:
    """Make a randomly initialised PAHS model of ``preset`` ("pahs", "pahs-s" or "pahs-t"), in eval mode."""
    p = get_preset(preset)
    model = BidirectionalPAHS(p) if bidirectional else UnidirectionalPAHS(p)
    return model.eval()


def save_checkpoint(model: torch.nn.Module, path: str | Path, *, extra: dict[str, str] | None = None) -> Path:
    """Write ``model``'s weights to ``path`` (.safetensors) with its preset and direction as metadata."""
    if not isinstance(model, (BidirectionalPAHS, UnidirectionalPAHS)):
        raise PahsError(f"expected a PAHS model from build_model(), found {type(model).__name__}")
    path = Path(path)
    metadata = {
        "format": FORMAT,
        "preset": model.preset.name,
        "bidirectional": "true" if model.bidirectional else "false",
        **(extra or {}),
    }
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file(state, str(path), metadata=metadata)
    except OSError as e:
        raise PahsError(f"could not write checkpoint {path}: {e.strerror}; choose a writable path") from None
    return path


def read_metadata(path: str | Path) -> dict[str, str]:
    """The metadata of a PAHS checkpoint, after checking that the file is one."""
    path = Path(path)
    if not path.is_file():
        raise PahsError(f"expected a checkpoint file, found nothing at {path}; check the path")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as e:
        raise PahsError(
            f"expected a PAHS .safetensors checkpoint, found an unreadable file {path} ({e}); "
            "pass a file written by pahs-train or save_checkpoint()"
        ) from None
    if meta.get("format") != FORMAT:
        raise PahsError(
            f"expected a PAHS checkpoint (metadata format {FORMAT!r}), found format {meta.get('format')!r} in "
            f"{path}; pass a file written by pahs-train or save_checkpoint()"
        )
    return meta


def load_model(
    path: str | Path, *, preset: str | None = None, bidirectional: bool | None = None, device: str = "cpu"
) -> PAHS:
    """Load a checkpoint into a new model in eval mode.

    ``preset`` / ``bidirectional``: what the caller requires (None: whatever the file holds); a checkpoint
    that does not fit raises a :class:`PahsError` naming both.
    """
    meta = read_metadata(path)
    file_preset, file_bidir = meta["preset"], meta["bidirectional"] == "true"
    if preset is not None and preset != file_preset:
        raise PahsError(
            f"expected a checkpoint of preset {preset!r}, found {file_preset!r} in {path}; "
            f"use --preset {file_preset} or another checkpoint"
        )
    if bidirectional is not None and bidirectional != file_bidir:
        want, found = ("bidirectional", "unidirectional") if bidirectional else ("unidirectional", "bidirectional")
        raise PahsError(f"expected a {want} checkpoint, found a {found} one in {path}; pick the matching checkpoint")
    model = build_model(file_preset, bidirectional=file_bidir)
    state = load_file(str(path), device=device)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if expected[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        first = (missing or unexpected or wrong)[0]
        raise PahsError(
            f"checkpoint {path} says preset {file_preset!r} but its tensors do not fit it "
            f"({len(missing)} missing, {len(unexpected)} unexpected, {len(wrong)} of wrong shape, e.g. {first!r}); "
            "re-save it with save_checkpoint()"
        )
    model.load_state_dict(state)
    return model.to(device).eval()
