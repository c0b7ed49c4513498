"""The status file: how ``mouseguard status`` (another process) sees the running agent.

The agent rewrites one small JSON file on every state change and at least every
``HEARTBEAT_SECONDS``; ``mouseguard status`` reads it. A file is only evidence of a running
agent while its writer is alive and keeps it fresh: a crashed agent leaves its last "protected"
behind, and reporting that as protection would be the silent failure the design forbids. So
a dead pid or a file older than ``STALE_SECONDS`` reads as "not running (last seen ...)", and
a file that is there but is no status (damaged, a folder) as "unknown", not as "no status file".

An agent that ends, or refuses to start (bad config, no display), writes why into ``stopped``:
an autostarted agent has nobody reading its stderr, so this file and the log are where
"not running: why" can be found. ``mouseguard status`` exits with a code scripts can test
(``EXIT_CODES``).
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.files import atomic_write_text
from agent.states import ALERTED, LOCKED, PROTECTED, STATES, SUSPICIOUS

FORMAT_VERSION = 1
#: The running agent rewrites the status at least this often, even when nothing changed.
HEARTBEAT_SECONDS = 30
#: A status not rewritten for this long is not trusted: four missed heartbeats.
STALE_SECONDS = 4 * HEARTBEAT_SECONDS

#: ``mouseguard status`` exit codes (2 stays what every command exits with on bad input).
EXIT_PROTECTED = 0  # running and judging the mouse (protected or suspicious)
EXIT_NOT_PROTECTING = 1  # running but not judging: learning, not enrolled, paused, not protecting
EXIT_NOT_RUNNING = 3  # no agent: never ran, stopped, refused to start, crashed, or status unreadable
EXIT_ACTED = 4  # running, and it has just locked (or alerted on) someone it took for an impostor
EXIT_CODES = {
    EXIT_PROTECTED: "protected (or suspicious): the agent is judging the mouse",
    EXIT_NOT_PROTECTING: "running but not protecting: learning, not enrolled, paused or not protecting",
    EXIT_NOT_RUNNING: "not running (or its status file is unreadable)",
    EXIT_ACTED: "locked or alerted: the agent has just acted on a suspected impostor",
}


def write_status(
    path: str | os.PathLike,
    state: str,
    since: float,
    blocks_scored: int,
    last_score: float | None,
    pid: int,
    detail: str = "",
    model: str = "",
    *,
    now: float | None = None,
    extra: dict[str, Any] | None = None,
) -> None:
    """Atomically replace the status file (0600) with ``make_status``'s payload.

    ``since`` is when ``state`` began and ``now`` when this was written, both wall-clock
    seconds (``time.time()``): they are shown to a person and compared across processes, so
    the monotonic clock the capture uses would mean nothing here. ``extra`` adds the optional
    fields of ``_FIELDS`` (``stopped``, ``grace_until``, ``trial_hours_left``, ``log``); a
    None value is left out.
    """
    payload = make_status(state, since, blocks_scored, last_score, pid, detail, model, now=now, extra=extra)
    atomic_write_text(path, json.dumps(payload, indent=2) + "\n")


def make_status(state: str, since: float, blocks_scored: int, last_score: float | None, pid: int,
                detail: str = "", model: str = "", *, now: float | None = None,
                extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The status the file holds, and the running agent answers to ``mouseguard status``."""
    if state not in STATES:
        raise ValueError(f"unknown state {state!r} (expected one of {', '.join(STATES)})")
    payload = {
        "version": FORMAT_VERSION,
        "state": state,
        "since": float(since),
        "updated": float(time.time() if now is None else now),
        "blocks_scored": int(blocks_scored),
        "last_score": None if last_score is None else float(last_score),
        "pid": int(pid),
        "detail": str(detail),
        "model": str(model),
    }
    for key, value in (extra or {}).items():
        if key not in _FIELDS or key in payload:
            raise ValueError(f"unknown optional status field {key!r}")
        if value is not None:
            payload[key] = value
    return payload


