"""Evaluation: PSNR/SSIM per sequence and overall, on RGB uint8 frames after rounding (as papers report).

Sequences come from a dataset folder (GOPRO/DVD/REDS/paired layouts) or from held-out synthetic clips
(content and seeds never used in training). Both the blurry input and the restored output are scored
against the sharp ground truth, so the gain is read directly.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from pahs_export.errors import PahsError
from pahs_export.model import PAHS, pad_to_multiple
from pahs_export.presets import DEFAULT_LOOKAHEAD
from pahs_export.signals import check_interrupted

from .datasets import find_sequences, read_frame
from .highfps import heldout_sequences
from .metrics import psnr, ssim, to_uint8
from .shake import CONTENT_LAYOUTS, content_sequences
from .synth import SynthConfig, clip_motion, make_clip

# Held-out synthetic evaluation seeds start here; training uses seed * 10_000_000 + index on the
# "train" content split and validation 900_000 + i on the held-out split, so these never meet either.
EVAL_SEED_BASE = 5_000_000
# The held-out synthetic set `pahs-eval` scores by default (the figures in the README use it), in this order:
# (first seed, sequences, camera/object motion range in px per exposure; None = SynthConfig's 0.15-1 x 25 px).
EVAL_PARTS: tuple[tuple[int, int, tuple[float, float] | None], ...] = (
    (EVAL_SEED_BASE, 8, None),  # GOPRO's range, 4-25 px: the whole set before large blur was added
    (EVAL_SEED_BASE + 200, 2, (4.0, 12.0)),  # small blur, so that each magnitude has at least 4 sequences
    (EVAL_SEED_BASE + 100, 4, (25.0, 50.0)),  # large blur, as hand-held and sports footage smear
)
EVAL_SEQUENCES = sum(count for _, count, _ in EVAL_PARTS)
EVAL_FRAMES = 10
EVAL_SIZE = (256, 160)  # width, height
# Blur magnitude groups: a synthetic sequence's camera motion (px per exposure) below each bound. The held-out
# X4K sequences carry the same names (their window sizes, highfps.PROTOCOL.eval_windows).
BLUR_GROUPS: tuple[tuple[str, float], ...] = (("small", 12.0), ("medium", 25.0), ("large", math.inf))


def blur_group(name: str) -> str | None:
    """The blur magnitude group a sequence name ends in (``TEST01/large`` -> ``large``), or None."""
    group = name.rsplit("/", 1)[-1] if "/" in name else None
    return group if group in {g for g, _ in BLUR_GROUPS} else None


@dataclass
class SequenceScore:
    name: str
    frames: int
    blurry_psnr: float  # mean over frames, dB
    blurry_ssim: float
    restored_psnr: float
    restored_ssim: float


_KEYS = ("blurry_psnr", "blurry_ssim", "restored_psnr", "restored_ssim")


def _summary(scores: list[SequenceScore]) -> dict[str, float]:
    # the mean over all frames (sequences weighted by their length), as GOPRO/DVD tables do
    total = sum(s.frames for s in scores)
    means = {k: sum(getattr(s, k) * s.frames for s in scores) / total for k in _KEYS}
    return means | {"frames": total, "sequences": len(scores)}


@dataclass
class EvalReport:
    sequences: list[SequenceScore] = field(default_factory=list)

    @property
    def overall(self) -> dict[str, float]:
        return _summary(self.sequences)

    @property
    def groups(self) -> dict[str, dict[str, float]]:
        """Summaries per blur magnitude (small, medium, large), for the groups that have sequences."""
        members = {g: [s for s in self.sequences if blur_group(s.name) == g] for g, _ in BLUR_GROUPS}
        return {g: _summary(scores) for g, scores in members.items() if scores}

    def to_json(self) -> dict:
        return {"sequences": [asdict(s) for s in self.sequences], "groups": self.groups, "overall": self.overall}

    def table(self) -> str:
        """Rows per sequence, then per blur group (``blur: small``...) when names carry one, then overall."""

        def row(name: str, frames: int, v: dict[str, float]) -> str:
            gain = v["restored_psnr"] - v["blurry_psnr"]
            return (
                f"{name:<26}{frames:>7}{v['blurry_psnr']:>13.2f}{v['blurry_ssim']:>8.4f}"
                f"{v['restored_psnr']:>15.2f}{v['restored_ssim']:>8.4f}{gain:>+8.2f}"
            )

        rows = [
            f"{'sequence':<26}{'frames':>7}{'blurry PSNR':>13}{'SSIM':>8}{'restored PSNR':>15}{'SSIM':>8}{'gain':>8}"
        ]
        rows += [row(s.name, s.frames, asdict(s)) for s in self.sequences]
        rows += [row(f"blur: {g} ({v['sequences']})", v["frames"], v) for g, v in self.groups.items()]
        o = self.overall
        rows.append(row("overall", o["frames"], o))
        return "\n".join(rows)


def synthetic_sequences(
    count: int, frames: int, width: int, height: int
) -> Iterator[tuple[str, torch.Tensor, torch.Tensor]]:
    """The first ``count`` held-out synthetic (name, blurry, sharp) sequences of :data:`EVAL_PARTS` (beyond
    those, more of the 4-25 px kind), [T,3,H,W] float32 in [0, 1]; each name ends in its blur group."""
    base = SynthConfig(height=height, width=width, frames=frames, split="heldout")
    seeds: list[tuple[int, SynthConfig]] = []
    for first, n, motion in EVAL_PARTS:
        config = base if motion is None else replace(base, min_motion=motion[0], max_motion=motion[1])
        seeds += [(first + i, config) for i in range(n)]
    first_extra = EVAL_SEED_BASE + EVAL_PARTS[0][1]  # 5_000_008 onwards, below the other parts' seeds
    extra = max(0, count - len(seeds))
    if first_extra + extra > EVAL_SEED_BASE + 100:
        raise PahsError(f"expected at most {len(seeds) + 92} synthetic sequences, found {count}; ask for fewer")
    seeds += [(first_extra + i, base) for i in range(extra)]
    for seed, config in seeds[:count]:
        motion = clip_motion(seed, config)
        group = next(g for g, bound in BLUR_GROUPS if motion < bound)
        blurry, sharp = make_clip(seed, config)
        yield f"synthetic-{seed}/{group}", blurry, sharp


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


PICTURE_CROP = 256  # side of the square crop in pictures (smaller frames are shown whole)
_LABEL_HEIGHT, _GAP = 18, 4  # pixels: the caption strip above the crops, the gap between them


def strongest_blur_window(blurry: torch.Tensor, sharp: torch.Tensor, size: int) -> tuple[int, int]:
    """Top-left (y, x) of the ``size``-square window (clipped to the frame) where ``blurry`` differs most from
    ``sharp`` (mean absolute difference), frames [3,H,W] float: where the blur is, chosen without looking at
    any restored output."""
    error = (blurry - sharp).abs().mean(0)[None, None]  # [1,1,H,W]
    h, w = min(size, error.shape[-2]), min(size, error.shape[-1])
    stride = max(1, min(h, w) // 16)
    sums = torch.nn.functional.avg_pool2d(error, (h, w), stride=stride)[0, 0]
    index = int(sums.flatten().argmax())
    return (index // sums.shape[1]) * stride, (index % sums.shape[1]) * stride


def side_by_side(blurry: torch.Tensor, restored: torch.Tensor, sharp: torch.Tensor, crop: int = PICTURE_CROP):
    """A PIL image: crops of one frame (each [3,H,W] float in [0, 1]) at :func:`strongest_blur_window`, blurry |
    restored | sharp, captioned with each crop's PSNR against the sharp one (uint8 RGB, as the report scores)."""
    from PIL import Image, ImageDraw

    y, x = strongest_blur_window(blurry, sharp, crop)
    h, w = min(crop, blurry.shape[-2]), min(crop, blurry.shape[-1])
    tiles = [to_uint8(t[:, y : y + h, x : x + w].permute(1, 2, 0)) for t in (blurry, restored, sharp)]
    canvas = Image.new("RGB", (3 * w + 2 * _GAP, h + _LABEL_HEIGHT), "white")
    draw = ImageDraw.Draw(canvas)
    captions = (f"blurry {psnr(tiles[0], tiles[2]):.2f} dB", f"restored {psnr(tiles[1], tiles[2]):.2f} dB", "sharp")
    for i, (tile, caption) in enumerate(zip(tiles, captions, strict=True)):
        canvas.paste(Image.fromarray(tile), (i * (w + _GAP), _LABEL_HEIGHT))
        draw.text((i * (w + _GAP) + 2, 3), caption, fill="black")
    return canvas


