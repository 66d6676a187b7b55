"""`pahs-export` and `pahs-run` as a user runs them: real subprocesses, exit codes, one-line errors."""

from __future__ import annotations

import subprocess
import sys

import pytest


def run(*args: str) -> subprocess.CompletedProcess[str]:
    code = "import sys; from {m} import main; sys.argv[0] = {p!r}; main()"
    module, prog = ("runtime.cli", "pahs-run") if args[0] == "pahs-run" else ("pahs_export.cli", "pahs-export")
    return subprocess.run(
        [sys.executable, "-c", code.format(m=module, p=prog), *args[1:]], capture_output=True, text=True, timeout=120
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.mark.parametrize(("preset", "paper"), [("pahs", 21.0), ("pahs-s", 4.8)])
def test_info_reports_paper_size(preset, paper):
    result = run("pahs-export", "info", "--preset", preset)
    assert result.returncode == 0, result.stderr
    total = next(line for line in result.stdout.splitlines() if line.startswith("total"))
    params_m = float(total.split("(")[1].split()[0])
    assert abs(params_m - paper) / paper < 0.05
    assert "forward_cell.pprnn" in result.stdout and "TFLOP" in result.stdout


def test_info_default_preset_and_size():
    result = run("pahs-export", "info", "--size", "640x368")
    assert result.returncode == 0, result.stderr
    assert "preset pahs-t" in result.stdout and "640x368" in result.stdout and "(0.09 TFLOP)" in result.stdout


def test_unknown_preset():
    assert_one_line_error(run("pahs-export", "info", "--preset", "big"), "unknown preset 'big'", "pahs-s")


@pytest.mark.parametrize(("size", "fragment"), [("640", "WIDTHxHEIGHT"), ("650x368", "multiples of 16")])
def test_bad_size(size, fragment):
    assert_one_line_error(run("pahs-export", "info", "--size", size), fragment)


def test_debug_shows_traceback():
    result = run("pahs-export", "info", "--preset", "big", "--debug")
    assert result.returncode != 0 and "Traceback" in result.stderr and "PahsError" in result.stderr


def test_unfinished_verbs_say_so_and_fail():
    assert_one_line_error(run("pahs-export", "trt"), "not implemented yet", "issue #7")
    assert_one_line_error(run("pahs-run", "video.mp4"), "not implemented yet", "issue #5")
