"""Video and frame-folder input/output with PyAV (FFmpeg bundled in its wheels; no system FFmpeg needed).

Frames cross this module as numpy float32 [H, W, 3], RGB, values in [0, 1]. Sources deeper than 8 bits
are decoded to 16-bit RGB and divided by 65535, so 10-bit video keeps its precision.

Decisions:
- Input: anything FFmpeg decodes (first video stream), any pixel format; rotation metadata (the display
  matrix) is applied, so frames come out in display orientation. Folders of PNG/JPG/TIFF/BMP frames, in
  natural order (f2 before f10).
- A truncated or corrupt stream: the frames that decode are restored and a warning names the frame where
  decoding stopped (a damaged tail should not cost the whole video). A frame size change mid-stream is an
  error.
- Output: an .mp4 (H.264, yuv420p, ``crf``), or a folder of PNG frames (16-bit PNGs when the source has more
  than 8 bits). Frame count, size, frame rate and timestamps (pts in the source time base) are kept and
  the source's first audio stream is copied without re-encoding. H.264 4:2:0 needs even sizes: odd widths or
  heights are encoded as yuv444p instead, keeping the exact size (some hardware players lack 4:4:4).
  ``lossless`` uses libx264rgb at qp 0: bit-exact 8-bit RGB (FFmpeg-based players read it; some others do
  not). Frame folders have no frame rate: video made from them uses 25 frames/s.
- Outputs are written under a temporary name in the target folder and renamed when complete; an
  interrupted or failed run leaves nothing behind.
"""

from __future__ import annotations

import math
import os
import queue
import re
import shutil
import signal
import tempfile
import threading
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from pahs_export.errors import PahsError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
FOLDER_FPS = Fraction(25)


@dataclass(frozen=True)
class VideoInfo:
    """What a source is; also what an output should be."""

    width: int  # display width (after rotation)
    height: int
    frames: int | None  # frame count if known
    fps: Fraction | None  # average frame rate; None for frame folders
    time_base: Fraction | None  # unit of Frame.pts
    rotation: int  # degrees applied to decoded frames (0, 90, 180, 270)
    bit_depth: int  # 8, 10, 12, 16
    pix_fmt: str | None  # source pixel format
    has_audio: bool
    is_folder: bool


@dataclass(frozen=True)
class Frame:
    index: int
    image: np.ndarray  # float32 [H, W, 3] in [0, 1]
    pts: int | None  # presentation timestamp in info.time_base units (None for folders)
    name: str | None  # source file name for frame folders


def _natural_key(name: str) -> list:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def _to_float(arr: np.ndarray) -> np.ndarray:
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    arr = arr[..., :3]
    scale = 65535.0 if arr.dtype == np.uint16 else 255.0
    return (arr.astype(np.float32) / np.float32(scale)).copy()


