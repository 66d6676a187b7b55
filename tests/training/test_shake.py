"""Camera shake over real content (photos and video), its degradations, the validation suite and the data mix."""

from __future__ import annotations

import json

import av
import numpy as np
import pytest
import torch
from PIL import Image

from pahs_export import PahsError
from training import shake
from training.shake import (
    NO_DEGRADATIONS,
    ContentClips,
    Degradations,
    ShakeConfig,
    degrade,
    find_content,
    read_video,
    shake_clip,
    sharpness,
)
from training.train import TrainConfig, _train_dataset, data_sources, train


def _texture(height: int, width: int, seed: int) -> np.ndarray:
    """uint8 RGB detail everywhere (blur lowers its sharpness measurably)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (height // 4, width // 4, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(small).resize((width, height), Image.Resampling.NEAREST))


def write_video(path, frames: int = 12, width: int = 192, height: int = 128, seed: int = 0, smear=()) -> None:
    """A textured scene panning 2 px per frame, lossless; frames in ``smear`` are box-blurred (already blurry)."""
    scene = _texture(height, width + 2 * frames, seed)
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264rgb", rate=25, options={"qp": "0"})
        s.width, s.height, s.pix_fmt = width, height, "rgb24"
        for i in range(frames):
            img = scene[:, 2 * i : 2 * i + width]
            if i in smear:
                img = np.asarray(Image.fromarray(img).resize((width // 8, height // 8)).resize((width, height)))
            for p in s.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A tiny suite data folder: photos/{train,set14}, video/{davis,set8-gopro}, x4k1000fps/."""
    from test_highfps import write_clip

    root = tmp_path_factory.mktemp("suite")
    for folder, names in {"photos/urban": ("a", "b"), "photos/set14": ("c", "d")}.items():
        (root / folder).mkdir(parents=True)
        for i, name in enumerate(names):
            Image.fromarray(_texture(160, 224, hash(name) % 1000 + i)).save(root / folder / f"{name}.png")
    for folder, names in {"video/davis": ("blackswan", "cows"), "video/set8-gopro": ("snowboard",)}.items():
        (root / folder).mkdir(parents=True)
        for i, name in enumerate(names):
            write_video(root / folder / f"{name}.mp4", seed=i, smear=(5,) if name == "cows" else ())
    (root / "x4k1000fps").mkdir()
    for name in ("TEST01_a.mp4", "TEST02_b.mp4"):
        write_clip(root / "x4k1000fps" / name)
    return root


def test_held_out_content_stays_apart(data):
    assert [p.name for p in find_content(data / "photos", "photos", "train")] == ["a.png", "b.png"]
    assert [p.name for p in find_content(data / "photos", "photos", "heldout")] == ["c.png", "d.png"]
    assert [p.name for p in find_content(data / "video", "video", "train")] == ["cows.mp4"]
    assert [p.name for p in find_content(data / "video", "video", "heldout")] == ["blackswan.mp4", "snowboard.mp4"]
    with pytest.raises(PahsError, match="none in that split"):
        find_content(data / "photos" / "set14", "photos", "train")
    with pytest.raises(PahsError, match="expected a content layout"):
        find_content(data, "x4k", "train")


def test_video_is_downscaled_in_linear_light_and_blurred_frames_are_marked(data, tmp_path, monkeypatch):
    monkeypatch.setenv("PAHS_CACHE", str(tmp_path))
    read_video.cache_clear()
    video = read_video(data / "video" / "davis" / "cows.mp4")
    (cached,) = (tmp_path / "content").iterdir()  # decoded once, then read from the disk cache
    read_video.cache_clear()
    again = read_video(data / "video" / "davis" / "cows.mp4")
    assert isinstance(again.frames, np.memmap) and np.array_equal(again.frames, video.frames)
    assert np.array_equal(again.sharp_enough, video.sharp_enough) and cached.name.startswith("cows-")
    assert video.frames.shape == (12, 64, 96, 3) and video.frames.dtype == np.uint8
    assert not video.sharp_enough[5] and video.sharp_enough[[0, 4, 6, 11]].all()
    # a window never includes the smeared frame when one without it exists
    rng = np.random.default_rng(0)
    starts = {shake.video_window(video, 4, rng) for _ in range(30)}
    assert all(not (s <= 5 < s + 4) for s in starts), starts


