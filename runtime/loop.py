"""Driving a backend over a clip held in memory (the exact full-sequence semantics).

The streaming, bounded-memory driver for video files builds on the same backend interface.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .backends import Backend


def restore_clip(backend: Backend, frames: Tensor) -> Tensor:
    """Restore ``frames`` [T,3,H,W] (or [N,T,3,H,W]) float32 in [0, 1]; same shape out, not clamped.

    Bidirectional: forward pass from zero state, one backward pass from zero state at the last frame
    (``model(frames, lookahead=None)``), fuse. Online: one step per frame.
    """
    batched = frames.dim() == 5
    x = (frames if batched else frames[None]).to(backend.device, torch.float32)
    t_total = x.shape[1]
    h, feat = backend.initial_state(x[:, 0])
    if not backend.bidirectional:
        out = []
        for t in range(t_total):
            restored, h, feat = backend.step(x[:, t], h, feat)
            out.append(restored)
    else:
        fwd = []
        for t in range(t_total):
            h, feat = backend.forward_step(x[:, t], h, feat)
            fwd.append(feat)
        h, feat = backend.initial_state(x[:, 0])
        out = [None] * t_total
        for t in range(t_total - 1, -1, -1):
            h, feat = backend.backward_step(x[:, t], h, feat)
            out[t] = backend.fuse(x[:, t], fwd[t], feat)
            fwd[t] = None  # free as we go
    y = torch.stack(out, dim=1)
    return y if batched else y[0]
