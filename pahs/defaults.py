"""What pahs uses when the user names nothing: the default weights exported to ONNX on first use, and the
default INT8 calibration set.

This sits above the export and the runtime (it exports an artifact so that the runtime can open it), which is
why it lives in the top layer rather than in either of them.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch

from calibration.data import DEFAULT_SET, CalibrationSet
from pahs_export.artifact import read_artifact
from pahs_export.cache import cache_dir
from pahs_export.checkpoint import parse_device
from pahs_export.errors import PahsError
from pahs_export.onnx_export import artifact_from_model
from pahs_export.presets import DEFAULT_PRESET
from pahs_export.weights import resolve_model
from runtime.backends import Backend
from runtime.engines import default_backend
from runtime.engines import open_backend as open_engine

__all__ = ["DEFAULT_SET", "CalibrationSet", "default_artifact", "open_backend"]


def default_artifact() -> Path:
    """The embedded default: default weights exported to ONNX once, cached, keyed by the weights' sha256.

    A cached copy that no longer reads or verifies (a truncated graph, an edited manifest) is exported again,
    with one line on stderr saying so, instead of failing every later run. Exports are written beside the
    cache entry and published whole (AtomicOutput), so a concurrent process never sees a torn artifact; one
    that happens to read across the swap finds a mismatch and exports too (the same bytes: the export is
    deterministic).
    """
    model, source = resolve_model(None, DEFAULT_PRESET)
    path = cache_dir() / f"{DEFAULT_PRESET}-onnx-fp32-{source['sha256'][:12]}-torch{torch.__version__}"
    if path.exists() or path.is_symlink():
        problem = _cache_problem(path)
        if problem is None:
            return path
        print(f"pahs: the cached default artifact {path} is damaged ({problem}); exporting it again", file=sys.stderr)
    try:
        artifact_from_model(model, path, source=source, overwrite=True)
    except (OSError, PahsError):
        # Lost a race with another process publishing the same export (the rename, or the read-back after it,
        # met their folder): theirs is as good, if it is whole.
        if _cache_problem(path) is not None:
            raise
    return path


def _cache_problem(path: Path) -> str | None:
    """What is wrong with the cached artifact at ``path`` (None: it reads and every file matches its sha256)."""
    try:
        read_artifact(path).check_hashes()
    except PahsError as e:
        return str(e).split("; ")[0]  # what was found; what to do is ours (export again)
    return None


def open_backend(engine: str | Path | None = None, backend: str | None = None, **options: Any) -> Backend:
    """:func:`runtime.engines.open_backend`, where no engine means the embedded default for ONNX Runtime.

    ``engine``: an ONNX artifact folder, a TensorRT artifact or a .safetensors checkpoint; None: the default
    weights (exported to ONNX and cached under ``$PAHS_CACHE`` on first use, or run as-is by the torch
    backend). ``backend``: torch, onnxruntime or tensorrt (None: the engine's own). ``options`` (device,
    cuda_graphs, autocast) as there.
    """
    if engine is None and (backend or default_backend(None)) in ("onnxruntime", "openvino"):
        if options.get("device") is not None:  # refuse a device that is no device before a first-use export
            parse_device(options["device"], check_available=False)
        engine = default_artifact()
    return open_engine(engine, backend, **options)
