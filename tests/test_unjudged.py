"""Judge time, not only blocks (issue 19, item 4): typing without the mouse, or a mouse jiggler,
gives input but no block; after ``decision.unjudged_minutes`` of it the agent acts.

Replay through the real cutter, ONNX scorer and decision; live through a real pynput mouse and
keyboard hook on Xvfb driven by xdotool. Only the OS lock is a recording fake.
"""

import logging
import time

import pytest

from agent import states
from agent.config import Config, decision_settings
from agent.events import MOVE, NO_BUTTON, make_events
from agent.model_dir import load_model_dir
from agent.pipeline import make_pipeline
from agent.replay import replay, timeline_line
from agent.responses.actor import Actor
from agent.runner import Agent
from agent.scorer import Scorer
from tests.fakes import FakeLocker, RecordingTray
from tests.synth import synth_events
from tests.waiting import wait_for

#: The live tests' patience, not the agent's (whose least is a minute): input this long unjudged acts.
PATIENCE = 3.0


def jiggle(minutes, every=60.0):
    """A mouse jiggler: a 1-px nudge, and back, every ``every`` seconds."""
    return make_events([(every * i, NO_BUTTON, MOVE, 500 + i % 2, 400) for i in range(int(minutes * 60 / every) + 1)])


def test_a_jiggler_replayed_locks_after_the_configured_minutes(synth_model):
    # before: a jiggle a minute made no block, and the replay ended with no verdict at all
    model = load_model_dir(synth_model)
    settings = decision_settings(model, Config())
    assert settings.unjudged_seconds == 600.0  # the default: 10 minutes
    pipeline = make_pipeline(model, Scorer(model), window=settings.window, threshold=settings.threshold,
                             unjudged_seconds=settings.unjudged_seconds)
    verdicts = replay(jiggle(25), pipeline)
    acts = [v for v in verdicts if v.verdict.act]
    assert [round(v.t) for v in acts] == [600, 1260]  # again ten minutes after the first nudge after a lock
    assert "10 min of keyboard or mouse input without enough mouse movement" in acts[0].verdict.reason
    assert timeline_line(acts[0], 0.0, settings.threshold, settings.window).endswith(": would lock")


def test_mouse_use_that_makes_blocks_is_judged_by_its_blocks_not_by_time(synth_model):
    model = load_model_dir(synth_model)
    pipeline = make_pipeline(model, Scorer(model), unjudged_seconds=60.0)
    verdicts = replay(synth_events("alice", seconds=300, seed=21), pipeline)
    assert verdicts and not any(v.verdict.reason for v in verdicts)


@pytest.fixture
def protecting(synth_model, tmp_path, xserver):
    tray, locker = RecordingTray(), FakeLocker()
    agent = Agent(Config(), tray, Actor("lock", locker, tray.notify), model_dir=synth_model, user="alice",
                  status_path=tmp_path / "status.json", recordings_dir=tmp_path / "rec", heartbeat=0.5)
    agent.start()
    try:
        wait_for(lambda: agent.hook_ok, what="the hook to run")
        wait_for(lambda: agent.keyboard.alive, what="the keyboard listener")
        assert agent.state == states.PROTECTED
        assert agent.consumer.pipeline.decision.unjudged_seconds == 600.0
        agent.consumer.pipeline.decision.unjudged_seconds = PATIENCE
        yield agent, tray, locker
    finally:
        agent.stop()


def test_typing_without_the_mouse_locks(protecting, xserver, caplog):
    # before: no mouse movement, no block, no decision: someone could type at the desk for ever
    agent, tray, locker = protecting
    caplog.set_level(logging.DEBUG, logger="mouseguard")
    t0 = time.monotonic()
    while locker.calls == 0 and time.monotonic() - t0 < PATIENCE + 10:
        xserver.xdotool("type", "--delay", "40", "secret")
    assert locker.calls == 1 and time.monotonic() - t0 >= PATIENCE
    wait_for(lambda: agent.state == states.LOCKED, what="the locked state")
    assert "keyboard or mouse input without enough mouse movement" in agent.detail
    assert agent.blocks_scored == 0
    assert "secret" not in caplog.text and "'s'" not in caplog.text  # that keys were pressed, never which


def test_a_jiggler_locks(protecting, xserver):
    agent, tray, locker = protecting
    t0 = time.monotonic()
    while locker.calls == 0 and time.monotonic() - t0 < PATIENCE + 10:
        xserver.xdotool("mousemove_relative", "--", "1", "0", "sleep", "0.3", "mousemove_relative", "--", "-1", "0",
                        "sleep", "0.3")
    assert locker.calls == 1 and time.monotonic() - t0 >= PATIENCE
    assert agent.blocks_scored == 0 and "mouse jiggler" in agent.detail


def test_the_keyboard_listener_ends_with_the_agent_without_waiting_for_a_key(protecting):
    # pynput's own stop() on X11 lets the listener go only at the next key press
    agent, _, _ = protecting
    listener = agent.keyboard._listener
    assert listener.is_alive()
    agent.stop()
    wait_for(lambda: not listener.is_alive(), timeout=3, what="the keyboard listener to end")
