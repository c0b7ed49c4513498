"""Reading and writing mouse recordings.

Four formats share one reader, all CSV with a header line, plain or gzip-compressed:

* the project's own recordings: ``client timestamp,button,state,x,y``, seconds;
* Balabit Mouse Dynamics Challenge sessions: an extra leading ``record timestamp`` column
  (the network monitor's clock, ignored: the client clock is what the user's hand produced);
* SapiMouse sessions: the project's columns but in milliseconds, some files with CRLF endings;
* the mAuth study's raw pynput logs: ``ID,Timestamp,X,Y,Button,Duration``, UNIX seconds,
  integer button codes (see :func:`_parse_mauth_rows`). ID is ignored: one person per file.

SapiMouse and the project's format share a header, so the time unit is stated, never guessed:
the project's header means seconds; a file in milliseconds says so, either in its header
(``client timestamp [ms],button,...``) or by its reader (``time_unit="ms"``: the SapiMouse data set
loader). Guessing from the gaps made any slow file fast: a planted recording of a 1-px jiggle every
60 s, divided by 1000, read as brisk movement. A file that states nothing and whose median gap
between events is half a second or more (no hand's stream in seconds has that, SapiMouse's
milliseconds do) is refused in one line that says how to state the unit.

Files are read in chunks of ``CHUNK_ROWS`` rows, each turned into numbers before the next is read,
so reading takes the memory of the events themselves plus one chunk, whatever the file's size.

mAuth's logger wrote pynput's callbacks as they came, as mouseguard's own hook
(:class:`agent.capture.MouseHook`) sees them, so its rows are turned into events by the hook's
rules, and a mAuth file reads as the events mouseguard would have recorded at that desk:

* a click row (Button 0 left, 1 right, 2 middle, 5 and 6 side buttons) is ``Pressed`` when its
  Duration is -1, else ``Released``. The side buttons become ``Other``, as the hook records
  pynput's ``x1``/``x2`` (and as Balabit's ``XButton`` and SapiMouse's ``Other`` read): one
  ``Other`` for both, so like the hook's, the held state tracks one ``Other``;
* a move row (Button -1) is ``Move`` with ``NoButton``, or ``Drag`` while a button is held,
  carrying the held button (the most recently pressed of those held, as the hook does; SapiMouse
  names the button too, Balabit writes ``NoButton``; the block cutter's ``held`` channel reads the
  state only). A button is held from its press row to its next release row: a second press
  changes nothing, a release of a button not held is still a ``Released`` event;
* Button 3 is the wheel down (``Scroll``/``Down``), 4 the wheel up (``Scroll``/``Up``).

Duration says only press (-1) or release: the logger counted it from the last press of any
button, and wrote -2 on releases before any press, so it does not find a release's press.
"""

from __future__ import annotations

import csv
import gzip
import io
import itertools
import os
from pathlib import Path

import numpy as np

from agent import sealing
from agent.errors import MouseguardError
from agent.events import (
    BUTTON_CODES, BUTTONS, DOWN, DRAG, EVENT_DTYPE, LEFT, MIDDLE, MOVE, NO_BUTTON, OTHER, PRESSED, RELEASED,
    RIGHT, SCROLL, STATE_CODES, STATE_NAMES, UP,
)
from agent.files import atomic_open

HEADER = ("client timestamp", "button", "state", "x", "y")
BALABIT_HEADER = ("record timestamp",) + HEADER
MAUTH_HEADER = ("ID", "Timestamp", "X", "Y", "Button", "Duration")
#: mAuth's Button codes, -1 to 6, as event buttons and (unless a click) states.
MAUTH_BUTTONS = np.array([NO_BUTTON, LEFT, RIGHT, MIDDLE, SCROLL, SCROLL, OTHER, OTHER], dtype=np.uint8)
MAUTH_STATES = np.array([MOVE, PRESSED, PRESSED, PRESSED, DOWN, UP, PRESSED, PRESSED], dtype=np.uint8)
MAUTH_CODES = "-1 move, 0 left, 1 right, 2 middle, 3 wheel down, 4 wheel up, 5 and 6 side buttons"
#: The Duration of a press row; any other Duration marks a release.
MAUTH_PRESS = -1.0
# x and y are stored as int32: a magnitude at or past this (or NaN) would be cast to garbage.
COORDINATE_LIMIT = 2**31


