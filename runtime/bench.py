"""`pahs-bench`: speed, memory and efficiency of every available backend and precision, side by side.

Every variant restores the same synthetic frames with the streaming bidirectional driver (lookahead N,
chunk K). Reported per variant: steady-state frames/s (median over repetitions, after a warm-up), the time
split per graph role, peak host memory (VmHWM, reset before each variant) and peak device memory, achieved
FLOP/s (model FLOPs per frame, counting (K+N)/K backward steps, over time) against this machine's ceiling
measured in the same run (a large FP32 matmul), and the ratio to torch eager FP32 in the same run (absolute
times drift on shared machines; ratios measured together do not).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from pahs_export.errors import PahsError

from .backends import Backend
from .driver import DEFAULT_CHUNK, DEFAULT_LOOKAHEAD, restore_stream

# variant name -> (backend, precision, CUDA graphs)
VARIANTS: dict[str, tuple[str, str, bool]] = {
    "torch": ("torch", "fp32", False),
    "onnxruntime-fp32": ("onnxruntime", "fp32", False),
    "onnxruntime-fp16": ("onnxruntime", "fp16", False),
    "onnxruntime-int8": ("onnxruntime", "int8", False),  # TensorRT's Q/DQ conventions
    "onnxruntime-int8-cpu": ("onnxruntime", "int8-cpu", False),  # ONNX Runtime's x86 recipe
    "torch-cuda": ("torch", "fp32", False),
    "torch-cuda-graphs": ("torch", "fp32", True),
    "torch-cuda-fp16": ("torch", "fp16", False),  # autocast
    "torch-cuda-bf16": ("torch", "bf16", False),  # autocast
    "tensorrt-fp16": ("tensorrt", "fp16", False),
    "tensorrt-fp16-graphs": ("tensorrt", "fp16", True),
    "tensorrt-int8": ("tensorrt", "int8", False),
}
CPU_VARIANTS = ("torch", "onnxruntime-fp32", "onnxruntime-fp16", "onnxruntime-int8", "onnxruntime-int8-cpu")


@dataclass
class Result:
    """One (preset, size, variant) measurement."""

    preset: str
    width: int
    height: int
    variant: str
    frames: int  # frames per repetition
    lookahead: int
    chunk: int
    fps: float  # median frames/s over repetitions
    fps_runs: list[float]  # every repetition's frames/s
    seconds_per_role: dict[str, float]  # median seconds per frame spent in each graph role
    steps_per_frame: dict[str, float]  # graph calls per restored frame, per role (backward: about (K+N)/K)
    gflop_per_frame: float  # model FLOPs per restored frame, from the calls actually made
    gflops: float  # achieved GFLOP/s
    ceiling_fraction: float  # gflops / measured matmul ceiling
    peak_host_mib: float  # VmHWM during the variant
    peak_device_mib: float | None  # torch.cuda.max_memory_allocated (CUDA variants)
    vs_torch: float | None = None  # fps / torch eager fps at the same preset and size


@dataclass
class Report:
    machine: dict[str, str]
    ceiling_gflops: float
    results: list[Result] = field(default_factory=list)
    io: dict[str, float] = field(default_factory=dict)  # decode/encode frames/s at each size
    skipped: dict[str, str] = field(default_factory=dict)  # variant -> why it did not run
    growth: dict[str, list[dict]] = field(default_factory=dict)  # cost curves (--growth)

    def to_json(self) -> dict:
        return asdict(self)


def matmul_ceiling(threads: int | None = None, n: int = 2048, reps: int = 5) -> float:
    """GFLOP/s of a large FP32 matmul on this machine (median of ``reps``): the practical compute ceiling."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        torch.mm(a, b)
        times.append(time.perf_counter() - t)
    return 2 * n**3 / statistics.median(times) / 1e9


