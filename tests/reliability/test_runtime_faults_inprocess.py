"""The runtime's fault handling, piece by piece and in-process: disk errors as one line, publishing and
sweeping outputs, fsync, the interruption flag in the worker threads, the frame-size ceiling, refusals
before any work, truncated videos and streaming verification. The same behaviours in real processes, with
real signals and file-size limits: test_runtime_faults.py."""

from __future__ import annotations

import contextlib
import errno
import io
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image
from runtime_faults_helper import make_clip, make_folder

import pahs_export.atomic as files
import runtime.io.threads as threads
import runtime.pipeline as pipeline
from pahs.cli.common import entry_point, new_app
from pahs_export import PahsError, build_model, save_checkpoint
from pahs_export.atomic import AtomicOutput, disk_error, owner_tag, sweep_stale
from runtime.backends import Backend
from runtime.engines import open_engine
from runtime.io import (
    BackgroundWriter,
    Interrupted,
    Prefetcher,
    VideoInfo,
    open_input,
    open_output,
    termination_handlers,
)
from runtime.io.encoding import _PngSink
from runtime.pipeline import RunOptions, check_frame_size, run_video, verify_frames

QUIET = RunOptions(progress=False)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(4)
    return save_checkpoint(build_model("pahs-t"), tmp_path_factory.mktemp("ckpt") / "w.safetensors")


@pytest.fixture(scope="module")
def backend(checkpoint, tmp_path_factory) -> Backend:
    """ONNX Runtime on the checkpoint's export: on a busy 2-core machine it is far faster than torch here."""
    from pahs_export.onnx_export import artifact_from_model
    from pahs_export.weights import resolve_model

    model, source = resolve_model(checkpoint)
    return open_engine(artifact_from_model(model, tmp_path_factory.mktemp("onnx") / "art", source=source))


def one_line(error: BaseException | str, *fragments: str) -> str:
    text = str(error)
    assert "\n" not in text and text, text
    for f in fragments:
        assert f in text, text
    return text


def cli(args: list[str]) -> tuple[int, str, str]:
    from pahs.cli.run import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(args)
    return status, out.getvalue(), err.getvalue()


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


# -- disk errors ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "reason", "todo"),
    [
        (errno.ENOSPC, "the disk is full", "free space in /data"),
        (errno.EDQUOT, "quota", "free space in /data"),
        (errno.EFBIG, "file size limit", "free space in /data"),
        (errno.EROFS, "read-only", "choose another -o (a writable folder)"),
        (errno.EACCES, "permission denied", "choose another -o (a writable folder)"),
    ],
)
def test_disk_errors_are_one_line_with_what_to_do(code, reason, todo):
    e = OSError(code, os.strerror(code), "/data/x")
    one_line(disk_error(e, "the output out.mp4", "/data", "choose another -o"), "out.mp4", "/data", reason, todo)


def test_read_only_output_is_one_line_and_leaves_nothing(tmp_path, backend, monkeypatch):
    """EROFS/EACCES while writing frames (as root we cannot make a real one): one line naming the folder."""
    src = make_folder(tmp_path / "seq", n=3)

    def refuse(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(tmp_path / "x.png"))

    monkeypatch.setattr(_PngSink, "write", refuse)
    with pytest.raises(PahsError) as e:
        run_video(src, str(tmp_path / "out") + "/", backend, QUIET)
    one_line(e.value, "the output out", str(tmp_path), "read-only", "choose another -o")
    assert sorted(os.listdir(tmp_path)) == ["seq"]


def _tmpfs(path: Path, size: str) -> bool:
    path.mkdir()
    if os.geteuid() != 0:
        return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)]).returncode == 0


@pytest.fixture
def small_disk(tmp_path):
    """A real full disk: a 192 kB tmpfs (root only; CI without root skips, RLIMIT_FSIZE covers it there)."""
    disk = tmp_path / "disk"
    if not _tmpfs(disk, "192k"):
        pytest.skip("needs root and tmpfs to mount a small disk")
    yield disk
    if subprocess.run(["umount", str(disk)]).returncode != 0:  # busy: a descriptor leaked, which a test reports
        subprocess.run(["umount", "-l", str(disk)])


