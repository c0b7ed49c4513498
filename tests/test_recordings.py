import gzip
import os
import stat
import subprocess
import sys
import warnings

import numpy as np
import pytest

from agent.events import (
    BUTTONS, DOWN, DRAG, LEFT, MIDDLE, MOVE, NO_BUTTON, PRESSED, RELEASED, RIGHT, SCROLL, STATE_NAMES, UP, make_events,
)
from agent.recordings import RecordingError, read_recording, write_recording
from tests.synth import synth_events

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
    ev = read_recording(os.path.join(FIX, "sapimouse-excerpts/user1/session_2020_05_14_1min.csv"), time_unit="ms")
    assert len(ev) == 299
    gaps = np.diff(ev["t"])
    assert 0.001 < np.median(gaps[gaps > 0]) < 0.1  # ms became seconds
    crlf = read_recording(os.path.join(FIX, "sapimouse-excerpts/user2/session_crlf_3min.csv"), time_unit="ms")
    assert len(crlf) == 299 and crlf["x"].dtype.kind == "i"


def test_the_time_unit_is_stated_not_guessed(tmp_path):
    # before: a project file whose median gap was 0.5 s or more was silently divided by 1000, so a
    # planted recording of a 1-px jiggle every 60 s read as brisk movement (60 ms steps)
    jiggle = make_events([(60.0 * i, NO_BUTTON, MOVE, 500 + i % 2, 400) for i in range(300)])
    planted = tmp_path / "planted.csv"
    write_recording(planted, jiggle)
    with pytest.raises(RecordingError) as refused:
        read_recording(planted)
    message = str(refused.value)
    assert message.startswith(f"{planted}: the median gap between events is 60 s") and "\n" not in message
    assert "client timestamp [ms],button,state,x,y" in message
    # stated seconds: read as written, a jiggle a minute (no block is ever cut from it)
    assert read_recording(planted, time_unit="s")["t"][1] == 60.0
    # a SapiMouse file without a stated unit is refused the same way, not read as seconds
    sapi = os.path.join(FIX, "sapimouse-excerpts/user1/session_2020_05_14_1min.csv")
    with pytest.raises(RecordingError, match="if its times are milliseconds"):
        read_recording(sapi)
    # the unit stated in the header, as the refusal says
    text = open(sapi, encoding="utf-8").read().replace("client timestamp,", "client timestamp [ms],", 1)
    stated = tmp_path / "sapi.csv"
    stated.write_text(text)
    np.testing.assert_array_equal(read_recording(stated)["t"], read_recording(sapi, time_unit="ms")["t"])
    seconds = tmp_path / "seconds.csv"
    seconds.write_text(planted.read_text().replace("client timestamp,", "client timestamp [s],", 1))
    assert read_recording(seconds)["t"][1] == 60.0
    with pytest.raises(RecordingError, match=r":1: unexpected header"):
        (tmp_path / "min.csv").write_text("client timestamp [min],button,state,x,y\n1,NoButton,Move,1,1\n")
        read_recording(tmp_path / "min.csv")


