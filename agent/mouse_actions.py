"""Mouse actions (Shen et al.): raw events become clicks, movements, drags and silences.

An *action* is one thing the user did with the mouse. Wheel events are ignored (the block
cutter drops them too). The thresholds are the :class:`ActionSpec` fields:

* a *stroke* is a run of pointer motion (``Move``/``Drag`` events with no button held) with no
  pause longer than ``stop`` seconds inside it;
* a *click* is a press and its release less than ``drag_min`` px apart (Balabit and SapiMouse
  log a 1-px ``Drag`` inside most clicks, so a few pixels of travel are still a click);
  a press-release farther apart is a *drag*;
* kinds of action (``KINDS``):

  - ``SC`` single click: a click not preceded by a stroke ending within ``stop`` s of the press;
  - ``DC`` double click: a second click pressed within ``double_click`` s of the first one's
    release and within ``drag_min`` px of it (motion jitter between the two is absorbed);
  - ``MM`` common movement: a stroke not ended by a press within ``stop`` s;
  - ``PC`` point-and-click: a stroke followed within ``stop`` s by a (single) click; a stroke
    followed by a double click is emitted as ``MM`` then ``DC``;
  - ``DD`` drag-and-drop: press, motion with the button held, release ``>= drag_min`` px away;
    the stroke that brought the pointer there is its own ``MM``;
  - ``SI`` silence: no event for more than ``silence`` s while no button is held. Silences
    separate the *sequences* of the sequence database.

Each action records when it started and ended, where it ended (the click position for clicks),
its path length, the straight distance covered, how long the pointer moved and how long the
button was held. The screen areas of the 3x3 grid are assigned later (``agent.pattern_features``),
from screen bounds kept in the model's manifest: this project's capture records no screen
size, application or window, so Shen et al.'s application type and window position are not
available here.

:class:`ActionSegmenter` is streaming (push chunks, ``flush()`` at the end of a recording);
an action is emitted once the events after it decide it (the press that turns a stroke into
a point-and-click, the time that rules out a double click). Motion runs are summarised with
numpy; Python only walks the few events that change state (presses, releases, pauses).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from agent.errors import MouseguardError
from agent.events import PRESSED, RELEASED, is_scroll

KINDS = ("SC", "DC", "MM", "PC", "DD", "SI")
SC, DC, MM, PC, DD, SI = range(len(KINDS))

ACTION_DTYPE = np.dtype([
    ("kind", "u1"), ("t0", "<f8"), ("t1", "<f8"), ("x", "<f8"), ("y", "<f8"),
    ("path", "<f8"), ("disp", "<f8"), ("move_time", "<f8"), ("click_time", "<f8"),
])


class ActionSpecError(MouseguardError, ValueError):
    """Action thresholds the segmenter cannot honour."""


@dataclasses.dataclass(frozen=True)
class ActionSpec:
    stop: float = 0.5
    silence: float = 2.0
    double_click: float = 0.5
    drag_min: float = 8.0

    def __post_init__(self):
        if not (0 < self.stop <= self.silence and self.double_click > 0 and self.drag_min >= 0):
            raise ActionSpecError("invalid action spec: need 0 < stop <= silence, double_click > 0, drag_min >= 0")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class _Stroke:
    t0: float
    t1: float
    x0: float
    y0: float
    x1: float
    y1: float
    path: float


def _runs(t, x, y, motion, breaks_before):
    """Maximal runs of motion events, split where ``breaks_before`` is set; summarised."""
    idx = np.flatnonzero(motion)
    if len(idx) == 0:
        return []
    new = np.ones(len(idx), bool)
    new[1:] = (np.diff(idx) > 1) | breaks_before[idx[1:]]
    starts = np.flatnonzero(new)
    ends = np.append(starts[1:], len(idx)) - 1
    step = np.zeros(len(idx))
    step[1:] = np.hypot(np.diff(x[idx]), np.diff(y[idx]))
    step[new] = 0.0
    c = np.cumsum(step)
    path = c[ends] - c[starts] + step[starts]
    a, b = idx[starts], idx[ends]
    return list(zip(a.tolist(), b.tolist(), path.tolist()))


class ActionSegmenter:
    """Streaming events -> actions (``ACTION_DTYPE`` rows, silences included)."""

    def __init__(self, spec: ActionSpec = ActionSpec()):
        self.spec = spec
        self._reset()

    def _reset(self):
        self._last_t = None          # time of the last event seen
        self._stroke = None          # open stroke (extendable while pauses stay <= stop)
        self._held = None            # button down: dict(t, x, y, path, px, py, double)
        self._click = None           # click waiting for a possible second click
        self._out: list[tuple] = []

    # -- emitting ---------------------------------------------------------------------------
    def _emit(self, kind, t0, t1, x, y, path=0.0, disp=0.0, move_time=0.0, click_time=0.0):
        self._out.append((kind, t0, t1, x, y, path, disp, move_time, click_time))

    def _emit_stroke(self, s: _Stroke):
        self._emit(MM, s.t0, s.t1, s.x1, s.y1, s.path, float(np.hypot(s.x1 - s.x0, s.y1 - s.y0)), s.t1 - s.t0)

    def _emit_click(self, c: dict):
        s = c["stroke"]
        if s is None:
            self._emit(SC, c["t"], c["t_rel"], c["x"], c["y"], click_time=c["t_rel"] - c["t"])
        else:
            self._emit(PC, s.t0, c["t_rel"], c["x"], c["y"], s.path, float(np.hypot(c["x"] - s.x0, c["y"] - s.y0)),
                       s.t1 - s.t0, c["t_rel"] - c["t"])

    def _close_stroke(self):
        if self._stroke is not None:
            self._emit_stroke(self._stroke)
            self._stroke = None

    def _close_click(self):
        if self._click is not None:
            self._emit_click(self._click)
            self._click = None

    # -- the state machine --------------------------------------------------------------------
    def _gap(self, t0: float, x: float, y: float):
        """Time passes until ``t0``: close what it decides (stroke end, no double click, silence)."""
        if self._last_t is None:
            return
        gap = t0 - self._last_t
        if self._click is not None and t0 - self._click["t_rel"] > self.spec.double_click:
            self._close_click()
        if gap > self.spec.stop and self._held is None:
            self._close_click()
            self._close_stroke()
        if (gap > self.spec.silence or gap < 0) and self._held is None:
            self._emit(SI, self._last_t, t0, x, y)

    def _motion(self, t0, t1, x0, y0, x1, y1, path):
        if self._held is not None:
            h = self._held
            h["path"] += float(np.hypot(x0 - h["px"], y0 - h["py"])) + path
            h["px"], h["py"] = x1, y1
        elif self._stroke is not None:
            s = self._stroke
            s.path += float(np.hypot(x0 - s.x1, y0 - s.y1)) + path
            s.t1, s.x1, s.y1 = t1, x1, y1
        else:
            self._stroke = _Stroke(t0, t1, x0, y0, x1, y1, path)
        self._last_t = t1

    def _press(self, t, x, y):
        c = self._click
        if self._held is not None:  # a press without a release: the first press is lost
            self._held = None
        if c is not None and t - c["t_rel"] <= self.spec.double_click and \
                np.hypot(x - c["x"], y - c["y"]) <= self.spec.drag_min:
            self._stroke = None  # jitter between the two clicks belongs to the double click
            self._held = dict(t=t, x=x, y=y, path=0.0, px=x, py=y, first=c)
            self._click = None
        else:
            self._close_click()
            stroke, self._stroke = self._stroke, None
            self._held = dict(t=t, x=x, y=y, path=0.0, px=x, py=y, first=None, stroke=stroke)
        self._last_t = t

    def _release(self, t, x, y):
        h, self._held = self._held, None
        self._last_t = t
        if h is None:
            return  # a release without a press (the press came before the recording)
        path = h["path"] + float(np.hypot(x - h["px"], y - h["py"]))
        disp = float(np.hypot(x - h["x"], y - h["y"]))
        first = h["first"]
        if disp >= self.spec.drag_min:
            if first is not None:
                self._emit_click(first)
            elif h["stroke"] is not None:
                self._emit_stroke(h["stroke"])
            self._emit(DD, h["t"], t, x, y, path, disp, t - h["t"], t - h["t"])
        elif first is not None:
            if first["stroke"] is not None:
                self._emit_stroke(first["stroke"])
            self._emit(DC, first["t"], t, first["x"], first["y"],
                       click_time=0.5 * ((first["t_rel"] - first["t"]) + (t - h["t"])))
        else:
            self._click = dict(t=h["t"], t_rel=t, x=h["x"], y=h["y"], stroke=h["stroke"])

    # -- the contract ---------------------------------------------------------------------------
    def push(self, events: np.ndarray) -> np.ndarray:
        """Feed events in time order; return the actions they complete."""
        events = events[~is_scroll(events)]
        if len(events):
            t = events["t"].astype(np.float64)
            x = events["x"].astype(np.float64)
            y = events["y"].astype(np.float64)
            state = events["state"]
            button_event = (state == PRESSED) | (state == RELEASED)
            prev_t = np.concatenate(([self._last_t if self._last_t is not None else t[0]], t[:-1]))
            gap = t - prev_t
            pause = (gap > self.spec.stop) | (gap < 0)
            runs = _runs(t, x, y, ~button_event, pause)
            # Walk runs and button events in order: both are few compared with events.
            items = sorted([(a, 0, b, p) for a, b, p in runs] +
                           [(int(i), 1, int(i), 0.0) for i in np.flatnonzero(button_event)])
            for a, is_button, b, path in items:
                self._gap(t[a], x[a], y[a])
                if not is_button:
                    self._motion(t[a], t[b], x[a], y[a], x[b], y[b], path)
                elif state[a] == PRESSED:
                    self._press(t[a], x[a], y[a])
                else:
                    self._release(t[a], x[a], y[a])
        return self._take()

    def flush(self) -> np.ndarray:
        """End of a recording: close what is open (a button still held is dropped)."""
        self._close_click()
        if self._held is not None and self._held.get("stroke") is not None:
            self._emit_stroke(self._held["stroke"])
        self._close_stroke()
        out = self._take()
        self._reset()
        return out

    def _take(self) -> np.ndarray:
        out = np.array(self._out, dtype=ACTION_DTYPE) if self._out else np.zeros(0, ACTION_DTYPE)
        self._out = []
        return out


def segment_actions(events: np.ndarray, spec: ActionSpec = ActionSpec()) -> np.ndarray:
    """All actions of one recording: the streaming segmenter fed everything, then flushed."""
    seg = ActionSegmenter(spec)
    return np.concatenate((seg.push(events), seg.flush()))
