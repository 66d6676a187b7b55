"""Synthetic GOPRO-style blurry/sharp video clips, rendered on the CPU from offline content.

The GOPRO protocol (Nah et al., 2017): film a scene at a high frame rate, average ``k`` consecutive sharp
sub-frames in *linear* light to get one blurry frame, and use the middle sub-frame of that exposure window
as its ground truth. Here the scene is a background (a photo or a procedural texture) seen by a camera that
translates, rotates and zooms along a smooth random trajectory, with 1-3 textured foreground objects
(alpha-masked patches) moving along their own trajectories. Output frame ``t`` averages sub-frames
``[t*k, (t+1)*k)`` of one continuous trajectory, so consecutive frames look like consecutive video frames.

Content and the train / held-out split (:func:`content_split`):

* Photos shipped inside scikit-image (no download needed). ``train``: astronaut, camera, chelsea, coins, moon,
  page, immunohistochemistry, hubble_deep_field, grass, brick, retina, cell. ``heldout``: coffee, rocket,
  gravel, text, motorcycle (left view of ``stereo_motorcycle``). ``clock`` is excluded (it is motion-blurred).
* Procedural kinds ``noise`` (multi-octave smooth noise), ``stripes`` (1-2 gratings), ``checkers`` (rotated
  checkerboards) and ``glyphs`` (random words drawn with PIL's default font). Each is generated from a content
  seed: ``train`` seeds lie in ``[0, 2**31)`` and ``heldout`` seeds in ``[2**31, 2**32)``, so no held-out
  procedural image is ever produced for training. Their names carry the split: ``"noise:train"``,
  ``"noise:heldout"``, ...

Foreground object textures are drawn from the same split as the background.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont
from torch.utils.data import Dataset

from pahs_export.errors import PahsError

GAMMA = 2.2  # linear = srgb ** GAMMA, as in the GOPRO data set
SPLITS = ("train", "heldout")

# scikit-image photo name -> split. Every one of these is stored inside the scikit-image wheel.
PHOTO_SPLIT: dict[str, str] = {
    "astronaut": "train",
    "camera": "train",
    "chelsea": "train",
    "coins": "train",
    "moon": "train",
    "page": "train",
    "immunohistochemistry": "train",
    "hubble_deep_field": "train",
    "grass": "train",
    "brick": "train",
    "retina": "train",
    "cell": "train",
    "coffee": "heldout",
    "rocket": "heldout",
    "gravel": "heldout",
    "text": "heldout",
    "motorcycle": "heldout",
}
PHOTO_NAMES: tuple[str, ...] = tuple(PHOTO_SPLIT)
PROCEDURAL_KINDS: tuple[str, ...] = ("noise", "stripes", "checkers", "glyphs")
# Procedural content seeds: train draws from [0, 2**31), heldout from [2**31, 2**32).
_SEED_OFFSET = {"train": 0, "heldout": 2**31}

CONTENT_NAMES: tuple[str, ...] = PHOTO_NAMES + tuple(f"{kind}:{split}" for split in SPLITS for kind in PROCEDURAL_KINDS)

_GLYPH_ALPHABET = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"))


@dataclass(frozen=True)
class SynthConfig:
    """How :func:`make_clip` renders a clip."""

    height: int = 128  # output frame height in pixels; any size >= 16
    width: int = 128  # output frame width in pixels; any size >= 16
    frames: int = 5  # number of blurry/sharp output frame pairs per clip
    min_blur: int = 7  # sharp sub-frames averaged per output frame: odd k drawn per clip in [min_blur, max_blur]
    max_blur: int = 13
    # Longest path, in output pixels, that a corner of the camera view (for the background) or a corner of an
    # object patch travels during one exposure window. Each clip draws the camera's and every object's value
    # uniformly in [min_motion, max_motion]; min_motion None = 0.15 x max_motion, so the default gives roughly
    # 4-25 px of blur (GOPRO's range). 0 = a static scene. Training draws up to 50 px (TrainConfig.max_motion).
    max_motion: float = 25.0
    min_motion: float | None = None
    objects: tuple[int, int] = (1, 3)  # inclusive range of the number of foreground objects per clip
    split: str = "train"  # content pool: "train" or "heldout" (see content_split)

    def __post_init__(self) -> None:
        if self.height < 16 or self.width < 16:
            raise PahsError(
                f"SynthConfig expects height and width >= 16, got {self.height}x{self.width}; use a larger size"
            )
        if self.frames < 1:
            raise PahsError(f"SynthConfig expects frames >= 1, got {self.frames}; ask for at least one frame")
        if not (1 <= self.min_blur <= self.max_blur) or self.min_blur % 2 == 0 or self.max_blur % 2 == 0:
            raise PahsError(
                f"SynthConfig expects odd 1 <= min_blur <= max_blur, got min_blur={self.min_blur} "
                f"max_blur={self.max_blur}; use odd sub-frame counts such as 7 and 13"
            )
        if not (self.max_motion >= 0 and math.isfinite(self.max_motion)):
            raise PahsError(f"SynthConfig expects max_motion >= 0 pixels, got {self.max_motion}; pass e.g. 25.0")
        if self.min_motion is not None and not (0 <= self.min_motion <= self.max_motion):
            raise PahsError(
                f"SynthConfig expects 0 <= min_motion <= max_motion pixels, got {self.min_motion} and "
                f"{self.max_motion}; pass e.g. min_motion=25.0, max_motion=50.0"
            )
        lo, hi = self.objects
        if not (0 <= lo <= hi):
            raise PahsError(f"SynthConfig expects objects=(min, max) with 0 <= min <= max, got {self.objects}")
        _check_split(self.split)


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise PahsError(f"expected a content split in {SPLITS}, got {split!r}; pass split='train' or 'heldout'")


def content_split(split: str) -> list[str]:
    """Content names used by ``split`` ("train" or "heldout"); the two lists are disjoint."""
    _check_split(split)
    photos = [name for name, s in PHOTO_SPLIT.items() if s == split]
    return photos + [f"{kind}:{split}" for kind in PROCEDURAL_KINDS]


# ----------------------------------------------------------------------------------------------- content


@functools.cache
def load_photo(name: str) -> np.ndarray:
    """One scikit-image photo as a read-only uint8 array [H, W, 3] (RGB; gray photos are replicated)."""
    if name not in PHOTO_SPLIT:
        raise PahsError(f"expected a photo name in {PHOTO_NAMES}, got {name!r}; pick one of those")
    from skimage import data  # lazy: only photo content needs scikit-image

    loaders: dict[str, Callable[[], np.ndarray]] = {
        "immunohistochemistry": data.immunohistochemistry,
        "motorcycle": lambda: data.stereo_motorcycle()[0],
    }
    image = np.asarray(loaders.get(name, lambda: getattr(data, name)())())
    if image.dtype == bool:
        image = image.astype(np.uint8) * 255
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    image = np.ascontiguousarray(image[:, :, :3].astype(np.uint8))
    image.flags.writeable = False  # shared through the cache
    return image


def render_content(name: str, height: int, width: int, rng: np.random.Generator, ref: int) -> np.ndarray:
    """A random view of content ``name``: float32 [height, width, 3], sRGB values in [0, 1].

    ``ref`` is the shorter side of the output frame in pixels; it sets the scale of textures and photos so that
    one output frame shows a similar amount of detail whatever the canvas size.
    """
    if name in PHOTO_SPLIT:
        return _photo_view(load_photo(name), height, width, rng, ref)
    kind, _, split = name.partition(":")
    if kind not in PROCEDURAL_KINDS or split not in SPLITS:
        raise PahsError(f"expected a content name in {CONTENT_NAMES}, got {name!r}; pick one of those")
    seed = _SEED_OFFSET[split] + int(rng.integers(0, 2**31))
    return _PROCEDURAL[kind](height, width, ref, np.random.default_rng(seed))


def _photo_view(photo: np.ndarray, height: int, width: int, rng: np.random.Generator, ref: int) -> np.ndarray:
    hc, wc = photo.shape[:2]
    span = rng.uniform(0.3, 0.9)  # fraction of the photo's shorter side that one output frame spans
    scale = max(ref / (span * min(hc, wc)), height / hc, width / wc)
    nh, nw = max(height, math.ceil(hc * scale)), max(width, math.ceil(wc * scale))
    resized = Image.fromarray(photo).resize((nw, nh), Image.Resampling.BICUBIC, reducing_gap=2.0)
    y0, x0 = int(rng.integers(0, nh - height + 1)), int(rng.integers(0, nw - width + 1))
    view = np.asarray(resized, dtype=np.float32)[y0 : y0 + height, x0 : x0 + width] / 255.0
    if rng.random() < 0.5:
        view = view[:, ::-1]
    if np.array_equal(photo[..., 0], photo[..., 1]) and np.array_equal(photo[..., 0], photo[..., 2]):
        view = view * rng.uniform(0.75, 1.0, size=3).astype(np.float32)  # mild random tint for gray photos
    return np.ascontiguousarray(view, dtype=np.float32)


def _noise(height: int, width: int, ref: int, rng: np.random.Generator) -> np.ndarray:
    cell = ref * rng.uniform(0.1, 0.4)  # size of the coarsest octave's features
    total = torch.zeros(1, 3, height, width, dtype=torch.float64)
    amplitude = 1.0
    while cell >= 2.0:
        grid = rng.standard_normal((1, 3, math.ceil(height / cell) + 2, math.ceil(width / cell) + 2))
        total += amplitude * F.interpolate(torch.from_numpy(grid), size=(height, width), mode="bicubic")
        amplitude *= rng.uniform(0.45, 0.75)
        cell /= 2.0
    x = total[0].permute(1, 2, 0).numpy()
    colour = rng.uniform(0.0, 1.0)  # 0 = gray, 1 = independent channels
    x = colour * x + (1.0 - colour) * x.mean(axis=2, keepdims=True)
    x = (x - x.mean()) / (x.std() + 1e-8)
    return np.clip(rng.uniform(0.3, 0.7) + rng.uniform(0.12, 0.3) * x, 0.0, 1.0).astype(np.float32)


def _coords(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    return xx, yy


def _two_colours(values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    c0, c1 = rng.uniform(0.0, 1.0, size=3), rng.uniform(0.0, 1.0, size=3)
    return (c0 + (c1 - c0) * values[..., None]).astype(np.float32)


def _stripes(height: int, width: int, ref: int, rng: np.random.Generator) -> np.ndarray:
    xx, yy = _coords(height, width)
    total = np.zeros((height, width))
    for _ in range(int(rng.integers(1, 3))):
        angle, period = rng.uniform(0.0, math.pi), rng.uniform(4.0, max(6.0, ref / 3.0))
        wave = np.sin((xx * math.cos(angle) + yy * math.sin(angle)) * 2.0 * math.pi / period + rng.uniform(0, 7))
        # tanh squares the sine wave; capping the hardness keeps edges >= ~0.7 px wide (no aliasing)
        hard = min(float(rng.choice([1.0, 4.0, 20.0])), max(1.0, period / 4.4))
        total += np.tanh(hard * wave) / math.tanh(hard)
    return _two_colours((total - total.min()) / (np.ptp(total) + 1e-8), rng)


def _checkers(height: int, width: int, ref: int, rng: np.random.Generator) -> np.ndarray:
    xx, yy = _coords(height, width)
    angle, cell = rng.uniform(0.0, math.pi / 2), rng.uniform(5.0, max(8.0, ref / 4.0))
    u = xx * math.cos(angle) + yy * math.sin(angle)
    v = -xx * math.sin(angle) + yy * math.cos(angle)
    # the sign of sin(pi u / c) sin(pi v / c) is a checkerboard; tanh gives ~0.7 px anti-aliased edges
    hard = max(1.0, cell / 2.2)
    values = 0.5 + 0.5 * np.tanh(hard * np.sin(math.pi * u / cell) * np.sin(math.pi * v / cell))
    return _two_colours(values, rng)


@functools.lru_cache(maxsize=32)
def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):  # old Pillow or no FreeType: the fixed-size bitmap font
        return ImageFont.load_default()


def _glyphs(height: int, width: int, ref: int, rng: np.random.Generator) -> np.ndarray:
    background = rng.integers(0, 256, size=3)
    image = Image.new("RGB", (width, height), tuple(int(c) for c in background))
    draw = ImageDraw.Draw(image)
    count = max(4, int(height * width / ref**2 * rng.uniform(8.0, 20.0)))
    for _ in range(count):
        size = int(np.clip(rng.uniform(0.06, 0.3) * ref, 8, 96)) // 2 * 2  # even sizes: fewer cached fonts
        word = "".join(rng.choice(_GLYPH_ALPHABET, size=int(rng.integers(2, 10))))
        colour = rng.integers(0, 256, size=3)
        if abs(int(colour.mean()) - int(background.mean())) < 60:  # keep the text readable
            colour = 255 - colour
        position = (float(rng.uniform(-0.2 * width, width)), float(rng.uniform(-0.1 * height, height)))
        draw.text(position, word, fill=tuple(int(c) for c in colour), font=_font(size))
    return np.asarray(image, dtype=np.float32) / 255.0


_PROCEDURAL: dict[str, Callable[[int, int, int, np.random.Generator], np.ndarray]] = {
    "noise": _noise,
    "stripes": _stripes,
    "checkers": _checkers,
    "glyphs": _glyphs,
}


def _object_alpha(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """Soft-edged mask float32 [height, width] in [0, 1]; zero within 2 px of the border."""
    ry, rx = (height - 1) / 2 - 2, (width - 1) / 2 - 2  # keep the shape off the border: zero padding is safe
    xx, yy = _coords(height, width)
    nx, ny = (xx - (width - 1) / 2) / rx, (yy - (height - 1) / 2) / ry
    shape = int(rng.integers(0, 3))
    if shape == 1:  # superellipse: rounded rectangle
        power = rng.uniform(3.0, 8.0)
        radius = (np.abs(nx) ** power + np.abs(ny) ** power) ** (1.0 / power)
        boundary = 1.0
    else:
        radius, boundary = np.hypot(nx, ny), np.ones_like(nx)
        if shape == 2:  # blob: a radius wobbling with the polar angle, within [0.55, 1]
            phi = np.arctan2(ny, nx)
            weights = rng.dirichlet(np.ones(4)) * 0.45
            for m, w in zip(range(2, 6), weights, strict=True):
                boundary = boundary - w * 0.5 * (1 + np.cos(m * phi + rng.uniform(0, 2 * math.pi)))
    # (boundary - radius) * radius-in-pixels ~ signed distance in pixels -> ~1 px anti-aliased edge
    return np.clip((boundary - radius) * min(rx, ry) + 0.5, 0.0, 1.0).astype(np.float32)


# ------------------------------------------------------------------------------------------- trajectories


def _curves(rng: np.random.Generator, n: int, dims: int) -> np.ndarray:
    """Smooth random curves float64 [n, dims], zero at index 0: a cubic plus two slow sinusoids."""
    u = np.linspace(0.0, 1.0, n)[:, None]
    coeffs = rng.standard_normal((3, dims)) / np.array([[1.0], [2.0], [3.0]])
    curve = coeffs[0] * u + coeffs[1] * u**2 + coeffs[2] * u**3
    for _ in range(2):
        freq, phase = rng.uniform(0.25, 1.0, dims), rng.uniform(0, 2 * math.pi, dims)
        curve += rng.normal(0.0, 0.3, dims) * (np.sin(2 * math.pi * freq * u + phase) - np.sin(phase))
    return curve


def _similarity(angle: np.ndarray, log_zoom: np.ndarray) -> np.ndarray:
    """Matrices float64 [n, 2, 2] of zoom * rotation(angle), acting on (x, y) column vectors."""
    c, s = np.cos(angle), np.sin(angle)
    return np.exp(log_zoom)[:, None, None] * np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2)


def _fit_scale(motion: Callable[[float], float], target: float) -> float:
    """Scale ``a`` of a trajectory's deviation so that ``motion(a) == target`` (motion is nearly linear in a)."""
    if target <= 0.0:
        return 0.0
    a = 1.0
    for _ in range(3):
        measured = motion(a)
        if measured <= 1e-9:
            return 0.0
        a *= target / measured
    return a


