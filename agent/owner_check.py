"""Weakening costs the owner's password: lock the session first, go on only once it is unlocked.

A pause or a stop asked at an unlocked desk may come from whoever sits there. So before
``Agent.control`` applies one, it locks the session with the platform locker and waits until the
OS reports the session locked and then unlocked again — which only the password does. Where the
lock cannot be made or its state cannot be read (no logind, no screen saver on DBus, an OS
without a lock-state module yet), the request is refused: an unlock nobody can confirm is no
proof of the owner.

The lock state comes from a small per-OS module (``agent.responses.linux.LinuxLockState``; the
others answer "unknown" until they have one).
"""

from __future__ import annotations

import logging
import time
from typing import Callable

log = logging.getLogger("mouseguard.agent")

#: How long the owner has to type the password after the lock before the request is dropped.
UNLOCK_WAIT_S = 120.0
#: How long the OS has to report the lock it was asked for.
LOCKED_WAIT_S = 5.0
POLL_S = 0.25


class OwnerCheck:
    """``owner_check(what) -> (ok, message)``: lock, then wait for locked and then unlocked."""

    def __init__(self, locker, is_locked: Callable[[], bool | None], *, unlock_wait_s: float = UNLOCK_WAIT_S,
                 locked_wait_s: float = LOCKED_WAIT_S, poll_s: float = POLL_S,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic):
        self.locker = locker
        self.is_locked = is_locked
        self.unlock_wait_s = unlock_wait_s
        self.locked_wait_s = locked_wait_s
        self.poll_s = poll_s
        self.sleep = sleep
        self.clock = clock

    def __call__(self, what: str) -> tuple[bool, str]:
        try:
            result = self.locker()
        except Exception as exc:  # a locker should answer, not raise; either way: no proof
            return False, f"{what} refused: the session could not be locked to ask for the password ({exc!r})"
        if not getattr(result, "ok", False):
            return False, (f"{what} refused: the session could not be locked to ask for the password "
                           f"({getattr(result, 'detail', result)})")
        log.warning("%s asked: session locked, waiting for the owner's password", what)
        if not self._wait_for(True, self.locked_wait_s):
            return False, f"{what} refused: {self._why}"
        if not self._wait_for(False, self.unlock_wait_s):
            return False, f"{what} refused: {self._why}"
        log.warning("%s: the session was unlocked with the password", what)
        return True, "the session was unlocked with the password"

    def _wait_for(self, locked: bool, seconds: float) -> bool:
        deadline = self.clock() + seconds
        while True:
            state = self.is_locked()
            if state is None:
                self._why = "the session's lock state cannot be read, so no unlock can be confirmed"
                return False
            if state is locked:
                return True
            if self.clock() >= deadline:
                self._why = (f"the session was not reported locked within {seconds:g} s" if locked else
                             f"the session was not unlocked within {seconds:g} s")
                return False
            self.sleep(self.poll_s)


def platform_lock_state(platform: str | None = None) -> Callable[[], bool | None]:
    """``is_locked`` for this OS; one that always says "unknown" where there is no module yet."""
    import sys

    platform = platform or sys.platform
    if platform.startswith("linux") or platform.startswith("freebsd"):
        from agent.responses.linux import LinuxLockState

        return LinuxLockState().is_locked
    return lambda: None
