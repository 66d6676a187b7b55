"""pahs_export, the bottom layer: the PAHS reference model, its presets and checkpoints, the graph contract,
artifacts and their manifests, and the exporters (ONNX, FP16/INT8, TensorRT). It imports no other package of the
project (docs/ARCHITECTURE.md, "Layers").

Public API: :func:`build_model`, :func:`load_model`, :func:`save_checkpoint`, :data:`PRESETS`.

The three model functions are loaded on first use (PEP 562): importing the package, or any of its torch-free
modules (presets, errors, atomic, artifact...), does not import torch, so that a command's ``--help``, or a run
that needs no model, does not wait for it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import PahsError
from .presets import DEFAULT_PRESET, PRESETS, Preset, get_preset

if TYPE_CHECKING:
    from .checkpoint import build_model, load_model, save_checkpoint

__all__ = [
    "DEFAULT_PRESET",
    "PRESETS",
    "PahsError",
    "Preset",
    "build_model",
    "get_preset",
    "load_model",
    "save_checkpoint",
]

_LAZY = {"build_model": ".checkpoint", "load_model": ".checkpoint", "save_checkpoint": ".checkpoint"}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name], __name__), name)
    globals()[name] = value  # once loaded, a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
