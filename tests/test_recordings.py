import gzip
import os
import stat

import numpy as np
import pytest

from agent.events import DRAG, LEFT, MOVE, NO_BUTTON, PRESSED, SCROLL, UP, make_events
from agent.recordings import RecordingError, read_recording, write_recording

FIX = os.path.join(os.path.dirname(__file__), "fixtures")


def test_balabit_excerpt_reads_client_seconds():
    ev = read_recording(os.path.join(FIX, "balabit-excerpts/user7/session_excerpt1"))
    assert len(ev) == 399
    with open(os.path.join(FIX, "balabit-excerpts/user7/session_excerpt1")) as f:
        rows = [line.strip().split(",") for line in f][1:]
    # the client clock (second column) is used, not the network monitor's record timestamp
    np.testing.assert_array_equal(ev["t"], [float(r[1]) for r in rows])
    np.testing.assert_array_equal(ev["x"], [int(r[4]) for r in rows])
    assert set(np.unique(ev["state"])) <= set(range(6))


def test_sapimouse_milliseconds_and_crlf():
    ev = read_recording(os.path.join(FIX, "sapimouse-excerpts/user1/session_2020_05_14_1min.csv"))
    assert len(ev) == 299
    gaps = np.diff(ev["t"])
    assert 0.001 < np.median(gaps[gaps > 0]) < 0.1  # ms became seconds
    crlf = read_recording(os.path.join(FIX, "sapimouse-excerpts/user2/session_crlf_3min.csv"))
    assert len(crlf) == 299 and crlf["x"].dtype.kind == "i"


def test_write_read_round_trip_gz_private(tmp_path):
    ev = make_events([(0.0, "NoButton", "Move", -5, 10), (0.5, LEFT, PRESSED, -5, 10),
                      (0.6, LEFT, DRAG, 20, 30), (0.7, SCROLL, UP, 20, 30), (1.25, NO_BUTTON, MOVE, 2000, -40)])
    path = tmp_path / "rec.csv.gz"
    write_recording(path, ev)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with gzip.open(path, "rt") as f:
        assert f.readline().strip() == "client timestamp,button,state,x,y"
    back = read_recording(path)
    assert np.array_equal(back, ev)


def test_write_is_atomic_and_keeps_old_file_on_failure(tmp_path):
    path = tmp_path / "rec.csv"
    path.write_text("keep me")
    bad = np.zeros(1, dtype=[("t", "f8")])  # not an event array: the write fails
    with pytest.raises(ValueError):
        write_recording(path, bad)
    assert path.read_text() == "keep me"
    assert [p.name for p in tmp_path.iterdir()] == ["rec.csv"]


@pytest.mark.parametrize("body, fragment", [
    ("client timestamp,button,state,x,y\n0.1,NoButton,Move,1,2\n0.2,NoButton,Fly,1,2\n", ":3: unknown state 'Fly'"),
    ("client timestamp,button,state,x,y\n0.1,NoButton,Move,1\n", ":2: expected 5 fields, found 4"),
    ("client timestamp,button,state,x,y\nabc,NoButton,Move,1,2\n", ":2: timestamp 'abc' is not a number"),
    ("client timestamp,button,state,x,y\n0.1,Wheel,Move,1,2\n", ":2: unknown button 'Wheel'"),
    ("client timestamp,button,state,x,y\n0.1,NoButton,Move,1,zz\n", ":2: coordinate y='zz'"),
    ("time,b,s,x,y\n", ":1: unexpected header"),
    ("", "empty file"),
])
def test_malformed_files_name_file_and_line(tmp_path, body, fragment):
    path = tmp_path / "bad.csv"
    path.write_text(body)
    with pytest.raises(RecordingError) as err:
        read_recording(path)
    assert str(path) in str(err.value) and fragment in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_and_binary_files(tmp_path):
    with pytest.raises(RecordingError, match="no such file"):
        read_recording(tmp_path / "nope.csv")
    junk = tmp_path / "junk.csv"
    junk.write_bytes(b"\xff\xfe\x00\x01" * 10)
    with pytest.raises(RecordingError, match="not a readable CSV"):
        read_recording(junk)


def test_writes_leave_existing_folders_modes_alone(tmp_path):
    """Writing a model or recording into a shared folder (e.g. /tmp) must not make it private."""
    from agent.files import atomic_directory

    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    write_recording(shared / "rec.csv", make_events([(0.0, "NoButton", "Move", 1, 2)]))
    with atomic_directory(shared / "model") as staging:
        (staging / "x").write_text("x")
    write_recording(shared / "new" / "deep" / "rec.csv", make_events([(0.0, "NoButton", "Move", 1, 2)]))
    assert stat.S_IMODE(os.stat(shared).st_mode) == 0o1777
    assert stat.S_IMODE(os.stat(shared / "model").st_mode) == 0o700
    assert stat.S_IMODE(os.stat(shared / "new").st_mode) == 0o700
    assert stat.S_IMODE(os.stat(shared / "new" / "deep").st_mode) == 0o700
