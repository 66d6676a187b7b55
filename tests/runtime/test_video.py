"""Video and frame-folder I/O: what is kept, what is refused, and that failures leave nothing behind.

Clips are made here with PyAV (small, a few frames); nothing is downloaded.
"""

from __future__ import annotations

import io
import os
import signal
import threading
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

import runtime.video as video
from pahs_export.errors import PahsError
from runtime.video import (
    BackgroundWriter,
    OutputOptions,
    Prefetcher,
    VideoInfo,
    install_termination_handler,
    open_input,
    open_output,
    orient,
    output_is_folder,
)


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
        v = c.add_stream(codec, rate=fps, options={"crf": "12"} if codec == "libx264" else {})
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


def audio_packets(path) -> list[tuple]:
    with av.open(str(path)) as c:
        s = c.streams.audio[0]
        return [(p.size, float(p.pts * p.time_base)) for p in c.demux(s) if p.dts is not None and p.size]


def audio_summary(path) -> tuple:
    with av.open(str(path)) as c:
        s = c.streams.audio[0]
        return s.codec_context.name, s.codec_context.sample_rate, round(float(s.duration * s.time_base), 3)


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


# -- round trips ----------------------------------------------------------------------------------------------


def test_mp4_with_audio_and_odd_size_round_trip(tmp_path):
    src = tmp_path / "in.mp4"
    make_clip(src, n=12, width=251, height=141, fps=24, pix_fmt="yuv444p", audio="aac")  # 4:2:0 needs even sizes
    info, frames = read_all(src)
    assert (info.width, info.height, info.frames, info.fps, info.has_audio) == (251, 141, 12, 24, True)
    assert (info.bit_depth, info.rotation, info.is_folder) == (8, 0, False)
    copy(src, tmp_path / "out.mp4", crf=10)
    out_info, out = read_all(tmp_path / "out.mp4")
    assert (out_info.width, out_info.height, out_info.frames, len(out), out_info.fps) == (251, 141, 12, 12, 24)
    assert out_info.time_base == info.time_base and [f.pts for f in out] == [f.pts for f in frames]
    assert out_info.pix_fmt == "yuv444p"  # odd size: 4:4:4 keeps it exact
    assert audio_packets(tmp_path / "out.mp4") == audio_packets(src)  # copied, not re-encoded
    assert audio_summary(tmp_path / "out.mp4") == audio_summary(src)
    assert mae(frames, out) < 3 / 255
    with av.open(str(tmp_path / "out.mp4")) as c:
        cc = c.streams.video[0].codec_context
        assert (cc.colorspace, cc.color_range) == (1, 1)  # tagged BT.709, limited range


def test_vfr_timestamps_survive_and_even_sizes_stay_420(tmp_path):
    src = tmp_path / "vfr.mkv"
    pts = [0, 40, 80, 150, 160, 300, 333]
    make_clip(src, n=7, pts=pts, time_base=Fraction(1, 1000))
    info, frames = read_all(src)
    assert [f.pts for f in frames] == pts and info.time_base == Fraction(1, 1000)
    for out_name in ("out.mp4", "out.mov", "out.mkv"):
        copy(src, tmp_path / out_name)
        out_info, out = read_all(tmp_path / out_name)
        assert out_info.time_base == Fraction(1, 1000) and [f.pts for f in out] == pts, out_name
        assert out_info.pix_fmt == "yuv420p" and mae(frames, out) < 4 / 255


def test_time_base_with_numerator_keeps_times(tmp_path):
    src = tmp_path / "ntsc.mp4"
    make_clip(src, n=4, pts=[0, 1, 2, 4], time_base=Fraction(1001, 30000), fps=30)
    info, frames = read_all(src)
    copy(src, tmp_path / "out.mp4")
    out_info, out = read_all(tmp_path / "out.mp4")
    assert [f.pts * out_info.time_base for f in out] == [f.pts * info.time_base for f in frames]


