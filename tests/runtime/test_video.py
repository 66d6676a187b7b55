"""Video and frame-folder I/O: what is kept, what is refused, and that failures leave nothing behind."""

from __future__ import annotations

import av
import numpy as np
import pytest
from conftest import make_folder, make_frames, make_video, write_png

from pahs_export import PahsError
from runtime.video import (
    BackgroundWriter,
    FrameReader,
    OutputOptions,
    Prefetcher,
    open_input,
    open_output,
    output_is_folder,
)


def read_all(path):
    with open_input(path) as r:
        return r.info, list(r)


def audio_packets(path) -> list[int]:
    with av.open(str(path)) as c:
        return [p.size for p in c.demux(c.streams.audio[0]) if p.dts is not None]


def copy(src, dst, **options) -> None:
    with open_input(src) as r, open_output(dst, r.info, source=src, options=OutputOptions(**options)) as w:
        for f in r:
            w.write(f.image, f.pts, f.name)


def test_mp4_with_audio_and_odd_size_round_trip(tmp_path):
    src = make_video(tmp_path / "in.mp4", n=12, width=250, height=142, fps=24, audio=True)
    info, frames = read_all(src)
    assert (info.width, info.height, info.frames, info.fps, info.has_audio) == (250, 142, 12, 24, True)
    copy(src, tmp_path / "out.mp4", crf=10)
    out_info, out = read_all(tmp_path / "out.mp4")
    assert (out_info.width, out_info.height, len(out), out_info.fps) == (250, 142, 12, 24)
    assert [f.pts for f in out] == [f.pts for f in frames] and out_info.time_base == info.time_base
    assert audio_packets(tmp_path / "out.mp4") == audio_packets(src)  # copied, not re-encoded
    assert np.mean([np.abs(a.image - b.image).mean() for a, b in zip(frames, out, strict=True)]) < 3 / 255


def test_odd_dimensions_keep_exact_size(tmp_path):
    src = make_folder(tmp_path / "odd", n=3, width=51, height=33)
    copy(src, tmp_path / "odd.mp4")
    info, frames = read_all(tmp_path / "odd.mp4")
    assert (info.width, info.height, len(frames), info.fps) == (51, 33, 3, 25)


def test_png_folder_in_and_out_keeps_names_and_values(tmp_path):
    src = make_folder(tmp_path / "seq", n=11)
    info, frames = read_all(src)
    assert (
        info.is_folder
        and info.frames == 11
        and [f.name for f in frames][:3] == ["frame1.png", "frame2.png", "frame3.png"]
    )
    assert frames[9].name == "frame10.png"  # natural order
    copy(src, str(tmp_path / "out") + "/")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(f"frame{i}.png" for i in range(1, 12))
    _, back = read_all(tmp_path / "out")
    assert all(np.array_equal(a.image, b.image) for a, b in zip(frames, back, strict=True))  # PNG is lossless


def test_video_to_png_folder(tmp_path):
    src = make_video(tmp_path / "in.mp4", n=5, width=64, height=48)
    copy(src, str(tmp_path / "frames") + "/")
    assert sorted(p.name for p in (tmp_path / "frames").iterdir()) == [f"{i:06d}.png" for i in range(5)]


def test_ten_bit_input_keeps_precision(tmp_path):
    src = make_video(tmp_path / "ten.mkv", n=2, width=64, height=32, codec="libx265", pix_fmt="yuv420p10le")
    info, frames = read_all(src)
    assert info.bit_depth == 10
    values = np.unique(frames[0].image)
    assert (np.abs(values * 255 - np.round(values * 255)) > 1e-3).any()  # not quantised to 8 bits
    copy(src, str(tmp_path / "deep") + "/")  # deep sources give 16-bit PNGs
    with av.open(str(next((tmp_path / "deep").iterdir()))) as c:
        assert next(c.decode(video=0)).format.name.startswith("rgb48")


def test_lossless_is_bit_exact(tmp_path):
    src = make_folder(tmp_path / "seq", n=3, width=64, height=32)
    copy(src, tmp_path / "lossless.mp4", lossless=True)
    _, a = read_all(src)
    _, b = read_all(tmp_path / "lossless.mp4")
    assert all(np.array_equal(x.image, y.image) for x, y in zip(a, b, strict=True))


def test_rotation_is_applied_counter_clockwise():
    """FFmpeg's display rotation (counter-clockwise degrees). A rotated file cannot be written with the
    bundled FFmpeg (the muxer ignores the old 'rotate' tag), so the transform is tested on arrays."""
    arr = np.arange(6).reshape(2, 3, 1).repeat(3, axis=2)
    rotated = FrameReader._rotate(arr, 90)
    assert rotated.shape == (3, 2, 3) and rotated[0, 0, 0] == arr[0, 2, 0]
    assert FrameReader._rotate(arr, 0) is arr


