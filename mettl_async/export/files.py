"""The files of an export, handled safely: one export per output, no link ever followed.

Every side file (``PATH.partial``, ``PATH.checkpoint``, ``PATH.lock``, a format's
temporary file) is created with ``O_CREAT | O_EXCL | O_NOFOLLOW`` and opened
again with ``O_NOFOLLOW``, and must be a regular file: a symbolic link planted
at one of them is refused (or, where the export owns the name outright,
removed) instead of being written through. :class:`ExportLock` holds an
advisory lock (``flock``) on ``PATH.lock`` for the whole run, so that a second
export to the same path stops at once, naming the running one, without
touching its files.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shlex
import stat
import sys
from pathlib import Path
from typing import Final

from mettl_async.export.base import ExportError

__all__ = [
    "ExportLock",
    "create_new",
    "fsync_directory",
    "lexists",
    "open_existing",
    "read_regular",
    "remove",
    "write_all",
]

_NOFOLLOW: Final = os.O_NOFOLLOW | os.O_CLOEXEC
#: Bytes of a lock file read to name the export holding it.
_HOLDER_BYTES: Final = 4096


def lexists(path: Path) -> bool:
    """Whether anything is at ``path``, a dangling symbolic link included."""
    return os.path.lexists(path)


def _refuse_link(path: Path) -> ExportError:
    return ExportError(
        f"{path} is a symbolic link: the export never writes through one "
        "(remove it, or use --overwrite)"
    )


def create_new(path: Path, *, append: bool = False) -> int:
    """Create ``path`` for writing; fails if anything, even a dangling link, is there."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | (os.O_APPEND if append else 0)
    try:
        return os.open(path, flags, 0o666)
    except FileExistsError:
        if os.path.islink(path):
            raise _refuse_link(path) from None
        raise


def open_existing(path: Path, flags: int) -> int:
    """Open the regular file at ``path`` (``O_RDONLY``, ``O_RDWR``, ...), never a link."""
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode):
        raise _refuse_link(path)
    if not stat.S_ISREG(info.st_mode):
        raise ExportError(f"{path} is not a regular file")
    try:
        # O_NONBLOCK: should a FIFO take the file's place meanwhile, do not hang on it.
        fd = os.open(path, flags | _NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _refuse_link(path) from None
        raise
    opened = os.fstat(fd)
    if not stat.S_ISREG(opened.st_mode) or (opened.st_dev, opened.st_ino) != (
        info.st_dev,
        info.st_ino,
    ):
        os.close(fd)
        raise ExportError(f"{path} changed while it was being opened")
    os.set_blocking(fd, True)
    return fd


def read_regular(path: Path) -> bytes:
    """The bytes of the regular file at ``path`` (never through a link)."""
    fd = open_existing(path, os.O_RDONLY)
    with os.fdopen(fd, "rb") as stream:
        return stream.read()


def remove(path: Path) -> None:
    """Remove what is at ``path`` (a link itself, not its target); nothing there is fine."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` (``os.write`` may write less than asked)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def fsync_directory(path: Path) -> None:
    """Make a rename or a new file in ``path`` durable (best effort: not every file system can)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def lock_path(output: Path) -> Path:
    return output.with_name(output.name + ".lock")


class ExportLock:
    """An exclusive advisory lock on ``PATH.lock``, held by one export for its whole run.

    The file holds the pid and the command of the export holding it. Released
    (and the file removed) by :meth:`release`; the system releases it if the
    process dies, so a lock file left by a killed run is simply taken over.
    """

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, output: Path) -> ExportLock:
        """Take the lock of ``output`` or raise :class:`ExportError` naming its holder."""
        path = lock_path(output)
        for _ in range(10):
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | _NOFOLLOW, 0o666)
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    raise _refuse_link(path) from None
                raise
            try:
                lock = cls._take(path, fd, output)
            except BaseException:
                os.close(fd)
                raise
            if lock is not None:
                return lock
            os.close(fd)  # the run before us removed this file: take the new one
        raise ExportError(f"could not take the lock {path}: it keeps changing")

    @classmethod
    def _take(cls, path: Path, fd: int, output: Path) -> ExportLock | None:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ExportError(f"{path} is not a regular file")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ExportError(
                f"another export to {output} is running ({_holder(fd)}); "
                "wait for it to end, or stop it first"
            ) from None
        try:
            current = os.lstat(path)
        except FileNotFoundError:
            return None
        if (current.st_dev, current.st_ino) != (info.st_dev, info.st_ino):
            return None
        if info.st_nlink != 1:
            raise ExportError(f"{path} has another name (a hard link): refusing to write to it")
        command = shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv else "?"
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n{command}\n".encode(errors="replace"), 0)
        return cls(path, fd)

    def release(self) -> None:
        """Remove the lock file and let the lock go. Idempotent."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            with contextlib.suppress(OSError):
                mine = os.fstat(fd)
                current = os.lstat(self.path)
                if (current.st_dev, current.st_ino) == (mine.st_dev, mine.st_ino):
                    os.unlink(self.path)
        finally:
            os.close(fd)

    def __enter__(self) -> ExportLock:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def _holder(fd: int) -> str:
    """The pid and command written in a lock file by the export holding it."""
    try:
        text = os.pread(fd, _HOLDER_BYTES, 0).decode(errors="replace")
    except OSError:
        text = ""
    pid, _, rest = text.partition("\n")
    command = rest.strip().splitlines()[0] if rest.strip() else ""
    if not pid.strip().isdigit():
        return "its pid is not written yet"
    return f"pid {pid.strip()}" + (f": {command}" if command else "")
