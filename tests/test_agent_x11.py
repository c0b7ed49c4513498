"""The running agent end to end on a real X server: real pynput hook, real xdotool input,
real ONNX model; only the OS lock is a recording fake (it cannot exist on CI)."""

import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from agent import states
from agent.config import Config, EnrolmentConfig
from agent.responses.actor import Actor
from agent.runner import Agent
from tests.fakes import FakeLocker, RecordingTray
from tests.waiting import wait_for


def scribble(xserver, n=900, seed=0):
    """Fast jumpy pointer motion: nothing like the synthetic genuine user's smooth arcs."""
    import random

    rnd = random.Random(seed)
    args = []
    for _ in range(n):
        args += ["mousemove", str(rnd.randrange(5, 1270)), str(rnd.randrange(5, 790))]
    for start in range(0, len(args), 600):
        xserver.xdotool(*args[start:start + 600])


@pytest.fixture
def make_agent(tmp_path, xserver):
    agents = []

    def make(model_dir, action="lock", locker=None, config=None):
        tray = RecordingTray()
        locker = locker or FakeLocker()
        actor = Actor(action, locker, tray.notify)
        agent = Agent(config or Config(), tray, actor, model_dir=model_dir, user="alice",
                      status_path=tmp_path / "status.json", recordings_dir=tmp_path / "rec", heartbeat=0.5)
        agent.start()
        agents.append(agent)
        wait_for(lambda: agent.hook_ok, what="the hook to run")
        return agent, tray, locker

    yield make
    for a in agents:
        a.stop()


def test_impostor_input_is_locked(make_agent, synth_model, xserver):
    agent, tray, locker = make_agent(synth_model)
    assert tray.state == states.PROTECTED
    scribble(xserver)
    wait_for(lambda: locker.calls >= 1, what="a lock")
    # The tray and the status file follow the lock on the pipeline thread, a moment later.
    wait_for(lambda: states.LOCKED in [s for s, _ in tray.states], what="the tray to show the lock")
    wait_for(lambda: json.loads(agent.status_path.read_text())["blocks_scored"] >= 1,
             what="the status file to count the scored block")
    status = json.loads(agent.status_path.read_text())
    assert status["state"] in (states.LOCKED, states.PROTECTED, states.SUSPICIOUS)


def test_lock_failure_alerts_and_keeps_running(make_agent, synth_model, xserver):
    agent, tray, locker = make_agent(synth_model, locker=FakeLocker(ok=False))
    scribble(xserver, seed=1)
    wait_for(lambda: tray.notifications, what="an alert")
    assert any("could not lock" in title for title, _ in tray.notifications)
    assert states.ALERTED in [s for s, _ in tray.states]
    assert agent.supervisor.healthy


def test_hook_death_shows_not_protecting_then_recovers(make_agent, synth_model, xserver):
    agent, tray, _ = make_agent(synth_model)
    agent.supervisor.hook.inject_fault()
    xserver.xdotool("mousemove", "100", "100", "mousemove", "200", "220")
    wait_for(lambda: states.NOT_PROTECTING in [s for s, _ in tray.states], what="not protecting")
    t0 = time.monotonic()
    wait_for(lambda: tray.state == states.PROTECTED, timeout=6, what="recovery")
    assert time.monotonic() - t0 < 5.5


def test_pause_ignores_input_and_resume_protects(make_agent, synth_model, xserver):
    agent, tray, locker = make_agent(synth_model)
    agent.pause(60)
    assert tray.state == states.PAUSED
    scribble(xserver, n=600, seed=2)
    time.sleep(1.0)
    assert agent.blocks_scored == 0 and locker.calls == 0
    agent.resume()
    assert tray.state == states.PROTECTED
    scribble(xserver, seed=4)
    wait_for(lambda: agent.blocks_scored > 0, what="scoring after resume")


def test_tampered_model_refused_not_protecting(make_agent, synth_model, tmp_path, xserver):
    bad = tmp_path / "bad"
    shutil.copytree(synth_model, bad)
    manifest = json.loads((bad / "manifest.json").read_text())
    manifest["onnx"]["sha256"] = "0" * 64
    (bad / "manifest.json").write_text(json.dumps(manifest))
    agent, tray, _ = make_agent(bad)
    assert tray.state == states.NOT_PROTECTING and "model refused" in agent.detail
    assert any("SHA-256" in message for _, message in tray.notifications)


