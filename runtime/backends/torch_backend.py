"""The PyTorch reference model as a backend (CPU or CUDA)."""

from __future__ import annotations

import contextlib

import torch
from torch import Tensor

from pahs_export.artifact import ROLES
from pahs_export.model import PAHS

from .base import Backend, StepOutputs


class TorchBackend(Backend):
    """Runs the reference model's step methods eagerly: FP32, or under autocast (``autocast`` = "fp16" or
    "bf16"; CUDA only). Inputs and outputs stay FP32 either way, as the interface requires."""

    name = "torch"

    def __init__(self, model: PAHS, device: str | torch.device = "cpu", autocast: str | None = None) -> None:
        self.device = torch.device(device)
        self.precision = autocast or "fp32"
        self._autocast = (
            torch.autocast(self.device.type, dtype={"fp16": torch.float16, "bf16": torch.bfloat16}[autocast])
            if autocast
            else contextlib.nullcontext()
        )
        self.model = model.to(self.device).eval()
        self.bidirectional = model.bidirectional
        self.hidden = model.preset.hidden
        self.channels = model.preset.channels
        self.size_multiple = model.preset.stride

    @torch.no_grad()
    def run(self, role: str, *inputs: Tensor) -> StepOutputs:
        with self._autocast:
            out = getattr(self.model, ROLES[role].method)(*inputs)
        out = out if isinstance(out, tuple) else (out,)
        return tuple(o.float() for o in out)
