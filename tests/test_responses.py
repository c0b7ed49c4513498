"""The response layer (agent.responses): per-OS lockers and the Actor policy, without locking anything.

Every OS call goes through an injected seam (subprocess runner, library loader, probe), so
the decision logic — which command, in which order, what counts as locked, what happens when
it fails — runs on any machine. The invariant under test above all: ``Actor.act`` never
raises and never reports a lock it could not confirm.
"""

from __future__ import annotations

import logging
import subprocess

import pytest

from agent.responses import (
    ALERTED,
    LOCK_FAILED,
    LOCKED,
    LOGGED,
    Actor,
    FallbackNotifier,
    LockResult,
    platform_locker,
)
from agent.responses.alert import desktop_notify_command, notify_send_command, osascript_notify_command
from agent.responses.linux import (
    DBUS_LOCKS,
    LinuxLocker,
    dbus_lock_command,
    lock_session_command,
    locked_hint_command,
    session_properties_command,
    user_display_command,
    user_sessions_command,
)
from agent.responses.macos import LOGIN_FRAMEWORK, MacLocker
from agent.responses.windows import WindowsLocker
from tests.fakes import FakeRun

FREEDESKTOP = dbus_lock_command(*DBUS_LOCKS[0])
GNOME = dbus_lock_command(*DBUS_LOCKS[1])


class FakeClock:
    """monotonic() and sleep() that advance together, so polling takes no real time."""

    def __init__(self):
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def linux_locker(run, env=None, clock=None, uid=1000):
    clock = clock or FakeClock()
    return LinuxLocker(run=run, env=env or {}, uid=uid, sleep=clock.sleep, clock=clock)


# -- command lines --------------------------------------------------------------------------


def test_command_lines():
    assert lock_session_command("7") == ["loginctl", "lock-session", "7"]
    assert locked_hint_command("7") == ["loginctl", "show-session", "7", "-p", "LockedHint", "--value"]
    assert user_display_command(1000) == ["loginctl", "show-user", "1000", "-p", "Display", "--value"]
    assert user_sessions_command(1000) == ["loginctl", "show-user", "1000", "-p", "Sessions", "--value"]
    assert session_properties_command("c2") == ["loginctl", "show-session", "c2", "-p", "Type", "-p", "Active"]
    assert FREEDESKTOP == [
        "dbus-send", "--session", "--print-reply", "--dest=org.freedesktop.ScreenSaver",
        "/org/freedesktop/ScreenSaver", "org.freedesktop.ScreenSaver.Lock",
    ]
    assert GNOME == [
        "dbus-send", "--session", "--print-reply", "--dest=org.gnome.ScreenSaver",
        "/org/gnome/ScreenSaver", "org.gnome.ScreenSaver.Lock",
    ]


# -- Linux: finding the session -------------------------------------------------------------


def test_with_xdg_session_id_locks_that_session_and_confirms():
    run = FakeRun({("loginctl", "lock-session"): 0, ("loginctl", "show-session", "7"): (0, "yes\n")})
    result = linux_locker(run, env={"XDG_SESSION_ID": "7"})()
    assert result == LockResult(True, result.detail) and "LockedHint=yes" in result.detail
    assert run.calls == [lock_session_command("7"), locked_hint_command("7")]


def test_without_xdg_session_id_uses_the_users_graphical_session():
    run = FakeRun({
        ("loginctl", "show-user"): (0, "c2\n"),
        ("loginctl", "lock-session"): 0,
        ("loginctl", "show-session", "c2"): (0, "yes\n"),
    })
    result = linux_locker(run, env={}, uid=1234)()
    assert result.ok
    assert run.calls == [user_display_command(1234), lock_session_command("c2"), locked_hint_command("c2")]


def test_without_display_property_picks_an_active_graphical_session():
    def show_session(command):
        sid = command[2]
        if command[3:] == ["-p", "Type", "-p", "Active"]:
            return 0, {"4": "Type=tty\nActive=yes\n", "5": "Type=wayland\nActive=no\n",
                       "c2": "Type=x11\nActive=yes\n"}[sid]
        return 0, "yes\n" if sid == "c2" else "no\n"

    run = FakeRun({
        ("loginctl", "show-user", "1000", "-p", "Display"): (0, "\n"),
        ("loginctl", "show-user", "1000", "-p", "Sessions"): (0, "4 5 c2\n"),
        ("loginctl", "show-session"): show_session,
        ("loginctl", "lock-session"): 0,
    })
    result = linux_locker(run)()
    assert result.ok, result.detail
    assert run.commands_starting("loginctl", "lock-session") == [lock_session_command("c2")]


