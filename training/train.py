"""Training PAHS: L1 loss and Adam as in the paper, random crops of sequences, bidirectional clips.

A run directory holds ``last.safetensors`` (weights, loadable by :func:`pahs_export.load_model`),
``train_state.pt`` (optimizer, step and RNG state, read with ``weights_only=True``), ``best.safetensors``
(best validation PSNR) and ``log.jsonl`` (one JSON line per validation, and one per stop by a signal, with the
seconds of this process and ``run_seconds``, the run's training time over all its processes). Re-running
with ``--resume`` continues from the last saved step, bit-for-bit on the CPU. A termination signal checkpoints
at the end of the step in progress, so a killed run loses at most one step.
"""

from __future__ import annotations

import json
import math
import pickle
import signal
import time
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from pahs_export.checkpoint import build_model, load_model, parse_device, save_checkpoint
from pahs_export.errors import PahsError
from pahs_export.model import PAHS
from pahs_export.presets import DEFAULT_LOOKAHEAD, get_preset
from pahs_export.signals import SIGNALS, interrupted, signal_name, termination_handlers

from .datasets import SequenceClips, find_sequences
from .evaluate import evaluate
from .highfps import HighFpsClips, MixedClips
from .shake import CONTENT_LAYOUTS, ContentClips
from .suite import validation_sequences
from .synth import SynthConfig, SyntheticClips, make_clip
from .widen import widen_model

# The share of training clips a --data folder gives when no weight follows it: a paired data set alone replaces
# the synthetic clips; real footage and content folders join them.
DEFAULT_WEIGHTS = {"x4k": 0.5, "photos": 0.25, "video": 0.25}


@dataclass(frozen=True)
class TrainConfig:
    """One training run. ``None`` fields take the defaults documented beside them."""

    preset: str = "pahs-t"  # model preset
    steps: int = 3000  # optimizer steps
    batch: int = 4  # clips per step (paper: 4)
    frames: int = 5  # frames per training clip
    crop: int = 96  # square crop size, a multiple of 16 (paper: 256)
    lr: float = 3e-4  # initial Adam learning rate (paper: 1e-4); cosine decay to 1% over the run
    lookahead: int | None = DEFAULT_LOOKAHEAD  # backward window while training (the reference model's semantics)
    seed: int = 0  # everything random derives from this
    init: str | None = None  # start from these weights instead of from scratch (a narrower preset's are widened)
    # Training data beside the procedural synthetic clips: folders, each "DIR" or "DIR:WEIGHT" (the share of
    # training clips cut from it; see data_sources). Empty: synthetic clips only. A str is one folder.
    data: tuple[str, ...] = ()
    # The layout of each `data` folder, in order (gopro, dvd, reds, paired, x4k, photos, video); empty: detect
    # every one, a single layout: all of them. A str is one layout.
    layout: tuple[str, ...] = ()
    val_every: int = 250  # steps between validations (and checkpoints)
    val_clips: int = 4  # held-out synthetic clips used for validation
    grad_clip: float = 1.0  # max gradient norm (recurrence can spike early on)
    workers: int = 1  # data-loading processes (synthesis runs there, beside the training threads)
    device: str = "cpu"  # "cpu" or "cuda"
    # bf16 autocast (weights and optimizer stay FP32) on CUDA, and on CPUs with native bf16 (AVX512-BF16 or
    # AMX; 1.64x per step with channels_last on a 2-core AVX512-BF16 machine, docs/experiments/train_step_speed.py);
    # elsewhere FP32.
    amp: bool = True
    loss: str = "l1"  # "l1" (the paper's) or "charbonnier" (sqrt(d^2 + 1e-6): L1 made smooth at zero)
    warmup: int = 0  # steps of linear learning-rate warm-up from zero, before (and counted in) the cosine decay
    # Synthetic clips: the camera and each object move 0.15-1 x this many px per exposure. 50 covers a ball
    # bounced by hand in a GOPRO-style exposure at 1280x720 (30-50 px); runs before it existed used 25.
    max_motion: float = 50.0
    # A folder holding x4k1000fps/, video/ and photos/: validate on a fixed subset of the validation suite
    # (training.suite; the best checkpoint is the one with the highest mean gain there). None: on
    # `val_clips` held-out synthetic clips only.
    val_suite: str | None = None

    def __post_init__(self) -> None:  # one folder or layout may be given as a str (and None as nothing)
        for name in ("data", "layout"):
            value = getattr(self, name)
            value = () if value is None else (value,) if isinstance(value, str) else tuple(value)
            object.__setattr__(self, name, value)


