"""`import pahs`: the Restorer on frames of any size and type, videos, the README's example, clear errors."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch

import pahs
from pahs import PahsError
from pahs_export import build_model, save_checkpoint

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(5)
    return save_checkpoint(build_model("pahs-t"), tmp_path_factory.mktemp("api") / "w.safetensors")


def frames_u8(n: int, width: int, height: int) -> list[np.ndarray]:
    return [np.random.default_rng(i).integers(0, 256, (height, width, 3), dtype=np.uint8) for i in range(n)]


def test_any_size_and_type_round_trips(checkpoint):
    restorer = pahs.open(checkpoint)  # the torch backend on the CPU
    out = list(restorer.restore(frames_u8(5, 318, 190), lookahead=2, chunk=2))
    assert len(out) == 5 and all(o.shape == (190, 318, 3) and o.dtype == np.uint8 for o in out)
    deep = [f.astype(np.uint16) * 257 for f in frames_u8(3, 40, 24)]
    assert next(iter(restorer.restore(deep))).dtype == np.uint16
    tensors = [torch.rand(3, 20, 33) for _ in range(3)]
    out_t = list(restorer.restore(tensors))
    assert out_t[0].shape == (3, 20, 33) and out_t[0].dtype == torch.float32
    assert float(out_t[0].min()) >= 0 and float(out_t[0].max()) <= 1


def test_exact_mode_equals_the_reference_model(checkpoint):
    model = pahs.load_model(checkpoint)
    clip = torch.rand(6, 3, 32, 48)
    out = torch.stack(list(pahs.open(checkpoint).restore(list(clip), lookahead=None, chunk=4)))
    with torch.no_grad():
        ref = model(clip[None], lookahead=None)[0].clamp(0, 1)
    assert (out - ref).abs().max() < 1e-5


def test_streaming_lookahead_equals_the_reference_model(checkpoint):
    """A finite lookahead streams the same frames as the model run with that lookahead (chunk 1: every frame's
    backward run starts at its own lookahead, which is what the model computes)."""
    model = pahs.load_model(checkpoint)
    clip = torch.rand(7, 3, 32, 48)
    out = torch.stack(list(pahs.open(checkpoint).restore(list(clip), lookahead=2, chunk=1)))
    with torch.no_grad():
        ref = model(clip[None], lookahead=2)[0].clamp(0, 1)
    assert (out - ref).abs().max() < 1e-5


def test_restore_leaves_the_callers_gradient_mode_alone(checkpoint):
    """Between the frames it yields, the caller's code runs with the gradient mode it chose."""
    seen = [torch.is_grad_enabled() for _ in pahs.open(checkpoint).restore(frames_u8(4, 32, 32), lookahead=1)]
    assert seen == [True] * 4
    assert torch.is_grad_enabled()


def test_restore_video(checkpoint, tmp_path):
    import av

    src = tmp_path / "in.mp4"
    with av.open(str(src), "w") as c:
        stream = c.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for f in frames_u8(6, 64, 48):
            c.mux(stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        c.mux(stream.encode())
    summary = pahs.open(checkpoint).restore_video(src, tmp_path / "o.mp4", crf=23)
    assert (summary.frames, summary.width, summary.height) == (6, 64, 48) and (tmp_path / "o.mp4").stat().st_size
    with pytest.raises(PahsError, match="expected encoder settings of OutputOptions"):
        pahs.open(checkpoint).restore_video(src, tmp_path / "p.mp4", quality=3)


@pytest.mark.parametrize(
    ("frames", "message"),
    [
        ([np.zeros((32, 32, 3), np.uint8), np.zeros((48, 32, 3), np.uint8)], "expected every frame to be 32x32"),
        ([np.zeros((32, 32), np.uint8)], r"expected an RGB image \[H, W, 3\]"),
        ([np.zeros((32, 32, 3), np.int32)], "expected uint8, uint16 or float frames"),
        ([np.zeros((8, 32, 3), np.uint8)], "at least 16x16"),
        ([torch.zeros(32, 32, 3, dtype=torch.uint8)], r"expected a float tensor \[3, H, W\]"),
    ],
)
def test_bad_frames_are_one_clear_error(checkpoint, frames, message):
    with pytest.raises(PahsError, match=message):
        list(pahs.open(checkpoint).restore(frames))


def test_readme_example_runs(tmp_path, monkeypatch):
    """The README's Python block, as written there, with the embedded default engine."""
    block = re.search(r"<!-- ci:api -->\n```python\n(.+?)\n```", (ROOT / "README.md").read_text(), re.S).group(1)
    monkeypatch.chdir(tmp_path)
    os.symlink(ROOT / "samples", tmp_path / "samples")
    exec(compile(block, "README.md", "exec"), {})
    assert (tmp_path / "deblurred-api.mp4").is_file()


def test_frame_size_ceiling_before_any_inference(checkpoint):
    """restore() checks the first frame against --max-pixels (or what free memory holds), as pahs-run does."""
    with pytest.raises(PahsError, match=r"expected frames of at most 1,000 pixels \(--max-pixels\), found 48x32"):
        list(pahs.open(checkpoint).restore(frames_u8(2, 48, 32), max_pixels=1000))
    assert len(list(pahs.open(checkpoint).restore(frames_u8(2, 48, 32), max_pixels=48 * 32))) == 2


def test_restore_video_missing_source_is_one_line(checkpoint, tmp_path):
    """Sources are strings (files, folders, URLs, "-": tests/runtime/test_cli_pipes.py); a missing one is one line."""
    with pytest.raises(PahsError, match="nothing at"):
        pahs.open(checkpoint).restore_video(str(tmp_path / "missing.mp4"), tmp_path / "o.mp4")
