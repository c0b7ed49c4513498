"""Recordings are not a replay kit (issue 19, item 6): a successful enrolment deletes the
recordings it was made from in mouseguard's recordings folder and keeps the enrolment blocks
instead; the cohort refit and the model update retrain from those blocks, and a user enrolled
before (recordings only) still works.

Real files, the real enrolment (one epoch) and the real refit child process, as
tests/test_cohort.py runs them.
"""

import logging
import os
import shutil
import stat

import numpy as np
import pytest

from agent import cohort
from agent.cli import main
from agent.enrolment_blocks import EnrolmentBlocksError, blocks_path, read_blocks, write_blocks
from agent.model_dir import load_model_dir
from agent.recordings import read_recording, write_recording
from agent.runner import default_enrol_command
from tests.synth import synth_events
from tests.test_cohort import SPEC, blocks_of, protecting_agent, write_config


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def kept_recordings(mouseguard_home, alice_files):
    """alice's recordings where `mouseguard enroll` and the learning agent leave them."""
    folder = mouseguard_home / "data" / "recordings" / "alice"
    folder.mkdir(parents=True)
    copies = []
    for f in alice_files:
        copies.append(folder / f.name)
        shutil.copy(f, copies[-1])
    return copies


def enroll(*files, extra=()):
    return main(["enroll", "--user", "alice", "--from", *map(str, files), "--epochs", "1", *extra])


def test_a_successful_enrolment_deletes_its_recordings_and_keeps_the_blocks(mouseguard_home, kept_recordings,
                                                                           tmp_path, capsys):
    outside = tmp_path / "mine.csv.gz"  # the user's own file, given with --from: never deleted
    write_recording(outside, synth_events("alice", seconds=200, seed=410))
    assert enroll(*kept_recordings, outside) == 0
    out = capsys.readouterr().out
    assert not any(f.exists() for f in kept_recordings)
    assert outside.exists()
    assert "recordings: 3 deleted from" in out and "the 1 given from outside" in out
    kept = blocks_path("alice")
    assert kept == mouseguard_home / "data" / "enrolment-blocks" / "alice.npz"
    assert mode(kept) == 0o600 and mode(kept.parent) == 0o700
    assert f"in {kept}" in out and "no screen positions" in out
    owner = read_blocks(kept)
    model = load_model_dir(mouseguard_home / "data" / "models" / "alice")
    assert owner.user == "alice" and owner.spec == model.spec and len(owner.runs) == 4
    recordings = [read_recording(f) for f in (outside,)]
    from agent.blocks import cut_blocks

    assert np.array_equal(owner.runs[-1], cut_blocks(recordings[0], model.spec)[0])
    assert len(owner.fingerprints) and owner.set_up_step is not None

    # the model update reads the enrolment from the blocks too: it gets as far as judging the
    # kept blocks (someone else's here, so refused) instead of finding no enrolment data
    from agent.template import write_store

    planted = tmp_path / "template.npz"
    write_store(planted, model.spec, blocks_of("bob", 7, seconds=300), 0.0)
    assert main(["update-model", "--user", "alice", "--blocks", str(planted), "--epochs", "1"]) == 1
    assert "update refused" in capsys.readouterr().out


def test_kept_when_asked_by_flag_or_config(mouseguard_home, kept_recordings, capsys):
    assert enroll(*kept_recordings, extra=["--keep-recordings"]) == 0
    assert all(f.exists() for f in kept_recordings)
    assert "recordings: 3 kept in" in capsys.readouterr().out
    (mouseguard_home / "config").mkdir(parents=True, exist_ok=True)
    (mouseguard_home / "config" / "config.toml").write_text("[enrolment]\nkeep_recordings = true\n")
    assert enroll(*kept_recordings) == 0
    assert all(f.exists() for f in kept_recordings)
    assert blocks_path("alice").exists()


def test_a_failed_or_interrupted_enrolment_deletes_nothing(mouseguard_home, kept_recordings, monkeypatch, capsys):
    short = kept_recordings[0].parent / "short.csv"
    write_recording(short, synth_events("alice", seconds=20, seed=1))
    assert enroll(short) == 2
    assert "too little data" in capsys.readouterr().err and short.exists()

    import agent.model_dir

    def interrupted(*args, **kwargs):  # killed while the model is being exported
        raise KeyboardInterrupt

    monkeypatch.setattr(agent.model_dir, "check_parity", interrupted)
    assert enroll(*kept_recordings) == 130
    assert all(f.exists() for f in kept_recordings) and short.exists()
    assert not blocks_path("alice").exists()
    assert not (mouseguard_home / "data" / "models" / "alice").exists()


def test_no_blocks_written_means_no_recording_deleted(mouseguard_home, kept_recordings, capsys):
    blocks_path("alice").parent.parent.mkdir(parents=True, exist_ok=True)
    blocks_path("alice").parent.write_text("a file where the folder should be")
    assert enroll(*kept_recordings) == 0  # the model is in place: the enrolment succeeded
    assert all(f.exists() for f in kept_recordings)
    assert "every recording is kept" in capsys.readouterr().err


