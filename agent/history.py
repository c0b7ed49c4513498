"""``mouseguard history``: the agent's recent decisions, locks and pauses, read back from its log.

The log is the record already (rotated, private, one line per event), so history is not a
second store that could disagree with it: it picks the lines that say what the agent decided
or was told to do, oldest first, across the rotated files.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from agent.logs import BACKUP_COUNT, LOG_FILE_NAME

#: ``logs._FILE_FORMAT``: "2026-12-06 19:53:56,123 WARNING mouseguard.actions: message".
_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),\d{3} ([A-Z]+) ([\w.]+): (.*)$")

#: (logger, message prefix) -> kind. The first match wins; other lines are not history.
_KINDS: tuple[tuple[str, str, str], ...] = (
    ("mouseguard.actions", "session locked", "locked"),
    ("mouseguard.actions", "LOCK FAILED", "lock failed"),
    ("mouseguard.actions", "impostor suspected, alerting", "alerted"),
    ("mouseguard.actions", "impostor suspected (action=log", "logged"),
    ("mouseguard.agent", "trial:", "trial"),
    ("mouseguard.agent", "state: ", "state"),
    ("mouseguard.agent", "paused", "paused"),
    ("mouseguard.agent", "resumed", "resumed"),
    ("mouseguard.agent", "refused to start", "refused"),
    ("mouseguard.agent", "mouseguard agent starting", "started"),
    ("mouseguard.agent", "mouseguard stops", "stopped"),
    ("mouseguard.agent", "protecting with", "model"),
)


@dataclasses.dataclass(frozen=True)
class Event:
    when: str  # local time as the log wrote it
    kind: str
    message: str


def log_files(log_dir: Path) -> list[Path]:
    """The log and its rotated copies, oldest first (``.5`` is the oldest)."""
    base = Path(log_dir) / LOG_FILE_NAME
    candidates = [base.with_name(f"{base.name}.{k}") for k in range(BACKUP_COUNT, 0, -1)] + [base]
    return [p for p in candidates if p.is_file()]


def classify(logger: str, message: str) -> str | None:
    for name, prefix, kind in _KINDS:
        if logger == name and message.startswith(prefix):
            return kind
    return None


def read_history(log_dir: Path, limit: int | None = None) -> list[Event]:
    """The last ``limit`` events (all with None), oldest first."""
    events: list[Event] = []
    for path in log_files(log_dir):
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                found = _LINE.match(line.rstrip("\n"))
                if not found:
                    continue  # a continuation line of a multi-line message
                when, _level, logger, message = found.groups()
                kind = classify(logger, message)
                if kind is not None:
                    events.append(Event(when, kind, message))
    return events[-limit:] if limit else events


def format_history(events: list[Event]) -> str:
    width = max((len(e.kind) for e in events), default=0)
    return "\n".join(f"{e.when}  {e.kind:<{width}}  {e.message}" for e in events)
