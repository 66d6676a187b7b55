"""The PyTorch reference model as a backend (CPU or CUDA)."""

from __future__ import annotations

import torch
from torch import Tensor

from pahs_export.artifact import ROLES
from pahs_export.model import PAHS

from .base import Backend, StepOutputs


class TorchBackend(Backend):
    """Runs the reference model's step methods; FP32 eager."""

    name = "torch"
    precision = "fp32"

    def __init__(self, model: PAHS, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.bidirectional = model.bidirectional
        self.hidden = model.preset.hidden
        self.channels = model.preset.channels
        self.size_multiple = model.preset.stride

    @torch.no_grad()
    def run(self, role: str, *inputs: Tensor) -> StepOutputs:
        out = getattr(self.model, ROLES[role].method)(*inputs)
        return out if isinstance(out, tuple) else (out,)
