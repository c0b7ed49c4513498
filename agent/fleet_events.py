"""Fleet events: the decisions that matter, as structured records for a security team.

A lock at one desk is invisible to the company that deployed the agent unless it is reported
where that company already collects events (the system log, a SIEM's HTTPS collector). This
module is the schema of those reports and the one way to send them: ``emit(name, ...)``.

What an event holds is fixed here, field by field (README, "Reporting to a security team"):
who and where (user, host), which agent, the state it is in now, a one-line reason and, for a
decision, the rolling score and the threshold. Never mouse data: no positions, no events, no
block scores — ``Event`` has no field that could carry them, and ``emit`` takes no free-form
extras.

Sending never blocks or crashes the caller (the decision thread, the tray): ``emit`` only puts
the event on each destination's bounded in-memory queue; one thread per destination delivers,
so a hanging webhook cannot delay the syslog line. A destination that fails logs once, not per
event, and once more when it works again.

``emit`` is a no-op until ``start_reporting`` installed a ``Reporter`` (the agent does, from the
``[forwarding]`` settings); code elsewhere in the agent process (pause, model updates) just
calls ``emit`` and need not know whether reporting is configured.
"""

from __future__ import annotations

import getpass
import logging
import os
import queue
import socket
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from agent import __version__

log = logging.getLogger("mouseguard.fleet")

SCHEMA_VERSION = 1

# -- the events ------------------------------------------------------------------------------
AGENT_STARTED = "agent_started"
AGENT_STOPPED = "agent_stopped"
LOCKED = "locked"  # an impostor was judged and the session lock was confirmed
LOCK_FAILED = "lock_failed"  # an impostor was judged, the lock failed: the user was alerted instead
ALERTED = "alerted"  # an impostor was judged, action = "alert"
IMPOSTOR_LOGGED = "impostor_logged"  # an impostor was judged, action = "log"
MODEL_REFUSED = "model_refused"  # hash or manifest mismatch: the model was not used
PROTECTION_STOPPED = "protection_stopped"  # hook dead, no valid score, scoring failed
PROTECTION_RESTORED = "protection_restored"  # ... and back to judging
PAUSED = "paused"
RESUMED = "resumed"
MODEL_UPDATED = "model_updated"  # a new model is in use (automatic enrolment, cohort refit, update)

#: Event name -> syslog severity (RFC 5424 numbers: 3 error, 4 warning, 5 notice).
SEVERITY = {
    AGENT_STARTED: 5,
    AGENT_STOPPED: 5,
    LOCKED: 4,
    LOCK_FAILED: 3,
    ALERTED: 4,
    IMPOSTOR_LOGGED: 4,
    MODEL_REFUSED: 3,
    PROTECTION_STOPPED: 3,
    PROTECTION_RESTORED: 5,
    PAUSED: 4,  # a person chose to switch protection off: worth a look, not an error
    RESUMED: 5,
    MODEL_UPDATED: 5,
}
EVENTS = tuple(SEVERITY)
SEVERITY_NAMES = {3: "error", 4: "warning", 5: "notice"}

#: A reason is one line for a person; bounded so a syslog datagram stays under 2048 bytes
#: (RFC 5426: receivers should accept that much, must accept 480).
MAX_REASON = 400
#: Events waiting per destination in memory; beyond it new ones are dropped (and counted).
MEMORY_QUEUE = 1000


@dataclass(frozen=True)
class Event:
    """One report. Every field is a plain value; README documents each one."""

    schema: int
    id: str  # unique: a receiver can drop the duplicates a retried webhook delivery may cause
    event: str
    time: str  # RFC 3339, UTC, microseconds
    host: str
    user: str  # the account the agent runs as
    agent_version: str
    pid: int
    state: str  # the agent's state after the decision (the tray's state names)
    severity: str
    reason: str
    score: float | None  # the rolling mean P(genuine) the decision was taken on, where one was
    threshold: float | None  # the threshold it was compared with

    def to_json_dict(self) -> dict:
        return asdict(self)


def rfc3339(timestamp: float) -> str:
    seconds = int(timestamp)
    micro = int(round((timestamp - seconds) * 1e6))
    if micro == 1_000_000:
        seconds, micro = seconds + 1, 0
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{micro:06d}Z"


def one_line(text: str, limit: int = MAX_REASON) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def make_event(name: str, state: str, reason: str = "", score: float | None = None,
               threshold: float | None = None, *, now: float | None = None, user: str | None = None,
               host: str | None = None) -> Event:
    if name not in SEVERITY:
        raise ValueError(f"unknown fleet event {name!r} (expected one of {', '.join(EVENTS)})")
    severity = SEVERITY[name]
    return Event(
        schema=SCHEMA_VERSION,
        id=uuid.uuid4().hex,
        event=name,
        time=rfc3339(time.time() if now is None else now),
        host=host or socket.gethostname() or "-",
        user=user if user is not None else _login(),
        agent_version=__version__,
        pid=os.getpid(),
        state=str(state),
        severity=SEVERITY_NAMES[severity],
        reason=one_line(reason),
        score=None if score is None else round(float(score), 6),
        threshold=None if threshold is None else round(float(threshold), 6),
    )


