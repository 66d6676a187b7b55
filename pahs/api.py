"""The Python API: open an engine once, then restore frames of any size, or whole videos.

```python
import pahs

restorer = pahs.open()                               # the default weights on the default CPU backend
for sharp in restorer.restore(frames):               # numpy uint8/uint16 [H,W,3] or float tensors [3,H,W]
    ...                                              # same type, size and range as what went in
restorer.restore_video("in.mp4", "out.mp4")          # what `pahs-run in.mp4 -o out.mp4` does
```

`pahs-run` is a thin layer over this module: it parses options, opens a :class:`Restorer` and calls
:meth:`Restorer.restore_video`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from pahs_export.errors import PahsError
from pahs_export.model import pad_to_multiple
from pahs_export.presets import DEFAULT_LOOKAHEAD
from runtime.backends import Backend
from runtime.driver import DEFAULT_CHUNK
from runtime.io import OutputOptions, VideoInfo
from runtime.pipeline import RunOptions, RunSummary, check_frame_size, check_options, restore_padded, run_video

from .export_cache import open_backend

Frame = np.ndarray | Tensor
_SCALES = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}


class Restorer:
    """An open engine (:attr:`backend`) and the padding, cropping and conversion around it.

    Frames may be numpy arrays [H, W, 3] RGB (uint8, uint16, or float in [0, 1]) or torch tensors [3, H, W]
    float in [0, 1], of any size of at least 16x16 (padded to the engine's multiple, cropped back). Each output
    has the type, size and value range of its input (floats clamped to [0, 1]).
    """

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    def __repr__(self) -> str:
        return f"Restorer({self.backend.describe()})"

    def restore(
        self,
        frames: Iterable[Frame],
        *,
        lookahead: int | None = DEFAULT_LOOKAHEAD,
        chunk: int = DEFAULT_CHUNK,
        max_pixels: int | None = None,
        spill_dir: str | Path | None = None,
    ) -> Iterator[Frame]:
        """Restore a sequence of frames, streaming: memory holds ``chunk + lookahead`` frames at most.

        ``lookahead``: future frames every frame sees (None: all of them, the exact full-sequence result, which
        spills the frames to disk under ``spill_dir`` and reads every frame before yielding the first);
        ``chunk``: frames restored per backward run; ``max_pixels``: the largest frame accepted (None: what
        free memory holds at these settings, checked at the first frame). The same semantics as
        `pahs-run --lookahead/--chunk/--max-pixels/--spill-dir`.
        """
        options = self._options(lookahead, chunk, max_pixels, spill_dir)
        kinds: list[tuple[Any, int, int]] = []  # per frame: (type to return, height, width), oldest first

        def padded() -> Iterator[Tensor]:
            size = None
            for index, frame in enumerate(frames):
                x, kind = _to_tensor(frame, index)
                height, width = x.shape[-2:]
                if size is None:
                    size = (height, width)
                    if min(height, width) < 16:
                        raise PahsError(f"expected frames of at least 16x16, found {width}x{height}; upscale first")
                    info = VideoInfo(width, height, None, None, None, 0, 8, None, False, False)
                    check_frame_size(info, self.backend, options)
                elif (height, width) != size:
                    raise PahsError(
                        f"expected every frame to be {size[1]}x{size[0]} like the first, found frame {index} of "
                        f"{width}x{height}; restore sequences of one size"
                    )
                kinds.append((kind, height, width))
                yield pad_to_multiple(x, self.backend.size_multiple)[0]

        # no_grad around each step only: a context held across `yield` would switch gradients off in the
        # caller's loop body too
        outputs = restore_padded(self.backend, padded(), options)
        try:
            while True:
                with torch.no_grad():
                    out = next(outputs, None)
                    if out is None:
                        return
                    kind, height, width = kinds.pop(0)
                    restored = _from_tensor(out[:, :height, :width], kind)
                yield restored
        finally:
            outputs.close()

    def restore_video(
        self,
        src: str | Path,
        dst: str | Path | None,
        *,
        lookahead: int | None = DEFAULT_LOOKAHEAD,
        chunk: int = DEFAULT_CHUNK,
        compare: str | Path | None = None,
        progress: bool = False,
        max_pixels: int | None = None,
        spill_dir: str | Path | None = None,
        **output: Any,
    ) -> RunSummary:
        """Restore ``src`` into ``dst``, as `pahs-run` does.

        ``src``: a video file, a folder of frames, a URL (``http://``, ``rtsp://``, ``file:`` ...: passed to
        FFmpeg as it is) or "-" for standard input. ``dst``: .mp4/.mov/.mkv/.nut/.y4m, a folder ending in "/" for
        PNG frames, or "-" for standard output (``format`` y4m, nut, matroska or rawvideo); None with
        ``compare``: only the side-by-side. ``output``: encoder settings of :class:`runtime.io.OutputOptions`
        (``codec``, ``pix_fmt``, ``format``, ``crf``, ``preset``, ``lossless``, ``fps``, ``overwrite``). The
        other options as in :meth:`restore` and `pahs-run`; ``progress``: bars on stderr when it is a terminal.
        """
        try:
            encoder = replace(OutputOptions(), **output)
        except TypeError as e:
            raise PahsError(f"expected encoder settings of OutputOptions, found {sorted(output)} ({e})") from None
        options = self._options(lookahead, chunk, max_pixels, spill_dir, encoder, progress)
        return run_video(
            src, None if dst is None else str(dst), self.backend, options, None if compare is None else str(compare)
        )

    def _options(
        self,
        lookahead: int | None,
        chunk: int,
        max_pixels: int | None,
        spill_dir: str | Path | None,
        output: OutputOptions | None = None,
        progress: bool = False,
    ) -> RunOptions:
        """The run's settings, checked against the open engine (as `pahs-run` checks its options)."""
        options = run_options(lookahead, chunk, max_pixels, spill_dir, output, progress)
        check_options(options, self.backend, lookahead_given=lookahead != DEFAULT_LOOKAHEAD)
        return options


def run_options(
    lookahead: int | None,
    chunk: int,
    max_pixels: int | None = None,
    spill_dir: str | Path | None = None,
    output: OutputOptions | None = None,
    progress: bool = False,
) -> RunOptions:
    """How a video is restored, as :class:`runtime.pipeline.RunOptions`: the one place pahs builds them, for the
    :class:`Restorer`'s keywords and `pahs-run`'s options (:meth:`pahs.cli.request.RunRequest.run_options`)."""
    return RunOptions(
        lookahead=lookahead,
        chunk=chunk,
        output=OutputOptions() if output is None else output,
        progress=progress,
        max_pixels=max_pixels,
        spill_dir=None if spill_dir is None else Path(spill_dir),
    )


def open(  # shadows the builtin on purpose: `pahs.open`, like `av.open`
    engine: str | Path | None = None,
    *,
    backend: str | None = None,
    device: str | None = None,
    precision: str | None = None,
    cuda_graphs: bool = False,
    threads: int | None = None,
) -> Restorer:
    """Open ``engine`` (an ONNX artifact folder, a TensorRT artifact, a .safetensors checkpoint; None: the
    default weights) with ``backend`` (torch, onnxruntime, openvino, tensorrt; None: the engine's own) on
    ``device`` (cpu, cuda, cuda:N; None: the backend's default) at ``precision`` (fp32, fp16, int8; None: fp32,
    or an exported artifact's own). Weights are exported to the artifact the backend runs, once, and cached
    (:func:`pahs.export_cache.open_backend`). ``cuda_graphs``: capture and replay CUDA graphs (tensorrt, or torch
    on cuda). ``threads``: CPU threads of a step (None: every core). The engine is opened once; reuse the
    restorer."""
    return Restorer(open_backend(engine, backend, precision, device=device, cuda_graphs=cuda_graphs, threads=threads))


def _to_tensor(frame: Frame, index: int) -> tuple[Tensor, Any]:
    """A frame as float32 [3, H, W] in [0, 1], and what to convert the result back to."""
    if isinstance(frame, Tensor):
        if frame.dim() != 3 or frame.shape[0] != 3 or not frame.is_floating_point():
            raise PahsError(
                f"expected a float tensor [3, H, W] in [0, 1], found frame {index} of shape {list(frame.shape)} "
                f"and dtype {frame.dtype}; convert it (e.g. x.permute(2, 0, 1).float() / 255)"
            )
        return frame.float(), ("tensor", frame.dtype, frame.device)
    array = np.asarray(frame)
    if array.ndim != 3 or array.shape[2] != 3:
        raise PahsError(
            f"expected an RGB image [H, W, 3], found frame {index} of shape {list(array.shape)}; "
            "convert gray or RGBA frames to RGB"
        )
    if array.dtype in _SCALES:
        x = array.astype(np.float32) / np.float32(_SCALES[array.dtype])
    elif np.issubdtype(array.dtype, np.floating):
        x = array.astype(np.float32)
    else:
        raise PahsError(f"expected uint8, uint16 or float frames, found {array.dtype} in frame {index}")
    return torch.from_numpy(np.ascontiguousarray(x)).permute(2, 0, 1), ("numpy", array.dtype, None)


def _from_tensor(x: Tensor, kind: Any) -> Frame:
    library, dtype, device = kind
    x = x.clamp(0, 1)
    if library == "tensor":
        return x.to(device=device, dtype=dtype)
    image = x.permute(1, 2, 0).float().cpu().numpy()
    if dtype in _SCALES:
        return np.rint(image * _SCALES[dtype]).astype(dtype)
    return image.astype(dtype)
