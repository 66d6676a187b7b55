"""The variants `pahs-bench` compares, the artifacts each needs, and the run over presets, sizes and variants.

A variant is a backend, a precision, CUDA graphs or not, and a device, and its name says them the way
`pahs-run` and `pahs-export` spell them (``torch-cuda-fp16``, ``tensorrt-fp16-graphs``). The INT8 variant of a
CPU runtime (``onnxruntime-int8``, ``openvino-int8``) runs the CPU-target graph (``--int8-target cpu``): that is
what ``--precision int8`` means on a CPU runtime; ``onnxruntime-int8-tensorrt`` runs TensorRT's Q/DQ conventions
on ONNX Runtime (OpenVINO refuses those graphs, so there is no openvino twin). Its engine is one the bench
makes (with random weights: speed does not depend on the weights' values, and every preset can be measured,
not only those with trained weights): a checkpoint for torch, an ONNX export for onnxruntime and openvino
(one export per precision, shared by both). TensorRT engines are built on the GPU machine by `pahs-export
trt`, so the TensorRT variants run only from a prepared artifact passed with ``--engine``. Every variant opens
through :func:`runtime.engines.open_engine`, as `pahs-run` does. Top layer: this module exports artifacts.
"""

from __future__ import annotations

import contextlib
import os
import platform
import statistics
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from pahs_export.artifact import read_manifest
from pahs_export.checkpoint import build_model, load_model, read_metadata, save_checkpoint
from pahs_export.errors import PahsError
from pahs_export.onnx_export import artifact_from_model
from pahs_export.precision import Int8Options
from pahs_export.presets import DEFAULT_LOOKAHEAD
from runtime.backends import Backend
from runtime.bench.measure import (
    DEFAULT_REPS,
    gflop_per_frame,
    io_speed,
    measure,
    peak_rss_mib,
    reset_peak_rss,
    synthetic_frames,
)
from runtime.bench.report import Report, Result
from runtime.driver import DEFAULT_CHUNK, restore_stream
from runtime.engines import default_backend, engine_kind, open_engine

from .cli.common import library_version
from .export_cache import DEFAULT_SET

IO_FRAMES = 16  # at most this many frames for the decode/encode measurement
TORCH_BASELINE = "torch"  # the variant every other one is compared with (vs_torch)


@dataclass(frozen=True)
class Engine:
    """A prepared artifact given with ``--engine``: what it is and what it was made from."""

    path: Path
    kind: str  # one of runtime.engines.ENGINE_KINDS
    preset: str
    precision: str

    @classmethod
    def read(cls, path: str | Path) -> Engine:
        path = Path(path)
        kind = engine_kind(path)
        if kind == "checkpoint":
            return cls(path, kind, read_metadata(path)["preset"], "fp32")
        manifest = read_manifest(path)
        return cls(path, kind, manifest.preset, manifest.precision)


# The kind of engine each runtime.engines backend runs (one of runtime.engines.ENGINE_KINDS).
BACKEND_KINDS = {"torch": "checkpoint", "onnxruntime": "onnx", "openvino": "onnx", "tensorrt": "tensorrt"}


@dataclass(frozen=True)
class Variant:
    """How one variant runs; ``engine`` None: the bench makes the artifact itself."""

    backend: str  # a runtime.engines backend: torch, onnxruntime, openvino, tensorrt
    precision: str  # fp32, fp16, bf16 (torch: autocast), int8
    cuda_graphs: bool = False
    device: str = "cpu"  # cpu, or cuda (pahs-bench --device cuda:N picks the GPU)
    engine: Engine | None = None
    int8_target: str | None = None  # INT8 ONNX graphs the bench exports: "cpu" (x86 runtimes) or "tensorrt"

    @property
    def autocast(self) -> str | None:
        """The torch backend's autocast dtype for a reduced precision (the others take it from the engine)."""
        return self.precision if self.backend == "torch" and self.precision in ("fp16", "bf16") else None

    @property
    def kind(self) -> str:
        """The kind of engine the backend runs (checkpoint, onnx or tensorrt)."""
        return BACKEND_KINDS[self.backend]

    @property
    def on_cuda(self) -> bool:
        return self.device.startswith("cuda")


