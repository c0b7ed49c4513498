"""Fail closed on the model itself (issue 19, items 1 and 2): once someone enrolled here, a missing,
changed or unloadable model is "not protecting" and acted on as an impostor after the short grace —
never "protected", never learning anew.

Real X server (Xvfb), real pynput hook driven by xdotool, real ONNX models and onnxruntime, real
files; only the OS lock is a recording fake.
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from agent import enrolled, states
from agent.config import Config, EnrolmentConfig
from agent.decision import FAULT_GRACE_SECONDS
from agent.recordings import write_recording
from agent.responses.actor import Actor
from agent.runner import Agent
from tests.fakes import FakeLocker, RecordingTray
from tests.synth import synth_events
from tests.waiting import wait_for

#: The lock comes FAULT_GRACE_SECONDS after the start; the rest is the test's patience.
LOCK_WAIT = FAULT_GRACE_SECONDS + 10


def move(xserver, n=120, seed=0):
    """Someone at the mouse: smooth strokes, with pauses a hand makes."""
    x0, y0 = 100 + 40 * seed, 120
    xserver.xdotool(*sum((["mousemove", str(x0 + 6 * i), str(y0 + 3 * i), "sleep", "0.01"] for i in range(n)), []))


@pytest.fixture
def enrolled_alice(tmp_path, synth_model):
    """alice's model in the models folder and her enrolment record in the state folder, as
    ``mouseguard enroll`` leaves them."""
    model_dir = tmp_path / "data" / "models" / "alice"
    shutil.copytree(synth_model, model_dir)
    record = tmp_path / "state" / "enrolled" / "alice.json"
    enrolled.write_record(record, "alice", model_dir)
    return model_dir, record


@pytest.fixture
def start_agent(tmp_path, xserver):
    agents = []

    def start(model_dir, record=None, action="lock"):
        tray, locker, enrolments = RecordingTray(), FakeLocker(), []

        def enrol_command(user, files):  # learning would end here: it must never be reached
            enrolments.append(files)
            return [sys.executable, "-c", "raise SystemExit(1)"]

        config = Config(enrolment=EnrolmentConfig(minutes=0.01, auto=True))
        agent = Agent(config, tray, Actor(action, locker, tray.notify), model_dir=model_dir, user="alice",
                      status_path=tmp_path / "status.json", recordings_dir=tmp_path / "rec",
                      enrol_command=enrol_command, heartbeat=0.5, enrolment_record=record)
        agents.append(agent)
        agent.start()
        wait_for(lambda: agent.hook_ok, what="the hook to run")
        return agent, tray, locker, enrolments

    yield start
    for a in agents:
        a.stop()


def shown(tray):
    return [s for s, _ in tray.states]


def test_a_deleted_model_with_planted_recordings_locks_instead_of_enrolling_the_impostor(
        enrolled_alice, start_agent, tmp_path, xserver):
    # before: the agent went "learning" on the planted recordings and then "enrolled automatically"
    model_dir, record = enrolled_alice
    shutil.rmtree(model_dir)
    planted = tmp_path / "rec" / "alice" / "planted.csv.gz"
    write_recording(planted, synth_events("bob", seconds=120, seed=3))
    t0 = time.monotonic()
    agent, tray, locker, enrolments = start_agent(model_dir, record)
    assert tray.state == states.NOT_PROTECTING
    assert "missing" in agent.detail and str(model_dir) in agent.detail and "\n" not in agent.detail
    assert any(title == "mouseguard is not protecting" and "will not learn" in message
               for title, message in tray.notifications)
    move(xserver)
    wait_for(lambda: locker.calls >= 1, timeout=LOCK_WAIT, what="the lock after the grace")
    assert time.monotonic() - t0 >= FAULT_GRACE_SECONDS - 0.5
    wait_for(lambda: agent.state == states.LOCKED, what="the locked state")
    for _ in range(3):
        move(xserver, seed=1)
    time.sleep(1.0)
    assert states.LEARNING not in shown(tray) and states.PROTECTED not in shown(tray)
    assert not enrolments and not model_dir.exists()
    assert sorted((tmp_path / "rec").rglob("*.csv*")) == [planted]  # nothing recorded meanwhile
    status = json.loads(agent.status_path.read_text())
    assert status["state"] in (states.LOCKED, states.NOT_PROTECTING)


def set_manifest_threshold(model_dir, threshold: float) -> None:
    """Edit the decision threshold in a model's manifest, as someone at the desk would."""
    manifest = json.loads((model_dir / "manifest.json").read_text())
    manifest["decision"]["threshold"] = threshold
    (model_dir / "manifest.json").write_text(json.dumps(manifest))


