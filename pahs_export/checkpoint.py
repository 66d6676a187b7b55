"""Checkpoints: safetensors files whose metadata records the preset and the direction.

Loading never executes code from the file (safetensors holds only tensors and string metadata), and only
finite floating-point tensors are accepted as weights. Device strings are parsed here too (:func:`parse_device`),
since loading is where a model first meets a device.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from .errors import PahsError
from .model import PAHS, BidirectionalPAHS, UnidirectionalPAHS
from .presets import DEFAULT_PRESET, PRESETS, get_preset

FORMAT = "pahs-checkpoint/1"
DEVICE_TYPES = ("cpu", "cuda")  # what --device accepts (with an index: cuda:N)


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
    # The format tag alone does not make the rest true: load_model reads these two keys.
    if meta.get("preset") not in PRESETS:
        raise PahsError(
            f"expected the metadata of checkpoint {path} to name a preset among {', '.join(PRESETS)}, found "
            f"{meta.get('preset')!r}; re-save the weights with save_checkpoint() or pass another checkpoint"
        )
    if meta.get("bidirectional") not in ("true", "false"):
        raise PahsError(
            f'expected the metadata of checkpoint {path} to say bidirectional "true" or "false", found '
            f"{meta.get('bidirectional')!r}; re-save the weights with save_checkpoint() or pass another checkpoint"
        )
    return meta


def parse_device(device: str | torch.device, what: str = "--device", *, check_available: bool = True) -> torch.device:
    """``device`` ("cpu", "cuda" or "cuda:N") as a :class:`torch.device`, or a one-line :class:`PahsError`.

    With ``check_available`` a CUDA device must also be usable here: torch built with CUDA, a GPU visible,
    and N below the device count (torch itself would fail much later, deep in a traceback). ``what`` names
    the option in the message.
    """
    try:
        parsed = device if isinstance(device, torch.device) else torch.device(str(device).strip())
    except (RuntimeError, ValueError, TypeError):  # torch's own words for a string it cannot parse
        parsed = None
    if parsed is None or parsed.type not in DEVICE_TYPES:
        raise PahsError(f"expected {what} cpu, cuda or cuda:N, found {str(device)!r}; pass one of them")
    if not check_available or parsed.type != "cuda":
        return parsed
    if not torch.cuda.is_available():
        why = (
            f"this torch {torch.__version__} is built without CUDA"
            if torch.version.cuda is None
            else f"torch {torch.__version__} (CUDA {torch.version.cuda}) sees no usable GPU or driver"
        )
        raise PahsError(f"expected a CUDA GPU for {what} {device}, found none ({why}); use {what} cpu")
    count = torch.cuda.device_count()
    if parsed.index is not None and parsed.index >= count:
        raise PahsError(
            f"expected {what} cuda:N with N below {count} (the GPUs visible here), found {device}; "
            f"use {what} cuda:0{f' to cuda:{count - 1}' if count > 1 else ''}"
        )
    return parsed


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
    target = parse_device(device, "device")
    model = build_model(file_preset, bidirectional=file_bidir)
    try:
        state = load_file(str(path), device="cpu")  # checked on the CPU, then moved: one path for every device
    except (SafetensorError, OSError, ValueError) as e:
        raise PahsError(
            f"expected readable tensors in checkpoint {path}, found a damaged file ({e}); "
            "pass a file written by pahs-train or save_checkpoint()"
        ) from None
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
    check_tensors(state, path)
    model.load_state_dict(state)
    return model.to(target).eval()


def check_tensors(state: dict[str, torch.Tensor], path: str | Path) -> None:
    """Raise a one-line :class:`PahsError` naming the first tensor that is not finite floating point.

    load_state_dict would cast integer or bool tensors silently, and NaN/Inf weights run without complaint
    into black frames, so both are refused here, before any model sees them.
    """
    for name in sorted(state):
        tensor = state[name]
        if not tensor.is_floating_point():
            raise PahsError(
                f"expected floating-point weights in checkpoint {path}, found {name!r} of dtype "
                f"{str(tensor.dtype).removeprefix('torch.')}; re-save the model's float weights with save_checkpoint()"
            )
        finite = torch.isfinite(tensor)
        if not bool(finite.all()):
            bad = int((~finite).sum())
            raise PahsError(
                f"expected finite weights in checkpoint {path}, found {bad} NaN/Inf of the {tensor.numel()} values "
                f"of {name!r}; the training diverged or the file is damaged: use an earlier checkpoint"
            )
