"""Capture against a real X server: Xvfb, xdotool input, the real pynput listener. No mocks.

xdotool sends its input through XTest, which the X server handles like a hardware mouse, so
the listener sees what it would see on a desktop (and, on X11, does not flag it as injected).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
import threading
import time

import numpy as np
import pytest

from agent.blocks import BlockCutter, BlockSpec, cut_blocks
from agent.capture import WAYLAND_MESSAGE, CaptureUnavailable, HookSupervisor, MouseHook, check_platform
from agent.events import (
    DOWN, DRAG, EVENT_DTYPE, LEFT, MIDDLE, MOVE, NO_BUTTON, OTHER, PRESSED, RELEASED, RIGHT, SCROLL, UP,
    is_scroll,
)
from agent.recordings import read_recording, write_recording
from agent.ringbuffer import RingBuffer
from benchmarks.xserver import XServer, relative_move

pytestmark = pytest.mark.x11

DEADLINE = 5.0  # seconds any single expectation may take; the X round trips take milliseconds


def microsecond_clock() -> float:
    """The monotonic clock at the resolution recordings keep (``write_recording`` writes 6
    decimals), so that events survive a write/read round trip bit for bit."""
    return round(time.monotonic(), 6)


class Collector:
    """Drains a ring buffer until the events seen so far satisfy a condition, or a deadline."""

    def __init__(self, buffer: RingBuffer):
        self.buffer = buffer
        self.chunks: list[np.ndarray] = []

    @property
    def events(self) -> np.ndarray:
        return np.concatenate(self.chunks) if self.chunks else np.empty(0, EVENT_DTYPE)

    def drain(self) -> np.ndarray:
        events, injected = self.buffer.drain()
        # X11 does not flag XTest (xdotool) input as synthetic; the agent cannot tell either.
        assert not injected.any()
        if len(events):
            self.chunks.append(events)
        return events

    def until(self, condition, what: str, timeout: float = DEADLINE) -> np.ndarray:
        deadline = time.monotonic() + timeout
        while not condition(self.events):
            left = deadline - time.monotonic()
            if left <= 0:
                pytest.fail(f"timed out after {timeout:g} s waiting for {what}; got {self.events.tolist()}")
            self.buffer.wait(min(left, 0.05))
            self.drain()
        return self.events

    def count(self, n: int, timeout: float = DEADLINE) -> np.ndarray:
        return self.until(lambda e: len(e) >= n, f"{n} events", timeout)


def place(xserver, seen: Collector, x: int, y: int) -> None:
    """Put the pointer at (x, y) and forget the events that took it there.

    It first steps beside the target: a move to where the pointer already is makes no event
    (and ``--sync`` would wait for it for ever).
    """
    here = xserver.pointer()
    aside = next(p for p in ((x + 1, y), (x - 1, y), (x, y + 1)) if p != here)
    xserver.xdotool("mousemove", "--sync", *aside, "mousemove", "--sync", x, y)
    seen.until(lambda e: len(e) and rows(e[-1:]) == [(NO_BUTTON, MOVE, x, y)], f"the pointer at {x},{y}")
    seen.chunks.clear()


def rows(events: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Events without their times, for comparing with what xdotool did."""
    return [(b, s, x, y) for _, b, s, x, y in events.tolist()]


def wait_until_listening(xserver, buffer: RingBuffer) -> None:
    """Wiggle the pointer until the hook reports it, then forget the wiggles.

    pynput marks a listener ready just before it enables its RECORD context, so the first
    input after ``start()`` can be missed; tests must not depend on that window.
    """
    deadline = time.monotonic() + DEADLINE
    step = 1
    while not buffer.wait(0.02):
        assert time.monotonic() < deadline, "the mouse hook never reported any input"
        xserver.xdotool(*relative_move(step, 0, sync=False))  # no --sync: may sit at an edge
        step = -step
    time.sleep(0.02)  # let the last wiggle's events land before throwing them away
    buffer.drain()


