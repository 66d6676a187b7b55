"""scripts/gpu-check.sh, checked on the CPU as far as a CPU allows: its syntax and usage line always, its
whole run in --cpu mode (the same steps, small, on the CPU) with --run-slow."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "gpu-check.sh"


def test_syntax_and_usage():
    assert subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True).returncode == 0
    result = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True)
    assert result.returncode != 0 and "usage: scripts/gpu-check.sh RESULTS" in result.stderr


@pytest.mark.slow
def test_cpu_mode_runs_every_step(tmp_path):
    result = subprocess.run(["bash", str(SCRIPT), str(tmp_path), "--cpu"], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    logs = {p.name for p in tmp_path.iterdir()}
    assert {"env.txt", "pytest-gpu.log", "verify-graphs.log", "verify-eager.log", "bench-gpu.json"} <= logs
    assert "PASS: torch on cpu (fp32) vs PyTorch on cpu" in (tmp_path / "verify-eager.log").read_text()
    assert json.loads((tmp_path / "bench-gpu.json").read_text())


TRAIN = SCRIPT.with_name("gpu-train.sh")


def test_train_script_syntax_and_usage():
    assert subprocess.run(["bash", "-n", str(TRAIN)], capture_output=True).returncode == 0
    result = subprocess.run(["bash", str(TRAIN)], capture_output=True, text=True)
    assert result.returncode != 0 and "usage: scripts/gpu-train.sh RESULTS" in result.stderr
    result = subprocess.run(["bash", str(TRAIN), "/tmp/x", "--bogus"], capture_output=True, text=True)
    assert result.returncode == 2 and "expected --data, --seconds or --cpu, found --bogus" in result.stderr


@pytest.mark.slow
def test_train_script_trains_checkpoints_and_resumes(tmp_path):
    result = subprocess.run(["bash", str(TRAIN), str(tmp_path), "--cpu"], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    run = tmp_path / "train-gpu"
    assert {"last.safetensors", "train_state.pt", "log.jsonl"} <= {p.name for p in run.iterdir()}
    assert [json.loads(line)["step"] for line in (run / "log.jsonl").read_text().splitlines()] == [2, 4]
    # a second call continues the run in RESULTS with its own settings (finished already: nothing to do)
    again = subprocess.run(["bash", str(TRAIN), str(tmp_path), "--cpu"], capture_output=True, text=True, timeout=900)
    assert again.returncode == 0 and "--resume (for 420 s)" in again.stderr, again.stderr[-2000:]
