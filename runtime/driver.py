"""The bidirectional driver over a stream of frames, with memory bounded whatever the video's length.

Semantics (bidirectional, lookahead N, chunk K):

- The forward direction runs from zero state over the whole video, its state carried across chunks.
- Frames are restored chunk by chunk: for the chunk of frames [s, s+K), the backward direction starts from
  zero state at frame min(T-1, s+K-1+N) and runs down to s. Every frame of the chunk therefore sees at
  least N future frames (frame s+K-1 exactly N, frame s K-1+N; fewer only at the end of the video).
- Cost: K+N backward steps per chunk, (K+N)/K per frame; memory: K+N frames and K+N forward features.
- K=1 gives exactly ``model(frames, lookahead=N)`` of the reference; K+N >= T gives ``lookahead=None``.

``lookahead=None`` ("all") is the exact full-sequence result: one backward pass over the whole video.
:func:`restore_exact` does it in bounded memory by spilling the decoded frames to a temporary file, running
the backward pass once while keeping its state every K frames (also on disk), then running the forward pass
and recomputing the backward features chunk by chunk from those checkpoints (2 backward steps per frame).
The spill folder (``pahs-spill-<pid>-<host>-XXXX``) is written with plain file writes, so a full disk is an
error (a one-line :class:`PahsError` naming the folder) rather than the SIGBUS a memory map gets; it is removed
on every way out, and one left by a killed run is swept by the next :func:`restore_exact` in the same folder.

Both drivers call ``poll()`` before every backend step when given one: the pipeline passes a check of the
interruption flag there, so a signal is acted on within one step.

:func:`restore_clip` is the streaming driver over a clip held in memory, in one chunk (the exact full-sequence
result): what parity checks and calibration run.

A long video can be restored in segments on several workers (:mod:`runtime.segments`): :func:`restore_range`
restores frames [start, end) from the frames [start - W, end + N) with the same chunks and backward starts,
its forward state warmed up over the W frames before ``start`` or given exactly (:func:`forward_states`, a
forward-only pass that records the state at chosen frames).

The online (unidirectional) model needs none of this: one step per frame, one frame of latency.
Frames here are torch tensors [3, H, W] float32 in [0, 1] with H, W multiples of the backend's
``size_multiple``; padding and cropping happen in :mod:`runtime.pipeline`.
"""

from __future__ import annotations

import os
import tempfile
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import islice, pairwise
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from pahs_export.atomic import disk_error, is_disk_error, owner_tag, stale
from pahs_export.contract import check_size_multiple
from pahs_export.errors import PahsError
from pahs_export.presets import DEFAULT_LOOKAHEAD

from .backends import Backend
from .constants import DEFAULT_CHUNK

SPILL_PREFIX = "pahs-spill-"  # + "<pid>-<host>-XXXX": the --lookahead all spill folder
SPILL_BYTES_PER_VALUE = 2  # uint16 per colour value on disk

Poll = Callable[[], None]


def _no_poll() -> None:
    pass


def _padded(backend: Backend, frames: Iterable[Tensor]) -> Iterator[Tensor]:
    """``frames``, with the first one checked: [3, H, W] with H and W multiples of the backend's size multiple
    (the driver works on padded frames; a wrong one is a one-line error here, not the backend's own)."""
    for index, frame in enumerate(frames):
        if index == 0:
            if frame.dim() != 3 or frame.shape[0] != 3:
                raise PahsError(
                    f"expected frames [3, H, W] (RGB, channels first), found shape {list(frame.shape)}; "
                    "pahs.open(...).restore takes arrays of any layout and size"
                )
            check_size_multiple(
                frame.shape[-1], frame.shape[-2], backend.size_multiple, "padded frames",
                "pad them (pahs_export.model.pad_to_multiple), or use pahs.open(...).restore, which pads and crops",
            )  # fmt: skip
        yield frame


