"""The first-use export cache: when the user names no engine, or only weights and a precision, the artifact a
backend needs is exported (and for TensorRT built) on first use and cached; :func:`open_backend` opens it.

This sits above the export and the runtime (it exports an artifact so that the runtime can open it), which is
why it lives in the top layer rather than in either of them.

Decisions:

- One word for precision, ``fp32 | fp16 | int8``, whatever the backend. ONNX Runtime and OpenVINO run the
  ONNX artifact of that precision; INT8 takes the graph conventions that suit the backend: the CPU target for
  CPU runtimes, TensorRT's for TensorRT (docs/PRECISION.md). TensorRT builds engines from that artifact. The
  torch backend runs FP32, or FP16 under autocast; INT8 is refused there (it has no INT8 kernels).
- Cache entries (under ``$PAHS_CACHE``) are keyed by everything that changes them: preset, precision, INT8
  target and calibration (set and options), the weights' sha256 and torch's version; TensorRT engines also by
  TensorRT's version and the GPU. A first-use export says what it does through the ``pahs`` logger (the
  command-line tools show it on stderr); it takes seconds for FP32/FP16, about a minute for INT8.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch

from calibration.data import DEFAULT_SET, CalibrationSet
from pahs_export.artifact import read_artifact
from pahs_export.atomic import exclusive
from pahs_export.cache import cache_dir
from pahs_export.checkpoint import parse_device
from pahs_export.contract import PRECISIONS
from pahs_export.errors import PahsError
from pahs_export.onnx_export import artifact_from_model
from pahs_export.precision import Int8Options
from pahs_export.presets import DEFAULT_PRESET
from pahs_export.tensorrt_artifact import Profile, current_device
from pahs_export.tensorrt_build import BuildOptions, trt_artifact_from_onnx
from pahs_export.weights import resolve_model, weights_source
from runtime.backends import Backend
from runtime.engines import default_backend, engine_kind, open_engine

__all__ = ["DEFAULT_SET", "CalibrationSet", "cached_artifact", "default_artifact", "int8_target_for", "open_backend"]

log = logging.getLogger("pahs")
ONNX_BACKENDS = ("onnxruntime", "openvino")  # backends that run ONNX artifacts directly
TORCH_AUTOCAST = {"fp32": None, "fp16": "fp16"}  # the torch backend's precision -> its autocast
LOCKS = ".locks"  # the folder of the cache's lock files, one per entry being written


def int8_target_for(backend: str) -> str:
    """The INT8 graph conventions that suit ``backend``: "tensorrt" for TensorRT, "cpu" for the CPU runtimes."""
    return "tensorrt" if backend == "tensorrt" else "cpu"


def _short_hash(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:8]


def cached_artifact(
    checkpoint: str | Path | None = None, precision: str | None = None, int8_target: str | None = None
) -> Path:
    """The ONNX artifact of ``checkpoint`` (None: the default weights) at ``precision`` (None: fp32; int8 in the
    conventions of ``int8_target``, default "cpu", calibrated on :data:`DEFAULT_SET`), exported once and cached.

    A cached copy that no longer reads or verifies (a truncated graph, an edited manifest) is exported again,
    with a warning, instead of failing every later run. Exports are written beside the cache entry and
    published whole (AtomicOutput), so a concurrent process never sees a torn artifact; concurrent first uses
    take turns on the entry's lock (:func:`pahs_export.atomic.exclusive`): one exports, the others wait and
    read its export.
    """
    precision = precision or "fp32"
    if precision not in PRECISIONS:
        raise PahsError(f"expected a precision among {', '.join(PRECISIONS)}, found {precision!r}")
    preset, source = weights_source(checkpoint)  # the key needs no model: a cached run builds none
    name = f"{preset}-onnx-{precision}"
    int8 = calibration = None
    if precision == "int8":
        int8 = replace(Int8Options(), target=int8_target or "cpu")
        calibration = DEFAULT_SET
        name += f"-{int8.target}-cal{_short_hash([calibration.describe(), asdict(int8)])}"
    path = cache_dir() / f"{name}-{source['sha256'][:12]}-torch{torch.__version__}"
    if _cached(path):
        return path
    # One exporter at a time per entry: concurrent first uses wait for it and then read its export, rather than
    # export the same artifact each (on the same cores) and race to publish it.
    with exclusive(_lock(path), waiting=lambda: log.info("waiting for another process exporting %s", path)):
        if path.exists() or path.is_symlink():
            problem = _cache_problem(path)
            if problem is None:
                return path
            log.warning("the cached artifact %s is damaged (%s); exporting it again", path, problem)
        model, source = resolve_model(checkpoint, None if checkpoint is not None else DEFAULT_PRESET)
        weights = "the default weights" if source["kind"] == "default" else f"the weights {source['path']}"
        slow = ", calibrating: about a minute" if precision == "int8" else ""
        log.info(
            "exporting %s (%s) to ONNX %s into %s (first use; later runs reuse it%s)",
            weights, model.preset.name, precision, path, slow,
        )  # fmt: skip
        try:
            artifact_from_model(
                model, path, source=source, overwrite=True, precision=precision, calibration=calibration,
                **({"int8": int8} if int8 is not None else {}),
            )  # fmt: skip
        except (OSError, PahsError):
            # Lost a race with a process the lock did not hold back (another machine, where the storage does
            # not share locks) publishing the same export: theirs is as good, if it is whole.
            if _cache_problem(path) is not None:
                raise
    return path


def _cached(path: Path) -> bool:
    """Whether the cache entry ``path`` is there and whole (read without the lock: entries are published by an
    atomic rename, so a reader sees the old entry or the new one)."""
    return (path.exists() or path.is_symlink()) and _cache_problem(path) is None


def _lock(path: Path) -> Path:
    """The lock file of the cache entry ``path`` (:func:`pahs_export.atomic.exclusive`)."""
    return path.parent / LOCKS / f"{path.name}.lock"


def default_artifact(precision: str | None = None) -> Path:
    """The embedded default: the default weights exported to ONNX at ``precision`` (None: fp32), cached."""
    return cached_artifact(None, precision)


def cached_engine(onnx_artifact: Path, precision: str) -> Path:
    """TensorRT engines built from ``onnx_artifact`` on this GPU, once, cached; keyed by the ONNX artifact (its
    own key), TensorRT's version and the GPU. Raises the one-line error of a machine without TensorRT or GPU."""
    device = current_device()
    gpu = re.sub(r"[^A-Za-z0-9.]+", "_", device.gpu)
    path = cache_dir() / f"{onnx_artifact.name}-trt{device.tensorrt}-{gpu}-sm{device.compute_capability}.plan"
    if path.is_dir() and _cache_problem(path) is None:
        return path
    with exclusive(_lock(path), waiting=lambda: log.info("waiting for another process building %s", path)):
        if path.is_dir() and _cache_problem(path) is None:  # built while this process waited
            return path
        log.info(
            "building TensorRT %s engines from %s into %s (first use, minutes; later runs reuse them)",
            precision,
            onnx_artifact,
            path,
        )
        return trt_artifact_from_onnx(onnx_artifact, path, BuildOptions(Profile()), overwrite=True, precision=precision)


