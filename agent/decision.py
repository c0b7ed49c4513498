"""The rolling decision: from block scores to what the agent does.

The agent keeps the last ``window`` P(genuine) block scores and compares their mean with
``threshold``. One low block is noise; a low mean over several is someone else.
After a lock the window is cleared and a grace period passes before a new decision, so the
returning user is not judged on the blocks of the person who was locked out.
"""

from __future__ import annotations

import collections
import dataclasses

from agent import states


@dataclasses.dataclass(frozen=True)
class Verdict:
    """What one block changed: the rolling score and the state after it."""

    score: float
    rolling: float | None
    state: str
    act: bool  # True exactly when this block should trigger the action (lock/alert/log)


class RollingDecision:
    def __init__(self, window: int, threshold: float, grace_seconds: float = 0.0,
                 suspicious_margin: float = 0.1):
        self.window = window
        self.threshold = threshold
        self.grace_seconds = grace_seconds
        #: A rolling score this close above the threshold shows as "suspicious".
        self.suspicious_margin = suspicious_margin
        self._scores: collections.deque[float] = collections.deque(maxlen=window)
        self._grace_until = float("-inf")
        self.state = states.PROTECTED

    def reset(self, now: float = float("-inf")) -> None:
        """Forget the window (after a lock, or on resuming from a pause) and start a grace period at ``now``."""
        self._scores.clear()
        self._grace_until = now + self.grace_seconds
        self.state = states.PROTECTED

    def update(self, score: float, now: float) -> Verdict:
        if now < self._grace_until:
            return Verdict(score, None, self.state, False)
        self._scores.append(float(score))
        if len(self._scores) < self.window:
            return Verdict(score, None, self.state, False)
        rolling = sum(self._scores) / self.window
        if rolling < self.threshold:
            self.reset(now)
            return Verdict(score, rolling, states.LOCKED, True)
        self.state = states.SUSPICIOUS if rolling < self.threshold + self.suspicious_margin else states.PROTECTED
        return Verdict(score, rolling, self.state, False)


def simulate_locks(scores, window: int, threshold: float) -> tuple[int, int | None]:
    """Replay a run of block scores through the decision (no grace period).

    Returns the number of locks and the 1-based block count at which the first lock fell
    (``None`` if never): false locks on a genuine run, time-to-lock on an impostor run.
    """
    decision = RollingDecision(window, threshold)
    locks, first = 0, None
    for i, s in enumerate(scores, start=1):
        if decision.update(s, now=float(i)).act:
            locks += 1
            first = first or i
    return locks, first
