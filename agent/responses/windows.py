"""Locking a Windows session with ``user32.LockWorkStation``.

LockWorkStation only *requests* the lock and returns at once; a non-zero return means Windows
accepted the request. It fails (returns 0) when the caller is not on the interactive desktop,
e.g. when run as a service, which is exactly the case the alert must cover.

The function is resolved lazily (this module imports on any OS) and is injectable, so the
error handling runs in tests on Linux.
"""

from __future__ import annotations

from typing import Callable

from agent.responses.result import LockResult


def load_lock_workstation() -> tuple[Callable[[], int], Callable[[], int]]:
    """Return ``(LockWorkStation, get_last_error)`` from user32 via ctypes."""
    import ctypes
    from ctypes import wintypes

    # use_last_error: GetLastError is per thread and ctypes may clobber it; this keeps a copy.
    user32 = ctypes.WinDLL("user32", use_last_error=True)
    lock = user32.LockWorkStation
    lock.argtypes = []
    lock.restype = wintypes.BOOL
    return lock, ctypes.get_last_error


class WindowsLocker:
    """Lock the workstation; never raises, always returns a LockResult.

    ``load`` returns ``(lock_workstation, get_last_error)``; tests pass fakes.
    """

    def __init__(self, load: Callable[[], tuple[Callable[[], int], Callable[[], int]]] = load_lock_workstation):
        self._load = load

    def __call__(self) -> LockResult:
        try:
            lock_workstation, get_last_error = self._load()
        except Exception as exc:  # no windll off Windows, or a broken user32: report, don't raise
            return LockResult(False, f"user32.LockWorkStation is unavailable: {exc!r}")
        try:
            accepted = lock_workstation()
        except Exception as exc:
            return LockResult(False, f"LockWorkStation raised {exc!r}")
        if accepted:
            # Windows gives no synchronous confirmation; acceptance is the strongest signal.
            return LockResult(True, "LockWorkStation accepted the lock request")
        try:
            code = get_last_error()
        except Exception:
            code = "unknown"
        return LockResult(
            False,
            f"LockWorkStation refused the lock (error {code}); it works only from the interactive desktop",
        )