class FrameReader:
    """Iterate the frames of a video file or a frame folder. Use as a context manager."""

    info: VideoInfo

    def __init__(self, path: Path) -> None:
        self.path = path
        self.warnings: list[str] = []
        self._container = None
        self._files: list[Path] | None = None  # frame folders only
        if path.is_dir():
            self._files = sorted(
                (p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=lambda p: _natural_key(p.name)
            )
            if not self._files:
                raise PahsError(
                    f"expected image frames ({', '.join(IMAGE_SUFFIXES)}) in the folder {path}, found none; "
                    "pass a folder of frames or a video file"
                )
            first = self._read_image(self._files[0])
            depth = 16 if first.dtype == np.uint16 else 8
            h, w = first.shape[:2]
            self.info = VideoInfo(
                w, h, len(self._files), None, None, 0, depth, f"rgb{48 if depth > 8 else 24}", False, True
            )
            return
        self._open_video()

    def _read_image(self, p: Path) -> np.ndarray:
        """uint8 or uint16 [H,W,3] via FFmpeg's image decoders (16-bit PNGs keep their depth)."""
        import av

        try:
            with av.open(str(p)) as c:
                frame = next(c.decode(video=0))
                deep = max(comp.bits for comp in frame.format.components) > 8
                return frame.to_ndarray(format="rgb48le" if deep else "rgb24")
        except (av.error.FFmpegError, StopIteration, ValueError) as e:
            raise PahsError(
                f"expected a readable image, could not read {p} ({type(e).__name__}); replace or remove it"
            ) from None

    def _open_video(self) -> None:
        import av

        try:
            self._container = av.open(str(self.path))
        except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as e:
            raise PahsError(
                f"expected a video FFmpeg can read, found {self.path} that it cannot open ({e.__class__.__name__}); "
                "check the file or convert it"
            ) from None
        if not self._container.streams.video:
            self._container.close()
            raise PahsError(f"expected a video stream in {self.path}, found none (audio only?); pass a video file")
        stream = self._container.streams.video[0]
        stream.thread_type = "AUTO"
        cc = stream.codec_context
        pix_fmt = cc.pix_fmt or (stream.format.name if stream.format else None)
        try:
            depth = max(c.bits for c in av.VideoFormat(pix_fmt).components) if pix_fmt else 8
        except (ValueError, av.error.FFmpegError):
            depth = 8
        self._stream = stream
        self._fmt = "rgb48le" if depth > 8 else "rgb24"
        self._frames = self._container.decode(stream)
        # Peek the first frame: it carries the rotation (display matrix) and the decoded size, which the
        # output needs before anything is written; and a file with no decodable frame fails here.
        try:
            first = next(self._frames, None)
        except av.error.FFmpegError as e:
            self.close()
            raise PahsError(
                f"expected decodable video in {self.path}, found a stream FFmpeg cannot decode "
                f"({e.__class__.__name__}); check the file"
            ) from None
        if first is None:
            self.close()
            raise PahsError(f"expected at least one frame in {self.path}, found none; check the file")
        self._first = first
        rotation = int(getattr(first, "rotation", 0) or 0) % 360
        arr = self._rotate(first.to_ndarray(format=self._fmt), rotation)
        self.info = VideoInfo(
            arr.shape[1], arr.shape[0], stream.frames or None, stream.average_rate and Fraction(stream.average_rate),
            Fraction(stream.time_base) if stream.time_base else None, rotation, depth, pix_fmt,
            bool(self._container.streams.audio), False,
        )  # fmt: skip

    @staticmethod
    def _rotate(arr: np.ndarray, rotation: int) -> np.ndarray:
        """Apply FFmpeg's display rotation (counter-clockwise degrees) to a decoded [H,W,3] array."""
        return np.ascontiguousarray(np.rot90(arr, k=rotation // 90)) if rotation else arr

    def __iter__(self) -> Iterator[Frame]:
        if self._files is not None:
            size = (self.info.height, self.info.width)
            for i, p in enumerate(self._files):
                image = _to_float(self._read_image(p))
                if image.shape[:2] != size:
                    raise PahsError(
                        f"expected every frame to be {size[1]}x{size[0]}, found frame {i} ({p.name}) of "
                        f"{image.shape[1]}x{image.shape[0]}; split the sequence where its size changes"
                    )
                yield Frame(i, image, None, p.name)
            return
        yield from self._decode()

    def _decode(self) -> Iterator[Frame]:
        import av

        size = (self.info.height, self.info.width)
        index = 0
        frame = self._first
        try:
            while frame is not None:
                arr = self._rotate(frame.to_ndarray(format=self._fmt), self.info.rotation)
                if arr.shape[:2] != size:
                    raise PahsError(
                        f"expected every frame to be {size[1]}x{size[0]}, found frame {index} of "
                        f"{arr.shape[1]}x{arr.shape[0]}; split the video where its size changes"
                    )
                yield Frame(index, _to_float(arr), frame.pts, None)
                index += 1
                frame = next(self._frames, None)
        except av.error.FFmpegError as e:
            self._warn(f"decoding stopped at frame {index} ({e.__class__.__name__})", index)
            return
        if self.info.frames and index < self.info.frames:  # the container promised more: a truncated file
            self._warn(f"the container lists {self.info.frames} frames but only {index} decode", index)

    def _warn(self, what: str, decoded: int) -> None:
        message = f"{self.path.name}: {what}; restoring the {decoded} frames that decoded (the file is damaged)"
        self.warnings.append(message)
        warnings.warn(message, stacklevel=3)

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None

    def __enter__(self) -> FrameReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_input(path: str | Path) -> FrameReader:
    """Open a video file or a folder of frames."""
    path = Path(path)
    if not path.exists():
        raise PahsError(f"expected a video file or frame folder, found nothing at {path}; check the path")
    return FrameReader(path)


@dataclass(frozen=True)
class OutputOptions:
    """How outputs are encoded."""

    crf: int = 18  # H.264 quality for mp4 (lower is better; 18 is visually lossless for most content)
    lossless: bool = False  # libx264rgb at qp 0: bit-exact 8-bit RGB
    overwrite: bool = False  # replace an existing output
    preset: str = "medium"  # x264 speed/size trade-off


def output_is_folder(path: str | Path) -> bool:
    """-o names a folder when it ends with a path separator or is an existing directory."""
    return str(path).endswith(("/", os.sep)) or Path(path).is_dir()


class FrameWriter:
    """Writes frames to a temporary output, renamed to the target on :meth:`close`."""

    def __init__(
        self, target: Path, info: VideoInfo, source: Path | None, options: OutputOptions, folder: bool
    ) -> None:
        self.target, self.info, self.source, self.options = target, info, source, options
        self.count = 0
        parent = target.parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
            if folder:
                self.tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=parent))
                self._video = None
            else:
                fd, name = tempfile.mkstemp(
                    prefix=f".{target.name}.partial-", suffix=target.suffix or ".mp4", dir=parent
                )
                os.close(fd)
                self.tmp = Path(name)
                try:
                    self._open_video()
                except BaseException:
                    self.tmp.unlink(missing_ok=True)  # an encoder that cannot start leaves nothing behind
                    raise
        except OSError as e:
            raise PahsError(f"cannot write under {parent}: {e.strerror}; choose a writable output") from None

    def _open_video(self) -> None:
        import av

        self._video = av.open(str(self.tmp), "w", format="mp4" if self.target.suffix.lower() in ("", ".mp4") else None)
        rate = self.info.fps or FOLDER_FPS
        codec = "libx264rgb" if self.options.lossless else "libx264"
        stream = self._video.add_stream(codec, rate=rate)
        stream.width, stream.height = self.info.width, self.info.height
        odd = self.info.width % 2 or self.info.height % 2
        stream.pix_fmt = "rgb24" if self.options.lossless else ("yuv444p" if odd else "yuv420p")
        stream.options = (
            {"qp": "0"} if self.options.lossless else {"crf": str(self.options.crf), "preset": self.options.preset}
        )
        # The mp4 muxer rejects coarse time bases such as 1/25: use the source's divided by an integer, so
        # every source timestamp maps exactly (pts * multiple); frame folders get 1/(512 fps).
        source_tb = self.info.time_base or Fraction(1) / Fraction(rate)
        self._pts_multiple = 512 if self.info.time_base is None else max(1, math.ceil(source_tb * 10000))
        stream.time_base = source_tb / self._pts_multiple
        self._stream = stream
        self._audio_in = None
        if self.source is not None and Path(self.source).is_file() and self.info.has_audio:
            self._audio_in = av.open(str(self.source))
            self._audio_out = self._video.add_stream_from_template(self._audio_in.streams.audio[0])

    def write(self, image: np.ndarray, pts: int | None = None, name: str | None = None) -> None:
        """Append one frame [H,W,3] float in [0, 1] (clipped); ``pts`` in the source time base."""
        if self._video is None:
            self._write_png(image, name)
        else:
            import av

            arr = np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(arr), format="rgb24")
            source_pts = pts if pts is not None and self.info.time_base else self.count
            frame.pts = source_pts * self._pts_multiple
            frame.time_base = self._stream.time_base
            for packet in self._stream.encode(frame):
                self._video.mux(packet)
        self.count += 1

    def _write_png(self, image: np.ndarray, name: str | None) -> None:
        """One PNG through FFmpeg's encoder: 16-bit (rgb48) for deep sources, else 8-bit."""
        import av

        deep = self.info.bit_depth > 8
        scale, dtype, fmt, png_fmt = (
            (65535.0, np.uint16, "rgb48le", "rgb48be") if deep else (255.0, np.uint8, "rgb24", "rgb24")
        )
        arr = np.ascontiguousarray(np.clip(np.rint(image * scale), 0, scale).astype(dtype))
        codec = av.CodecContext.create("png", "w")
        codec.width, codec.height, codec.pix_fmt = arr.shape[1], arr.shape[0], png_fmt
        packets = codec.encode(av.VideoFrame.from_ndarray(arr, format=fmt)) + codec.encode(None)
        stem = Path(name).stem if name else f"{self.count:06d}"
        (self.tmp / f"{stem}.png").write_bytes(b"".join(bytes(p) for p in packets))

    def close(self) -> None:
        """Finish the output and move it to the target name."""
        if self._video is not None:
            for packet in self._stream.encode():
                self._video.mux(packet)
            if self._audio_in is not None:
                for packet in self._audio_in.demux(self._audio_in.streams.audio[0]):
                    if packet.dts is None:
                        continue
                    packet.stream = self._audio_out
                    self._video.mux(packet)
                self._audio_in.close()
            self._video.close()
            self._video = None
        umask = os.umask(0)
        os.umask(umask)
        self.tmp.chmod((0o777 if self.tmp.is_dir() else 0o666) & ~umask)  # mkstemp/mkdtemp made it private
        if self.target.exists():
            shutil.rmtree(self.target) if self.target.is_dir() else self.target.unlink()
        self.tmp.rename(self.target)

    def abort(self) -> None:
        """Drop the temporary output; the target is left as it was."""
        try:
            if self._video is not None:
                self._video.close()
                self._video = None
        except Exception:  # the container may be half-written; it is deleted anyway
            pass
        if self.tmp.is_dir():
            shutil.rmtree(self.tmp, ignore_errors=True)
        else:
            self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> FrameWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def open_output(
    path: str | Path, info: VideoInfo, *, source: str | Path | None = None, options: OutputOptions = OutputOptions()
) -> FrameWriter:
    """A writer for an .mp4 or a PNG frame folder (see the module docstring for what is kept)."""
    target = Path(path)
    folder = output_is_folder(path)  # decided on the raw string: Path() drops a trailing "/"
    if source is not None and target.resolve() == Path(source).resolve():
        raise PahsError(f"expected an output different from the input, found both at {target}; choose another -o")
    if target.exists() and not options.overwrite and not (target.is_dir() and not any(target.iterdir())):
        raise PahsError(f"{target} already exists; pass --overwrite to replace it or choose another -o")
    if not folder and target.suffix.lower() not in (".mp4", ".mov", ".mkv"):
        raise PahsError(f"expected an output ending in .mp4 (or a folder ending in /), found {target.name}")
    return FrameWriter(target, info, Path(source) if source is not None else None, options, folder)


