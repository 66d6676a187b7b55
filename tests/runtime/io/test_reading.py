"""Decoding (runtime/io/reading.py): what is read from videos and frame folders, in which orientation, and what
damaged or unusable input gives."""

from __future__ import annotations

import io

import av
import numpy as np
import pytest
from io_clips import copy, mae, make_clip, make_folder, raises_one_line, read_all, synthetic

from runtime.io import open_input, orient


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


# -- bad input ---------------------------------------------------------------------------------------------------------


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
