"""The agent's side of a template update: what it keeps while protecting, when it refits, the swap.

A real enrolment (one epoch), the real pipeline and ONNX scorer fed the events the hook would
have stored, the real ``update-model`` child process, real files; the tray and the locker are
recording fakes.
"""

from __future__ import annotations

import logging
import stat
import time

import numpy as np

from agent import fleet_events, states
from agent.cli import main
from agent.config import load_config
from agent.model_dir import load_model_dir
from agent.ringbuffer import RingBuffer
from agent.runner import Agent
from agent.status import assess, read_status
from agent.template import read_store, update_command
from tests.fakes import RecordingTray
from tests.synth import synth_events


def _config(home, enabled=True):
    (home / "config").mkdir(parents=True, exist_ok=True)
    (home / "config" / "config.toml").write_text(
        "[agent]\ntrial_hours = 0\n"
        f"[template]\nenabled = {'true' if enabled else 'false'}\nupdate_hours = 0.5\nquiet_minutes = 5\n")


def _agent(home):
    from agent.paths import status_file, user_model_dir
    from agent.responses.actor import Actor

    tray = RecordingTray()
    agent = Agent(load_config(), tray, Actor("log", lambda: None, tray.notify),
                  model_dir=user_model_dir("alice"), user="alice", status_path=status_file(),
                  recordings_dir=home / "data" / "recordings")
    agent.buffer = RingBuffer()
    agent.hook_ok = True
    agent._protect(load_model_dir(agent.model_dir))
    assert agent.state == states.PROTECTED
    agent.template_command = lambda user: update_command(user) + ["--epochs", "1"]
    return agent


def _feed(agent, events, offset):
    """The events through the agent's pipeline and verdict callback, as the pipeline thread does."""
    events = events.copy()
    events["t"] += offset
    pipeline = agent.consumer.pipeline
    for start in range(0, len(events), 2000):
        agent.on_verdicts(pipeline.feed(events[start:start + 2000]))
    return float(events["t"][-1])


def test_agent_keeps_owner_blocks_refits_and_swaps_in(mouseguard_home, alice_files, caplog, monkeypatch):
    caplog.set_level(logging.INFO, logger="mouseguard.agent")
    emitted = []
    monkeypatch.setattr(fleet_events, "emit", lambda name, *a, **k: emitted.append((name, a)))
    _config(mouseguard_home)
    assert main(["enroll", "--user", "alice", "--from", *map(str, alice_files), "--epochs", "1"]) == 0
    agent = _agent(mouseguard_home)
    try:
        agent.consumer.stop()  # fed by hand below, not from the ring buffer
        keeper = agent.template
        assert keeper is not None and len(keeper.blocks) == 0
        end = _feed(agent, synth_events("alice", seconds=2400, seed=77), 1000.0)
        assert keeper.active_seconds >= 1800
        assert len(keeper.blocks) >= 30
        assert keeper.pending  # the last quiet minutes wait
        assert all(keeper.pending[i][0] > end - 300 for i in range(len(keeper.pending)))

        agent.set_state(states.LOCKED, "locked: test")  # never while locked
        assert agent.check_template() is False and agent.template_refit is None
        agent.set_state(states.PROTECTED)
        store = keeper.path
        assert agent.check_template() is True
        assert stat.S_IMODE(store.stat().st_mode) == 0o600
        assert read_store(store, agent.model.spec)[1] == 0.0  # the active time counts again
        agent.template_refit.join(300)
        old = agent.model
        assert agent.template_refit.accepted, caplog.text
        agent.check_template()
        assert agent.model is not old and agent.state == states.PROTECTED
        assert agent.model.manifest["training"]["updates"][-1]["blocks_offered"] == len(keeper.blocks)
        assert "switching to the model updated on the movement kept as yours" in caplog.text
        assert "held-out AUC" in caplog.text and "threshold" in caplog.text
        assert "kept blocks:" in caplog.text and "expected false locks per 8 h" in caplog.text
        updated = [a for name, a in emitted if name == fleet_events.MODEL_UPDATED]
        assert updated and "held-out AUC" in updated[-1][1]
        agent.write_status()
        _, text = assess(read_status(agent.status_path), now=time.time())
        assert "model age: enrolled" in text and "last updated" in text and "never updated" not in text
        # the swapped-in model passes the fail-closed check against the enrolment record
        assert agent._load_model().manifest["onnx"]["sha256"] == agent.model.manifest["onnx"]["sha256"]
    finally:
        agent.stop()


