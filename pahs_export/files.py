"""Outputs that appear whole or not at all: written under a temporary name beside the target, then renamed.

Every file or folder pahs writes for a user (ONNX and TensorRT artifacts, restored videos and frame folders)
goes through :class:`AtomicOutput`, so a failed or interrupted run never leaves a half-written target.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, TypeVar

from .errors import PahsError

PARTIAL = ".partial-"  # temporary outputs are named ".<target name>.partial-XXXX"


_O = TypeVar("_O", bound="Output")


class Output:
    """Something written that is kept by :meth:`close` on success and dropped by :meth:`abort` on any error; as
    a context manager, leaving the block normally closes it and leaving it with any exception (KeyboardInterrupt
    and SystemExit included) aborts it."""

    def close(self) -> None:
        raise NotImplementedError

    def abort(self) -> None:
        raise NotImplementedError

    def __enter__(self: _O) -> _O:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class AtomicOutput(Output):
    """A temporary file or folder (:attr:`tmp`) in the target's folder, renamed onto ``target`` by :meth:`close`.

    Folders above the target that do not exist yet are created, and removed again by :meth:`abort`. A
    context manager (:class:`Output`). ``what`` names the output in the one-line error raised when the
    temporary cannot be created (e.g. "the artifact").
    """

    def __init__(self, target: str | Path, *, folder: bool, what: str = "the output") -> None:
        self.target, self.folder = Path(target), folder
        self._open = True
        parent = self.target.parent if str(self.target.parent) else Path(".")
        self._made = [p for p in (parent, *parent.parents) if not p.exists()]  # innermost first
        prefix = f".{self.target.name}{PARTIAL}"
        try:
            parent.mkdir(parents=True, exist_ok=True)
            if folder:
                self.tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
            else:
                fd, name = tempfile.mkstemp(prefix=prefix, suffix=self.target.suffix, dir=parent)
                os.close(fd)
                self.tmp = Path(name)
        except OSError as e:
            self._remove_made()
            raise PahsError(
                f"cannot write {what} {self.target}: {parent} is not writable ({e.strerror or e}); choose another -o"
            ) from None

    def close(self) -> None:
        """Publish the temporary as ``target`` (replacing what is there) with the permissions the umask gives
        a new file or folder. Does nothing once closed or aborted."""
        if not self._open:
            return
        umask = os.umask(0)
        os.umask(umask)
        self.tmp.chmod((0o777 if self.folder else 0o666) & ~umask)  # mkstemp/mkdtemp made it private
        if not self.folder:
            os.replace(self.tmp, self.target)  # atomic, also over an existing file
        else:
            old = None
            if self.target.exists() or self.target.is_symlink():  # move aside, publish, then delete the old one
                old = Path(tempfile.mkdtemp(prefix=f".{self.target.name}.old-", dir=self.target.parent))
                self.target.rename(old / "old")
            self.tmp.rename(self.target)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        self._open = False

    def abort(self) -> None:
        """Remove the temporary and the folders made for it; the target is left as it was."""
        if not self._open:
            return
        self._open = False
        if self.tmp.is_dir():
            shutil.rmtree(self.tmp, ignore_errors=True)
        else:
            self.tmp.unlink(missing_ok=True)
        self._remove_made()

    def _remove_made(self) -> None:
        for p in self._made:  # innermost first; stop at the first that is not ours alone any more
            try:
                if p.exists():
                    p.rmdir()
            except OSError:
                break


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file, streamed."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
