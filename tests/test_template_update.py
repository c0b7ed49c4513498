"""Template update (issue 22): the guarded refit on kept blocks, its command, and the kept-blocks store.

Real enrolment (the shipped encoder and pool, a few epochs), real ONNX models, real files.
"""

from __future__ import annotations

import json
import stat

import numpy as np
import pytest

from agent.blocks import cut_blocks
from agent.cli import main
from agent.model_dir import load_model_dir
from agent.scorer import Scorer
from agent.template import TemplateKeeper, read_store, store_path, write_store
from tests.synth import synth_events


def _blocks(user, seed, seconds=400):
    import models
    from training.families.cnn.encoder import load_encoder

    spec = load_encoder(models.ENCODER)[1]
    return cut_blocks(synth_events(user, seconds=seconds, seed=seed), spec)[0]


COHORT = {"bob": _blocks("bob", 77, seconds=300)}


@pytest.fixture(scope="module")
def enrolled_alice(tmp_path_factory):
    """alice enrolled from three synthetic recordings against bob (a cohort member: the shipped
    pool alone takes every synthetic person for alice), her files and her model folder."""
    from agent.recordings import write_recording
    from training.enrol import enrol
    from training.families.cnn.train import FitConfig

    base = tmp_path_factory.mktemp("alice")
    files = []
    for k in range(3):
        files.append(base / f"alice{k}.csv.gz")
        write_recording(files[-1], synth_events("alice", seconds=200, seed=400 + k))
    recordings = [synth_events("alice", seconds=200, seed=400 + k) for k in range(3)]
    enrol(recordings, "alice", base / "model", cfg=FitConfig(epochs=2), sources=[str(f) for f in files],
          cohort=COHORT)
    return files, recordings, base / "model"


