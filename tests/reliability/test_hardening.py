"""The second hardening round (issue #29): cases that broke when hostile and careless ones were tried.

Command-line cases run the real `pahs-run` in a subprocess; API cases run in-process. Each test failed on the
code before its fix. Inputs are tiny generated clips and frame folders, models the tiny pahs-t preset.
"""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from fractions import Fraction
from pathlib import Path

import numpy as np
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


# ------------------------------------------------------------------- 11-13. the Python API checks what it is given


@pytest.fixture(scope="module")
def restorer(artifact):
    import pahs

    return pahs.open(artifact, backend="onnxruntime", threads=1)


def api_frames(n: int = 8, size: int = 32) -> list[np.ndarray]:
    rng = np.random.default_rng(11)
    return [rng.random((size, size, 3), dtype=np.float32) for _ in range(n)]


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("as_tensor", [False, True])
def test_a_non_finite_pixel_is_refused_naming_its_frame(restorer, bad, as_tensor):
    import torch

    from pahs import PahsError

    frames = api_frames()
    frames[3][5, 7, 1] = bad
    given = [torch.from_numpy(f).permute(2, 0, 1) for f in frames] if as_tensor else frames
    got = []
    with pytest.raises(PahsError, match="expected finite values in float frames, found 1 NaN or Inf in frame 3"):
        for out in restorer.restore(given, lookahead=2, chunk=2):
            got.append(out)
    assert all(np.isfinite(np.asarray(o)).all() for o in got)  # nothing non-finite came back before it


def test_a_non_finite_state_mid_run_stops_in_one_line(restorer):
    """An engine whose state turns NaN at the fifth forward step (as an FP16 overflow would)."""
    import torch

    from pahs import PahsError, Restorer
    from runtime.backends.base import BackendWrapper

    class Overflowing(BackendWrapper):
        steps = 0

        def run(self, role, *inputs):
            outputs = super().run(role, *inputs)
            if role == "forward":
                Overflowing.steps += 1
                if Overflowing.steps == 5:
                    outputs = tuple(torch.full_like(v, torch.nan) for v in outputs)
            return outputs

    broken = Restorer(Overflowing(restorer.backend))
    with pytest.raises(PahsError, match="expected finite values from the engine, found NaN or Inf in restored frame"):
        list(broken.restore(api_frames(), lookahead=2, chunk=2))


@pytest.mark.parametrize("scale", [255.0, 65535.0, -1.0])
def test_float_frames_outside_0_1_are_refused(restorer, scale):
    from pahs import PahsError

    frames = [f * scale for f in api_frames(3)]
    with pytest.raises(PahsError, match=r"expected float frames in \[0, 1\] \(within 0.05\), found values from"):
        list(restorer.restore(frames))


def test_float_frames_just_above_1_are_accepted(restorer):
    frames = [np.clip(f * 1.04, 0, 1.04).astype(np.float32) for f in api_frames(3)]
    out = list(restorer.restore(frames, lookahead=1))
    assert len(out) == 3 and all(o.max() <= 1 for o in out)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda r, f: list(r.restore(f, lookahead="soon")), "expected lookahead to be a number of frames from 0"),
        (lambda r, f: list(r.restore(f, lookahead=True)), "expected lookahead to be"),
        (lambda r, f: list(r.restore(f, lookahead=-1)), "expected lookahead to be"),
        (lambda r, f: list(r.restore(f, chunk="many")), "expected chunk to be a number of frames of at least 1"),
        (lambda r, f: list(r.restore(f, chunk=0)), "expected chunk to be"),
        (lambda r, f: list(r.restore(f, max_pixels="big")), "expected max_pixels to be"),
        (lambda r, f: list(r.restore(f, spill_dir=3)), "expected spill_dir to be"),
        (lambda r, f: list(r.restore(5)), "expected frames to be an iterable"),
        (lambda r, f: r.restore_video("in.mp4", "o.mp4", crf="high"), "expected crf to be a whole number from 0 to 51"),
        (lambda r, f: r.restore_video("in.mp4", "o.mp4", crf=99), "expected crf to be"),
        (lambda r, f: r.restore_video("in.mp4", "o.mp4", fps="fast"), "expected fps to be a positive rate"),
        (lambda r, f: r.restore_video("in.mp4", "o.mp4", lossless="yes"), "expected lossless to be True or False"),
        (lambda r, f: r.restore_video("in.mp4", "o.mp4", preset="quick"), "expected preset to be one of"),
        (lambda r, f: r.restore_video("in.mp4", "o.mp4", codec=264), "expected codec to be a string"),
        (lambda r, f: r.restore_video("in.mp4", "o.mp4", progress="no"), "expected progress to be True or False"),
        (lambda r, f: r.restore_video(3, "o.mp4"), "expected src to be"),
        (lambda r, f: r.restore_video("in.mp4", 3), "expected dst to be"),
        (lambda r, f: r.restore_video("in.mp4", "o.mp4", speed=2), "expected encoder settings of OutputOptions"),
    ],
)
def test_every_api_parameter_is_checked_by_name(restorer, call, message):
    from pahs import PahsError

    with pytest.raises(PahsError, match=message) as caught:
        call(restorer, api_frames(2))
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("keywords", "message"),
    [({"threads": "x"}, "expected threads to be"), ({"cuda_graphs": "on"}, "expected cuda_graphs to be True or False"),
     ({"backend": 3}, "expected backend to be a string")],
)  # fmt: skip
def test_open_checks_its_parameters(artifact, keywords, message):
    import pahs

    with pytest.raises(pahs.PahsError, match=message):
        pahs.open(artifact, **keywords)


