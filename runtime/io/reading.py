"""Decoding: video files and frame folders read with PyAV (FFmpeg comes in its wheels; no system FFmpeg is used).

Frames cross :mod:`runtime.io` as numpy float32 arrays [H, W, 3], RGB, values in [0, 1]. 8-bit sources are
divided by 255; deeper sources (10/12/16-bit video, 16-bit PNG) are decoded to 16-bit RGB and divided by 65535,
so they keep their precision.

Decisions:

- Input: the first video stream of anything FFmpeg opens (mp4, mov, mkv, avi, webm, raw .h264...), any pixel
  format; or a folder of image frames (.png, .jpg, .jpeg, .tif, .tiff, .bmp; hidden files ignored) in natural
  order (f2 before f10). YUV is converted with the matrix and range the stream declares (FFmpeg's BT.601
  default when it declares none).
- Sources (:func:`source_kind`): ``-``, ``pipe:``, ``pipe:0`` and ``/dev/stdin`` are standard input, in any
  format FFmpeg reads from a pipe (y4m, nut, matroska, mpegts...; an mp4/mov only with its index first, unless
  a file is redirected in); a terminal there is refused. A string starting ``scheme://`` (scheme of two or more
  letters, digits, ``+.-``) or ``file:``/``pipe:`` is a URL, given to FFmpeg exactly as written, with
  :data:`NETWORK_TIMEOUT` seconds to answer each read. Anything else is a local path (a file, a frame folder,
  a named pipe): ``C:\\x`` is a drive, not a URL, and ``./-`` or ``./http:x`` name local files.
- Streams: standard input, FIFOs, character devices, sockets and live protocols (rtsp, rtmp, rtp, udp, tcp,
  srt, pipe) are read once (``VideoInfo.is_stream``); files, folders, http(s) and file: URLs can be opened
  again. A stream is never opened a second time: it is decoded with slice threads only from the start, which
  lose no frames around damage (frame threads do), instead of the damaged-file retry below.
- Rotation: the display matrix (or a legacy "rotate" tag) is applied, mirroring included, so frames come out
  as players show them; ``VideoInfo.rotation`` is the clockwise part in degrees. EXIF orientation of JPEG
  frames is applied the same way (its mirroring is not: PyAV cannot read that side data yet).
- Damaged input: restore what decodes and warn. A packet that fails to decode is skipped, frames FFmpeg
  decodes with concealed damage are kept, and reading stops at a demuxer error (a network read that times out
  is one); after a full pass one warning (``warnings.warn``, also in ``FrameReader.warnings``) says what was
  lost: skipped packets, damaged frames, fewer frames than the container lists (mp4, mov) or, where it lists
  no count (Matroska, MPEG-TS), a last frame that ends more than 1.5 frame intervals before the end it lists
  (:class:`_End`: the last frame's own duration counts, so a variable-frame-rate file is not reported).
  ``info.frames`` then holds the count that decoded.
  Losses the demuxer skips silently (a damaged Matroska cluster in mid-file) go unreported. A file with no
  decodable frame, or a frame size that changes mid-stream, is a :class:`PahsError`.
"""

from __future__ import annotations

import glob
import os
import re
import stat
import threading
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Any, BinaryIO, Literal

import numpy as np

from pahs_export.errors import PahsError
from pahs_export.signals import check_interrupted

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
CLOSE_TIMEOUT = 10.0  # seconds close() waits for a decoding thread to leave FFmpeg
NETWORK_TIMEOUT = 30.0  # seconds a URL may go without data (to open, then on each read) before reading fails
STDIN_NAMES = ("-", "pipe:", "pipe:0", "/dev/stdin")  # sources that mean standard input
LIVE_SCHEMES = frozenset({"pipe", "rtsp", "rtsps", "rtmp", "rtmps", "rtp", "udp", "tcp", "srt"})  # read once
_STDIN_FD = 0  # the descriptor read as standard input (tests point it at a pipe of their own)
_URL = re.compile(r"([A-Za-z][A-Za-z0-9+.-]+):(//)?")  # two or more characters: "C:" is a drive


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
    is_stream: bool = False  # read once: standard input, a pipe or a live stream; it cannot be opened again