def test_no_graphical_session_is_reported_and_dbus_still_tried():
    run = FakeRun({
        ("loginctl", "show-user", "1000", "-p", "Display"): (0, ""),
        ("loginctl", "show-user", "1000", "-p", "Sessions"): (0, "4\n"),
        ("loginctl", "show-session", "4"): (0, "Type=tty\nActive=yes\n"),
        ("dbus-send",): 1,
    })
    result = linux_locker(run)()
    assert not result.ok
    assert "no graphical session" in result.detail
    assert run.commands_starting("loginctl", "lock-session") == []
    assert run.commands_starting("dbus-send") == [FREEDESKTOP, GNOME]


def test_unknown_sessions_are_reported_clearly():
    run = FakeRun({("loginctl",): 1, ("dbus-send",): 1})
    result = linux_locker(run)()
    assert not result.ok
    assert "XDG_SESSION_ID is unset" in result.detail


# -- Linux: confirmation and fallbacks ------------------------------------------------------


def test_locked_hint_that_flips_late_still_confirms():
    answers = iter(["no", "no", "yes"])
    run = FakeRun({("loginctl", "lock-session"): 0, ("loginctl", "show-session"): lambda _c: (0, next(answers))})
    clock = FakeClock()
    result = linux_locker(run, env={"XDG_SESSION_ID": "7"}, clock=clock)()
    assert result.ok
    assert len(run.commands_starting("loginctl", "show-session")) == 3
    assert run.commands_starting("dbus-send") == []


def test_unconfirmed_lock_polls_about_two_seconds_then_falls_back_in_order():
    run = FakeRun({("loginctl", "lock-session"): 0, ("loginctl", "show-session"): (0, "no\n"), ("dbus-send",): 1})
    clock = FakeClock()
    result = linux_locker(run, env={"XDG_SESSION_ID": "7"}, clock=clock)()
    assert not result.ok
    assert 1.9 <= sum(clock.sleeps) <= 2.3  # ~2 s of patience, not more
    lock_and_dbus = [c for c in run.calls if c[:2] != ["loginctl", "show-session"]]
    assert lock_and_dbus == [lock_session_command("7"), FREEDESKTOP, GNOME]
    assert "LockedHint stayed 'no'" in result.detail


def test_freedesktop_screensaver_is_the_first_fallback():
    run = FakeRun({("loginctl", "lock-session"): 1, tuple(FREEDESKTOP): 0})
    result = linux_locker(run, env={"XDG_SESSION_ID": "7"})()
    assert result.ok and "org.freedesktop.ScreenSaver.Lock" in result.detail
    assert run.commands_starting("dbus-send") == [FREEDESKTOP]


def test_gnome_screensaver_is_the_last_fallback():
    run = FakeRun({("loginctl", "lock-session"): 1, tuple(FREEDESKTOP): 1, tuple(GNOME): 0})
    result = linux_locker(run, env={"XDG_SESSION_ID": "7"})()
    assert result.ok and "org.gnome.ScreenSaver.Lock" in result.detail
    assert run.calls == [lock_session_command("7"), FREEDESKTOP, GNOME]


def test_every_failure_is_listed_in_the_detail():
    run = FakeRun({("loginctl",): 1, ("dbus-send",): 1})
    result = linux_locker(run, env={"XDG_SESSION_ID": "7"})()
    assert not result.ok
    for mechanism in ("loginctl lock-session 7", "org.freedesktop.ScreenSaver.Lock", "org.gnome.ScreenSaver.Lock"):
        assert mechanism in result.detail


@pytest.mark.parametrize(
    "error, words",
    [
        (subprocess.TimeoutExpired("loginctl", 5), "timed out"),
        (FileNotFoundError(2, "No such file or directory"), "not found"),
        (PermissionError(13, "Permission denied"), "failed to run"),
    ],
)
def test_subprocess_errors_become_a_failed_result(error, words):
    run = FakeRun({(): error})
    result = linux_locker(run, env={"XDG_SESSION_ID": "7"})()
    assert not result.ok and words in result.detail
    assert [c[0] for c in run.calls] == ["loginctl", "dbus-send", "dbus-send"]


def test_every_command_has_a_timeout():
    run = FakeRun({("loginctl",): 1, ("dbus-send",): 1})
    linux_locker(run)()
    assert run.kwargs and all(kw.get("timeout") and kw.get("check") is False for kw in run.kwargs)


