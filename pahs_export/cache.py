"""The user cache: exported default artifacts and calibration ranges, under ``$PAHS_CACHE`` (default ~/.cache/pahs)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    return Path(os.environ.get("PAHS_CACHE") or Path.home() / ".cache" / "pahs")
