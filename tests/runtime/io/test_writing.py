"""Encoding and publishing outputs (runtime/io/encoding.py, runtime/io/writing.py): what is kept, what is
refused, and that failures leave nothing behind."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest
from io_clips import copy, mae, make_clip, make_folder, raises_one_line, read_all, synthetic

import runtime.io.encoding as encoding
from runtime.io import OutputOptions, VideoInfo, open_output, output_is_folder


def audio_packets(path) -> list[tuple]:
    with av.open(str(path)) as c:
        s = c.streams.audio[0]
        return [(p.size, float(p.pts * p.time_base)) for p in c.demux(s) if p.dts is not None and p.size]


def audio_summary(path) -> tuple:
    with av.open(str(path)) as c:
        s = c.streams.audio[0]
        return s.codec_context.name, s.codec_context.sample_rate, round(float(s.duration * s.time_base), 3)


# -- round trips -------------------------------------------------------------------------------------------------------


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


def test_opus_audio_kept_in_mkv_left_out_of_mov(tmp_path):
    src = tmp_path / "opus.mkv"
    make_clip(src, n=6, audio="libopus")
    copy(src, tmp_path / "out.mkv")
    assert audio_packets(tmp_path / "out.mkv") == audio_packets(src)
    with pytest.warns(UserWarning, match=r"opus audio .* cannot be stored in mov.*write \.mkv"):
        copy(src, tmp_path / "out.mov")
    with av.open(str(tmp_path / "out.mov")) as c:
        assert not c.streams.audio and c.streams.video[0].frames == 6


# -- atomicity and refusals --------------------------------------------------------------------------------------------


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

    monkeypatch.setattr(encoding._VideoSink, "_audio_setup", broken)
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
    with raises_one_line(r"ending in \.mp4, \.mov, \.mkv, \.y4m or \.nut"):
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
