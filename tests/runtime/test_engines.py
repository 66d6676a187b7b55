"""Opening engines: the CPU thread count of a step reaches each CPU runtime."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest
import torch
from conftest import make_folder

from pahs_export import PahsError
from runtime.engines import open_engine


def test_threads_reach_onnxruntime(artifact):
    default = open_engine(artifact, backend="onnxruntime")
    one = open_engine(artifact, backend="onnxruntime", threads=1)
    assert default.threads is None and one.threads == 1
    for role, session in one.sessions.items():
        assert session.get_session_options().intra_op_num_threads == 1, role
    assert default.sessions["forward"].get_session_options().intra_op_num_threads == 0  # 0: ONNX Runtime's default


def test_threads_reach_openvino(artifact, tmp_path, monkeypatch):
    pytest.importorskip("openvino", reason="OpenVINO is not installed (pip install -e '.[openvino]')")
    monkeypatch.setenv("PAHS_CACHE", str(tmp_path))
    counts = {}
    for threads in (None, 1):
        backend = open_engine(artifact, backend="openvino", threads=threads)
        x = torch.rand(1, 3, 48, 64)
        backend.forward_step(x, *backend.initial_state(x))
        (request,) = backend._requests.values()
        counts[threads] = request.get_compiled_model().get_property("INFERENCE_NUM_THREADS")
    assert counts[1] == 1
    assert counts[None] != 1 or torch.get_num_threads() == 1  # OpenVINO's default: the machine's cores


def test_threads_of_torch_are_process_wide(checkpoint):
    before = torch.get_num_threads()
    try:
        open_engine(checkpoint, backend="torch", threads=1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_threads_below_one_is_one_line(artifact):
    with pytest.raises(PahsError, match="expected --threads of at least 1, found 0"):
        open_engine(artifact, threads=0)


def test_default_cpu_backend_is_openvino_on_x86_only(monkeypatch):
    """OpenVINO measured fastest at FP32 parity on x86-64 (docs/BENCHMARKS.md); not measured elsewhere, and
    not on CUDA (it runs on CPUs only), where ONNX Runtime stays."""
    import importlib.util

    from runtime.constants import default_onnx_backend
    from runtime.engines import default_backend

    installed = importlib.util.find_spec("openvino") is not None
    monkeypatch.setattr("platform.machine", lambda: "x86_64")
    assert default_onnx_backend() == default_onnx_backend("cpu") == ("openvino" if installed else "onnxruntime")
    assert default_onnx_backend("cuda") == default_onnx_backend("cuda:1") == "onnxruntime"
    assert default_backend("onnx") == default_backend(None) == default_onnx_backend()
    assert (default_backend("tensorrt"), default_backend("checkpoint")) == ("tensorrt", "torch")
    monkeypatch.setattr("platform.machine", lambda: "aarch64")
    assert default_onnx_backend() == "onnxruntime"
    monkeypatch.setattr("platform.machine", lambda: "AMD64")
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: None)
    assert default_onnx_backend() == "onnxruntime"  # x86 without OpenVINO installed


def test_default_backend_of_an_int8_artifact_meets_the_precision_targets(monkeypatch, artifact, int8_tensorrt_artifact):
    """Where openvino is the device's fastest, TensorRT-convention INT8 graphs (which lose 3 dB there) default to
    onnxruntime, with one line saying why; FP32 artifacts stay on the fastest."""
    from runtime.engines import default_backend

    monkeypatch.setattr("runtime.engines.default_onnx_backend", lambda device=None: "openvino")
    notes: list[str] = []
    assert default_backend("onnx", "cpu", artifact, note=notes.append) == "openvino"
    assert notes == []
    assert default_backend("onnx", "cpu", int8_tensorrt_artifact, note=notes.append) == "onnxruntime"
    assert len(notes) == 1 and "--int8-target cpu" in notes[0] and "onnxruntime" in notes[0]


def test_pahs_run_without_backend_runs_a_tensorrt_int8_artifact(tmp_path, int8_tensorrt_artifact):
    """`pahs-export onnx --precision int8` then `pahs-run --engine` with no -b: it runs (on onnxruntime, the same
    bytes as -b onnxruntime), says so once; `-b openvino` still refuses; pahs.open() takes the same default."""
    import pahs

    src = make_folder(tmp_path / "seq", n=3, width=32, height=32)
    code = "import sys; from pahs.cli.run import main; sys.argv[0] = 'pahs-run'; sys.exit(main())"
    runs = {}
    for name, backend in (("default", []), ("onnxruntime", ["-b", "onnxruntime"]), ("openvino", ["-b", "openvino"])):
        args = [str(src), "-e", str(int8_tensorrt_artifact), "-o", str(tmp_path / f"{name}.y4m"), *backend]
        runs[name] = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300)
    default = runs["default"]
    assert default.returncode == 0 and runs["onnxruntime"].returncode == 0, default.stderr
    assert (tmp_path / "default.y4m").read_bytes() == (tmp_path / "onnxruntime.y4m").read_bytes()
    notes = [line for line in default.stderr.splitlines() if "--int8-target cpu" in line]
    assert len(notes) == 1 and "onnxruntime on cpu (int8)" in default.stderr, default.stderr
    assert "--int8-target cpu" not in runs["onnxruntime"].stderr  # named: nothing to explain
    if importlib.util.find_spec("openvino") is not None:
        assert runs["openvino"].returncode != 0 and "TensorRT's conventions" in runs["openvino"].stderr
    assert pahs.open(int8_tensorrt_artifact).backend.name == "onnxruntime"
