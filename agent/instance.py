"""One agent per user: a lock file held for the agent's lifetime.

Two agents would fight over the status file and could both lock the session; a second one
started by autostart and again by hand is the usual way to get there. The lock is an OS file
lock (``flock`` on POSIX, ``msvcrt.locking`` on Windows), not "the file exists": the kernel
drops it when the holder dies, however it dies, so a crash never leaves a stale lock that
blocks the next start. The holder writes its pid into the file so the second instance can say
which process is in the way.

The file is never deleted: unlinking a lock file lets a third process lock a new file of the
same name while a second still waits on the old one.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from agent import paths
from agent.errors import MouseguardError

#: Windows: lock one byte far past the pid, because msvcrt locks are mandatory and a locked
#: byte cannot even be read by the second instance that wants to report the pid.
_WINDOWS_LOCK_OFFSET = 1 << 20


class AlreadyRunning(MouseguardError):
    """Another agent holds the instance lock; ``pid`` is its process id when known."""

    def __init__(self, pid: int | None, path: str | os.PathLike):
        self.pid = pid
        self.path = Path(path)
        who = f"pid {pid}" if pid is not None else "pid unknown"
        super().__init__(f"mouseguard is already running ({who}; lock file {self.path})")


class InstanceLock:
    """Context manager holding the single-instance lock at ``path``.

    >>> with InstanceLock(paths.lock_file()):
    ...     run_agent()
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> InstanceLock:
        """Take the lock without waiting, or raise ``AlreadyRunning``."""
        if self._fd is not None:
            raise RuntimeError(f"instance lock {self.path} is already held by this object")
        if not self.path.parent.exists():
            paths.ensure(self.path.parent)
        # O_CREAT without O_TRUNC: the pid of a running holder must survive our open.
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if not _try_lock(fd):
                raise AlreadyRunning(_read_pid(fd), self.path)
            os.lseek(fd, 0, os.SEEK_SET)
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode("ascii"))
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return self

    def release(self) -> None:
        """Give the lock up (idempotent). Clearing the pid first means nobody reads a stale one."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.ftruncate(fd, 0)
            _unlock(fd)
        finally:
            os.close(fd)

    def __enter__(self) -> InstanceLock:
        return self.acquire()

    def __exit__(self, *exc_info) -> None:
        self.release()


def running_pid(path: str | os.PathLike) -> int | None:
    """The pid of the agent holding the lock at ``path``, or None when no agent holds it.

    For tools that must find the agent (the uninstaller stops it before removing its files).
    None also when the lock is held but the holder has not written its pid yet.
    """
    if not Path(path).exists():
        return None
    try:
        InstanceLock(path).acquire().release()
    except AlreadyRunning as running:
        return running.pid
    return None


def _read_pid(fd: int) -> int | None:
    # The holder writes its pid right after locking; give it a moment if we came in between.
    for _ in range(10):
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, 64).decode("ascii", "replace").strip()
        if text.isdigit():
            return int(text)
        time.sleep(0.05)
    return None


if sys.platform == "win32":
    import msvcrt

    def _try_lock(fd: int) -> bool:
        os.lseek(fd, _WINDOWS_LOCK_OFFSET, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

    def _unlock(fd: int) -> None:
        os.lseek(fd, _WINDOWS_LOCK_OFFSET, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _try_lock(fd: int) -> bool:
        # flock, not fcntl/lockf: POSIX record locks are per process, so a second lock in the
        # same process would silently succeed; flock conflicts per open file.
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)