def read_status(path: str | os.PathLike) -> dict[str, Any] | None:
    """The status written by ``write_status``; None when there is no status file.

    A file that is there but holds no such status comes back as ``{"unreadable": why}``:
    "no status file" would be untrue, and its fields must not reach ``format_status``'s
    clock and arithmetic.
    """
    try:
        payload = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None  # never written, or removed
    except UnicodeDecodeError:
        why = "not UTF-8 text"
    except (ValueError, RecursionError):  # RecursionError: json's limit on nesting
        why = "not JSON"
    except OSError as exc:  # a folder, no permission
        why = exc.strerror.lower() if exc.strerror else str(exc)
    else:
        why = _damage(payload)
        if why is None:
            return payload
    return {"unreadable": f"the status file {path} is unreadable: {why}"}


def format_status(
    status: dict[str, Any] | None,
    now: float,
    *,
    stale_after: float = STALE_SECONDS,
    is_alive: Callable[[int], bool] | None = None,
) -> str:
    """Human-readable lines for ``mouseguard status`` (joined with newlines, no trailing one).

    ``is_alive`` (default ``pid_alive``) is a seam for tests.
    """
    return assess(status, now, stale_after=stale_after, is_alive=is_alive)[1]


def assess(
    status: dict[str, Any] | None,
    now: float,
    *,
    stale_after: float = STALE_SECONDS,
    is_alive: Callable[[int], bool] | None = None,
) -> tuple[int, str]:
    """``(exit code, text)`` of ``mouseguard status``: the code from ``EXIT_CODES``."""
    if not status:
        return EXIT_NOT_RUNNING, "not running (no status file: the agent has not run, or not as this user)"
    if "unreadable" in status:
        return EXIT_NOT_RUNNING, f"unknown ({status['unreadable']})"
    is_alive = pid_alive if is_alive is None else is_alive
    state = str(status.get("state", "unknown"))
    pid = status.get("pid")
    updated = _number(status.get("updated"))
    since = _number(status.get("since"))

    if updated is None:
        return EXIT_NOT_RUNNING, "not running (the status file is incomplete)"
    alive = isinstance(pid, int) and is_alive(pid)
    age = now - updated
    if status.get("stopped"):
        # The agent said why it ended (or never started): that is the news, not its last state.
        return EXIT_NOT_RUNNING, f"not running: {status['stopped']} ({_clock(updated, now)}, {_ago(age)})"
    if not alive or abs(age) > stale_after:  # from far in the future: a clock jump, or not ours
        seen = f"last seen {_clock(updated, now)}, {_ago(age)}, {state}"
        if alive:  # the process exists but stopped writing: hung, or the pid was reused
            seen += f"; process {pid} exists but stopped updating its status"
        return EXIT_NOT_RUNNING, f"not running ({seen})"

    blocks = int(status.get("blocks_scored") or 0)
    score = _number(status.get("last_score"))
    grace_until = _number(status.get("grace_until"))
    when = f" since {_clock(since, now)} ({_ago(now - since)})" if since is not None else ""
    if grace_until is not None and grace_until > now:
        # the score that acted is in the detail; nothing newer is judged until the grace ends
        judged = f"no decision until {_clock(grace_until, now)} (grace period after acting)"
    elif score is not None:
        judged = f"last rolling score {score:.2f}"
    else:
        judged = "no rolling score yet"
    parts = [f"{state}{when}", f"{blocks} block{'' if blocks == 1 else 's'} scored", judged]
    lines = [", ".join(parts)]
    if status.get("detail"):
        lines.append(f"  {status['detail']}")
    trial = _number(status.get("trial_hours_left"))
    if trial is not None:
        lines.append(f"  trial: alert only, {_hours(trial)} of active use left, then it locks")
    model = status.get("model")
    if model:
        if Path(model).exists():
            lines.append(f"  model: {model}")
            lines.extend(_model_age(status, now))
        else:
            lines.append(f"  model: none yet (enrolment writes it to {model})")
    lines.append(f"  agent pid {pid}")
    if state in (PROTECTED, SUSPICIOUS):
        code = EXIT_PROTECTED
    elif state in (LOCKED, ALERTED):
        code = EXIT_ACTED
    else:
        code = EXIT_NOT_PROTECTING
    return code, "\n".join(lines)


