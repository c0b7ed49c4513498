"""Fit -> export -> score on a small generated data set, through the real CLI and onnxruntime."""

import json
import subprocess
import sys

import numpy as np
import pytest

from agent.blocks import DEFAULT_SPEC, SEED_SPEC, cut_blocks
from agent.cli import main
from agent.model_dir import ModelError, load_model_dir
from agent.recordings import write_recording
from agent.scorer import Scorer
from tests.synth import synth_events
from training.families.cnn.train import FitConfig


@pytest.fixture
def dataset(synth_dataset):
    return synth_dataset


@pytest.fixture
def model(synth_model):
    return synth_model


def test_model_dir_manifest_and_private_files(model):
    md = load_model_dir(model)
    m = md.manifest
    assert m["user"] == "alice" and m["family"] == "cnn"
    assert m["onnx"]["input"]["shape"] == [None, DEFAULT_SPEC.channels, DEFAULT_SPEC.size]
    assert m["training"]["mode"] == "transfer2" and m["onnx"]["output"]["score_calibration"]["scale"] > 0
    assert m["training"]["scripted"] == FitConfig().scripted  # every fit setting is on record
    assert m["onnx"]["parity_max_abs_diff"] <= 1e-5
    assert md.spec == DEFAULT_SPEC
    assert 1 <= md.decision.window and 0 < md.decision.threshold < 1
    # the CNN's decision is calibrated on its Platt scale, with the common threshold on record
    calibration = m["decision"]["calibration"]
    assert calibration["common_threshold"] == 0.5
    chosen = next(c for c in calibration["candidates"] if c["window"] == md.decision.window)
    if chosen["admissible"]:
        assert md.decision.threshold == 0.5
    else:  # the fallback: no window admissible, its own threshold, never above 0.5
        assert not any(c["admissible"] for c in calibration["candidates"]) and md.decision.threshold <= 0.5
    assert m["metrics"]["heldout_block"]["auc"] > 0.8  # the synthetic users are easy to tell apart
    assert not (model / "model.onnx.data").exists()  # weights inlined: one file, one hash
    for p in [model, model / "model.onnx", model / "manifest.json"]:
        assert p.stat().st_mode & 0o077 == 0


def test_onnx_parity_with_torch(model, dataset):
    import torch  # noqa: F401  (the [train] extra is installed for the tests)

    from agent.model_dir import Decision, check_parity, write_model_dir
    from agent.recordings import read_recording
    from training.families.cnn.model import CNNModel

    blocks, _ = cut_blocks(read_recording(dataset / "alice" / "s0.csv"), SEED_SPEC)
    other, _ = cut_blocks(read_recording(dataset / "bob" / "s0.csv"), SEED_SPEC)
    cnn = CNNModel(SEED_SPEC, "plain", cfg=FitConfig(epochs=1)).fit(blocks, other)
    f = cnn.export_fields(blocks)
    out = write_model_dir(model.parent / "parity", cnn.to_onnx(), user="alice", family=f["family"],
                          architecture=f["architecture"], input_spec=f["input_spec"], output=f["output"],
                          decision=Decision(3, 0.5), calibration={}, metrics={}, training={},
                          parity_rows=f["parity_rows"], reference=f["reference"], extra=f["extra"])
    both = np.concatenate((blocks, other))
    assert check_parity(out / "model.onnx", "blocks", both, f["reference"], 1e-5, "torch") <= 1e-5
    p = Scorer(load_model_dir(out)).score(blocks)
    assert p.shape == (len(blocks),) and ((p >= 0) & (p <= 1)).all()


def test_score_cli_one_row_per_file(model, dataset, tmp_path, capsys):
    short = tmp_path / "short.csv"
    write_recording(short, synth_events("alice", seconds=4, seed=99))  # no whole sequence of 128
    empty = tmp_path / "empty.csv"
    empty.write_text("client timestamp,button,state,x,y\n")
    tiny = tmp_path / "tiny.csv"
    write_recording(tiny, synth_events("alice", seconds=4, seed=98)[:30])  # far less than a block
    files = [dataset / "alice" / "s2.csv", dataset / "bob" / "s2.csv", dataset / "carol" / "s2.csv", short, empty,
             tiny]
    assert main(["score", "--model", str(model)] + [str(f) for f in files]) == 0
    rows = capsys.readouterr().out.strip().splitlines()
    assert rows[0] == "file,blocks,score"
    assert [r.split(",")[0] for r in rows[1:]] == [str(f) for f in files]
    scores = {r.split(",")[0]: r.split(",")[2] for r in rows[1:]}
    assert int(rows[4].split(",")[1]) >= 1  # remainders concatenated: a short file still scores
    assert scores[str(empty)] == "" and rows[5].split(",")[1] == "0"
    assert rows[6].split(",")[1] == "1" and 0 <= float(scores[str(tiny)]) <= 1  # its movement, repeated
    alice, bob, carol = (float(scores[str(f)]) for f in files[:3])
    assert alice > max(bob, carol)


