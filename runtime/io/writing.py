"""Publishing outputs: a video file or a folder of PNG frames that appears whole or not at all, or a stream on
standard output.

:func:`open_output` checks the ``-o`` target and the encoding options (:func:`check_output`) and returns an
:class:`OutputWriter`: a :class:`FrameWriter` for files and folders, a :class:`PipeWriter` for standard output.
Both encode through a sink of :mod:`runtime.io.encoding` (formats and what is kept are described there).

Decisions:

- ``-o`` ending in .mp4, .mov, .mkv, .y4m or .nut is a video (``OutputOptions.format`` overrides the suffix);
  one ending in a path separator, or an existing folder, is a folder of PNG frames; ``-``, ``pipe:`` or
  ``pipe:1`` is standard output. The input itself is refused as the output; an existing output is replaced
  only with ``overwrite``, and an existing folder only when it holds nothing but image frames (an empty one
  is free).
- Everything is checked before a file is created or a byte written: the target, then the container, codec and
  pixel format (:func:`runtime.io.encoding.plan_output`). :func:`check_output` runs the same checks without a
  source (for a command line to fail early); those that need the source's size and depth wait for
  :func:`open_output`.
- Files and folders are written under a temporary name in the target folder (``.out.mp4.partial-<pid>-<host>-
  XXXX.mp4``, a ``.frames.partial-<pid>-<host>-XXXX`` folder), fsynced and renamed when complete, by
  :class:`pahs_export.atomic.AtomicOutput`; a failed or interrupted run leaves nothing, not even the parent
  folders made for the output, and what a killed run left is swept by the next run writing the same target.
- Standard output has nothing to publish: the stream goes to ``sys.stdout.buffer`` as it is encoded (flushed
  after each write, so a reader sees frames as they come), and nothing else is ever written there. A failed
  run leaves the stream cut short (the reader sees its end; the exit status says it failed). A reader that
  closes the pipe is one :class:`PahsError` line and nothing more is written; at the process's exit standard
  output then points to /dev/null, so Python's own flush does not add a traceback. Video to a terminal is
  refused.
- A full disk, a quota, a file-size limit, a read-only file system or a permission error while writing is one
  :class:`PahsError` line naming the output and its folder (:func:`pahs_export.atomic.disk_error`), raised where
  it happens (FFmpeg's muxer reports some only when it flushes, at the latest when the file is finished).
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np

from pahs_export.atomic import AtomicOutput, Output, is_disk_error
from pahs_export.errors import PahsError

from .encoding import (
    _PROBE_INFO,
    OUTPUT_FORMATS,
    VIDEO_FORMATS,
    OutputOptions,
    OutputPlan,
    _PngSink,
    _reason,
    _VideoSink,
    plan_output,
)
from .reading import IMAGE_SUFFIXES, VideoInfo, source_kind

PIPE_TARGETS = ("-", "pipe:", "pipe:1")  # -o values meaning standard output


class OutputWriter(Output):
    """What :func:`open_output` returns: frames go in with :meth:`write`, :meth:`finish` flushes the encoder,
    :meth:`close` finishes and publishes, :meth:`abort` drops what it can. A context manager: leaving the block
    normally closes it, leaving with any exception (KeyboardInterrupt and SystemExit included) aborts it."""

    info: VideoInfo  # the source: size, rate, time base and depth
    plan: OutputPlan  # container, codec, pixel format and rate written
    count: int  # frames written
    _sink: _PngSink | _VideoSink
    _open: bool

    def write(self, image: np.ndarray, pts: int | None = None, name: str | None = None) -> None:
        """Append one frame: float [H, W, 3] RGB in [0, 1] (clipped), H and W as in ``info``; ``pts`` in
        ``info.time_base`` units (None: one frame after the previous; ignored when the output is retimed);
        ``name`` the source file name (PNG folders keep it). A disk error or a closed pipe is a one-line
        :class:`PahsError` (the output is not aborted here: the caller's ``with`` or :meth:`abort` does it)."""
        if not self._open:
            raise RuntimeError(f"write() on a closed {type(self).__name__}")
        if image.shape != (self.info.height, self.info.width, 3):
            raise ValueError(f"expected a [{self.info.height}, {self.info.width}, 3] image, got {image.shape}")
        try:
            self._sink.write(image, pts, name, self.count)
        except OSError as e:
            error = self._translate(e)
            if error is e:
                raise
            raise error from e
        self._check()
        self.count += 1

    def describe(self) -> str:
        """One line for standard error saying what is written, e.g. "y4m, rawvideo yuv420p 64x48 at 24 fps, to
        standard output" (a reader of bare rawvideo frames needs its pixel format, size and rate)."""
        copied = self._sink.audio_streams
        return self.plan.describe() + (f", with {copied} audio stream{'s' * (copied > 1)} copied" if copied else "")

    def finish(self) -> None:
        """Flush the encoder and end the output without publishing it; on an error, abort and raise."""
        raise NotImplementedError

    def abort(self, abandon: bool = False) -> None:
        """Drop the output (a stream: end it where it is); ``abandon``: leave a busy encoder alone."""
        raise NotImplementedError

    def _translate(self, error: OSError) -> BaseException:
        """The one-line error for ``error`` met while writing, or ``error`` itself."""
        return error

    def _check(self) -> None:
        """Raise what went wrong outside an exception's path (a pipe closed under FFmpeg)."""


class FrameWriter(OutputWriter):
    """Writes frames to a temporary file or folder beside the target, renamed to the target by :meth:`close`,
    so the target is never half-written."""

    def __init__(
        self, target: Path, info: VideoInfo, plan: OutputPlan, *, source: str | Path | None, options: OutputOptions
    ) -> None:
        self.target, self.info, self.plan, self.options = target, info, plan, options
        self.folder = plan.muxer is None
        self.count = 0  # frames written
        self._open = True
        self._finished = False  # finish() done: only the rename is left
        self._output = AtomicOutput(target, folder=self.folder)  # PahsError "... not writable ..." when it cannot
        self.tmp = self._output.tmp  # the temporary file or folder beside the target, renamed onto it by close()
        try:
            if self.folder:
                self._sink = _PngSink(self.tmp, plan)
            else:
                self._sink = _VideoSink(self.tmp, plan, info, source, options)
        except BaseException as e:
            self._output.abort()
            if is_disk_error(e):
                raise self._output.error(e) from e  # type: ignore[arg-type]
            raise

    def _translate(self, error: OSError) -> BaseException:
        return self._output.error(error) if is_disk_error(error) else error

    def finish(self) -> None:
        """Finish the output (flush the encoder, write the index, fsync) without publishing it; a later
        :meth:`close` only renames. If finishing fails the output is aborted (a disk error: one line)."""
        if not self._open or self._finished:
            return
        try:
            self._sink.finish()
            self._output.sync()
        except BaseException as e:
            self.abort()
            if is_disk_error(e):
                raise self._output.error(e) from e  # type: ignore[arg-type]
            raise
        self._finished = True

    def close(self) -> None:
        """Finish the output and move it to the target name (replacing an existing one). If finishing
        fails the output is aborted. Does nothing once closed or aborted."""
        if not self._open:
            return
        self.finish()
        self._output.close()  # aborts itself on a failure
        self._open = False

    def abort(self, abandon: bool = False) -> None:
        """Drop the temporary output; the target is left as it was. Does nothing once closed or aborted.
        ``abandon``: a thread may still be encoding into the sink, so leave the encoder alone and only remove
        the files (the process is on its way out)."""
        if not self._open:
            return
        self._open = False
        try:
            if not abandon:
                self._sink.discard()
        finally:
            self._output.abort()


class _PipeFile:
    """The file object FFmpeg writes through for :class:`PipeWriter`. It has no ``seek`` (muxers then write a
    stream layout) and no ``close`` (PyAV would close standard output with the container). A write that fails
    is recorded in :attr:`error` and reported as written, so FFmpeg's state stays sound; nothing more is
    written after it, and the writer raises the error when FFmpeg returns."""

    def __init__(self, stream: BinaryIO, stdout: bool) -> None:
        self.stream = stream
        self.error: OSError | None = None
        self._stdout = stdout  # stream is the process's standard output

    def write(self, data: bytes) -> int:
        if self.error is None:
            try:
                self.stream.write(data)
                self.stream.flush()
            except OSError as e:
                self._failed(e)
        return len(data)

    def flush(self) -> None:
        if self.error is None:
            try:
                self.stream.flush()
            except OSError as e:
                self._failed(e)

    def _failed(self, error: OSError) -> None:
        self.error = error
        if self._stdout and _closed_pipe(error):
            # Python flushes stdout again at exit and would print a traceback for the pipe: send that to
            # /dev/null (the recipe of Python's documentation on SIGPIPE).
            with contextlib.suppress(OSError, ValueError):
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, self.stream.fileno())
                os.close(devnull)


