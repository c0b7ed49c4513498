"""The background pool re-cast to the owner's set-up at enrolment.

The pool's people were recorded on other machines: a browser task at about 60 Hz (SapiMouse),
a remote-desktop client (Balabit). Someone enrolling at a 125 Hz desk differs from all of them
by the machine before the hand, so a model trained against the pool as it is learns the
machine, and passes anyone at the owner's own desk (README, Accuracy, "Someone at your desk").

Here every pool block is turned back into the movement it was cut from (the block features are
invertible: log-compressed velocity and log time step), and that movement is replayed at the
owner's event rate: every movement run is sampled afresh along its path, at intervals drawn from
the owner's own (a faster-polling mouse sees the same path more often, with its jitter), the
positions jittered by up to a pixel and rounded as a pointer reports them; pauses and clicks
keep their timing. The result is cut again by the agent's own cutter with the model's spec.

Enrolment trains against the pool as shipped *and* its re-cast (:func:`training.enrol.pool_impostors`):
the re-cast alone took away what tells people on other machines apart (SapiMouse's unseen
users: 5-block AUC 0.934 -> 0.897), both together kept it (0.940) and still locked more of the
impostor minutes at one kind of desk (18 -> 26 %). Matching the owner's speed scale as well
raised the desk's AUC but also Balabit's false locks. Every figure is in README, Accuracy,
"Someone at your desk" (docs/accuracy.md).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from agent.blocks import BlockSpec, cut_blocks
from agent.events import DRAG, EVENT_DTYPE, MOVE

#: Steps between movement events at most this long are movement; longer ones are a pause or a
#: click's hold, and keep their timing (a 10 Hz event rate is slower than any pointer reports).
MOVEMENT_STEP = 0.1
#: A step is split into at most this many: enough for a 60 Hz step seen at 1,000 Hz.
MAX_SPLIT = 16
#: Pixels of uniform jitter added to a re-sampled position before it is rounded. An
#: interpolated path is smoother than any pointer reports one; with ±1 px the share of steps
#: without movement in re-cast pool blocks comes out as the owner's (mauth-dev: 21 % against
#: 20 %, 38 % without), and at the desk 1 px locked more impostor minutes than none or 1.5 px.
DITHER = 1.0
#: Velocity features the re-cast can invert, and the time-step feature it needs beside them.
_VELOCITY = (("lvx", "lvy"), ("vx", "vy"))
_TIME = ("logdt", "dt")


@dataclasses.dataclass(frozen=True)
class SetUp:
    """How often the owner's machine reports movement."""

    step: float  # s, median interval between movement events
    #: A sample of the intervals between movement events, to draw re-sampled steps from.
    steps: np.ndarray | None = dataclasses.field(repr=False, compare=False, default=None)

    def describe(self) -> str:
        return f"{1 / self.step:.0f} Hz"


def owner_set_up(recordings: list[np.ndarray]) -> SetUp | None:
    """The owner's set-up from their recordings (raw events: the cutter floors short steps);
    ``None`` when they hold too little movement to say."""
    dts = []
    for events in recordings:
        moving = np.isin(events["state"], (MOVE, DRAG))
        dt = np.diff(events["t"].astype(np.float64))
        dts.append(dt[moving[1:] & moving[:-1] & (dt > 0) & (dt <= MOVEMENT_STEP)])
    dt = np.concatenate(dts) if dts else np.empty(0)
    if len(dt) < 100:
        return None
    return SetUp(float(np.median(dt)), np.random.default_rng(0).choice(dt, min(len(dt), 10000), replace=False))


def invertible(spec: BlockSpec) -> bool:
    """Whether blocks of ``spec`` can be turned back into movement (no per-block normalisation,
    a velocity pair and a time step among the features)."""
    f = set(spec.features)
    return (spec.normalisation == "none" and any(set(v) <= f for v in _VELOCITY)
            and any(t in f for t in _TIME))


