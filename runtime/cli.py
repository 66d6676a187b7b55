"""`pahs-run`: deblur a video or a folder of frames with an exported PAHS engine.

A thin layer over the Python API (:func:`pahs.open` -> :class:`pahs.Restorer`): it parses options, opens the
restorer, calls :meth:`~pahs.Restorer.restore_video` (or the verification), and reports. Messages and
progress go to stderr; stdout carries only the video with ``-o -``, else the ``--verify`` table.
"""

from __future__ import annotations

import json
import logging
import sys
import time
import warnings
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Annotated, Any, Optional
from urllib.parse import unquote, urlparse

import typer

from pahs_export.cli_common import (
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
from pahs_export.errors import PahsError
from pahs_export.presets import DEFAULT_LOOKAHEAD

from .driver import DEFAULT_CHUNK
from .engines import OPENERS
from .io import OUTPUT_CODECS, OUTPUT_FORMATS, X264_PRESETS
from .io.threads import termination_handlers

app = new_app("Deblur a video (or a folder of frames) with PAHS.")
VERIFY_ALL = "all"  # what a bare `--verify` stands for
STDIO = "-"  # standard input as VIDEO, standard output as -o
Backend = choices("Backend", OPENERS)
Format = choices("Format", OUTPUT_FORMATS)
Codec = choices("Codec", OUTPUT_CODECS)
EncoderPreset = choices("EncoderPreset", X264_PRESETS)


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
    from .pipeline import check_verify_count

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
    from .io import source_kind

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
        str,
        typer.Argument(
            help="Input: a video file (anything FFmpeg decodes), a folder of PNG/JPG frames, a URL (http, https, "
            "rtsp, file: ...; passed to FFmpeg as it is), or - for standard input (y4m, matroska, nut, mpegts ...).",
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
            "--backend", "-b", help="Backend (default: the engine's; onnxruntime for weights).", show_default=False
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
            "sizes, 10-bit for deep sources on pipes).",
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
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace existing output files.")] = False,
    json_out: Annotated[
        Optional[Path],
        typer.Option("--json", help="Also write a machine-readable summary (frames, timings, verify) to this file."),
    ] = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Deblur VIDEO into -o (default VIDEO.deblurred.mp4)."""
    summary: dict[str, Any] = {"input": video, "status": "error"}
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
    video: str,
    engine: Path | None,
    checkpoint: Path | None,
    output: str | None,
    backend: Any,
    device: str | None,
    precision: Any,
    fp16: bool,
    int8: bool,
    cuda_graphs: bool,
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
    summary: dict[str, Any],
    **_: Any,
) -> None:
    import pahs
    from pahs_export.cache import cache_dir
    from pahs_export.files import disk_error, is_disk_error
    from pahs_export.verify import TOLERANCES, verdict, verify_video

    from .io import check_interrupted
    from .pipeline import RunOptions, check_options

    started = time.monotonic()
    if engine is not None and checkpoint is not None:
        raise PahsError(
            f"expected --engine or --checkpoint, found both ({engine}, {checkpoint}); --engine runs an exported "
            "artifact, --checkpoint exports weights: pass one"
        )
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
    target = output if output is not None else (None if frames_to_verify is not False else default_output(video))
    if output == STDIO and frames_to_verify is not False:
        raise PahsError("expected --verify without -o - (its table would mix with the video), found both; drop one")
    weights = engine if engine is not None else checkpoint
    try:
        restorer = pahs.open(
            weights, backend=value_of(backend), device=device, precision=chosen, cuda_graphs=cuda_graphs
        )
    except (OSError, PahsError) as e:  # the first use exports the default engine into the cache
        cause = e if isinstance(e, OSError) else e.__cause__  # AtomicOutput's one line says "-o": not ours here
        if engine is None and isinstance(cause, OSError) and is_disk_error(cause):
            where = cache_dir().absolute()
            what = "the default engine" if weights is None else f"the engine exported from {weights}"
            raise disk_error(cause, what, where, "set PAHS_CACHE to another folder") from e
        raise
    be = restorer.backend
    opened = time.monotonic()
    summary.update(
        backend=be.name, device=str(be.device), precision=be.precision, engine=be.describe(),
        lookahead="all" if window is None else window, chunk=k,
    )  # fmt: skip
    check_interrupted()
    check_options(RunOptions(lookahead=window, chunk=k), be, lookahead_given=lookahead is not None)
    if not quiet:
        _say(be.describe())

    if frames_to_verify is not False:
        # The reference is FP32 PyTorch on the CPU, whatever runs: a torch backend on CUDA (or under autocast)
        # is compared with it too. Only an FP32 torch backend on the CPU is the reference itself.
        same = be.name == "torch" and be.device.type == "cpu" and be.precision == "fp32"
        reference = be if same else pahs.open_backend(weights, "torch", device="cpu")
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
