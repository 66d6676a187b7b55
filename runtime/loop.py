"""Driving a backend over a clip held in memory: the exact full-sequence result (``lookahead=None``)."""

from __future__ import annotations

import torch
from torch import Tensor

from .backends import Backend
from .driver import restore_stream


def restore_clip(backend: Backend, frames: Tensor) -> Tensor:
    """Restore ``frames`` [T,3,H,W] float32 in [0, 1]; [T,3,H,W] out on the CPU, not clamped.

    Bidirectional: forward pass from zero state, one backward pass from zero state at the last frame (the
    reference's ``model(frames[None], lookahead=None)``); online: one step per frame. This is the streaming
    driver with a single chunk covering the clip.
    """
    t_total = frames.shape[0]
    return torch.stack([x.cpu() for x in restore_stream(backend, iter(frames), lookahead=0, chunk=t_total)])
