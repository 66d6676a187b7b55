"""The backend interface, and a base for wrappers that watch a backend's steps (timing, recording)."""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import Tensor

from pahs_export.contract import Geometry

StepOutputs = tuple[Tensor, ...]


class Backend(ABC):
    """Runs PAHS step graphs. Tensors in and out are float32 on :attr:`device` (NCHW, RGB in [0, 1]).

    Subclasses implement :meth:`run`; the named steps below are the whole interface the loop uses.
    """

    name: str  # "torch", "onnxruntime", ...
    bidirectional: bool  # forward/backward/fuse graphs (True) or one online step graph (False)
    precision: str  # "fp32", "fp16", "int8": what the tolerances of parity checks are keyed by
    geometry: Geometry  # channel widths of the state and the frame-size rule
    device: torch.device = torch.device("cpu")
    threads: int | None = None  # CPU threads a step runs on; None: the runtime's default (every core)

    @property
    def size_multiple(self) -> int:
        """H and W of every frame must be multiples of this."""
        return self.geometry.size_multiple

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
        h_shape, feat_shape = self.geometry.state_shapes(n, height, width)
        kw = {"dtype": torch.float32, "device": self.device}
        return torch.zeros(h_shape, **kw), torch.zeros(feat_shape, **kw)

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


class BackendWrapper(Backend):
    """A backend that passes every step to ``inner``; subclasses override :meth:`run` to watch the steps
    (time them, record their inputs) while the loop drives the wrapper like any backend."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.name, self.bidirectional, self.precision = inner.name, inner.bidirectional, inner.precision
        self.geometry, self.device, self.threads = inner.geometry, inner.device, inner.threads

    def upload(self, frame: Tensor) -> Tensor:
        return self.inner.upload(frame)

    def run(self, role: str, *inputs: Tensor) -> StepOutputs:
        return self.inner.run(role, *inputs)

    def describe(self) -> str:
        return self.inner.describe()