VARIANTS: dict[str, Variant] = {
    "torch": Variant("torch", "fp32"),
    "onnxruntime-fp32": Variant("onnxruntime", "fp32"),
    "onnxruntime-fp16": Variant("onnxruntime", "fp16"),
    "onnxruntime-int8": Variant("onnxruntime", "int8", int8_target="cpu"),  # ONNX Runtime's x86 recipe
    "onnxruntime-int8-tensorrt": Variant("onnxruntime", "int8", int8_target="tensorrt"),  # TensorRT's Q/DQ
    "openvino-fp32": Variant("openvino", "fp32"),
    "openvino-fp16": Variant("openvino", "fp16"),
    "openvino-int8": Variant("openvino", "int8", int8_target="cpu"),  # OpenVINO refuses TensorRT's conventions
    "torch-cuda": Variant("torch", "fp32", device="cuda"),
    "torch-cuda-graphs": Variant("torch", "fp32", cuda_graphs=True, device="cuda"),
    "torch-cuda-fp16": Variant("torch", "fp16", device="cuda"),  # autocast
    "torch-cuda-bf16": Variant("torch", "bf16", device="cuda"),  # autocast
    "tensorrt-fp16": Variant("tensorrt", "fp16", device="cuda"),
    "tensorrt-fp16-graphs": Variant("tensorrt", "fp16", cuda_graphs=True, device="cuda"),
    "tensorrt-int8": Variant("tensorrt", "int8", device="cuda"),
}
CPU_VARIANTS = tuple(name for name, v in VARIANTS.items() if not v.on_cuda)


def plan_variants(
    variants: Iterable[str] | None,
    engines: Iterable[Engine] = (),
    presets: Sequence[str] | None = None,
    device: str | None = None,
) -> dict[str, Variant]:
    """Variant name -> how it runs, with the ``engines`` given: a TensorRT one serves the TensorRT variants of
    its precision; any other adds a variant ``<its default backend>-<precision> (<file name>)``.

    ``variants`` None: the CPU variants, and the TensorRT ones that an engine serves. ``presets``: those of the
    run; every engine must have been made from one of them. ``device``: the GPU of the CUDA variants (cuda or
    cuda:N; None: cuda), or cpu: the CPU variants only (asking for a CUDA one is then an error)."""
    engines = list(engines)
    variants = None if variants is None else list(variants)
    for name in variants or ():
        if name not in VARIANTS:
            raise PahsError(f"unknown backend variant {name!r}: expected some of {', '.join(VARIANTS)}")
    if device == "cpu":
        cuda = [n for n in variants or () if VARIANTS[n].on_cuda]
        cuda += [f"--engine {e.path}" for e in engines if e.kind == "tensorrt"]
        if cuda:
            raise PahsError(
                f"expected only CPU variants with --device cpu, found {', '.join(cuda)}; drop them, or pass "
                "--device cuda (or cuda:N) to run them"
            )
    trt: dict[str, Engine] = {}
    for e in engines:
        if presets is not None and e.preset not in presets:
            raise PahsError(
                f"expected --presets to include {e.preset} (the preset of --engine {e.path}), found "
                f"{', '.join(presets)}; add --presets {e.preset}"
            )
        if e.kind != "tensorrt":
            continue
        served = [n for n, v in VARIANTS.items() if v.kind == "tensorrt" and v.precision == e.precision]
        if not served:
            known = sorted({v.precision for v in VARIANTS.values() if v.kind == "tensorrt"})
            raise PahsError(
                f"expected a TensorRT engine of precision {' or '.join(known)}, found {e.precision} in {e.path}; "
                "build one with `pahs-export trt`"
            )
        if e.precision in trt:
            raise PahsError(
                f"expected one TensorRT {e.precision} engine, found {trt[e.precision].path} and {e.path}; "
                "pass one of them"
            )
        if variants is not None and not set(served) & set(variants):
            raise PahsError(
                f"expected --backends to include {' or '.join(served)} for the TensorRT engine {e.path}, found "
                f"{', '.join(variants)}; add --backends {served[0]}"
            )
        trt[e.precision] = e
    if variants is None:
        variants = list(CPU_VARIANTS) + [n for n, v in VARIANTS.items() if v.kind == "tensorrt" and v.precision in trt]
    plan: dict[str, Variant] = {}
    for name in variants:
        v = VARIANTS[name]
        if v.on_cuda and device is not None:
            v = replace(v, device=device)
        plan[name] = replace(v, engine=trt.get(v.precision)) if v.kind == "tensorrt" else v
    for e in engines:
        if e.kind == "tensorrt":
            continue
        backend = default_backend(e.kind, engine=e.path)  # as pahs-run would run it
        name = f"{backend}-{e.precision} ({e.path.name})"
        if name in plan:
            name = f"{backend}-{e.precision} ({e.path})"
        if name in plan:
            raise PahsError(f"expected each --engine once, found {e.path} twice")
        plan[name] = Variant(backend, e.precision, engine=e)
    return plan


