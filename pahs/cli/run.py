"""`pahs-run`: deblur a video or a folder of frames with an exported PAHS engine.

A thin layer over the Python API (:func:`pahs.open` -> :class:`pahs.Restorer`): the command turns its options into
one :class:`~pahs.cli.request.RunRequest` (checked once) and hands it to the path that runs it: one video
(:func:`run_single`: :meth:`~pahs.Restorer.restore_video`, after ``--verify`` if asked), several inputs or any on
Ray (:func:`run_jobs`: :mod:`runtime.batch` plans the jobs, :func:`runtime.executors.execute` runs them here or on
the cluster), or one long video in segments (:func:`run_segments`: :mod:`runtime.segments`). Messages and
progress go to stderr; stdout carries only the video with ``-o -``, else the ``--verify`` table, or the per-file
summary of a batch; :class:`RunReport` keeps the ``--json`` summary.

What imports torch (the backends, the driver, the pipeline, pahs' API) or Ray is imported where it is used, not
here: `pahs-run --help`, `--version` and a mistyped option answer without loading it
(tests/runtime/test_cli_startup.py).
"""

from __future__ import annotations

import json
import logging
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from pahs_export.errors import PahsError
from pahs_export.presets import DEFAULT_LOOKAHEAD
from pahs_export.signals import termination_handlers
from runtime.constants import BACKENDS, DEFAULT_CHUNK, DEFAULT_WARMUP
from runtime.io import OUTPUT_CODECS, OUTPUT_FORMATS, X264_PRESETS, write_file_output

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
    precision_option,
)
from .request import (
    STDIO,
    VERIFY_ALL,
    RunRequest,
    SummaryRefused,
    cluster_options,
    default_output,
    encoder_options,
    engine_choice,
    parse_lookahead,
    parse_verify,
    segmenting,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from runtime.backends import Backend as OpenBackend  # `Backend` here is the --backend choices
    from runtime.jobs import Job, JobResult

app = new_app("Deblur a video (or a folder of frames) with PAHS.")
Backend = choices("Backend", BACKENDS)
Format = choices("Format", OUTPUT_FORMATS)
Codec = choices("Codec", OUTPUT_CODECS)
EncoderPreset = choices("EncoderPreset", X264_PRESETS)
CLUSTER_PANEL = "Many videos on a Ray cluster"

# -- the options, one type each (the command declares them in the order --help lists them) ----------------------

VideoArg = Annotated[
    list[str],
    typer.Argument(
        help="Input: a video file (anything FFmpeg decodes), a folder of PNG/JPG frames, a URL (http, https, "
        "rtsp, file: ...; passed to FFmpeg as it is), or - for standard input (y4m, matroska, nut, mpegts ...). "
        "Several inputs, or a quoted pattern ('clips/*.mov', ** allowed), restore each into the folder -o under "
        "its own name, skipping outputs already there (--overwrite redoes them); - and URLs one per run.",
        show_default=False,
    ),
]
EngineOpt = Annotated[
    Optional[Path],
    typer.Option("--engine", "-e", help="ONNX artifact folder, .plan, or .safetensors (default: built-in weights)."),
]
CheckpointOpt = Annotated[
    Optional[Path],
    typer.Option(
        "--checkpoint",
        "-c",
        help="Weights (.safetensors) to run instead of the built-in ones: exported for the backend and "
        "--precision on first use, and cached.",
    ),
]
OutputOpt = Annotated[
    Optional[str],  # a str, not a Path: a trailing "/" (PNG folder) must survive
    typer.Option(
        "--output",
        "-o",
        help="Output .mp4/.mov/.mkv/.nut/.y4m, a folder of PNGs (trailing / or existing folder), or - for "
        "standard output (see --format) (default: VIDEO.deblurred.mp4).",
    ),
]
BackendOpt = Annotated[
    Optional[Backend],  # type: ignore[valid-type]
    typer.Option(
        "--backend",
        "-b",
        help="Backend (default: tensorrt for TensorRT artifacts, torch for -e .safetensors; otherwise openvino "
        "on x86-64 CPUs, onnxruntime on other CPUs, on CUDA and for INT8 artifacts in TensorRT's conventions).",
        show_default=False,
    ),
]
DeviceOpt = Annotated[Optional[str], device_option("cpu; cuda for tensorrt")]
PrecisionOpt = Annotated[
    Optional[Precision],  # type: ignore[valid-type]
    precision_option(
        "Exports the matching artifact from the weights on first use, and caches it (int8: the CPU "
        "conventions for CPU runtimes, TensorRT's for tensorrt) (default: fp32, or the engine's)."
    ),
]
CudaGraphsOpt = Annotated[
    bool,
    typer.Option(
        "--cuda-graphs",
        help="Capture and replay CUDA graphs per graph, frame size and state buffer (tensorrt, or torch on cuda).",
    ),
]
ThreadsOpt = Annotated[
    Optional[int],
    typer.Option(
        "--threads",
        min=1,
        help="CPU threads of each step (default: every core here; on --cluster, the CPUs each worker reserves, "
        "and with --threads N each reserves N).",
    ),
]
LookaheadOpt = Annotated[
    Optional[str],
    typer.Option("--lookahead", "-l", help=f"Future frames each frame sees, or 'all' (default {DEFAULT_LOOKAHEAD})."),
]
ChunkOpt = Annotated[Optional[int], typer.Option("--chunk", help=f"Frames per backward run (default {DEFAULT_CHUNK}).")]
VerifyOpt = Annotated[
    Optional[str],
    typer.Option(
        "--verify",
        help="Compare with the PyTorch reference on the CPU over the first K frames (no K: all), then stop "
        "(unless -o or --compare is given).",
    ),
]
MaxPixelsOpt = Annotated[
    Optional[int],
    typer.Option(
        "--max-pixels",
        help="Refuse frames of more pixels (width x height) than this (default: what free memory holds).",
    ),
]
SpillDirOpt = Annotated[
    Optional[Path],
    typer.Option(
        "--spill-dir",
        help="Folder for the temporary frames of --lookahead all, which also lets a stream that cannot be "
        "read twice be restored exactly (default: $TMPDIR).",
    ),
]
CompareOpt = Annotated[
    Optional[str], typer.Option("--compare", help="Also write a side-by-side (input | restored) video or folder.")
]
FmtOpt = Annotated[
    Optional[Format],  # type: ignore[valid-type]
    typer.Option(
        "--format", "-f", help="Container of -o - (or overriding -o's suffix) (default y4m).", show_default=False
    ),
]
CodecOpt = Annotated[
    Optional[Codec],  # type: ignore[valid-type]
    typer.Option(
        "--codec",
        help="Video codec; one the bundled FFmpeg lacks is refused with the list (default: libx264; ffv1 for "
        "--lossless .mkv; rawvideo for y4m/nut/rawvideo; png for folders).",
        show_default=False,
    ),
]
PixFmtOpt = Annotated[
    Optional[str],
    typer.Option(
        "--pix-fmt",
        help="Pixel format, e.g. yuv420p, yuv444p, yuv420p10le (10-bit) (default: the source's bit depth and "
        "chroma where the codec has them, else the nearest, said in one line; 4:2:0 for RGB sources, 4:4:4 for "
        "odd sizes; rawvideo: rgb24, rgb48le for deep sources; --lossless: RGB).",
    ),
]
EncoderPresetOpt = Annotated[
    Optional[EncoderPreset],  # type: ignore[valid-type]
    typer.Option(
        "--encoder-preset",
        help="x264/x265 speed preset, FFmpeg's -preset (default medium). (--preset/-p is the model preset "
        "in every pahs command; here the engine or checkpoint carries it.)",
        show_default=False,
    ),
]
CrfOpt = Annotated[Optional[int], typer.Option("--crf", help="x264/x265 quality, 0-51, lower is better (default 18).")]
FpsOpt = Annotated[
    Optional[str],
    typer.Option(
        "--fps",
        help="Output frame rate, e.g. 25 or 30000/1001: frames are kept and retimed (default: the source's; "
        "25 for frame folders).",
    ),
]
LosslessOpt = Annotated[bool, typer.Option("--lossless", help="Lossless video output.")]
OverwriteOpt = Annotated[
    bool, typer.Option("--overwrite", help="Replace existing output files (several inputs: redo them).")
]
JsonOutOpt = Annotated[
    Optional[Path],
    typer.Option("--json", help="Also write a machine-readable summary (frames, timings, verify) to this file."),
]
ClusterOpt = Annotated[
    Optional[str],
    typer.Option(
        "--cluster",
        help="Run on Ray, one video per job on workers that each open the engine once: local (start Ray on "
        "this machine for the run), auto (the cluster `ray start` runs here), or an address (ray://head:10001, "
        "head:6379). Inputs, outputs, the engine and $PAHS_CACHE must be on storage every worker sees. Needs Ray "
        "(the cluster extra of pahs).",
        rich_help_panel=CLUSTER_PANEL,
    ),
]
WorkersOpt = Annotated[
    Optional[int],
    typer.Option(
        "--workers",
        help="Workers to start (default: with --gpus-per-worker G, the cluster's GPUs / G; else one per machine, "
        "each spreading its steps over the machine's cores; never more than the inputs).",
        rich_help_panel=CLUSTER_PANEL,
    ),
]
GpusPerWorkerOpt = Annotated[
    Optional[float],
    typer.Option(
        "--gpus-per-worker",
        help="GPUs each worker reserves, e.g. 1 with --backend tensorrt or --device cuda (default: none, CPU workers).",
        rich_help_panel=CLUSTER_PANEL,
    ),
]
SegmentFramesOpt = Annotated[
    Optional[int],
    typer.Option(
        "--segment-frames",
        help="Split one long video into segments of about this many frames (a multiple of --chunk), restored as "
        "jobs (here, or on Ray with --cluster) and joined into -o with the source's audio and timestamps.",
        rich_help_panel=CLUSTER_PANEL,
    ),
]
WarmupOpt = Annotated[
    Optional[int],
    typer.Option(
        "--warmup",
        help=f"With --segment-frames: frames of forward warm-up before each segment (default {DEFAULT_WARMUP}; "
        "its cost against the single run: docs/SEGMENTS.md).",
        rich_help_panel=CLUSTER_PANEL,
    ),
]
ExactSegmentsOpt = Annotated[
    bool,
    typer.Option(
        "--exact-segments",
        help="With --segment-frames: one forward-only pass records the state at each boundary first, so the "
        "output is the single run's bit for bit (instead of --warmup).",
        rich_help_panel=CLUSTER_PANEL,
    ),
]


@app.command()
def run(
    video: VideoArg,
    engine: EngineOpt = None,
    checkpoint: CheckpointOpt = None,
    output: OutputOpt = None,
    backend: BackendOpt = None,
    device: DeviceOpt = None,
    precision: PrecisionOpt = None,
    fp16: Fp16Opt = False,
    int8: Int8Opt = False,
    cuda_graphs: CudaGraphsOpt = False,
    threads: ThreadsOpt = None,
    lookahead: LookaheadOpt = None,
    chunk: ChunkOpt = None,
    verify: VerifyOpt = None,
    max_pixels: MaxPixelsOpt = None,
    spill_dir: SpillDirOpt = None,
    compare: CompareOpt = None,
    fmt: FmtOpt = None,
    codec: CodecOpt = None,
    pix_fmt: PixFmtOpt = None,
    encoder_preset: EncoderPresetOpt = None,
    crf: CrfOpt = None,
    fps: FpsOpt = None,
    lossless: LosslessOpt = False,
    overwrite: OverwriteOpt = False,
    json_out: JsonOutOpt = None,
    cluster: ClusterOpt = None,
    workers: WorkersOpt = None,
    gpus_per_worker: GpusPerWorkerOpt = None,
    segment_frames: SegmentFramesOpt = None,
    warmup: WarmupOpt = None,
    exact_segments: ExactSegmentsOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Deblur VIDEO into -o (default VIDEO.deblurred.mp4); several videos into the folder -o, here or on Ray."""
    with RunReport(video, json_out, quiet) as report:
        request = RunRequest(
            tuple(video),
            engine_choice(engine, checkpoint, backend, device, precision, fp16, int8, cuda_graphs, threads),
            output=output, compare=compare, verify=parse_verify(verify),
            encoder=encoder_options(fmt, codec, pix_fmt, encoder_preset, crf, fps, lossless, overwrite),
            lookahead=parse_lookahead(lookahead), lookahead_given=lookahead is not None,
            chunk=DEFAULT_CHUNK if chunk is None else chunk, max_pixels=max_pixels, spill_dir=spill_dir,
            cluster=cluster_options(cluster, workers, gpus_per_worker, threads),
            segments=segmenting(segment_frames, warmup, exact_segments), json_out=json_out, quiet=quiet,
        )  # fmt: skip
        PATHS[request.path](request, report)


class RunReport:
    """What one run reports: the ``--json`` summary (written when the run ends, on failure too, so that a pipeline
    can read why) and, unless ``--quiet``, ``pahs-run:`` lines on stderr, the ``pahs`` logger's (first-use
    exports, what is being written) among them. Use it as a context manager around the whole run."""

    def __init__(self, video: Sequence[str], path: Path | None, quiet: bool) -> None:
        self.summary: dict[str, Any] = {"input": video[0] if len(video) == 1 else list(video), "status": "error"}
        self.path = path
        self.quiet = quiet
        self.started = self.opened = time.monotonic()
        self._handler = _StderrLog()
        self._level = logging.getLogger("pahs").level
        self._propagate = logging.getLogger("pahs").propagate

    def __enter__(self) -> RunReport:
        if not self.quiet:
            pahs_log = logging.getLogger("pahs")
            pahs_log.addHandler(self._handler)
            pahs_log.setLevel(logging.INFO)
            # Our handler prints each message; a root logger that a library configured must not print it again.
            pahs_log.propagate = False
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        try:
            if isinstance(error, PahsError) and not isinstance(error, SummaryRefused):
                _write_json(self.path, {**self.summary, "error": str(error)})
        finally:
            pahs_log = logging.getLogger("pahs")
            pahs_log.removeHandler(self._handler)
            pahs_log.setLevel(self._level)
            pahs_log.propagate = self._propagate

    def say(self, message: str) -> None:
        if not self.quiet:
            typer.echo(f"pahs-run: {message}", err=True)

    def opened_backend(self, backend: OpenBackend, **fields: Any) -> None:
        """The backend is open (the --json summary's "open" seconds end here): name it, and the run's settings."""
        self.opened = time.monotonic()
        self.summary.update(
            backend=backend.name, device=str(backend.device), precision=backend.precision, threads=backend.threads,
            engine=backend.describe(), **fields,
        )  # fmt: skip

    def finish(self, status: str) -> None:
        seconds = self.summary.setdefault("seconds", {})
        seconds.update(open=round(self.opened - self.started, 3), total=round(time.monotonic() - self.started, 3))
        self.summary["status"] = status
        _write_json(self.path, self.summary)


class _StderrLog(logging.Handler):
    """The ``pahs`` logger (first-use exports, damaged caches) as ``pahs-run: message`` lines on stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        print(f"pahs-run: {record.getMessage()}", file=sys.stderr, flush=True)


def _write_json(path: Path | None, summary: dict[str, Any]) -> None:
    """The ``--json`` summary: status ("ok", "verify-failed", "error"), what ran, frames, timings (seconds),
    verify results."""
    if path is None:
        return
    from importlib.metadata import PackageNotFoundError, version

    try:
        summary = {"pahs": version("pahs"), **summary}
    except PackageNotFoundError:
        pass
    try:  # atomic, as every file pahs writes: a reader never sees half a summary
        write_file_output(path, (json.dumps(summary, indent=2, default=str) + "\n").encode(), "the --json summary")
    except OSError as e:
        raise PahsError(
            f"expected a writable --json file, could not write {path} ({e.strerror}); choose another"
        ) from e


# -- the three paths --------------------------------------------------------------------------------------------


def run_single(request: RunRequest, report: RunReport) -> None:
    """One input, here: the comparison with PyTorch first if ``--verify`` asks for it, then
    :meth:`pahs.Restorer.restore_video`."""
    import pahs
    from runtime.io import check_interrupted

    (video,) = request.inputs  # one input, not a pattern: what pahs-run always did
    target, verifying = request.target, request.verify is not False
    restorer = pahs.Restorer(request.engine.open())
    report.opened_backend(restorer.backend, **request.summary_window())
    check_interrupted()
    request.check_window(restorer.backend)
    report.say(restorer.backend.describe())
    if verifying:
        _verify(request, video, restorer.backend, report)
        if target is None and request.compare is None:
            report.finish("ok")
            return
    run = restorer.restore_video(
        video, target, compare=request.compare, progress=not request.quiet, **request.restore_keywords()
    )
    report.summary.update(
        output=run.output, compare=run.compare, frames=run.frames, width=run.width, height=run.height,
        source_fps=run.fps, frames_per_second=round(run.frames_per_second, 3),
        seconds={"restore": round(run.seconds, 3), "first_frame": _round(run.first_frame_seconds)},
    )  # fmt: skip
    report.finish("ok")
    where = "standard output" if run.output == STDIO else run.output
    outputs = " and ".join(x for x in (where, run.compare and f"{run.compare} (input | restored)") if x)
    report.say(
        f"wrote {outputs}: {run.frames} frames, {run.width}x{run.height}, in {run.seconds:.1f} s "
        f"({run.frames_per_second:.2f} frames/s)"
    )


def _verify(request: RunRequest, video: str, backend: OpenBackend, report: RunReport) -> None:
    """``--verify``: the table of the first frames against FP32 PyTorch on the CPU, and the verdict; a failed
    comparison ends the run (status 1)."""
    from pahs.verify import TOLERANCES, verdict, verify_video  # only --verify needs it (start-up time)
    from runtime.io import check_interrupted

    reference = request.engine.reference(backend)
    check_interrupted()
    if reference is backend:
        report.say("note: the backend is the PyTorch reference itself; the comparison is trivial")
    typer.echo(f"{'frame':>6}{'max abs':>12}{'PSNR dB':>10}")
    result = verify_video(
        video, backend, reference, request.run_options(), request.verify,  # type: ignore[arg-type]
        on_frame=lambda f: typer.echo(f"{f.index:>6}{f.max_abs:>12.2e}{f.psnr:>10.2f}"),
    )  # fmt: skip
    tolerance = TOLERANCES[result.precision]
    what = f"{backend.describe()} vs PyTorch on cpu over {len(result.frames)} frames"
    typer.echo(verdict(result.passed, what, tolerance))
    report.summary["verify"] = {
        "frames": len(result.frames),
        "passed": result.passed,
        "tolerance": tolerance.describe(),
        "worst_max_abs": max(f.max_abs for f in result.frames),
        "worst_psnr": min(f.psnr for f in result.frames),
        "per_frame": [{"index": f.index, "max_abs": f.max_abs, "psnr": f.psnr} for f in result.frames],
    }
    if not result.passed:
        report.finish("verify-failed")
        raise typer.Exit(1)


def run_jobs(request: RunRequest, report: RunReport) -> None:
    """Several inputs, or any on a cluster: plan the jobs, open the backend here once (a first-use export
    happens once, before workers start), run them (:func:`runtime.executors.execute`), and report each file."""
    from runtime.batch import BatchProgress, counts, plan_batch, plan_single, summary_lines
    from runtime.executors import execute
    from runtime.io import check_interrupted, is_batch

    options, where, on_cluster = request.run_options(), request.where, request.on_cluster
    if is_batch(request.inputs):
        plan = plan_batch(request.inputs, request.output, options, absolute=on_cluster)
    else:
        source = request.inputs[0]
        plan = plan_single(source, request.output or default_output(source), options, absolute=on_cluster)
    be = request.engine.open()
    cluster = {"address": where.address, "workers": where.workers, "gpus_per_worker": where.gpus_per_worker,
               "cpus_per_worker": where.cpus_per_worker} if on_cluster else None  # fmt: skip
    report.opened_backend(be, **request.summary_window(), cluster=cluster)
    check_interrupted()
    request.check_window(be)
    _announce(report, be, plan, where.address if on_cluster else None)
    open_backend = request.engine.opener(be, on_cluster)
    del be  # on a cluster the workers' backends take its place (its memory, a GPU's too, is freed)
    logging.getLogger("pahs").setLevel(logging.WARNING)  # one line per file, not the writer's own
    progress = BatchProgress(len(plan.jobs), enabled=not request.quiet, prefix="pahs-run: ")
    try:
        results = plan.merge(execute(plan.jobs, open_backend, where, on_result=progress))
    finally:
        progress.close()
    for line in summary_lines(results, time.monotonic() - report.started):
        typer.echo(line)
    n = counts(results)
    report.summary.update(
        outputs=request.output, counts=n, frames=sum(r.frames for r in results), files=[asdict(r) for r in results]
    )
    report.finish("failed" if n["failed"] else "ok")
    if n["failed"]:
        raise typer.Exit(1)


def _announce(report: RunReport, backend: OpenBackend, plan: Any, address: str | None) -> None:
    """What runs, and how many files it restores, skips (already there) or cannot find."""
    from runtime.batch import counts
    from runtime.jobs import JobResult

    report.say(backend.describe())
    settled = counts([e for e in plan.entries if isinstance(e, JobResult)])
    parts = [f"{len(plan.jobs)} to restore" + (f" on Ray ({address})" if address is not None else "")]
    parts += [f"{settled['skipped']} already there (skipped)"] if settled["skipped"] else []
    parts += (
        [f"{settled['failed']} not restorable (a pattern matching nothing, or not a file)"] if settled["failed"] else []
    )
    report.say(", ".join(parts))


def run_segments(request: RunRequest, report: RunReport) -> None:
    """One long video as segment jobs (:mod:`runtime.segments`), run here or on Ray
    (:func:`runtime.executors.execute`), joined."""
    from runtime.executors import execute
    from runtime.progress import ProgressLines
    from runtime.segments import restore_segmented

    (source,) = request.inputs
    segments, where = request.segments, request.where
    assert segments is not None  # RunRequest.path
    target = request.target
    be = request.engine.open()
    report.opened_backend(
        be, lookahead=request.lookahead, chunk=request.chunk, segment_frames=segments.frames,
        warmup=None if segments.exact else segments.warmup_frames, exact_segments=segments.exact,
    )  # fmt: skip
    report.say(be.describe())
    open_backend = request.engine.opener(be, request.on_cluster)
    # The exact mode's forward pass runs here, on the backend already open (not a second one); otherwise nothing
    # here needs it once the workers open their own, so it is closed before they start (a GPU's memory too).
    pass_backend = be if segments.exact else None
    del be

    def execute_segments(jobs: Sequence[Job], opener: Callable[..., OpenBackend]) -> list[JobResult]:
        lines = ProgressLines("restored", len(jobs), report.say, unit="segments")  # a log hears of each one
        return execute(jobs, opener, where, on_result=lambda _: lines.update())

    run = restore_segmented(
        source, target, open_backend, options=request.run_options(), segment_frames=segments.frames,
        warmup=segments.warmup_frames, exact=segments.exact, execute=execute_segments, pass_backend=pass_backend,
    )  # fmt: skip
    report.summary.update(
        output=run.output, frames=run.frames, segments=len(run.segments),
        seconds={"pass": round(run.pass_seconds, 3), "segments": round(run.jobs_seconds, 3),
                 "join": round(run.join_seconds, 3)},
        files=[asdict(r) for r in run.results],
    )  # fmt: skip
    report.finish("ok")
    report.say(
        f"wrote {run.output}: {run.frames} frames from {len(run.segments)} segments "
        f"({'exact' if run.exact else f'warm-up {run.warmup}'}) in {time.monotonic() - report.started:.1f} s"
    )


PATHS = {"single": run_single, "jobs": run_jobs, "segments": run_segments}  # RunRequest.path -> what runs it


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


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
