"""Output formats and control (runtime/io/encoding.py, runtime/io/writing.py): streams on standard output (y4m,
nut, matroska, rawvideo), codecs, pixel formats (10-bit included), the fps override, and the checks that refuse
a combination before anything is written."""

from __future__ import annotations

import io
import itertools
import subprocess
import sys
import textwrap
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from io_clips import copy, mae, make_clip, raises_one_line, read_all, synthetic

from pahs_export.errors import PahsError
from runtime.io import (
    OUTPUT_FORMATS,
    OutputOptions,
    VideoInfo,
    available_codecs,
    check_output,
    open_output,
    pixel_formats,
)

REPO = Path(__file__).resolve().parents[3]
INFO = VideoInfo(64, 48, 4, Fraction(24), Fraction(1, 24), 0, 8, "yuv420p", False, False)  # 8-bit, no source file


def floats(frames: list[np.ndarray]) -> list[np.ndarray]:
    scale = 65535.0 if frames[0].dtype == np.uint16 else 255.0
    return [(f / scale).astype(np.float32) for f in frames]


def to_pipe(info: VideoInfo, images: list[np.ndarray], source=None, **options) -> tuple[bytes, str]:
    """What open_output("-") writes for ``images``, and its describe() line."""
    buf = io.BytesIO()
    with open_output("-", info, source=source, options=OutputOptions(**options), stream=buf) as w:
        for i, img in enumerate(images):
            w.write(img, i)
        line = w.describe()
    return buf.getvalue(), line


def decode(data: bytes) -> tuple[av.video.stream.VideoStream, list[av.VideoFrame], int]:
    """The video stream, its decoded frames and the number of audio streams of a stream in memory."""
    c = av.open(io.BytesIO(data))
    stream = c.streams.video[0]
    frames = list(c.decode(stream))
    audio = len(c.streams.audio)
    c.close()
    return stream, frames, audio


def rgb(frames: list[av.VideoFrame]) -> list[np.ndarray]:
    """Decoded frames as float RGB, untagged YUV read as FFmpeg reads it (BT.601)."""
    return [f.to_ndarray(format="rgb24").astype(np.float32) / 255 for f in frames]


def close(a: list[np.ndarray], b: list[np.ndarray], tolerance: float = 3 / 255) -> bool:
    """Mean absolute difference within ``tolerance``: YUV rounding and 4:2:0 colour at the squares' edges."""
    return float(np.mean([np.abs(x - y).mean() for x, y in zip(a, b, strict=True)])) < tolerance


# -- standard output ---------------------------------------------------------------------------------------------------


def test_y4m_to_a_file_object_round_trip():
    frames = synthetic(4, 64, 48)
    data, line = to_pipe(INFO, floats(frames))
    assert data.startswith(b"YUV4MPEG2 W64 H48 F24:1 ") and b" C420" in data.split(b"\n")[0]
    assert b"XCOLORRANGE=LIMITED" in data.split(b"\n")[0]
    assert line == "y4m, rawvideo yuv420p 64x48 at 24 fps, to standard output"
    _, out, _ = decode(data)
    assert len(out) == 4 and out[0].format.name == "yuv420p"
    assert close(floats(frames), rgb(out))