def _path_lengths(points: np.ndarray, windows: int, k: int) -> float:
    """Longest path of any point within one exposure window; points float64 [windows * k, P, 2]."""
    steps = np.diff(points.reshape(windows, k, -1, 2), axis=1)
    return float(np.linalg.norm(steps, axis=-1).sum(axis=1).max()) if k > 1 else 0.0


class _Camera:
    """Screen -> background map X = A_j x + c_j for every sub-frame j (screen coords centred on the frame)."""

    def __init__(self, rng: np.random.Generator, n: int, half: np.ndarray) -> None:
        self.raw = _curves(rng, n, 4)  # tx, ty, angle * r, log-zoom * r, in pixels at the frame corner
        self.weights = np.array([1.0, 1.0, rng.uniform(0.0, 0.5), rng.uniform(0.0, 0.3)])
        self.radius = float(np.hypot(*half))
        self.set_scale(0.0)

    def set_scale(self, a: float) -> None:
        p = a * self.weights * self.raw
        self.matrix = _similarity(p[:, 2] / self.radius, p[:, 3] / self.radius)
        self.offset = p[:, :2]

    def motion(self, corners: np.ndarray, windows: int, k: int) -> float:
        """Longest screen path of a scene point that starts a window at a frame corner."""
        a = self.matrix.reshape(windows, k, 2, 2)
        c = self.offset.reshape(windows, k, 2)
        scene = np.einsum("wij,pj->wpi", a[:, 0], corners) + c[:, None, 0]  # [windows, 4, 2]
        screen = np.einsum("wkij,wkpj->wkpi", np.linalg.inv(a), scene[:, None] - c[:, :, None])
        return _path_lengths(screen.reshape(windows * k, -1, 2), windows, k)


