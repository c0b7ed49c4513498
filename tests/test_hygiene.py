"""Hygiene (issue 19, item 7): a model swap killed half-way is repaired at start, and ``forget``
erases everything mouseguard made about a person — real files, real processes, a real kill."""

import os
import subprocess
import sys
import textwrap
import time

import pytest

from agent import enrolled
from agent.files import leftovers, recover_directory
from agent.instance import InstanceLock


def mg(*args, home, input=None):
    return subprocess.run([sys.executable, "-m", "agent", *args], capture_output=True, text=True,
                          env={**os.environ, "MOUSEGUARD_HOME": str(home)}, input=input, timeout=120)


def make_model(folder, text):
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(text)
    (folder / "model.onnx").write_bytes(b"weights of " + text.encode())


def kill_mid_swap(target):
    """Replace the model folder ``target`` with atomic_directory in a child process that dies
    (os._exit, as a SIGKILL would: no clean-up runs) between the swap's two renames."""
    script = textwrap.dedent(f"""
        import os
        import agent.files as files
        real, calls = os.replace, []
        def replace(src, dst):
            calls.append(src)
            if len(calls) == 2:
                os._exit(9)
            real(src, dst)
        files.os.replace = replace
        with files.atomic_directory({str(target)!r}) as staging:
            (staging / "manifest.json").write_text("new")
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 9, proc.stderr


def test_a_kill_between_the_two_renames_is_repaired(tmp_path):
    model = tmp_path / "models" / "alice"
    make_model(model, "old")
    kill_mid_swap(model)
    staging, backups = leftovers(model)
    assert not model.exists() and len(staging) == 1 and len(backups) == 1  # the model only under .alice.old-*
    notes = recover_directory(model)
    assert (model / "manifest.json").read_text() == "old" and not leftovers(model)[1]
    assert len(notes) == 1 and "recovered" in notes[0] and "\n" not in notes[0]
    assert leftovers(model)[0] == staging  # a fresh staging folder may be another write's: kept
    notes = recover_directory(model, now=time.time() + 3600)
    assert leftovers(model) == ([], []) and "half-written" in notes[0]


def test_backups_beside_a_model_go_and_other_users_folders_stay(tmp_path):
    models = tmp_path / "models"
    make_model(models / "alice", "current")
    make_model(models / ".alice.old-abcd1234", "previous")  # the swap completed; its clean-up did not
    make_model(models / "alice.bob", "another user's")
    make_model(models / ".alice.bob.old-abcd1234", "another user's backup")
    assert leftovers(models / "alice") == ([], [models / ".alice.old-abcd1234"])
    recover_directory(models / "alice")
    assert sorted(p.name for p in models.iterdir()) == [".alice.bob.old-abcd1234", "alice", "alice.bob"]
    assert (models / "alice" / "manifest.json").read_text() == "current"


def test_a_recording_killed_mid_write_leaves_no_stale_part_behind(tmp_path):
    from agent.files import remove_stale_partial_files

    folder = tmp_path / "rec" / "alice"
    script = textwrap.dedent(f"""
        import os
        import agent.files as files
        from agent.recordings import write_recording
        from tests.synth import synth_events
        files.os.replace = lambda src, dst: os._exit(9)  # killed between the write and its rename
        write_recording({str(folder / "20261206-101010.csv.gz")!r}, synth_events("alice", 30))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 9, proc.stderr
    (part,) = folder.iterdir()
    assert part.name.startswith(".20261206-101010.csv.gz.") and part.name.endswith(".part")
    (folder / "keep.csv.gz").write_bytes(b"a finished recording")
    assert remove_stale_partial_files(folder) == []  # it may be a write still going on
    (note,) = remove_stale_partial_files(folder, now=time.time() + 3600)
    assert "half-written" in note and [p.name for p in folder.iterdir()] == ["keep.csv.gz"]


@pytest.fixture
def home(tmp_path):
    """Everything mouseguard makes about alice (and a little about alice.bob), in a MOUSEGUARD_HOME."""
    home = tmp_path / "home"
    models, rec = home / "data" / "models", home / "data" / "recordings"
    make_model(models / "alice", "alice")
    make_model(models / ".alice.old-abcd1234", "alice, before")
    make_model(models / ".alice.zz_9yx8w.part", "alice, half-written")
    make_model(models / "alice.bob", "alice.bob")
    (rec / "alice").mkdir(parents=True)
    (rec / "alice" / "20261206-101010.csv.gz").write_bytes(b"movement")
    (home / "data" / "enrolment-blocks").mkdir()  # what enrolment keeps instead of the recordings
    (home / "data" / "enrolment-blocks" / "alice.npz").write_bytes(b"blocks")
    (home / "data" / "enrolment-blocks" / "alice.bob.npz").write_bytes(b"blocks")
    enrolled.write_record(home / "state" / "enrolled" / "alice.json", "alice", models / "alice")
    (home / "logs").mkdir()
    for name in ("mouseguard.log", "mouseguard.log.1"):
        (home / "logs" / name).write_text("locking: mean P(genuine) ...")
    (home / "state" / "status.json").write_text("{}")
    (home / "config").mkdir()
    (home / "config" / "config.toml").write_text('[agent]\nuser = "alice"\n')
    return home


def test_forget_erases_everything_it_made(home):
    # before: the staging and backup folders (copies of the model), the enrolment record, the log
    # and the status file were left behind
    done = mg("forget", "--yes", home=home)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (home / "data" / "models").iterdir()) == ["alice.bob"]
    assert not (home / "data" / "recordings" / "alice").exists()
    assert [p.name for p in (home / "data" / "enrolment-blocks").iterdir()] == ["alice.bob.npz"]
    assert not (home / "state" / "enrolled" / "alice.json").exists()
    assert not list((home / "logs").iterdir()) and not (home / "state" / "status.json").exists()
    assert (home / "config" / "config.toml").exists()  # only when asked
    assert mg("forget", "--yes", "--config", home=home).returncode == 0
    assert not (home / "config" / "config.toml").exists()
    assert "nothing stored for alice" in mg("forget", "--yes", "--user", "alice", home=home).stdout
    assert not (home / "config" / "config.toml").exists()  # forget writes no default config


def test_forget_of_another_user_keeps_the_agents_log(home):
    assert mg("forget", "--yes", "--user", "alice.bob", home=home).returncode == 0
    assert not (home / "data" / "models" / "alice.bob").exists() and (home / "data" / "models" / "alice").exists()
    assert (home / "logs" / "mouseguard.log").exists() and (home / "state" / "enrolled" / "alice.json").exists()


def test_forget_refuses_while_the_agent_runs(home):
    # the record is all that keeps a running agent from learning anew; quitting costs the password
    with InstanceLock(home / "state" / "agent.lock"):
        refused = mg("forget", "--yes", home=home)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1
    assert "is running (pid" in refused.stderr and "nothing was erased" in refused.stderr
    assert (home / "state" / "enrolled" / "alice.json").exists() and (home / "data" / "models" / "alice").exists()
