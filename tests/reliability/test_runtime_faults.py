"""`pahs-run` under faults, in real runs: signals at random points, full disks, killed runs.

Every run here is a real ``pahs.cli.run.main`` in its own process, forked from one server that imported
everything once (runtime_faults_helper.py), so that dozens of runs fit in well under two minutes on two
cores. What each test proves is in its docstring. The same behaviours piece by piece, in-process:
test_runtime_faults_inprocess.py.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from runtime_faults_helper import ForkServer, Run, make_clip, make_folder

from pahs.export_cache import LOCKS

pytestmark = pytest.mark.integration  # integration tier: dozens of real runs forked from one server

SIGNALLED_RUNS = 32  # at least 30 runs interrupted at random points
EXIT_SECONDS = 5.0  # how soon after the signal a run must have exited

# Option sets the random-signal test cycles through: video and PNG-folder outputs, with and without a
# side-by-side, streaming lookahead and --lookahead all (spill folder in the run's own folder).
ALL = ["--lookahead", "all", "--spill-dir", "."]  # the spill folder goes in the run's own folder
CONFIGS = {
    "mp4 + compare, lookahead 19, chunk 8": ["-o", "out.mp4", "--compare", "side.mp4", "--chunk", "8"],
    "png folder, lookahead all, chunk 4": ["-o", "frames/", *ALL, "--chunk", "4"],
    "mkv + png compare, lookahead 2, chunk 3": ["-o", "out.mkv", "--lookahead", "2", "--chunk", "3", "--compare", "x/"],
    "mp4 + compare, lookahead all": ["-o", "out.mp4", *ALL, "--compare", "side.mp4"],
}


@pytest.fixture(scope="module")
def engine(tmp_path_factory) -> Path:
    """A tiny ONNX artifact: random pahs-t weights (the default backend, ONNX Runtime, runs it)."""
    from pahs_export import build_model, save_checkpoint
    from pahs_export.onnx_export import artifact_from_model
    from pahs_export.weights import resolve_model

    torch.manual_seed(3)
    ckpt = save_checkpoint(build_model("pahs-t"), tmp_path_factory.mktemp("ckpt") / "w.safetensors")
    model, source = resolve_model(ckpt)
    return artifact_from_model(model, tmp_path_factory.mktemp("onnx") / "art", source=source)


@pytest.fixture(scope="module")
def server():
    s = ForkServer()
    yield s
    s.close()


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_clip(tmp_path_factory.mktemp("clip") / "in.mp4", n=24)


class Runs:
    """Fresh run folders, each holding only a copy of the input, and specs for the server."""

    def __init__(self, base: Path, engine: Path, source: Path) -> None:
        self.base, self.engine, self.source, self.count = base, engine, source, 0

    def spec(self, args: list[str], engine: bool = True, **extra) -> dict:
        self.count += 1
        folder = self.base / f"run{self.count}"
        folder.mkdir()
        if self.source.is_dir():
            shutil.copytree(self.source, folder / self.source.name)
        else:
            shutil.copy(self.source, folder / self.source.name)
        argv = [self.source.name, *(["-e", str(self.engine)] if engine else []), "-q", *args]
        spec = {"argv": argv, "cwd": str(folder), "tmpdir": str(folder), "capture": str(self.base / "capture")}
        return {**spec, **extra}

    @staticmethod
    def left(spec: dict) -> list[str]:
        return sorted(os.listdir(spec["cwd"]))


def interrupted_cleanly(run: Run, spec: dict, name: str, status: int) -> None:
    """The contract of an interrupted run: 128+n, within seconds, one line, no traceback, only the input left."""
    where = f"{spec['argv']} signalled {spec.get('delay', 0):.3f} s in: {run.describe()}"
    assert not run.hung and run.status == status, where
    assert run.after_signal is not None and run.after_signal <= EXIT_SECONDS, where
    assert run.stderr.splitlines() == [f"pahs-run: interrupted ({name})"], where
    assert run.stdout == "", where
    assert Runs.left(spec) == [spec["argv"][0]], where


def test_sigterm_at_random_points_leaves_nothing(server, engine, clip, tmp_path):
    """SIGTERM at >= 30 random points of real runs (decoding, inference, the --lookahead all backward pass and
    spill, encoding, finishing): each exits within seconds with status 143 and the one line
    `pahs-run: interrupted (SIGTERM)`, no traceback, and leaves only its input (no partial output, no spill
    folder). A run the signal reaches after its outputs were published finishes normally (status 0, complete
    outputs): outputs appear whole or not at all."""
    seed = int(os.environ.get("PAHS_FAULT_SEED", time.time_ns() % 1_000_000))
    rng = np.random.default_rng(seed)
    runs = Runs(tmp_path, engine, clip)
    names = list(CONFIGS)
    calibration = server.run([runs.spec(CONFIGS[n]) for n in names])
    for name, run in zip(names, calibration, strict=True):
        assert run.status == 0, f"{name}: {run.describe()}"
    duration = {n: r.seconds for n, r in zip(names, calibration, strict=True)}
    interrupted, finished, attempts = 0, 0, 0
    while interrupted < SIGNALLED_RUNS and attempts < 3 * SIGNALLED_RUNS:
        batch = [names[(attempts + i) % len(names)] for i in range(SIGNALLED_RUNS - interrupted)]
        specs = [runs.spec(CONFIGS[n], delay=float(rng.uniform(0, duration[n]))) for n in batch]
        attempts += len(specs)
        for spec, run in zip(specs, server.run(specs), strict=True):
            if run.status == 0:  # the signal came too late (or after publishing): a complete run
                argv = spec["argv"]
                outputs = {argv[i + 1].rstrip("/") for i, a in enumerate(argv) if a in ("-o", "--compare")}
                assert outputs <= set(Runs.left(spec)), f"seed {seed}: {run.describe()}"
                finished += 1
                continue
            interrupted_cleanly(run, spec, "SIGTERM", 128 + signal.SIGTERM)
            interrupted += 1
    assert interrupted >= SIGNALLED_RUNS, f"seed {seed}: only {interrupted} runs interrupted, {finished} finished"


@pytest.mark.parametrize(("signum", "name"), [(signal.SIGHUP, "SIGHUP"), (signal.SIGINT, "SIGINT")])
def test_sighup_and_sigint_are_handled_like_sigterm(server, engine, clip, tmp_path, signum, name):
    """An ssh session that drops (SIGHUP) and Ctrl-C (SIGINT) stop the run the same way: 128 + n (129, 130),
    one line naming the signal (typer used to turn Ctrl-C into a silent 130), nothing left behind."""
    runs = Runs(tmp_path, engine, clip)
    args = [CONFIGS["mp4 + compare, lookahead all"], CONFIGS["mp4 + compare, lookahead 19, chunk 8"]]
    specs = [runs.spec(a, delay=d, signum=int(signum)) for a in args for d in (0.0, 0.6)]
    for spec, run in zip(specs, server.run(specs), strict=True):
        if run.status == 0 and spec["delay"] > 0:  # a fast machine finished first
            continue
        interrupted_cleanly(run, spec, name, 128 + signum)


def test_sighup_under_nohup_does_not_stop_the_run(server, engine, clip, tmp_path):
    """`nohup pahs-run ...` (SIGHUP inherited as ignored) keeps running when the ssh session drops: the SIGHUP
    does nothing, the run finishes with status 0 and its outputs, while SIGTERM still stops such a run."""
    runs = Runs(tmp_path, engine, clip)
    args = CONFIGS["mp4 + compare, lookahead 19, chunk 8"]
    hup = runs.spec(args, delay=0.0, signum=int(signal.SIGHUP), ignore=["SIGHUP"])
    term = runs.spec(args, delay=0.0, signum=int(signal.SIGTERM), ignore=["SIGHUP"])
    kept, stopped = server.run([hup, term])
    assert kept.status == 0 and kept.signalled and kept.stderr == "" and kept.stdout == "", kept.describe()
    assert Runs.left(hup) == ["in.mp4", "out.mp4", "side.mp4"]
    interrupted_cleanly(stopped, term, "SIGTERM", 128 + signal.SIGTERM)


def error_line(run: Run, *fragments: str) -> str:
    """The one `pahs-run: error:` line of a failed run (status 2, nothing else on stderr, no traceback)."""
    assert run.status == 2 and not run.hung, run.describe()
    lines = run.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("pahs-run: error: ") and "Traceback" not in run.stderr, lines
    for f in fragments:
        assert f in lines[0], lines[0]
    return lines[0]


def test_full_disk_is_one_line_and_leaves_nothing(server, engine, clip, tmp_path):
    """A full disk (RLIMIT_FSIZE: writes fail with EFBIG, as ENOSPC on a full disk) under --lookahead all is a
    one-line error naming the spill folder and what to do, not SIGBUS (the spill was a sparse memory map);
    under a video or PNG-folder output it is a one-line error naming the output's folder. Nothing is left:
    no partial output, no spill folder."""
    runs = Runs(tmp_path, engine, clip)
    spill = runs.spec(["-o", "out.mp4", *ALL], fsize=20_000)  # the spill takes 221 kB
    video = runs.spec(["-o", "out.mp4"], fsize=2_000)
    mkv = runs.spec(["-o", "out.mkv", "--compare", "side.mp4"], fsize=2_000)
    noise = make_folder(tmp_path / "noise", n=3, width=64, height=48, noise=True)  # PNGs of 9 kB: no compression
    png = Runs(tmp_path / "png", engine, noise)
    (tmp_path / "png").mkdir()
    frames = png.spec(["-o", "restored/"], fsize=4_000)
    results = server.run([spill, video, mkv, frames])
    line = error_line(results[0], "--lookahead all spill", spill["cwd"], "--spill-dir")
    assert "file size limit" in line
    error_line(results[1], "the output out.mp4", video["cwd"], "choose another -o")
    error_line(results[2], "the output out.mkv", mkv["cwd"])
    error_line(results[3], "the output restored", frames["cwd"])
    for spec in (spill, video, mkv):
        assert Runs.left(spec) == ["in.mp4"], Runs.left(spec)
    assert Runs.left(frames) == ["noise"]


def test_full_cache_is_one_line(server, clip, tmp_path):
    """The first use exports the default weights into $PAHS_CACHE; a full disk there is one line naming the
    cache and how to move it, and leaves no partial artifact in it."""
    runs = Runs(tmp_path, Path("unused"), clip)
    cache = tmp_path / "cache"
    spec = runs.spec(["-o", "out.mp4"], engine=False, fsize=100_000, env={"PAHS_CACHE": str(cache)})
    (run,) = server.run([spec])
    error_line(run, "the default engine", str(cache), "PAHS_CACHE")
    left = [n for n in os.listdir(cache) if n != LOCKS] if cache.exists() else []  # the lock files stay
    assert left == [], left
    assert Runs.left(spec) == ["in.mp4"]


def test_killed_runs_are_swept_by_the_next_run(server, engine, tmp_path):
    """SIGKILL cannot be handled: a killed run leaves its partial outputs and spill folder, each named with its
    pid. The next run writing the same outputs (and spilling to the same folder) removes them because that pid
    is gone, but keeps a live writer's partial (this test's own pid) and another output name's."""
    runs = Runs(tmp_path, engine, make_clip(tmp_path / "in.mp4", n=60))
    args = ["-o", "out.mp4", "--compare", "side/", *ALL]
    (whole,) = server.run([runs.spec(args)])
    assert whole.status == 0, whole.describe()
    for share in (0.6, 0.45, 0.75, 0.3, 0.9):  # a point where the run has written something to sweep
        killed = runs.spec(args, delay=share * whole.seconds, signum=int(signal.SIGKILL))
        (run,) = server.run([killed])
        assert run.status in (0, -signal.SIGKILL), run.describe()
        left = Runs.left(killed)
        if any(".partial-" in n for n in left) and any(n.startswith("pahs-spill-") for n in left):
            break
    else:
        pytest.fail(f"no SIGKILL left partial outputs and a spill folder to sweep: {left}")
    folder = Path(killed["cwd"])
    from pahs_export.atomic import owner_tag

    live = folder / f".out.mp4.partial-{owner_tag()}-live.mp4"  # the pytest process: alive
    live.write_bytes(b"x")
    other = folder / f".other.mp4.partial-{run_pid_dead()}-{owner_tag().split('-')[1]}-x.mp4"
    other.write_bytes(b"x")
    again = dict(killed, delay=None, signum=None)
    (rerun,) = server.run([again])
    assert rerun.status == 0, rerun.describe()
    assert Runs.left(again) == sorted(["in.mp4", "out.mp4", "side", live.name, other.name]), Runs.left(again)


def run_pid_dead() -> int:
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid
