"""Segment features: definitions on hand-computed segments; streaming == batch."""

import math
from pathlib import Path

import numpy as np
import pytest

from agent.events import make_events
from agent.recordings import read_recording
from agent.segment_features import FEATURE_NAMES, SegmentExtractor, SegmentSpec, extract_segments, segment_features

FIXTURES = Path(__file__).parent / "fixtures"


def features_of(rows, spec):
    ev = make_events(rows)
    f = segment_features(ev["t"][None], ev["x"][None], ev["y"][None], ev["button"][None], ev["state"][None], spec)
    return dict(zip(FEATURE_NAMES, f[0].astype(float)))


def test_thirty_named_features():
    assert len(FEATURE_NAMES) == len(set(FEATURE_NAMES)) == 30


def test_hand_computed_segment():
    # a stroke of two 5-px steps, a 4-px step turning back left, a click after a 0.3 s pause
    rows = [(0.0, "NoButton", "Move", 0, 0), (0.1, "NoButton", "Move", 3, 4), (0.2, "NoButton", "Move", 6, 8),
            (0.3, "NoButton", "Move", 2, 8), (0.4, "Left", "Pressed", 2, 8), (0.7, "Left", "Released", 2, 8)]
    f = features_of(rows, SegmentSpec(size=6, pause_min=0.2))
    turn = math.pi - math.atan2(4, 3)  # from heading (3, 4) to heading (-4, 0)
    expected = {
        "x_mean": 2.5, "y_mean": 6.0, "dx_mean": 0.4, "dy_mean": 1.6,
        "x_std": np.std([0, 3, 6, 2, 2, 2]), "y_std": np.std([0, 4, 8, 8, 8, 8]),
        "v_mean": 28.0, "v_max": 50.0, "v_std": np.std([50, 50, 40, 0, 0]),
        "a_mean": -125.0, "a_std": np.std([0, -100, -400, 0]),
        "curv_mean": turn / 4 / 4, "curv_std": np.std([0, turn / 4, 0, 0]), "dir_changes": 1,
        "pause_mean": 0.06, "pause_std": 0.12,
        "click_interval_mean": 0.0, "click_interval_std": 0.0, "clicks_mean": 1 / 6,
        "button_mean": 1 / 3, "state_mean": 5 / 6, "button_changes": 1, "state_changes": 2,
        "mpc_mean": 8.6, "mpc_std": np.std([5, 10, 14, 7, 7]),
        "move_ratio_mean": (2 + 3 * math.hypot(2, 8) / 14) / 5,
        "move_ratio_std": np.std([1, 1] + [math.hypot(2, 8) / 14] * 3),
        "vpc_mean": 28.0, "vpc_std": np.std([50, 50, 40, 0, 0]), "path_length": 14.0,
    }
    assert set(expected) == set(FEATURE_NAMES)
    for name, value in expected.items():
        assert f[name] == pytest.approx(value, rel=1e-5, abs=1e-5), name


def test_click_intervals_and_zero_dt_floor():
    rows = [(0.0, "Left", "Pressed", 5, 5), (0.2, "Left", "Released", 5, 5), (0.4, "Left", "Pressed", 5, 5),
            (0.4, "Left", "Released", 5, 5), (1.0, "Left", "Pressed", 8, 9)]
    f = features_of(rows, SegmentSpec(size=5))
    assert f["click_interval_mean"] == pytest.approx(0.5)
    assert f["click_interval_std"] == pytest.approx(0.1)
    assert f["clicks_mean"] == pytest.approx(3 / 5)
    assert f["v_max"] == pytest.approx(5 / 0.6)  # the zero gap moved nothing; the last step is 5 px in 0.6 s
    # a 5-px step in 0 s is read with dt_floor, not as infinite speed
    g = features_of([(0.0, 0, 0, 0, 0), (0.0, 0, 0, 3, 4), (0.1, 0, 0, 3, 4)], SegmentSpec(size=3))
    assert g["v_max"] == pytest.approx(5 / 0.016)


def test_streaming_equals_batch_in_chunks():
    events = read_recording(FIXTURES / "sapimouse-excerpts" / "user1" / "session_2020_05_14_1min.csv",
                            time_unit="ms")
    batch, batch_t = extract_segments(events)
    assert batch.shape == (len(events) // 50, 30) and batch.dtype == np.float32
    rng = np.random.default_rng(1)
    ex = SegmentExtractor()
    parts, times, i = [], [], 0
    while i < len(events):
        n = int(rng.integers(1, 40))
        f, t = ex.push(events[i:i + n])
        parts.append(f)
        times.append(t)
        i += n
    f, t = ex.flush()
    assert len(f) == 0
    np.testing.assert_array_equal(np.concatenate(parts), batch)
    np.testing.assert_array_equal(np.concatenate(times), batch_t)


def test_clock_running_backwards_starts_a_new_segment():
    a = read_recording(FIXTURES / "balabit-excerpts" / "user7" / "session_excerpt1")[:120]
    b = a.copy()
    b["t"] -= 1000.0
    f, _ = extract_segments(np.concatenate((a, b)))
    assert len(f) == 4  # 2 whole segments of each recording; no segment straddles the reset
    np.testing.assert_array_equal(f[:2], extract_segments(a)[0])
