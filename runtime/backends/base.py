"""The backend interface."""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import Tensor

StepOutputs = tuple[Tensor, ...]


class Backend(ABC):
    """Runs PAHS step graphs. Tensors in and out are float32 on :attr:`device` (NCHW, RGB in [0, 1]).

    Subclasses implement :meth:`run`; the named steps below are the whole interface the loop uses.
    """

    name: str  # "torch", "onnxruntime", ...
    bidirectional: bool  # forward/backward/fuse graphs (True) or one online step graph (False)
    precision: str  # "fp32", "fp16", "int8": what the tolerances of parity checks are keyed by
    hidden: int  # channels of h (c/3)
    channels: int  # channels of feat (c)
    size_multiple: int = 16  # H and W must be multiples of this
    device: torch.device = torch.device("cpu")

    @abstractmethod
    def run(self, role: str, *inputs: Tensor) -> StepOutputs:
        """Run the graph of ``role`` ("forward", "backward", "fuse" or "step") on contract-ordered inputs."""

    def upload(self, frame: Tensor) -> Tensor:
        """A frame (any layout, e.g. [N,3,H,W]) as float32 on :attr:`device`; CUDA backends stage it through
        pinned memory and copy it asynchronously."""
        return frame.to(self.device, torch.float32)

    def initial_state(self, frame: Tensor) -> tuple[Tensor, Tensor]:
        """Zero (h [N,c/3,H/4,W/4], feat [N,c,H/4,W/4]) for a sequence starting with ``frame`` [N,3,H,W]."""
        n, _, height, width = frame.shape
        kw = {"dtype": torch.float32, "device": self.device}
        return (
            torch.zeros(n, self.hidden, height // 4, width // 4, **kw),
            torch.zeros(n, self.channels, height // 4, width // 4, **kw),
        )

    def forward_step(self, frame: Tensor, h: Tensor, feat: Tensor) -> tuple[Tensor, Tensor]:
        h, feat = self.run("forward", frame, h, feat)
        return h, feat

    def backward_step(self, frame: Tensor, h: Tensor, feat: Tensor) -> tuple[Tensor, Tensor]:
        h, feat = self.run("backward", frame, h, feat)
        return h, feat

    def fuse(self, frame: Tensor, feat_fwd: Tensor, feat_bwd: Tensor) -> Tensor:
        (restored,) = self.run("fuse", frame, feat_fwd, feat_bwd)
        return restored

    def step(self, frame: Tensor, h: Tensor, feat: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        restored, h, feat = self.run("step", frame, h, feat)
        return restored, h, feat

    def describe(self) -> str:
        """One line for logs: library, device and precision."""
        return f"{self.name} on {self.device} ({self.precision})"
