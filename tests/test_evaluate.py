"""The evaluation protocols on a tiny generated Balabit-format data set: they run, write their
report, and the honest protocol counts every session, including one too short for a block."""

import json

import numpy as np
import pytest

from agent.cli import main
from tests.synth import STYLES, synth_events, write_balabit


@pytest.fixture(scope="module")
def tiny_balabit(tmp_path_factory):
    root = tmp_path_factory.mktemp("balabit")
    styles = list(STYLES)
    for u in range(4):
        for k in range(2):
            write_balabit(root / f"user{u + 1}" / f"session_{k}", synth_events(styles[u % 3], 200, seed=50 * u + k))
    # a session with too little movement for any block, even with remainders concatenated
    write_balabit(root / "user4" / "session_short", synth_events(styles[0], 1.0, seed=999))
    return root


@pytest.fixture(scope="module")
def encoder(tiny_balabit, tmp_path_factory):
    out = tmp_path_factory.mktemp("enc") / "encoder"
    assert main(["train", "pretrain", "--dataset", "balabit", "--data", str(tiny_balabit), "--out", str(out),
                 "--epochs", "1"]) == 0
    return out


def test_encoder_files_are_private(encoder):
    for f in ("encoder.pt", "encoder.json"):
        assert (encoder / f).stat().st_mode & 0o077 == 0
    assert encoder.stat().st_mode & 0o077 == 0