# ---------------------------------------------------------------------------------------------- rendering


def _sample(source: torch.Tensor, points: torch.Tensor, size: tuple[int, int], padding: str) -> torch.Tensor:
    """Bilinear samples of source [1, C, h, w] at pixel coords points [N, H, W, 2] (x, y) -> [N, C, H, W]."""
    h, w = size
    scale = torch.tensor([2.0 / max(w - 1, 1), 2.0 / max(h - 1, 1)], dtype=points.dtype)
    grid = points * scale - 1.0  # align_corners=True: -1 and 1 are the centres of the edge pixels
    n = points.shape[0]
    return F.grid_sample(source.expand(n, -1, -1, -1), grid, mode="bilinear", padding_mode=padding, align_corners=True)


def _transform(base: torch.Tensor, matrix: np.ndarray, offset: np.ndarray) -> torch.Tensor:
    """base [H, W, 2] -> [N, H, W, 2]: matrix [N, 2, 2] @ base + offset [N, 2]."""
    m = torch.from_numpy(matrix).to(torch.float32)
    o = torch.from_numpy(offset).to(torch.float32)
    return torch.einsum("nij,hwj->nhwi", m, base) + o[:, None, None, :]


def blur_frames(subframes: torch.Tensor, gamma: float = GAMMA) -> torch.Tensor:
    """Average sharp sub-frames in linear light: ``mean_k(x_k ** gamma) ** (1 / gamma)``.

    ``subframes``: float [..., k, C, H, W], sRGB values in [0, 1] (clamped first). Returns float
    [..., C, H, W] in [0, 1], same dtype.
    """
    if subframes.dim() < 4:
        raise PahsError(f"blur_frames expects sub-frames [..., k, C, H, W], got shape {tuple(subframes.shape)}")
    return subframes.clamp(0.0, 1.0).pow(gamma).mean(dim=-4).pow(1.0 / gamma)


