"""pahs: the PAHS video-deblurring model (Park, Nah, Lee, ECCV 2022) and its path to fast inference.

The public Python surface, re-exported from the project's layers (docs/ARCHITECTURE.md):

- the model: :func:`build_model`, :func:`load_model`, :func:`save_checkpoint`, :data:`PRESETS`;
- :func:`open` -> :class:`Restorer`: restore frames of any size (numpy or torch) or whole videos;
- the runtime: :func:`open_backend` (an exported engine, or the embedded default) and the bidirectional
  drivers :func:`restore_stream` (chunked, bounded memory) and :func:`restore_exact` (full sequence), which
  work on padded float tensors;
- :class:`PahsError`, the one exception a user can cause and fix.

What needs torch is loaded on first use (PEP 562): importing ``pahs`` (as every command-line tool in
``pahs.cli`` does) costs no torch, so that ``pahs-run --help`` and ``--version`` answer at once.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from pahs_export.errors import PahsError
from pahs_export.presets import DEFAULT_LOOKAHEAD, DEFAULT_PRESET, PRESETS, Preset
from runtime.constants import DEFAULT_CHUNK

if TYPE_CHECKING:
    from pahs_export.checkpoint import build_model, load_model, save_checkpoint
    from runtime.driver import restore_exact, restore_stream

    from .api import Restorer, open
    from .export_cache import default_artifact, open_backend

__all__ = [
    "DEFAULT_CHUNK",
    "DEFAULT_LOOKAHEAD",
    "DEFAULT_PRESET",
    "PRESETS",
    "PahsError",
    "Preset",
    "Restorer",
    "build_model",
    "default_artifact",
    "load_model",
    "open",
    "open_backend",
    "restore_exact",
    "restore_stream",
    "save_checkpoint",
]

# name -> the module that defines it (each imports torch)
_LAZY = {
    "build_model": "pahs_export.checkpoint",
    "load_model": "pahs_export.checkpoint",
    "save_checkpoint": "pahs_export.checkpoint",
    "restore_exact": "runtime.driver",
    "restore_stream": "runtime.driver",
    "Restorer": "pahs.api",
    "open": "pahs.api",
    "default_artifact": "pahs.export_cache",
    "open_backend": "pahs.export_cache",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value  # once loaded, a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