def test_raw_stream_without_timestamps_gets_them(tmp_path):
    src = tmp_path / "raw.h264"
    make_clip(src, n=4, fps=25, fmt="h264")
    info, frames = read_all(src)
    step = round(1 / (info.fps * info.time_base))
    assert [f.pts for f in frames] == [0, step, 2 * step, 3 * step]
    copy(src, tmp_path / "out.mp4")
    assert len(read_all(tmp_path / "out.mp4")[1]) == 4


def test_png_folder_in_and_out_keeps_names_and_values(tmp_path):
    src = make_folder(tmp_path / "seq", synthetic(11, 48, 32))
    (src / "._frame1.png").write_bytes(b"macOS metadata")  # hidden: ignored
    (src / "notes.txt").write_text("not a frame")
    info, frames = read_all(src)
    assert (info.is_folder, info.frames, info.fps, info.time_base, info.pix_fmt) == (True, 11, None, None, "rgb24")
    assert [f.name for f in frames][:3] == ["frame1.png", "frame2.png", "frame3.png"]
    assert frames[9].name == "frame10.png" and frames[0].pts is None  # natural order
    copy(src, str(tmp_path / "out") + "/")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(f"frame{i}.png" for i in range(1, 12))
    _, back = read_all(tmp_path / "out")
    assert all(np.array_equal(a.image, b.image) for a, b in zip(frames, back, strict=True))  # PNG is lossless


def test_jpg_folder_names_become_png(tmp_path):
    src = make_folder(tmp_path / "jpg", synthetic(2, 48, 32), names=["a.jpg", "b.jpeg"])
    copy(src, str(tmp_path / "out") + "/")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "b.png"]


def test_video_to_png_folder(tmp_path):
    src = tmp_path / "in.mp4"
    make_clip(src, n=5)
    _, frames = read_all(src)
    copy(src, str(tmp_path / "frames") + "/")
    assert sorted(p.name for p in (tmp_path / "frames").iterdir()) == [f"{i:06d}.png" for i in range(5)]
    _, back = read_all(tmp_path / "frames")
    assert mae(frames, back) < 0.5 / 255  # only 8-bit rounding


def test_folder_to_mp4_uses_25_fps_or_the_option(tmp_path):
    src = make_folder(tmp_path / "seq", synthetic(3, 51, 33))  # odd size too
    copy(src, tmp_path / "a.mp4")
    info, frames = read_all(tmp_path / "a.mp4")
    assert (info.width, info.height, len(frames), info.fps) == (51, 33, 3, 25)
    copy(src, tmp_path / "b.mp4", fps=Fraction(30000, 1001))
    assert read_all(tmp_path / "b.mp4")[0].fps == Fraction(30000, 1001)


def test_ten_bit_input_keeps_precision(tmp_path):
    src = tmp_path / "ten.mkv"
    make_clip(src, n=2, width=64, height=32, codec="libx265", pix_fmt="yuv420p10le")
    info, frames = read_all(src)
    assert (info.bit_depth, info.pix_fmt) == (10, "yuv420p10le")
    values = np.unique(frames[0].image)
    assert (np.abs(values * 255 - np.round(values * 255)) > 1e-3).mean() > 0.5  # not quantised to 8 bits
    copy(src, str(tmp_path / "deep") + "/")  # deep sources give 16-bit PNGs
    with av.open(str(tmp_path / "deep" / "000000.png")) as c:
        assert next(c.decode(video=0)).format.name.startswith("rgb48")
    _, png = read_all(tmp_path / "deep")
    assert mae(frames, png) < 1e-5
    copy(src, tmp_path / "deep.mkv", lossless=True)  # FFV1 16-bit: exact
    out_info, back = read_all(tmp_path / "deep.mkv")
    assert out_info.bit_depth == 16 and all(np.array_equal(a.image, b.image) for a, b in zip(png, back, strict=True))


