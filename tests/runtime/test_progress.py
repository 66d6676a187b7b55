"""Progress off a terminal: plain lines at a bounded rate and at the end (runtime.progress), as `pahs-run` prints
them when stderr is a log; none with --quiet."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from conftest import make_folder, make_video

from pahs_export.errors import PahsError
from runtime.progress import INTERVAL_VARIABLE, ProgressLines, duration, progress_interval


def test_lines_come_at_most_once_per_interval_and_at_the_end():
    now = [0.0]
    lines: list[str] = []
    progress = ProgressLines("restored", 100, lines.append, interval=30, clock=lambda: now[0])
    for _ in range(50):  # 50 frames over 50 s: a line at 30 s, none before
        now[0] += 1
        progress.update()
    assert lines == ["restored 30/100 frames, 1.00 frames/s, ETA 1m10s"]
    now[0] += 10
    progress.update(50)
    progress.finish()
    assert lines[1:] == ["restored 100/100 frames, 1.67 frames/s", "restored 100/100 frames, 1.67 frames/s, in 1m00s"]


def test_the_interval_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv(INTERVAL_VARIABLE, raising=False)
    assert progress_interval() == 30
    monkeypatch.setenv(INTERVAL_VARIABLE, "0.5")
    assert progress_interval() == 0.5
    for bad in ("0", "-1", "soon", "nan", "inf"):
        monkeypatch.setenv(INTERVAL_VARIABLE, bad)
        with pytest.raises(PahsError, match=f"expected {INTERVAL_VARIABLE} to be a positive number of seconds"):
            progress_interval()
    assert (duration(9), duration(75), duration(4000)) == ("9s", "1m15s", "1h06m40s")


def pahs_run(*args: str, interval: str) -> subprocess.CompletedProcess[str]:
    code = "import sys; from pahs.cli.run import main; sys.argv[0] = 'pahs-run'; sys.exit(main())"
    env = {**os.environ, INTERVAL_VARIABLE: interval}
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300, env=env)


@pytest.mark.parametrize("lookahead", ["2", "all"])
def test_pahs_run_into_a_log_prints_progress_lines(tmp_path, artifact, lookahead):
    """stderr piped (not a terminal) and a short interval: several lines with frames done/total, frames/s and
    the ETA, and a last one; --lookahead all reports its backward pass first. --quiet prints none."""
    src = make_folder(tmp_path / "seq", n=6, width=32, height=32)
    args = [str(src), "-e", str(artifact), "-b", "onnxruntime", "--lookahead", lookahead]
    result = pahs_run(*args, "-o", str(tmp_path / "out") + "/", interval="0.000001")
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if re.match(r"pahs-run: restored \d+/6 frames", line)]
    assert len(lines) >= 2 and "\x1b" not in result.stderr and "\r" not in result.stderr, result.stderr
    assert re.fullmatch(r"pahs-run: restored \d/6 frames, \d+\.\d\d frames/s, ETA \d+s", lines[0]), lines[0]
    assert re.fullmatch(r"pahs-run: restored 6/6 frames, \d+\.\d\d frames/s, in \d+s", lines[-1]), lines[-1]
    assert ("pahs-run: backward pass 6/6 frames" in result.stderr) == (lookahead == "all")
    quiet = pahs_run(*args, "-o", str(tmp_path / "quiet") + "/", "-q", interval="0.000001")
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr


def test_a_bad_interval_is_refused_before_the_engine_opens(tmp_path):
    src = make_folder(tmp_path / "seq", n=2, width=32, height=32)
    result = pahs_run(str(src), interval="soon")
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert f"expected {INTERVAL_VARIABLE} to be a positive number of seconds, found 'soon'" in result.stderr


def test_segments_into_a_log_print_progress_lines(tmp_path, artifact):
    """--segment-frames: a line as segments finish (at the interval's rate), not silence until the join."""
    src = make_video(tmp_path / "in.mp4", n=12, width=32, height=32)
    args = [str(src), "-e", str(artifact), "-b", "onnxruntime", "--chunk", "4", "--lookahead", "2"]
    result = pahs_run(*args, "--segment-frames", "4", "-o", str(tmp_path / "out.mkv"), interval="0.000001")
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if re.match(r"pahs-run: restored \d/3 segments", line)]
    assert [line.split()[2] for line in lines] == ["1/3", "2/3", "3/3"], result.stderr
    assert "ETA" in lines[0]