def block_steps(blocks: np.ndarray, spec: BlockSpec) -> tuple[np.ndarray, ...]:
    """``(dx, dy, dt, held)`` per sample of ``blocks`` (n, channels, size): the steps they were cut
    from, up to the cutter's floor on short time steps and its clip on extreme values."""
    blocks = blocks.astype(np.float64)
    ch = {name: blocks[:, i] for i, name in enumerate(spec.features)}
    dt = np.exp(ch["logdt"]) * spec.dt_floor if "logdt" in ch else ch["dt"] * spec.dt_floor
    if "lvx" in ch:
        vx = np.sign(ch["lvx"]) * np.expm1(np.minimum(np.abs(ch["lvx"]), 20.0)) / spec.scale
        vy = np.sign(ch["lvy"]) * np.expm1(np.minimum(np.abs(ch["lvy"]), 20.0)) / spec.scale
    else:
        vx, vy = ch["vx"] / spec.scale, ch["vy"] / spec.scale
    held = ch["held"] > 0.5 if "held" in ch else np.zeros(dt.shape, bool)
    return vx * dt, vy * dt, dt, held


def recast_blocks(blocks: np.ndarray, spec: BlockSpec, owner: SetUp, seed: int = 0) -> np.ndarray:
    """One pool person's blocks as the owner's machine would have reported their movement.

    Each block is replayed on its own (pool blocks are a sample, not a stream): its path is
    rebuilt, every movement run (steps of at most :data:`MOVEMENT_STEP`, one button state) is
    sampled afresh at intervals drawn from the owner's own (so the owner's timing jitter comes
    along, and no trace of the old event times is left), pauses and clicks keep their timing;
    then the whole is cut again. A block yields about (its step / the owner's step) new ones.
    """
    if len(blocks) == 0:
        return blocks
    rng = np.random.default_rng(seed)
    steps = owner.steps if owner.steps is not None and len(owner.steps) else np.array([owner.step])
    dx, dy, dt, held = block_steps(blocks, spec)
    pieces = []
    for bx, by, bt, bh in zip(dx, dy, dt, held):
        t = np.concatenate(([0.0], np.cumsum(bt)))
        x = np.concatenate(([0.0], np.cumsum(bx)))
        y = np.concatenate(([0.0], np.cumsum(by)))
        # Runs: consecutive movement steps with one button state. Step i goes from event i to i+1.
        moving = bt <= MOVEMENT_STEP
        change = np.flatnonzero(np.diff(moving.astype(np.int8)) | np.diff(bh.astype(np.int8))) + 1
        bounds = np.concatenate(([0], change, [len(bt)]))
        times, held_after = [np.zeros(1)], [np.array([bh[0]])]
        for a, b in zip(bounds[:-1], bounds[1:]):
            if moving[a]:
                need = int((t[b] - t[a]) / owner.step * 1.5) + 2
                grid = t[a] + np.cumsum(rng.choice(steps, need))
                new = np.append(grid[grid < t[b]], t[b])
            else:
                new = t[a + 1:b + 1]
            times.append(new)
            held_after.append(np.full(len(new), bh[a]))
        nt = np.concatenate(times)
        # An event's state is the button state of the step after it (how the cutter reads it).
        state_held = np.append(np.concatenate(held_after)[1:], False)
        ev = np.zeros(len(nt), dtype=EVENT_DTYPE)
        ev["t"] = nt
        jx, jy = rng.uniform(-DITHER, DITHER, (2, len(nt)))
        ev["x"] = np.rint(np.clip(np.interp(nt, t, x) + jx, -1e7, 1e7))
        ev["y"] = np.rint(np.clip(np.interp(nt, t, y) + jy, -1e7, 1e7))
        ev["state"] = np.where(state_held, DRAG, MOVE)
        pieces.append(ev)
    # Every block starts at time 0: the clock running backwards between blocks ends a sequence
    # in the cutter, so no step joins two blocks that never followed one another.
    out, _ = cut_blocks(np.concatenate(pieces), spec)
    return out


def recast_runs(runs: list[np.ndarray], spec: BlockSpec, owner: SetUp | None) -> list[np.ndarray]:
    """Every pool person's blocks re-cast to ``owner``'s set-up (unchanged where the spec's blocks
    cannot be inverted or the owner's set-up is unknown)."""
    if owner is None or not invertible(spec):
        return runs
    return [recast_blocks(r, spec, owner, seed=i) for i, r in enumerate(runs)]