@pytest.mark.parametrize("error", [subprocess.TimeoutExpired("loginctl", 5), FileNotFoundError(2, "missing")])
def test_actor_turns_a_broken_linux_lock_into_an_alert(error):
    alerts = []
    actor = Actor("lock", linux_locker(FakeRun({(): error})), lambda t, m: alerts.append((t, m)))
    assert actor.act("rolling score 0.12 < 0.40") == LOCK_FAILED
    assert len(alerts) == 1
    title, message = alerts[0]
    assert title and "could not lock" in title
    assert "rolling score 0.12" in message


# -- Windows --------------------------------------------------------------------------------


def test_windows_accepted_lock_is_ok():
    calls = []
    result = WindowsLocker(load=lambda: (lambda: calls.append(1) or 1, lambda: 0))()
    assert result.ok and calls == [1]


def test_windows_refused_lock_reports_the_error_and_alerts():
    locker = WindowsLocker(load=lambda: (lambda: 0, lambda: 5))
    result = locker()
    assert not result.ok and "error 5" in result.detail
    alerts = []
    assert Actor("lock", locker, lambda t, m: alerts.append(t)).act("impostor") == LOCK_FAILED
    assert alerts and alerts[0]


@pytest.mark.parametrize("where", ["load", "call"])
def test_windows_exceptions_become_a_failed_result(where):
    def boom():
        raise OSError("user32 is broken")

    load = boom if where == "load" else (lambda: (boom, lambda: 0))
    result = WindowsLocker(load=load)()
    assert not result.ok and "user32 is broken" in result.detail


def test_windows_locker_off_windows_fails_cleanly():
    assert not WindowsLocker()().ok  # no ctypes.WinDLL here: a result, not an exception


# -- macOS ----------------------------------------------------------------------------------


class FakeLoginFramework:
    def __init__(self, with_symbol=True):
        self.calls = 0
        if with_symbol:
            def SACLockScreenImmediate():  # noqa: N802 - the real symbol's name
                self.calls += 1
                return 0

            self.SACLockScreenImmediate = SACLockScreenImmediate


def mac_locker(lib=None, is_locked=lambda: True, load_error=None, clock=None):
    clock = clock or FakeClock()
    loaded = []

    def load(path):
        loaded.append(path)
        if load_error:
            raise load_error
        return lib

    locker = MacLocker(load_library=load, is_locked=is_locked, sleep=clock.sleep, clock=clock)
    return locker, loaded


def test_macos_lock_confirmed_by_the_session_dictionary():
    lib = FakeLoginFramework()
    locker, loaded = mac_locker(lib)
    result = locker()
    assert result.ok and lib.calls == 1 and loaded == [LOGIN_FRAMEWORK]


def test_macos_unconfirmed_lock_fails_after_about_two_seconds():
    clock = FakeClock()
    locker, _ = mac_locker(FakeLoginFramework(), is_locked=lambda: False, clock=clock)
    result = locker()
    assert not result.ok and "not locked" in result.detail
    assert 1.9 <= sum(clock.sleeps) <= 2.2


def test_macos_probe_failure_is_not_a_lock():
    def probe():
        raise OSError("no window-server session")

    locker, _ = mac_locker(FakeLoginFramework(), is_locked=probe)
    result = locker()
    assert not result.ok and "cannot be confirmed" in result.detail


@pytest.mark.parametrize("case", ["missing framework", "missing symbol", "call raises"])
def test_macos_errors_become_a_failed_result_and_an_alert(case):
    if case == "missing framework":
        locker, _ = mac_locker(load_error=OSError("image not found"))
    elif case == "missing symbol":
        locker, _ = mac_locker(FakeLoginFramework(with_symbol=False))
    else:
        lib = FakeLoginFramework(with_symbol=False)

        def broken():
            raise RuntimeError("boom")

        lib.SACLockScreenImmediate = broken
        locker, _ = mac_locker(lib)
    assert not locker().ok
    alerts = []
    assert Actor("lock", locker, lambda t, m: alerts.append(t)).act("impostor") == LOCK_FAILED
    assert alerts and alerts[0]


def test_macos_locker_off_macos_fails_cleanly():
    assert not MacLocker()().ok  # the framework does not exist here


# -- platform choice ------------------------------------------------------------------------


def test_platform_locker_picks_by_platform():
    assert isinstance(platform_locker("linux"), LinuxLocker)
    assert isinstance(platform_locker("win32"), WindowsLocker)
    assert isinstance(platform_locker("darwin"), MacLocker)
    unsupported = platform_locker("sunos5")()
    assert not unsupported.ok and "sunos5" in unsupported.detail