def restore_stream(
    backend: Backend,
    frames: Iterable[Tensor],
    lookahead: int = DEFAULT_LOOKAHEAD,
    chunk: int = DEFAULT_CHUNK,
    poll: Poll | None = None,
) -> Iterator[Tensor]:
    """Restore frames as they stream in; yields restored [3,H,W] tensors in order (on ``backend.device``).

    Bidirectional backends follow the chunked semantics of the module docstring; online ones step per frame.
    ``poll()`` is called before every backend step (it may raise to stop).
    """
    poll = poll or _no_poll
    frames = _padded(backend, frames)
    if not backend.bidirectional:
        yield from _online(backend, frames, poll)
        return
    assert lookahead >= 0 and chunk >= 1
    pending: deque[Tensor] = deque()  # frames not yet restored, oldest first; index of pending[0] is `first`
    fwd: deque[Tensor] = deque()  # forward features of the same frames
    first = 0
    state = None
    total = 0
    for frame in frames:
        poll()
        x = backend.upload(frame[None])
        if state is None:
            state = backend.initial_state(x)
        state = backend.forward_step(x, *state)
        pending.append(x)
        fwd.append(state[1])
        total += 1
        if total >= first + chunk + lookahead:  # chunk [first, first+K) has its N future frames
            yield from _restore_chunk(backend, pending, fwd, chunk, chunk - 1 + lookahead, poll)
            first += chunk
    while pending:  # the end of the video: later chunks see fewer future frames
        yield from _restore_chunk(backend, pending, fwd, min(chunk, len(pending)), len(pending) - 1, poll)


def restore_clip(backend: Backend, frames: Tensor) -> Tensor:
    """Restore ``frames`` [T,3,H,W] float32 in [0, 1], a clip held in memory; [T,3,H,W] out on the CPU, not clamped.

    Bidirectional: forward pass from zero state, one backward pass from zero state at the last frame (the
    reference's ``model(frames[None], lookahead=None)``); online: one step per frame. This is
    :func:`restore_stream` with a single chunk covering the clip.
    """
    t_total = frames.shape[0]
    return torch.stack([x.cpu() for x in restore_stream(backend, iter(frames), lookahead=0, chunk=t_total)])


def _backward_run(
    backend: Backend,
    frames: Sequence[Tensor],
    keep: int,
    state: tuple[Tensor, Tensor] | None = None,
    poll: Poll = _no_poll,
) -> list[Tensor]:
    """The backward direction from ``frames[-1]`` down to ``frames[0]``, starting from ``state`` (zeros when
    None); returns the backward features of ``frames[:keep]``, in frame order."""
    h, feat = state if state is not None else backend.initial_state(frames[0])
    bwd: list[Tensor] = [None] * keep  # type: ignore[list-item]
    for i in range(len(frames) - 1, -1, -1):
        poll()
        h, feat = backend.backward_step(frames[i], h, feat)
        if i < keep:
            bwd[i] = feat
    return bwd


def _restore_chunk(
    backend: Backend, pending: deque, fwd: deque, k: int, end: int, poll: Poll = _no_poll
) -> Iterator[Tensor]:
    """Backward from zero state at pending[end] down to pending[0]; restore and drop the first ``k`` frames."""
    bwd = _backward_run(backend, [pending[i] for i in range(end + 1)], k, None, poll)
    for i in range(k):
        x, f = pending.popleft(), fwd.popleft()
        poll()
        yield backend.fuse(x, f, bwd[i])[0]


