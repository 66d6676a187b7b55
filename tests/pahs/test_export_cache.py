"""Precision in one place: `pahs.open(precision=)` / `pahs-run --precision` export the matching artifact from
weights once, cache it keyed by what changes it, and refuse what a backend cannot run."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import pahs
from pahs import PahsError
from pahs.export_cache import cached_artifact, int8_target_for
from pahs_export import build_model, save_checkpoint
from pahs_export.artifact import read_artifact
from pahs_export.cache import cache_dir
from pahs_export.weights import resolve_model, weights_source
from runtime.constants import default_onnx_backend


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(9)
    return save_checkpoint(build_model("pahs-t"), tmp_path_factory.mktemp("defaults") / "w.safetensors")


def test_fp16_from_a_checkpoint_is_exported_once_and_cached(checkpoint, caplog):
    with caplog.at_level(logging.INFO, logger="pahs"):
        first = pahs.open(checkpoint, backend="onnxruntime", precision="fp16")
    assert first.backend.precision == "fp16" and first.backend.name == "onnxruntime"
    assert any("exporting the weights" in r.getMessage() and "fp16" in r.getMessage() for r in caplog.records)
    path = cached_artifact(checkpoint, "fp16")
    assert path.parent == cache_dir() and "-onnx-fp16-" in path.name
    assert read_artifact(path).manifest.checkpoint["path"] == str(checkpoint.resolve())
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="pahs"):
        again = pahs.open(checkpoint, backend="onnxruntime", precision="fp16")
    assert again.backend.precision == "fp16" and not caplog.records  # the cache, no second export
    assert cached_artifact(checkpoint, "fp32") != path  # keyed by precision


def test_a_cached_artifact_is_found_without_building_the_model(checkpoint, monkeypatch):
    """The cache key comes from the checkpoint's metadata and bytes (the same key as the model's), so a run that
    finds its export in the cache builds no model (a fifth of a second per pahs-run on a CPU)."""
    for weights, preset in ((checkpoint, None), (None, "pahs-t")):
        model, source = resolve_model(weights, preset)
        assert weights_source(weights) == (model.preset.name, source)
    path = cached_artifact(checkpoint, "fp32")  # exported here, or by an earlier test

    def no_model(*args, **kwargs):
        raise AssertionError("built a model to find a cached artifact")

    monkeypatch.setattr("pahs.export_cache.resolve_model", no_model)
    assert cached_artifact(checkpoint, "fp32") == path


def test_int8_conventions_follow_the_backend():
    assert int8_target_for("onnxruntime") == int8_target_for("openvino") == "cpu"
    assert int8_target_for("tensorrt") == "tensorrt"


def test_int8_key_names_target_and_calibration(checkpoint, monkeypatch):
    """The INT8 key holds the target and a hash of the calibration set and options (no export: stubbed)."""
    made = []
    monkeypatch.setattr("pahs.export_cache.artifact_from_model", lambda model, path, **kw: made.append((path, kw)))
    monkeypatch.setattr("pahs.export_cache._cache_problem", lambda path: None if made else "missing")
    cpu = cached_artifact(checkpoint, "int8", "cpu")
    assert "-onnx-int8-cpu-cal" in cpu.name and made[0][1]["int8"].target == "cpu"
    assert made[0][1]["calibration"] is not None and made[0][1]["precision"] == "int8"
    made.clear()
    trt = cached_artifact(checkpoint, "int8", "tensorrt")
    assert "-onnx-int8-tensorrt-cal" in trt.name and made[0][1]["int8"].target == "tensorrt"


def test_torch_precisions(checkpoint):
    assert pahs.open(checkpoint, precision="fp32").backend.precision == "fp32"
    with pytest.raises(PahsError, match="expected --precision fp32 or fp16 with the torch backend, found int8"):
        pahs.open(checkpoint, precision="int8")


def test_an_exported_engine_keeps_its_precision(checkpoint):
    fp32 = cached_artifact(checkpoint, "fp32")
    assert pahs.open(fp32, precision="fp32").backend.precision == "fp32"
    with pytest.raises(PahsError, match=r"expected an fp16 engine for --precision fp16, found .*\(fp32\)"):
        pahs.open(fp32, precision="fp16")
    with pytest.raises(PahsError, match=re.escape("expected --precision fp32 | fp16 | int8, found 'fp8'")):
        pahs.open(fp32, precision="fp8")


def test_tensorrt_without_tensorrt_is_one_line(checkpoint):
    with pytest.raises(PahsError, match="TensorRT"):
        pahs.open(checkpoint, backend="tensorrt", precision="fp16")


def test_pahs_run_precision_and_aliases(tmp_path, checkpoint):
    """`pahs-run --fp16 -c W` (no --backend) runs the FP16 ONNX artifact exported from W on ONNX Runtime, as
    the built-in weights would be, not PyTorch with autocast."""
    frames = tmp_path / "f"
    frames.mkdir()
    for i in range(3):
        image = np.random.default_rng(i).integers(0, 256, (32, 48, 3), dtype=np.uint8)
        Image.fromarray(image).save(frames / f"{i}.png")
    code = "import sys; from pahs.cli.run import main; sys.argv[0] = 'pahs-run'; sys.exit(main())"
    args = [sys.executable, "-c", code, str(frames), "-c", str(checkpoint), "-o", str(tmp_path / "o") + "/"]
    result = subprocess.run([*args, "--fp16"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert f"{default_onnx_backend()} on cpu (fp16)" in result.stderr
    conflict = subprocess.run([*args, "--fp16", "--precision", "int8"], capture_output=True, text=True, timeout=300)
    assert conflict.returncode == 2 and "expected one precision, found --precision int8 and --fp16" in conflict.stderr