def draw_motion(rng: np.random.Generator, config: SynthConfig) -> float:
    """One motion target (px per exposure) in ``config``'s range; the default draws exactly as earlier releases."""
    if config.min_motion is None:
        return config.max_motion * rng.uniform(0.15, 1.0)
    return rng.uniform(config.min_motion, config.max_motion)


def clip_motion(seed: int, config: SynthConfig = SynthConfig()) -> float:
    """The camera's motion (px per exposure: the background's smear) that :func:`make_clip` draws for ``seed``,
    without rendering: the clip's blur magnitude, by which evaluation groups sequences."""
    rng = np.random.default_rng(int(seed))  # the same draws, in the same order, as make_clip's first ones
    k = int(rng.choice(np.arange(config.min_blur, config.max_blur + 1, 2)))
    _Camera(rng, config.frames * k, np.array([(config.width - 1) / 2, (config.height - 1) / 2]))
    return draw_motion(rng, config)


def make_clip(seed: int, config: SynthConfig = SynthConfig()) -> tuple[torch.Tensor, torch.Tensor]:
    """Render one clip; deterministic given ``seed`` and ``config``.

    Returns ``(blurry, sharp)``, each float32 [T, 3, H, W] with sRGB values in [0, 1], T = ``config.frames``.
    ``sharp[t]`` is the middle sub-frame of the window that ``blurry[t]`` averages.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise PahsError(f"make_clip expects a seed that is an int >= 0, got {seed!r}; pass e.g. 0")
    rng = np.random.default_rng(int(seed))
    height, width, windows = config.height, config.width, config.frames
    ref = min(height, width)
    pool = content_split(config.split)
    k = int(rng.choice(np.arange(config.min_blur, config.max_blur + 1, 2)))
    n = windows * k
    half = np.array([(width - 1) / 2, (height - 1) / 2])
    corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * half

    camera = _Camera(rng, n, half)
    target = draw_motion(rng, config)

    def camera_motion(a: float) -> float:
        camera.set_scale(a)
        return camera.motion(corners, windows, k)

    camera.set_scale(_fit_scale(camera_motion, target))
    background_name = str(rng.choice(pool))

    objects = []
    for _ in range(int(rng.integers(config.objects[0], config.objects[1] + 1))):
        ph, pw = (max(12, int(rng.uniform(0.2, 0.5) * ref)) for _ in range(2))
        texture = render_content(str(rng.choice(pool)), ph, pw, rng, ref)
        alpha = _object_alpha(ph, pw, rng)
        patch = torch.from_numpy(np.concatenate([texture * alpha[..., None], alpha[..., None]], axis=2))
        raw = _curves(rng, n, 4)  # x, y, angle * r, log-zoom * r (r = patch half-diagonal)
        weights = np.array([1.0, 1.0, rng.uniform(0.0, 0.6), rng.uniform(0.0, 0.2)])
        start = np.array([rng.uniform(-0.35, 0.35) * width, rng.uniform(-0.35, 0.35) * height])
        angle0, radius = rng.uniform(-math.pi, math.pi), math.hypot(pw / 2, ph / 2)
        patch_corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * np.array([(pw - 1) / 2, (ph - 1) / 2])

        def pose(a: float, raw=raw, weights=weights, start=start, angle0=angle0, radius=radius):
            p = a * weights * raw
            return _similarity(angle0 + p[:, 2] / radius, p[:, 3] / radius), start + p[:, :2]

        def object_motion(a: float, pose=pose, patch_corners=patch_corners) -> float:
            matrix, offset = pose(a)
            points = np.einsum("nij,pj->npi", matrix, patch_corners) + offset[:, None]
            return _path_lengths(points, windows, k)

        matrix, offset = pose(_fit_scale(object_motion, draw_motion(rng, config)))
        objects.append((patch.permute(2, 0, 1)[None].contiguous(), matrix, offset))

    # Background canvas: just large enough to hold every sub-frame's view (plus a 2 px margin).
    footprint = np.einsum("nij,pj->npi", camera.matrix, corners) + camera.offset[:, None]
    low, high = footprint.reshape(-1, 2).min(axis=0) - 2.0, footprint.reshape(-1, 2).max(axis=0) + 2.0
    canvas_w, canvas_h = (math.ceil(s) + 1 for s in high - low)
    canvas = render_content(background_name, canvas_h, canvas_w, rng, ref)
    canvas_t = torch.from_numpy(canvas).permute(2, 0, 1)[None].contiguous()

    ys = torch.arange(height, dtype=torch.float32) - (height - 1) / 2
    xs = torch.arange(width, dtype=torch.float32) - (width - 1) / 2
    screen = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)  # [H, W, 2] as (x, y)

    with torch.no_grad():
        points = _transform(screen, camera.matrix, camera.offset - low)
        sub = _sample(canvas_t, points, (canvas_h, canvas_w), "border")  # [n, 3, H, W]
        for patch, matrix, offset in objects:
            # screen x = M u + o  =>  patch coords u = M^-1 (x - o), shifted to the patch's pixel grid
            inverse = np.linalg.inv(matrix)
            centre = np.array([(patch.shape[3] - 1) / 2, (patch.shape[2] - 1) / 2])
            local = _transform(screen, inverse, centre - np.einsum("nij,nj->ni", inverse, offset))
            rgba = _sample(patch, local, (patch.shape[2], patch.shape[3]), "zeros")  # premultiplied alpha
            sub = rgba[:, :3] + (1.0 - rgba[:, 3:]) * sub
        sub = sub.clamp_(0.0, 1.0).reshape(windows, k, 3, height, width)
        blurry = blur_frames(sub)
        sharp = sub[:, k // 2].contiguous()
    return blurry.to(torch.float32), sharp.to(torch.float32)


class SyntheticClips(Dataset):
    """Map-style data set of synthetic clips: item ``i`` is ``make_clip(seed_base + i, config)``.

    Items are ``(blurry, sharp)``, each float32 [T, 3, H, W] in [0, 1]. Use disjoint seed ranges (and
    ``config.split="heldout"``) for validation.
    """

    def __init__(self, seed_base: int = 0, length: int = 10000, config: SynthConfig = SynthConfig()) -> None:
        if seed_base < 0 or length < 0:
            raise PahsError(
                f"SyntheticClips expects seed_base >= 0 and length >= 0, got {seed_base} and {length}; "
                "pass non-negative values"
            )
        self.seed_base, self.length, self.config = seed_base, length, config

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if index < 0:
            index += self.length
        if not 0 <= index < self.length:
            raise IndexError(f"SyntheticClips index {index} out of range for length {self.length}")
        return make_clip(self.seed_base + index, self.config)
