"""Synthetic GOPRO-style clips: the protocol's invariants."""

from __future__ import annotations

import pytest
import torch

from pahs_export import PahsError
from training.synth import CONTENT_NAMES, SynthConfig, blur_frames, content_split, load_photo, make_clip


def test_zero_motion_blur_equals_sharp():
    blurry, sharp = make_clip(3, SynthConfig(height=48, width=64, frames=3, max_motion=0.0, objects=(0, 0)))
    assert torch.allclose(blurry, sharp, atol=1e-5)


def test_gamma_average_hand_computed():
    sub = torch.stack([torch.zeros(3, 1, 1), torch.ones(3, 1, 1)])  # [k=2, C, H, W]: black and white
    assert torch.allclose(blur_frames(sub), torch.full((3, 1, 1), 0.5 ** (1 / 2.2)))
    sub = torch.stack([torch.full((1, 1, 1), 0.2), torch.full((1, 1, 1), 0.6), torch.full((1, 1, 1), 0.4)])
    want = ((0.2**2.2 + 0.6**2.2 + 0.4**2.2) / 3) ** (1 / 2.2)
    assert blur_frames(sub).item() == pytest.approx(want, rel=1e-6)


def test_deterministic_and_seed_dependent():
    cfg = SynthConfig(height=32, width=48, frames=2)
    a, b, c = make_clip(7, cfg), make_clip(7, cfg), make_clip(8, cfg)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def test_shapes_range_and_real_blur():
    blurry, sharp = make_clip(1, SynthConfig(height=80, width=96, frames=4))
    assert blurry.shape == sharp.shape == (4, 3, 80, 96) and blurry.dtype == torch.float32
    assert 0 <= blurry.min() and blurry.max() <= 1
    assert (blurry - sharp).abs().mean() > 1e-3

    def grad(x: torch.Tensor) -> float:
        return (x[..., 1:] - x[..., :-1]).abs().mean().item()

    assert grad(blurry) < grad(sharp)  # blur removes high frequencies


def test_train_and_heldout_content_disjoint_and_photos_offline():
    train, held = set(content_split("train")), set(content_split("heldout"))
    assert train and held and not train & held
    photos = [n for n in CONTENT_NAMES if ":" not in n]
    assert len(photos) >= 12
    for name in photos:  # every scikit-image photo loads without a download
        image = load_photo(name)
        assert image.ndim == 3 and image.shape[2] == 3 and image.dtype.name == "uint8"
    with pytest.raises(PahsError):
        content_split("test")


def test_motion_range_and_the_clip_motion_that_groups_evaluation(monkeypatch):
    """clip_motion gives, without rendering, the camera target make_clip fits its path to; a motion range draws
    camera and objects inside it, and the default draws 0.15-1 x max_motion as before ranges existed."""
    from training import synth

    targets = []
    real_fit = synth._fit_scale
    monkeypatch.setattr(synth, "_fit_scale", lambda motion, target: targets.append(target) or real_fit(motion, target))
    for config in (SynthConfig(32, 48, 2), SynthConfig(32, 48, 2, min_motion=25.0, max_motion=50.0)):
        for seed in range(4):
            targets.clear()
            make_clip(seed, config)
            assert targets[0] == synth.clip_motion(seed, config)  # the camera's, drawn first
            low = 0.15 * config.max_motion if config.min_motion is None else config.min_motion
            assert all(low <= t <= config.max_motion for t in targets) and len(targets) >= 2  # camera + objects
    with pytest.raises(PahsError, match="0 <= min_motion <= max_motion"):
        SynthConfig(min_motion=30.0, max_motion=25.0)
