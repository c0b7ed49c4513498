"""The tamper suite (issue 19, item 8): one test per way someone at the owner's unlocked desk
might weaken mouseguard without the password. Each runs a real agent under Xvfb (real pynput
hook, xdotool input, ONNX models, files and processes; only the OS lock is a fake) and ends in
a lock or an alert — never in silence. A row not yet defended is ``xfail(strict=True)`` naming
what is missing, so it flips to a failure the day it is fixed. docs/threat-model.md says what
this suite covers and what mouseguard cannot defend against.

Rows tested at length elsewhere are imported here under the row's name, so this file is the
whole table.
"""

import os
import shutil
import subprocess
import sys
import time

import pytest

from agent import states
from agent.decision import FAULT_GRACE_SECONDS
from agent.recordings import write_recording
from tests.synth import synth_events
from tests.test_agent_x11 import scribble
from tests.test_control import live_agent  # noqa: F401 (fixtures)
from tests.test_control import short_dir  # noqa: F401
from tests.test_enrolled import (  # noqa: F401
    LOCK_WAIT, enrolled_alice, move, set_manifest_threshold, start_agent)
from tests.test_tamper_watch import locks_once_for, watched_agent  # noqa: F401
from tests.test_tamper_watch import (  # noqa: E402
    test_a_manifest_edit_while_running_locks as test_threshold_zero_in_manifest_while_running_locks,  # noqa: F401
)
from tests.test_unjudged import protecting  # noqa: F401
from tests.waiting import wait_for

# -- model and manifest -------------------------------------------------------------------------


def test_threshold_zero_in_manifest_before_start_locks(enrolled_alice, start_agent, xserver):  # noqa: F811
    model_dir, record = enrolled_alice
    set_manifest_threshold(model_dir, 0.0)
    agent, tray, locker, _ = start_agent(model_dir, record)
    assert tray.state == states.NOT_PROTECTING
    move(xserver)
    wait_for(lambda: locker.calls >= 1, timeout=LOCK_WAIT, what="the lock after the grace")


def test_a_model_whose_output_is_nan_locks(start_agent, tmp_path, xserver):  # noqa: F811
    from tests.test_fail_closed import constant_model

    agent, tray, locker, _ = start_agent(constant_model(tmp_path, float("nan")))
    assert tray.state == states.PROTECTED  # it loads: only its scores say it is broken
    t0 = time.monotonic()
    while locker.calls == 0 and time.monotonic() - t0 < LOCK_WAIT:
        move(xserver, n=60)
    assert locker.calls >= 1 and states.NOT_PROTECTING in [s for s, _ in tray.states]


def test_deleted_model_folder_and_planted_recordings_while_running_locks(enrolled_alice, start_agent,  # noqa: F811
                                                                         tmp_path, xserver):
    model_dir, record = enrolled_alice
    agent, tray, locker, enrolments = start_agent(model_dir, record)
    assert tray.state == states.PROTECTED
    shutil.rmtree(model_dir)
    write_recording(tmp_path / "rec" / "alice" / "planted.csv.gz", synth_events("bob", seconds=120, seed=3))
    wait_for(lambda: locker.calls >= 1, timeout=5, what="a lock for the deleted model")
    assert f"{model_dir}, " in agent.detail and "changed while mouseguard runs" in agent.detail and not enrolments


from tests.test_enrolled import (  # noqa: E402
    test_a_deleted_model_with_planted_recordings_locks_instead_of_enrolling_the_impostor as
    test_deleted_model_folder_and_planted_recordings_before_start_locks,  # noqa: F401
)

# -- config.toml while running --------------------------------------------------------------------


@pytest.mark.parametrize("edit", ["[decision]\nwindow = 1000\n", "[decision]\nthreshold = 0.0001\n",
                                  '[agent]\naction = "log"\n'], ids=["window 1000", "threshold 0.0001", "action log"])
def test_config_weakened_while_running_locks(watched_agent, edit):  # noqa: F811
    agent, locker, config_file, _ = watched_agent
    config_file.write_text(config_file.read_text() + edit)
    locks_once_for(agent, locker, config_file)


# -- enrolment without the password ---------------------------------------------------------------


def enroll(home, files):
    return subprocess.run([sys.executable, "-m", "agent", "enroll", "--user", "alice", "--epochs", "1", "--from",
                           *map(str, files)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "MOUSEGUARD_HOME": str(home)})


def test_enroll_from_own_recordings_while_running_locks(enrolled_alice, start_agent, tmp_path,  # noqa: F811
                                                        alice_files):
    # someone enrols themselves as the owner (here: from recordings they brought)
    model_dir, record = enrolled_alice
    agent, tray, locker, _ = start_agent(model_dir, record)
    assert tray.state == states.PROTECTED
    done = enroll(tmp_path, alice_files)  # MOUSEGUARD_HOME=tmp_path: the running agent's folders
    assert done.returncode == 0, done.stderr
    wait_for(lambda: locker.calls >= 1, timeout=5, what="a lock for the new enrolment")
    assert "changed while mouseguard runs" in agent.detail


def test_enroll_from_own_recordings_while_stopped_alerts_at_the_next_start(enrolled_alice, start_agent,  # noqa: F811
                                                                          tmp_path, alice_files):
    # before: the next start adopted the new model in silence
    model_dir, record = enrolled_alice
    agent, tray, _, _ = start_agent(model_dir, record)
    assert tray.state == states.PROTECTED and not tray.notifications
    agent.stop()
    assert enroll(tmp_path, alice_files).returncode == 0
    agent, tray, _, _ = start_agent(model_dir, record)
    assert tray.state == states.PROTECTED
    assert [t for t, _ in tray.notifications] == ["mouseguard: a new model protects you"]
    assert "while mouseguard was not running" in tray.notifications[0][1]
    agent.stop()
    agent, tray, _, _ = start_agent(model_dir, record)
    assert not tray.notifications  # said once


# -- ending or pausing protection -----------------------------------------------------------------

from tests.test_watchdog import (  # noqa: E402
    receiver,  # noqa: F401 (a fixture)
)
from tests.test_watchdog import (  # noqa: E402
    test_kill_9_of_the_agent_locks_the_session_and_stop_does_not as test_kill_9_the_agent_locks,  # noqa: F401
)


def test_pause_100_times_keeps_protecting_and_locks(live_agent, xserver):  # noqa: F811
    agent, tray = live_agent(pauses_per_day=4)
    granted = 0
    for _ in range(100):
        done, _said = agent.control("pause", 1)
        granted += done
        agent.control("resume")
    assert granted == 4 and tray.state == states.PROTECTED
    assert "no pause left today" in agent.control("pause", 1)[1]
    locker = agent.actor._locker
    calls = []
    agent.actor._locker = lambda: (calls.append(1), locker())[1]
    scribble(xserver, seed=5)
    wait_for(lambda: calls, what="the lock of an impostor after the pauses ran out")


# -- input that gives no blocks, or not a hand's ----------------------------------------------------

from tests.test_unjudged import test_a_jiggler_locks as test_a_1px_jiggler_locks  # noqa: E402, F401
from tests.test_unjudged import test_typing_without_the_mouse_locks as test_keyboard_only_locks  # noqa: E402, F401


from tests.test_injected_input import agent_with  # noqa: E402, F401
from tests.test_injected_input import (  # noqa: E402, F401
    test_xdotool_replay_locks_whatever_the_model_says as test_xdotool_input_on_x11_locks,
)


assert FAULT_GRACE_SECONDS < LOCK_WAIT
