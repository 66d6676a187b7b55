"""Decoding from standard input, pipes and URLs (runtime/io/reading.py): what each source is, that a stream gives
the frames its bytes give from a file, is read once, and that what a user can get wrong is one line.

Standard input is read by a real subprocess for each container; the error and damage cases point the reader's
standard input descriptor at a pipe of the test's own (``reading._STDIN_FD``), which is the same code path
without a second interpreter (whose torch import costs seconds)."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from io_clips import make_clip, raises_one_line, read_all

from runtime.io import open_input, reading

ROOT = Path(__file__).resolve().parents[3]
posix_only = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs and ptys are POSIX")

CHILD = """
import hashlib, json
from runtime.io import open_input
with open_input("-") as r:
    frames = list(r)
h = hashlib.sha256()
for f in frames:
    h.update(f.image.tobytes())
print(json.dumps({"frames": len(frames), "pts": [f.pts for f in frames], "sha": h.hexdigest(),
                  "is_stream": r.info.is_stream, "name": r.name, "warnings": r.warnings}))
"""


def clip_bytes(fmt: str, codec: str = "libx264", **kw) -> bytes:
    buf = io.BytesIO()
    make_clip(buf, fmt=fmt, codec=codec, **kw)
    return buf.getvalue()


def summary(frames: list) -> dict:
    h = hashlib.sha256()
    for f in frames:
        h.update(f.image.tobytes())
    return {"frames": len(frames), "pts": [f.pts for f in frames], "sha": h.hexdigest()}


def feed(data: bytes) -> int:
    """A pipe's read end; a thread writes ``data`` (more than the pipe holds, if it likes) and closes it."""
    r, w = os.pipe()

    def write() -> None:
        try:
            with open(w, "wb") as f:
                f.write(data)
        except BrokenPipeError:  # the reader stopped early (a refused input) and the test closed its end
            pass

    threading.Thread(target=write, daemon=True).start()
    return r


@pytest.fixture
def stdin_fd(monkeypatch):
    """Point the reader's standard input at a descriptor: ``stdin_fd(fd)``; closes it afterwards (which also
    checks that FFmpeg did not close it: the pipe protocol must leave standard input alone)."""
    fds: list[int] = []

    def use(fd: int) -> None:
        fds.append(fd)
        monkeypatch.setattr(reading, "_STDIN_FD", fd)

    yield use
    for fd in fds:
        os.close(fd)


