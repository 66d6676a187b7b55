"""`pahs-run` in pipes and on URLs, through real subprocesses: FFmpeg's own program (Debian's ffmpeg) on either
side, a local HTTP server, standard output carrying nothing but the stream, one-line failures mid-stream."""

from __future__ import annotations

import functools
import http.server
import io
import json
import shutil
import subprocess
import sys
import threading

import av
import numpy as np
import pytest
from conftest import make_video

from runtime.constants import default_onnx_backend

pytestmark = pytest.mark.integration  # integration tier: pahs-run in subprocesses, between pipes and FFmpeg's program

RUN = "import sys; from pahs.cli.run import main; sys.argv[0] = 'pahs-run'; sys.exit(main())"
PAHS_RUN = f"{sys.executable} -c {RUN!r}"
needs_ffmpeg = pytest.mark.skipif(
    shutil.which("ffmpeg") is None, reason="needs the ffmpeg program: apt-get install ffmpeg (CI installs it)"
)


def pahs_run(*args: str, stdin: bytes | None = None, timeout: int = 300) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-c", RUN, *args], input=stdin, capture_output=True, timeout=timeout, check=False
    )


def decoded(source) -> list[np.ndarray]:
    """Every frame of a file or bytes, as decoded RGB (uint8)."""
    with av.open(source) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def one_line_error(result: subprocess.CompletedProcess[bytes], *fragments: str) -> str:
    err = result.stderr.decode()
    assert result.returncode != 0, err
    lines = [line for line in err.strip().splitlines() if line.startswith("pahs-run: error")]
    assert len(lines) == 1 and "Traceback" not in err, err
    for f in fragments:
        assert f in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_video(tmp_path_factory.mktemp("pipes") / "in.mp4", n=7, width=96, height=64, audio=True)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, clip, artifact):
    """The file-to-file run every piped run must reproduce exactly (y4m output: raw, no encoder)."""
    out = tmp_path_factory.mktemp("ref") / "ref.y4m"
    result = pahs_run(str(clip), "-e", str(artifact), "-o", str(out), "-q")
    assert result.returncode == 0, result.stderr.decode()
    return decoded(str(out))


@needs_ffmpeg
def test_ffmpeg_pipe_through_pahs_run(tmp_path, clip, artifact, reference):
    """ffmpeg -f yuv4mpegpipe - | pahs-run - -o - --format y4m | ffmpeg -i - out.mkv: the frames of the file run."""
    out = tmp_path / "out.mkv"
    pipeline = (
        f"ffmpeg -v error -nostdin -i {clip} -f yuv4mpegpipe - "
        f"| {PAHS_RUN} - -o - --format y4m -e {artifact} "
        f"| ffmpeg -v error -f yuv4mpegpipe -i - -c:v ffv1 {out}"
    )
    result = subprocess.run(["bash", "-o", "pipefail", "-c", pipeline], capture_output=True, timeout=300)
    assert result.returncode == 0, result.stderr.decode()
    got = decoded(str(out))
    assert len(got) == len(reference) == 7
    assert all(np.array_equal(a, b) for a, b in zip(got, reference, strict=True))
    assert "pahs-run:" in result.stderr.decode()  # its messages went to stderr, not into the stream


def test_stdout_carries_only_the_stream(clip, artifact, reference):
    result = pahs_run(str(clip), "-e", str(artifact), "-o", "-", "--format", "y4m")  # not quiet: messages too
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.startswith(b"YUV4MPEG2 W96 H64 ")
    got = decoded(io.BytesIO(result.stdout))
    assert all(np.array_equal(a, b) for a, b in zip(got, reference, strict=True)) and len(got) == 7
    assert b"wrote standard output: 7 frames" in result.stderr
    assert b"\x1b[" not in result.stderr and b"\r" not in result.stderr  # no progress bars into a log


def test_progress_bars_only_on_a_terminal(tmp_path, clip, artifact):
    """stderr on a terminal (a pty here) gets the bars; a pipe gets the summary line alone (above)."""
    import fcntl
    import os
    import struct
    import termios

    main, child = os.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a terminal has a width
    proc = subprocess.Popen(
        [sys.executable, "-c", RUN, str(clip), "-e", str(artifact), "-o", str(tmp_path / "o.mkv")],
        stdout=subprocess.DEVNULL,
        stderr=child,
    )
    os.close(child)
    seen = b""
    while True:
        try:
            data = os.read(main, 4096)
        except OSError:  # the child closed its end
            break
        if not data:
            break
        seen += data
    os.close(main)
    assert proc.wait(timeout=120) == 0, seen.decode(errors="replace")
    assert b"restore:" in seen and b"frame/s" in seen and b"wrote " in seen


