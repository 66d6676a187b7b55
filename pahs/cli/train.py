"""`pahs-train` and `pahs-eval`."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import fields, replace
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from pahs_export.checkpoint import read_metadata
from pahs_export.presets import DEFAULT_LOOKAHEAD, DEFAULT_PRESET
from training.datasets import LAYOUTS
from training.evaluate import EVAL_FRAMES, EVAL_SEQUENCES, EVAL_SIZE
from training.shake import CONTENT_LAYOUTS
from training.train import LOSSES, TrainConfig

from .common import (
    DebugOpt,
    Preset,
    QuietOpt,
    choices,
    device_option,
    entry_point,
    new_app,
    preset_option,
    value_of,
    values_of,
)

train_app = new_app("Train PAHS (L1 or Charbonnier + Adam) on synthetic GOPRO-style clips or a dataset folder.")
DEFAULTS = TrainConfig()
Layout = choices("Layout", (*LAYOUTS, "x4k", *CONTENT_LAYOUTS))
Loss = choices("Loss", LOSSES)


def _opt(name: str, help_text: str, default: str | None = None):
    """An option whose default is TrainConfig's (``default``: how to say it when the value alone says nothing)."""
    value = getattr(DEFAULTS, name.replace("-", "_")) if default is None else default
    return typer.Option(f"--{name}", help=f"{help_text} (default {value}).")


DataOpt = Annotated[
    Optional[list[str]],
    typer.Option(
        "--data",
        help="A folder of training data, DIR or DIR:WEIGHT; repeatable. WEIGHT is its share of the training "
        "clips (default 0.5 for x4k, 0.25 for photos and video, 1 for a paired data set); the procedural "
        "synthetic clips take the rest, so the weights sum to at most 1 (default: synthetic clips only).",
    ),
]

LayoutOpt = Annotated[
    Optional[list[Layout]],
    typer.Option(
        "--layout",
        help="Layout of each --data, in order (one for all is fine): gopro, dvd, reds, paired (blurry/sharp "
        "pairs); x4k (1000 fps clips, real temporal blur); photos or video (real content blurred by a "
        "synthesized hand-held camera shake, with noise, highlights and compression) (default: detected).",
    ),
]

ValSuiteOpt = Annotated[
    Optional[str],
    typer.Option(
        "--val-suite",
        help="A folder holding x4k1000fps/, video/ and photos/: validate on the fixed subset of pahs-eval "
        "--suite and keep as best the checkpoint with the highest mean gain there (default: held-out "
        "synthetic clips).",
    ),
]


