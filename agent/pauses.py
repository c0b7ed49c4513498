"""How many pauses are left today: a pause switches protection off, so it is capped.

The count is kept in a small private file in the state folder, per local calendar day, so that
restarting the agent does not hand out a fresh allowance.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from agent.files import atomic_write_text

FILE_NAME = "pauses.json"


def _day(now: float) -> str:
    return time.strftime("%Y-%m-%d", time.localtime(now))


class PauseAllowance:
    def __init__(self, path: str | Path, per_day: int):
        self.path = Path(path)
        self.per_day = per_day

    def used(self, now: float) -> int:
        """Pauses taken on ``now``'s day (an unreadable file counts as none: it is ours, private,
        and a damaged one must not stop the owner from pausing)."""
        try:
            record = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return 0
        if not isinstance(record, dict) or record.get("day") != _day(now):
            return 0
        count = record.get("count")
        return count if isinstance(count, int) and count >= 0 else 0

    def left(self, now: float) -> int:
        return max(0, self.per_day - self.used(now))

    def take(self, now: float) -> bool:
        """Count one pause when one is left today; False (and nothing counted) when none is."""
        used = self.used(now)
        if used >= self.per_day:
            return False
        atomic_write_text(self.path, json.dumps({"day": _day(now), "count": used + 1}) + "\n")
        return True