def _reset_peak_rss() -> None:
    try:  # Linux: writing 5 resets VmHWM to the current RSS
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def _peak_rss_mib() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class TimedBackend(Backend):
    """Wraps a backend and accumulates wall time per role (synchronising CUDA so times are real)."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        for attr in ("name", "bidirectional", "precision", "hidden", "channels", "size_multiple", "device"):
            setattr(self, attr, getattr(inner, attr))
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)

    def upload(self, frame: torch.Tensor) -> torch.Tensor:
        return self.inner.upload(frame)

    def run(self, role: str, *inputs: torch.Tensor):
        t = time.perf_counter()
        out = self.inner.run(role, *inputs)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.seconds[role] += time.perf_counter() - t
        self.calls[role] += 1
        return out


def _synthetic_frames(n: int, width: int, height: int) -> list[torch.Tensor]:
    """Deterministic smooth frames [3,H,W] (content does not change the cost of these graphs)."""
    g = torch.Generator().manual_seed(0)
    base = torch.nn.functional.interpolate(
        torch.rand(1, 3, height // 8 + 1, width // 8 + 1, generator=g), (height, width)
    )
    return [base[0].roll(shifts=i, dims=-1).contiguous() for i in range(n)]


def measure(
    make_backend: Callable[[], Backend],
    frames: list[torch.Tensor],
    lookahead: int,
    chunk: int,
    reps: int,
) -> tuple[list[float], dict[str, float], dict[str, float], float | None]:
    """Frames/s of each repetition, median seconds per frame per role, calls per frame per role, peak device MiB."""
    backend = TimedBackend(make_backend())
    with torch.no_grad():
        for _ in restore_stream(backend, frames[: min(len(frames), 4)], lookahead, chunk):  # warm-up
            pass
        if backend.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(backend.device)
        fps, per_role = [], defaultdict(list)
        for _ in range(reps):
            backend.seconds.clear()
            backend.calls.clear()
            t = time.perf_counter()
            for _ in restore_stream(backend, frames, lookahead, chunk):
                pass
            if backend.device.type == "cuda":
                torch.cuda.synchronize(backend.device)
            fps.append(len(frames) / (time.perf_counter() - t))
            for role, s in backend.seconds.items():
                per_role[role].append(s / len(frames))
    device_mib = torch.cuda.max_memory_allocated(backend.device) / 2**20 if backend.device.type == "cuda" else None
    calls = {r: c / len(frames) for r, c in backend.calls.items()}
    return fps, {r: statistics.median(v) for r, v in per_role.items()}, calls, device_mib


def gflop_per_frame(preset: str, width: int, height: int, calls_per_frame: dict[str, float]) -> float:
    """Model FLOPs per restored frame given the graph calls made per frame (bidirectional or online)."""
    from pahs_export.info import model_info

    flops = model_info(preset, width=width, height=height).flops
    return sum(flops[role] * n for role, n in calls_per_frame.items()) / 1e9


def io_speed(width: int, height: int, frames: int, folder: Path) -> dict[str, float]:
    """Decode and encode frames/s of an H.264 mp4 at this size (PyAV), to compare with inference."""
    from .video import VideoInfo, open_input, open_output

    path = folder / f"io-{width}x{height}.mp4"
    info = VideoInfo(width, height, frames, None, None, 0, 8, None, False, False)
    images = [f.permute(1, 2, 0).numpy() for f in _synthetic_frames(frames, width, height)]
    t = time.perf_counter()
    with open_output(path, info) as writer:
        for im in images:
            writer.write(im)
    encode = frames / (time.perf_counter() - t)
    t = time.perf_counter()
    with open_input(path) as reader:
        n = sum(1 for _ in reader)
    decode = n / (time.perf_counter() - t)
    return {f"decode_fps_{width}x{height}": decode, f"encode_fps_{width}x{height}": encode}


def run_bench(
    presets: Iterable[str],
    sizes: Iterable[tuple[int, int]],
    variants: Iterable[str],
    frames: int,
    lookahead: int = DEFAULT_LOOKAHEAD,
    chunk: int = DEFAULT_CHUNK,
    reps: int = 3,
    workdir: Path | None = None,
    log: Callable[[str], None] = print,
) -> Report:
    """Measure every (preset, size, variant); variants that cannot run here are listed with the reason."""
    import tempfile

    from .engines import OPENERS

    torch.set_num_threads(torch.get_num_threads())
    report = Report(
        machine={
            "cpu": platform.processor() or platform.machine(),
            "cores": str(os.cpu_count()),
            "torch_threads": str(torch.get_num_threads()),
            "torch": torch.__version__,
            "python": platform.python_version(),
            "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else "none",
        },
        ceiling_gflops=matmul_ceiling(),
    )
    try:
        import onnxruntime

        report.machine["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass
    log(f"matmul ceiling: {report.ceiling_gflops:.1f} GFLOP/s (FP32, {torch.get_num_threads()} threads)")
    variants = list(variants)
    for v in variants:
        if v not in VARIANTS:
            raise PahsError(f"unknown backend variant {v!r}: expected some of {', '.join(VARIANTS)}")
    with tempfile.TemporaryDirectory(prefix="pahs-bench-", dir=workdir) as tmp:
        tmpdir = Path(tmp)
        for preset in presets:
            artifacts = _Artifacts(preset, tmpdir)
            for width, height in sizes:
                clip = _synthetic_frames(frames, width, height)
                for variant in variants:
                    backend_name, precision, graphs = VARIANTS[variant]
                    device = "cuda" if variant.startswith("torch-cuda") or backend_name == "tensorrt" else "cpu"
                    if device == "cuda" and not torch.cuda.is_available():
                        report.skipped[variant] = "needs a CUDA GPU"
                        continue
                    try:
                        engine = artifacts.get(backend_name, precision)

                        def make(
                            engine=engine, backend_name=backend_name, device=device, precision=precision, graphs=graphs
                        ) -> Backend:
                            if backend_name == "torch" and precision != "fp32":
                                from pahs_export import load_model

                                from .backends.torch_backend import TorchBackend

                                return TorchBackend(load_model(engine), device, autocast=precision, cuda_graphs=graphs)
                            kind = None if engine is None else _kind(engine)
                            return OPENERS[backend_name](engine, kind, device, graphs)

                        _reset_peak_rss()
                        fps, roles, calls, dev_mib = measure(make, clip, lookahead, chunk, reps)
                    except PahsError as e:
                        report.skipped[variant] = str(e)
                        continue
                    med = statistics.median(fps)
                    gflop = gflop_per_frame(preset, width, height, calls)
                    result = Result(
                        preset, width, height, variant, frames, lookahead, chunk, med, fps, roles, calls, gflop,
                        gflop * med, gflop * med / report.ceiling_gflops, _peak_rss_mib(), dev_mib,
                    )  # fmt: skip
                    report.results.append(result)
                    log(
                        f"{preset} {width}x{height} {variant:<18} {med:7.2f} frames/s  {result.gflops:7.1f} GFLOP/s "
                        f"({result.ceiling_fraction:.0%} of ceiling)  peak host {result.peak_host_mib:.0f} MiB"
                    )
                try:
                    report.io.update(io_speed(width, height, min(frames, 16), tmpdir))
                except Exception as e:  # video I/O is a side measurement: report, do not abort the bench
                    report.skipped["io"] = f"{type(e).__name__}: {e}"
    base = {(r.preset, r.width, r.height): r.fps for r in report.results if r.variant == "torch"}
    for r in report.results:
        ref = base.get((r.preset, r.width, r.height))
        r.vs_torch = r.fps / ref if ref else None
    return report


def _kind(engine: Path) -> str:
    from .engines import engine_kind

    return engine_kind(engine)


class _Artifacts:
    """Exports (once per preset and precision) the graphs the variants need, with random weights: speed does
    not depend on the weights' values, and every preset can be measured, not only those with trained weights."""

    def __init__(self, preset: str, folder: Path) -> None:
        self.preset, self.folder = preset, folder
        self._cache: dict[str, Path] = {}
        self._checkpoint: Path | None = None

    def checkpoint(self) -> Path:
        if self._checkpoint is None:
            from pahs_export import build_model, save_checkpoint

            torch.manual_seed(0)
            self._checkpoint = save_checkpoint(build_model(self.preset), self.folder / f"{self.preset}.safetensors")
        return self._checkpoint

    def get(self, backend: str, precision: str) -> Path | None:
        if backend == "torch":
            return self.checkpoint()
        if backend == "tensorrt":
            raise PahsError("TensorRT variants need engines built with `pahs-export trt` on the GPU machine")
        if precision not in self._cache:
            from pahs_export import load_model
            from pahs_export.onnx_export import artifact_from_model
            from pahs_export.precision import Int8Options

            out = self.folder / f"{self.preset}-{precision}"
            source = {"kind": "file", "path": str(self.checkpoint())}
            int8 = Int8Options(target="cpu" if precision == "int8-cpu" else "tensorrt")
            self._cache[precision] = artifact_from_model(
                load_model(self.checkpoint()), out, source=source | {"sha256": ""}, precision=precision[:4], int8=int8
            )
        return self._cache[precision]