@dataclass(frozen=True, eq=False)
class Frame:
    """One decoded frame, in display orientation."""

    index: int  # 0-based position in the source
    image: np.ndarray  # float32 [H, W, 3], RGB, in [0, 1]
    pts: int | None  # presentation timestamp in info.time_base units (None for folders)
    name: str | None  # source file name for frame folders, else None


SHORT_FRAMES = 1.5  # frame intervals a decoded video may end before the end its container lists, unreported


class _End:
    """Where the frames decoded so far end: the last one's pts and duration (in time base units), and the pts
    before it."""

    def __init__(self) -> None:
        self.pts: int | None = None
        self.duration = 0
        self.previous: int | None = None

    def add(self, pts: int | None, duration: int | None) -> None:
        if pts is not None:
            self.previous, self.pts, self.duration = self.pts, pts, duration or 0

    def short_of(self, listed: float | None, time_base: Any, rate: Any) -> float | None:
        """Where decoding ended in seconds, if it ended more than :data:`SHORT_FRAMES` frame intervals (at the
        average ``rate``) before ``listed``, the end the container lists; else None.

        The last frame lasts its own duration where the file stores it (a variable-frame-rate file's long last
        frame included); where it does not, the longer of one frame interval and the gap before it."""
        if not (listed and time_base and rate) or self.pts is None:
            return None
        interval = 1 / float(rate)
        gap = float((self.pts - self.previous) * time_base) if self.previous is not None else 0.0
        last = float(self.duration * time_base) if self.duration > 0 else max(interval, gap)
        end = float(self.pts * time_base) + last
        return end if listed - end > SHORT_FRAMES * interval else None


def source_kind(source: str | Path) -> Literal["stdin", "url", "path"]:
    """What ``source`` names: standard input, a URL for FFmpeg (``scheme://...``, ``file:...``, ``pipe:N``) or a
    local path (see the module docstring). A Path is judged by its text too, so ``Path("-")`` is standard
    input; a URL must be a str (Path turns ``https://h/x`` into ``https:/h/x``)."""
    text = os.fspath(source)
    if text in STDIN_NAMES:
        return "stdin"
    m = _URL.match(text)
    if m and (m[2] or m[1].lower() in ("file", "pipe")):
        return "url"
    return "path"


def _stdin_target(fd: int) -> str | BinaryIO:
    """What av.open reads for standard input on ``fd``: FFmpeg's own ``pipe:N`` protocol, or, when a file is
    redirected in (``< clip.mp4``), a seekable file object on a copy of the descriptor, so that an mp4 with
    its index at the end opens too (``pipe:`` never seeks). A terminal is refused."""
    try:
        terminal, regular = os.isatty(fd), stat.S_ISREG(os.fstat(fd).st_mode)
    except OSError:  # closed: started with <&- or detached
        terminal, regular = None, False
    if terminal is not False:
        found = "a terminal" if terminal else "it closed"
        raise PahsError(
            f"expected a video piped into standard input, found {found}; pipe one in "
            "(e.g. ffmpeg -i in.mov -f yuv4mpegpipe - | ...) or name a file"
        )
    if regular:
        return os.fdopen(os.dup(fd), "rb")
    # FFmpeg reads the pipe itself rather than through sys.stdin.buffer: no Python callback (and GIL) per read,
    # no BufferedReader blocking for a whole buffer while a live producer (vspipe) has sent a frame, and no
    # seek attempts on a pipe; the demuxer knows it cannot seek and probes within what it has read.
    return f"pipe:{fd}"


