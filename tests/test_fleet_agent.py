"""Fleet reporting end to end: a real agent (real Xvfb, xdotool input, pynput hook, ONNX model)
locks, and a real UDP syslog receiver gets the RFC 5424 events; then `mouseguard run` itself
under a managed policy that locks the action and the syslog target. Only the OS lock is fake."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from agent import fleet_events, states
from agent.config import Config
from agent.fleet_events import Reporter
from agent.forwarding.syslog import SD_ID, SyslogDestination
from agent.policy import POLICY_ENV
from agent.responses.actor import Actor
from agent.runner import Agent
from tests.fakes import RecordingTray
from tests.rfc5424 import UdpReceiver
from tests.fakes import FakeLocker
from tests.test_agent_x11 import scribble
from tests.waiting import wait_for


@pytest.fixture
def receiver():
    r = UdpReceiver()
    yield r
    r.close()


def test_a_live_lock_reaches_the_syslog_receiver(synth_model, xserver, tmp_path, receiver):
    fleet_events.start_reporting(Reporter([SyslogDestination(receiver.target)]))
    tray, locker = RecordingTray(), FakeLocker()
    agent = Agent(Config(), tray, Actor("lock", locker, tray.notify), model_dir=synth_model, user="alice",
                  status_path=tmp_path / "status.json", recordings_dir=tmp_path / "rec", heartbeat=0.5)
    try:
        agent.start()
        wait_for(lambda: agent.hook_ok, what="the hook to run")
        scribble(xserver)
        wait_for(lambda: "locked" in receiver.names(), what="the lock event at the receiver")
    finally:
        agent.stop()
        fleet_events.stop_reporting(2.0)
    wait_for(lambda: "agent_stopped" in receiver.names(), what="the stop event")
    events = {e["msgid"]: e for e in receiver.events()}
    assert receiver.names()[0] == "agent_started"
    assert events["agent_started"]["sd"][SD_ID]["state"] == states.PROTECTED
    lock = events["locked"]
    sd = lock["sd"][SD_ID]
    assert lock["pri"] == 4 * 8 + 4 and lock["app"] == "mouseguard" and lock["procid"] == str(os.getpid())
    assert sd["state"] == states.LOCKED and sd["event"] == "locked"
    assert float(sd["score"]) < float(sd["threshold"])  # the decision's own numbers
    assert f"{float(sd['threshold']):.3f}" in sd["reason"] and "mean P(genuine)" in sd["reason"]
    assert locker.calls >= 1


def test_mouseguard_run_under_a_managed_policy_reports_where_the_policy_says(synth_model, xserver, tmp_path,
                                                                            receiver):
    home = tmp_path / "home"
    (home / "config").mkdir(parents=True)
    (home / "config" / "config.toml").write_text('[agent]\naction = "log"\n[forwarding]\nsyslog = ""\n')
    policy = tmp_path / "policy.toml"
    policy.write_text(f'[agent]\naction = "alert"\n[forwarding]\nsyslog = "{receiver.target}"\n')
    env = {**os.environ, "MOUSEGUARD_HOME": str(home), "DISPLAY": xserver.display, "XDG_SESSION_TYPE": "x11",
           POLICY_ENV: str(policy), "PATH": os.environ.get("PATH", "")}
    proc = subprocess.Popen([sys.executable, "-m", "agent", "run", "--no-tray", "--action", "log",
                             "--model", str(synth_model)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: "agent_started" in receiver.names(), what="the start event")
        started = receiver.events()[0]["sd"][SD_ID]
        assert "action alert" in started["reason"]  # neither the user's config nor --action log
        time.sleep(1.0)
        scribble(xserver, seed=3)
        wait_for(lambda: "alerted" in receiver.names(), what="the alert event")
        out = subprocess.run([sys.executable, "-m", "agent", "status"], env=env, capture_output=True,
                             text=True).stdout
        assert "blocks scored" in out and 'agent.action = "alert"' in out
        assert 'agent.action is locked to "alert"' in out and 'your setting "log" is ignored' in out
    finally:
        proc.terminate()
        output = proc.communicate(timeout=15)[0]
    assert proc.returncode == 0, output
    wait_for(lambda: "agent_stopped" in receiver.names(), what="the stop event")
    log_text = (home / "logs" / "mouseguard.log").read_text()
    assert 'agent.action is locked to "alert" by the managed policy' in log_text


def test_run_refuses_a_broken_policy_in_one_line(xserver, tmp_path, synth_model):
    policy = tmp_path / "policy.toml"
    policy.write_text('[agent]\naction = "lok"\n')
    env = {**os.environ, "MOUSEGUARD_HOME": str(tmp_path / "home"), "DISPLAY": xserver.display,
           "XDG_SESSION_TYPE": "x11", POLICY_ENV: str(policy)}
    done = subprocess.run([sys.executable, "-m", "agent", "run", "--no-tray", "--model", str(synth_model)],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f'mouseguard: error: {policy}: agent.action: expected one of "lock", "alert", "log", got the string "lok"']


def test_run_refuses_a_missing_webhook_ca_in_one_line(xserver, tmp_path, synth_model):
    home = tmp_path / "home"
    (home / "config").mkdir(parents=True)
    (home / "config" / "config.toml").write_text(
        f'[forwarding]\nwebhook = "https://127.0.0.1:9/h"\nwebhook_ca = "{tmp_path / "ca.pem"}"\n')
    env = {**os.environ, "MOUSEGUARD_HOME": str(home), "DISPLAY": xserver.display, "XDG_SESSION_TYPE": "x11"}
    done = subprocess.run([sys.executable, "-m", "agent", "run", "--no-tray", "--model", str(synth_model)],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        f"mouseguard: error: [forwarding]: webhook CA file {tmp_path / 'ca.pem'}: No such file or directory")
    assert "Traceback" not in done.stderr


def test_run_refuses_the_windows_event_log_off_windows_in_one_line(xserver, tmp_path, synth_model):
    home = tmp_path / "home"
    (home / "config").mkdir(parents=True)
    (home / "config" / "config.toml").write_text("[forwarding]\neventlog = true\n")
    env = {**os.environ, "MOUSEGUARD_HOME": str(home), "DISPLAY": xserver.display, "XDG_SESSION_TYPE": "x11"}
    done = subprocess.run([sys.executable, "-m", "agent", "run", "--no-tray", "--model", str(synth_model)],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        "mouseguard: error: [forwarding]: forwarding.eventlog = true: the Windows Event Log exists only on "
        'Windows; on this machine use forwarding.syslog = "local" (the system log) or a collector')
    assert "Traceback" not in done.stderr


@pytest.fixture
def reporting_agent(xserver, tmp_path, receiver):
    """make(model_dir, locker=...) -> a started agent reporting to ``receiver``."""
    fleet_events.start_reporting(Reporter([SyslogDestination(receiver.target)]))
    agents = []

    def make(model_dir, locker=None):
        tray = RecordingTray()
        agent = Agent(Config(), tray, Actor("lock", locker or FakeLocker(), tray.notify), model_dir=model_dir,
                      user="alice", status_path=tmp_path / "status.json", recordings_dir=tmp_path / "rec",
                      heartbeat=0.5)
        agents.append(agent)
        agent.start()
        wait_for(lambda: agent.hook_ok, what="the hook to run")
        return agent

    yield make
    for agent in agents:
        agent.stop()
    fleet_events.stop_reporting(2.0)


def test_a_dead_hook_is_reported_stopped_then_restored(reporting_agent, synth_model, xserver, receiver):
    agent = reporting_agent(synth_model)
    agent.supervisor.hook.inject_fault()
    xserver.xdotool("mousemove", "100", "100", "mousemove", "200", "220")
    wait_for(lambda: "protection_restored" in receiver.names(), timeout=10, what="the recovery event")
    names = receiver.names()
    assert names.index("protection_stopped") < names.index("protection_restored")
    stopped = receiver.events()[names.index("protection_stopped")]
    assert stopped["sd"][SD_ID]["reason"].startswith("mouse hook:") and stopped["pri"] == 4 * 8 + 3


def test_a_failed_lock_and_a_refused_model_are_reported(reporting_agent, synth_model, xserver, receiver, tmp_path):
    import json
    import shutil

    reporting_agent(synth_model, locker=FakeLocker(ok=False))
    scribble(xserver, seed=1)
    wait_for(lambda: "lock_failed" in receiver.names(), what="the lock_failed event")
    failed = receiver.events()[receiver.names().index("lock_failed")]["sd"][SD_ID]
    assert failed["state"] == states.ALERTED and float(failed["score"]) < float(failed["threshold"])

    bad = tmp_path / "bad"
    shutil.copytree(synth_model, bad)
    manifest = json.loads((bad / "manifest.json").read_text())
    manifest["onnx"]["sha256"] = "0" * 64
    (bad / "manifest.json").write_text(json.dumps(manifest))
    reporting_agent(bad)
    wait_for(lambda: "model_refused" in receiver.names(), what="the model_refused event")
    refused = receiver.events()[receiver.names().index("model_refused")]["sd"][SD_ID]
    assert refused["state"] == states.NOT_PROTECTING and "SHA-256" in refused["reason"]
