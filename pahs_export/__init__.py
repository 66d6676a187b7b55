"""pahs: the PAHS video-deblurring model and its path to fast inference.

Public API: :func:`build_model`, :func:`load_model`, :func:`save_checkpoint`, :data:`PRESETS`.
"""

from .checkpoint import build_model, load_model, save_checkpoint
from .errors import PahsError
from .presets import DEFAULT_PRESET, PRESETS, Preset, get_preset

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
