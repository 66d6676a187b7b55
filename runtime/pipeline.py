"""`pahs-run`'s work: decode, pad, restore through a backend, crop, encode; with verification and a
side-by-side comparison. Decoding, inference and encoding run in separate threads with bounded queues.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from pahs_export.errors import PahsError
from pahs_export.model import pad_to_multiple
from pahs_export.presets import DEFAULT_LOOKAHEAD

from .backends import Backend
from .driver import DEFAULT_CHUNK, restore_exact, restore_stream
from .io import BackgroundWriter, Frame, OutputOptions, Prefetcher, VideoInfo, open_input, open_output

MAX_LOOKAHEAD = 1000


@dataclass(frozen=True)
class RunOptions:
    """How a video is restored. ``None`` fields take the documented defaults."""

    lookahead: int | None = DEFAULT_LOOKAHEAD  # future frames each frame sees at least; None = all (exact)
    chunk: int = DEFAULT_CHUNK  # frames restored per backward run (cost (chunk+lookahead)/chunk)
    output: OutputOptions = field(default_factory=OutputOptions)  # encoder settings
    progress: bool = True  # progress bars on stderr
    spill_dir: Path | None = None  # where --lookahead all keeps its temporary frames (default: system temp)


def check_options(options: RunOptions, backend: Backend, lookahead_given: bool) -> None:
    if not backend.bidirectional and lookahead_given:
        raise PahsError(
            "expected --lookahead only for bidirectional engines, found a unidirectional (online) one; "
            "drop --lookahead: online models see no future frames"
        )
    la = options.lookahead
    if la is not None and not 0 <= la <= MAX_LOOKAHEAD:
        raise PahsError(
            f"expected --lookahead from 0 to {MAX_LOOKAHEAD} or 'all', found {la}; the paper uses {DEFAULT_LOOKAHEAD}"
        )
    if options.chunk < 1:
        raise PahsError(f"expected --chunk of at least 1, found {options.chunk}")


def restore_padded(backend: Backend, frames: Iterable[Tensor], options: RunOptions, **exact: Any) -> Iterator[Tensor]:
    """Restored padded frames [3,H',W'] in order, with the lookahead/chunk semantics of ``options``
    (``lookahead=None``: the exact full-sequence result; ``exact`` goes to :func:`restore_exact`)."""
    if options.lookahead is None:
        return restore_exact(backend, frames, options.chunk, options.spill_dir, **exact)
    return restore_stream(backend, frames, options.lookahead, options.chunk)


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


def restored_frames(
    backend: Backend, frames: Iterator[Frame], info: VideoInfo, options: RunOptions, bars: _Bars
) -> Iterator[tuple[Frame, Tensor]]:
    """Pairs of (source frame, restored [3,H',W'] padded tensor), in order, streaming."""
    inflight: deque[Frame] = deque()  # source frames awaiting their output; at most chunk+lookahead of them

    def inputs() -> Iterator[Tensor]:
        for frame in frames:
            if frame.image.shape[:2] != (info.height, info.width):
                raise PahsError(
                    f"expected every frame to be {info.width}x{info.height}, found frame {frame.index} of "
                    f"{frame.image.shape[1]}x{frame.image.shape[0]}; split the video where its size changes"
                )
            inflight.append(frame)
            bars.read()
            yield pad_frame(frame.image, backend.size_multiple)

    for out in restore_padded(backend, inputs(), options, on_backward=lambda _: bars.backward()):
        yield inflight.popleft(), out


class _Bars:
    """Progress bars (frames/s, ETA) for reading and restoring; the backward pass too for --lookahead all."""

    def __init__(self, total: int | None, enabled: bool, exact: bool) -> None:
        self.enabled = enabled
        if not enabled:
            return
        from tqdm import tqdm

        kw = {"total": total, "unit": "frame", "dynamic_ncols": True, "leave": True}
        self.exact = exact
        self.pass1 = tqdm(desc="read + backward" if exact else "read", position=0, **kw)
        self.pass2 = tqdm(desc="restore", position=1, **kw)

    def read(self) -> None:
        if self.enabled and not self.exact:
            self.pass1.update()

    def backward(self) -> None:
        if self.enabled:
            self.pass1.update()

    def wrote(self) -> None:
        if self.enabled:
            self.pass2.update()

    def close(self) -> None:
        if self.enabled:
            self.pass1.close()
            self.pass2.close()


def side_by_side(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Input | restored, each [H,W,3], with a 4-pixel grey separator."""
    sep = np.full((left.shape[0], 4, 3), 0.5, dtype=np.float32)
    return np.concatenate([left, sep, right], axis=1)


@dataclass(frozen=True)
class RunSummary:
    frames: int
    width: int
    height: int
    output: str | None
    compare: str | None


def run_video(
    source: Path, output: str | None, backend: Backend, options: RunOptions, compare: str | None = None
) -> RunSummary:
    """Restore ``source`` (video file or frame folder) into ``output`` and, if given, a side-by-side into
    ``compare``. Outputs are strings so that a trailing "/" (a PNG folder) is kept."""
    with open_input(source) as reader:
        info = reader.info
        check_size(info)
        bars = _Bars(info.frames, options.progress, exact=options.lookahead is None)
        writers: list[BackgroundWriter] = []
        try:
            if output is not None:
                writers.append(BackgroundWriter(open_output(output, info, source=source, options=options.output)))
            if compare is not None:
                wide = VideoInfo(**{**info.__dict__, "width": 2 * info.width + 4})
                writers.append(BackgroundWriter(open_output(compare, wide, source=source, options=options.output)))
            count = 0
            for frame, restored in restored_frames(backend, iter(Prefetcher(reader)), info, options, bars):
                image = to_image(restored, info.height, info.width)
                if output is not None:
                    writers[0].write(image, frame.pts, frame.name)
                if compare is not None:
                    writers[-1].write(side_by_side(frame.image, image), frame.pts, frame.name)
                count += 1
                bars.wrote()
            if count == 0:
                raise PahsError(f"expected at least one decodable frame in {source}, found none; check the file")
            for w in writers:
                w.close()
        except BaseException:
            for w in writers:
                w.abort()
            raise
        finally:
            bars.close()
    return RunSummary(count, info.width, info.height, output, compare)
