"""Outputs that appear whole or not at all: written under a temporary name beside the target, then renamed.

Every file or folder pahs writes for a user (ONNX and TensorRT artifacts, restored videos and frame folders)
goes through :class:`AtomicOutput`, so a failed or interrupted run never leaves a half-written target.

Decisions:

- The temporary is named ``.<target name>.partial-<pid>-<host>-XXXX``: the writer's process id and a short tag
  of its host and pid namespace. A run that is killed outright (SIGKILL, power loss) cannot clean up, so the
  next :class:`AtomicOutput` for the same target removes the partials of that name whose writer is gone
  (:func:`sweep_stale`); a live writer's (``os.kill(pid, 0)`` succeeds) and another host's or container's (a
  shared folder, where that pid means nothing) are never touched, nor are other names'. A pid reused since
  only keeps a leftover longer.
- :meth:`AtomicOutput.close` fsyncs the file, or every file and folder of a folder output, before the rename
  and the parent folder after it, so a crash just after a run never leaves a published but empty output.
- A folder replaces an existing one by an atomic exchange of the two names (Linux ``renameat2``
  RENAME_EXCHANGE) where the system has it; elsewhere the old folder is first moved aside into
  ``.<name>.old-<pid>-<host>-XXXX``, and if the process dies before the new one is renamed in, the next
  sweep puts the old one back.
- Write errors a user can fix (a full disk, a quota, a file-size limit, a read-only file system, no
  permission: :data:`DISK_ERRNOS`) become one-line :class:`PahsError` messages naming the path
  (:func:`disk_error`).
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from .errors import PahsError
from .signals import check_interrupted, forget_partial, register_partial

PARTIAL = ".partial-"  # temporary outputs are named ".<target name>.partial-<pid>-<host>-XXXX"
OLD = ".old-"  # an old folder moved aside while a new one is renamed in: ".<target name>.old-<pid>-<host>-XXXX"

# Errors a user causes and can fix by freeing space or choosing another place, with how to say them.
DISK_ERRNOS: dict[int, str] = {
    errno.ENOSPC: "the disk is full (no space left on device)",
    errno.EDQUOT: "the disk quota is used up",
    errno.EFBIG: "the file size limit was reached (file too large)",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "the operation is not permitted",
}
_NO_ROOM = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def is_disk_error(error: BaseException) -> bool:
    """Whether ``error`` is an OSError of :data:`DISK_ERRNOS` (FFmpeg's errors through PyAV included)."""
    return isinstance(error, OSError) and error.errno in DISK_ERRNOS


def disk_error(error: OSError, what: str, where: str | Path, elsewhere: str) -> PahsError:
    """The one-line error for ``error`` met while writing ``what`` (e.g. "the output out.mp4") in the folder
    ``where``; ``elsewhere`` says how to write somewhere else (e.g. "choose another -o")."""
    reason = DISK_ERRNOS.get(error.errno or 0) or error.strerror or str(error)
    todo = f"free space in {where} or {elsewhere}" if error.errno in _NO_ROOM else f"{elsewhere} (a writable folder)"
    return PahsError(f"could not write {what} in {where}: {reason}; {todo}")


# -- stale temporaries -------------------------------------------------------------------------------------------


def _host_tag() -> str:
    """Six hex digits naming where our pids mean something: the host, and on Linux the pid namespace (a
    container that shares the host's name and folders but not its processes must not sweep its partials)."""
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        namespace = ""
    key = f"{socket.gethostname()}/{namespace}".encode()
    return hashlib.sha1(key, usedforsecurity=False).hexdigest()[:6]


def owner_tag() -> str:
    """``<pid>-<host>``: what temporary names carry so that a later run can tell whether their writer lives."""
    return f"{os.getpid()}-{_host_tag()}"


_OWNER = re.compile(r"(\d+)-([0-9a-f]{6})-")


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists but is another user's
        return True
    return True


def stale(name: str, prefix: str) -> bool:
    """Whether the entry ``name`` is ``prefix`` + ``<pid>-<host>-...`` written on this host by a process that is
    gone. Names without an owner (older pahs) are never stale: nothing says their writer is gone."""
    if not name.startswith(prefix):
        return False
    m = _OWNER.match(name, len(prefix))
    return m is not None and m[2] == _host_tag() and not _alive(int(m[1]))


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def sweep_stale(target: str | Path) -> list[Path]:
    """Remove what dead writers left for ``target``: ``.<name>.partial-*`` temporaries, and ``.<name>.old-*``
    folders moved aside (put back as ``target`` when it is missing: the writer died between its two renames).
    Returns what was removed or put back. Best effort: an entry that cannot be removed is left."""
    target = Path(target)
    parent = target.parent if str(target.parent) else Path(".")
    partial, old = f".{target.name}{PARTIAL}", f".{target.name}{OLD}"
    done: list[Path] = []
    try:
        names = sorted(os.listdir(parent))
    except OSError:
        return done
    for name in names:  # old folders first: a restored target makes the partials plain leftovers
        if stale(name, old):
            aside = parent / name / "old"
            try:
                if (aside.exists() or aside.is_symlink()) and not (target.exists() or target.is_symlink()):
                    aside.rename(target)
            except OSError:
                continue
            _remove(parent / name)
            done.append(parent / name)
    for name in names:
        if stale(name, partial):
            _remove(parent / name)
            done.append(parent / name)
    return done


# -- durability and renames ----------------------------------------------------------------------------------------


def fsync_path(path: str | Path, directory: bool = False) -> None:
    """fsync a file or a folder by path. Folders on file systems that cannot sync them (EINVAL) are skipped."""
    fd = os.open(path, os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0))
    try:
        os.fsync(fd)
    except OSError as e:
        if not (directory and e.errno in (errno.EINVAL, errno.ENOTSUP, errno.EBADF)):
            raise
    finally:
        os.close(fd)


def fsync_tree(path: str | Path) -> None:
    """fsync every file and folder under ``path`` (a file: just it), innermost first."""
    path = Path(path)
    if not path.is_dir():
        fsync_path(path)
        return
    for root, _dirs, files in os.walk(path, topdown=False):
        for f in files:
            p = Path(root) / f
            if not p.is_symlink():
                fsync_path(p)
        fsync_path(root, directory=True)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def exchange(a: Path, b: Path) -> bool:
    """Atomically swap the names ``a`` and ``b`` (Linux renameat2 RENAME_EXCHANGE). False where the system or
    the file system cannot (then nothing changed)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EXDEV, errno.ENOENT):
        return False
    raise OSError(code, os.strerror(code), str(b))


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

    Folders above the target that do not exist yet are created, and removed again by :meth:`abort`. What dead
    writers left for the same target is swept first (:func:`sweep_stale`). A context manager
    (:class:`Output`); leaving it with a disk error (:func:`is_disk_error`) raises the one-line
    :class:`PahsError` of :meth:`error` instead. ``what`` names the output in messages (e.g. "the artifact").
    """

    def __init__(self, target: str | Path, *, folder: bool, what: str = "the output") -> None:
        self.target, self.folder, self.what = Path(target), folder, what
        self._open = True
        self._synced = False
        parent = self.target.parent if str(self.target.parent) else Path(".")
        self.parent = parent
        self._made = [p for p in (parent, *parent.parents) if not p.exists()]  # innermost first
        prefix = f".{self.target.name}{PARTIAL}{owner_tag()}-"
        try:
            parent.mkdir(parents=True, exist_ok=True)
            sweep_stale(self.target)
            if folder:
                self.tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
            else:
                fd, name = tempfile.mkstemp(prefix=prefix, suffix=self.target.suffix, dir=parent)
                os.close(fd)
                self.tmp = Path(name)
            register_partial(self.tmp)
        except OSError as e:
            self._remove_made()
            if e.errno in _NO_ROOM:
                raise self.error(e) from None
            raise PahsError(
                f"cannot write {what} {self.target}: {parent} is not writable ({e.strerror or e}); choose another -o"
            ) from e  # the cause tells a caller with a better remedy (e.g. the cache's) what happened

    def error(self, e: OSError, elsewhere: str = "choose another -o") -> PahsError:
        """The one-line error for a disk error ``e`` met while writing this output."""
        return disk_error(e, f"{self.what} {self.target.name}", self.parent.absolute(), elsewhere)

    def sync(self) -> None:
        """fsync what was written (every file and folder of a folder output). Done by :meth:`close` if not
        before; call it earlier to separate the slow part from the rename."""
        if self._open and not self._synced:
            fsync_tree(self.tmp)
            self._synced = True

    def close(self) -> None:
        """Publish the temporary as ``target`` (replacing what is there) with the permissions the umask gives
        a new file or folder, durably (fsync before and after the rename). Does nothing once closed or
        aborted. On a failure the temporary is removed; a disk error raises the one-line :meth:`error`."""
        if not self._open:
            return
        try:
            self._publish()
        except BaseException as e:
            self.abort()
            if is_disk_error(e):
                raise self.error(e) from e  # type: ignore[arg-type]
            raise
        self._open = False
        forget_partial(self.tmp)

    def _publish(self) -> None:
        umask = os.umask(0)
        os.umask(umask)
        self.tmp.chmod((0o777 if self.folder else 0o666) & ~umask)  # mkstemp/mkdtemp made it private
        self.sync()
        if not self.folder or not (self.target.exists() or self.target.is_symlink()):
            os.replace(self.tmp, self.target)  # atomic; over an existing file too
        elif exchange(self.tmp, self.target):  # the new folder in, the old one out, in one step
            _remove(self.tmp)  # the old folder, now under the temporary name (swept if we die here)
        else:  # move the old one aside (put back by the next sweep if we die before the new one is in)
            old = Path(tempfile.mkdtemp(prefix=f".{self.target.name}{OLD}{owner_tag()}-", dir=self.parent))
            self.target.rename(old / "old")
            self.tmp.rename(self.target)
            _remove(old)
        try:
            fsync_path(self.parent, directory=True)  # the rename itself, durably
        except OSError:
            pass  # published already: a folder that cannot be synced must not turn success into an error

    def abort(self) -> None:
        """Remove the temporary and the folders made for it; the target is left as it was."""
        if not self._open:
            return
        self._open = False
        _remove(self.tmp)
        forget_partial(self.tmp)
        self._remove_made()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        super().__exit__(exc_type, exc, tb)
        if exc is not None and is_disk_error(exc):
            raise self.error(exc) from exc  # type: ignore[arg-type]

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


