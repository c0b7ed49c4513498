"""Locking a macOS session with ``SACLockScreenImmediate`` from the private login framework.

This is the call behind the Ctrl+Cmd+Q shortcut. Its declared return type varies between
sources (void or int), so its return value is ignored and the lock is confirmed instead by
polling the window-server session dictionary for ``CGSSessionScreenIsLocked`` (public
CoreGraphics API, reached via ctypes so pyobjc is not a dependency).

The library loader and the confirmation probe are injectable, so the error handling runs in
tests on Linux.
"""

from __future__ import annotations

import time
from typing import Any, Callable

from agent.responses.result import LockResult

LOGIN_FRAMEWORK = "/System/Library/PrivateFrameworks/login.framework/Versions/Current/login"
CORE_GRAPHICS = "/System/Library/Frameworks/CoreGraphics.framework/CoreGraphics"
CORE_FOUNDATION = "/System/Library/Frameworks/CoreFoundation.framework/CoreFoundation"
_CF_STRING_ENCODING_UTF8 = 0x08000100

CONFIRM_TIMEOUT_S = 2.0
POLL_INTERVAL_S = 0.1


def _cdll(path: str) -> Any:
    import ctypes

    return ctypes.CDLL(path)


def cgsession_is_locked(load_library: Callable[[str], Any] = _cdll) -> bool:
    """True when the current window-server session shows the lock screen.

    The key is present only while locked. Every pointer type is declared: with ctypes' default
    ``int`` return type a 64-bit pointer would be truncated and crash the process.
    """
    import ctypes

    cg = load_library(CORE_GRAPHICS)
    cf = load_library(CORE_FOUNDATION)
    cg.CGSessionCopyCurrentDictionary.argtypes = []
    cg.CGSessionCopyCurrentDictionary.restype = ctypes.c_void_p
    cf.CFStringCreateWithCString.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_uint32]
    cf.CFStringCreateWithCString.restype = ctypes.c_void_p
    cf.CFDictionaryGetValue.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    cf.CFDictionaryGetValue.restype = ctypes.c_void_p
    cf.CFRelease.argtypes = [ctypes.c_void_p]
    cf.CFRelease.restype = None

    session = cg.CGSessionCopyCurrentDictionary()
    if not session:
        raise OSError("no window-server session (the agent is not running in the user's GUI session)")
    key = cf.CFStringCreateWithCString(None, b"CGSSessionScreenIsLocked", _CF_STRING_ENCODING_UTF8)
    try:
        return bool(cf.CFDictionaryGetValue(session, key))
    finally:
        cf.CFRelease(key)
        cf.CFRelease(session)


class MacLocker:
    """Lock the screen; never raises, always returns a LockResult.

    ``load_library(path)`` returns an object with a ``SACLockScreenImmediate`` attribute
    (default :class:`ctypes.CDLL`); ``is_locked()`` is the confirmation probe.
    """

    def __init__(
        self,
        load_library: Callable[[str], Any] = _cdll,
        is_locked: Callable[[], bool] = cgsession_is_locked,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        confirm_timeout_s: float = CONFIRM_TIMEOUT_S,
        poll_interval_s: float = POLL_INTERVAL_S,
    ):
        self._load_library = load_library
        self._is_locked = is_locked
        self._sleep = sleep
        self._clock = clock
        self._confirm_timeout_s = confirm_timeout_s
        self._poll_interval_s = poll_interval_s

    def __call__(self) -> LockResult:
        try:
            login = self._load_library(LOGIN_FRAMEWORK)
            lock_screen = login.SACLockScreenImmediate
            lock_screen.argtypes = []
            lock_screen.restype = None
        except Exception as exc:  # framework moved/removed in a future macOS, or not macOS at all
            return LockResult(False, f"SACLockScreenImmediate is unavailable: {exc!r}")
        try:
            lock_screen()
        except Exception as exc:
            return LockResult(False, f"SACLockScreenImmediate raised {exc!r}")
        deadline = self._clock() + self._confirm_timeout_s
        while True:
            try:
                if self._is_locked():
                    return LockResult(True, "locked via SACLockScreenImmediate (CGSSessionScreenIsLocked)")
            except Exception as exc:
                return LockResult(False, f"SACLockScreenImmediate was called but the lock cannot be confirmed: {exc!r}")
            if self._clock() >= deadline:
                return LockResult(
                    False,
                    "SACLockScreenImmediate was called but the screen was not locked after "
                    f"{self._confirm_timeout_s:g} s",
                )
            self._sleep(self._poll_interval_s)