def _closed_pipe(error: OSError) -> bool:
    return isinstance(error, BrokenPipeError) or error.errno in (errno.EPIPE, errno.ECONNRESET)


class PipeWriter(OutputWriter):
    """Writes the stream to standard output (or ``stream``, a binary file object) as it is encoded. Nothing is
    published: :meth:`close` finishes the stream, :meth:`abort` ends it where it is."""

    def __init__(
        self,
        info: VideoInfo,
        plan: OutputPlan,
        *,
        source: str | Path | None,
        options: OutputOptions,
        stream: BinaryIO | None = None,
    ) -> None:
        self.info, self.plan, self.options = info, plan, options
        self.count = 0  # frames written
        self._open = True
        self._finished = False
        self._pipe = _PipeFile(stream if stream is not None else sys.stdout.buffer, stdout=stream is None)
        self._sink = _VideoSink(self._pipe, plan, info, source, options)

    def _check(self) -> None:
        error = self._pipe.error
        if error is None:
            return
        if _closed_pipe(error):
            raise PahsError(
                f"the reader of standard output closed the pipe after {self.count} frames; the output stops "
                "there (check the command reading it)"
            ) from error
        raise PahsError(
            f"expected to write the output to standard output, could not after {self.count} frames "
            f"({_reason(error)}); check where standard output goes"
        ) from error

    def finish(self) -> None:
        """Flush the encoder and end the stream (a container's trailer, if it has one). On an error the
        writer is aborted and the error raised (a closed pipe: one line)."""
        if not self._open or self._finished:
            return
        try:
            self._check()
            self._sink.finish()
            self._pipe.flush()
            self._check()
        except BaseException:
            self.abort()
            raise
        self._finished = True

    def close(self) -> None:
        """:meth:`finish`; there is nothing to publish. Does nothing once closed or aborted."""
        if not self._open:
            return
        self.finish()
        self._open = False

    def abort(self, abandon: bool = False) -> None:
        """End the stream where it is (the reader sees it cut short). ``abandon``: a thread may still be
        encoding, so leave the encoder alone."""
        if not self._open:
            return
        self._open = False
        if not abandon:
            with contextlib.suppress(Exception):  # ending a stream already failed: nothing more to say
                self._sink.discard()
                self._pipe.flush()


