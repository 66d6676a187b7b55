"""The PAHS reference model in pure PyTorch (Park, Nah, Lee, ECCV 2022; arXiv 2203.16063).

Everything else in this project (ONNX export, TensorRT engines, the runtime, calibration, training) is a
client of this file; it imports nothing of theirs. The architecture reading (how the paper's text and model
sizes fix every layer) is docs/ARCHITECTURE.md.

Layouts: frames are float32 RGB in [0, 1], NCHW (one step) or NTCHW (a clip), with H and W multiples
of 16. The recurrent state of one direction is ``h`` [N, c/3, H/4, W/4] (the hidden state) and
``feat`` [N, c, H/4, W/4] (f_L of the previous step, which PPRNN reads); both start at zero.

The step methods (:meth:`BidirectionalPAHS.forward_step`, ``backward_step``, ``fuse`` and
:meth:`UnidirectionalPAHS.step`) are exactly what the exported ONNX graphs contain, one call per graph.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .contract import check_size_multiple
from .errors import PahsError
from .presets import DEFAULT_LOOKAHEAD, Preset


def conv(cin: int, cout: int, kernel: int = 3, stride: int = 1) -> nn.Conv2d:
    """A 'same'-padded convolution (for odd kernels) with bias."""
    return nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2)


def upconv(cin: int, cout: int) -> nn.ConvTranspose2d:
    """3x3 transposed convolution with stride 2 that exactly doubles H and W."""
    return nn.ConvTranspose2d(cin, cout, 3, stride=2, padding=1, output_padding=1)


class ResBlock(nn.Module):
    """conv3x3 -> ReLU -> conv3x3, plus identity; no normalisation (the DeepDeblur / IFI-RNN style)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = conv(channels, channels)
        self.conv2 = conv(channels, channels)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(torch.relu(self.conv1(x)))


def resblocks(channels: int, count: int) -> nn.Sequential:
    return nn.Sequential(*(ResBlock(channels) for _ in range(count)))


class FeatureExtractor(nn.Module):
    """Frame [N,3,H,W] -> f_B [N,c,H/4,W/4] (paper Table S1)."""

    def __init__(self, p: Preset) -> None:
        super().__init__()
        self.body = nn.Sequential(
            conv(3, p.hidden),
            resblocks(p.hidden, p.extractor_blocks),
            conv(p.hidden, p.mid, 5, stride=2),
            resblocks(p.mid, p.extractor_blocks),
            conv(p.mid, p.channels, 5, stride=2),
            resblocks(p.channels, p.extractor_blocks),
        )

    def forward(self, frame: Tensor) -> Tensor:
        return self.body(frame)


class PingPongBlock(nn.Module):
    """M_P: (feature [N,c,h,w], hidden [N,c/3,h,w]) -> hidden [N,c/3,h,w] (paper Table S4)."""

    def __init__(self, p: Preset) -> None:
        super().__init__()
        self.body = nn.Sequential(conv(p.hidden + p.channels, p.hidden), ResBlock(p.hidden), conv(p.hidden, p.hidden))

    def forward(self, feature: Tensor, hidden: Tensor) -> Tensor:
        return self.body(torch.cat([hidden, feature], dim=1))


class PPRNN(nn.Module):
    """Ping-Pong RNN (paper Alg. S1): one shared block applied 2n times, alternating f_B_t and f_L_{t-1}."""

    def __init__(self, p: Preset) -> None:
        super().__init__()
        self.block = PingPongBlock(p)
        self.iterations = p.pprnn_iterations

    def forward(self, f_b: Tensor, f_l_prev: Tensor, h: Tensor) -> Tensor:
        for _ in range(self.iterations):
            g = self.block(f_b, h)
            h = self.block(f_l_prev, g)
        return h


