"""Video and frame-folder input/output with PyAV (FFmpeg comes in its wheels; no system FFmpeg is used).

Frames cross this module as numpy float32 arrays [H, W, 3], RGB, values in [0, 1]. 8-bit sources are divided
by 255; deeper sources (10/12/16-bit video, 16-bit PNG) are decoded to 16-bit RGB and divided by 65535, so they
keep their precision.

Decisions:

- Input: the first video stream of anything FFmpeg opens (mp4, mov, mkv, avi, webm, raw .h264...), any pixel
  format; or a folder of image frames (.png, .jpg, .jpeg, .tif, .tiff, .bmp; hidden files ignored) in natural
  order (f2 before f10). YUV is converted with the matrix and range the stream declares (FFmpeg's BT.601
  default when it declares none).
- Rotation: the display matrix (or a legacy "rotate" tag) is applied, mirroring included, so frames come out
  as players show them; ``VideoInfo.rotation`` is the clockwise part in degrees. EXIF orientation of JPEG
  frames is applied the same way (its mirroring is not: PyAV cannot read that side data yet).
- Damaged input: restore what decodes and warn. A packet that fails to decode is skipped, frames FFmpeg
  decodes with concealed damage are kept, and reading stops at a demuxer error; after a full pass one warning
  (``warnings.warn``, also in ``FrameReader.warnings``) says what was lost: skipped packets, damaged frames,
  fewer frames than the container lists (mp4, mov) or an early end against the duration it lists (Matroska,
  MPEG-TS). ``info.frames`` then holds the count that decoded. Losses the demuxer skips silently (a damaged
  Matroska cluster in mid-file) go unreported. A file with no decodable frame, or a frame size that changes
  mid-stream, is a :class:`PahsError`.
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
- Outputs are written under a temporary name in the target folder (``.out.mp4.partial-XXXX.mp4``, a
  ``.frames.partial-XXXX`` folder) and renamed when complete; a failed or interrupted run leaves nothing.
"""

from __future__ import annotations

import io
import os
import queue
import re
import shutil
import signal
import tempfile
import threading
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from pahs_export.errors import PahsError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
VIDEO_FORMATS = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska"}  # output suffix -> FFmpeg muxer
FOLDER_FPS = Fraction(25)  # frame rate of video made from frame folders, unless OutputOptions.fps says otherwise
X264_PRESETS = tuple("ultrafast superfast veryfast faster fast medium slow slower veryslow placebo".split())


@dataclass(frozen=True)
class VideoInfo:
    """What a source is; also what an output should be (its size, rate, time base and depth)."""

    width: int  # display width in pixels (after rotation)
    height: int  # display height in pixels (after rotation)
    frames: int | None  # frame count: container metadata or folder size, the decoded count after a full pass
    fps: Fraction | None  # average frame rate; None for frame folders
    time_base: Fraction | None  # unit of Frame.pts; None for frame folders
    rotation: int  # clockwise degrees (0, 90, 180, 270) applied to decoded frames for display orientation
    bit_depth: int  # bits per component of the source: 8, 10, 12, 16
    pix_fmt: str | None  # source pixel format, e.g. "yuv420p10le"; "rgb24"/"rgb48" for image folders
    has_audio: bool  # the source has an audio stream (copied into video outputs)
    is_folder: bool  # the source is a folder of image frames


@dataclass(frozen=True, eq=False)
class Frame:
    """One decoded frame, in display orientation."""

    index: int  # 0-based position in the source
    image: np.ndarray  # float32 [H, W, 3], RGB, in [0, 1]
    pts: int | None  # presentation timestamp in info.time_base units (None for folders)
    name: str | None  # source file name for frame folders, else None


def _natural_key(name: str) -> list:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def _reason(e: BaseException) -> str:
    """FFmpeg's short reason for an error, on one line."""
    text = getattr(e, "strerror", None) or str(e) or type(e).__name__
    return " ".join(str(text).split())


def _to_float(arr: np.ndarray) -> np.ndarray:
    """uint8 or uint16 [H, W, >=3] (or [H, W]) -> float32 [H, W, 3] in [0, 1], C-contiguous."""
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    scale = np.float32(65535.0 if arr.dtype == np.uint16 else 255.0)
    return np.divide(arr[..., :3], scale, dtype=np.float32, order="C")


