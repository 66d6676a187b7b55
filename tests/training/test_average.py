"""Checkpoint averaging: the element-wise mean of one run's weights, refused across presets or directions."""

from __future__ import annotations

import json

import pytest
import torch

from pahs_export import PahsError, build_model, load_model, save_checkpoint
from pahs_export.checkpoint import read_metadata
from training.average import average_checkpoints, main


def _saved(tmp_path, name, seed, preset="pahs-t", bidirectional=True):
    torch.manual_seed(seed)
    model = build_model(preset, bidirectional=bidirectional)
    return model, save_checkpoint(model, tmp_path / name)


def test_the_average_is_the_mean_of_every_weight_and_names_its_members(tmp_path):
    models, paths = zip(*(_saved(tmp_path, f"step{i}.safetensors", seed=i) for i in range(3)), strict=True)
    out = average_checkpoints(paths, tmp_path / "avg.safetensors")
    averaged = load_model(out).state_dict()
    states = [m.state_dict() for m in models]
    assert set(averaged) == set(states[0])
    for name, value in averaged.items():
        expected = sum(s[name] for s in states) / 3
        assert torch.allclose(value, expected, atol=1e-6), name
    assert not torch.equal(averaged["reconstructor.body.0.weight"], states[0]["reconstructor.body.0.weight"])
    meta = read_metadata(out)
    assert json.loads(meta["averaged_from"]) == ["step0.safetensors", "step1.safetensors", "step2.safetensors"]
    assert meta["preset"] == "pahs-t"


def test_averaging_one_checkpoint_with_itself_changes_nothing(tmp_path):
    model, path = _saved(tmp_path, "a.safetensors", seed=0)
    out = average_checkpoints([path, path], tmp_path / "avg.safetensors")
    for name, value in load_model(out).state_dict().items():
        assert torch.equal(value, model.state_dict()[name]), name


@pytest.mark.parametrize("other", [{"preset": "pahs-s"}, {"bidirectional": False}])
def test_checkpoints_of_another_preset_or_direction_are_refused_in_one_line(tmp_path, other):
    _, first = _saved(tmp_path, "a.safetensors", seed=0)
    _, second = _saved(tmp_path, "b.safetensors", seed=1, **other)
    with pytest.raises(PahsError, match=r"expected checkpoints of one preset and direction .* one run only"):
        average_checkpoints([first, second], tmp_path / "avg.safetensors")
    assert not (tmp_path / "avg.safetensors").exists()


def test_the_command_line_needs_two_checkpoints_and_says_so(tmp_path, capsys):
    _, path = _saved(tmp_path, "a.safetensors", seed=0)
    assert main(["-o", str(tmp_path / "avg.safetensors"), str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: expected at least two checkpoints") and err.count("\n") == 1
    assert main(["-o", str(tmp_path / "avg.safetensors"), str(path), str(path)]) == 0
    assert (tmp_path / "avg.safetensors").is_file()
