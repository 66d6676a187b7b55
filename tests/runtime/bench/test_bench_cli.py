"""pahs-bench runs quickly at a tiny size and emits JSON with every field (no timing assertions)."""

from __future__ import annotations

import json

import torch

from runtime.bench.cli import main

TINY = ["--sizes", "32x32", "--frames", "3", "--reps", "1", "--lookahead", "1", "--chunk", "2"]


def test_bench_tiny_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    args = [*TINY, "--growth"]
    args += ["--backends", "torch", "--backends", "onnxruntime-fp32", "--backends", "onnxruntime-int8-cpu"]
    args += ["--backends", "tensorrt-fp16", "--backends", "torch-cuda-fp16"]
    args += ["--json", str(out), "--plot", str(tmp_path / "b.png")]
    status = main(args)
    result = capsys.readouterr()
    assert status == 0, result.err
    report = json.loads(out.read_text())
    assert report["ceiling_gflops"] > 0 and report["machine"]["cores"]
    assert [r["variant"] for r in report["results"]] == ["torch", "onnxruntime-fp32", "onnxruntime-int8-cpu"]
    fields = {
        "preset", "width", "height", "variant", "frames", "lookahead", "chunk", "fps", "fps_runs",
        "seconds_per_role", "steps_per_frame", "gflop_per_frame", "gflops", "ceiling_fraction",
        "peak_host_mib", "peak_device_mib", "vs_torch",
    }  # fmt: skip
    for r in report["results"]:
        assert set(r) == fields
        assert r["fps"] > 0 and set(r["seconds_per_role"]) == {"forward", "backward", "fuse"}
        assert r["steps_per_frame"]["forward"] == 1.0 and r["gflop_per_frame"] > 0
    assert report["results"][0]["vs_torch"] == 1.0
    if not torch.cuda.is_available():  # listed with the reason, not silently dropped
        assert report["skipped"]["tensorrt-fp16"] == report["skipped"]["torch-cuda-fp16"] == "needs a CUDA GPU"
    assert {"decode_fps_32x32", "encode_fps_32x32"} <= set(report["io"])
    assert [g["lookahead"] for g in report["growth"]["fps_vs_lookahead"]] == [0, 1, 2]
    assert len(report["growth"]["memory_vs_length"]) == 2
    assert (tmp_path / "b.png").stat().st_size > 1000
    assert "frames/s" in result.out and "matmul ceiling" in result.out


def test_engine_adds_a_named_variant(tmp_path, capsys, artifact):
    """An ONNX artifact given with --engine is measured beside the bench's own variants, under its file name."""
    out = tmp_path / "bench.json"
    status = main([*TINY, "--backends", "torch", "--engine", str(artifact), "--json", str(out)])
    result = capsys.readouterr()
    assert status == 0, result.err
    report = json.loads(out.read_text())
    name = f"onnxruntime-fp32 ({artifact.name})"
    assert [r["variant"] for r in report["results"]] == ["torch", name]
    assert report["results"][1]["preset"] == "pahs-t" and report["results"][1]["vs_torch"] > 0
    assert name in result.out


def test_bad_size_is_one_line_error(capsys):
    status = main(["--sizes", "40x32", "--backends", "torch"])
    err = capsys.readouterr().err
    assert status == 2
    assert err.startswith("pahs-bench: error: expected --sizes") and "try 32x32" in err and len(err.splitlines()) == 1
