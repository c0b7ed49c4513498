"""Action segmentation: each kind on hand-made events, a real fixture, streaming == batch."""

from pathlib import Path

import numpy as np
import pytest

from agent.events import make_events
from agent.mouse_actions import KINDS, ActionSegmenter, ActionSpec, segment_actions
from agent.recordings import read_recording

FIXTURES = Path(__file__).parent / "fixtures"


def stroke(t0, x0, y0, x1, y1, n=6, dt=0.02):
    return [(t0 + i * dt, "NoButton", "Move", round(x0 + (x1 - x0) * i / (n - 1)), round(y0 + (y1 - y0) * i / (n - 1)))
            for i in range(n)]


def click(t, x, y, hold=0.1, jitter=True):
    rows = [(t, "Left", "Pressed", x, y)]
    if jitter:  # Balabit and SapiMouse log a 1-px drag inside most clicks
        rows.append((t + hold / 2, "NoButton", "Drag", x + 1, y))
    return rows + [(t + hold, "Left", "Released", x + 1, y)]


def kinds(rows, spec=ActionSpec()):
    return [KINDS[k] for k in segment_actions(make_events(rows), spec)["kind"]]


def test_point_and_click():
    a = segment_actions(make_events(stroke(0, 0, 0, 300, 400) + click(0.2, 300, 400)))
    assert [KINDS[k] for k in a["kind"]] == ["PC"]
    assert a["path"][0] == pytest.approx(500, abs=2) and a["click_time"][0] == pytest.approx(0.1)
    assert (a["x"][0], a["y"][0]) == (300, 400) and a["t0"][0] == 0 and a["t1"][0] == pytest.approx(0.3)


def test_movement_then_late_click_is_movement_and_single_click():
    assert kinds(stroke(0, 0, 0, 300, 400) + click(1.0, 300, 400)) == ["MM", "SC"]


def test_double_click_and_what_precedes_it():
    rows = stroke(0, 0, 0, 100, 0) + click(0.2, 100, 0) + click(0.45, 100, 0)
    a = segment_actions(make_events(rows))
    assert [KINDS[k] for k in a["kind"]] == ["MM", "DC"]
    assert a["t0"][1] == pytest.approx(0.2) and a["t1"][1] == pytest.approx(0.55)
    # too slow for a double click: a point-and-click, then a single click
    assert kinds(stroke(0, 0, 0, 100, 0) + click(0.2, 100, 0) + click(1.0, 100, 0)) == ["PC", "SC"]
    # second press far away: two clicks, not a double click
    assert kinds(click(0, 10, 10) + click(0.3, 200, 10)) == ["SC", "SC"]


def test_drag_and_drop():
    rows = stroke(0, 0, 0, 50, 50) + [(0.2, "Left", "Pressed", 50, 50)] + \
        [(0.22 + 0.02 * i, "NoButton", "Drag", 50 + 10 * i, 50) for i in range(1, 6)] + \
        [(0.4, "Left", "Released", 100, 50)]
    a = segment_actions(make_events(rows))
    assert [KINDS[k] for k in a["kind"]] == ["MM", "DD"]
    assert a["disp"][1] == pytest.approx(50) and a["path"][1] == pytest.approx(50)


def test_silence_separates_and_wheel_is_ignored():
    rows = click(0, 5, 5) + [(1.0, "Scroll", "Down", 5, 5)] + stroke(4.0, 5, 5, 200, 5)
    a = segment_actions(make_events(rows))
    assert [KINDS[k] for k in a["kind"]] == ["SC", "SI", "MM"]
    assert a["t0"][1] == pytest.approx(0.1) and a["t1"][1] == pytest.approx(4.0)


def test_pause_splits_strokes():
    assert kinds(stroke(0, 0, 0, 100, 0) + stroke(1.0, 100, 0, 200, 0)) == ["MM", "MM"]
    assert kinds(stroke(0, 0, 0, 100, 0) + stroke(0.3, 100, 0, 200, 0)) == ["MM"]


def test_balabit_fixture():
    events = read_recording(FIXTURES / "balabit-excerpts" / "user7" / "session_excerpt1")
    a = segment_actions(events)
    assert np.bincount(a["kind"], minlength=len(KINDS)).tolist() == [0, 0, 2, 5, 0, 0]
    assert (np.diff(a["t0"]) >= 0).all() and (a["t1"] >= a["t0"]).all()
    assert (a["path"] >= a["disp"] - 1e-9).all()
    assert events["t"][0] <= a["t0"][0] and a["t1"][-1] <= events["t"][-1]


@pytest.mark.parametrize("path", ["balabit-excerpts/user7/session_excerpt1",
                                  "sapimouse-excerpts/user1/session_2020_05_14_1min.csv"])
def test_streaming_equals_batch(path):
    events = read_recording(FIXTURES / path, time_unit="ms" if path.startswith("sapimouse") else None)
    batch = segment_actions(events)
    rng = np.random.default_rng(0)
    for _ in range(3):
        seg, parts, i = ActionSegmenter(), [], 0
        while i < len(events):
            n = int(rng.integers(1, 25))
            parts.append(seg.push(events[i:i + n]))
            i += n
        parts.append(seg.flush())
        streamed = np.concatenate(parts)
        assert streamed["kind"].tolist() == batch["kind"].tolist()
        for name in batch.dtype.names:
            np.testing.assert_allclose(streamed[name], batch[name], rtol=1e-9, atol=1e-9)
