"""Pointer input a program made is an alarm of its own (issue 19, item 5).

Against a real Xvfb: its XInput2 raw events name the "Virtual core XTEST pointer" xdotool
injects through, and absolute XTest motion makes no raw event at all, so the hook's motion is
compared with the devices' (agent/injected_input.py). Xvfb has no physical mouse to move, so
the hand's side (motion with a device moving under it) is tested on the judge with a stand-in
for the watcher; the OS-flagged path of Windows and macOS through the real ring buffer.
"""

import time
from types import SimpleNamespace

import numpy as np
import pytest

from agent import states
from agent.config import AgentConfig, Config
from agent.events import MOVE, NO_BUTTON
from agent.injected_input import FLAGGED, UNMOVED, InjectedInputJudge, XInputSources, x11_sources
from agent.pipeline import PipelineThread
from agent.responses.actor import Actor
from agent.ringbuffer import RingBuffer
from agent.runner import Agent
from tests.fakes import FakeLocker, RecordingTray
from tests.waiting import wait_for


def events(times, state=MOVE):
    rows = np.zeros(len(times), dtype=[("t", "<f8"), ("button", "u1"), ("state", "u1"), ("x", "<i4"), ("y", "<i4")])
    rows["t"], rows["state"], rows["button"] = times, state, NO_BUTTON
    return rows


# -- the judge ------------------------------------------------------------------------------------


def test_os_flagged_input_is_an_alarm_once_there_is_enough_of_it():
    judge = InjectedInputJudge()
    t = np.arange(10) * 0.1
    flags = np.zeros(10, dtype=bool)
    flags[:4] = True
    judge.feed(events(t), flags)
    assert judge.verdict(1.0) is None  # 4 < MIN_EVENTS
    flags[:] = False
    flags[9] = True
    judge.feed(events(t + 1), flags)
    reason = judge.verdict(2.0)
    assert reason and "5 events" in reason and FLAGGED in reason
    assert judge.verdict(2.0) is None  # counted afresh after an alarm


def test_flagged_events_too_far_apart_are_no_alarm():
    judge = InjectedInputJudge()
    for k in range(6):  # one injected event every 2 s: a tool nudging the pointer, not a replay
        judge.feed(events([2.0 * k]), np.array([True]))
        assert judge.verdict(2.0 * k) is None


class Watcher:
    """Stands in for XInputSources where a physical mouse would have to move (none on CI)."""

    def __init__(self, physical, caught_up):
        self.physical, self.now, self.xtest = np.asarray(physical, float), caught_up, []

    def caught_up(self):
        return self.now

    def physical_motion(self):
        return self.physical

    def take_xtest(self):
        taken, self.xtest = self.xtest, []
        return taken


def test_motion_with_a_device_moving_under_it_is_a_hands():
    hand = np.arange(0, 3, 0.008)  # 125 Hz for 3 s
    watcher = Watcher(physical=hand + 0.003, caught_up=10.0)
    judge = InjectedInputJudge(watcher)
    judge.feed(events(hand), None)
    assert judge.verdict(10.0) is None


def test_motion_no_device_made_is_counted_but_only_once_the_watcher_has_caught_up():
    hand = np.arange(0, 3, 0.008)
    watcher = Watcher(physical=hand[hand < 1.0], caught_up=0.5)  # it has read the server up to 0.5 s
    judge = InjectedInputJudge(watcher)
    judge.feed(events(hand), None)
    assert judge.verdict(3.0) is None  # nothing past the watcher's reading is judged yet
    watcher.now = 3.6
    reason = judge.verdict(3.6)
    assert reason and UNMOVED in reason


def test_one_pointer_warp_is_not_an_attack():
    watcher = Watcher(physical=[], caught_up=10.0)
    judge = InjectedInputJudge(watcher)
    judge.feed(events([1.0, 1.001]), None)  # an application centring the pointer in a dialog
    assert judge.verdict(10.0) is None