def evaluate(
    model: PAHS,
    sequences: Iterable[tuple[str, torch.Tensor, torch.Tensor]],
    lookahead: int | None = DEFAULT_LOOKAHEAD,
    pictures: str | Path | None = None,
) -> EvalReport:
    """Score ``model`` on (name, blurry, sharp) sequences. ``pictures``: a folder that gets, per sequence,
    ``NAME.png`` (``/`` in names becomes ``-``): :func:`side_by_side` of its middle frame."""
    report = EvalReport()
    folder = None if pictures is None else Path(pictures)
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    for name, blurry, sharp in sequences:
        check_interrupted()  # between sequences: a termination signal stops `pahs-eval` (pahs_export.signals)
        restored = restore_sequence(model, blurry, lookahead)
        report.sequences.append(score_sequence(name, blurry, restored, sharp))
        if folder is not None:
            t = len(blurry) // 2
            side_by_side(blurry[t], restored[t], sharp[t]).save(folder / f"{name.replace('/', '-')}.png")
    return report


def dataset_sequences(
    root: str, layout: str | None = None, max_frames: int | None = None
) -> Iterator[tuple[str, torch.Tensor, torch.Tensor]]:
    """(name, blurry, sharp) for every sequence of a dataset folder, frames [T,3,H,W] float32 in [0, 1].

    Layout ``x4k`` (high-frame-rate clips): the held-out clips, blurred at each size of the fixed protocol
    (:mod:`training.highfps`); ``photos`` or ``video``: the held-out content under the validation
    suite's camera shake (:func:`training.shake.content_sequences`)."""
    if layout == "x4k":
        yield from heldout_sequences(root)
        return
    if layout in CONTENT_LAYOUTS:  # held-out photos or videos under the suite's camera shake
        yield from content_sequences(root, layout, max_frames)
        return

    def load(paths) -> torch.Tensor:
        arrays = [read_frame(p) for p in paths[:max_frames]]
        return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 255.0

    for seq in find_sequences(root, layout, require_gt=True):
        yield seq.name, load(seq.blurry), load(seq.sharp)
