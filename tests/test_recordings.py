import gzip
import os
import stat
import subprocess
import sys
import warnings

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


# Coordinates land in int32 fields: a value that is not a finite number inside that range
# used to be cast to garbage (-2147483648) with only a numpy RuntimeWarning, and the file
# was scored.
OUT_OF_RANGE = ["nan", "inf", "-inf", "1e300", "5000000000", "2147483648", "-2147483649"]
GOOD_ROWS = ["0.1,NoButton,Move,1,2", "0.2,NoButton,Move,3.5,4", "0.3,Left,Pressed,65535,7"]


def _write(path, rows, balabit):
    header = "client timestamp,button,state,x,y"
    if balabit:  # Balabit: a leading network-monitor timestamp column
        header = "record timestamp," + header
        rows = [f"{i}.0,{row}" for i, row in enumerate(rows)]
    path.write_text("\n".join([header, *rows]) + "\n")


@pytest.mark.parametrize("balabit", [False, True], ids=["recording", "balabit"])
@pytest.mark.parametrize("axis", ["x", "y"])
@pytest.mark.parametrize("value", OUT_OF_RANGE)
def test_coordinate_not_finite_or_outside_int32_names_first_bad_line(tmp_path, balabit, axis,
                                                                    value):
    bad = f"0.4,NoButton,Move,{value},9" if axis == "x" else f"0.4,NoButton,Move,9,{value}"
    # a second bad row further down: the message must name the first one (line 5)
    path = tmp_path / "bad.csv"
    _write(path, GOOD_ROWS + [bad, "0.5,NoButton,Move,1,2", "0.6,NoButton,Move,nan,nan"], balabit)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no numpy cast warning on the way to the error
        with pytest.raises(RecordingError) as err:
            read_recording(path)
    message = str(err.value)
    assert message == f"{path}:5: coordinate {axis}={value!r} is not a number in range"


def test_first_bad_line_wins_whatever_the_kind_of_fault(tmp_path):
    path = tmp_path / "bad.csv"
    _write(path, GOOD_ROWS + ["0.4,NoButton,Move,inf,2", "0.5,NoButton,Fly,1,2"], balabit=False)
    with pytest.raises(RecordingError, match=r":5: coordinate x='inf'"):
        read_recording(path)
    _write(path, GOOD_ROWS + ["0.4,NoButton,Fly,1,2", "0.5,NoButton,Move,inf,2"], balabit=False)
    with pytest.raises(RecordingError, match=r":5: unknown state 'Fly'"):
        read_recording(path)


@pytest.mark.parametrize("balabit", [False, True], ids=["recording", "balabit"])
def test_fractional_and_large_screen_coordinates_still_read(tmp_path, balabit):
    # Real data has fractional coordinates (browser zoom) and Balabit goes up to 65535;
    # the int32 limits themselves are the edge of what fits.
    rows = GOOD_ROWS + ["0.4,NoButton,Move,-1280.75,1e3",
                        "0.5,NoButton,Move,2147483647,-2147483647.5"]
    path = tmp_path / "ok.csv"
    _write(path, rows, balabit)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ev = read_recording(path)
    np.testing.assert_array_equal(ev["x"], [1, 3, 65535, -1280, 2147483647])
    np.testing.assert_array_equal(ev["y"], [2, 4, 7, 1000, -2147483647])


def test_score_command_rejects_nan_coordinate_with_one_line(tmp_path):
    path = tmp_path / "nan.csv"
    _write(path, GOOD_ROWS + ["0.4,NoButton,Move,nan,2"], balabit=False)
    root = os.path.dirname(os.path.dirname(FIX))
    model = os.path.join(root, "models", "demo", "model")
    done = subprocess.run([sys.executable, "-m", "agent", "score", "--model", model, str(path)],
                          capture_output=True, text=True, timeout=120, cwd=root)
    assert done.returncode != 0 and done.stdout == ""
    expected = f"{path}:5: coordinate x='nan' is not a number in range"
    assert done.stderr == f"mouseguard: error: {expected}\n"


@pytest.mark.parametrize("order", ["reversed", "shuffled"])
def test_events_out_of_time_order_are_refused(tmp_path, order):
    events = make_events((i * 0.01, NO_BUTTON, MOVE, i, i) for i in range(200))
    if order == "reversed":
        events = events[::-1]
    else:
        events = events[np.random.default_rng(0).permutation(len(events))]
    path = tmp_path / "x.csv"
    write_recording(path, events)
    with pytest.raises(RecordingError, match="go back in time"):
        read_recording(path)


def test_a_few_steps_back_in_time_are_accepted(tmp_path):
    t = np.arange(2000) * 0.01
    t[[500, 900, 1500]] -= 0.02  # like SapiMouse's user101: three small steps back
    path = tmp_path / "x.csv"
    write_recording(path, make_events((ti, NO_BUTTON, MOVE, i, i) for i, ti in enumerate(t)))
    assert len(read_recording(path)) == 2000