def test_the_cli_spellings_keep_the_cli_meaning(restorer, tmp_path):
    def same(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
        return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))

    frames = api_frames(6)
    exact = list(restorer.restore(frames, lookahead=None))
    assert same(list(restorer.restore(frames, lookahead="all")), exact)
    assert same(list(restorer.restore(frames, lookahead="ALL")), exact)
    streamed = list(restorer.restore(frames, lookahead=2, chunk=3))
    assert same(list(restorer.restore(frames, lookahead="2", chunk="3")), streamed)
    clip = make_clip(tmp_path / "c.mp4", n=3, width=32, height=32)
    run = restorer.restore_video(clip, tmp_path / "o.mkv", crf="20", fps="30000/1001", lookahead="all")
    assert run.frames == 3 and (tmp_path / "o.mkv").is_file()


# ------------------------------------------------------------------- 2-3. what an artifact may make pahs read


def external_fuse(art: Path, location: str) -> bytes:
    """Rewrite ``fuse.onnx`` with its weights in the external file ``location`` (written into the artifact as
    ext.bin), rehash the .onnx as a careful tamperer would, and return the external bytes."""
    import onnx

    from pahs_export.atomic import file_sha256

    model = onnx.load(str(art / "fuse.onnx"))
    onnx.save_model(model, str(art / "fuse.onnx"), save_as_external_data=True, location="ext.bin", size_threshold=0)
    data = (art / "ext.bin").read_bytes()
    if location != "ext.bin":  # point the graph elsewhere: the file is not inside the artifact any more
        (art / "ext.bin").unlink()
        model = onnx.load(str(art / "fuse.onnx"), load_external_data=False)
        for tensor in model.graph.initializer:
            for entry in tensor.external_data:
                if entry.key == "location":
                    entry.value = location
        (art / "fuse.onnx").write_bytes(model.SerializeToString())
    raw = json.loads((art / "manifest.json").read_text())
    raw["sha256"]["fuse.onnx"] = file_sha256(art / "fuse.onnx")
    (art / "manifest.json").write_text(json.dumps(raw))
    return data


@pytest.fixture()
def art(tmp_path, artifact) -> Path:
    import shutil

    return Path(shutil.copytree(artifact, tmp_path / "art"))


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_external_data_in_the_working_folder_is_never_read(tmp_path, art, backend):
    seq = make_folder(tmp_path / "seq", 2, 32, 32)
    data = external_fuse(art, "ext.bin")
    (art / "ext.bin").rename(tmp_path / "ext.bin")  # the graph names ext.bin; it is only in the working folder
    result = pahs_run(seq, "-e", art, "-b", backend, "-o", tmp_path / "o.mkv", "-q", cwd=tmp_path)
    one_error(result, "ext.bin", "sha256")
    assert not (tmp_path / "o.mkv").exists() and (tmp_path / "ext.bin").read_bytes() == data


