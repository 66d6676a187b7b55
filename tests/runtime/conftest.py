"""Small generated clips for the runtime tests (PyAV encodes them; nothing is downloaded)."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
import torch


def make_frames(n: int, width: int, height: int, seed: int = 0) -> list[np.ndarray]:
    """Moving bars over a gradient, uint8 [H,W,3]."""
    rng = np.random.default_rng(seed)
    base = np.zeros((height, width, 3), np.uint8)
    base[..., 1] = np.linspace(0, 255, width, dtype=np.float32)[None].astype(np.uint8)
    base[..., 2] = rng.integers(0, 255)
    frames = []
    for i in range(n):
        f = base.copy()
        x = (i * 7) % max(1, width - 10)
        f[:, x : x + 10, 0] = 255
        frames.append(f)
    return frames


def make_video(
    path: Path,
    n: int = 12,
    width: int = 250,
    height: int = 142,
    fps: int = 24,
    audio: bool = False,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    rotate: int | None = None,
    faststart: bool = False,
) -> Path:
    container = av.open(str(path), "w", options={"movflags": "faststart"} if faststart else None)
    video = container.add_stream(codec, rate=fps)
    video.width, video.height, video.pix_fmt = width, height, pix_fmt
    if rotate is not None:
        video.metadata["rotate"] = str(rotate)
    deep = "10" in pix_fmt
    sound = container.add_stream("aac", rate=44100) if audio else None
    for img in make_frames(n, width, height):
        if deep:
            frame = av.VideoFrame.from_ndarray((img.astype(np.uint16) * 257), format="rgb48le")
        else:
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
        for p in video.encode(frame):
            container.mux(p)
    if sound is not None:
        samples_per_frame = 1024
        total = int(44100 * n / fps)
        for j, start in enumerate(range(0, total, samples_per_frame)):
            t = (np.arange(samples_per_frame) + start) / 44100
            af = av.AudioFrame.from_ndarray(
                (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None], format="fltp", layout="mono"
            )
            af.sample_rate, af.pts = 44100, j * samples_per_frame
            for p in sound.encode(af):
                container.mux(p)
        for p in sound.encode():
            container.mux(p)
    for p in video.encode():
        container.mux(p)
    container.close()
    return path


def write_png(path: Path, img: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(img).save(path)


def make_folder(path: Path, n: int = 6, width: int = 48, height: int = 32) -> Path:
    path.mkdir(parents=True)
    for i, img in enumerate(make_frames(n, width, height)):
        write_png(path / f"frame{i + 1}.png", img)  # natural order matters from frame10 on
    return path


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory) -> Path:
    from pahs_export import build_model, save_checkpoint

    torch.manual_seed(21)
    return save_checkpoint(build_model("pahs-t"), tmp_path_factory.mktemp("ckpt") / "w.safetensors")


@pytest.fixture(scope="session")
def artifact(tmp_path_factory, checkpoint) -> Path:
    from pahs_export.onnx_export import artifact_from_model
    from pahs_export.weights import resolve_model

    model, source = resolve_model(checkpoint)
    return artifact_from_model(model, tmp_path_factory.mktemp("onnx") / "art", source=source)


@pytest.fixture(scope="session")
def int8_tensorrt_artifact(tmp_path_factory, checkpoint) -> Path:
    """INT8 graphs in TensorRT's conventions (`pahs-export onnx --precision int8`'s default target), calibrated on
    a tiny set (min-max) to keep the export short."""
    from calibration.data import CalibrationSet
    from pahs_export.onnx_export import artifact_from_model
    from pahs_export.precision import Int8Options
    from pahs_export.weights import resolve_model

    model, source = resolve_model(checkpoint)
    tiny = CalibrationSet(clips=1, frames=3, size=48)
    return artifact_from_model(
        model, tmp_path_factory.mktemp("onnx-int8") / "art", source=source, precision="int8",
        int8=Int8Options(target="tensorrt", method="minmax"), calibration=tiny,
    )  # fmt: skip
