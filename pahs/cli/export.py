"""`pahs-export`: model information, ONNX export and verification, TensorRT engines."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from pahs.verify import DEFAULT_FRAMES, DEFAULT_REDUCED_FRAMES, DEFAULT_SIZES, VERIFY_BACKENDS
from pahs_export.onnx_export import DEFAULT_OPSET, MAX_OPSET, MIN_OPSET
from pahs_export.precision import CALIBRATION_METHODS, INT8_TARGETS, Int8Options
from pahs_export.presets import DEFAULT_PRESET, get_preset
from pahs_export.tensorrt_artifact import Profile
from training.datasets import LAYOUTS

from .common import (
    DebugOpt,
    Fp16Opt,
    Int8Opt,
    Precision,
    Preset,
    PresetOpt,
    QuietOpt,
    choices,
    entry_point,
    new_app,
    parse_size,
    precision_from_flags,
    precision_option,
    preset_option,
    value_of,
)

app = new_app("Export PAHS to ONNX and TensorRT, verify the exported graphs, show model size and compute.")

CalibrationMethod = choices("CalibrationMethod", CALIBRATION_METHODS)
Int8Target = choices("Int8Target", INT8_TARGETS)
VerifyBackend = choices("VerifyBackend", VERIFY_BACKENDS)
Layout = choices("Layout", (*LAYOUTS, "x4k"))
INFO_SIZE = (1280, 720)  # the paper's frame size
INT8_DEFAULTS = Int8Options()
PROFILE = Profile()  # the TensorRT optimization profile's defaults


def _wxh(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


@app.command()
def info(
    preset: Annotated[Optional[Preset], preset_option(f"Model preset (default {DEFAULT_PRESET}).")] = None,
    size: Annotated[
        Optional[str], typer.Option("--size", help=f"Frame size WxH for FLOPs (default {INFO_SIZE[0]}x{INFO_SIZE[1]}).")
    ] = None,
    unidirectional: Annotated[bool, typer.Option("--unidirectional", help="Count the online model.")] = False,
    debug: DebugOpt = False,
) -> None:
    """Parameters (total and per module) and FLOPs per frame of a preset."""
    from pahs_export.info import model_info

    p = get_preset(value_of(preset) or DEFAULT_PRESET)
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
        Optional[Path],
        typer.Option(
            "--checkpoint", "-c", help="Weights (.safetensors) to export (default: the preset's default weights)."
        ),
    ] = None,
    preset: PresetOpt = None,
    output: Annotated[
        Optional[Path],
        typer.Option(
            "--output",
            "-o",
            help="Artifact folder to write (default PRESET-onnx-PRECISION, with -cpu for --int8-target cpu).",
        ),
    ] = None,
    opset: Annotated[
        Optional[int],
        typer.Option("--opset", help=f"ONNX opset, {MIN_OPSET} to {MAX_OPSET} (default {DEFAULT_OPSET})."),
    ] = None,
    random_init: Annotated[
        bool, typer.Option("--random-init", help="Export random weights on purpose (no trained weights).")
    ] = False,
    seed: Annotated[Optional[int], typer.Option("--seed", help="Seed for --random-init (default 0).")] = None,
    unidirectional: Annotated[
        bool, typer.Option("--unidirectional", help="With --random-init: the online model (one step graph).")
    ] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing output folder.")] = False,
    precision: Annotated[
        Optional[Precision], precision_option("Precision of the graphs; int8: Q/DQ, calibrated (default fp32).")
    ] = None,
    fp16: Fp16Opt = False,
    int8: Int8Opt = False,
    calibration: Annotated[
        Optional[list[Path]],
        typer.Option(
            "--calibration",
            help="INT8: videos or frame folders to calibrate on (repeat; default: the built-in sample set).",
        ),
    ] = None,
    calibration_method: Annotated[
        Optional[CalibrationMethod],
        typer.Option("--calibration-method", help=f"INT8: how ranges are calibrated (default {INT8_DEFAULTS.method})."),
    ] = None,
    int8_target: Annotated[
        Optional[Int8Target],
        typer.Option(
            "--int8-target",
            help="INT8: tensorrt = symmetric, for TensorRT; cpu = for ONNX Runtime and OpenVINO on x86 "
            f"(default {INT8_DEFAULTS.target}).",
        ),
    ] = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Export single-step ONNX graphs (state as explicit inputs/outputs) and manifest.json into one folder."""
    from dataclasses import replace

    from pahs_export.errors import PahsError
    from pahs_export.onnx_export import artifact_from_model
    from pahs_export.weights import resolve_model

    prec = precision_from_flags(precision, fp16, int8) or "fp32"
    method, target = value_of(calibration_method), value_of(int8_target)
    if prec != "int8" and (calibration or method or target):
        raise PahsError(f"expected INT8 options only with --precision int8, found --precision {prec}")
    int8_changes = {"method": method, "target": target}
    int8_options = replace(INT8_DEFAULTS, **{k: v for k, v in int8_changes.items() if v is not None})
    cal = None
    if prec == "int8":
        from calibration.data import DEFAULT_SET, CalibrationSet

        cal = CalibrationSet(paths=tuple(str(p) for p in calibration)) if calibration else DEFAULT_SET

    model, source = resolve_model(
        checkpoint,
        value_of(preset),
        random_init=random_init,
        bidirectional=False if unidirectional else None,
        **({"seed": seed} if seed is not None else {}),
    )
    suffix = "-cpu" if prec == "int8" and int8_options.target == "cpu" else ""
    out = output or Path(f"{model.preset.name}-onnx-{prec}{suffix}")
    artifact_from_model(
        model,
        out,
        source=source,
        opset=opset or DEFAULT_OPSET,
        include_checkpoint=source["kind"] == "random-init",
        overwrite=overwrite,
        progress=None if quiet else lambda msg: typer.echo(msg, err=True),
        precision=prec,
        int8=int8_options,
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
    backend: Annotated[
        Optional[VerifyBackend],
        typer.Option("--backend", "-b", help=f"CPU runtime that drives the graphs (default {VERIFY_BACKENDS[0]})."),
    ] = None,
    data: Annotated[
        Optional[Path],
        typer.Option(
            "--data",
            help="Dataset folder: verify on its held-out sequences against their ground truth, at their own size "
            "(default: generated held-out clips).",
        ),
    ] = None,
    layout: Annotated[
        Optional[Layout],
        typer.Option("--layout", help="Layout of --data, as for pahs-eval (default: detected from --data)."),
    ] = None,
    debug: DebugOpt = False,
) -> None:
    """Drive the graphs with a CPU runtime over held-out clips and compare every frame with FP32 PyTorch."""
    from pahs.verify import plot_report, verdict, verify_artifact
    from pahs_export.artifact import read_artifact
    from pahs_export.weights import reference_checkpoint

    art = read_artifact(artifact)
    sizes = [parse_size(s) for s in size] if size else None
    report = verify_artifact(art, frames, sizes, checkpoint, value_of(backend), data, value_of(layout))
    tolerance = report.tolerance
    ckpt = reference_checkpoint(art, checkpoint)
    typer.echo(f"{art.path}: {art.preset}, {art.manifest.direction}, {art.precision}; reference: {ckpt}")
    for role, err in report.reference_evaluator.items():
        typer.echo(f"onnx.reference {role:<9} one step at 32x32: max abs error {err:.2e}")
    runner = f"{report.backend} on cpu ({art.precision})"
    for seq in report.sequences:
        label = f"{seq.name}, " if seq.name else ""
        typer.echo(f"\n{label}{seq.width}x{seq.height}, {len(seq.frames)} frames ({runner} vs PyTorch):")
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
        clips = f"held-out sequences of {data}" if data else "held-out synthetic clips"
        plot_report(report, path, f"{art.path.name}: {art.preset} {art.precision}, {clips}")
        typer.echo(f"plot: {path}")
    typer.echo("\n" + verdict(report.passed, f"{art.precision} {report.backend} vs PyTorch, every frame", tolerance))
    if not report.passed:
        raise typer.Exit(1)


