"""Fail closed on scores (issue 19, item 1): a block score that is not a P(genuine) in [0, 1], or
a scorer that raises, is never "protected": not protecting, then a lock after FAULT_GRACE_SECONDS.

Through the real block cutter, pipeline, decision, runner and actor; only the scorer (a scripted
one with the Scorer interface, or a real ONNX model whose output is NaN) and the OS lock are fakes.
"""

import hashlib
import json
import logging
import shutil
import time

import numpy as np
import pytest

import models
from agent import states
from agent.decision import FAULT_GRACE_SECONDS
from agent.model_dir import load_model_dir
from agent.pipeline import make_pipeline
from agent.replay import final_state, replay
from agent.responses.actor import Actor
from tests.fakes import FakeLocker, RecordingTray, ScriptedScorer
from tests.synth import synth_events
from tests.waiting import wait_for

BROKEN = {
    "nan": float("nan"),
    "above one": 1.5,
    "below zero": -0.25,
    "inf": float("inf"),
    "raises": RuntimeError("[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : Non-zero status code\nreturned"),
}


@pytest.fixture(scope="module")
def model():
    return load_model_dir(models.DEMO_MODEL)


@pytest.fixture(scope="module")
def events():
    return synth_events("alice", seconds=120, seed=7)


@pytest.mark.parametrize("answer", BROKEN.values(), ids=BROKEN.keys())
def test_invalid_scores_are_never_protected_and_lock_after_the_grace(model, events, answer):
    # before: NaN or 1.5 gave "protected" and never locked; a raising scorer ended the replay
    verdicts = replay(events, make_pipeline(model, ScriptedScorer(answer)))
    assert len(verdicts) >= 5
    assert not any(v.verdict.state in (states.PROTECTED, states.SUSPICIOUS) for v in verdicts)
    assert all(v.verdict.fault for v in verdicts)
    acts = [v for v in verdicts if v.verdict.act]
    assert acts and final_state(verdicts) == states.LOCKED
    first = verdicts[0]
    assert all(v.verdict.state == states.NOT_PROTECTING for v in verdicts if v.t < acts[0].t)
    assert FAULT_GRACE_SECONDS <= acts[0].t - first.t <= FAULT_GRACE_SECONDS + 1.0
    assert "\n" not in first.verdict.fault
    if isinstance(answer, BaseException):
        assert first.verdict.fault.startswith("scoring failed: RuntimeError: [ONNXRuntimeError]")
    else:
        assert f"score {answer:g}" in first.verdict.fault


def test_a_nan_in_the_window_no_longer_hides_an_impostor(model, events):
    # before: with a NaN every other block each window held one, its mean was NaN, and NaN < threshold is False
    blocks = [0]

    def every_other_nan(call, n):
        scores = np.where((blocks[0] + np.arange(n)) % 2 == 1, np.nan, 0.1)
        blocks[0] += n
        return scores

    verdicts = replay(events, make_pipeline(model, ScriptedScorer(every_other_nan), window=2))
    assert sum(np.isnan(v.verdict.score) for v in verdicts) >= 3
    judged = [v for v in verdicts if v.verdict.act and v.verdict.rolling is not None]
    assert judged and judged[0].verdict.rolling == pytest.approx(0.1)


def test_valid_scores_again_return_to_judging(model, events):
    scorer = ScriptedScorer(float("nan"))
    pipeline = make_pipeline(model, scorer)
    half = len(events) // 8
    broken = replay(events[:half], pipeline)
    assert broken and broken[-1].verdict.state == states.NOT_PROTECTING
    scorer.answer = 0.9
    healthy = replay(events[half:], pipeline)
    assert healthy and not any(v.verdict.act or v.verdict.fault for v in healthy)
    assert healthy[-1].verdict.state == states.PROTECTED and healthy[-1].verdict.rolling == pytest.approx(0.9)


# -- the running agent: status, log, tray, the actor asked to lock ----------------------------------


@pytest.fixture
def live(model, tmp_path, monkeypatch):
    """An Agent protecting with the demo model's pipeline, its scorer replaced by a scripted one;
    no hook: the test puts events into the ring buffer as the hook would."""
    import agent.scorer
    from agent.config import Config
    from agent.ringbuffer import RingBuffer
    from agent.runner import Agent

    scorer = ScriptedScorer(float("nan"))
    monkeypatch.setattr(agent.scorer, "Scorer", lambda m: scorer)
    tray, locker = RecordingTray(), FakeLocker()
    a = Agent(Config(), tray, Actor("lock", locker, tray.notify), model_dir=models.DEMO_MODEL, user="alice",
              status_path=tmp_path / "status.json", recordings_dir=tmp_path / "rec")
    a.buffer = RingBuffer()
    a.on_health(True, "")
    a._protect(model)  # what start() does once the hook runs
    yield a, tray, locker, scorer
    a.consumer.stop()


def put_live(buffer, events):
    """Put ``events`` as the hook would have stamped them, the last one now."""
    from agent.runner import live_clock

    shift = live_clock() - float(events["t"][-1])
    for e in events:
        buffer.put(round(float(e["t"]) + shift, 6), int(e["button"]), int(e["state"]), int(e["x"]), int(e["y"]))


