"""`pahs-run`: deblur a video or a folder of frames with an exported PAHS engine.

A thin layer over the Python API (:func:`pahs.open` -> :class:`pahs.Restorer`): it parses options, opens the
restorer, calls :meth:`~pahs.Restorer.restore_video` (or the verification), and reports. Messages and
progress go to stderr; stdout carries only the video with ``-o -``, else the ``--verify`` table, or the
per-file summary of a batch.

Several inputs (or a quoted pattern) are a batch, and ``--cluster`` runs one on Ray: the inputs become jobs
(:mod:`runtime.batch`), and :func:`execute` runs them here or on the cluster (:mod:`runtime.cluster`); jobs made
elsewhere (segments of one long video) run through :func:`execute` too.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional
from urllib.parse import unquote, urlparse

import typer

from pahs_export.errors import PahsError
from pahs_export.presets import DEFAULT_LOOKAHEAD
from pahs_export.signals import termination_handlers
from runtime.constants import BACKENDS, DEFAULT_CHUNK, DEFAULT_WARMUP, default_onnx_backend
from runtime.io import OUTPUT_CODECS, OUTPUT_FORMATS, X264_PRESETS

from .common import (
    DebugOpt,
    Fp16Opt,
    Int8Opt,
    Precision,
    QuietOpt,
    choices,
    device_option,
    entry_point,
    new_app,
    precision_from_flags,
    precision_option,
    value_of,
)

# What imports torch (the backends, the driver, the pipeline, pahs) or Ray is imported where it is used, not
# here: `pahs-run --help`, `--version` and a mistyped option answer without loading it (tests/runtime/test_cli.py).
if TYPE_CHECKING:
    from runtime.backends import Backend as OpenBackend  # `Backend` here is the --backend choices
    from runtime.cluster import ClusterOptions
    from runtime.jobs import Job, JobResult

app = new_app("Deblur a video (or a folder of frames) with PAHS.")
VERIFY_ALL = "all"  # what a bare `--verify` stands for
STDIO = "-"  # standard input as VIDEO, standard output as -o
Backend = choices("Backend", BACKENDS)
Format = choices("Format", OUTPUT_FORMATS)
Codec = choices("Codec", OUTPUT_CODECS)
EncoderPreset = choices("EncoderPreset", X264_PRESETS)
CLUSTER_PANEL = "Many videos on a Ray cluster"


def parse_lookahead(text: str | None) -> int | None:
    if text is None:
        return DEFAULT_LOOKAHEAD
    if text.lower() == "all":
        return None
    try:
        return int(text)
    except ValueError:
        raise PahsError(f"expected --lookahead to be a number of frames or 'all', found {text!r}") from None


def parse_verify(text: str | None) -> int | bool | None:
    """``--verify``: False when absent, None for every frame (bare ``--verify`` or ``all``), else a count of at
    least 1 (:func:`runtime.pipeline.check_verify_count` says what is wrong otherwise)."""
    from runtime.pipeline import check_verify_count

    if text is None:
        return False
    if text.lower() == VERIFY_ALL:
        return None
    try:
        count = int(text)
    except ValueError:
        raise PahsError(
            f"expected --verify N with N a number of frames, found {text!r}; give --verify alone to compare every frame"
        ) from None
    check_verify_count(count)
    return count


def parse_fps(text: str | None) -> Fraction | None:
    """``--fps``: 25, 29.97 or 30000/1001 as an exact fraction."""
    if text is None:
        return None
    try:
        fps = Fraction(text)
    except (ValueError, ZeroDivisionError):
        fps = None
    if fps is None or fps <= 0:
        raise PahsError(f"expected --fps to be a positive rate such as 25, 29.97 or 30000/1001, found {text!r}")
    return fps


def default_output(source: str) -> str:
    """``clip.mp4`` -> ``clip.deblurred.mp4``; a frame folder ``seq/`` -> ``seq.deblurred/``; a URL
    ``https://host/a/clip.mov`` -> ``clip.deblurred.mp4`` in the current folder. Standard input has none."""
    from runtime.io import source_kind

    kind = source_kind(source)
    if kind == "stdin" or source.startswith("pipe:"):
        raise PahsError(
            "expected -o with standard input as the video, found none; pass -o FILE, or -o - to write a stream "
            "to standard output"
        )
    if kind == "url":
        stem = Path(unquote(urlparse(source).path)).stem or "stream"
        return f"{stem}.deblurred.mp4"
    video = Path(source)
    if video.is_dir():
        return str(video.with_name(video.name + ".deblurred")) + "/"
    return str(video.with_name(f"{video.stem}.deblurred.mp4"))


