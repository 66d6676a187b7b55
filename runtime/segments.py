"""One long video restored in segments, on one machine or spread over workers, then joined.

The bidirectional driver's work splits along its chunks (:mod:`runtime.driver`): for the chunk [s, s+K) the
backward direction starts from zero state at min(T-1, s+K-1+N) and needs nothing before s. A segment [start,
end) whose ends fall on multiples of K, reading N frames past its end, therefore runs exactly the backward runs
of the single run. Only the forward direction carries state across the boundary; it is given to a segment in
one of two ways:

- warm-up (default): the forward direction runs over the W frames before ``start`` from zero state and their
  outputs are dropped. Approximate: docs/SEGMENTS.md measures the error against the single run for several W
  and picks :data:`DEFAULT_WARMUP`. The first segment needs none and is the single run bit for bit.
- exact (``exact=True``): one sequential forward-only pass over the video (no backward or fuse step) records
  the forward state (h, feat) entering every segment, as ``.npz`` files of float32 arrays (numpy's format,
  read back without pickle); each segment starts from its state and the result is the single run bit for bit.
  The pass runs before the segments: with P workers the ideal speed-up is T_single / (T_pass + T_single / P).

Decisions:

- :func:`plan_segments` rounds the segment length down to a multiple of K, so that a segment is never longer
  than asked; a length below K is refused (one line).
- A segment job (:class:`SegmentJob`, a :class:`runtime.jobs.Job`) decodes its source from the start and
  drops the frames before ``start - W``: no seeking, which some formats cannot do exactly. The cost is decoding
  (not restoring) the frames before the segment, small next to restoring them on the CPU and bounded by one
  decode of the video per worker.
- A job publishes a folder (:class:`pahs_export.atomic.AtomicOutput`): ``frames.mkv``, its restored frames in
  lossless FFV1, and ``frames.json``, the source's timestamps (and frame-folder names) of those frames, which
  Matroska's millisecond clock would round. The part holds 8 or 16-bit RGB: the depth the final encoder
  quantises to (16 bits for deep sources and deep output formats), so the joined output equals the single
  run's output when the restored frames are equal.
- :func:`join_segments` encodes the parts in order into the final output with the source's timestamps, audio
  and colour tags (:func:`runtime.io.open_output` with ``source``), atomically; it refuses parts that do not
  cover the video contiguously from frame 0.
- The work folder (part folders, states) is ``.<output name>.segments-<pid>-<host>-XXXX`` beside the output
  (the system temporary folder for standard output) unless ``work_dir`` says where: on a cluster it must be a
  folder every worker can write. It is removed on every way out; one left by a killed run is swept by the next
  :func:`restore_segmented` writing the same output from the same host.
- Jobs run through ``execute(jobs, open_backend)`` (default: :func:`run_in_order`, here, one backend); a batch
  or cluster executor can be passed instead. ``open_backend()`` opens the engine where it is called.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from pahs_export.atomic import AtomicOutput, disk_error, is_disk_error, owner_tag, stale
from pahs_export.errors import PahsError

from .backends import Backend
from .constants import DEFAULT_WARMUP  # frames of forward warm-up before a segment (measured there)
from .driver import forward_states, restore_range
from .io import (
    BackgroundWriter,
    Frame,
    FrameReader,
    OutputOptions,
    Prefetcher,
    VideoInfo,
    check_interrupted,
    open_input,
    open_output,
    source_kind,
)
from .io.encoding import _depth, _is_rgb
from .io.writing import _prepare
from .jobs import Job, JobResult
from .pipeline import RunOptions, check_frame_size, check_size, pad_frame, to_image

WORK_INFIX = ".segments-"  # the work folder: ".<output name>.segments-<pid>-<host>-XXXX"
PART_FRAMES = "frames.mkv"  # in a part folder: the restored frames, lossless
PART_META = "frames.json"  # in a part folder: which frames, their source timestamps and names

log = logging.getLogger("pahs")

OpenBackend = Callable[[], Backend]  # opens the engine where it is called (on a worker: there)
Execute = Callable[[Sequence[Job], OpenBackend], list[JobResult]]  # runs jobs, one JobResult per job, in order


@dataclass(frozen=True)
class Segment:
    """Frames [start, end) of a video, restored by one job; ``start`` and ``end`` are multiples of the chunk K
    (``end`` may be the video's end)."""

    index: int  # 0-based position in the plan
    start: int  # first frame restored
    end: int  # one past the last frame restored
    read_end: int  # one past the last frame read: end + lookahead N, clipped to the video

    def first_read(self, warmup: int) -> int:
        """The first frame a job reads with ``warmup`` frames of forward warm-up (0 at the video's start)."""
        return max(0, self.start - warmup)


def plan_segments(frames: int, segment_frames: int, chunk: int, lookahead: int) -> list[Segment]:
    """Segments covering frames [0, ``frames``), each ``segment_frames`` long rounded down to a multiple of
    ``chunk`` (the last one shorter), reading ``lookahead`` frames past its end. A one-line :class:`PahsError`
    for a length below ``chunk`` or numbers out of range."""
    if chunk < 1:
        raise PahsError(f"expected --chunk of at least 1, found {chunk}")
    if lookahead < 0:
        raise PahsError(f"expected --lookahead of at least 0 with --segment-frames, found {lookahead}")
    if segment_frames < chunk:
        raise PahsError(
            f"expected --segment-frames of at least --chunk ({chunk}), found {segment_frames}; pass a multiple of "
            f"{chunk} such as {max(chunk, 8 * chunk)}"
        )
    if frames < 1:
        raise PahsError(f"expected a video of at least one frame to split, found {frames}; check the input")
    size = segment_frames // chunk * chunk
    return [
        Segment(i, s, min(s + size, frames), min(frames, s + size + lookahead))
        for i, s in enumerate(range(0, frames, size))
    ]


# -- states ------------------------------------------------------------------------------------------------------


def save_state(path: Path, state: tuple[Tensor, Tensor]) -> Path:
    """Write a forward state (h [1,c/3,H/4,W/4], feat [1,c,H/4,W/4], float32) to ``path`` (.npz: arrays "h"
    and "feat"), whole or not at all (a temporary name, then a rename)."""
    tmp = path.with_name(f".{path.name}.partial-{owner_tag()}")
    with open(tmp, "wb") as f:
        np.savez(f, h=state[0].detach().cpu().numpy(), feat=state[1].detach().cpu().numpy())
    os.replace(tmp, path)
    return path


def load_state(path: str | Path, device: torch.device) -> tuple[Tensor, Tensor]:
    """Read a state written by :func:`save_state` onto ``device`` (numpy arrays only: no pickle is loaded)."""
    with np.load(path, allow_pickle=False) as data:
        return torch.from_numpy(data["h"].copy()).to(device), torch.from_numpy(data["feat"].copy()).to(device)


def record_states(
    backend: Backend, source: str | Path, segments: Sequence[Segment], folder: Path, max_pixels: int | None = None
) -> dict[int, Path]:
    """The exact mode's forward-only pass: decode ``source`` from the start up to the last segment's start and
    save the forward state entering each segment after the first into ``folder`` (``state-0001.npz``...).
    Returns segment index -> state file. A source with fewer frames than planned is a one-line error."""
    starts = {s.start: s.index for s in segments if s.start > 0}
    saved: dict[int, Path] = {}
    if not starts:
        return saved
    with open_input(source) as reader:
        info = reader.info
        check_size(info)
        check_frame_size(info, backend, RunOptions(max_pixels=max_pixels))
        with Prefetcher(_frames_between(reader, info, 0, max(starts))) as frames:
            padded = (pad_frame(f.image, backend.size_multiple) for f in frames)
            for t, state in forward_states(backend, padded, sorted(starts), poll=check_interrupted):
                index = starts[t]
                try:
                    saved[index] = save_state(folder / f"state-{index:04d}.npz", state)
                except OSError as e:
                    if is_disk_error(e):
                        raise disk_error(e, "the segment states", folder.parent, "pass another work folder") from e
                    raise
    if len(saved) < len(starts):
        raise PahsError(
            f"expected at least {max(starts) + 1} frames in {source}, found fewer that decode; the file is "
            "damaged or lists more frames than it holds: re-export it"
        )
    return saved


# -- jobs --------------------------------------------------------------------------------------------------------


def _frames_between(reader: FrameReader, info: VideoInfo, first: int, stop: int) -> Iterator[Frame]:
    """The frames ``first`` <= index < ``stop`` of ``reader``, decoding (and dropping) those before ``first``;
    nothing past them is decoded."""
    if stop <= first:
        return
    for frame in reader:
        if frame.image.shape[:2] != (info.height, info.width):
            raise PahsError(
                f"expected every frame to be {info.width}x{info.height}, found frame {frame.index} of "
                f"{frame.image.shape[1]}x{frame.image.shape[0]}; split the video where its size changes"
            )
        if frame.index >= first:
            yield frame
        if frame.index + 1 >= stop:
            return


def part_options(bits: int) -> OutputOptions:
    """How a part is written: FFV1 RGB, 8-bit (bgr0) or 16-bit (gbrp16le): exact at that depth."""
    return OutputOptions(codec="ffv1", pix_fmt="gbrp16le" if bits > 8 else "bgr0", overwrite=True)


def output_bits(output: str, info: VideoInfo, source: str | Path, options: OutputOptions) -> int:
    """The depth (8 or 16) the encoder of ``output`` quantises frames to, so that parts at that depth lose
    nothing the single run keeps. Checks ``output`` as :func:`runtime.io.open_output` will (one-line errors)."""
    plan, _ = _prepare(output, info, source, options, None)
    deep = _depth(plan.pix_fmt) > 8 or (plan.muxer is not None and info.bit_depth > 8 and not _is_rgb(plan.pix_fmt))
    return 16 if deep else 8


@dataclass(frozen=True)
class SegmentJob:
    """Restore one segment of ``source`` into the part folder ``output`` (a :class:`runtime.jobs.Job`)."""

    source: str  # the video: a file or URL every worker can open
    segment: Segment  # which frames
    output: str  # the part folder this job publishes: PART_FRAMES and PART_META
    lookahead: int  # N, as in the single run
    chunk: int  # K, as in the single run; segment.start is a multiple of it
    warmup: int  # W: forward warm-up frames before segment.start (unused with state)
    state: str | None = None  # exact mode: the .npz forward state entering segment.start (save_state)
    bits: int = 8  # 8 or 16: depth of the part (output_bits)
    max_pixels: int | None = None  # largest frame accepted; None: what free memory holds (as --max-pixels)

    @property
    def name(self) -> str:
        """E.g. "clip.mp4 frames 256-511" (inclusive, as people count)."""
        return f"{Path(self.source).name} frames {self.segment.start}-{self.segment.end - 1}"

    def run(self, backend: Backend) -> int:
        """Decode frames [start - W, read_end) (from the start of the file), restore [start, end) with
        :func:`runtime.driver.restore_range`, and publish the part; returns the frames written. A source with
        fewer frames than planned is a one-line :class:`PahsError`."""
        seg = self.segment
        first = seg.start if self.state is not None else seg.first_read(self.warmup)
        with open_input(self.source) as reader:
            info = reader.info
            check_size(info)
            check_frame_size(info, backend, RunOptions(self.lookahead, self.chunk, max_pixels=self.max_pixels))
            state = load_state(self.state, backend.device) if self.state is not None else None
            kept: deque[tuple[int | None, str | None]] = deque()  # (pts, name) of frames awaiting their output
            part_info = replace(info, frames=None, time_base=None, has_audio=False, is_folder=False, is_stream=False)
            with Prefetcher(_frames_between(reader, info, first, seg.read_end)) as frames:

                def inputs() -> Iterator[Tensor]:
                    for frame in frames:
                        if seg.start <= frame.index < seg.end:
                            kept.append((frame.pts, frame.name))
                        yield pad_frame(frame.image, backend.size_multiple)

                restored = restore_range(
                    backend, inputs(), seg.start, seg.end, seg.start - first, self.lookahead, self.chunk, state,
                    poll=check_interrupted,
                )  # fmt: skip
                with AtomicOutput(self.output, folder=True, what="the segment") as part:
                    pts: list[int | None] = []
                    names: list[str | None] = []
                    with open_output(part.tmp / PART_FRAMES, part_info, options=part_options(self.bits)) as writer:
                        for out in restored:
                            stamp, name = kept.popleft()
                            writer.write(to_image(out, info.height, info.width))
                            pts.append(stamp)
                            names.append(name)
                    if len(pts) != seg.end - seg.start:
                        raise PahsError(
                            f"expected frames {seg.start}-{seg.end - 1} in {self.source}, found only {len(pts)} of "
                            "them that decode; the file is damaged or lists more frames than it holds: re-export it"
                        )
                    meta = {"start": seg.start, "end": seg.end, "bits": self.bits, "pts": pts, "names": names}
                    (part.tmp / PART_META).write_text(json.dumps(meta))
        return len(pts)


def run_in_order(jobs: Sequence[Job], open_backend: OpenBackend) -> list[JobResult]:
    """The default executor: the jobs one after the other here, on one backend opened at the first job. An
    error stops the run (it is raised)."""
    results: list[JobResult] = []
    backend: Backend | None = None
    for job in jobs:
        started = time.monotonic()
        backend = backend if backend is not None else open_backend()
        frames = job.run(backend)
        results.append(JobResult(job.name, job.output, "done", frames, time.monotonic() - started))
        log.info("restored %s in %.1f s", job.name, results[-1].seconds)
    return results


# -- the join ----------------------------------------------------------------------------------------------------


def _part_meta(part: Path) -> dict[str, Any]:
    try:
        meta = json.loads((part / PART_META).read_text())
        return {k: meta[k] for k in ("start", "end", "pts", "names")}
    except (OSError, ValueError, KeyError, TypeError, RecursionError) as e:
        raise PahsError(
            f"expected a segment folder holding {PART_FRAMES} and {PART_META}, found {part} without a readable "
            f"{PART_META} ({e}); restore that segment again"
        ) from None


def join_segments(source: str | Path, parts: Sequence[str | Path], output: str, options: OutputOptions) -> int:
    """Encode the restored frames of ``parts`` (part folders written by :class:`SegmentJob`, in order) into
    ``output`` as the single run would: the source's size, timestamps, audio and colour tags, the encoder
    settings of ``options``; atomically (nothing is left on an error). Returns the frames written. Parts that
    do not follow one another from frame 0, or hold fewer frames than they list, are a one-line error."""
    with open_input(source) as reader:
        info = reader.info
    writer = BackgroundWriter(open_output(output, info, source=source, options=options))
    count = 0
    try:
        log.info("writing %s", writer.writer.describe())
        for path in map(Path, parts):
            meta = _part_meta(path)
            if meta["start"] != count:
                raise PahsError(
                    f"expected the segment starting at frame {count} next, found {path} starting at {meta['start']}; "
                    "pass the parts in order, none missing"
                )
            with open_input(path / PART_FRAMES) as part:
                for frame, pts, name in zip(part, meta["pts"], meta["names"], strict=False):
                    check_interrupted()
                    writer.write(frame.image, pts, name)
                    count += 1
            if count != meta["end"]:
                raise PahsError(
                    f"expected frames {meta['start']}-{meta['end'] - 1} in {path}, found {count - meta['start']}; "
                    "restore that segment again"
                )
        writer.finish()
        check_interrupted()
        writer.close()
    except BaseException:
        writer.abort()
        raise
    return count


# -- the whole run -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SegmentedRun:
    """What :func:`restore_segmented` did."""

    frames: int  # frames written
    segments: tuple[Segment, ...]  # the plan
    output: str  # where the restored video went
    results: tuple[JobResult, ...]  # one per segment, in order
    exact: bool  # states from a forward pass (True) or a warm-up of `warmup` frames
    warmup: int  # W (0 with exact)
    pass_seconds: float  # the exact mode's forward-only pass (0 without)
    jobs_seconds: float  # the segments, as the executor ran them
    join_seconds: float  # encoding the output from the parts


def _work_folder(output: str, work_dir: str | Path | None) -> Path:
    """A new work folder for ``output``, after sweeping those that dead runs left for it."""
    piped = output in ("-", "pipe:", "pipe:1")
    name = "pahs" if piped else Path(output).name
    root = Path(work_dir) if work_dir is not None else Path(tempfile.gettempdir() if piped else Path(output).parent)
    prefix = f".{name}{WORK_INFIX}"
    try:
        for entry in os.listdir(root):
            if stale(entry, prefix):
                shutil.rmtree(root / entry, ignore_errors=True)
        return Path(tempfile.mkdtemp(prefix=f"{prefix}{owner_tag()}-", dir=root)).absolute()
    except OSError as e:
        if is_disk_error(e) or isinstance(e, (FileNotFoundError, NotADirectoryError)):
            raise disk_error(e, "the segments' work folder", root.absolute(), "pass another work folder") from e
        raise


def count_frames(source: str | Path, info: VideoInfo) -> int:
    """The video's frame count: what the container lists, else the video packets counted by demuxing (no
    decoding)."""
    if info.frames is not None:
        return info.frames
    import av

    with av.open(str(source)) as container:
        stream = container.streams.video[0]
        return sum(1 for packet in container.demux(stream) if packet.size)


def restore_segmented(
    source: str | Path,
    output: str,
    open_backend: OpenBackend,
    options: RunOptions,
    segment_frames: int,
    warmup: int = DEFAULT_WARMUP,
    exact: bool = False,
    execute: Execute | None = None,
    work_dir: str | Path | None = None,
    pass_backend: Backend | None = None,
) -> SegmentedRun:
    """Restore ``source`` into ``output`` in segments of ``segment_frames`` (rounded down to a multiple of
    ``options.chunk``): plan, (exact mode) record the forward states in one forward-only pass, run a
    :class:`SegmentJob` per segment through ``execute`` (default :func:`run_in_order`), join the parts into
    ``output`` with ``options.output``, and remove the work folder. ``warmup`` frames of forward warm-up per
    segment, or ``exact`` for the single run's result bit for bit. The source must be a file or URL that can be
    opened again (every segment reads it); the output and options are checked before any work.
    ``pass_backend``: an open backend for the exact mode's forward pass here (default: one from
    ``open_backend``, opened when needed), so that a caller holding one does not open a second."""
    if options.lookahead is None:
        raise PahsError(
            "expected a number for --lookahead with --segment-frames, found all (every segment would read to the "
            "end of the video); give --lookahead a number, or drop --segment-frames"
        )
    if warmup < 0:
        raise PahsError(f"expected --warmup of at least 0 frames, found {warmup}; {DEFAULT_WARMUP} is the default")
    # Absolute paths: jobs may run in other processes, with another working folder (a shared file system).
    source = str(Path(source).absolute()) if source_kind(source) == "path" else str(source)
    with open_input(source) as reader:
        info = reader.info
    if info.is_stream:
        raise PahsError(
            f"expected a file or URL with --segment-frames (every segment reads it), found {source}, a stream that "
            "can be read once; save it to a file first"
        )
    check_size(info)
    bits = output_bits(output, info, source, options.output)
    plan = plan_segments(count_frames(source, info), segment_frames, options.chunk, options.lookahead)
    log.info(
        "%d segments of %d frames (%s)", len(plan), plan[0].end - plan[0].start,
        "exact: a forward pass first" if exact else f"forward warm-up of {warmup} frames",
    )  # fmt: skip
    opened: list[Backend] = [] if pass_backend is None else [pass_backend]

    def local_backend() -> Backend:
        if not opened:
            opened.append(open_backend())
        return opened[0]

    work = _work_folder(output, work_dir)
    try:
        started = time.monotonic()
        states = record_states(local_backend(), source, plan, work, options.max_pixels) if exact else {}
        pass_seconds = time.monotonic() - started if exact else 0.0
        jobs = [
            SegmentJob(
                source=source,
                segment=s,
                output=str(work / f"part-{s.index:04d}"),
                lookahead=options.lookahead,
                chunk=options.chunk,
                warmup=0 if exact else warmup,
                state=str(states[s.index]) if s.index in states else None,
                bits=bits,
                max_pixels=options.max_pixels,
            )
            for s in plan
        ]
        started = time.monotonic()
        results = (execute or run_in_order)(jobs, open_backend if execute is not None else local_backend)
        jobs_seconds = time.monotonic() - started
        if len(results) != len(jobs):
            raise PahsError(f"expected a result for each of the {len(jobs)} segments, found {len(results)}")
        for r in results:
            if r.status not in ("done", "skipped"):
                raise PahsError(
                    f"expected every segment restored, found {r.name} {r.status} ({r.error}); {output} was not written"
                )
        started = time.monotonic()
        count = join_segments(source, [j.output for j in jobs], output, options.output)
        join_seconds = time.monotonic() - started
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return SegmentedRun(
        count, tuple(plan), output, tuple(results), exact, 0 if exact else warmup, pass_seconds, jobs_seconds,
        join_seconds,
    )  # fmt: skip