def _copy(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_guarded_update_on_owner_blocks_is_taken_and_recorded(enrolled_alice, tmp_path):
    from training.families.cnn.train import FitConfig
    from training.user_model.update import update

    files, recordings, model_dir = enrolled_alice
    model_dir = _copy(model_dir, tmp_path / "m")
    before = load_model_dir(model_dir)
    kept = _blocks("alice", 900)
    report = update(model_dir, recordings, kept, cfg=FitConfig(epochs=2), cohort=COHORT)
    assert report["accepted"], report["reason"]
    after = load_model_dir(model_dir)
    assert after.manifest["onnx"]["sha256"] != before.manifest["onnx"]["sha256"]
    updates = after.manifest["training"]["updates"]
    assert len(updates) == 1 and updates[0]["blocks_offered"] == len(kept)
    assert after.manifest["training"]["enrolled"] == before.manifest["created"]
    assert after.manifest["training"]["sources"] == before.manifest["training"]["sources"]
    # the cap: new blocks at most 30 % of the genuine training blocks
    assert report["blocks_trained"] <= 0.3 / 0.7 * report["enrolment_blocks_trained"] + 1
    assert report["blocks_held_out"] > 0


def test_update_keeps_the_enrolled_window_and_recalibrates_only_the_threshold(enrolled_alice, tmp_path):
    """On Balabit a refit's free recalibration moved user15's window from 10 to 5 blocks and the
    owner's false locks from 1 to 5. The model here is given a window its calibration would not
    choose (as a model enrolled under another window set has): the update keeps it, calibrates
    the threshold at it, and records what a free choice would have been."""
    from training.families.cnn.train import FitConfig
    from training.user_model.update import describe, update

    _, recordings, model_dir = enrolled_alice
    model_dir = _copy(model_dir, tmp_path / "m")
    chosen = load_model_dir(model_dir).decision.window
    pinned = 20 if chosen != 20 else 10
    manifest = json.loads((model_dir / "manifest.json").read_text())
    manifest["decision"]["window"] = pinned
    (model_dir / "manifest.json").write_text(json.dumps(manifest))
    report = update(model_dir, recordings, _blocks("alice", 900), cfg=FitConfig(epochs=2), cohort=COHORT)
    assert report["accepted"], report["reason"]
    assert report["before"]["window"] == report["after"]["window"] == pinned
    after = load_model_dir(model_dir)
    assert after.decision.window == pinned
    assert [c["window"] for c in after.manifest["decision"]["calibration"]["candidates"]] == [pinned]
    assert f"kept at the enrolled {pinned} blocks" in after.manifest["decision"]["calibration"]["note"]
    record = after.manifest["training"]["updates"][-1]
    assert record["window"] == [pinned, pinned] and len(record["expected_false_locks_per_8h"]) == 2
    text = describe(report)
    assert f"window {pinned} -> {pinned}" in text and "expected false locks per 8 h" in text
    for side in ("before", "after"):
        assert report[side]["expected_false_locks_per_8h"] is not None
        assert report[side]["heldout_false_locks"] >= 0


def test_owner_false_locks_reads_the_hold_out_at_the_window():
    from training.user_model.update import owner_false_locks

    steady = [np.full(50, 0.9), np.full(40, 0.85)]
    calm = owner_false_locks(steady, 5, 0.5, seconds_per_block=4.0)
    assert calm["heldout_false_locks"] == 0 and calm["expected_false_locks_per_8h"] < 0.01
    dips = [np.concatenate((np.full(20, 0.9), np.full(3, 0.1), np.full(20, 0.9)))]
    assert owner_false_locks(dips, 5, 0.5, 4.0)["heldout_false_locks"] == 1
    assert owner_false_locks(dips, 10, 0.5, 4.0)["heldout_false_locks"] == 0  # the longer window rides it out
    assert owner_false_locks(dips, 5, 0.5, 4.0)["expected_false_locks_per_8h"] > 1.0
    assert owner_false_locks([np.full(3, 0.9)], 5, 0.5, 4.0)["expected_false_locks_per_8h"] is None


def test_update_that_scores_impostors_higher_is_refused_and_changes_nothing(enrolled_alice, tmp_path):
    """Poisoning: the kept blocks are all bob's (a planted file: the agent keeps none of them).
    Unguarded, the model moves toward bob; the guard refuses before fitting (they do not score
    as clearly alice's) and the model folder stays byte for byte."""
    from agent.enrolled import digests
    from training.families.cnn.train import FitConfig
    from training.user_model.update import Guard, update

    files, recordings, model_dir = enrolled_alice
    bob = _blocks("bob", 901)
    guarded = _copy(model_dir, tmp_path / "g")
    was = digests(guarded)
    report = update(guarded, recordings, bob, cfg=FitConfig(epochs=2), cohort=COHORT)
    assert not report["accepted"] and "do not score as clearly yours" in report["reason"]
    assert digests(guarded) == was

    free = _copy(model_dir, tmp_path / "u")
    report = update(free, recordings, bob, cfg=FitConfig(epochs=2), guard=Guard(enabled=False))
    assert report["accepted"]
    probe = _blocks("bob", 902, seconds=200)
    moved = Scorer(load_model_dir(free)).score(probe).mean()
    stayed = Scorer(load_model_dir(model_dir)).score(probe).mean()
    assert moved > stayed + 0.2  # what the guard holds back


def test_refusal_names_each_failed_check():
    from training.user_model.update import Guard, refusal

    good = {"heldout_auc": 0.95, "anchor_below_threshold": 0.05, "new_below_threshold": 0.0,
            "impostor_above_threshold": 0.1, "blocks": {"anchor": 1000, "new": 1000, "impostor": 1000}}
    assert refusal(good, dict(good), Guard()) is None
    assert "held-out AUC would fall" in refusal(good, {**good, "heldout_auc": 0.9}, Guard())
    assert "enrolment hold-out would score lower" in refusal(good, {**good, "anchor_below_threshold": 0.1}, Guard())
    assert "new blocks would score lower" in refusal(good, {**good, "new_below_threshold": 0.2}, Guard())
    assert "impostor blocks would pass" in refusal(good, {**good, "impostor_above_threshold": 0.2}, Guard())
    assert refusal(good, {**good, "heldout_auc": 0.5}, Guard(enabled=False)) is None
    # the owner's expected false locks at the window: worse than both the current model and the
    # target (beyond the tolerance) refuses; at or under the target passes
    rated = {**good, "expected_false_locks_per_8h": 0.5, "target_false_locks_per_8h": 1.0, "heldout_false_locks": 0}
    assert refusal(rated, {**rated, "expected_false_locks_per_8h": 1.0}, Guard()) is None
    assert refusal(rated, {**rated, "expected_false_locks_per_8h": 1.2}, Guard()) is None
    why = refusal(rated, {**rated, "expected_false_locks_per_8h": 3.0, "window": 5}, Guard())
    assert "locked out more often" in why and "3.00" in why and "window 5" in why
    assert "would lock 2 times instead of 0" in refusal(rated, {**rated, "heldout_false_locks": 2}, Guard())


def test_update_refuses_bad_input_in_one_line(enrolled_alice, tmp_path):
    from training.errors import FitError
    from training.user_model.update import update

    _, recordings, model_dir = enrolled_alice
    with pytest.raises(FitError, match="not cut with this model's block spec"):
        update(model_dir, recordings, np.zeros((50, 2, 64), np.float32))
    with pytest.raises(FitError, match="at least 30 are needed"):
        update(model_dir, recordings, _blocks("alice", 903)[:5])


def test_update_model_command_updates_record_and_refuses_with_exit_1(enrolled_alice, mouseguard_home, tmp_path,
                                                                     capsys):
    import os

    from agent import cohort, enrolled
    from agent.paths import user_model_dir

    files, _, model_dir = enrolled_alice
    shared = tmp_path / "cohort"
    shared.mkdir()
    os.chmod(shared, 0o2770)
    cohort.publish(shared, "bob", COHORT["bob"], load_model_dir(model_dir).spec)
    (mouseguard_home / "config").mkdir(parents=True)
    (mouseguard_home / "config" / "config.toml").write_text(f'[cohort]\ndir = "{shared}"\n')
    target = _copy(model_dir, user_model_dir("alice"))
    enrolled.write_record(enrolled.record_path("alice"), "alice", target)
    spec = load_model_dir(target).spec
    write_store(store_path("alice"), spec, _blocks("alice", 904), 9 * 3600.0)
    assert main(["update-model", "--user", "alice", "--epochs", "2"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("model updated") and "held-out AUC" in out
    assert load_model_dir(target).manifest["training"]["cohort"] == {"bob": len(COHORT["bob"])}
    # the fail-closed check vouches for the new model
    enrolled.check_model(enrolled.read_record(enrolled.record_path("alice")), target)

    write_store(store_path("alice"), spec, _blocks("bob", 905), 9 * 3600.0)
    assert main(["update-model", "--user", "alice", "--epochs", "2"]) == 1
    assert capsys.readouterr().out.startswith("update refused: ")
    enrolled.check_model(enrolled.read_record(enrolled.record_path("alice")), target)

    store_path("alice").write_bytes(b"not an npz")
    assert main(["update-model", "--user", "alice"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unreadable kept blocks" in err[0]


def test_update_model_refuses_a_tampered_model(enrolled_alice, mouseguard_home, capsys):
    from agent import enrolled
    from agent.paths import user_model_dir

    _, _, model_dir = enrolled_alice
    target = _copy(model_dir, user_model_dir("alice"))
    enrolled.write_record(enrolled.record_path("alice"), "alice", target)
    manifest = target / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"window"', '"window" ', 1))
    assert main(["update-model", "--user", "alice"]) == 2
    assert "changed since enrolment" in capsys.readouterr().err


# ------------------------------------------------------------------------------ the keeper


def _keeper(tmp_path, spec, **kw):
    return TemplateKeeper(tmp_path / "state" / "template-alice.npz", spec,
                          margin=kw.get("margin", 0.3), quiet_minutes=kw.get("quiet", 10))


def test_keeper_keeps_only_clear_calm_blocks_after_the_quiet_wait(synth_model, tmp_path):
    spec = load_model_dir(synth_model).spec
    block = np.ones((spec.channels, spec.size), np.float32)
    k = _keeper(tmp_path, spec)
    assert not k.offer(0.0, block, 0.75, threshold=0.5, calm=True)  # below threshold + margin
    assert not k.offer(3.0, block, 0.95, threshold=0.5, calm=False)  # not calm (trial, pause)
    assert k.offer(6.0, block, 0.95, threshold=0.5, calm=True)
    assert len(k.blocks) == 0  # waits quiet minutes
    k.offer(6.0 + 601, block, 0.6, threshold=0.5, calm=True)
    assert len(k.blocks) == 1
    # a suspicious state drops what waits and keeps nothing for quiet minutes after
    k.offer(700.0, block, 0.99, threshold=0.5, calm=True)
    k.incident(710.0)
    assert not k.offer(720.0, block, 0.99, threshold=0.5, calm=True)
    k.offer(710.0 + 601 + 601, block, 0.2, threshold=0.5, calm=True)
    assert len(k.blocks) == 1
    assert 0 < k.active_seconds <= 4 * 30
    k.save(force=True)
    mode = stat.S_IMODE(k.path.stat().st_mode)
    assert mode == 0o600
    blocks, active = read_store(k.path, spec)
    assert len(blocks) == 1 and active == pytest.approx(k.active_seconds)
    again = _keeper(tmp_path, spec)
    assert len(again.blocks) == 1


def test_keeper_store_of_another_spec_is_dropped_and_damage_is_named(synth_model, tmp_path):
    from agent.blocks import BlockSpec
    from agent.template import TemplateError

    spec = load_model_dir(synth_model).spec
    path = tmp_path / "t.npz"
    other = BlockSpec.from_dict({**spec.to_dict(), "size": spec.size // 2})
    write_store(path, other, np.zeros((4, other.channels, other.size), np.float32), 10.0)
    assert len(read_store(path, spec)[0]) == 0
    path.write_text(json.dumps({"no": "npz"}))
    with pytest.raises(TemplateError, match="unreadable kept blocks"):
        read_store(path, spec)
