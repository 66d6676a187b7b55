"""`pahs-run --cluster` (runtime/cluster.py) on a local Ray of 2 CPUs, started once for the module (pahs-run
uses a Ray already running in its process as it is): outputs bit-identical to the local batch, a worker killed
mid-video replaced and its video redone with nothing partial left, a bad input reported once, a rerun that
restores nothing, and one clear line without Ray.

The runs pin ONNX Runtime (`-b onnxruntime`): its CPU kernels give the same bits whatever the thread count
(checked: 1, 2 and the default give identical frames at these sizes), so workers on their share of the cores
match the local batch on all of them. OpenVINO, the default on x86-64, differs in the last bits between
thread counts (docs/USAGE.md, "Many videos, and clusters")."""

from __future__ import annotations

import json
import logging
import sys
import warnings
from pathlib import Path

import pytest
from conftest import make_folder, make_video
from test_batch import partials, same_frames

from pahs.cli.run import main
from pahs_export.errors import PahsError
from runtime.cluster import ClusterOptions, WorkerShape, _Worker, remove_partials, worker_shape, worker_threads

pytestmark = pytest.mark.integration  # integration tier: Ray workers (pytest -m 'not integration' leaves them out)

GOOD = ("a.mp4", "b.mp4", "c.mp4", "seq")
# Bit-identical outputs across processes need a runtime whose results do not depend on the thread count: ONNX
# Runtime's CPU kernels give the same bits on 1, 2 or all threads; OpenVINO (the x86 default) does not.
ORT = ("-b", "onnxruntime")


