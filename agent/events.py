"""The event vocabulary shared by capture, recordings and the block cutter.

An event is ``(t, button, state, x, y)``: ``t`` in seconds, ``button`` and ``state`` as small
integer codes so that a stream of events is one compact numpy structured array rather than a
list of Python objects (the ring buffer and the cutter never allocate per event).
"""

from __future__ import annotations

import numpy as np

#: Button names in code order. ``Other`` collects extra buttons (Balabit's ``XButton``,
#: SapiMouse's ``Other``, pynput's ``x1``/``x2``): they carry coordinates like any press.
BUTTONS = ("NoButton", "Left", "Right", "Middle", "Scroll", "Other")
#: State names in code order. ``Up``/``Down`` are wheel directions, as in Balabit.
STATE_NAMES = ("Move", "Drag", "Pressed", "Released", "Up", "Down")

NO_BUTTON, LEFT, RIGHT, MIDDLE, SCROLL, OTHER = range(len(BUTTONS))
MOVE, DRAG, PRESSED, RELEASED, UP, DOWN = range(len(STATE_NAMES))

BUTTON_CODES = {name: code for code, name in enumerate(BUTTONS)}
BUTTON_CODES.update({"XButton": OTHER, "X1": OTHER, "X2": OTHER})
STATE_CODES = {name: code for code, name in enumerate(STATE_NAMES)}

#: One event per row. float64 time: a monotonic clock after days of uptime still needs
#: sub-millisecond resolution, which float32 cannot give.
EVENT_DTYPE = np.dtype([("t", "<f8"), ("button", "u1"), ("state", "u1"), ("x", "<i4"), ("y", "<i4")])


def make_events(rows) -> np.ndarray:
    """Build an event array from ``(t, button, state, x, y)`` rows; names or codes accepted."""
    rows = list(rows)
    out = np.zeros(len(rows), dtype=EVENT_DTYPE)
    for i, (t, button, state, x, y) in enumerate(rows):
        out[i] = (
            t,
            BUTTON_CODES[button] if isinstance(button, str) else button,
            STATE_CODES[state] if isinstance(state, str) else state,
            x,
            y,
        )
    return out


def is_scroll(events: np.ndarray) -> np.ndarray:
    """Mask of wheel events, which carry no movement of their own."""
    return (events["button"] == SCROLL) | (events["state"] == UP) | (events["state"] == DOWN)
