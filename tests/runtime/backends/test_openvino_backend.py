"""The OpenVINO backend: the same ONNX artifacts, FP32 parity with PyTorch over long sequences, compile cache."""

from __future__ import annotations

import pytest
import torch

from pahs.verify import TOLERANCES, verify_backend
from pahs_export import PahsError
from pahs_export.artifact import read_artifact
from training.samples import sample_pair

ov = pytest.importorskip("openvino", reason="OpenVINO is not installed (pip install -e '.[openvino]')")

from runtime.backends.openvino_backend import OpenVINOBackend, cached_blobs  # noqa: E402


@pytest.fixture(scope="module")
def model_and_artifact(artifact, checkpoint):
    from pahs_export import load_model

    return load_model(checkpoint), read_artifact(artifact)


def test_fp32_parity_over_30_frames_at_two_sizes(model_and_artifact):
    model, art = model_and_artifact
    clips = [sample_pair(30, w, h, seed=i) for i, (w, h) in enumerate([(128, 80), (208, 112)])]
    results = verify_backend(OpenVINOBackend(art), model, clips, TOLERANCES["fp32"])
    for r in results:
        assert r.passed and r.worst_max_abs <= 1e-4, (r.width, r.worst_max_abs)


def test_compiled_once_per_shape_and_cached_on_disk(model_and_artifact, tmp_path, monkeypatch):
    monkeypatch.setenv("PAHS_CACHE", str(tmp_path))
    _, art = model_and_artifact
    backend = OpenVINOBackend(art)
    for size in ((64, 48), (64, 48), (96, 48)):
        x = torch.rand(1, 3, size[1], size[0])
        backend.forward_step(x, *backend.initial_state(x))
    assert len(backend._requests) == 2  # two shapes, one compiled model each
    assert cached_blobs()  # a second process loads them instead of compiling


def test_cpu_only(model_and_artifact):
    with pytest.raises(PahsError, match="expected device cpu for the openvino backend"):
        OpenVINOBackend(model_and_artifact[1], device="cuda")


def test_opened_through_the_engine_openers(artifact):
    from runtime.engines import open_engine

    backend = open_engine(artifact, backend="openvino")
    assert backend.describe() == "openvino on cpu (fp32)"
    with pytest.raises(PahsError, match="the openvino backend runs ONNX artifact folders"):
        open_engine(None, backend="openvino")


def test_int8_only_with_the_cpu_conventions(model_and_artifact, tmp_path, monkeypatch):
    """TensorRT-convention INT8 graphs lose about 3 dB in OpenVINO (experiments/openvino_precision.py):
    refused with the fix in the message; CPU-target graphs run."""
    from calibration.data import CalibrationSet
    from pahs_export.onnx_export import artifact_from_model
    from pahs_export.precision import Int8Options

    monkeypatch.setenv("PAHS_CACHE", str(tmp_path / "cache"))
    model, _ = model_and_artifact
    tiny = CalibrationSet(clips=1, frames=3, size=48)
    arts = {
        target: read_artifact(
            artifact_from_model(
                model, tmp_path / target, source={"kind": "random-init"}, precision="int8",
                int8=Int8Options(target=target, method="minmax"), calibration=tiny,
            )
        )
        for target in ("tensorrt", "cpu")
    }  # fmt: skip
    with pytest.raises(PahsError, match="--int8-target cpu"):
        OpenVINOBackend(arts["tensorrt"])
    backend = OpenVINOBackend(arts["cpu"])
    x = torch.rand(1, 3, 48, 64)
    h, feat = backend.forward_step(x, *backend.initial_state(x))
    assert torch.isfinite(feat).all() and h.shape == (1, 16, 12, 16)