# -- the Actor ------------------------------------------------------------------------------


class Recorder:
    def __init__(self, result=LockResult(True, "fake lock")):
        self.result = result
        self.lock_calls = 0
        self.alerts: list[tuple[str, str]] = []

    def locker(self):
        self.lock_calls += 1
        if isinstance(self.result, BaseException):
            raise self.result
        return self.result

    def notify(self, title, message):
        self.alerts.append((title, message))


def test_log_action_only_logs(caplog):
    rec = Recorder()
    with caplog.at_level(logging.WARNING):
        assert Actor("log", rec.locker, rec.notify).act("score 0.2") == LOGGED
    assert rec.lock_calls == 0 and rec.alerts == []
    assert "score 0.2" in caplog.text


def test_alert_action_notifies_with_a_title_and_does_not_lock():
    rec = Recorder()
    assert Actor("alert", rec.locker, rec.notify).act("score 0.2") == ALERTED
    assert rec.lock_calls == 0
    assert len(rec.alerts) == 1
    title, message = rec.alerts[0]
    assert title.strip() and "score 0.2" in message


def test_confirmed_lock_is_locked_without_an_alert(caplog):
    rec = Recorder()
    with caplog.at_level(logging.WARNING):
        assert Actor("lock", rec.locker, rec.notify).act("score 0.2") == LOCKED
    assert rec.lock_calls == 1 and rec.alerts == []
    assert "fake lock" in caplog.text


def test_failed_lock_alerts_and_is_logged(caplog):
    rec = Recorder(LockResult(False, "LockedHint stayed 'no'"))
    with caplog.at_level(logging.ERROR):
        assert Actor("lock", rec.locker, rec.notify).act("score 0.2") == "lock failed → alerted"
    (title, message), = rec.alerts
    assert title and "LockedHint stayed 'no'" in message
    assert "LOCK FAILED" in caplog.text


@pytest.mark.parametrize("bad", [RuntimeError("bug"), OSError("gone"), None, "locked!"])
def test_a_locker_that_raises_or_misanswers_means_not_locked(bad):
    rec = Recorder(bad)
    assert Actor("lock", rec.locker, rec.notify).act("x") == LOCK_FAILED
    assert len(rec.alerts) == 1


@pytest.mark.parametrize("action", ["lock", "alert"])
def test_act_survives_a_broken_notifier(action, caplog):
    def notify(title, message):
        raise RuntimeError("tray is gone")

    locker = Recorder(LockResult(False, "no lock")).locker
    with caplog.at_level(logging.ERROR):
        outcome = Actor(action, locker, notify).act("score 0.1")
    assert outcome == (LOCK_FAILED if action == "lock" else ALERTED)
    assert "tray is gone" in caplog.text


def test_unknown_action_is_refused_up_front():
    with pytest.raises(ValueError, match="unknown action"):
        Actor("shutdown", Recorder().locker, Recorder().notify)


# -- fallback notifier ----------------------------------------------------------------------


def test_notify_commands():
    assert notify_send_command("T", "-m") == [
        "notify-send", "--app-name=mouseguard", "--urgency=critical", "--", "T", "-m",
    ]
    assert osascript_notify_command('say "hi"', "a\\b") == [
        "osascript", "-e", 'display notification "a\\\\b" with title "say \\"hi\\""',
    ]
    assert desktop_notify_command("T", "m", "win32") is None


def test_fallback_notifier_logs_and_runs_notify_send(caplog):
    run = FakeRun({("notify-send",): 0})
    with caplog.at_level(logging.WARNING):
        FallbackNotifier(run=run, platform="linux")("mouseguard: test", "hello")
    assert run.calls == [notify_send_command("mouseguard: test", "hello")]
    assert "hello" in caplog.text


@pytest.mark.parametrize("error", [FileNotFoundError(2, "notify-send"), subprocess.TimeoutExpired("notify-send", 5)])
def test_fallback_notifier_never_raises(error, caplog):
    with caplog.at_level(logging.WARNING):
        FallbackNotifier(run=FakeRun({(): error}), platform="linux")("t", "still logged")
    assert "still logged" in caplog.text


def test_fallback_notifier_on_windows_only_logs(caplog):
    run = FakeRun()
    with caplog.at_level(logging.WARNING):
        FallbackNotifier(run=run, platform="win32")("t", "logged")
    assert run.calls == [] and "logged" in caplog.text
