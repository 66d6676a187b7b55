"""Camera-shake blur over real content: folders of photos and of ordinary-rate video (layouts ``photos``, ``video``).

Photos carry no motion and 24-30 fps video ghosts when consecutive frames are averaged, so neither can be
blurred the X4K way (:mod:`.highfps`). Here the blur inside each exposure comes from a camera moving along one
continuous trajectory over the whole clip, the GOPRO way: ``k`` sharp sub-frames per exposure, averaged in
linear light (gamma 2.2), the middle sub-frame being the ground truth. The trajectory is a hand-held shake:
translation, in-plane rotation, zoom and a little perspective, each a sum of slow random sinusoids (0.15-1.2
cycles per exposure) plus a drift, scaled so that the frame corners travel the clip's drawn blur length per
exposure. For video, output frame ``t`` shows real frame ``t`` (downscaled 2x in linear light first, so that the
source's compression does not become the target), so the motion between frames is the footage's own; for a
photo every output frame shows the same photo. Optionally 1-2 foreground objects, cut from other content of
the same folder and split, move along their own paths.

Real footage has what this synthesizer would otherwise lack, so each is randomized and applied to the blurry
input only (:class:`Degradations`): signal-dependent sensor noise in linear light before the gamma; highlights
brighter than white that smear when averaged, then clip; and compression of the blurry frames (JPEG, or H.264
through PyAV's FFmpeg). Frames of the footage that are already blurred (fast limbs in DAVIS) are **skipped**: a
training window is redrawn (up to 8 times) until each of its frames is at least half as sharp as the clip's
median frame (variance of the Laplacian of the luminance).

Held out (never trained on; :func:`find_content` with ``split="heldout"``): photos under a folder named ``set14``;
the videos ``blackswan``, ``car-roundabout``, ``dance-twirl``, ``kite-surf``, ``parkour`` and every video under a
folder named ``set8-gopro``.
"""

from __future__ import annotations

import functools
import hashlib
import io
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from pahs_export.cache import cache_dir
from pahs_export.errors import PahsError

from .datasets import IMAGE_SUFFIXES, read_frame
from .highfps import VIDEO_SUFFIXES
from .synth import GAMMA, _fit_scale, _object_alpha, _path_lengths, _sample, _similarity, _transform

HELD_OUT_FOLDERS = ("set14", "set8-gopro")  # every photo or video below a folder of this name
HELD_OUT_VIDEOS = ("blackswan", "car-roundabout", "dance-twirl", "kite-surf", "parkour")  # DAVIS, by file stem
CONTENT_LAYOUTS = ("photos", "video")
VIDEO_SCALE = 2  # ordinary-rate video is downscaled this many times in linear light before use
SHARPNESS_FLOOR = 0.5  # a frame below this fraction of its clip's median sharpness counts as already blurred
_DOFS = 6  # tx, ty, rotation, zoom, perspective x, perspective y


@dataclass(frozen=True)
class Degradations:
    """Probabilities (per clip) of each degradation of the blurry input, and their ranges."""

    noise: float = 0.7  # Poisson-Gaussian sensor noise in linear light: var = a * x + b
    shot: tuple[float, float] = (1e-4, 3e-3)  # a, drawn log-uniformly
    read: tuple[float, float] = (1e-6, 1e-4)  # b, drawn log-uniformly
    highlights: float = 0.3  # lights brighter than white: bright pixels scaled up before averaging, then clipped
    highlight_gain: tuple[float, float] = (1.5, 4.0)
    jpeg: float = 0.2  # JPEG of every blurry frame at one quality per clip
    jpeg_quality: tuple[int, int] = (40, 95)
    h264: float = 0.2  # the blurry frames encoded as one H.264 clip (yuv420p) and decoded back
    h264_crf: tuple[int, int] = (18, 32)


NO_DEGRADATIONS = Degradations(noise=0.0, highlights=0.0, jpeg=0.0, h264=0.0)


