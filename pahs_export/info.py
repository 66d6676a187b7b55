"""Model size and compute: parameters per module and FLOPs per frame (torch.utils.flop_counter)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

from .checkpoint import build_model
from .model import BidirectionalPAHS


@dataclass(frozen=True)
class ModelInfo:
    """What `pahs-export info` prints."""

    preset: str  # preset name
    bidirectional: bool  # direction of the model counted
    params: dict[str, int]  # parameters per top-level module (cells split by sub-module), in order
    total_params: int  # all parameters
    width: int  # frame size the FLOPs were counted at
    height: int
    flops: dict[str, int]  # FLOPs of one frame per step graph ("forward", "backward", "fuse" or "step")

    @property
    def total_flops(self) -> int:
        return sum(self.flops.values())


def count_params(model: torch.nn.Module) -> dict[str, int]:
    """Parameters per module, two levels deep for the recurrent cells (e.g. ``forward_cell.pprnn``)."""
    counts: dict[str, int] = {}
    for name, child in model.named_children():
        grandchildren = list(child.named_children()) if name.endswith("cell") else []
        for sub, module in grandchildren or [("", child)]:
            counts[f"{name}.{sub}" if sub else name] = sum(p.numel() for p in module.parameters())
    return counts


def step_flops(model: torch.nn.Module, width: int, height: int) -> dict[str, int]:
    """FLOPs (2 per multiply-add) of each step of one frame at width x height, counted on the meta device."""
    meta = model.to("meta") if next(model.parameters()).device.type != "meta" else model
    frame = torch.zeros(1, 3, height, width, device="meta")
    h, feat = meta.initial_state(frame)
    steps = (
        {
            "forward": lambda: meta.forward_step(frame, h, feat),
            "backward": lambda: meta.backward_step(frame, h, feat),
            "fuse": lambda: meta.fuse(frame, feat, feat),
        }
        if isinstance(meta, BidirectionalPAHS)
        else {"step": lambda: meta.step(frame, h, feat)}
    )
    out = {}
    with torch.no_grad():
        for role, run in steps.items():
            counter = FlopCounterMode(display=False)
            with counter:
                run()
            out[role] = counter.get_total_flops()
    return out


def model_info(preset: str, *, bidirectional: bool = True, width: int = 1280, height: int = 720) -> ModelInfo:
    """Parameters and per-frame FLOPs of ``preset`` at ``width`` x ``height`` (multiples of 16)."""
    with torch.device("meta"):
        model = build_model(preset, bidirectional=bidirectional)
    params = count_params(model)
    return ModelInfo(
        preset=preset,
        bidirectional=bidirectional,
        params=params,
        total_params=sum(p.numel() for p in model.parameters()),
        width=width,
        height=height,
        flops=step_flops(model, width, height),
    )
