"""Device-resident stepping, shared by the TensorRT backend and the PyTorch backend.

A backend that can write a step's outputs into buffers it is handed (its *launcher*) gets, from
:class:`ResidentSteps`:

- the carried hidden state ``h`` in two buffers per role, swapped every step (:class:`SwapBuffers`): a
  step reads ``h_prev`` from one and writes ``h`` into the other, so no buffer is ever bound as both an
  input and an output of one call, and ``h`` never leaves the device between steps;
- on CUDA, every step on the backend's own (non-default) stream, ordered after the caller's stream and
  back, with the caching allocator told which streams use which tensors (``record_stream``);
- on CUDA, host frames staged through pinned memory and copied asynchronously (a ring of two pinned
  buffers; one is rewritten only once the copy out of it has finished);
- optionally (``cuda_graphs=True``) one CUDA graph per role, frame shape and *buffer parity* (which of the
  two ``h`` buffers is the input), captured on first use and replayed after: a graph fixes the addresses
  it reads and writes, so inputs other than ``h_prev`` are copied into static buffers first and outputs
  other than ``h`` are copied out of static ones (the loop keeps ``feat`` for the fuse step).

On the CPU the same code runs without streams, staging or graphs (the PyTorch backend on the CPU uses it,
which is how CI exercises the buffer logic with real model steps).

Contract for callers: ``h`` returned by a step is one of the two buffers of that role; it stays valid
until the second next step of the same role. The loop only ever feeds the latest ``h`` back.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from pahs_export.contract import ROLES, Geometry
from pahs_export.errors import PahsError

from .base import Backend, StepOutputs

# launch(role, inputs, outputs): enqueue the graph of ``role`` on the current stream, reading ``inputs``
# (name -> tensor, in the contract's input order) and writing every tensor of ``outputs`` in place.
Launch = Callable[[str, dict[str, Tensor], dict[str, Tensor]], None]


class SwapBuffers:
    """Two preallocated buffers used alternately as a step's output, so an output never aliases the input.

    ``output_for(x)`` returns the buffer that is not ``x`` (by storage), allocating both lazily per shape,
    dtype and device. ``slot_of(x)`` is the parity used to key CUDA graphs: the index of the buffer that
    holds ``x`` (copying ``x`` into buffer 0 when it is neither, as the zero state of a sequence is).
    """

    def __init__(self) -> None:
        self._pair: tuple[Tensor, Tensor] | None = None

    def _ensure(self, like: Tensor, shape: tuple[int, ...]) -> tuple[Tensor, Tensor]:
        pair = self._pair
        if pair is None or (tuple(pair[0].shape), pair[0].dtype, pair[0].device) != (shape, like.dtype, like.device):
            pair = self._pair = (
                torch.empty(shape, dtype=like.dtype, device=like.device),
                torch.empty(shape, dtype=like.dtype, device=like.device),
            )
        return pair

    def output_for(self, x: Tensor, shape: tuple[int, ...] | None = None) -> Tensor:
        a, b = self._ensure(x, tuple(x.shape) if shape is None else shape)
        return b if a.data_ptr() == x.data_ptr() else a

    def slot_of(self, x: Tensor) -> int:
        pair = self._ensure(x, tuple(x.shape))
        for i, buf in enumerate(pair):
            if buf.data_ptr() == x.data_ptr():
                return i
        pair[0].copy_(x)
        return 0

    def buffer(self, slot: int) -> Tensor:
        assert self._pair is not None
        return self._pair[slot]


class PinnedUploads:
    """Host frames to the device through a ring of two pinned buffers, copied on ``stream``.

    A buffer is refilled only after the event recorded behind its last copy has completed, so the host never
    overwrites memory a copy is still reading, while decoding of the next frame overlaps the current copy.
    """

    def __init__(self, device: torch.device, stream: torch.cuda.Stream) -> None:
        self.device, self.stream = device, stream
        self._ring: list[tuple[Tensor, torch.cuda.Event | None] | None] = [None, None]
        self._next = 0

    def __call__(self, frame: Tensor) -> Tensor:
        if frame.is_cuda:  # already on a GPU: nothing to stage
            return frame.to(self.device, torch.float32)
        frame = frame.float()
        slot, self._next = self._next, 1 - self._next
        entry = self._ring[slot]
        if entry is None or entry[0].shape != frame.shape:
            entry = (torch.empty(frame.shape, dtype=torch.float32).pin_memory(), None)
        buf, done = entry
        if done is not None:
            done.synchronize()
        buf.copy_(frame)
        with torch.cuda.stream(self.stream):
            out = torch.empty(frame.shape, dtype=torch.float32, device=self.device)
            out.copy_(buf, non_blocking=True)
            event = torch.cuda.Event()
            event.record(self.stream)
        self._ring[slot] = (buf, event)
        caller = torch.cuda.current_stream(self.device)
        caller.wait_stream(self.stream)
        out.record_stream(caller)
        return out


class ResidentSteps:
    """Runs a backend's launcher with device-resident state (see the module docstring).

    ``dtype_of(role, name)`` gives the dtype a graph wants for each input and output (default float32);
    inputs are converted to it on the device, and outputs are returned as float32, as the
    :class:`~runtime.backends.Backend` interface requires.
    """

    def __init__(
        self,
        launch: Launch,
        device: torch.device,
        geometry: Geometry,
        *,
        dtype_of: Callable[[str, str], torch.dtype] | None = None,
        cuda_graphs: bool = False,
    ) -> None:
        if cuda_graphs and device.type != "cuda":
            raise PahsError(
                f"expected a CUDA device for CUDA graphs, found {device}; use --device cuda or drop --cuda-graphs"
            )
        self._launch = launch
        self.device, self.geometry = device, geometry
        self._dtype_of = dtype_of or (lambda role, name: torch.float32)
        self.cuda_graphs = cuda_graphs
        self.stream = torch.cuda.Stream(device) if device.type == "cuda" else None
        self.upload: Callable[[Tensor], Tensor] = (
            PinnedUploads(device, self.stream) if self.stream is not None else lambda f: f.to(device, torch.float32)
        )
        self._swap: dict[str, SwapBuffers] = {}
        self._static: dict[tuple, tuple[dict[str, Tensor], dict[str, Tensor]]] = {}
        self._graphs: dict[tuple, torch.cuda.CUDAGraph] = {}

    @property
    def graph_count(self) -> int:
        """CUDA graphs captured so far (one per role, frame shape and buffer parity)."""
        return len(self._graphs)

    def run(self, role: str, inputs: Sequence[Tensor]) -> tuple[Tensor, ...]:
        """Run ``role`` on contract-ordered ``inputs``; returns its outputs (float32) in the contract's order."""
        if self.stream is None:
            return self._run(role, inputs)
        caller = torch.cuda.current_stream(self.device)
        self.stream.wait_stream(caller)  # inputs written on the caller's stream are ready
        with torch.cuda.stream(self.stream):
            outputs = self._run(role, inputs)
            for x in inputs:
                if x.is_cuda:  # the caller may free it before our stream is done reading it
                    x.record_stream(self.stream)
        caller.wait_stream(self.stream)
        for out in outputs:
            out.record_stream(caller)
        return outputs

    def _run(self, role: str, inputs: Sequence[Tensor]) -> tuple[Tensor, ...]:
        spec = ROLES[role]
        if inputs[0].device.type != self.device.type:  # a host frame ("cuda" vs "cuda:0" is no transfer)
            inputs = (self.upload(inputs[0]), *inputs[1:])
        feeds = {
            name: x.to(self.device, self._dtype_of(role, name)).contiguous()
            for name, x in zip(spec.inputs, inputs, strict=True)
        }
        n, _, height, width = feeds["frame"].shape
        shapes = self.geometry.output_shapes(role, n, height, width)
        outs = self._replay(role, feeds, shapes) if self.cuda_graphs else self._eager(role, feeds, shapes)
        return tuple(outs[name].float() for name in spec.outputs)

    def _swap_for(self, role: str) -> SwapBuffers:
        if role not in self._swap:
            self._swap[role] = SwapBuffers()
        return self._swap[role]

    def _out_buffer(self, role: str, name: str, shape: tuple[int, ...]) -> Tensor:
        return torch.empty(shape, dtype=self._dtype_of(role, name), device=self.device)

    def _eager(self, role: str, feeds: dict[str, Tensor], shapes: dict[str, tuple[int, ...]]) -> dict[str, Tensor]:
        outs = {}
        for name, shape in shapes.items():
            if name == "h":  # the carried state: the buffer that is not h_prev's
                outs[name] = self._swap_for(role).output_for(feeds["h_prev"], shape)
            else:  # fresh: the loop keeps feat for up to chunk + lookahead steps
                outs[name] = self._out_buffer(role, name, shape)
        self._launch(role, feeds, outs)
        return outs

    def _replay(self, role: str, feeds: dict[str, Tensor], shapes: dict[str, tuple[int, ...]]) -> dict[str, Tensor]:
        frame_shape = tuple(feeds["frame"].shape)
        static = self._static.get((role, frame_shape))
        if static is None:
            static = (
                {name: torch.empty_like(x) for name, x in feeds.items() if name != "h_prev"},
                {name: self._out_buffer(role, name, s) for name, s in shapes.items() if name != "h"},
            )
            self._static[(role, frame_shape)] = static
        static_in, static_out = static
        for name, x in static_in.items():
            x.copy_(feeds[name])
        bound_in, bound_out = dict(static_in), dict(static_out)
        parity = 0
        if "h_prev" in feeds:
            swap = self._swap_for(role)
            parity = swap.slot_of(feeds["h_prev"])
            bound_in["h_prev"], bound_out["h"] = swap.buffer(parity), swap.buffer(1 - parity)
        bound_in = {name: bound_in[name] for name in ROLES[role].inputs}  # the contract's order
        key = (role, frame_shape, parity)
        graph = self._graphs.get(key)
        if graph is None:
            # One eager launch first: TensorRT applies shape changes on its first enqueue, torch initialises
            # its kernels; both must happen outside the capture. It computes this step's real result.
            self._launch(role, bound_in, bound_out)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, stream=self.stream, capture_error_mode="thread_local"):
                self._launch(role, bound_in, bound_out)
            self._graphs[key] = graph
        graph.replay()
        return {name: out if name == "h" else out.clone() for name, out in bound_out.items()}


class ResidentBackend(Backend):
    """A backend whose steps go through :class:`ResidentSteps`: subclasses set ``self.steps`` (with their
    launcher) and get the interface's ``upload``, ``run`` and ``describe`` from it."""

    steps: ResidentSteps

    def upload(self, frame: Tensor) -> Tensor:
        return self.steps.upload(frame)

    def run(self, role: str, *inputs: Tensor) -> StepOutputs:
        return self.steps.run(role, inputs)

    def describe(self) -> str:
        graphs = ", CUDA graphs" if self.steps.cuda_graphs else ""
        return f"{self.name} on {self.device} ({self.precision}{graphs})"