@pytest.mark.parametrize("fmt", ["nut", "matroska"])
def test_stdin_containers(tmp_path, clip, artifact, reference, fmt):
    """Standard input in other containers FFmpeg reads from pipes (rawvideo inside, so frames are exact)."""
    data = tmp_path / f"in.{fmt}"
    with av.open(str(clip)) as src, av.open(str(data), "w", format=fmt) as dst:
        s = dst.add_stream("ffv1", rate=24)
        s.width, s.height, s.pix_fmt = 96, 64, "yuv420p"
        for frame in src.decode(video=0):
            for p in s.encode(frame):
                dst.mux(p)
        for p in s.encode():
            dst.mux(p)
    result = pahs_run("-", "-e", str(artifact), "-o", "-", "-q", stdin=data.read_bytes())
    assert result.returncode == 0, result.stderr.decode()
    got = decoded(io.BytesIO(result.stdout))
    assert len(got) == 7 and all(np.array_equal(a, b) for a, b in zip(got, reference, strict=True))


def test_stdin_lookahead_all_is_read_once(tmp_path, clip, artifact):
    """A stream cannot be read twice: --lookahead all restores it through the spill, as it does a file."""
    y4m = tmp_path / "in.y4m"
    assert pahs_run(str(clip), "-e", str(artifact), "-o", str(y4m), "-q", "--lookahead", "0").returncode == 0
    raw = y4m.read_bytes()
    from_file = pahs_run(str(y4m), "-e", str(artifact), "-o", "-", "-q", "--lookahead", "all")
    from_pipe = pahs_run("-", "-e", str(artifact), "-o", "-", "-q", "--lookahead", "all", stdin=raw)
    assert from_file.returncode == 0 and from_pipe.returncode == 0, from_pipe.stderr.decode()
    assert from_pipe.stdout == from_file.stdout and from_pipe.stdout.count(b"FRAME") == 7


@pytest.fixture
def http_root(tmp_path):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *a, **k: None  # type: ignore[method-assign]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield tmp_path, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_url_is_passed_to_ffmpeg_unchanged(http_root, clip, artifact, reference):
    root, base = http_root
    shutil.copy(clip, root / "clip 1.mp4")
    out = root / "out.y4m"
    result = pahs_run(f"{base}/clip%201.mp4", "-e", str(artifact), "-o", str(out), "-q")
    assert result.returncode == 0, result.stderr.decode()
    got = decoded(str(out))
    assert len(got) == 7 and all(np.array_equal(a, b) for a, b in zip(got, reference, strict=True))
    missing = pahs_run(f"{base}/nothing.mp4", "-e", str(artifact), "-o", str(root / "x.y4m"), "-q")
    one_line_error(missing, f"{base}/nothing.mp4")  # the URL as given, not mangled into http:/...


def test_url_default_output_name(http_root, clip, artifact, monkeypatch):
    root, base = http_root
    shutil.copy(clip, root / "clip.mp4")
    work = root / "work"
    work.mkdir()
    result = subprocess.run(
        [sys.executable, "-c", RUN, f"{base}/clip.mp4", "-e", str(artifact), "-q"], capture_output=True, cwd=work
    )
    assert result.returncode == 0, result.stderr.decode()
    assert [p.name for p in work.iterdir()] == ["clip.deblurred.mp4"]


