"""`pahs-train` and `pahs-eval`."""

from __future__ import annotations

from dataclasses import fields, replace
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..cli_common import DEBUG_HELP, entry_point, new_app
from ..presets import DEFAULT_LOOKAHEAD
from .evaluate import EVAL_FRAMES, EVAL_SEQUENCES, EVAL_SIZE
from .train import TrainConfig

train_app = new_app("Train PAHS (L1 + Adam) on synthetic GOPRO-style clips or a dataset folder.")
DEFAULTS = TrainConfig()


def _opt(name: str, help_text: str):
    return typer.Option(f"--{name}", help=f"{help_text} (default {getattr(DEFAULTS, name.replace('-', '_'))}).")


@train_app.command()
def train(
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder: checkpoints, train_state.pt, log.jsonl.")],
    preset: Annotated[Optional[str], _opt("preset", "Model preset")] = None,
    steps: Annotated[Optional[int], _opt("steps", "Optimizer steps")] = None,
    batch: Annotated[Optional[int], _opt("batch", "Clips per step")] = None,
    frames: Annotated[Optional[int], _opt("frames", "Frames per clip")] = None,
    crop: Annotated[Optional[int], _opt("crop", "Square crop size, multiple of 16")] = None,
    lr: Annotated[Optional[float], _opt("lr", "Initial learning rate, cosine decay")] = None,
    lookahead: Annotated[Optional[int], _opt("lookahead", "Backward window while training")] = None,
    seed: Annotated[Optional[int], _opt("seed", "Seed of everything random")] = None,
    init: Annotated[Optional[str], _opt("init", "Start from this checkpoint (fine-tune)")] = None,
    data: Annotated[Optional[str], _opt("data", "Dataset folder; synthetic clips when not given")] = None,
    layout: Annotated[
        Optional[str],
        _opt("layout", "Dataset layout gopro|dvd|reds|paired, or x4k (1000 fps clips mixed with synthetic)"),
    ] = None,
    val_every: Annotated[Optional[int], _opt("val-every", "Steps between validations and checkpoints")] = None,
    workers: Annotated[Optional[int], _opt("workers", "Data-loading processes")] = None,
    device: Annotated[Optional[str], _opt("device", "cpu or cuda")] = None,
    amp: Annotated[
        Optional[bool],
        typer.Option(
            "--amp/--no-amp",
            help="bf16 autocast on CUDA and on CPUs with native bf16; --no-amp trains in FP32 (default --amp).",
        ),
    ] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --out.")] = False,
    stop_after: Annotated[
        Optional[int], typer.Option("--stop-after", help="Stop after N steps now (checkpointed); --resume later.")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help=DEBUG_HELP)] = False,
) -> None:
    """Train a model; the run folder's last.safetensors is a checkpoint for `pahs-export onnx --checkpoint`."""
    given = dict(locals())
    changes = {f.name: given[f.name] for f in fields(TrainConfig) if given.get(f.name) is not None}
    from .train import train as run_training

    cfg = replace(DEFAULTS, **changes)
    path = run_training(cfg, out, resume=resume, progress=not quiet, stop_after=stop_after)
    typer.echo(f"wrote {path}")


train_main = entry_point(train_app, "pahs-train")


eval_app = new_app("Score PAHS (PSNR/SSIM on uint8 RGB) on a dataset folder or held-out synthetic clips.")


@eval_app.command()
def evaluate(
    checkpoint: Annotated[
        Optional[Path], typer.Option("--checkpoint", "-c", help="Weights to score (default: the preset's default).")
    ] = None,
    preset: Annotated[
        Optional[str], typer.Option("--preset", "-p", help="Preset whose default weights to score.")
    ] = None,
    data: Annotated[Optional[str], typer.Option("--data", help="Dataset folder (default: held-out synthetic).")] = None,
    layout: Annotated[
        Optional[str], typer.Option("--layout", help="gopro|dvd|reds|paired|x4k (default: detect).")
    ] = None,
    sequences: Annotated[
        Optional[int], typer.Option("--sequences", help=f"Synthetic sequences (default {EVAL_SEQUENCES}).")
    ] = None,
    frames: Annotated[
        Optional[int], typer.Option("--frames", help=f"Frames per synthetic sequence (default {EVAL_FRAMES}).")
    ] = None,
    size: Annotated[
        Optional[str],
        typer.Option("--size", help=f"Synthetic frame size WxH (default {EVAL_SIZE[0]}x{EVAL_SIZE[1]})."),
    ] = None,
    max_frames: Annotated[Optional[int], typer.Option("--max-frames", help="Frames per dataset sequence.")] = None,
    lookahead: Annotated[
        Optional[int], typer.Option("--lookahead", help=f"Backward window (default {DEFAULT_LOOKAHEAD}).")
    ] = None,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Also write the report as JSON.")] = None,
    debug: Annotated[bool, typer.Option("--debug", help=DEBUG_HELP)] = False,
) -> None:
    """PSNR/SSIM of the blurry input and of the restored output against ground truth, per sequence and overall."""
    import json

    from ..cli_common import parse_size
    from ..weights import resolve_model
    from .evaluate import dataset_sequences, synthetic_sequences
    from .evaluate import evaluate as run_eval

    model, source = resolve_model(checkpoint, preset)
    if data is not None:
        seqs = dataset_sequences(data, layout, max_frames)
    else:
        width, height = parse_size(size) if size else EVAL_SIZE
        seqs = synthetic_sequences(sequences or EVAL_SEQUENCES, frames or EVAL_FRAMES, width, height)
    report = run_eval(model, seqs, lookahead=DEFAULT_LOOKAHEAD if lookahead is None else lookahead)
    typer.echo(f"model: {model.preset.name}, weights: {source.get('path', source['kind'])}")
    typer.echo(report.table())
    if json_out:
        json_out.write_text(json.dumps(report.to_json() | {"weights": source}, indent=2) + "\n")


eval_main = entry_point(eval_app, "pahs-eval")
