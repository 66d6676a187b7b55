"""`pahs-run` with many inputs on this machine (runtime/batch.py): every output equals the single-file run's, a
damaged file is reported and the others go on, outputs already there are skipped (a batch resumes), and the
single-input behaviour is unchanged. `pahs-run` runs in-process here (pahs.cli.run.main), as a user runs it."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import make_folder, make_video
from PIL import Image

from pahs.cli.run import main
from runtime.batch import BatchProgress, expand_inputs, output_name, plan_batch, summary_lines
from runtime.jobs import JobResult
from runtime.pipeline import RunOptions


def pahs_run(capsys, *args: str) -> tuple[int, str, str]:
    status = main(list(args))
    out = capsys.readouterr()
    return status, out.out, out.err


def frames_of(path: Path) -> list[np.ndarray]:
    """Every frame of a video file, or of a folder of PNGs (by name), as RGB uint8."""
    if path.is_dir():
        return [np.asarray(Image.open(p).convert("RGB")) for p in sorted(path.iterdir())]
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def same_frames(a: Path, b: Path) -> bool:
    x, y = frames_of(a), frames_of(b)
    return len(x) == len(y) > 0 and all(np.array_equal(i, j) for i, j in zip(x, y, strict=True))


def partials(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if ".partial-" in p.name or ".old-" in p.name]


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("pahs-run: error")]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """Three tiny clips, a frame folder and a damaged file."""
    root = tmp_path_factory.mktemp("batch-inputs")
    for name, n in (("a", 6), ("b", 7), ("c", 8)):
        make_video(root / f"{name}.mp4", n=n, width=64, height=48)
    make_folder(root / "seq", n=5, width=64, height=48)
    (root / "bad.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)  # not a video
    return root


@pytest.fixture(scope="module")
def singles(tmp_path_factory, inputs, artifact) -> dict[str, Path]:
    """The single-file run of each good input: what the batch must reproduce frame for frame."""
    root = tmp_path_factory.mktemp("singles")
    found = {}
    for name in ("a.mp4", "b.mp4", "c.mp4", "seq"):
        target = str(root / name) + ("" if name.endswith(".mp4") else "/")  # a folder of PNGs for the frame folder
        status = main([str(inputs / name), "-e", str(artifact), "-o", target, "--lossless", "-q"])
        assert status == 0
        found[name] = root / name
    return found


BATCH = ("a.mp4", "b.mp4", "c.mp4", "seq")


def test_batch_equals_single_runs(capsys, tmp_path, inputs, artifact, singles):
    """Three clips and a frame folder into out/: each output is bit-identical to its single-file run."""
    out = tmp_path / "out"
    summary = tmp_path / "batch.json"
    sources = [str(inputs / n) for n in BATCH]
    status, stdout, err = pahs_run(
        capsys, *sources, "-e", str(artifact), "-o", f"{out}/", "--lossless", "--json", str(summary)
    )
    assert status == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["a.mp4", "b.mp4", "c.mp4", "seq"]
    assert (out / "seq").is_dir() and len(list((out / "seq").iterdir())) == 5
    for name in BATCH:
        assert same_frames(out / name, singles[name]), name
    # stderr: one line per file as it ends (no terminal: no bar), and no per-run "writing" lines
    ends = [line for line in err.splitlines() if line.startswith("pahs-run: [")]
    assert [line.split()[1] for line in ends] == ["[1/4]", "[2/4]", "[3/4]", "[4/4]"] and "writing" not in err
    assert "\x1b[" not in err and "\r" not in err
    # stdout: the per-file table and the total
    rows = stdout.strip().splitlines()
    assert rows[0].split() == ["status", "frames", "seconds", "tries", "file"] and len(rows) == 6
    assert [r.split()[:2] for r in rows[1:5]] == [["done", "6"], ["done", "7"], ["done", "8"], ["done", "5"]]
    assert rows[-1].startswith("4 files: 4 done, 0 skipped, 0 failed; 26 frames restored in ")
    s = json.loads(summary.read_text())
    assert s["status"] == "ok" and s["counts"] == {"done": 4, "skipped": 0, "failed": 0} and s["frames"] == 26
    assert [(f["name"], f["status"], f["frames"], f["attempts"]) for f in s["files"]] == [
        (src, "done", n, 1) for src, n in zip(sources, (6, 7, 8, 5), strict=True)
    ]
    assert s["files"][3]["output"] == f"{out}/seq/"


def test_damaged_file_is_reported_and_the_others_go_on(capsys, tmp_path, inputs, artifact, singles):
    out = tmp_path / "out"
    summary = tmp_path / "s.json"
    args = [str(inputs / "a.mp4"), str(inputs / "bad.mp4"), str(inputs / "b.mp4"), "-e", str(artifact)]
    status, stdout, err = pahs_run(capsys, *args, "-o", f"{out}/", "--lossless", "-q", "--json", str(summary))
    assert status == 1
    assert err == ""  # --quiet: no progress; the table is the result
    assert sorted(p.name for p in out.iterdir()) == ["a.mp4", "b.mp4"] and not partials(out)
    assert same_frames(out / "a.mp4", singles["a.mp4"]) and same_frames(out / "b.mp4", singles["b.mp4"])
    rows = stdout.strip().splitlines()
    assert [r.split()[0] for r in rows[1:4]] == ["done", "failed", "done"]
    assert "bad.mp4: expected a video" in rows[2] and rows[-1].startswith("3 files: 2 done, 0 skipped, 1 failed")
    s = json.loads(summary.read_text())
    assert s["status"] == "failed" and s["counts"] == {"done": 2, "skipped": 0, "failed": 1}
    failed = s["files"][1]
    assert failed["status"] == "failed" and "bad.mp4" in failed["error"] and "\n" not in failed["error"]


def test_rerun_skips_everything_and_overwrite_redoes_it(capsys, tmp_path, inputs, artifact, monkeypatch):
    """A pattern (with **) from the inputs' folder, -o inside it: the second run restores nothing (its own
    outputs are not taken for inputs), --overwrite redoes every file."""
    monkeypatch.chdir(inputs.parent)
    base = inputs.name
    out = tmp_path / "out"
    args = [f"{base}/**/[abc].mp4", f"{base}/seq", "-e", str(artifact), "-o", f"{out}/", "-q"]
    status, stdout, _ = pahs_run(capsys, *args)
    assert status == 0 and stdout.strip().splitlines()[-1].startswith("4 files: 4 done, 0 skipped, 0 failed")
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    status, stdout, _ = pahs_run(capsys, *args)
    assert status == 0 and stdout.strip().splitlines()[-1].startswith("4 files: 0 done, 4 skipped, 0 failed; 0 frames")
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == stamps  # nothing was touched
    status, stdout, _ = pahs_run(capsys, *args, "--overwrite")
    assert status == 0 and stdout.strip().splitlines()[-1].startswith("4 files: 4 done, 0 skipped, 0 failed")
    assert all(p.stat().st_mtime_ns > stamps[p] for p in out.iterdir()) and not partials(out)
    # -o inside the folder the pattern searches: its outputs are not inputs the next time
    inner = inputs / "restored"
    try:
        status, stdout, _ = pahs_run(capsys, f"{base}/**/a.mp4", "-e", str(artifact), "-o", f"{inner}/", "-q")
        assert status == 0 and stdout.strip().splitlines()[-1].startswith("1 file: 1 done")
        status, stdout, _ = pahs_run(capsys, f"{base}/**/a.mp4", "-e", str(artifact), "-o", f"{inner}/", "-q")
        assert status == 0 and stdout.strip().splitlines()[-1].startswith("1 file: 0 done, 1 skipped")
    finally:
        for p in inner.iterdir():
            p.unlink()
        inner.rmdir()


def test_a_pattern_matching_nothing_is_a_failed_entry(capsys, tmp_path, inputs, artifact):
    out = tmp_path / "out"
    status, stdout, _ = pahs_run(
        capsys, str(inputs / "a.mp4"), str(inputs / "nothing*.mov"), "-e", str(artifact), "-o", f"{out}/", "-q"
    )
    assert status == 1
    rows = stdout.strip().splitlines()
    assert rows[1].startswith("done") and rows[2].startswith("failed")
    assert "expected files or folders matching" in rows[2] and "nothing*.mov" in rows[2]


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["a.mp4", "x/a.mp4", "-o", "OUT/"], ["expected one input per output name", "a.mp4", "x/a.mp4"]),
        (["a.mp4", "b.mp4"], ["expected -o FOLDER/ with several inputs (2), found none"]),
        (["a.mp4", "b.mp4", "-o", "out.mp4"], ["expected -o to be a folder with several inputs", "end it with /"]),
        (["a.mp4", "b.mp4", "-o", "-"], ["expected -o FOLDER/", "found -o -"]),
        (["a.mp4", "-", "-o", "OUT/"], ["expected files or folders with several inputs, found standard input"]),
        (["a.mp4", "http://h/x.mp4", "-o", "OUT/"], ["found the URL http://h/x.mp4", "one per run"]),
        (["a.mp4", "b.mp4", "-o", "OUT/", "--verify", "2"], ["expected --verify with one input"]),
        (["a.mp4", "b.mp4", "-o", "OUT/", "--compare", "c.mp4"], ["expected --compare with one input"]),
        (["a.mp4", "--workers", "2"], ["expected --workers 2 with --cluster", "--cluster local"]),
        (["a.mp4", "--gpus-per-worker", "1"], ["expected --gpus-per-worker 1 with --cluster"]),
    ],
)
def test_refused_before_anything_runs(capsys, tmp_path, inputs, artifact, monkeypatch, args, fragments):
    """Usage errors: one line, exit 2, nothing written."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x").mkdir()
    for name in ("a.mp4", "b.mp4", "x/a.mp4"):
        (tmp_path / name).symlink_to(inputs / Path(name).name)
    args = [a.replace("OUT", str(tmp_path / "out")) for a in args]
    status, stdout, err = pahs_run(capsys, *args, "-e", str(artifact), "-q")
    assert status == 2 and stdout == ""
    (line,) = error_lines(err)
    assert len(err.strip().splitlines()) == 1, err
    for f in fragments:
        assert f in line, line
    assert not (tmp_path / "out").exists()


