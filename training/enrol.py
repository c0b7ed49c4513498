"""Enrolment: a person's recordings in, their model directory out.

TRANSFER2 from the shipped encoder against the shipped background pool: the person's
workstation has no other users' data, so the pool's users are the impostors. A fifth of the
pool's users are held out whole, so the time-to-lock in the summary is measured on people
the model has never seen. Pool users whose recordings the enrolment's recordings share (someone
enrolling from public data that is in the pool) are left out: their blocks are the person's own.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import models
from training.families.cnn.train import FitConfig
from training.families.cnn.encoder import load_encoder
from training.user_model.fit import export_user_model, fit_cnn
from training.user_model.split import MIN_BLOCKS
from training.data.pool import load_pool

POOL_HELDOUT_EVERY = 5


def _shown(path) -> str:
    """``path`` for a manifest: inside the shipped ``models`` folder as ``models/...``, so the
    shipped demo model does not carry the path of the machine that built it."""
    path = Path(path).resolve()
    try:
        return str(Path("models") / path.relative_to(models.ROOT.resolve()))
    except ValueError:
        return str(path)


def enrol(recordings: list[np.ndarray], user: str, out_dir, *, encoder_dir=None, pool_path=None,
          cfg: FitConfig = FitConfig(), false_locks_per_8h: float = 1.0, sources=(), exclude_pool_users=(),
          log=None, min_blocks: int = MIN_BLOCKS) -> dict:
    """Train, calibrate and export ``user``'s model from ``recordings`` (event arrays).

    ``exclude_pool_users``: pool users to leave out besides the enrolling person's own (the
    demo keeps its impostor out, so the demo shows an impostor the model has never seen).
    """
    encoder_dir = encoder_dir or models.ENCODER
    pool_path = pool_path or models.BACKGROUND_POOL
    encoder_state, spec, encoder_info = load_encoder(encoder_dir)
    pool, own = load_pool(pool_path, spec).without_owners_of(recordings)
    excluded = set(exclude_pool_users)
    keep = [i for i, u in enumerate(pool.users) if u not in excluded]
    held = [pool.runs[i] for k, i in enumerate(keep) if k % POOL_HELDOUT_EVERY == 0]
    train = [pool.runs[i] for k, i in enumerate(keep) if k % POOL_HELDOUT_EVERY != 0]
    if log:
        log(f"impostors: {len(train)} pool users for training, {len(held)} held out")
        if own:
            log(f"left out of the pool, their recordings are among yours: {', '.join(own)}")
    fitted = fit_cnn(recordings, train, spec, user=user, mode="transfer2", encoder_state=encoder_state, cfg=cfg,
                     impostor_heldout_runs=held, log=log, min_blocks=min_blocks)
    summary = export_user_model(
        fitted, out_dir, user=user, false_locks_per_hour=false_locks_per_8h / 8.0,
        training_info={"dataset": "enrolment", "sources": [str(s) for s in sources],
                       "encoder": {"path": _shown(encoder_dir),
                                   **{k: encoder_info.get(k) for k in ("dataset", "users")}},
                       "background_pool": _shown(pool_path), "pool_users_left_out": own + list(exclude_pool_users)})
    summary["target_per_hour"] = false_locks_per_8h / 8.0
    return summary


def describe(summary: dict) -> str:
    """The enrolment summary a person reads."""
    m = summary["metrics"]["heldout_block"]
    c = summary["calibration"]
    hours = c["heldout_genuine_hours"]
    # a 1-minute hold-out "vouches for 1 per 0.0 h": say minutes below an hour
    vouch = f"{hours:.1f} h" if hours >= 1 else f"{hours * 60:.0f} min"
    lines = [
        f"blocks used: {summary['rows']} ({summary['rows'] * summary['seconds_per_row'] / 60:.0f} min of movement, "
        f"{summary['metrics']['heldout_blocks']['genuine']} held out for checking)",
        f"held-out blocks: AUC {m['auc']:.3f}, EER {100 * m['eer']:.1f} %" if m["auc"] is not None else
        "held-out blocks: no impostor blocks to compare with",
        f"decision: lock when the mean of the last {summary['window']} blocks falls below {summary['threshold']:.3f}",
        f"false locks on your held-out data: {c['heldout_false_locks']} in {hours * 60:.0f} min of movement "
        f"(target: at most {8 * summary['target_per_hour']:g} per 8 active hours; held-out data this short "
        f"can vouch for 1 per {vouch} at best)",
        f"unseen impostors locked: {c['impostor_runs_locked']} of {c['impostor_runs']}, median after "
        f"{c['median_seconds_to_lock']:.0f} s of their movement" if c["impostor_runs_locked"] else
        f"unseen impostors locked: none of {c['impostor_runs']}",
    ]
    return "\n".join(lines)