def test_sixteen_bit_png_folder_round_trip(tmp_path):
    (tmp_path / "deep").mkdir()
    png = av.CodecContext.create("png", "w")
    png.width, png.height, png.pix_fmt = 40, 24, "rgb48be"
    for i, img in enumerate(synthetic(2, 40, 24, deep=True)):
        packets = png.encode(av.VideoFrame.from_ndarray(img, format="rgb48le"))
        (tmp_path / "deep" / f"{i}.png").write_bytes(b"".join(bytes(p) for p in packets))
    info, frames = read_all(tmp_path / "deep")
    assert (info.bit_depth, info.pix_fmt) == (16, "rgb48")
    assert np.array_equal(np.rint(frames[1].image * 65535), synthetic(2, 40, 24, deep=True)[1])
    copy(tmp_path / "deep", str(tmp_path / "out") + "/")
    _, back = read_all(tmp_path / "out")
    assert all(np.array_equal(a.image, b.image) for a, b in zip(frames, back, strict=True))


def test_colour_tags_are_kept(tmp_path):
    src = tmp_path / "pal.mp4"
    make_clip(src, n=2, colour=(5, 5, 6))  # BT.470BG matrix and primaries, SMPTE 170M transfer
    _, frames = read_all(src)
    copy(src, tmp_path / "out.mp4")
    with av.open(str(tmp_path / "out.mp4")) as c:
        cc = c.streams.video[0].codec_context
        assert (cc.colorspace, cc.color_primaries, cc.color_trc, cc.color_range) == (5, 5, 6, 1)
    assert mae(frames, read_all(tmp_path / "out.mp4")[1]) < 3 / 255


def test_lossless_is_bit_exact(tmp_path):
    src = make_folder(tmp_path / "seq", synthetic(3, 51, 33))
    _, a = read_all(src)
    for name, pix_fmt in (("lossless.mp4", "gbrp"), ("lossless.mkv", "bgr0")):
        copy(src, tmp_path / name, lossless=True)
        info, b = read_all(tmp_path / name)
        assert info.pix_fmt == pix_fmt and (info.width, info.height) == (51, 33)
        assert all(np.array_equal(x.image, y.image) for x, y in zip(a, b, strict=True)), name


def test_lossless_mp4_of_deep_source_warns(tmp_path):
    src = tmp_path / "ten.mkv"
    make_clip(src, n=1, width=32, height=32, codec="libx265", pix_fmt="yuv420p10le")
    with pytest.warns(UserWarning, match="rounded to 8 bits"):
        copy(src, tmp_path / "out.mp4", lossless=True)


@pytest.mark.parametrize(
    ("ccw", "hflip", "cw", "corner"),
    [(-90, False, 90, (0, -1)), (90, False, 270, (-1, 0)), (180, False, 180, (-1, -1)), (0, True, 0, (0, -1))],
)
def test_rotation_metadata_is_honoured(tmp_path, ccw, hflip, cw, corner):
    """A yellow square at the coded top-left shows where players put it: (row, col) ``corner``."""
    img = np.zeros((32, 64, 3), np.uint8)
    img[:8, :8] = (255, 255, 0)
    src = tmp_path / "rot.mp4"
    make_clip(src, width=64, height=32, rotation=ccw, hflip=hflip, frames=[img, img])
    info, frames = read_all(src)
    assert info.rotation == cw
    assert (info.width, info.height) == ((32, 64) if cw in (90, 270) else (64, 32))
    image = frames[0].image
    r, c = corner
    assert image[r, c, 0] > 0.8 and image[-1 - r, -1 - c, 0] < 0.2
    copy(src, tmp_path / "out.mp4")  # written upright, without a display matrix
    out_info, out = read_all(tmp_path / "out.mp4")
    assert (out_info.rotation, out_info.width, out_info.height) == (0, info.width, info.height)
    assert mae(frames, out) < 3 / 255


def test_jpeg_exif_orientation_is_honoured(tmp_path):
    from PIL import Image

    img = np.zeros((32, 64, 3), np.uint8)
    img[:8, :8] = 255
    (tmp_path / "seq").mkdir()
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 clockwise to display"
    Image.fromarray(img).save(tmp_path / "seq" / "a.jpg", exif=exif.tobytes(), quality=95)
    info, frames = read_all(tmp_path / "seq")
    assert (info.rotation, info.width, info.height) == (90, 32, 64)
    assert frames[0].image[0, -1, 0] > 0.8 and frames[0].image[-1, 0, 0] < 0.2