@train_app.command()
def train(
    out: Annotated[
        Path,
        typer.Option(
            "--output", "-o", "--out", help="Run folder: checkpoints, train_state.pt, log.jsonl.", show_default=False
        ),
    ],
    preset: Annotated[
        Optional[Preset], preset_option(f"Model preset (default {DEFAULTS.preset}; with --init: its preset).")
    ] = None,
    steps: Annotated[Optional[int], _opt("steps", "Optimizer steps")] = None,
    batch: Annotated[Optional[int], _opt("batch", "Clips per step")] = None,
    frames: Annotated[Optional[int], _opt("frames", "Frames per clip")] = None,
    crop: Annotated[Optional[int], _opt("crop", "Square crop size, multiple of 16")] = None,
    lr: Annotated[Optional[float], _opt("lr", "Initial learning rate, cosine decay")] = None,
    lookahead: Annotated[Optional[int], _opt("lookahead", "Backward window while training")] = None,
    seed: Annotated[Optional[int], _opt("seed", "Seed of everything random")] = None,
    init: Annotated[
        Optional[str], _opt("init", "Start from this checkpoint (fine-tune)", "none: from random weights")
    ] = None,
    data: DataOpt = None,
    layout: LayoutOpt = None,
    val_suite: ValSuiteOpt = None,
    val_every: Annotated[Optional[int], _opt("val-every", "Steps between validations and checkpoints")] = None,
    workers: Annotated[Optional[int], _opt("workers", "Data-loading processes")] = None,
    device: Annotated[Optional[str], device_option(DEFAULTS.device)] = None,
    amp: Annotated[
        Optional[bool],
        typer.Option(
            "--amp/--no-amp",
            help="bf16 autocast on CUDA and on CPUs with native bf16; --no-amp trains in FP32 (default --amp).",
        ),
    ] = None,
    loss: Annotated[Optional[Loss], _opt("loss", "Loss: l1 (the paper's) or charbonnier")] = None,
    warmup: Annotated[Optional[int], _opt("warmup", "Steps of linear learning-rate warm-up")] = None,
    max_motion: Annotated[
        Optional[float], _opt("max-motion", "Synthetic clips: motion up to this many px per exposure (from 0.15x)")
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="Continue the run in --output with its own settings (options given must match them); a "
            "folder without a run starts one (from --init if given).",
        ),
    ] = False,
    stop_after: Annotated[
        Optional[int], typer.Option("--stop-after", help="Stop after N steps now (checkpointed); --resume later.")
    ] = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Train a model; the run folder's last.safetensors is a checkpoint for `pahs-export onnx --checkpoint`."""
    given = {name: values_of(value) if isinstance(value, list) else value_of(value) for name, value in locals().items()}
    changes = {f.name: given[f.name] for f in fields(TrainConfig) if given.get(f.name) is not None}
    from training.train import TrainingStopped, load_train_state
    from training.train import train as run_training

    state = out / "train_state.pt"
    base = load_train_state(state)["config"] if resume and state.is_file() else DEFAULTS
    cfg = replace(base, **changes)
    if cfg.init is not None and "preset" not in changes and base is DEFAULTS:  # --init's preset unless told
        cfg = replace(cfg, preset=read_metadata(cfg.init)["preset"])
    try:
        path = run_training(cfg, out, resume=resume, progress=not quiet, stop_after=stop_after)
    except TrainingStopped as e:  # checkpointed: not an error, but not finished either (128 + signal, as a shell)
        typer.echo(f"pahs-train: {e}", err=True)
        raise typer.Exit(128 + e.signum) from None
    typer.echo(f"wrote {path}")


train_main = entry_point(train_app, "pahs-train")


eval_app = new_app("Score PAHS (PSNR/SSIM on uint8 RGB) on a dataset folder or held-out synthetic clips.")


