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

The online (unidirectional) model needs none of this: one step per frame, one frame of latency.
Frames here are torch tensors [3, H, W] float32 in [0, 1] with H, W multiples of the backend's
``size_multiple``; padding and cropping happen in :mod:`runtime.pipeline`.
"""

from __future__ import annotations

import tempfile
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from pahs_export.presets import DEFAULT_LOOKAHEAD

from .backends import Backend

DEFAULT_CHUNK = 32  # frames restored per backward run: backward cost (32+19)/32 = 1.59 steps per frame


def restore_stream(
    backend: Backend, frames: Iterable[Tensor], lookahead: int = DEFAULT_LOOKAHEAD, chunk: int = DEFAULT_CHUNK
) -> Iterator[Tensor]:
    """Restore frames as they stream in; yields restored [3,H,W] tensors in order (on ``backend.device``).

    Bidirectional backends follow the chunked semantics of the module docstring; online ones step per frame.
    """
    if not backend.bidirectional:
        yield from _online(backend, frames)
        return
    assert lookahead >= 0 and chunk >= 1
    pending: deque[Tensor] = deque()  # frames not yet restored, oldest first; index of pending[0] is `first`
    fwd: deque[Tensor] = deque()  # forward features of the same frames
    first = 0
    state = None
    total = 0
    for frame in frames:
        x = backend.upload(frame[None])
        if state is None:
            state = backend.initial_state(x)
        state = backend.forward_step(x, *state)
        pending.append(x)
        fwd.append(state[1])
        total += 1
        if total >= first + chunk + lookahead:  # chunk [first, first+K) has its N future frames
            yield from _restore_chunk(backend, pending, fwd, chunk, end=chunk - 1 + lookahead)
            first += chunk
    while pending:  # the end of the video: later chunks see fewer future frames
        yield from _restore_chunk(backend, pending, fwd, min(chunk, len(pending)), end=len(pending) - 1)


def _backward_run(
    backend: Backend, frames: Sequence[Tensor], keep: int, state: tuple[Tensor, Tensor] | None = None
) -> list[Tensor]:
    """The backward direction from ``frames[-1]`` down to ``frames[0]``, starting from ``state`` (zeros when
    None); returns the backward features of ``frames[:keep]``, in frame order."""
    h, feat = state if state is not None else backend.initial_state(frames[0])
    bwd: list[Tensor] = [None] * keep  # type: ignore[list-item]
    for i in range(len(frames) - 1, -1, -1):
        h, feat = backend.backward_step(frames[i], h, feat)
        if i < keep:
            bwd[i] = feat
    return bwd


def _restore_chunk(backend: Backend, pending: deque, fwd: deque, k: int, end: int) -> Iterator[Tensor]:
    """Backward from zero state at pending[end] down to pending[0]; restore and drop the first ``k`` frames."""
    bwd = _backward_run(backend, [pending[i] for i in range(end + 1)], k)
    for i in range(k):
        x, f = pending.popleft(), fwd.popleft()
        yield backend.fuse(x, f, bwd[i])[0]


def _online(backend: Backend, frames: Iterable[Tensor]) -> Iterator[Tensor]:
    state = None
    for frame in frames:
        x = backend.upload(frame[None])
        if state is None:
            state = backend.initial_state(x)
        restored, *state = backend.step(x, *state)
        yield restored[0]


class SpilledFrames:
    """Frames [3,H,W] kept on disk (a memory map in ``folder``) for random access in two passes.

    Stored as uint16 n with value n/65535: exact for what the video reader produces (8-bit k/255 is
    257k/65535, 16-bit n/65535), so the result equals the in-memory computation bit for bit; 2 bytes per
    value on disk.
    """

    def __init__(self, folder: Path, shape: tuple[int, int, int], capacity: int = 64) -> None:
        self.folder, self.shape, self.count = folder, shape, 0
        self._capacity = capacity
        self._map = self._open(capacity)

    def _open(self, capacity: int) -> np.memmap:
        return np.lib.format.open_memmap(
            self.folder / f"frames-{capacity}.npy", mode="w+", dtype=np.uint16, shape=(capacity, *self.shape)
        )

    def append(self, frame: Tensor) -> None:
        if self.count == self._capacity:  # grow geometrically by copying into a larger map
            bigger = self._open(self._capacity * 2)
            bigger[: self.count] = self._map[: self.count]
            old = self._map.filename
            del self._map
            Path(old).unlink()
            self._map, self._capacity = bigger, self._capacity * 2
        self._map[self.count] = np.rint(frame.cpu().numpy() * 65535.0).astype(np.uint16)
        self.count += 1

    def __getitem__(self, index: int) -> Tensor:
        return torch.from_numpy(self._map[index].astype(np.float32) / np.float32(65535.0))


def restore_exact(
    backend: Backend,
    frames: Iterable[Tensor],
    chunk: int = DEFAULT_CHUNK,
    spill_dir: str | Path | None = None,
    on_backward: Callable[[int], None] | None = None,
) -> Iterator[Tensor]:
    """The exact full-sequence bidirectional result (``lookahead=None``) in bounded memory.

    Consumes ``frames`` completely first (spilling them to a temporary file under ``spill_dir`` and running
    the backward pass over them from the end, keeping the backward state every ``chunk`` frames), then
    yields restored frames in order. ``on_backward(i)`` is called after each backward step (progress).
    """
    if not backend.bidirectional:
        yield from _online(backend, frames)
        return
    with tempfile.TemporaryDirectory(prefix="pahs-spill-", dir=spill_dir) as tmp:
        folder = Path(tmp)
        store: SpilledFrames | None = None
        for frame in frames:
            if store is None:
                store = SpilledFrames(folder, tuple(frame.shape))
            store.append(frame)
        if store is None:
            return
        total = store.count
        # Backward pass once over everything; the state *entering* chunk j (after frame (j+1)K) is saved.
        x0 = backend.upload(store[0][None])
        h, feat = backend.initial_state(x0)
        entering: dict[int, Path] = {}
        last_chunk = (total - 1) // chunk
        for t in range(total - 1, -1, -1):
            if t % chunk == chunk - 1 or t == total - 1:
                j = t // chunk
                if j < last_chunk:
                    path = folder / f"state-{j}.pt"
                    torch.save({"h": h.cpu(), "feat": feat.cpu()}, path)
                    entering[j] = path
            h, feat = backend.backward_step(backend.upload(store[t][None]), h, feat)
            if on_backward:
                on_backward(t)
        # Forward pass with the backward features recomputed per chunk from the saved states.
        fstate = backend.initial_state(x0)
        for j in range(last_chunk + 1):
            lo, hi = j * chunk, min(total, (j + 1) * chunk)
            state = None
            if j in entering:
                saved = torch.load(entering[j], weights_only=True)
                state = saved["h"].to(backend.device), saved["feat"].to(backend.device)
            xs = [backend.upload(store[t][None]) for t in range(lo, hi)]
            bwd = _backward_run(backend, xs, len(xs), state)
            for i, x in enumerate(xs):
                fstate = backend.forward_step(x, *fstate)
                yield backend.fuse(x, fstate[1], bwd[i])[0]
