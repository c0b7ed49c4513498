"""One user's model, end to end: split, fit, score held-out data, calibrate, export.

Used by ``mouseguard train fit`` and by enrolment. Each genuine and impostor session is split
in time: the first part trains, the last part (never seen in training) scores the model and
calibrates the decision, so the threshold is set on blocks the model has not learnt.
"""

from __future__ import annotations

import numpy as np

from agent.blocks import BlockSpec
from agent.model_dir import Decision
from training.calibrate import calibrate
from training.export import export_model_dir
from training.fit import FitConfig, FitError, fit_user, predict
from training.metrics import auc_eer

HOLDOUT = 0.2
#: Fewer genuine blocks than this cannot both train a model and calibrate its threshold.
MIN_BLOCKS = 80


def split_runs(runs: list[np.ndarray], holdout: float = HOLDOUT):
    """Split each time-ordered run into a training head and a held-out tail."""
    train, held = [], []
    for r in runs:
        cut = len(r) - int(round(len(r) * holdout))
        train.append(r[:cut])
        held.append(r[cut:])
    return train, held


def train_personal_model(genuine_runs: list[np.ndarray], impostor_runs: list[np.ndarray], spec: BlockSpec,
                         out_dir, *, user: str, mode: str, encoder_state, cfg: FitConfig,
                         seconds_per_block: float, false_locks_per_hour: float, training_info: dict,
                         impostor_heldout_runs: list[np.ndarray] | None = None, log=None) -> dict:
    """Fit, calibrate and export; returns the manifest's metrics and decision summary.

    Impostor runs are split in time like the genuine ones, unless ``impostor_heldout_runs``
    gives separate impostors (whole users never seen in training) for the held-out side.
    """
    genuine_train, genuine_held = split_runs(genuine_runs)
    if impostor_heldout_runs is None:
        impostor_train, impostor_held = split_runs(impostor_runs)
    else:
        impostor_train, impostor_held = list(impostor_runs), list(impostor_heldout_runs)
    positives = np.concatenate(genuine_train) if genuine_train else np.empty((0, spec.channels, spec.size))
    negatives = np.concatenate(impostor_train) if impostor_train else np.empty((0, spec.channels, spec.size))
    have = len(positives) + sum(map(len, genuine_held))
    if have < MIN_BLOCKS:
        more = (MIN_BLOCKS - have) * seconds_per_block / 60
        raise FitError(
            f"too little data of {user}: {have} blocks, at least {MIN_BLOCKS} are needed "
            f"(about {more:.0f} more minutes of mouse movement)"
        )
    model = fit_user(positives, negatives, spec, mode, encoder_state, cfg, log=log)
    genuine_scores = [predict(model, r) for r in genuine_held]
    impostor_scores = [predict(model, r) for r in impostor_held if len(r)]
    window, threshold, calibration = calibrate(genuine_scores, impostor_scores, seconds_per_block,
                                               false_locks_per_hour)
    block_metrics = auc_eer(np.concatenate(genuine_scores),
                            np.concatenate(impostor_scores) if impostor_scores else [])
    metrics = {
        "heldout_block": block_metrics,
        "train_blocks": {"genuine": int(len(positives)), "impostor_available": int(len(negatives))},
        "heldout_blocks": {"genuine": int(sum(map(len, genuine_held))),
                           "impostor": int(sum(map(len, impostor_held)))},
    }
    export_model_dir(model, spec, out_dir, user=user, decision=Decision(window, threshold),
                     calibration=calibration, metrics=metrics,
                     training={**training_info, "mode": mode, "epochs": cfg.epochs, "lr": cfg.lr,
                               "batch": cfg.batch, "seed": cfg.seed, "noise": cfg.noise,
                               "holdout_fraction": HOLDOUT},
                     parity_blocks=positives)
    chosen = next(c for c in calibration["candidates"] if c["window"] == window)
    return {"metrics": metrics, "window": window, "threshold": threshold, "calibration": chosen}