def test_shake_blurs_in_linear_light_around_the_middle_sub_frame():
    frame = _texture(128, 160, 3)
    config = ShakeConfig(frames=3, height=64, width=64, objects=(0, 0), degradations=NO_DEGRADATIONS)
    blurry, sharp = shake_clip(frame[None], np.random.default_rng(1), config, blur_length=20.0, sub_frames=11)
    assert blurry.shape == sharp.shape == (3, 3, 64, 64) and blurry.dtype == torch.float32
    assert 0 <= float(blurry.min()) and float(blurry.max()) <= 1
    assert float((blurry - sharp).abs().mean()) > 0.02  # visibly blurred
    # the sharp frame is the content itself, cut on its pixel grid (not resampled): some crop of it, to float
    # rounding (a resampling half a pixel off would differ by tens of levels on this blocky texture)
    target = sharp[1].permute(1, 2, 0).numpy() * 255
    errors = [np.abs(frame[y : y + 64, x : x + 64] - target).max() for y in range(65) for x in range(97)]
    assert min(errors) < 1.0
    src = sharpness(frame[None].astype(np.float32) / 255)[0]
    assert sharpness(blurry.permute(0, 2, 3, 1).numpy()).max() < 0.5 * src
    # no motion: blurry == sharp
    still, truth = shake_clip(frame[None], np.random.default_rng(1), config, blur_length=0.0, sub_frames=11)
    torch.testing.assert_close(still, truth, atol=2e-6, rtol=0)
    # deterministic
    again, _ = shake_clip(frame[None], np.random.default_rng(1), config, blur_length=20.0, sub_frames=11)
    assert torch.equal(blurry, again)


def test_each_degradation_touches_the_blurry_input_only():
    linear = torch.full((2, 3, 32, 32), 0.2).pow(1.0)
    clean = degrade(linear, np.random.default_rng(0), NO_DEGRADATIONS)
    torch.testing.assert_close(clean, linear.pow(1 / 2.2), atol=1e-6, rtol=0)
    for name in ("noise", "jpeg", "h264"):
        d = Degradations(**{"noise": 0.0, "highlights": 0.0, "jpeg": 0.0, "h264": 0.0, name: 1.0})
        textured = linear * (1 + 0.5 * torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)))
        out = degrade(textured, np.random.default_rng(1), d)
        assert out.shape == textured.shape and 0 <= float(out.min()) and float(out.max()) <= 1
        assert float((out - textured.pow(1 / 2.2)).abs().mean()) > 1e-3, name
    # highlights: bright areas are lifted before the average, so they smear wider than white alone would
    frame = np.full((1, 64, 64, 3), 60, np.uint8)
    frame[0, 30:34, 30:34] = 255
    config = ShakeConfig(frames=1, height=64, width=64, objects=(0, 0), degradations=NO_DEGRADATIONS)
    plain, _ = shake_clip(frame, np.random.default_rng(2), config, blur_length=20.0, sub_frames=11)
    bright = ShakeConfig(**{**config.__dict__, "degradations": Degradations(0, highlights=1.0, jpeg=0, h264=0)})
    lifted, sharp = shake_clip(frame, np.random.default_rng(2), bright, blur_length=20.0, sub_frames=11)
    assert float(lifted.sum()) > float(plain.sum()) + 1.0 and float(sharp.max()) <= 1.0


def test_training_clips_from_photos_and_video(data):
    for layout in ("photos", "video"):
        clips = ContentClips(data / layout, layout, frames=3, crop=32, length=4, seed=1)
        blurry, sharp = clips[2]
        assert blurry.shape == sharp.shape == (3, 3, 32, 32)
        assert torch.equal(blurry, ContentClips(data / layout, layout, frames=3, crop=32, length=4, seed=1)[2][0])


