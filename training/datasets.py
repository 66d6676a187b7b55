"""Readers for the real video-deblurring datasets users may have, by their folder layouts.

| layout | blurry frames | sharp frames |
| --- | --- | --- |
| ``gopro`` (GOPRO_Large) | ``<root>/<split>/<seq>/blur/`` (or ``blur_gamma/``) | ``<root>/<split>/<seq>/sharp/`` |
| ``dvd`` (DeepVideoDeblurring) | ``<root>/<seq>/input/`` | ``<root>/<seq>/GT/`` |
| ``reds`` | ``<root>/<split>_blur/<seq>/`` | ``<root>/<split>_sharp/<seq>/`` |
| ``paired`` | ``<root>/<seq>/{blur,blurry,input}/`` or ``<root>/{blur,...}`` | ``<root>/<seq>/{sharp,gt,GT}/`` |

Frames are PNG/JPG files in natural order (frame2 before frame10).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from pahs_export.errors import PahsError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
LAYOUTS = ("gopro", "dvd", "reds", "paired")
BLUR_NAMES = ("blur", "blurry", "input")
SHARP_NAMES = ("sharp", "gt", "GT")


@dataclass(frozen=True)
class Sequence:
    """One sequence: frame paths in order; ``sharp`` is None when there is no ground truth."""

    name: str
    blurry: tuple[Path, ...]
    sharp: tuple[Path, ...] | None


def _natural(p: Path) -> list:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", p.name)]


def _frames(folder: Path) -> tuple[Path, ...]:
    return tuple(sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=_natural))


def _pair(name: str, blur_dir: Path, sharp_dir: Path | None, require_gt: bool) -> Sequence:
    blurry = _frames(blur_dir)
    if not blurry:
        raise PahsError(f"expected frames in {blur_dir} (sequence {name!r}), found none; remove the empty sequence")
    if sharp_dir is None or not sharp_dir.is_dir():
        if require_gt:
            raise PahsError(
                f"expected ground-truth frames for sequence {name!r} beside {blur_dir}, found no sharp folder; "
                "add it or evaluate without ground truth"
            )
        return Sequence(name, blurry, None)
    sharp = _frames(sharp_dir)
    if len(sharp) != len(blurry):
        raise PahsError(
            f"expected as many sharp as blurry frames in sequence {name!r}, found {len(blurry)} blurry and "
            f"{len(sharp)} sharp; fix the sequence's folders"
        )
    return Sequence(name, blurry, sharp)


def _first_dir(folder: Path, names: tuple[str, ...]) -> Path | None:
    return next((folder / n for n in names if (folder / n).is_dir()), None)


def _gopro(root: Path, split: str | None, gamma_blur: bool, require_gt: bool) -> list[Sequence]:
    splits = [split] if split else [s for s in ("train", "test") if (root / s).is_dir()]
    blur = "blur_gamma" if gamma_blur else "blur"
    return [
        _pair(f"{s}/{seq.name}", seq / blur, seq / "sharp", require_gt)
        for s in splits
        for seq in sorted((root / s).iterdir(), key=_natural)
        if (seq / blur).is_dir()
    ]


def _dvd(root: Path, require_gt: bool) -> list[Sequence]:
    return [
        _pair(seq.name, seq / "input", seq / "GT", require_gt)
        for seq in sorted(root.iterdir(), key=_natural)
        if (seq / "input").is_dir()
    ]


def _reds(root: Path, split: str | None, require_gt: bool) -> list[Sequence]:
    splits = [split] if split else [s for s in ("train", "val", "test") if (root / f"{s}_blur").is_dir()]
    return [
        _pair(f"{s}/{seq.name}", seq, root / f"{s}_sharp" / seq.name, require_gt)
        for s in splits
        for seq in sorted((root / f"{s}_blur").iterdir(), key=_natural)
        if seq.is_dir()
    ]


def _paired(root: Path, require_gt: bool) -> list[Sequence]:
    blur = _first_dir(root, BLUR_NAMES)
    if blur is not None:
        return [_pair(root.name, blur, _first_dir(root, SHARP_NAMES), require_gt)]
    out = []
    for seq in sorted((p for p in root.iterdir() if p.is_dir()), key=_natural):
        blur = _first_dir(seq, BLUR_NAMES)
        if blur is not None:
            out.append(_pair(seq.name, blur, _first_dir(seq, SHARP_NAMES), require_gt))
    return out


def detect_layout(root: Path) -> str | None:
    subdirs = [p for p in root.iterdir() if p.is_dir()]
    if any(p.name.endswith("_blur") for p in subdirs):
        return "reds"
    if any((s / seq / "blur").is_dir() for s in subdirs for seq in (s.iterdir() if s.is_dir() else [])):
        return "gopro"
    if any((p / "input").is_dir() and (p / "GT").is_dir() for p in subdirs):
        return "dvd"
    if _first_dir(root, BLUR_NAMES) or any(_first_dir(p, BLUR_NAMES) for p in subdirs):
        return "paired"
    return None


def find_sequences(
    root: str | Path,
    layout: str | None = None,
    *,
    split: str | None = None,
    gamma_blur: bool = False,
    require_gt: bool = True,
) -> list[Sequence]:
    """The sequences of a dataset folder. ``layout`` None: detected (a clear error when nothing matches)."""
    root = Path(root)
    if not root.is_dir():
        raise PahsError(f"expected a dataset folder, found nothing at {root}; check the path")
    if layout is not None and layout not in LAYOUTS:
        raise PahsError(f"expected a layout among {', '.join(LAYOUTS)}, found {layout!r}")
    layout = layout or detect_layout(root)
    if layout is None:
        found = ", ".join(sorted(p.name for p in root.iterdir())[:6]) or "an empty folder"
        raise PahsError(
            f"expected a GOPRO, DVD, REDS or paired (blur/sharp) layout in {root}, found {found}; "
            "see pahs_export/training/datasets.py for the layouts"
        )
    sequences = {
        "gopro": lambda: _gopro(root, split, gamma_blur, require_gt),
        "dvd": lambda: _dvd(root, require_gt),
        "reds": lambda: _reds(root, split, require_gt),
        "paired": lambda: _paired(root, require_gt),
    }[layout]()
    if not sequences:
        raise PahsError(f"expected sequences in the {layout} layout under {root}, found none; check --layout")
    return sequences


def read_frame(path: str | Path) -> np.ndarray:
    """One frame as uint8 [H, W, 3] RGB (gray -> RGB, alpha dropped, 16-bit scaled to 8-bit)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            if im.mode in ("I;16", "I;16B", "I"):
                arr = (np.asarray(im, dtype=np.float64) / 257.0).round().clip(0, 255).astype(np.uint8)
                return np.repeat(arr[..., None], 3, axis=2)
            return np.asarray(im.convert("RGB"))
    except (OSError, UnidentifiedImageError) as e:
        raise PahsError(
            f"expected a readable image, could not read {path} ({type(e).__name__}); fix or remove it"
        ) from None


