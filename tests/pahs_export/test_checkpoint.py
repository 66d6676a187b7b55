"""Checkpoints: round trip, metadata, and every clear-error case."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from pahs_export import PahsError, build_model, load_model, save_checkpoint
from pahs_export.checkpoint import read_metadata


@pytest.mark.parametrize("bidirectional", [True, False])
def test_round_trip(tmp_path, bidirectional):
    model = build_model("pahs-t", bidirectional=bidirectional)
    path = save_checkpoint(model, tmp_path / "m.safetensors")
    loaded = load_model(path)
    assert type(loaded) is type(model) and loaded.preset == model.preset and not loaded.training
    for (k, a), (k2, b) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert k == k2 and torch.equal(a, b)
    x = torch.rand(1, 2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    meta = read_metadata(path)
    assert meta["preset"] == "pahs-t" and meta["bidirectional"] == str(bidirectional).lower()


def test_requested_preset_mismatch(tmp_path):
    path = save_checkpoint(build_model("pahs-t"), tmp_path / "t.safetensors")
    with pytest.raises(PahsError, match="expected a checkpoint of preset 'pahs-s', found 'pahs-t'"):
        load_model(path, preset="pahs-s")
    with pytest.raises(PahsError, match="expected a unidirectional checkpoint, found a bidirectional"):
        load_model(path, bidirectional=False)


def test_tensors_not_fitting_declared_preset(tmp_path):
    state = {k: v.contiguous() for k, v in build_model("pahs-t").state_dict().items()}
    path = tmp_path / "lying.safetensors"
    save_file(state, str(path), metadata={"format": "pahs-checkpoint/1", "preset": "pahs-s", "bidirectional": "true"})
    with pytest.raises(PahsError, match="says preset 'pahs-s' but its tensors do not fit"):
        load_model(path)


def test_missing_file(tmp_path):
    with pytest.raises(PahsError, match="found nothing at"):
        load_model(tmp_path / "nope.safetensors")


def test_not_a_checkpoint(tmp_path):
    path = tmp_path / "junk.safetensors"
    path.write_bytes(b"\x00not a safetensors file")
    with pytest.raises(PahsError, match="unreadable file"):
        load_model(path)


def test_foreign_safetensors(tmp_path):
    path = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, str(path))
    with pytest.raises(PahsError, match="expected a PAHS checkpoint"):
        load_model(path)


def test_pickle_is_refused(tmp_path):
    """A torch.save pickle is never unpickled (no code from the file runs)."""
    path = tmp_path / "model.pt"
    torch.save(build_model("pahs-t").state_dict(), path)
    with pytest.raises(PahsError, match="unreadable file"):
        load_model(path)


def test_unwritable_checkpoint_path(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(PahsError, match="could not write checkpoint"):
        save_checkpoint(build_model("pahs-t"), blocker / "sub" / "m.safetensors")


def test_save_rejects_non_pahs_model(tmp_path):
    with pytest.raises(PahsError, match="expected a PAHS model"):
        save_checkpoint(torch.nn.Linear(2, 2), tmp_path / "x.safetensors")