class _StderrLog(logging.Handler):
    """The ``pahs`` logger (first-use exports, damaged caches) as ``pahs-run: message`` lines on stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        print(f"pahs-run: {record.getMessage()}", file=sys.stderr, flush=True)


def _say(message: str) -> None:
    typer.echo(f"pahs-run: {message}", err=True)


@app.command()
def run(
    video: Annotated[
        list[str],
        typer.Argument(
            help="Input: a video file (anything FFmpeg decodes), a folder of PNG/JPG frames, a URL (http, https, "
            "rtsp, file: ...; passed to FFmpeg as it is), or - for standard input (y4m, matroska, nut, mpegts ...). "
            "Several inputs, or a quoted pattern ('clips/*.mov', ** allowed), restore each into the folder -o under "
            "its own name, skipping outputs already there (--overwrite redoes them); - and URLs one per run.",
            show_default=False,
        ),
    ],
    engine: Annotated[
        Optional[Path],
        typer.Option(
            "--engine", "-e", help="ONNX artifact folder, .plan, or .safetensors (default: built-in weights)."
        ),
    ] = None,
    checkpoint: Annotated[
        Optional[Path],
        typer.Option(
            "--checkpoint",
            "-c",
            help="Weights (.safetensors) to run instead of the built-in ones: exported for the backend and "
            "--precision on first use, and cached.",
        ),
    ] = None,
    output: Annotated[
        Optional[str],  # a str, not a Path: a trailing "/" (PNG folder) must survive
        typer.Option(
            "--output",
            "-o",
            help="Output .mp4/.mov/.mkv/.nut/.y4m, a folder of PNGs (trailing / or existing folder), or - for "
            "standard output (see --format) (default: VIDEO.deblurred.mp4).",
        ),
    ] = None,
    backend: Annotated[
        Optional[Backend],  # type: ignore[valid-type]
        typer.Option(
            "--backend",
            "-b",
            help="Backend (default: tensorrt for TensorRT artifacts, torch for -e .safetensors; otherwise openvino "
            "on x86-64 CPUs, onnxruntime on other CPUs and on CUDA).",
            show_default=False,
        ),
    ] = None,
    device: Annotated[Optional[str], device_option("cpu; cuda for tensorrt")] = None,
    precision: Annotated[
        Optional[Precision],  # type: ignore[valid-type]
        precision_option(
            "Exports the matching artifact from the weights on first use, and caches it (int8: the CPU "
            "conventions for CPU runtimes, TensorRT's for tensorrt) (default: fp32, or the engine's)."
        ),
    ] = None,
    fp16: Fp16Opt = False,
    int8: Int8Opt = False,
    cuda_graphs: Annotated[
        bool,
        typer.Option(
            "--cuda-graphs",
            help="Capture and replay CUDA graphs per graph, frame size and state buffer (tensorrt, or torch on cuda).",
        ),
    ] = False,
    threads: Annotated[
        Optional[int],
        typer.Option(
            "--threads",
            min=1,
            help="CPU threads of each step (default: every core here; on --cluster, the CPUs each worker reserves, "
            "and with --threads N each reserves N).",
        ),
    ] = None,
    lookahead: Annotated[
        Optional[str],
        typer.Option(
            "--lookahead", "-l", help=f"Future frames each frame sees, or 'all' (default {DEFAULT_LOOKAHEAD})."
        ),
    ] = None,
    chunk: Annotated[
        Optional[int], typer.Option("--chunk", help=f"Frames per backward run (default {DEFAULT_CHUNK}).")
    ] = None,
    verify: Annotated[
        Optional[str],
        typer.Option(
            "--verify",
            help="Compare with the PyTorch reference on the CPU over the first K frames (no K: all), then stop "
            "(unless -o or --compare is given).",
        ),
    ] = None,
    max_pixels: Annotated[
        Optional[int],
        typer.Option(
            "--max-pixels",
            help="Refuse frames of more pixels (width x height) than this (default: what free memory holds).",
        ),
    ] = None,
    spill_dir: Annotated[
        Optional[Path],
        typer.Option(
            "--spill-dir",
            help="Folder for the temporary frames of --lookahead all, which also lets a stream that cannot be "
            "read twice be restored exactly (default: $TMPDIR).",
        ),
    ] = None,
    compare: Annotated[
        Optional[str], typer.Option("--compare", help="Also write a side-by-side (input | restored) video or folder.")
    ] = None,
    fmt: Annotated[
        Optional[Format],  # type: ignore[valid-type]
        typer.Option(
            "--format", "-f", help="Container of -o - (or overriding -o's suffix) (default y4m).", show_default=False
        ),
    ] = None,
    codec: Annotated[
        Optional[Codec],  # type: ignore[valid-type]
        typer.Option(
            "--codec",
            help="Video codec; one the bundled FFmpeg lacks is refused with the list (default: libx264; ffv1 for "
            "--lossless .mkv; rawvideo for y4m/nut/rawvideo; png for folders).",
            show_default=False,
        ),
    ] = None,
    pix_fmt: Annotated[
        Optional[str],
        typer.Option(
            "--pix-fmt",
            help="Pixel format, e.g. yuv420p, yuv444p, yuv420p10le (10-bit) (default: yuv420p, yuv444p for odd "
            "sizes; y4m and nut output of a deep source: yuv420p10le; rawvideo: rgb24, rgb48le for deep sources; "
            "--lossless: RGB).",
        ),
    ] = None,
    encoder_preset: Annotated[
        Optional[EncoderPreset],  # type: ignore[valid-type]
        typer.Option(
            "--encoder-preset",
            help="x264/x265 speed preset, FFmpeg's -preset (default medium). (--preset/-p is the model preset "
            "in every pahs command; here the engine or checkpoint carries it.)",
            show_default=False,
        ),
    ] = None,
    crf: Annotated[
        Optional[int], typer.Option("--crf", help="x264/x265 quality, 0-51, lower is better (default 18).")
    ] = None,
    fps: Annotated[
        Optional[str],
        typer.Option(
            "--fps",
            help="Output frame rate, e.g. 25 or 30000/1001: frames are kept and retimed (default: the source's; "
            "25 for frame folders).",
        ),
    ] = None,
    lossless: Annotated[bool, typer.Option("--lossless", help="Lossless video output.")] = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace existing output files (several inputs: redo them).")
    ] = False,
    json_out: Annotated[
        Optional[Path],
        typer.Option("--json", help="Also write a machine-readable summary (frames, timings, verify) to this file."),
    ] = None,
    cluster: Annotated[
        Optional[str],
        typer.Option(
            "--cluster",
            help="Run on Ray, one video per job on workers that each open the engine once: local (start Ray on "
            "this machine for the run), auto (the cluster `ray start` runs here), or an address (ray://head:10001, "
            "head:6379). Inputs, outputs, the engine and $PAHS_CACHE must be on storage every worker sees. Needs Ray "
            "(the cluster extra of pahs).",
            rich_help_panel=CLUSTER_PANEL,
        ),
    ] = None,
    workers: Annotated[
        Optional[int],
        typer.Option(
            "--workers",
            help="Workers to start (default: with --gpus-per-worker G, the cluster's GPUs / G; else one per machine, "
            "each spreading its steps over the machine's cores; never more than the inputs).",
            rich_help_panel=CLUSTER_PANEL,
        ),
    ] = None,
    gpus_per_worker: Annotated[
        Optional[float],
        typer.Option(
            "--gpus-per-worker",
            help="GPUs each worker reserves, e.g. 1 with --backend tensorrt or --device cuda (default: none, CPU "
            "workers).",
            rich_help_panel=CLUSTER_PANEL,
        ),
    ] = None,
    segment_frames: Annotated[
        Optional[int],
        typer.Option(
            "--segment-frames",
            help="Split one long video into segments of about this many frames (a multiple of --chunk), restored as "
            "jobs (here, or on Ray with --cluster) and joined into -o with the source's audio and timestamps.",
            rich_help_panel=CLUSTER_PANEL,
        ),
    ] = None,
    warmup: Annotated[
        Optional[int],
        typer.Option(
            "--warmup",
            help=f"With --segment-frames: frames of forward warm-up before each segment (default {DEFAULT_WARMUP}; "
            "its cost against the single run: docs/SEGMENTS.md).",
            rich_help_panel=CLUSTER_PANEL,
        ),
    ] = None,
    exact_segments: Annotated[
        bool,
        typer.Option(
            "--exact-segments",
            help="With --segment-frames: one forward-only pass records the state at each boundary first, so the "
            "output is the single run's bit for bit (instead of --warmup).",
            rich_help_panel=CLUSTER_PANEL,
        ),
    ] = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Deblur VIDEO into -o (default VIDEO.deblurred.mp4); several videos into the folder -o, here or on Ray."""
    summary: dict[str, Any] = {"input": video[0] if len(video) == 1 else list(video), "status": "error"}
    pahs_log = logging.getLogger("pahs")
    handler = _StderrLog()
    level = pahs_log.level
    if not quiet:  # first-use exports and what is being written, as pahs-run: lines on stderr
        pahs_log.addHandler(handler)
        pahs_log.setLevel(logging.INFO)
    try:
        _run(**locals())
    except PahsError as e:
        summary = {**summary, "error": str(e)}
        _write_json(json_out, summary)
        raise
    finally:
        pahs_log.removeHandler(handler)
        pahs_log.setLevel(level)