def stop_hook(xserver, hook: MouseHook) -> None:
    """Stop a hook and let its thread finish: on X11 it ends only at the next input event."""
    hook.stop(timeout=0)
    xserver.xdotool(*relative_move(1, 0, sync=False))
    hook.stop(timeout=2.0)


@pytest.fixture
def live(xserver):
    """A started hook on the test X server, its buffer, and a collector for that buffer."""
    buffer = RingBuffer(capacity=4096)
    hook = MouseHook(buffer, clock=microsecond_clock)
    hook.start()
    wait_until_listening(xserver, buffer)
    yield hook, buffer, Collector(buffer)
    stop_hook(xserver, hook)
    assert hook.error is None


def test_absolute_and_relative_moves_arrive_with_coordinates(xserver, live):
    hook, buffer, seen = live
    place(xserver, seen, 90, 200)
    xserver.xdotool("mousemove", "--sync", 100, 200)
    seen.count(1)
    deltas = [(10, 0), (0, 10), (-5, -7), (3, 1), (-20, 4)]
    xserver.xdotool(*sum((relative_move(dx, dy) for dx, dy in deltas), []))
    events = seen.count(1 + len(deltas))
    expected, x, y = [(NO_BUTTON, MOVE, 100, 200)], 100, 200
    for dx, dy in deltas:
        x, y = x + dx, y + dy
        expected.append((NO_BUTTON, MOVE, x, y))
    assert rows(events) == expected
    assert (x, y) == xserver.pointer()
    assert np.all(np.diff(events["t"]) >= 0)
    assert hook.alive and buffer.dropped == 0


def test_clicks_report_pressed_and_released_per_button(xserver, live):
    _, _, seen = live
    place(xserver, seen, 300, 250)
    # 1 left, 3 right, 2 middle, 8 a side button (pynput's button8; x1/x2 elsewhere)
    xserver.xdotool("click", 1, "click", 3, "click", 2, "click", 8)
    events = seen.count(8)
    assert rows(events) == [
        (LEFT, PRESSED, 300, 250), (LEFT, RELEASED, 300, 250),
        (RIGHT, PRESSED, 300, 250), (RIGHT, RELEASED, 300, 250),
        (MIDDLE, PRESSED, 300, 250), (MIDDLE, RELEASED, 300, 250),
        (OTHER, PRESSED, 300, 250), (OTHER, RELEASED, 300, 250),
    ]
    assert np.all(np.diff(events["t"]) >= 0)


@pytest.mark.parametrize("xbutton, button", [(1, LEFT), (3, RIGHT)])
def test_drag_reports_the_held_button(xserver, live, xbutton, button):
    _, _, seen = live
    place(xserver, seen, 500, 500)
    try:
        xserver.xdotool(
            "mousedown", xbutton, *relative_move(4, 0), *relative_move(4, 2), *relative_move(-1, 6),
            "mouseup", xbutton,
        )
    finally:  # never leave a button held for the next test
        subprocess.run(["xdotool", "mouseup", str(xbutton)], env=xserver.env, capture_output=True)
    xserver.xdotool(*relative_move(1, 1))
    events = seen.count(6)
    assert rows(events) == [
        (button, PRESSED, 500, 500),
        (button, DRAG, 504, 500), (button, DRAG, 508, 502), (button, DRAG, 507, 508),
        (button, RELEASED, 507, 508),
        (NO_BUTTON, MOVE, 508, 509),  # released: moving again, not dragging
    ]


def test_wheel_reports_scroll_up_and_down_without_releases(xserver, live):
    _, _, seen = live
    place(xserver, seen, 640, 400)
    # X has no wheel events: buttons 4/5 are the vertical wheel, 6/7 the horizontal one.
    # pynput turns their presses into on_scroll(dy=+1 / -1) and swallows the releases.
    xserver.xdotool("click", 4, "click", 5, "click", 4)
    events = seen.count(3)
    assert rows(events) == [(SCROLL, UP, 640, 400), (SCROLL, DOWN, 640, 400), (SCROLL, UP, 640, 400)]
    xserver.xdotool("click", 6, "click", 7)  # horizontal wheel: still a wheel event
    events = seen.count(5)
    assert events["button"][3:].tolist() == [SCROLL, SCROLL]
    assert is_scroll(events).all()