def test_the_agent_says_not_protecting_then_locks(live, events, caplog):
    agent, tray, locker, _ = live
    caplog.set_level(logging.INFO, logger="mouseguard")
    put_live(agent.buffer, events[: len(events) // 3])  # ~40 s of movement: blocks well past the grace
    wait_for(lambda: locker.calls >= 1, what="a lock")
    shown = [s for s, _ in tray.states]
    assert states.NOT_PROTECTING in shown and states.PROTECTED not in shown[shown.index(states.NOT_PROTECTING):]
    # locked, and while the model stays broken the blocks after the lock say so again
    assert states.LOCKED in shown[shown.index(states.NOT_PROTECTING):]
    assert shown[-1] in (states.LOCKED, states.NOT_PROTECTING)
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any(m.startswith("not protecting: the model gave the score nan") and "\n" not in m for m in errors)
    assert any(f"no valid score for {FAULT_GRACE_SECONDS:g} s" in r.getMessage() for r in caplog.records
               if "locking" in r.getMessage())
    assert any(title == "mouseguard is not protecting" for title, _ in tray.notifications)


def test_the_agent_locks_after_the_grace_even_if_the_mouse_stops(live, events):
    agent, tray, locker, scorer = live
    agent.consumer.pipeline.decision.fault_grace_seconds = 1.5  # the test's patience, not the agent's
    scorer.answer = RuntimeError("onnxruntime failed")
    from agent.model_inputs import extract_all

    _, ends = extract_all(agent.model, events)
    put_live(agent.buffer, events[events["t"] <= ends[0]])  # one block, ending now; then nothing
    wait_for(lambda: json.loads(agent.status_path.read_text())["state"] == states.NOT_PROTECTING,
             what="not protecting")
    assert "scoring failed: RuntimeError: onnxruntime failed" in json.loads(agent.status_path.read_text())["detail"]
    assert locker.calls == 0
    wait_for(lambda: locker.calls == 1, timeout=5, what="the lock after the grace")
    wait_for(lambda: agent.state == states.LOCKED, what="the locked state")
    time.sleep(2.0)
    assert locker.calls == 1  # acted once: no lock loop without new blocks


def test_the_agent_judges_again_once_scores_are_valid(live, events):
    agent, tray, locker, scorer = live
    put_live(agent.buffer, events[:300])
    wait_for(lambda: agent.state == states.NOT_PROTECTING, what="not protecting")
    scorer.answer = 0.95
    put_live(agent.buffer, events[300:1500])
    wait_for(lambda: agent.state == states.PROTECTED and agent.last_rolling is not None, what="protected again")
    assert locker.calls == 0 and agent.fault == ""
    assert json.loads(agent.status_path.read_text())["detail"] == ""


# -- mouseguard replay with a real ONNX model whose output is NaN --------------------------------------


def constant_model(tmp_path, value):
    """A copy of the demo model whose ONNX graph gives ``value`` for every block (the manifest's
    input and output names and SHA-256 fit it, so load_model_dir accepts it)."""
    import onnx
    from onnx import TensorProto, helper

    target = tmp_path / "constant-model"
    shutil.copytree(models.DEMO_MODEL, target)
    manifest = json.loads((target / "manifest.json").read_text())
    spec = manifest["onnx"]
    _, channels, size = spec["input"]["shape"]
    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["blocks"], ["mean"], axes=[1, 2], keepdims=0),
         helper.make_node("Mul", ["mean", "zero"], ["zeros"]),
         helper.make_node("Add", ["zeros", "value"], [spec["output"]["name"]])],
        "constant",
        [helper.make_tensor_value_info(spec["input"]["name"], TensorProto.FLOAT, ["n", channels, size])],
        [helper.make_tensor_value_info(spec["output"]["name"], TensorProto.FLOAT, ["n"])],
        initializer=[helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0]),
                     helper.make_tensor("value", TensorProto.FLOAT, [], [value])],
    )
    onnx_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    onnx.checker.check_model(onnx_model)
    data = onnx_model.SerializeToString()
    (target / spec["file"]).write_bytes(data)
    spec["sha256"] = hashlib.sha256(data).hexdigest()
    (target / "manifest.json").write_text(json.dumps(manifest))
    return target


def test_replay_of_a_model_whose_output_is_nan_never_says_protected(tmp_path, mouseguard_home, capsys):
    from agent.cli import main
    from agent.recordings import write_recording

    nan_model = constant_model(tmp_path, float("nan"))
    recording = tmp_path / "alice.csv"
    write_recording(recording, synth_events("alice", seconds=120, seed=8))
    assert main(["replay", "--model", str(nan_model), str(recording)]) == 0
    lines = capsys.readouterr().out.splitlines()
    timeline = lines[2:-1]  # between the header and the summary
    assert len(timeline) >= 5
    assert not any(line.rstrip().endswith(("protected", "suspicious")) for line in timeline)
    assert all("the model gave the score nan, not a P(genuine) in [0, 1]" in line for line in timeline)
    assert "not protecting" in timeline[0] and any(line.endswith(": would lock") for line in timeline)
    assert "lock(s); the first after" in lines[-1]
