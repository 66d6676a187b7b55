"""pahs: the PAHS video-deblurring model (Park, Nah, Lee, ECCV 2022) and its path to fast inference.

The public Python surface, re-exported from the project's layers (docs/ARCHITECTURE.md):

- the model: :func:`build_model`, :func:`load_model`, :func:`save_checkpoint`, :data:`PRESETS`;
- :func:`open` -> :class:`Restorer`: restore frames of any size (numpy or torch) or whole videos;
- the runtime: :func:`open_backend` (an exported engine, or the embedded default) and the bidirectional
  drivers :func:`restore_stream` (chunked, bounded memory) and :func:`restore_exact` (full sequence), which
  work on padded float tensors;
- :class:`PahsError`, the one exception a user can cause and fix.
"""

from pahs_export.checkpoint import build_model, load_model, save_checkpoint
from pahs_export.errors import PahsError
from pahs_export.presets import DEFAULT_LOOKAHEAD, DEFAULT_PRESET, PRESETS, Preset
from runtime.driver import DEFAULT_CHUNK, restore_exact, restore_stream

from .api import Restorer, open
from .defaults import default_artifact, open_backend

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