@app.command()
def trt(
    precision: Annotated[
        Optional[Precision],
        precision_option("Precision of the engines (default: the --onnx artifact's, else fp32)."),
    ] = None,
    fp16: Fp16Opt = False,
    int8: Int8Opt = False,
    output: Annotated[
        Optional[Path], typer.Option("--output", "-o", help="Engine artifact folder (default pahs.plan).")
    ] = None,
    onnx_artifact: Annotated[
        Optional[Path], typer.Option("--onnx", help="Build from this ONNX artifact (default: export one now).")
    ] = None,
    checkpoint: Annotated[
        Optional[Path],
        typer.Option("--checkpoint", "-c", help="Weights to export (default: the preset's default weights)."),
    ] = None,
    preset: PresetOpt = None,
    min_size: Annotated[
        Optional[str], typer.Option("--min", help=f"Smallest frame WxH (default {_wxh(PROFILE.min_size)}).")
    ] = None,
    opt_size: Annotated[
        Optional[str], typer.Option("--opt", help=f"Frame WxH to tune for (default {_wxh(PROFILE.opt_size)}).")
    ] = None,
    max_size: Annotated[
        Optional[str], typer.Option("--max", help=f"Largest frame WxH (default {_wxh(PROFILE.max_size)}).")
    ] = None,
    max_batch: Annotated[
        Optional[int], typer.Option("--max-batch", help=f"Largest batch (default {PROFILE.max_batch}).")
    ] = None,
    opt_level: Annotated[
        Optional[int], typer.Option("--opt-level", help="Builder optimization level 0-5 (default: TensorRT's, 3).")
    ] = None,
    workspace: Annotated[
        Optional[float], typer.Option("--workspace", help="Workspace limit in GiB (default: TensorRT's).")
    ] = None,
    timing_cache: Annotated[
        Optional[Path],
        typer.Option("--timing-cache", help="Timing cache file to reuse and extend (default: in the output)."),
    ] = None,
    verify_frames: Annotated[
        Optional[int],
        typer.Option(
            "--verify", help="Compare the engines with PyTorch over N frames (N >= 1) after building (default: no)."
        ),
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing output.")] = False,
    debug: DebugOpt = False,
) -> None:
    """Build strongly typed TensorRT engines from the exported ONNX graphs (precision comes from the graph)."""
    from dataclasses import replace

    from pahs_export.errors import PahsError
    from pahs_export.tensorrt_artifact import require_tensorrt
    from pahs_export.tensorrt_build import BuildOptions, check_buildable, trt_artifact_from_onnx

    asked = precision_from_flags(precision, fp16, int8)
    if verify_frames is not None and verify_frames < 1:
        raise PahsError(
            f"expected --verify N with N at least 1 frame, found {verify_frames}; give a positive count, or drop "
            "--verify to skip the check"
        )
    sizes = {
        k: parse_size(v) for k, v in {"min_size": min_size, "opt_size": opt_size, "max_size": max_size}.items() if v
    }
    batch = {"max_batch": max_batch} if max_batch else {}
    profile = replace(PROFILE, **sizes, **batch)
    out = output or Path("pahs.plan")
    if onnx_artifact is not None:
        from pahs_export.artifact import read_artifact

        art = read_artifact(onnx_artifact)
        check_buildable(art, asked)
        prec = art.precision
    else:
        prec = asked or "fp32"
    require_tensorrt()  # before any heavy work: without TensorRT nothing else is worth doing
    if onnx_artifact is None:
        from pahs_export.onnx_export import artifact_from_model
        from pahs_export.weights import resolve_model

        model, source = resolve_model(checkpoint, value_of(preset))
        onnx_artifact = out.with_name(f"{out.stem}-onnx-{prec}")
        cal = None
        if prec == "int8":
            from calibration.data import DEFAULT_SET

            cal = DEFAULT_SET
        artifact_from_model(model, onnx_artifact, source=source, precision=prec, overwrite=overwrite, calibration=cal)
    options = BuildOptions(profile, opt_level, workspace, timing_cache)
    trt_artifact_from_onnx(onnx_artifact, out, options, overwrite=overwrite, precision=prec)
    typer.echo(f"wrote {out}/ ({prec} engines, profile {profile.describe()})")
    if verify_frames is not None:
        from pahs.verify import TOLERANCES, verdict, verify_backend
        from pahs_export.artifact import read_artifact
        from pahs_export.weights import reference_model
        from runtime.backends.trt_backend import TensorRTBackend
        from training.samples import sample_pair

        model = reference_model(read_artifact(onnx_artifact))
        w, h = profile.opt_size
        results = verify_backend(TensorRTBackend(out), model, [sample_pair(verify_frames, w, h)], TOLERANCES[prec])
        worst = results[0]
        what = f"TensorRT {prec} vs PyTorch over {verify_frames} frames at {w}x{h}: worst max abs "
        what += f"{worst.worst_max_abs:.2e}, worst PSNR {worst.worst_psnr:.2f} dB"
        typer.echo(verdict(worst.passed, what, TOLERANCES[prec]))
        if not worst.passed:
            raise typer.Exit(1)


main = entry_point(app, "pahs-export")