def test_os_flagged_rows_reach_the_judge_through_the_ring_buffer():
    """Windows and macOS: pynput's ``injected`` argument, stored beside the event by the hook."""
    buffer, judge, reasons = RingBuffer(64), InjectedInputJudge(), []

    def on_input(rows, injected, now):
        judge.feed(rows, injected)
        reasons.append(judge.verdict(now))

    errors = []
    no_blocks = SimpleNamespace(feed=lambda rows: [], tick=lambda now: [])  # only the drain is under test
    thread = PipelineThread(buffer, no_blocks, on_verdicts=None, on_error=errors.append, gather=0.0,
                            on_input=on_input)
    thread.start()
    try:
        now = time.monotonic()
        for i in range(6):
            buffer.put(now + i * 0.01, NO_BUTTON, MOVE, i, i, True)
        wait_for(lambda: any(reasons), timeout=5, what="the injected-input verdict")
    finally:
        thread.stop()
    assert FLAGGED in next(r for r in reasons if r) and not errors


# -- the X11 watcher on a real X server ------------------------------------------------------------


def test_xtest_input_is_named_by_its_device_on_x11(xserver):
    sources = XInputSources(time.monotonic).start()
    try:
        xserver.xdotool("mousemove_relative", "5", "5", "click", "1")
        seen = []
        wait_for(lambda: seen.extend(sources.take_xtest()) or len(seen) >= 3, timeout=5, what="the raw XTest events")
        assert {name for _, name in seen} == {"Virtual core XTEST pointer"}  # motion, press, release
        assert len(sources.physical_motion()) == 0  # no hand moved anything
        xserver.xdotool("mousemove", "300", "300", "mousemove", "320", "310")  # absolute: no raw event at all
        t = time.monotonic()
        wait_for(lambda: sources.caught_up() > t, timeout=5, what="the watcher to read past the moves")
        assert sources.take_xtest() == [] and len(sources.physical_motion()) == 0
    finally:
        sources.stop()
    assert not sources.alive


def test_the_watcher_says_why_it_cannot_run(monkeypatch, caplog):
    monkeypatch.setenv("DISPLAY", ":9999")
    assert x11_sources(time.monotonic) is None
    assert "cannot be told from a hand's on this display: cannot connect to the X display" in caplog.text


# -- the agent --------------------------------------------------------------------------------------


@pytest.fixture
def agent_with(synth_model, tmp_path, xserver):
    started = []

    def start(how, action="lock"):
        tray, locker = RecordingTray(), FakeLocker()
        config = Config(agent=AgentConfig(action=action, injected_input=how))
        agent = Agent(config, tray, Actor(action, locker, tray.notify), model_dir=synth_model, user="alice",
                      status_path=tmp_path / "status.json", recordings_dir=tmp_path / "rec", heartbeat=0.5,
                      input_sources=x11_sources)
        agent.start()
        started.append(agent)
        wait_for(lambda: agent.hook_ok, what="the hook to run")
        assert agent.state == states.PROTECTED
        return agent, tray, locker

    yield start
    for agent in started:
        agent.stop()


def replay_with_xdotool(xserver, n=60):
    """Someone replaying movement: absolute XTest moves, as ``xdotool mousemove`` makes them."""
    xserver.xdotool(*sum((["mousemove", str(200 + 5 * i), str(150 + 2 * i), "sleep", "0.01"] for i in range(n)), []))


def test_xdotool_replay_locks_whatever_the_model_says(agent_with, xserver):
    agent, tray, locker = agent_with("lock")
    replay_with_xdotool(xserver)
    wait_for(lambda: locker.calls >= 1, timeout=10, what="the lock for injected input")
    assert agent.state == states.LOCKED and "made by a program" in agent.detail
    assert agent.blocks_scored == 0  # before any block was judged: 60 moves make none
    calls = locker.calls
    replay_with_xdotool(xserver)  # within the grace after the lock: no second lock
    time.sleep(1.5)
    assert locker.calls == calls


def test_injected_input_alert_alerts_and_off_ignores(agent_with, xserver):
    agent, tray, locker = agent_with("alert")
    replay_with_xdotool(xserver)
    wait_for(lambda: agent.state == states.ALERTED, timeout=10, what="the alert for injected input")
    assert locker.calls == 0 and any("made by a program" in m for _, m in tray.notifications)
    agent.stop()

    agent, tray, locker = agent_with("off")
    replay_with_xdotool(xserver)
    time.sleep(2.0)
    assert locker.calls == 0 and not any("made by a program" in m for _, m in tray.notifications)


def test_a_paused_agent_does_not_judge_injected_input(agent_with, xserver):
    agent, tray, locker = agent_with("lock")
    agent.pause(60)
    replay_with_xdotool(xserver)
    time.sleep(2.0)
    assert locker.calls == 0 and agent.state == states.PAUSED

