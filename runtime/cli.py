"""`pahs-run`: deblur a video or a folder of frames with an exported PAHS engine."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Annotated, Optional

import typer

from pahs_export.cli_common import DEBUG_HELP, entry_point, new_app
from pahs_export.errors import PahsError

from .driver import DEFAULT_CHUNK, DEFAULT_LOOKAHEAD

app = new_app("Deblur a video (or a folder of frames) with PAHS.")
VERIFY_ALL = -1  # `--verify` given without a count


def parse_lookahead(text: str | None) -> int | None:
    if text is None:
        return DEFAULT_LOOKAHEAD
    if text.lower() == "all":
        return None
    try:
        return int(text)
    except ValueError:
        raise PahsError(f"expected --lookahead to be a number of frames or 'all', found {text!r}") from None


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
        Optional[int],
        typer.Option(
            "--verify", help="Compare with the PyTorch reference on the first K frames (no K: all), then stop."
        ),
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

    from .engines import open_backend
    from .pipeline import RunOptions, check_options, run_video, verify_video
    from .video import OutputOptions, install_termination_handler

    install_termination_handler()
    if not video.exists():
        raise PahsError(f"expected a video file or frame folder, found nothing at {video}; check the path")
    out_opts = OutputOptions()
    out_opts = replace(out_opts, lossless=lossless, overwrite=overwrite, **({"crf": crf} if crf is not None else {}))
    options = RunOptions(
        lookahead=parse_lookahead(lookahead),
        chunk=DEFAULT_CHUNK if chunk is None else chunk,
        output=out_opts,
        progress=not quiet,
    )
    be = open_backend(engine, backend, device, cuda_graphs=cuda_graphs)
    check_options(options, be, lookahead_given=lookahead is not None)
    if not quiet:
        typer.echo(f"pahs-run: {be.describe()}", err=True)

    if verify is not None:
        reference = open_backend(engine, "torch", "cpu") if be.name != "torch" else be
        if reference is be:
            typer.echo("note: the backend is the PyTorch reference itself; the comparison is trivial", err=True)
        result = verify_video(video, be, reference, options, None if verify == VERIFY_ALL else verify)
        from pahs_export.verify import TOLERANCES

        typer.echo(f"{'frame':>6}{'max abs':>12}{'PSNR dB':>10}")
        for f in result.frames:
            typer.echo(f"{f.index:>6}{f.max_abs:>12.2e}{f.psnr:>10.2f}")
        verdict = "PASS" if result.passed else "FAIL"
        typer.echo(
            f"{verdict}: {be.describe()} vs PyTorch over {len(result.frames)} frames, "
            f"{TOLERANCES[result.precision].describe()}"
        )
        if not result.passed:
            raise typer.Exit(1)
        if output is None and compare is None:
            return

    summary = run_video(video, output or default_output(video), be, options, compare)
    typer.echo(f"wrote {summary.output} ({summary.frames} frames, {summary.width}x{summary.height})")
    if summary.compare:
        typer.echo(f"wrote {summary.compare} (input | restored)")


def _argv_with_verify_default(argv: list[str]) -> list[str]:
    """`--verify` takes an optional count: a bare `--verify` means all frames."""
    out = []
    for i, arg in enumerate(argv):
        out.append(arg)
        if arg == "--verify" and (i + 1 == len(argv) or not argv[i + 1].lstrip("-").isdigit()):
            out.append(str(VERIFY_ALL))
    return out


def _warn_one_line(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"pahs-run: warning: {message}", file=sys.stderr)


_main = entry_point(app, "pahs-run")


def main() -> None:
    sys.argv[1:] = _argv_with_verify_default(sys.argv[1:])
    warnings.showwarning = _warn_one_line
    _main()


bench_app = new_app("Measure every available backend and precision side by side (speed, memory, FLOP/s).")


@bench_app.command()
def bench(
    presets: Annotated[Optional[list[str]], typer.Option("--presets", "-p", help="Presets (default pahs-t).")] = None,
    sizes: Annotated[
        Optional[list[str]], typer.Option("--sizes", "-s", help="Frame sizes WxH (default 640x352).")
    ] = None,
    backends: Annotated[
        Optional[list[str]],
        typer.Option("--backends", "-b", help="Variants, e.g. torch onnxruntime-int8 (default: all CPU ones)."),
    ] = None,
    frames: Annotated[Optional[int], typer.Option("--frames", "-n", help="Frames per repetition (default 24).")] = None,
    lookahead: Annotated[Optional[int], typer.Option("--lookahead", help="Lookahead N (default 19).")] = None,
    chunk: Annotated[Optional[int], typer.Option("--chunk", help="Chunk K (default 32).")] = None,
    reps: Annotated[
        Optional[int], typer.Option("--reps", help="Repetitions; the median is reported (default 3).")
    ] = None,
    growth: Annotated[
        bool, typer.Option("--growth", help="Also: frames/s vs lookahead, and peak memory vs video length.")
    ] = False,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Write the report as JSON.")] = None,
    plot: Annotated[Optional[Path], typer.Option("--plot", help="PNG of frames/s against resolution.")] = None,
    debug: Annotated[bool, typer.Option("--debug", help=DEBUG_HELP)] = False,
) -> None:
    """Benchmark: steady-state frames/s, time per graph, peak memory, FLOP/s vs a matmul ceiling, ratios."""
    import json

    from pahs_export.cli_common import parse_size

    from .bench import CPU_VARIANTS, growth_curves, plot_fps, run_bench, table

    la = DEFAULT_LOOKAHEAD if lookahead is None else lookahead
    k = DEFAULT_CHUNK if chunk is None else chunk
    size_list = [parse_size(s) for s in sizes] if sizes else [(640, 352)]
    for w, h in size_list:
        if w % 16 or h % 16:
            raise PahsError(f"expected sizes in multiples of 16, found {w}x{h}; try {w // 16 * 16}x{h // 16 * 16}")
    report = run_bench(
        presets or ["pahs-t"], size_list, backends or list(CPU_VARIANTS), frames or 24, la, k, reps or 3,
        log=lambda m: typer.echo(m, err=True),
    )  # fmt: skip
    if growth:
        report.growth = growth_curves(presets[0] if presets else "pahs-t", size_list[0], la, k)
    typer.echo(table(report))
    if json_out:
        json_out.write_text(json.dumps(report.to_json(), indent=2) + "\n")
        typer.echo(f"wrote {json_out}")
    if plot:
        plot_fps(report, plot)
        typer.echo(f"wrote {plot}")


bench_main = entry_point(bench_app, "pahs-bench")
