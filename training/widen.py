"""Start a wider preset from a narrower one's weights, computing exactly the same function.

A model of preset ``pahs-t`` (c=48) becomes a model of a wider preset (c=60, say) whose restored frames equal
the narrow model's (to float rounding) before the first step, so that a fine-tune of the wider model starts
where the trained narrow one is instead of from scratch (Net2Net's function-preserving idea; here by zeros, not by
splitting units).

How: the old weights go to the first channels of every group (f_B/f_L: c, hidden state: c // 3, half-resolution
stage: 2c // 3), the new output channels of every layer keep the wider model's own random initialisation, and
every weight that *reads* a new channel from an old output channel is zero. New channels then carry values that no
old channel sees, so the output is unchanged; their weights get gradients from the first step (the new channels
are not zero, and the zero weights that read them get non-zero gradients). Two exceptions:

- SNLA's attention logits sum query x key over the hidden channels, so the query's new channels are zero (not
  random) and its old ones are scaled by sqrt(d_new / d_old), which undoes the wider 1/sqrt(d) logit scale.
- Layers whose input is a concatenation read each part at its own offset (named in :data:`_CONCATENATED`).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from pahs_export import PahsError
from pahs_export.presets import Preset

# Layers whose input channels are a concatenation of groups, by the end of their module name: the groups in
# order ("channels", "hidden" or "mid": attributes of Preset). The reconstructor's input is [f_L fwd, f_L bwd]
# (or one f_L, unidirectional): its count comes from its width.
_CONCATENATED: dict[str, tuple[str, ...]] = {
    "pprnn.block.body.0": ("hidden", "channels"),  # cat([hidden, feature])
    "fusion.0": ("channels", "hidden"),  # cat([f_B, h])
    "snla.merge": ("hidden", "hidden"),  # cat([h, up(att)])
}


def widen_model(model: nn.Module, preset: Preset) -> nn.Module:
    """A model of ``preset`` (wider than ``model``'s in every group, same block counts) that computes what
    ``model`` computes, in train mode on the CPU; see the module docstring. Frames are [N, T, 3, H, W] in 0-1
    for both; the wider model's recurrent states have more channels."""
    old: Preset = model.preset  # type: ignore[assignment]
    _check_wider(old, preset)
    wide = type(model)(preset)  # the same kind of model (bidirectional or not), wider
    modules = dict(model.named_modules())
    with torch.no_grad():
        for name, new in wide.named_modules():
            if isinstance(new, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
                _widen_layer(name, modules[name], new, old, preset)
    return wide.train()


def _check_wider(old: Preset, new: Preset) -> None:
    same_blocks = all(
        getattr(old, k) == getattr(new, k)
        for k in ("pprnn_iterations", "extractor_blocks", "fusion_blocks", "reconstructor_blocks", "stride")
    )
    groups = ("channels", "hidden", "mid")
    if not same_blocks or any(getattr(new, g) < getattr(old, g) for g in groups):
        raise PahsError(
            f"expected a preset at least as wide as {old.name!r} with the same blocks to widen it into, found "
            f"{new.name!r}; start {new.name!r} from scratch or from a checkpoint of its own"
        )


def _input_groups(name: str, layer: nn.Module, old: Preset) -> tuple[str, ...] | None:
    """The groups a layer's input channels concatenate, or None for a single group."""
    for suffix, groups in _CONCATENATED.items():
        if name.endswith(suffix):
            return groups
    if name == "reconstructor.body.0":
        return ("channels",) * (layer.in_channels // old.channels)
    return None


def _index(groups: tuple[str, ...] | None, old_size: int, old: Preset, new: Preset) -> torch.Tensor:
    """Where each old channel of a dimension lands in the wider one."""
    if groups is None:
        return torch.arange(old_size)
    parts, offset = [], 0
    for g in groups:
        parts.append(torch.arange(getattr(old, g)) + offset)
        offset += getattr(new, g)
    index = torch.cat(parts)
    assert len(index) == old_size, (groups, old_size)
    return index


def _widen_layer(name: str, small: nn.Module, wide: nn.Module, old: Preset, new: Preset) -> None:
    w_old, w = small.weight, wide.weight
    # Output and input dimensions of the weight: a transposed convolution stores [in, out, kh, kw].
    out_dim, in_dim = (1, 0) if isinstance(wide, nn.ConvTranspose2d) else (0, 1)
    rows = torch.arange(w_old.shape[out_dim])  # no layer outputs a concatenation: old outputs come first
    cols = _index(_input_groups(name, small, old), w_old.shape[in_dim], old, new)
    scale = 1.0
    if name.endswith("snla.query"):
        scale = math.sqrt(new.hidden / old.hidden)  # undo the wider model's smaller 1/sqrt(d) logit scale
        w.index_fill_(out_dim, torch.arange(w_old.shape[out_dim], w.shape[out_dim]), 0.0)
        wide.bias[w_old.shape[out_dim] :] = 0.0
    # Old output channels read nothing from new input channels; they read the old ones with the old weights.
    old_rows = w.index_select(out_dim, rows)
    old_rows.zero_()
    old_rows.index_copy_(in_dim, cols, w_old * scale)
    w.index_copy_(out_dim, rows, old_rows)
    if wide.bias is not None:
        wide.bias[rows] = small.bias * scale
