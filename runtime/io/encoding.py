"""Encoding: frames into one video container (PyAV, libx264/FFV1) or a folder of PNGs.

The sinks here write into a path they are given; :mod:`runtime.io.writing` picks the sink and publishes what it
wrote. Frames come in as float [H, W, 3] RGB in [0, 1] (clipped) and are quantised to 8 or 16 bits.

Decisions:

- Video output (.mp4, .mov or .mkv): H.264 (libx264, ``crf``, ``preset``) in yuv420p, 8-bit, limited range,
  tagged with the source's colour matrix/primaries/transfer (BT.709 when unknown). Odd widths or heights
  cannot be 4:2:0, so they are encoded as yuv444p (H.264 High 4:4:4) at the exact size: FFmpeg-based
  players (mpv, VLC) play it, browsers and hardware decoders mostly do not.
- ``lossless``: .mkv gets FFV1 RGB (bgr0 for 8-bit sources, 16-bit gbrp16le for deeper ones); .mp4/.mov get
  libx264rgb at qp 0 (8-bit RGB, rounded from deeper sources with a warning). Either way the file decodes to
  exactly the quantised frames that were written (8-bit: round(x * 255), FFV1 16-bit: round(x * 65535)).
  libx264rgb is H.264 High 4:4:4 RGB: FFmpeg-based players only.
- Frame count, size, frame rate and timestamps are kept: the output's pts are the input's. mp4/mov use the
  source time base's denominator as the track timescale, so for a time base 1/N (the usual case) the output
  has the same time base and identical pts, and VFR survives; a time base k/N gives 1/N and pts * k. Matroska
  stores milliseconds. Frames without a timestamp get the previous one plus one frame; a timestamp that does
  not increase is bumped by one tick (muxers refuse them).
- Frame folders have no frame rate: video made from them uses ``OutputOptions.fps``, 25 frames/s by default.
- Audio: every audio stream of a source video is copied packet by packet (no re-encoding), interleaved with
  the video. A codec the chosen container cannot hold (e.g. Opus or FLAC in .mov) is left out with a warning
  naming .mkv, which holds them all.
- PNG output: 8-bit, or 16-bit when the source has more than 8 bits; named after the source frames for a
  folder input (``name.png``), else ``000000.png``, ``000001.png``...
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from .reading import VideoInfo, _reason

VIDEO_FORMATS = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska"}  # output suffix -> FFmpeg muxer
FOLDER_FPS = Fraction(25)  # frame rate of video made from frame folders, unless OutputOptions.fps says otherwise
X264_PRESETS = tuple("ultrafast superfast veryfast faster fast medium slow slower veryslow placebo".split())


@dataclass(frozen=True)
class OutputOptions:
    """How outputs are encoded (see the module docstring for the formats)."""

    crf: int = 18  # H.264 quality, 0-51, lower is better (18 looks lossless on most content)
    lossless: bool = False  # exact output: FFV1 RGB in .mkv (8 or 16-bit), libx264rgb qp 0 in .mp4/.mov (8-bit)
    overwrite: bool = False  # replace an existing output file, or a folder holding only image files
    preset: str = "medium"  # x264 speed/size trade-off, "ultrafast" ... "placebo"
    fps: Fraction | None = None  # frame rate for video made from frame folders (they have none); None: 25


def _quantise(image: np.ndarray, deep: bool) -> np.ndarray:
    """float [H, W, 3] in [0, 1] (clipped) -> uint8 or uint16 [H, W, 3], rounded to nearest."""
    scale = np.float32(65535.0 if deep else 255.0)
    out = np.clip(image, 0.0, 1.0) * scale + np.float32(0.5)
    return np.ascontiguousarray(out.astype(np.uint16 if deep else np.uint8))


# FFmpeg colour-matrix ids (AVColorSpace) -> swscale's (SWS_CS_*): BT.709, FCC, BT.470BG, SMPTE 170M, 240M, BT.2020
_SWS_MATRIX = {1: 1, 4: 4, 5: 5, 6: 5, 7: 7, 9: 9}
_UNSPECIFIED = 2  # AVCOL_*_UNSPECIFIED for matrix, primaries and transfer alike


class _PngSink:
    """PNG frames through FFmpeg's encoder: rgb48 (16-bit) for deep sources, else rgb24."""

    def __init__(self, folder: Path, info: VideoInfo) -> None:
        import av

        self.folder, self.deep = folder, info.bit_depth > 8
        self._codec = av.CodecContext.create("png", "w")
        self._codec.width, self._codec.height = info.width, info.height
        self._codec.pix_fmt = "rgb48be" if self.deep else "rgb24"
        self._names: set[str] = set()

    def write(self, image: np.ndarray, pts: int | None, name: str | None, index: int) -> None:
        import av

        frame = av.VideoFrame.from_ndarray(_quantise(image, self.deep), format="rgb48le" if self.deep else "rgb24")
        data = b"".join(bytes(p) for p in self._codec.encode(frame))
        out = f"{Path(name).stem}.png" if name else f"{index:06d}.png"
        if out in self._names:  # "a.jpg" and "a.png" in one folder: keep both
            out = f"{Path(name or out).name}.png"
        self._names.add(out)
        (self.folder / out).write_bytes(data)

    def finish(self) -> None:
        pass

    def discard(self) -> None:
        pass


