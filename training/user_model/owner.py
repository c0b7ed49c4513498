"""The owner's enrolment cut once, as every CNN fit of theirs takes it: from recordings at an
enrolment, or read back from the enrolment blocks file (agent/enrolment_blocks.py) when a
cohort refit or a template update retrains after the recordings were deleted.

Cutting here keeps what the fit derives from raw events (the split points, the extra tilings,
the seconds per block, the owner's event rate, the pool fingerprints), so a fit from the kept
blocks trains, holds out and calibrates on exactly what a fit from the recordings would.
"""

from __future__ import annotations

import numpy as np

from agent.blocks import BlockSpec, cut_blocks
from agent.enrolment_blocks import EnrolmentBlocks
from agent.recorder import active_seconds
from training.data.pool import fingerprints
from training.data.recast import SetUp, owner_set_up
from training.errors import FitError


def cut_enrolment(recordings: list[np.ndarray], spec: BlockSpec, tilings: int, *, user: str = "",
                  pool_keys: bool = True) -> EnrolmentBlocks:
    """``recordings`` (event arrays, time order) cut with ``spec``, the extra tilings
    ``tilings - 1`` ways (all of them: :meth:`EnrolmentBlocks.extra_until` keeps those of the
    trained part, as :func:`training.user_model.split.extra_tilings` does). ``pool_keys=False``
    skips the set-up and fingerprints (a fit that never looks at the background pool)."""
    shape = (spec.channels, spec.size)
    runs, ends, active, extra, extra_ends = [], [], [], [], []
    for events in recordings:
        t0 = float(events["t"][0]) if len(events) else 0.0
        blocks, block_ends = cut_blocks(events, spec)
        runs.append(blocks.astype(np.float32, copy=False))
        ends.append(np.asarray(block_ends, np.float64) - t0)
        active.append(float(active_seconds(events["t"], spec.gap)))
        more, more_ends = [np.empty((0, *shape), np.float32)], [np.empty(0, np.float64)]
        for i in range(1, max(tilings, 1)):
            b, e = cut_blocks(events[i * spec.size // tilings:], spec)
            more.append(b.astype(np.float32, copy=False))
            more_ends.append(np.asarray(e, np.float64) - t0)
        extra.append(np.concatenate(more))
        extra_ends.append(np.concatenate(more_ends))
    set_up = owner_set_up(recordings) if pool_keys else None
    prints = (np.unique(np.concatenate([fingerprints(e) for e in recordings]))
              if pool_keys and recordings else np.empty(0, np.uint64))
    return EnrolmentBlocks(user=user, spec=spec, runs=runs, ends=ends, active_seconds=active,
                           tilings=max(tilings, 1), extra=extra, extra_ends=extra_ends,
                           set_up_steps=np.empty(0) if set_up is None else np.asarray(set_up.steps, np.float64),
                           set_up_step=None if set_up is None else set_up.step,
                           fingerprints=prints.astype(np.uint64))


def as_enrolment(owner, spec: BlockSpec, tilings: int, *, pool_keys: bool = True) -> EnrolmentBlocks:
    """``owner`` as :class:`EnrolmentBlocks`: kept blocks as they are (refused when cut with
    another spec), event arrays cut now."""
    if isinstance(owner, EnrolmentBlocks):
        if owner.spec != spec:
            raise FitError("the enrolment blocks were cut with another block spec than this model's encoder; "
                           "re-enrol by recording ('mouseguard enroll')")
        return owner
    return cut_enrolment(list(owner), spec, tilings, pool_keys=pool_keys)


def set_up_of(owner: EnrolmentBlocks) -> SetUp | None:
    """The owner's set-up (training.data.recast) as the enrolment measured it."""
    if owner.set_up_step is None:
        return None
    return SetUp(owner.set_up_step, owner.set_up_steps)