def _model_age(status: dict[str, Any], now: float) -> list[str]:
    """The model's age and its last update (docs/template-update.md), where the agent said them."""
    enrolled = _number(status.get("model_enrolled"))
    if enrolled is None:
        return []
    updated = _number(status.get("model_updated"))
    line = f"  model age: enrolled {_clock(enrolled, now)} ({_ago(now - enrolled)}); "
    line += (f"last updated {_clock(updated, now)} ({_ago(now - updated)})" if updated is not None
             else "never updated")
    hours = _number(status.get("template_hours"))
    if hours is not None:
        line += f"; {_hours(hours)} of active use since the last update check"
    return [line]


def _hours(hours: float) -> str:
    if hours >= 1:
        return f"{hours:.1f} h"
    return f"{max(1, round(hours * 60))} min"


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists (it may belong to another user)."""
    if pid <= 0:
        return False
    if sys.platform == "win32":
        return _windows_pid_alive(pid)
    try:
        os.kill(pid, 0)  # signal 0: existence check only, nothing is sent
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, but is not ours to signal
    return True


def _windows_pid_alive(pid: int) -> bool:
    # os.kill on Windows terminates the process whatever the signal, so ask the kernel instead.
    import ctypes

    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined]
    handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
    if not handle:
        return ctypes.get_last_error() == 5  # ERROR_ACCESS_DENIED: exists, not ours
    try:
        code = ctypes.c_ulong()
        if not kernel32.GetExitCodeProcess(handle, ctypes.byref(code)):
            return True
        return code.value == 259  # STILL_ACTIVE
    finally:
        kernel32.CloseHandle(handle)


def _number(value: Any) -> float | None:
    """``value`` as a finite float; None for anything else (NaN, an int too large for a float)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _is_time(value: Any) -> bool:
    """A wall-clock time that ``time.localtime`` can show (1e300 overflows it)."""
    number = _number(value)
    if number is None:
        return False
    try:
        time.localtime(number)
    except (OverflowError, OSError, ValueError):
        return False
    return True


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


#: What ``write_status`` writes in each field. A pid is at most 31 bits: os.kill's pid_t and the
#: Windows check's C int overflow beyond.
_FIELDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "state": (lambda v: isinstance(v, str), "text"),
    "since": (_is_time, "a time"),
    "updated": (_is_time, "a time"),
    "blocks_scored": (_is_count, "a count"),
    "last_score": (lambda v: v is None or _number(v) is not None, "a score"),
    "pid": (lambda v: _is_count(v) and 0 < v < 2**31, "a process id"),
    "detail": (lambda v: isinstance(v, str), "text"),
    "model": (lambda v: isinstance(v, str), "text"),
    # optional: written only when they apply
    "stopped": (lambda v: isinstance(v, str), "text"),
    "grace_until": (_is_time, "a time"),
    "trial_hours_left": (lambda v: _number(v) is not None and v >= 0, "a number of hours"),
    "log": (lambda v: isinstance(v, str), "text"),
    "control": (lambda v: isinstance(v, str), "text"),  # the agent answers `status` on its socket
    "model_enrolled": (_is_time, "a time"),
    "model_updated": (_is_time, "a time"),
    "template_hours": (lambda v: _number(v) is not None and v >= 0, "a number of hours"),
}


def _damage(payload: Any) -> str | None:
    """Why ``payload`` is not a status ``write_status`` wrote, or None when it is one."""
    if not isinstance(payload, dict):
        return "not a JSON object"
    if "updated" not in payload:
        return "'updated' is missing"
    for key, (ok, what) in _FIELDS.items():
        if key in payload and not ok(payload[key]):
            return f"{key!r} is not {what}"
    return None


def _clock(timestamp: float, now: float) -> str:
    """Local time of day; with the date too when it is not today."""
    then, today = time.localtime(timestamp), time.localtime(now)
    if then[:3] == today[:3]:
        return time.strftime("%H:%M", then)
    return time.strftime("%Y-%m-%d %H:%M", then)


def _ago(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 5:
        return "just now"  # also absorbs small clock differences that make it negative
    if seconds < 60:
        return f"{seconds} s ago"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    if seconds < 86400:
        hours, minutes = divmod(seconds // 60, 60)
        return f"{hours} h {minutes} min ago" if minutes else f"{hours} h ago"
    days = seconds // 86400
    return f"{days} day{'' if days == 1 else 's'} ago"