def counting_enrol_command():
    """The agent's own enrol command at one epoch, and the file lists it is given."""
    commands = []

    def enrol_command(user, files):
        commands.append(files)
        return default_enrol_command(user, files) + ["--epochs", "1"]

    return commands, enrol_command


def test_the_cohort_refit_retrains_from_the_blocks_when_the_recordings_are_gone(mouseguard_home, kept_recordings,
                                                                              tmp_path, caplog, capsys):
    shared = tmp_path / "cohort"
    shared.mkdir()
    write_config(mouseguard_home, shared)
    assert enroll(*kept_recordings) == 0
    assert not any(f.exists() for f in kept_recordings)
    published = (shared / "alice.npz").read_bytes()
    commands, enrol_command = counting_enrol_command()
    caplog.set_level(logging.INFO, logger="mouseguard.agent")
    agent = protecting_agent(mouseguard_home, enrol_command=enrol_command)
    try:
        bob = blocks_of("bob", 7, seconds=200)
        cohort.publish(shared, "bob", bob, SPEC)
        assert agent.check_cohort(now=1000.0) is True
        assert commands == [[str(blocks_path("alice"))]]
        agent.refit.join(180)
        assert agent.refit.succeeded, caplog.text
        assert "re-enrolled from the enrolment blocks" in caplog.text
        model = load_model_dir(mouseguard_home / "data" / "models" / "alice")
        assert model.manifest["training"]["cohort"] == {"bob": len(bob)}
        assert (shared / "alice.npz").read_bytes() == published  # the same blocks of alice's
    finally:
        agent.stop()


def test_a_user_enrolled_before_with_recordings_only_still_refits(mouseguard_home, kept_recordings, tmp_path,
                                                                  caplog):
    shared = tmp_path / "cohort"
    shared.mkdir()
    write_config(mouseguard_home, shared)
    (mouseguard_home / "config" / "config.toml").write_text(
        (mouseguard_home / "config" / "config.toml").read_text() + "[enrolment]\nkeep_recordings = true\n")
    assert enroll(*kept_recordings) == 0
    blocks_path("alice").unlink()  # as before enrolment kept blocks: the recordings are all there is
    write_config(mouseguard_home, shared)  # keep_recordings back to its default
    commands, enrol_command = counting_enrol_command()
    caplog.set_level(logging.INFO, logger="mouseguard.agent")
    agent = protecting_agent(mouseguard_home, enrol_command=enrol_command)
    try:
        cohort.publish(shared, "bob", blocks_of("bob", 7, seconds=200), SPEC)
        assert agent.check_cohort(now=1000.0) is True
        assert commands == [list(map(str, kept_recordings))]
        agent.refit.join(180)
        assert agent.refit.succeeded, caplog.text
    finally:
        agent.stop()
    # that refit was an enrolment like any other: the recordings became enrolment blocks
    assert blocks_path("alice").exists() and not any(f.exists() for f in kept_recordings)


def test_blocks_round_trip_and_cut_as_the_fit_cuts(tmp_path):
    from training.user_model.owner import cut_enrolment
    from training.user_model.split import extra_tilings

    recordings = [synth_events("alice", seconds=120, seed=s) for s in (1, 2)]
    owner = cut_enrolment(recordings, SPEC, 4, user="alice")
    path = tmp_path / "b" / "alice.npz"
    write_blocks(path, owner)
    back = read_blocks(path)
    assert back.user == "alice" and back.spec == SPEC and back.tilings == 4
    for name in ("runs", "ends", "extra", "extra_ends"):
        assert all(np.array_equal(a, b) for a, b in zip(getattr(owner, name), getattr(back, name), strict=True))
    assert back.active_seconds == owner.active_seconds and back.set_up_step == owner.set_up_step
    assert np.array_equal(back.fingerprints, owner.fingerprints)
    # the extra tilings of a run's trained part are what the fit from recordings cut
    for r, events in enumerate(recordings):
        until = float(events["t"][0]) + back.ends[r][len(back.ends[r]) // 2]
        assert np.array_equal(back.extra_until(r, back.ends[r][len(back.ends[r]) // 2]),
                              extra_tilings(events, SPEC, 4, until=until))


def test_bad_blocks_files_are_one_line(mouseguard_home, tmp_path, alice_files, capsys):
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip")
    with pytest.raises(EnrolmentBlocksError):
        read_blocks(garbage)
    assert enroll(garbage) == 2
    assert "not a readable enrolment blocks file" in capsys.readouterr().err
    from training.user_model.owner import cut_enrolment

    bobs = tmp_path / "bob.npz"
    write_blocks(bobs, cut_enrolment([synth_events("bob", 60, seed=3)], SPEC, 1, user="bob"))
    assert enroll(bobs) == 2
    assert "holds the enrolment blocks of 'bob', not of 'alice'" in capsys.readouterr().err
    assert enroll(bobs, alice_files[0]) == 2
    assert "give it alone" in capsys.readouterr().err
    assert enroll(tmp_path / "missing.npz") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot read it" in err