def test_no_model_learns_then_protects(make_agent, synth_model, tmp_path, xserver):
    target = tmp_path / "models" / "alice"
    seen = {}

    def enrol_command(user, files):
        # stands in for the real enrolment (tested in test_enrolment.py): installs a model
        seen["files"] = files
        return [sys.executable, "-c", f"import shutil; shutil.copytree({str(synth_model)!r}, {str(target)!r})"]

    config = Config(enrolment=EnrolmentConfig(minutes=0.01, auto=True))
    tray = RecordingTray()
    agent = Agent(config, tray, Actor("log", FakeLocker(), tray.notify), model_dir=target, user="alice",
                  status_path=tmp_path / "status.json", recordings_dir=tmp_path / "rec",
                  enrol_command=enrol_command, heartbeat=0.5)
    try:
        agent.start()
        wait_for(lambda: agent.hook_ok, what="the hook")
        assert tray.state == states.LEARNING
        for _ in range(3):
            xserver.xdotool(*sum((["mousemove", str(50 + 7 * i), str(60 + 5 * i), "sleep", "0.01"] for i in range(60)),
                                 []))
        wait_for(lambda: tray.state == states.PROTECTED, timeout=20, what="protecting after enrolment")
        assert seen["files"] and all(os.path.exists(f) for f in seen["files"])
        assert any("now protecting" in t for t, _ in tray.notifications)
        assert list((tmp_path / "rec" / "alice").glob("*.csv.gz"))  # the learnt movement is kept
        time.sleep(1.5)  # heartbeats: the model the agent wrote itself is not taken for tampering
        assert "changed while mouseguard runs" not in agent.detail and states.ALERTED not in tray.states[-1]
    finally:
        agent.stop()


def test_no_model_and_no_torch_says_so_instead_of_learning(synth_model, tmp_path, xserver, monkeypatch):
    # a runtime-only install: learning would record for half an hour and then fail to train
    monkeypatch.setitem(sys.modules, "torch", None)  # torch cannot be imported, as without [train]
    config = Config(enrolment=EnrolmentConfig(minutes=0.01, auto=True))
    tray = RecordingTray()
    agent = Agent(config, tray, Actor("log", FakeLocker(), tray.notify), model_dir=tmp_path / "models" / "alice",
                  user="alice", status_path=tmp_path / "status.json", recordings_dir=tmp_path / "rec", heartbeat=0.5)
    try:
        agent.start()
        wait_for(lambda: agent.hook_ok, what="the hook")
        xserver.xdotool(*sum((["mousemove", str(50 + 7 * i), str(60 + 5 * i)] for i in range(60)), []))
        time.sleep(1.0)
        assert tray.state == states.NOT_ENROLLED and "PyTorch" in agent.detail
        assert any("cannot train" in message for _, message in tray.notifications)
        assert not (tmp_path / "rec").exists()  # nothing recorded for a training that cannot happen
    finally:
        agent.stop()


