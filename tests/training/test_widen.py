"""Widening: a narrower preset's weights start a wider one that computes the same restored frames."""

from __future__ import annotations

import pytest
import torch

from pahs_export import PahsError, build_model, get_preset, load_model, save_checkpoint
from pahs_export.presets import Preset
from training.train import TrainConfig, train
from training.widen import widen_model


@pytest.mark.parametrize("bidirectional", [True, False])
def test_the_wider_model_restores_the_same_frames_and_every_weight_learns(bidirectional):
    small = build_model("pahs-t", bidirectional=bidirectional)
    wide = widen_model(small, Preset("wide", 60))
    assert sum(p.numel() for p in wide.parameters()) > 1.5 * sum(p.numel() for p in small.parameters())
    frames = torch.rand(1, 3, 3, 32, 48)
    with torch.no_grad():
        expected, found = small.eval()(frames), wide.eval()(frames)
    assert (expected - found).abs().max() < 1e-5  # float rounding only (sums in another order)
    wide.train()
    ((wide(frames) - frames) ** 2).mean().backward()
    dead = [name for name, p in wide.named_parameters() if p.grad is None or not p.grad.abs().max() > 0]
    assert not dead  # new channels are not stuck at a saddle (zeros on both sides)


def test_the_attention_is_unchanged_although_its_logit_scale_is():
    """SNLA scales logits by 1/sqrt(d): the widened query undoes the smaller scale of the larger d."""
    small = build_model("pahs-t")
    wide = widen_model(small, Preset("wide", 60))
    assert wide.forward_cell.snla.scale < small.forward_cell.snla.scale
    f_b, h = torch.rand(1, 48, 16, 16), torch.rand(1, 16, 16, 16)
    f_b_wide = torch.cat([f_b, torch.rand(1, 12, 16, 16)], 1)  # whatever the new channels hold
    h_wide = torch.cat([h, torch.rand(1, 4, 16, 16)], 1)
    with torch.no_grad():
        expected, found = small.forward_cell.snla(f_b, h), wide.forward_cell.snla(f_b_wide, h_wide)[:, :16]
    assert (expected - found).abs().max() < 1e-5


@pytest.mark.parametrize(
    "preset", [Preset("narrower", 36), Preset("deeper", 60, extractor_blocks=6), Preset("other", 60, stride=32)]
)
def test_a_preset_that_is_not_a_widening_is_refused(preset):
    with pytest.raises(PahsError, match=f"expected a preset at least as wide as 'pahs-t' .* found '{preset.name}'"):
        widen_model(build_model("pahs-t"), preset)


def test_training_a_wider_preset_from_a_narrower_checkpoint_starts_from_its_function(tmp_path):
    small = build_model("pahs-t")
    torch.nn.init.normal_(small.reconstructor.body[-1].weight, std=0.01)  # a model that does something
    init = save_checkpoint(small, tmp_path / "t.safetensors")
    cfg = TrainConfig(
        preset="pahs-tw",
        init=str(init),
        steps=1,
        batch=1,
        frames=2,
        crop=32,
        val_every=1,
        val_clips=1,
        workers=0,
        lr=1e-12,
    )
    wide = load_model(train(cfg, tmp_path / "run", progress=False))
    assert wide.preset == get_preset("pahs-tw")
    frames = torch.rand(1, 3, 3, 32, 32)
    with torch.no_grad():
        assert (small.eval()(frames) - wide(frames)).abs().max() < 1e-4  # one step at lr 1e-12 changes nothing


def test_pahs_train_takes_the_preset_of_init_unless_told(tmp_path):
    from typer.testing import CliRunner

    from pahs.cli.train import train_app

    init = save_checkpoint(build_model("pahs-tw"), tmp_path / "tw.safetensors")
    args = ["--init", str(init), "--steps", "1", "--batch", "1", "--frames", "2", "--crop", "32", "--workers", "0"]
    result = CliRunner().invoke(train_app, ["-o", str(tmp_path / "run"), *args, "--val-every", "1", "-q"])
    assert result.exit_code == 0, result.output
    assert load_model(tmp_path / "run" / "last.safetensors").preset.name == "pahs-tw"
    result = CliRunner().invoke(train_app, ["-o", str(tmp_path / "narrower"), *args, "--preset", "pahs-t", "-q"])
    assert "expected a preset at least as wide as 'pahs-tw'" in str(result.exception)  # pahs-train prints it
