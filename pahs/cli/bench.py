"""The `pahs-bench` command: options, defaults, and where the report goes (stdout, --json, --plot)."""

from __future__ import annotations

import json
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


@app.command()
def bench(
    presets: Annotated[
        Optional[list[Preset]],
        typer.Option(
            "--preset",
            "--presets",
            "-p",
            help=f"Model presets (repeat; default: those of the --engine artifacts, else {DEFAULT_PRESET}).",
        ),
    ] = None,
    sizes: Annotated[
        Optional[list[str]],
        typer.Option("--size", "--sizes", "-s", help=f"Frame sizes WxH (repeat; default {DEFAULT_SIZE_TEXT})."),
    ] = None,
    backends: Annotated[
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
    ] = None,
    engines: Annotated[
        Optional[list[Path]],
        typer.Option(
            "--engine",
            "-e",
            help="A prepared artifact (repeat): a TensorRT one from `pahs-export trt` runs the tensorrt variants "
            "of its precision; an ONNX folder or .safetensors checkpoint adds a variant of its own.",
        ),
    ] = None,
    frames: Annotated[
        Optional[int], typer.Option("--frames", "-n", help=f"Frames per repetition (default {DEFAULT_FRAMES}).")
    ] = None,
    lookahead: Annotated[
        Optional[int],
        typer.Option("--lookahead", "-l", help=f"Future frames each frame sees (default {DEFAULT_LOOKAHEAD})."),
    ] = None,
    chunk: Annotated[
        Optional[int], typer.Option("--chunk", help=f"Frames per backward run (default {DEFAULT_CHUNK}).")
    ] = None,
    reps: Annotated[
        Optional[int], typer.Option("--reps", help=f"Repetitions; the median is reported (default {DEFAULT_REPS}).")
    ] = None,
    growth: Annotated[
        bool, typer.Option("--growth", help="Also: frames/s vs lookahead, and peak memory vs video length.")
    ] = False,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Write the report as JSON.")] = None,
    plot: Annotated[Optional[Path], typer.Option("--plot", help="PNG of frames/s against resolution.")] = None,
    device: Annotated[
        Optional[str],
        device_option("cuda", "the GPU of the CUDA variants (torch-cuda*, tensorrt*); cpu keeps only the CPU variants"),
    ] = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Benchmark: steady-state frames/s, time per graph, peak memory, achieved FLOP/s, ratios to torch."""
    la = DEFAULT_LOOKAHEAD if lookahead is None else lookahead
    k = DEFAULT_CHUNK if chunk is None else chunk
    engine_list = [Engine.read(e) for e in engines or []]
    names = values_of(presets) or list(dict.fromkeys(e.preset for e in engine_list)) or [DEFAULT_PRESET]
    multiple = max(get_preset(p).stride for p in names)
    size_list = [parse_size(s) for s in sizes] if sizes else [DEFAULT_SIZE]
    for w, h in size_list:
        check_size_multiple(w, h, multiple, "--sizes")
    report = run_bench(
        names, size_list, values_of(backends), frames or DEFAULT_FRAMES, la, k, reps or DEFAULT_REPS,
        log=(lambda m: None) if quiet else lambda m: typer.echo(m, err=True), engines=engine_list, device=device,
    )  # fmt: skip
    if growth:
        report.growth = growth_curves(names[0], size_list[0], la, k)
    typer.echo(table(report))
    if json_out:
        json_out.write_text(json.dumps(report.to_json(), indent=2) + "\n")
        typer.echo(f"wrote {json_out}")
    if plot:
        plot_fps(report, plot)
        typer.echo(f"wrote {plot}")


main = entry_point(app, "pahs-bench")
