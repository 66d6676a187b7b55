"""`pahs-export`: model information, ONNX export and verification, TensorRT engines.

Each command turns its options into one frozen request (:class:`OnnxRequest`, :class:`TrtRequest`), checked
when it is made, and hands it to the function that does the work (:func:`export_onnx`, :func:`build_trt`);
``info`` and ``verify`` hand theirs to the function that prints the result.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from pahs.verify import DEFAULT_FRAMES, DEFAULT_REDUCED_FRAMES, DEFAULT_SIZES, VERIFY_BACKENDS
from pahs_export.errors import PahsError
from pahs_export.onnx_export import DEFAULT_OPSET, MAX_OPSET, MIN_OPSET
from pahs_export.precision import CALIBRATION_METHODS, INT8_TARGETS, Int8Options
from pahs_export.presets import DEFAULT_PRESET, get_preset
from pahs_export.presets import Preset as ModelPreset
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

if TYPE_CHECKING:
    from pahs.verify import VerifyReport
    from pahs_export.artifact import Artifact
    from pahs_export.info import ModelInfo

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


# -- info --------------------------------------------------------------------------------------------------------

InfoPresetOpt = Annotated[Optional[Preset], preset_option(f"Model preset (default {DEFAULT_PRESET}).")]
InfoSizeOpt = Annotated[
    Optional[str], typer.Option("--size", help=f"Frame size WxH for FLOPs (default {INFO_SIZE[0]}x{INFO_SIZE[1]}).")
]
InfoUnidirectionalOpt = Annotated[bool, typer.Option("--unidirectional", help="Count the online model.")]


@app.command()
def info(
    preset: InfoPresetOpt = None,
    size: InfoSizeOpt = None,
    unidirectional: InfoUnidirectionalOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Parameters (total and per module) and FLOPs per frame of a preset."""
    from pahs_export.info import model_info

    p = get_preset(value_of(preset) or DEFAULT_PRESET)
    width, height = parse_size(size) if size else INFO_SIZE
    p.geometry.check_size(width, height, "a --size")
    print_info(p, model_info(p.name, bidirectional=not unidirectional, width=width, height=height))


def print_info(p: ModelPreset, mi: ModelInfo) -> None:
    """The parameter counts per module against the paper's, and the FLOPs per frame per graph role."""
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
    typer.echo(f"FLOPs per frame at {mi.width}x{mi.height} (2 per multiply-add):")
    for role, flops in mi.flops.items():
        typer.echo(f"  {role:<30}{flops / 1e9:>14,.1f} GFLOP")
    typer.echo(f"  {'total':<30}{mi.total_flops / 1e9:>14,.1f} GFLOP  ({mi.total_flops / 1e12:.2f} TFLOP)")


# -- onnx --------------------------------------------------------------------------------------------------------

OnnxCheckpointOpt = Annotated[
    Optional[Path],
    typer.Option(
        "--checkpoint", "-c", help="Weights (.safetensors) to export (default: the preset's default weights)."
    ),
]
OnnxOutputOpt = Annotated[
    Optional[Path],
    typer.Option(
        "--output",
        "-o",
        help="Artifact folder to write (default PRESET-onnx-PRECISION, with -cpu for --int8-target cpu).",
    ),
]
OnnxOpsetOpt = Annotated[
    Optional[int],
    typer.Option("--opset", help=f"ONNX opset, {MIN_OPSET} to {MAX_OPSET} (default {DEFAULT_OPSET})."),
]
OnnxRandomInitOpt = Annotated[
    bool, typer.Option("--random-init", help="Export random weights on purpose (no trained weights).")
]
OnnxSeedOpt = Annotated[Optional[int], typer.Option("--seed", help="Seed for --random-init (default 0).")]
OnnxUnidirectionalOpt = Annotated[
    bool, typer.Option("--unidirectional", help="With --random-init: the online model (one step graph).")
]
OnnxOverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Replace an existing output folder.")]
OnnxPrecisionOpt = Annotated[
    Optional[Precision], precision_option("Precision of the graphs; int8: Q/DQ, calibrated (default fp32).")
]
OnnxCalibrationOpt = Annotated[
    Optional[list[Path]],
    typer.Option(
        "--calibration",
        help="INT8: videos or frame folders to calibrate on (repeat; default: the built-in sample set).",
    ),
]
OnnxCalibrationMethodOpt = Annotated[
    Optional[CalibrationMethod],
    typer.Option("--calibration-method", help=f"INT8: how ranges are calibrated (default {INT8_DEFAULTS.method})."),
]
OnnxInt8TargetOpt = Annotated[
    Optional[Int8Target],
    typer.Option(
        "--int8-target",
        help="INT8: tensorrt = symmetric, for TensorRT; cpu = for ONNX Runtime and OpenVINO on x86 "
        f"(default {INT8_DEFAULTS.target}).",
    ),
]


