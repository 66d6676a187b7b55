"""Sample content shipped with the project: deterministic held-out synthetic clips (no files, no downloads)."""

from __future__ import annotations

import torch

from .training.synth import SynthConfig, make_clip


def sample_clip(frames: int, width: int, height: int, seed: int = 0) -> torch.Tensor:
    """A blurry clip [T,3,H,W] float32 in [0, 1] from the held-out synthetic content (never used in training)."""
    blurry, _ = make_clip(seed, SynthConfig(height=height, width=width, frames=frames, split="heldout"))
    return blurry