#: Every header a recording may open with, for the message that refuses any other.
_KNOWN_HEADERS = (f"{','.join(HEADER)!r} (mouseguard's recordings and SapiMouse), "
                  f"{','.join(BALABIT_HEADER)!r} (Balabit) or {','.join(MAUTH_HEADER)!r} (mAuth)")


class RecordingError(MouseguardError, ValueError):
    """A recording that cannot be read; the message names the file (and line)."""


def _open_text(path: Path):
    with open(path, "rb") as raw:
        magic = raw.read(len(sealing.MAGIC))
        if sealing.is_sealed(magic):  # a kept recording (agent/sealing.py): opened in memory
            try:
                data = io.BytesIO(sealing.unseal(magic + raw.read(), str(path)))
            except sealing.SealingUnavailable as exc:
                raise RecordingError(str(exc)) from None
            if data.getvalue()[:2] == b"\x1f\x8b":
                return io.TextIOWrapper(gzip.GzipFile(fileobj=data), encoding="utf-8", newline="")
            return io.TextIOWrapper(data, encoding="utf-8", newline="")
    if magic[:2] == b"\x1f\x8b":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


#: Timestamps may step back now and then (SapiMouse: 3 steps in one session, by at most 67 ms;
#: Balabit and the agent's monotonic clock: never), but a file that does so at more than 1 % of
#: its steps is reversed or shuffled, and its blocks would be scored as movement that never was.
BACKWARD_SHARE = 0.01


#: Rows turned into numbers at a time: a chunk of text rows as Python lists costs some 300 bytes
#: a row, the events some 20, so this bounds the reader's extra memory near 3 MB.
CHUNK_ROWS = 10_000
#: Seconds per unit of the timestamps, by the names a header or a reader states them in.
TIME_UNITS = {"s": 1.0, "ms": 0.001}
#: A median gap between events at least this long is no mouse stream in seconds (module docstring).
SLOW_MEDIAN_GAP = 0.5


def read_recording(path: str | os.PathLike, time_unit: str | None = None) -> np.ndarray:
    """Read one recording file — this project's, Balabit's, SapiMouse's or mAuth's, told apart by
    the header — into an ``EVENT_DTYPE`` array (time in seconds).

    ``time_unit`` ("s" or "ms") states the unit of a file with the project's header (SapiMouse's
    files are in ms); a unit in the header itself wins over it, and Balabit and mAuth files are
    in seconds by their format.
    """
    path = Path(path)
    if time_unit is not None and time_unit not in TIME_UNITS:
        raise ValueError(f"time_unit must be one of {', '.join(TIME_UNITS)}, not {time_unit!r}")
    try:
        with _open_text(path) as f:
            rows = csv.reader(f)
            first = next(rows, None)
            if first is None:
                raise RecordingError(f"{path}: empty file, expected a header line: {_KNOWN_HEADERS}")
            header, stated = _header(path, first)
            chunks, line = [], 2
            while body := list(itertools.islice(rows, CHUNK_ROWS)):
                if header == MAUTH_HEADER:
                    chunks.append(_mauth_columns(path, body, line))
                else:
                    chunks.append(_parse_rows(path, body, len(header) - len(HEADER), line))
                line += len(body)
    except FileNotFoundError:
        raise RecordingError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise RecordingError(f"{path}: is a folder, not a recording file") from None
    except (UnicodeDecodeError, OSError, EOFError, csv.Error) as exc:
        raise RecordingError(f"{path}: not a readable CSV recording ({exc})") from None
    if header == MAUTH_HEADER:
        columns = [np.concatenate(c) for c in zip(*chunks)] if chunks else [np.zeros(0)] * 5
        events = _mauth_events(*columns)
    else:
        events = np.concatenate(chunks) if chunks else np.zeros(0, dtype=EVENT_DTYPE)
    backward = int(np.count_nonzero(np.diff(events["t"]) < 0))
    if backward > max(10, BACKWARD_SHARE * (len(events) - 1)):
        raise RecordingError(f"{path}: the timestamps go back in time at {backward} of {len(events) - 1} "
                             "steps; a recording lists its events in time order")
    if header == HEADER:
        unit = stated or time_unit
        if unit is None:
            _check_seconds(path, events["t"])
        elif unit != "s":
            events["t"] *= TIME_UNITS[unit]
    return events


