"""`pahs-export`: model information, ONNX export and verification, TensorRT engines."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from .cli_common import DEBUG_HELP, entry_point, new_app, parse_size
from .contract import PRECISIONS
from .onnx_export import DEFAULT_OPSET, MAX_OPSET, MIN_OPSET
from .precision import CALIBRATION_METHODS, INT8_TARGETS, Int8Options
from .presets import DEFAULT_PRESET, PRESETS, get_preset
from .verify import DEFAULT_FRAMES, DEFAULT_REDUCED_FRAMES, DEFAULT_SIZES

app = new_app("Export PAHS to ONNX and TensorRT, verify the exported graphs, show model size and compute.")

PresetOpt = Annotated[
    Optional[str],
    typer.Option("--preset", "-p", help=f"Model preset: {', '.join(PRESETS)} (default {DEFAULT_PRESET})."),
]
DebugOpt = Annotated[bool, typer.Option("--debug", help=DEBUG_HELP)]
INFO_SIZE = (1280, 720)  # the paper's frame size
INT8_DEFAULTS = Int8Options()


@app.command()
def info(
    preset: PresetOpt = None,
    size: Annotated[
        Optional[str], typer.Option("--size", help=f"Frame size WxH for FLOPs (default {INFO_SIZE[0]}x{INFO_SIZE[1]}).")
    ] = None,
    unidirectional: Annotated[bool, typer.Option("--unidirectional", help="Count the online model.")] = False,
    debug: DebugOpt = False,
) -> None:
    """Parameters (total and per module) and FLOPs per frame of a preset."""
    from .info import model_info

    p = get_preset(preset or DEFAULT_PRESET)
    width, height = parse_size(size) if size else INFO_SIZE
    p.geometry.check_size(width, height, "a --size")
    mi = model_info(p.name, bidirectional=not unidirectional, width=width, height=height)
    direction = "bidirectional" if mi.bidirectional else "unidirectional"
    typer.echo(f"preset {p.name}: {p.description}; {direction}; c={p.channels}, h={p.hidden}, mid={p.mid}")
    typer.echo("")
    typer.echo(f"{'module':<32}{'parameters':>14}")
    for name, count in mi.params.items():
        typer.echo(f"{name:<32}{count:>14,}")
    typer.echo(f"{'total':<32}{mi.total_params:>14,}  ({mi.total_params / 1e6:.2f} M)")
    if p.paper_params:
        delta = (mi.total_params / 1e6 - p.paper_params) / p.paper_params
        typer.echo(f"{'paper (Table 1 / S8)':<32}{p.paper_params:>12.2f} M  ({delta:+.1%})")
    typer.echo("")
    typer.echo(f"FLOPs per frame at {width}x{height} (2 per multiply-add):")
    for role, flops in mi.flops.items():
        typer.echo(f"  {role:<30}{flops / 1e9:>14,.1f} GFLOP")
    typer.echo(f"  {'total':<30}{mi.total_flops / 1e9:>14,.1f} GFLOP  ({mi.total_flops / 1e12:.2f} TFLOP)")


@app.command()
def onnx(
    checkpoint: Annotated[
        Optional[Path], typer.Option("--checkpoint", "-c", help="Weights (.safetensors) to export.")
    ] = None,
    preset: PresetOpt = None,
    output: Annotated[
        Optional[Path], typer.Option("--output", "-o", help="Artifact folder to write (default PRESET-onnx-fp32).")
    ] = None,
    opset: Annotated[
        Optional[int],
        typer.Option("--opset", help=f"ONNX opset, {MIN_OPSET} to {MAX_OPSET} (default {DEFAULT_OPSET})."),
    ] = None,
    random_init: Annotated[
        bool, typer.Option("--random-init", help="Export random weights on purpose (no trained weights).")
    ] = False,
    seed: Annotated[int, typer.Option("--seed", help="Seed for --random-init.")] = 0,
    unidirectional: Annotated[
        bool, typer.Option("--unidirectional", help="With --random-init: the online model (one step graph).")
    ] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing output folder.")] = False,
    precision: Annotated[
        Optional[str], typer.Option("--precision", help=f"{' | '.join(PRECISIONS)} (int8: Q/DQ) (default fp32).")
    ] = None,
    calibration: Annotated[
        Optional[list[Path]],
        typer.Option("--calibration", help="INT8: videos or frame folders to calibrate on (repeat; default: samples)."),
    ] = None,
    calibration_method: Annotated[
        Optional[str],
        typer.Option(
            "--calibration-method",
            help=f"INT8: {' | '.join(CALIBRATION_METHODS)} (default {INT8_DEFAULTS.method}).",
        ),
    ] = None,
    int8_target: Annotated[
        Optional[str],
        typer.Option(
            "--int8-target",
            help=f"INT8: {' | '.join(INT8_TARGETS)}: tensorrt = symmetric, for TensorRT; cpu = for ONNX Runtime "
            f"on x86 (default {INT8_DEFAULTS.target}).",
        ),
    ] = None,
    debug: DebugOpt = False,
) -> None:
    """Export single-step ONNX graphs (state as explicit inputs/outputs) and manifest.json into one folder."""
    from dataclasses import replace

    from .errors import PahsError
    from .onnx_export import artifact_from_model
    from .weights import resolve_model

    prec = precision or "fp32"
    if prec not in PRECISIONS:
        raise PahsError(f"expected --precision among {', '.join(PRECISIONS)}, found {prec!r}")
    if prec != "int8" and (calibration or calibration_method or int8_target):
        raise PahsError(f"expected INT8 options only with --precision int8, found --precision {prec}")
    int8_changes = {"method": calibration_method, "target": int8_target}
    int8 = replace(INT8_DEFAULTS, **{k: v for k, v in int8_changes.items() if v is not None})
    cal = None
    if prec == "int8":
        from calibration.data import DEFAULT_SET, CalibrationSet

        cal = CalibrationSet(paths=tuple(str(p) for p in calibration)) if calibration else DEFAULT_SET

    model, source = resolve_model(
        checkpoint, preset, random_init=random_init, seed=seed, bidirectional=False if unidirectional else None
    )
    suffix = "-cpu" if prec == "int8" and int8.target == "cpu" else ""
    out = output or Path(f"{model.preset.name}-onnx-{prec}{suffix}")
    artifact_from_model(
        model,
        out,
        source=source,
        opset=opset or DEFAULT_OPSET,
        include_checkpoint=source["kind"] == "random-init",
        overwrite=overwrite,
        progress=lambda msg: typer.echo(msg, err=True),
        precision=prec,
        int8=int8,
        calibration=cal,
    )
    direction = "bidirectional" if model.bidirectional else "unidirectional"
    typer.echo(f"wrote {out}/ ({model.preset.name}, {direction}, {prec}, weights: {source['kind']})")


@app.command()
def verify(
    artifact: Annotated[Path, typer.Argument(help="Artifact folder written by `pahs-export onnx`.")],
    frames: Annotated[
        Optional[int],
        typer.Option(
            "--frames",
            "-n",
            help=f"Frames per sequence (default {DEFAULT_FRAMES['fp32']} for fp32, else {DEFAULT_REDUCED_FRAMES}).",
        ),
    ] = None,
    size: Annotated[
        Optional[list[str]],
        typer.Option(
            "--size",
            help=f"Frame size WxH; repeat for several (default {', '.join(f'{w}x{h}' for w, h in DEFAULT_SIZES)}).",
        ),
    ] = None,
    checkpoint: Annotated[
        Optional[Path],
        typer.Option("--checkpoint", "-c", help="Reference weights (default: those it was exported from)."),
    ] = None,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Also write the full report as JSON.")] = None,
    plot: Annotated[
        Optional[Path],
        typer.Option("--plot", help="Per-frame PSNR plot (PNG; default ARTIFACT-verify.png for fp16/int8)."),
    ] = None,
    debug: DebugOpt = False,
) -> None:
    """Drive the graphs with ONNX Runtime (CPU) over held-out clips and compare every frame with FP32 PyTorch."""
    from .artifact import read_artifact
    from .verify import plot_report, verdict, verify_artifact
    from .weights import reference_checkpoint

    art = read_artifact(artifact)
    sizes = [parse_size(s) for s in size] if size else None
    report = verify_artifact(art, frames, sizes, checkpoint)
    tolerance = report.tolerance
    ckpt = reference_checkpoint(art, checkpoint)
    typer.echo(f"{art.path}: {art.preset}, {art.manifest.direction}, {art.precision}; reference: {ckpt}")
    for role, err in report.reference_evaluator.items():
        typer.echo(f"onnx.reference {role:<9} one step at 32x32: max abs error {err:.2e}")
    runner = f"{report.backend} on cpu ({art.precision})"
    for seq in report.sequences:
        typer.echo(f"\n{seq.width}x{seq.height}, {len(seq.frames)} frames ({runner} vs PyTorch):")
        typer.echo(f"{'frame':>6}{'max abs':>12}{'PSNR dB':>10}{'vs GT dB':>10}{'FP32 vs GT':>12}")
        for f in seq.frames:
            typer.echo(f"{f.index:>6}{f.max_abs:>12.2e}{f.psnr:>10.2f}{f.gt_psnr:>10.2f}{f.ref_gt_psnr:>12.2f}")
        typer.echo(
            f"worst max abs {seq.worst_max_abs:.2e}, worst PSNR {seq.worst_psnr:.2f} dB, "
            f"trend {seq.psnr_trend:+.2f} dB/100 frames, error drift (last/first third) {seq.drift:.2f}, "
            f"vs ground truth {-seq.gt_drop:+.3f} dB against FP32: {'ok' if seq.passed else 'FAIL'}"
        )
    if json_out:
        json_out.write_text(json.dumps(report.to_json(), indent=2, default=str) + "\n")
    if plot or art.precision != "fp32":
        path = plot or art.path.with_name(f"{art.path.name}-verify.png")
        plot_report(report, path, f"{art.path.name}: {art.preset} {art.precision}, held-out synthetic clips")
        typer.echo(f"plot: {path}")
    typer.echo("\n" + verdict(report.passed, f"{art.precision} {report.backend} vs PyTorch, every frame", tolerance))
    if not report.passed:
        raise typer.Exit(1)


@app.command()
def trt(
    fp16: Annotated[bool, typer.Option("--fp16", help="Build from the FP16 graph.")] = False,
    int8: Annotated[bool, typer.Option("--int8", help="Build from the INT8 (Q/DQ) graph.")] = False,
    output: Annotated[
        Optional[Path], typer.Option("--output", "-o", help="Engine artifact folder (default pahs.plan).")
    ] = None,
    onnx_artifact: Annotated[
        Optional[Path], typer.Option("--onnx", help="Build from this ONNX artifact (default: export one now).")
    ] = None,
    checkpoint: Annotated[Optional[Path], typer.Option("--checkpoint", "-c", help="Weights to export.")] = None,
    preset: PresetOpt = None,
    min_size: Annotated[Optional[str], typer.Option("--min", help="Smallest frame WxH (default 64x64).")] = None,
    opt_size: Annotated[Optional[str], typer.Option("--opt", help="Frame WxH to tune for (default 1280x720).")] = None,
    max_size: Annotated[Optional[str], typer.Option("--max", help="Largest frame WxH (default 1920x1088).")] = None,
    max_batch: Annotated[Optional[int], typer.Option("--max-batch", help="Largest batch (default 1).")] = None,
    opt_level: Annotated[
        Optional[int], typer.Option("--opt-level", help="Builder optimization level 0-5 (TensorRT default).")
    ] = None,
    workspace: Annotated[Optional[float], typer.Option("--workspace", help="Workspace limit in GiB.")] = None,
    timing_cache: Annotated[
        Optional[Path], typer.Option("--timing-cache", help="Timing cache file to reuse (default: in the artifact).")
    ] = None,
    verify_frames: Annotated[
        Optional[int], typer.Option("--verify", help="Compare the engines with PyTorch over N frames after building.")
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing output.")] = False,
    debug: DebugOpt = False,
) -> None:
    """Build strongly typed TensorRT engines from the exported ONNX graphs (precision comes from the graph)."""
    from dataclasses import replace

    from .errors import PahsError
    from .tensorrt_artifact import Profile, require_tensorrt
    from .tensorrt_build import BuildOptions, check_buildable, trt_artifact_from_onnx

    if fp16 and int8:
        raise PahsError("expected at most one of --fp16 and --int8, found both; pick one")
    precision = "fp16" if fp16 else "int8" if int8 else "fp32"
    sizes = {
        k: parse_size(v) for k, v in {"min_size": min_size, "opt_size": opt_size, "max_size": max_size}.items() if v
    }
    batch = {"max_batch": max_batch} if max_batch else {}
    profile = replace(Profile(), **sizes, **batch)
    out = output or Path("pahs.plan")
    if onnx_artifact is not None:
        from .artifact import read_artifact

        check_buildable(read_artifact(onnx_artifact), precision)
    require_tensorrt()  # before any heavy work: without TensorRT nothing else is worth doing
    if onnx_artifact is None:
        from .onnx_export import artifact_from_model
        from .weights import resolve_model

        model, source = resolve_model(checkpoint, preset)
        onnx_artifact = out.with_name(f"{out.stem}-onnx-{precision}")
        cal = None
        if precision == "int8":
            from calibration.data import DEFAULT_SET

            cal = DEFAULT_SET
        artifact_from_model(
            model, onnx_artifact, source=source, precision=precision, overwrite=overwrite, calibration=cal
        )
    options = BuildOptions(profile, opt_level, workspace, timing_cache)
    trt_artifact_from_onnx(onnx_artifact, out, options, overwrite=overwrite, precision=precision)
    typer.echo(f"wrote {out}/ ({precision} engines, profile {profile.describe()})")
    if verify_frames:
        from runtime.backends.trt_backend import TensorRTBackend

        from .artifact import read_artifact
        from .samples import sample_pair
        from .verify import TOLERANCES, verdict, verify_backend
        from .weights import reference_model

        model = reference_model(read_artifact(onnx_artifact))
        w, h = profile.opt_size
        results = verify_backend(TensorRTBackend(out), model, [sample_pair(verify_frames, w, h)], TOLERANCES[precision])
        worst = results[0]
        what = f"TensorRT {precision} vs PyTorch over {verify_frames} frames at {w}x{h}: worst max abs "
        what += f"{worst.worst_max_abs:.2e}, worst PSNR {worst.worst_psnr:.2f} dB"
        typer.echo(verdict(worst.passed, what, TOLERANCES[precision]))
        if not worst.passed:
            raise typer.Exit(1)


main = entry_point(app, "pahs-export")
