"""Building TensorRT engines from the exported ONNX graphs (TensorRT 10 and 11, strongly typed).

Precision is in the graph: an FP32 graph builds an FP32 engine, the FP16 graph an FP16 engine, the Q/DQ
graph an INT8 engine. No BuilderFlag.FP16/INT8 and no calibrator is used (TensorRT 11 removed them); the
network is created with the STRONGLY_TYPED flag, required on TensorRT 10 and accepted (and ignored) on 11.
TF32 is cleared so that FP32 engines match FP32 references.

This module imports ``tensorrt`` only inside its functions. It was written against the documented Python
API, and every TensorRT attribute and call it makes is checked against the real 11.4 bindings and the 10.13
stubs (tests/test_tensorrt_api.py), but it has not been executed against a real TensorRT here
(docs/TENSORRT.md).
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, SupportsInt

from .artifact import Artifact, read_artifact, write_manifest
from .atomic import AtomicOutput, file_sha256
from .contract import Geometry
from .errors import PahsError
from .signals import check_interrupted, interrupted
from .tensorrt_artifact import Profile, current_device, input_shapes, manifest_for, require_tensorrt

if TYPE_CHECKING:
    import tensorrt as trt

TIMING_CACHE = "timing.cache"


@dataclass(frozen=True)
class BuildOptions:
    """Builder settings. ``None`` means TensorRT's default."""

    profile: Profile = field(default_factory=Profile)  # shapes the engines accept
    optimization_level: int | None = None  # builder optimization level 0-5 (TensorRT default 3)
    workspace_gib: float | None = None  # workspace memory pool limit
    timing_cache: Path | None = None  # reuse/extend this timing cache (default: beside the engines)


def engine_from_onnx(
    onnx: bytes, role: str, geometry: Geometry, options: BuildOptions, cache: trt.ITimingCache, name: str = ""
) -> bytes:
    """Build one serialized engine from one serialized ONNX graph (``name`` for messages), with the profile over
    N/H/W."""
    require_tensorrt()
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise PahsError(f"TensorRT could not parse {name or role}: {errors}; check the TensorRT version (10+)")
    config = builder.create_builder_config()
    if hasattr(trt.BuilderFlag, "TF32"):
        config.clear_flag(trt.BuilderFlag.TF32)  # FP32 engines must match FP32 references
    if options.optimization_level is not None:
        config.builder_optimization_level = options.optimization_level
    if options.workspace_gib is not None:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(options.workspace_gib * (1 << 30)))
    config.set_timing_cache(cache, False)
    profile = builder.create_optimization_profile()
    for name, (lo, opt, hi) in input_shapes(role, options.profile, geometry).items():
        profile.set_shape(name, trt.Dims(list(lo)), trt.Dims(list(opt)), trt.Dims(list(hi)))
    config.add_optimization_profile(profile)
    config.progress_monitor = _progress_monitor(role)
    serialized = builder.build_serialized_network(network, config)
    check_interrupted()  # a termination signal cancels the build (the monitor): say so, not "failed to build"
    if serialized is None:
        raise PahsError(f"TensorRT failed to build the {role} engine (see its log above); try --workspace larger")
    # IHostMemory implements the buffer protocol; the 11.4 stubs (made by pybind11-stubgen) do not declare it.
    return bytes(serialized)  # type: ignore[call-overload,unused-ignore]


def _progress_monitor(role: str) -> trt.IProgressMonitor:
    """Prints the builder's top-level phases for ``role``; cancels the build once a termination signal came
    (:mod:`pahs_export.signals`), so that the command stops within a step, not at the end of a minutes-long build."""
    import tensorrt as trt

    class Monitor(trt.IProgressMonitor):
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: SupportsInt) -> None:
            if parent_phase is None:
                print(f"  {role}: {phase_name} ({num_steps} steps)", flush=True)

        def step_complete(self, phase_name: str, step: SupportsInt) -> bool:
            return interrupted() is None  # False cancels the build

        def phase_finish(self, phase_name: str) -> None:
            pass

    return Monitor()


def check_buildable(art: Artifact, precision: str | None = None) -> None:
    """Raise a one-line :class:`PahsError` unless ``art`` is an ONNX artifact TensorRT can build as asked:
    of ``precision`` (None: any) and, for INT8, with TensorRT's Q/DQ conventions."""
    if precision is not None and art.precision != precision:
        raise PahsError(
            f"expected an ONNX artifact of precision {precision}, found {art.precision} in {art.path}; "
            f"export one with `pahs-export onnx --precision {precision}`"
        )
    target = art.manifest.int8_target
    if target not in (None, "tensorrt"):
        raise PahsError(
            f"expected INT8 graphs with TensorRT's conventions, found --int8-target {target} in {art.path}; "
            "export with `pahs-export onnx --precision int8` (default target tensorrt)"
        )


def trt_artifact_from_onnx(
    onnx_artifact: Path, out: Path, options: BuildOptions, overwrite: bool = False, precision: str | None = None
) -> Path:
    """Build every graph of an ONNX artifact into a TensorRT artifact folder ``out`` (written atomically).

    ``precision``: what the caller asked for (None: whatever the artifact holds); see :func:`check_buildable`.
    """
    art = read_artifact(onnx_artifact)
    check_buildable(art, precision)
    require_tensorrt()
    import tensorrt as trt

    device = current_device()
    art.check_hashes()
    options.profile.check(art.geometry.size_multiple)
    if out.exists() and not overwrite:
        raise PahsError(f"{out} already exists; pass --overwrite to replace it or choose another -o")
    with AtomicOutput(out, folder=True, what="the engines") as target:
        tmp = target.tmp
        cache_path = options.timing_cache or (out / TIMING_CACHE)
        blob = cache_path.read_bytes() if cache_path.is_file() else b""
        config = trt.Builder(trt.Logger(trt.Logger.WARNING)).create_builder_config()
        cache = config.create_timing_cache(blob)
        engines, timings = {}, {}
        for role, path in art.graphs.items():
            check_interrupted()
            started = time.monotonic()
            engine = engine_from_onnx(art.verified_bytes(role), role, art.geometry, options, cache, str(path))
            engines[role] = f"{role}.plan"
            (tmp / engines[role]).write_bytes(engine)
            timings[role] = round(time.monotonic() - started, 1)
            print(f"built {role} engine in {timings[role]} s", flush=True)
        (tmp / TIMING_CACHE).write_bytes(bytes(cache.serialize()))  # type: ignore[call-overload,unused-ignore]
        sha = {name: file_sha256(tmp / name) for name in engines.values()}
        build = {
            "optimization_level": options.optimization_level,
            "workspace_gib": options.workspace_gib,
            "tf32": False,
            "strongly_typed": True,
            "seconds": timings,
        }
        write_manifest(
            tmp, manifest_for(art.manifest, art.path.resolve(), options.profile, device, engines, sha, build)
        )
    if options.timing_cache:  # keep the shared cache up to date as well
        shutil.copyfile(out / TIMING_CACHE, options.timing_cache)
    return out
