"""The streaming driver's semantics against the reference model, exactly."""

from __future__ import annotations

import pytest
import torch

from pahs_export import build_model
from runtime.backends.torch_backend import TorchBackend
from runtime.driver import forward_states, restore_exact, restore_range, restore_stream


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


# -- restoring a range of frames (segments) -----------------------------------------------------------------------


def restore_range_of(backend, x, start, end, warmup, lookahead, chunk, state=None) -> torch.Tensor:
    """Frames [start, end) of ``x`` restored from frames [start - warmup, end + lookahead) alone."""
    read_end = min(len(x), end + lookahead)
    with torch.no_grad():
        got = restore_range(backend, iter(x[start - warmup : read_end]), start, end, warmup, lookahead, chunk, state)
        return torch.stack(list(got))


@pytest.mark.parametrize(
    ("lookahead", "chunk", "start", "end"), [(3, 4, 0, 8), (3, 4, 8, 16), (2, 3, 9, 13), (5, 2, 4, 13)]
)
def test_range_warmed_up_from_frame_0_equals_the_whole_run(backend, lookahead, chunk, start, end):
    """Same chunks in absolute frame numbers and same backward starts: with the forward state run from frame 0
    (warm-up = start), frames [start, end) equal the whole run's, at the video's end too."""
    x = clip(13, seed=start)
    whole = stream(backend, x, lookahead=lookahead, chunk=chunk)
    assert torch.equal(restore_range_of(backend, x, start, end, start, lookahead, chunk), whole[start:end])


def test_range_from_recorded_forward_states_equals_the_whole_run(backend):
    x = clip(20, seed=3)
    whole = stream(backend, x, lookahead=3, chunk=4)
    with torch.no_grad():
        states = {t: (h.clone(), f.clone()) for t, (h, f) in forward_states(backend, iter(x), [4, 12, 16])}
    assert sorted(states) == [4, 12, 16]
    for start, end in ((4, 12), (12, 16), (16, 20)):
        got = restore_range_of(backend, x, start, end, 0, 3, 4, states[start])
        assert torch.equal(got, whole[start:end]), (start, end)


def test_range_reads_only_what_it_needs(backend):
    """Frames past end + N are not read; a short warm-up gives a different (approximate) result."""
    x = clip(24, seed=4)
    read = []

    def frames():
        for i, f in enumerate(x[4:], start=4):
            read.append(i)
            yield f

    with torch.no_grad():
        got = torch.stack(list(restore_range(backend, frames(), 8, 12, 4, 3, 4)))
    assert read[-1] == 14  # frames 4..14: the warm-up [4, 8), the segment [8, 12) and its N=3 future frames
    assert not torch.equal(got, stream(backend, x, lookahead=3, chunk=4)[8:12])


def test_range_checks_its_arguments(backend):
    x = clip(8)
    with pytest.raises(ValueError, match="chunk boundary"):
        list(restore_range(backend, iter(x), 2, 6, 0, 3, 4))
    with pytest.raises(ValueError, match="warmup <= start"):
        list(restore_range(backend, iter(x), 4, 8, 5, 3, 4))
    with pytest.raises(ValueError, match="increasing"):
        list(forward_states(backend, iter(x), [4, 4]))


def test_online_range_warmed_up_from_frame_0_equals_the_whole_run():
    torch.manual_seed(6)
    uni = TorchBackend(build_model("pahs-t", bidirectional=False))
    x = clip(9)
    with torch.no_grad():
        whole = stream(uni, x)
        assert torch.equal(torch.stack(list(restore_range(uni, iter(x), 5, 9, 5))), whole[5:9])
        (_, state), *_ = forward_states(uni, iter(x), [5])
        assert torch.equal(torch.stack(list(restore_range(uni, iter(x[5:]), 5, 9, 0, state=state))), whole[5:9])


@pytest.mark.parametrize("shape", [(3, 190, 318), (190, 318, 3), (1, 3, 32, 48)])
def test_unpadded_or_misshapen_frames_are_one_line(backend, tmp_path, shape):
    """The drivers take padded [3, H, W] tensors; anything else is a one-line error naming what to do, raised at
    the first frame (not ONNX Runtime's or torch's own error from inside a step)."""
    from pahs_export.errors import PahsError

    for run in (lambda f: restore_stream(backend, f), lambda f: restore_exact(backend, f, spill_dir=tmp_path)):
        with pytest.raises(PahsError) as e:
            next(iter(run([torch.rand(*shape)] * 2)))
        assert "\n" not in str(e.value) and "pahs.open(...).restore" in str(e.value)
