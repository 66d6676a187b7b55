"""A fork server for the runtime fault tests (test_runtime_faults*.py): real `pahs-run` runs, many of them, fast.

Starting Python with torch, ONNX Runtime and PyAV takes seconds on a 2-core machine, so a test that needs dozens
of real runs starts this module once as a script (``python runtime_faults_helper.py serve``): it imports
everything, creates no thread pool and no ONNX Runtime session, then for each requested run forks a child that
calls ``pahs.cli.run.main(argv)`` exactly as the console script does, with stdout and stderr in files, torch on
one thread, optionally a file-size limit (RLIMIT_FSIZE, with SIGXFSZ ignored so that writes fail with EFBIG, as
on a full disk) and a signal sent after a delay. Termination signals are blocked around the fork and unblocked
in the child once its handlers are in place, so a signal sent at any delay, even 0, reaches the run's handler
(a real process started from a shell would instead die during Python's start-up, before any file exists).

Protocol: one JSON object per line on stdin, ``{"runs": [spec, ...], "parallel": n}``; one JSON line back, the
list of results in the same order. A spec: ``argv``, ``cwd``, ``tmpdir`` (the child's tempfile folder),
``capture`` (a folder for its stdout/stderr files), and optional ``delay`` (seconds after the fork),
``signum`` (default SIGTERM), ``fsize`` (bytes), ``env`` (extra environment), ``ignore`` (names of
termination signals the child starts with ignored, as ``nohup`` leaves SIGHUP; the others start with their
default action, whatever the test runner inherited: a CI job run under ``nohup`` must not make SIGHUP do
nothing in a test that expects it to stop the run). A result: ``status`` (exit
status, or -N when killed by signal N), ``stdout``, ``stderr``, ``seconds`` (fork to exit), ``signalled``
(the signal was sent while the child ran), ``after_signal`` (seconds from the signal to the exit), ``hung``
(still running :data:`HANG_SECONDS` after the signal, or after the fork without one: then SIGKILLed).

Also the small inputs the tests use (made with PyAV and Pillow, nothing downloaded), and :class:`ForkServer`,
the tests' end of the pipe.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
HANG_SECONDS = 30.0  # a child still running this long after its signal (or its start) is killed and reported
TERMINATION = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


# -- inputs ------------------------------------------------------------------------------------------------------


def frames(n: int, width: int, height: int, seed: int = 0, noise: bool = False) -> list[np.ndarray]:
    """uint8 [H, W, 3] frames: a bar moving over a gradient, or uniform noise (which no PNG compresses)."""
    rng = np.random.default_rng(seed)
    if noise:
        return [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(n)]
    base = np.zeros((height, width, 3), np.uint8)
    base[..., 1] = np.linspace(0, 255, width, dtype=np.float32)[None].astype(np.uint8)
    base[..., 2] = 90
    out = []
    for i in range(n):
        f = base.copy()
        x = (3 * i) % max(1, width - 6)
        f[:, x : x + 6, 0] = 255
        out.append(f)
    return out


def make_clip(path: Path, n: int = 24, width: int = 48, height: int = 32, faststart: bool = False) -> Path:
    """An H.264 clip (24 frames/s); ``faststart`` puts the index first, so that a truncated copy still opens."""
    import av

    with av.open(str(path), "w", options={"movflags": "+faststart"} if faststart else None) as c:
        v = c.add_stream("libx264", rate=24, options={"crf": "12"})
        v.width, v.height, v.pix_fmt = width, height, "yuv420p"
        for img in frames(n, width, height):
            c.mux(v.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        c.mux(v.encode())
    return path


def make_folder(path: Path, n: int = 4, width: int = 48, height: int = 32, noise: bool = False) -> Path:
    """A folder of PNG frames f1.png, f2.png..."""
    from PIL import Image

    path.mkdir(parents=True)
    for i, img in enumerate(frames(n, width, height, noise=noise)):
        Image.fromarray(img).save(path / f"f{i + 1}.png")
    return path


# -- the tests' end ----------------------------------------------------------------------------------------------


@dataclass
class Run:
    """One child's result (see the module docstring)."""

    status: int
    stdout: str
    stderr: str
    seconds: float
    signalled: bool
    after_signal: float | None
    hung: bool

    def describe(self) -> str:
        return f"status {self.status}, stderr {self.stderr!r}, stdout {self.stdout[-300:]!r}"


