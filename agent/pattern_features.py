"""Frequent behaviour patterns (Shen et al.): per window of actions, how the user's patterns went.

Each action (``agent.mouse_actions``) becomes an *operation*: its kind (SC, DC, MM, PC, DD)
and the cell of a 3x3 grid of the screen where it ended, ``op = kind * 9 + row * 3 + col``.
The grid spans the enrolled user's screen bounds, taken from their training data (1st–99th
percentile of action positions) and kept in the manifest: the capture records no screen size.

A *sequence* is a run of operations between two silences, cut into chunks of at most
``seq_max`` operations (a browser game like SapiMouse's has no silence for minutes, and in an
unbounded sequence every short pattern occurs, which says nothing). The user's frequent
patterns are mined from such chunks at enrolment (``training.families.patterns.prefixspan``) and listed in the
manifest.

The model's input is one row per *window*: every ``stride`` actions, the last ``window``
non-silence actions, split into chunks the same way. In each chunk each pattern is matched
greedily, leftmost first, without overlap (gaps allowed, as in PrefixSpan). Per pattern the
row holds 5 numbers (``PER_PATTERN``):

* ``rate``: occurrences per action of the window;
* ``log_duration``: mean over occurrences of ``log1p`` of the time from the first matched
  action's start to the last one's end (s);
* ``log_speed``: mean of ``log1p(Σ path / Σ move time)`` of the matched actions (px/s);
  0 when they hold no movement;
* ``click_time``: mean press-to-release time of the matched clicking actions (s);
* ``straightness``: mean of ``Σ straight distance / Σ path`` of the matched actions.

A value with no occurrence (or nothing to measure) is NaN; the model's imputer fills it.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from agent.errors import MouseguardError
from agent.mouse_actions import ACTION_DTYPE, SI, ActionSegmenter, ActionSpec

KIND = "action-patterns"
PER_PATTERN = ("rate", "log_duration", "log_speed", "click_time", "straightness")
GRID = 3


class PatternSpecError(MouseguardError, ValueError):
    """Pattern-feature parameters the extractor cannot honour."""


@dataclasses.dataclass(frozen=True)
class PatternSpec:
    patterns: tuple[tuple[int, ...], ...]
    #: Screen bounds ``(x0, x1, y0, y1)`` of the 3x3 grid.
    bounds: tuple[float, float, float, float]
    window: int = 16
    stride: int = 4
    seq_max: int = 8
    actions: ActionSpec = ActionSpec()

    def __post_init__(self):
        object.__setattr__(self, "patterns", tuple(tuple(int(o) for o in p) for p in self.patterns))
        object.__setattr__(self, "bounds", tuple(float(b) for b in self.bounds))
        if isinstance(self.actions, dict):
            object.__setattr__(self, "actions", ActionSpec(**self.actions))
        x0, x1, y0, y1 = self.bounds
        if not self.patterns or any(len(p) == 0 for p in self.patterns):
            raise PatternSpecError("pattern spec needs at least one non-empty pattern")
        if not (x1 > x0 and y1 > y0):
            raise PatternSpecError(f"pattern spec: screen bounds {self.bounds} are empty")
        if not (isinstance(self.window, int) and isinstance(self.stride, int) and isinstance(self.seq_max, int)
                and self.window >= 1 and 1 <= self.stride and self.seq_max >= 1):
            raise PatternSpecError("pattern spec: window, stride and seq_max must be positive integers")

    @property
    def width(self) -> int:
        return len(self.patterns) * len(PER_PATTERN)

    def to_dict(self) -> dict:
        return {"patterns": [list(p) for p in self.patterns], "bounds": list(self.bounds), "window": self.window,
                "stride": self.stride, "seq_max": self.seq_max, "actions": self.actions.to_dict()}

    @classmethod
    def from_dict(cls, d: dict) -> "PatternSpec":
        try:
            return cls(**d)
        except TypeError as exc:
            raise PatternSpecError(f"invalid pattern spec: {exc}") from None


def operations(actions: np.ndarray, bounds) -> np.ndarray:
    """Operation code of each action (silences get -1)."""
    x0, x1, y0, y1 = bounds
    col = np.clip(((actions["x"] - x0) / (x1 - x0) * GRID).astype(np.int64), 0, GRID - 1)
    row = np.clip(((actions["y"] - y0) / (y1 - y0) * GRID).astype(np.int64), 0, GRID - 1)
    ops = actions["kind"].astype(np.int64) * GRID * GRID + row * GRID + col
    return np.where(actions["kind"] == SI, -1, ops)


def chunks(ops: np.ndarray, seq_max: int) -> list[np.ndarray]:
    """Index arrays of the chunks: runs between silences (-1), cut every ``seq_max`` operations."""
    out = []
    run_bounds = np.flatnonzero(ops < 0)
    start = 0
    for end in list(run_bounds) + [len(ops)]:
        idx = np.arange(start, end)
        out += [idx[i:i + seq_max] for i in range(0, len(idx), seq_max)]
        start = end + 1
    return [c for c in out if len(c)]


def _match(ops: list[int], pattern: tuple[int, ...]) -> list[list[int]]:
    """Greedy leftmost non-overlapping embeddings of ``pattern`` in ``ops`` (positions)."""
    found, current, k = [], [], 0
    for pos, op in enumerate(ops):
        if op == pattern[k]:
            current.append(pos)
            k += 1
            if k == len(pattern):
                found.append(current)
                current, k = [], 0
    return found


def window_row(actions: np.ndarray, ops: np.ndarray, spec: PatternSpec) -> np.ndarray:
    """The feature row of one window (its actions and their operation codes, silences included)."""
    n_actions = int(np.sum(ops >= 0))
    per = len(PER_PATTERN)
    row = np.full(len(spec.patterns) * per, np.nan)
    sums = np.zeros((len(spec.patterns), per))
    counts = np.zeros((len(spec.patterns), per))
    for chunk in chunks(ops, spec.seq_max):
        chunk_ops = ops[chunk].tolist()
        for j, pattern in enumerate(spec.patterns):
            for occ in _match(chunk_ops, pattern):
                a = actions[chunk[occ]]
                move = a["move_time"].sum()
                path = a["path"].sum()
                clicking = a["click_time"] > 0
                values = (1.0, np.log1p(max(a["t1"][-1] - a["t0"][0], 0.0)),
                          np.log1p(path / move) if move > 0 else 0.0,
                          a["click_time"][clicking].mean() if clicking.any() else np.nan,
                          a["disp"].sum() / path if path > 0 else np.nan)
                for f, v in enumerate(values):
                    if not np.isnan(v):
                        sums[j, f] += v
                        counts[j, f] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        means = sums / counts
    means[:, 0] = sums[:, 0] / max(n_actions, 1)
    row[:] = means.reshape(-1)
    return row.astype(np.float32)


class PatternExtractor:
    """Streaming pattern rows with the block cutter's contract.

    ``push(events) -> (rows (n, patterns * 5) float32, end_times)``: a row every ``stride``
    actions once ``window`` actions are there; it keeps the last ``window`` actions only.
    ``flush()`` ends the recording: open actions are closed and a partial window is dropped;
    with ``short_files`` (scoring a file) a recording with fewer than ``window`` actions still
    gives one row of what it has.
    """

    def __init__(self, spec: PatternSpec, short_files: bool = False):
        self.spec = spec
        self.short_files = short_files
        self._segmenter = ActionSegmenter(spec.actions)
        self._reset_window()

    def _reset_window(self):
        self._actions = np.zeros(0, dtype=ACTION_DTYPE)
        self._dropped = 0    # real actions of this recording already dropped from the buffer
        self._rows_made = 0

    def push(self, events: np.ndarray):
        return self._feed(self._segmenter.push(events))

    def push_actions(self, actions: np.ndarray):
        """Feed actions segmented elsewhere (with ``spec.actions``): evaluation caches them."""
        return self._feed(actions)

    def flush(self):
        rows, ends = self._feed(self._segmenter.flush())
        if self.short_files and self._rows_made == 0 and len(rows) == 0 and np.any(self._actions["kind"] != SI):
            rows, ends = self._rows_for([len(self._actions)])
        self._reset_window()
        return rows, ends

    def _feed(self, new: np.ndarray):
        old = len(self._actions)
        acts = np.concatenate((self._actions, new))
        real = acts["kind"] != SI
        counts = np.cumsum(real) + self._dropped  # real actions so far, up to each position
        w, s = self.spec.window, self.spec.stride
        pos = np.flatnonzero(real[old:]) + old
        due = pos[(counts[pos] >= w) & ((counts[pos] - w) % s == 0)] + 1
        self._actions = acts
        rows, ends = self._rows_for(due.tolist())
        # keep only what a future window can reach: its last ``window`` real actions
        if len(acts) and counts[-1] - self._dropped > w:
            keep_from = int(np.searchsorted(counts, counts[-1] - w + 1))
            self._dropped = int(counts[keep_from - 1])
            self._actions = acts[keep_from:]
        return rows, ends

    def _rows_for(self, ends_at: list[int]):
        acts = self._actions
        real = np.flatnonzero(acts["kind"] != SI)
        rows, ends = [], []
        for end in ends_at:
            mine = real[real < end][-self.spec.window:]
            window = acts[mine[0]:end]
            rows.append(window_row(window, operations(window, self.spec.bounds), self.spec))
            ends.append(float(window["t1"][-1]))
            self._rows_made += 1
        if not rows:
            return np.empty((0, self.spec.width), np.float32), np.empty(0)
        return np.stack(rows), np.asarray(ends)


def extract_patterns(events: np.ndarray, spec: PatternSpec, short_files: bool = False):
    """All rows of one recording: the streaming extractor fed everything, then flushed."""
    ex = PatternExtractor(spec, short_files)
    r1, t1 = ex.push(events)
    r2, t2 = ex.flush()
    return np.concatenate((r1, r2)), np.concatenate((t1, t2))


def rows_from_actions(actions: np.ndarray, spec: PatternSpec, short_files: bool = False):
    """All rows of one recording's actions (as :func:`segment_actions` gives them)."""
    ex = PatternExtractor(spec, short_files)
    r1, t1 = ex.push_actions(actions)
    r2, t2 = ex.flush()
    return np.concatenate((r1, r2)), np.concatenate((t1, t2))


def extractor_for_model(model, short_files: bool = False) -> PatternExtractor:
    """The ``agent.model_inputs`` factory of kind ``action-patterns``."""
    from agent.model_dir import ModelError

    try:
        spec = PatternSpec.from_dict(model.manifest["onnx"]["input"]["params"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"{model.path}: manifest's pattern parameters are unusable ({exc})") from None
    return PatternExtractor(spec, short_files)
