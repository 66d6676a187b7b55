"""Blurry sequences made the GOPRO way from real high-frame-rate footage (layout ``x4k``).

The source is a folder of short 1000 fps clips (the X4K1000FPS test clips: 15 clips of 33 frames at
2048x1080, H.264). A blurry frame is the average, in linear light, of ``window`` consecutive sharp frames; its
ground truth is the middle one. Consecutive blurry frames are ``stride`` sharp frames apart, so a sequence of
blurry frames is a sliding window over the clip (with 33 frames per clip the exposures overlap: a stride of 4
ms under windows of 9-25 ms, which no real camera does, but the motion between frames is real).

The protocol is fixed, so that figures stay comparable across training runs (README, "Default weights"):

- frames are downscaled 2x in linear light (to 1024x540); at that scale the X4K clips move 0-19 px per 12 ms
  (median block motion per clip, phase correlation), so windows of 9/17/25 frames give blur of about
  0-14 / 0-27 / 0-40 px, covering GOPRO's 4-25 px and the larger blur of hand-held and sports footage;
- gamma 2.2 for the linear-light average (GOPRO's choice);
- evaluation: windows 9 (small), 17 (medium) and 25 (large), stride 4, whole frames, on the held-out clips
  TEST01, TEST05, TEST08, TEST11, TEST14; training: the other ten clips, random odd windows of 7-17 frames
  (5-frame clips at stride 4 need at most 17) and random crops, mixed with the synthetic clips.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import torch
from torch.utils.data import Dataset

from pahs_export.errors import PahsError

HELD_OUT = ("TEST01", "TEST05", "TEST08", "TEST11", "TEST14")  # evaluation only, never trained on
VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi")
SOURCE_FRAMES = 33  # frames per X4K clip: bounds the windows a training clip of N frames can use


@dataclass(frozen=True)
class Protocol:
    """How blurry sequences are made from a high-frame-rate clip (fixed; see the module docstring)."""

    scale: int = 2  # downscale factor (box filter in linear light) before blurring
    gamma: float = 2.2  # sRGB <-> linear for the average
    stride: int = 4  # sharp frames between consecutive blurry frames
    eval_windows: tuple[tuple[str, int], ...] = (("small", 9), ("medium", 17), ("large", 25))
    train_windows: tuple[int, ...] = (7, 9, 11, 13, 15, 17)  # odd: the ground truth is the middle frame


PROTOCOL = Protocol()


def find_clips(root: str | Path, split: str) -> list[Path]:
    """The clips of ``root`` in ``split`` ("train": all but :data:`HELD_OUT`, "heldout": those)."""
    root = Path(root)
    if not root.is_dir():
        raise PahsError(f"expected a folder of high-frame-rate clips, found nothing at {root}; check --data")
    clips = sorted(p for p in root.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
    chosen = [p for p in clips if p.name.startswith(HELD_OUT) == (split == "heldout")]
    if not chosen:
        raise PahsError(
            f"expected {split} clips ({'named ' + ', '.join(HELD_OUT) if split == 'heldout' else 'video files'}) "
            f"in {root}, found {len(clips)} video file(s) and none of those; check --data"
        )
    return chosen


@functools.lru_cache(maxsize=16)
def read_linear(path: Path, scale: int = PROTOCOL.scale, gamma: float = PROTOCOL.gamma) -> np.ndarray:
    """Every frame of a clip in linear light, downscaled ``scale`` times: float32 [N, H, W, 3] in [0, 1].

    Cached (a clip is 33 frames; ten training clips at 1024x540 take about 2 GB as float32)."""
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    except (av.error.FFmpegError, IndexError) as e:
        raise PahsError(
            f"expected a readable video clip, could not decode {path} ({e}); remove or replace it"
        ) from None
    x = (np.stack(frames).astype(np.float32) / 255.0) ** gamma
    n, h, w, c = x.shape
    h, w = h // scale * scale, w // scale * scale
    return x[:, :h, :w].reshape(n, h // scale, scale, w // scale, scale, c).mean(axis=(2, 4))


def blur(linear: np.ndarray, window: int, stride: int, gamma: float = PROTOCOL.gamma) -> tuple[np.ndarray, ...]:
    """(blurry, sharp) sequences [T, H, W, 3] float32 sRGB in [0, 1] from linear frames [N, H, W, 3]:
    blurry frame t averages frames [t*stride, t*stride+window), its sharp frame is the middle one."""
    if window % 2 == 0 or window < 1:
        raise PahsError(f"expected an odd blur window (the ground truth is its middle frame), found {window}")
    count = (len(linear) - window) // stride + 1
    if count < 1:
        raise PahsError(f"expected at least {window} frames for a window of {window}, found {len(linear)}")
    starts = [t * stride for t in range(count)]
    blurry = np.stack([linear[s : s + window].mean(axis=0) for s in starts])
    sharp = np.stack([linear[s + window // 2] for s in starts])
    return np.clip(blurry, 0, 1) ** (1 / gamma), np.clip(sharp, 0, 1) ** (1 / gamma)


def _tensor(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2).float()


def heldout_sequences(root: str | Path, protocol: Protocol = PROTOCOL) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """(name, blurry, sharp) for every held-out clip and blur size, e.g. ``TEST01/medium``; [T,3,H,W] float32."""
    return protocol_sequences(root, "heldout", protocol)


def protocol_sequences(
    root: str | Path, split: str, protocol: Protocol = PROTOCOL
) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """:func:`heldout_sequences` of the clips of ``split`` ("heldout" or "train": the evaluation windows applied
    to the training clips, to compare the gain on seen and unseen footage)."""
    out = []
    for path in find_clips(root, split):
        linear = read_linear(path, protocol.scale, protocol.gamma)
        for size, window in protocol.eval_windows:
            blurry, sharp = blur(linear, window, protocol.stride, protocol.gamma)
            out.append((f"{path.name.split('_')[0]}/{size}", _tensor(blurry), _tensor(sharp)))
    return out


class HighFpsClips(Dataset):
    """Random training clips: items (blurry, sharp) float32 [frames, 3, crop, crop] in [0, 1], from the training
    clips of ``root``, with a random odd window, position and horizontal flip; item ``i`` is fixed by ``seed``
    and ``i``."""

    def __init__(
        self, root: str | Path, frames: int, crop: int, length: int, seed: int = 0, protocol: Protocol = PROTOCOL
    ) -> None:
        self.clips = find_clips(root, "train")
        self.frames, self.crop, self.length, self.seed, self.protocol = frames, crop, length, seed, protocol
        self.windows = [w for w in protocol.train_windows if (frames - 1) * protocol.stride + w <= SOURCE_FRAMES]
        if not self.windows:
            raise PahsError(
                f"expected clips of {frames} frames to fit {SOURCE_FRAMES}-frame sources at stride "
                f"{protocol.stride}, found none that do; use --frames 5 or fewer"
            )

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, 7, index])
        linear = read_linear(self.clips[rng.integers(len(self.clips))], self.protocol.scale, self.protocol.gamma)
        window = int(self.windows[rng.integers(len(self.windows))])
        span = (self.frames - 1) * self.protocol.stride + window
        start = int(rng.integers(len(linear) - span + 1))
        h, w = linear.shape[1:3]
        if h < self.crop or w < self.crop:
            raise PahsError(f"expected frames of at least {self.crop}x{self.crop}, found {w}x{h}; lower --crop")
        top, left = int(rng.integers(h - self.crop + 1)), int(rng.integers(w - self.crop + 1))
        region = linear[start : start + span, top : top + self.crop, left : left + self.crop]
        blurry, sharp = blur(region, window, self.protocol.stride, self.protocol.gamma)
        if rng.random() < 0.5:
            blurry, sharp = blurry[:, :, ::-1], sharp[:, :, ::-1]
        return _tensor(blurry), _tensor(sharp)


class MixedClips(Dataset):
    """Items of ``base`` mixed with items of weighted ``parts``: item ``i`` is ``parts[j][0][i]`` with probability
    ``parts[j][1]`` (one draw fixed by ``seed`` and ``i``, taken against the parts' cumulative weights in order),
    else ``base[i]``; the weights sum to at most 1 and every data set is at least ``length`` long."""

    def __init__(self, base: Dataset, parts: list[tuple[Dataset, float]], length: int, seed: int = 0) -> None:
        if sum(w for _, w in parts) > 1.0 + 1e-9 or any(w < 0 for _, w in parts):
            raise PahsError(f"expected mixing weights >= 0 summing to at most 1, found {[w for _, w in parts]}")
        self.base, self.parts, self.length, self.seed = base, parts, length, seed

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        draw = np.random.default_rng([self.seed, 11, index]).random()
        for dataset, weight in self.parts:
            if draw < weight:
                return dataset[index]
            draw -= weight
        return self.base[index]
