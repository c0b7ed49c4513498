"""Hand-made segment features (Youssef & Mahdi, 2025): 30 numbers per 50 events.

The events of a recording are cut, in order, into consecutive non-overlapping *segments* of
``size`` events (50 in the paper); the last partial segment is dropped. Every event counts,
clicks and wheel events included: the button and state features describe them. A clock that
runs backwards (a new recording) starts a new segment, so no segment mixes two recordings.

The paper names its 30 features but gives no formulas; these are the definitions used here.
In a segment of ``n`` events ``i = 0 … n-1`` (positions ``x, y`` in px, time ``t`` in s):

* intervals ``i = 1 … n-1``: ``dx, dy`` (px), ``dt`` (s, negative read as 0),
  ``dt_eff = dt_floor if dt <= dt_min else dt`` (zero gaps come from event batching, as in the
  block cutter), step length ``ds = hypot(dx, dy)``, speed ``v = ds / dt_eff`` (px/s);
* ``x_mean, x_std, y_mean, y_std``: of the ``n`` positions (population std);
* ``dx_mean, dy_mean``: mean step over the ``n-1`` intervals;
* ``v_mean, v_std, v_max``: of the ``n-1`` speeds;
* ``a_mean, a_std``: acceleration ``(v_i - v_{i-1}) / dt_eff_i`` over intervals ``2 … n-1``;
* ``curv_mean, curv_std``: turning per pixel ``|Δθ| / max(ds, 1)`` where ``θ = atan2(dy, dx)``
  of consecutive *moving* steps (ds > 0), ``Δθ`` wrapped to ``(-π, π]`` and ``ds`` the length
  of the later step; 0 where either step does not move; over intervals ``2 … n-1``;
* ``dir_changes``: number of those turns sharper than ``turn_angle`` (rad);
* ``pause_mean, pause_std``: per interval the pause time ``dt if dt >= pause_min else 0``;
* ``click_interval_mean, click_interval_std``: times between consecutive presses
  (state ``Pressed``) inside the segment; both 0 with fewer than two presses;
* ``clicks_mean``: fraction of the ``n`` events that are presses;
* ``button_mean, state_mean``: mean of the integer codes of ``agent.events``;
* ``button_changes, state_changes``: number of intervals where the code changes;
* with ``c_i`` the number of presses among events ``0 … i`` and ``L_i`` the path length from
  event 0 to event ``i`` (cumulative ``ds``), over intervals ``i = 1 … n-1``:
  ``mpc_mean, mpc_std``: movement per click ``L_i / (c_i + 1)``;
  ``move_ratio_mean, move_ratio_std``: straightness so far, ``|p_i - p_0| / L_i`` (1 when
  ``L_i = 0``);
  ``vpc_mean, vpc_std``: velocity per click ``v_i / (c_i + 1)``;
* ``path_length``: total path ``L_{n-1}``.

:func:`segment_features` computes all segments at once (numpy, one pass over a
``(segments, size)`` array); :class:`SegmentExtractor` is the streaming form the agent runs,
built on the same function, so both give identical rows.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from agent.errors import MouseguardError
from agent.events import PRESSED

FEATURE_NAMES = (
    "x_mean", "x_std", "y_mean", "y_std", "dx_mean", "dy_mean",
    "v_mean", "v_std", "v_max", "a_mean", "a_std",
    "curv_mean", "curv_std", "dir_changes", "pause_mean", "pause_std",
    "click_interval_mean", "click_interval_std", "clicks_mean",
    "button_mean", "state_mean", "button_changes", "state_changes",
    "mpc_mean", "mpc_std", "move_ratio_mean", "move_ratio_std", "vpc_mean", "vpc_std", "path_length",
)
KIND = "segment-features"


class SegmentSpecError(MouseguardError, ValueError):
    """Segment parameters the extractor cannot honour."""


@dataclasses.dataclass(frozen=True)
class SegmentSpec:
    """Everything that decides the feature rows a stream of events yields."""

    size: int = 50
    dt_min: float = 0.01
    dt_floor: float = 0.016
    pause_min: float = 0.1
    turn_angle: float = math.pi / 4

    def __post_init__(self):
        if not (isinstance(self.size, int) and self.size >= 3):
            raise SegmentSpecError(f"segment size must be an integer >= 3, not {self.size!r}")
        if not (self.dt_floor > 0 and self.dt_min >= 0 and self.pause_min >= 0 and 0 < self.turn_angle < math.pi):
            raise SegmentSpecError("invalid segment spec: need dt_floor > 0, dt_min >= 0, pause_min >= 0, "
                                   "0 < turn_angle < pi")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "SegmentSpec":
        known = {f.name for f in dataclasses.fields(cls)}
        if set(d) - known:
            raise SegmentSpecError(f"invalid segment spec: unknown parameter(s) {', '.join(sorted(set(d) - known))}")
        return cls(**d)


def _ffill_index(mask: np.ndarray) -> np.ndarray:
    """Per row, the index of the latest True at or before each column (-1 if none)."""
    idx = np.where(mask, np.arange(mask.shape[1]), -1)
    return np.maximum.accumulate(idx, axis=1)


def _press_intervals(t: np.ndarray, press: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per segment, mean and std of the times between consecutive presses (0, 0 if < 2)."""
    n = press.shape[0]
    prev = _ffill_index(press)
    prev_before = np.concatenate((np.full((n, 1), -1), prev[:, :-1]), axis=1)  # latest press strictly before
    counted = press & (prev_before >= 0)
    gaps = t - t[np.arange(n)[:, None], np.maximum(prev_before, 0)]
    k = counted.sum(axis=1)
    g = np.where(counted, gaps, 0.0)
    mean = np.divide(g.sum(axis=1), k, out=np.zeros(n), where=k > 0)
    var = np.divide((np.where(counted, gaps - mean[:, None], 0.0) ** 2).sum(axis=1), k, out=np.zeros(n), where=k > 0)
    return mean, np.sqrt(var)


