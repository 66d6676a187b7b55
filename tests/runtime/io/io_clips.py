"""Clips and frame folders made with PyAV for the runtime.io tests (small, a few frames; nothing is downloaded),
and the checks that test_reading.py, test_writing.py and test_threads.py share.

A plain module rather than conftest.py: test modules here import these helpers by name, and a second module named
"conftest" would shadow tests/runtime/conftest.py for the tests collected after this folder (test_pipeline.py
does ``from conftest import make_folder``, a different helper of the same name).
"""

from __future__ import annotations

import io
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from pahs_export.errors import PahsError
from runtime.io import OutputOptions, VideoInfo, open_input, open_output


def synthetic(n: int, width: int, height: int, deep: bool = False) -> list[np.ndarray]:
    """Moving squares over gradients: uint8 [H, W, 3], or uint16 with values off the 8-bit grid if ``deep``."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    frames = []
    for i in range(n):
        f = np.stack([x / max(1, width - 1), y / max(1, height - 1), 0.5 + 0.3 * np.sin((x + 3 * i) / 9)], axis=2)
        s = (4 * i) % max(1, width - 12)
        f[4:14, s : s + 10] = (1.0, 0.9, 0.1)
        frames.append(np.rint(f * 65535).astype(np.uint16) if deep else np.rint(f * 255).astype(np.uint8))
    return frames


# x265 without B-frames: with them, the decode timestamps of a clip of one or two frames are uninitialised (the
# runtime's own writer repairs them: encoding._VideoSink._check_dts).
_ENCODER_OPTIONS = {"libx264": {"crf": "12"}, "libx265": {"x265-params": "log-level=error:bframes=0"}}


def make_clip(
    path: Path | io.BytesIO,
    n: int = 6,
    width: int = 64,
    height: int = 48,
    fps: int = 24,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    audio: str | None = None,
    pts: list[int] | None = None,
    time_base: Fraction | None = None,
    rotation: int | None = None,
    hflip: bool = False,
    fmt: str | None = None,
    frames: list[np.ndarray] | None = None,
    colour: tuple[int, int, int] | None = None,
) -> list[np.ndarray]:
    """Encode a clip, optionally with timestamps, a display rotation (counter-clockwise: PyAV's convention),
    an audio track (a 440 Hz sine as long as the video), colour tags (matrix, primaries, transfer: FFmpeg ids);
    returns the RGB frames encoded."""
    frames = frames if frames is not None else synthetic(n, width, height, deep="10" in pix_fmt)
    with av.open(path if isinstance(path, io.BytesIO) else str(path), "w", format=fmt) as c:
        v = c.add_stream(codec, rate=fps, options=_ENCODER_OPTIONS.get(codec, {}))
        v.width, v.height, v.pix_fmt = width, height, pix_fmt
        if time_base is not None:
            v.time_base = v.codec_context.time_base = time_base
        if colour is not None:  # BT.601-family matrices only: PyAV's RGB -> YUV defaults to BT.601
            cc = v.codec_context
            cc.colorspace, cc.color_primaries, cc.color_trc = colour
        if rotation is not None or hflip:
            v.set_display_rotation(rotation or 0, hflip=hflip)
        a = c.add_stream(audio, rate=48000) if audio else None
        for i, img in enumerate(frames):
            f = av.VideoFrame.from_ndarray(img, format="rgb48le" if img.dtype == np.uint16 else "rgb24")
            if pts is not None:
                f.pts, f.time_base = pts[i], time_base
            c.mux(v.encode(f))
        c.mux(v.encode())
        if a is not None:
            size, total = a.codec_context.frame_size or 1024, 48000 * len(frames) // fps
            for start in range(0, total, size):
                t = (np.arange(size) + start) / 48000
                af = av.AudioFrame.from_ndarray(
                    (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None], format="flt", layout="mono"
                )
                af.sample_rate, af.pts = 48000, start
                c.mux(a.encode(af))
            c.mux(a.encode())
    return frames


def make_folder(path: Path, frames: list[np.ndarray], names: list[str] | None = None) -> Path:
    from PIL import Image

    path.mkdir(parents=True)
    for i, img in enumerate(frames):
        Image.fromarray(img).save(path / (names[i] if names else f"frame{i + 1}.png"))
    return path


def read_all(path) -> tuple[VideoInfo, list]:
    with open_input(path) as r:
        frames = list(r)
        return r.info, frames


def copy(src, dst, **options) -> None:
    with open_input(src) as r, open_output(dst, r.info, source=src, options=OutputOptions(**options)) as w:
        for f in r:
            w.write(f.image, f.pts, f.name)


class raises_one_line:  # lower case: used like pytest.raises
    """pytest.raises(PahsError, match=...) that also checks the message is one line."""

    def __init__(self, match: str) -> None:
        self.ctx = pytest.raises(PahsError, match=match)

    def __enter__(self):
        self.info = self.ctx.__enter__()
        return self.info

    def __exit__(self, *exc) -> bool:
        handled = self.ctx.__exit__(*exc)
        assert "\n" not in str(self.info.value)
        return handled


def mae(a: list, b: list) -> float:
    return float(np.mean([np.abs(x.image - y.image).mean() for x, y in zip(a, b, strict=True)]))