@dataclass(frozen=True)
class ShakeConfig:
    """How :func:`shake_clip` renders a clip (sizes in output pixels)."""

    frames: int = 5  # output frames per clip
    height: int = 96
    width: int = 96
    sub_frames: tuple[int, ...] = (7, 9, 11, 13)  # k drawn per clip from these (odd: the middle one is sharp)
    # Blur length (px per exposure at the frame corners): with probability `typical`, uniform over the range
    # hand-held cameras mostly give; else uniform over the large-blur tail up to 50 px.
    typical_motion: tuple[float, float] = (3.0, 25.0)
    large_motion: tuple[float, float] = (25.0, 50.0)
    typical: float = 0.8
    rotation: float = 0.5  # weight of in-plane rotation against translation (0 = none)
    zoom: float = 0.3  # weight of zoom
    perspective: float = 0.15  # weight of the perspective terms
    objects: tuple[int, int] = (0, 2)  # inclusive range of moving foreground objects
    degradations: Degradations = Degradations()


# ------------------------------------------------------------------------------------------------- content


def _held_out(path: Path) -> bool:
    # the whole path, not the part below --data: pointing --data at set14/ itself must not train on it
    parts = path.resolve().parts[:-1]
    return any(p in HELD_OUT_FOLDERS for p in parts) or path.stem in HELD_OUT_VIDEOS


def find_content(root: str | Path, layout: str, split: str) -> list[Path]:
    """The photos (``layout="photos"``) or videos (``"video"``) below ``root`` in ``split``, sorted: "train" is
    everything not held out (see the module docstring), "heldout" the rest."""
    root = Path(root)
    if layout not in CONTENT_LAYOUTS:
        raise PahsError(f"expected a content layout among {', '.join(CONTENT_LAYOUTS)}, found {layout!r}")
    if not root.is_dir():
        raise PahsError(f"expected a folder of {layout}, found nothing at {root}; check --data")
    suffixes = IMAGE_SUFFIXES if layout == "photos" else VIDEO_SUFFIXES
    found = sorted(p for p in root.rglob("*") if p.suffix.lower() in suffixes and p.is_file())
    chosen = [p for p in found if _held_out(p) == (split == "heldout")]
    if not chosen:
        raise PahsError(
            f"expected {split} {layout} below {root}, found {len(found)} file(s) of that kind and none in that "
            "split; check --data and --layout"
        )
    return chosen


def to_linear(srgb: np.ndarray) -> np.ndarray:
    return np.power(np.clip(srgb, 0.0, 1.0), GAMMA, dtype=np.float32)


def to_srgb(linear: np.ndarray) -> np.ndarray:
    return np.power(np.clip(linear, 0.0, 1.0), 1.0 / GAMMA, dtype=np.float32)


def downscale_linear(frames: np.ndarray, scale: int) -> np.ndarray:
    """Box-downscale float32 linear frames [..., H, W, 3] ``scale`` times (H, W cropped to multiples)."""
    if scale == 1:
        return frames
    h, w = frames.shape[-3] // scale * scale, frames.shape[-2] // scale * scale
    x = frames[..., :h, :w, :]
    shape = (*x.shape[:-3], h // scale, scale, w // scale, scale, 3)
    return x.reshape(shape).mean(axis=(-4, -2))


def sharpness(srgb: np.ndarray) -> np.ndarray:
    """Variance of the Laplacian of the luminance of each frame of float [N, H, W, 3] -> float64 [N]."""
    y = srgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    lap = y[:, 1:-1, 1:-1] * 4 - y[:, :-2, 1:-1] - y[:, 2:, 1:-1] - y[:, 1:-1, :-2] - y[:, 1:-1, 2:]
    return lap.reshape(len(lap), -1).var(axis=1).astype(np.float64)


_LINEAR_LUT = to_linear(np.arange(256, dtype=np.float32) / 255.0)  # uint8 sRGB -> float32 linear


@dataclass(frozen=True)
class VideoContent:
    frames: np.ndarray  # uint8 [N, H, W, 3] sRGB, downscaled VIDEO_SCALE x in linear light
    sharp_enough: np.ndarray  # bool [N]: not already blurred (see SHARPNESS_FLOOR)


@functools.lru_cache(maxsize=24)
def read_video(path: Path, scale: int = VIDEO_SCALE) -> VideoContent:
    """Every frame of an ordinary-rate clip, downscaled ``scale`` x in linear light: cached per process, and on
    disk under ``$PAHS_CACHE/content/`` (decoding a 720p clip takes tens of seconds; every run and data-loading
    process would pay it again), keyed by the file's path, size and modification time and by ``scale``."""
    stat = path.stat()
    key = hashlib.sha256(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{scale}|1".encode()).hexdigest()[:24]
    cached = cache_dir() / "content" / f"{path.stem}-{key}.npy"
    if cached.is_file():
        try:
            return _video_content(np.load(cached, mmap_mode="r"))
        except (OSError, ValueError):  # damaged: decode again and replace it
            pass
    frames = _decode_video(path, scale)
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        partial = cached.with_name(f".{cached.name}.{os.getpid()}.partial")
        with partial.open("wb") as f:
            np.save(f, frames)
        os.replace(partial, cached)  # atomic: concurrent readers see the whole file or none
    except OSError:  # a read-only or full cache only costs speed
        pass
    return _video_content(frames)


def _video_content(frames: np.ndarray) -> VideoContent:
    sharp = np.array([sharpness(np.asarray(f[None], dtype=np.float32) / 255.0)[0] for f in frames])
    return VideoContent(frames, sharp >= SHARPNESS_FLOOR * np.median(sharp))


def _decode_video(path: Path, scale: int) -> np.ndarray:
    import av

    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            frames = []
            for frame in container.decode(stream):
                linear = _LINEAR_LUT[frame.to_ndarray(format="rgb24")]
                frames.append((to_srgb(downscale_linear(linear, scale)) * 255.0 + 0.5).astype(np.uint8))
    except (av.error.FFmpegError, IndexError) as e:
        raise PahsError(
            f"expected a readable video clip, could not decode {path} ({e}); remove or replace it"
        ) from None
    if not frames:
        raise PahsError(f"expected frames in {path}, found none; remove or replace it")
    return np.stack(frames)


@functools.lru_cache(maxsize=64)
def read_photo(path: Path) -> np.ndarray:
    """A photo as uint8 [H, W, 3] sRGB (cached per process)."""
    return read_frame(path)


# -------------------------------------------------------------------------------------------- trajectories


class _Shake:
    """A hand-held camera: per sub-frame, the homography [n, 3, 3] taking centred screen coords to content."""

    def __init__(self, rng: np.random.Generator, n: int, k: int, config: ShakeConfig, half: np.ndarray) -> None:
        u = (np.arange(n) / k)[:, None]  # time in exposures
        freq = rng.uniform(0.15, 1.2, (3, _DOFS))
        amp = rng.standard_normal((3, _DOFS)) / freq  # slower components wander further
        phase = rng.uniform(0, 2 * math.pi, (3, _DOFS))
        curve = (amp[None] * (np.sin(2 * math.pi * freq[None] * u[:, :, None] + phase[None]) - np.sin(phase))).sum(1)
        curve += rng.normal(0.0, 0.5, _DOFS) * u  # a slow drift
        self.raw = curve
        self.weights = np.array(
            [1.0, 1.0]
            + [rng.uniform(0, config.rotation), rng.uniform(0, config.zoom)]
            + [rng.uniform(0, config.perspective)] * 2
        )
        self.half = half
        self.radius = float(np.hypot(*half))
        self.set_scale(0.0)

    def set_scale(self, a: float) -> None:
        p = a * self.weights * self.raw  # in pixels at the frame corner
        n = len(p)
        h = np.zeros((n, 3, 3))
        h[:, :2, :2] = _similarity(p[:, 2] / self.radius, p[:, 3] / self.radius)
        h[:, :2, 2] = p[:, :2]
        # perspective: w = 1 + px * x + py * y moves a corner by about p[:, 4:] pixels
        h[:, 2, 0], h[:, 2, 1] = p[:, 4] / self.radius / self.half[0], p[:, 5] / self.radius / self.half[1]
        h[:, 2, 2] = 1.0
        self.matrix = h

    def apply(self, points: np.ndarray) -> np.ndarray:
        """Content coords [n, P, 2] of screen points [P, 2] at every sub-frame."""
        homogeneous = np.concatenate([points, np.ones((len(points), 1))], axis=1)
        mapped = np.einsum("nij,pj->npi", self.matrix, homogeneous)
        return mapped[..., :2] / mapped[..., 2:]

    def motion(self, corners: np.ndarray, windows: int, k: int) -> float:
        return _path_lengths(self.apply(corners), windows, k)


def draw_blur_length(rng: np.random.Generator, config: ShakeConfig) -> float:
    lo, hi = config.typical_motion if rng.random() < config.typical else config.large_motion
    return float(rng.uniform(lo, hi))


# ---------------------------------------------------------------------------------------------- rendering


def _screen(height: int, width: int) -> torch.Tensor:
    ys = torch.arange(height, dtype=torch.float32) - (height - 1) / 2
    xs = torch.arange(width, dtype=torch.float32) - (width - 1) / 2
    return torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)  # [H, W, 2] as (x, y)


def _warp(canvas: torch.Tensor, homography: np.ndarray, centre: np.ndarray, height: int, width: int) -> torch.Tensor:
    """Sub-frames [n, 3, H, W]: canvas [1, 3, h, w] (linear) seen through homographies [n, 3, 3] about ``centre``."""
    screen = _screen(height, width)
    ones = torch.ones(height, width, 1)
    m = torch.from_numpy(homography).to(torch.float32)
    mapped = torch.einsum("nij,hwj->nhwi", m, torch.cat([screen, ones], dim=-1))
    points = mapped[..., :2] / mapped[..., 2:] + torch.from_numpy(centre).to(torch.float32)
    return _sample(canvas, points, tuple(canvas.shape[-2:]), "reflection")


def _objects(
    rng: np.random.Generator,
    texture: Callable[[int, int], np.ndarray],
    count: int,
    n: int,
    windows: int,
    k: int,
    config: ShakeConfig,
) -> list[tuple[torch.Tensor, np.ndarray, np.ndarray]]:
    """``count`` foreground objects: (premultiplied linear RGBA patch [1, 4, ph, pw], matrices [n, 2, 2], offsets
    [n, 2]) moving in screen coords, each at a blur length of its own."""
    ref = min(config.height, config.width)
    out = []
    for _ in range(count):
        ph, pw = (max(12, int(rng.uniform(0.2, 0.5) * ref)) for _ in range(2))
        alpha = _object_alpha(ph, pw, rng)
        rgba = np.concatenate([texture(ph, pw) * alpha[..., None], alpha[..., None]], axis=2)
        u = np.linspace(0.0, windows, n)[:, None]
        raw = np.concatenate([rng.standard_normal((1, 2)) * u, 0.3 * rng.standard_normal((1, 2)) * u], axis=1)
        start = np.array([rng.uniform(-0.35, 0.35) * config.width, rng.uniform(-0.35, 0.35) * config.height])
        angle0, radius = rng.uniform(-math.pi, math.pi), math.hypot(pw / 2, ph / 2)
        corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * np.array([(pw - 1) / 2, (ph - 1) / 2])

        def pose(a: float, raw=raw, start=start, angle0=angle0, radius=radius):
            p = a * raw
            return _similarity(angle0 + p[:, 2] / radius, p[:, 3] / radius), start + p[:, :2]

        def motion(a: float, pose=pose, corners=corners) -> float:
            matrix, offset = pose(a)
            return _path_lengths(np.einsum("nij,pj->npi", matrix, corners) + offset[:, None], windows, k)

        matrix, offset = pose(_fit_scale(motion, draw_blur_length(rng, config)))
        out.append((torch.from_numpy(rgba).permute(2, 0, 1)[None].contiguous(), matrix, offset))
    return out


def _composite(sub: torch.Tensor, objects: list, height: int, width: int) -> torch.Tensor:
    screen = _screen(height, width)
    for patch, matrix, offset in objects:
        inverse = np.linalg.inv(matrix)
        centre = np.array([(patch.shape[3] - 1) / 2, (patch.shape[2] - 1) / 2])
        local = _transform(screen, inverse, centre - np.einsum("nij,nj->ni", inverse, offset))
        rgba = _sample(patch, local, (patch.shape[2], patch.shape[3]), "zeros")
        sub = rgba[:, :3] + (1.0 - rgba[:, 3:]) * sub
    return sub


def shake_clip(
    frames: np.ndarray,
    rng: np.random.Generator,
    config: ShakeConfig,
    texture: Callable[[int, int], np.ndarray] | None = None,
    blur_length: float | None = None,
    sub_frames: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Blur ``frames`` (uint8 or float [T', H, W, 3] sRGB; a single frame for a photo) with a hand-held shake.

    Output frame ``t`` shows ``frames[min(t, T'-1)]`` seen by the camera, centred in it. ``texture(h, w)``
    gives linear float [h, w, 3] content for foreground objects (None: no objects). ``blur_length`` (px per
    exposure) and ``sub_frames`` override the draws. Returns ``(blurry, sharp)``, float32 [T, 3, H, W] sRGB
    in [0, 1], T = ``config.frames``; degradations (``config.degradations``) are applied to ``blurry`` only.
    """
    height, width, windows = config.height, config.width, config.frames
    k = int(rng.choice(config.sub_frames)) if sub_frames is None else sub_frames
    n = windows * k
    half = np.array([(width - 1) / 2, (height - 1) / 2])
    corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * half
    camera = _Shake(rng, n, k, config, half)
    length = draw_blur_length(rng, config) if blur_length is None else blur_length

    def camera_motion(a: float) -> float:
        camera.set_scale(a)
        return camera.motion(corners, windows, k)

    camera.set_scale(_fit_scale(camera_motion, length))
    camera.matrix = _anchored(camera.matrix, windows, k)
    count = int(rng.integers(config.objects[0], config.objects[1] + 1)) if texture is not None else 0
    objects = _objects(rng, texture, count, n, windows, k, config) if count else []

    source = np.asarray(frames)
    source = source.astype(np.float32) / 255.0 if source.dtype == np.uint8 else source.astype(np.float32)
    linear = to_linear(source)
    centre = _centre(rng, camera.apply(corners), linear.shape[2], linear.shape[1])
    centre = np.round(centre - half) + half  # screen + centre lands on whole content pixels (see _anchored)
    highlight = _highlight_gain(rng, config.degradations, linear)
    subs = []
    with torch.no_grad():
        for t in range(windows):
            canvas = torch.from_numpy(linear[min(t, len(linear) - 1)] * highlight).permute(2, 0, 1)[None]
            sub = _warp(canvas.contiguous(), camera.matrix[t * k : (t + 1) * k], centre, height, width)
            moving = [(p, m[t * k : (t + 1) * k], o[t * k : (t + 1) * k]) for p, m, o in objects]
            subs.append(_composite(sub, moving, height, width))
        sub = torch.stack(subs)  # [T, k, 3, H, W] linear, highlights possibly above 1
        blurry = sub.mean(dim=1)
        sharp = sub[:, k // 2].clamp(0.0, 1.0)
    blurry = degrade(blurry, rng, config.degradations)
    return blurry, sharp.pow(1.0 / GAMMA).contiguous()


def _anchored(matrix: np.ndarray, windows: int, k: int) -> np.ndarray:
    """Homographies [windows * k, 3, 3] re-anchored per exposure window: relative to the window's middle
    sub-frame, then moved by that sub-frame's translation rounded to whole pixels. The motion inside each
    exposure is unchanged, and the sharp (middle) sub-frame samples the content exactly on its pixel grid, so
    the ground truth is the content itself, not a bilinear resampling of it (which would soften it)."""
    m = matrix.reshape(windows, k, 3, 3)
    mid = m[:, k // 2]
    relative = m @ np.linalg.inv(mid)[:, None]
    shift = np.round(mid[:, :2, 2] / mid[:, 2:, 2])
    relative[:, :, :2, :] += shift[:, None, :, None] * relative[:, :, 2:3, :]  # T(shift) @ relative
    return relative.reshape(-1, 3, 3)


def _centre(rng: np.random.Generator, footprint: np.ndarray, width: int, height: int) -> np.ndarray:
    """A random content point (x, y) for the screen centre that keeps the camera's footprint [n, P, 2] (centred
    content coords) inside a ``width`` x ``height`` frame, or the frame's middle where none does (reflection
    padding then fills the rest)."""
    low, high = footprint.reshape(-1, 2).min(axis=0), footprint.reshape(-1, 2).max(axis=0)
    size = np.array([width - 1, height - 1], dtype=np.float64)
    lo, hi = -low, size - high  # centre + footprint within [0, size]
    u = rng.uniform(0.0, 1.0, 2)
    return np.where(lo <= hi, lo + u * np.maximum(hi - lo, 0.0), size / 2)


def _highlight_gain(rng: np.random.Generator, d: Degradations, linear: np.ndarray) -> np.ndarray:
    """Per-pixel gain [H, W, 1] (1 = none): the brightest parts become lights brighter than white."""
    if rng.random() >= d.highlights:
        return np.ones((*linear.shape[1:3], 1), dtype=np.float32)
    luma = linear[0] @ np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)
    knee = float(np.quantile(luma, rng.uniform(0.97, 0.995)))
    ramp = np.clip((luma - knee) / max(1e-3, 1.0 - knee), 0.0, 1.0)
    return (1.0 + (rng.uniform(*d.highlight_gain) - 1.0) * ramp)[..., None].astype(np.float32)


def degrade(blurry_linear: torch.Tensor, rng: np.random.Generator, d: Degradations) -> torch.Tensor:
    """Sensor noise (linear), clipping, gamma, then compression: [T, 3, H, W] linear -> sRGB float32 in [0, 1]."""
    x = blurry_linear.double()
    if rng.random() < d.noise:
        a = math.exp(rng.uniform(math.log(d.shot[0]), math.log(d.shot[1])))
        b = math.exp(rng.uniform(math.log(d.read[0]), math.log(d.read[1])))
        noise = torch.from_numpy(rng.standard_normal(tuple(x.shape)))
        x = x + (a * x.clamp(0, 1) + b).sqrt() * noise
    srgb = x.clamp(0.0, 1.0).pow(1.0 / GAMMA).float()
    draw = rng.random()
    if draw < d.jpeg:
        srgb = _jpeg(srgb, int(rng.integers(d.jpeg_quality[0], d.jpeg_quality[1] + 1)))
    elif draw < d.jpeg + d.h264:
        srgb = _h264(srgb, int(rng.integers(d.h264_crf[0], d.h264_crf[1] + 1)))
    return srgb.contiguous()


def _uint8(frames: torch.Tensor) -> np.ndarray:
    return (frames.permute(0, 2, 3, 1).clamp(0, 1) * 255.0 + 0.5).to(torch.uint8).numpy()


def _jpeg(frames: torch.Tensor, quality: int) -> torch.Tensor:
    from PIL import Image

    out = []
    for frame in _uint8(frames):
        buffer = io.BytesIO()
        Image.fromarray(frame).save(buffer, format="JPEG", quality=quality)
        out.append(np.asarray(Image.open(buffer).convert("RGB")))
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).float() / 255.0


def _h264(frames: torch.Tensor, crf: int) -> torch.Tensor:
    import av

    t, _, h, w = frames.shape
    if h % 2 or w % 2:
        return frames
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"crf": str(crf), "preset": "ultrafast", "threads": "1"}
        for frame in _uint8(frames):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    buffer.seek(0)
    with av.open(buffer) as container:
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    if len(decoded) != t:  # never expected; keep the uncompressed frames rather than misalign them
        return frames
    return torch.from_numpy(np.stack(decoded)).permute(0, 3, 1, 2).float() / 255.0


# ------------------------------------------------------------------------------------------------ datasets


def _linear_tensor_resize(linear: np.ndarray, factor: float) -> np.ndarray:
    """Downscale float linear frames [N, H, W, 3] by ``factor`` >= 1 (antialiased bilinear)."""
    if factor <= 1.0:
        return linear
    x = torch.from_numpy(np.ascontiguousarray(linear)).permute(0, 3, 1, 2)
    size = (max(16, round(x.shape[2] / factor)), max(16, round(x.shape[3] / factor)))
    x = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
    return x.permute(0, 2, 3, 1).contiguous().numpy()


def photo_content(path: Path, rng: np.random.Generator, crop: tuple[int, int], max_downscale: float) -> np.ndarray:
    """A photo as float32 sRGB [1, H, W, 3], downscaled in linear light by a random factor in [1,
    ``max_downscale``] (never below ``crop`` (height, width))."""
    photo = read_photo(path)
    limit = min(photo.shape[0] / crop[0], photo.shape[1] / crop[1], max_downscale)
    factor = rng.uniform(1.0, max(1.0, limit))
    if factor <= 1.0:
        return photo[None]
    return to_srgb(_linear_tensor_resize(_LINEAR_LUT[photo][None], factor))


def video_window(content: VideoContent, frames: int, rng: np.random.Generator | None) -> int:
    """First frame of a window of ``frames`` frames none of which is already blurred: random (up to 8 draws,
    then the last draw is kept) with ``rng``; else the first such window (or 0)."""
    count = len(content.frames) - frames + 1
    if count < 1:
        raise PahsError(f"expected clips of at least {frames} frames, found one of {len(content.frames)}")
    if rng is None:
        ok = [s for s in range(count) if content.sharp_enough[s : s + frames].all()]
        return ok[0] if ok else 0
    for _ in range(8):
        start = int(rng.integers(count))
        if content.sharp_enough[start : start + frames].all():
            break
    return start


class ContentClips(torch.utils.data.Dataset):
    """Training clips of camera shake over the training split of a folder of photos or videos: items (blurry,
    sharp) float32 [frames, 3, crop, crop] in [0, 1]; item ``i`` is fixed by ``seed`` and ``i``."""

    def __init__(
        self, root: str | Path, layout: str, frames: int, crop: int, length: int, seed: int = 0,
        config: ShakeConfig | None = None,
    ) -> None:  # fmt: skip
        self.paths = find_content(root, layout, "train")
        self.layout, self.frames, self.crop, self.length, self.seed = layout, frames, crop, length, seed
        self.config = config or ShakeConfig(frames=frames, height=crop, width=crop)

    def __len__(self) -> int:
        return self.length

    def _content(self, path: Path, rng: np.random.Generator) -> np.ndarray:
        if self.layout == "photos":
            return photo_content(path, rng, (self.crop, self.crop), 2.0)
        video = read_video(path)
        start = video_window(video, self.frames, rng)
        return video.frames[start : start + self.frames]

    def _texture(self, rng: np.random.Generator, h: int, w: int) -> np.ndarray:
        source = self._content(self.paths[rng.integers(len(self.paths))], rng)[0]
        source = source.astype(np.float32) / 255.0 if source.dtype == np.uint8 else source
        y, x = int(rng.integers(max(1, source.shape[0] - h + 1))), int(rng.integers(max(1, source.shape[1] - w + 1)))
        patch = source[y : y + h, x : x + w]
        if patch.shape[:2] != (h, w):  # content smaller than the object: stretch it
            resized = F.interpolate(torch.from_numpy(np.ascontiguousarray(patch)).permute(2, 0, 1)[None], size=(h, w))
            patch = resized[0].permute(1, 2, 0).numpy()
        return to_linear(patch)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, 13, CONTENT_LAYOUTS.index(self.layout), index])
        content = self._content(self.paths[rng.integers(len(self.paths))], rng)
        blurry, sharp = shake_clip(content, rng, self.config, lambda h, w: self._texture(rng, h, w))
        if rng.random() < 0.5:
            blurry, sharp = blurry.flip(-1), sharp.flip(-1)
        return blurry.contiguous(), sharp.contiguous()


# ------------------------------------------------------------------------------- fixed held-out sequences

EVAL_SEED = 20261206  # every shake draw of the evaluation derives from this, a stream number and the index
EVAL_LENGTH = (10.0, 25.0)  # px per exposure at the frame corners: hand-held shake
EVAL_SUB_FRAMES = 11


@dataclass(frozen=True)
class HeldOutShake:
    """Fixed camera shake over held-out content (the validation suite's rows; see training.suite)."""

    folder: str  # below the data folder
    layout: str  # "video" or "photos"
    only: str | None  # only content below a folder of this name (None: every held-out item)
    frames: int
    max_size: tuple[int, int]  # (height, width) cap; each is cut down to a multiple of 16 within the content


def heldout_shake_sequences(
    root: Path,
    spec: HeldOutShake,
    stream: int,
    prefix: str,
    limit: int | None = None,
    frames: int | None = None,
    size: tuple[int, int] | None = None,
) -> Iterator[tuple[str, torch.Tensor, torch.Tensor]]:
    """(``prefix/stem``, blurry, sharp) for the held-out content of ``root`` (the first ``limit``), each blurred
    by a fixed shake of :data:`EVAL_LENGTH` drawn from (:data:`EVAL_SEED`, ``stream``, index): video from its
    first window of frames none of which is already blurred, photos at full resolution, cut to
    ``size`` (default ``spec.max_size``). Frames [T,3,H,W] float32 sRGB in [0, 1], no degradations."""
    frames = frames or spec.frames
    paths = [p for p in find_content(root, spec.layout, "heldout") if spec.only in (None, *p.parts)]
    if not paths:
        raise PahsError(f"expected held-out {spec.only} content in {root}, found none; check the folder")
    for index, path in enumerate(paths[:limit]):
        rng = np.random.default_rng([EVAL_SEED, stream, index])
        if spec.layout == "video":
            video = read_video(path)
            start = video_window(video, frames, None)
            content = video.frames[start : start + frames]
        else:
            content = photo_content(path, rng, (16, 16), 1.0)  # full resolution
        cap = size or spec.max_size
        height = min(cap[0], content.shape[1]) // 16 * 16
        width = min(cap[1], content.shape[2]) // 16 * 16
        config = ShakeConfig(
            frames=frames, height=height, width=width, sub_frames=(EVAL_SUB_FRAMES,), typical_motion=EVAL_LENGTH,
            typical=1.0, objects=(0, 0), degradations=NO_DEGRADATIONS,
        )  # fmt: skip
        blurry, sharp = shake_clip(content, rng, config)
        yield f"{prefix}/{path.stem}", blurry, sharp


def content_sequences(
    root: str | Path, layout: str, max_frames: int | None = None
) -> Iterator[tuple[str, torch.Tensor, torch.Tensor]]:
    """Every held-out photo or video below ``root`` under the evaluation shake (``pahs-eval --layout
    photos|video``): 8 frames (or ``max_frames``), up to 256x480, named ``layout/stem``."""
    spec = HeldOutShake(".", layout, None, max_frames or 8, (256, 480))
    return heldout_shake_sequences(Path(root), spec, CONTENT_LAYOUTS.index(layout) + 10, layout)
