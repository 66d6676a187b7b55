"""The second hardening round (issue #29): cases that broke when hostile and careless ones were tried.

Command-line cases run the real `pahs-run` in a subprocess; API cases run in-process. Each test failed on the
code before its fix. Inputs are tiny generated clips and frame folders, models the tiny pahs-t preset.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from runtime_faults_helper import make_clip, make_folder

RUN = "import sys; from pahs.cli.run import main; sys.argv[0] = 'pahs-run'; sys.exit(main())"


def pahs_run(*args: str | Path, cwd: Path | None = None, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", RUN, *map(str, args)], capture_output=True, text=True, timeout=timeout, cwd=cwd
    )


def one_error(result: subprocess.CompletedProcess[str], *fragments: str) -> str:
    """The one `pahs-run: error` line of a failed run (exit 2, no traceback), holding every fragment."""
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("pahs-run: error")]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def artifact(tmp_path_factory) -> Path:
    import torch

    from pahs_export import build_model, save_checkpoint
    from pahs_export.onnx_export import artifact_from_model
    from pahs_export.weights import resolve_model

    torch.manual_seed(29)
    weights = save_checkpoint(build_model("pahs-t"), tmp_path_factory.mktemp("ckpt") / "w.safetensors")
    model, source = resolve_model(weights)
    return artifact_from_model(model, tmp_path_factory.mktemp("onnx") / "art", source=source)


# ------------------------------------------------------------------- 1. --json obeys the rules of every output


def test_json_summary_follows_the_output_rules(tmp_path, artifact):
    seq = make_folder(tmp_path / "seq", 3, 32, 32)
    first = seq / sorted(p.name for p in seq.iterdir())[0]
    before = first.read_bytes()
    out, summary = tmp_path / "o" / "x.mkv", tmp_path / "s.json"
    engine = ["-e", str(artifact), "-b", "onnxruntime", "-q"]
    # --json naming the input video, a frame of the input folder, -o, or an existing file without --overwrite
    clip = make_clip(tmp_path / "in.mp4", n=3, width=32, height=32)
    video = clip.read_bytes()
    one_error(pahs_run(clip, "-o", out, *engine, "--json", clip), "--json", "input")
    assert clip.read_bytes() == video and not out.exists()
    one_error(pahs_run(seq, "-o", out, *engine, "--json", first), "--json", "input")
    assert first.read_bytes() == before and not out.exists()
    one_error(pahs_run(seq, "-o", out, *engine, "--json", out), "--json", "output")
    assert not out.exists()
    summary.write_text("keep")
    one_error(pahs_run(seq, "-o", out, *engine, "--json", summary), "--json", "--overwrite")
    assert summary.read_text() == "keep" and not out.exists()  # refused before the run, not after
    done = pahs_run(seq, "-o", out, *engine, "--json", summary, "--overwrite")
    assert done.returncode == 0, done.stderr
    assert json.loads(summary.read_text())["status"] == "ok" and out.is_file()
    assert not [p for p in tmp_path.iterdir() if ".partial-" in p.name]