def pahs_run(capsys, *args: str) -> tuple[int, str, str]:
    status = main(list(args))
    out = capsys.readouterr()
    return status, out.out, out.err


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray", reason='needs Ray: pip install -e ".[cluster]"')
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.ERROR)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cluster-inputs")
    for name, n in (("a", 6), ("b", 8), ("c", 7)):
        make_video(root / f"{name}.mp4", n=n, width=64, height=48)
    make_folder(root / "seq", n=5, width=64, height=48)
    (root / "bad.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)  # not a video
    return root


@pytest.fixture(scope="module")
def local_batch(tmp_path_factory, inputs, artifact) -> Path:
    """The same batch on this machine, sequentially: what the cluster must reproduce bit for bit."""
    out = tmp_path_factory.mktemp("local") / "out"
    status = main([*(str(inputs / n) for n in GOOD), "-e", str(artifact), *ORT, "-o", f"{out}/", "--lossless", "-q"])
    assert status == 0
    return out


def test_cluster_batch_equals_local_batch(capsys, ray_cluster, tmp_path, inputs, artifact, local_batch):
    out, summary = tmp_path / "out", tmp_path / "run.json"
    sources = [str(inputs / n) for n in GOOD]
    args = ["-e", str(artifact), *ORT, "-o", f"{out}/", "--lossless", "--json", str(summary)]
    status, stdout, err = pahs_run(capsys, *sources, *args, "--cluster", "local", "--workers", "2")
    assert status == 0, err
    for name in GOOD:
        assert same_frames(out / name, local_batch / name), name
    assert not partials(out)
    s = json.loads(summary.read_text())
    assert s["cluster"] == {"address": "local", "workers": 2, "gpus_per_worker": None, "cpus_per_worker": None}
    assert [(f["name"], f["status"], f["attempts"]) for f in s["files"]] == [(n, "done", 1) for n in sources]
    assert all(f["worker"] for f in s["files"])  # "host:pid" of the worker that restored it
    assert "pahs-run: 4 to restore on Ray (local)" in err and stdout.strip().splitlines()[-1].startswith(
        "4 files: 4 done"
    )


@pytest.fixture(scope="module")
def killed_run(ray_cluster, tmp_path_factory, inputs, artifact):
    """A batch with a damaged file in the middle, in which the worker restoring b.mp4 dies mid-video, once."""
    root = tmp_path_factory.mktemp("killed")
    out, summary, marker = root / "out", root / "run.json", root / "died"
    names = ("a.mp4", "bad.mp4", "b.mp4", "c.mp4", "seq")
    args = [*(str(inputs / n) for n in names), "-e", str(artifact), *ORT, "-o", f"{out}/", "--lossless", "-q"]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PAHS_TEST_WORKER_EXIT", f"{marker}:b.mp4")  # test-only hook of runtime.cluster
        status = main([*args, "--json", str(summary), "--cluster", "local", "--workers", "2"])
    return status, out, json.loads(summary.read_text()), marker, args


def test_a_killed_worker_is_replaced_and_its_video_redone(ray_cluster, killed_run, inputs, local_batch):
    status, out, s, marker, _ = killed_run
    assert marker.exists()  # the hook fired: a worker died in the middle of b.mp4
    assert status == 1  # bad.mp4
    for name in GOOD:
        assert same_frames(out / name, local_batch / name), name
    assert not partials(out), partials(out)  # the dead worker's temporary was removed
    files = {Path(f["name"]).name: f for f in s["files"]}
    assert len(s["files"]) == len(files) == 5  # each video once
    assert files["b.mp4"]["status"] == "done" and files["b.mp4"]["attempts"] == 2
    assert all(files[n]["attempts"] == 1 for n in ("a.mp4", "c.mp4", "seq"))
    assert s["counts"] == {"done": 4, "skipped": 0, "failed": 1}


def test_a_bad_input_is_reported_once_not_retried(killed_run):
    _, _, s, _, _ = killed_run
    (bad,) = [f for f in s["files"] if f["status"] == "failed"]
    assert Path(bad["name"]).name == "bad.mp4" and bad["attempts"] == 1
    assert "expected a video FFmpeg can read" in bad["error"] and "\n" not in bad["error"]


def test_a_rerun_restores_nothing(capsys, ray_cluster, killed_run, inputs, artifact):
    _, out, _, _, args = killed_run
    good = [a for a in args if not a.endswith("bad.mp4")]
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    status, stdout, _ = pahs_run(capsys, *good, "--cluster", "local", "--workers", "2")
    assert status == 0
    assert stdout.strip().splitlines()[-1].startswith("4 files: 0 done, 4 skipped, 0 failed; 0 frames")
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == stamps


def test_a_video_that_always_kills_its_worker_is_reported_after_3_attempts(
    capsys, ray_cluster, tmp_path, inputs, artifact
):
    """A video whose worker dies every time (as one too big for a worker's memory would) is tried MAX_ATTEMPTS
    times, then reported failed once with the reason; the other videos are done and nothing partial is left."""
    from runtime.cluster import MAX_ATTEMPTS

    out, summary = tmp_path / "out", tmp_path / "run.json"
    args = [
        str(inputs / "a.mp4"),
        str(inputs / "c.mp4"),
        "-e",
        str(artifact),
        *ORT,
        "-o",
        f"{out}/",
        "--lossless",
        "-q",
    ]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PAHS_TEST_WORKER_EXIT", ":c.mp4")  # test-only hook of runtime.cluster: c.mp4 always kills
        status = main([*args, "--json", str(summary), "--cluster", "local", "--workers", "2"])
    assert status == 1
    files = {Path(f["name"]).name: f for f in json.loads(summary.read_text())["files"]}
    assert files["a.mp4"]["status"] == "done" and files["a.mp4"]["attempts"] == 1
    dead = files["c.mp4"]
    assert (dead["status"], dead["attempts"]) == ("failed", MAX_ATTEMPTS), dead
    assert f"died {MAX_ATTEMPTS} times" in dead["error"] and "\n" not in dead["error"]
    assert sorted(p.name for p in out.iterdir()) == ["a.mp4"]  # the last dead attempt's temporary is removed too
    assert "c.mp4" in capsys.readouterr().out


def test_cluster_local_starts_and_stops_its_own_ray(tmp_path, inputs, artifact, local_batch):
    """`--cluster local` in a process without Ray running (a fresh pahs-run): it starts a local Ray cluster,
    restores there, shuts it down and exits 0, with the local batch's frames."""
    pytest.importorskip("ray", reason='needs Ray: pip install -e ".[cluster]"')
    import subprocess

    out = tmp_path / "out"
    code = "import sys; from pahs.cli.run import main; sys.argv[0] = 'pahs-run'; sys.exit(main())"
    args = [str(inputs / "a.mp4"), str(inputs / "seq"), "-e", str(artifact), *ORT, "-o", f"{out}/", "--lossless", "-q"]
    result = subprocess.run(
        [sys.executable, "-c", code, *args, "--cluster", "local", "--workers", "1"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    for name in ("a.mp4", "seq"):
        assert same_frames(out / name, local_batch / name), name


def test_without_ray_one_clear_line(capsys, monkeypatch, tmp_path, inputs, artifact):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    status, stdout, err = pahs_run(
        capsys,
        str(inputs / "a.mp4"),
        str(inputs / "b.mp4"),
        "-e",
        str(artifact),
        "-o",
        f"{tmp_path}/o/",
        "--cluster",
        "local",
    )
    assert status == 2 and stdout == ""
    assert err.startswith("pahs-run: error: expected Ray for --cluster, found it not installed; ")
    assert 'pip install -e ".[cluster]"' in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_worker_shape():
    """Default sizes: one CPU worker per machine; GPUs / gpus-per-worker; never more workers than jobs."""
    two = [{"CPU": 2.0}]
    assert worker_shape(two, ClusterOptions("local"), jobs=5) == WorkerShape(1, 2.0, 0.0)
    assert worker_shape(two, ClusterOptions("local", workers=2), jobs=5) == WorkerShape(2, 1.0, 0.0)
    assert worker_shape(two, ClusterOptions("local", workers=4), jobs=3).workers == 3
    nodes = [{"CPU": 16.0, "GPU": 2.0}, {"CPU": 8.0, "GPU": 2.0}]
    assert worker_shape(nodes, ClusterOptions("auto"), jobs=9) == WorkerShape(2, 8.0, 0.0)
    assert worker_shape(nodes, ClusterOptions("auto", gpus_per_worker=1), jobs=9) == WorkerShape(4, 1.0, 1.0)
    assert worker_shape(nodes, ClusterOptions("auto", gpus_per_worker=0.5), jobs=9).workers == 8
    with pytest.raises(PahsError, match="expected a machine with 4 GPUs for --gpus-per-worker 4, found at most 2"):
        worker_shape(nodes, ClusterOptions("auto", gpus_per_worker=4), jobs=9)


def test_each_worker_runs_as_many_threads_as_it_reserved_cpus(monkeypatch):
    """Two workers on a 2-core machine, each with ONNX Runtime's default of every core, ran a segmented video
    at half the single run's speed (docs/SEGMENTS.md): a worker opens its backend with its reserved CPUs."""
    assert worker_threads(WorkerShape(2, 1.0, 0.0)) == 1
    assert worker_threads(WorkerShape(1, 8.0, 0.0)) == 8
    assert worker_threads(WorkerShape(4, 1.5, 0.0)) == 1
    assert worker_threads(WorkerShape(8, 0.5, 1.0)) == 1  # a GPU worker with half a CPU still runs one thread
    asked = []
    monkeypatch.setattr("warnings.showwarning", warnings.showwarning)  # the worker sets its own; put it back
    worker = _Worker(lambda **kw: asked.append(kw) or object(), {}, 3)
    assert worker.ready() is None and asked == [{"threads": 3}]


def test_remove_partials_takes_only_that_writers(tmp_path):
    (tmp_path / ".a.mp4.partial-12-abcdef-x1.mp4").write_bytes(b"")
    (tmp_path / ".a.mp4.partial-13-abcdef-x2.mp4").write_bytes(b"")  # another writer's
    (tmp_path / ".seq.partial-12-abcdef-x3").mkdir()
    (tmp_path / ".seq.partial-12-abcdef-x3" / "f.png").write_bytes(b"")
    assert [p.name for p in remove_partials(str(tmp_path / "a.mp4"), "12-abcdef")] == [
        ".a.mp4.partial-12-abcdef-x1.mp4"
    ]
    assert len(remove_partials(f"{tmp_path}/seq/", "12-abcdef")) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [".a.mp4.partial-13-abcdef-x2.mp4"]


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["a.mp4", "-o", "EXISTING"], "expected a new output, found "),  # one input keeps its rule, on Ray too
        (["-", "-o", "x.mp4"], "expected files with --cluster, found standard input or output (-)"),
        (["a.mp4", "-o", "-"], "expected files with --cluster, found standard input or output (-)"),
        (["a.mp4", "--compare", "c.mp4"], "expected --compare with one input and no --cluster"),
        (["a.mp4", "--workers", "0"], "expected --workers of at least 1, found 0"),
        (["a.mp4", "--gpus-per-worker", "0"], "expected --gpus-per-worker above 0, found 0"),
    ],
)
def test_cluster_refusals_come_before_any_worker(capsys, tmp_path, inputs, artifact, monkeypatch, args, fragment):
    pytest.importorskip("ray", reason='needs Ray: pip install -e ".[cluster]"')
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.mp4").symlink_to(inputs / "a.mp4")
    (tmp_path / "existing.mp4").write_bytes(b"")
    args = [a.replace("EXISTING", "existing.mp4") for a in args]
    status, stdout, err = pahs_run(capsys, *args, "-e", str(artifact), *ORT, "-q", "--cluster", "local")
    assert status == 2 and stdout == "" and len(err.splitlines()) == 1, err
    assert err.startswith("pahs-run: error: ") and fragment in err, err


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory) -> Path:
    """40 frames: with segments of 8 and the default warm-up of 16, the segments at 24 and 32 warm up from frames
    8 and 16, so their forward state is approximate (those at 8 and 16 warm up from frame 0: exact)."""
    return make_video(tmp_path_factory.mktemp("long") / "long.mp4", n=40, width=64, height=48, audio=True)


