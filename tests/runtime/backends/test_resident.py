"""Device-resident stepping (runtime/backends/resident.py): shapes, swapped state buffers, dtypes, CUDA graphs.

The CPU tests drive ResidentSteps with the real model's steps (the torch backend's launcher); the CUDA-graph,
stream and pinned-memory paths need a GPU and are marked `gpu`.
"""

from __future__ import annotations

import copy

import pytest
import torch

from pahs_export import build_model
from pahs_export.contract import Geometry
from pahs_export.errors import PahsError
from runtime.backends.resident import ResidentSteps, SwapBuffers
from runtime.backends.torch_backend import TorchBackend
from runtime.driver import restore_clip

# Tolerances of the GPU paths against the CPU reference (FP32, TF32 off): cuDNN picks other algorithms.
CUDA_FP32_ATOL = 1e-4
GEOMETRY = Geometry(channels=48, hidden=16, mid=32)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(3)
    return build_model("pahs-t")


def test_swap_buffers_never_alias_the_input():
    swap = SwapBuffers()
    x = torch.zeros(1, 16, 4, 4)
    a = swap.output_for(x)
    assert a.data_ptr() != x.data_ptr()
    b = swap.output_for(a)
    assert b.data_ptr() != a.data_ptr() and swap.output_for(b).data_ptr() == a.data_ptr()
    h = x
    for _ in range(6):  # a recurrence: each step's output is the next step's input
        out = swap.output_for(h)
        assert out.data_ptr() != h.data_ptr() and out.data_ptr() in {a.data_ptr(), b.data_ptr()}
        h = out
    assert swap.output_for(torch.zeros(1, 16, 8, 8)).shape == (1, 16, 8, 8)  # a new shape reallocates the pair
    assert swap.output_for(torch.zeros(1, 16, 8, 8, dtype=torch.float16)).dtype == torch.float16


def test_slot_of_gives_the_parity_and_adopts_outside_tensors():
    swap = SwapBuffers()
    zeros = torch.zeros(1, 4, 2, 2)
    assert swap.slot_of(zeros + 3) == 0 and torch.equal(swap.buffer(0), zeros + 3)  # copied in
    assert swap.slot_of(swap.buffer(1)) == 1 and swap.slot_of(swap.buffer(0)) == 0


def test_state_alternates_between_two_buffers_and_never_aliases(model):
    seen: list[tuple[int, int]] = []  # (h_prev, h) storages per forward call
    backend = TorchBackend(model)
    launch = backend.steps._launch

    def spy(role, inputs, outputs):
        if role == "forward":
            seen.append((inputs["h_prev"].data_ptr(), outputs["h"].data_ptr()))
            assert outputs["feat"].data_ptr() not in {x.data_ptr() for x in inputs.values()}
        launch(role, inputs, outputs)

    backend.steps._launch = spy
    x = torch.rand(7, 3, 32, 48)
    with torch.no_grad():
        ref = model(x[None], lookahead=None)[0]
    assert torch.equal(restore_clip(backend, x), ref)  # the buffers change nothing, bit for bit
    assert all(h_in != h_out for h_in, h_out in seen)
    assert len({h for _, h in seen}) == 2  # two buffers, used alternately
    assert [h_out for _, h_out in seen[:-1]] == [h_in for h_in, _ in seen[1:]]  # no copies between steps


def test_graph_dtypes_are_applied_and_outputs_come_back_float32(model):
    """A graph with FP16 inputs and outputs (as an engine may have) still talks FP32 to the loop."""
    backend = TorchBackend(model)
    got: dict[str, torch.dtype] = {}

    def launch(role, inputs, outputs):
        got.update({n: x.dtype for n, x in inputs.items()})
        got.update({n: x.dtype for n, x in outputs.items()})
        backend._launch(role, {n: x.float() for n, x in inputs.items()}, outputs)

    steps = ResidentSteps(launch, torch.device("cpu"), GEOMETRY, dtype_of=lambda role, name: torch.float16)
    frame = torch.rand(1, 3, 32, 48)
    h, feat = steps.run("forward", (frame, *backend.initial_state(frame)))
    assert set(got.values()) == {torch.float16} and set(got) == {"frame", "h_prev", "feat_prev", "h", "feat"}
    assert h.dtype == feat.dtype == torch.float32 and h.shape == (1, 16, 8, 12)
    with torch.no_grad():
        ref_h, _ = model.forward_step(frame, *backend.initial_state(frame))
    assert (h - ref_h).abs().max() < 1e-2  # FP16 storage of the inputs and outputs


def test_cuda_graphs_need_a_cuda_device(model, tmp_path):
    with pytest.raises(PahsError, match="expected a CUDA device for CUDA graphs, found cpu"):
        TorchBackend(model, "cpu", cuda_graphs=True)
    from pahs_export import save_checkpoint
    from runtime.engines import open_engine

    ckpt = save_checkpoint(model, tmp_path / "m.safetensors")
    with pytest.raises(PahsError, match="drop --cuda-graphs"):
        open_engine(ckpt, device="cpu", cuda_graphs=True)
    with pytest.raises(PahsError, match="found onnxruntime"):
        open_engine(ckpt, backend="onnxruntime", cuda_graphs=True)


@pytest.mark.gpu
@pytest.mark.parametrize("graphs", [False, True])
def test_cuda_resident_loop_matches_the_cpu_reference(model, graphs):
    """Torch on CUDA through the shared resident loop (own stream, pinned uploads, swapped state, optionally
    CUDA graphs), over two frame sizes, against the CPU reference."""
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    backend = TorchBackend(copy.deepcopy(model), "cuda", cuda_graphs=graphs)
    for size in ((64, 96), (48, 80)):
        x = torch.rand(10, 3, *size)
        with torch.no_grad():
            ref = model(x[None], lookahead=None)[0]
        out = restore_clip(backend, x)
        assert (out - ref).abs().max() < CUDA_FP32_ATOL
    if graphs:  # forward and backward: two parities each; fuse: one; per size
        assert backend.steps.graph_count == 2 * 5
    assert backend.describe().endswith(", CUDA graphs)" if graphs else "(fp32)")


@pytest.mark.gpu
def test_pinned_uploads_keep_every_frame():
    """Many uploads in a row through the two pinned buffers: none is overwritten before its copy is done."""
    steps = ResidentSteps(lambda *a: None, torch.device("cuda"), GEOMETRY)
    frames = [torch.full((1, 3, 256, 256), float(i)) for i in range(16)]
    on_device = [steps.upload(f) for f in frames]
    torch.cuda.synchronize()
    assert all(torch.equal(d.cpu(), f) for d, f in zip(on_device, frames, strict=True))
