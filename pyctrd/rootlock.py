"""One daemon per state directory: an exclusive flock held for the daemon's life.

Taken on ``<root>/pyctrd.lock`` and ``<run_root>/pyctrd.lock`` before anything
under them is read or cleaned (a second daemon used to wipe the first one's
staging dirs, then notice that the bus name was taken). flock is released by
the kernel when the daemon dies, however it dies, so a stale file never
blocks a restart. The file holds the owner's PID, for the refusal's message.
The descriptors are close-on-exec: conmon and runc must not inherit the lock
(they outlive the daemon).
"""

import errno
import fcntl
import os
from pathlib import Path

LOCK_NAME = "pyctrd.lock"


class AlreadyLocked(Exception):
    """Another process holds the lock; the message names its PID and the directory."""

    def __init__(self, directory: Path, pid: int | None) -> None:
        who = f"another pyctrd (pid {pid})" if pid else "another pyctrd"
        super().__init__(f"{who} uses {directory}; stop it first, or give this one "
                         "other --root and --run-root directories")
        self.directory = directory
        self.pid = pid


class RootLock:
    """Exclusive locks on each of ``directories`` (created 0700 if missing)."""

    def __init__(self, *directories: Path) -> None:
        # One lock per directory: flock conflicts between two opens of one file even
        # in one process, so --root and --run-root given as one directory lock once.
        self.directories = tuple(dict.fromkeys(Path(os.path.abspath(d)) for d in directories))
        self._fds: list[int] = []

    def acquire(self) -> None:
        """Lock every directory, or none (AlreadyLocked, OSError)."""
        try:
            for directory in self.directories:
                self._fds.append(_lock(directory))
        except BaseException:
            self.release()
            raise

    def release(self) -> None:
        for fd in self._fds:
            os.close(fd)
        self._fds.clear()

    def __enter__(self) -> "RootLock":
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _lock(directory: Path) -> int:
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = directory / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        os.close(fd)
        if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            raise AlreadyLocked(directory, _owner(path)) from None
        raise
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _owner(path: Path) -> int | None:
    """The PID the holder wrote (None if it has not yet, or the file is odd)."""
    try:
        text = path.read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
