"""What of a user's data trains and what is held out to score the model and set its decision.

The held-out part is never seen in training: the threshold is set on data the model has not
learnt. The CNN holds out whole recordings where it can (:func:`training_heads`); the
features and patterns families split each recording in time (:func:`split_events`), as their
seed papers' protocols do.
"""

from __future__ import annotations

import numpy as np

from agent.blocks import BlockSpec, cut_blocks

HOLDOUT = 0.2


#: Fewer genuine blocks than this cannot both train a model and calibrate its threshold.
MIN_BLOCKS = 80


#: The fewest held-out blocks the calibration can set a threshold on (8 rolling means of the
#: shortest window, :mod:`training.user_model.calibrate`): a short single recording holds out this many,
#: up to a third of it, even where ``HOLDOUT`` would give fewer.
MIN_HELD = 10


def _tails(lengths: list[int], holdout: float) -> list[int]:
    return [n - int(round(n * holdout)) for n in lengths]


def training_heads(lengths: list[int], holdout: float = HOLDOUT) -> list[int]:
    """How many leading blocks of each time-ordered run train; the rest of each is held out.

    Whole runs are held out (the last ones, about ``holdout`` of the blocks) when there are two
    or more, else the tail of each: tails of the sessions a model trained on score higher than a
    new day's session does, so a threshold set on them locks the owner out on new days (README,
    Accuracy, has the figures). Runs of very different length fall back to tails, when the whole
    runs held out would hold under a tenth of the blocks (too little to calibrate on) or over nine
    tenths (too little left to learn from: short tries of an enrolment, then a long recording).
    """
    if len(lengths) < 2:
        return [n - max(int(round(n * holdout)), min(MIN_HELD, n // 3)) for n in lengths]
    total, held_blocks, k = sum(lengths), 0, 0
    while k < len(lengths) - 1 and held_blocks < holdout * total:
        k += 1
        held_blocks += lengths[-k]
    if not holdout / 2 <= held_blocks / max(total, 1) <= 1 - holdout / 2:
        return _tails(lengths, holdout)
    return list(lengths[:-k]) + [0] * k


def split_at(runs, heads):
    return [r[:c] for r, c in zip(runs, heads) if c], [r[c:] for r, c in zip(runs, heads) if c < len(r)]


def split_runs(runs: list[np.ndarray], holdout: float = HOLDOUT):
    """Split each time-ordered run into a training head and a held-out tail."""
    return split_at(runs, _tails([len(r) for r in runs], holdout))


def extra_tilings(events: np.ndarray, spec: BlockSpec, tilings: int, until: float) -> np.ndarray:
    """The blocks of ``events`` cut again from ``tilings - 1`` later starts (spread over one
    block), keeping those that end by ``until``: more views of the same movement to learn from.

    The agent cuts a stream wherever it happens to start, so a block boundary falls anywhere in
    a movement; training on one tiling shows the network each movement cut one way only (four
    tilings: README, Accuracy, has the figures).
    """
    out = [np.empty((0, spec.channels, spec.size), np.float32)]
    for i in range(1, tilings):
        blocks, ends = cut_blocks(events[i * spec.size // tilings:], spec)
        out.append(blocks[ends <= until])
    return np.concatenate(out)


#: Fewer held-out genuine rows than this cannot calibrate a threshold.
MIN_HELDOUT_ROWS = 10


#: The patterns family: without impostor data the window cannot be chosen by time-to-lock: the longest of these
#: that the held-out data can calibrate is taken.
PATTERN_WINDOWS = (1, 3, 5)


def split_events(events: np.ndarray, holdout: float = HOLDOUT):
    """Head and tail of a recording by event count (the tail is the last ``holdout``)."""
    cut = len(events) - int(round(len(events) * holdout))
    return events[:cut], events[cut:]