def orient(image: np.ndarray, rotation: int, mirrored: bool = False) -> np.ndarray:
    """Turn ``image`` [H, W, ...] clockwise by ``rotation`` degrees (a multiple of 90), then mirror it left to
    right if ``mirrored``. Returns a view (the input itself when nothing changes)."""
    if rotation % 360:
        image = np.rot90(image, k=-(rotation % 360) // 90)
    return image[:, ::-1] if mirrored else image


def _matrix_orientation(m: np.ndarray) -> tuple[int, bool]:
    """(clockwise degrees, mirrored) of an FFmpeg display matrix [a b u; c d v; x y w] (int32, row-major).

    A source pixel (p, q) shows at p' = a p + c q, q' = b p + d q (y pointing down): a and d keep the axes,
    b and c swap them. Angles that are not multiples of 90 degrees snap to the nearest one."""
    a, b, c, d = (1 if v >= 0 else -1 for v in (m[0], m[1], m[3], m[4]))
    if abs(int(m[0])) >= abs(int(m[1])):  # axes kept: identity, 180, or a mirror
        return {(1, 1): (0, False), (-1, -1): (180, False), (-1, 1): (0, True), (1, -1): (180, True)}[(a, d)]
    return {(1, -1): (90, False), (-1, 1): (270, False), (1, 1): (90, True), (-1, -1): (270, True)}[(b, c)]


def _frame_orientation(frame: Any, tags: dict[str, str]) -> tuple[int, bool]:
    """(clockwise degrees, mirrored) to bring a decoded frame to display orientation."""
    try:
        side = frame.side_data.get("DISPLAYMATRIX")
    except ValueError:  # PyAV cannot list side data types newer than itself (e.g. EXIF): use the angle alone
        side = None
    if side is not None:
        return _matrix_orientation(np.frombuffer(bytes(side), dtype=np.int32))
    ccw = round(frame.rotation or 0)
    if ccw:
        return round(-ccw / 90) * 90 % 360, False
    try:  # the legacy tag, clockwise (phones wrote "rotate: 90" for portrait video)
        return round(float(tags.get("rotate", 0)) / 90) * 90 % 360, False
    except ValueError:
        return 0, False


class FrameReader:
    """Iterates :class:`Frame` objects of a video file or a frame folder; a context manager.

    Video files can be iterated once. ``warnings`` lists what a damaged file lost (see the module docstring).
    :meth:`close` may be called from another thread while a :class:`Prefetcher` decodes: decoding stops.
    """

    info: VideoInfo

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.warnings: list[str] = []
        self._container: Any = None
        self._files: list[Path] | None = None  # frame folders only
        self._lock = threading.Lock()  # guards the container against close() from another thread
        self._iterated = False
        if self.path.is_dir():
            self._open_folder()
        else:
            self._open_video()

    # -- frame folders ---------------------------------------------------------------------------------------
    def _open_folder(self) -> None:
        files = [
            p
            for p in self.path.iterdir()
            if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") and p.is_file()
        ]  # hidden files skipped: macOS leaves "._frame1.png" metadata files next to frames
        if not files:
            raise PahsError(
                f"expected image frames ({', '.join(IMAGE_SUFFIXES)}) in the folder {self.path}, found none; "
                "pass a folder of frames or a video file"
            )
        self._files = sorted(files, key=lambda p: _natural_key(p.name))
        first, rotation = self._read_image(self._files[0])
        depth = 16 if first.dtype == np.uint16 else 8
        h, w = first.shape[:2]
        pix_fmt = "rgb48" if depth > 8 else "rgb24"
        self.info = VideoInfo(w, h, len(self._files), None, None, rotation, depth, pix_fmt, False, True)

    @staticmethod
    def _read_image(p: Path) -> tuple[np.ndarray, int]:
        """uint8 or uint16 [H, W, 3] in display orientation, and its clockwise rotation; via FFmpeg's image
        decoders, which keep 16-bit PNGs at 16 bits (Pillow reduces 48-bit RGB to 8 bits)."""
        import av

        try:
            with av.open(str(p)) as c:
                frame = next(c.decode(video=0))
                deep = max(comp.bits for comp in frame.format.components) > 8
                arr = frame.to_ndarray(format="rgb48le" if deep else "rgb24")
                rotation, mirrored = _frame_orientation(frame, {})
        except (av.error.FFmpegError, StopIteration, ValueError, OSError) as e:
            raise PahsError(
                f"expected a readable image, could not read {p} ({_reason(e)}); replace or remove it"
            ) from None
        return orient(arr, rotation, mirrored), rotation

    def _iter_folder(self) -> Iterator[Frame]:
        assert self._files is not None
        for i, p in enumerate(self._files):
            arr, _ = self._read_image(p)
            self._check_size(i, arr, f" ({p.name})")
            yield Frame(i, _to_float(arr), None, p.name)

    # -- video files -----------------------------------------------------------------------------------------
    def _open_video(self) -> None:
        import av

        try:
            self._container = av.open(str(self.path))
        except (av.error.FFmpegError, UnicodeDecodeError, ValueError, OSError) as e:
            raise PahsError(
                f"expected a video FFmpeg can read, found {self.path} that it cannot open ({_reason(e)}); "
                "check the file or convert it"
            ) from None
        streams = self._container.streams
        if not streams.video:
            kinds = ", ".join(sorted({s.type for s in streams})) or "no"
            self.close()
            raise PahsError(f"expected a video stream in {self.path}, found {kinds} streams only; pass a video file")
        stream = streams.video[0]
        stream.thread_type = "AUTO"
        self._stream = stream
        self._skipped = 0  # packets that failed to decode
        self._corrupt = 0  # frames decoded with damage (concealed by FFmpeg)
        self._skip_reason = ""
        self._stop_reason = ""  # why reading stopped early, if it did
        self._frames = self._decoded()
        # Peek the first frame: it carries the display matrix, the decoded size and pixel format, which the
        # output needs before anything is written; and a file with no decodable frame fails here.
        first = next(self._frames, None)
        if first is None:
            why = self._stop_reason or self._skip_reason or "the stream is empty"
            self.close()
            raise PahsError(f"expected at least one decodable frame in {self.path}, found none ({why}); check the file")
        self._first = first
        self._expected = self._listed_seconds(stream)
        self._orientation = _frame_orientation(first, dict(stream.metadata))
        depth = max(c.bits for c in first.format.components)
        self._fmt = "rgb48le" if depth > 8 else "rgb24"
        self._first_array = orient(first.to_ndarray(format=self._fmt), *self._orientation)
        tb = Fraction(stream.time_base) if stream.time_base else None
        rate = stream.average_rate or stream.guessed_rate
        self._pts_step = round(1 / (rate * tb)) if rate and tb else None  # one frame in time base units
        h, w = self._first_array.shape[:2]
        self.info = VideoInfo(
            w, h, stream.frames or None, Fraction(rate) if rate else None, tb, self._orientation[0], depth,
            stream.codec_context.pix_fmt or first.format.name, bool(streams.audio), False,
        )  # fmt: skip

    @staticmethod
    def _listed_seconds(stream: Any) -> float | None:
        """The video stream's duration in seconds as the container lists it (mp4, ts: a field; Matroska: a
        DURATION tag), or None."""
        if stream.duration and stream.time_base:
            return float(stream.duration * stream.time_base)
        m = re.fullmatch(r"(\d+):(\d\d):(\d\d(?:\.\d+)?)", stream.metadata.get("DURATION", ""))
        return int(m[1]) * 3600 + int(m[2]) * 60 + float(m[3]) if m else None

    def _decoded(self) -> Iterator[Any]:
        """Decoded av.VideoFrames; damaged packets are skipped and a demuxer error ends the stream."""
        import av

        packets = self._container.demux(self._stream)
        while True:
            with self._lock:
                if self._container is None:  # closed, perhaps by another thread
                    return
                try:
                    packet = next(packets, None)
                except av.error.FFmpegError as e:
                    self._stop_reason = f"reading stopped: {_reason(e)}"
                    return
                if packet is None:
                    return
                try:
                    frames = packet.decode()
                except av.error.FFmpegError as e:
                    self._skipped += 1
                    self._skip_reason = self._skip_reason or _reason(e)
                    continue
            yield from frames

    def _iter_video(self) -> Iterator[Frame]:
        index, first_pts, last_pts = 0, None, None
        frame, arr = self._first, self._first_array
        while frame is not None:
            if arr is None:
                arr = orient(frame.to_ndarray(format=self._fmt), *self._orientation)
            self._check_size(index, arr, "")
            self._corrupt += frame.is_corrupt
            pts = frame.pts
            if pts is None and self._pts_step:  # raw streams (.h264) carry no timestamps: one frame apart
                pts = 0 if last_pts is None else last_pts + self._pts_step
            yield Frame(index, _to_float(arr), pts, None)
            first_pts = pts if index == 0 else first_pts
            last_pts, index, arr = pts, index + 1, None
            frame = next(self._frames, None)
        self._finish(index, first_pts, last_pts)

    def _finish(self, decoded: int, first_pts: int | None, last_pts: int | None) -> None:
        """Record what a damaged file lost, and the decoded frame count."""
        if self._container is None:  # closed early on purpose: nothing to report
            return
        lost = []
        if self._skipped:
            lost.append(f"{self._skipped} damaged packets skipped ({self._skip_reason})")
        if self._corrupt:
            lost.append(f"{self._corrupt} frames decoded with damage")
        if self._stop_reason:
            lost.append(self._stop_reason)
        fps, tb = self.info.fps, self.info.time_base
        if self.info.frames:
            if decoded < self.info.frames:
                lost.append(f"the container lists {self.info.frames} frames but {decoded} decode")
        elif self._expected and fps and tb and first_pts is not None and last_pts is not None:
            # No frame count (Matroska, MPEG-TS): compare durations, with room for a long last frame (VFR).
            span = float((last_pts - first_pts) * tb + 1 / fps)
            if self._expected - span > max(2.0, 3 / fps):
                lost.append(f"decoding ended {span:.2f} s into the {self._expected:.2f} s the container lists")
        if lost:
            message = (
                f"{self.path.name}: {'; '.join(lost)}; restored the {decoded} frames that decode "
                "(the file is damaged: re-export it to recover more)"
            )
            self.warnings.append(message)
            warnings.warn(message, stacklevel=3)
        self.info = replace(self.info, frames=decoded)

    # -- common ----------------------------------------------------------------------------------------------
    def _check_size(self, index: int, arr: np.ndarray, label: str) -> None:
        w, h = self.info.width, self.info.height
        if arr.shape[:2] != (h, w):
            what = "sequence" if self._files else "video"
            raise PahsError(
                f"expected every frame to be {w}x{h} like frame 0, found frame {index}{label} of "
                f"{arr.shape[1]}x{arr.shape[0]}; split the {what} where its size changes"
            )

    def __iter__(self) -> Iterator[Frame]:
        if self._files is not None:
            return self._iter_folder()
        if self._iterated:
            raise RuntimeError("a video FrameReader can be iterated once; open the input again")
        self._iterated = True
        return self._iter_video()

    def close(self) -> None:
        """Release the file; safe to call twice or from another thread."""
        with self._lock:
            if self._container is not None:
                self._container.close()
                self._container = None

    def __enter__(self) -> FrameReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_input(path: str | Path) -> FrameReader:
    """Open a video file or a folder of image frames for reading (see the module docstring)."""
    path = Path(path)
    if not path.exists():
        raise PahsError(f"expected a video file or frame folder, found nothing at {path}; check the path")
    return FrameReader(path)


@dataclass(frozen=True)
class OutputOptions:
    """How outputs are encoded (see the module docstring for the formats)."""

    crf: int = 18  # H.264 quality, 0-51, lower is better (18 looks lossless on most content)
    lossless: bool = False  # exact output: FFV1 RGB in .mkv (8 or 16-bit), libx264rgb qp 0 in .mp4/.mov (8-bit)
    overwrite: bool = False  # replace an existing output file, or a folder holding only image files
    preset: str = "medium"  # x264 speed/size trade-off, "ultrafast" ... "placebo"
    fps: Fraction | None = None  # frame rate for video made from frame folders (they have none); None: 25


def output_is_folder(path: str | Path) -> bool:
    """-o names a folder when it ends with a path separator or is an existing directory."""
    return str(path).endswith(("/", os.sep)) or Path(path).is_dir()


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
        self._close_source()

    def _close_source(self) -> None:
        if self._src is not None:
            self._src.close()
            self._src = None


_O = TypeVar("_O", bound="_Output")


class _Output:
    """An output used as a context manager: kept by ``close()`` on success, dropped by ``abort()`` on any error."""

    def close(self) -> None:
        raise NotImplementedError

    def abort(self) -> None:
        raise NotImplementedError

    def __enter__(self: _O) -> _O:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class FrameWriter(_Output):
    """Writes frames to a temporary output in the target folder, renamed to the target by :meth:`close`.

    A context manager: leaving the block normally closes it, leaving with any exception (KeyboardInterrupt and
    SystemExit included) aborts it, so the target is never half-written.
    """

    def __init__(
        self, target: Path, info: VideoInfo, *, folder: bool, source: Path | None, options: OutputOptions
    ) -> None:
        self.target, self.info, self.options, self.folder = target, info, options, folder
        self.count = 0  # frames written
        self._open = True
        self._made: list[Path] = []  # parent folders created for the output (innermost first), removed on abort
        parent = target.parent
        try:
            self._made = [p for p in (parent, *parent.parents) if not p.exists()]
            parent.mkdir(parents=True, exist_ok=True)
            prefix = f".{target.name}.partial-"
            if folder:
                self.tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
            else:
                fd, name = tempfile.mkstemp(prefix=prefix, suffix=target.suffix, dir=parent)
                os.close(fd)
                self.tmp = Path(name)
        except OSError as e:
            self._remove_made()
            raise PahsError(
                f"expected a writable output folder, found {parent} not writable ({e.strerror or e}); choose another -o"
            ) from None
        try:
            if folder:
                self._sink: _PngSink | _VideoSink = _PngSink(self.tmp, info)
            else:
                self._sink = _VideoSink(self.tmp, VIDEO_FORMATS[target.suffix.lower()], info, source, options)
        except BaseException:
            self._remove_tmp()
            raise

    def write(self, image: np.ndarray, pts: int | None = None, name: str | None = None) -> None:
        """Append one frame: float [H, W, 3] RGB in [0, 1] (clipped), H and W as in ``info``; ``pts`` in
        ``info.time_base`` units (None: one frame after the previous); ``name`` the source file name (PNG
        folders keep it)."""
        if not self._open:
            raise RuntimeError("write() on a closed FrameWriter")
        if image.shape != (self.info.height, self.info.width, 3):
            raise ValueError(f"expected a [{self.info.height}, {self.info.width}, 3] image, got {image.shape}")
        self._sink.write(image, pts, name, self.count)
        self.count += 1

    def close(self) -> None:
        """Finish the output and move it to the target name (replacing an existing one). If finishing
        fails the output is aborted. Does nothing once closed or aborted."""
        if not self._open:
            return
        try:
            self._sink.finish()
            self._publish()
        except BaseException:
            self.abort()
            raise
        self._open = False

    def _publish(self) -> None:
        umask = os.umask(0)
        os.umask(umask)
        self.tmp.chmod((0o777 if self.folder else 0o666) & ~umask)  # mkstemp/mkdtemp made it private
        if not self.folder:
            os.replace(self.tmp, self.target)  # atomic, also over an existing file
            return
        old = None
        if self.target.exists():  # an empty folder, or frames that overwrite replaces: move aside, then delete
            old = Path(tempfile.mkdtemp(prefix=f".{self.target.name}.old-", dir=self.target.parent))
            self.target.rename(old / "old")
        self.tmp.rename(self.target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)

    def abort(self) -> None:
        """Drop the temporary output; the target is left as it was. Does nothing once closed or aborted."""
        if not self._open:
            return
        self._open = False
        try:
            self._sink.discard()
        finally:
            self._remove_tmp()

    def _remove_tmp(self) -> None:
        if self.tmp.is_dir():
            shutil.rmtree(self.tmp, ignore_errors=True)
        else:
            self.tmp.unlink(missing_ok=True)
        self._remove_made()

    def _remove_made(self) -> None:
        for p in self._made:  # innermost first; stop at the first that is not ours alone any more
            try:
                if p.exists():
                    p.rmdir()
            except OSError:
                break


def _only_images(folder: Path) -> bool:
    return all(p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES for p in folder.iterdir())


def open_output(
    path: str | Path, info: VideoInfo, *, source: str | Path | None = None, options: OutputOptions = OutputOptions()
) -> FrameWriter:
    """A writer for a video (.mp4, .mov, .mkv) or, when :func:`output_is_folder`, a folder of PNG frames.

    ``info`` gives the size, frame rate, time base and bit depth to write; ``source`` (the input path) is
    refused as the output, and when it is a video its audio streams are copied and its colour tags kept.
    See the module docstring for formats and what is kept.
    """
    folder = output_is_folder(path)  # decided on the raw string: Path() drops a trailing "/"
    target = Path(path)
    if source is not None and target.resolve() == Path(source).resolve():
        raise PahsError(f"expected an output different from the input, found both at {target}; choose another -o")
    if not folder and target.suffix.lower() not in VIDEO_FORMATS:
        raise PahsError(
            f"expected -o ending in .mp4, .mov or .mkv, or a folder ending in /, found {target.name}; "
            "choose one of those"
        )
    if folder and target.exists() and not target.is_dir():
        raise PahsError(f"expected a folder for PNG frames, found the file {target}; choose another -o")
    if target.exists() and not (folder and not any(target.iterdir())):  # an empty folder is free to use
        if not options.overwrite:
            raise PahsError(
                f"expected a new output, found {target} already there; pass --overwrite or choose another -o"
            )
        if folder and not _only_images(target):
            raise PahsError(
                f"expected an output folder holding only image frames to replace, found other files in {target}; "
                "choose another -o"
            )
    if not 0 <= options.crf <= 51:
        raise PahsError(f"expected a crf from 0 to 51, found {options.crf}; 18 looks lossless on most content")
    if options.preset not in X264_PRESETS:
        raise PahsError(f"expected an x264 preset ({', '.join(X264_PRESETS)}), found {options.preset!r}")
    if options.fps is not None and options.fps <= 0:
        raise PahsError(f"expected a positive frame rate, found {options.fps}; pass one such as 25 or 30000/1001")
    return FrameWriter(
        target, info, folder=folder, source=Path(source) if source is not None else None, options=options
    )


class Prefetcher:
    """Iterates ``iterable`` in a background thread, up to ``maxsize`` items ahead, so that decoding overlaps
    the consumer's work. Order is kept; an exception in the thread is raised in the consumer where the item
    would have come. Iterate once. Stopping early (break, an exception, :meth:`close`) stops and joins the
    thread, and the source iterator is closed in it."""

    _DONE = object()

    def __init__(self, iterable: Iterable, maxsize: int = 8) -> None:
        self._queue: queue.Queue = queue.Queue(maxsize)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(iter(iterable),), daemon=True, name="prefetch")
        self._thread.start()

    def _put(self, item: tuple) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, it: Iterator) -> None:
        try:
            for item in it:
                if not self._put((item, None)):
                    return
            self._put((self._DONE, None))
        except BaseException as e:  # handed to the consumer
            self._put((self._DONE, e))
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()

    def __iter__(self) -> Iterator:
        try:
            while True:
                item, error = self._queue.get()
                if error is not None:
                    raise error
                if item is self._DONE:
                    return
                yield item
        finally:
            self.close()

    def close(self) -> None:
        """Stop the thread and wait for it (it first finishes the item it is producing)."""
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join()

    def __enter__(self) -> Prefetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class BackgroundWriter(_Output):
    """Wraps a :class:`FrameWriter`: :meth:`write` queues the frame (blocking while ``maxsize`` wait) and a
    thread encodes, so encoding overlaps the caller's work; the caller must not modify an array after passing
    it. An error in the thread is raised by the next :meth:`write` or :meth:`close`. :meth:`close` and
    :meth:`abort` join the thread, then close or abort the writer. A context manager like :class:`FrameWriter`."""

    _CLOSE = object()

    def __init__(self, writer: FrameWriter, maxsize: int = 8) -> None:
        self.writer = writer
        self._queue: queue.Queue = queue.Queue(maxsize)
        self._error: BaseException | None = None
        self._aborting = False
        self._thread = threading.Thread(target=self._run, daemon=True, name="encode")
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is self._CLOSE:
                return
            if self._error is None and not self._aborting:  # after a failure, drain without writing
                try:
                    self.writer.write(*item)
                except BaseException as e:
                    self._error = e

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def write(self, image: np.ndarray, pts: int | None = None, name: str | None = None) -> None:
        """Queue one frame (see :meth:`FrameWriter.write`)."""
        self._raise()
        if not self._thread.is_alive():
            raise RuntimeError("write() on a closed BackgroundWriter")
        self._queue.put((image, pts, name))

    def _join(self) -> None:
        if self._thread.is_alive():
            self._queue.put(self._CLOSE)
            self._thread.join()

    def close(self) -> None:
        """Encode what is queued, then close the writer; on an error, abort it and raise."""
        try:
            self._join()
            self._raise()
        except BaseException:
            self.abort()
            raise
        self.writer.close()

    def abort(self) -> None:
        """Drop what is queued and abort the writer."""
        self._aborting = True
        try:
            self._join()
        finally:
            self.writer.abort()


_handler_installed = False


def install_termination_handler() -> None:
    """Make SIGTERM raise KeyboardInterrupt in the main thread (Python's default is to die on the spot), so
    ``with`` blocks abort their outputs and no temporary file is left. Idempotent; does nothing outside the
    main thread, where signal handlers cannot be set."""
    global _handler_installed
    if _handler_installed or threading.current_thread() is not threading.main_thread():
        return

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"terminated by signal {signum}")

    signal.signal(signal.SIGTERM, handler)
    _handler_installed = True
