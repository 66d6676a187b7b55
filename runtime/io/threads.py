"""Threads around reading and writing: decode ahead (:class:`Prefetcher`), encode behind
(:class:`BackgroundWriter`), and SIGTERM turned into KeyboardInterrupt so interrupted outputs are discarded."""

from __future__ import annotations

import queue
import signal
import threading
from collections.abc import Iterable, Iterator

import numpy as np

from pahs_export.files import Output

from .writing import FrameWriter


class Prefetcher:
    """Iterates ``iterable`` in a background thread, up to ``maxsize`` items ahead, so that decoding overlaps
    the consumer's work. Order is kept; an exception in the thread is raised in the consumer where the item
    would have come. Iterate once. Stopping early (break, an exception, :meth:`close`) stops and joins the
    thread, and the source iterator is closed in it."""

    _DONE = object()

    def __init__(self, iterable: Iterable, maxsize: int = 8) -> None:
        self._queue: queue.Queue = queue.Queue(maxsize)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(iter(iterable),), daemon=True, name="prefetch")
        self._thread.start()

    def _put(self, item: tuple) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.05)
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
                item, error = self._queue.get()
                if error is not None:
                    raise error
                if item is self._DONE:
                    return
                yield item
        finally:
            self.close()

    def close(self) -> None:
        """Stop the thread and wait for it (it first finishes the item it is producing)."""
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join()

    def __enter__(self) -> Prefetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class BackgroundWriter(Output):
    """Wraps a :class:`FrameWriter`: :meth:`write` queues the frame (blocking while ``maxsize`` wait) and a
    thread encodes, so encoding overlaps the caller's work; the caller must not modify an array after passing
    it. An error in the thread is raised by the next :meth:`write` or :meth:`close`. :meth:`close` and
    :meth:`abort` join the thread, then close or abort the writer. A context manager like :class:`FrameWriter`."""

    _CLOSE = object()

    def __init__(self, writer: FrameWriter, maxsize: int = 8) -> None:
        self.writer = writer
        self._queue: queue.Queue = queue.Queue(maxsize)
        self._error: BaseException | None = None
        self._aborting = False
        self._thread = threading.Thread(target=self._run, daemon=True, name="encode")
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is self._CLOSE:
                return
            if self._error is None and not self._aborting:  # after a failure, drain without writing
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
        if not self._thread.is_alive():
            raise RuntimeError("write() on a closed BackgroundWriter")
        self._queue.put((image, pts, name))

    def _join(self) -> None:
        if self._thread.is_alive():
            self._queue.put(self._CLOSE)
            self._thread.join()

    def close(self) -> None:
        """Encode what is queued, then close the writer; on an error, abort it and raise."""
        try:
            self._join()
            self._raise()
        except BaseException:
            self.abort()
            raise
        self.writer.close()

    def abort(self) -> None:
        """Drop what is queued and abort the writer."""
        self._aborting = True
        try:
            self._join()
        finally:
            self.writer.abort()


_handler_installed = False


def install_termination_handler() -> None:
    """Make SIGTERM raise KeyboardInterrupt in the main thread (Python's default is to die on the spot), so
    ``with`` blocks abort their outputs and no temporary file is left. Idempotent; does nothing outside the
    main thread, where signal handlers cannot be set."""
    global _handler_installed
    if _handler_installed or threading.current_thread() is not threading.main_thread():
        return

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"terminated by signal {signum}")

    signal.signal(signal.SIGTERM, handler)
    _handler_installed = True
