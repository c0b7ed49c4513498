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
from agent.blocks import BlockSpec, cut_blocks
from training.families.cnn.train import FitConfig
from training.families.cnn.encoder import load_encoder
from training.user_model.fit import export_user_model, fit_cnn
from training.user_model.split import MIN_BLOCKS
from training.data.pool import load_pool
from training.data.recast import invertible, recast_runs
from training.user_model.owner import as_enrolment, set_up_of

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
          cohort: dict[str, np.ndarray] | None = None, log=None, min_blocks: int = MIN_BLOCKS) -> dict:
    """Train, calibrate and export ``user``'s model from ``recordings``: event arrays, or the
    enrolment blocks kept from an earlier enrolment's (:mod:`training.user_model.owner`).

    ``exclude_pool_users``: pool users to leave out besides the enrolling person's own (the
    demo keeps its impostor out, so the demo shows an impostor the model has never seen).
    ``cohort``: blocks of other people who use this machine, by name, cut with the encoder's
    spec (:func:`cohort_blocks`) — the best impostors there are, at the owner's own desk
    (:func:`training.user_model.fit.fit_cnn`).
    """
    encoder_dir = encoder_dir or models.ENCODER
    pool_path = pool_path or models.BACKGROUND_POOL
    encoder_state, spec, encoder_info = load_encoder(encoder_dir)
    recordings = as_enrolment(recordings, spec, cfg.tilings)
    train, held, own, set_up = pool_impostors(recordings, spec, pool_path, cfg, exclude_pool_users, log)
    cohort = {name: blocks for name, blocks in (cohort or {}).items() if len(blocks)}
    if any(blocks.shape[1:] != (spec.channels, spec.size) for blocks in cohort.values()):
        raise ValueError("cohort blocks cut with another block spec than the encoder's")
    if log and cohort:
        log(f"cohort: {sum(map(len, cohort.values()))} blocks of {len(cohort)} other people who use this machine")
    cohort_runs = list(cohort.values())
    fitted = fit_cnn(recordings, train, spec, user=user, mode="transfer2", encoder_state=encoder_state, cfg=cfg,
                     impostor_heldout_runs=held, local_runs=cohort_runs, log=log, min_blocks=min_blocks)
    summary = export_user_model(
        fitted, out_dir, user=user, false_locks_per_hour=false_locks_per_8h / 8.0,
        training_info={"dataset": "enrolment", "sources": [str(s) for s in sources],
                       "encoder": {"path": _shown(encoder_dir),
                                   **{k: encoder_info.get(k) for k in ("dataset", "users")}},
                       "background_pool": _shown(pool_path), "pool_users_left_out": own + list(exclude_pool_users),
                       "background_pool_recast_to": set_up.describe() if set_up else None,
                       "cohort": {name: int(len(blocks)) for name, blocks in cohort.items()}})
    summary["target_per_hour"] = false_locks_per_8h / 8.0
    return summary


def pool_impostors(recordings, spec: BlockSpec, pool_path, cfg: FitConfig, exclude_pool_users=(), log=None):
    """The background pool's impostor runs for ``recordings``' owner (event arrays or their
    enrolment blocks): ``(train, held, own, set_up)`` — pool users the owner's recordings share
    are left out (``own``, by the fingerprints cut with them), every
    :data:`POOL_HELDOUT_EVERY`-th user is held out whole, and both sides are also re-cast to the
    owner's event rate (``set_up``, or None). Enrolment and a template update use the same."""
    owner = as_enrolment(recordings, spec, cfg.tilings)
    pool, own = load_pool(pool_path, spec).without_fingerprints(owner.fingerprints)
    excluded = set(exclude_pool_users)
    keep = [i for i, u in enumerate(pool.users) if u not in excluded]
    held = [pool.runs[i] for k, i in enumerate(keep) if k % POOL_HELDOUT_EVERY == 0]
    train = [pool.runs[i] for k, i in enumerate(keep) if k % POOL_HELDOUT_EVERY != 0]
    # The pool as shipped and again re-cast to the owner's event rate (training.data.recast):
    # the first tells other machines, the second the hand at the owner's own.
    set_up = set_up_of(owner) if cfg.recast_pool and invertible(spec) else None
    if set_up is not None:
        train = train + recast_runs(train, spec, set_up)
        # a held-out person stays one run (as shipped, then re-cast): the summary counts people
        held = [np.concatenate((h, r)) for h, r in zip(held, recast_runs(held, spec, set_up))]
        if log:
            log(f"pool also re-cast to your mouse's event rate ({set_up.describe()})")
    if log:
        log(f"impostors: {len(train)} pool users for training, {len(held)} held out")
        if own:
            log(f"left out of the pool, their recordings are among yours: {', '.join(own)}")
    return train, held, own, set_up


def cohort_blocks(recordings: list[np.ndarray], spec: BlockSpec) -> np.ndarray:
    """One cohort member's blocks from their recordings, cut as an enrolment cuts."""
    runs = [cut_blocks(e, spec)[0] for e in recordings]
    return np.concatenate(runs) if runs else np.empty((0, spec.channels, spec.size), np.float32)


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
        f"held-out blocks, yours against the pool's people: AUC {m['auc']:.3f}, EER {100 * m['eer']:.1f} %"
        if m["auc"] is not None else
        "held-out blocks: no impostor blocks to compare with",
        f"decision: lock when the mean of the last {summary['window']} blocks falls below {summary['threshold']:.3f}",
        f"false locks on your held-out data: {c['heldout_false_locks']} in {hours * 60:.0f} min of movement "
        f"(target: at most {8 * summary['target_per_hour']:g} per 8 active hours; held-out data this short "
        f"can vouch for 1 per {vouch} at best)",
    ]
    local = summary["metrics"].get("heldout_block_local")
    pool = c["impostor_runs"] - (local["runs"] if local else 0)
    lines.append(f"checked against {pool} people held out of the shipped pool (recorded on other machines)"
                 + (f" and {local['runs']} recording(s) of people who use this machine" if local else "") + ": "
                 + (f"{c['impostor_runs_locked']} of {c['impostor_runs']} locked, median after "
                    f"{c['median_seconds_to_lock']:.0f} s of their movement" if c["impostor_runs_locked"] else
                    "none locked"))
    if local:
        lines.append(f"people who use this machine, held-out movement: AUC {local['auc']:.3f}")
    lines.append("what this check cannot vouch for: someone at this desk — same mouse, same machine — whom "
                 "mouseguard has never seen; such a person is much harder to catch (README, Accuracy: the desk "
                 "figures)" + ("" if local else ". Enrolling everyone who uses this machine helps (cohort)"))
    return "\n".join(lines)