def test_nothing_is_kept_around_an_impostor_or_with_updates_off(mouseguard_home, alice_files):
    _config(mouseguard_home)
    assert main(["enroll", "--user", "alice", "--from", *map(str, alice_files), "--epochs", "1"]) == 0
    agent = _agent(mouseguard_home)
    try:
        agent.consumer.stop()
        keeper = agent.template
        t = _feed(agent, synth_events("alice", seconds=200, seed=78), 1000.0)
        waiting = len(keeper.pending)
        assert waiting > 0
        # an incident (as a suspicious state or a lock reports it) drops what waits
        keeper.incident(t)
        assert keeper.pending == []
        t = _feed(agent, synth_events("alice", seconds=200, seed=79), t + 1)
        assert keeper.pending == [] and len(keeper.blocks) == 0  # within quiet minutes after it
        # a pause counts as one too
        agent.pause(60)
        assert keeper.quiet_until > t
    finally:
        agent.stop()
    _config(mouseguard_home, enabled=False)
    agent = _agent(mouseguard_home)
    try:
        assert agent.template is None and agent.check_template() is False
    finally:
        agent.stop()


def test_config_template_section_is_checked(mouseguard_home, capsys):
    (mouseguard_home / "config").mkdir(parents=True, exist_ok=True)
    (mouseguard_home / "config" / "config.toml").write_text("[template]\nupdate_hours = 0\n")
    assert main(["update-model", "--user", "alice"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "update_hours" in err[0]


def test_forget_erases_the_kept_blocks(mouseguard_home, capsys):
    from agent.blocks import SEED_SPEC
    from agent.template import store_path, write_store

    write_store(store_path("alice"), SEED_SPEC, np.zeros((3, SEED_SPEC.channels, SEED_SPEC.size), np.float32), 5.0)
    assert main(["forget", "--user", "alice", "--yes"]) == 0
    assert not store_path("alice").exists()
    assert f"erased {store_path('alice')}" in capsys.readouterr().out


def test_live_impostor_input_through_the_hook_leaves_nothing_kept(mouseguard_home, alice_files, xserver):
    """Under Xvfb: real pynput hook, real xdotool input. Scribbling makes the agent suspicious (the
    threshold raised to 0.99: a one-epoch enrolment against the pool alone takes scribbles for
    alice); the blocks reached the keeper (active time counted), nothing waits, and the next
    quiet minutes keep nothing."""
    from agent.config import AgentConfig, Config, DecisionConfig, TemplateConfig
    from agent.paths import recordings_dir, status_file, user_model_dir
    from agent.responses.actor import Actor
    from tests.fakes import FakeLocker
    from tests.waiting import wait_for

    assert main(["enroll", "--user", "alice", "--from", *map(str, alice_files), "--epochs", "1"]) == 0
    tray, locker = RecordingTray(), FakeLocker()
    config = Config(agent=AgentConfig(trial_hours=0), decision=DecisionConfig(window=3, threshold=0.99),
                    template=TemplateConfig(quiet_minutes=5))
    agent = Agent(config, tray, Actor("lock", locker, tray.notify), model_dir=user_model_dir("alice"), user="alice",
                  status_path=status_file(), recordings_dir=recordings_dir(), heartbeat=0.5)
    agent.start()
    try:
        wait_for(lambda: agent.hook_ok, what="the hook to run")
        keeper = agent.template
        assert keeper is not None
        # xdotool's moves, 20 ms apart: the enrolled (encoder's) block spec merges events closer than 10 ms
        import random

        rnd, args = random.Random(5), []
        for _ in range(700):
            args += ["mousemove", str(rnd.randrange(5, 1270)), str(rnd.randrange(5, 790)), "sleep", "0.02"]
        for start in range(0, len(args), 500):
            xserver.xdotool(*args[start:start + 500])
        wait_for(lambda: states.SUSPICIOUS in [s for s, _ in tray.states], what="a suspicious state")
        wait_for(lambda: keeper.quiet_until > 0, what="the keeper to hear of it")
        assert keeper.active_seconds > 0
        assert keeper.pending == [] and len(keeper.blocks) == 0
        assert agent.check_template() is False
    finally:
        agent.stop()
    assert stat.S_IMODE(keeper.path.stat().st_mode) == 0o600
    assert len(read_store(keeper.path, agent.model.spec)[0]) == 0