def _run(
    video: list[str],
    engine: Path | None,
    checkpoint: Path | None,
    output: str | None,
    backend: Any,
    device: str | None,
    precision: Any,
    fp16: bool,
    int8: bool,
    cuda_graphs: bool,
    threads: int | None,
    lookahead: str | None,
    chunk: int | None,
    verify: str | None,
    max_pixels: int | None,
    spill_dir: Path | None,
    compare: str | None,
    fmt: Any,
    codec: Any,
    pix_fmt: str | None,
    encoder_preset: Any,
    crf: int | None,
    fps: str | None,
    lossless: bool,
    overwrite: bool,
    json_out: Path | None,
    quiet: bool,
    debug: bool,
    cluster: str | None,
    workers: int | None,
    gpus_per_worker: float | None,
    segment_frames: int | None,
    warmup: int | None,
    exact_segments: bool,
    summary: dict[str, Any],
    **_: Any,
) -> None:
    import pahs
    from runtime.batch import is_batch
    from runtime.io import check_interrupted
    from runtime.pipeline import RunOptions, check_options

    started = time.monotonic()
    if engine is not None and checkpoint is not None:
        raise PahsError(
            f"expected --engine or --checkpoint, found both ({engine}, {checkpoint}); --engine runs an exported "
            "artifact, --checkpoint exports weights: pass one"
        )
    if checkpoint is not None and backend is None:
        backend = default_onnx_backend(device)  # weights are exported for a backend, as the built-in ones are
    chosen = precision_from_flags(precision, fp16, int8)
    frames_to_verify = parse_verify(verify)
    encoder: dict[str, Any] = {"lossless": lossless, "overwrite": overwrite}
    given = {
        "codec": value_of(codec), "pix_fmt": pix_fmt, "format": value_of(fmt), "preset": value_of(encoder_preset),
        "crf": crf,
    }  # fmt: skip
    encoder.update({k: v for k, v in given.items() if v is not None})
    if fps is not None:
        encoder["fps"] = parse_fps(fps)
    window = parse_lookahead(lookahead)
    k = DEFAULT_CHUNK if chunk is None else chunk
    where = cluster_options(cluster, workers, gpus_per_worker, threads)
    choice = EngineChoice(
        engine if engine is not None else checkpoint, engine is not None, value_of(backend), chosen, device,
        cuda_graphs, threads,
    )  # fmt: skip
    if segment_frames is None and (warmup is not None or exact_segments):
        raise PahsError("expected --warmup or --exact-segments with --segment-frames, found no --segment-frames")
    if segment_frames is not None:
        if is_batch(video) or frames_to_verify is not False or compare is not None:
            raise PahsError(
                "expected one input and no --verify or --compare with --segment-frames, found them; split one "
                "video at a time"
            )
        if exact_segments and warmup is not None:
            raise PahsError("expected --exact-segments or --warmup, found both; the exact mode needs no warm-up")
        _run_segmented(
            video[0], output, choice, window, k, max_pixels, encoder, json_out, quiet, where, segment_frames, warmup,
            exact_segments, summary, started,
        )  # fmt: skip
        return
    if is_batch(video) or where.address is not None:
        _run_jobs(
            video, choice, output, lookahead, window, k, frames_to_verify, max_pixels, spill_dir, compare, encoder,
            json_out, quiet, where, summary, started,
        )  # fmt: skip
        return
    (video,) = video  # one input, not a pattern: what pahs-run always did
    target = output if output is not None else (None if frames_to_verify is not False else default_output(video))
    if output == STDIO and frames_to_verify is not False:
        raise PahsError("expected --verify without -o - (its table would mix with the video), found both; drop one")
    restorer = pahs.Restorer(choice.open())
    be = restorer.backend
    opened = time.monotonic()
    summary.update(
        **_what_runs(be),
        lookahead="all" if window is None else window, chunk=k,
    )  # fmt: skip
    check_interrupted()
    check_options(RunOptions(lookahead=window, chunk=k), be, lookahead_given=lookahead is not None)
    if not quiet:
        _say(be.describe())

    if frames_to_verify is not False:
        from pahs.verify import TOLERANCES, verdict, verify_video  # only --verify needs it (start-up time)

        # The reference is FP32 PyTorch on the CPU, whatever runs: a torch backend on CUDA (or under autocast)
        # is compared with it too. Only an FP32 torch backend on the CPU is the reference itself.
        same = be.name == "torch" and be.device.type == "cpu" and be.precision == "fp32"
        reference = be if same else pahs.open_backend(choice.weights, "torch", device="cpu")
        check_interrupted()
        if same and not quiet:
            _say("note: the backend is the PyTorch reference itself; the comparison is trivial")
        typer.echo(f"{'frame':>6}{'max abs':>12}{'PSNR dB':>10}")
        options = RunOptions(lookahead=window, chunk=k, spill_dir=spill_dir, max_pixels=max_pixels, progress=False)
        result = verify_video(
            video, be, reference, options, frames_to_verify,  # type: ignore[arg-type]
            on_frame=lambda f: typer.echo(f"{f.index:>6}{f.max_abs:>12.2e}{f.psnr:>10.2f}"),
        )  # fmt: skip
        tolerance = TOLERANCES[result.precision]
        what = f"{be.describe()} vs PyTorch on cpu over {len(result.frames)} frames"
        typer.echo(verdict(result.passed, what, tolerance))
        summary["verify"] = {
            "frames": len(result.frames),
            "passed": result.passed,
            "tolerance": tolerance.describe(),
            "worst_max_abs": max(f.max_abs for f in result.frames),
            "worst_psnr": min(f.psnr for f in result.frames),
            "per_frame": [{"index": f.index, "max_abs": f.max_abs, "psnr": f.psnr} for f in result.frames],
        }
        if not result.passed:
            _finish(json_out, summary, "verify-failed", started, opened)
            raise typer.Exit(1)
        if target is None and compare is None:
            _finish(json_out, summary, "ok", started, opened)
            return

    run = restorer.restore_video(
        video, target, lookahead=window, chunk=k, compare=compare, progress=not quiet, max_pixels=max_pixels,
        spill_dir=spill_dir, **encoder,
    )  # fmt: skip
    summary.update(
        output=run.output, compare=run.compare, frames=run.frames, width=run.width, height=run.height,
        source_fps=run.fps, frames_per_second=round(run.frames_per_second, 3),
        seconds={"restore": round(run.seconds, 3), "first_frame": _round(run.first_frame_seconds)},
    )  # fmt: skip
    _finish(json_out, summary, "ok", started, opened)
    if not quiet:
        where = "standard output" if run.output == STDIO else run.output
        outputs = " and ".join(x for x in (where, run.compare and f"{run.compare} (input | restored)") if x)
        _say(
            f"wrote {outputs}: {run.frames} frames, {run.width}x{run.height}, in {run.seconds:.1f} s "
            f"({run.frames_per_second:.2f} frames/s)"
        )