# Settings a saved run may lack (it predates them), with the value that run used.
LEGACY_SETTINGS: dict[str, Any] = {"max_motion": 25.0}
LOSSES = ("l1", "charbonnier")
CHARBONNIER_EPS = 1e-3


def data_sources(cfg: TrainConfig) -> list[tuple[str, str | None, float]]:
    """(folder, layout, weight) of every ``cfg.data`` entry. A weight follows a folder as ``DIR:WEIGHT``; without
    one a folder takes :data:`DEFAULT_WEIGHTS` of its layout (1.0 for a paired data set). The weights are shares
    of the training clips; the procedural synthetic clips take the rest, so they must sum to at most 1."""
    layouts: tuple[str | None, ...] = cfg.layout or (None,) * len(cfg.data)
    if len(layouts) == 1 and len(cfg.data) > 1:
        layouts = layouts * len(cfg.data)
    if len(layouts) != len(cfg.data):
        raise PahsError(
            f"expected one --layout per --data (or one for all), found {len(cfg.layout)} for {len(cfg.data)}; "
            "give them in the same order"
        )
    out = []
    for entry, layout in zip(cfg.data, layouts, strict=True):
        folder, _, tail = entry.rpartition(":")
        try:
            weight = float(tail) if folder else None
        except ValueError:
            weight = None
        if weight is None:
            folder = entry
            weight = DEFAULT_WEIGHTS.get(layout or "", 1.0)
        if not (0.0 <= weight <= 1.0):
            raise PahsError(f"expected a --data weight in [0, 1] after the folder, found {entry!r}; e.g. DIR:0.3")
        out.append((folder, layout, weight))
    total = sum(w for _, _, w in out)
    if total > 1.0 + 1e-9:
        raise PahsError(
            f"expected --data weights that sum to at most 1 (the synthetic clips take the rest), found {total:g}; "
            "give each folder a weight, e.g. --data photos:0.2 --data video:0.2"
        )
    return out


def _train_dataset(cfg: TrainConfig) -> Dataset:
    length = cfg.steps * cfg.batch
    # Seeds of training clips never overlap validation/evaluation seeds (those use the held-out split).
    synth = SynthConfig(height=cfg.crop, width=cfg.crop, frames=cfg.frames, max_motion=cfg.max_motion, split="train")
    synthetic = SyntheticClips(seed_base=cfg.seed * 10_000_000, length=length, config=synth)
    parts: list[tuple[Dataset, float]] = []
    for folder, layout, weight in data_sources(cfg):
        common = {"frames": cfg.frames, "crop": cfg.crop, "length": length, "seed": cfg.seed}
        if layout == "x4k":
            dataset: Dataset = HighFpsClips(folder, **common)
        elif layout in CONTENT_LAYOUTS:
            dataset = ContentClips(folder, layout, **common)
        else:
            dataset = SequenceClips(find_sequences(folder, layout), **common)
        parts.append((dataset, weight))
    if not parts:
        return synthetic
    if len(parts) == 1 and parts[0][1] == 1.0:  # a data set alone, as before mixing existed
        return parts[0][0]
    return MixedClips(synthetic, parts, length, seed=cfg.seed)


