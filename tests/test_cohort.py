"""The local cohort: member files in a shared folder, enrolment against them, the agent's refit.

Real files in temporary folders, the real enrolment (one epoch) and the real child process of
a refit; nothing is mocked but the tray and the locker the agent reports to.
"""

import json
import logging
import os
import stat
import sys
import time
import zipfile

import numpy as np
import pytest

import models
from agent import cohort, enrolment, states
from agent.blocks import SEED_SPEC, BlockSpec, cut_blocks
from agent.cli import main
from agent.config import Config, ConfigError, dump_config, parse_config
from agent.model_dir import load_model_dir
from agent.recordings import read_recording
from agent.ringbuffer import RingBuffer
from agent.runner import REFIT_NICENESS, Agent, default_enrol_command, start_low_priority
from tests.fakes import RecordingTray
from tests.synth import synth_events

#: The shipped encoder's spec, read without torch: what every enrolment cuts cohort blocks with.
SPEC = BlockSpec.from_dict(json.loads((models.ENCODER / "encoder.json").read_text())["block_spec"])


def mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


def blocks_of(user, seed, seconds=150, spec=SPEC):
    return cut_blocks(synth_events(user, seconds=seconds, seed=seed), spec)[0]


@pytest.fixture
def shared(tmp_path):
    """The machine-wide cohort folder, as README tells the administrator to make it."""
    folder = tmp_path / "cohort"
    folder.mkdir()
    os.chmod(folder, 0o2770)
    return folder


class Warnings(list):
    def __call__(self, message):
        assert "\n" not in message, message
        self.append(message)


# ------------------------------------------------------------------------- member files


def test_publish_and_read_round_trip_private_to_the_group(shared):
    bob = blocks_of("bob", 1)
    old = os.umask(0o000)  # the file's mode is the module's decision, not the umask's
    try:
        assert cohort.publish(shared, "bob", bob, SPEC) is True
    finally:
        os.umask(old)
    path = shared / "bob.npz"
    assert mode(path) == 0o640
    assert [p.name for p in shared.iterdir()] == ["bob.npz"]  # no temporary file left
    with zipfile.ZipFile(path) as z:  # blocks, spec, version — no positions, no recording
        assert sorted(z.namelist()) == ["blocks.npy", "format.npy", "spec.npy", "user.npy", "version.npy"]
    with np.load(path, allow_pickle=False) as z:
        assert json.loads(str(z["spec"])) == SPEC.to_dict() and int(z["version"]) == cohort.FORMAT_VERSION
    warnings = Warnings()
    members = cohort.read_members(shared, "alice", SPEC, warn=warnings)
    assert list(members) == ["bob"] and np.array_equal(members["bob"], bob) and members["bob"].dtype == np.float32
    assert warnings == []

    # Publishing the same blocks again writes nothing: other agents refit when a file changes.
    before = path.stat().st_mtime_ns
    assert cohort.publish(shared, "bob", bob, SPEC) is False
    assert path.stat().st_mtime_ns == before
    assert cohort.publish(shared, "bob", bob[:-1], SPEC) is True


def test_own_file_is_left_out(shared):
    cohort.publish(shared, "alice", blocks_of("alice", 1), SPEC)
    cohort.publish(shared, "bob", blocks_of("bob", 2), SPEC)
    assert list(cohort.read_members(shared, "alice", SPEC, warn=Warnings())) == ["bob"]
    assert list(cohort.snapshot(shared, "alice")) == ["bob"]
    assert sorted(cohort.read_members(shared, "carol", SPEC, warn=Warnings())) == ["alice", "bob"]


def test_member_cut_with_another_spec_is_skipped_with_one_warning(shared):
    cohort.publish(shared, "bob", blocks_of("bob", 1), SPEC)
    cohort.publish(shared, "carol", blocks_of("carol", 2, spec=SEED_SPEC), SEED_SPEC)
    warnings = Warnings()
    assert list(cohort.read_members(shared, "alice", SPEC, warn=warnings)) == ["bob"]
    assert len(warnings) == 1 and "carol.npz" in warnings[0] and "another block spec" in warnings[0]