@pytest.fixture
def http_root(tmp_path) -> Iterator[tuple[str, Path]]:
    """(base URL, folder it serves) of a local HTTP server, shut down after the test."""
    root = tmp_path / "www"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def tcp_server(data: bytes, hold: threading.Event | None = None) -> tuple[str, socket.socket]:
    """A tcp:// URL whose first connection gets ``data``; then closed, or held open until ``hold`` is set."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.sendall(data)
            if hold is not None:
                hold.wait(30)

    threading.Thread(target=serve, daemon=True).start()
    return f"tcp://127.0.0.1:{listener.getsockname()[1]}", listener


# -- what a source is -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "kind"),
    [
        ("-", "stdin"),
        ("pipe:", "stdin"),
        ("pipe:0", "stdin"),
        ("/dev/stdin", "stdin"),
        (Path("-"), "stdin"),
        ("https://example.com/a b.mp4?x=1", "url"),
        ("rtsp://cam.local:554/stream", "url"),
        ("srt://host:9000", "url"),
        ("file:/tmp/x.mkv", "url"),
        ("file:///tmp/x.mkv", "url"),
        ("pipe:3", "url"),
        ("C:\\videos\\x.mp4", "path"),  # a drive letter
        ("c:/videos/x.mp4", "path"),
        ("clip:1.mp4", "path"),  # a colon in a file name, no "//"
        ("./-", "path"),
        ("videos/x.mp4", "path"),
        (Path("https://example.com/x.mp4"), "path"),  # Path made it https:/example.com/x.mp4: URLs are strs
    ],
)
def test_classify(source, kind):
    assert reading.source_kind(source) == kind


# -- standard input ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "codec", "suffix"),
    [("yuv4mpegpipe", "rawvideo", ".y4m"), ("matroska", "libx264", ".mkv"), ("mpegts", "libx264", ".ts")],
)
def test_stdin_gives_the_frames_of_the_file(tmp_path, fmt, codec, suffix):
    data = clip_bytes(fmt, codec, n=8)
    (tmp_path / f"clip{suffix}").write_bytes(data)
    info, frames = read_all(tmp_path / f"clip{suffix}")
    assert info.is_stream is False
    run = subprocess.run(
        [sys.executable, "-c", CHILD], input=data, capture_output=True, cwd=ROOT, timeout=120, check=False
    )
    assert run.returncode == 0, run.stderr.decode()[-2000:]
    got = json.loads(run.stdout.decode().splitlines()[-1])
    assert got == {**summary(frames), "is_stream": True, "name": "standard input", "warnings": []}


def test_stdin_redirected_from_a_file_can_seek(tmp_path, stdin_fd):
    """``pahs-run - < clip.mp4``: an mp4 with its index at the end needs seeking, which a pipe cannot do."""
    src = tmp_path / "clip.mp4"
    noise = [np.random.default_rng(i).integers(0, 256, (48, 64, 3), dtype=np.uint8) for i in range(8)]
    make_clip(src, codec="png", pix_fmt="rgb24", frames=noise)  # index (moov) last, after 75 kB of frames
    _, frames = read_all(src)
    stdin_fd(feed(src.read_bytes()))
    with raises_one_line("found none .*; check the input .an mp4 or mov streams only with its index first"):
        open_input("-")
    stdin_fd(os.open(src, os.O_RDONLY))
    info, got = read_all("-")
    assert summary(got) == summary(frames) and info.is_stream


@posix_only
def test_terminal_or_closed_stdin_is_refused(stdin_fd, monkeypatch):
    master, slave = os.openpty()
    stdin_fd(master)  # closed after the test, like the terminal itself (closing it first ends the terminal)
    stdin_fd(slave)
    with raises_one_line("expected a video piped into standard input, found a terminal; pipe one in"):
        open_input("-")
    r, w = os.pipe()
    os.close(r)
    os.close(w)
    monkeypatch.setattr(reading, "_STDIN_FD", r)
    with raises_one_line("expected a video piped into standard input, found it closed"):
        open_input("-")


def test_nothing_or_no_video_on_stdin(stdin_fd):
    for data in (b"", b"not a video\n" * 50):
        stdin_fd(feed(data))
        with raises_one_line(r"expected a video on standard input, found nothing FFmpeg can read \(.+\); pipe"):
            open_input("-")


def test_damaged_stream_on_stdin_is_decoded_once(stdin_fd, monkeypatch):
    """A truncated Matroska stream: what decodes is restored with the usual warning; nothing is opened twice."""
    import av

    data = clip_bytes("matroska", n=8, fps=1)  # 8 s: the cut falls seconds short of the listed duration
    opens: list[object] = []
    real_open = av.open
    monkeypatch.setattr(av, "open", lambda *a, **k: opens.append(a[0]) or real_open(*a, **k))
    stdin_fd(feed(data[: len(data) // 2]))
    with open_input("-") as r, pytest.warns(UserWarning, match=r"standard input: .*restored the \d+ frames.*cut short"):
        frames = list(r)
    assert 0 < len(frames) < 8 and r.info.frames == len(frames) and r.info.is_stream
    assert len(opens) == 1


# -- URLs --------------------------------------------------------------------------------------------------------------


def test_http_url_gives_the_frames_of_the_file(http_root):
    base, root = http_root
    (root / "clip.mkv").write_bytes(clip_bytes("matroska", n=8))
    _, frames = read_all(root / "clip.mkv")
    url = f"{base}/clip.mkv"
    with open_input(url) as r:
        got = list(r)
    assert summary(got) == summary(frames)
    assert (r.name, r.path, r.info.is_stream) == (url, None, False)  # http can be fetched again


def test_http_not_found_names_the_url(http_root):
    base, _ = http_root
    url = f"{base}/missing.mkv"
    with raises_one_line(rf"at {re.escape(url)}, found an address it cannot open \(.*404.*\); check the URL"):
        open_input(url)


def test_silent_server_times_out(monkeypatch):
    monkeypatch.setattr(reading, "NETWORK_TIMEOUT", 1.0)
    with socket.create_server(("127.0.0.1", 0)) as listener:  # accepts (the kernel does), never answers
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/clip.mkv"
        start = time.monotonic()
        with raises_one_line(rf"expected an answer from {re.escape(url)} within 1 s, found none"):
            open_input(url)
    assert time.monotonic() - start < 10


def test_file_url(tmp_path):
    src = tmp_path / "clip.mkv"
    make_clip(src, n=4)
    _, frames = read_all(src)
    for url in ("file:" + str(src), src.as_uri()):
        info, got = read_all(url)
        assert summary(got) == summary(frames) and not info.is_stream
    with raises_one_line("found an address it cannot open"):  # no existence check of our own: FFmpeg's reason
        open_input("file:" + str(tmp_path / "missing.mkv"))


def test_live_protocol_is_a_stream():
    data = clip_bytes("mpegts", n=6)
    url, listener = tcp_server(data)
    with listener:
        info, frames = read_all(url)
    assert len(frames) == 6 and info.is_stream


def test_live_stream_that_stalls_ends_with_a_warning(monkeypatch):
    """A server that stops sending mid-stream: reading ends after the timeout with what arrived, no hang."""
    monkeypatch.setattr(reading, "NETWORK_TIMEOUT", 1.0)
    data = clip_bytes("mpegts", n=8)
    hold = threading.Event()
    url, listener = tcp_server(data[: len(data) * 3 // 4], hold)
    try:
        with listener, open_input(url) as r, pytest.warns(UserWarning, match="reading stopped: no data for 1 s"):
            frames = list(r)
    finally:
        hold.set()
    assert 0 < len(frames) < 8


# -- local pipes -------------------------------------------------------------------------------------------------------


@posix_only
def test_fifo_is_read_once(tmp_path):
    data = clip_bytes("matroska", n=6)
    fifo = tmp_path / "in.fifo"
    os.mkfifo(fifo)

    def write() -> None:
        with open(fifo, "wb") as f:  # blocks until the reader opens the other end
            f.write(data)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    with open_input(fifo) as r:
        frames = list(r)
    writer.join(5)
    assert len(frames) == 6 and r.info.is_stream and r.path == fifo and r.name == str(fifo)