def _frames(path: Path) -> list:
    from runtime.io import open_input

    with open_input(path) as reader:
        return [f.image for f in reader], reader.info


@pytest.mark.parametrize("where", [[], ["--cluster", "local", "--workers", "2"]], ids=["here", "ray"])
def test_split_first_segment_exact_others_close(request, capsys, tmp_path, long_clip, artifact, where):
    """`--segment-frames` with the default warm-up (W = 16): the first segment is the single run's bit for bit
    (so are the segments whose warm-up reaches frame 0), the later ones are within the tolerance measured for
    W = 16 (docs/SEGMENTS.md: a largest error of 1.5e-5, so the 8-bit output differs by at most one level, in
    about 1 value in 100,000; asserted here: at most one level, in at most 1 value in 1,000); frame count, rate
    and audio kept. --exact-segments: the single run's output bit for bit. Here and on Ray."""
    import numpy as np

    if where:
        request.getfixturevalue("ray_cluster")
    common = ["-e", str(artifact), *ORT, "--chunk", "4", "--lookahead", "3", "--lossless", "-q"]
    single = tmp_path / "single.mkv"
    assert pahs_run(capsys, str(long_clip), "-o", str(single), *common)[0] == 0
    split = tmp_path / "split.mkv"
    status, _, err = pahs_run(capsys, str(long_clip), "-o", str(split), "--segment-frames", "8", *common, *where)
    assert status == 0, err
    (want, info), (got, got_info) = _frames(single), _frames(split)
    assert (len(got), got_info.fps, got_info.has_audio) == (40, info.fps, True)
    assert all(np.array_equal(a, b) for a, b in zip(got[:24], want[:24], strict=True))  # warm-up from frame 0
    later = np.stack(got[24:]).astype(np.int16) - np.stack(want[24:]).astype(np.int16)
    assert np.abs(later).max() <= 1 and np.count_nonzero(later) <= later.size // 1000, np.count_nonzero(later)
    cold = tmp_path / "cold.mkv"  # no warm-up: the forward state matters, so the checks above can fail
    assert pahs_run(capsys, str(long_clip), "-o", str(cold), "--segment-frames", "8", "--warmup", "0", *common)[0] == 0
    assert not np.array_equal(np.stack(_frames(cold)[0][8:]), np.stack(want[8:]))
    cold.unlink()
    exact = tmp_path / "exact.mkv"
    args = ["--segment-frames", "8", "--exact-segments"]
    assert pahs_run(capsys, str(long_clip), "-o", str(exact), *args, *common, *where)[0] == 0
    assert all(np.array_equal(a, b) for a, b in zip(_frames(exact)[0], want, strict=True))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exact.mkv", "single.mkv", "split.mkv"]  # no work folders


def test_split_refusals(capsys, tmp_path, long_clip, artifact):
    base = [str(long_clip), "-e", str(artifact), *ORT, "-q"]
    for extra, fragment in (
        (["--warmup", "4"], "with --segment-frames, found no --segment-frames"),
        (["--segment-frames", "8", "--exact-segments", "--warmup", "2"], "--exact-segments or --warmup"),
        (["--segment-frames", "8", "--verify", "2"], "no --verify or --compare"),
        (["--segment-frames", "8", "--lookahead", "all"], "a number for --lookahead"),
    ):
        status, _, err = pahs_run(capsys, *base, "-o", str(tmp_path / "x.mkv"), *extra)
        assert status == 2 and err.count("\n") == 1 and fragment in err, err