def segment_features(t, x, y, button, state, spec: SegmentSpec = SegmentSpec()) -> np.ndarray:
    """Features of segments given as ``(segments, size)`` arrays; returns ``(segments, 30)`` float32."""
    t = np.asarray(t, np.float64)
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    button, state = np.asarray(button, np.float64), np.asarray(state, np.float64)
    n = t.shape[0]
    if n == 0:
        return np.empty((0, len(FEATURE_NAMES)), np.float32)
    dx, dy = np.diff(x, axis=1), np.diff(y, axis=1)
    dt = np.maximum(np.diff(t, axis=1), 0.0)
    dt_eff = np.where(dt <= spec.dt_min, spec.dt_floor, dt)
    ds = np.hypot(dx, dy)
    v = ds / dt_eff
    a = np.diff(v, axis=1) / dt_eff[:, 1:]

    theta = np.arctan2(dy, dx)
    dtheta = np.abs((np.diff(theta, axis=1) + np.pi) % (2 * np.pi) - np.pi)  # wrapped, in [0, π]
    both_move = (ds[:, 1:] > 0) & (ds[:, :-1] > 0)
    turn = np.where(both_move, dtheta, 0.0)
    curv = turn / np.maximum(ds[:, 1:], 1.0)

    pause = np.where(dt >= spec.pause_min, dt, 0.0)
    press = state == PRESSED
    click_mean, click_std = _press_intervals(t, press)

    clicks_cum = np.cumsum(press, axis=1)[:, 1:]
    path = np.cumsum(ds, axis=1)
    mpc = path / (clicks_cum + 1)
    disp = np.hypot(x[:, 1:] - x[:, :1], y[:, 1:] - y[:, :1])
    move_ratio = np.divide(disp, path, out=np.ones_like(path), where=path > 0)
    vpc = v / (clicks_cum + 1)

    columns = [
        x.mean(1), x.std(1), y.mean(1), y.std(1), dx.mean(1), dy.mean(1),
        v.mean(1), v.std(1), v.max(1), a.mean(1), a.std(1),
        curv.mean(1), curv.std(1), (turn > spec.turn_angle).sum(1), pause.mean(1), pause.std(1),
        click_mean, click_std, press.mean(1),
        button.mean(1), state.mean(1), (np.diff(button, axis=1) != 0).sum(1), (np.diff(state, axis=1) != 0).sum(1),
        mpc.mean(1), mpc.std(1), move_ratio.mean(1), move_ratio.std(1), vpc.mean(1), vpc.std(1), path[:, -1],
    ]
    return np.column_stack(columns).astype(np.float32)


class SegmentExtractor:
    """Streaming segment features with the block cutter's contract.

    ``push(events) -> (features (n, 30) float32, end_times)``; between calls it keeps at most
    ``size - 1`` events. ``flush()`` drops the partial segment (end of a recording).
    """

    def __init__(self, spec: SegmentSpec = SegmentSpec()):
        self.spec = spec
        self._pending = None

    def push(self, events: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self._pending is not None and len(self._pending):
            events = np.concatenate((self._pending, events))
        if len(events) == 0:
            self._pending = events
            return np.empty((0, len(FEATURE_NAMES)), np.float32), np.empty(0)
        # A clock running backwards is a new recording: the partial segment before it is dropped.
        back = np.flatnonzero(np.diff(events["t"]) < 0)
        pieces = np.split(events, back + 1) if len(back) else [events]
        feats, ends = [], []
        for piece in pieces[:-1]:
            f, e = self._complete(piece)
            feats.append(f)
            ends.append(e)
        last = pieces[-1]
        full = len(last) // self.spec.size * self.spec.size
        f, e = self._complete(last[:full])
        feats.append(f)
        ends.append(e)
        self._pending = last[full:].copy()
        return np.concatenate(feats), np.concatenate(ends)

    def flush(self) -> tuple[np.ndarray, np.ndarray]:
        self._pending = None
        return np.empty((0, len(FEATURE_NAMES)), np.float32), np.empty(0)

    def _complete(self, events: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        size = self.spec.size
        m = len(events) // size
        seg = events[: m * size].reshape(m, size)
        feats = segment_features(seg["t"], seg["x"], seg["y"], seg["button"], seg["state"], self.spec)
        return feats, seg["t"][:, -1].astype(np.float64) if m else np.empty(0)


def extractor_for_model(model, short_files: bool = False) -> SegmentExtractor:
    """The ``agent.model_inputs`` factory of kind ``segment-features``.

    ``short_files`` changes nothing: a 50-event segment is short, and a partial one has no
    features the model was trained on.
    """
    from agent.model_dir import ModelError

    try:
        spec = SegmentSpec.from_dict(model.manifest["onnx"]["input"]["params"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"{model.path}: manifest's segment parameters are unusable ({exc})") from None
    return SegmentExtractor(spec)


def extract_segments(events: np.ndarray, spec: SegmentSpec = SegmentSpec()) -> tuple[np.ndarray, np.ndarray]:
    """All segment features of one recording: the streaming extractor fed everything."""
    extractor = SegmentExtractor(spec)
    f, t = extractor.push(events)
    return f, t
