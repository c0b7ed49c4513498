"""The pipeline after the hook, with a real ONNX model: replay of genuine and impostor input."""

import re

import numpy as np
import pytest

from agent import states
from agent.cli import main
from agent.model_dir import load_model_dir
from agent.model_inputs import extract_all
from agent.pipeline import make_pipeline
from agent.recordings import write_recording
from agent.replay import final_state, replay
from agent.scorer import Scorer
from tests.synth import synth_events


@pytest.fixture(scope="module")
def unseen(tmp_path_factory):
    """Recordings none of the models saw: alice (genuine) and bob and carol (impostors)."""
    root = tmp_path_factory.mktemp("unseen")
    paths = {}
    for user, seed in (("alice", 101), ("bob", 102), ("carol", 103)):
        paths[user] = root / f"{user}.csv"
        write_recording(paths[user], synth_events(user, seconds=240, seed=seed))
    return paths


def _replay(model_path, recording):
    from agent.recordings import read_recording

    model = load_model_dir(model_path)
    return replay(read_recording(recording), make_pipeline(model, Scorer(model)))


def test_genuine_stays_protected_impostors_locked(synth_model, unseen):
    genuine = _replay(synth_model, unseen["alice"])
    assert len(genuine) >= 10 and final_state(genuine) != states.LOCKED
    for impostor in ("bob", "carol"):
        verdicts = _replay(synth_model, unseen[impostor])
        assert final_state(verdicts) == states.LOCKED
        first = next(v for v in verdicts if v.verdict.act)
        assert first.index <= 3 * load_model_dir(synth_model).decision.window


def test_replay_in_chunks_equals_batch_scoring(synth_model, unseen):
    from agent.recordings import read_recording

    model = load_model_dir(synth_model)
    events = read_recording(unseen["bob"])
    verdicts = replay(events, make_pipeline(model, Scorer(model)), chunk_seconds=0.05)
    blocks, ends = extract_all(model, events)
    scores = Scorer(model).score(blocks)
    # the streaming pipeline scores exactly the blocks the batch cutter cuts (without the
    # final flush, which a live stream never sees)
    n = len(verdicts)
    assert n in (len(blocks), len(blocks) - 1) or n <= len(blocks)
    np.testing.assert_allclose([v.verdict.score for v in verdicts], scores[:n], atol=1e-6)
    np.testing.assert_array_equal([v.t for v in verdicts], ends[:n])


def test_replay_paced_sleeps_in_recording_time(synth_model, unseen):
    from agent.recordings import read_recording

    model = load_model_dir(synth_model)
    events = read_recording(unseen["alice"])[:400]
    slept = []
    fake_now = [0.0]

    def sleep(s):
        slept.append(s)
        fake_now[0] += s

    replay(events, make_pipeline(model, Scorer(model)), speed=10.0, sleep=sleep, clock=lambda: fake_now[0])
    span = events["t"][-1] - events["t"][0]
    assert sum(slept) == pytest.approx(span / 10.0, rel=0.1)


def test_replay_cli_prints_timeline(synth_model, unseen, capsys):
    assert main(["replay", "--model", str(synth_model), str(unseen["bob"])]) == 0
    out = capsys.readouterr().out
    assert "would lock" in out and "lock(s); the first after" in out
    assert main(["replay", "--model", str(synth_model), "--speed", "0", str(unseen["bob"])]) == 2
    assert "--speed must be a positive number" in capsys.readouterr().err


# -- one source for the decision settings: the agent, replay and demo decide alike -----------

LOCK_LINE = re.compile(r"^\s*(\d+):(\d+\.\d)\s+\d+\s+\S+\s+\S+\s+LOCKED\s+mean of last (\d+) blocks < (\d\.\d{3})")


def _locks(lines):
    """(seconds into the recording, window, threshold) of each printed lock."""
    return [(60 * int(m[1]) + float(m[2]), int(m[3]), float(m[4])) for m in map(LOCK_LINE.match, lines) if m]


def _write_config(home, text):
    (home / "config").mkdir(parents=True, exist_ok=True)
    (home / "config" / "config.toml").write_text(text)
    return home / "config" / "config.toml"


def _other_settings(model_path):
    """A window and a threshold the manifest does not have."""
    d = load_model_dir(model_path).decision
    return (2 if d.window != 2 else 3), (0.9 if abs(d.threshold - 0.9) > 1e-3 else 0.8)


