"""`pahs-run`'s work: decode, pad, restore through a backend, crop, encode; with verification and a
side-by-side comparison. Decoding, inference and encoding run in separate threads with bounded queues.

Decisions:

- Everything a run can refuse is refused before the first frame is restored and before any output is
  created: the frame size against a memory ceiling (:func:`check_frame_size`, ``--max-pixels``), the room
  for the ``--lookahead all`` spill (:func:`check_spill_space`), ``--compare`` naming ``-o``
  and a ``--verify`` count below one (:mod:`runtime.checks`, which `pahs-run` calls before the engine opens).
- A termination signal is acted on at the next frame or backend step (:mod:`runtime.io.threads`): outputs are
  aborted, the spill folder removed, threads joined within bounds, and :class:`~runtime.io.Interrupted` raised.
- Outputs are finished (encoder flushed, files fsynced) first and renamed into place last, all together, so
  an interruption never leaves the restored video without its side-by-side or the reverse.
- Verification (:func:`verify_frames`) streams: the backend and the reference each decode the video and
  restore it side by side, so memory is that of two runs, whatever the number of frames compared.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from pahs_export.errors import PahsError
from pahs_export.model import pad_to_multiple
from pahs_export.presets import DEFAULT_LOOKAHEAD

from .backends import Backend
from .checks import check_max_pixels, check_outputs, check_values, check_verify_count
from .driver import DEFAULT_CHUNK, SPILL_BYTES_PER_VALUE, restore_exact, restore_stream
from .io import (
    BackgroundWriter,
    Frame,
    OutputOptions,
    Prefetcher,
    VideoInfo,
    check_interrupted,
    open_input,
    open_output,
)
from .progress import ProgressLines

log = logging.getLogger("pahs")  # what a run is writing, at INFO: the command-line tools show it on stderr
GB = 1 << 30

# Peak working memory of one backend step, bytes per padded pixel per feature channel c (measured: ONNX Runtime
# CPU, pahs-t 512x512 to 2048x2048 and pahs-s 512x512, 20 B; torch CPU 12-14 B), and per entry of the attention
# matrix, which has (pixels / 256)^2 entries (ONNX Runtime at 2048x2048: 30 B, the logits, softmax and
# products with the arena's rounding). Backends not measured (TensorRT) take the larger figures.
STEP_BYTES_PER_PIXEL_CHANNEL = {"onnxruntime": 20.0, "torch": 14.0}
DEFAULT_STEP_BYTES_PER_PIXEL_CHANNEL = 20.0
ATTENTION_BYTES_PER_ENTRY = 32.0
QUEUE_FRAMES = 9  # frames a Prefetcher or BackgroundWriter holds: its queue of 8 and the one in hand
ENCODER_BYTES_PER_PIXEL = 100.0  # x264's lookahead (about 40 frames of YUV 4:2:0) and FFmpeg's buffers
MEMORY_HEADROOM = 0.85  # share of the free memory a run plans to use: the estimate is not exact


@dataclass(frozen=True)
class RunOptions:
    """How a video is restored. ``None`` fields take the documented defaults."""

    lookahead: int | None = DEFAULT_LOOKAHEAD  # future frames each frame sees at least; None = all (exact)
    chunk: int = DEFAULT_CHUNK  # frames restored per backward run (cost (chunk+lookahead)/chunk)
    output: OutputOptions = field(default_factory=OutputOptions)  # encoder settings
    progress: bool = True  # progress bars on stderr
    spill_dir: Path | None = None  # where --lookahead all keeps its temporary frames (default: system temp)
    max_pixels: int | None = None  # largest frame (width x height) accepted; None: what free memory holds


def check_options(options: RunOptions, backend: Backend, lookahead_given: bool) -> None:
    """The options against the open engine (an online one takes no --lookahead), and their values
    (:func:`runtime.checks.check_values`)."""
    if not backend.bidirectional and lookahead_given:
        raise PahsError(
            "expected --lookahead only for bidirectional engines, found a unidirectional (online) one; "
            "drop --lookahead: online models see no future frames"
        )
    check_values(options.lookahead, options.chunk, options.max_pixels, options.spill_dir)


# -- memory -----------------------------------------------------------------------------------------------------


def _padded(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def memory_needed(
    backend: Backend, options: RunOptions, width: int, height: int, compare: bool = False
) -> dict[str, float]:
    """Estimated peak bytes of a run on ``width`` x ``height`` frames, by memory pool: "host", and the
    backend's device (e.g. "cuda:0") when it is not the CPU. The terms: frames and features the driver holds
    (chunk + lookahead of them, or chunk with --lookahead all), one step's working memory and attention
    matrix, and the frames in the decode and encode queues."""
    c = backend.geometry.channels
    m = backend.size_multiple
    padded = float(_padded(width, m) * _padded(height, m))
    source = float(width * height)
    frame = 12.0 * padded  # float32 RGB
    feature = 4.0 * c * padded / 16  # float32 [c, H/4, W/4]
    state = 4.0 * (c + backend.geometry.hidden) * padded / 16
    k, n = options.chunk, options.lookahead
    if not backend.bidirectional:
        held, inflight = frame + 2 * state, 1
    elif n is None:  # chunk frames read back from the spill and their backward features
        held, inflight = k * (frame + feature) + 3 * state, 0
    else:  # pending frames and forward features for chunk + lookahead, backward features for the chunk
        held, inflight = (k + n) * (frame + feature) + k * feature + 3 * state, k + n
    per_channel = STEP_BYTES_PER_PIXEL_CHANNEL.get(backend.name, DEFAULT_STEP_BYTES_PER_PIXEL_CHANNEL)
    step = per_channel * c * padded + ATTENTION_BYTES_PER_ENTRY * (padded / 256) ** 2
    outputs = 1 + (2 if compare else 0)  # the side-by-side is twice as wide
    host = 12.0 * source * (inflight + QUEUE_FRAMES * (1 + outputs)) + ENCODER_BYTES_PER_PIXEL * source * outputs
    device = held + step
    if backend.device.type == "cpu":
        return {"host": host + device}
    return {"host": host + (k * frame if n is None else 0), str(backend.device): device}


def available_memory(pool: str) -> float | None:
    """Free bytes in a memory pool ("host" or a torch device such as "cuda:0"), or None when unknown. The host
    figure is Linux's MemAvailable (free pages otherwise), lowered to a cgroup's limit when the process runs in
    a container with one."""
    if pool != "host":
        device = torch.device(pool)
        if device.type == "cuda" and torch.cuda.is_available():
            return float(torch.cuda.mem_get_info(device)[0])
        return None
    free = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    free = float(line.split()[1]) * 1024
    except OSError:
        pass
    if free is None:
        try:
            free = float(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (ValueError, OSError, AttributeError):
            return None
    for limit_file, usage_file in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),  # cgroup v2
        ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"),  # v1
    ):
        try:
            limit, usage = Path(limit_file).read_text().strip(), Path(usage_file).read_text().strip()
        except OSError:
            continue
        if limit.isdigit() and usage.isdigit() and int(limit) < 1 << 60:  # v1 says "no limit" with a huge number
            free = min(free, float(int(limit) - int(usage)))
        break
    return free


def default_max_pixels(backend: Backend, options: RunOptions, compare: bool = False) -> int | None:
    """The largest frame, in pixels, whose :func:`memory_needed` fits :data:`MEMORY_HEADROOM` of the free
    memory of every pool (square frames; padding included); None when free memory is unknown."""
    pools = memory_needed(backend, options, 16, 16, compare).keys()
    budgets = {pool: available_memory(pool) for pool in pools}
    if any(b is None for b in budgets.values()):
        return None

    def fits(pixels: int) -> bool:
        side = max(16, math.isqrt(pixels))
        need = memory_needed(backend, options, side, max(16, pixels // side), compare)
        return all(need[p] <= MEMORY_HEADROOM * budgets[p] for p in need)  # type: ignore[operator]

    lo, hi = 0, 1 << 40
    while lo < hi:  # the cost grows with the pixel count: bisect for the last one that fits
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid - 1)
    return lo


def check_frame_size(info: VideoInfo, backend: Backend, options: RunOptions, compare: bool = False) -> None:
    """Refuse frames larger than ``options.max_pixels`` or, without it, than what free memory holds at these
    options (:func:`default_max_pixels`), with one line saying what to do; before any inference, where the
    alternative is an allocator failing deep inside the backend (or the kernel's OOM killer)."""
    pixels = info.width * info.height
    size = f"{info.width}x{info.height} ({pixels:,} pixels)"
    if options.max_pixels is not None:
        check_max_pixels(info.width, info.height, options.max_pixels)
        return
    limit = default_max_pixels(backend, options, compare)
    if limit is None or pixels <= limit:
        return
    need = memory_needed(backend, options, info.width, info.height, compare)
    pool = max(need, key=lambda p: need[p] / max(1.0, available_memory(p) or 1.0))
    free = available_memory(pool) or 0.0
    window = "--lookahead all" if options.lookahead is None else f"--lookahead {options.lookahead}"
    raise PahsError(
        f"expected frames of at most {limit:,} pixels, what {free / GB:.1f} GB of free {pool} memory holds for "
        f"{backend.name} at --chunk {options.chunk} {window}, found {size}, about {need[pool] / GB:.1f} GB; "
        f"downscale the video, lower --chunk or --lookahead, or pass --max-pixels {pixels} to try anyway"
    )


def spill_bytes(info: VideoInfo, backend: Backend, chunk: int) -> int | None:
    """Disk bytes the ``--lookahead all`` spill of ``info`` takes: the frames, and one backward state per
    chunk (None: the frame count is unknown)."""
    if info.frames is None:
        return None
    m = backend.size_multiple
    padded = _padded(info.width, m) * _padded(info.height, m)
    state = 4 * (backend.geometry.channels + backend.geometry.hidden) * padded // 16
    return info.frames * 3 * padded * SPILL_BYTES_PER_VALUE + state * ((info.frames - 1) // chunk)


def check_spill_space(info: VideoInfo, backend: Backend, options: RunOptions) -> None:
    """With ``--lookahead all``, refuse at once when the spill folder's disk has less room than the spill
    takes (a run would otherwise fail after the whole backward pass)."""
    if options.lookahead is not None or not backend.bidirectional:
        return
    need = spill_bytes(info, backend, options.chunk)
    folder = Path(options.spill_dir) if options.spill_dir is not None else Path(tempfile.gettempdir())
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return  # the spill itself says what is wrong with the folder
    if need is not None and need > free:
        raise PahsError(
            f"expected {_size(need)} free for the --lookahead all spill of {info.frames} frames in "
            f"{folder.absolute()}, found {_size(free)}; free space, pass --spill-dir with a folder on a disk with "
            "room, or give --lookahead a number of frames"
        )


def _size(n: float) -> str:
    """Bytes for people: 737 kB, 1.5 GB."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{int(n)} bytes"


# -- restoring --------------------------------------------------------------------------------------------------


def restore_padded(backend: Backend, frames: Iterable[Tensor], options: RunOptions, **exact: Any) -> Iterator[Any]:
    """Restored padded frames [3,H',W'] in order, with the lookahead/chunk semantics of ``options``
    (``lookahead=None``: the exact full-sequence result; ``exact`` goes to :func:`restore_exact`, e.g.
    ``with_inputs``). ``poll`` (default: the interruption check) runs before every backend step."""
    poll = exact.pop("poll", check_interrupted)
    if options.lookahead is None:
        return _finite(restore_exact(backend, frames, options.chunk, options.spill_dir, poll=poll, **exact))
    return _finite(restore_stream(backend, frames, options.lookahead, options.chunk, poll=poll))


def _finite(restored: Iterator[Any]) -> Iterator[Any]:
    """``restored`` (tensors, or pairs ending in one), stopped with a one-line error at the first output holding
    NaN or Inf: the recurrent state carries a non-finite value into every later frame, so nothing after it is
    worth writing (an FP16 overflow, or damaged weights, shows here rather than as black or white frames)."""
    try:
        for index, item in enumerate(restored):
            out = item[-1] if isinstance(item, tuple) else item
            if not bool(torch.isfinite(out).all()):
                raise PahsError(
                    f"expected finite values from the engine, found NaN or Inf in restored frame {index} (the "
                    "recurrent state would carry them into every later frame); run at fp32, or check the weights"
                )
            yield item
    finally:
        restored.close()


def pad_frame(image: np.ndarray, multiple: int) -> Tensor:
    """[H,W,3] float32 -> [3,H',W'] with H', W' the next multiples of ``multiple`` (reflect padding, bottom/right)."""
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)
    return pad_to_multiple(x, multiple)[0]


def to_image(x: Tensor, height: int, width: int) -> np.ndarray:
    """Restored [3,H',W'] -> cropped [H,W,3] float32 clamped to [0, 1]."""
    return x[:, :height, :width].clamp(0, 1).permute(1, 2, 0).float().cpu().numpy()


def check_size(info: VideoInfo) -> None:
    if info.width < 16 or info.height < 16:
        raise PahsError(f"expected frames of at least 16x16, found {info.width}x{info.height}; upscale the video first")


_NO_IMAGE = np.zeros((0, 0, 3), np.float32)


def restored_frames(
    backend: Backend, frames: Iterator[Frame], info: VideoInfo, options: RunOptions, bars: _Bars
) -> Iterator[tuple[Frame, Tensor]]:
    """Pairs of (source frame, restored [3,H',W'] padded tensor), in order, streaming. With ``--lookahead
    all`` the source frames are not kept while the whole video is spilled: their images come back from the
    spill (exactly: see :class:`runtime.driver.SpilledFrames`)."""
    exact = options.lookahead is None
    inflight: deque[Frame] = deque()  # frames awaiting their output; at most chunk+lookahead images

    def inputs() -> Iterator[Tensor]:
        for frame in frames:
            check_interrupted()
            if frame.image.shape[:2] != (info.height, info.width):
                raise PahsError(
                    f"expected every frame to be {info.width}x{info.height}, found frame {frame.index} of "
                    f"{frame.image.shape[1]}x{frame.image.shape[0]}; split the video where its size changes"
                )
            inflight.append(replace(frame, image=_NO_IMAGE) if exact else frame)
            bars.read()
            yield pad_frame(frame.image, backend.size_multiple)

    if not exact:
        restored = restore_padded(backend, inputs(), options)
        try:
            for out in restored:
                yield inflight.popleft(), out
        finally:
            restored.close()
        return
    pairs = restore_padded(backend, inputs(), options, on_backward=lambda _: bars.backward(), with_inputs=True)
    try:
        for x, out in pairs:
            yield replace(inflight.popleft(), image=to_image(x, info.height, info.width)), out
    finally:
        pairs.close()  # the spill folder goes with it


class _Bars:
    """Progress of one video. On a terminal: bars (frames/s, ETA) for reading and restoring, the backward pass
    too for --lookahead all. Off one (a log, CI, a scheduler): plain lines on the ``pahs`` logger at a bounded
    rate and at the end (:class:`runtime.progress.ProgressLines`), for the backward pass of --lookahead all,
    then for the restored frames; the command-line tools show them on stderr, and ``--quiet`` none."""

    def __init__(self, total: int | None, enabled: bool, exact: bool) -> None:
        self.enabled = enabled and _is_terminal(sys.stderr)
        self.total, self.exact = total, exact
        self.lines: ProgressLines | None = None  # off a terminal only
        if enabled and not self.enabled:
            self.lines = ProgressLines("backward pass" if exact else "restored", total, log.info)
        if not self.enabled:
            return
        from tqdm import tqdm

        kw = {"total": total, "unit": "frame", "dynamic_ncols": True, "leave": True}
        self.pass1 = tqdm(desc="read + backward" if exact else "read", position=0, **kw)
        self.pass2 = tqdm(desc="restore", position=1, **kw)

    def read(self) -> None:
        if self.enabled and not self.exact:
            self.pass1.update()

    def backward(self) -> None:
        if self.lines is not None:
            self.lines.update()
        if self.enabled:
            self.pass1.update()

    def wrote(self) -> None:
        if self.lines is not None:
            if self.lines.what != "restored":  # --lookahead all: the backward pass is over; its rate is its own
                self.lines.finish()
                self.lines = ProgressLines("restored", self.total, log.info, interval=self.lines.interval)
            self.lines.update()
        if self.enabled:
            self.pass2.update()

    def finish(self) -> None:
        """Every frame is restored: the last line (off a terminal)."""
        if self.lines is not None:
            self.lines.finish()

    def close(self) -> None:
        if self.enabled:
            self.pass1.close()
            self.pass2.close()


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # replaced by an object without isatty, or closed
        return False


def side_by_side(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Input | restored, each [H,W,3], with a 4-pixel grey separator."""
    sep = np.full((left.shape[0], 4, 3), 0.5, dtype=np.float32)
    return np.concatenate([left, sep, right], axis=1)


@dataclass(frozen=True)
class RunSummary:
    """What a run did."""

    frames: int  # frames restored (and written)
    width: int  # frame size, as decoded (display orientation)
    height: int
    output: str | None  # where the restored video went ("-": standard output)
    compare: str | None  # where the side-by-side went
    seconds: float = 0.0  # wall time from opening the input to the outputs in place
    first_frame_seconds: float | None = None  # from opening the input to the first restored frame
    fps: float | None = None  # the source's frame rate (None: a frame folder)

    @property
    def frames_per_second(self) -> float:
        """Restored frames per second of wall time, decoding and encoding included."""
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def run_video(
    source: str | Path, output: str | None, backend: Backend, options: RunOptions, compare: str | None = None
) -> RunSummary:
    """Restore ``source`` (video file, frame folder, URL, or "-" for standard input) into ``output`` (a file,
    a folder ending in "/", or "-" for standard output) and, if given, a side-by-side into ``compare``. Outputs
    are strings so that a trailing "/" (a PNG folder) is kept. Checks everything it can before the first frame
    is restored; on any error or interruption no output is left (a stream to standard output stops where it
    is), and a termination signal raises :class:`runtime.io.Interrupted`."""
    check_outputs(source, output, compare)
    started = time.monotonic()
    first: float | None = None
    with open_input(source) as reader:
        info = reader.info
        check_size(info)
        check_frame_size(info, backend, options, compare is not None)
        check_spill_space(info, backend, options)
        check_interrupted()
        bars = _Bars(info.frames, options.progress, exact=options.lookahead is None)
        writers: list[BackgroundWriter] = []
        prefetch: Prefetcher | None = None
        restored: Iterator[tuple[Frame, Tensor]] | None = None
        try:
            if output is not None:
                writers.append(BackgroundWriter(open_output(output, info, source=source, options=options.output)))
            if compare is not None:
                wide = VideoInfo(**{**info.__dict__, "width": 2 * info.width + 4})
                writers.append(BackgroundWriter(open_output(compare, wide, source=source, options=options.output)))
            for w in writers:
                log.info("writing %s", w.writer.describe())
            prefetch = Prefetcher(reader)
            restored = restored_frames(backend, iter(prefetch), info, options, bars)
            count = 0
            for frame, out in restored:
                check_interrupted()
                image = to_image(out, info.height, info.width)
                if output is not None:
                    writers[0].write(image, frame.pts, frame.name)
                if compare is not None:
                    writers[-1].write(side_by_side(frame.image, image), frame.pts, frame.name)
                count += 1
                first = first if first is not None else time.monotonic() - started
                bars.wrote()
            if count == 0:
                raise PahsError(f"expected at least one decodable frame in {source}, found none; check the file")
            bars.finish()
            for w in writers:  # the slow part: flush encoders, fsync
                w.finish()
            check_interrupted()  # the last point where a signal discards the run
            for w in writers:  # renames only
                w.close()
        except BaseException:
            for w in writers:
                _quietly(w.abort)
            raise
        finally:
            if restored is not None:
                _quietly(restored.close)  # type: ignore[attr-defined]
            if prefetch is not None:
                _quietly(prefetch.close)
            bars.close()
    fps = float(info.fps) if info.fps else None
    return RunSummary(count, info.width, info.height, output, compare, time.monotonic() - started, first, fps)


def _quietly(cleanup: Callable[[], Any]) -> None:
    """Run a cleanup on the way out of a failure without letting its own error replace the first one."""
    try:
        cleanup()
    except Exception:
        pass


# -- verification -----------------------------------------------------------------------------------------------


def verify_frames(
    source: str | Path, backend: Backend, reference: Backend, options: RunOptions, limit: int | None = None
) -> Iterator[tuple[int, Tensor, Tensor]]:
    """(index, ``backend``'s frame, ``reference``'s frame) for the first ``limit`` frames of ``source`` (None:
    all), each cropped [3,H,W] float32 on the CPU and unclamped, in order, restored under the same semantics
    (``options``) over those frames only. Streams: each backend decodes the video on its own and restores it
    as the comparison goes, so memory stays that of two runs (chunk + lookahead frames each) whatever
    ``limit`` is; with ``--lookahead all`` each spills to disk."""
    check_verify_count(limit)
    mine = open_input(source)
    if mine.info.is_stream:
        mine.close()
        raise PahsError(
            f"expected a file or URL to verify (both backends read it), found {source}, a stream that can be read "
            "once; save it to a file first"
        )
    with mine, open_input(source) as theirs:
        info = mine.info
        check_size(info)
        for b in (backend, reference):
            check_frame_size(info, b, options)
            check_spill_space(info, b, options)

        def padded(reader: Iterable[Frame], multiple: int) -> Iterator[Tensor]:
            for frame in islice(reader, limit):
                yield pad_frame(frame.image, multiple)

        got = restore_padded(backend, padded(mine, backend.size_multiple), options)
        want = restore_padded(reference, padded(theirs, reference.size_multiple), options)
        h, w = info.height, info.width
        try:
            for index, (a, b) in enumerate(zip(got, want, strict=True)):
                check_interrupted()
                yield index, a[:, :h, :w].float().cpu(), b[:, :h, :w].float().cpu()
        finally:
            got.close()
            want.close()
