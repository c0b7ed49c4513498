"""Reading and writing mouse recordings.

Three formats share one reader, all CSV with a header line:

* the project's own recordings: ``client timestamp,button,state,x,y``, seconds, plain or gzip;
* Balabit Mouse Dynamics Challenge sessions: an extra leading ``record timestamp`` column
  (the network monitor's clock, ignored: the client clock is what the user's hand produced);
* SapiMouse sessions: the project's columns but in milliseconds, some files with CRLF endings.

SapiMouse and the project's format share a header, so the time unit is told by the data: no
mouse stream has a median gap between events of half a second or more, so a larger median
means milliseconds. ``fmt`` overrides the guess.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
from pathlib import Path

import numpy as np

from agent.errors import MouseguardError
from agent.events import BUTTON_CODES, BUTTONS, EVENT_DTYPE, STATE_CODES, STATE_NAMES
from agent.files import atomic_open

HEADER = ("client timestamp", "button", "state", "x", "y")
BALABIT_HEADER = ("record timestamp",) + HEADER
# x and y are stored as int32: a magnitude at or past this (or NaN) would be cast to garbage.
COORDINATE_LIMIT = 2**31


class RecordingError(MouseguardError, ValueError):
    """A recording that cannot be read; the message names the file (and line)."""


def _open_text(path: Path):
    with open(path, "rb") as raw:
        magic = raw.read(2)
    if magic == b"\x1f\x8b":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


#: Timestamps may step back now and then (SapiMouse: 3 steps in one session, by at most 67 ms;
#: Balabit and the agent's monotonic clock: never), but a file that does so at more than 1 % of
#: its steps is reversed or shuffled, and its blocks would be scored as movement that never was.
BACKWARD_SHARE = 0.01


def read_recording(path: str | os.PathLike) -> np.ndarray:
    """Read one recording file — this project's, Balabit's or SapiMouse's, told apart by the
    header and the time unit — into an ``EVENT_DTYPE`` array (time in seconds)."""
    path = Path(path)
    try:
        with _open_text(path) as f:
            rows = list(csv.reader(f))
    except FileNotFoundError:
        raise RecordingError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise RecordingError(f"{path}: is a folder, not a recording file") from None
    except (UnicodeDecodeError, OSError, EOFError, csv.Error) as exc:
        raise RecordingError(f"{path}: not a readable CSV recording ({exc})") from None
    if not rows:
        raise RecordingError(f"{path}: empty file, expected a header line {','.join(HEADER)}")
    header = tuple(cell.strip() for cell in rows[0])
    if header == BALABIT_HEADER:
        skip = 1
    elif header == HEADER:
        skip = 0
    else:
        raise RecordingError(
            f"{path}:1: unexpected header {','.join(header)!r}; expected {','.join(HEADER)!r}"
        )
    body = rows[1:]
    events = _parse_rows(path, body, skip)
    backward = int(np.count_nonzero(np.diff(events["t"]) < 0))
    if backward > max(10, BACKWARD_SHARE * (len(events) - 1)):
        raise RecordingError(f"{path}: the timestamps go back in time at {backward} of {len(events) - 1} "
                             "steps; a recording lists its events in time order")
    if skip == 0 and _looks_like_milliseconds(events["t"]):
        events["t"] /= 1000.0
    return events


def _parse_rows(path: Path, body: list[list[str]], skip: int) -> np.ndarray:
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
        raise RecordingError(_first_bad_row(path, body, skip, width)) from None
    return events


def _first_bad_row(path: Path, body: list[list[str]], skip: int, width: int) -> str:
    for lineno, row in enumerate(body, start=2):
        where = f"{path}:{lineno}"
        if len(row) != width:
            return f"{where}: expected {width} fields, found {len(row)}"
        t, button, state, x, y = row[skip:]
        try:
            if not np.isfinite(float(t)):
                raise ValueError
        except ValueError:
            return f"{where}: timestamp {t!r} is not a number"
        if button not in BUTTON_CODES:
            return f"{where}: unknown button {button!r} (expected one of {', '.join(BUTTONS)})"
        if state not in STATE_CODES:
            return f"{where}: unknown state {state!r} (expected one of {', '.join(STATE_NAMES)})"
        for name, value in (("x", x), ("y", y)):
            try:
                if not _coordinates_fit(float(value)):
                    raise ValueError
            except ValueError:
                return f"{where}: coordinate {name}={value!r} is not a number in range"
    return f"{path}: malformed recording"


def _coordinates_fit(values):
    """Whether coordinates are numbers that fit the int32 fields (fractions are truncated)."""
    return np.abs(values) < COORDINATE_LIMIT  # False for NaN as well


def _looks_like_milliseconds(t: np.ndarray) -> bool:
    gaps = np.diff(t)
    gaps = gaps[gaps > 0]
    return gaps.size > 0 and float(np.median(gaps)) >= 0.5


def write_recording(path: str | os.PathLike, events: np.ndarray) -> None:
    """Write events in the project's format (seconds); ``.gz`` names are compressed.

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
    with atomic_open(path, "wb") as f:
        f.write(payload)