def test_a_manifest_changed_while_not_running_is_named_refused_and_locks(enrolled_alice, start_agent, xserver):
    # before: a manifest edit within the manifest's own checks (the SHA-256 covers model.onnx only) was
    # accepted: here a threshold nearly no one's rolling mean falls below
    model_dir, record = enrolled_alice
    set_manifest_threshold(model_dir, 0.02)
    agent, tray, locker, _ = start_agent(model_dir, record)
    assert tray.state == states.NOT_PROTECTING
    assert f"{model_dir / 'manifest.json'} changed since enrolment" in agent.detail
    assert "model.onnx" not in agent.detail
    assert any("manifest.json changed since enrolment" in m for _, m in tray.notifications)
    wait_for(lambda: locker.calls >= 1, timeout=LOCK_WAIT, what="the lock after the grace, mouse still")
    assert states.PROTECTED not in shown(tray)


def test_a_model_replaced_whole_while_not_running_names_both_files(enrolled_alice, start_agent, tmp_path,
                                                                    xserver):
    # a consistent swap (another model's onnx with its hash in the manifest) passes load_model_dir
    from tests.test_fail_closed import constant_model

    model_dir, record = enrolled_alice
    always_genuine = constant_model(tmp_path, 0.99)
    shutil.rmtree(model_dir)
    shutil.copytree(always_genuine, model_dir)
    agent, tray, locker, _ = start_agent(model_dir, record)
    assert tray.state == states.NOT_PROTECTING
    assert "manifest.json and" in agent.detail and "model.onnx changed since enrolment" in agent.detail
    move(xserver)
    wait_for(lambda: locker.calls >= 1, timeout=LOCK_WAIT, what="the lock after the grace")


def test_a_file_added_to_the_model_folder_is_named(enrolled_alice, start_agent, xserver):
    # onnxruntime reads external weights from beside model.onnx: no file there goes unvouched for
    model_dir, record = enrolled_alice
    (model_dir / "model.onnx.data").write_bytes(b"weights nobody enrolled")
    agent, tray, locker, _ = start_agent(model_dir, record)
    assert tray.state == states.NOT_PROTECTING
    assert f"{model_dir / 'model.onnx.data'} changed since enrolment" in agent.detail
    assert "manifest.json" not in agent.detail


def test_a_model_onnxruntime_cannot_load_locks_after_the_grace(synth_model, start_agent, tmp_path, xserver):
    # before: "not protecting" for ever, and never a lock: whoever broke the model kept the desk
    broken = tmp_path / "broken"
    shutil.copytree(synth_model, broken)
    garbage = b"not an onnx model" * 64
    (broken / "model.onnx").write_bytes(garbage)
    manifest = json.loads((broken / "manifest.json").read_text())
    manifest["onnx"]["sha256"] = hashlib.sha256(garbage).hexdigest()
    (broken / "manifest.json").write_text(json.dumps(manifest))
    agent, tray, locker, enrolments = start_agent(broken)  # a model named in the config: no record
    assert tray.state == states.NOT_PROTECTING and "onnxruntime cannot load it" in agent.detail
    move(xserver)
    wait_for(lambda: locker.calls >= 1, timeout=LOCK_WAIT, what="the lock after the grace")
    assert not enrolments and states.PROTECTED not in shown(tray)


