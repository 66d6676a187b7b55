"""Threads around reading and writing: decode ahead (:class:`Prefetcher`), encode behind
(:class:`BackgroundWriter`), both stopping when a termination signal arrives.

Decisions:

- Termination signals only set a flag (:mod:`pahs_export.signals`, whose names runtime.io re-exports): the
  main thread raises :class:`Interrupted` where it checks the flag (:func:`check_interrupted`: per frame and
  per backend step in the pipeline, while it waits on a queue), and worker threads stop at their next item
  (the audit saw a SIGTERM hang with the main thread in a join and the encoder in ``Queue.get`` when the
  handler raised). After a second signal, which ends the process at once, partial outputs carry its pid, and
  the next run sweeps them.
- Every wait is a poll with a short timeout (:data:`POLL`) that also checks the flag, and every join after a
  failure is bounded (:data:`JOIN_TIMEOUT`): a thread still busy then is abandoned (a daemon thread) and its
  output's files removed without touching the encoder it is using.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator

import numpy as np

from pahs_export.atomic import Output
from pahs_export.signals import Interrupted, check_interrupted, interrupted

from .writing import FrameWriter

POLL = 0.05  # seconds between checks of the interruption flag while waiting on a queue or a thread
JOIN_TIMEOUT = 10.0  # seconds a failed or interrupted run waits for a worker thread before abandoning it


class Prefetcher:
    """Iterates ``iterable`` in a background thread, up to ``maxsize`` items ahead, so that decoding overlaps
    the consumer's work. Order is kept; an exception in the thread is raised in the consumer where the item
    would have come. Iterate once. Stopping early (break, an exception, :meth:`close`) stops and joins the
    thread (bounded: :data:`JOIN_TIMEOUT`), and the source iterator is closed in it. A termination signal
    stops the thread and raises :class:`Interrupted` in the consumer."""

    _DONE = object()

    def __init__(self, iterable: Iterable, maxsize: int = 8) -> None:
        self._queue: queue.Queue = queue.Queue(maxsize)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(iter(iterable),), daemon=True, name="prefetch")
        self._thread.start()

    def _put(self, item: tuple) -> bool:
        while not self._stop.is_set() and interrupted() is None:
            try:
                self._queue.put(item, timeout=POLL)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, it: Iterator) -> None:
        try:
            for item in it:
                if not self._put((item, None)):
                    return
            self._put((self._DONE, None))
        except BaseException as e:  # handed to the consumer
            self._put((self._DONE, e))
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()

    def __iter__(self) -> Iterator:
        try:
            while True:
                try:
                    item, error = self._queue.get(timeout=POLL)
                except queue.Empty:
                    if not self._thread.is_alive() and self._queue.empty():
                        check_interrupted()  # the thread stops on the flag too: never mistake that for the end
                        return  # stopped by close() from elsewhere
                    check_interrupted()
                    continue
                if error is not None:
                    raise error
                if item is self._DONE:
                    return
                check_interrupted()
                yield item
        finally:
            self.close()

    def close(self) -> bool:
        """Stop the thread and wait for it (it first finishes the item it is producing), at most
        :data:`JOIN_TIMEOUT` seconds; True if it ended."""
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(JOIN_TIMEOUT)
        return not self._thread.is_alive()

    def __enter__(self) -> Prefetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class BackgroundWriter(Output):
    """Wraps a :class:`FrameWriter`: :meth:`write` queues the frame (blocking while ``maxsize`` wait) and a
    thread encodes, so encoding overlaps the caller's work; the caller must not modify an array after passing
    it. An error in the thread is raised by the next :meth:`write`, :meth:`finish` or :meth:`close`.
    :meth:`finish` encodes what is queued and finishes the file without publishing it; :meth:`close` also
    publishes it (:meth:`FrameWriter.close`); :meth:`abort` drops it. A termination signal stops the thread,
    which then writes nothing more, and :meth:`finish`/:meth:`close` raise :class:`Interrupted` rather than
    publish a short output. A context manager like :class:`FrameWriter`."""

    _CLOSE = object()

    def __init__(self, writer: FrameWriter, maxsize: int = 8) -> None:
        self.writer = writer
        self._queue: queue.Queue = queue.Queue(maxsize)
        self._error: BaseException | None = None
        self._aborting = False
        self._finished = False
        self._thread = threading.Thread(target=self._run, daemon=True, name="encode")
        self._thread.start()

    def _run(self) -> None:
        while not self._aborting:
            try:
                item = self._queue.get(timeout=POLL)
            except queue.Empty:
                continue
            if item is self._CLOSE:
                return
            if self._error is not None:  # after a failure, drain without writing
                continue
            signum = interrupted()
            if signum is not None:  # what follows would be a short output: never publish it
                self._error = Interrupted(signum)
                continue
            try:
                self.writer.write(*item)
            except BaseException as e:
                self._error = e

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def write(self, image: np.ndarray, pts: int | None = None, name: str | None = None) -> None:
        """Queue one frame (see :meth:`FrameWriter.write`)."""
        self._raise()
        check_interrupted()
        while True:
            if not self._thread.is_alive():
                raise RuntimeError("write() on a closed BackgroundWriter")
            try:
                self._queue.put((image, pts, name), timeout=POLL)
                return
            except queue.Full:
                self._raise()
                check_interrupted()

    def _drain(self) -> None:
        """Let the thread encode everything queued and end; checks the flag while it waits."""
        while self._thread.is_alive():
            try:
                self._queue.put(self._CLOSE, timeout=POLL)
                break
            except queue.Full:
                self._raise()
                check_interrupted()
        while self._thread.is_alive():
            self._thread.join(POLL)
            check_interrupted()

    def finish(self) -> None:
        """Encode what is queued and finish the writer (:meth:`FrameWriter.finish`), without publishing; on an
        error or an interruption, abort and raise."""
        if self._finished:
            return
        try:
            self._drain()
            self._raise()
            check_interrupted()
            self.writer.finish()
        except BaseException:
            self.abort()
            raise
        self._finished = True

    def close(self) -> None:
        """:meth:`finish`, then publish the output."""
        self.finish()
        self.writer.close()

    def abort(self) -> None:
        """Drop what is queued and abort the writer. The thread gets :data:`JOIN_TIMEOUT` seconds to end; if
        it is still encoding then, its files are removed without closing the encoder under it."""
        self._aborting = True
        if self._thread is not threading.current_thread():
            self._thread.join(JOIN_TIMEOUT)
        self.writer.abort(abandon=self._thread.is_alive())