class Prefetcher:
    """Iterate ``iterable`` in a background thread, ``maxsize`` items ahead (decoding overlaps inference)."""

    _DONE = object()

    def __init__(self, iterable: Iterable, maxsize: int = 8) -> None:
        self._queue: queue.Queue = queue.Queue(maxsize)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(iter(iterable),), daemon=True)
        self._thread.start()

    def _run(self, it: Iterator) -> None:
        try:
            for item in it:
                while not self._stop.is_set():
                    try:
                        self._queue.put((item, None), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if self._stop.is_set():
                    return
            self._queue.put((self._DONE, None))
        except BaseException as e:  # handed to the consumer
            self._queue.put((self._DONE, e))

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
            self._stop.set()


class BackgroundWriter:
    """Encode in a background thread through a bounded queue; errors surface on the next call."""

    _CLOSE = object()

    def __init__(self, writer: FrameWriter, maxsize: int = 8) -> None:
        self.writer = writer
        self._queue: queue.Queue = queue.Queue(maxsize)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is self._CLOSE:
                return
            if self._error is None:
                try:
                    self.writer.write(*item)
                except BaseException as e:
                    self._error = e

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def write(self, image: np.ndarray, pts: int | None = None, name: str | None = None) -> None:
        self._raise()
        self._queue.put((image, pts, name))

    def close(self) -> None:
        self._queue.put(self._CLOSE)
        self._thread.join()
        self._raise()
        self.writer.close()

    def abort(self) -> None:
        self._queue.put(self._CLOSE)
        self._thread.join()
        self.writer.abort()


def install_termination_handler() -> None:
    """Make SIGTERM raise KeyboardInterrupt in the main thread, so outputs are aborted cleanly."""
    if threading.current_thread() is not threading.main_thread():
        return

    def handler(signum, frame) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, handler)
