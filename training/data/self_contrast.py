"""Negatives made from the owner's own blocks: the same desk, another hand.

A per-user network learns whatever tells its owner from its negatives. The shipped pool was
recorded on other machines, with other tasks and event rates, so the easiest rule it can learn
is "this desk" — and then everyone at the owner's desk passes as the owner (the ``desk``
protocol). No enrolment has recordings of other people at the owner's desk (unless there is a
cohort), but it has the owner's: blocks of the owner's own movement, changed in what differs
between hands — a slower or faster hand (speeds scaled), the movement mirrored or played
backwards — share the owner's machine, event rate, screen and task exactly, and differ from
the owner only in the hand. A share of them among the negatives (``FitConfig.self_contrast``,
``--self-contrast``) makes "this desk" useless as a rule, so the network has to learn the hand.
It is off by default: at one kind of desk it doubles the impostor minutes locked, but where the
owner's own movement varies as much (Balabit's office work) it costs the product path more than
it gains (README, Accuracy, "Someone at your desk").

What a block's channels mean is the spec's (:data:`agent.blocks.FEATURES`): velocity channels
are scaled (``vx``/``vy`` linearly, ``lvx``/``lvy`` through their log compression) and, played
backwards, negated; time steps and button-held channels keep their values, reversed in time.
"""

from __future__ import annotations

import numpy as np

from agent.blocks import BlockSpec

#: Speed factors of the slower and the faster hand: within the spread of typical speeds between
#: people at one desk; 0.5 and 2 did no better.
SPEEDS = (0.7, 1.4)


def _velocity_channels(spec: BlockSpec) -> tuple[list[int], list[int], list[int]]:
    """Indices of the x-velocity, y-velocity and log-compressed velocity channels."""
    f = list(spec.features)
    xs = [f.index(c) for c in ("vx", "lvx") if c in f]
    ys = [f.index(c) for c in ("vy", "lvy") if c in f]
    logs = [f.index(c) for c in ("lvx", "lvy") if c in f]
    return xs, ys, logs


def scaled(blocks: np.ndarray, spec: BlockSpec, factor: float) -> np.ndarray:
    """The same movement ``factor`` times as fast (time steps unchanged)."""
    out = blocks.copy()
    xs, ys, logs = _velocity_channels(spec)
    for c in xs + ys:
        if c in logs:
            out[:, c] = np.sign(out[:, c]) * np.log1p(np.expm1(np.abs(out[:, c])) * factor)
        else:
            out[:, c] = out[:, c] * factor
    if spec.clip is not None:
        out[:, xs + ys] = np.clip(out[:, xs + ys], -spec.clip, spec.clip)
    return out


def mirrored(blocks: np.ndarray, spec: BlockSpec) -> np.ndarray:
    """The movement mirrored left to right."""
    out = blocks.copy()
    xs, _, _ = _velocity_channels(spec)
    out[:, xs] = -out[:, xs]
    return out


def reversed_in_time(blocks: np.ndarray, spec: BlockSpec) -> np.ndarray:
    """The movement played backwards: samples in reverse order, velocities negated."""
    out = blocks[:, :, ::-1].copy()
    xs, ys, _ = _velocity_channels(spec)
    out[:, xs + ys] = -out[:, xs + ys]
    return out


#: How each kind of other hand is made from the owner's blocks.
TRANSFORMS = {
    "slower": lambda spec: lambda b: scaled(b, spec, SPEEDS[0]),
    "faster": lambda spec: lambda b: scaled(b, spec, SPEEDS[1]),
    "mirrored": lambda spec: lambda b: mirrored(b, spec),
    "reversed": lambda spec: lambda b: reversed_in_time(b, spec),
}
#: The kinds a fit uses, in equal shares.
KINDS = ("slower", "faster", "mirrored", "reversed")


def self_contrast_blocks(positives: np.ndarray, n: int, spec: BlockSpec, seed: int) -> np.ndarray:
    """``n`` negatives from ``positives``: a seeded sample, split evenly between a slower hand,
    a faster hand, the mirror and the reverse."""
    if n <= 0 or len(positives) == 0:
        return np.empty((0, spec.channels, spec.size), np.float32)
    rng = np.random.default_rng(seed + 3)
    pick = positives[rng.choice(len(positives), n, replace=n > len(positives))]
    makers = [TRANSFORMS[name](spec) for name in KINDS]
    parts = np.array_split(pick, len(makers))
    return np.concatenate([make(p) for make, p in zip(makers, parts)]).astype(np.float32)