def restore_range(
    backend: Backend,
    frames: Iterable[Tensor],
    start: int,
    end: int,
    warmup: int = 0,
    lookahead: int = DEFAULT_LOOKAHEAD,
    chunk: int = DEFAULT_CHUNK,
    state: tuple[Tensor, Tensor] | None = None,
    poll: Poll | None = None,
) -> Iterator[Tensor]:
    """Frames [start, end) of a longer video restored by themselves, as :func:`restore_stream` restores them
    within the whole video: the same chunks in absolute frame numbers (``start`` must be a multiple of
    ``chunk``) and the same backward starts; yields restored [3,H,W] tensors in order (on ``backend.device``).

    ``frames`` are frames [start - warmup, read_end) of the video, [3,H,W] as for :func:`restore_stream`, with
    read_end = min(T, e + lookahead) for a video of T frames, e being ``end`` rounded up to a multiple of
    ``chunk``: the backward run of each chunk then starts where the whole video's does, min(T-1, s+K-1+N).
    Fewer frames than that are taken as the end of the video;
    frames past what the last chunk needs are not read. The first ``warmup`` frames only run the forward
    direction, from ``state`` (zero when None), and their outputs are dropped. So the result equals the
    whole run's bit for bit when the forward state entering ``start`` does: ``warmup = start`` (from frame 0),
    or ``state`` recorded by :func:`forward_states` with ``warmup = 0``; otherwise the forward features differ
    for a while after ``start`` (docs/SEGMENTS.md measures how long). Online models step per frame the same way.
    ``poll()`` is called before every backend step (it may raise to stop).
    """
    if not 0 <= start < end or not 0 <= warmup <= start or chunk < 1 or lookahead < 0:
        raise ValueError(
            f"expected 0 <= start < end, 0 <= warmup <= start, chunk >= 1 and lookahead >= 0, found start={start} "
            f"end={end} warmup={warmup} chunk={chunk} lookahead={lookahead}"
        )
    if backend.bidirectional and start % chunk:
        raise ValueError(f"expected start on a chunk boundary (a multiple of {chunk}), found {start}")
    poll = poll or _no_poll
    it = iter(frames)
    for frame in islice(it, warmup):  # the warm-up: forward steps whose outputs are dropped
        poll()
        x = backend.upload(frame[None])
        state = _advance(backend, x, state if state is not None else backend.initial_state(x))
    if not backend.bidirectional:
        for frame in islice(it, end - start):
            poll()
            x = backend.upload(frame[None])
            restored, *carried = backend.step(x, *(state if state is not None else backend.initial_state(x)))
            state = (carried[0], carried[1])
            yield restored[0]
        return
    pending: deque[Tensor] = deque()  # frames not yet restored; the absolute index of pending[0] is `first`
    fwd: deque[Tensor] = deque()  # forward features of the same frames
    first = total = start  # total: one past the last frame read
    for frame in it:
        poll()
        x = backend.upload(frame[None])
        state = backend.forward_step(x, *(state if state is not None else backend.initial_state(x)))
        pending.append(x)
        fwd.append(state[1])
        total += 1
        if total >= first + chunk + lookahead:  # chunk [first, first+K) has its N future frames
            k = min(chunk, end - first)
            yield from _restore_chunk(backend, pending, fwd, k, chunk - 1 + lookahead, poll)
            first += k
            if first >= end:
                return
    while pending and first < end:  # the end of the frames given: the video's end (or frames missing)
        k = min(chunk, len(pending), end - first)
        yield from _restore_chunk(backend, pending, fwd, k, len(pending) - 1, poll)
        first += k


def forward_states(
    backend: Backend, frames: Iterable[Tensor], at: Iterable[int], poll: Poll | None = None
) -> Iterator[tuple[int, tuple[Tensor, Tensor]]]:
    """The forward direction alone over ``frames`` ([3,H,W] from frame 0, as for :func:`restore_stream`), from
    zero state: yields (t, the state (h, feat) entering frame t) for each t of ``at`` (increasing, each > 0),
    which is what :func:`restore_range` takes as ``state`` to continue the whole run exactly from frame t.

    No backward or fuse step runs (a third of a full restore's time on the CPU: docs/SEGMENTS.md), and frames
    past the last t are not read. Online models step (their only graph). A yielded state is valid until the
    generator is resumed (backends reuse their buffers): copy or save it first. Fewer frames than the last t:
    the states past the end are not yielded. ``poll()`` is called before every backend step.
    """
    wanted = deque(at)
    if any(a >= b for a, b in pairwise(wanted)) or (wanted and wanted[0] < 1):
        raise ValueError(f"expected increasing frame numbers from 1, found {list(wanted)}")
    if not wanted:
        return
    poll = poll or _no_poll
    state = None
    for t, frame in enumerate(frames):
        poll()
        x = backend.upload(frame[None])
        state = _advance(backend, x, state if state is not None else backend.initial_state(x))
        if t + 1 == wanted[0]:
            yield wanted.popleft(), state
            if not wanted:
                return


