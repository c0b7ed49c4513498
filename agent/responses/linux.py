"""Locking a Linux desktop session: logind first, the screen-saver DBus APIs as fallbacks.

``loginctl lock-session`` only *asks* logind to tell the session's screen locker to lock; if no
locker listens (or the agent runs outside the graphical session, e.g. from a systemd user
service) it returns 0 and nothing happens. So success is judged by logind's ``LockedHint``,
which the locker sets once the screen really is locked, and when that does not flip we ask the
screen savers directly over DBus.

Command lines are built by pure functions so tests can assert them, and every subprocess goes
through an injectable ``run`` (default :func:`subprocess.run`) with a timeout.
"""

from __future__ import annotations

import os
import subprocess
import time
from typing import Callable, Mapping, Sequence

from agent.responses.result import LockResult

Run = Callable[..., subprocess.CompletedProcess]

#: Seconds to wait for one loginctl / dbus-send call; a hung session bus must not hang the agent.
COMMAND_TIMEOUT_S = 5.0
#: How long the screen locker gets to set LockedHint after we asked logind to lock.
CONFIRM_TIMEOUT_S = 2.0
POLL_INTERVAL_S = 0.2

#: Session types that have a screen to lock (``tty`` and ``unspecified`` sessions do not).
GRAPHICAL_SESSION_TYPES = ("x11", "wayland", "mir")

#: (bus name, object path, method) of the screen-saver lock methods, tried in this order:
#: the freedesktop one is implemented by KDE, Xfce, Cinnamon, MATE, LXQt; GNOME has its own.
DBUS_LOCKS = (
    ("org.freedesktop.ScreenSaver", "/org/freedesktop/ScreenSaver", "org.freedesktop.ScreenSaver.Lock"),
    ("org.gnome.ScreenSaver", "/org/gnome/ScreenSaver", "org.gnome.ScreenSaver.Lock"),
)


# -- command lines (pure) -------------------------------------------------------------------


def lock_session_command(session_id: str) -> list[str]:
    return ["loginctl", "lock-session", session_id]


def locked_hint_command(session_id: str) -> list[str]:
    return ["loginctl", "show-session", session_id, "-p", "LockedHint", "--value"]


def user_display_command(uid: int) -> list[str]:
    """logind's idea of the user's *graphical* session ("Display" property of the user)."""
    return ["loginctl", "show-user", str(uid), "-p", "Display", "--value"]


def user_sessions_command(uid: int) -> list[str]:
    return ["loginctl", "show-user", str(uid), "-p", "Sessions", "--value"]


def session_properties_command(session_id: str) -> list[str]:
    return ["loginctl", "show-session", session_id, "-p", "Type", "-p", "Active"]


def dbus_lock_command(bus_name: str, object_path: str, method: str) -> list[str]:
    return ["dbus-send", "--session", "--print-reply", f"--dest={bus_name}", object_path, method]


# -- the locker -----------------------------------------------------------------------------