@dataclass(frozen=True)
class EngineChoice:
    """What the command line chose to run, and how: :func:`pahs.open_backend`'s arguments."""

    weights: Path | None  # --engine or --checkpoint; None: the built-in weights
    exported: bool  # weights is an exported artifact (--engine), not weights exported on first use
    backend: str | None  # None: the engine's own (ONNX graphs, weights: default_onnx_backend)
    precision: str | None  # None: fp32, or the engine's own
    device: str | None  # None: the backend's default
    cuda_graphs: bool
    threads: int | None  # CPU threads of a step; None: every core here, a worker's reserved CPUs on Ray

    def open(self) -> OpenBackend:
        """The backend, here; a full or read-only cache met by the first-use export is one line saying so."""
        import pahs
        from pahs_export.cache import cache_dir
        from pahs_export.files import disk_error, is_disk_error

        try:
            return pahs.open_backend(
                self.weights, self.backend, self.precision, device=self.device, cuda_graphs=self.cuda_graphs,
                threads=self.threads,
            )  # fmt: skip
        except (OSError, PahsError) as e:  # the first use exports the default engine into the cache
            cause = e if isinstance(e, OSError) else e.__cause__  # AtomicOutput's one line says "-o": not ours here
            if not self.exported and isinstance(cause, OSError) and is_disk_error(cause):
                where = cache_dir().absolute()
                what = "the default engine" if self.weights is None else f"the engine exported from {self.weights}"
                raise disk_error(cause, what, where, "set PAHS_CACHE to another folder") from e
            raise

    def opener(self, be: OpenBackend, on_cluster: bool) -> Callable[..., OpenBackend]:
        """What executors open the backend with: here, ``be``, already open; on a cluster, a picklable call
        that each worker makes itself with ``threads=`` its reserved CPUs (absolute paths: workers may run in
        another folder)."""
        import functools

        import pahs

        if not on_cluster:
            return functools.partial(_same, be)
        weights = Path(os.path.abspath(self.weights)) if self.weights is not None else None
        return functools.partial(
            pahs.open_backend, weights, self.backend, self.precision, device=self.device, cuda_graphs=self.cuda_graphs
        )