def test_damaged_and_foreign_files_are_skipped_one_warning_each(shared):
    cohort.publish(shared, "bob", blocks_of("bob", 1), SPEC)
    good = (shared / "bob.npz").read_bytes()
    (shared / "dave.npz").write_bytes(b"not a zip at all")
    (shared / "erin.npz").write_bytes(good[: len(good) // 2])  # truncated
    (shared / "frank.npz").write_bytes(good)  # bob's file under another name
    with open(shared / "gina.npz", "wb") as f:  # a pickle would need allow_pickle
        np.savez(f, format=np.array(cohort.FORMAT), version=np.array(1), user=np.array("gina"),
                 spec=np.array(json.dumps(SPEC.to_dict())), blocks=np.array([{"a": 1}], dtype=object))
    bad = blocks_of("carol", 3).copy()
    bad[0, 0, 0] = np.nan
    cohort.publish(shared, "hank", bad, SPEC)
    (shared / "notes.txt").write_text("the administrator's notes are no member")
    warnings = Warnings()
    members = cohort.read_members(shared, "alice", SPEC, warn=warnings)
    assert list(members) == ["bob"]
    assert len(warnings) == 5, warnings
    for name, says in (("dave", "not a readable member file"), ("erin", "not a readable member file"),
                       ("frank", "holds the blocks of 'bob'"), ("gina", "not a readable member file"),
                       ("hank", "not finite")):
        assert any(f"{name}.npz" in w and says in w for w in warnings), (name, warnings)


def test_a_copy_of_your_own_blocks_is_not_an_impostor(shared):
    """Someone publishing your blocks under their name would train your model against you."""
    alice = blocks_of("alice", 1)
    cohort.publish(shared, "mallory", np.concatenate([blocks_of("bob", 2), alice[:3]]), SPEC)
    warnings = Warnings()
    assert cohort.read_members(shared, "alice", SPEC, own_blocks=alice, warn=warnings) == {}
    assert len(warnings) == 1 and "holds blocks of your own movement" in warnings[0]


def test_symlinks_in_the_shared_folder_are_neither_followed_nor_written_through(shared, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("alice's private file")
    os.symlink(secret, shared / "alice.npz")  # planted by another account
    assert cohort.publish(shared, "alice", blocks_of("alice", 1), SPEC) is True
    assert secret.read_text() == "alice's private file"
    assert not (shared / "alice.npz").is_symlink() and mode(shared / "alice.npz") == 0o640

    os.symlink(shared / "alice.npz", shared / "zed.npz")  # alice's blocks under another name
    os.mkfifo(shared / "fifo.npz")  # opening it for reading would block
    assert cohort.snapshot(shared, "bob") == {"alice": (shared / "alice.npz").stat().st_mtime_ns}
    assert list(cohort.read_members(shared, "bob", SPEC, warn=Warnings())) == ["alice"]
    for name, says in (("zed.npz", "symlink"), ("fifo.npz", "not a regular file")):
        with pytest.raises(cohort.MemberError, match=says):
            cohort.read_member(shared / name, SPEC)


def test_oversized_member_is_not_read(shared, monkeypatch):
    cohort.publish(shared, "bob", blocks_of("bob", 1), SPEC)
    monkeypatch.setattr(cohort, "MAX_MEMBER_BYTES", 1000)
    warnings = Warnings()
    assert cohort.read_members(shared, "alice", SPEC, warn=warnings) == {}
    assert len(warnings) == 1 and "more than the 1000" in warnings[0]


@pytest.mark.parametrize("name", ["../bob", "a/b", "..", ""])
def test_user_names_are_file_names(shared, name):
    with pytest.raises(ValueError, match="a name, not a path"):
        cohort.publish(shared, name, blocks_of("bob", 1), SPEC)


def test_unusable_folder_is_one_line(tmp_path):
    (tmp_path / "file").write_text("")
    for folder, says in ((tmp_path / "missing", "does not exist"), (tmp_path / "file", "not a folder")):
        with pytest.raises(cohort.CohortError, match=says) as error:
            cohort.check_folder(folder)
        assert "\n" not in str(error.value)


# ------------------------------------------------------------------------------- config


def test_config_cohort_section():
    assert Config().cohort.dir == "" and Config().cohort.refit is True
    text = dump_config(Config())
    assert '[cohort]\n' in text and '\ndir = ""\n' in text and "\nrefit = true\n" in text
    loaded = parse_config('[cohort]\ndir = "/var/lib/mouseguard/cohort"\nrefit = false\n')
    assert loaded.cohort.dir == "/var/lib/mouseguard/cohort" and loaded.cohort.refit is False
    assert parse_config(dump_config(loaded)) == loaded
    for bad in ('dir = "relative/cohort"', 'dir = "~/cohort"', "dir = 3", 'refit = "yes"'):
        with pytest.raises(ConfigError) as error:
            parse_config(f"[cohort]\n{bad}\n", source="config.toml")
        assert "\n" not in str(error.value) and "config.toml: cohort." in str(error.value)


# ------------------------------------------------------------------------ enroll and forget


def write_config(home, folder, refit=True):
    (home / "config").mkdir(parents=True, exist_ok=True)
    (home / "config" / "config.toml").write_text(
        f'[cohort]\ndir = "{folder}"\nrefit = {"true" if refit else "false"}\n')


def test_enroll_trains_against_the_cohort_and_publishes_own_blocks(mouseguard_home, shared, alice_files, capsys):
    from training.enrol import cohort_blocks

    bob = blocks_of("bob", 7, seconds=200)
    cohort.publish(shared, "bob", bob, SPEC)
    write_config(mouseguard_home, shared)
    assert main(["enroll", "--user", "alice", "--from", *map(str, alice_files), "--epochs", "1"]) == 0
    out = capsys.readouterr().out
    model = load_model_dir(mouseguard_home / "data" / "models" / "alice")
    assert model.manifest["training"]["cohort"] == {"bob": len(bob)}
    assert "movement of 1 other person who uses this machine (bob;" in out
    mine = shared / "alice.npz"
    assert mode(mine) == 0o640 and "alice.npz" in out
    _, published = cohort.read_member(mine, model.spec)
    assert np.array_equal(published, cohort_blocks([read_recording(f) for f in alice_files], model.spec))

    # forget takes the member file too, and leaves bob's alone
    assert main(["forget", "--user", "alice", "--yes"]) == 0
    assert f"erased {mine}" in capsys.readouterr().out
    assert sorted(p.name for p in shared.iterdir()) == ["bob.npz"]


def test_enroll_goes_on_without_a_missing_cohort_folder(mouseguard_home, tmp_path, alice_files, capsys):
    write_config(mouseguard_home, tmp_path / "not-made-yet")
    assert main(["enroll", "--user", "alice", "--from", *map(str, alice_files), "--epochs", "1"]) == 0
    captured = capsys.readouterr()
    warnings = [line for line in captured.err.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "does not exist" in warnings[0] and "enrolling without the cohort" in warnings[0]
    model = load_model_dir(mouseguard_home / "data" / "models" / "alice")
    assert model.manifest["training"]["cohort"] == {}
    assert not (tmp_path / "not-made-yet").exists()


def test_forget_removes_a_planted_link_not_its_target(mouseguard_home, shared, tmp_path, capsys):
    target = tmp_path / "target"
    target.write_text("keep")
    os.symlink(target, shared / "ann.npz")
    write_config(mouseguard_home, shared)
    assert main(["forget", "--user", "ann", "--yes"]) == 0
    assert not os.path.lexists(shared / "ann.npz") and target.read_text() == "keep"


# ------------------------------------------------------------------------------- refit


def test_needs_refit():
    present = {"bob": 100, "carol": 200}
    assert not cohort.needs_refit(present, {"bob": 40, "carol": 50}, model_mtime_ns=300)
    assert cohort.needs_refit(present, {"bob": 40}, 300)  # carol joined
    assert cohort.needs_refit({"bob": 100}, {"bob": 40, "carol": 50}, 300)  # carol left
    assert cohort.needs_refit(present, {"bob": 40, "carol": 50}, 150)  # carol republished since
    assert not cohort.needs_refit({}, {}, 0)


def test_refit_child_runs_at_lower_priority():
    command = [sys.executable, "-c", "import os, time; time.sleep(0.5); print(os.getpriority(os.PRIO_PROCESS, 0))"]
    proc = start_low_priority(command)
    out, _ = proc.communicate(timeout=30)
    assert int(out) == min(19, os.getpriority(os.PRIO_PROCESS, 0) + REFIT_NICENESS)


def protecting_agent(home, user="alice", enrol_command=None):
    from agent.config import load_config
    from agent.responses.actor import Actor

    tray = RecordingTray()

    agent = Agent(load_config(), tray, Actor("log", lambda: None, tray.notify),
                  model_dir=home / "data" / "models" / user, user=user, status_path=home / "status.json",
                  recordings_dir=home / "data" / "recordings", enrol_command=enrol_command)
    agent.buffer = RingBuffer()
    agent.hook_ok = True
    agent._protect(load_model_dir(agent.model_dir))
    assert agent.state == states.PROTECTED
    return agent


def test_agent_refits_when_someone_joins_the_cohort(mouseguard_home, shared, alice_files, caplog):
    caplog.set_level(logging.INFO, logger="mouseguard.agent")
    bob = blocks_of("bob", 7, seconds=200)
    cohort.publish(shared, "bob", bob, SPEC)
    write_config(mouseguard_home, shared)
    assert main(["enroll", "--user", "alice", "--from", *map(str, alice_files), "--epochs", "1"]) == 0
    commands = []

    def enrol_command(user, files):
        commands.append(files)
        return default_enrol_command(user, files) + ["--epochs", "1"]

    agent = protecting_agent(mouseguard_home, enrol_command=enrol_command)
    try:
        assert agent.check_cohort(now=0.0) is False and commands == []  # up to date: bob is in the model
        carol = blocks_of("carol", 8, seconds=200)
        cohort.publish(shared, "carol", carol, SPEC)
        assert agent.check_cohort(now=1.0) is False  # looks only every few minutes
        old = agent.model
        mine = (shared / "alice.npz").stat().st_mtime_ns
        assert agent.check_cohort(now=1000.0) is True
        assert commands == [list(map(str, alice_files))]  # the recordings the model was enrolled from
        agent.refit.join(120)
        assert agent.refit.succeeded, caplog.text
        # the refit republished the same blocks of alice's: unchanged, so bob's and carol's agents do not refit
        assert (shared / "alice.npz").stat().st_mtime_ns == mine
        agent.set_state(states.SUSPICIOUS)  # never switch while someone is being judged
        agent.check_cohort(now=1001.0)
        assert agent.model is old
        agent.set_state(states.PROTECTED)
        agent.check_cohort(now=1002.0)
        assert agent.model is not old and agent.state == states.PROTECTED
        assert agent.model.manifest["training"]["cohort"] == {"bob": len(bob), "carol": len(carol)}
        assert agent.check_cohort(now=5000.0) is False  # up to date again: no refit loop
        assert "switching to the model refitted against the cohort" in caplog.text
    finally:
        agent.stop()


def test_agent_refit_decisions_without_training_or_after_a_failure(mouseguard_home, shared, alice_files, caplog,
                                                                   monkeypatch):
    write_config(mouseguard_home, shared)
    assert main(["enroll", "--user", "alice", "--from", *map(str, alice_files), "--epochs", "1"]) == 0
    failing = [sys.executable, "-c", "import sys; print('too little data', file=sys.stderr); sys.exit(2)"]
    agent = protecting_agent(mouseguard_home, enrol_command=lambda user, files: failing)
    try:
        cohort.publish(shared, "bob", blocks_of("bob", 7), SPEC)
        agent.paused_until = 1e12  # paused: nothing is looked at
        assert agent.check_cohort(now=1000.0) is False
        agent.paused_until = None

        monkeypatch.setattr(enrolment, "training_available", lambda: False)
        caplog.set_level(logging.INFO, logger="mouseguard.agent")
        assert agent.check_cohort(now=2000.0) is False
        cohort.publish(shared, "carol", blocks_of("carol", 8), SPEC)
        assert agent.check_cohort(now=3000.0) is False
        assert caplog.text.count("needs PyTorch") == 1  # one line, however often it is found

        monkeypatch.setattr(enrolment, "training_available", lambda: True)
        cohort.publish(shared, "dave", blocks_of("carol", 9), SPEC)
        assert agent.check_cohort(now=4000.0) is True
        agent.refit.join(30)
        assert not agent.refit.succeeded and "the cohort refit failed" in caplog.text
        model = agent.model
        assert agent.check_cohort(now=5000.0) is False  # the same members: not tried again
        assert agent.model is model
        cohort.publish(shared, "erin", blocks_of("bob", 10), SPEC)
        assert agent.check_cohort(now=6000.0) is True  # someone new: tried again
        agent.refit.join(30)
    finally:
        agent.stop()


def test_stopping_the_agent_ends_a_running_refit(mouseguard_home, shared, alice_files):
    write_config(mouseguard_home, shared)
    assert main(["enroll", "--user", "alice", "--from", *map(str, alice_files), "--epochs", "1"]) == 0
    slow = [sys.executable, "-c", "import time; time.sleep(60)"]
    agent = protecting_agent(mouseguard_home, enrol_command=lambda user, files: slow)
    cohort.publish(shared, "bob", blocks_of("bob", 7), SPEC)
    assert agent.check_cohort(now=1000.0) is True
    refit = agent.refit
    deadline = time.monotonic() + 10
    while refit.proc is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert refit.proc is not None and refit.proc.poll() is None
    started = time.monotonic()
    agent.stop()
    assert refit.proc.poll() is not None and time.monotonic() - started < 10
    refit.join(10)
    assert not refit.succeeded