def test_a_single_input_keeps_its_behaviour(capsys, tmp_path, inputs, artifact):
    """One input: no table, the usual "wrote" line, and an existing output is an error without --overwrite."""
    target = tmp_path / "one.mp4"
    status, stdout, err = pahs_run(capsys, str(inputs / "a.mp4"), "-e", str(artifact), "-o", str(target))
    assert status == 0 and stdout == "" and "wrote " in err and "[1/1]" not in err
    status, stdout, err = pahs_run(capsys, str(inputs / "a.mp4"), "-e", str(artifact), "-o", str(target), "-q")
    assert status == 2
    assert error_lines(err) == [
        f"pahs-run: error: expected a new output, found {target} already there; pass --overwrite or choose another -o"
    ]
    # one input and -o out/ is still a folder of PNG frames (not out/a.mp4)
    status, _, err = pahs_run(capsys, str(inputs / "a.mp4"), "-e", str(artifact), "-o", f"{tmp_path}/pngs/", "-q")
    assert status == 0 and len(list((tmp_path / "pngs").glob("*.png"))) == 6


def test_plan_and_names(tmp_path, inputs):
    """The planner's rules, without running anything."""
    assert output_name(str(inputs / "a.mp4")) == "a.mp4" and output_name(str(inputs / "seq")) == "seq/"
    assert output_name("clip.avi") == "clip.mp4" and output_name("clip.avi", has_format=True) == "clip.avi"
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "b.mp4").write_bytes(b"done before")
    plan = plan_batch(
        [str(inputs / "a.mp4"), str(inputs / "[ab].mp4"), str(inputs / "z*")], f"{tmp_path}/out", RunOptions()
    )
    kinds = [(type(e).__name__, e.name, getattr(e, "status", None)) for e in plan.entries]
    assert kinds == [
        ("VideoJob", str(inputs / "a.mp4"), None),  # a.mp4 again (from the pattern) is the same input: once
        ("JobResult", str(inputs / "b.mp4"), "skipped"),
        ("JobResult", str(inputs / "z*"), "failed"),
    ]
    job = plan.jobs[0]
    assert job.output == f"{tmp_path}/out/a.mp4" and job.options.output.overwrite and not job.options.progress
    merged = plan.merge([JobResult(job.name, job.output, "done", 6)])
    assert [r.status for r in merged] == ["done", "skipped", "failed"]
    absolute = plan_batch(["a.mp4"], "rel/", RunOptions(), absolute=True)  # for workers elsewhere
    assert absolute.jobs[0].source == os.path.abspath("a.mp4") and absolute.jobs[0].output == os.path.abspath(
        "rel/a.mp4"
    )
    named = Path(tmp_path / "clip [1].mp4")  # a name that exists is a path, whatever it holds
    named.write_bytes(b"")
    assert expand_inputs([str(named)]) == [str(named)]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_a_bar_on_a_terminal_and_lines_elsewhere():
    results = [JobResult("a.mp4", "out/a.mp4", "done", 6, 1.0), JobResult("b.mp4", "out/b.mp4", "failed", error="bad")]
    log = io.StringIO()
    progress = BatchProgress(2, stream=log, prefix="p: ")
    for r in results:
        progress(r)
    progress.close()
    assert log.getvalue().splitlines() == [
        "p: [1/2] done a.mp4 -> out/a.mp4: 6 frames in 1.0 s",
        "p: [2/2] failed b.mp4: bad",
    ]
    tty = _Terminal()
    progress = BatchProgress(2, stream=tty, prefix="p: ")
    for r in results:
        progress(r)
    progress.close()
    text = tty.getvalue()
    assert "files" in text and "2/2" in text and "\r" in text and "p: [2/2] failed b.mp4: bad" in text
    assert "[1/2] done" not in text  # on a terminal only failures get a line; the bar shows the rest
    lines = summary_lines([*results, JobResult("c.mp4", "out/c.mp4", "done", 7, 2.0, attempts=2)], 3.0)
    assert lines[-1] == "3 files: 2 done, 0 skipped, 1 failed; 13 frames restored in 3.0 s"
    assert lines[3].split()[:4] == ["done", "7", "2.0", "2"]