def test_exception_leaves_nothing_behind(tmp_path):
    src = make_video(tmp_path / "in.mp4", n=4, width=64, height=48)
    info, frames = read_all(src)
    for target in (str(tmp_path / "out.mp4"), str(tmp_path / "out") + "/"):
        with pytest.raises(RuntimeError), open_output(target, info, source=src) as w:
            w.write(frames[0].image, frames[0].pts)
            raise RuntimeError("boom")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


def test_refusals(tmp_path):
    src = make_video(tmp_path / "in.mp4", n=2, width=64, height=48)
    info, _ = read_all(src)
    with pytest.raises(PahsError, match="different from the input"):
        open_output(src, info, source=src, options=OutputOptions(overwrite=True))
    (tmp_path / "exists.mp4").write_bytes(b"x")
    with pytest.raises(PahsError, match="already exists; pass --overwrite"):
        open_output(tmp_path / "exists.mp4", info, source=src)
    with pytest.raises(PahsError, match=r"ending in \.mp4"):
        open_output(tmp_path / "out.gif", info, source=src)
    assert output_is_folder("x/") and not output_is_folder("x.mp4")


def test_bad_inputs(tmp_path):
    with pytest.raises(PahsError, match="found nothing at"):
        open_input(tmp_path / "missing.mp4")
    (tmp_path / "text.mp4").write_text("not a video at all")
    with pytest.raises(PahsError, match="expected a video FFmpeg can read"):
        open_input(tmp_path / "text.mp4")
    (tmp_path / "empty").mkdir()
    with pytest.raises(PahsError, match="expected image frames"):
        open_input(tmp_path / "empty")
    audio_only = tmp_path / "audio.m4a"
    with av.open(str(audio_only), "w") as c:
        s = c.add_stream("aac", rate=44100)
        af = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        af.sample_rate = 44100
        for p in [*s.encode(af), *s.encode()]:
            c.mux(p)
    with pytest.raises(PahsError, match="expected a video stream"):
        open_input(audio_only)
    sizes = make_folder(tmp_path / "sizes", n=2, width=48, height=32)
    write_png(sizes / "frame3.png", make_frames(1, 64, 32)[0])
    with pytest.raises(PahsError, match=r"found frame 2 .* of 64x32"):
        read_all(sizes)
    (sizes / "frame3.png").write_bytes(b"garbage")
    with pytest.raises(PahsError, match="could not read"):
        read_all(sizes)


def test_truncated_stream_restores_what_decodes(tmp_path):
    """Decision: a damaged tail costs only the damaged frames; the rest is restored, with a warning."""
    src = make_video(tmp_path / "in.mp4", n=60, width=64, height=48, faststart=True)
    data = src.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) * 2 // 3])
    with open_input(cut) as r, pytest.warns(UserWarning, match="restoring the .* frames that decoded"):
        frames = list(r)
    assert 0 < len(frames) < 60 and r.warnings


def test_prefetcher_and_background_writer(tmp_path):
    assert list(Prefetcher(range(50), maxsize=3)) == list(range(50))

    def failing():
        yield 1
        raise ValueError("decoder broke")

    with pytest.raises(ValueError, match="decoder broke"):
        list(Prefetcher(failing()))
    src = make_video(tmp_path / "in.mp4", n=4, width=64, height=48)
    info, frames = read_all(src)
    bw = BackgroundWriter(open_output(tmp_path / "bg.mp4", info, source=src))
    for f in frames:
        bw.write(f.image, f.pts)
    bw.close()
    assert len(read_all(tmp_path / "bg.mp4")[1]) == 4
    bad = BackgroundWriter(open_output(tmp_path / "bad.mp4", info, source=src))
    bad.write(None)  # not an image: the encoder thread fails
    with pytest.raises(Exception):  # noqa: B017 - surfaced from the thread, whatever PyAV raises
        for _ in range(20):
            bad.write(frames[0].image)
        bad.close()
    bad.abort()
    assert not (tmp_path / "bad.mp4").exists()


def test_encoder_that_cannot_start_leaves_nothing(tmp_path):
    from runtime.video import VideoInfo

    junk = tmp_path / "src.mp4"
    junk.write_text("not a video")  # claimed to have audio: opening it for the audio copy fails
    info = VideoInfo(64, 32, 1, None, None, 0, 8, None, True, False)
    with pytest.raises(av.error.FFmpegError):
        open_output(tmp_path / "out.mp4", info, source=junk)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src.mp4"]