def _advance(backend: Backend, x: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
    """The forward state after frame ``x``: the forward graph, or the online step graph (output dropped)."""
    if backend.bidirectional:
        return backend.forward_step(x, *state)
    _, h, feat = backend.step(x, *state)
    return h, feat


def _online(backend: Backend, frames: Iterable[Tensor], poll: Poll = _no_poll) -> Iterator[Tensor]:
    state = None
    for frame in frames:
        poll()
        x = backend.upload(frame[None])
        if state is None:
            state = backend.initial_state(x)
        restored, *state = backend.step(x, *state)
        yield restored[0]


class SpilledFrames:
    """Frames [3,H,W] kept in one file in ``folder`` for random access in two passes.

    Stored as uint16 n with value n/65535: exact for what the video reader produces (8-bit k/255 is
    257k/65535, 16-bit n/65535), so the result equals the in-memory computation bit for bit; 2 bytes per
    value on disk. Written with plain writes and read back with ``pread``: a full disk raises OSError at the
    write (a sparse memory map would take the process down with SIGBUS when the page is touched).
    """

    def __init__(self, folder: Path, shape: tuple[int, int, int]) -> None:
        self.folder, self.shape, self.count = folder, shape, 0
        self.path = folder / "frames.u16"
        self._bytes = int(np.prod(shape)) * SPILL_BYTES_PER_VALUE
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)

    def append(self, frame: Tensor) -> None:
        data = memoryview(np.rint(frame.cpu().numpy() * 65535.0).astype(np.uint16).tobytes())
        offset = self.count * self._bytes
        while data:  # a short write happens when the disk is nearly full; the next one raises ENOSPC
            n = os.pwrite(self._fd, data, offset)
            data, offset = data[n:], offset + n
        self.count += 1

    def __getitem__(self, index: int) -> Tensor:
        assert 0 <= index < self.count
        raw = os.pread(self._fd, self._bytes, index * self._bytes)
        assert len(raw) == self._bytes, "the spill file is shorter than what was written"
        values = np.frombuffer(raw, dtype=np.uint16).reshape(self.shape)
        return torch.from_numpy(values.astype(np.float32) / np.float32(65535.0))

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def sweep_spills(folder: str | Path | None) -> None:
    """Remove spill folders that killed runs left in ``folder`` (default: the system temporary folder)."""
    import shutil

    root = Path(folder) if folder is not None else Path(tempfile.gettempdir())
    try:
        names = os.listdir(root)
    except OSError:
        return
    for name in names:
        if stale(name, SPILL_PREFIX):
            shutil.rmtree(root / name, ignore_errors=True)


def _spill_error(e: OSError, where: Path) -> PahsError:
    return disk_error(
        e, "the --lookahead all spill (2 bytes per colour value per frame)", where,
        "pass --spill-dir with a folder on a disk with room, or give --lookahead a number",
    )  # fmt: skip


