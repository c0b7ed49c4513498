"""The block cutter: the one place where events become model input.

Training, offline scoring and the live agent all cut blocks here, with the parameters of a
:class:`BlockSpec` that travels inside every model's manifest, so the agent cuts exactly the
blocks its model was trained on.

How a block is made (seed paper: Fejér & Antal):

1. Wheel events are dropped: they carry no movement.
2. The stream splits into sequences wherever the clock runs backwards (a new recording, a
   clock reset) and, with ``pauses="split"`` (the seed paper), wherever it jumps by more than
   ``gap`` seconds (an idle user). With ``pauses="keep"`` a pause stays in the stream as one
   sample whose ``logdt`` says how long it was: when and how long someone stops is part of how
   they use the mouse.
3. Each consecutive pair of events inside a sequence gives one sample of ``features``, e.g.
   ``(dx/dt, dy/dt)``; see :data:`FEATURES`. ``dt`` at or below ``dt_min`` is read as
   ``dt_floor``: zero gaps are common (Balabit: 14.5 %) and come from event batching, not
   from infinite speed.
4. Samples are cut into blocks of ``size``. What is left of a sequence (fewer than ``size``
   samples) is dropped, or with ``remainder="concatenate"`` appended to a carry that is cut
   into blocks of its own as it fills up.

:class:`BlockCutter` does this incrementally on chunks of any size; :func:`cut_blocks` is that
same cutter fed everything at once and flushed, so batch and streaming cannot disagree.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from agent.errors import MouseguardError
from agent.events import DRAG, PRESSED, is_scroll

#: Per-sample channels a spec can ask for (velocities in px/s times ``scale``, so px/ms by default):
#:
#: * ``vx``, ``vy``: velocity (the seed paper's two channels);
#: * ``lvx``, ``lvy``: the same, sign kept and magnitude compressed, ``sign(v) * log1p(|v|)``,
#:   so that a flick does not drown a block's slow approach to a target;
#: * ``dt``: the time step in units of ``dt_floor``; ``logdt``: its natural log, which keeps a
#:   click's hold time and a minute's pause on one usable scale;
#: * ``held``: 1 while a button is down (the step starts at a press or inside a drag), else 0 —
#:   the CNN then sees clicks, their durations and drags, not only pointer motion.
FEATURES = ("vx", "vy", "lvx", "lvy", "dt", "logdt", "held")
PAUSES = ("split", "keep")
REMAINDERS = ("drop", "concatenate")
NORMALISATIONS = ("none", "zscore")


class BlockSpecError(MouseguardError, ValueError):
    """A block spec with parameters the cutter cannot honour."""


#: The longest block a spec may ask for: 32 times the default's 128 events, several minutes of
#: movement; beyond it is a damaged manifest, and a block must fit in memory a thousand times.
MAX_SIZE = 4096


def _finite(value) -> bool:
    """A real number (a spec's string or bool would otherwise fail as a Python comparison)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclasses.dataclass(frozen=True)
class BlockSpec:
    """Everything that decides which blocks a stream of events yields."""

    size: int = 128
    #: Seconds without an event that make a pause (an idle user).
    gap: float = 2.0
    #: ``split``: a pause ends the sequence and yields no sample (seed paper); ``keep``: it is a sample.
    pauses: str = "split"
    dt_min: float = 0.01
    dt_floor: float = 0.016
    features: tuple[str, ...] = ("vx", "vy")
    remainder: str = "drop"
    #: Per block and channel: ``zscore`` subtracts the mean and divides by the std (+ 1e-6).
    normalisation: str = "none"
    #: Multiplies the velocities before normalisation. The default 0.001 gives them in
    #: px/ms, near unit scale: in px/s (hundreds to thousands) the network's ReLUs die early
    #: in training and transfer learning collapses to a constant output.
    scale: float = 0.001
    #: Absolute bound on every (scaled) feature; ``None`` keeps them unbounded. Pointer
    #: warps (Balabit's 65535 sentinels, monitor jumps) otherwise dominate a block.
    clip: float | None = None

    def __post_init__(self):
        object.__setattr__(self, "features", tuple(self.features))
        problems = []
        if not (isinstance(self.size, int) and not isinstance(self.size, bool) and 2 <= self.size <= MAX_SIZE):
            problems.append(f"size must be an integer from 2 to {MAX_SIZE}, not {self.size!r}")
        if not (_finite(self.gap) and self.gap > 0):
            problems.append(f"gap must be > 0 s, not {self.gap!r}")
        if not (_finite(self.dt_min) and self.dt_min >= 0):
            problems.append(f"dt_min must be >= 0 s, not {self.dt_min!r}")
        if not (_finite(self.dt_floor) and self.dt_floor > 0):
            problems.append(f"dt_floor must be > 0 s, not {self.dt_floor!r}")
        if not self.features or any(f not in FEATURES for f in self.features):
            problems.append(f"features must be a non-empty list from {FEATURES}, not {self.features!r}")
        if self.pauses not in PAUSES:
            problems.append(f"pauses must be one of {PAUSES}, not {self.pauses!r}")
        if self.remainder not in REMAINDERS:
            problems.append(f"remainder must be one of {REMAINDERS}, not {self.remainder!r}")
        if self.normalisation not in NORMALISATIONS:
            problems.append(f"normalisation must be one of {NORMALISATIONS}, not {self.normalisation!r}")
        if not (_finite(self.scale) and self.scale > 0):
            problems.append(f"scale must be a positive number, not {self.scale!r}")
        if self.clip is not None and not (_finite(self.clip) and self.clip > 0):
            problems.append(f"clip must be > 0 or null, not {self.clip!r}")
        if problems:
            raise BlockSpecError("invalid block spec: " + "; ".join(problems))

    @property
    def channels(self) -> int:
        return len(self.features)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["features"] = list(self.features)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "BlockSpec":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise BlockSpecError(f"invalid block spec: unknown parameter(s) {', '.join(sorted(unknown))}")
        try:
            return cls(**d)
        except TypeError as exc:
            raise BlockSpecError(f"invalid block spec: {exc}") from None


#: The seed paper's preprocessing, kept selectable as the baseline (and used by the paper protocol).
SEED_SPEC = BlockSpec()

#: mouseguard's default: remainders kept (Balabit's stream is mostly short movements), log-compressed
#: velocities, pauses on a log-time channel, a held-button channel, pointer warps clipped — each
#: measured against the seed spec in README, Accuracy, "What changed in the default, and why".
DEFAULT_SPEC = BlockSpec(remainder="concatenate", features=("lvx", "lvy", "logdt", "held"),
                         pauses="keep", clip=30.0)


class BlockCutter:
    """Incremental block cutter: push chunks of events, get the blocks they complete.

    Blocks come out channels-first, ``(n, channels, size)`` float32, the model's input layout,
    with the time of each block's last event. Between calls the cutter keeps only the last
    event and at most two partial blocks, so memory stays constant however long it runs.
    """

    def __init__(self, spec: BlockSpec):
        self.spec = spec
        width = spec.channels + 1  # the last column carries the sample's event time
        self._last: tuple[float, float, float, int] | None = None  # t, x, y, state
        self._seq = np.empty((0, width))
        self._carry = np.empty((0, width))

    def push(self, events: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Feed events in time order; return ``(blocks, end_times)`` completed by them."""
        events = events[~is_scroll(events)]
        out: list[np.ndarray] = []
        if len(events) == 0:
            return self._finish(out)
        t = events["t"].astype(np.float64)
        x = events["x"].astype(np.float64)
        y = events["y"].astype(np.float64)
        state = events["state"]
        if self._last is not None:
            t = np.concatenate(([self._last[0]], t))
            x = np.concatenate(([self._last[1]], x))
            y = np.concatenate(([self._last[2]], y))
            state = np.concatenate(([self._last[3]], state))
        self._last = (t[-1], x[-1], y[-1], state[-1])
        if len(t) < 2:
            return self._finish(out)
        dt = np.diff(t)
        samples = np.column_stack(self._features(np.diff(x), np.diff(y), dt, state[:-1]) + [t[1:]])
        # A pair across a clock running backwards (or, when pauses split, across a pause)
        # yields no sample: it ends the sequence before it.
        ends = dt < 0
        if self.spec.pauses == "split":
            ends |= dt > self.spec.gap
        breaks = np.flatnonzero(ends)
        start = 0
        for b in breaks:
            self._extend_sequence(samples[start:b], out)
            self._end_sequence(out)
            start = b + 1
        self._extend_sequence(samples[start:], out)
        return self._finish(out)

    def flush(self) -> tuple[np.ndarray, np.ndarray]:
        """End the current sequence (end of a recording); the next push starts afresh."""
        out: list[np.ndarray] = []
        self._end_sequence(out)
        self._last = None
        return self._finish(out)

    def _features(self, dx, dy, dt, state_before) -> list[np.ndarray]:
        spec = self.spec
        dt = np.where(dt <= spec.dt_min, spec.dt_floor, dt)
        # dt is given in units of dt_floor (about 1 at a 60 Hz event rate), velocities in px/s
        # times ``scale``: both near unit size, which the network needs.
        columns = {"vx": lambda: dx / dt * spec.scale, "vy": lambda: dy / dt * spec.scale,
                   "lvx": lambda: np.sign(dx) * np.log1p(np.abs(dx) / dt * spec.scale),
                   "lvy": lambda: np.sign(dy) * np.log1p(np.abs(dy) / dt * spec.scale),
                   "dt": lambda: dt / spec.dt_floor, "logdt": lambda: np.log(dt / spec.dt_floor),
                   "held": lambda: ((state_before == PRESSED) | (state_before == DRAG)).astype(np.float64)}
        feats = [columns[name]() for name in spec.features]
        if spec.clip is not None:
            feats = [np.clip(f, -spec.clip, spec.clip) for f in feats]
        return feats

    def _extend_sequence(self, samples: np.ndarray, out: list) -> None:
        seq = np.concatenate((self._seq, samples)) if len(self._seq) else samples
        full = len(seq) // self.spec.size * self.spec.size
        if full:
            out.append(seq[:full])
        self._seq = seq[full:].copy()

    def _end_sequence(self, out: list) -> None:
        if self.spec.remainder == "concatenate" and len(self._seq):
            carry = np.concatenate((self._carry, self._seq))
            full = len(carry) // self.spec.size * self.spec.size
            if full:
                out.append(carry[:full])
            self._carry = carry[full:].copy()
        self._seq = self._seq[:0]

    def _finish(self, out: list) -> tuple[np.ndarray, np.ndarray]:
        size, channels = self.spec.size, self.spec.channels
        if not out:
            return np.empty((0, channels, size), np.float32), np.empty(0)
        rows = np.concatenate(out).reshape(-1, size, channels + 1)
        blocks = rows[:, :, :channels].transpose(0, 2, 1)
        if self.spec.normalisation == "zscore":
            blocks = (blocks - blocks.mean(axis=2, keepdims=True)) / (blocks.std(axis=2, keepdims=True) + 1e-6)
        return np.ascontiguousarray(blocks, dtype=np.float32), rows[:, -1, -1].copy()


class FileCutter(BlockCutter):
    """The cutter for scoring a finished file (``mouseguard score``) rather than a live stream.

    Remainders are concatenated whatever the spec says, and the movement left at the end is
    scored too, repeated to fill one block (so that the block ends on the file's last sample):
    all of it when the file holds no whole block, else when it is at least half a block. Short
    files are common — many of Balabit's test sessions are — and "no score" is no answer. Pieces
    of held-out Balabit sessions scored this way (10 users' TRANSFER2 models, 2026-11-22) gave
    AUC 0.77 from 10 samples, 0.85 from 40 and 0.87 from 80: about as good as a whole block
    (0.87) from half of one.
    """

    def __init__(self, spec: BlockSpec):
        super().__init__(dataclasses.replace(spec, remainder="concatenate"))
        self._cut = 0

    def push(self, events: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        blocks, times = super().push(events)
        self._cut += len(blocks)
        return blocks, times

    def flush(self) -> tuple[np.ndarray, np.ndarray]:
        out: list[np.ndarray] = []
        self._end_sequence(out)
        tail, size = self._carry, self.spec.size
        if len(tail) and (len(tail) * 2 >= size or (self._cut == 0 and not out)):
            out.append(np.resize(tail[::-1], (size, tail.shape[1]))[::-1])
            self._carry = tail[:0]
        self._last, self._cut = None, 0
        return self._finish(out)


def feed_all(extractor, events: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A whole recording through a streaming extractor: everything pushed, then flushed."""
    x, t = extractor.push(events)
    x2, t2 = extractor.flush()
    return np.concatenate((x, x2)), np.concatenate((t, t2))


def cut_blocks(events: np.ndarray, spec: BlockSpec) -> tuple[np.ndarray, np.ndarray]:
    """All blocks of one recording, as the live agent cuts them (a partial block is not scored)."""
    return feed_all(BlockCutter(spec), events)


def cut_file(events: np.ndarray, spec: BlockSpec) -> tuple[np.ndarray, np.ndarray]:
    """All blocks of a finished file, as :class:`FileCutter` cuts them for ``mouseguard score``."""
    return feed_all(FileCutter(spec), events)
