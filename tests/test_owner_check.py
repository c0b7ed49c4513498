"""Weakening costs the password (issue 19, item 2): a pause or stop locks the session first and
is applied only once the OS reports it unlocked; where no unlock can be confirmed it is refused.
The OS lock cannot exist on CI: the command lines and their failures are tested with a scripted
``subprocess.run``, the agent with a lock state the test drives; the agent itself is real."""

import itertools
import subprocess
import time

import pytest

from agent import states
from agent.owner_check import OwnerCheck
from agent.responses.linux import LinuxLockState, dbus_get_active_command
from agent.responses.result import LockResult
from tests.fakes import FakeRun
from tests.test_control import live_agent  # noqa: F401 (a fixture)


def lock_state(run, env=None):
    return LinuxLockState(run=run, env={"XDG_SESSION_ID": "7"} if env is None else env, uid=1000).is_locked()


def test_lock_state_from_logind_then_the_screen_savers_else_unknown():
    assert lock_state(FakeRun({("loginctl", "show-session", "7"): (0, "yes\n")})) is True
    assert lock_state(FakeRun({("loginctl", "show-session", "7"): (0, "no\n")})) is False
    gnome = FakeRun({("dbus-send",): 1, tuple(dbus_get_active_command(
        "org.gnome.ScreenSaver", "/org/gnome/ScreenSaver", "org.gnome.ScreenSaver")): (0, "   boolean true\n")})
    assert lock_state(gnome) is True  # no loginctl at all (127): the DBus screen savers
    assert gnome.commands_starting("loginctl", "show-session") == [
        ["loginctl", "show-session", "7", "-p", "LockedHint", "--value"]]
    assert gnome.commands_starting("dbus-send")[0] == [
        "dbus-send", "--session", "--print-reply", "--dest=org.freedesktop.ScreenSaver",
        "/org/freedesktop/ScreenSaver", "org.freedesktop.ScreenSaver.GetActive"]
    hung = FakeRun({(): subprocess.TimeoutExpired("x", 5)})
    assert lock_state(hung) is None and lock_state(FakeRun({}), env={}) is None


def check(states_seen, lock_ok=True, unlock_wait_s=3.0):
    answers = iter(states_seen)
    clock = itertools.count(0.0, 0.5).__next__
    return OwnerCheck(lambda: LockResult(lock_ok, "fake lock" if lock_ok else "no locker worked"),
                      lambda: next(answers), unlock_wait_s=unlock_wait_s, locked_wait_s=2.0, sleep=lambda s: None,
                      clock=clock)("pause")


def test_the_owner_check_passes_only_after_locked_then_unlocked():
    assert check([True, True, False]) == (True, "the session was unlocked with the password")
    ok, said = check([True], lock_ok=False)
    assert not ok and "could not be locked to ask for the password (no locker worked)" in said
    ok, said = check([True, None])
    assert not ok and "lock state cannot be read, so no unlock can be confirmed" in said
    ok, said = check([False] * 20)  # "unlocked" at once: the lock never showed, no proof of a password
    assert not ok and "not reported locked within 2 s" in said
    ok, said = check([True] * 20)
    assert not ok and "not unlocked within 3 s" in said


class ScriptedOwnerCheck:
    def __init__(self, answer):
        self.answer, self.asked = answer, []

    def __call__(self, what):
        self.asked.append(what)
        return self.answer


@pytest.mark.parametrize("confirmed", [True, False], ids=["unlocked", "no unlock confirmed"])
def test_pause_and_stop_go_through_the_owner_check(live_agent, confirmed):  # noqa: F811
    agent, tray = live_agent()
    agent.owner_check = ScriptedOwnerCheck((True, "unlocked") if confirmed else
                                           (False, "pause refused: the session's lock state cannot be read"))
    done, said = agent.control("pause", 5)
    assert done is confirmed and agent.owner_check.asked == ["pause"]
    assert tray.state == (states.PAUSED if confirmed else states.PROTECTED)
    if not confirmed:
        assert said == "pause refused: the session's lock state cannot be read"
        assert agent.pauses.left(time.time()) == agent.config.agent.pauses_per_day  # a refused pause costs none
    agent.control("resume")
    assert agent.owner_check.asked == ["pause"]  # resuming strengthens: no password
    assert agent.control("pause", 500)[0] is False and agent.owner_check.asked == ["pause"]  # capped first
    done, _ = agent.control("stop")
    assert done is confirmed and tray.stopped.is_set() is confirmed and agent.clean_stop is confirmed
