"""Calibration data: feed dicts for each step graph, recorded while the FP32 reference runs over real clips.

INT8 ranges must cover the states the graphs really see, so ``h_prev``/``feat_prev`` (and the fuse graph's
``feat_fwd``/``feat_bwd``) come from running the FP32 model's bidirectional loop over calibration clips,
not from zeros or noise. Each graph role gets one feed per time step, keyed by the graph's input names.

Clips come from videos or frame folders given by the user (``--calibration PATH ...``) or, by default,
from the project's sample content: synthetic GOPRO-style clips of the *training* content split
(:data:`DEFAULT_SET`), so the held-out clips that the quality report uses stay unseen.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pahs_export.artifact import ROLES
from pahs_export.errors import PahsError
from pahs_export.model import PAHS


@dataclass(frozen=True)
class CalibrationSet:
    """Where calibration clips come from and how they are cut. ``paths`` empty: the default sample set."""

    paths: tuple[str, ...] = ()  # videos or frame folders; empty = synthetic sample clips (below)
    frames: int = 12  # frames per clip (consecutive, from the start)
    size: int = 160  # clips are center-cropped (and downscaled first if larger) to at most size x size
    clips: int = 4  # synthetic sample clips when no paths are given
    seed: int = 123  # first synthetic seed (training content split)


DEFAULT_SET = CalibrationSet()


def _fit(image: np.ndarray, size: int) -> torch.Tensor:
    """[H,W,3] float -> [3,h,w] with h, w multiples of 16 and at most ``size``: downscale, then center crop."""
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float()
    h, w = x.shape[-2:]
    scale = min(1.0, size / min(h, w))
    if scale < 1.0:
        x = torch.nn.functional.interpolate(
            x[None], scale_factor=scale, mode="bilinear", antialias=True, align_corners=False
        )[0].clamp(0, 1)
        h, w = x.shape[-2:]
    th, tw = min(size, h) // 16 * 16, min(size, w) // 16 * 16
    if th < 16 or tw < 16:
        raise PahsError(f"expected calibration frames of at least 16x16, found {w}x{h}; use larger clips")
    top, left = (h - th) // 2, (w - tw) // 2
    return x[:, top : top + th, left : left + tw].contiguous()


def load_clips(cal: CalibrationSet) -> list[torch.Tensor]:
    """The calibration clips, each [T,3,H,W] float32 in [0, 1]."""
    if not cal.paths:
        from pahs_export.training.synth import SynthConfig, make_clip

        config = SynthConfig(height=cal.size, width=cal.size, frames=cal.frames, split="train")
        return [make_clip(cal.seed + i, config)[0] for i in range(cal.clips)]
    from runtime.video import open_input

    clips = []
    for path in cal.paths:
        if not Path(path).exists():
            raise PahsError(f"expected a calibration video or frame folder, found nothing at {path}; check the path")
        with open_input(path) as reader:
            frames = [_fit(f.image, cal.size) for f in itertools.islice(reader, cal.frames)]
        if not frames:
            raise PahsError(f"expected frames in calibration input {path}, found none; pass a non-empty clip")
        clips.append(torch.stack(frames))
    return clips


def clips_sha256(clips: Sequence[torch.Tensor]) -> str:
    """A digest of the calibration frames themselves (shape and values)."""
    digest = hashlib.sha256()
    for clip in clips:
        digest.update(str(tuple(clip.shape)).encode())
        digest.update(clip.contiguous().numpy().tobytes())
    return digest.hexdigest()


@torch.no_grad()
def record_feeds(model: PAHS, clips: Iterable[torch.Tensor]) -> dict[str, list[dict[str, np.ndarray]]]:
    """Run the FP32 reference loop (``lookahead=None``) over each clip; role -> one feed dict per step."""
    model = model.eval()
    feeds: dict[str, list[dict[str, np.ndarray]]] = {
        role: [] for role in (("forward", "backward", "fuse") if model.bidirectional else ("step",))
    }

    def add(role: str, *tensors: torch.Tensor) -> None:
        feeds[role].append({n: t.numpy().copy() for n, t in zip(ROLES[role].inputs, tensors, strict=True)})

    for clip in clips:
        x = clip[:, None]  # [T,1,3,H,W]: one frame per step, batch 1
        h, f = model.initial_state(x[0])
        if not model.bidirectional:
            for t in range(len(x)):
                add("step", x[t], h, f)
                _, h, f = model.step(x[t], h, f)
            continue
        fwd = []
        for t in range(len(x)):
            add("forward", x[t], h, f)
            h, f = model.forward_step(x[t], h, f)
            fwd.append(f)
        h, f = model.initial_state(x[0])
        for t in range(len(x) - 1, -1, -1):
            add("backward", x[t], h, f)
            h, f = model.backward_step(x[t], h, f)
            add("fuse", x[t], fwd[t], f)
    return feeds