class SequenceClips(Dataset):
    """Random crops of ``frames`` consecutive frames: items (blurry, sharp) float32 [T,3,crop,crop] in [0, 1].

    Item ``i`` is fixed by ``seed`` and ``i`` (sequence, start, position, flip), so runs are reproducible.
    """

    def __init__(
        self, sequences: list[Sequence], frames: int, crop: int, length: int, seed: int = 0, flip: bool = True
    ) -> None:
        usable = [s for s in sequences if s.sharp is not None and len(s.blurry) >= frames]
        if not usable:
            raise PahsError(f"expected sequences with ground truth and at least {frames} frames, found none")
        self.sequences, self.frames, self.crop, self.length, self.seed, self.flip = (
            usable,
            frames,
            crop,
            length,
            seed,
            flip,
        )

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, index])
        seq = self.sequences[rng.integers(len(self.sequences))]
        start = int(rng.integers(len(seq.blurry) - self.frames + 1))
        blurry = np.stack([read_frame(p) for p in seq.blurry[start : start + self.frames]])
        sharp = np.stack([read_frame(p) for p in seq.sharp[start : start + self.frames]])
        h, w = blurry.shape[1:3]
        if h < self.crop or w < self.crop:
            raise PahsError(f"expected frames of at least {self.crop}x{self.crop} in {seq.name!r}, found {w}x{h}")
        top, left = int(rng.integers(h - self.crop + 1)), int(rng.integers(w - self.crop + 1))
        window = (slice(None), slice(top, top + self.crop), slice(left, left + self.crop))
        b, s = blurry[window], sharp[window]
        if self.flip and rng.random() < 0.5:
            b, s = b[:, :, ::-1], s[:, :, ::-1]

        def tensor(x: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2).float() / 255.0

        return tensor(b), tensor(s)
