"""The `pahs-bench` command: options, defaults, and where the report goes (stdout, --json, --plot).

The command turns its options into one frozen :class:`BenchRequest` and hands it to :func:`run_request`, which
measures (:func:`pahs.bench_variants.run_bench`) and reports.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Optional

import typer

from pahs.bench_variants import VARIANTS, Engine, growth_curves, run_bench
from pahs_export.contract import check_size_multiple
from pahs_export.presets import DEFAULT_LOOKAHEAD, DEFAULT_PRESET, get_preset
from runtime.bench.measure import DEFAULT_FRAMES, DEFAULT_REPS, DEFAULT_SIZE
from runtime.bench.report import plot_fps, table
from runtime.driver import DEFAULT_CHUNK

from .common import (
    DebugOpt,
    Preset,
    QuietOpt,
    choices,
    device_option,
    entry_point,
    new_app,
    parse_size,
    values_of,
)

DEFAULT_SIZE_TEXT = f"{DEFAULT_SIZE[0]}x{DEFAULT_SIZE[1]}"

app = new_app("Measure every available backend and precision side by side (speed, memory, FLOP/s).")
Variant = choices("Variant", VARIANTS)

PresetsOpt = Annotated[
    Optional[list[Preset]],
    typer.Option(
        "--preset",
        "--presets",
        "-p",
        help=f"Model presets (repeat; default: those of the --engine artifacts, else {DEFAULT_PRESET}).",
    ),
]
SizesOpt = Annotated[
    Optional[list[str]],
    typer.Option("--size", "--sizes", "-s", help=f"Frame sizes WxH (repeat; default {DEFAULT_SIZE_TEXT})."),
]
BackendsOpt = Annotated[
    Optional[list[Variant]],
    typer.Option(
        "--backend",
        "--backends",
        "-b",
        help=f"Variants to measure (repeat): {', '.join(VARIANTS)}; the INT8 variants of onnxruntime and "
        "openvino run the CPU-target graph, onnxruntime-int8-tensorrt TensorRT's conventions (default: every "
        "CPU variant, and the TensorRT ones an --engine serves).",
        metavar="<VARIANT>",
    ),
]
EnginesOpt = Annotated[
    Optional[list[Path]],
    typer.Option(
        "--engine",
        "-e",
        help="A prepared artifact (repeat): a TensorRT one from `pahs-export trt` runs the tensorrt variants "
        "of its precision; an ONNX folder or .safetensors checkpoint adds a variant of its own.",
    ),
]
FramesOpt = Annotated[
    Optional[int], typer.Option("--frames", "-n", help=f"Frames per repetition (default {DEFAULT_FRAMES}).")
]
LookaheadOpt = Annotated[
    Optional[int],
    typer.Option("--lookahead", "-l", help=f"Future frames each frame sees (default {DEFAULT_LOOKAHEAD})."),
]
ChunkOpt = Annotated[Optional[int], typer.Option("--chunk", help=f"Frames per backward run (default {DEFAULT_CHUNK}).")]
RepsOpt = Annotated[
    Optional[int], typer.Option("--reps", help=f"Repetitions; the median is reported (default {DEFAULT_REPS}).")
]
GrowthOpt = Annotated[
    bool, typer.Option("--growth", help="Also: frames/s vs lookahead, and peak memory vs video length.")
]
JsonOutOpt = Annotated[Optional[Path], typer.Option("--json", help="Write the report as JSON.")]
PlotOpt = Annotated[Optional[Path], typer.Option("--plot", help="PNG of frames/s against resolution.")]
DeviceOpt = Annotated[
    Optional[str],
    device_option("cuda", "the GPU of the CUDA variants (torch-cuda*, tensorrt*); cpu keeps only the CPU variants"),
]


@app.command()
def bench(
    presets: PresetsOpt = None,
    sizes: SizesOpt = None,
    backends: BackendsOpt = None,
    engines: EnginesOpt = None,
    frames: FramesOpt = None,
    lookahead: LookaheadOpt = None,
    chunk: ChunkOpt = None,
    reps: RepsOpt = None,
    growth: GrowthOpt = False,
    json_out: JsonOutOpt = None,
    plot: PlotOpt = None,
    device: DeviceOpt = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Benchmark: steady-state frames/s, time per graph, peak memory, achieved FLOP/s, ratios to torch."""
    engine_list = tuple(Engine.read(e) for e in engines or [])
    names = values_of(presets) or list(dict.fromkeys(e.preset for e in engine_list)) or [DEFAULT_PRESET]
    request = BenchRequest(
        tuple(names), bench_sizes(sizes, names), values_of(backends), engine_list, frames=frames or DEFAULT_FRAMES,
        lookahead=DEFAULT_LOOKAHEAD if lookahead is None else lookahead,
        chunk=DEFAULT_CHUNK if chunk is None else chunk, reps=reps or DEFAULT_REPS, growth=growth,
        json_out=json_out, plot=plot, device=device, quiet=quiet,
    )  # fmt: skip
    run_request(request)


def bench_sizes(sizes: list[str] | None, presets: list[str]) -> tuple[tuple[int, int], ...]:
    """``--size`` WxH values (default :data:`DEFAULT_SIZE`), each a multiple of every preset's stride."""
    multiple = max(get_preset(p).stride for p in presets)
    size_list = [parse_size(s) for s in sizes] if sizes else [DEFAULT_SIZE]
    for w, h in size_list:
        check_size_multiple(w, h, multiple, "--sizes")
    return tuple(size_list)


@dataclass(frozen=True)
class BenchRequest:
    """What `pahs-bench` was asked to measure, and where the report goes."""

    presets: tuple[str, ...]
    sizes: tuple[tuple[int, int], ...]
    variants: list[str] | None  # None: the CPU ones and the TensorRT ones the engines serve
    engines: tuple[Engine, ...] = ()
    frames: int = DEFAULT_FRAMES
    lookahead: int = DEFAULT_LOOKAHEAD
    chunk: int = DEFAULT_CHUNK
    reps: int = DEFAULT_REPS
    growth: bool = False
    json_out: Path | None = None
    plot: Path | None = None
    device: str | None = None
    quiet: bool = False


def run_request(request: BenchRequest) -> None:
    """Measure, print the table, and write the JSON report and the plot if asked."""
    report = run_bench(
        list(request.presets), list(request.sizes), request.variants, request.frames, request.lookahead,
        request.chunk, request.reps, log=(lambda m: None) if request.quiet else lambda m: typer.echo(m, err=True),
        engines=list(request.engines), device=request.device,
    )  # fmt: skip
    if request.growth:
        report.growth = growth_curves(request.presets[0], request.sizes[0], request.lookahead, request.chunk)
    typer.echo(table(report))
    if request.json_out:
        request.json_out.write_text(json.dumps(report.to_json(), indent=2) + "\n")
        typer.echo(f"wrote {request.json_out}")
    if request.plot:
        plot_fps(report, request.plot)
        typer.echo(f"wrote {request.plot}")


main = entry_point(app, "pahs-bench")
