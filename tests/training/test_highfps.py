"""Blurry sequences from high-frame-rate clips: the GOPRO protocol, the held-out split, training crops."""

from __future__ import annotations

import av
import numpy as np
import pytest

from pahs_export import PahsError
from training.evaluate import dataset_sequences
from training.highfps import (
    PROTOCOL,
    HighFpsClips,
    MixedClips,
    blur,
    find_clips,
    protocol_sequences,
    read_linear,
)


def write_clip(path, frames: int = 33, width: int = 96, height: int = 64) -> None:
    """A bright square moving 1 px per frame over a dark background, lossless (x264 qp 0, rgb)."""
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264rgb", rate=25, options={"qp": "0"})
        s.width, s.height, s.pix_fmt = width, height, "rgb24"
        for i in range(frames):
            img = np.full((height, width, 3), 20, np.uint8)
            img[16:48, 10 + i : 30 + i] = 230
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    folder = tmp_path_factory.mktemp("x4k")
    for name in ("TEST01_a.mp4", "TEST02_b.mp4", "TEST03_c.mp4"):
        write_clip(folder / name)
    (folder / "README.md").write_text("not a clip")
    return folder


def test_split_keeps_the_held_out_clips_apart(root):
    assert [p.name for p in find_clips(root, "heldout")] == ["TEST01_a.mp4"]
    assert [p.name for p in find_clips(root, "train")] == ["TEST02_b.mp4", "TEST03_c.mp4"]
    with pytest.raises(PahsError, match="found nothing at"):
        find_clips(root / "missing", "train")


def test_blur_averages_in_linear_light_and_keeps_the_middle_frame(root):
    linear = read_linear(root / "TEST02_b.mp4")
    assert linear.shape == (33, 32, 48, 3)  # downscaled 2x
    blurry, sharp = blur(linear, 9, 4)
    assert blurry.shape == sharp.shape == ((33 - 9) // 4 + 1, 32, 48, 3)
    np.testing.assert_allclose(sharp[1], linear[4 + 4] ** (1 / PROTOCOL.gamma), atol=1e-6)
    expected = linear[4:13].mean(axis=0) ** (1 / PROTOCOL.gamma)  # the average of light, then gamma
    np.testing.assert_allclose(blurry[1], expected, atol=1e-6)
    assert not np.allclose(blurry[1], (linear[4:13] ** (1 / PROTOCOL.gamma)).mean(axis=0), atol=1e-3)
    with pytest.raises(PahsError, match="odd blur window"):
        blur(linear, 8, 4)


def test_held_out_evaluation_sequences(root):
    seqs = list(dataset_sequences(str(root), "x4k"))
    assert [name for name, _, _ in seqs] == ["TEST01/small", "TEST01/medium", "TEST01/large"]
    lengths = [b.shape[0] for _, b, _ in seqs]
    assert lengths == [(33 - w) // 4 + 1 for _, w in PROTOCOL.eval_windows]
    for _, blurry, sharp in seqs:
        assert blurry.shape == sharp.shape and blurry.shape[1:] == (3, 32, 48)
        assert float((blurry - sharp).abs().mean()) > 0  # the square moved: real blur


def test_the_evaluation_protocol_applies_to_the_training_clips_too(root):
    names = [name for name, _, _ in protocol_sequences(root, "train")]
    assert names == [f"{clip}/{size}" for clip in ("TEST02", "TEST03") for size, _ in PROTOCOL.eval_windows]


def test_training_clips_are_reproducible_crops(root):
    data = HighFpsClips(root, frames=5, crop=16, length=10, seed=3)
    b, s = data[4]
    assert b.shape == s.shape == (5, 3, 16, 16) and 0 <= float(b.min()) and float(b.max()) <= 1
    b2, _ = HighFpsClips(root, frames=5, crop=16, length=10, seed=3)[4]
    assert (b == b2).all()
    assert max(data.windows) <= 33 - 4 * 4
    with pytest.raises(PahsError, match="--frames 5 or fewer"):
        HighFpsClips(root, frames=9, crop=16, length=1)
    mixed = MixedClips(data, [(HighFpsClips(root, frames=5, crop=16, length=10, seed=4), 0.5)], 10)
    picks = {bool((mixed[i][0] == data[i][0]).all()) for i in range(10)}
    assert picks == {True, False}  # both sources are used


def test_training_on_x4k_mixes_real_and_synthetic(root):
    from training.train import TrainConfig, _train_dataset

    cfg = TrainConfig(data=str(root), layout="x4k", steps=4, batch=2, crop=16, frames=5)
    data = _train_dataset(cfg)
    assert isinstance(data, MixedClips) and len(data) == 8
    blurry, sharp = data[0]
    assert blurry.shape == sharp.shape == (5, 3, 16, 16)
