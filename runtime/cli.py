"""`pahs-run`: deblur a video or a folder of frames with an exported PAHS engine."""

from __future__ import annotations

import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Optional

import typer

from pahs_export.cli_common import DEBUG_HELP, entry_point, new_app
from pahs_export.errors import PahsError
from pahs_export.presets import DEFAULT_LOOKAHEAD

from .driver import DEFAULT_CHUNK
from .io.threads import termination_handlers

app = new_app("Deblur a video (or a folder of frames) with PAHS.")
VERIFY_ALL = "all"  # what a bare `--verify` stands for


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


def default_output(video: Path) -> str:
    """``clip.mp4`` -> ``clip.deblurred.mp4``; a frame folder ``seq/`` -> ``seq.deblurred/``."""
    if video.is_dir():
        return str(video.with_name(video.name + ".deblurred")) + "/"
    return str(video.with_name(f"{video.stem}.deblurred.mp4"))


@app.command()
def run(
    video: Annotated[
        Path, typer.Argument(help="Input video file (anything FFmpeg decodes) or folder of PNG/JPG frames.")
    ],
    engine: Annotated[
        Optional[Path],
        typer.Option(
            "--engine", "-e", help="ONNX artifact folder, .plan, or .safetensors (default: built-in weights)."
        ),
    ] = None,
    output: Annotated[
        Optional[str],  # a str, not a Path: a trailing "/" (PNG folder) must survive
        typer.Option("--output", "-o", help="Output .mp4, or a folder of PNGs (trailing / or existing folder)."),
    ] = None,
    backend: Annotated[
        Optional[str], typer.Option("--backend", "-b", help="torch | onnxruntime | tensorrt (default: the engine's).")
    ] = None,
    device: Annotated[
        Optional[str], typer.Option("--device", help="cpu or cuda (default: cpu; cuda for TensorRT).")
    ] = None,
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
            "--verify", help="Compare with the PyTorch reference on the first K frames (no K: all), then stop."
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
        typer.Option("--spill-dir", help="Folder for the temporary frames of --lookahead all (default: $TMPDIR)."),
    ] = None,
    compare: Annotated[
        Optional[str], typer.Option("--compare", help="Also write a side-by-side (input | restored) video or folder.")
    ] = None,
    crf: Annotated[Optional[int], typer.Option("--crf", help="H.264 quality, lower is better (default 18).")] = None,
    lossless: Annotated[bool, typer.Option("--lossless", help="Lossless video output.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace existing output files.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help=DEBUG_HELP)] = False,
) -> None:
    """Deblur VIDEO into -o (default VIDEO.deblurred.mp4) with the engine's backend."""
    from dataclasses import replace

    from pahs import open_backend
    from pahs_export.cache import cache_dir
    from pahs_export.files import disk_error, is_disk_error
    from pahs_export.verify import TOLERANCES, verdict, verify_video

    from .io import OutputOptions, check_interrupted
    from .pipeline import RunOptions, check_options, run_video

    if not video.exists():
        raise PahsError(f"expected a video file or frame folder, found nothing at {video}; check the path")
    frames_to_verify = parse_verify(verify)
    out_opts = OutputOptions()
    out_opts = replace(out_opts, lossless=lossless, overwrite=overwrite, **({"crf": crf} if crf is not None else {}))
    options = RunOptions(
        lookahead=parse_lookahead(lookahead),
        chunk=DEFAULT_CHUNK if chunk is None else chunk,
        output=out_opts,
        progress=not quiet,
        spill_dir=spill_dir,
        max_pixels=max_pixels,
    )
    try:
        be = open_backend(engine, backend, device=device, cuda_graphs=cuda_graphs)
    except (OSError, PahsError) as e:  # the first use exports the default engine into the cache
        cause = e if isinstance(e, OSError) else e.__cause__  # AtomicOutput's one line says "-o": not ours here
        if engine is None and isinstance(cause, OSError) and is_disk_error(cause):
            where = cache_dir().absolute()
            raise disk_error(cause, "the default engine", where, "set PAHS_CACHE to another folder") from e
        raise
    check_interrupted()
    check_options(options, be, lookahead_given=lookahead is not None)
    if not quiet:
        typer.echo(f"pahs-run: {be.describe()}", err=True)

    if frames_to_verify is not False:
        reference = open_backend(engine, "torch", device="cpu") if be.name != "torch" else be
        check_interrupted()
        if reference is be:
            typer.echo("note: the backend is the PyTorch reference itself; the comparison is trivial", err=True)
        typer.echo(f"{'frame':>6}{'max abs':>12}{'PSNR dB':>10}")
        result = verify_video(
            video, be, reference, options, frames_to_verify,
            on_frame=lambda f: typer.echo(f"{f.index:>6}{f.max_abs:>12.2e}{f.psnr:>10.2f}"),
        )  # fmt: skip
        tolerance = TOLERANCES[result.precision]
        typer.echo(verdict(result.passed, f"{be.describe()} vs PyTorch over {len(result.frames)} frames", tolerance))
        if not result.passed:
            raise typer.Exit(1)
        if output is None and compare is None:
            return

    summary = run_video(video, output or default_output(video), be, options, compare)
    typer.echo(f"wrote {summary.output} ({summary.frames} frames, {summary.width}x{summary.height})")
    if summary.compare:
        typer.echo(f"wrote {summary.compare} (input | restored)")


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