@pytest.fixture
def read_only_disk(tmp_path):
    """A read-only file system (root only: root writes through permissions, not through a read-only mount)."""
    disk = tmp_path / "ro"
    disk.mkdir()
    mount = ["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(disk)]
    if os.geteuid() != 0 or subprocess.run(mount).returncode != 0:
        pytest.skip("needs root and tmpfs to mount a read-only disk")
    yield disk
    subprocess.run(["umount", "-l", str(disk)])


def test_read_only_cache_and_output_are_one_line(read_only_disk, tmp_path, monkeypatch, backend):
    """EROFS where the default engine is cached on first use: one line naming the cache and PAHS_CACHE (not
    the "-o" of the artifact writer underneath); EROFS where the output goes: one line naming -o."""
    src = make_folder(tmp_path / "seq", n=2)
    monkeypatch.setenv("PAHS_CACHE", str(read_only_disk / "cache"))
    status, _, err = cli([str(src), "-o", str(tmp_path / "out.mp4"), "-q"])
    assert status == 2
    one_line(err.strip(), f"could not write the default engine in {read_only_disk / 'cache'}", "read-only",
             "set PAHS_CACHE to another folder")  # fmt: skip
    with pytest.raises(PahsError) as e:
        run_video(src, str(read_only_disk / "out.mp4"), backend, QUIET)
    one_line(e.value, f"{read_only_disk} is not writable", "choose another -o")
    assert sorted(os.listdir(tmp_path)) == ["ro", "seq"]


def test_real_full_disk_spill_and_output(small_disk, tmp_path, backend):
    """ENOSPC on a real (tmpfs) disk: the --lookahead all spill there used to SIGBUS (a sparse memory map).
    When the frame count is known the lack of room is found before any work; when it is not (Matroska lists
    none), the write that fails is one line too; a video output on a full disk as well. The disk is left as
    it was."""
    src = make_clip(tmp_path / "in.mp4", n=6, width=128, height=96)  # spill: 6 x 74 kB = 442 kB
    exact = RunOptions(progress=False, lookahead=None, spill_dir=small_disk)
    with pytest.raises(PahsError) as e:
        run_video(src, str(tmp_path / "out.mp4"), backend, exact)
    one_line(e.value, "expected 442 kB free for the --lookahead all spill of 6 frames", "found", "--spill-dir")
    mkv = make_clip(tmp_path / "in.mkv", n=6, width=128, height=96)
    with pytest.raises(PahsError) as e:
        run_video(mkv, str(tmp_path / "out.mp4"), backend, exact)
    one_line(e.value, "--lookahead all spill", str(small_disk), "the disk is full", "--spill-dir")
    assert os.listdir(small_disk) == []
    with open(small_disk / "filler", "wb", buffering=0) as f:  # fill the disk
        with contextlib.suppress(OSError):
            while True:
                f.write(b"\0" * 4096)
    with pytest.raises(PahsError) as e:
        run_video(src, str(small_disk / "out.mp4"), backend, QUIET)
    one_line(e.value, "the output out.mp4", str(small_disk), "the disk is full", "choose another -o")
    assert os.listdir(small_disk) == ["filler"] and sorted(os.listdir(tmp_path)) == ["disk", "in.mkv", "in.mp4"]


# -- publishing, sweeping, fsync -----------------------------------------------------------------------------------


def test_folder_replaces_folder_in_one_step(tmp_path, monkeypatch):
    """A PNG folder over an existing one is exchanged with it in one atomic step (no moment without a
    target, no .old-* left); where the exchange is not available, the fallback leaves nothing either."""
    target = tmp_path / "out"
    target.mkdir()
    (target / "f.png").write_bytes(b"0")
    used: list[bool] = []
    real = files.exchange
    monkeypatch.setattr(files, "exchange", lambda a, b: used.append(real(a, b)) or used[-1])
    for i, available in enumerate((True, False)):
        if not available:
            monkeypatch.setattr(files, "exchange", lambda a, b: False)
        with AtomicOutput(target, folder=True) as out:
            (out.tmp / "f.png").write_bytes(str(i + 1).encode())
        assert (target / "f.png").read_bytes() == str(i + 1).encode() and os.listdir(tmp_path) == ["out"]
    assert used == [True]


def test_crash_between_the_two_renames_is_repaired_by_the_sweep(tmp_path):
    """Where the exchange is not available, the old folder is moved aside first. A writer that dies between
    the two renames leaves the target missing; the next writer's sweep puts the old folder back (and drops
    the dead writer's partial)."""
    host = owner_tag().split("-")[1]
    pid = dead_pid()
    aside = tmp_path / f".out.old-{pid}-{host}-abc"
    aside.mkdir()
    (aside / "old").mkdir()
    (aside / "old" / "f.png").write_bytes(b"old")
    partial = tmp_path / f".out.partial-{pid}-{host}-def"
    partial.mkdir()
    swept = sweep_stale(tmp_path / "out")
    assert sorted(p.name for p in swept) == sorted([aside.name, partial.name])
    assert sorted(os.listdir(tmp_path)) == ["out"] and os.listdir(tmp_path / "out") == ["f.png"]


def test_sweep_keeps_live_writers_other_names_and_other_hosts(tmp_path):
    """Only this target's partials whose writer is dead on this host are removed."""
    host = owner_tag().split("-")[1]
    pid = dead_pid()
    names = {
        f".out.mp4.partial-{pid}-{host}-a.mp4": False,  # dead writer: swept
        f".out.mp4.partial-{os.getpid()}-{host}-b.mp4": True,  # live writer (us)
        f".out.mp4.partial-{pid}-000000-c.mp4": host != "000000",  # another host: its pid means nothing here
        f".other.mp4.partial-{pid}-{host}-d.mp4": True,  # another output's
        ".out.mp4.partial-e.mp4": True,  # written by an older pahs: nothing says its writer is gone
    }
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    with AtomicOutput(tmp_path / "out.mp4", folder=False) as out:
        out.tmp.write_bytes(b"new")
    kept = {n for n, keep in names.items() if keep}
    assert set(os.listdir(tmp_path)) == kept | {"out.mp4"}


def test_close_fsyncs_files_and_folders_before_the_rename(tmp_path, monkeypatch):
    synced: list[tuple[str, bool]] = []
    real = files.fsync_path

    def record(path, directory=False):
        synced.append((Path(path).name, Path(path).exists()))
        real(path, directory)

    monkeypatch.setattr(files, "fsync_path", record)
    with AtomicOutput(tmp_path / "a.mp4", folder=False) as out:
        out.tmp.write_bytes(b"video")
    assert synced[0] == (out.tmp.name, True) and synced[-1] == (tmp_path.name, True)  # the file, then the folder
    synced.clear()
    with AtomicOutput(tmp_path / "frames", folder=True) as out:
        (out.tmp / "1.png").write_bytes(b"1")
        (out.tmp / "2.png").write_bytes(b"2")
    assert sorted(n for n, _ in synced[:2]) == ["1.png", "2.png"] and synced[2] == (out.tmp.name, True)
    assert synced[-1][0] == tmp_path.name


# -- the interruption flag in the threads --------------------------------------------------------------------------


def raise_sigterm() -> None:
    os.kill(os.getpid(), signal.SIGTERM)
    deadline = time.monotonic() + 5
    while threads.interrupted() is None and time.monotonic() < deadline:
        time.sleep(0.005)


def test_flag_stops_prefetcher_and_writer_without_publishing(tmp_path):
    """After SIGTERM the prefetcher's consumer raises Interrupted at its next item, the encoding thread
    writes nothing more and close() raises instead of publishing a short output."""
    info = VideoInfo(32, 32, None, None, None, 0, 8, None, False, False)
    with termination_handlers():
        writer = BackgroundWriter(open_output(tmp_path / "o.mp4", info))
        writer.write(np.zeros((32, 32, 3), np.float32))
        source = Prefetcher(iter(range(10**9)), maxsize=2)
        consumed = 0
        with pytest.raises(Interrupted):
            for _ in source:
                consumed += 1
                if consumed == 3:
                    raise_sigterm()
        assert consumed == 3 and not source._thread.is_alive()
        with pytest.raises(Interrupted):
            writer.close()
    assert os.listdir(tmp_path) == []


def test_joins_are_bounded(tmp_path, monkeypatch):
    """A worker stuck inside a call (a stalled decoder or encoder) cannot hang the run's exit: the joins give
    up after JOIN_TIMEOUT and the output's files are removed without touching the busy encoder."""
    monkeypatch.setattr(threads, "JOIN_TIMEOUT", 0.3)
    stuck = threading.Event()

    def stalled():
        yield 1
        stuck.wait(30)  # a read that never returns
        yield 2

    p = Prefetcher(stalled())
    it = iter(p)
    assert next(it) == 1
    start = time.monotonic()
    assert p.close() is False and time.monotonic() - start < 2
    info = VideoInfo(32, 32, None, None, None, 0, 8, None, False, False)
    writer = open_output(str(tmp_path / "o") + "/", info)
    touched: list[str] = []
    writer._sink.write = lambda *a: stuck.wait(30)  # an encoder that never returns
    writer._sink.discard = lambda: touched.append("discard")
    bw = BackgroundWriter(writer)
    bw.write(np.zeros((32, 32, 3), np.float32))
    time.sleep(0.1)
    start = time.monotonic()
    bw.abort()
    assert time.monotonic() - start < 2 and touched == [] and os.listdir(tmp_path) == []
    stuck.set()


def test_entry_point_says_interrupted_and_which_signal():
    """Typer turned KeyboardInterrupt into a silent status 130; now one line says so, and an interruption
    carrying a signal number exits 128 + n."""
    app = new_app("test")

    @app.command()
    def go(signum: int = 0) -> None:
        if signum:
            raise Interrupted(signum)
        raise KeyboardInterrupt

    main = entry_point(app, "prog")
    for args, status, line in (([], 130, "prog: interrupted (SIGINT)"), (["--signum", "1"], 129, "(SIGHUP)")):
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            assert main(args) == status
        assert err.getvalue().strip().endswith(line) and len(err.getvalue().splitlines()) == 1


# -- refusals before any work --------------------------------------------------------------------------------------


def test_compare_on_the_output_is_refused(tmp_path, checkpoint):
    """--compare X -o X used to replace the restored video with the side-by-side, silently."""
    src = make_folder(tmp_path / "seq", n=2)
    status, _, err = cli([str(src), "-e", str(checkpoint), "-o", str(tmp_path / "x.mp4"), "--compare",
                          str(tmp_path / "x.mp4"), "-q"])  # fmt: skip
    assert status == 2
    one_line(err.strip(), "pahs-run: error: expected --compare and -o to name different outputs", "--compare")
    assert sorted(os.listdir(tmp_path)) == ["seq"]


@pytest.mark.parametrize(
    ("given", "found"), [(["--verify", "-5"], "found -5"), (["--verify", "0"], "found 0"), (["--verify=ab"], "'ab'")]
)
def test_verify_count_below_one_is_one_line(tmp_path, checkpoint, given, found):
    """--verify -5 (and 0, and a word) is one line; -1 no longer means "all" (it was the internal marker)."""
    src = make_folder(tmp_path / "seq", n=2)
    status, out, err = cli([str(src), "-e", str(checkpoint), *given, "-q"])
    assert status == 2 and out == ""
    one_line(err.strip(), "pahs-run: error: expected --verify N", found, "--verify alone")


def test_max_pixels_option_and_memory_ceiling(tmp_path, backend, monkeypatch):
    """--max-pixels refuses larger frames in one line; without it the ceiling comes from free memory and the
    run's options (here 16 GB: 1080p passes at the defaults, 6000x6000 does not, and the line says what
    to pass to try anyway)."""
    info = VideoInfo(48, 32, 2, None, None, 0, 8, None, False, True)
    with pytest.raises(PahsError) as e:
        check_frame_size(info, backend, RunOptions(max_pixels=1000))
    one_line(e.value, "at most 1,000 pixels (--max-pixels)", "found 48x32 (1,536 pixels)")
    monkeypatch.setattr(pipeline, "available_memory", lambda pool: 16.0 * 2**30)
    check_frame_size(VideoInfo(1920, 1080, 2, None, None, 0, 8, None, False, True), backend, QUIET)
    huge = VideoInfo(6000, 6000, 2, None, None, 0, 8, None, False, True)
    with pytest.raises(PahsError) as e:
        check_frame_size(huge, backend, QUIET)
    one_line(e.value, "16.0 GB of free host memory", "found 6000x6000", "--max-pixels 36000000 to try anyway")
    small, big = (pipeline.default_max_pixels(backend, RunOptions(chunk=k, lookahead=n)) for k, n in ((4, 2), (32, 19)))
    assert small > big  # fewer frames held, larger frames allowed


def test_6000x6000_frame_is_refused_before_inference(tmp_path, backend):
    """The audit's case: a 6000x6000 frame used to fail inside ONNX Runtime's allocator. With this machine's
    real free memory (any machine with less than ~500 GB) it is refused before any output exists."""
    (tmp_path / "seq").mkdir()
    Image.fromarray(np.zeros((6000, 6000, 3), np.uint8)).save(tmp_path / "seq" / "f1.png", compress_level=1)
    with pytest.raises(PahsError) as e:
        run_video(tmp_path / "seq", str(tmp_path / "out.mp4"), backend, QUIET)
    one_line(e.value, "found 6000x6000 (36,000,000 pixels)", "--max-pixels 36000000")
    assert sorted(os.listdir(tmp_path)) == ["seq"]


# -- input and verification ----------------------------------------------------------------------------------------


def single_threaded_count(path: Path) -> int:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        s.thread_type = "NONE"
        n = 0
        for p in c.demux(s):
            with contextlib.suppress(av.error.FFmpegError):
                n += len(p.decode())
        return n


@pytest.mark.parametrize(("n", "width", "height"), [(12, 48, 32), (16, 128, 96), (24, 64, 48)])
def test_truncated_mp4_restores_the_frames_that_decode(tmp_path, backend, n, width, height):
    """An mp4 cut to 75%: frame-threaded decoding lost the frames in flight (here 0 of 1, 0 of 2 and 7 of 9
    that decode single-threaded: the first two restored nothing); the reader now decodes a damaged file
    again single-threaded, and every frame that decodes is restored."""
    data = make_clip(tmp_path / "full.mp4", n=n, width=width, height=height, faststart=True).read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) * 3 // 4])
    expected = single_threaded_count(cut)
    assert expected >= 1
    with pytest.warns(UserWarning, match="restored the"), open_input(cut) as r:
        assert [f.index for f in r] == list(range(expected))
    with pytest.warns(UserWarning):
        summary = run_video(cut, str(tmp_path / "out.mp4"), backend, QUIET)
    assert summary.frames == expected


def test_verify_streams_in_bounded_memory(tmp_path, backend, monkeypatch):
    """Verification decodes and restores as it compares: when the first comparison comes out, each side has
    read chunk + lookahead frames, not the whole video (a bare --verify used to hold every frame)."""
    src = make_clip(tmp_path / "in.mp4", n=30)
    readers: list[_Counting] = []
    real_open = pipeline.open_input

    def counting(path):
        readers.append(_Counting(real_open(path)))
        return readers[-1]

    monkeypatch.setattr(pipeline, "open_input", counting)
    gen = verify_frames(src, backend, backend, RunOptions(progress=False, lookahead=2, chunk=3))
    index, got, want = next(gen)
    assert index == 0 and [r.read for r in readers] == [5, 5] and torch.equal(got, want)
    rest = list(gen)
    assert [i for i, _, _ in rest] == list(range(1, 30)) and [r.read for r in readers] == [30, 30]


class _Counting:
    """A frame reader that counts the frames taken from it."""

    def __init__(self, reader) -> None:
        self.reader, self.info, self.read = reader, reader.info, 0

    def __iter__(self):
        for frame in self.reader:
            self.read += 1
            yield frame

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.reader.close()
