"""TensorRT backend: engines from `pahs-export trt`, run on a non-default CUDA stream with device buffers.

- Device buffers are torch CUDA tensors; ``set_input_shape`` + ``set_tensor_address`` +
  ``execute_async_v3`` on the backend's own stream.
- The hidden state ``h`` never leaves the GPU: two buffers per direction are swapped each step
  (:class:`SwapBuffers`), so no buffer is ever bound as both input and output of one call. ``feat`` outputs
  go to fresh buffers from torch's caching allocator because the bidirectional loop keeps them (for the fuse
  step) for up to chunk + lookahead steps.
- Frames are staged through pinned host memory and copied asynchronously.

Before deserializing, the manifest is checked against this machine's TensorRT version and GPU, and every
frame size against the engine's profile. Written against the TensorRT 10/11 Python API documentation; not
executed against a real TensorRT here (see docs/TENSORRT.md).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from pahs_export.artifact import ROLES
from pahs_export.errors import PahsError
from pahs_export.tensorrt_artifact import check_compatible, check_in_profile, read_manifest

from .base import Backend, StepOutputs


class SwapBuffers:
    """Two preallocated buffers used alternately as a step's output, so an output never aliases the input.

    ``output_for(x)`` returns the buffer that is not ``x`` (by storage), allocating both lazily per shape.
    Shared logic for any backend that writes into caller-owned device memory.
    """

    def __init__(self) -> None:
        self._pair: tuple[Tensor, Tensor] | None = None

    def output_for(self, x: Tensor, shape: tuple[int, ...] | None = None) -> Tensor:
        shape = tuple(x.shape) if shape is None else shape
        if self._pair is None or tuple(self._pair[0].shape) != shape or self._pair[0].device != x.device:
            self._pair = (
                torch.empty(shape, dtype=x.dtype, device=x.device),
                torch.empty(shape, dtype=x.dtype, device=x.device),
            )
        a, b = self._pair
        return b if a.data_ptr() == x.data_ptr() else a


_DTYPES = {"FLOAT": torch.float32, "HALF": torch.float16}


class TensorRTBackend(Backend):
    """Runs the engines of a TensorRT artifact folder on one CUDA device."""

    name = "tensorrt"

    def __init__(self, path: Path, device: str = "cuda") -> None:
        from pahs_export.tensorrt_build import current_device, import_tensorrt

        trt = import_tensorrt()
        self.manifest = read_manifest(path)
        check_compatible(self.manifest, current_device())
        self.device = torch.device(device)
        self.stream = torch.cuda.Stream(self.device)
        self.bidirectional = self.manifest["direction"] == "bidirectional"
        self.precision = self.manifest["precision"]
        self.hidden = self.manifest["channels"]["hidden"]
        self.channels = self.manifest["channels"]["c"]
        self.size_multiple = self.manifest["size_multiple"]
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engines, self.contexts = {}, {}
        for role, name in self.manifest["engines"].items():
            engine = runtime.deserialize_cuda_engine((path / name).read_bytes())
            if engine is None:
                raise PahsError(f"TensorRT could not load {path / name}; rebuild it with `pahs-export trt`")
            self.engines[role] = engine
            self.contexts[role] = engine.create_execution_context()
        self._swap = {role: SwapBuffers() for role in self.engines}
        self._pinned: Tensor | None = None
        self._checked: set[tuple[int, ...]] = set()

    def upload(self, frame: Tensor) -> Tensor:
        """Host frame -> device, through a pinned staging buffer, on the backend's stream."""
        if frame.device.type == "cuda":
            return frame
        if self._pinned is None or self._pinned.shape != frame.shape:
            self._pinned = torch.empty(frame.shape, dtype=torch.float32).pin_memory()
        self._pinned.copy_(frame)
        with torch.cuda.stream(self.stream):
            return self._pinned.to(self.device, non_blocking=True)

    def run(self, role: str, *inputs: Tensor) -> StepOutputs:
        spec = ROLES[role]
        frame = self.upload(inputs[0])
        n, _, height, width = frame.shape
        if (n, height, width) not in self._checked:
            check_in_profile(self.manifest, n, width, height)
            self._checked.add((n, height, width))
        engine, ctx = self.engines[role], self.contexts[role]
        feeds = dict(zip(spec.inputs, (frame, *inputs[1:]), strict=True))
        for name, x in feeds.items():
            want = _DTYPES[engine.get_tensor_dtype(name).name]
            x = x.to(self.device, want).contiguous()
            feeds[name] = x  # keep a reference until the stream has consumed it
            ctx.set_input_shape(name, tuple(x.shape))
            ctx.set_tensor_address(name, x.data_ptr())
        outputs = []
        for name in spec.outputs:
            shape = tuple(ctx.get_tensor_shape(name))
            dtype = _DTYPES[engine.get_tensor_dtype(name).name]
            if name == "h":  # the carried hidden state: swapped buffers, never the input's
                out = self._swap[role].output_for(feeds["h_prev"].to(dtype), shape)
            else:
                out = torch.empty(shape, dtype=dtype, device=self.device)
            ctx.set_tensor_address(name, out.data_ptr())
            outputs.append(out)
        self.stream.wait_stream(torch.cuda.current_stream(self.device))
        if not ctx.execute_async_v3(self.stream.cuda_stream):
            raise PahsError(f"TensorRT failed to run the {role} engine; re-run with --debug for its log")
        torch.cuda.current_stream(self.device).wait_stream(self.stream)
        return tuple(o.float() for o in outputs)
