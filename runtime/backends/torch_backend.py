"""The PyTorch reference model as a backend (CPU or CUDA)."""

from __future__ import annotations

import contextlib

import torch
from torch import Tensor

from pahs_export.checkpoint import parse_device
from pahs_export.contract import ROLES
from pahs_export.errors import PahsError
from pahs_export.model import PAHS

from .resident import ResidentBackend, ResidentSteps

AUTOCAST_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


class TorchBackend(ResidentBackend):
    """Runs the reference model's step methods eagerly: FP32, or under autocast (``autocast`` = "fp16" or
    "bf16"; CUDA only). Inputs and outputs stay FP32 either way, as the interface requires.

    Steps go through :class:`~runtime.backends.resident.ResidentSteps`, the same device-resident loop as
    the TensorRT backend: the hidden state lives in two swapped buffers per role; on CUDA the steps run on
    the backend's own stream, frames are staged through pinned memory, and ``cuda_graphs=True`` captures and
    replays one CUDA graph per role, frame shape and buffer parity.
    """

    name = "torch"

    def __init__(
        self,
        model: PAHS,
        device: str | torch.device = "cpu",
        autocast: str | None = None,
        cuda_graphs: bool = False,
    ) -> None:
        # One line, not a CUDA initialisation traceback, when the device is unknown or not usable here.
        self.device = parse_device(device)
        if autocast not in (None, *AUTOCAST_DTYPES):
            raise PahsError(f"expected autocast {' or '.join(AUTOCAST_DTYPES)}, found {autocast!r}; pass one of them")
        self.precision = autocast or "fp32"
        self._autocast = (
            # No weight-cast cache under graph capture: a cached cast would be freed memory at replay.
            torch.autocast(
                self.device.type,
                dtype=AUTOCAST_DTYPES[autocast],
                cache_enabled=not cuda_graphs,
            )
            if autocast
            else contextlib.nullcontext()
        )
        self.model = model.to(self.device).eval()
        self.bidirectional = model.bidirectional
        self.geometry = model.preset.geometry
        self.steps = ResidentSteps(self._launch, self.device, self.geometry, cuda_graphs=cuda_graphs)

    @torch.no_grad()
    def _launch(self, role: str, inputs: dict[str, Tensor], outputs: dict[str, Tensor]) -> None:
        with self._autocast:
            out = getattr(self.model, ROLES[role].method)(*inputs.values())
        out = out if isinstance(out, tuple) else (out,)
        for name, value in zip(ROLES[role].outputs, out, strict=True):
            outputs[name].copy_(value)
