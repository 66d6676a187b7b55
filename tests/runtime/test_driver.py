"""The streaming driver's semantics against the reference model, exactly."""

from __future__ import annotations

import pytest
import torch

from pahs_export import build_model
from runtime.backends.torch_backend import TorchBackend
from runtime.driver import restore_exact, restore_stream


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(5)
    return build_model("pahs-t")


@pytest.fixture(scope="module")
def backend(model):
    return TorchBackend(model)


def clip(t: int, h: int = 32, w: int = 48, seed: int = 0) -> torch.Tensor:
    """Frames quantised to k/255, as decoded 8-bit video is (what --lookahead all keeps exactly)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (t, 3, h, w), generator=g).float() / 255


def stream(backend, x, **kw) -> torch.Tensor:
    with torch.no_grad():
        return torch.stack(list(restore_stream(backend, iter(x), **kw)))


def window_reference(model, x: torch.Tensor, lookahead: int, chunk: int) -> torch.Tensor:
    """The documented semantics, spelled out: chunk [s, s+K) runs backward from min(T-1, s+K-1+N)."""
    t_total = x.shape[0]
    with torch.no_grad():
        h, f = model.initial_state(x[:1])
        fwd = []
        for t in range(t_total):
            h, f = model.forward_step(x[t : t + 1], h, f)
            fwd.append(f)
        out = []
        for s in range(0, t_total, chunk):
            e = min(t_total - 1, s + chunk - 1 + lookahead)
            h, f = model.initial_state(x[:1])
            bwd = {}
            for t in range(e, s - 1, -1):
                h, f = model.backward_step(x[t : t + 1], h, f)
                bwd[t] = f
            out += [model.fuse(x[t : t + 1], fwd[t], bwd[t])[0] for t in range(s, min(s + chunk, t_total))]
    return torch.stack(out)


@pytest.mark.parametrize("lookahead", [0, 2, 5])
def test_chunk_of_one_equals_reference_lookahead(model, backend, lookahead):
    x = clip(9)
    with torch.no_grad():
        assert torch.equal(stream(backend, x, lookahead=lookahead, chunk=1), model(x[None], lookahead=lookahead)[0])


@pytest.mark.parametrize(("lookahead", "chunk"), [(2, 3), (0, 4), (3, 5), (4, 2)])
def test_chunked_semantics(model, backend, lookahead, chunk):
    x = clip(11, seed=chunk)
    assert torch.equal(
        stream(backend, x, lookahead=lookahead, chunk=chunk), window_reference(model, x, lookahead, chunk)
    )


def test_chunk_plus_lookahead_covering_video_is_full_sequence(model, backend):
    x = clip(7)
    with torch.no_grad():
        assert torch.equal(stream(backend, x, lookahead=4, chunk=3), model(x[None], lookahead=None)[0])


def test_every_frame_sees_at_least_lookahead_future_frames(backend):
    """Changing frame j changes no output before j - N, whatever the chunking."""
    x = clip(12)
    y = x.clone()
    y[9] = 1 - y[9]
    a, b = stream(backend, x, lookahead=3, chunk=4), stream(backend, y, lookahead=3, chunk=4)
    # outputs of frames 0..3 (chunk 0, window up to 6) and 4..7 (window up to 10) — frame 9 is within chunk 1's
    # window, so it may change frames 4..7 but never 0..3
    assert torch.equal(a[:4], b[:4])
    assert not torch.equal(a[4:8], b[4:8])


@pytest.mark.parametrize("chunk", [1, 3, 4, 20])
def test_exact_equals_full_sequence(model, backend, chunk, tmp_path):
    x = clip(10, seed=chunk)
    with torch.no_grad():
        got = torch.stack(list(restore_exact(backend, iter(x), chunk=chunk, spill_dir=tmp_path)))
        assert torch.equal(got, model(x[None], lookahead=None)[0])
    assert list(tmp_path.iterdir()) == []  # spill files removed


def test_online_model_one_step_per_frame():
    torch.manual_seed(6)
    uni = build_model("pahs-t", bidirectional=False)
    x = clip(5)
    with torch.no_grad():
        assert torch.equal(stream(TorchBackend(uni), x), uni(x[None])[0])


def test_stream_is_lazy(backend):
    """Output starts before the input ends: frame 0 is out after K+N frames were read, not all of them."""
    read = []

    def frames():
        for i, f in enumerate(clip(30)):
            read.append(i)
            yield f

    gen = restore_stream(backend, frames(), lookahead=2, chunk=3)
    with torch.no_grad():
        next(gen)
    assert len(read) == 5


def test_empty_input(backend):
    assert list(restore_stream(backend, iter([]))) == []
    assert list(restore_exact(backend, iter([]))) == []
