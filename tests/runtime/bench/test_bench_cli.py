"""pahs-bench runs quickly at a tiny size and emits JSON with every field (no timing assertions)."""

from __future__ import annotations

import importlib.util
import json

import pytest
import torch

from pahs.cli.bench import main
from runtime.constants import default_onnx_backend

TINY = ["--sizes", "32x32", "--frames", "3", "--reps", "1", "--lookahead", "1", "--chunk", "2"]


def test_bench_tiny_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    args = [*TINY, "--growth"]
    args += ["--backends", "torch", "--backends", "onnxruntime-fp32", "--backends", "onnxruntime-int8"]
    args += ["-b", "openvino-int8"]  # the same CPU-target INT8 export as onnxruntime-int8, on OpenVINO
    args += ["--backends", "tensorrt-fp16", "--backends", "torch-cuda-fp16"]
    args += ["--json", str(out), "--plot", str(tmp_path / "b.png")]
    status = main(args)
    result = capsys.readouterr()
    assert status == 0, result.err
    report = json.loads(out.read_text())
    assert report["machine"]["cores"] and "ceiling_gflops" not in report
    ran = ["torch", "onnxruntime-fp32", "onnxruntime-int8"]
    if importlib.util.find_spec("openvino") is not None:
        ran.append("openvino-int8")
    else:
        assert "OpenVINO is not installed" in report["skipped"]["openvino-int8"]
    assert [r["variant"] for r in report["results"]] == ran
    fields = {
        "preset", "width", "height", "variant", "frames", "lookahead", "chunk", "fps", "fps_runs",
        "seconds_per_role", "steps_per_frame", "gflop_per_frame", "gflops",
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
    assert "frames/s" in result.out
    # no "ceiling" column: a measured FP32 matmul read 128% and 360% against OpenVINO's kernels
    assert "ceiling" not in result.out + result.err


def test_engine_adds_a_named_variant(tmp_path, capsys, artifact):
    """An ONNX artifact given with --engine is measured beside the bench's own variants, under its file name."""
    out = tmp_path / "bench.json"
    status = main([*TINY, "--backends", "torch", "--engine", str(artifact), "--json", str(out), "-q"])
    result = capsys.readouterr()
    assert status == 0, result.err
    assert result.err == "", "--quiet: no log lines"
    report = json.loads(out.read_text())
    name = f"{default_onnx_backend()}-fp32 ({artifact.name})"
    assert [r["variant"] for r in report["results"]] == ["torch", name]
    assert report["results"][1]["preset"] == "pahs-t" and report["results"][1]["vs_torch"] > 0
    assert name in result.out


def test_bad_size_is_one_line_error(capsys):
    status = main(["--sizes", "40x32", "--backends", "torch"])
    err = capsys.readouterr().err
    assert status == 2
    assert err.startswith("pahs-bench: error: expected --sizes") and "try 32x32" in err and len(err.splitlines()) == 1


def test_device_cpu_refuses_cuda_variants(capsys):
    status = main(["--device", "cpu", "-b", "torch", "-b", "torch-cuda-fp16"])
    err = capsys.readouterr().err
    assert status == 2 and len(err.splitlines()) == 1
    assert err.startswith("pahs-bench: error: expected only CPU variants with --device cpu, found torch-cuda-fp16")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message where CUDA is missing")
def test_device_cuda_without_a_gpu_is_one_line(capsys):
    status = main(["--device", "cuda:0", "-b", "torch-cuda"])
    err = capsys.readouterr().err
    assert status == 2 and len(err.splitlines()) == 1
    assert err.startswith("pahs-bench: error: expected a CUDA GPU for --device cuda:0, found none")


def test_renamed_variant_is_refused_with_the_list(capsys):
    """Today's names only: `onnxruntime-int8-cpu` became `onnxruntime-int8` (click lists the choices)."""
    status = main(["-b", "onnxruntime-int8-cpu"])
    err = capsys.readouterr().err
    assert status == 2 and len(err.splitlines()) == 1
    assert "'onnxruntime-int8-cpu' is not one of" in err and "'onnxruntime-int8-tensorrt'" in err


def test_each_row_reaches_a_log_as_its_variant_finishes(tmp_path):
    """stderr piped, as in a log or CI: the first variant's row arrives while the next one is still measured
    (its ONNX export alone takes seconds), not with the table at the end."""
    import subprocess
    import sys

    code = "import sys; from pahs.cli.bench import main; sys.exit(main())"
    args = [*TINY, "--backends", "torch", "--backends", "onnxruntime-fp32"]
    with subprocess.Popen(
        [sys.executable, "-c", code, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path
    ) as bench:
        assert bench.stderr is not None
        first = bench.stderr.readline()
        running = bench.poll() is None
        rest, _ = bench.communicate(timeout=300)
    assert first.startswith("pahs-t 32x32 torch ") and "frames/s" in first, first
    assert running, "the first row came only when the bench ended"
    assert bench.returncode == 0 and "onnxruntime-fp32" in rest