def output_is_folder(path: str | Path) -> bool:
    """-o names a folder when it ends with a path separator or is an existing directory."""
    return str(path).endswith(("/", os.sep)) or Path(path).is_dir()


def output_is_pipe(path: str | Path) -> bool:
    """-o names standard output: ``-``, ``pipe:`` or ``pipe:1``."""
    return str(path) in PIPE_TARGETS


def _only_images(folder: Path) -> bool:
    return all(p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES for p in folder.iterdir())


def _is_local(source: str | Path) -> bool:
    """Whether ``source`` is a local path (not a URL, nor standard input)."""
    return source_kind(source) == "path"


def _prepare(
    path: str | Path,
    info: VideoInfo | None,
    source: str | Path | None,
    options: OutputOptions,
    stream: BinaryIO | None,
) -> tuple[OutputPlan, BinaryIO | None]:
    """Every check of an output, in one place, before anything is written: the plan, and for standard output
    the stream to write to. ``info`` None: the checks that need the source are skipped."""
    if options.format is not None and options.format not in OUTPUT_FORMATS:
        raise PahsError(
            f"expected one of the formats {', '.join(OUTPUT_FORMATS)}, found {options.format!r}; choose one of those"
        )
    if output_is_pipe(path):
        out = stream if stream is not None else getattr(sys.stdout, "buffer", None)
        if out is None:
            raise PahsError("expected a binary standard output for -o -, found none; write to a file with -o")
        if out.isatty():
            raise PahsError(
                "expected standard output to go to a pipe or a file for -o -, found a terminal; pipe it into "
                "a program (| ffmpeg -i - ...) or redirect it (> out.y4m)"
            )
        muxer = OUTPUT_FORMATS[options.format or next(iter(OUTPUT_FORMATS))]
        return plan_output(muxer, info or _PROBE_INFO, options, "standard output"), out
    folder = output_is_folder(path)  # decided on the raw string: Path() drops a trailing "/"
    target = Path(path)
    if source is not None and _is_local(source) and target.resolve() == Path(source).resolve():
        raise PahsError(f"expected an output different from the input, found both at {target}; choose another -o")
    if folder and options.format is not None:
        raise PahsError(
            f"expected a video file or - for format {options.format}, found the folder {path} (folders hold PNG "
            "frames); choose another -o or drop the format"
        )
    if not folder and options.format is None and target.suffix.lower() not in VIDEO_FORMATS:
        suffixes = list(VIDEO_FORMATS)
        raise PahsError(
            f"expected -o ending in {', '.join(suffixes[:-1])} or {suffixes[-1]}, a folder ending in /, or - for "
            f"standard output, found {target.name}; choose one of those (or pass a format)"
        )
    if folder and target.exists() and not target.is_dir():
        raise PahsError(f"expected a folder for PNG frames, found the file {target}; choose another -o")
    if target.exists() and not (folder and not any(target.iterdir())):  # an empty folder is free to use
        if not options.overwrite:
            raise PahsError(
                f"expected a new output, found {target} already there; pass --overwrite or choose another -o"
            )
        if folder and not _only_images(target):
            raise PahsError(
                f"expected an output folder holding only image frames to replace, found other files in {target}; "
                "choose another -o"
            )
    if folder:
        muxer = None
    elif options.format is not None:
        muxer = OUTPUT_FORMATS[options.format]
    else:
        muxer = VIDEO_FORMATS[target.suffix.lower()]
    return plan_output(muxer, info or _PROBE_INFO, options, str(path)), None


