"""`pahs-run` loads only what its path needs: `--help`, `--version` and a mistyped option answer without torch
(seconds of start-up), and a run over an exported ONNX artifact loads neither the ONNX library, OpenVINO nor
Ray. Each check is a fresh interpreter: what this test process imported says nothing."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import make_folder, make_video

from runtime.constants import BACKENDS, default_onnx_backend
from runtime.engines import OPENERS

# Libraries (and the project's own heavy packages) that a path may load only if it uses them.
HEAVY = ("torch", "onnx", "ml_dtypes", "onnxruntime", "openvino", "tensorrt", "ray", "matplotlib", "scipy")
HEAVY += (
    "calibration",
    "pahs.api",
    "pahs.export_cache",
    "pahs_export.checkpoint",
    "pahs_export.model",
    "runtime.driver",
)
MARK = "LOADED:"


def loaded_after(code: str) -> tuple[set[str], subprocess.CompletedProcess[str]]:
    """The HEAVY modules a fresh interpreter holds after running ``code``, and how that run ended."""
    probe = f"import sys\n{code}\nprint({MARK!r}, *sorted(m for m in {HEAVY!r} if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    line = next(line for line in result.stdout.splitlines() if line.startswith(MARK))
    return set(line.split()[1:]), result


def test_importing_the_command_loads_nothing_heavy():
    loaded, _ = loaded_after("import pahs.cli.run")
    assert loaded == set()


@pytest.mark.parametrize(
    ("args", "status"),
    [(["--help"], 0), (["--version"], 0), (["clip.mp4", "--crf", "high"], 2), (["clip.mp4", "-b", "tvm"], 2)],
    ids=["help", "version", "bad-number", "bad-backend"],
)
def test_help_version_and_usage_errors_load_nothing_heavy(args, status):
    loaded, result = loaded_after(f"from pahs.cli.run import main\nstatus = main({args!r})\nassert status == {status}")
    assert loaded == set(), result.stdout + result.stderr


@pytest.mark.parametrize(
    ("mistake", "error"),
    [
        (["missing.mp4"], "found nothing at missing.mp4; check the path"),
        (["in.mp4", "-o", "taken.mp4"], "found taken.mp4 already there; pass --overwrite"),
        (["in.mp4", "--max-pixels", "1000"], "at most 1,000 pixels (--max-pixels), found 64x48"),
        (["in.mp4", "--chunk", "0"], "expected --chunk of at least 1, found 0"),
        (["in.mp4", "--lookahead", "5000"], "expected --lookahead from 0 to 1000"),
        (["in.mp4", "-o", "out.mp4", "--compare", "out.mp4"], "expected --compare and -o to name different"),
        (["in.mp4", "-o", "out.mp4", "--codec", "png"], "found png, which is for folders of frames"),
    ],
    ids=["missing-input", "existing-output", "max-pixels", "chunk", "lookahead", "compare-is-output", "codec"],
)
def test_mistakes_the_engine_is_not_needed_for_are_found_before_it_opens(tmp_path, monkeypatch, mistake, error):
    """A typo in the input, an output already there, an option value, or a frame the container declares larger
    than --max-pixels: one line, before the engine opens (no backend line, no torch: a fraction of a second
    rather than the 5-8 s of opening it)."""
    monkeypatch.chdir(tmp_path)
    make_video(tmp_path / "in.mp4", n=2, width=64, height=48)
    (tmp_path / "taken.mp4").write_bytes(b"")
    loaded, result = loaded_after(f"from pahs.cli.run import main\nassert main({mistake!r}) == 2")
    assert loaded == set(), result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pahs-run: error: ") and error in lines[0], result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4", "taken.mp4"]  # nothing written


def test_a_run_over_an_onnx_artifact_loads_no_exporter(tmp_path, artifact):
    """torch (the runtime's tensors) and the default CPU backend's library, but not the `onnx` package (a second
    of ml_dtypes), the other backends' libraries, Ray, or the --verify machinery."""
    frames = make_folder(tmp_path / "in", n=3)
    args = [str(frames), "--engine", str(artifact), "-o", str(tmp_path / "out") + "/", "-q"]
    loaded, _ = loaded_after(f"from pahs.cli.run import main\nassert main({args!r}) == 0")
    default = default_onnx_backend()
    other = {"onnxruntime", "openvino"} - {default}
    assert {"torch", default, "runtime.driver"} <= loaded
    assert loaded.isdisjoint({"onnx", "ml_dtypes", *other, "tensorrt", "ray", "matplotlib", "scipy"}), loaded
    assert len(list((tmp_path / "out").iterdir())) == 3


def test_backend_choices_are_the_openers():
    """--backend lists runtime.constants.BACKENDS (torch-free); runtime.engines opens exactly those."""
    assert tuple(OPENERS) == BACKENDS