def cluster_options(
    cluster: str | None, workers: int | None, gpus_per_worker: float | None, threads: int | None = None
) -> ClusterOptions:
    """``--cluster``, ``--workers`` and ``--gpus-per-worker`` checked (the counts without --cluster are refused,
    and --cluster without Ray installed), before anything is opened; ``--threads`` N makes each worker reserve
    N CPUs (and run N threads)."""
    from runtime.cluster import ClusterOptions, check_cluster_options, require_ray

    if cluster is None:
        counts = (("--workers", workers), ("--gpus-per-worker", gpus_per_worker))
        given = [f"{flag} {value:g}" for flag, value in counts if value is not None]
        if given:
            raise PahsError(
                f"expected {' and '.join(given)} with --cluster, found no --cluster; add --cluster local to run "
                "workers on this machine, or drop it"
            )
        return ClusterOptions()
    if not cluster.strip():
        raise PahsError("expected --cluster local, auto or an address (ray://host:10001, host:6379), found ''")
    options = ClusterOptions(cluster.strip(), workers, gpus_per_worker, None if threads is None else float(threads))
    check_cluster_options(options)
    require_ray()
    return options


def execute(
    jobs: Sequence[Job],
    open_backend: Callable[..., OpenBackend],
    where: ClusterOptions,
    on_result: Callable[[JobResult], None] | None = None,
) -> list[JobResult]:
    """Run ``jobs`` (:class:`runtime.jobs.Job`: videos of a batch, or segments of one long video) here, one after
    the other (``where.address`` None: :func:`runtime.batch.run_local`), or on the Ray cluster ``where`` names
    (:func:`runtime.cluster.run_on_ray`). ``open_backend``: a picklable callable (each worker opens its
    backend with it, once, passing ``threads=``; here it is called with no argument). One result per job, in
    the order of ``jobs``."""
    from runtime.batch import run_local
    from runtime.cluster import run_on_ray

    if where.address is None:
        return run_local(jobs, open_backend, on_result)
    return run_on_ray(
        jobs, open_backend, address=where.address, workers=where.workers, gpus_per_worker=where.gpus_per_worker,
        cpus_per_worker=where.cpus_per_worker, on_result=on_result,
    )  # fmt: skip


