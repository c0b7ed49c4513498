"""The detection protocol's pieces: replaying a session through the agent's pipeline with a
scorer of known output, and the time-to-lock summary that counts never-locked sessions."""

import numpy as np
import pytest

from agent.blocks import DEFAULT_SPEC, cut_blocks
from tests.synth import STYLES, synth_events
from agent.recorder import active_clock, active_seconds
from training.evaluation.common import (event_rate, replay_session, same_setup, time_to_lock_by_setup,
                                        time_to_lock_summary)


class ConstantScorer:
    def __init__(self, p):
        self.p = p

    def score(self, blocks):
        return np.full(len(blocks), self.p, np.float32)


@pytest.fixture(scope="module")
def events():
    return synth_events(next(iter(STYLES)), 120, seed=3)


def test_an_impostor_scorer_locks_at_the_window_th_block(events):
    _, ends = cut_blocks(events, DEFAULT_SPEC)
    row = replay_session(events, ConstantScorer(0.0), DEFAULT_SPEC, window=3, threshold=0.5, grace_seconds=0)
    assert row["blocks"] == len(ends) >= 6
    # no grace: the window refills after each lock, so every third block locks
    assert row["locks"] == len(ends) // 3
    clock = active_clock(events["t"], DEFAULT_SPEC.gap)
    assert row["seconds_to_lock"] == pytest.approx(clock[np.searchsorted(events["t"], ends[2])])
    assert 0 < row["seconds_to_lock"] < row["active_seconds"] == pytest.approx(clock[-1])


def test_grace_after_a_lock_suppresses_the_next_decisions(events):
    no_grace = replay_session(events, ConstantScorer(0.0), DEFAULT_SPEC, 1, 0.5, grace_seconds=0)
    grace = replay_session(events, ConstantScorer(0.0), DEFAULT_SPEC, 1, 0.5, grace_seconds=3600)
    assert grace["locks"] == 1 < no_grace["locks"]


def test_a_genuine_scorer_never_locks(events):
    row = replay_session(events, ConstantScorer(1.0), DEFAULT_SPEC, 1, 0.5, grace_seconds=60)
    assert row["locks"] == 0 and row["seconds_to_lock"] is None


def test_active_clock_skips_idle_gaps():
    e = np.zeros(4, dtype=[("t", "f8")])
    e["t"] = [0.0, 1.0, 100.0, 101.5]
    assert active_clock(e["t"], gap=10.0).tolist() == [0.0, 1.0, 1.0, 2.5]
    assert active_seconds(e["t"], gap=10.0) == 2.5  # the same count, the last value of the clock


def test_never_locked_sessions_count_against_the_median():
    rows = [{"seconds_to_lock": s} for s in (5.0, 10.0, None, None, None)]
    s = time_to_lock_summary(rows)
    assert s["sessions"] == 5 and s["locked"] == 2
    assert s["median_seconds"] is None  # three of five never locked
    assert s["locked_within"]["10"] == pytest.approx(0.4)
    assert time_to_lock_summary(rows[:2] + rows[2:3])["median_seconds"] == 10.0


def test_the_capture_set_up_is_told_by_the_event_rate_not_by_idle_time():
    def stream(step, n, pause_every=50):
        t = np.arange(n) * step + (np.arange(n) // pause_every) * 30.0  # 30-s idle gaps: not counted
        e = np.zeros(n, dtype=[("t", "f8")])
        e["t"] = t
        return e

    fast, slow = stream(0.016, 2000), stream(0.110, 500)
    assert event_rate(fast, gap=2.0) == pytest.approx(1 / 0.016, rel=0.05)
    assert event_rate([fast, fast], gap=2.0) == pytest.approx(event_rate(fast, gap=2.0))
    assert event_rate(slow, gap=2.0) == pytest.approx(1 / 0.110, rel=0.05)
    owner = event_rate(fast, gap=2.0)
    assert same_setup(event_rate(stream(0.02, 900), gap=2.0), owner)  # a little slower: the same desk
    assert not same_setup(event_rate(slow, gap=2.0), owner)  # Balabit's other set-up, ~7x apart
    assert not same_setup(0.0, owner)  # nothing to compare


def test_time_to_lock_is_split_by_set_up_and_every_session_counted():
    rows = [{"seconds_to_lock": s, "same_setup": same} for s, same in
            ((5.0, False), (8.0, False), (None, True), (300.0, True), (None, True))]
    split = time_to_lock_by_setup(rows)
    assert (split["same"]["sessions"], split["same"]["locked"]) == (3, 1)
    assert (split["other"]["sessions"], split["other"]["locked"]) == (2, 2)
    assert split["same"]["median_seconds"] is None and split["other"]["median_seconds"] == pytest.approx(6.5)