# -- one writer at a time: cache entries that concurrent processes fill ------------------------------------------

LOCK_POLL_SECONDS = 0.1  # how often a process waiting for a lock looks again (and for a termination signal)


@contextmanager
def exclusive(lock: str | Path, waiting: Callable[[], None] | None = None) -> Iterator[bool]:
    """Hold an exclusive lock on the file ``lock`` (created, with its folder, if missing) within the block, so
    that processes filling the same cache entry (the first-use export, OpenVINO's compiled-model cache) take
    turns: the first writes it, the next find it written. ``waiting`` is called once if another process holds the
    lock; the wait polls every :data:`LOCK_POLL_SECONDS` so that a termination signal ends it
    (:func:`~pahs_export.signals.check_interrupted`).

    Locks are ``flock`` locks (released by the system when their holder dies, however it dies; NFS shares them
    between machines on Linux). Where the lock file cannot be made (a read-only cache, no ``fcntl``), the block
    runs unlocked (yields False) and the write itself reports the problem."""
    try:
        import fcntl

        Path(lock).parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
    except (ImportError, OSError):
        yield False
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if waiting is not None:
                waiting()
            while True:
                check_interrupted()
                time.sleep(LOCK_POLL_SECONDS)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    continue
        yield True
    finally:
        os.close(fd)  # releases the lock
