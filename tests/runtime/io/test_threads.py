"""Threads and signals (runtime/io/threads.py): decoding ahead, encoding behind, SIGTERM aborting the output."""

from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import pytest
from io_clips import mae, make_clip, read_all

from runtime.io import (
    BackgroundWriter,
    Interrupted,
    Prefetcher,
    VideoInfo,
    check_interrupted,
    interrupted,
    open_input,
    open_output,
    termination_handlers,
)


def test_prefetcher_keeps_order_and_raises():
    assert list(Prefetcher(range(50), maxsize=3)) == list(range(50))

    def failing():
        yield 1
        raise ValueError("decoder broke")

    got = []
    with pytest.raises(ValueError, match="decoder broke"):
        for x in Prefetcher(failing()):
            got.append(x)
    assert got == [1]
    closed = threading.Event()

    def endless():
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            closed.set()

    p = Prefetcher(endless(), maxsize=2)
    for x in p:
        if x == 5:
            break
    assert closed.is_set() and not p._thread.is_alive()  # stopped, joined, source closed


def test_prefetched_reader_closes_cleanly(tmp_path):
    src = tmp_path / "in.mp4"
    make_clip(src, n=8)
    with open_input(src) as r:
        frames = list(Prefetcher(r, maxsize=2))
    assert [f.index for f in frames] == list(range(8))
    with open_input(src) as r:
        p = Prefetcher(r, maxsize=1)
        next(iter(p))
    p.close()  # the reader was closed under the thread: decoding just stops


def test_background_writer(tmp_path):
    src = tmp_path / "in.mp4"
    make_clip(src, n=4)
    info, frames = read_all(src)
    with BackgroundWriter(open_output(tmp_path / "bg.mp4", info, source=src), maxsize=2) as bw:
        for f in frames:
            bw.write(f.image, f.pts)
    _, back = read_all(tmp_path / "bg.mp4")
    assert [f.pts for f in back] == [f.pts for f in frames] and mae(frames, back) < 3 / 255
    bad = BackgroundWriter(open_output(tmp_path / "bad.mp4", info, source=src), maxsize=2)
    bad.write(np.zeros((3, 3, 3), np.float32))  # the wrong size: the encoding thread fails
    with pytest.raises(ValueError, match=r"expected a \[48, 64, 3\] image"):
        for f in frames * 5:
            bad.write(f.image)
        bad.close()
    bad.abort()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bg.mp4", "in.mp4"]
    with pytest.raises(KeyboardInterrupt), BackgroundWriter(open_output(tmp_path / "int.mp4", info)) as bw:
        bw.write(frames[0].image)
        raise KeyboardInterrupt
    assert not (tmp_path / "int.mp4").exists()


def test_sigterm_aborts_the_output(tmp_path):
    """The handler only sets a flag (raising at an arbitrary point could hang a queue); the next safe point
    raises Interrupted, and the output is aborted."""
    previous = signal.getsignal(signal.SIGTERM)
    info = VideoInfo(32, 32, None, None, None, 0, 8, None, False, False)
    with termination_handlers(), termination_handlers():  # nested: the inner block keeps the outer's flag
        with pytest.raises(Interrupted) as e, open_output(tmp_path / "o.mp4", info) as w:
            w.write(np.zeros((32, 32, 3), np.float32))
            os.kill(os.getpid(), signal.SIGTERM)
            deadline = time.monotonic() + 5
            while interrupted() is None and time.monotonic() < deadline:
                time.sleep(0.01)  # nothing is raised here: the handler returned
            check_interrupted()
        assert e.value.signum == signal.SIGTERM and interrupted() == signal.SIGTERM
        assert list(tmp_path.iterdir()) == []
    assert interrupted() is None and signal.getsignal(signal.SIGTERM) is previous  # cleared and restored