def test_an_unreadable_record_is_not_never_enrolled(enrolled_alice, start_agent, xserver):
    model_dir, record = enrolled_alice
    shutil.rmtree(model_dir)
    record.write_text("{ half a record")
    agent, tray, locker, enrolments = start_agent(model_dir, record)
    assert tray.state == states.NOT_PROTECTING and "enrolment record is unreadable" in agent.detail
    wait_for(lambda: locker.calls >= 1, timeout=LOCK_WAIT, what="the lock after the grace")
    assert not enrolments and states.LEARNING not in shown(tray)


def test_the_enrolled_model_protects_and_a_model_without_a_record_gets_one(enrolled_alice, start_agent, xserver):
    model_dir, record = enrolled_alice
    agent, tray, locker, _ = start_agent(model_dir, record)
    assert tray.state == states.PROTECTED and not tray.notifications
    agent.stop()
    record.unlink()  # a model made before records existed
    agent, tray, _, _ = start_agent(model_dir, record)
    assert tray.state == states.PROTECTED
    assert [title for title, _ in tray.notifications] == ["mouseguard recorded your model"]  # said, not silent
    assert enrolled.read_record(record)["sha256"] == enrolled.digests(model_dir)
    assert (record.stat().st_mode & 0o077) == 0


def test_a_model_stranded_by_a_kill_mid_swap_is_recovered_at_start(enrolled_alice, start_agent, tmp_path,
                                                                    xserver):
    # atomic_directory killed between its two renames: the model only under .alice.old-*
    model_dir, record = enrolled_alice
    stranded = model_dir.parent / ".alice.old-k9x_2abc"
    os.replace(model_dir, stranded)
    # and a recording checkpoint killed between its write and its rename, an hour ago
    part = tmp_path / "rec" / "alice" / ".20261206-101010.csv.gz.ab_12xyz.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(b"half of someone's movement")
    os.utime(part, (time.time() - 3600, time.time() - 3600))
    agent, tray, _, enrolments = start_agent(model_dir, record)
    assert tray.state == states.PROTECTED and model_dir.is_dir() and not stranded.exists()
    assert not enrolments and not part.exists()


def test_run_command_end_to_end_never_relearns_a_deleted_model(synth_model, xserver, tmp_path):
    """``mouseguard run`` itself: first start records alice's model; with it deleted and recordings
    planted, the next start says "not protecting" and acts (here: logs) after the grace."""
    home = tmp_path / "home"
    env = {**os.environ, "MOUSEGUARD_HOME": str(home), "DISPLAY": xserver.display, "XDG_SESSION_TYPE": "x11"}
    (home / "config").mkdir(parents=True)
    (home / "config" / "config.toml").write_text('[agent]\nuser = "alice"\n[enrolment]\nminutes = 0.01\n')
    model_dir = home / "data" / "models" / "alice"
    shutil.copytree(synth_model, model_dir)
    log_file = home / "logs" / "mouseguard.log"

    def run_until(text, moving=False, timeout=40):
        proc = subprocess.Popen([sys.executable, "-m", "agent", "run", "--no-tray", "--action", "log"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if log_file.exists() and text in log_file.read_text():
                    break
                if moving:
                    move(xserver, n=40)
                time.sleep(0.2)
            else:
                raise AssertionError(f"timed out waiting for {text!r} in the log:\n{log_file.read_text()}")
        finally:
            proc.terminate()
            proc.wait(timeout=20)
        return log_file.read_text()

    run_until("protecting with")
    assert (home / "state" / "enrolled" / "alice.json").is_file()
    shutil.rmtree(model_dir)
    write_recording(home / "data" / "recordings" / "alice" / "planted.csv.gz", synth_events("bob", 120, seed=4))
    text = run_until("impostor suspected", moving=True).split("protecting with", 1)[1]
    assert "the model of alice is missing" in text and "no valid score for 10 s" in text
    assert "learning" not in text and "enrolled automatically" not in text
