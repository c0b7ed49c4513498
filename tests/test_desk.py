"""The desk protocol on generated people in the mAuth format: every person enrols as `enroll
--from` does, every model meets every person's minutes, and a cohort is reported apart."""

import json

import pytest

from agent.cli import main
from tests.synth import synth_events, write_mauth
from training.evaluation import desk


@pytest.fixture(scope="module")
def mauth_people(tmp_path_factory):
    root = tmp_path_factory.mktemp("mauth")
    for i, style in enumerate(("alice", "bob", "carol")):
        # start at a UNIX time, as the study's logs do
        events = synth_events(style, 9 * 60 + 5, seed=70 + i)
        events["t"] += 1.676e9
        write_mauth(root / f"user_{i}_data.csv", events)
    return root


def test_desk_protocol_every_model_meets_every_persons_minutes(mauth_people, tmp_path, monkeypatch):
    monkeypatch.setattr(desk, "ENROL_MINUTES", 7.0)  # 9 minutes each: 7 enrol, 2 one-minute units
    out = tmp_path / "desk"
    assert main(["train", "evaluate", "--protocol", "desk", "--dataset", "mauth", "--data", str(mauth_people),
                 "--epochs", "1", "--cohort", "0,1", "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert set(report["cohorts"]) == {"0", "1"}
    none, one = report["cohorts"]["0"], report["cohorts"]["1"]
    for c in (none, one):
        assert [u["user"] for u in c["per_user"]] == ["user0", "user1", "user2"]
        assert all(u["genuine_units"] == 2 and u["impostor_units"] == 4 for u in c["per_user"])
        assert len(c["rows"]) == 3 * 6  # every model x every person's minutes, none dropped
        assert c["genuine_units_locked"]["units"] == 6 and c["impostor_units_locked"]["units"] == 12
    assert none["impostor_units_locked_in_cohort"]["units"] == 0
    # cohort 1: each model also trained against the next person, whose minutes are reported apart
    assert [u["cohort"] for u in one["per_user"]] == [["user1"], ["user2"], ["user0"]]
    assert one["impostor_units_locked_in_cohort"]["units"] == 6
    assert one["impostor_units_locked_outside_cohort"]["units"] == 6
    md = (out / "report.md").read_text()
    assert "| 0 |" in md and "| 1 |" in md and "promised" in md


def test_minute_units_keep_the_partial_minute_apart():
    events = synth_events("alice", 150, seed=1)
    start = float(events["t"][0]) + 10
    units, rest = desk.minute_units(events, start)
    assert len(units) == 2 and all(len(u) for u in units)
    assert 0 <= rest < 60 and abs((float(events["t"][-1]) - start) - (120 + rest)) < 1e-6


def test_desk_protocol_refuses_sapimouse_in_one_line(tmp_path, capsys):
    assert main(["train", "evaluate", "--protocol", "desk", "--dataset", "sapimouse", "--data", str(tmp_path),
                 "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "desk protocol runs on --dataset mauth" in err and "Traceback" not in err