class LinuxLocker:
    """Lock the current user's graphical session; never raises, always returns a LockResult.

    Every collaborator with side effects is a parameter so the whole decision path runs in
    tests without a desktop: ``run`` (subprocess), ``env`` (for XDG_SESSION_ID), ``uid``,
    ``sleep`` and ``clock`` (so confirmation polling takes no real time).
    """

    def __init__(
        self,
        run: Run = subprocess.run,
        env: Mapping[str, str] | None = None,
        uid: int | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        confirm_timeout_s: float = CONFIRM_TIMEOUT_S,
        poll_interval_s: float = POLL_INTERVAL_S,
        command_timeout_s: float = COMMAND_TIMEOUT_S,
    ):
        self._run = run
        self._env = os.environ if env is None else env
        self._uid = os.getuid() if uid is None else uid
        self._sleep = sleep
        self._clock = clock
        self._confirm_timeout_s = confirm_timeout_s
        self._poll_interval_s = poll_interval_s
        self._command_timeout_s = command_timeout_s

    def __call__(self) -> LockResult:
        tried: list[str] = []  # one line per failed mechanism: the alert shows all of them
        session_id, why = self.find_session()
        if session_id is None:
            tried.append(f"loginctl: {why}")
        else:
            result = self._lock_via_logind(session_id)
            if result.ok:
                return result
            tried.append(result.detail)
        for bus_name, path, method in DBUS_LOCKS:
            ok, output = self._call(dbus_lock_command(bus_name, path, method))
            if ok:
                return LockResult(True, f"locked via {method} (the screen saver replied; LockedHint not confirmed)")
            tried.append(f"{method}: {output}")
        return LockResult(False, "every lock mechanism failed: " + "; ".join(tried))

    def find_session(self) -> tuple[str | None, str]:
        """Return ``(session id, how it was found)`` or ``(None, why not)``.

        XDG_SESSION_ID is set by pam_systemd for processes started inside the session, which is
        how the agent normally runs (XDG autostart). Without it, ask logind for the user's
        graphical session, then fall back to any active graphical session of the user.
        """
        session_id = self._env.get("XDG_SESSION_ID", "").strip()
        if session_id:
            return session_id, "XDG_SESSION_ID"
        ok, output = self._call(user_display_command(self._uid))
        if ok and output.strip():
            return output.strip(), "loginctl show-user Display"
        ok, output = self._call(user_sessions_command(self._uid))
        if not ok:
            return None, f"XDG_SESSION_ID is unset and the user's sessions are unknown ({output})"
        candidates = []
        for sid in output.split():
            ok, props = self._call(session_properties_command(sid))
            if not ok:
                continue
            fields = dict(line.split("=", 1) for line in props.splitlines() if "=" in line)
            if fields.get("Type") in GRAPHICAL_SESSION_TYPES:
                candidates.append((fields.get("Active") == "yes", sid))
        if not candidates:
            return None, f"XDG_SESSION_ID is unset and user {self._uid} has no graphical session"
        candidates.sort(reverse=True)  # active sessions first
        return candidates[0][1], "loginctl show-user Sessions"

    def _lock_via_logind(self, session_id: str) -> LockResult:
        ok, output = self._call(lock_session_command(session_id))
        if not ok:
            return LockResult(False, f"loginctl lock-session {session_id}: {output}")
        deadline = self._clock() + self._confirm_timeout_s
        while True:
            ok, hint = self._call(locked_hint_command(session_id))
            if ok and hint.strip() == "yes":
                return LockResult(True, f"locked session {session_id} via logind (LockedHint=yes)")
            if self._clock() >= deadline:
                break
            self._sleep(self._poll_interval_s)
        return LockResult(
            False,
            f"loginctl lock-session {session_id} returned 0 but LockedHint stayed "
            f"{hint.strip() or 'unknown'!r} for {self._confirm_timeout_s:g} s",
        )

    def _call(self, command: Sequence[str]) -> tuple[bool, str]:
        """Run one command; ``(True, stdout)`` on exit 0, else ``(False, reason)``. Never raises."""
        try:
            done = self._run(
                list(command), capture_output=True, text=True, timeout=self._command_timeout_s, check=False
            )
        except FileNotFoundError:
            return False, f"{command[0]} not found"
        except subprocess.TimeoutExpired:
            return False, f"{command[0]} timed out after {self._command_timeout_s:g} s"
        except (OSError, subprocess.SubprocessError) as exc:
            return False, f"{command[0]} failed to run: {exc}"
        if done.returncode != 0:
            err = (done.stderr or done.stdout or "").strip().splitlines()
            return False, f"exit {done.returncode}" + (f": {err[-1]}" if err else "")
        return True, done.stdout or ""


# -- is the session locked? (for the owner check before a pause or stop) ----------------------


def dbus_get_active_command(bus_name: str, object_path: str, interface: str) -> list[str]:
    return ["dbus-send", "--session", "--print-reply", f"--dest={bus_name}", object_path, f"{interface}.GetActive"]


class LinuxLockState:
    """``is_locked()``: True / False from logind's ``LockedHint`` of the session, else from the
    screen savers' ``GetActive`` over DBus; None when neither answers (then nobody can tell
    when the owner has unlocked, and a pause or stop is refused). Never raises."""

    def __init__(self, run: Run = subprocess.run, env: Mapping[str, str] | None = None, uid: int | None = None,
                 command_timeout_s: float = COMMAND_TIMEOUT_S):
        self._locker = LinuxLocker(run=run, env=env, uid=uid, command_timeout_s=command_timeout_s)

    def is_locked(self) -> bool | None:
        session_id, _ = self._locker.find_session()
        if session_id is not None:
            ok, hint = self._locker._call(locked_hint_command(session_id))
            if ok and hint.strip() in ("yes", "no"):
                return hint.strip() == "yes"
        for bus_name, path, method in DBUS_LOCKS:
            ok, output = self._locker._call(dbus_get_active_command(bus_name, path, method.rsplit(".", 1)[0]))
            if ok and "boolean" in output:
                return "boolean true" in output
        return None
