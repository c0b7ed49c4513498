"""The act stage: what happens once the decision says someone else is at the mouse.

``Actor.act`` is called from the decision thread and must never raise: an exception there
would end protection silently. Every failure (locker missing, lock unconfirmed, locker or
notifier raising) is logged and, where anything can still be shown, turned into an alert.
"""

from __future__ import annotations

import logging

from agent.responses.alert import Notify
from agent.responses.result import Locker, LockResult

ACTIONS = ("lock", "alert", "log")

#: Outcomes returned by :meth:`Actor.act` (the agent maps them to tray states and the log).
LOCKED = "locked"
ALERTED = "alerted"
LOGGED = "logged"
LOCK_FAILED = "lock failed → alerted"

ALERT_TITLE = "mouseguard: someone else may be at the mouse"
LOCK_FAILED_TITLE = "mouseguard: could not lock the session"


class Actor:
    """Carry out the configured ``action`` ("lock", "alert" or "log") for one detection."""

    def __init__(self, action: str, locker: Locker, notify: Notify, log: logging.Logger | None = None):
        if action not in ACTIONS:
            raise ValueError(f"unknown action {action!r}; expected one of {', '.join(ACTIONS)}")
        self.action = action
        self._locker = locker
        self._notify = notify
        self._log = log or logging.getLogger("mouseguard.actions")

    def act(self, reason: str, action: str | None = None) -> str:
        """Act on one detection; returns one of LOCKED, ALERTED, LOGGED, LOCK_FAILED. Never raises.
        ``action``: instead of the configured one (injected input has a setting of its own)."""
        try:
            return self._act(reason, action or self.action)
        except Exception:  # belt and braces: even a bug in this class must not kill the caller
            self._log.exception("acting on %r failed", reason)
            self._alert(ALERT_TITLE, reason)
            return ALERTED

    def _act(self, reason: str, action: str) -> str:
        if action == "log":
            self._log.warning("impostor suspected (action=log, nothing else done): %s", reason)
            return LOGGED
        if action == "alert":
            self._log.warning("impostor suspected, alerting: %s", reason)
            self._alert(ALERT_TITLE, reason)
            return ALERTED
        self._log.warning("impostor suspected, locking: %s", reason)
        result = self._lock()
        if result.ok:
            self._log.warning("session locked: %s", result.detail)
            return LOCKED
        self._log.error("LOCK FAILED: %s (reason for locking: %s)", result.detail, reason)
        self._alert(LOCK_FAILED_TITLE, f"{reason}. The session could not be locked: {result.detail}")
        return LOCK_FAILED

    def _lock(self) -> LockResult:
        try:
            result = self._locker()
        except Exception as exc:
            self._log.exception("the locker raised")
            return LockResult(False, f"the locker raised {exc!r}")
        if not isinstance(result, LockResult):  # a locker that forgot to answer has not locked
            return LockResult(False, f"the locker returned {result!r} instead of a LockResult")
        return result

    def _alert(self, title: str, message: str) -> None:
        try:
            self._notify(title, message)
        except Exception:
            # Nothing left to show it with; the ERROR line is the alert of last resort.
            self._log.exception("could not show the alert %r: %s", title, message)
