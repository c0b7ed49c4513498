"""The watchdog: lock the session when the agent dies without an authenticated stop.

A ``kill -9`` of the agent ends protection without a word from the agent itself, so a second,
tiny process watches it: the agent starts ``python -m agent.watchdog`` with a pipe as its stdin
and keeps the write end open for as long as it lives. Before ending through an authenticated
stop (``mouseguard stop`` over the owner's private socket, the tray menu's Quit, the desktop
session ending) the agent writes ``CLEAN_STOP`` down the pipe. End of file without it means the
agent was killed (or crashed): the watchdog locks the session with the platform locker (alerts
if that fails), logs it and reports ``protection_stopped`` to the fleet.

It imports the standard library and the agent's stdlib-only modules (lockers, logging, fleet
events) — no numpy, torch or pynput — so it costs a few MB and starts in a blink. It ignores
SIGINT and SIGTERM: a Ctrl-C or ``kill`` sent to the agent's process group must not take the
watchdog with it.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
from types import SimpleNamespace
from typing import IO, Callable

#: What the agent writes down the pipe when it ends through an authenticated stop.
CLEAN_STOP = "clean stop"

log = logging.getLogger("mouseguard.watchdog")


def agent_ended_cleanly(pipe: IO[str]) -> bool:
    """Block until the agent's end of ``pipe`` closes; whether it said ``CLEAN_STOP`` first."""
    clean = False
    for line in pipe:
        clean = line.strip() == CLEAN_STOP
    return clean


def on_agent_killed(lock: Callable[[], object], alert: Callable[[str, str], None],
                    report: Callable[[str, str, str], None], pid: int) -> str:
    """Lock (alert when that fails), log in the words ``mouseguard history`` reads, report."""
    reason = f"the mouseguard agent (pid {pid}) ended without an authenticated stop (killed or crashed)"
    log.error("%s: locking the session", reason)
    actions = logging.getLogger("mouseguard.actions")
    try:
        result = lock()
        ok, detail = bool(getattr(result, "ok", False)), str(getattr(result, "detail", result))
    except Exception as exc:  # a locker should answer, not raise
        ok, detail = False, f"the locker raised {exc!r}"
    if ok:
        actions.warning("session locked: %s", detail)
        outcome = "locked"
    else:
        actions.error("LOCK FAILED: %s (reason for locking: %s)", detail, reason)
        alert("mouseguard: could not lock the session", f"{reason}. The session could not be locked: {detail}")
        outcome = "lock failed, alerted"
    report("protection_stopped", "not protecting", f"{reason}; the watchdog: {outcome}")
    return outcome


def _report_with(settings: dict) -> Callable[[str, str, str], None]:
    from agent import fleet_events
    from agent.forwarding import destinations

    try:
        forwarding = SimpleNamespace(**settings.get("forwarding", {}))
        found = destinations(forwarding, settings.get("state_dir", "."))
        fleet_events.start_reporting(fleet_events.Reporter(found) if found else None)
    except (TypeError, ValueError, OSError) as exc:
        log.error("the watchdog cannot report to the fleet: %s", exc)

    def report(name: str, state: str, reason: str) -> None:
        fleet_events.emit(name, state, reason)
        fleet_events.stop_reporting(timeout=3.0)

    return report


def main() -> int:
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    try:
        settings = json.loads(sys.stdin.readline() or "{}")
    except json.JSONDecodeError:
        settings = {}
    if settings.get("log"):
        from agent.logs import setup_logging

        setup_logging(os.path.dirname(settings["log"]), settings.get("level", "info"), console=False)
    pid = int(settings.get("pid", os.getppid()))
    if agent_ended_cleanly(sys.stdin):
        return 0
    from agent.responses import FallbackNotifier, platform_locker

    on_agent_killed(platform_locker(), FallbackNotifier(log), _report_with(settings), pid)
    return 1


class Watchdog:
    """The agent's side: start the watchdog process, say a clean stop, notice it gone."""

    def __init__(self, settings: dict):
        self.proc = subprocess.Popen([sys.executable, "-m", "agent.watchdog"], stdin=subprocess.PIPE,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True,
                                     start_new_session=True)  # not in the agent's process group
        self.proc.stdin.write(json.dumps({"pid": os.getpid(), **settings}) + "\n")
        self.proc.stdin.flush()

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def release(self, clean: bool) -> None:
        """The agent ends: ``clean`` after an authenticated stop, else the watchdog locks."""
        try:
            if clean:
                self.proc.stdin.write(CLEAN_STOP + "\n")
            self.proc.stdin.close()
        except OSError:  # the watchdog is gone already
            pass
        if clean:
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass


if __name__ == "__main__":
    sys.exit(main())
