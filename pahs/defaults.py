"""What pahs uses when the user names nothing: the default weights exported to ONNX on first use, and the
default INT8 calibration set.

This sits above the export and the runtime (it exports an artifact so that the runtime can open it), which is
why it lives in the top layer rather than in either of them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from calibration.data import DEFAULT_SET, CalibrationSet
from pahs_export.artifact import MANIFEST
from pahs_export.cache import cache_dir
from pahs_export.onnx_export import artifact_from_model
from pahs_export.presets import DEFAULT_PRESET
from pahs_export.weights import resolve_model
from runtime.backends import Backend
from runtime.engines import default_backend
from runtime.engines import open_backend as open_engine

__all__ = ["DEFAULT_SET", "CalibrationSet", "default_artifact", "open_backend"]


def default_artifact() -> Path:
    """The embedded default: default weights exported to ONNX once, cached, keyed by the weights' sha256."""
    model, source = resolve_model(None, DEFAULT_PRESET)
    path = cache_dir() / f"{DEFAULT_PRESET}-onnx-fp32-{source['sha256'][:12]}-torch{torch.__version__}"
    if not (path / MANIFEST).is_file():
        try:
            artifact_from_model(model, path, source=source, overwrite=True)
        except OSError:
            if not (path / MANIFEST).is_file():  # lost a race with another process: theirs is as good
                raise
    return path


def open_backend(engine: str | Path | None = None, backend: str | None = None, **options: Any) -> Backend:
    """:func:`runtime.engines.open_backend`, where no engine means the embedded default for ONNX Runtime.

    ``engine``: an ONNX artifact folder, a TensorRT artifact or a .safetensors checkpoint; None: the default
    weights (exported to ONNX and cached under ``$PAHS_CACHE`` on first use, or run as-is by the torch
    backend). ``backend``: torch, onnxruntime or tensorrt (None: the engine's own). ``options`` (device,
    cuda_graphs, autocast) as there.
    """
    if engine is None and (backend or default_backend(None)) == "onnxruntime":
        engine = default_artifact()
    return open_engine(engine, backend, **options)