def test_tampered_model_refused(model, tmp_path, capsys):
    import shutil
    bad = tmp_path / "bad"
    shutil.copytree(model, bad)
    with open(bad / "model.onnx", "r+b") as f:
        f.seek(200)
        f.write(b"\x00\x01\x02")
    with pytest.raises(ModelError, match="SHA-256 does not match"):
        load_model_dir(bad)
    assert main(["score", "--model", str(bad), str(model / "manifest.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("mouseguard: error:") and "SHA-256" in err and "\n" not in err
    m = json.loads((model / "manifest.json").read_text())
    m["decision"]["window"] = 0
    (bad / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ModelError, match="window"):
        load_model_dir(bad)


@pytest.mark.parametrize("argv, fragment", [
    (["score", "--model", "{model}", "/nonexistent.csv"], "no such file"),
    (["score", "--model", "/nonexistent-model", "{file}"], "no model directory"),
    (["score", "--model", "{model}", "{malformed}"], ":3: unknown state"),
    (["train", "fit", "--dataset", "recording", "--data", "{data}", "--user", "mallory", "--out", "{tmp}/x"],
     "user 'mallory' is not in"),
    (["train", "fit", "--dataset", "balabit", "--data", "{tmp}", "--user", "user7", "--out", "{tmp}/x"],
     "no Balabit sessions"),
    (["train", "fit", "--dataset", "recording", "--data", "{data}", "--user", "alice", "--out", "{tmp}/x",
      "--encoder", "{tmp}"], "not a pre-trained encoder"),
    (["train", "fit", "--dataset", "recording", "--data", "{data}", "--user", "alice", "--out", "{tmp}/x",
      "--tilings", "0"], "argument --tilings: expected a whole number from 1 to 128, got '0'"),
    (["train", "fit", "--dataset", "recording", "--data", "{data}", "--user", "alice", "--out", "{tmp}/x",
      "--noise", "nan"], "argument --noise: expected a number from 0 to 1"),
    (["train", "fit", "--dataset", "recording", "--data", "{data}", "--user", "alice", "--out", "{tmp}/x",
      "--seed", "-1"], "argument --seed: expected a whole number from 0 to 4294967295"),
    (["train", "fit", "--dataset", "recording", "--data", "{data}", "--user", "alice", "--out", "{tmp}/x",
      "--epochs", "abc"], "see 'mouseguard train fit --help'"),
    (["enroll", "--epochs", "0", "--from", "{file}"], "argument --epochs: expected a whole number from 1 to 1000"),
])
def test_cli_errors_are_one_line(argv, fragment, model, dataset, tmp_path):
    malformed = tmp_path / "bad.csv"
    malformed.write_text("client timestamp,button,state,x,y\n0.1,NoButton,Move,1,2\n0.2,NoButton,Fly,1,2\n")
    subst = {"{model}": str(model), "{file}": str(dataset / "alice" / "s0.csv"), "{malformed}": str(malformed),
             "{data}": str(dataset), "{tmp}": str(tmp_path)}
    argv = [next((a.replace(k, v) for k, v in subst.items() if k in a), a) for a in argv]
    proc = subprocess.run([sys.executable, "-m", "agent", *argv], capture_output=True, text=True)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0] and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stdout == ""  # no half a CSV before the error
    assert not (tmp_path / "x").exists()


def test_calibration_holds_out_whole_sessions_from_two_on():
    from training.user_model.split import training_heads

    assert training_heads([60, 40]) == [60, 0]  # two sessions: the second held out whole
    assert training_heads([95, 5]) == [76, 4]  # too lopsided: the tail of each
    assert training_heads([50]) == [40]  # one recording: its tail
    assert training_heads([40]) == [30]  # a short one: enough held out to calibrate on
    assert training_heads([50, 50, 30, 20]) == [50, 50, 0, 0]  # the last sessions, >= 20 % of the blocks
    # two short tries ("too little data", then enrol again) and a long one: holding out the long
    # one would train on two blocks; the tail of each instead
    assert training_heads([1, 1, 87]) == [1, 1, 70]
    assert training_heads([100, 1, 1, 1]) == [80, 1, 1, 1]  # the last ones too few to calibrate on


def test_platt_keeps_the_slope_and_half_the_shift_of_the_fitted_scale():
    from sklearn.linear_model import LogisticRegression

    from training.user_model.calibrate import platt

    rng = np.random.default_rng(0)
    # held-out owner blocks well below the network's own even odds: the full fit would move
    # the scale's 0.5 by about 2 logits, the calibration moves it by half of that
    genuine, impostor = rng.normal(-1.0, 1.0, 300), rng.normal(-5.0, 1.0, 300)
    full = LogisticRegression(C=1.0, class_weight="balanced").fit(
        np.r_[genuine, impostor].reshape(-1, 1), np.r_[np.ones(300), np.zeros(300)])
    scale, shift = platt(genuine, impostor)
    assert scale == pytest.approx(full.coef_[0, 0])
    assert shift == pytest.approx(full.intercept_[0] / 2) and shift > 1.0
    assert platt(impostor, genuine) == (1.0, 0.0)  # worse than chance: scores left as they are


def test_training_blocks_are_cut_again_from_later_starts_within_the_training_part():
    from training.user_model.split import extra_tilings

    events = synth_events("alice", seconds=300, seed=3)
    blocks, ends = cut_blocks(events, DEFAULT_SPEC)
    head = len(blocks) // 2
    extra = extra_tilings(events, DEFAULT_SPEC, 4, until=ends[head - 1])
    # three more tilings of the training head, none reaching into the held-out part
    assert 3 * (head - 4) <= len(extra) <= 3 * head
    assert extra.shape[1:] == blocks.shape[1:]
    # shifted cuts, not copies of the blocks the one tiling gives
    seen = {b.tobytes() for b in blocks}
    assert not any(b.tobytes() in seen for b in extra)
    assert len(extra_tilings(events, DEFAULT_SPEC, 1, until=ends[-1])) == 0


def test_pretraining_keeps_its_own_batch_size():
    """The per-user fit's batch (``batch``) must not change pre-training, whose batch
    (``pretrain_batch``) the shipped encoder was trained with."""
    import torch

    from training.families.cnn.encoder import pretrain

    rng = np.random.default_rng(0)
    by_user = {u: rng.normal(size=(40, DEFAULT_SPEC.channels, DEFAULT_SPEC.size)).astype(np.float32) + i
               for i, u in enumerate(["a", "b"])}

    def weights(**cfg):
        model, _ = pretrain(by_user, DEFAULT_SPEC, FitConfig(epochs=1, **cfg))
        return torch.cat([p.detach().flatten() for p in model.parameters()])

    default = weights()
    assert torch.equal(default, weights(batch=7))
    assert not torch.equal(default, weights(pretrain_batch=7))


def test_extra_tilings_fill_up_to_the_training_budget():
    """A fit trains on at most ``max_genuine_blocks`` genuine blocks: every block cut as the
    agent cuts is kept, the extra tilings are sampled to fill the rest."""
    from training.user_model import fit
    from training.user_model.split import training_heads

    events = synth_events("alice", seconds=300, seed=3)
    others = [cut_blocks(synth_events("bob", seconds=200, seed=4), DEFAULT_SPEC)[0]]

    def positives(**budget):
        fitted = fit.fit_cnn([events], others, DEFAULT_SPEC, user="alice", mode="plain",
                             encoder_state=None, cfg=FitConfig(epochs=1, **budget), min_blocks=10)
        return fitted.parity_rows  # the CNN checks its ONNX file on the genuine blocks it trained on

    once = cut_blocks(events, DEFAULT_SPEC)[0]
    head = training_heads([len(once)])[0]
    assert len(positives()) > 3 * head  # the default budget does not bind: all four tilings
    capped = positives(max_genuine_blocks=head + 7)
    assert len(capped) == head + 7
    assert np.array_equal(capped[:head], once[:head])  # the agent's own cut, all of it
    assert len(positives(max_genuine_blocks=5)) == head  # never less than the one cut
