"""From what the user passes as ``--engine`` to an open :class:`~runtime.backends.Backend`.

An engine is one path: an exported ONNX artifact folder (``manifest.json`` of format pahs-onnx), a
TensorRT artifact (``.plan`` folder with a TensorRT manifest), or a PyTorch checkpoint (``.safetensors``).
Each backend has one opener in :data:`OPENERS`, and :func:`open_engine` opens an engine as it is; the engine
and the device pick the default backend (:func:`default_backend`, the one place that decides it). Without an
engine only the torch backend opens here (on the default weights); weights are exported on first use to the
artifact a backend runs by :func:`pahs.open_backend` (the export cache, a layer above), which then opens it here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pahs_export.artifact import MANIFEST, ONNX_FORMAT, TENSORRT_FORMAT, read_artifact, read_manifest
from pahs_export.checkpoint import load_model, parse_device
from pahs_export.errors import PahsError
from pahs_export.weights import reference_model, resolve_model

from .backends import Backend
from .backends.openvino_backend import OpenVINOBackend
from .backends.ort_backend import OnnxRuntimeBackend
from .backends.torch_backend import TorchBackend
from .backends.trt_backend import TensorRTBackend
from .constants import INT8_TARGETS, default_onnx_backend

ENGINE_KINDS = ("onnx", "tensorrt", "checkpoint")
DEFAULT_BACKEND = {"tensorrt": "tensorrt", "checkpoint": "torch"}  # ONNX artifacts: default_onnx_backend
log = logging.getLogger("pahs")  # the command-line tools show its INFO lines on stderr


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
    if path.is_dir() and (path / MANIFEST).is_file():
        fmt = read_manifest(path).format
        return {ONNX_FORMAT: "onnx", TENSORRT_FORMAT: "tensorrt"}[fmt]
    raise PahsError(
        f"expected an engine: a folder from `pahs-export onnx`/`trt`, a .plan or a .safetensors checkpoint, "
        f"found {path}; export one with `pahs-export onnx`"
    )


@dataclass(frozen=True)
class OpenRequest:
    """What an opener in :data:`OPENERS` is asked to open (checked by :func:`open_engine` first)."""

    engine: Path | None  # the --engine path; None: the default weights
    kind: str | None  # engine_kind(engine), one of ENGINE_KINDS; None without an engine
    device: str  # "cpu", "cuda" or "cuda:N"
    cuda_graphs: bool = False  # capture and replay CUDA graphs (tensorrt, torch on cuda)
    autocast: str | None = None  # "fp16"/"bf16" autocast of the torch backend; None: none
    threads: int | None = None  # CPU threads of a step; None: the runtime's default


def _open_torch(r: OpenRequest) -> Backend:
    parse_device(r.device)  # before loading anything: a CUDA device must be usable here
    if r.kind == "checkpoint":
        model = load_model(r.engine)
    elif r.kind == "onnx":  # the reference the artifact was exported from
        art = read_artifact(r.engine)
        model = reference_model(art)
    elif r.kind is None:
        model, _ = resolve_model(None, None)
    else:
        raise PahsError(
            f"the torch backend runs checkpoints and ONNX artifacts' source weights, found a {r.kind} engine"
        )
    if r.threads:  # process-wide in torch: the worker or script that asks for it owns the process
        import torch

        torch.set_num_threads(r.threads)
    return TorchBackend(model, r.device, autocast=r.autocast, cuda_graphs=r.cuda_graphs)


def _no_autocast(name: str, autocast: str | None) -> None:
    if autocast is not None:
        raise PahsError(
            f"expected autocast ({autocast}) only with the torch backend, found {name}; its precision comes from "
            "the engine: pass an FP16 or INT8 artifact instead"
        )


def _open_onnxruntime(r: OpenRequest) -> Backend:
    _no_autocast("onnxruntime", r.autocast)
    if r.cuda_graphs:
        raise PahsError(
            "expected --cuda-graphs with the tensorrt or torch backend on cuda, found onnxruntime "
            "(its tensors stay on the CPU); drop --cuda-graphs or pick --backend tensorrt/torch"
        )
    if r.kind is None:
        raise PahsError(
            "expected an ONNX artifact for the onnxruntime backend, found no engine; pass one, or use "
            "pahs.open_backend(), which exports the default weights on first use"
        )
    if r.kind != "onnx":
        raise PahsError(
            f"the onnxruntime backend runs ONNX artifact folders, found a {r.kind} engine at {r.engine}; "
            "export one with `pahs-export onnx` or pick --backend "
            f"{default_backend(r.kind)}"
        )
    # The backend verifies every graph's sha256 as it loads it (Artifact.verified_bytes).
    return OnnxRuntimeBackend(read_artifact(r.engine), device=r.device, threads=r.threads)


def _open_openvino(r: OpenRequest) -> Backend:
    _no_autocast("openvino", r.autocast)
    if r.cuda_graphs:
        raise PahsError("expected --cuda-graphs with the tensorrt or torch backend on cuda, found openvino (CPU)")
    if r.kind != "onnx":
        raise PahsError(
            f"the openvino backend runs ONNX artifact folders, found {r.engine or 'no --engine'}; export one with "
            "`pahs-export onnx` and pass it with --engine"
        )
    return OpenVINOBackend(read_artifact(r.engine), device=r.device, threads=r.threads)


def _open_tensorrt(r: OpenRequest) -> Backend:
    _no_autocast("tensorrt", r.autocast)  # threads: the GPU runs the steps; nothing of TensorRT's to size
    if r.kind != "tensorrt":
        raise PahsError(
            f"the tensorrt backend runs artifacts from `pahs-export trt`, found {r.engine or 'no --engine'}; "
            "build one with `pahs-export trt` and pass it with --engine"
        )
    return TensorRTBackend(r.engine, r.device, cuda_graphs=r.cuda_graphs)


OPENERS: dict[str, Callable[[OpenRequest], Backend]] = {
    "torch": _open_torch,
    "onnxruntime": _open_onnxruntime,
    "tensorrt": _open_tensorrt,
    "openvino": _open_openvino,
}


def default_backend(
    kind: str | None, device: str | None = None, engine: Path | None = None, note: Callable[[str], None] | None = None
) -> str:
    """The backend an engine of ``kind`` opens with on ``device`` when none is asked for: a TensorRT artifact,
    tensorrt; a checkpoint, torch; an ONNX artifact (``engine``) or no engine (weights exported on first use),
    the fastest backend of the device (:func:`runtime.constants.default_onnx_backend`) whose output meets
    docs/PRECISION.md's targets for that artifact (:data:`runtime.constants.INT8_TARGETS`): INT8 graphs in
    TensorRT's conventions run on onnxruntime, as written, rather than on openvino, which would lose 3 dB.
    ``note`` is told, in one line, when the artifact moves the choice away from the device's fastest backend.
    The one place the default is decided: `pahs-run`, first-use exports, ``pahs.open()`` and `pahs-bench` ask it."""
    if kind in DEFAULT_BACKEND:
        return DEFAULT_BACKEND[kind]
    fastest = default_onnx_backend(device)
    target = read_manifest(engine).int8_target if kind == "onnx" and engine is not None else None
    if target is None or target in INT8_TARGETS[fastest]:
        return fastest
    name = next(b for b, targets in INT8_TARGETS.items() if target in targets)  # onnxruntime runs every target
    if note is not None:
        note(
            f"{engine}: INT8 graphs of --int8-target {target} run on {name}, as written ({fastest}, the faster "
            f"here, misses docs/PRECISION.md's targets with them); slower than FP32 on a CPU: for speed, export "
            "with `pahs-export onnx --precision int8 --int8-target cpu`"
        )
    return name


def open_engine(
    engine: str | Path | None = None,
    backend: str | None = None,
    device: str | None = None,
    cuda_graphs: bool = False,
    autocast: str | None = None,
    threads: int | None = None,
) -> Backend:
    """Open ``engine`` with ``backend`` (default: :func:`default_backend` of the engine and device, which says
    on the ``pahs`` logger when the engine moves it off the device's fastest one).

    ``cuda_graphs``: capture and replay CUDA graphs per role, frame shape and buffer parity (tensorrt, or
    torch on cuda). ``autocast``: "fp16" or "bf16" autocast of the torch backend. ``threads``: CPU threads of a
    step (onnxruntime's intra-op threads, openvino's inference threads, torch's process-wide thread count;
    tensorrt has none to size); None: the runtime's default, every core of the machine."""
    path = Path(engine) if engine is not None else None
    kind = engine_kind(path) if path is not None else None
    name = backend or default_backend(kind, device, path, note=log.info)
    if name not in OPENERS:
        raise PahsError(f"unknown backend {name!r}: expected one of {', '.join(OPENERS)}")
    if device is None:
        device = "cuda" if name == "tensorrt" else "cpu"
    parse_device(device, check_available=False)  # one line for an unknown device, whichever the backend
    if threads is not None and threads < 1:
        raise PahsError(f"expected --threads of at least 1, found {threads}; leave it out to use every core")
    return OPENERS[name](OpenRequest(path, kind, device, cuda_graphs, autocast, threads))
