"""What `pahs-bench` reports: one :class:`Result` per (preset, size, variant), the :class:`Report` of a run,
its text table and its plot of frames/s against resolution."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

VARIANT_COLUMN = 18  # width of the variant column (wider when a variant's name needs it)


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
    peak_host_mib: float  # VmHWM during the variant
    peak_device_mib: float | None  # torch.cuda.max_memory_allocated (CUDA variants)
    vs_torch: float | None = None  # fps / torch eager fps at the same preset and size


@dataclass
class Report:
    machine: dict[str, str]
    results: list[Result] = field(default_factory=list)
    io: dict[str, float] = field(default_factory=dict)  # decode/encode frames/s at each size
    skipped: dict[str, str] = field(default_factory=dict)  # variant -> why it did not run
    growth: dict[str, list[dict]] = field(default_factory=dict)  # cost curves (--growth)

    def to_json(self) -> dict:
        return asdict(self)


def table(report: Report) -> str:
    """The report as text: one row per result, then the machine, video I/O and what was skipped.

    No "share of the machine's peak" column: a measured FP32 matmul is beaten by good convolution kernels (and
    INT8 is not bound by it), and a theoretical peak needs the sustained clock and FMA ports, which a VM does
    not report; achieved GFLOP/s and the ratio to torch measured in the same run are what compare."""
    vw = max([VARIANT_COLUMN] + [len(r.variant) + 2 for r in report.results])
    rows = [
        f"{'preset':<8}{'size':>10}  {'variant':<{vw}}{'frames/s':>9}{'x torch':>9}{'GFLOP/s':>9}"
        f"{'fwd ms':>8}{'bwd ms':>8}{'fuse ms':>8}{'host MiB':>10}"
    ]
    for r in report.results:
        ms = {k: 1000 * v for k, v in r.seconds_per_role.items()}
        rows.append(
            f"{r.preset:<8}{f'{r.width}x{r.height}':>10}  {r.variant:<{vw}}{r.fps:>9.2f}"
            f"{(f'{r.vs_torch:.2f}' if r.vs_torch else '-'):>9}{r.gflops:>9.1f}"
            f"{ms.get('forward', 0):>8.1f}{ms.get('backward', 0):>8.1f}{ms.get('fuse', 0):>8.1f}"
            f"{r.peak_host_mib:>10.0f}"
        )
    rows.append(f"machine {json.dumps(report.machine)}")
    for k, v in report.io.items():
        rows.append(f"{k}: {v:.1f}")
    for k, v in report.skipped.items():
        rows.append(f"skipped {k}: {v}")
    return "\n".join(rows)


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
