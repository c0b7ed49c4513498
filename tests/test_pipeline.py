"""The pipeline after the hook, with a real ONNX model: replay of genuine and impostor input."""

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