def _run_jobs(
    inputs: list[str],
    choice: EngineChoice,
    output: str | None,
    lookahead: str | None,
    window: int | None,
    chunk: int,
    frames_to_verify: int | bool | None,
    max_pixels: int | None,
    spill_dir: Path | None,
    compare: str | None,
    encoder: dict[str, Any],
    json_out: Path | None,
    quiet: bool,
    where: ClusterOptions,
    summary: dict[str, Any],
    started: float,
) -> None:
    """Several inputs, or any on a cluster: plan the jobs, open the backend here once (a first-use export
    happens once, before workers start), run them (:func:`execute`), and report each file."""

    from runtime.batch import BatchProgress, counts, is_batch, plan_batch, plan_single, summary_lines
    from runtime.io import OutputOptions, check_interrupted, source_kind
    from runtime.jobs import JobResult
    from runtime.pipeline import RunOptions, check_options

    batch = is_batch(inputs)
    how = "with several inputs" if batch else "with --cluster"
    if frames_to_verify is not False:
        raise PahsError(f"expected --verify with one input and no --cluster, found it {how}; verify one file alone")
    if compare is not None:
        raise PahsError(f"expected --compare with one input and no --cluster, found it {how}; drop --compare")
    if not batch and (source_kind(inputs[0]) == "stdin" or output == STDIO):
        raise PahsError(
            "expected files with --cluster, found standard input or output (-); workers cannot read or write this "
            "process's pipes: drop --cluster"
        )
    on_cluster = where.address is not None
    options = RunOptions(
        lookahead=window, chunk=chunk, output=OutputOptions(**encoder), progress=False, spill_dir=spill_dir,
        max_pixels=max_pixels,
    )  # fmt: skip
    if batch:
        plan = plan_batch(inputs, output, options, absolute=on_cluster)
    else:
        plan = plan_single(inputs[0], output or default_output(inputs[0]), options, absolute=on_cluster)
    be = choice.open()
    opened = time.monotonic()
    summary.update(
        **_what_runs(be),
        lookahead="all" if window is None else window, chunk=chunk,
        cluster=None if not on_cluster else {"address": where.address, "workers": where.workers,
                                             "gpus_per_worker": where.gpus_per_worker,
                                             "cpus_per_worker": where.cpus_per_worker},
    )  # fmt: skip
    check_interrupted()
    check_options(RunOptions(lookahead=window, chunk=chunk), be, lookahead_given=lookahead is not None)
    jobs = plan.jobs
    if not quiet:
        _say(be.describe())
        settled = counts([e for e in plan.entries if isinstance(e, JobResult)])
        parts = [f"{len(jobs)} to restore" + (f" on Ray ({where.address})" if on_cluster else "")]
        parts += [f"{settled['skipped']} already there (skipped)"] if settled["skipped"] else []
        parts += [f"{settled['failed']} pattern(s) matching nothing"] if settled["failed"] else []
        _say(", ".join(parts))
    open_backend = choice.opener(be, on_cluster)
    del be  # on a cluster the workers' backends take its place (its memory, a GPU's too, is freed)
    logging.getLogger("pahs").setLevel(logging.WARNING)  # one line per file, not the writer's own
    progress = BatchProgress(len(jobs), enabled=not quiet, prefix="pahs-run: ")
    try:
        results = plan.merge(execute(jobs, open_backend, where, on_result=progress))
    finally:
        progress.close()
    total = time.monotonic() - started
    for line in summary_lines(results, total):
        typer.echo(line)
    n = counts(results)
    summary.update(outputs=output, counts=n, frames=sum(r.frames for r in results), files=[asdict(r) for r in results])
    _finish(json_out, summary, "failed" if n["failed"] else "ok", started, opened)
    if n["failed"]:
        raise typer.Exit(1)


