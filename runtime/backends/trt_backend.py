"""TensorRT backend: engines from `pahs-export trt`, run on a non-default CUDA stream with device buffers.

- Device buffers are torch CUDA tensors; ``set_input_shape`` + ``set_tensor_address`` +
  ``execute_async_v3`` on the backend's own stream.
- State, streams, pinned uploads and CUDA graphs come from
  :class:`~runtime.backends.resident.ResidentSteps`, shared with the PyTorch backend: the hidden state ``h``
  never leaves the GPU (two buffers per role, swapped each step, so no buffer is ever bound as both input and
  output of one call); ``feat`` outputs go to fresh buffers because the bidirectional loop keeps them (for
  the fuse step) for up to chunk + lookahead steps; frames are staged through pinned host memory.
- ``cuda_graphs=True``: one CUDA graph per role, frame shape and buffer parity. A graph fixes the shapes and
  addresses it was captured with and uses its execution context's scratch memory, so every frame shape gets
  its own execution context (the two parities of one shape share it: they replay one after the other on
  one stream).

Before deserializing, the manifest is checked against this machine's TensorRT version and GPU, and every
frame size against the engine's profile. Written against the TensorRT 10/11 Python API documentation; not
executed against a real TensorRT here (see docs/TENSORRT.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from pahs_export.artifact import TENSORRT_FORMAT, check_graph_io, read_artifact
from pahs_export.checkpoint import parse_device
from pahs_export.errors import PahsError
from pahs_export.tensorrt_artifact import check_compatible, check_in_profile, current_device, require_tensorrt

from .base import StepOutputs
from .resident import ResidentBackend, ResidentSteps

if TYPE_CHECKING:
    import tensorrt as trt

_DTYPES = {"FLOAT": torch.float32, "HALF": torch.float16}


def _dims(dims: trt.Dims) -> tuple[int, ...]:
    """A TensorRT shape as a tuple (Dims is indexable; its stubs do not declare iteration)."""
    return tuple(dims[i] for i in range(len(dims)))


class TensorRTBackend(ResidentBackend):
    """Runs the engines of a TensorRT artifact folder on one CUDA device."""

    name = "tensorrt"

    def __init__(self, path: Path, device: str = "cuda", cuda_graphs: bool = False) -> None:
        require_tensorrt()
        import tensorrt as trt

        artifact = read_artifact(path, TENSORRT_FORMAT)
        self.manifest = artifact.manifest
        check_compatible(self.manifest, current_device())
        self.device = parse_device(device)
        self.bidirectional = artifact.bidirectional
        self.precision = artifact.precision
        self.geometry = artifact.geometry
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        # A plan can carry host code (plugins, lean runtimes) that deserializing would run: refuse it explicitly
        # (the default, but stated), and deserialize only the bytes whose sha256 the manifest records.
        if hasattr(runtime, "engine_host_code_allowed"):  # TensorRT 10 before 10.x's property: default refuses
            runtime.engine_host_code_allowed = False
        self.engines: dict[str, trt.ICudaEngine] = {}
        for role, engine_path in artifact.graphs.items():
            engine = runtime.deserialize_cuda_engine(artifact.verified_bytes(role))
            if engine is None:
                raise PahsError(f"TensorRT could not load {engine_path}; rebuild it with `pahs-export trt`")
            self.engines[role] = engine
            names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
            io = {
                mode: [(n, _dims(engine.get_tensor_shape(n))) for n in names if engine.get_tensor_mode(n) == mode]
                for mode in (trt.TensorIOMode.INPUT, trt.TensorIOMode.OUTPUT)
            }
            check_graph_io(engine_path, role, self.geometry, io[trt.TensorIOMode.INPUT], io[trt.TensorIOMode.OUTPUT])
        # Execution contexts by (role, frame shape); eager steps use the role's first one for every shape.
        self._contexts: dict[tuple, trt.IExecutionContext] = {}
        self._checked: set[tuple[int, ...]] = set()
        self.steps = ResidentSteps(
            self._launch,
            self.device,
            self.geometry,
            dtype_of=lambda role, name: _DTYPES[self.engines[role].get_tensor_dtype(name).name],
            cuda_graphs=cuda_graphs,
        )

    def _context(self, role: str, frame_shape: tuple[int, ...]) -> trt.IExecutionContext:
        key = (role, frame_shape if self.steps.cuda_graphs else None)
        ctx = self._contexts.get(key)
        if ctx is None:
            ctx = self._contexts[key] = self.engines[role].create_execution_context()
        return ctx

    def _launch(self, role: str, inputs: dict[str, Tensor], outputs: dict[str, Tensor]) -> None:
        ctx = self._context(role, tuple(inputs["frame"].shape))
        for name, x in inputs.items():
            ctx.set_input_shape(name, tuple(x.shape))
            ctx.set_tensor_address(name, x.data_ptr())
        for name, out in outputs.items():
            shape = _dims(ctx.get_tensor_shape(name))
            if shape != tuple(out.shape):
                raise PahsError(
                    f"expected the {role} engine's {name} to be {tuple(out.shape)} (graph contract), found {shape}; "
                    "rebuild the engines with `pahs-export trt` from a `pahs-export onnx` artifact"
                )
            ctx.set_tensor_address(name, out.data_ptr())
        if not ctx.execute_async_v3(torch.cuda.current_stream(self.device).cuda_stream):
            raise PahsError(f"TensorRT failed to run the {role} engine; re-run with --debug for its log")

    def run(self, role: str, *inputs: Tensor) -> StepOutputs:
        n, _, height, width = inputs[0].shape
        if (n, height, width) not in self._checked:
            check_in_profile(self.manifest, n, width, height)
            self._checked.add((n, height, width))
        return super().run(role, *inputs)