def test_orient_on_arrays():
    a = np.arange(6).reshape(2, 3)
    assert orient(a, 0) is a
    assert np.array_equal(orient(a, 90), [[3, 0], [4, 1], [5, 2]])  # clockwise
    assert np.array_equal(orient(a, 270), np.rot90(a))
    assert np.array_equal(orient(a, 180, mirrored=True), a[::-1])


def test_opus_audio_kept_in_mkv_left_out_of_mov(tmp_path):
    src = tmp_path / "opus.mkv"
    make_clip(src, n=6, audio="libopus")
    copy(src, tmp_path / "out.mkv")
    assert audio_packets(tmp_path / "out.mkv") == audio_packets(src)
    with pytest.warns(UserWarning, match=r"opus audio .* cannot be stored in mov.*write \.mkv"):
        copy(src, tmp_path / "out.mov")
    with av.open(str(tmp_path / "out.mov")) as c:
        assert not c.streams.audio and c.streams.video[0].frames == 6


# -- atomicity and refusals -----------------------------------------------------------------------------------


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_exception_leaves_nothing_behind(tmp_path, error):
    src = tmp_path / "in.mp4"
    make_clip(src, n=3, audio="aac")
    info, frames = read_all(src)
    targets = (str(tmp_path / "out.mp4"), str(tmp_path / "out") + "/", str(tmp_path / "new" / "deeper" / "o.mkv"))
    for target in targets:
        with pytest.raises(error), open_output(target, info, source=src) as w:
            w.write(frames[0].image, frames[0].pts)
            raise error("boom")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]  # created parent folders removed too


def test_writer_that_cannot_start_leaves_nothing(tmp_path, monkeypatch):
    info = VideoInfo(64, 32, 1, None, None, 0, 8, None, True, False)

    def broken(*args):
        raise av.error.ExternalError(1, "encoder failed")

    monkeypatch.setattr(video._VideoSink, "_audio_setup", broken)
    with pytest.raises(av.error.FFmpegError):
        open_output(tmp_path / "new" / "out.mp4", info)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    junk = tmp_path / "src.mp4"
    junk.write_text("not a video")  # a source that cannot be reopened: no audio, with a warning
    with pytest.warns(UserWarning, match="could not open .*src.mp4 again"):
        with open_output(tmp_path / "out.mp4", info, source=junk) as w:
            w.write(np.zeros((32, 64, 3), np.float32))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4", "src.mp4"]


def test_failed_overwrite_keeps_the_old_output(tmp_path):
    src = tmp_path / "in.mp4"
    make_clip(src, n=2)
    info, _ = read_all(src)
    (tmp_path / "out.mp4").write_bytes(b"old")
    with pytest.raises(RuntimeError), open_output(tmp_path / "out.mp4", info, options=OutputOptions(overwrite=True)):
        raise RuntimeError("boom")
    assert (tmp_path / "out.mp4").read_bytes() == b"old" and len(list(tmp_path.iterdir())) == 2
    copy(src, tmp_path / "out.mp4", overwrite=True)
    assert len(read_all(tmp_path / "out.mp4")[1]) == 2
    (tmp_path / "frames").mkdir()
    (tmp_path / "frames" / "old.png").write_bytes(b"x")
    copy(src, str(tmp_path / "frames") + "/", overwrite=True)
    assert sorted(p.name for p in (tmp_path / "frames").iterdir()) == ["000000.png", "000001.png"]
    assert len(list(tmp_path.iterdir())) == 3  # no temporary names left