class SNLA(nn.Module):
    """Selective Non-Local Attention (paper Alg. S2, Table S5).

    Query from f_B, key and value from the hidden state, all by 4x4/s4 convolutions (tokens at H/16 x W/16).
    Deliberate deviation: logits are scaled by 1/sqrt(d) so that FP16 softmax stays finite. The selection
    score's FC maps the per-query mean logit (a scalar) to a scalar, so the module does not depend on the
    token count and runs at any frame size.
    """

    def __init__(self, p: Preset) -> None:
        super().__init__()
        d = p.hidden
        self.query = nn.Conv2d(p.channels, d, 4, stride=4)
        self.key = nn.Conv2d(d, d, 4, stride=4)
        self.value = nn.Conv2d(d, d, 4, stride=4)
        self.select = nn.Linear(1, 1)
        self.up = nn.Sequential(upconv(d, d), upconv(d, d))
        self.merge = nn.Conv2d(2 * d, d, 1)
        self.scale = 1.0 / math.sqrt(d)

    def forward(self, f_b: Tensor, h: Tensor) -> Tensor:
        q = self.query(f_b)
        n, d, th, tw = q.shape
        q = q.flatten(2).transpose(1, 2)  # [N, L, d], L = (H/16)(W/16)
        k = self.key(h).flatten(2)  # [N, d, L]
        v = self.value(h).flatten(2).transpose(1, 2)  # [N, L, d]
        logits = torch.matmul(q, k) * self.scale  # [N, L, L]: query tokens x key tokens
        s_nl = torch.softmax(logits, dim=-1)
        s_sel = torch.sigmoid(self.select(logits.mean(dim=-1, keepdim=True)))  # [N, L, 1]
        att = torch.matmul(s_nl * s_sel, v)  # [N, L, d]
        att = att.transpose(1, 2).reshape(n, d, th, tw)
        return h + self.merge(torch.cat([h, self.up(att)], dim=1))


class PAHSCell(nn.Module):
    """One direction's recurrent step: (frame, h_prev, feat_prev) -> (h, feat)."""

    def __init__(self, p: Preset) -> None:
        super().__init__()
        self.extractor = FeatureExtractor(p)
        self.pprnn = PPRNN(p)
        self.snla = SNLA(p)
        self.fusion = nn.Sequential(conv(p.channels + p.hidden, p.channels), resblocks(p.channels, p.fusion_blocks))
        self.hidden_extractor = nn.Sequential(conv(p.channels, p.hidden), ResBlock(p.hidden), conv(p.hidden, p.hidden))

    def forward(self, frame: Tensor, h_prev: Tensor, feat_prev: Tensor) -> tuple[Tensor, Tensor]:
        f_b = self.extractor(frame)
        h = self.pprnn(f_b, feat_prev, h_prev)
        h = self.snla(f_b, h)
        feat = self.fusion(torch.cat([f_b, h], dim=1))
        return self.hidden_extractor(feat), feat


class Reconstructor(nn.Module):
    """f_L [N,c_in,H/4,W/4] -> residual image [N,3,H,W] (paper Table S2)."""

    def __init__(self, p: Preset, in_channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            upconv(in_channels, p.mid),
            resblocks(p.mid, p.reconstructor_blocks),
            upconv(p.mid, p.hidden),
            resblocks(p.hidden, p.reconstructor_blocks),
            conv(p.hidden, 3),
        )

    def forward(self, feat: Tensor) -> Tensor:
        return self.body(feat)


def check_frames(frames: Tensor, stride: int) -> None:
    """Raise a :class:`PahsError` unless ``frames`` is [N, T, 3, H, W] with H, W multiples of ``stride``."""
    if frames.dim() != 5 or frames.shape[2] != 3:
        raise PahsError(
            f"expected frames of shape [N, T, 3, H, W], found {list(frames.shape)}; add batch/time axes or "
            "convert to RGB"
        )
    h, w = frames.shape[-2:]
    check_size_multiple(w, h, stride, "frames", "pad the frames (the runtime does this for you)")


def pad_to_multiple(frames: torch.Tensor, multiple: int) -> tuple[torch.Tensor, int, int]:
    """Pad [..., H, W] at the bottom and right up to multiples of ``multiple``; returns the padded tensor and
    the original H, W. Reflect padding (replicate where a side is too small to reflect, below ``multiple``)."""
    h, w = frames.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        flat = frames.reshape(-1, *frames.shape[-3:])
        flat = nn.functional.pad(flat, (0, pw, 0, ph), mode="reflect" if min(h, w) > max(ph, pw) else "replicate")
        frames = flat.reshape(*frames.shape[:-2], h + ph, w + pw)
    return frames, h, w


class _PAHSBase(nn.Module):
    preset: Preset
    bidirectional: bool

    def initial_state(self, frame: Tensor) -> tuple[Tensor, Tensor]:
        """Zero (h, feat) for a step on ``frame`` [N,3,H,W]: [N,c/3,H/4,W/4] and [N,c,H/4,W/4]."""
        n, _, height, width = frame.shape
        h_shape, feat_shape = self.preset.geometry.state_shapes(n, height, width)
        return frame.new_zeros(h_shape), frame.new_zeros(feat_shape)


