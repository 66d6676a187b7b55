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

import os
from collections.abc import Iterable, Iterator
from dataclasses import fields, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from pahs_export.errors import PahsError
from pahs_export.model import pad_to_multiple
from pahs_export.presets import DEFAULT_LOOKAHEAD
from runtime.backends import Backend
from runtime.checks import MAX_LOOKAHEAD
from runtime.driver import DEFAULT_CHUNK
from runtime.io import X264_PRESETS, OutputOptions, VideoInfo
from runtime.pipeline import (
    RunOptions,
    RunSummary,
    check_frame_size,
    check_options,
    restore_padded,
    run_video,
)

from .export_cache import open_backend

Frame = np.ndarray | Tensor
_SCALES = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}
# How far outside [0, 1] a float frame may go (resampling and colour conversions overshoot a little); outputs
# are clamped to [0, 1] whatever the input.
FLOAT_TOLERANCE = 0.05


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
        if isinstance(frames, (str, bytes, os.PathLike)) or not isinstance(frames, Iterable):
            raise PahsError(
                f"expected frames to be an iterable of arrays or tensors, found {type(frames).__name__}; pass a "
                "list or generator of frames (restore_video takes a file)"
            )
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
        src = _path("src", src, "a file, a folder of frames, a URL or '-'")
        dst = _path("dst", dst, "a file, a folder ending in '/', '-', or None with compare", optional=True)
        compare = _path("compare", compare, "a file or a folder ending in '/', or None", optional=True)
        encoder = _encoder(output)
        options = self._options(lookahead, chunk, max_pixels, spill_dir, encoder, _flag("progress", progress))
        return run_video(src, dst, self.backend, options, compare)

    def _options(
        self,
        lookahead: int | None,
        chunk: int,
        max_pixels: int | None,
        spill_dir: str | Path | None,
        output: OutputOptions | None = None,
        progress: bool = False,
    ) -> RunOptions:
        """The run's settings, each checked for its type and range (the CLI's spellings accepted, as
        ``lookahead='all'``), then against the open engine (as `pahs-run` checks its options)."""
        lookahead = _lookahead(lookahead)
        chunk = _whole("chunk", chunk, 1, "a number of frames of at least 1")
        max_pixels = _whole("max_pixels", max_pixels, 1, "a number of pixels of at least 1, or None", optional=True)
        spill_dir = None if spill_dir is None else _path("spill_dir", spill_dir, "an existing folder, or None")
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
    """Open ``engine`` (an ONNX artifact folder, a TensorRT artifact, a .safetensors checkpoint; None: the default
    weights) with ``backend`` (torch, onnxruntime, openvino, tensorrt; None: the engine's and device's,
    :func:`runtime.engines.default_backend`) on ``device`` (cpu, cuda, cuda:N; None: the backend's default) at
    ``precision`` (fp32, fp16, int8; None: fp32, or an exported artifact's own). Weights are exported to the
    artifact the backend runs, once, and cached (:func:`pahs.export_cache.open_backend`). ``cuda_graphs``: capture
    and replay CUDA graphs (tensorrt, or torch on cuda). ``threads``: CPU threads of a step (None: every core). The
    engine is opened once; reuse the restorer."""
    engine = _path("engine", engine, "an artifact folder, a .safetensors checkpoint, or None", optional=True)
    for name, value in (("backend", backend), ("device", device), ("precision", precision)):
        if value is not None and not isinstance(value, str):
            raise PahsError(f"expected {name} to be a string or None, found {value!r}; see help(pahs.open)")
    cuda_graphs = _flag("cuda_graphs", cuda_graphs)
    threads = _whole("threads", threads, 1, "a number of CPU threads of at least 1, or None", optional=True)
    return Restorer(open_backend(engine, backend, precision, device=device, cuda_graphs=cuda_graphs, threads=threads))


# -- checking the parameters: each refused in one line that names it and what it accepts ---------------------------


def _whole(name: str, value: Any, low: int, accepts: str, high: int | None = None, optional: bool = False) -> Any:
    """An integer parameter (a numpy integer, or digits as the CLI takes them, too) from ``low`` to ``high``."""
    if value is None and optional:
        return None
    number = None
    if isinstance(value, str) and value.strip().isdigit():
        number = int(value)
    elif isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        number = int(value)
    if number is None or number < low or (high is not None and number > high):
        raise PahsError(f"expected {name} to be {accepts}, found {value!r}")
    return number


def _lookahead(value: Any) -> int | None:
    """``lookahead``: frames from 0 to :data:`MAX_LOOKAHEAD`, or None or 'all' (the exact full-sequence mode,
    as `pahs-run --lookahead all`)."""
    if value is None or (isinstance(value, str) and value.strip().lower() == "all"):
        return None
    accepts = f"a number of frames from 0 to {MAX_LOOKAHEAD}, or 'all' (or None) for the exact full-sequence mode"
    return _whole("lookahead", value, 0, accepts, MAX_LOOKAHEAD)


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise PahsError(f"expected {name} to be True or False, found {value!r}")
    return bool(value)