def _cache_problem(path: Path) -> str | None:
    """What is wrong with the cached artifact at ``path`` (None: it reads and every file matches its sha256)."""
    try:
        read_artifact(path).check_hashes()
    except PahsError as e:
        return str(e).split("; ")[0]  # what was found; what to do is ours (export again)
    return None


def open_backend(
    engine: str | Path | None = None, backend: str | None = None, precision: str | None = None, **options: Any
) -> Backend:
    """:func:`runtime.engines.open_engine`, exporting what the backend needs from weights on first use.

    ``engine``: an ONNX artifact folder, a TensorRT artifact or a .safetensors checkpoint; None: the default
    weights. ``backend``: torch, onnxruntime, openvino or tensorrt (None: :func:`runtime.engines.default_backend` of
    the engine and device: openvino on x86-64 CPUs, onnxruntime for INT8 graphs in TensorRT's conventions).
    ``precision``: fp32, fp16 or int8 (None: fp32, or the exported artifact's own). Weights (the default, or a
    checkpoint) run as-is on the torch backend (fp16: autocast) and are exported to the artifact of that precision
    (cached under ``$PAHS_CACHE``) for the others. An exported artifact runs at its own precision; naming another is
    an error. ``options`` (device, cuda_graphs, threads) as there.
    """
    if precision is not None and precision not in PRECISIONS:
        raise PahsError(f"expected --precision {' | '.join(PRECISIONS)}, found {precision!r}")
    if options.get("device") is not None:  # refuse a device that is no device before a first-use export
        parse_device(options["device"], check_available=False)
    kind = engine_kind(Path(engine)) if engine is not None else None
    if kind in (None, "checkpoint"):  # weights: export what the backend runs
        name = backend or default_backend(kind, options.get("device"))
        if name in ONNX_BACKENDS:
            return open_engine(cached_artifact(engine, precision, int8_target_for(name)), name, **options)
        if name == "tensorrt":
            onnx = cached_artifact(engine, precision, int8_target_for(name))
            return open_engine(cached_engine(onnx, precision or "fp32"), name, **options)
        if name == "torch" and precision is not None:
            if precision not in TORCH_AUTOCAST:
                raise PahsError(
                    f"expected --precision fp32 or fp16 with the torch backend, found {precision}; INT8 runs on "
                    "onnxruntime, openvino or tensorrt: pick one with --backend"
                )
            options = {**options, "autocast": TORCH_AUTOCAST[precision]}
        return open_engine(engine, name, **options)
    opened = open_engine(engine, backend, **options)  # None: the default for this artifact, said when it matters
    if precision is not None and opened.precision != precision:
        raise PahsError(
            f"expected an {precision} engine for --precision {precision}, found {engine} ({opened.precision}); "
            "drop --engine to export one from the default weights (or pass --checkpoint), or drop --precision"
        )
    return opened