def _header(path: Path, row: list[str]) -> tuple[tuple[str, ...], str | None]:
    """The header as one of the known ones, and the time unit it states (None: not stated)."""
    header = tuple(cell.strip() for cell in row)
    if header in (HEADER, BALABIT_HEADER, MAUTH_HEADER):
        return header, None
    if header[1:] == HEADER[1:]:
        for unit in TIME_UNITS:
            if header[0] == f"{HEADER[0]} [{unit}]":
                return HEADER, unit
    raise RecordingError(f"{path}:1: unexpected header {','.join(header)!r}; expected {_KNOWN_HEADERS} "
                         f"(times in seconds; '{HEADER[0]} [ms]' for milliseconds)")


def _check_seconds(path: Path, t: np.ndarray) -> None:
    gaps = np.diff(t)
    gaps = gaps[gaps > 0]
    if gaps.size and (median := float(np.median(gaps))) >= SLOW_MEDIAN_GAP:
        raise RecordingError(
            f"{path}: the median gap between events is {median:g} s, which no mouse stream in seconds has; "
            f"if its times are milliseconds (SapiMouse), state it in the header: {HEADER[0]} [ms],"
            f"{','.join(HEADER[1:])}")


def _parse_rows(path: Path, body: list[list[str]], skip: int, first_line: int = 2) -> np.ndarray:
    width = len(HEADER) + skip
    events = np.zeros(len(body), dtype=EVENT_DTYPE)
    if not body:
        return events
    try:
        if any(len(row) != width for row in body):
            raise ValueError
        cols = list(zip(*body))
        events["t"] = np.asarray(cols[skip], dtype=np.float64)
        events["button"] = [BUTTON_CODES[b] for b in cols[skip + 1]]
        events["state"] = [STATE_CODES[s] for s in cols[skip + 2]]
        x = np.asarray(cols[skip + 3], dtype=np.float64)
        y = np.asarray(cols[skip + 4], dtype=np.float64)
        # checked before the int32 cast, which turns NaN, inf and overflow into -2**31
        # with only a numpy warning
        if not (_coordinates_fit(x).all() and _coordinates_fit(y).all()):
            raise ValueError
        events["x"] = x
        events["y"] = y
        if not np.isfinite(events["t"]).all():
            raise ValueError
    except (ValueError, KeyError, OverflowError):
        # The fast path only says that something is wrong; find the first bad row to name it.
        raise RecordingError(_first_bad_row(path, body, skip, width, first_line)) from None
    return events


def _first_bad_row(path: Path, body: list[list[str]], skip: int, width: int, first_line: int) -> str:
    for lineno, row in enumerate(body, start=first_line):
        where = f"{path}:{lineno}"
        if len(row) != width:
            return f"{where}: expected {width} fields, found {len(row)}"
        t, button, state, x, y = row[skip:]
        if not _is_finite(t):
            return f"{where}: timestamp {t!r} is not a number"
        if button not in BUTTON_CODES:
            return f"{where}: unknown button {button!r} (expected one of {', '.join(BUTTONS)})"
        if state not in STATE_CODES:
            return f"{where}: unknown state {state!r} (expected one of {', '.join(STATE_NAMES)})"
        problem = _coordinate_problem(x, y)
        if problem:
            return f"{where}: {problem}"
    return f"{path}: malformed recording"


def _mauth_columns(path: Path, body: list[list[str]], first_line: int = 2) -> tuple[np.ndarray, ...]:
    """One chunk of mAuth rows as checked numeric columns (t, x, y, code, duration); the rows
    become events only once all are read (:func:`_mauth_events`: a hold spans chunks)."""
    try:
        if any(len(row) != len(MAUTH_HEADER) for row in body):
            raise ValueError
        _, t, x, y, code, duration = zip(*body)
        t, x, y, code, duration = (np.asarray(col, dtype=np.float64) for col in (t, x, y, code, duration))
        if not (np.isfinite(t).all() and np.isfinite(duration).all() and _coordinates_fit(x).all()
                and _coordinates_fit(y).all() and np.isin(code, np.arange(-1, 7)).all()):
            raise ValueError
    except ValueError:
        raise RecordingError(_first_bad_mauth_row(path, body, first_line)) from None
    return t, x, y, code, duration


