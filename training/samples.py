"""Sample content shipped with the project: deterministic held-out synthetic clips (no files, no downloads)."""

from __future__ import annotations

import torch

from .synth import SynthConfig, make_clip


def sample_pair(frames: int, width: int, height: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(blurry, sharp) clips [T,3,H,W] float32 in [0, 1] from the held-out synthetic content (never trained on)."""
    return make_clip(seed, SynthConfig(height=height, width=width, frames=frames, split="heldout"))


def sample_clip(frames: int, width: int, height: int, seed: int = 0) -> torch.Tensor:
    """A blurry held-out clip [T,3,H,W] float32 in [0, 1]."""
    return sample_pair(frames, width, height, seed)[0]