def validation_clips(cfg: TrainConfig) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Fixed held-out synthetic clips (content and seeds never used in training)."""
    synth = SynthConfig(height=cfg.crop, width=cfg.crop, frames=cfg.frames, split="heldout")
    return [make_clip(900_000 + i, synth) for i in range(cfg.val_clips)]


def clip_psnr(restored: torch.Tensor, sharp: torch.Tensor) -> float:
    """Mean over frames of the PSNR (dB, peak 1) of clamped float frames [..., T, 3, H, W]."""
    mse = ((restored.clamp(0, 1) - sharp) ** 2).flatten(-3).mean(-1).clamp_min(1e-10)
    return (10 * torch.log10(1.0 / mse)).mean().item()


@torch.no_grad()
def validate(model: PAHS, clips: list[tuple[torch.Tensor, torch.Tensor]], lookahead: int | None, device) -> dict:
    model.eval()
    restored = [clip_psnr(model(b[None].to(device), lookahead=lookahead)[0].float().cpu(), s) for b, s in clips]
    blurry = [clip_psnr(b, s) for b, s in clips]
    model.train()
    return {"val_psnr": sum(restored) / len(restored), "val_blurry_psnr": sum(blurry) / len(blurry)}


def validate_suite(model: PAHS, sequences: list, lookahead: int | None) -> dict:
    """Gains (dB, uint8 PSNR as pahs-eval scores) per row of the suite's validation subset and their mean
    (``suite_gain``): what the best checkpoint is chosen by when training validates on the suite."""
    model.eval()
    report = evaluate(model, sequences, lookahead)
    model.train()
    rows: dict[str, list[float]] = {}
    for seq in report.sequences:
        rows.setdefault(seq.name.split("/", 1)[0], []).append(seq.restored_psnr - seq.blurry_psnr)
    gains = {row: sum(v) / len(v) for row, v in rows.items()}
    return {"suite_gain": sum(gains.values()) / len(gains), "suite_rows": gains}


def _lr_at(cfg: TrainConfig, step: int) -> float:
    """The learning rate of step ``step`` (0-based): linear warm-up, then cosine decay to 1% at ``cfg.steps``."""
    warm = min(1.0, (step + 1) / cfg.warmup) if cfg.warmup else 1.0
    return warm * cfg.lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(step, cfg.steps) / cfg.steps)))


def _batches(cfg: TrainConfig, start_step: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    dataset = _train_dataset(cfg)
    # Item i is fixed by its index, so resuming at step s continues with exactly the clips s*batch onwards.
    indices = range(start_step * cfg.batch, len(dataset))
    loader = DataLoader(
        torch.utils.data.Subset(dataset, indices),
        batch_size=cfg.batch,
        shuffle=False,
        num_workers=cfg.workers,
        persistent_workers=False,
        worker_init_fn=_init_worker,
    )
    yield from loader


def _init_worker(_: int) -> None:
    """A data-loading process: one thread, and deaf to stop signals. A signal sent to the whole process group
    (Ctrl-C, `kill -- -PGID`, a service manager) reaches the workers too; one that died of it would crash the
    trainer before its checkpoint, so only the trainer takes it and shuts the workers down after checkpointing."""
    torch.set_num_threads(1)
    for signum in SIGNALS:
        signal.signal(signum, signal.SIG_IGN)


def check_config(cfg: TrainConfig) -> None:
    if cfg.crop % 16 or cfg.crop < 16:
        raise PahsError(f"expected --crop to be a positive multiple of 16, found {cfg.crop}; try 96 or 128")
    for name in ("steps", "batch", "frames", "val_every", "val_clips"):
        if getattr(cfg, name) < 1:
            raise PahsError(f"expected --{name.replace('_', '-')} of at least 1, found {getattr(cfg, name)}")
    if cfg.loss not in LOSSES:
        raise PahsError(f"expected --loss to be one of {', '.join(LOSSES)}, found {cfg.loss!r}")
    if cfg.warmup < 0:
        raise PahsError(f"expected --warmup of 0 or more steps, found {cfg.warmup}")
    if not (cfg.max_motion >= 0 and math.isfinite(cfg.max_motion)):
        raise PahsError(f"expected --max-motion of 0 or more pixels, found {cfg.max_motion}; try 50")
    parse_device(cfg.device)  # cpu, cuda or cuda:N, and a CUDA device must be usable here


# What train() saves in train_state.pt, and the type of each entry (the config is a dict of TrainConfig fields).
TRAIN_STATE_TYPES: dict[str, type | tuple[type, ...]] = {
    "config": dict,
    "step": int,
    "optimizer": dict,
    "rng": torch.Tensor,
    "best": (float, int),
}


def load_train_state(path: Path) -> dict[str, Any]:
    """Read a ``train_state.pt`` written by :func:`train`, with ``state["config"]`` as a :class:`TrainConfig`.

    Anything else (a file torch.load(weights_only=True) refuses, a truncated one, another program's pickle, a
    dict without our entries) is one :class:`PahsError` that says so: never a hint to load it unsafely.
    """
    problem = _train_state_problem(path)
    if isinstance(problem, dict):
        return problem
    raise PahsError(
        f"expected a pahs training state in {path}, found {problem}; it is not a state pahs-train wrote: point "
        f"--out at the run that wrote it, or delete {path.name} to start this run afresh"
    )


def _train_state_problem(path: Path) -> dict[str, Any] | str:
    """The loaded state (config as a TrainConfig), or what is wrong with the file, in a few words."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's notes on legacy files: the verdict below says it all
            state = torch.load(path, weights_only=True)
    except pickle.UnpicklingError:  # weights_only refused a type: not written by us, and not to be trusted
        return "a file torch.load(weights_only=True) refuses to read (it holds objects other than tensors)"
    except (RuntimeError, EOFError, OSError, ValueError) as e:  # truncated, empty, not a torch file, unreadable
        return f"a damaged or foreign file ({type(e).__name__})"
    if not isinstance(state, dict):
        return f"a {type(state).__name__} instead of a dict"
    for key, kind in TRAIN_STATE_TYPES.items():
        if not isinstance(state.get(key), kind) or isinstance(state.get(key), bool):
            return f"no valid {key!r} entry"
    seconds = state.get("run_seconds", 0.0)  # optional: states saved before it existed lack it
    if isinstance(seconds, bool) or not isinstance(seconds, (float, int)) or not 0 <= seconds < math.inf:
        return "no valid 'run_seconds' entry"
    try:
        config = TrainConfig(**(LEGACY_SETTINGS | state["config"]))
    except TypeError:  # unknown or missing settings
        return f"settings that are not pahs-train's ({', '.join(map(str, state['config']))})"
    return {**state, "config": config}