def test_run_command_logs_decisions(synth_model, xserver, tmp_path):
    home = tmp_path / "home"
    env = {**os.environ, "MOUSEGUARD_HOME": str(home), "DISPLAY": xserver.display, "XDG_SESSION_TYPE": "x11"}
    (home / "config").mkdir(parents=True)
    (home / "config" / "config.toml").write_text('[logging]\nlevel = "debug"\n')
    proc = subprocess.Popen([sys.executable, "-m", "agent", "run", "--no-tray", "--action", "log",
                             "--model", str(synth_model)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        status = home / "state" / "status.json"
        wait_for(status.exists, what="the status file")
        time.sleep(1.0)
        scribble(xserver, seed=3)
        log_file = home / "logs" / "mouseguard.log"
        wait_for(lambda: log_file.exists() and "impostor suspected" in log_file.read_text(), what="a logged lock")
        text = log_file.read_text()
        assert "block 1: P(genuine)" in text and "action=log" in text
        out = subprocess.run([sys.executable, "-m", "agent", "status"], env=env, capture_output=True, text=True).stdout
        assert "blocks scored" in out and "not running" not in out
        second = subprocess.run([sys.executable, "-m", "agent", "run", "--no-tray", "--model", str(synth_model)],
                                env=env, capture_output=True, text=True, timeout=30)
        assert second.returncode == 2 and "already running" in second.stderr
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert proc.returncode == 0


def test_record_command_writes_what_xdotool_did(xserver, tmp_path):
    out = tmp_path / "rec.csv.gz"
    env = {**os.environ, "DISPLAY": xserver.display, "XDG_SESSION_TYPE": "x11", "MOUSEGUARD_HOME": str(tmp_path / "h")}
    proc = subprocess.Popen([sys.executable, "-m", "agent", "record", "--out", str(out), "--minutes", "0.08"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.5)
    xserver.xdotool("mousemove", "10", "10", "mousemove", "300", "200", "click", "1", "mousemove", "320", "240")
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    from agent.events import LEFT, PRESSED
    from agent.recordings import read_recording

    events = read_recording(out)
    assert (events["x"] == 300).any() and ((events["button"] == LEFT) & (events["state"] == PRESSED)).any()
    assert "recording" in err and "events written to" in err
    assert (out.stat().st_mode & 0o077) == 0


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM", "SIGHUP"])
def test_record_stopped_by_a_signal_keeps_what_was_recorded(xserver, tmp_path, sig):
    import signal

    out = tmp_path / "rec.csv.gz"
    env = {**os.environ, "DISPLAY": xserver.display, "XDG_SESSION_TYPE": "x11", "MOUSEGUARD_HOME": str(tmp_path / "h")}
    proc = subprocess.Popen([sys.executable, "-m", "agent", "record", "--out", str(out)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    import select

    try:
        started, deadline = "", time.monotonic() + 60
        while "recording" not in started and time.monotonic() < deadline:  # its progress line: recording
            if select.select([proc.stderr], [], [], 0.5)[0]:
                started += os.read(proc.stderr.fileno(), 4096).decode()
        xserver.xdotool(*sum((["mousemove", str(20 + 5 * i), str(30 + 3 * i)] for i in range(50)), []))
        time.sleep(0.5)
        proc.send_signal(getattr(signal, sig))  # a logout or `kill`, long before the first checkpoint
        _, err = proc.communicate(timeout=30)
        err = started + err
    finally:
        if proc.poll() is None:  # a hung recorder must not outlive the test
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0 and "keeping what was recorded" in err, err
    from agent.recordings import read_recording

    assert len(read_recording(out)) >= 50


def test_record_refuses_an_existing_file_and_reports_an_empty_recording(xserver, tmp_path):
    env = {**os.environ, "DISPLAY": xserver.display, "XDG_SESSION_TYPE": "x11", "MOUSEGUARD_HOME": str(tmp_path / "h")}
    precious = tmp_path / "p.csv"
    precious.write_text("precious")
    proc = subprocess.run([sys.executable, "-m", "agent", "record", "--out", str(precious), "--minutes", "0.01"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "already exists" in proc.stderr and proc.stderr.count("\n") == 1
    assert precious.read_text() == "precious"
    out = tmp_path / "nothing.csv"
    proc = subprocess.run([sys.executable, "-m", "agent", "record", "--out", str(out), "--minutes", "0.01"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "nothing was recorded" in proc.stderr and not out.exists()


def test_live_enroll_with_too_little_movement_keeps_recording(xserver, tmp_path):
    home = tmp_path / "h"
    env = {**os.environ, "DISPLAY": xserver.display, "XDG_SESSION_TYPE": "x11", "MOUSEGUARD_HOME": str(home)}
    # (a --minutes too short for any model is refused before recording: test_everyday_cli.py;
    # here the recording is cut short with Ctrl-C)
    proc = subprocess.Popen([sys.executable, "-m", "agent", "enroll", "--user", "zoe", "--minutes", "5"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.5)
    for _ in range(4):
        xserver.xdotool(*sum((["mousemove", str(50 + 9 * i), str(60 + 4 * i), "sleep", "0.02"] for i in range(40)), []))
    time.sleep(0.5)
    proc.send_signal(__import__("signal").SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2, err
    assert "too little data of zoe" in err and "nothing was changed" in err
    assert "Traceback" not in err
    assert list((home / "data" / "recordings" / "zoe").glob("*.csv.gz"))  # what was recorded is kept
    assert not (home / "data" / "models" / "zoe").exists()


def test_run_with_a_mistyped_model_refuses_at_once(xserver, tmp_path):
    # before: it started "learning", and after learning refused its own new model, forever
    env = {**os.environ, "DISPLAY": xserver.display, "XDG_SESSION_TYPE": "x11", "MOUSEGUARD_HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "agent", "run", "--no-tray", "--model", str(tmp_path / "typo")],
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "no model directory" in proc.stderr