class ForkServer:
    """The server process, started once; :meth:`run` sends specs and returns :class:`Run` results."""

    def __init__(self) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=env,
        )
        ready = self.proc.stdout.readline()  # type: ignore[union-attr]
        assert ready.strip() == "ready", f"the fork server did not start: {ready!r}"

    def run(self, specs: list[dict[str, Any]], parallel: int = 2) -> list[Run]:
        self.proc.stdin.write(json.dumps({"runs": specs, "parallel": parallel}) + "\n")  # type: ignore[union-attr]
        self.proc.stdin.flush()  # type: ignore[union-attr]
        line = self.proc.stdout.readline()  # type: ignore[union-attr]
        assert line, "the fork server died"
        return [Run(**r) for r in json.loads(line)]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()  # type: ignore[union-attr]
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# -- the server --------------------------------------------------------------------------------------------------


def _child(spec: dict[str, Any], out: str, err: str) -> None:
    """In the forked child: redirect output, set limits, run pahs-run's main, exit with its status."""
    status = 70
    try:
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), 1)
        os.dup2(os.open(err, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), 2)
        os.chdir(spec["cwd"])
        os.environ.update(spec.get("env") or {})
        ignored = {int(getattr(signal, name)) for name in spec.get("ignore") or ()}
        for s in TERMINATION:
            signal.signal(s, signal.SIG_IGN if int(s) in ignored else signal.SIG_DFL)
        import tempfile

        import torch

        tempfile.tempdir = spec["tmpdir"]
        torch.set_num_threads(1)  # the parent never started torch's pool; two children share two cores
        if spec.get("fsize") is not None:
            import resource

            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG instead
            resource.setrlimit(resource.RLIMIT_FSIZE, (spec["fsize"], resource.RLIM_INFINITY))
        from pahs.cli.run import main
        from runtime.io import termination_handlers

        with termination_handlers():
            signal.pthread_sigmask(signal.SIG_UNBLOCK, TERMINATION)  # a signal sent already arrives now
            status = main(spec["argv"])
    except SystemExit as e:
        status = e.code if isinstance(e.code, int) else 1
    except BaseException:
        import traceback

        traceback.print_exc()
        status = 71
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(status)


def _serve_batch(specs: list[dict[str, Any]], parallel: int) -> list[dict[str, Any]]:
    results: list[dict[str, Any] | None] = [None] * len(specs)
    waiting = list(range(len(specs)))
    active: dict[int, dict[str, Any]] = {}  # pid -> bookkeeping
    while waiting or active:
        while waiting and len(active) < parallel:
            i = waiting.pop(0)
            spec = specs[i]
            capture = Path(spec["capture"])
            capture.mkdir(parents=True, exist_ok=True)
            out, err = str(capture / f"run{i}.out"), str(capture / f"run{i}.err")
            sys.stdout.flush()
            sys.stderr.flush()
            old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, TERMINATION)
            pid = os.fork()
            if pid == 0:
                _child(spec, out, err)
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
            start = time.monotonic()
            delay = spec.get("delay")
            active[pid] = {
                "i": i, "start": start, "out": out, "err": err, "signal_at": None if delay is None else start + delay,
                "signum": spec.get("signum", int(signal.SIGTERM)), "sent": None, "hung": False,
            }  # fmt: skip
        now = time.monotonic()
        for pid, a in list(active.items()):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done == 0:
                if a["signal_at"] is not None and a["sent"] is None and now >= a["signal_at"]:
                    os.kill(pid, a["signum"])
                    a["sent"] = time.monotonic()
                elif now - (a["sent"] or a["start"]) > HANG_SECONDS:
                    os.kill(pid, signal.SIGKILL)
                    a["hung"] = True
                continue
            end = time.monotonic()
            code = os.waitstatus_to_exitcode(status)
            results[a["i"]] = {
                "status": code,
                "stdout": Path(a["out"]).read_text(errors="replace"),
                "stderr": Path(a["err"]).read_text(errors="replace"),
                "seconds": end - a["start"],
                "signalled": a["sent"] is not None,
                "after_signal": None if a["sent"] is None else end - a["sent"],
                "hung": a["hung"],
            }
            del active[pid]
        time.sleep(0.005)
    return results  # type: ignore[return-value]


def serve() -> None:
    sys.path.insert(0, str(ROOT))
    # Everything a run imports, imported once here (the children inherit it); nothing that starts threads.
    import av  # noqa: F401
    import onnxruntime  # noqa: F401
    import torch  # noqa: F401
    import tqdm  # noqa: F401

    import pahs.api
    import pahs.cli.run
    import pahs.export_cache
    import pahs.verify  # noqa: F401
    import runtime.pipeline  # noqa: F401

    print("ready", flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        print(json.dumps(_serve_batch(request["runs"], request.get("parallel", 2))), flush=True)


if __name__ == "__main__" and sys.argv[1:] == ["serve"]:
    serve()