def test_y4m_through_a_real_standard_output():
    code = textwrap.dedent(
        """
        import numpy as np
        from fractions import Fraction
        from runtime.io import VideoInfo, open_output
        info = VideoInfo(64, 48, 5, Fraction(25), Fraction(1, 25), 0, 8, "yuv420p", False, False)
        with open_output("-", info) as w:
            for i in range(5):
                w.write(np.full((48, 64, 3), i / 8, np.float32), i)
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60, cwd=REPO, check=True)
    assert result.stdout.startswith(b"YUV4MPEG2 W64 H48 F25:1 ")  # nothing else on standard output
    _, out, _ = decode(result.stdout)
    assert [round(float(f.mean()) * 8) for f in rgb(out)] == [0, 1, 2, 3, 4]


def test_rawvideo_is_bare_frames():
    frames = synthetic(3, 64, 48)
    data, line = to_pipe(INFO, floats(frames), format="rawvideo")
    assert line == "rawvideo, rawvideo rgb24 64x48 at 24 fps, to standard output"
    assert data == b"".join(f.tobytes() for f in frames)  # exact, 3 * 64 * 48 * 3 bytes
    deep = synthetic(2, 64, 48, deep=True)
    data, line = to_pipe(replace(INFO, bit_depth=10), floats(deep), format="rawvideo")
    assert "rgb48le" in line and data == b"".join(f.astype("<u2").tobytes() for f in deep)


def test_nut_rawvideo_and_matroska_libx264_streams(tmp_path):
    frames = synthetic(4, 64, 48)
    data, line = to_pipe(INFO, floats(frames), format="nut")
    assert data.startswith(b"nut/multimedia container") and line.startswith("nut, rawvideo yuv420p 64x48")
    stream, out, _ = decode(data)
    assert stream.codec_context.name == "rawvideo" and len(out) == 4 and close(floats(frames), rgb(out))
    src = tmp_path / "in.mp4"
    make_clip(src, n=4, audio="aac")
    info, source_frames = read_all(src)
    data, line = to_pipe(info, [f.image for f in source_frames], source=src, format="matroska")
    assert line.startswith("matroska, libx264 yuv420p 64x48 at 24 fps") and line.endswith("1 audio stream copied")
    stream, out, audio = decode(data)
    assert stream.codec_context.name == "h264" and len(out) == 4 and audio == 1  # the source's audio, copied
    assert stream.codec_context.colorspace == 1  # Matroska and H.264 carry the BT.709 tag


def test_stream_without_audio_warns_once(tmp_path):
    src = tmp_path / "in.mp4"
    make_clip(src, n=2, audio="aac")
    info, frames = read_all(src)
    with pytest.warns(UserWarning, match="y4m carries no audio") as record:
        to_pipe(info, [f.image for f in frames], source=src)
    assert len(record) == 1
    piped = replace(info, is_stream=True)  # standard input: read once, so neither audio nor tags can be had again
    with pytest.warns(UserWarning, match="standard input was read once .* no copy of its audio"):
        data, _ = to_pipe(piped, [f.image for f in frames], source="-", format="matroska")
    assert decode(data)[2] == 0


def test_url_source_is_opened_again_as_a_url(tmp_path):
    src = tmp_path / "in.mkv"
    make_clip(src, n=3, audio="aac")
    info, frames = read_all(src)
    data, _ = to_pipe(info, [f.image for f in frames], source=src.as_uri(), format="matroska")  # file:///...
    assert decode(data)[2] == 1


def test_closed_pipe_is_one_line_and_nothing_more_is_written():
    class Closing(io.RawIOBase):
        def __init__(self):
            self.calls = 0

        def writable(self):
            return True

        def write(self, data):
            self.calls += 1
            if self.calls > 2:
                raise BrokenPipeError(32, "Broken pipe")
            return len(data)

    reader = Closing()
    w = open_output("-", INFO, stream=reader)
    with raises_one_line(r"the reader of standard output closed the pipe after \d+ frames"):
        for i in range(200):
            w.write(np.zeros((48, 64, 3), np.float32), i)
    calls = reader.calls
    with raises_one_line("closed the pipe"):
        w.write(np.zeros((48, 64, 3), np.float32))
    w.abort()
    assert reader.calls == calls  # nothing written after the pipe closed


def test_reader_that_closes_early_gets_one_line():
    code = textwrap.dedent(
        """
        import sys
        import numpy as np
        from fractions import Fraction
        from pahs_export.errors import PahsError
        from runtime.io import VideoInfo, open_output
        info = VideoInfo(64, 48, None, Fraction(25), Fraction(1, 25), 0, 8, "yuv420p", False, False)
        try:
            with open_output("-", info) as w:
                for i in range(2000):
                    w.write(np.zeros((48, 64, 3), np.float32), i)
        except PahsError as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(1)
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO
    )  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.read(100).startswith(b"YUV4MPEG2")
    proc.stdout.close()
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 1
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "the reader of standard output closed the pipe after" in lines[0], stderr


def test_terminal_is_refused():
    class Terminal(io.BytesIO):
        def isatty(self):
            return True

    with raises_one_line("found a terminal; pipe it"):
        check_output("-", stream=Terminal())


# -- files: suffixes, codecs, pixel formats, rate ---------------------------------------------------------------------


def test_y4m_and_nut_suffixes(tmp_path):
    src = tmp_path / "in.mkv"
    make_clip(src, n=3)
    _, frames = read_all(src)
    for name in ("out.y4m", "out.nut"):
        copy(src, tmp_path / name)
        info, out = read_all(tmp_path / name)
        assert (info.width, info.height, len(out)) == (64, 48, 3) and mae(frames, out) < 3 / 255, name
    assert (tmp_path / "out.y4m").read_bytes().startswith(b"YUV4MPEG2 W64 H48 F24:1 ")
    copy(src, tmp_path / "out.yuv", format="y4m")  # the format overrides the suffix
    assert (tmp_path / "out.yuv").read_bytes().startswith(b"YUV4MPEG2")