class BidirectionalPAHS(_PAHSBase):
    """Bidirectional PAHS: a forward and a backward cell, one shared reconstructor on their concatenation."""

    bidirectional = True

    def __init__(self, preset: Preset) -> None:
        super().__init__()
        self.preset = preset
        self.forward_cell = PAHSCell(preset)
        self.backward_cell = PAHSCell(preset)
        self.reconstructor = Reconstructor(preset, 2 * preset.channels)

    def forward_step(self, frame: Tensor, h_prev: Tensor, feat_prev: Tensor) -> tuple[Tensor, Tensor]:
        """Forward-direction step: frame [N,3,H,W], state -> (h, feat), same shapes as the state inputs."""
        return self.forward_cell(frame, h_prev, feat_prev)

    def backward_step(self, frame: Tensor, h_prev: Tensor, feat_prev: Tensor) -> tuple[Tensor, Tensor]:
        """Backward-direction step (state carried from frame t+1 to t); same layout as :meth:`forward_step`."""
        return self.backward_cell(frame, h_prev, feat_prev)

    def fuse(self, frame: Tensor, feat_fwd: Tensor, feat_bwd: Tensor) -> Tensor:
        """Restored frame [N,3,H,W] = frame + reconstruction from both directions' f_L (not clamped)."""
        return frame + self.reconstructor(torch.cat([feat_fwd, feat_bwd], dim=1))

    def _backward_pass(self, frames: Tensor, start: int, stop: int) -> list[Tensor]:
        """Backward features for frames stop..start, running from zero state at ``start``; index i -> frame stop+i."""
        h, feat = self.initial_state(frames[:, start])
        out: list[Tensor] = []
        for t in range(start, stop - 1, -1):
            h, feat = self.backward_step(frames[:, t], h, feat)
            out.append(feat)
        return out[::-1]

    def forward(self, frames: Tensor, lookahead: int | None = DEFAULT_LOOKAHEAD) -> Tensor:
        """Restore a clip.

        frames: [N, T, 3, H, W] float RGB in [0, 1]. Returns the restored clip, same shape (not clamped).
        The forward direction runs from zero state over all T frames. The backward feature of frame t comes
        from a backward run that starts from zero state at frame min(T-1, t+lookahead) and ends at t, so
        restored frame t depends on no frame beyond t+lookahead. ``lookahead=None``: one backward pass over
        the whole clip.
        """
        check_frames(frames, self.preset.stride)
        if lookahead is not None and (isinstance(lookahead, bool) or not isinstance(lookahead, int) or lookahead < 0):
            raise PahsError(f"expected lookahead to be a non-negative integer or None, found {lookahead!r}")
        t_total = frames.shape[1]
        h, feat = self.initial_state(frames[:, 0])
        fwd: list[Tensor] = []
        for t in range(t_total):
            h, feat = self.forward_step(frames[:, t], h, feat)
            fwd.append(feat)

        last = t_total - 1
        if lookahead is None or lookahead >= last:
            bwd = self._backward_pass(frames, last, 0)
        else:
            # Frames whose window reaches the end share one pass; earlier frames each need their own window.
            tail_start = last - lookahead
            bwd = [self._backward_pass(frames, t + lookahead, t)[0] for t in range(tail_start)]
            bwd += self._backward_pass(frames, last, tail_start)
        return torch.stack([self.fuse(frames[:, t], fwd[t], bwd[t]) for t in range(t_total)], dim=1)


class UnidirectionalPAHS(_PAHSBase):
    """Unidirectional (online) PAHS: one cell and a reconstructor on its f_L."""

    bidirectional = False

    def __init__(self, preset: Preset) -> None:
        super().__init__()
        self.preset = preset
        self.cell = PAHSCell(preset)
        self.reconstructor = Reconstructor(preset, preset.channels)

    def step(self, frame: Tensor, h_prev: Tensor, feat_prev: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """One online step: frame [N,3,H,W] and state -> (restored [N,3,H,W], h, feat)."""
        h, feat = self.cell(frame, h_prev, feat_prev)
        return frame + self.reconstructor(feat), h, feat

    def forward(self, frames: Tensor, lookahead: int | None = DEFAULT_LOOKAHEAD) -> Tensor:
        """Restore a clip [N, T, 3, H, W] online; ``lookahead`` is accepted for API symmetry and unused."""
        check_frames(frames, self.preset.stride)
        h, feat = self.initial_state(frames[:, 0])
        out = []
        for t in range(frames.shape[1]):
            restored, h, feat = self.step(frames[:, t], h, feat)
            out.append(restored)
        return torch.stack(out, dim=1)


PAHS = BidirectionalPAHS | UnidirectionalPAHS
