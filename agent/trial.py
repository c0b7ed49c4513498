"""The trial after enrolment: alert only for the first hours of active use, then lock.

A model fresh from enrolment has been calibrated on half an hour of its owner's movement; the
first day shows whether that was representative. Locking the owner out on day one for a
calibration miss would teach them to switch mouseguard off, so for ``agent.trial_hours`` of
active use a lock decision only alerts and is written down. When the hours are up, the log and
a notification say what would have been locked, and locking starts.

Active use is counted from the scored blocks: the time between one block's end and the next,
each gap counted at most ``MAX_GAP_SECONDS`` (a block is about 5 s of movement; a longer gap
is time away from the mouse, which must not run the trial down).

Progress is kept per user in the state folder, so restarts do not restart the trial, and tied
to the model it began with: a new enrolment starts a new trial, while a cohort refit of the
same user's model carries the progress over (``adopt``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from agent.files import atomic_write_text

MAX_GAP_SECONDS = 30.0
#: Progress is written at most this often (and at every decision and at the end).
SAVE_EVERY_SECONDS = 60.0
#: How many would-be locks the summary lists one by one.
SUMMARY_LISTED = 5
#: A model older than this with no trial on record has been locking already (enrolled before
#: trials existed): starting one now would quietly weaken protection that was in place.
SETTLED_DAYS = 7


def model_id(model) -> str:
    """What ties a trial to a model: the SHA-256 of its ONNX file (in the manifest)."""
    return str(model.manifest.get("onnx", {}).get("sha256", ""))


def applies_to(model) -> bool:
    """Only models made by enrolment get a trial: a model from ``train fit`` or shipped elsewhere
    was calibrated by someone who chose to lock with it."""
    training = model.manifest.get("training") or {}
    return isinstance(training, dict) and training.get("dataset") == "enrolment"


def model_age_days(model, now: float | None = None) -> float | None:
    """Days since the manifest's ``created``; None when it does not say."""
    import datetime

    try:
        created = datetime.datetime.fromisoformat(str(model.manifest.get("created")))
    except ValueError:
        return None
    if created.tzinfo is None:
        created = created.replace(tzinfo=datetime.timezone.utc)
    return ((time.time() if now is None else now) - created.timestamp()) / 86400


class Trial:
    def __init__(self, path: str | Path, hours: float, model: str, clock=time.time, settled: bool = False):
        """``settled``: the model has been in use for long (``SETTLED_DAYS``); without a trial on
        record for it, none starts."""
        self.path = Path(path)
        self.hours = float(hours)
        self.clock = clock
        self.model = model
        self.active_seconds = 0.0
        self.would_lock: list[dict] = []
        self.over = self.hours <= 0
        self._last_t: float | None = None
        self._saved = float("-inf")
        self.found = False  # a record of this model's trial was read
        self._load()
        if settled and not self.found:
            self.over = True

    def _load(self) -> None:
        try:
            record = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return  # none yet (or damaged): the trial starts now
        if not isinstance(record, dict) or record.get("model") != self.model:
            return  # another model's trial: a new enrolment starts a new one
        self.found = True
        active = record.get("active_seconds")
        if isinstance(active, (int, float)) and active >= 0:
            self.active_seconds = float(active)
        if isinstance(record.get("would_lock"), list):
            self.would_lock = [w for w in record["would_lock"] if isinstance(w, dict)]
        self.over = self.over or record.get("over") is True or self.active_seconds >= self.hours * 3600

    @property
    def running(self) -> bool:
        return not self.over

    @property
    def hours_left(self) -> float:
        return max(0.0, self.hours - self.active_seconds / 3600)

    def adopt(self, model: str) -> None:
        """The user's model was refitted: the same trial goes on with the new one."""
        self.model = model
        self.save()

    def block(self, t: float) -> bool:
        """Count the active time up to a block that ended at ``t`` (event clock). True exactly
        when this block completes the trial (the caller then reports and starts locking)."""
        if self.over:
            return False
        if self._last_t is not None:
            self.active_seconds += min(max(0.0, t - self._last_t), MAX_GAP_SECONDS)
        self._last_t = t
        if self.active_seconds >= self.hours * 3600:
            self.over = True
            self.save()
            return True
        if self.clock() - self._saved >= SAVE_EVERY_SECONDS:
            self.save()
        return False

    def note(self, reason: str) -> None:
        """A lock decision taken during the trial (only alerted)."""
        self.would_lock.append({"when": self.clock(), "reason": reason})
        self.save()

    def summary(self) -> str:
        n = len(self.would_lock)
        head = (f"trial over after {self.hours:g} h of active use: it would have locked "
                f"{'nobody' if n == 0 else f'{n} time' + ('' if n == 1 else 's')}")
        if n == 0:
            return head + "; locking from now on"
        listed = "; ".join(f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(w.get('when', 0)))} "
                           f"({w.get('reason', '')})" for w in self.would_lock[:SUMMARY_LISTED])
        more = f"; and {n - SUMMARY_LISTED} more" if n > SUMMARY_LISTED else ""
        return (f"{head}: {listed}{more}. Locking from now on (if those were you, raise "
                "enrolment.false_locks_per_8h or re-enrol)")

    def save(self) -> None:
        self._saved = self.clock()
        atomic_write_text(self.path, json.dumps({
            "model": self.model, "hours": self.hours, "active_seconds": round(self.active_seconds, 3),
            "would_lock": self.would_lock, "over": self.over}, indent=2) + "\n")
