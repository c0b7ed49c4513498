"""Choosing the decision window and threshold from held-out block scores.

The agent locks when the mean P(genuine) of the last ``window`` blocks falls below
``threshold``. Both are chosen here from the user's own held-out blocks (genuine runs) and
held-out impostor blocks, for a target rate of false locks per active hour.

A day of use is far more data than an enrolment holds out, so the rate of a rare false lock
cannot be counted directly. The rolling scores are modelled instead: on the logit scale a
genuine rolling mean is close to normal, and the threshold is the quantile whose tail
probability per decision equals the target rate times the time per decision. The empirical
count on the held-out runs is reported beside it as a check.
"""

from __future__ import annotations

import statistics

import numpy as np

from agent.decision import simulate_locks

WINDOWS = (1, 3, 5, 10, 20)
_EPS = 1e-6


def _logit(p):
    p = np.clip(np.asarray(p, dtype=np.float64), _EPS, 1 - _EPS)
    return np.log(p / (1 - p))


def rolling_means(scores: np.ndarray, window: int) -> np.ndarray:
    if len(scores) < window:
        return np.empty(0)
    c = np.cumsum(np.concatenate(([0.0], scores)))
    return (c[window:] - c[:-window]) / window


def calibrate(genuine_runs: list[np.ndarray], impostor_runs: list[np.ndarray], seconds_per_block: float,
              false_locks_per_hour: float, windows=WINDOWS) -> tuple[int, float, dict]:
    """Return ``(window, threshold, report)`` minimising impostor time-to-lock at the target rate."""
    genuine_runs = [np.asarray(r, dtype=np.float64) for r in genuine_runs if len(r)]
    impostor_runs = [np.asarray(r, dtype=np.float64) for r in impostor_runs if len(r)]
    if not genuine_runs:
        raise ValueError("no held-out genuine blocks to calibrate on")
    p_decision = min(0.5, false_locks_per_hour * seconds_per_block / 3600.0)
    z = statistics.NormalDist().inv_cdf(p_decision)
    genuine_hours = sum(map(len, genuine_runs)) * seconds_per_block / 3600.0
    candidates = []
    for window in windows:
        means = np.concatenate([rolling_means(r, window) for r in genuine_runs])
        if len(means) < 10:
            continue
        logits = _logit(means)
        threshold = float(1 / (1 + np.exp(-(logits.mean() + z * logits.std()))))
        false_locks = sum(simulate_locks(r, window, threshold)[0] for r in genuine_runs)
        blocks_to_lock = [simulate_locks(r, window, threshold)[1] for r in impostor_runs]
        caught = [b for b in blocks_to_lock if b is not None]
        median_blocks = float(np.median(caught)) if caught else float("inf")
        candidates.append({
            "window": window,
            "threshold": threshold,
            "heldout_false_locks": int(false_locks),
            "heldout_genuine_hours": genuine_hours,
            "impostor_runs": len(impostor_runs),
            "impostor_runs_locked": len(caught),
            "median_blocks_to_lock": median_blocks,
            "median_seconds_to_lock": median_blocks * seconds_per_block,
        })
    if not candidates:
        raise ValueError("too few held-out genuine blocks to calibrate a decision window")
    # Catch the most impostor runs, then fastest; ties go to the longer, steadier window.
    best = min(candidates, key=lambda c: (-c["impostor_runs_locked"], c["median_blocks_to_lock"], -c["window"]))
    report = {
        "method": "logit-normal quantile of held-out genuine rolling means",
        "target_false_locks_per_hour": false_locks_per_hour,
        "seconds_per_block": seconds_per_block,
        "candidates": candidates,
    }
    return best["window"], best["threshold"], report