def _login() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name (a container without passwd entry): say so, do not fail
        return "-"


# -- destinations ----------------------------------------------------------------------------


class Destination:
    """Where events go (syslog, webhook). ``deliver`` runs on the destination's own thread and
    may block or raise; ``describe`` names it in log lines (without secrets)."""

    name = "destination"

    def deliver(self, event: Event) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def close(self) -> None:
        pass


class _Courier(threading.Thread):
    """One destination's queue and thread: failures logged once, then once when it recovers."""

    def __init__(self, destination: Destination):
        super().__init__(name=f"mouseguard-fleet-{destination.name}", daemon=True)
        self.destination = destination
        self.queue: queue.Queue[Event | None] = queue.Queue(MEMORY_QUEUE)
        self.failing = False
        self.lost = 0  # events not delivered since the destination started failing
        self.dropped = 0  # events dropped because the memory queue was full

    def offer(self, event: Event) -> None:
        try:
            self.queue.put_nowait(event)
        except queue.Full:
            self.dropped += 1
            if self.dropped == 1:
                log.error("fleet reporting to %s cannot keep up: events are being dropped", self.destination.name)

    def run(self) -> None:
        while True:
            event = self.queue.get()
            try:
                if event is None:
                    return
                self._deliver(event)
            finally:
                self.queue.task_done()

    def _deliver(self, event: Event) -> None:
        try:
            self.destination.deliver(event)
        except Exception as exc:
            self.lost += 1
            if not self.failing:
                self.failing = True
                log.error("fleet reporting to %s failed: %s (not logged again until it recovers)",
                          self.destination.name, one_line(str(exc) or type(exc).__name__, 300))
            return
        if self.failing:
            self.failing = False
            log.warning("fleet reporting to %s works again (%d event%s lost meanwhile)",
                        self.destination.name, self.lost, "" if self.lost == 1 else "s")
            self.lost = 0


class Reporter:
    """Fans each event out to the destinations, each on its own thread."""

    def __init__(self, destinations: Sequence[Destination], *, user: str | None = None):
        self.user = user
        self._couriers = [_Courier(d) for d in destinations]
        for courier in self._couriers:
            courier.start()

    @property
    def destinations(self) -> list[Destination]:
        return [c.destination for c in self._couriers]

    def emit(self, name: str, state: str, reason: str = "", score: float | None = None,
             threshold: float | None = None) -> Event:
        event = make_event(name, state, reason, score, threshold, user=self.user)
        for courier in self._couriers:
            courier.offer(event)
        return event

    def flush(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for every queued event to be handed over; True if
        all were. (A webhook destination hands over to its disk queue, not the server.)"""
        deadline = time.monotonic() + timeout
        for courier in self._couriers:
            while courier.queue.unfinished_tasks:
                if time.monotonic() >= deadline:
                    return False
                time.sleep(0.01)
        return True

    def close(self, timeout: float = 2.0) -> None:
        """Deliver what is queued (up to ``timeout``), then end the threads."""
        self.flush(timeout)
        for courier in self._couriers:
            courier.offer(None)  # type: ignore[arg-type]
        deadline = time.monotonic() + timeout
        for courier in self._couriers:
            courier.join(max(0.0, deadline - time.monotonic()))
            try:
                courier.destination.close()
            except Exception:
                log.exception("closing fleet destination %s failed", courier.destination.name)


# -- the process-wide reporter -----------------------------------------------------------------

_reporter: Reporter | None = None
_reporter_lock = threading.Lock()


def start_reporting(reporter: Reporter | None) -> None:
    """Install the reporter ``emit`` sends to (None: reporting off). Replaces (and closes) any."""
    global _reporter
    with _reporter_lock:
        old, _reporter = _reporter, reporter
    if old is not None and old is not reporter:
        old.close()


def stop_reporting(timeout: float = 2.0) -> None:
    """Send what is queued (up to ``timeout`` seconds) and switch reporting off."""
    global _reporter
    with _reporter_lock:
        old, _reporter = _reporter, None
    if old is not None:
        old.close(timeout)


def emit(name: str, state: str, reason: str = "", score: float | None = None,
         threshold: float | None = None) -> None:
    """Report one event (one of ``EVENTS``) to the configured destinations. Never blocks on
    the network, never raises for a delivery problem; an unknown ``name`` is a bug and raises."""
    reporter = _reporter
    if reporter is None:
        if name not in SEVERITY:
            raise ValueError(f"unknown fleet event {name!r}")
        return
    reporter.emit(name, state, reason, score, threshold)