class _Artifacts:
    """The engines of one preset's variants: made once per preset and precision (random weights), or given."""

    def __init__(self, preset: str, folder: Path) -> None:
        self.preset, self.folder = preset, folder
        self._cache: dict[str, Path] = {}
        self._checkpoint: Path | None = None

    def checkpoint(self) -> Path:
        if self._checkpoint is None:
            torch.manual_seed(0)
            self._checkpoint = save_checkpoint(build_model(self.preset), self.folder / f"{self.preset}.safetensors")
        return self._checkpoint

    def get(self, variant: Variant) -> Path:
        if variant.engine is not None:
            return variant.engine.path
        if variant.kind == "checkpoint":
            return self.checkpoint()
        if variant.kind == "tensorrt":
            raise PahsError(
                f"needs a TensorRT {variant.precision} engine, which the bench cannot build: build one with "
                "`pahs-export trt` on this machine and pass it with --engine"
            )
        return self._onnx(variant.precision, variant.int8_target)

    def _onnx(self, precision: str, int8_target: str | None = None) -> Path:
        """The ONNX export of ``precision`` (INT8: for ``int8_target``), shared by onnxruntime and openvino."""
        name = f"{precision}-{int8_target}" if precision == "int8" else precision
        if name not in self._cache:
            # INT8: calibrated on the project's default set, as `pahs-export onnx` does
            calibration = DEFAULT_SET if precision == "int8" else None
            out = self.folder / f"{self.preset}-{name}"
            source = {"kind": "file", "path": str(self.checkpoint()), "sha256": ""}
            int8 = Int8Options(target=int8_target or "tensorrt")
            self._cache[name] = artifact_from_model(
                load_model(self.checkpoint()),
                out,
                source=source,
                precision=precision,
                int8=int8,
                calibration=calibration,
            )
        return self._cache[name]


# Instruction sets that decide CPU inference speed, as /proc/cpuinfo names them, in the order reported.
ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "avx512_fp16", "avx_vnni")
ISA_FLAGS += ("amx_tile", "amx_int8", "amx_bf16")


def cpu_description() -> tuple[str, str]:
    """(CPU model, its speed-relevant instruction sets) from /proc/cpuinfo; the platform's names elsewhere."""
    model, flags = "", set()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and not model:
                model = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = set(value.split())
    isa = " ".join(f for f in ISA_FLAGS if f in flags)
    return model or platform.processor() or platform.machine(), isa or "unknown"


def _machine() -> dict[str, str]:
    model, isa = cpu_description()
    machine = {
        "cpu": model,
        "isa": isa,
        "cores": str(os.cpu_count()),
        "torch_threads": str(torch.get_num_threads()),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else "none",
    }
    machine |= {library: library_version(library) for library in ("onnxruntime", "openvino")}
    return machine


