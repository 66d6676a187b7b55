"""Publishing outputs: a video file or a folder of PNG frames that appears whole or not at all.

:func:`open_output` checks the ``-o`` target and returns a :class:`FrameWriter`, which encodes through a sink of
:mod:`runtime.io.encoding` (formats and what is kept are described there).

Decisions:

- ``-o`` ending in .mp4, .mov or .mkv is a video; one ending in a path separator, or an existing folder, is a
  folder of PNG frames. The input itself is refused as the output; an existing output is replaced only with
  ``overwrite``, and an existing folder only when it holds nothing but image frames (an empty one is free).
- Outputs are written under a temporary name in the target folder (``.out.mp4.partial-<pid>-<host>-XXXX.mp4``,
  a ``.frames.partial-<pid>-<host>-XXXX`` folder), fsynced and renamed when complete, by
  :class:`pahs_export.files.AtomicOutput`; a failed or interrupted run leaves nothing, not even the parent folders
  made for the output, and what a killed run left is swept by the next run writing the same target.
- A full disk, a quota, a file-size limit, a read-only file system or a permission error while writing is one
  :class:`PahsError` line naming the output and its folder (:func:`pahs_export.files.disk_error`), raised where
  it happens (FFmpeg's muxer reports some only when it flushes, at the latest when the file is finished).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from pahs_export.errors import PahsError
from pahs_export.files import AtomicOutput, Output, is_disk_error

from .encoding import VIDEO_FORMATS, X264_PRESETS, OutputOptions, _PngSink, _VideoSink
from .reading import IMAGE_SUFFIXES, VideoInfo


class FrameWriter(Output):
    """Writes frames to a temporary output in the target folder, renamed to the target by :meth:`close`.

    A context manager: leaving the block normally closes it, leaving with any exception (KeyboardInterrupt and
    SystemExit included) aborts it, so the target is never half-written.
    """

    def __init__(
        self, target: Path, info: VideoInfo, *, folder: bool, source: Path | None, options: OutputOptions
    ) -> None:
        self.target, self.info, self.options, self.folder = target, info, options, folder
        self.count = 0  # frames written
        self._open = True
        self._finished = False  # finish() done: only the rename is left
        self._output = AtomicOutput(target, folder=folder)  # PahsError "... not writable ..." when it cannot
        self.tmp = self._output.tmp  # the temporary file or folder beside the target, renamed onto it by close()
        try:
            if folder:
                self._sink: _PngSink | _VideoSink = _PngSink(self.tmp, info)
            else:
                self._sink = _VideoSink(self.tmp, VIDEO_FORMATS[target.suffix.lower()], info, source, options)
        except BaseException as e:
            self._output.abort()
            if is_disk_error(e):
                raise self._output.error(e) from e  # type: ignore[arg-type]
            raise

    def write(self, image: np.ndarray, pts: int | None = None, name: str | None = None) -> None:
        """Append one frame: float [H, W, 3] RGB in [0, 1] (clipped), H and W as in ``info``; ``pts`` in
        ``info.time_base`` units (None: one frame after the previous); ``name`` the source file name (PNG
        folders keep it). A disk error is a one-line :class:`PahsError` (the output is not aborted here:
        the caller's ``with`` or :meth:`abort` does it)."""
        if not self._open:
            raise RuntimeError("write() on a closed FrameWriter")
        if image.shape != (self.info.height, self.info.width, 3):
            raise ValueError(f"expected a [{self.info.height}, {self.info.width}, 3] image, got {image.shape}")
        try:
            self._sink.write(image, pts, name, self.count)
        except OSError as e:
            if is_disk_error(e):
                raise self._output.error(e) from e
            raise
        self.count += 1

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


def output_is_folder(path: str | Path) -> bool:
    """-o names a folder when it ends with a path separator or is an existing directory."""
    return str(path).endswith(("/", os.sep)) or Path(path).is_dir()


def _only_images(folder: Path) -> bool:
    return all(p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES for p in folder.iterdir())


def open_output(
    path: str | Path, info: VideoInfo, *, source: str | Path | None = None, options: OutputOptions = OutputOptions()
) -> FrameWriter:
    """A writer for a video (.mp4, .mov, .mkv) or, when :func:`output_is_folder`, a folder of PNG frames.

    ``info`` gives the size, frame rate, time base and bit depth to write; ``source`` (the input path) is
    refused as the output, and when it is a video its audio streams are copied and its colour tags kept.
    See :mod:`runtime.io.encoding` for formats and what is kept.
    """
    folder = output_is_folder(path)  # decided on the raw string: Path() drops a trailing "/"
    target = Path(path)
    if source is not None and target.resolve() == Path(source).resolve():
        raise PahsError(f"expected an output different from the input, found both at {target}; choose another -o")
    if not folder and target.suffix.lower() not in VIDEO_FORMATS:
        raise PahsError(
            f"expected -o ending in .mp4, .mov or .mkv, or a folder ending in /, found {target.name}; "
            "choose one of those"
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
    if not 0 <= options.crf <= 51:
        raise PahsError(f"expected a crf from 0 to 51, found {options.crf}; 18 looks lossless on most content")
    if options.preset not in X264_PRESETS:
        raise PahsError(f"expected an x264 preset ({', '.join(X264_PRESETS)}), found {options.preset!r}")
    if options.fps is not None and options.fps <= 0:
        raise PahsError(f"expected a positive frame rate, found {options.fps}; pass one such as 25 or 30000/1001")
    return FrameWriter(
        target, info, folder=folder, source=Path(source) if source is not None else None, options=options
    )