@pytest.mark.parametrize("location", ["../ext.bin", "/tmp/ext.bin", "sub/ext.bin"])
def test_external_data_outside_the_folder_is_one_line_on_openvino(tmp_path, art, location):
    seq = make_folder(tmp_path / "seq", 2, 32, 32)
    data = external_fuse(art, location)
    (tmp_path / "ext.bin").write_bytes(data)
    result = pahs_run(seq, "-e", art, "-b", "openvino", "-o", tmp_path / "o.mkv", "-q", cwd=tmp_path)
    one_error(result, "external data of the fuse graph", "plain file name")


def test_external_data_inside_the_folder_must_be_hashed_and_then_loads(art, artifact):
    import torch

    from pahs import PahsError
    from pahs_export.artifact import read_artifact
    from pahs_export.atomic import file_sha256
    from runtime.backends.openvino_backend import OpenVINOBackend
    from runtime.backends.ort_backend import OnnxRuntimeBackend

    external_fuse(art, "ext.bin")
    for backend in (OnnxRuntimeBackend, OpenVINOBackend):
        with pytest.raises(PahsError, match=r"expected a sha256 in .* for ext\.bin, the external data of the fuse"):
            backend(read_artifact(art))
    raw = json.loads((art / "manifest.json").read_text())
    raw["sha256"]["ext.bin"] = file_sha256(art / "ext.bin")
    (art / "manifest.json").write_text(json.dumps(raw))
    x = torch.rand(1, 3, 32, 32)
    f = torch.rand(1, 48, 8, 8)
    for backend in (OnnxRuntimeBackend, OpenVINOBackend):
        got = backend(read_artifact(art)).fuse(x, f, f)
        want = backend(read_artifact(artifact)).fuse(x, f, f)
        assert torch.equal(got, want)
    (art / "ext.bin").write_bytes(b"\0" * len((art / "ext.bin").read_bytes()))  # swapped after hashing
    with pytest.raises(PahsError, match=r"ext\.bin does not match the sha256"):
        OnnxRuntimeBackend(read_artifact(art))