@pytest.mark.parametrize("balabit", [False, True])
def test_the_reader_streams_memory_bounded_by_the_events(tmp_path, balabit):
    # before: every row was a Python list of strings at once, some 300 bytes an event
    import tracemalloc

    from tests.synth import write_balabit

    part = synth_events("bob", seconds=600, seed=1)
    span = float(part["t"][-1]) + 1.0
    events = np.concatenate([part] * 10)
    events["t"] += np.repeat(np.arange(10) * span, len(part))  # ~190 k events, in time order
    path = tmp_path / "long.csv"
    (write_balabit if balabit else write_recording)(path, events)
    tracemalloc.start()
    try:
        read = read_recording(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(read) == len(events) > 150_000
    assert peak < 3 * read.nbytes + 8 * 2**20, (peak, read.nbytes)


def test_a_bad_row_in_a_later_chunk_is_named_by_its_line(tmp_path):
    from agent.recordings import CHUNK_ROWS

    events = synth_events("alice", seconds=400, seed=2)
    assert len(events) > CHUNK_ROWS + 10
    path = tmp_path / "bad.csv"
    write_recording(path, events)
    lines = path.read_text().splitlines()
    lines[CHUNK_ROWS + 5] = lines[CHUNK_ROWS + 5].replace("NoButton", "Thumb", 1)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(RecordingError, match=rf"{path}:{CHUNK_ROWS + 6}: unknown button 'Thumb'"):
        read_recording(path)


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
    # every format is named, not only mouseguard's own (before: Balabit and mAuth went unmentioned)
    ("time,b,s,x,y\n", "(mouseguard's recordings and SapiMouse), 'record timestamp,client timestamp,button,state,x,y'"
                       " (Balabit) or 'ID,Timestamp,X,Y,Button,Duration' (mAuth)"),
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


# -- mAuth's raw pynput logs (ID,Timestamp,X,Y,Button,Duration); all data below is generated --

MAUTH_HEADER = "ID,Timestamp,X,Y,Button,Duration"
T0 = 1_700_000_000  # mAuth stamps rows with UNIX time in seconds


def _write_mauth(path, rows, header=MAUTH_HEADER):
    """Rows are ``(seconds after T0, x, y, button code, duration)``; times as 6-decimal text."""
    lines = [header] + [f"7,{T0 + t:.6f},{x},{y},{code},{duration}" for t, x, y, code, duration in rows]
    payload = ("\n".join(lines) + "\n").encode()
    path.write_bytes(gzip.compress(payload) if path.suffix == ".gz" else payload)


# One generated session: each row with the event it must become. Codes: -1 move, 0/1/2
# left/right/middle (Duration -1 on a press, the seconds held on a release), 3/4 wheel down/up,
# 5/6 side buttons.
MAUTH_SESSION = [
    ((-20, 5, -1, -1), ("NoButton", "Move")),
    ((-12, 3, -1, -1), ("NoButton", "Move")),
    ((-12, 3, 0, -1), ("Left", "Pressed")),
    ((-5, 0, -1, -1), ("Left", "Drag")),  # a drag carries the held button
    ((4, -2, -1, -1), ("Left", "Drag")),
    ((4, -2, 0, 0.024), ("Left", "Released")),
    ((10, -2, -1, -1), ("NoButton", "Move")),
    ((10, -2, 3, -1), ("Scroll", "Down")),
    ((10, -2, 4, -1), ("Scroll", "Up")),
    ((10, -2, 1, -1), ("Right", "Pressed")),
    ((10, -2, 2, -1), ("Middle", "Pressed")),
    ((12, -1, -1, -1), ("Middle", "Drag")),  # two held: the one pressed last
    ((12, -1, 2, 0.016), ("Middle", "Released")),
    ((14, 0, -1, -1), ("Right", "Drag")),  # right is still held
    ((14, 0, 1, 0.04), ("Right", "Released")),
    ((15, 1, 5, -1), ("Other", "Pressed")),  # side buttons are Other, as the hook records x1/x2
    ((16, 2, -1, -1), ("Other", "Drag")),
    ((16, 2, 6, 0.016), ("Other", "Released")),  # like the hook's: one Other held, whichever side
    ((17, 3, -1, -1), ("NoButton", "Move")),
    ((17, 3, 1, -2), ("Right", "Released")),  # a release without a press (mAuth writes -2 there)
    ((18, 3, -1, -1), ("NoButton", "Move")),  # ... holds nothing
    ((18, 3, 0, -1), ("Left", "Pressed")),
    ((18, 3, 0, -1), ("Left", "Pressed")),  # a press lost its release: still one hold
    ((19, 3, -1, -1), ("Left", "Drag")),
    ((19, 3, 0, 0.016), ("Left", "Released")),  # one release ends it
    ((20, 4, -1, -1), ("NoButton", "Move")),
]


@pytest.mark.parametrize("name", ["user_0_data.csv", "user_0_data.csv.gz"])
def test_mauth_log_reads_as_the_events_the_hook_would_record(tmp_path, name):
    times = [0.008 * i for i in range(len(MAUTH_SESSION))]
    path = tmp_path / name
    _write_mauth(path, [(t, *row) for t, (row, _) in zip(times, MAUTH_SESSION)])
    ev = read_recording(path)
    expected = make_events((float(f"{T0 + t:.6f}"), button, state, row[0], row[1])
                           for t, (row, (button, state)) in zip(times, MAUTH_SESSION))
    assert [(BUTTONS[b], STATE_NAMES[s]) for b, s in zip(ev["button"], ev["state"])] == \
        [event for _, event in MAUTH_SESSION]
    assert np.array_equal(ev, expected)  # t in seconds as written, x and y (negative too) as they are
    assert ev["t"][1] - ev["t"][0] == pytest.approx(0.008, abs=1e-6)


def test_mauth_header_alone_is_an_empty_recording(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text(MAUTH_HEADER + "\n")
    assert len(read_recording(path)) == 0


def _random_mauth_log(rng, n):
    """Rows as a careless logger writes them: presses without releases, releases without
    presses, buttons held across each other, side buttons, wheel, negative coordinates."""
    codes = rng.choice([-1, 0, 1, 2, 3, 4, 5, 6], size=n, p=[0.7, 0.08, 0.08, 0.04, 0.03, 0.03, 0.02, 0.02])
    press = rng.random(n) < 0.5
    t = np.cumsum(rng.integers(0, 20_000, n)) / 1e6  # microsecond steps, zero steps included
    xy = np.cumsum(rng.integers(-30, 31, (n, 2)), axis=0) - 200
    return [(ti, int(x), int(y), int(c), -1 if p or c in (-1, 3, 4) else round(float(rng.random()), 4))
            for ti, (x, y), c, p in zip(t, xy, codes, press)]


class _Clock:
    def __init__(self, times):
        self._times = iter(times)

    def __call__(self):
        return next(self._times)


@pytest.mark.parametrize("seed", range(5))
def test_mauth_log_matches_the_hook_fed_the_same_callbacks(tmp_path, seed):
    """mAuth wrote pynput's callbacks: the reader must give what agent.capture.MouseHook
    records from those callbacks, held buttons, drags, orphan releases and all."""
    from agent.capture import MouseHook
    from agent.ringbuffer import RingBuffer

    rows = _random_mauth_log(np.random.default_rng(seed), 3000)
    path = tmp_path / "log.csv"
    _write_mauth(path, rows)
    buffer = RingBuffer(capacity=len(rows))
    hook = MouseHook(buffer, clock=_Clock(float(f"{T0 + t:.6f}") for t, *_ in rows))
    pynput_buttons = {0: "left", 1: "right", 2: "middle", 5: "x1", 6: "x2"}
    hook._codes = {"left": LEFT, "right": RIGHT, "middle": MIDDLE}  # what start() takes from pynput
    for _, x, y, code, duration in rows:
        if code == -1:
            hook.on_move(x, y)
        elif code in (3, 4):
            hook.on_scroll(x, y, 0, 1 if code == 4 else -1)
        else:
            hook.on_click(x, y, pynput_buttons[code], duration == -1)
    recorded, _ = buffer.drain()
    ev = read_recording(path)
    assert np.array_equal(ev, recorded)
    assert {DRAG, PRESSED, RELEASED, UP, DOWN} <= set(ev["state"].tolist())


def _mauth_trajectory(rng, moves=60):
    """A generated session as mAuth rows and, independently, the events it stands for."""
    rows, events = [], []
    t, x, y = 0.0, -300.0, 200.0

    def emit(code, duration, button, state):
        nonlocal t
        t += float(rng.choice([0.0, 0.004, 0.008, 0.012, 0.05]))
        if rng.random() < 0.01:
            t += 3.0  # an idle pause
        stamp = f"{T0 + t:.6f}"
        rows.append((t, int(x), int(y), code, duration))
        events.append((float(stamp), button, state, int(x), int(y)))

    for _ in range(moves):
        held = rng.choice([None, 0, 1, 2])
        button = {None: "NoButton", 0: "Left", 1: "Right", 2: "Middle"}[held]
        if held is not None:
            emit(int(held), -1, button, "Pressed")
        tx, ty = rng.uniform(-600, 600), rng.uniform(-100, 500)
        for s in np.linspace(0, 1, int(rng.integers(5, 40)))[1:]:
            x, y = x + (tx - x) * s, y + (ty - y) * s
            emit(-1, -1, button, "Move" if held is None else "Drag")
        if held is not None:
            emit(int(held), 0.1, button, "Released")
        if rng.random() < 0.3:
            up = bool(rng.random() < 0.5)
            emit(4 if up else 3, -1, "Scroll", "Up" if up else "Down")
        if rng.random() < 0.1:
            side = int(rng.choice([5, 6]))
            emit(side, -1, "Other", "Pressed")
            emit(side, 0.2, "Other", "Released")
    return rows, make_events(events)


def test_mauth_log_cuts_into_the_blocks_of_the_same_events_in_the_project_format(tmp_path):
    """The format must not change what models see."""
    from agent.blocks import DEFAULT_SPEC, cut_blocks

    rows, events = _mauth_trajectory(np.random.default_rng(3))
    _write_mauth(tmp_path / "mauth.csv", rows)
    write_recording(tmp_path / "project.csv", events)
    from_mauth = read_recording(tmp_path / "mauth.csv")
    assert np.array_equal(from_mauth, read_recording(tmp_path / "project.csv"))
    blocks, times = cut_blocks(from_mauth, DEFAULT_SPEC)
    expected_blocks, expected_times = cut_blocks(read_recording(tmp_path / "project.csv"), DEFAULT_SPEC)
    assert len(blocks) >= 5 and blocks.shape[1:] == (4, 128)
    assert np.array_equal(blocks, expected_blocks) and np.array_equal(times, expected_times)
    held = blocks[:, DEFAULT_SPEC.features.index("held")]
    assert 0 < held.mean() < 1  # drags and clicks reach the held channel


GOOD_MAUTH = [(0.0, 1, 2, -1, -1), (0.01, 3, 4, 0, -1), (0.02, 3, 4, 0, 0.01)]


@pytest.mark.parametrize("row, fragment", [
    ("7,1700000000.1,10,20,7,-1", ":5: unknown button code '7' (expected -1 move, 0 left,"),
    ("7,1700000000.1,10,20,1.5,-1", ":5: unknown button code '1.5'"),
    ("7,1700000000.1,10,20,left,-1", ":5: unknown button code 'left'"),
    ("7,1700000000.1,ten,20,-1,-1", ":5: coordinate x='ten' is not a number in range"),
    ("7,yesterday,10,20,-1,-1", ":5: timestamp 'yesterday' is not a number"),
    ("7,1700000000.1,10,20,0,soon", ":5: duration 'soon' is not a number"),
    ("7,1700000000.1,10,20,0,nan", ":5: duration 'nan' is not a number"),
    ("7,1700000000.1,10,20,-1", ":5: expected 6 fields, found 5"),
])
def test_mauth_malformed_rows_name_file_and_line(tmp_path, row, fragment):
    path = tmp_path / "bad.csv"
    _write_mauth(path, GOOD_MAUTH)
    with open(path, "a") as f:
        f.write(row + "\n7,1700000000.2,zz,zz,9,x\n")  # a second bad row: the first is named
    with pytest.raises(RecordingError) as err:
        read_recording(path)
    assert str(err.value).startswith(f"{path}:5: ") and fragment in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("axis", ["x", "y"])
@pytest.mark.parametrize("value", OUT_OF_RANGE)
def test_mauth_coordinate_not_finite_or_outside_int32_is_refused(tmp_path, axis, value):
    x, y = (value, 9) if axis == "x" else (9, value)
    path = tmp_path / "bad.csv"
    _write_mauth(path, GOOD_MAUTH + [(0.03, x, y, -1, -1), (0.04, "nan", "nan", -1, -1)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(RecordingError) as err:
            read_recording(path)
    assert str(err.value) == f"{path}:5: coordinate {axis}={value!r} is not a number in range"


def test_mauth_header_missing_a_column_is_refused(tmp_path):
    path = tmp_path / "bad.csv"
    _write_mauth(path, GOOD_MAUTH, header="ID,Timestamp,X,Y,Button")
    with pytest.raises(RecordingError, match=r":1: unexpected header 'ID,Timestamp,X,Y,Button'"):
        read_recording(path)


def test_mauth_reversed_timestamps_are_refused(tmp_path):
    rows = [(0.01 * i, i, -i, -1, -1) for i in range(200)][::-1]
    path = tmp_path / "reversed.csv.gz"
    _write_mauth(path, rows)
    with pytest.raises(RecordingError) as err:
        read_recording(path)
    assert str(err.value).startswith(f"{path}: the timestamps go back in time at 199 of 199 steps")