def check_output(
    path: str | Path,
    options: OutputOptions = OutputOptions(),
    *,
    info: VideoInfo | None = None,
    source: str | Path | None = None,
    stream: BinaryIO | None = None,
) -> None:
    """Check ``-o`` and ``options`` as :func:`open_output` does, writing nothing: a one-line :class:`PahsError`
    for the first problem (what was expected, what was found, what is available). Without ``info`` (the source
    not open yet) the checks that need its size and depth are left to :func:`open_output`."""
    _prepare(path, info, source, options, stream)


def check_file_output(
    path: str | Path,
    option: str,
    *,
    inputs: Sequence[str | Path] = (),
    outputs: Sequence[str | Path] = (),
    overwrite: bool = False,
) -> None:
    """The rules for a file pahs writes besides the video (``--json``), as ``-o`` and ``--compare`` follow them:
    never an input nor inside an input folder, never another output nor inside a folder output, an existing file
    replaced only with ``overwrite``, a folder never, and a folder to write in. Checked before the run starts;
    ``option`` names the file in the one-line :class:`PahsError`."""
    target = Path(path).absolute()
    resolved = target.resolve()
    for what, paths in (("the input", inputs), ("the output", outputs)):
        for other in paths:
            if not _is_local(other) or output_is_pipe(other):
                continue
            place = Path(other).resolve()
            inside = place in resolved.parents and (Path(other).is_dir() or output_is_folder(other))
            if resolved == place or inside:
                how = "is" if resolved == place else "is inside"
                raise PahsError(
                    f"expected {option} to name a file of its own, found {path} {how} {what} {other}; "
                    f"choose another {option}"
                )
    if target.is_dir():
        raise PahsError(f"expected {option} to name a file, found the folder {path}; choose another {option}")
    if (target.exists() or target.is_symlink()) and not overwrite:
        raise PahsError(f"expected a new {option} file, found {path} already there; pass --overwrite or choose another")
    folder = next((p for p in target.parents if p.exists()), None)
    if folder is None or not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise PahsError(
            f"expected {option} in a writable folder, found {folder or target.parent} is not writable; "
            f"choose another {option}"
        )


def write_file_output(path: str | Path, data: bytes, what: str) -> None:
    """Write a whole small file atomically (:class:`~pahs_export.atomic.AtomicOutput`): a reader, or a crash,
    sees the old file or the new one, never a part. ``what`` names it in a disk error."""
    with AtomicOutput(path, folder=False, what=what) as out:
        out.tmp.write_bytes(data)


def open_output(
    path: str | Path,
    info: VideoInfo,
    *,
    source: str | Path | None = None,
    options: OutputOptions = OutputOptions(),
    stream: BinaryIO | None = None,
) -> OutputWriter:
    """A writer for a video file (.mp4, .mov, .mkv, .y4m, .nut, or any name with ``options.format``), a folder
    of PNG frames (when :func:`output_is_folder`), or standard output (``-``, ``pipe:``, ``pipe:1``; ``stream``
    replaces ``sys.stdout.buffer``, for tests).

    ``info`` gives the size, frame rate, time base and bit depth to write; ``source`` (the input: a path, a URL,
    or ``-`` for standard input) is refused as the output, and when it is a video that can be opened again its
    audio streams are copied and its colour tags kept. Everything is checked first (:func:`check_output`). See
    :mod:`runtime.io.encoding` for formats and what is kept.
    """
    plan, out = _prepare(path, info, source, options, stream)
    if out is not None:
        return PipeWriter(info, plan, source=source, options=options, stream=out if stream is not None else None)
    return FrameWriter(Path(path), info, plan, source=source, options=options)