def test_libx265_and_ffv1_in_mkv(tmp_path):
    src = tmp_path / "in.mp4"
    make_clip(src, n=3)
    _, frames = read_all(src)
    for codec, name, pix_fmt in (("libx265", "hevc", "yuv420p"), ("ffv1", "ffv1", "bgr0")):
        copy(src, tmp_path / f"{codec}.mkv", codec=codec, crf=12, preset="ultrafast")
        with av.open(str(tmp_path / f"{codec}.mkv")) as c:
            assert c.streams.video[0].codec_context.name == name
        info, out = read_all(tmp_path / f"{codec}.mkv")
        assert info.pix_fmt == pix_fmt and len(out) == 3 and mae(frames, out) < 3 / 255, codec
    assert all(
        np.array_equal(a.image, b.image) for a, b in zip(frames, read_all(tmp_path / "ffv1.mkv")[1], strict=True)
    )


def test_10_bit_output_keeps_more_than_8_bits(tmp_path):
    y, x = np.mgrid[0:48, 0:64].astype(np.float32)
    smooth = np.stack([0.3 + x / 400, 0.4 + y / 300, 0.5 + (x + y) / 1000], axis=2)  # steps finer than 8 bits
    deep = replace(INFO, bit_depth=16, frames=2)
    error = {}
    for codec, pix_fmt in (("libx264", "yuv420p10le"), ("libx265", "yuv420p10le"), ("libx264", "yuv420p")):
        out = tmp_path / f"{codec}-{pix_fmt}.mkv"
        with open_output(out, deep, options=OutputOptions(codec=codec, pix_fmt=pix_fmt, crf=0)) as w:
            w.write(smooth, 0)
            w.write(smooth, 1)
        with av.open(str(out)) as c:
            first = next(c.decode(video=0))
        assert first.format.name == pix_fmt
        if pix_fmt == "yuv420p10le":  # values off the 8-bit grid: not 8 bits shifted up
            assert np.mean(first.to_ndarray()[:48] % 4 != 0) > 0.5, codec
        error[codec, pix_fmt] = float(np.abs(read_all(out)[1][0].image - smooth).mean())
    eight = error["libx264", "yuv420p"]
    assert error["libx264", "yuv420p10le"] < eight / 2 and error["libx265", "yuv420p10le"] < eight / 2
    data, line = to_pipe(replace(deep, bit_depth=10), [smooth])  # y4m: the source's 10 bits by default
    assert b" C420p10 " in data.split(b"\n")[0] and "yuv420p10le" in line
    eight_bit = tmp_path / "eight.mkv"
    make_clip(eight_bit, n=2)
    copy(eight_bit, tmp_path / "ten.mkv", codec="libx265", pix_fmt="yuv420p10le")  # 10-bit from 8 bits too
    with av.open(str(tmp_path / "ten.mkv")) as c:
        assert c.streams.video[0].codec_context.pix_fmt == "yuv420p10le"


@pytest.mark.parametrize(
    ("source", "suffix", "expected"),
    [
        (("libx265", "yuv420p10le"), ".mp4", "yuv420p10le"),  # 10-bit HEVC: was 8-bit yuv420p
        (("libx265", "yuv420p10le"), ".mkv", "yuv420p10le"),
        (("libx264", "yuv422p10le"), ".mp4", "yuv422p10le"),
        (("libx264", "yuv444p"), ".mkv", "yuv444p"),
        (("libx264", "yuv420p"), ".mp4", "yuv420p"),
        (("libx265", "yuv420p10le"), ".y4m", "yuv420p10le"),
    ],
)
def test_outputs_keep_the_sources_depth_and_chroma_by_default(tmp_path, source, suffix, expected):
    """The default codec (libx264; raw frames in y4m) stays, at the source's depth and chroma, silently."""
    import warnings

    codec, pix_fmt = source
    if codec not in av.codecs_available:
        pytest.skip(f"this FFmpeg has no {codec}")
    make_clip(tmp_path / "src.mkv", n=2, codec=codec, pix_fmt=pix_fmt)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing is lost, so nothing is said
        copy(tmp_path / "src.mkv", tmp_path / f"out{suffix}")
    with av.open(str(tmp_path / f"out{suffix}")) as c:
        context = c.streams.video[0].codec_context
        assert context.pix_fmt == expected
        assert context.name == ("rawvideo" if suffix == ".y4m" else "h264")