def test_refusals(tmp_path):
    src = tmp_path / "in.mp4"
    make_clip(src, n=2)
    info, _ = read_all(src)
    with raises_one_line("different from the input"):
        open_output(tmp_path / "." / "in.mp4", info, source=src, options=OutputOptions(overwrite=True))
    (tmp_path / "exists.mp4").write_bytes(b"x")
    with raises_one_line("exists.mp4 already there; pass --overwrite"):
        open_output(tmp_path / "exists.mp4", info, source=src)
    with raises_one_line(r"ending in \.mp4, \.mov or \.mkv"):
        open_output(tmp_path / "out.gif", info, source=src)
    with raises_one_line("not writable"):
        open_output(tmp_path / "exists.mp4" / "out.mp4", info)  # its "folder" is a file
    with raises_one_line("expected a folder for PNG frames"):
        open_output(str(tmp_path / "exists.mp4") + "/", info)
    (tmp_path / "mixed").mkdir()
    (tmp_path / "mixed" / "thesis.tex").write_text("precious")
    with raises_one_line("holding only image frames"):
        open_output(tmp_path / "mixed", info, options=OutputOptions(overwrite=True))
    with raises_one_line("crf from 0 to 51"):
        open_output(tmp_path / "c.mp4", info, options=OutputOptions(crf=60))
    with raises_one_line("x264 preset"):
        open_output(tmp_path / "c.mp4", info, options=OutputOptions(preset="quick"))
    assert output_is_folder("x/") and output_is_folder(tmp_path) and not output_is_folder("x.mp4")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exists.mp4", "in.mp4", "mixed"]


# -- bad input ------------------------------------------------------------------------------------------------


def test_bad_inputs(tmp_path):
    with raises_one_line("found nothing at"):
        open_input(tmp_path / "missing.mp4")
    (tmp_path / "text.mp4").write_text("not a video at all")
    with raises_one_line("expected a video FFmpeg can read, found .*text.mp4 that it cannot open"):
        open_input(tmp_path / "text.mp4")
    (tmp_path / "empty").mkdir()
    with raises_one_line("expected image frames"):
        open_input(tmp_path / "empty")
    audio_only = tmp_path / "audio.m4a"
    with av.open(str(audio_only), "w") as c:
        s = c.add_stream("aac", rate=48000)
        af = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        af.sample_rate = 48000
        c.mux(s.encode(af) + s.encode())
    with raises_one_line("expected a video stream in .*found audio streams only"):
        open_input(audio_only)


def test_size_change_in_folder_and_unreadable_image(tmp_path):
    sizes = make_folder(tmp_path / "sizes", synthetic(2, 48, 32) + synthetic(1, 64, 32))
    with raises_one_line(r"like frame 0, found frame 2 \(frame3.png\) of 64x32"):
        read_all(sizes)
    (sizes / "frame3.png").write_bytes(b"garbage")
    with raises_one_line("could not read .*frame3.png"):
        read_all(sizes)


def test_size_change_mid_stream(tmp_path):
    parts = []
    for w in (64, 48):
        buf = io.BytesIO()
        make_clip(buf, n=2, width=w, height=32, fmt="h264")
        parts.append(buf.getvalue())
    (tmp_path / "two.h264").write_bytes(b"".join(parts))
    with raises_one_line("expected every frame to be 64x32 like frame 0, found frame 2 of 48x32"):
        read_all(tmp_path / "two.h264")