@app.command()
def onnx(
    checkpoint: OnnxCheckpointOpt = None,
    preset: PresetOpt = None,
    output: OnnxOutputOpt = None,
    opset: OnnxOpsetOpt = None,
    random_init: OnnxRandomInitOpt = False,
    seed: OnnxSeedOpt = None,
    unidirectional: OnnxUnidirectionalOpt = False,
    overwrite: OnnxOverwriteOpt = False,
    precision: OnnxPrecisionOpt = None,
    fp16: Fp16Opt = False,
    int8: Int8Opt = False,
    calibration: OnnxCalibrationOpt = None,
    calibration_method: OnnxCalibrationMethodOpt = None,
    int8_target: OnnxInt8TargetOpt = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Export single-step ONNX graphs (state as explicit inputs/outputs) and manifest.json into one folder."""
    request = OnnxRequest(
        precision_from_flags(precision, fp16, int8) or "fp32", tuple(calibration or ()),
        value_of(calibration_method), value_of(int8_target), checkpoint=checkpoint, preset=value_of(preset),
        output=output, opset=opset or DEFAULT_OPSET, random_init=random_init, seed=seed,
        unidirectional=unidirectional, overwrite=overwrite, quiet=quiet,
    )  # fmt: skip
    export_onnx(request)


@dataclass(frozen=True)
class OnnxRequest:
    """What `pahs-export onnx` was asked to export; INT8 options are refused with another precision."""

    precision: str  # fp32, fp16 or int8
    calibration: tuple[Path, ...] = ()  # INT8: videos or frame folders; none: the built-in sample set
    method: str | None = None  # INT8: the calibration method; None: Int8Options' default
    target: str | None = None  # INT8: tensorrt or cpu conventions; None: Int8Options' default
    checkpoint: Path | None = None  # the weights; None: the preset's default weights
    preset: str | None = None
    output: Path | None = None  # None: PRESET-onnx-PRECISION (with -cpu for the cpu target)
    opset: int = DEFAULT_OPSET
    random_init: bool = False
    seed: int | None = None
    unidirectional: bool = False
    overwrite: bool = False
    quiet: bool = False

    def __post_init__(self) -> None:
        if self.precision != "int8" and (self.calibration or self.method or self.target):
            raise PahsError(f"expected INT8 options only with --precision int8, found --precision {self.precision}")

    @property
    def int8(self) -> Int8Options:
        changes = {"method": self.method, "target": self.target}
        return replace(INT8_DEFAULTS, **{k: v for k, v in changes.items() if v is not None})

    def calibration_set(self) -> Any:
        """INT8's :class:`calibration.data.CalibrationSet` (the built-in one unless --calibration); else None."""
        if self.precision != "int8":
            return None
        from calibration.data import DEFAULT_SET, CalibrationSet

        return CalibrationSet(paths=tuple(str(p) for p in self.calibration)) if self.calibration else DEFAULT_SET


def export_onnx(request: OnnxRequest) -> None:
    """Resolve the weights, export the artifact, and say what was written."""
    from pahs_export.onnx_export import artifact_from_model
    from pahs_export.weights import resolve_model

    prec, int8_options, cal = request.precision, request.int8, request.calibration_set()
    model, source = resolve_model(
        request.checkpoint,
        request.preset,
        random_init=request.random_init,
        bidirectional=False if request.unidirectional else None,
        **({"seed": request.seed} if request.seed is not None else {}),
    )
    suffix = "-cpu" if prec == "int8" and int8_options.target == "cpu" else ""
    out = request.output or Path(f"{model.preset.name}-onnx-{prec}{suffix}")
    artifact_from_model(
        model,
        out,
        source=source,
        opset=request.opset,
        include_checkpoint=source["kind"] == "random-init",
        overwrite=request.overwrite,
        progress=None if request.quiet else lambda msg: typer.echo(msg, err=True),
        precision=prec,
        int8=int8_options,
        calibration=cal,
    )
    direction = "bidirectional" if model.bidirectional else "unidirectional"
    typer.echo(f"wrote {out}/ ({model.preset.name}, {direction}, {prec}, weights: {source['kind']})")


# -- verify ------------------------------------------------------------------------------------------------------

VerifyArtifactOpt = Annotated[Path, typer.Argument(help="Artifact folder written by `pahs-export onnx`.")]
VerifyFramesOpt = Annotated[
    Optional[int],
    typer.Option(
        "--frames",
        "-n",
        help=f"Frames per sequence (default {DEFAULT_FRAMES['fp32']} for fp32, else {DEFAULT_REDUCED_FRAMES}).",
    ),
]
VerifySizeOpt = Annotated[
    Optional[list[str]],
    typer.Option(
        "--size",
        help=f"Frame size WxH; repeat for several (default {', '.join(f'{w}x{h}' for w, h in DEFAULT_SIZES)}).",
    ),
]
VerifyCheckpointOpt = Annotated[
    Optional[Path],
    typer.Option("--checkpoint", "-c", help="Reference weights (default: those it was exported from)."),
]
VerifyJsonOutOpt = Annotated[Optional[Path], typer.Option("--json", help="Also write the full report as JSON.")]
VerifyPlotOpt = Annotated[
    Optional[Path],
    typer.Option("--plot", help="Per-frame PSNR plot (PNG; default ARTIFACT-verify.png for fp16/int8)."),
]
VerifyBackendOpt = Annotated[
    Optional[VerifyBackend],
    typer.Option("--backend", "-b", help=f"CPU runtime that drives the graphs (default {VERIFY_BACKENDS[0]})."),
]
VerifyDataOpt = Annotated[
    Optional[Path],
    typer.Option(
        "--data",
        help="Dataset folder: verify on its held-out sequences against their ground truth, at their own size "
        "(default: generated held-out clips).",
    ),
]
VerifyLayoutOpt = Annotated[
    Optional[Layout],
    typer.Option("--layout", help="Layout of --data, as for pahs-eval (default: detected from --data)."),
]


@app.command()
def verify(
    artifact: VerifyArtifactOpt,
    frames: VerifyFramesOpt = None,
    size: VerifySizeOpt = None,
    checkpoint: VerifyCheckpointOpt = None,
    json_out: VerifyJsonOutOpt = None,
    plot: VerifyPlotOpt = None,
    backend: VerifyBackendOpt = None,
    data: VerifyDataOpt = None,
    layout: VerifyLayoutOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Drive the graphs with a CPU runtime over held-out clips and compare every frame with FP32 PyTorch."""
    from pahs.verify import verify_artifact
    from pahs_export.artifact import read_artifact

    art = read_artifact(artifact)
    sizes = [parse_size(s) for s in size] if size else None
    report = verify_artifact(art, frames, sizes, checkpoint, value_of(backend), data, value_of(layout))
    print_verify_report(art, report, checkpoint)
    if json_out:
        json_out.write_text(json.dumps(report.to_json(), indent=2, default=str) + "\n")
    if not finish_verify_report(art, report, plot, data):
        raise typer.Exit(1)


def print_verify_report(art: Artifact, report: VerifyReport, checkpoint: Path | None) -> None:
    """The reference, the one-step checks of onnx.reference, and per sequence its frames and figures."""
    from pahs_export.weights import reference_checkpoint

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


def finish_verify_report(art: Artifact, report: VerifyReport, plot: Path | None, data: Path | None) -> bool:
    """The plot (always for FP16 and INT8) and the verdict; whether every sequence passed."""
    from pahs.verify import plot_report, verdict

    if plot or art.precision != "fp32":
        path = plot or art.path.with_name(f"{art.path.name}-verify.png")
        clips = f"held-out sequences of {data}" if data else "held-out synthetic clips"
        plot_report(report, path, f"{art.path.name}: {art.preset} {art.precision}, {clips}")
        typer.echo(f"plot: {path}")
    what = f"{art.precision} {report.backend} vs PyTorch, every frame"
    typer.echo("\n" + verdict(report.passed, what, report.tolerance))
    return report.passed


# -- trt ---------------------------------------------------------------------------------------------------------

TrtPrecisionOpt = Annotated[
    Optional[Precision],
    precision_option("Precision of the engines (default: the --onnx artifact's, else fp32)."),
]
TrtOutputOpt = Annotated[
    Optional[Path], typer.Option("--output", "-o", help="Engine artifact folder (default pahs.plan).")
]
TrtOnnxArtifactOpt = Annotated[
    Optional[Path], typer.Option("--onnx", help="Build from this ONNX artifact (default: export one now).")
]
TrtCheckpointOpt = Annotated[
    Optional[Path],
    typer.Option("--checkpoint", "-c", help="Weights to export (default: the preset's default weights)."),
]
TrtMinSizeOpt = Annotated[
    Optional[str], typer.Option("--min", help=f"Smallest frame WxH (default {_wxh(PROFILE.min_size)}).")
]
TrtOptSizeOpt = Annotated[
    Optional[str], typer.Option("--opt", help=f"Frame WxH to tune for (default {_wxh(PROFILE.opt_size)}).")
]
TrtMaxSizeOpt = Annotated[
    Optional[str], typer.Option("--max", help=f"Largest frame WxH (default {_wxh(PROFILE.max_size)}).")
]
TrtMaxBatchOpt = Annotated[
    Optional[int], typer.Option("--max-batch", help=f"Largest batch (default {PROFILE.max_batch}).")
]
TrtOptLevelOpt = Annotated[
    Optional[int], typer.Option("--opt-level", help="Builder optimization level 0-5 (default: TensorRT's, 3).")
]
TrtWorkspaceOpt = Annotated[
    Optional[float], typer.Option("--workspace", help="Workspace limit in GiB (default: TensorRT's).")
]
TrtTimingCacheOpt = Annotated[
    Optional[Path],
    typer.Option("--timing-cache", help="Timing cache file to reuse and extend (default: in the output)."),
]
TrtVerifyFramesOpt = Annotated[
    Optional[int],
    typer.Option(
        "--verify", help="Compare the engines with PyTorch over N frames (N >= 1) after building (default: no)."
    ),
]
TrtOverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Replace an existing output.")]


@app.command()
def trt(
    precision: TrtPrecisionOpt = None,
    fp16: Fp16Opt = False,
    int8: Int8Opt = False,
    output: TrtOutputOpt = None,
    onnx_artifact: TrtOnnxArtifactOpt = None,
    checkpoint: TrtCheckpointOpt = None,
    preset: PresetOpt = None,
    min_size: TrtMinSizeOpt = None,
    opt_size: TrtOptSizeOpt = None,
    max_size: TrtMaxSizeOpt = None,
    max_batch: TrtMaxBatchOpt = None,
    opt_level: TrtOptLevelOpt = None,
    workspace: TrtWorkspaceOpt = None,
    timing_cache: TrtTimingCacheOpt = None,
    verify_frames: TrtVerifyFramesOpt = None,
    overwrite: TrtOverwriteOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Build strongly typed TensorRT engines from the exported ONNX graphs (precision comes from the graph)."""
    request = TrtRequest(
        precision_from_flags(precision, fp16, int8), verify_count(verify_frames),
        trt_profile(min_size, opt_size, max_size, max_batch), output=output or Path("pahs.plan"),
        onnx_artifact=onnx_artifact, checkpoint=checkpoint, preset=value_of(preset), opt_level=opt_level,
        workspace=workspace, timing_cache=timing_cache, overwrite=overwrite,
    )  # fmt: skip
    build_trt(request)


def verify_count(frames: int | None) -> int | None:
    """``--verify N`` of `pahs-export trt`: None (no check) or at least 1."""
    if frames is not None and frames < 1:
        raise PahsError(
            f"expected --verify N with N at least 1 frame, found {frames}; give a positive count, or drop "
            "--verify to skip the check"
        )
    return frames


def trt_profile(min_size: str | None, opt_size: str | None, max_size: str | None, max_batch: int | None) -> Profile:
    """The optimization profile: :data:`PROFILE` with the sizes and batch given."""
    sizes = {
        k: parse_size(v) for k, v in {"min_size": min_size, "opt_size": opt_size, "max_size": max_size}.items() if v
    }
    batch = {"max_batch": max_batch} if max_batch else {}
    return replace(PROFILE, **sizes, **batch)


@dataclass(frozen=True)
class TrtRequest:
    """What `pahs-export trt` was asked to build."""

    precision: str | None  # asked for; None: the --onnx artifact's, else fp32
    verify: int | None  # frames to compare with PyTorch after building; None: no check
    profile: Profile
    output: Path = Path("pahs.plan")
    onnx_artifact: Path | None = None  # build from this; None: export one beside the output first
    checkpoint: Path | None = None
    preset: str | None = None
    opt_level: int | None = None
    workspace: float | None = None
    timing_cache: Path | None = None
    overwrite: bool = False


def build_trt(request: TrtRequest) -> None:
    """Export the ONNX artifact if none is given, build the engines, say what was written, and compare them with
    PyTorch if asked (status 1 when they fail)."""
    from pahs_export.tensorrt_artifact import require_tensorrt
    from pahs_export.tensorrt_build import BuildOptions, check_buildable, trt_artifact_from_onnx

    onnx_artifact = request.onnx_artifact
    if onnx_artifact is not None:
        from pahs_export.artifact import read_artifact

        art = read_artifact(onnx_artifact)
        check_buildable(art, request.precision)
        prec = art.precision
    else:
        prec = request.precision or "fp32"
    require_tensorrt()  # before any heavy work: without TensorRT nothing else is worth doing
    if onnx_artifact is None:
        onnx_artifact = _export_for_trt(request, prec)
    options = BuildOptions(request.profile, request.opt_level, request.workspace, request.timing_cache)
    trt_artifact_from_onnx(onnx_artifact, request.output, options, overwrite=request.overwrite, precision=prec)
    typer.echo(f"wrote {request.output}/ ({prec} engines, profile {request.profile.describe()})")
    if request.verify is not None and not _verify_engines(request, onnx_artifact, prec):
        raise typer.Exit(1)


def _export_for_trt(request: TrtRequest, precision: str) -> Path:
    """The ONNX artifact the engines are built from, exported beside the output (``pahs-onnx-fp16`` ...)."""
    from pahs_export.onnx_export import artifact_from_model
    from pahs_export.weights import resolve_model

    model, source = resolve_model(request.checkpoint, request.preset)
    out = request.output
    onnx_artifact = out.with_name(f"{out.stem}-onnx-{precision}")
    cal = None
    if precision == "int8":
        from calibration.data import DEFAULT_SET

        cal = DEFAULT_SET
    artifact_from_model(
        model, onnx_artifact, source=source, precision=precision, overwrite=request.overwrite, calibration=cal
    )
    return onnx_artifact


def _verify_engines(request: TrtRequest, onnx_artifact: Path, precision: str) -> bool:
    """``--verify N``: the engines against PyTorch over N held-out frames at the profile's opt size."""
    from pahs.verify import TOLERANCES, verdict, verify_backend
    from pahs_export.artifact import read_artifact
    from pahs_export.weights import reference_model
    from runtime.backends.trt_backend import TensorRTBackend
    from training.samples import sample_pair

    frames = request.verify
    assert frames is not None
    model = reference_model(read_artifact(onnx_artifact))
    w, h = request.profile.opt_size
    backend = TensorRTBackend(request.output)
    results = verify_backend(backend, model, [sample_pair(frames, w, h)], TOLERANCES[precision])
    worst = results[0]
    what = f"TensorRT {precision} vs PyTorch over {frames} frames at {w}x{h}: worst max abs "
    what += f"{worst.worst_max_abs:.2e}, worst PSNR {worst.worst_psnr:.2f} dB"
    typer.echo(verdict(worst.passed, what, TOLERANCES[precision]))
    return worst.passed


main = entry_point(app, "pahs-export")
