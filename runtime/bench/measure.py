"""Measuring one backend: peak host memory, time per graph role, model FLOPs
per frame and the speed of video decode and encode at the same size.

Runtime layer: everything here takes an open :class:`~runtime.backends.Backend` (or a way to open one) and
knows nothing of how its engine was made.
"""

from __future__ import annotations

import statistics
import time
from collections import defaultdict
from collections.abc import Callable, Hashable, Mapping
from pathlib import Path
from typing import TypeVar

import torch

from pahs_export.info import model_info
from pahs_export.signals import check_interrupted

from ..backends import Backend, BackendWrapper, StepOutputs
from ..driver import restore_stream
from ..io import VideoInfo, open_input, open_output

K = TypeVar("K", bound=Hashable)

DEFAULT_FRAMES = 24  # frames per repetition
DEFAULT_REPS = 3  # repetitions; the median is reported
DEFAULT_SIZE = (640, 352)  # width, height of the synthetic frames
WARMUP_FRAMES = 4  # frames restored once before timing (graph capture, kernel selection, allocations)


def median_seconds(run: Callable[[], object], reps: int) -> float:
    """Median wall time of ``reps`` calls of ``run``, after one untimed call (warm-up)."""
    run()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        run()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def interleaved_medians(runs: Mapping[K, Callable[[], object]], reps: int = 7, warmup: int = 2) -> dict[K, float]:
    """Median wall time in seconds of each of ``runs``, timed in turn (``warmup`` untimed rounds, then ``reps``
    timed ones, each round calling every run once), so that a machine's drift over time (other jobs, clock
    changes) falls on all of them alike and their ratio stays fair."""
    times: dict[K, list[float]] = {key: [] for key in runs}
    for round_ in range(warmup + reps):
        for key, run in runs.items():
            t = time.perf_counter()
            run()
            if round_ >= warmup:
                times[key].append(time.perf_counter() - t)
    return {key: statistics.median(t) for key, t in times.items()}


def reset_peak_rss() -> None:
    """Start a new peak host memory measurement (Linux; elsewhere the peak is the process's)."""
    try:  # Linux: writing 5 resets VmHWM to the current RSS
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def peak_rss_mib() -> float:
    """Peak resident host memory since :func:`reset_peak_rss` (VmHWM), in MiB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class TimedBackend(BackendWrapper):
    """Accumulates the wall time and the number of calls of ``inner``'s steps per role (synchronising CUDA so
    that times are real)."""

    def __init__(self, inner: Backend) -> None:
        super().__init__(inner)
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)

    def run(self, role: str, *inputs: torch.Tensor) -> StepOutputs:
        check_interrupted()  # a safe point for a termination signal, outside the timed part
        t = time.perf_counter()
        out = self.inner.run(role, *inputs)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.seconds[role] += time.perf_counter() - t
        self.calls[role] += 1
        return out


def synthetic_frames(n: int, width: int, height: int) -> list[torch.Tensor]:
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
        for _ in restore_stream(backend, frames[: min(len(frames), WARMUP_FRAMES)], lookahead, chunk):
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
    """Model FLOPs per restored frame given the graph calls made per frame (bidirectional or online: an online
    model's only graph is "step")."""
    flops = model_info(preset, bidirectional="step" not in calls_per_frame, width=width, height=height).flops
    return sum(flops[role] * n for role, n in calls_per_frame.items()) / 1e9


def io_speed(width: int, height: int, frames: int, folder: Path) -> dict[str, float]:
    """Decode and encode frames/s of an H.264 mp4 at this size (PyAV), to compare with inference."""
    path = folder / f"io-{width}x{height}.mp4"
    info = VideoInfo(
        width=width, height=height, frames=frames, fps=None, time_base=None, rotation=0, bit_depth=8,
        pix_fmt=None, has_audio=False, is_folder=False,
    )  # fmt: skip
    images = [f.permute(1, 2, 0).numpy() for f in synthetic_frames(frames, width, height)]
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
