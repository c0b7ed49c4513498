"""The agent's response when it judges an impostor: lock the session, alert, or only log — per OS.

(The "mouse actions" of :mod:`agent.mouse_actions` are something else: movement segments.)

``platform_locker()`` picks the locker for the running OS; ``Actor`` wraps it with the
policy (which action, what to do when the lock fails). Per-OS modules import nothing
OS-specific at import time, so every one of them imports (and is tested) on Linux.
"""

from __future__ import annotations

import sys

from agent.responses.actor import ACTIONS, ALERTED, LOCK_FAILED, LOCKED, LOGGED, Actor
from agent.responses.alert import FallbackNotifier, Notify
from agent.responses.result import Locker, LockResult

__all__ = [
    "ACTIONS",
    "ALERTED",
    "LOCK_FAILED",
    "LOCKED",
    "LOGGED",
    "Actor",
    "FallbackNotifier",
    "LockResult",
    "Locker",
    "Notify",
    "platform_locker",
]


def platform_locker(platform: str = sys.platform) -> Locker:
    """The locker for ``platform`` (default: this machine's)."""
    if platform == "win32":
        from agent.responses.windows import WindowsLocker

        return WindowsLocker()
    if platform == "darwin":
        from agent.responses.macos import MacLocker

        return MacLocker()
    if platform.startswith("linux") or platform.startswith("freebsd"):
        from agent.responses.linux import LinuxLocker

        return LinuxLocker()
    return _UnsupportedLocker(platform)


class _UnsupportedLocker:
    """Always fails, so the Actor alerts instead of pretending to lock."""

    def __init__(self, platform: str):
        self._platform = platform

    def __call__(self) -> LockResult:
        return LockResult(False, f"locking is not supported on {self._platform}")
