"""Feeding a recording through the live pipeline, as if it came from the hook.

Used by ``mouseguard replay`` and ``mouseguard demo``, by tests and by benchmarks. The actor
of a replay never touches the real session: a lock is reported, not executed.
"""

from __future__ import annotations

import time

import numpy as np

from agent import states
from agent.pipeline import BlockVerdict, Pipeline


def replay(events: np.ndarray, pipeline: Pipeline, speed: float | None = None, on_verdict=None,
           chunk_seconds: float = 0.25, sleep=time.sleep, clock=time.monotonic) -> list[BlockVerdict]:
    """Feed ``events`` in chunks of ``chunk_seconds`` of recording time.

    ``speed`` None replays as fast as possible; 1.0 keeps the recording's timing, 10.0 is ten
    times faster. Recording timestamps drive the decision clock either way.
    """
    verdicts: list[BlockVerdict] = []
    if len(events) == 0:
        return verdicts
    t = events["t"]
    bounds = np.searchsorted(t, np.arange(t[0], t[-1] + chunk_seconds, chunk_seconds), side="right")
    start_wall, start_t = clock(), t[0]
    lo = 0
    for hi in bounds:
        if hi <= lo:
            continue
        if speed:
            delay = (t[hi - 1] - start_t) / speed - (clock() - start_wall)
            if delay > 0:
                sleep(delay)
        # tick: as the live agent, act on a model without valid scores even between blocks
        for v in pipeline.feed(events[lo:hi]) + pipeline.tick(float(t[hi - 1])):
            verdicts.append(v)
            if on_verdict:
                on_verdict(v)
        lo = hi
    if lo < len(events):  # timestamps out of order: feed the rest as it is
        for v in pipeline.feed(events[lo:]):
            verdicts.append(v)
            if on_verdict:
                on_verdict(v)
    return verdicts


def format_clock(seconds: float) -> str:
    seconds = max(0.0, seconds)
    return f"{int(seconds // 60):d}:{seconds % 60:04.1f}"


def timeline_line(v: BlockVerdict, t0: float, threshold: float, window: int) -> str:
    rolling = "   –  " if v.verdict.rolling is None else f"{v.verdict.rolling:6.3f}"
    state = v.verdict.state.upper() if v.verdict.act else v.verdict.state
    if v.verdict.reason:
        note = f"   {v.verdict.reason}: would lock"
    elif v.verdict.fault:
        note = f"   {v.verdict.fault}" + (": would lock" if v.verdict.act else "")
    else:
        note = f"   mean of last {window} blocks < {threshold:.3f}: would lock" if v.verdict.act else ""
    return f"{format_clock(v.t - t0):>8}  {v.index:5d}  {v.verdict.score:10.3f}  {rolling}   {state}{note}"


TIMELINE_HEADER = "    time  block  P(genuine)  rolling   state"


def replay_printed(events: np.ndarray, pipeline: Pipeline, print_fn=print, speed: float | None = None):
    """:func:`replay`, printing the timeline (a header, then a line per verdict) as it goes."""
    d = pipeline.decision
    t0 = float(events["t"][0]) if len(events) else 0.0
    print_fn(TIMELINE_HEADER)
    return replay(events, pipeline, speed=speed,
                  on_verdict=lambda v: print_fn(timeline_line(v, t0, d.threshold, d.window)))


def summary(verdicts: list[BlockVerdict]) -> str:
    locks = [v for v in verdicts if v.verdict.act]
    if not verdicts:
        return "no block completed: the recording holds too little movement"
    if locks:
        return f"{len(locks)} lock(s); the first after {locks[0].index} blocks"
    return f"never locked over {len(verdicts)} blocks; state at the end: {verdicts[-1].verdict.state}"


def final_state(verdicts: list[BlockVerdict]) -> str:
    return states.LOCKED if any(v.verdict.act for v in verdicts) else (
        verdicts[-1].verdict.state if verdicts else states.PROTECTED)