def test_what_the_codec_cannot_keep_is_said_with_what_keeps_it(tmp_path):
    """12 bits: libx264 (the default) writes 10 and says so, naming the codec that keeps 12."""
    if "libx265" not in av.codecs_available:
        pytest.skip("this FFmpeg has no libx265")
    make_clip(tmp_path / "src.mkv", n=2, codec="libx265", pix_fmt="yuv420p12le")
    with pytest.warns(UserWarning) as said:
        copy(tmp_path / "src.mkv", tmp_path / "out.mp4")
    (note,) = [str(w.message) for w in said]
    assert note == (
        "libx264 writes the source's yuv420p12le as yuv420p10le (12 to 10 bits); --codec libx265 --pix-fmt "
        "yuv420p12le keeps it"
    )
    with av.open(str(tmp_path / "out.mp4")) as c:
        assert c.streams.video[0].codec_context.pix_fmt == "yuv420p10le"


def test_a_default_codec_without_deep_formats_gives_way(monkeypatch):
    """An x264 built for 8 bits only: a 10-bit source goes to the first codec that keeps its depth."""
    from runtime.io import encoding

    if "libx265" not in av.codecs_available:
        pytest.skip("this FFmpeg has no libx265")
    real = encoding.pixel_formats

    def eight_bit_x264(codec: str, container: str | None = None) -> tuple[str, ...]:
        return tuple(p for p in real(codec, container) if codec != "libx264" or encoding._depth(p) == 8)

    monkeypatch.setattr(encoding, "pixel_formats", eight_bit_x264)
    encoding._source_yuv.cache_clear()
    try:
        ten = replace(INFO, bit_depth=10, pix_fmt="yuv420p10le")
        plan = encoding.plan_output("mp4", ten, OutputOptions(), "out.mp4")
        assert (plan.codec, plan.pix_fmt) == ("libx265", "yuv420p10le")
        assert encoding.plan_output("mp4", INFO, OutputOptions(), "out.mp4").codec == "libx264"  # 8 bits: stays
    finally:
        encoding._source_yuv.cache_clear()


def test_hevc_in_mp4_is_tagged_hvc1_with_valid_decode_timestamps(tmp_path):
    # x265 leaves the dts of clips of one or two frames uninitialised (garbage after an in-process ONNX export,
    # as in this test session): above the pts the muxer refused them, below it they were written as they were.
    for n in (1, 2, 2, 2, 2, 3, 12):
        src, out = tmp_path / f"in{n}.mkv", tmp_path / "out.mp4"
        make_clip(src, n=n)
        copy(src, out, codec="libx265")
        with av.open(str(out)) as c:
            v = c.streams.video[0]
            assert v.codec_context.codec_tag == "hvc1"
            packets = [p for p in c.demux(v) if p.size]
        dts = [p.dts for p in packets]
        assert len(packets) == n and dts == sorted(set(dts)), dts
        assert all(p.pts - 8 * 42 <= p.dts <= p.pts for p in packets), [(p.pts, p.dts) for p in packets]
        assert len(read_all(out)[1]) == n
        out.unlink()


@pytest.mark.parametrize(
    "packets, expected",
    [
        # a short clip: garbage above the pts, far above, far below; each becomes the smallest valid dts
        (
            [(0, 4815192958156761522), (42, 4815192958156761564), (84, -8029125883340813668), (126, 84)],
            [-168, -126, -84, 84],
        ),
        ([(0, -1024)], [-168]),  # below the pts, but further than any encoder delays decoding (seen in CI)
        # B-frames after a garbage first dts: the P-frame (pts 125) keeps its dts 4 frames below its pts, and
        # the B-frames after it still fit below theirs (a dts set to the pts would have left them none)
        ([(0, 9**18), (125, -41), (83, 0), (42, 42), (292, 83), (208, 125)], [-168, -41, 0, 42, 83, 125]),
    ],
)
def test_garbage_decode_timestamps_are_replaced(tmp_path, packets, expected):
    w = open_output(tmp_path / "a.mkv", replace(INFO, time_base=Fraction(1, 1000)))  # 24 fps: a frame is 42 ticks
    w._sink._fed.extend(sorted(pts for pts, _ in packets))  # the frames fed, in presentation order
    fixed = []
    for pts, dts in packets:  # the repair itself, without waiting for x265 to produce garbage
        p = av.Packet(b"\0")
        p.pts, p.dts = pts, dts
        w._sink._check_dts(p)
        fixed.append(p.dts)
    w.abort()
    assert fixed == expected and not (tmp_path / "a.mkv").exists()