def test_data_sources_mix_and_weights(data):
    photos, video = str(data / "photos"), str(data / "video")
    cfg = TrainConfig(data=(f"{photos}:0.3", video), layout=("photos", "video"), steps=2, batch=2, crop=32)
    assert data_sources(cfg) == [(photos, "photos", 0.3), (video, "video", 0.25)]
    mixed = _train_dataset(replace_frames(cfg))
    assert [w for _, w in mixed.parts] == [0.3, 0.25]
    with pytest.raises(PahsError, match="sum to at most 1"):
        data_sources(TrainConfig(data=(f"{photos}:0.7", f"{video}:0.6"), layout="photos"))
    with pytest.raises(PahsError, match="one --layout per --data"):
        data_sources(TrainConfig(data=(photos, video, photos), layout=("photos", "video")))
    assert TrainConfig(data=photos, layout="photos").data == (photos,)  # one folder as a str, as older runs saved


def replace_frames(cfg: TrainConfig) -> TrainConfig:
    from dataclasses import replace

    return replace(cfg, frames=3)


def test_suite_rows_and_training_validation_on_its_subset(data, tmp_path, monkeypatch):
    from pahs_export import build_model
    from training import suite

    monkeypatch.setattr(suite, "EVAL_SEQUENCES", 2)  # keep the synthetic row short here
    monkeypatch.setattr(suite, "EVAL_FRAMES", 2)
    model = build_model("pahs-t").eval()
    report = suite.run_suite(model, data)
    result = report.to_json()
    assert list(result["rows"]) == list(suite.ROWS)
    assert result["rows"]["set8"]["sequences"] == 1 and result["rows"]["davis"]["worst"] == "davis/blackswan"
    assert result["rows"]["set14"]["sequences"] == 2 and set(result["groups"]["x4k"]) == {"small", "medium", "large"}
    assert result["suite_mean_gain"] == pytest.approx(np.mean([r["gain"] for r in result["rows"].values()]))
    assert "suite mean" in report.table()
    # fixed: the same sequences on every call
    first = [b for _, b, _ in suite.suite_sequences(data, "davis")]
    again = [b for _, b, _ in suite.suite_sequences(data, "davis")]
    assert len(first) == 1 and all(torch.equal(b, b2) for b, b2 in zip(first, again, strict=True))

    cfg = TrainConfig(
        steps=2, batch=1, frames=2, crop=32, val_every=2, val_clips=1, workers=0, val_suite=str(data),
        data=(f"{data / 'photos'}:0.5",), layout=("photos",),
    )  # fmt: skip
    train(cfg, tmp_path / "run", progress=False)
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert set(log[-1]["suite_rows"]) == {"set8", "davis", "set14", "synthetic"}
    assert log[-1]["suite_gain"] == pytest.approx(np.mean(list(log[-1]["suite_rows"].values())))


def test_shipping_rule_protects_every_row():
    from training.suite import shipping_problems

    def report(mean: float, **gains: float) -> dict:
        return {"suite_mean_gain": mean, "rows": {row: {"gain": g} for row, g in gains.items()}}

    shipped = report(1.0, x4k=0.8, davis=0.1)
    stage3 = report(0.9, x4k=0.2, davis=0.5)
    assert shipping_problems(report(1.2, x4k=0.9, davis=0.45), shipped, {"stage 3": stage3}) == []
    lost = shipping_problems(report(1.2, x4k=0.9, davis=0.3), shipped, {"stage 3": stage3})
    assert lost == ["davis gains +0.30 dB against +0.50 with the stage 3 weights (more than 0.1 dB lost)"]
    flat = shipping_problems(report(1.0, x4k=0.8, davis=0.5), shipped)
    assert flat == ["suite mean +1.00 dB does not rise over the shipped +1.00 dB"]
    assert "not scored" in shipping_problems(report(2.0, x4k=2.0), shipped)[0]