def test_replay_prints_and_applies_the_configs_window_and_threshold(synth_model, unseen, mouseguard_home, capsys):
    # before: replay said "mean of <manifest window> blocks < <manifest threshold>" whatever the config said
    window, threshold = _other_settings(synth_model)
    config = _write_config(mouseguard_home, f"[decision]\nwindow = {window}\nthreshold = {threshold}\n"
                                            "[agent]\ngrace_seconds = 0\n")
    assert main(["replay", "--model", str(synth_model), str(unseen["bob"])]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert f"lock when the mean of {window} blocks < {threshold:.3f}" in lines[0]
    assert f"decision.window, decision.threshold from {config}" in lines[0]
    locks = _locks(lines)
    assert locks and all((w, t) == (window, threshold) for _, w, t in locks)
    # and the decisions are those settings' (not only the words): the same lock count
    from agent.recordings import read_recording
    from agent.replay import summary

    model = load_model_dir(synth_model)
    expected = replay(read_recording(unseen["bob"]),
                      make_pipeline(model, Scorer(model), window=window, threshold=threshold))
    assert lines[-1] == summary(expected)


def test_replay_keeps_the_agents_grace_period_between_locks(synth_model, unseen, mouseguard_home, capsys):
    # before: replay had no grace period, so an impostor was "locked" every few blocks
    _write_config(mouseguard_home, "[agent]\ngrace_seconds = 0\n")
    assert main(["replay", "--model", str(synth_model), str(unseen["bob"])]) == 0
    without = [t for t, _, _ in _locks(capsys.readouterr().out.splitlines())]
    assert min(np.diff(without)) < 30  # else the next part would prove nothing

    _write_config(mouseguard_home, "[agent]\ngrace_seconds = 30\n")
    assert main(["replay", "--model", str(synth_model), str(unseen["bob"])]) == 0
    out = capsys.readouterr().out.splitlines()
    with_grace = [t for t, _, _ in _locks(out)]
    assert len(with_grace) >= 2 and min(np.diff(with_grace)) >= 30 - 0.1  # printed to 0.1 s
    assert "then no decision for 30 s" in out[0]


def test_replay_without_a_config_file_uses_the_defaults_and_writes_nothing(synth_model, unseen, mouseguard_home,
                                                                          capsys):
    from agent.config import AgentConfig

    assert main(["replay", "--model", str(synth_model), str(unseen["bob"])]) == 0
    d = load_model_dir(synth_model).decision
    assert (f"lock when the mean of {d.window} blocks < {d.threshold:.3f}, then no decision for "
            f"{AgentConfig().grace_seconds} s") in capsys.readouterr().out
    assert not mouseguard_home.exists()


def test_demo_locks_respect_the_grace_period_and_the_users_config(mouseguard_home, tmp_path):
    # before: the demo's impostor was "locked" 33 times, some locks 7 s apart, and it ignored the config
    from agent.demo import run_demo

    _write_config(mouseguard_home, "[agent]\ngrace_seconds = 45\n[decision]\nwindow = 4\n")
    lines = []
    outcome = run_demo(tmp_path / "demo.png", lines.append)
    assert outcome["impostor"] == states.LOCKED and (tmp_path / "demo.png").exists()
    impostor = lines[next(i for i, line in enumerate(lines) if line.startswith("== impostor")):]
    locks = _locks(impostor)
    assert len(locks) >= 2 and min(np.diff([t for t, _, _ in locks])) >= 45 - 0.1
    assert all(w == 4 for _, w, _ in locks)
    assert "last 4 blocks" in lines[0] and "no decision for 45 s" in lines[0] and "decision.window from" in lines[0]


def test_the_agent_and_replay_build_the_same_decision_from_one_config(synth_model, unseen, mouseguard_home,
                                                                      monkeypatch):
    import agent.replay
    from agent.config import load_config
    from agent.responses.actor import Actor
    from agent.ringbuffer import RingBuffer
    from agent.runner import Agent
    from tests.fakes import RecordingTray

    window, threshold = _other_settings(synth_model)
    _write_config(mouseguard_home, f"[decision]\nwindow = {window}\nthreshold = {threshold}\n"
                                   "[agent]\ngrace_seconds = 17\n")
    built = []
    monkeypatch.setattr(agent.replay, "replay_printed", lambda events, pipeline, *a, **k: built.append(pipeline) or [])
    assert main(["replay", "--model", str(synth_model), str(unseen["bob"])]) == 0

    tray = RecordingTray()
    live = Agent(load_config(), tray, Actor("log", lambda: None, tray.notify), model_dir=synth_model, user="alice",
                 status_path=mouseguard_home / "status.json", recordings_dir=mouseguard_home / "rec")
    live.buffer = RingBuffer()
    live._protect(load_model_dir(synth_model))  # what start() does once the hook runs
    try:
        settings = [(p.decision.window, p.decision.threshold, p.decision.grace_seconds)
                    for p in (built[0], live.consumer.pipeline)]
    finally:
        live.consumer.stop()
    assert settings[0] == settings[1] == (window, threshold, 17)