def _path(name: str, value: Any, accepts: str, optional: bool = False) -> Any:
    """A path parameter as a string (str or os.PathLike accepted)."""
    if value is None and optional:
        return None
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str) or not value:
        raise PahsError(f"expected {name} to be {accepts}, found {value!r}")
    return value


def _encoder(output: dict[str, Any]) -> OutputOptions:
    """:meth:`Restorer.restore_video`'s encoder keywords as :class:`OutputOptions`, each checked (``crf`` and
    ``fps`` also as the CLI spells them: "23", "30000/1001")."""
    known = {f.name for f in fields(OutputOptions)}
    unknown = sorted(set(output) - known)
    if unknown:
        raise PahsError(
            f"expected encoder settings of OutputOptions ({', '.join(sorted(known))}), found "
            f"{', '.join(unknown)}; see runtime.io.OutputOptions"
        )
    settings = dict(output)
    if "crf" in settings:
        settings["crf"] = _whole("crf", settings["crf"], 0, "a whole number from 0 to 51 (18 looks lossless)", 51)
    if settings.get("preset") is not None and settings["preset"] not in X264_PRESETS:
        raise PahsError(f"expected preset to be one of {', '.join(X264_PRESETS)}, found {settings['preset']!r}")
    for name in ("lossless", "overwrite"):
        if name in settings:
            settings[name] = _flag(name, settings[name])
    for name in ("codec", "pix_fmt", "format"):
        if settings.get(name) is not None and not isinstance(settings[name], str):
            raise PahsError(f"expected {name} to be a string or None, found {settings[name]!r}")
    if settings.get("fps") is not None:
        settings["fps"] = _fps(settings["fps"])
    return replace(OutputOptions(), **settings)


def _fps(value: Any) -> Fraction:
    fps = None
    if not isinstance(value, (bool, np.bool_)) and isinstance(value, (str, int, float, Fraction, np.number)):
        try:
            fps = Fraction(value.strip() if isinstance(value, str) else value)
        except (ValueError, ZeroDivisionError, OverflowError):
            fps = None
    if fps is None or fps <= 0:
        raise PahsError(
            f"expected fps to be a positive rate such as 25, 29.97 or '30000/1001', or None, found {value!r}"
        )
    return fps


def _to_tensor(frame: Frame, index: int) -> tuple[Tensor, Any]:
    """A frame as float32 [3, H, W] in [0, 1], and what to convert the result back to."""
    if isinstance(frame, Tensor):
        if frame.dim() != 3 or frame.shape[0] != 3 or not frame.is_floating_point():
            raise PahsError(
                f"expected a float tensor [3, H, W] in [0, 1], found frame {index} of shape {list(frame.shape)} "
                f"and dtype {frame.dtype}; convert it (e.g. x.permute(2, 0, 1).float() / 255)"
            )
        x = frame.float()
        _check_float_frame(x, index)
        return x, ("tensor", frame.dtype, frame.device)
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
        _check_float_frame(torch.from_numpy(x), index)
    else:
        raise PahsError(f"expected uint8, uint16 or float frames, found {array.dtype} in frame {index}")
    return torch.from_numpy(np.ascontiguousarray(x)).permute(2, 0, 1), ("numpy", array.dtype, None)


def _check_float_frame(x: Tensor, index: int) -> None:
    """A float frame must be finite (one NaN would spread through the recurrent state to every frame) and in
    [0, 1] within :data:`FLOAT_TOLERANCE` (frames in 0-255 would come back white)."""
    finite = torch.isfinite(x)
    if not bool(finite.all()):
        bad = int((~finite).sum())
        raise PahsError(
            f"expected finite values in float frames, found {bad} NaN or Inf in frame {index}; replace them "
            "(e.g. numpy.nan_to_num) before restoring: the recurrent state would carry them into every frame"
        )
    low, high = float(x.min()), float(x.max())
    if low < -FLOAT_TOLERANCE or high > 1 + FLOAT_TOLERANCE:
        hint = "divide by 255" if high <= 255 + FLOAT_TOLERANCE else "scale them to [0, 1]"
        raise PahsError(
            f"expected float frames in [0, 1] (within {FLOAT_TOLERANCE}), found values from {low:g} to {high:g} in "
            f"frame {index}; {hint}, or pass uint8/uint16 arrays"
        )


def _from_tensor(x: Tensor, kind: Any) -> Frame:
    library, dtype, device = kind
    x = x.clamp(0, 1)
    if library == "tensor":
        return x.to(device=device, dtype=dtype)
    image = x.permute(1, 2, 0).float().cpu().numpy()
    if dtype in _SCALES:
        return np.rint(image * _SCALES[dtype]).astype(dtype)
    return image.astype(dtype)