def _run_segmented(
    source: str,
    output: str | None,
    choice: EngineChoice,
    window: int | None,
    chunk: int,
    max_pixels: int | None,
    encoder: dict[str, Any],
    json_out: Path | None,
    quiet: bool,
    where: ClusterOptions,
    segment_frames: int,
    warmup: int | None,
    exact: bool,
    summary: dict[str, Any],
    started: float,
) -> None:
    """One long video as segment jobs (:mod:`runtime.segments`), run here or on Ray (:func:`execute`), joined."""

    from runtime.io import OutputOptions
    from runtime.pipeline import RunOptions
    from runtime.segments import restore_segmented

    target = output or default_output(source)
    be = choice.open()
    opened = time.monotonic()
    on_cluster = where.address is not None
    summary.update(
        **_what_runs(be),
        lookahead=window, chunk=chunk, segment_frames=segment_frames,
        warmup=None if exact else (DEFAULT_WARMUP if warmup is None else warmup), exact_segments=exact,
    )  # fmt: skip
    if not quiet:
        _say(be.describe())
    open_backend = choice.opener(be, on_cluster)
    # The exact mode's forward pass runs here, on the backend already open (not a second one); otherwise nothing
    # here needs it once the workers open their own, so it is closed before they start (a GPU's memory too).
    pass_backend = be if exact else None
    del be
    options = RunOptions(lookahead=window, chunk=chunk, output=OutputOptions(**encoder), max_pixels=max_pixels)
    run = restore_segmented(
        source, target, open_backend, options=options, segment_frames=segment_frames,
        warmup=DEFAULT_WARMUP if warmup is None else warmup, exact=exact,
        execute=lambda jobs, opener: execute(jobs, opener, where), pass_backend=pass_backend,
    )  # fmt: skip
    summary.update(
        output=run.output, frames=run.frames, segments=len(run.segments),
        seconds={"pass": round(run.pass_seconds, 3), "segments": round(run.jobs_seconds, 3),
                 "join": round(run.join_seconds, 3)},
        files=[asdict(r) for r in run.results],
    )  # fmt: skip
    _finish(json_out, summary, "ok", started, opened)
    if not quiet:
        _say(
            f"wrote {run.output}: {run.frames} frames from {len(run.segments)} segments "
            f"({'exact' if run.exact else f'warm-up {run.warmup}'}) in {time.monotonic() - started:.1f} s"
        )