def _mauth_events(t, x, y, code, duration) -> np.ndarray:
    """mAuth rows as events, by the rules of the module docstring (the hook's), vectorised."""
    events = np.zeros(len(t), dtype=EVENT_DTYPE)
    if not len(t):
        return events
    index = code.astype(np.intp) + 1
    button = MAUTH_BUTTONS[index]
    state = MAUTH_STATES[index]
    click = state == PRESSED
    press = click & (duration == MAUTH_PRESS)
    state[click & ~press] = RELEASED
    # Which button is held after each row: per button, the last of its click rows decides; of
    # several held, the one whose hold began last (the hook's ``held[-1]``).
    rows = np.arange(len(t))
    hold_began = np.full(len(t), -1)
    held_button = np.zeros(len(t), dtype=np.uint8)
    for held_code in (LEFT, RIGHT, MIDDLE, OTHER):
        own = click & (button == held_code)
        if not own.any():
            continue
        last = np.maximum.accumulate(np.where(own, rows, -1))
        held = (last >= 0) & press[last]
        began = np.maximum.accumulate(np.where(held & ~np.concatenate(([False], held[:-1])), rows, -1))
        later = held & (began > hold_began)
        hold_began[later] = began[later]
        held_button[later] = held_code
    drag = (code == -1) & (hold_began >= 0)
    state[drag] = DRAG
    button[drag] = held_button[drag]
    events["t"] = t
    events["button"] = button
    events["state"] = state
    events["x"] = x
    events["y"] = y
    return events


def _first_bad_mauth_row(path: Path, body: list[list[str]], first_line: int) -> str:
    for lineno, row in enumerate(body, start=first_line):
        where = f"{path}:{lineno}"
        if len(row) != len(MAUTH_HEADER):
            return f"{where}: expected {len(MAUTH_HEADER)} fields, found {len(row)}"
        _, t, x, y, code, duration = row
        if not _is_finite(t):
            return f"{where}: timestamp {t!r} is not a number"
        problem = _coordinate_problem(x, y)
        if problem:
            return f"{where}: {problem}"
        try:
            known = float(code) in range(-1, 7)
        except ValueError:
            known = False
        if not known:
            return f"{where}: unknown button code {code!r} (expected {MAUTH_CODES})"
        if not _is_finite(duration):
            return f"{where}: duration {duration!r} is not a number"
    return f"{path}: malformed recording"


def _is_finite(cell: str) -> bool:
    try:
        return bool(np.isfinite(float(cell)))
    except ValueError:
        return False


def _coordinate_problem(x: str, y: str) -> str | None:
    for name, value in (("x", x), ("y", y)):
        try:
            if not _coordinates_fit(float(value)):
                raise ValueError
        except ValueError:
            return f"coordinate {name}={value!r} is not a number in range"
    return None


def _coordinates_fit(values):
    """Whether coordinates are numbers that fit the int32 fields (fractions are truncated)."""
    return np.abs(values) < COORDINATE_LIMIT  # False for NaN as well


def write_recording(path: str | os.PathLike, events: np.ndarray, key: bytes | None = None) -> None:
    """Write events in the project's format (seconds); ``.gz`` names are compressed, and with a
    ``key`` (agent/sealing.py) the file is sealed: only mouseguard reads it back, in this account.

    The write is atomic and the file private to the user: a recording describes a person.
    """
    path = Path(path)
    lines = [",".join(HEADER)]
    lines += [
        f"{t:.6f},{BUTTONS[b]},{STATE_NAMES[s]},{x},{y}"
        for t, b, s, x, y in zip(
            events["t"].tolist(), events["button"].tolist(), events["state"].tolist(),
            events["x"].tolist(), events["y"].tolist(),
        )
    ]
    payload = ("\n".join(lines) + "\n").encode("ascii")
    if path.suffix == ".gz":
        payload = gzip.compress(payload, mtime=0)
    if key is not None:
        payload = sealing.seal(payload, key)
    with atomic_open(path, "wb") as f:
        f.write(payload)