def test_truncated_stream_restores_what_decodes(tmp_path):
    """Decision: a damaged tail costs only the damaged frames; the rest is restored, with a warning."""
    src = tmp_path / "in.mp4"
    make_clip(src, n=40)  # PyAV's mp4 muxer writes the index (moov) last
    data = src.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with raises_one_line("cannot open"):  # no index: nothing to restore
        open_input(cut)
    faststart = tmp_path / "fast.mp4"
    copy(src, faststart)  # our writer puts the index first
    data = faststart.read_bytes()
    cut.write_bytes(data[: len(data) * 2 // 3])
    with open_input(cut) as r, pytest.warns(UserWarning, match="lists 40 frames but .* decode; restored the"):
        frames = list(r)
    assert 0 < len(frames) < 40 and r.warnings and r.info.frames == len(frames)
    mkv = tmp_path / "in.mkv"  # no frame count: the listed duration tells
    make_clip(mkv, n=48, fps=8)
    data = mkv.read_bytes()
    cut.write_bytes(data[: len(data) // 3])
    with open_input(cut) as r, pytest.warns(UserWarning, match=r"ended .* s into the 6.00 s the container lists"):
        assert 0 < len(list(r)) < 48


def test_damaged_packets_are_skipped(tmp_path):
    src = tmp_path / "in.mp4"
    make_clip(src, n=40)
    data = bytearray(src.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 1500] = np.random.default_rng(1).integers(0, 256, 1500, dtype=np.uint8).tobytes()
    (tmp_path / "bad.mp4").write_bytes(bytes(data))
    with open_input(tmp_path / "bad.mp4") as r, pytest.warns(UserWarning, match=r"damage.*restored the \d+ frames"):
        frames = list(r)
    assert len(frames) > 10 and r.info.frames == len(frames)


# -- threads and signals --------------------------------------------------------------------------------------


def test_prefetcher_keeps_order_and_raises():
    assert list(Prefetcher(range(50), maxsize=3)) == list(range(50))

    def failing():
        yield 1
        raise ValueError("decoder broke")

    got = []
    with pytest.raises(ValueError, match="decoder broke"):
        for x in Prefetcher(failing()):
            got.append(x)
    assert got == [1]
    closed = threading.Event()

    def endless():
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            closed.set()

    p = Prefetcher(endless(), maxsize=2)
    for x in p:
        if x == 5:
            break
    assert closed.is_set() and not p._thread.is_alive()  # stopped, joined, source closed


def test_prefetched_reader_closes_cleanly(tmp_path):
    src = tmp_path / "in.mp4"
    make_clip(src, n=8)
    with open_input(src) as r:
        frames = list(Prefetcher(r, maxsize=2))
    assert [f.index for f in frames] == list(range(8))
    with open_input(src) as r:
        p = Prefetcher(r, maxsize=1)
        next(iter(p))
    p.close()  # the reader was closed under the thread: decoding just stops


def test_background_writer(tmp_path):
    src = tmp_path / "in.mp4"
    make_clip(src, n=4)
    info, frames = read_all(src)
    with BackgroundWriter(open_output(tmp_path / "bg.mp4", info, source=src), maxsize=2) as bw:
        for f in frames:
            bw.write(f.image, f.pts)
    _, back = read_all(tmp_path / "bg.mp4")
    assert [f.pts for f in back] == [f.pts for f in frames] and mae(frames, back) < 3 / 255
    bad = BackgroundWriter(open_output(tmp_path / "bad.mp4", info, source=src), maxsize=2)
    bad.write(np.zeros((3, 3, 3), np.float32))  # the wrong size: the encoding thread fails
    with pytest.raises(ValueError, match=r"expected a \[48, 64, 3\] image"):
        for f in frames * 5:
            bad.write(f.image)
        bad.close()
    bad.abort()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bg.mp4", "in.mp4"]
    with pytest.raises(KeyboardInterrupt), BackgroundWriter(open_output(tmp_path / "int.mp4", info)) as bw:
        bw.write(frames[0].image)
        raise KeyboardInterrupt
    assert not (tmp_path / "int.mp4").exists()


def test_sigterm_aborts_the_output(tmp_path, monkeypatch):
    previous = signal.getsignal(signal.SIGTERM)
    monkeypatch.setattr(video, "_handler_installed", False)
    try:
        install_termination_handler()
        install_termination_handler()  # idempotent
        info = VideoInfo(32, 32, None, None, None, 0, 8, None, False, False)
        with pytest.raises(KeyboardInterrupt), open_output(tmp_path / "o.mp4", info) as w:
            w.write(np.zeros((32, 32, 3), np.float32))
            os.kill(os.getpid(), signal.SIGTERM)
            threading.Event().wait(5)  # the handler raises here
        assert list(tmp_path.iterdir()) == []
    finally:
        signal.signal(signal.SIGTERM, previous)