def restore_exact(
    backend: Backend,
    frames: Iterable[Tensor],
    chunk: int = DEFAULT_CHUNK,
    spill_dir: str | Path | None = None,
    on_backward: Callable[[int], None] | None = None,
    poll: Poll | None = None,
    with_inputs: bool = False,
) -> Iterator[Any]:
    """The exact full-sequence bidirectional result (``lookahead=None``) in bounded memory.

    Consumes ``frames`` completely first (spilling them to a temporary folder under ``spill_dir``, default
    the system temporary folder, and running the backward pass over them from the end, keeping the backward
    state every ``chunk`` frames), then yields restored frames in order; with ``with_inputs``, pairs of
    (input frame [3,H,W] on the CPU, read back from the spill; restored frame), so that a caller need not
    keep the whole video to show input beside output. ``on_backward(i)`` is called after each backward
    step (progress), ``poll()`` before every backend step. A disk error while spilling is a one-line
    :class:`PahsError`; the folder is removed however the generator ends (exhausted, closed, an error).
    """
    poll = poll or _no_poll
    frames = _padded(backend, frames)
    if not backend.bidirectional:
        if not with_inputs:
            yield from _online(backend, frames, poll)
            return
        kept: deque[Tensor] = deque()  # one frame: the online model has no latency

        def keep(it: Iterable[Tensor]) -> Iterator[Tensor]:
            for f in it:
                kept.append(f)
                yield f

        for out in _online(backend, keep(frames), poll):
            yield kept.popleft().cpu(), out
        return
    sweep_spills(spill_dir)
    root = (Path(spill_dir) if spill_dir is not None else Path(tempfile.gettempdir())).absolute()
    try:
        tmp = tempfile.TemporaryDirectory(prefix=f"{SPILL_PREFIX}{owner_tag()}-", dir=spill_dir)
    except OSError as e:
        if is_disk_error(e) or isinstance(e, (FileNotFoundError, NotADirectoryError)):
            raise _spill_error(e, root) from e
        raise
    with tmp:
        folder = Path(tmp.name)
        store: SpilledFrames | None = None
        try:
            for frame in frames:
                if store is None:
                    store = SpilledFrames(folder, tuple(frame.shape))
                store.append(frame)
            if store is None:
                return
            yield from _exact_passes(backend, store, chunk, on_backward, poll, with_inputs)
        except OSError as e:
            if is_disk_error(e):
                raise _spill_error(e, root) from e
            raise
        finally:
            if store is not None:
                store.close()


def _save_state(path: Path, h: Tensor, feat: Tensor) -> Path:
    """The raw bytes of a backward state, with plain writes (a full disk raises OSError; torch.save would
    raise a RuntimeError from its zip writer)."""
    with open(path, "wb") as f:
        for t in (h, feat):
            f.write(t.detach().cpu().contiguous().numpy().tobytes())
    return path


def _load_state(path: Path, h: Tensor, feat: Tensor, device: torch.device) -> tuple[Tensor, Tensor]:
    """Read back a state saved by :func:`_save_state`; ``h`` and ``feat`` give the shapes and dtypes."""
    raw, out, offset = path.read_bytes(), [], 0
    for like in (h, feat):
        dtype = torch.empty(0, dtype=like.dtype).numpy().dtype
        array = np.frombuffer(raw, dtype=dtype, count=like.numel(), offset=offset)
        out.append(torch.from_numpy(array.reshape(tuple(like.shape)).copy()).to(device))
        offset += array.nbytes
    return out[0], out[1]


def _exact_passes(
    backend: Backend,
    store: SpilledFrames,
    chunk: int,
    on_backward: Callable[[int], None] | None,
    poll: Poll,
    with_inputs: bool,
) -> Iterator[Any]:
    """:func:`restore_exact` once the frames are spilled: the backward pass, then the forward pass."""
    total, folder = store.count, store.folder
    # Backward pass once over everything; the state *entering* chunk j (after frame (j+1)K) is saved.
    x0 = backend.upload(store[0][None])
    h, feat = backend.initial_state(x0)
    entering: dict[int, Path] = {}
    last_chunk = (total - 1) // chunk
    for t in range(total - 1, -1, -1):
        if t % chunk == chunk - 1 or t == total - 1:
            j = t // chunk
            if j < last_chunk:
                entering[j] = _save_state(folder / f"state-{j}.bin", h, feat)
        poll()
        h, feat = backend.backward_step(backend.upload(store[t][None]), h, feat)
        if on_backward:
            on_backward(t)
    # Forward pass with the backward features recomputed per chunk from the saved states.
    fstate = backend.initial_state(x0)
    for j in range(last_chunk + 1):
        lo, hi = j * chunk, min(total, (j + 1) * chunk)
        state = None
        if j in entering:
            state = _load_state(entering[j], h, feat, backend.device)
        cpu = [store[t] for t in range(lo, hi)]
        xs = [backend.upload(c[None]) for c in cpu]
        bwd = _backward_run(backend, xs, len(xs), state, poll)
        for i, x in enumerate(xs):
            poll()
            fstate = backend.forward_step(x, *fstate)
            restored = backend.fuse(x, fstate[1], bwd[i])[0]
            yield (cpu[i], restored) if with_inputs else restored
