"""Calibration data: feed dicts for each step graph, recorded while the FP32 reference runs over real clips.

INT8 ranges must cover the states the graphs really see, so ``h_prev``/``feat_prev`` (and the fuse graph's
``feat_fwd``/``feat_bwd``) come from running the FP32 model's bidirectional loop over calibration clips,
not from zeros or noise. The loop is the runtime's own (:func:`runtime.driver.restore_clip` over the PyTorch
backend), watched by a :class:`~runtime.backends.BackendWrapper` that records the inputs of every step.
Each graph role gets one feed per time step, keyed by the graph's input names.

Clips come from videos or frame folders given by the user (``--calibration PATH ...``) or, by default,
from the project's sample content: synthetic GOPRO-style clips of the *training* content split
(:data:`DEFAULT_SET`), so the held-out clips that the quality report uses stay unseen.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from pahs_export.contract import ROLES, roles_for
from pahs_export.errors import PahsError
from pahs_export.model import PAHS
from pahs_export.precision import Feeds
from pahs_export.signals import check_interrupted
from runtime.backends import Backend, BackendWrapper, StepOutputs
from runtime.backends.torch_backend import TorchBackend
from runtime.driver import restore_clip
from runtime.io import open_input
from training.synth import SynthConfig, make_clip


@dataclass(frozen=True)
class CalibrationSet:
    """Where calibration clips come from and how they are cut. ``paths`` empty: the default sample set."""

    paths: tuple[str, ...] = ()  # videos or frame folders; empty = synthetic sample clips (below)
    frames: int = 12  # frames per clip (consecutive, from the start)
    size: int = 160  # clips are center-cropped (and downscaled first if larger) to at most size x size
    clips: int = 4  # synthetic sample clips when no paths are given
    seed: int = 123  # first synthetic seed (training content split)

    # The export's CalibrationSource interface (pahs_export.precision):
    def load(self) -> list[Tensor]:
        """The clips of this set (see :func:`load_clips`)."""
        return load_clips(self)

    def record(self, model: PAHS, clips: Sequence[Tensor]) -> Feeds:
        """Feeds of every step while the FP32 ``model`` restores ``clips`` (see :func:`record_feeds`)."""
        return record_feeds(model, clips)

    def describe(self) -> dict[str, Any]:
        return {**asdict(self), "paths": list(self.paths)}


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
        config = SynthConfig(height=cal.size, width=cal.size, frames=cal.frames, split="train")
        return [make_clip(cal.seed + i, config)[0] for i in range(cal.clips)]
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


class _Recorder(BackendWrapper):
    """Records the inputs of every step it runs, per role, as numpy copies (state buffers get reused)."""

    def __init__(self, inner: Backend) -> None:
        super().__init__(inner)
        self.feeds: Feeds = {role: [] for role in roles_for(inner.bidirectional)}

    def run(self, role: str, *inputs: Tensor) -> StepOutputs:
        check_interrupted()  # every step is a safe point: the FP32 loop takes a minute on 2 cores
        names = ROLES[role].inputs
        self.feeds[role].append({n: x.detach().cpu().numpy().copy() for n, x in zip(names, inputs, strict=True)})
        return self.inner.run(role, *inputs)


@torch.no_grad()
def record_feeds(model: PAHS, clips: Iterable[Tensor]) -> Feeds:
    """Run the FP32 reference loop (``lookahead=None``) over each clip; role -> one feed dict per step."""
    recorder = _Recorder(TorchBackend(model.eval()))
    for clip in clips:
        restore_clip(recorder, clip)
    return recorder.feeds
