"""The evaluation protocols on a tiny generated Balabit-format data set: they run, write their
report, and the honest protocol counts every session, including one too short for a block."""

import json

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
    assert "session-disjoint" in capsys.readouterr().out.lower()


def test_paper_protocol_report(tiny_balabit, encoder, tmp_path):
    out = tmp_path / "paper"
    assert main(["train", "evaluate", "--protocol", "paper", "--dataset", "balabit", "--data", str(tiny_balabit),
                 "--encoder", str(encoder), "--out", str(out), "--epochs", "1", "--users", "user1,user2"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert set(report["summary"]) == {f"{s}/{m}" for s in ("300", "ALL") for m in ("plain", "transfer1", "transfer2")}
    assert report["identification"]["concatenate"]["users"] == 2  # --users limits the whole protocol
    md = (out / "report.md").read_text()
    assert "optimistic by construction" in md and "0.98" in md