@eval_app.command()
def evaluate(
    checkpoint: Annotated[
        Optional[Path], typer.Option("--checkpoint", "-c", help="Weights to score (default: the preset's default).")
    ] = None,
    preset: Annotated[
        Optional[Preset],
        preset_option(
            f"Preset whose default weights to score (default {DEFAULT_PRESET}; with --checkpoint: its preset)."
        ),
    ] = None,
    data: Annotated[Optional[str], typer.Option("--data", help="Dataset folder (default: held-out synthetic).")] = None,
    layout: Annotated[
        Optional[Layout], typer.Option("--layout", help="Layout of --data (default: detected from --data).")
    ] = None,
    sequences: Annotated[
        Optional[int],
        typer.Option(
            "--sequences",
            help=f"The first N held-out synthetic sequences (default all {EVAL_SEQUENCES}: small, medium and large "
            "blur).",
        ),
    ] = None,
    frames: Annotated[
        Optional[int], typer.Option("--frames", "-n", help=f"Frames per synthetic sequence (default {EVAL_FRAMES}).")
    ] = None,
    size: Annotated[
        Optional[str],
        typer.Option("--size", help=f"Synthetic frame size WxH (default {EVAL_SIZE[0]}x{EVAL_SIZE[1]})."),
    ] = None,
    max_frames: Annotated[
        Optional[int], typer.Option("--max-frames", help="Frames per dataset sequence (default: all).")
    ] = None,
    lookahead: Annotated[
        Optional[int],
        typer.Option("--lookahead", "-l", help=f"Future frames each frame sees (default {DEFAULT_LOOKAHEAD})."),
    ] = None,
    device: Annotated[Optional[str], device_option("cpu", "where to restore")] = None,
    suite: Annotated[
        Optional[Path],
        typer.Option(
            "--suite",
            help="Score the fixed validation suite instead: a folder holding x4k1000fps/, video/ and photos/; one "
            "row per set (X4K, Set8, DAVIS, Set14 held out, procedural synthetic) and the suite mean.",
        ),
    ] = None,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Also write the report as JSON.")] = None,
    pictures: Annotated[
        Optional[Path],
        typer.Option(
            "--pictures",
            help="Also write to this folder, per sequence, a PNG of blurry | restored | sharp: a 256-px crop of the "
            "middle frame where the input is most blurred.",
        ),
    ] = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """PSNR/SSIM of the blurry input and of the restored output against ground truth, per sequence and overall."""
    import json

    from pahs_export.weights import resolve_model
    from training.evaluate import evaluate as run_eval

    model, source = resolve_model(checkpoint, value_of(preset))
    if device is not None:
        model = model.to(device)
    if suite is not None:
        return _score_suite(model, source, suite, lookahead, pictures, json_out, quiet)
    seqs = eval_sequences(data, value_of(layout), max_frames, sequences, frames, size)
    if not quiet:
        seqs = _announced(seqs)
    report = run_eval(model, seqs, DEFAULT_LOOKAHEAD if lookahead is None else lookahead, pictures)
    typer.echo(f"model: {model.preset.name}, weights: {source.get('path', source['kind'])}")
    typer.echo(report.table())
    if json_out:
        json_out.write_text(json.dumps(report.to_json() | {"weights": source}, indent=2) + "\n")


def _score_suite(
    model: Any, source: dict, suite: Path, lookahead: int | None, pictures: Path | None, json_out: Path | None,
    quiet: bool,
) -> None:  # fmt: skip
    """``pahs-eval --suite``: the validation suite's table (and JSON report)."""
    import json

    from training.suite import run_suite

    look = DEFAULT_LOOKAHEAD if lookahead is None else lookahead
    result = run_suite(model, suite, lookahead=look, pictures=pictures, announce=None if quiet else _announced)
    typer.echo(f"model: {model.preset.name}, weights: {source.get('path', source['kind'])}")
    typer.echo(result.table())
    if json_out:
        json_out.write_text(json.dumps(result.to_json() | {"weights": source}, indent=2) + "\n")


def eval_sequences(
    data: str | None, layout: str | None, max_frames: int | None, sequences: int | None, frames: int | None,
    size: str | None,
) -> Iterable[tuple[str, Any, Any]]:  # fmt: skip
    """The sequences to score: the held-out ones of the dataset folder ``data`` (``layout``; ``max_frames`` each),
    else the first ``sequences`` held-out synthetic ones of ``frames`` frames at ``size``."""
    from training.evaluate import dataset_sequences, synthetic_sequences

    from .common import parse_size

    if data is not None:
        return dataset_sequences(data, layout, max_frames)
    width, height = parse_size(size) if size else EVAL_SIZE
    return synthetic_sequences(sequences or EVAL_SEQUENCES, frames or EVAL_FRAMES, width, height)


def _announced(sequences: Iterable[tuple[str, Any, Any]]) -> Iterator[tuple[str, Any, Any]]:
    """The sequences, each announced on stderr as it is scored (``pahs-eval: scoring NAME (T frames, WxH)``)."""
    for name, blurry, sharp in sequences:
        t, _, h, w = blurry.shape
        typer.echo(f"pahs-eval: scoring {name} ({t} frames, {w}x{h})", err=True)
        yield name, blurry, sharp


eval_main = entry_point(eval_app, "pahs-eval")
