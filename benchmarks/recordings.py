"""Benchmark input from real recordings: looped to any length, or paced to a fixed event rate."""

from __future__ import annotations

import numpy as np

from agent.errors import MouseguardError
from agent.events import EVENT_DTYPE

LOOP_PAUSE = 5.0  # seconds between looped copies of a recording: longer than any block gap


def loop_recordings(recordings: list[np.ndarray], seconds: float) -> np.ndarray:
    """Real recordings back to back (looped as needed) until ``seconds`` of input, timestamps
    shifted so each copy starts LOOP_PAUSE after the last ended; cut at exactly ``seconds``."""
    recordings = [r for r in recordings if len(r) >= 2]
    if not recordings:
        raise MouseguardError("no recording with events to build benchmark input from")
    parts, t_next, i = [], 0.0, 0
    while t_next < seconds:
        r = recordings[i % len(recordings)]
        part = r.copy()
        part["t"] = part["t"] - part["t"][0] + t_next
        parts.append(part)
        t_next = float(part["t"][-1]) + LOOP_PAUSE
        i += 1
    events = np.concatenate(parts)
    return events[events["t"] - events["t"][0] <= seconds]


def paced_feed(recordings: list[np.ndarray], rate: float, seconds: float, gap: float) -> np.ndarray:
    """``rate * seconds`` real events with their recorded rhythm scaled to ``rate`` events/s.

    Idle pauses longer than the block gap are shortened to it first (an idle user costs the
    agent nothing, and 125 events/s is a hand that keeps moving); then all intervals are
    scaled by one factor so the events span exactly ``seconds``. Bursts (zero intervals) stay.
    """
    n = round(rate * seconds)
    events = np.zeros(0, EVENT_DTYPE)
    span = 0.0
    while len(events) < n:
        span = span * 2 + 3600.0
        events = loop_recordings(recordings, span)
    events = events[:n]
    intervals = np.clip(np.diff(events["t"]), 0.0, gap)
    offsets = np.concatenate(([0.0], np.cumsum(intervals)))
    offsets *= (n - 1) / rate / offsets[-1]
    feed = np.zeros(n, dtype=[("offset", "<f8"), ("button", "u1"), ("state", "u1"), ("x", "<i4"), ("y", "<i4")])
    feed["offset"] = offsets
    for name in ("button", "state", "x", "y"):
        feed[name] = events[name]
    return feed