def _same(backend: OpenBackend) -> OpenBackend:
    return backend


def _what_runs(be: Any) -> dict[str, str]:
    """The --json summary's fields naming the open backend."""
    return {
        "backend": be.name, "device": str(be.device), "precision": be.precision, "threads": be.threads,
        "engine": be.describe(),
    }  # fmt: skip


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


def _finish(path: Path | None, summary: dict[str, Any], status: str, started: float, opened: float) -> None:
    seconds = summary.setdefault("seconds", {})
    seconds.update(open=round(opened - started, 3), total=round(time.monotonic() - started, 3))
    summary["status"] = status
    _write_json(path, summary)


def _write_json(path: Path | None, summary: dict[str, Any]) -> None:
    """The ``--json`` summary: status ("ok", "verify-failed", "error"), what ran, frames, timings (seconds),
    verify results. Written on failure too, so that a pipeline can read why."""
    if path is None:
        return
    from importlib.metadata import PackageNotFoundError, version

    try:
        summary = {"pahs": version("pahs"), **summary}
    except PackageNotFoundError:
        pass
    try:
        path.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    except OSError as e:
        raise PahsError(
            f"expected a writable --json file, could not write {path} ({e.strerror}); choose another"
        ) from e


def _argv_with_verify_default(argv: list[str]) -> list[str]:
    """`--verify` takes an optional count: a bare `--verify` (followed by nothing, or by another option) means
    all frames. A number after it, negative ones included, is its count (then refused if below one)."""
    out = []
    for i, arg in enumerate(argv):
        out.append(arg)
        if arg == "--verify" and (i + 1 == len(argv) or not argv[i + 1].lstrip("-").isdigit()):
            out.append(VERIFY_ALL)
    return out


def _warn_one_line(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"pahs-run: warning: {message}", file=sys.stderr)


_main = entry_point(app, "pahs-run")


def main(argv: Sequence[str] | None = None) -> int:
    """`pahs-run` (``argv`` None: ``sys.argv[1:]``); returns the exit status. Warnings print as one line.

    SIGINT, SIGTERM and SIGHUP set a flag for the whole run (:func:`runtime.io.termination_handlers`): the run
    stops at its next safe point, removes what it wrote, prints ``pahs-run: interrupted (SIGTERM)`` and
    returns 128 + the signal's number (130 for Ctrl-C)."""
    args = _argv_with_verify_default(list(sys.argv[1:] if argv is None else argv))
    with warnings.catch_warnings(), termination_handlers():
        warnings.showwarning = _warn_one_line
        return _main(args)
