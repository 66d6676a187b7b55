"""Evaluation: PSNR/SSIM per sequence and overall, on RGB uint8 frames after rounding (as papers report).

Sequences come from a dataset folder (GOPRO/DVD/REDS/paired layouts) or from held-out synthetic clips
(content and seeds never used in training). Both the blurry input and the restored output are scored
against the sharp ground truth, so the gain is read directly.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from ..model import PAHS, pad_to_multiple
from ..presets import DEFAULT_LOOKAHEAD
from .datasets import find_sequences, read_frame
from .highfps import heldout_sequences
from .metrics import psnr, ssim, to_uint8
from .synth import SynthConfig, make_clip

# Held-out synthetic evaluation seeds start here; training uses seed * 10_000_000 + index on the
# "train" content split and validation 900_000 + i on the held-out split, so these never meet either.
EVAL_SEED_BASE = 5_000_000
# The held-out synthetic set `pahs-eval` scores by default (the figures in the README use it).
EVAL_SEQUENCES = 8
EVAL_FRAMES = 10
EVAL_SIZE = (256, 160)  # width, height


@dataclass
class SequenceScore:
    name: str
    frames: int
    blurry_psnr: float  # mean over frames, dB
    blurry_ssim: float
    restored_psnr: float
    restored_ssim: float


@dataclass
class EvalReport:
    sequences: list[SequenceScore] = field(default_factory=list)

    def _mean(self, key: str) -> float:
        # overall = mean over all frames (sequences weighted by their length), as GOPRO/DVD tables do
        total = sum(s.frames for s in self.sequences)
        return sum(getattr(s, key) * s.frames for s in self.sequences) / total

    @property
    def overall(self) -> dict[str, float]:
        keys = ("blurry_psnr", "blurry_ssim", "restored_psnr", "restored_ssim")
        return {k: self._mean(k) for k in keys} | {"frames": sum(s.frames for s in self.sequences)}

    def to_json(self) -> dict:
        return {"sequences": [asdict(s) for s in self.sequences], "overall": self.overall}

    def table(self) -> str:
        rows = [
            f"{'sequence':<24}{'frames':>7}{'blurry PSNR':>13}{'SSIM':>8}{'restored PSNR':>15}{'SSIM':>8}{'gain':>8}"
        ]
        for s in self.sequences:
            rows.append(
                f"{s.name:<24}{s.frames:>7}{s.blurry_psnr:>13.2f}{s.blurry_ssim:>8.4f}"
                f"{s.restored_psnr:>15.2f}{s.restored_ssim:>8.4f}{s.restored_psnr - s.blurry_psnr:>+8.2f}"
            )
        o = self.overall
        rows.append(
            f"{'overall':<24}{o['frames']:>7}{o['blurry_psnr']:>13.2f}{o['blurry_ssim']:>8.4f}"
            f"{o['restored_psnr']:>15.2f}{o['restored_ssim']:>8.4f}{o['restored_psnr'] - o['blurry_psnr']:>+8.2f}"
        )
        return "\n".join(rows)


def synthetic_sequences(
    count: int, frames: int, width: int, height: int
) -> Iterator[tuple[str, torch.Tensor, torch.Tensor]]:
    """Held-out synthetic (name, blurry, sharp) sequences, [T,3,H,W] float32 in [0, 1]."""
    config = SynthConfig(height=height, width=width, frames=frames, split="heldout")
    for i in range(count):
        blurry, sharp = make_clip(EVAL_SEED_BASE + i, config)
        yield f"synthetic-{EVAL_SEED_BASE + i}", blurry, sharp


@torch.no_grad()
def restore_sequence(model: PAHS, blurry: torch.Tensor, lookahead: int | None) -> torch.Tensor:
    """Restore one in-memory sequence [T,3,H,W] of any size >= 16 (padded and cropped back)."""
    padded, h, w = pad_to_multiple(blurry, model.preset.stride)
    device = next(model.parameters()).device
    return model(padded[None].to(device), lookahead=lookahead)[0, ..., :h, :w].float().cpu()


def score_sequence(name: str, blurry: torch.Tensor, restored: torch.Tensor, sharp: torch.Tensor) -> SequenceScore:
    """Mean PSNR/SSIM over frames of blurry and restored against sharp ([T,3,H,W] float in [0, 1])."""
    b, r, s = (to_uint8(x.permute(0, 2, 3, 1)) for x in (blurry, restored, sharp))
    n = len(s)
    return SequenceScore(
        name=name,
        frames=n,
        blurry_psnr=float(np.mean([psnr(b[i], s[i]) for i in range(n)])),
        blurry_ssim=float(np.mean([ssim(b[i], s[i]) for i in range(n)])),
        restored_psnr=float(np.mean([psnr(r[i], s[i]) for i in range(n)])),
        restored_ssim=float(np.mean([ssim(r[i], s[i]) for i in range(n)])),
    )


def evaluate(
    model: PAHS, sequences: Iterable[tuple[str, torch.Tensor, torch.Tensor]], lookahead: int | None = DEFAULT_LOOKAHEAD
) -> EvalReport:
    """Score ``model`` on (name, blurry, sharp) sequences."""
    report = EvalReport()
    for name, blurry, sharp in sequences:
        report.sequences.append(score_sequence(name, blurry, restore_sequence(model, blurry, lookahead), sharp))
    return report


def dataset_sequences(
    root: str, layout: str | None = None, max_frames: int | None = None
) -> Iterator[tuple[str, torch.Tensor, torch.Tensor]]:
    """(name, blurry, sharp) for every sequence of a dataset folder, frames [T,3,H,W] float32 in [0, 1].

    Layout ``x4k`` (high-frame-rate clips): the held-out clips, blurred at each size of the fixed protocol
    (:mod:`pahs_export.training.highfps`)."""
    if layout == "x4k":
        yield from heldout_sequences(root)
        return

    def load(paths) -> torch.Tensor:
        arrays = [read_frame(p) for p in paths[:max_frames]]
        return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 255.0

    for seq in find_sequences(root, layout, require_gt=True):
        yield seq.name, load(seq.blurry), load(seq.sharp)