def table(report: Report) -> str:
    rows = [
        f"{'preset':<8}{'size':>10}  {'variant':<18}{'frames/s':>9}{'x torch':>9}{'GFLOP/s':>9}{'ceiling':>9}"
        f"{'fwd ms':>8}{'bwd ms':>8}{'fuse ms':>8}{'host MiB':>10}"
    ]
    for r in report.results:
        ms = {k: 1000 * v for k, v in r.seconds_per_role.items()}
        rows.append(
            f"{r.preset:<8}{f'{r.width}x{r.height}':>10}  {r.variant:<18}{r.fps:>9.2f}"
            f"{(f'{r.vs_torch:.2f}' if r.vs_torch else '-'):>9}{r.gflops:>9.1f}{r.ceiling_fraction:>9.0%}"
            f"{ms.get('forward', 0):>8.1f}{ms.get('backward', 0):>8.1f}{ms.get('fuse', 0):>8.1f}"
            f"{r.peak_host_mib:>10.0f}"
        )
    rows.append(f"matmul ceiling {report.ceiling_gflops:.1f} GFLOP/s; machine {json.dumps(report.machine)}")
    for k, v in report.io.items():
        rows.append(f"{k}: {v:.1f}")
    for k, v in report.skipped.items():
        rows.append(f"skipped {k}: {v}")
    return "\n".join(rows)