def test_a_closed_pipe_stops_the_run_with_one_line(clip, artifact):
    """The reader of standard output goes away after a few bytes: pahs-run stops, one line, non-zero."""
    proc = subprocess.Popen(
        [sys.executable, "-c", RUN, str(clip), "-e", str(artifact), "-o", "-", "-q"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.read(100)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) != 0
    lines = [line for line in err.strip().splitlines() if line and not line.startswith("pahs-run: warning")]
    assert len(lines) == 1 and lines[0].startswith("pahs-run: error") and "Traceback" not in err, err


def test_stream_input_refusals(clip, artifact):
    data = clip.read_bytes()
    one_line_error(pahs_run("-", "-e", str(artifact), "-q", stdin=data), "expected -o with standard input")
    one_line_error(
        pahs_run("-", "-e", str(artifact), "--verify", "2", "-o", "x.mp4", stdin=data), "read once", "save it"
    )
    one_line_error(pahs_run("-", "-e", str(artifact), "-o", "-", "-q", stdin=b""), "standard input")
    one_line_error(pahs_run(str(clip), "-e", str(artifact), "-o", "-", "--verify", "2"), "--verify", "-o -")


def test_json_summary(tmp_path, clip, artifact):
    out, summary = tmp_path / "out.mkv", tmp_path / "run.json"
    args = ["-o", str(out), "-q", "--json", str(summary), "--verify", "3", "--threads", "1"]
    result = pahs_run(str(clip), "-e", str(artifact), *args)
    assert result.returncode == 0, result.stderr.decode()
    s = json.loads(summary.read_text())
    assert (s["status"], s["frames"], s["width"], s["height"]) == ("ok", 7, 96, 64)
    assert s["backend"] == default_onnx_backend() and s["threads"] == 1
    assert s["output"] == str(out) and s["precision"] == "fp32" and s["lookahead"] == 19
    assert s["verify"]["frames"] == 3 and s["verify"]["passed"] and len(s["verify"]["per_frame"]) == 3
    assert 0 < s["seconds"]["first_frame"] <= s["seconds"]["restore"] <= s["seconds"]["total"]
    assert s["frames_per_second"] > 0
    failed = pahs_run(str(tmp_path / "none.mp4"), "-e", str(artifact), "-q", "--json", str(summary), "--overwrite")
    one_line_error(failed, "none.mp4")
    s = json.loads(summary.read_text())
    assert s["status"] == "error" and "none.mp4" in s["error"]


def test_codec_pixel_format_and_fps(tmp_path, clip, artifact):
    out = tmp_path / "out.mkv"
    args = ["-e", str(artifact), "-q", "--codec", "libx265", "--pix-fmt", "yuv420p10le", "--fps", "50"]
    result = pahs_run(str(clip), "-o", str(out), *args)
    assert result.returncode == 0, result.stderr.decode()
    with av.open(str(out)) as c:
        s = c.streams.video[0]
        frames = list(c.decode(s))
        assert (s.codec_context.name, s.codec_context.pix_fmt, len(frames)) == ("hevc", "yuv420p10le", 7)
        assert round(float(s.average_rate)) == 50
    bad = pahs_run(str(clip), "-o", str(tmp_path / "x.mp4"), "-e", str(artifact), "-q", "--codec", "png")
    one_line_error(bad, "png")


@pytest.mark.parametrize("fmt", ["nut", "matroska", "rawvideo"])
def test_other_stdout_formats(clip, artifact, reference, fmt):
    """`-o - --format nut|matroska|rawvideo`: a stream of the 7 frames on standard output. nut carries the same
    raw yuv420p frames as y4m (equal to the reference); matroska H.264 (lossy: close to it); rawvideo bare
    RGB24 frames, no container (the restored frames before any YUV conversion: close to it)."""
    result = pahs_run(str(clip), "-e", str(artifact), "-o", "-", "--format", fmt, "-q")
    assert result.returncode == 0, result.stderr.decode()
    # -q: nothing on stderr but a warning when the format drops the clip's audio (rawvideo has none)
    warned = [b"pahs-run: warning: rawvideo carries no audio"] if fmt == "rawvideo" else []
    assert [line[:44] for line in result.stderr.splitlines()] == warned, result.stderr.decode()
    if fmt == "rawvideo":
        assert len(result.stdout) == 7 * 64 * 96 * 3
        got = list(np.frombuffer(result.stdout, np.uint8).reshape(7, 64, 96, 3))
    else:
        got = decoded(io.BytesIO(result.stdout))
    assert len(got) == 7
    worst = max(float(np.abs(a.astype(int) - b.astype(int)).mean()) for a, b in zip(got, reference, strict=True))
    # matroska: H.264 at crf 18; rawvideo: full-resolution RGB against the reference's 4:2:0 chroma (the test
    # clip's colour noise differs by about 4 levels on average)
    assert worst == 0 if fmt == "nut" else worst < {"matroska": 3, "rawvideo": 6}[fmt], worst


def test_encoder_preset_and_crf_reach_x264(tmp_path, clip, artifact):
    """--encoder-preset and --crf are x264's own settings: its options string in the stream says so."""
    out = tmp_path / "out.mp4"
    result = pahs_run(
        str(clip), "-e", str(artifact), "-o", str(out), "-q", "--encoder-preset", "ultrafast", "--crf", "40"
    )
    assert result.returncode == 0, result.stderr.decode()
    with av.open(str(out)) as c:
        first = bytes(next(c.demux(video=0)))
    options = first[first.index(b"options: ") :].split(b"\x00")[0].decode(errors="replace")
    assert "crf=40.0" in options and "subme=0" in options, options  # subme=0: ultrafast's, medium has 7