def test_live_blocks_equal_blocks_cut_from_the_recording(xserver, live, tmp_path):
    """Streaming == batch: the blocks the agent cuts live, chunk by chunk as the buffer
    drains, are exactly the blocks training cuts from the same events recorded to a file."""
    _, buffer, seen = live
    # The project's preprocessing, with short blocks to keep the test short; and a plain
    # px/s variant whose first value the test can check by hand.
    specs = [BlockSpec(size=16), BlockSpec(size=16, scale=1.0, clip=None, normalisation="none")]
    place(xserver, seen, 400, 300)

    # A hand-like stream: steps in varied directions, bursts (dt under dt_min, floored) and
    # pauses (real dt), with a click and a wheel turn in the middle.
    steps = [(3, 1), (-2, 4), (5, -1), (1, 2), (-4, -3), (2, -2)]
    script: list = []
    for i in range(300):
        script += relative_move(*steps[i % len(steps)])
        if i % 7 == 0:
            script += ["sleep", "0.012"]
        if i == 100:
            script += ["click", "1"]
        if i == 200:
            script += ["click", "5"]
    expected = 300 + 2 + 1

    cutters = [BlockCutter(spec) for spec in specs]
    live = [([], []) for _ in specs]  # per spec: blocks, end times
    producer = xserver.xdotool_background(*script)
    try:
        deadline = time.monotonic() + 3 * DEADLINE
        while len(seen.events) < expected:
            assert time.monotonic() < deadline, f"only {len(seen.events)} of {expected} events arrived"
            buffer.wait(0.05)
            chunk = seen.drain()
            for cutter, (blocks, times) in zip(cutters, live):
                new_blocks, new_times = cutter.push(chunk)
                blocks.append(new_blocks)
                times.append(new_times)
    finally:
        assert producer.wait(10) == 0, producer.stderr.read()
    for cutter, (blocks, times) in zip(cutters, live):
        new_blocks, new_times = cutter.flush()
        blocks.append(new_blocks)
        times.append(new_times)
    events = seen.events
    assert len(events) == expected and len(seen.chunks) > 1  # really streamed, in pieces
    assert np.all(np.diff(events["t"]) >= 0)
    moving = events[~is_scroll(events)]
    assert len(moving) == expected - 1

    # The hook's clock has microsecond resolution, so the 6-decimal recording format loses
    # nothing and every comparison below can be exact. (With a raw monotonic clock the file
    # would shift each time by up to 0.5 us: harmless for velocities, but able to flip a dt
    # lying right at dt_min or gap, so the two paths could then differ by a whole block.)
    path = tmp_path / "live.csv.gz"
    write_recording(path, events)
    recorded = read_recording(path)
    assert recorded.tolist() == events.tolist()

    for spec, (blocks, times) in zip(specs, live):
        live_blocks, live_times = np.concatenate(blocks), np.concatenate(times)
        # One sequence (no pause near the 2 s gap): one sample per consecutive pair, cut by 16.
        assert live_blocks.shape == ((len(moving) - 1) // spec.size, spec.channels, spec.size)
        assert np.all(np.diff(live_times) > 0) and set(live_times) <= set(moving["t"])
        for batch_blocks, batch_times in (cut_blocks(events, spec), cut_blocks(recorded, spec)):
            np.testing.assert_array_equal(live_blocks, batch_blocks)
            np.testing.assert_array_equal(live_times, batch_times)

    raw_blocks = np.concatenate(live[1][0])
    dt = moving["t"][1] - moving["t"][0]
    dt = specs[1].dt_floor if dt <= specs[1].dt_min else dt
    assert raw_blocks[0, 0, 0] == np.float32((int(moving["x"][1]) - int(moving["x"][0])) / dt)


def test_supervisor_restarts_a_hook_killed_in_its_callback(xserver):
    buffer = RingBuffer(capacity=4096)
    seen = Collector(buffer)
    reports: list[tuple[bool, str, float]] = []
    changed = threading.Condition()

    def on_health(healthy: bool, reason: str) -> None:
        with changed:
            reports.append((healthy, reason, time.monotonic()))
            changed.notify_all()

    def wait_for_reports(n: int) -> None:
        with changed:
            assert changed.wait_for(lambda: len(reports) >= n, DEADLINE), f"health reports: {reports}"

    supervisor = HookSupervisor(lambda: MouseHook(buffer), on_health, check_interval=0.2)
    supervisor.start()
    try:
        wait_for_reports(1)
        assert reports[0][:2] == (True, "")
        first = supervisor.hook
        wait_until_listening(xserver, buffer)

        first.inject_fault()
        killed_at = time.monotonic()
        xserver.xdotool(*relative_move(2, 2, sync=False))  # the callback for this move raises
        wait_for_reports(3)
        assert not first.alive
        assert isinstance(first.error, RuntimeError) and "fault injected" in str(first.error)
        (down, reason, down_at), (up, no_reason, up_at) = [r for r in reports[1:3]]
        assert down is False and "fault injected" in reason  # "not protecting", with the cause
        assert up is True and no_reason == ""
        assert down_at <= up_at and up_at - killed_at < 5.0
        assert supervisor.hook is not first and supervisor.restarts == 1

        # The new hook really listens, into the same buffer.
        buffer.drain()
        wait_until_listening(xserver, buffer)
        place(xserver, seen, 77, 66)
    finally:
        supervisor.stop()
        xserver.xdotool(*relative_move(1, 0, sync=False))  # lets the stopped listener's thread end


def test_hook_notices_its_x_server_going_away(xserver, monkeypatch):
    """Logging out (or an X server crash) ends the listener without a callback error."""
    private = XServer().start()
    try:
        monkeypatch.setenv("DISPLAY", private.display)
        buffer = RingBuffer(capacity=64)
        hook = MouseHook(buffer)
        hook.start()
        wait_until_listening(private, buffer)
        private.stop()
        deadline = time.monotonic() + DEADLINE
        while hook.alive:
            assert time.monotonic() < deadline, "the hook did not notice its X server going away"
            time.sleep(0.02)
        assert hook.error is not None
    finally:
        private.stop()


def test_supervisor_reports_and_retries_while_no_display_then_recovers(xserver, monkeypatch):
    reports: list[tuple[bool, str]] = []
    attempts = []
    changed = threading.Condition()

    def make_hook():
        with changed:
            attempts.append(time.monotonic())
            changed.notify_all()
        return MouseHook(RingBuffer(capacity=64))

    def on_health(healthy: bool, reason: str) -> None:
        with changed:
            reports.append((healthy, reason))
            changed.notify_all()

    monkeypatch.delenv("DISPLAY")
    supervisor = HookSupervisor(make_hook, on_health, check_interval=0.05)
    supervisor.start()
    try:
        with changed:
            assert changed.wait_for(lambda: len(attempts) >= 3, DEADLINE)  # keeps retrying
        assert reports[0][0] is False and "DISPLAY is not set" in reports[0][1]
        assert len(reports) == 1  # a persisting failure is reported once, not per retry

        monkeypatch.setenv("DISPLAY", ":4242")  # a display with no server behind it
        with changed:
            assert changed.wait_for(lambda: len(reports) >= 2, DEADLINE), reports
        assert reports[1][0] is False and "cannot open the mouse hook" in reports[1][1]

        monkeypatch.setenv("DISPLAY", xserver.display)
        with changed:
            assert changed.wait_for(lambda: len(reports) >= 3, DEADLINE), reports
        assert reports[2] == (True, "") and supervisor.healthy
    finally:
        supervisor.stop()
        xserver.xdotool(*relative_move(1, 0, sync=False))


def test_check_platform_refuses_wayland_with_the_reason():
    with pytest.raises(CaptureUnavailable) as info:
        check_platform({"XDG_SESSION_TYPE": "wayland", "DISPLAY": ":0", "WAYLAND_DISPLAY": "wayland-0"}, "linux")
    assert str(info.value) == WAYLAND_MESSAGE
    assert "Wayland gives applications no global mouse hook" in WAYLAND_MESSAGE
    with pytest.raises(CaptureUnavailable, match="Wayland"):
        check_platform({"WAYLAND_DISPLAY": "wayland-0"}, "linux")


def test_check_platform_needs_a_display_on_linux_only():
    with pytest.raises(CaptureUnavailable, match="DISPLAY is not set"):
        check_platform({"XDG_SESSION_TYPE": "x11"}, "linux")
    check_platform({"XDG_SESSION_TYPE": "x11", "DISPLAY": ":0"}, "linux")
    check_platform({}, "win32")
    check_platform({}, "darwin")


def test_a_hook_refuses_to_start_on_wayland(xserver, monkeypatch):
    monkeypatch.setenv("XDG_SESSION_TYPE", "wayland")
    with pytest.raises(CaptureUnavailable, match="log into an X11/Xorg session"):
        MouseHook(RingBuffer(capacity=64)).start()


def test_capture_imports_without_a_display():
    code = "import sys, agent.capture; assert 'pynput' not in sys.modules"
    done = subprocess.run(
        [sys.executable, "-c", code], env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert done.returncode == 0, done.stderr


def _supervise_a_private_display(monkeypatch, **options):
    """A private Xvfb (the shared one must not die) and a supervisor whose hook runs on it."""
    server = XServer().start()
    monkeypatch.setenv("DISPLAY", server.env["DISPLAY"])
    reports = []
    supervisor = HookSupervisor(lambda: MouseHook(RingBuffer(capacity=1024)), lambda *r: reports.append(r),
                                **options)
    supervisor.start()
    deadline = time.monotonic() + DEADLINE
    while not reports and time.monotonic() < deadline:
        time.sleep(0.05)
    return server, supervisor, reports


def test_stopping_the_supervisor_after_the_x_server_died_does_not_raise(monkeypatch):
    # the agent's own X server goes away (logout, crash) and the agent stops before the
    # supervisor has noticed: stopping the hook used to end in an Xlib traceback
    server, supervisor, reports = _supervise_a_private_display(monkeypatch, check_interval=5.0)
    try:
        assert reports and reports[0][0] is True
    finally:
        server.stop()
        time.sleep(0.5)
        supervisor.stop()  # must not raise


def test_supervisor_gives_up_when_its_display_is_gone_for_good(monkeypatch):
    gone = threading.Event()
    server, supervisor, reports = _supervise_a_private_display(
        monkeypatch, check_interval=0.1, on_display_gone=lambda reason: gone.set(), display_gone_after=0.5)
    try:
        time.sleep(1.0)
        assert reports[0][0] is True and not gone.is_set()  # a live display is never given up on
        server.stop()
        assert gone.wait(DEADLINE)
    finally:
        supervisor.stop()
        server.stop()


def test_the_agent_ends_with_its_x_session(tmp_path, synth_model):
    # before: it waited "not protecting" forever and held the instance lock against the next session
    server = XServer().start()
    env = {**os.environ, **server.env, "XDG_SESSION_TYPE": "x11", "MOUSEGUARD_HOME": str(tmp_path / "h")}
    proc = subprocess.Popen([sys.executable, "-m", "agent", "run", "--no-tray", "--action", "log",
                             "--model", str(synth_model)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        time.sleep(3.0)
        assert proc.poll() is None
        server.stop()
        _, err = proc.communicate(timeout=90)
        assert "the desktop session has ended" in err and "Traceback" not in err, err
        assert proc.returncode == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        server.stop()