def growth_curves(preset: str, size: tuple[int, int], lookahead: int, chunk: int) -> dict[str, list[dict]]:
    """Cost growth on the torch backend: frames/s vs lookahead (the (K+N)/K backward overhead), and peak
    host memory vs video length (flat: the driver holds at most K+N frames)."""
    from .backends.torch_backend import TorchBackend

    torch.manual_seed(0)
    from pahs_export import build_model

    model = build_model(preset)
    width, height = size
    out: dict[str, list[dict]] = {"fps_vs_lookahead": [], "memory_vs_length": []}
    lookaheads = sorted({0, lookahead // 2, lookahead, 2 * lookahead})
    clip = _synthetic_frames(2 * (chunk + lookaheads[-1]), width, height)  # long enough for every lookahead
    for n in lookaheads:
        fps, _, calls, _ = measure(lambda: TorchBackend(model), clip, n, chunk, 1)
        out["fps_vs_lookahead"].append({"lookahead": n, "fps": fps[0], "backward_steps_per_frame": calls["backward"]})
    for length in (2 * (chunk + lookahead), 6 * (chunk + lookahead)):
        backend = TorchBackend(model)
        _reset_peak_rss()
        base = _peak_rss_mib()
        frames = (_synthetic_frames(1, width, height)[0] for _ in range(length))  # streamed, never all in memory
        with torch.no_grad():
            for _ in restore_stream(backend, frames, lookahead, chunk):
                pass
        out["memory_vs_length"].append({"frames": length, "peak_host_mib": _peak_rss_mib(), "start_mib": base})
    return out


def plot_fps(report: Report, path: Path) -> Path:
    """frames/s against resolution (pixels per frame), one line per variant and preset."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    keys = sorted({(r.preset, r.variant) for r in report.results})
    for preset, variant in keys:
        rs = sorted(
            (r for r in report.results if (r.preset, r.variant) == (preset, variant)), key=lambda r: r.width * r.height
        )
        ax.plot([r.width * r.height / 1e6 for r in rs], [r.fps for r in rs], "o-", label=f"{preset} {variant}")
    ax.set(xlabel="megapixels per frame", ylabel="frames/s (bidirectional, median)", xscale="log", yscale="log")
    ax.set_title(f"pahs-bench: {report.machine.get('cores')} CPU cores, GPU: {report.machine.get('gpu')}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)