def test_pretrain_refuses_a_folder_it_did_not_write_before_training(tiny_balabit, tmp_path, capsys):
    theirs = tmp_path / "thesis"
    theirs.mkdir()
    (theirs / "chapter1.txt").write_text("years of work")
    argv = ["train", "pretrain", "--dataset", "balabit", "--data", str(tiny_balabit), "--epochs", "1", "--out"]
    assert main(argv + [str(theirs)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "did not write" in err and "pre-training on" not in err  # nothing trained
    assert (theirs / "chapter1.txt").read_text() == "years of work"
    a_file = tmp_path / "notes.txt"
    a_file.write_text("keep")
    assert main(argv + [str(a_file)]) == 2 and "is a file" in capsys.readouterr().err
    assert a_file.read_text() == "keep"


@pytest.mark.parametrize("damage", ["no block_spec", "a list", "other weights"])
def test_a_damaged_encoder_is_refused_in_one_line(tiny_balabit, encoder, tmp_path, capsys, damage):
    import shutil

    import torch

    bad = tmp_path / "enc"
    shutil.copytree(encoder, bad)
    info = json.loads((bad / "encoder.json").read_text())
    if damage == "no block_spec":
        del info["block_spec"]
        (bad / "encoder.json").write_text(json.dumps(info))
    elif damage == "a list":
        (bad / "encoder.json").write_text("[]")
    else:
        torch.save({"dense.1.weight": torch.zeros(3, 3)}, bad / "encoder.pt")
    code = main(["train", "fit", "--dataset", "balabit", "--data", str(tiny_balabit), "--user", "user1",
                 "--encoder", str(bad), "--out", str(tmp_path / "m"), "--epochs", "1"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and str(bad) in err, err
    assert not (tmp_path / "m").exists()


def test_pretraining_with_blocks_longer_than_every_session_says_so(tiny_balabit, tmp_path, capsys):
    from agent.blocks import DEFAULT_SPEC
    from training.families.cnn.train import FitConfig
    from training.errors import FitError
    from training.families.cnn.encoder import pretrain

    no_blocks = np.empty((0, DEFAULT_SPEC.channels, DEFAULT_SPEC.size), np.float32)
    with pytest.raises(FitError, match="at least two users"):
        pretrain({"a": no_blocks, "b": no_blocks}, DEFAULT_SPEC, FitConfig(epochs=1))
    assert main(["train", "pretrain", "--dataset", "balabit", "--data", str(tiny_balabit), "--spec", "size=100000",
                 "--out", str(tmp_path / "e"), "--epochs", "1"]) == 2
    assert "size must be an integer from 2 to 4096" in capsys.readouterr().err


def test_sessions_protocol_counts_every_session(tiny_balabit, encoder, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["train", "evaluate", "--protocol", "sessions", "--dataset", "balabit", "--data", str(tiny_balabit),
                 "--encoder", str(encoder), "--out", str(out), "--epochs", "2"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert (out / "report.md").exists() and (out / "roc-sessions.png").stat().st_size > 1000
    rows = report["session_rows"]
    # each user's sessions are genuine test sessions exactly once (two folds)
    genuine = sorted(r["session"] for r in rows if r["genuine"])
    expected = [f"user{u}/session_{k}" for u in range(1, 5) for k in range(2)] + ["user4/session_short"]
    assert genuine == sorted(expected)
    assert "user4/session_short" in report["sessions_without_blocks"]
    assert any(r["session"] == "user4/session_short" and r["score"] == 0.5 for r in rows)
    # a test impostor is never a user whose blocks trained that model
    for r in rows:
        if not r["genuine"]:
            assert r["session"].split("/")[0] != r["model_user"]
    for k in ("k=1", "k=3", "k=5", "k=10", "session"):
        assert 0.0 <= report["summary"]["transfer2"][k]["auc"] <= 1.0
    # the own-set-up row: the same genuine sessions against the impostors at the owner's event rate
    own = report["summary_own_setup_impostors"]["transfer2"]["session"]
    assert own["n_genuine"] == report["summary"]["transfer2"]["session"]["n_genuine"]
    assert 0 < own["n_impostor"] == sum(1 for r in rows if not r["genuine"] and r["same_setup"])
    out = capsys.readouterr().out
    assert "session-disjoint" in out.lower() and "owner's capture set-up" in out


def test_paper_protocol_report(tiny_balabit, encoder, tmp_path):
    out = tmp_path / "paper"
    assert main(["train", "evaluate", "--protocol", "paper", "--dataset", "balabit", "--data", str(tiny_balabit),
                 "--encoder", str(encoder), "--out", str(out), "--epochs", "1", "--users", "user1,user2"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert set(report["summary"]) == {f"{s}/{m}" for s in ("300", "ALL") for m in ("plain", "transfer1", "transfer2")}
    assert report["identification"]["concatenate"]["users"] == 2  # --users limits the whole protocol
    md = (out / "report.md").read_text()
    assert "optimistic by construction" in md and "0.98" in md


def test_identification_protocol_both_splits_both_specs(tiny_balabit, tmp_path, capsys):
    out = tmp_path / "ident"
    assert main(["train", "evaluate", "--protocol", "identification", "--dataset", "balabit", "--data",
                 str(tiny_balabit), "--out", str(out), "--epochs", "3"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert set(report["results"]) == {f"{s}/{k}" for s in ("seed", "default") for k in ("blocks", "sessions")}
    blocks = report["results"]["default/blocks"]
    assert blocks["users"] == 4 and blocks["test_blocks"] == 4 * 70
    # session split: every user has two sessions here, and session_1 (the odd one) is tested
    sessions = report["results"]["default/sessions"]
    assert sessions["users"] == 4 and report["users_with_one_session"] == []
    # synthetic users of three styles (users 1 and 4 share one): well above chance (0.25)
    assert sessions["accuracy"] > 0.4
    assert "honest" in capsys.readouterr().out


def test_detection_protocol_replays_every_test_session(encoder, tmp_path, capsys):
    data = tmp_path / "data"
    for u, style in enumerate(STYLES):  # sessions long enough to hold out calibration blocks
        for k in range(2):
            write_balabit(data / f"user{u + 1}" / f"session_{k}", synth_events(style, 300, seed=70 * u + k))
    out = tmp_path / "detection"
    assert main(["train", "evaluate", "--protocol", "detection", "--dataset", "balabit", "--data", str(data),
                 "--encoder", str(encoder), "--out", str(out), "--epochs", "2"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert (out / "time-to-lock.png").stat().st_size > 1000
    assert report["folds_not_calibrated"] == []
    genuine = sorted(r["session"] for r in report["genuine_sessions"])
    assert genuine == sorted(f"user{u}/session_{k}" for u in range(1, len(STYLES) + 1) for k in range(2))
    for r in report["impostor_sessions"]:
        assert r["session"].split("/")[0] != r["model_user"]
    fl = report["false_locks"]
    hours = sum(r["active_seconds"] for r in report["genuine_sessions"]) / 3600
    assert fl["active_hours"] == pytest.approx(hours) and hours > 0
    assert fl["false_locks"] == sum(r["locks"] for r in report["genuine_sessions"])
    ttl = report["time_to_lock"]
    assert ttl["sessions"] == len(report["impostor_sessions"])  # never-locked sessions are counted too
    assert ttl["locked"] == sum(r["seconds_to_lock"] is not None for r in report["impostor_sessions"])
    split = report["time_to_lock_by_setup"]  # every impostor session on one side or the other
    assert split["same"]["sessions"] + split["other"]["sessions"] == ttl["sessions"]
    assert split["same"]["sessions"] == sum(r["same_setup"] for r in report["impostor_sessions"])
    out = capsys.readouterr().out
    assert "false locks of the owner" in out and "| owner's set-up |" in out


def test_enrolment_protocol_tests_each_group_on_people_left_out_of_the_pool(tmp_path):
    data = tmp_path / "data"
    for u, style in enumerate(list(STYLES) + list(STYLES)[:1]):
        for k in range(3):
            write_balabit(data / f"user{u + 1}" / f"session_{k}", synth_events(style, 250, seed=90 * u + k))
    out = tmp_path / "enrolment"
    assert main(["train", "evaluate", "--protocol", "enrolment", "--dataset", "balabit", "--data", str(data),
                 "--out", str(out), "--epochs", "1"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert (out / "time-to-lock.png").exists() and (out / "roc-enrolment.png").exists()
    assert [u["enrolled_on"] for u in report["per_user"]][0] == ["user1/session_0", "user1/session_1"]
    groups = ({"user1", "user3"}, {"user2", "user4"})
    for r in report["session_rows"]:
        owner = r["session"].split("/")[0]
        assert any({owner, r["model_user"]} <= g for g in groups)  # impostors only from the tested group
        assert r["genuine"] == (owner == r["model_user"])
        assert not r["session"].endswith(("_0", "_1")) or owner != r["model_user"]  # enrolment data never tested
    assert len(report["genuine_sessions"]) == 4 and len(report["impostor_sessions"]) == 4 * 3
    assert 0 <= report["summary"]["session"]["auc"] <= 1


def test_enrolment_protocol_needs_at_least_one_enrolment_session(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "evaluate", "--protocol", "enrolment", "--dataset", "balabit", "--data", str(tmp_path),
              "--enrol-sessions", "0"])
    assert exc.value.code == 2 and "expected a whole number from 1" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["0", "-1", "nan", "many"])
def test_a_false_lock_target_out_of_range_is_refused(tmp_path, capsys, value):
    with pytest.raises(SystemExit) as exc:
        main(["train", "evaluate", "--protocol", "detection", "--dataset", "balabit", "--data", str(tmp_path),
              "--false-locks-per-8h", value])
    assert exc.value.code == 2 and "greater than 0" in capsys.readouterr().err


@pytest.mark.parametrize("protocol", ["detection", "enrolment"])
def test_agent_protocols_refuse_the_other_families_in_one_line(tmp_path, capsys, protocol):
    assert main(["train", "evaluate", "--protocol", protocol, "--model-family", "features", "--dataset", "balabit",
                 "--data", str(tmp_path)]) == 2
    assert f"the {protocol} protocol is run for the cnn family" in capsys.readouterr().err


def test_identification_protocol_is_the_cnn_familys(tmp_path, capsys):
    assert main(["train", "evaluate", "--protocol", "identification", "--model-family", "features",
                 "--dataset", "balabit", "--data", str(tmp_path)]) == 2
    assert "--protocol paper" in capsys.readouterr().err


@pytest.mark.parametrize("impostors", ["unseen", "seen"])
def test_session_folds_never_put_a_session_on_both_sides(impostors):
    from pathlib import Path

    from training.data.datasets import Session
    from training.evaluation.common import session_folds

    sessions = [Session("balabit", f"user{u}", f"s{k}", Path(f"user{u}/s{k}")) for u in range(1, 6) for k in range(4)]
    folds = list(session_folds(sessions, ["user1", "user2"], impostors))
    assert len(folds) == 4
    for user, f, train, test, negatives, test_imp in folds:
        trained = set(train) | {s for ss in negatives.values() for s in ss}
        assert not trained & (set(test) | set(test_imp))
        assert user not in negatives and all(s.user != user for s in test_imp)
        imp_users = {s.user for s in test_imp}
        if impostors == "seen":  # every other user trains and is tested, on different sessions
            assert set(negatives) == imp_users == {f"user{u}" for u in range(1, 6)} - {user}
        else:
            assert not set(negatives) & imp_users and len(imp_users) == 2


def test_features_family_paper_and_sessions_protocols(tiny_balabit, tmp_path):
    """The other families' reports come through the same registry and report writer."""
    out = tmp_path / "features-paper"
    assert main(["train", "evaluate", "--protocol", "paper", "--model-family", "features", "--dataset", "balabit",
                 "--data", str(tiny_balabit), "--out", str(out), "--epochs", "2"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["family"] == "features" and report["identification"]["random_split"]["test_segments"] > 0
    assert "# mouseguard evaluation: features family, paper protocol" in (out / "report.md").read_text()
    out = tmp_path / "patterns-sessions"
    assert main(["train", "evaluate", "--protocol", "sessions", "--model-family", "patterns", "--dataset", "balabit",
                 "--data", str(tiny_balabit), "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["family"] == "patterns" and len({r["session"] for r in report["session_rows"]}) == 9  # all