def test_fps_override_retimes_and_drops_audio(tmp_path):
    src = tmp_path / "in.mp4"
    make_clip(src, n=6, fps=24, audio="aac")
    with pytest.warns(UserWarning, match="retimed to 30 fps from the source's 24") as record:
        copy(src, tmp_path / "out.mp4", fps=Fraction(30))
    assert len(record) == 1
    info, out = read_all(tmp_path / "out.mp4")
    assert len(out) == 6 and info.fps == 30 and not info.has_audio
    assert {(b.pts - a.pts) * info.time_base for a, b in itertools.pairwise(out)} == {Fraction(1, 30)}
    copy(src, tmp_path / "same.mkv", fps=Fraction(24))  # the same rate: audio kept
    assert read_all(tmp_path / "same.mkv")[0].has_audio


# -- refusals ----------------------------------------------------------------------------------------------------------


def test_every_refusal_is_one_line_listing_what_is_available(tmp_path):
    odd = replace(INFO, width=63, height=47)
    cases = [
        ("-", INFO, {"format": "avi"}, "formats y4m, nut, matroska, rawvideo, found 'avi'"),
        ("-", INFO, {"codec": "libaom-av1"}, r"codec this FFmpeg encodes \(libx264, libx265, ffv1.*found 'libaom-av1'"),
        ("-", INFO, {"codec": "libx264"}, r"codec y4m can hold \(rawvideo\), found libx264"),
        (tmp_path / "a.mov", INFO, {"codec": "ffv1"}, r"codec mov can hold \(libx264, .*\), found ffv1"),
        (tmp_path / "a.mp4", INFO, {"codec": "png"}, r"video codec \(libx264.*\) .* found png, which is for folders"),
        (str(tmp_path / "f") + "/", INFO, {"codec": "libx264"}, "expected png .* for the folder"),
        (str(tmp_path / "f") + "/", INFO, {"format": "nut"}, "found the folder"),
        (tmp_path / "a.mkv", INFO, {"pix_fmt": "rgb24"}, r"pixel format libx264 takes \(yuv420p, .*\), found 'rgb24'"),
        ("-", INFO, {"pix_fmt": "rgb24"}, r"pixel format rawvideo in y4m takes \(yuv420p, .*\), found 'rgb24'"),
        (tmp_path / "a.mkv", INFO, {"lossless": True, "codec": "libx265"}, r"lossless codec .*\(ffv1, .*found libx265"),
        (tmp_path / "a.mkv", INFO, {"lossless": True, "pix_fmt": "yuv444p"}, r"RGB pixel format \(bgr0, .*yuv444p"),
        ("-", INFO, {"lossless": True}, r"holds RGB for lossless output \(nut, matroska, rawvideo\), found y4m"),
        (
            tmp_path / "a.mp4",
            odd,
            {"pix_fmt": "yuv420p"},
            "even frame sizes for yuv420p .* found 63x47; choose yuv444p",
        ),
        (tmp_path / "a.gif", INFO, {}, r"ending in \.mp4, \.mov, \.mkv, \.y4m or \.nut"),
    ]
    for target, info, options, match in cases:
        with raises_one_line(match):
            open_output(target, info, options=OutputOptions(**options), stream=io.BytesIO())
    assert list(tmp_path.iterdir()) == []  # refused before anything was created
    check_output(tmp_path / "a.mkv", OutputOptions(codec="libx265", pix_fmt="yuv420p10le"))  # no source needed
    with pytest.raises(PahsError, match="codec mov can hold"):
        check_output(tmp_path / "a.mov", OutputOptions(codec="ffv1"))


def test_lists_for_help():
    assert set(OUTPUT_FORMATS) == {"y4m", "nut", "matroska", "rawvideo"}
    assert {"libx264", "libx265", "ffv1", "png"} <= set(available_codecs())
    assert "yuv420p10le" in pixel_formats("libx264") and "rgb24" not in pixel_formats("libx264")
    assert pixel_formats("png") == ("rgb24", "rgb48be")
    assert "rgb24" in pixel_formats("rawvideo", "nut") and "rgb24" not in pixel_formats("rawvideo", "y4m")
