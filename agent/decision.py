"""The rolling decision: from block scores to what the agent does.

The agent keeps the last ``window`` P(genuine) block scores and compares their mean with
``threshold``. One low block is noise; a low mean over several is someone else.
After a lock the window is cleared and a grace period passes before a new decision, so the
returning user is not judged on the blocks of the person who was locked out.

A block without a valid score (a broken or tampered model, a scorer that raised) is never
judged and never "protected": the decision says "not protecting", and once no valid score has
come for ``FAULT_GRACE_SECONDS`` it acts as on an impostor (fail closed).

A decision waits for blocks, and blocks for mouse movement, so someone who only types, or a
mouse jiggler nudging the pointer once a minute, would never be judged. With ``unjudged_seconds``
the decision also judges time: input (keys, mouse events) going on for that long without one
block judged is acted on too.
"""

from __future__ import annotations

import collections
import dataclasses

from agent import states

#: How long the agent goes on without a valid block score before it acts as on an impostor.
#: Long enough for a one-off runtime hiccup (one bad batch) to pass and for the owner to read
#: the "not protecting" notice; short enough that whoever broke the model gains nothing at the
#: unlocked desk: a block takes about 5 s of movement, so this is two blocks.
FAULT_GRACE_SECONDS = 10.0


@dataclasses.dataclass(frozen=True)
class Verdict:
    """What one block changed: the rolling score and the state after it."""

    score: float
    rolling: float | None
    state: str
    act: bool  # True exactly when this block should trigger the action (lock/alert/log)
    fault: str = ""  # why this block could not be judged (no valid score); "" when it was
    reason: str = ""  # why it acts when neither the rolling mean nor a fault decided (unjudged input)


class RollingDecision:
    def __init__(self, window: int, threshold: float, grace_seconds: float = 0.0,
                 suspicious_margin: float = 0.1, fault_grace_seconds: float = FAULT_GRACE_SECONDS,
                 unjudged_seconds: float | None = None):
        self.window = window
        self.threshold = threshold
        self.grace_seconds = grace_seconds
        #: A rolling score this close above the threshold shows as "suspicious".
        self.suspicious_margin = suspicious_margin
        self._scores: collections.deque[float] = collections.deque(maxlen=window)
        self._grace_until = float("-inf")
        self.state = states.PROTECTED
        self.fault_grace_seconds = fault_grace_seconds
        #: Why the last block had no valid score, and since when (event clock) none has had one.
        self.fault = ""
        self._fault_since: float | None = None
        #: Input for this long without a judged block acts (None: only blocks are judged).
        self.unjudged_seconds = unjudged_seconds
        self._unjudged: tuple[float, float] | None = None  # (first, last) input since the last judged block

    def reset(self, now: float = float("-inf")) -> None:
        """Forget the window (after a lock, or on resuming from a pause) and start a grace period at ``now``."""
        self._scores.clear()
        self._grace_until = now + self.grace_seconds
        self.state = states.PROTECTED
        self.fault, self._fault_since = "", None
        self._unjudged = None

    def activity(self, now: float) -> None:
        """Input at ``now`` (a key pressed, mouse events): with ``unjudged_seconds``, time starts
        to count from the first input after the last judged block (never during a grace)."""
        if self.unjudged_seconds is None or now < self._grace_until:
            return
        first = now if self._unjudged is None else min(self._unjudged[0], now)
        last = now if self._unjudged is None else max(self._unjudged[1], now)
        self._unjudged = (first, last)

    def update(self, score: float, now: float) -> Verdict:
        """Judge one valid block score (see :meth:`invalid` for a block without one)."""
        self.fault, self._fault_since = "", None  # valid scores again: judging as before
        self._unjudged = None  # someone moved the mouse enough to be judged
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

    def invalid(self, score: float, reason: str, now: float) -> Verdict:
        """A block without a valid score (``reason`` says why): it never enters the window, the
        state is "not protecting", and once none has been valid for ``fault_grace_seconds`` the
        verdict acts (after a lock's grace period, as any decision)."""
        if self._fault_since is None:
            self._fault_since = now
        self.fault = reason
        return self._fault_verdict(score, now)

    def expire(self, now: float) -> Verdict | None:
        """The acting verdict when a fault's grace has run out by ``now`` without a block (the
        live agent asks while the mouse is still), or when input has gone on for
        ``unjudged_seconds`` without a judged block; None otherwise."""
        if self._fault_since is not None:
            verdict = self._fault_verdict(float("nan"), now)
            return verdict if verdict.act else None
        if (self._unjudged is None or self._unjudged[1] - self._unjudged[0] < self.unjudged_seconds
                or now < self._grace_until):
            return None
        self.reset(now)
        return Verdict(float("nan"), None, states.LOCKED, True,
                       reason=f"{self.unjudged_seconds / 60:g} min of keyboard or mouse input without enough "
                              "mouse movement to judge (typing only, or a mouse jiggler)")

    def _fault_verdict(self, score: float, now: float) -> Verdict:
        reason = self.fault
        if now - self._fault_since >= self.fault_grace_seconds and now >= self._grace_until:
            self.reset(now)
            return Verdict(score, None, states.LOCKED, True, fault=reason)
        return Verdict(score, None, states.NOT_PROTECTING, False, fault=reason)


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
