"""Dataset readers on tiny generated folder trees."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from pahs_export import PahsError
from training.datasets import SequenceClips, find_sequences, read_frame


def frames(folder, n, size=(48, 32), start=1, ext="png"):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(start, start + n):
        Image.fromarray(np.full((size[1], size[0], 3), i * 10, np.uint8)).save(folder / f"{i}.{ext}")


def test_gopro(tmp_path):
    for split in ("train", "test"):
        for seq in ("GOPR0372_07_00", "GOPR0384_11_01"):
            for kind in ("blur", "blur_gamma", "sharp"):
                frames(tmp_path / split / seq / kind, 3)
    seqs = find_sequences(tmp_path)
    assert len(seqs) == 4 and [s.name for s in seqs][:2] == ["train/GOPR0372_07_00", "train/GOPR0384_11_01"]
    assert all(p.parent.name == "blur" for p in seqs[0].blurry)
    gamma = find_sequences(tmp_path, "gopro", split="train", gamma_blur=True)
    assert len(gamma) == 2 and gamma[0].blurry[0].parent.name == "blur_gamma"


def test_dvd_and_natural_order(tmp_path):
    frames(tmp_path / "IMG_0030" / "input", 11, ext="jpg")
    frames(tmp_path / "IMG_0030" / "GT", 11, ext="jpg")
    (seq,) = find_sequences(tmp_path)
    assert [p.name for p in seq.blurry][:3] == ["1.jpg", "2.jpg", "3.jpg"] and seq.blurry[9].name == "10.jpg"


def test_reds(tmp_path):
    for seq in ("000", "001"):
        frames(tmp_path / "train_blur" / seq, 2)
        frames(tmp_path / "train_sharp" / seq, 2)
    seqs = find_sequences(tmp_path)
    assert [s.name for s in seqs] == ["train/000", "train/001"]


def test_paired_single_and_many(tmp_path):
    frames(tmp_path / "one" / "blur", 2)
    frames(tmp_path / "one" / "sharp", 2)
    assert len(find_sequences(tmp_path / "one")) == 1
    frames(tmp_path / "many" / "a" / "input", 2)
    frames(tmp_path / "many" / "a" / "gt", 2)
    assert find_sequences(tmp_path / "many", "paired")[0].name == "a"


def test_missing_gt_and_mismatched_count(tmp_path):
    frames(tmp_path / "nogt" / "s1" / "input", 2)
    (tmp_path / "nogt" / "s1" / "GT").mkdir()
    with pytest.raises(PahsError, match="as many sharp as blurry frames in sequence 's1', found 2 blurry and 0 sharp"):
        find_sequences(tmp_path / "nogt")
    frames(tmp_path / "paired" / "blur", 3)
    with pytest.raises(PahsError, match="expected ground-truth frames for sequence 'paired'"):
        find_sequences(tmp_path / "paired")
    assert find_sequences(tmp_path / "paired", require_gt=False)[0].sharp is None
    frames(tmp_path / "mismatch" / "x" / "blur", 3)
    frames(tmp_path / "mismatch" / "x" / "sharp", 2)
    with pytest.raises(PahsError, match="found 3 blurry and 2 sharp"):
        find_sequences(tmp_path / "mismatch")


def test_unknown_layout_and_missing_root(tmp_path):
    (tmp_path / "photos").mkdir()
    frames(tmp_path / "photos" / "stuff", 1)
    with pytest.raises(PahsError, match="expected a GOPRO, DVD, REDS or paired"):
        find_sequences(tmp_path / "photos")
    with pytest.raises(PahsError, match="found nothing at"):
        find_sequences(tmp_path / "nope")


def test_read_frame_variants(tmp_path):
    Image.fromarray(np.full((4, 5), 200, np.uint8)).save(tmp_path / "gray.png")
    Image.fromarray(np.full((4, 5, 4), 100, np.uint8), "RGBA").save(tmp_path / "rgba.png")
    assert read_frame(tmp_path / "gray.png").shape == (4, 5, 3)
    assert read_frame(tmp_path / "rgba.png")[0, 0].tolist() == [100, 100, 100]
    (tmp_path / "bad.png").write_bytes(b"nope")
    with pytest.raises(PahsError, match="could not read"):
        read_frame(tmp_path / "bad.png")


def test_sequence_clips(tmp_path):
    frames(tmp_path / "s" / "blur", 6, size=(40, 36))
    frames(tmp_path / "s" / "sharp", 6, size=(40, 36))
    ds = SequenceClips(find_sequences(tmp_path / "s"), frames=3, crop=32, length=5, seed=1)
    b, s = ds[0]
    assert b.shape == s.shape == (3, 3, 32, 32) and b.dtype == torch.float32 and 0 <= b.min() and b.max() <= 1
    assert torch.equal(ds[2][0], SequenceClips(ds.sequences, 3, 32, 5, seed=1)[2][0])  # reproducible
