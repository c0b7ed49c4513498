"""The live agent on a real X server (real hook, xdotool input, real ONNX model; the OS lock a
recording fake): the trial after enrolment (issue 20, item 5) and what `status` shows after
acting (item 7)."""

import json
import shutil
import time

import pytest

from agent import states
from agent.config import AgentConfig, Config
from agent.responses.actor import Actor
from agent.runner import Agent
from agent.status import EXIT_ACTED, assess, format_status, read_status
from agent.trial import Trial
from tests.fakes import RecordingTray
from tests.fakes import FakeLocker
from tests.test_agent_x11 import scribble
from tests.waiting import wait_for


@pytest.fixture
def enrolled_model(synth_model, tmp_path):
    """alice's model as `mouseguard enroll` would have made it (the trial is for those)."""
    model = tmp_path / "models" / "alice"
    shutil.copytree(synth_model, model)
    manifest = json.loads((model / "manifest.json").read_text())
    manifest["training"] = {**(manifest.get("training") or {}), "dataset": "enrolment"}
    (model / "manifest.json").write_text(json.dumps(manifest))
    return model


@pytest.fixture
def run_agent(tmp_path, xserver):
    agents = []

    def run(model, action="lock", **agent_config):
        tray = RecordingTray()
        locker = FakeLocker()
        agent = Agent(Config(agent=AgentConfig(action=action, **agent_config)), tray,
                      Actor(action, locker, tray.notify), model_dir=model, user="alice",
                      status_path=tmp_path / "state" / "status.json", recordings_dir=tmp_path / "rec", heartbeat=0.5)
        agent.start()
        agents.append(agent)
        wait_for(lambda: agent.hook_ok, what="the hook to run")
        return agent, tray, locker

    yield run
    for a in agents:
        a.stop()


def status_of(agent):
    return read_status(agent.status_path)


def test_trial_alerts_instead_of_locking_then_reports_and_locks(run_agent, enrolled_model, xserver):
    agent, tray, locker = run_agent(enrolled_model, trial_hours=8, grace_seconds=0)
    text = format_status(status_of(agent), time.time())
    assert "trial: alert only, 8.0 h of active use left, then it locks" in text, text
    scribble(xserver, seed=11)
    wait_for(lambda: any("would have locked" in t for t, _ in tray.notifications), what="a trial alert")
    assert locker.calls == 0  # never locked out on day one
    assert states.ALERTED in [s for s, _ in tray.states]
    saved = json.loads(agent.trial.path.read_text())
    assert saved["would_lock"] and not saved["over"]

    # the hours of use pass (fast-forwarded): the next block ends the trial, with a summary
    agent.trial.active_seconds = 8 * 3600 - 0.01
    scribble(xserver, seed=12)
    wait_for(lambda: any("trial is over" in t for t, _ in tray.notifications), what="the trial summary")
    title, summary = next((t, m) for t, m in tray.notifications if "trial is over" in t)
    assert "would have locked" in summary and "Locking from now on" in summary
    scribble(xserver, seed=13)
    wait_for(lambda: locker.calls >= 1, what="a real lock after the trial")
    wait_for(lambda: "trial_hours_left" not in status_of(agent), what="the status to drop the trial")

    # a restart does not start the trial again
    agent.stop()
    again, _, again_locker = run_agent(enrolled_model, trial_hours=8, grace_seconds=0)
    assert not again.trial.running and "trial: alert only" not in format_status(status_of(again), time.time())


def test_trial_progress_survives_a_restart_and_a_new_enrolment_restarts_it(tmp_path):
    path = tmp_path / "trial-alice.json"
    trial = Trial(path, hours=1, model="aaa")
    for t in range(0, 600, 5):
        trial.block(float(t))
    trial.block(10_000.0)  # a long time away from the mouse counts 30 s, not hours
    trial.save()
    assert Trial(path, hours=1, model="aaa").active_seconds == pytest.approx(595 + 30)
    assert Trial(path, hours=1, model="bbb").active_seconds == 0  # another model: a new trial
    assert Trial(path, hours=0, model="aaa").running is False  # trial_hours = 0: lock from the start
    # a model in use for weeks, enrolled before trials existed, does not start one on upgrading
    assert Trial(tmp_path / "none.json", hours=8, model="old", settled=True).running is False
    assert Trial(path, hours=1, model="aaa", settled=True).running is True  # its own trial goes on


def test_model_age_from_the_manifest():
    from types import SimpleNamespace

    from agent.trial import model_age_days

    model = SimpleNamespace(manifest={"created": "2026-12-01T00:00:00+00:00"})
    import calendar

    assert model_age_days(model, now=calendar.timegm((2026, 12, 11, 0, 0, 0))) == pytest.approx(10)
    assert model_age_days(SimpleNamespace(manifest={})) is None


def test_models_not_from_enrolment_lock_at_once(run_agent, synth_model, xserver):
    agent, tray, locker = run_agent(synth_model, trial_hours=8, grace_seconds=0)
    assert agent.trial is None
    scribble(xserver, seed=14)
    wait_for(lambda: locker.calls >= 1, what="a lock")


def test_a_second_alert_renews_since_and_no_score_is_frozen_in_the_grace(run_agent, synth_model, xserver):
    agent, tray, _ = run_agent(synth_model, action="alert", grace_seconds=0)
    scribble(xserver, seed=21)
    wait_for(lambda: tray.notifications, what="a first alert")
    wait_for(lambda: status_of(agent)["state"] == states.ALERTED, what="the status to say alerted")
    first = status_of(agent)["since"]
    time.sleep(1.1)
    asked = time.time()
    alerts = len(tray.notifications)
    scribble(xserver, seed=22, n=1500)
    wait_for(lambda: len(tray.notifications) > alerts, what="a second alert")
    wait_for(lambda: status_of(agent)["since"] >= asked, what="'since' to say when the second alert came")
    assert status_of(agent)["since"] > first


def test_status_during_the_grace_after_a_lock(run_agent, synth_model, xserver):
    agent, tray, locker = run_agent(synth_model, grace_seconds=600)
    scribble(xserver, seed=31)
    wait_for(lambda: locker.calls >= 1, what="a lock")
    wait_for(lambda: status_of(agent)["state"] == states.LOCKED, what="the status to say locked")
    status = status_of(agent)
    assert status["last_score"] is None and status["grace_until"] > time.time() + 500
    code, text = assess(status, time.time())
    assert code == EXIT_ACTED and "no decision until" in text.splitlines()[0]
    assert "mean P(genuine)" in text  # the score that locked is in the detail, said once