def run_bench(
    presets: Iterable[str],
    sizes: Iterable[tuple[int, int]],
    variants: Iterable[str] | None,
    frames: int,
    lookahead: int = DEFAULT_LOOKAHEAD,
    chunk: int = DEFAULT_CHUNK,
    reps: int = DEFAULT_REPS,
    workdir: Path | None = None,
    log: Callable[[str], None] = print,
    engines: Iterable[str | Path | Engine] = (),
    device: str | None = None,
) -> Report:
    """Measure every (preset, size, variant); variants that cannot run here are listed with the reason.

    ``variants`` None: the CPU ones and the TensorRT ones that ``engines`` serve. ``engines``: prepared
    artifacts (see :func:`plan_variants`), each measured with the preset it was made from. ``device``: the GPU
    of the CUDA variants, or cpu for the CPU variants only (see :func:`plan_variants`)."""
    presets, sizes = list(presets), list(sizes)
    read = [e if isinstance(e, Engine) else Engine.read(e) for e in engines]
    plan = plan_variants(None if variants is None else list(variants), read, presets, device)
    nw = max((len(name) for name in plan), default=0)
    torch.set_num_threads(torch.get_num_threads())
    report = Report(machine=_machine())
    with tempfile.TemporaryDirectory(prefix="pahs-bench-", dir=workdir) as tmp:
        tmpdir = Path(tmp)
        for preset in presets:
            artifacts = _Artifacts(preset, tmpdir)
            for width, height in sizes:
                clip = synthetic_frames(frames, width, height)
                for name, variant in plan.items():
                    if variant.engine is not None and variant.engine.preset != preset:
                        continue  # measured with its own preset
                    if variant.on_cuda and not torch.cuda.is_available():
                        report.skipped[name] = "needs a CUDA GPU"
                        continue
                    try:
                        engine = artifacts.get(variant)

                        def make(engine: Path = engine, v: Variant = variant) -> Backend:
                            return open_engine(
                                engine, v.backend, v.device, cuda_graphs=v.cuda_graphs, autocast=v.autocast
                            )

                        reset_peak_rss()
                        fps, roles, calls, dev_mib = measure(make, clip, lookahead, chunk, reps)
                    except PahsError as e:
                        report.skipped[name] = str(e)
                        continue
                    med = statistics.median(fps)
                    gflop = gflop_per_frame(preset, width, height, calls)
                    result = Result(
                        preset, width, height, name, frames, lookahead, chunk, med, fps, roles, calls, gflop,
                        gflop * med, peak_rss_mib(), dev_mib,
                    )  # fmt: skip
                    report.results.append(result)
                    log(
                        f"{preset} {width}x{height} {name:<{nw}} {med:7.2f} frames/s  {result.gflops:7.1f} GFLOP/s "
                        f"peak host {result.peak_host_mib:.0f} MiB"
                    )
                try:
                    report.io.update(io_speed(width, height, min(frames, IO_FRAMES), tmpdir))
                except Exception as e:  # video I/O is a side measurement: report, do not abort the bench
                    report.skipped["io"] = f"{type(e).__name__}: {e}"
    base = {(r.preset, r.width, r.height): r.fps for r in report.results if r.variant == TORCH_BASELINE}
    for r in report.results:
        ref = base.get((r.preset, r.width, r.height))
        r.vs_torch = r.fps / ref if ref else None
    return report


def growth_curves(
    preset: str, size: tuple[int, int], lookahead: int, chunk: int, workdir: Path | None = None
) -> dict[str, list[dict]]:
    """Cost growth on the torch backend: frames/s vs lookahead (the (K+N)/K backward overhead), and peak
    host memory vs video length (flat: the driver holds at most K+N frames)."""
    width, height = size
    out: dict[str, list[dict]] = {"fps_vs_lookahead": [], "memory_vs_length": []}
    lookaheads = sorted({0, lookahead // 2, lookahead, 2 * lookahead})
    with tempfile.TemporaryDirectory(prefix="pahs-bench-", dir=workdir) as tmp:
        variant = VARIANTS[TORCH_BASELINE]
        checkpoint = _Artifacts(preset, Path(tmp)).get(variant)

        def make() -> Backend:
            return open_engine(checkpoint, variant.backend, variant.device)

        clip = synthetic_frames(2 * (chunk + lookaheads[-1]), width, height)  # long enough for every lookahead
        for n in lookaheads:
            fps, _, calls, _ = measure(make, clip, n, chunk, 1)
            out["fps_vs_lookahead"].append(
                {"lookahead": n, "fps": fps[0], "backward_steps_per_frame": calls["backward"]}
            )
        for length in (2 * (chunk + lookahead), 6 * (chunk + lookahead)):
            backend = make()
            reset_peak_rss()
            base = peak_rss_mib()
            frames = (synthetic_frames(1, width, height)[0] for _ in range(length))  # streamed, never all in memory
            with torch.no_grad():
                for _ in restore_stream(backend, frames, lookahead, chunk):
                    pass
            out["memory_vs_length"].append({"frames": length, "peak_host_mib": peak_rss_mib(), "start_mib": base})
    return out
