"""Termination signals turned into a flag checked at safe points: one handling for every command, whether it
runs the video pipeline (``pahs-run``) or a training loop (``pahs-train``).

Decisions:

- SIGINT, SIGTERM and SIGHUP (an ssh session that drops) only set a flag (:func:`termination_handlers`); the
  main thread acts on it where it is safe to (:func:`check_interrupted` raises :class:`Interrupted` there;
  a loop that has state to save reads :func:`interrupted`, saves it and stops). Raising from the handler
  itself, at an arbitrary point, could leave a queue's locks or conditions inconsistent and hang the process,
  or tear a checkpoint in half. A signal the process inherited as ignored (``nohup``, background jobs) stays
  ignored. A second signal while the first is handled ends the process at once, with the signal's default
  action: the user insists, and no cleanup can hang it. It first removes the temporaries of the outputs being
  written (:func:`register_partial`, done by :class:`pahs_export.atomic.AtomicOutput`), so nothing hidden is left.
"""

from __future__ import annotations

import os
import shutil
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

SIGNALS = tuple(s for s in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None)


class Interrupted(KeyboardInterrupt):
    """A termination signal arrived; raised at a safe point. ``signum`` is the signal, so that the command
    line can say which and exit with 128 + signum. A KeyboardInterrupt, so ``except Exception`` never
    swallows it and every ``with`` block aborts its output."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"interrupted by {signal_name(signum)}")


def signal_name(signum: int) -> str:
    """``SIGTERM`` for 15; ``signal 1000`` for a number without a name."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


_signum: int | None = None  # the first termination signal received, set by the handler (a plain store: no locks)
_depth = 0  # nesting of termination_handlers()


def _handler(signum: int, frame: object) -> None:
    global _signum
    if _signum is None:
        _signum = signum
        return
    # A second signal: the user insists. Die now with the signal's default action (no cleanup can hang), after
    # removing the temporaries of the outputs being written (a few unlinks: nothing that can block for long).
    for path in list(_partials):
        _unlink_quietly(path)
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


_partials: set[str] = set()  # temporaries being written (AtomicOutput): removed if a second signal ends the process


def register_partial(path: str | os.PathLike[str]) -> None:
    """``path`` is a temporary output being written: a second termination signal removes it before the process
    dies (the first one lets the writer clean up itself). :func:`forget_partial` once it is renamed or removed."""
    _partials.add(os.fspath(path))


def forget_partial(path: str | os.PathLike[str]) -> None:
    _partials.discard(os.fspath(path))


def _unlink_quietly(path: str) -> None:
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            os.unlink(path)
    except OSError:
        pass


def interrupted() -> int | None:
    """The termination signal received since :func:`termination_handlers` was entered, or None."""
    return _signum


def check_interrupted() -> None:
    """Raise :class:`Interrupted` if a termination signal was received (a safe point)."""
    if _signum is not None:
        raise Interrupted(_signum)


@contextmanager
def termination_handlers() -> Iterator[None]:
    """Within the block, SIGINT, SIGTERM and SIGHUP set the flag that :func:`check_interrupted` reads
    (signals inherited as ignored stay ignored); the previous handlers come back after it. The outermost
    block clears the flag on entry and on exit, so that repeated in-process runs start clean; nested blocks
    keep it. Outside the main thread (where handlers cannot be set) the block does nothing."""
    global _signum, _depth
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    if _depth == 0:
        _signum = None
    previous = {s: signal.getsignal(s) for s in SIGNALS}
    for s, old in previous.items():
        if old != signal.SIG_IGN:
            signal.signal(s, _handler)
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        for s, old in previous.items():
            signal.signal(s, old if old is not None else signal.SIG_DFL)
        if _depth == 0:
            _signum = None