def uses_bf16(cfg: TrainConfig, device: torch.device) -> bool:
    """Whether training autocasts to bf16: ``cfg.amp`` on CUDA, or on a CPU whose oneDNN has native bf16."""
    if not cfg.amp:
        return False
    if device.type == "cuda":
        return True
    return device.type == "cpu" and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def train_step(
    model: PAHS, optimizer: torch.optim.Optimizer, blurry: torch.Tensor, sharp: torch.Tensor, cfg: TrainConfig, autocast
) -> tuple[float, torch.Tensor]:
    """One optimizer step of ``cfg.loss`` on a batch [B,T,3,H,W]; returns the loss and the restored batch."""
    with autocast:
        restored = model(blurry, lookahead=cfg.lookahead)
    if cfg.loss == "charbonnier":
        loss = ((restored.float() - sharp) ** 2 + CHARBONNIER_EPS**2).sqrt().mean()
    else:
        loss = torch.nn.functional.l1_loss(restored.float(), sharp)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    optimizer.step()
    return loss.item(), restored.detach()


class TrainingStopped(PahsError):
    """A termination signal (``signum``) stopped the run after it checkpointed; ``--resume`` continues it."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.signum = signum


def train(
    cfg: TrainConfig,
    out_dir: str | Path,
    *,
    resume: bool = False,
    progress: bool = True,
    stop_after: int | None = None,
) -> Path:
    """Run (or resume) training; returns the path of the latest checkpoint ``last.safetensors``.

    ``stop_after``: stop after this many steps in this call (checkpointing there), to continue later with
    ``resume=True``; the result is the same as one uninterrupted run. SIGTERM, SIGINT or SIGHUP stop the run the
    same way at the end of the step in progress, then raise :class:`TrainingStopped` (a second signal
    ends the process at once, without a checkpoint).
    """
    check_config(cfg)
    out = Path(out_dir)
    state_path, last_path = out / "train_state.pt", out / "last.safetensors"
    if out.exists() and any(out.iterdir()) and not resume:
        raise PahsError(f"{out} already holds a run; pass --resume to continue it or choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    device = torch.device(cfg.device)
    torch.manual_seed(cfg.seed)

    step = 0
    if resume and state_path.is_file():
        state = load_train_state(state_path)
        saved = state["config"]
        if saved != cfg:
            raise PahsError(
                f"--resume expects the settings of the run in {out}, found different ones "
                f"({', '.join(k for k in asdict(cfg) if getattr(cfg, k) != getattr(saved, k))}); "
                "leave them out to continue with the run's own"
            )
        model = load_model(last_path, preset=cfg.preset).to(device)
        step = state["step"]
    elif cfg.init is not None:
        model = load_model(cfg.init, bidirectional=True)
        if model.preset.name != cfg.preset:  # a narrower preset's weights start a wider one, same function
            model = widen_model(model, get_preset(cfg.preset))
        model = model.to(device)
    else:
        model = build_model(cfg.preset).to(device)
        # Start as the identity (restored = frame): the global residual's last layer begins at zero.
        final = model.reconstructor.body[-1]
        torch.nn.init.zeros_(final.weight)
        torch.nn.init.zeros_(final.bias)
    model.train()
    if device.type == "cpu":
        # oneDNN's convolutions are fastest with channels_last weights (activations follow the weights' layout).
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(0.9, 0.999), eps=1e-8)
    best, spent = -math.inf, 0.0
    if resume and state_path.is_file():
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"])
        # a run saved before "run_seconds" existed: its earlier time is unknown, so none is logged
        best, spent = state["best"], state.get("run_seconds")

    val = validation_clips(cfg)
    if cfg.val_suite is not None:
        val = (val, validation_sequences(cfg.val_suite))
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=uses_bf16(cfg, device))
    log = (out / "log.jsonl").open("a")
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.steps, initial=step, unit="step", dynamic_ncols=True)
    started, running = time.monotonic(), None
    last_step = cfg.steps if stop_after is None else min(cfg.steps, step + stop_after)
    # A termination signal (pahs_export.signals) lets the step in progress finish, checkpoints it and stops:
    # resume is exact from any step. A second signal ends the process at once, without a checkpoint.
    with termination_handlers():
        step = _train_steps(
            cfg, model, optimizer, val, autocast, log, bar, out, step, last_step, best, started, spent, running
        )
        signum = interrupted()
    if bar:
        bar.close()
    log.close()
    if signum is not None:
        raise TrainingStopped(
            f"stopped by {signal_name(signum)} at step {step} of {cfg.steps}, checkpointed in {out}; continue "
            f"with `pahs-train -o {out} --resume`",
            signum,
        )
    return last_path


def _train_steps(
    cfg: TrainConfig,
    model: PAHS,
    optimizer: torch.optim.Optimizer,
    val: Any,
    autocast: Any,
    log: Any,
    bar: Any,
    out: Path,
    step: int,
    last_step: int,
    best: float,
    started: float,
    spent: float | None,
    running: float | None,
) -> int:
    """Steps from ``step`` up to ``last_step`` (or a stop signal), validating and checkpointing every
    ``cfg.val_every`` steps and at the last one; returns the step reached.

    Each log record's ``seconds`` counts from this process's start; ``run_seconds`` adds the ``spent`` seconds of
    the run's earlier processes (``--resume``), so it is the run's training time so far (None: unknown)."""
    device = next(model.parameters()).device
    state_path, last_path = out / "train_state.pt", out / "last.safetensors"
    for blurry, sharp in _batches(cfg, step):
        if step >= last_step:
            break
        for group in optimizer.param_groups:
            group["lr"] = _lr_at(cfg, step)
        blurry, sharp = blurry.to(device), sharp.to(device)
        loss, restored = train_step(model, optimizer, blurry, sharp, cfg, autocast)
        step += 1
        running = loss if running is None else 0.95 * running + 0.05 * loss
        if bar:
            bar.update(1)
            bar.set_postfix(loss=f"{running:.4f}", psnr=f"{clip_psnr(restored.float(), sharp):.2f}")
        signum = interrupted()
        stopping = signum is not None
        validating = step % cfg.val_every == 0 or step == last_step
        if not (validating or stopping):
            continue
        record = {"step": step, "loss": running, "lr": _lr_at(cfg, step), "seconds": time.monotonic() - started}
        if spent is not None:
            record["run_seconds"] = spent + record["seconds"]
        extra = {"train_step": str(step), "train_config": json.dumps(asdict(cfg))}
        if validating:
            clips, suite = val if isinstance(val, tuple) else (val, None)
            metrics = validate(model, clips, cfg.lookahead, device)
            if suite is not None:
                metrics |= validate_suite(model, suite, cfg.lookahead)
            record.update(metrics)
            if bar:
                extra_text = f", suite gain {metrics['suite_gain']:+.2f} dB" if suite is not None else ""
                bar.write(
                    f"step {step}: val PSNR {metrics['val_psnr']:.2f} dB (blurry {metrics['val_blurry_psnr']:.2f})"
                    + extra_text
                )
            score = metrics["suite_gain"] if suite is not None else metrics["val_psnr"]
            if score > best:
                best = score
                save_checkpoint(model, out / "best.safetensors", extra=extra)
        else:  # stopped by a signal between validations: checkpoint now, validate at the next regular step
            record["stopped"] = signal_name(signum)
        log.write(json.dumps(record) + "\n")
        log.flush()
        save_checkpoint(model, last_path, extra=extra)
        state = {"config": asdict(cfg), "step": step, "optimizer": optimizer.state_dict(), "best": best}
        if spent is not None:
            state["run_seconds"] = spent + time.monotonic() - started
        torch.save({**state, "rng": torch.get_rng_state()}, state_path)
        if stopping:
            break
    return step