class _VideoSink:
    """One video stream encoded from RGB frames, plus the source's audio streams copied packet by packet."""

    def __init__(self, path: Path, muxer: str, info: VideoInfo, source: Path | None, options: OutputOptions) -> None:
        import av

        self._src: Any = None
        self.deep = info.bit_depth > 8
        rate = info.fps or options.fps or FOLDER_FPS
        tb = info.time_base or 1 / Fraction(rate)
        # mp4/mov tracks count in 1/timescale; a timescale equal to the source's keeps its pts as they are.
        self._tick = tb.numerator  # output ticks per source time base unit
        self.time_base = Fraction(1, tb.denominator)
        self._step = max(1, round(1 / (Fraction(rate) * self.time_base)))  # one frame in output ticks
        self._last: int | None = None
        mux_options = {"movflags": "+faststart", "video_track_timescale": str(tb.denominator)}
        self._path = path
        self._out = av.open(str(path), "w", format=muxer, options=mux_options if muxer != "matroska" else {})
        try:
            self._setup(av, muxer, info, Fraction(rate), source, options)
        except BaseException:
            self.discard()
            raise

    def _setup(
        self, av: Any, muxer: str, info: VideoInfo, rate: Fraction, source: Path | None, options: OutputOptions
    ) -> None:
        src = self._source_video(source)
        self._rgb = options.lossless
        if options.lossless and muxer == "matroska":
            codec, pix_fmt, opts = "ffv1", "gbrp16le" if self.deep else "bgr0", {"level": "3", "slicecrc": "1"}
        elif options.lossless:
            codec, pix_fmt, opts = "libx264rgb", "rgb24", {"qp": "0", "preset": options.preset}
            if self.deep:
                warnings.warn(
                    f"lossless {muxer} output is 8-bit RGB: the {info.bit_depth}-bit source is rounded to 8 bits "
                    "(write .mkv for 16-bit lossless FFV1, or a PNG folder)",
                    stacklevel=5,
                )
                self.deep = False
        else:
            odd = info.width % 2 or info.height % 2  # 4:2:0 needs even sizes; 4:4:4 keeps the exact size
            codec, pix_fmt = "libx264", "yuv444p" if odd else "yuv420p"
            opts = {"crf": str(options.crf), "preset": options.preset}
        stream = self._out.add_stream(codec, rate=rate, options=opts)
        stream.width, stream.height, stream.pix_fmt = info.width, info.height, pix_fmt
        stream.time_base = stream.codec_context.time_base = self.time_base
        self._pix_fmt = pix_fmt
        cc = stream.codec_context
        if src is not None and src.sample_aspect_ratio and src.sample_aspect_ratio != 1:  # anamorphic source
            sar = Fraction(src.sample_aspect_ratio)
            cc.sample_aspect_ratio = 1 / sar if info.rotation in (90, 270) else sar
        self._matrix = 1  # BT.709 unless the source says otherwise
        if not self._rgb:
            scc = src.codec_context if src is not None else None
            if scc is not None and scc.colorspace in _SWS_MATRIX:
                self._matrix = scc.colorspace
            cc.colorspace, cc.color_range = self._matrix, 1  # limited ("tv") range: what players expect
            known = scc is not None and scc.color_primaries != _UNSPECIFIED and scc.color_trc != _UNSPECIFIED
            cc.color_primaries, cc.color_trc = (scc.color_primaries, scc.color_trc) if known else (1, 1)
        self._stream = stream
        self._audio_setup(av, muxer, info, source)

    def _source_video(self, source: Path | None) -> Any:
        """The source's video stream (for colour tags and pixel aspect), or None; keeps the source open."""
        import av

        if source is None or not Path(source).is_file():
            return None
        try:
            self._src = av.open(str(source))
        except (av.error.FFmpegError, OSError, ValueError) as e:
            warnings.warn(
                f"could not open {source} again ({_reason(e)}): the output has no audio and BT.709 colour tags",
                stacklevel=5,
            )
            return None
        return self._src.streams.video[0] if self._src.streams.video else None

    def _audio_setup(self, av: Any, muxer: str, info: VideoInfo, source: Path | None) -> None:
        self._audio: dict[int, Any] = {}  # source stream index -> output stream
        self._pending: Any = None
        if self._src is None or not info.has_audio:
            return
        for s in self._src.streams.audio:
            if self._can_hold(av, muxer, s):
                self._audio[s.index] = self._out.add_stream_from_template(s)
            else:
                warnings.warn(
                    f"the {s.codec_context.name} audio of {Path(str(source)).name} cannot be stored in "
                    f"{muxer}: the output has no copy of it (write .mkv to keep it)",
                    stacklevel=6,
                )
        if self._audio:
            self._packets = self._src.demux([self._src.streams[i] for i in self._audio])
            self._pending = self._next_audio()

    @staticmethod
    def _can_hold(av: Any, muxer: str, stream: Any) -> bool:
        """Whether ``muxer`` accepts a copy of ``stream``: FFmpeg's codec tables are not reliable
        (Opus in .mov is listed but refused), so write a header to memory and see."""
        probe = av.open(io.BytesIO(), "w", format=muxer)
        try:
            probe.add_stream_from_template(stream)
            probe.start_encoding()
            return True
        except (av.error.FFmpegError, ValueError):
            return False
        finally:
            try:
                probe.close()
            except (av.error.FFmpegError, ValueError):
                pass

    def _next_audio(self) -> Any:
        import av

        try:
            for packet in self._packets:
                if packet.dts is not None and packet.size:  # skip the demuxer's empty flush packets
                    return packet
        except av.error.FFmpegError as e:  # a damaged source: keep what was copied
            warnings.warn(f"audio copy stopped early: {_reason(e)}", stacklevel=2)
        return None

    def _copy_audio(self, until: float | None) -> None:
        """Mux source audio packets up to ``until`` seconds (all of them for None), so they interleave."""
        import av

        while self._pending is not None:
            packet = self._pending
            if until is not None and float(packet.dts * packet.time_base) > until:
                return
            packet.stream = self._audio[packet.stream.index]
            try:
                self._out.mux(packet)
            except av.error.FFmpegError as e:
                warnings.warn(f"audio copy stopped early: {_reason(e)}", stacklevel=2)
                self._pending = None
                return
            self._pending = self._next_audio()

    def _mux(self, packets: list) -> None:
        for packet in packets:
            self._out.mux(packet)
            if packet.dts is not None:
                self._copy_audio(float(packet.dts * self.time_base))

    def write(self, image: np.ndarray, pts: int | None, name: str | None, index: int) -> None:
        import av

        frame = av.VideoFrame.from_ndarray(_quantise(image, self.deep), format="rgb48le" if self.deep else "rgb24")
        if not self._rgb:  # RGB -> YUV with the matrix and range the stream is tagged with
            frame = frame.reformat(format=self._pix_fmt, dst_colorspace=_SWS_MATRIX[self._matrix], dst_color_range=1)
        out = pts * self._tick if pts is not None else None
        if out is None:
            out = 0 if self._last is None else self._last + self._step
        elif self._last is not None and out <= self._last:  # muxers refuse timestamps that do not increase
            out = self._last + 1
        self._last = frame.pts = out
        frame.time_base = self.time_base
        self._mux(self._stream.encode(frame))

    def finish(self) -> None:
        self._mux(self._stream.encode(None))
        self._copy_audio(None)
        self._out.close()
        self._close_source()

    def discard(self) -> None:
        try:
            self._out.close()
        except Exception:  # half-written; the file is deleted anyway
            pass
        _close_leaked(self._path)
        self._close_source()

    def _close_source(self) -> None:
        if self._src is not None:
            self._src.close()
            self._src = None


def _close_leaked(path: Path) -> None:
    """Close the descriptors this process still holds on ``path`` (Linux; elsewhere nothing happens).

    When writing the header fails (a full disk at the first frame), PyAV 18 marks the output as never started
    and so never closes the file it opened: the descriptor would keep the deleted temporary's blocks allocated
    (the disk stays full) until the process ends. Nothing uses that descriptor again, so closing it is safe."""
    fds = Path("/proc/self/fd")
    if not fds.is_dir():
        return
    target = os.path.realpath(path)
    for entry in os.listdir(fds):
        try:
            link = os.readlink(fds / entry)
        except OSError:
            continue
        if link in (target, f"{target} (deleted)"):
            with contextlib.suppress(OSError):
                os.close(int(entry))
