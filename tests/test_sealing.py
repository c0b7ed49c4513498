"""Recordings sealed at rest with a key from the OS keyring (issue 19, item 6; agent/sealing.py).

Against a real Secret Service (gnome-keyring on a private session bus: the ``keyring_env``
fixture), real files and the real ``mouseguard`` commands.
"""

import logging
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

from agent import sealing
from agent.recordings import RecordingError, read_recording, write_recording
from tests.synth import synth_events


@pytest.fixture
def no_keyring(monkeypatch, tmp_path):
    """A session with no keyring to ask: no session bus."""
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", f"unix:path={tmp_path}/no-bus")
    monkeypatch.setattr(sealing, "_warned", False)
    monkeypatch.setattr(sealing, "_found", False)


def test_a_sealed_recording_reads_back_and_holds_nothing_in_the_clear(keyring_env, tmp_path):
    events = synth_events("alice", seconds=30, seed=1)
    key = sealing.recordings_key()
    assert sealing.recordings_key() == key  # made once, then read back from the keyring
    path = tmp_path / "kept.csv.gz"
    write_recording(path, events, key)
    data = path.read_bytes()
    assert data.startswith(sealing.MAGIC) and b"client timestamp" not in data
    assert b"\x1f\x8b" not in data[:len(sealing.MAGIC) + 2]  # not even the gzip magic
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    np.testing.assert_array_equal(read_recording(path), read_recording_plain(tmp_path, events))


def read_recording_plain(tmp_path, events):
    plain = tmp_path / "plain.csv.gz"
    write_recording(plain, events)
    return read_recording(plain)


def test_a_sealed_recording_cannot_be_read_without_the_keyring(keyring_env, tmp_path, synth_model):
    path = tmp_path / "kept.csv"
    write_recording(path, synth_events("alice", seconds=10, seed=2), sealing.recordings_key())
    env = {**os.environ, "DBUS_SESSION_BUS_ADDRESS": f"unix:path={tmp_path}/no-bus"}
    proc = subprocess.run([sys.executable, "-m", "agent", "replay", str(path), "--model", str(synth_model)],
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1 and "is sealed with mouseguard's key from the OS keyring" in proc.stderr


def test_without_a_keyring_recordings_are_written_in_the_clear_and_that_is_said_once(no_keyring, tmp_path,
                                                                                     caplog):
    caplog.set_level(logging.WARNING, logger="agent.sealing")
    assert sealing.key_for_writing() is None and sealing.key_for_writing() is None
    assert caplog.text.count("recordings are written unencrypted: the OS keyring did not answer") == 1


def test_forget_deletes_the_key_so_every_sealed_copy_is_unreadable(keyring_env, tmp_path):
    env = {**os.environ, "MOUSEGUARD_HOME": str(tmp_path / "mg")}
    folder = tmp_path / "mg" / "data" / "recordings" / "alice"
    folder.mkdir(parents=True)
    kept = folder / "kept.csv.gz"
    write_recording(kept, synth_events("alice", seconds=10, seed=3), sealing.recordings_key())
    backup = tmp_path / "backup.csv.gz"
    backup.write_bytes(kept.read_bytes())
    proc = subprocess.run([sys.executable, "-m", "agent", "forget", "--user", "alice", "--yes"], capture_output=True,
                          text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "deleted the recordings key from the OS keyring" in proc.stdout and not kept.exists()
    with pytest.raises(RecordingError, match="holds no mouseguard recordings key"):
        read_recording(backup)
    sealing.recordings_key()  # a new key: the old copy stays unreadable
    with pytest.raises(RecordingError, match="sealed with another key"):
        read_recording(backup)


def test_recording_into_mouseguards_folder_is_sealed(keyring_env, tmp_path, xserver):
    from agent.recorder import record

    path = tmp_path / "rec.csv.gz"
    stop = threading.Event()

    def drive():
        xserver.xdotool(*sum((["mousemove", str(100 + 3 * i), "200", "sleep", "0.01"] for i in range(80)), []))
        stop.set()

    threading.Thread(target=drive).start()
    events = record(path, wall_minutes=0.5, stop_event=stop, key=sealing.key_for_writing())
    assert len(events) > 40 and path.read_bytes().startswith(sealing.MAGIC)
    assert len(read_recording(path)) == len(events)


def test_enrolment_blocks_are_sealed_too_and_the_key_stays_while_another_users_remain(keyring_env, tmp_path):
    """The blocks kept instead of recordings integrate back into movement: sealed like them. The
    key is the account's, so forgetting one user must not make another's blocks unreadable."""
    from agent.enrolment_blocks import blocks_path, read_blocks, write_blocks
    from tests.test_cohort import SPEC
    from training.user_model.owner import cut_enrolment

    env = {**os.environ, "MOUSEGUARD_HOME": str(tmp_path / "mg")}
    paths = {user: blocks_path(user, env) for user in ("alice", "bob")}
    for user, path in paths.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_blocks(path, cut_enrolment([synth_events(user, seconds=60, seed=4)], SPEC, 1, user=user),
                     sealing.recordings_key())
        assert path.read_bytes().startswith(sealing.MAGIC)
    assert read_blocks(paths["bob"]).user == "bob"
    proc = subprocess.run([sys.executable, "-m", "agent", "forget", "--user", "alice", "--yes"], capture_output=True,
                          text=True, env=env, timeout=60)
    assert proc.returncode == 0 and not paths["alice"].exists() and "recordings key" not in proc.stdout
    assert read_blocks(paths["bob"]).user == "bob"  # the key is still there for bob's
    proc = subprocess.run([sys.executable, "-m", "agent", "forget", "--user", "bob", "--yes"], capture_output=True,
                          text=True, env=env, timeout=60)
    assert "deleted the recordings key from the OS keyring" in proc.stdout


def test_a_keyring_that_comes_up_later_is_found(no_keyring, secret_service, monkeypatch):
    """An agent started before the desktop's keyring is on the bus: keyring alone would keep its
    first "no backend" for the life of the process and never seal."""
    assert sealing.key_for_writing() is None
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", secret_service["DBUS_SESSION_BUS_ADDRESS"])
    assert sealing.key_for_writing() == sealing.recordings_key()