def test_a_truncated_graph_on_openvino_is_one_line(tmp_path, art):
    from pahs_export.atomic import file_sha256

    seq = make_folder(tmp_path / "seq", 2, 32, 32)
    graph = art / "fuse.onnx"
    graph.write_bytes(graph.read_bytes()[: graph.stat().st_size // 2])
    raw = json.loads((art / "manifest.json").read_text())
    raw["sha256"]["fuse.onnx"] = file_sha256(graph)
    (art / "manifest.json").write_text(json.dumps(raw))
    one_error(pahs_run(seq, "-e", art, "-b", "openvino", "-o", tmp_path / "o.mkv", "-q"), "fuse.onnx", "OpenVINO")


def test_a_manifest_nested_200000_levels_deep_is_one_line(tmp_path, art):
    seq = make_folder(tmp_path / "seq", 2, 32, 32)
    (art / "manifest.json").write_text("[" * 200_000 + "]" * 200_000)
    one_error(pahs_run(seq, "-e", art, "-o", tmp_path / "o.mkv", "-q"), "manifest.json", "nested too deeply")


# ------------------------------------------------------------------- 8-9. batches


def test_a_fifo_matched_by_a_batch_pattern_is_reported_once_and_skipped(tmp_path, artifact):
    import os

    videos = tmp_path / "in"
    videos.mkdir()
    make_clip(videos / "a.mp4", n=3, width=32, height=32)
    os.mkfifo(videos / "b.mp4")  # nothing ever writes it: opening it would block the batch forever
    out = tmp_path / "out"
    result = pahs_run(f"{videos}/*.mp4", "-e", artifact, "-b", "onnxruntime", "-o", f"{out}/", timeout=120)
    assert result.returncode == 1, result.stderr  # one input was not restored
    assert "Traceback" not in result.stderr
    assert (out / "a.mp4").is_file() and not (out / "b.mp4").exists()
    reported = [line for line in (result.stdout + result.stderr).splitlines() if "b.mp4" in line]
    assert len(reported) == 1, result.stdout + result.stderr  # the summary's line
    assert "expected a regular file or a folder of frames in a batch, found a FIFO" in reported[0]


def test_output_folder_equal_to_the_input_folder_says_so(tmp_path, artifact):
    videos = tmp_path / "in"
    videos.mkdir()
    make_clip(videos / "a.mp4", n=3, width=32, height=32)
    result = pahs_run(f"{videos}/*.mp4", "-e", artifact, "-o", f"{videos}/", "-q")
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert "output folder" in result.stdout and "choose another -o" in result.stdout, result.stdout
    assert "check the pattern" not in result.stdout + result.stderr
    assert sorted(p.name for p in videos.iterdir()) == ["a.mp4"]


# ------------------------------------------------------------------- 6. signals that come twice, or while blocked


def _wait_for(condition, seconds: float = 120.0) -> None:
    import time

    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


def test_two_sigterms_50_ms_apart_leave_no_partial(tmp_path, artifact):
    import os
    import signal
    import time

    clip = make_clip(tmp_path / "in.mp4", n=240, width=64, height=48)
    out = tmp_path / "o"
    out.mkdir()
    args = [sys.executable, "-c", RUN, str(clip), "-e", str(artifact), "-b", "onnxruntime", "-o", str(out / "x.mkv")]
    proc = subprocess.Popen([*args, "-q", "--threads", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait_for(lambda: any(".partial-" in p.name for p in out.iterdir()) or proc.poll() is not None)
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode in (-signal.SIGTERM, 128 + signal.SIGTERM), proc.returncode
    assert list(out.iterdir()) == [], list(out.iterdir())


def test_sigterm_while_blocked_opening_a_fifo_exits_143(tmp_path, artifact):
    import os
    import signal

    fifo = tmp_path / "in.y4m"
    os.mkfifo(fifo)  # no writer: opening it blocks
    args = [
        sys.executable,
        "-c",
        RUN,
        str(fifo),
        "-e",
        str(artifact),
        "-b",
        "onnxruntime",
        "-o",
        str(tmp_path / "o.mkv"),
    ]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wchan = Path(f"/proc/{proc.pid}/wchan")
        _wait_for(lambda: proc.poll() is not None or "partner" in wchan.read_text() or "fifo" in wchan.read_text())
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 143, err
    assert "interrupted (SIGTERM)" in err and "Traceback" not in err and "cannot open" not in err, err


# ------------------------------------------------------------------- 10. a video cut short, whatever its container


def timed_clip(path: Path, pts_ms: list[int], last_ms: int | None = None, codec: str = "ffv1") -> Path:
    """A clip whose frames start at ``pts_ms`` (milliseconds; irregular: variable frame rate), each lasting
    until the next and the last ``last_ms`` (None: the container's default), one packet per frame (an
    intra-only codec: cutting the file after packet k leaves frames 0..k-1)."""
    import av
    from runtime_faults_helper import frames

    with av.open(str(path), "w") as c:
        v = c.add_stream(codec)
        v.width, v.height, v.pix_fmt = 48, 32, "yuv420p"
        v.time_base = v.codec_context.time_base = Fraction(1, 1000)  # pts in milliseconds
        packets = []
        for t, img in zip(pts_ms, frames(len(pts_ms), 48, 32), strict=True):
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts, frame.time_base = t, Fraction(1, 1000)
            packets += v.encode(frame)
        packets += v.encode()
        ends = [*pts_ms[1:], None]
        for p in packets:
            end = dict(zip(pts_ms, ends, strict=True))[p.pts]
            duration = (end - p.pts) if end is not None else last_ms
            if duration is not None:
                p.duration = duration
            c.mux(p)
    return path


def cut_before_frame(src: Path, dst: Path, k: int) -> Path:
    """``src`` up to where the packet of frame ``k`` starts: frames ``k`` and later are lost."""
    import av

    with av.open(str(src)) as c:
        positions = [p.pos for p in c.demux(video=0) if p.size]
    dst.write_bytes(src.read_bytes()[: positions[k]])
    return dst


def decode_warnings(path: Path) -> tuple[int, list[str]]:
    """The frames that decode from ``path``, and the reader's warnings."""
    from runtime.io import open_input

    with warnings.catch_warnings(record=True) as caught, open_input(path) as reader:
        warnings.simplefilter("always")
        count = sum(1 for _ in reader)
    return count, [str(w.message) for w in caught]


EVERY_24 = [round(i * 1000 / 24) for i in range(24)]
VFR = [0, 40, 80, 200, 240, 1000, 1040, 1500, 1540, 3000]  # a slide show: gaps, then a still held 2 s


@pytest.mark.parametrize(
    "name, pts, last",
    [("cfr.mkv", EVERY_24, None), ("vfr.mkv", VFR, 2000), ("vfr-default-last.mkv", VFR, None), ("vfr.webm", VFR, 2000)],
)
def test_a_whole_file_never_warns_even_at_a_variable_frame_rate(tmp_path, name, pts, last):
    codec = "libvpx-vp9" if name.endswith(".webm") else "ffv1"
    count, caught = decode_warnings(timed_clip(tmp_path / name, pts, last, codec))
    assert count == len(pts) and caught == [], caught


@pytest.mark.parametrize("name, pts, last, keep", [("cfr.mkv", EVERY_24, None, 22), ("vfr.mkv", VFR, 2000, 9)])
def test_matroska_losing_two_frames_or_a_long_last_one_warns(tmp_path, name, pts, last, keep):
    """No frame count in Matroska: the decoded end against the listed duration, beyond 1.5 frame intervals.
    Before: losses under max(2 s, 3 frames) went unreported (2 frames at 24 fps); a lost 2-s still at the end of
    a variable-frame-rate file must still warn."""
    cut = cut_before_frame(timed_clip(tmp_path / name, pts, last), tmp_path / f"cut-{name}", keep)
    count, caught = decode_warnings(cut)
    assert count == keep, count
    assert len(caught) == 1 and "s the container lists" in caught[0] and f"restored the {keep} frames" in caught[0]


def test_a_24_frame_mkv_cut_in_half_warns_through_pahs_run(tmp_path, artifact):
    """Before: 9 frames written, exit 0, no warning."""
    src = timed_clip(tmp_path / "in.mkv", EVERY_24)
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    out = tmp_path / "out.mkv"
    result = pahs_run(cut, "-e", artifact, "-b", "onnxruntime", "-o", out, "--threads", "1")
    assert result.returncode == 0, result.stderr
    written, _ = decode_warnings(out)
    assert 0 < written < 24, written
    lines = [line for line in result.stderr.splitlines() if line.startswith("pahs-run: warning:")]
    assert len(lines) == 1 and f"restored the {written} frames" in lines[0], result.stderr


# ------------------------------------------------------------------- 5. a termination signal during an export

EXPORT = "import sys; from pahs.cli.export import main; sys.argv[0] = 'pahs-export'; sys.exit(main())"
STOP_SECONDS = 10.0  # how soon after a termination signal every long command must have stopped (2 cores)


class Watched:
    """A command in a subprocess whose stderr lines are collected as they come, so that a test can signal it
    at a chosen point (:meth:`wait_for`) and time how soon it ends (:meth:`stop`)."""

    def __init__(self, code: str, *args: str | Path, env: dict[str, str] | None = None) -> None:
        import os
        import threading

        self.proc = subprocess.Popen(
            [sys.executable, "-c", code, *map(str, args)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=lambda: self.lines.extend(self.proc.stderr), daemon=True)
        self._reader.start()

    def wait_for(self, fragment: str, seconds: float = 300.0) -> None:
        """Until a stderr line holds ``fragment`` (the command still running)."""
        _wait_for(lambda: any(fragment in line for line in self.lines) or self.proc.poll() is not None, seconds)
        assert self.proc.poll() is None, "".join(self.lines)

    def stop(self, signum: int) -> tuple[int, float, str]:
        """Send ``signum``; the exit status, the seconds it took to exit, and the whole stderr."""
        import os
        import signal
        import time

        sent = time.monotonic()
        self.proc.send_signal(signum)
        try:
            self.proc.wait(timeout=600)
        finally:
            if self.proc.poll() is None:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        took = time.monotonic() - sent
        self._reader.join(timeout=10)
        return self.proc.returncode, took, "".join(self.lines)


def hidden_leftovers(folder: Path) -> list[str]:
    """Temporaries (``.NAME.partial-...``) anywhere under ``folder``."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if ".partial-" in p.name)


def assert_stopped(status: int, took: float, err: str, prog: str) -> None:
    """143 within :data:`STOP_SECONDS`, one `prog: interrupted (SIGTERM)` line, no traceback."""
    assert status == 143, (status, err)
    assert took < STOP_SECONDS, (took, err)
    assert err.count(f"{prog}: interrupted (SIGTERM)") == 1 and "Traceback" not in err, err


def test_sigterm_during_pahs_export_onnx_stops_and_removes_the_partial_folder(tmp_path):
    """Before: killed by SIGTERM's default action (status -15), no message, a hidden partial folder left."""
    import signal

    export = Watched(EXPORT, "onnx", "-o", tmp_path / "art", env={"PAHS_CACHE": str(tmp_path / "cache")})
    export.wait_for("exporting backward graph")
    status, took, err = export.stop(signal.SIGTERM)
    assert_stopped(status, took, err, "pahs-export")
    assert list(tmp_path.glob("*art*")) == [] and hidden_leftovers(tmp_path) == [], list(tmp_path.iterdir())


@pytest.mark.integration
@pytest.mark.parametrize("phase", ["calibrating: FP32 loop", "quantizing forward graph"])
def test_sigterm_during_int8_calibration_stops_within_10_s(tmp_path, phase):
    """Before: the export ran to its end (minutes) with SIGTERM's default action, or (pahs-run) 183 s after the
    signal. Now the calibration loop and ONNX Runtime's calibration check the flag at every step."""
    import signal
    import time

    cache = tmp_path / "cache"
    export = Watched(EXPORT, "onnx", "--int8", "-o", tmp_path / "art", env={"PAHS_CACHE": str(cache)})
    export.wait_for(phase)
    time.sleep(2)
    status, took, err = export.stop(signal.SIGTERM)
    assert_stopped(status, took, err, "pahs-export")
    assert list(tmp_path.glob("*art*")) == [] and hidden_leftovers(tmp_path) == [], list(tmp_path.iterdir())


@pytest.mark.integration
def test_sigterm_during_a_first_use_int8_export_in_pahs_run(tmp_path):
    """pahs-run on an empty cache exports the INT8 artifact first; SIGTERM 5 s into that export. Before: exit
    183 s after the signal."""
    import signal
    import time

    clip = make_clip(tmp_path / "in.mp4", n=4, width=32, height=32)
    cache = tmp_path / "cache"
    run = Watched(RUN, clip, "--int8", "-b", "onnxruntime", "-o", tmp_path / "out.mkv", env={"PAHS_CACHE": str(cache)})
    run.wait_for("first use")
    _wait_for(lambda: (cache.is_dir() and hidden_leftovers(cache) != []) or run.proc.poll() is not None)
    time.sleep(5)  # into the export: exporting the graphs, or calibrating
    status, took, err = run.stop(signal.SIGTERM)
    assert_stopped(status, took, err, "pahs-run")
    assert hidden_leftovers(tmp_path) == [] and not (tmp_path / "out.mkv").exists(), hidden_leftovers(tmp_path)
    assert not list(cache.glob("*onnx-int8*")), list(cache.iterdir())  # (no folder at all: AtomicOutput made it)


# ------------------------------------------------------------------- 7. a --cluster that cannot be reached

CONNECT_LIMIT = 30.0  # seconds within which pahs-run must have refused an unreachable cluster, start-up included


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then closed)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def silent_server():
    """A loopback socket that accepts connections (the kernel does) and never says a word."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        yield s


@pytest.mark.parametrize("where", ["closed", "silent"])
def test_an_unreachable_cluster_fails_in_one_line_within_30_s(tmp_path, artifact, silent_server, where):
    """Before: still retrying after 400 s (a closed port), and ~20 lines of Ray's C++ logs."""
    import time

    pytest.importorskip("ray")
    port = closed_port() if where == "closed" else silent_server.getsockname()[1]
    clip = make_clip(tmp_path / "in.mp4", n=2, width=32, height=32)
    started = time.monotonic()
    try:
        result = pahs_run(clip, "-e", artifact, "-b", "onnxruntime", "-o", tmp_path / "o.mkv", "--cluster",
                          f"127.0.0.1:{port}", timeout=int(CONNECT_LIMIT * 3))  # fmt: skip
    except subprocess.TimeoutExpired:
        pytest.fail(f"pahs-run --cluster 127.0.0.1:{port} ({where}) still running after {CONNECT_LIMIT * 3:g} s")
    took = time.monotonic() - started
    line = one_error(result, f"--cluster 127.0.0.1:{port}", "nothing listening" if where == "closed" else "answer")
    assert took < CONNECT_LIMIT, (took, line)
    assert not [x for x in result.stderr.splitlines() if x.startswith("[")], result.stderr  # no Ray C++ log lines


def test_sigterm_while_connecting_to_a_cluster_exits_143(tmp_path, artifact, silent_server):
    """Before: SIGTERM took 37 s, with no pahs message."""
    import signal

    pytest.importorskip("ray")
    clip = make_clip(tmp_path / "in.mp4", n=2, width=32, height=32)
    port = silent_server.getsockname()[1]
    run = Watched(RUN, clip, "-e", artifact, "-b", "onnxruntime", "-o", tmp_path / "o.mkv", "--cluster",
                  f"127.0.0.1:{port}")  # fmt: skip
    silent_server.settimeout(120)
    connection, _ = silent_server.accept()  # pahs-run is connecting now
    with connection:
        status, took, err = run.stop(signal.SIGTERM)
    assert status == 143 and took < 5, (status, took, err)
    assert err.count("pahs-run: interrupted (SIGTERM)") == 1 and "Traceback" not in err, err


def test_ray_init_that_never_returns_is_bounded(monkeypatch):
    """Past the address check, ray.init itself is waited for only until the deadline (Ray's own connect retries
    for minutes), from a thread: the main thread keeps checking for signals."""
    import threading
    import time

    from pahs_export.errors import PahsError
    from runtime import cluster

    never = threading.Event()

    class HangingRay:
        def is_initialized(self) -> bool:
            return False

        def init(self, **kwargs) -> None:
            never.wait(60)

    monkeypatch.setattr(cluster, "CONNECT_SECONDS", 1.0)
    monkeypatch.setattr(cluster, "probe_address", lambda host, port, deadline: None)
    started = time.monotonic()
    with pytest.raises(PahsError, match=r"at --cluster head:6379, found no answer from Ray within 1 s"):
        cluster._connect(HangingRay(), cluster.ClusterOptions(address="head:6379"))
    never.set()
    assert time.monotonic() - started < 5


# ------------------------------------------------------------------- 4. concurrent first uses on an empty cache


@pytest.mark.integration
@pytest.mark.parametrize("round_", [1, 2, 3])
def test_four_first_uses_at_once_on_an_empty_cache_all_succeed_alike(tmp_path, round_):
    """Before: 1-3 of 4 succeeded; the others died of SIGBUS (a 0-byte hidden partial left) or OpenVINO's
    "cannot set permissions ... .blob" traceback. Four `pahs-run` of the default weights on OpenVINO at once,
    each exporting or waiting for the export, then compiling or loading the compiled models."""
    import os

    clip = make_clip(tmp_path / "in.mp4", n=4, width=32, height=32)
    env = {**os.environ, "PAHS_CACHE": str(tmp_path / "cache")}
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", RUN, str(clip), "-b", "openvino", "-o", str(tmp_path / f"out{i}.y4m"), "-q"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for i in range(4)
    ]
    results = [(run.wait(timeout=600), run.communicate()[1]) for run in runs]
    assert [status for status, _ in results] == [0] * 4, results
    assert all("Traceback" not in err and "error" not in err for _, err in results), results
    outputs = [(tmp_path / f"out{i}.y4m").read_bytes() for i in range(4)]
    assert all(out == outputs[0] for out in outputs) and len(outputs[0]) > 0
    assert hidden_leftovers(tmp_path) == [], hidden_leftovers(tmp_path)


def test_the_cache_lock_takes_turns_and_a_signal_ends_the_wait(tmp_path):
    """pahs_export.atomic.exclusive: a second holder waits (told once) until the first leaves; a termination
    signal ends a wait (flock locks conflict between two opens of the file, in one process too)."""
    import fcntl
    import os
    import signal
    import threading
    import time

    from pahs_export.atomic import exclusive
    from pahs_export.signals import Interrupted, termination_handlers

    lock, told, order = tmp_path / "locks" / "entry.lock", [], []

    def second() -> None:
        with exclusive(lock, waiting=lambda: told.append(1)):
            order.append("second")

    with exclusive(lock) as held:
        assert held
        thread = threading.Thread(target=second)
        thread.start()
        time.sleep(0.5)
        order.append("first")
    thread.join(10)
    assert order == ["first", "second"] and told == [1]
    fd = os.open(lock, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)  # held elsewhere, for good
    try:
        with termination_handlers(), pytest.raises(Interrupted):
            os.kill(os.getpid(), signal.SIGTERM)
            with exclusive(lock):
                pytest.fail("the lock was taken while another held it")
    finally:
        os.close(fd)