def _is_stream_path(path: Path) -> bool:
    """Whether a local path can be read only once: a FIFO, a character device or a socket."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISCHR(mode) or stat.S_ISSOCK(mode)


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
    """Iterates :class:`Frame` objects of a video file, a frame folder, standard input or a URL; a context
    manager.

    ``source`` is what :func:`source_kind` accepts. ``path`` is the local path (None for standard input and
    URLs); ``name`` names the source in messages: the path, the URL as given, or "standard input". Videos can
    be iterated once. ``warnings`` lists what a damaged input lost (see the module docstring). :meth:`close`
    may be called from another thread while a :class:`Prefetcher` decodes: decoding stops.
    """

    info: VideoInfo

    def __init__(self, source: str | Path) -> None:
        kind = source_kind(source)
        self.path: Path | None = Path(source) if kind == "path" else None
        self.name = "standard input" if kind == "stdin" else str(self.path or source)
        self.warnings: list[str] = []
        self._container: Any = None
        self._file: BinaryIO | None = None  # our copy of a standard input redirected from a file
        self._files: list[Path] | None = None  # frame folders only
        self._lock = threading.Lock()  # guards the container against close() from another thread
        self._iterated = False
        self._kind = kind
        self._timeout: float | None = None  # seconds a network URL may go without data
        if kind == "stdin":
            target = _stdin_target(_STDIN_FD)
            if not isinstance(target, str):
                self._file = target
            self._is_stream = True
        elif kind == "url":
            target = os.fspath(source)
            scheme = _URL.match(target)[1].lower()  # type: ignore[index]
            if scheme not in ("file", "pipe"):
                # PyAV's timeout (an interrupt callback) rather than FFmpeg's options: rw_timeout is ignored by
                # rtsp and udp, and "timeout" means something else per protocol (rtmp: listen for a connection).
                self._timeout = NETWORK_TIMEOUT
            self._is_stream = scheme in LIVE_SCHEMES
        else:
            assert self.path is not None
            target = str(self.path)
            self._is_stream = _is_stream_path(self.path)
        self._target: str | BinaryIO = target  # what av.open reads
        if self.path is not None and self.path.is_dir():
            self._open_folder()
        else:
            self._open_video()

    # -- frame folders ---------------------------------------------------------------------------------------
    def _open_folder(self) -> None:
        assert self.path is not None
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
            self._container = av.open(self._target, timeout=self._timeout)
        except (av.error.FFmpegError, UnicodeDecodeError, ValueError, OSError) as e:
            self.close()
            check_interrupted()  # a signal while blocked opening (a FIFO with no writer) is the signal, not EINTR
            raise self._open_error(e) from None
        streams = self._container.streams
        if not streams.video:
            kinds = ", ".join(sorted({s.type for s in streams})) or "no"
            self.close()
            raise PahsError(f"expected a video stream in {self.name}, found {kinds} streams only; pass a video")
        stream = streams.video[0]
        # Streams: slice threads only, from the start: frame threads lose the frames in flight around damage,
        # and a stream cannot be opened again for the single-threaded retry (_decoded) that recovers them.
        stream.thread_type = "SLICE" if self._is_stream else "AUTO"
        self._threaded = not self._is_stream  # frame-threaded; a damaged file is decoded again without
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
            piped = self._kind == "stdin" and self._file is None  # an mp4/mov index last opens, then cannot read
            hint = " (an mp4 or mov streams only with its index first: -movflags faststart)" if piped else ""
            raise PahsError(
                f"expected at least one decodable frame in {self.name}, found none ({why}); check the input{hint}"
            )
        self._first = first
        stream, streams = self._stream, self._container.streams  # a damaged file may have been opened again
        self._expected = self._listed_end(stream)
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
            stream.codec_context.pix_fmt or first.format.name, bool(streams.audio), False, self._is_stream,
        )  # fmt: skip

    def _why(self, e: BaseException) -> str:
        """FFmpeg's reason for ``e`` on one line; PyAV's interrupt (a URL silent past its timeout) in words."""
        import av

        if isinstance(e, av.error.ExitError) and self._timeout is not None:
            return f"no data for {self._timeout:g} s"  # what PyAV's timeout raises
        return _reason(e)

    def _open_error(self, e: BaseException) -> PahsError:
        """The one-line error for a source FFmpeg cannot open."""
        import av

        why = self._why(e)
        if self._kind == "stdin":  # FFmpeg says the same for an empty pipe and for one that holds no video
            return PahsError(
                f"expected a video on standard input, found nothing FFmpeg can read ({why}); pipe one in as y4m, "
                "nut, matroska or mpegts (e.g. ffmpeg -i in.mov -f yuv4mpegpipe - | ...), or name a file"
            )
        if self._kind == "url":
            if isinstance(e, (av.error.ExitError, av.error.TimeoutError)):
                return PahsError(
                    f"expected an answer from {self.name} within {self._timeout:g} s, found none ({why}); "
                    "check the address and that the server is up"
                )
            return PahsError(
                f"expected a video FFmpeg can read at {self.name}, found an address it cannot open ({why}); "
                "check the URL"
            )
        return PahsError(
            f"expected a video FFmpeg can read, found {self.name} that it cannot open ({why}); "
            "check the file or convert it"
        )

    @staticmethod
    def _listed_end(stream: Any) -> float | None:
        """Where the video stream ends, in seconds on its own clock (a frame at pts p is at p x time base), as
        the container lists it (mp4, ts: a start and a duration; Matroska: a DURATION tag, the end of its last
        frame), or None."""
        if stream.duration and stream.time_base:
            return float((stream.duration + (stream.start_time or 0)) * stream.time_base)
        m = re.fullmatch(r"(\d+):(\d\d):(\d\d(?:\.\d+)?)", stream.metadata.get("DURATION", ""))
        return int(m[1]) * 3600 + int(m[2]) * 60 + float(m[3]) if m else None

    def _decoded(self) -> Iterator[Any]:
        """Decoded av.VideoFrames; damaged packets are skipped and a demuxer error ends the stream.

        Frame-threaded decoding (fast) loses the frames in flight around a damaged packet, sometimes silently
        (a truncated mp4 of a few frames decoded none): so at the first sign of damage in a threaded pass (a
        packet that fails, a demuxer error, fewer frames or seconds than the container lists) the file is
        decoded again single-threaded from the start, the frames already delivered are skipped, and the
        rest follow. Undamaged files are decoded once, threaded."""
        import av

        delivered, last = 0, _End()
        while True:
            threaded = self._threaded
            skip = delivered  # frames the threaded pass delivered, when this is the single-threaded retry
            retry = False
            packets = self._container.demux(self._stream)
            while not retry:
                with self._lock:
                    if self._container is None:  # closed, perhaps by another thread
                        return
                    try:
                        packet = next(packets, None)
                    except av.error.FFmpegError as e:
                        if threaded:
                            retry = True
                            break
                        self._stop_reason = f"reading stopped: {self._why(e)}"
                        packet = None
                    if packet is None:
                        retry = threaded and self._short(delivered, last)
                        frames = [] if retry else self._flush()
                    else:
                        try:
                            frames = packet.decode()
                        except av.error.FFmpegError as e:
                            if threaded:
                                retry = True
                                break
                            self._skipped += 1
                            self._skip_reason = self._skip_reason or self._why(e)
                            continue
                for f in frames:
                    if skip and (f.pts is None or last.pts is None or f.pts <= last.pts):
                        skip -= 1  # delivered by the threaded pass already
                        continue
                    skip = 0
                    delivered += 1
                    last.add(f.pts, f.duration)
                    yield f
                if packet is None:
                    break
            if not retry or not self._reopen_single_threaded():
                return

    def _flush(self) -> list[Any]:
        """Frames still inside the decoder at the end of the packets (PyAV's own end-of-stream packet does this
        too; after a demuxer error nothing else would)."""
        import av

        try:
            return list(self._stream.codec_context.decode(None))
        except (av.error.FFmpegError, ValueError):
            return []

    def _short(self, decoded: int, last: _End) -> bool:
        """Whether ``decoded`` frames, the last of them ``last``, fall short of what the container lists (a
        frame count, or where the stream ends)."""
        if self._stream.frames:
            return decoded < self._stream.frames
        rate = self._stream.average_rate or self._stream.guessed_rate
        return last.short_of(self._listed_end(self._stream), self._stream.time_base, rate) is not None

    def _reopen_single_threaded(self) -> bool:
        """Open the file again for a single-threaded pass; False if it was closed meanwhile or cannot be."""
        import av

        assert not self._is_stream, "a stream cannot be opened twice"
        with self._lock:
            if self._container is None:
                return False
            self._container.close()
            try:
                self._container = av.open(self._target, timeout=self._timeout)
            except (av.error.FFmpegError, OSError, ValueError):
                self._container = None
                return False
            self._stream = self._container.streams.video[0]
            self._stream.thread_type = "NONE"
            self._threaded = False
            self._skipped, self._skip_reason, self._stop_reason = 0, "", ""
        return True

    def _iter_video(self) -> Iterator[Frame]:
        index, last = 0, _End()
        frame, arr = self._first, self._first_array
        while frame is not None:
            if arr is None:
                arr = orient(frame.to_ndarray(format=self._fmt), *self._orientation)
            self._check_size(index, arr, "")
            self._corrupt += frame.is_corrupt
            pts = frame.pts
            if pts is None and self._pts_step:  # raw streams (.h264) carry no timestamps: one frame apart
                pts = 0 if last.pts is None else last.pts + self._pts_step
            yield Frame(index, _to_float(arr), pts, None)
            last.add(pts, frame.duration)
            index, arr = index + 1, None
            frame = next(self._frames, None)
        self._finish(index, last)

    def _finish(self, decoded: int, last: _End) -> None:
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
        if self.info.frames:
            if decoded < self.info.frames:
                lost.append(f"the container lists {self.info.frames} frames but {decoded} decode")
        else:  # no frame count (Matroska, MPEG-TS): where the last frame ends against where the container says
            end = last.short_of(self._expected, self.info.time_base, self.info.fps)
            if end is not None:
                lost.append(f"decoding ended {end:.2f} s into the {self._expected:.2f} s the container lists")
        if lost:
            label = self.path.name if self.path is not None else self.name
            why = "the stream is damaged or was cut short" if self._is_stream else "the file is damaged"
            message = (
                f"{label}: {'; '.join(lost)}; restored the {decoded} frames that decode "
                f"({why}: re-export it to recover more)"
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
        """Release the file; safe to call twice or from another thread. If another thread is inside FFmpeg
        for longer than :data:`CLOSE_TIMEOUT` (a stalled network read), the file is left to the process's exit
        rather than wait."""
        if not self._lock.acquire(timeout=CLOSE_TIMEOUT):
            return
        try:
            if self._container is not None:
                self._container.close()
                self._container = None
            if self._file is not None:
                self._file.close()
                self._file = None
        finally:
            self._lock.release()

    def __enter__(self) -> FrameReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def check_input(source: str | Path) -> None:
    """A local ``source`` exists and can be read (a folder: listed), or a one-line error; standard input and
    URLs are left to :func:`open_input`. Cheap: `pahs-run` calls it before the engine opens."""
    if source_kind(source) != "path":
        return
    path = Path(source)
    if not path.exists():
        raise PahsError(f"expected a video file or frame folder, found nothing at {path}; check the path")
    if not os.access(path, os.R_OK | (os.X_OK if path.is_dir() else 0)):
        raise PahsError(
            f"expected a readable video file or frame folder, found {path} not readable; check its permissions"
        )


def declared_size(source: str | Path) -> tuple[int, int] | None:
    """The frame size (width, height) a local video file's container declares, read from its header without
    decoding a frame; None for folders, streams, URLs, or a file that declares none or does not open
    (:func:`open_input` then says why)."""
    path = Path(source)
    if source_kind(source) != "path" or not path.is_file():  # a FIFO or device is read once: not probed
        return None
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                return None
            context = container.streams.video[0].codec_context
            return (context.width, context.height) if context.width and context.height else None
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError, OSError):
        return None


def is_pattern(text: str) -> bool:
    """Whether an input is a pattern for pahs to expand: glob characters in a local path that does not exist."""
    return source_kind(text) == "path" and glob.has_magic(text) and not os.path.lexists(text)


def is_batch(inputs: Sequence[str]) -> bool:
    """Several inputs, or a pattern: a batch (``-o`` is a folder; existing outputs are skipped)."""
    return len(inputs) > 1 or any(is_pattern(i) for i in inputs)


def open_input(source: str | Path) -> FrameReader:
    """Open a video file, a folder of image frames, standard input (``-``) or a URL for reading (see the module
    docstring)."""
    check_input(source)
    return FrameReader(source)
