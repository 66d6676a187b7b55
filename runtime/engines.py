"""From what the user passes as ``--engine`` to an open :class:`~runtime.backends.Backend`.

An engine is one path: an exported ONNX artifact folder (``manifest.json`` of format pahs-onnx), a
TensorRT artifact (``.plan`` file or folder with a TensorRT manifest), or a PyTorch checkpoint
(``.safetensors``). No engine means the embedded default: the project's default weights, exported to ONNX
on first use and cached under ``$PAHS_CACHE`` (default ``~/.cache/pahs``).
Each backend has one opener in :data:`OPENERS`; the kind of the engine picks the default backend.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from pahs_export.artifact import FORMAT as ONNX_FORMAT
from pahs_export.artifact import MANIFEST, read_artifact
from pahs_export.cache import cache_dir
from pahs_export.checkpoint import load_model
from pahs_export.errors import PahsError

from .backends import Backend

ENGINE_KINDS = ("onnx", "tensorrt", "checkpoint")
DEFAULT_BACKEND = {"onnx": "onnxruntime", "tensorrt": "tensorrt", "checkpoint": "torch"}


def engine_kind(path: Path) -> str:
    """Classify an engine path as "onnx", "tensorrt" or "checkpoint" (or raise a one-line error)."""
    if not path.exists():
        raise PahsError(f"expected an engine (artifact folder, .plan or .safetensors), found nothing at {path}")
    if path.suffix == ".safetensors" and path.is_file():
        return "checkpoint"
    if path.suffix == ".plan" and path.is_file():
        raise PahsError(
            f"expected a pahs TensorRT artifact folder (engines + manifest.json), found a bare engine file {path}; "
            "build one with `pahs-export trt`"
        )
    manifest = path / MANIFEST
    if path.is_dir() and manifest.is_file():
        try:
            fmt = json.loads(manifest.read_text()).get("format", "")
        except (OSError, ValueError, AttributeError):
            fmt = ""
        if fmt == ONNX_FORMAT:
            return "onnx"
        if fmt.startswith("pahs-tensorrt"):
            return "tensorrt"
    raise PahsError(
        f"expected an engine: a folder from `pahs-export onnx`/`trt`, a .plan or a .safetensors checkpoint, "
        f"found {path}; export one with `pahs-export onnx`"
    )


def default_artifact() -> Path:
    """The embedded default: default weights exported to ONNX once, cached, keyed by the weights' sha256."""
    from pahs_export.onnx_export import artifact_from_model
    from pahs_export.presets import DEFAULT_PRESET
    from pahs_export.weights import resolve_model

    model, source = resolve_model(None, DEFAULT_PRESET)
    import torch

    path = cache_dir() / f"{DEFAULT_PRESET}-onnx-fp32-{source['sha256'][:12]}-torch{torch.__version__}"
    if not (path / MANIFEST).is_file():
        try:
            artifact_from_model(model, path, source=source, overwrite=True)
        except OSError:
            if not (path / MANIFEST).is_file():  # lost a race with another process: theirs is as good
                raise
    return path


def _open_torch(engine: Path | None, kind: str | None, device: str, cuda_graphs: bool = False) -> Backend:
    from pahs_export.weights import reference_model, resolve_model

    from .backends.torch_backend import TorchBackend

    if kind == "checkpoint":
        model = load_model(engine)
    elif kind == "onnx":  # the reference the artifact was exported from
        art = read_artifact(engine)
        model = reference_model(art)
    elif kind is None:
        model, _ = resolve_model(None, None)
    else:
        raise PahsError(f"the torch backend runs checkpoints and ONNX artifacts' source weights, found a {kind} engine")
    return TorchBackend(model, device, cuda_graphs=cuda_graphs)


def _open_onnxruntime(engine: Path | None, kind: str | None, device: str, cuda_graphs: bool = False) -> Backend:
    from .backends.ort_backend import OnnxRuntimeBackend

    if cuda_graphs:
        raise PahsError(
            "expected --cuda-graphs with the tensorrt or torch backend on cuda, found onnxruntime "
            "(its tensors stay on the CPU); drop --cuda-graphs or pick --backend tensorrt/torch"
        )
    if kind is None:
        engine, kind = default_artifact(), "onnx"
    if kind != "onnx":
        raise PahsError(
            f"the onnxruntime backend runs ONNX artifact folders, found a {kind} engine at {engine}; "
            "export one with `pahs-export onnx` or pick --backend "
            f"{DEFAULT_BACKEND[kind]}"
        )
    art = read_artifact(engine)
    art.check_hashes()
    return OnnxRuntimeBackend(art, device=device)


def _open_tensorrt(engine: Path | None, kind: str | None, device: str, cuda_graphs: bool = False) -> Backend:
    if kind != "tensorrt":
        raise PahsError(
            f"the tensorrt backend runs artifacts from `pahs-export trt`, found {engine or 'no --engine'}; "
            "build one with `pahs-export trt` and pass it with --engine"
        )
    from .backends.trt_backend import TensorRTBackend

    return TensorRTBackend(engine, device, cuda_graphs=cuda_graphs)


# opener(engine, kind, device, cuda_graphs) -> Backend
OPENERS: dict[str, Callable[[Path | None, str | None, str, bool], Backend]] = {
    "torch": _open_torch,
    "onnxruntime": _open_onnxruntime,
    "tensorrt": _open_tensorrt,
}


def open_backend(
    engine: str | Path | None = None,
    backend: str | None = None,
    device: str | None = None,
    cuda_graphs: bool = False,
) -> Backend:
    """Open ``engine`` with ``backend`` (default: the engine's natural backend; onnxruntime without engine).

    ``cuda_graphs``: capture and replay CUDA graphs per role, frame shape and buffer parity (tensorrt, or
    torch on cuda)."""
    path = Path(engine) if engine is not None else None
    kind = engine_kind(path) if path is not None else None
    name = backend or (DEFAULT_BACKEND[kind] if kind else "onnxruntime")
    if name not in OPENERS:
        raise PahsError(f"unknown backend {name!r}: expected one of {', '.join(OPENERS)}")
    if device is None:
        device = "cuda" if name == "tensorrt" else "cpu"
    return OPENERS[name](path, kind, device, cuda_graphs)
