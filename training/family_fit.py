"""One user's model of the ``features`` or ``patterns`` family: fit, calibrate, export.

Each recording is split in time (unlike ``training.personal`` for the CNN, which holds out
whole recordings when there are two or more): the head trains and the tail (never seen in
training) scores the model and calibrates the decision with ``training.calibrate``. The features family learns against other users (as the CNN does); the
patterns family learns from the user's recordings alone: other users' recordings, when the
data has them, are scored only to report how the model does against them, never to fit or
calibrate it.
"""

from __future__ import annotations

import numpy as np

from agent.model_dir import Decision
from agent.recorder import active_seconds
from agent.pattern_features import KIND as PATTERN_KIND
from agent.pattern_features import PER_PATTERN
from agent.segment_features import FEATURE_NAMES, KIND as SEGMENT_KIND, SegmentSpec, extract_segments
from training.calibrate import calibrate
from training.family_export import write_model_dir
from training.features_mlp import INPUT_NAME as FEATURES_INPUT, FeaturesModel, MLPConfig
from training.fit import FitError
from training.metrics import auc_eer
from training.patterns import INPUT_NAME as PATTERNS_INPUT, PatternsConfig, PatternsModel

HOLDOUT = 0.2
#: Fewer held-out genuine rows than this cannot calibrate a threshold.
MIN_HELDOUT_ROWS = 10
#: Without impostor data the window cannot be chosen by time-to-lock: the longest of these
#: that the held-out data can calibrate is taken.
PATTERN_WINDOWS = (1, 3, 5)


def split_events(events: np.ndarray, holdout: float = HOLDOUT):
    """Head and tail of a recording by event count (the tail is the last ``holdout``)."""
    cut = len(events) - int(round(len(events) * holdout))
    return events[:cut], events[cut:]


def _summary(calibration: dict, window: int, threshold: float, metrics: dict) -> dict:
    chosen = next(c for c in calibration["candidates"] if c["window"] == window)
    return {"metrics": metrics, "window": window, "threshold": threshold, "calibration": chosen}


def fit_features(genuine: list[np.ndarray], impostors: dict[str, list[np.ndarray]], out_dir, *, user: str,
                 cfg: MLPConfig, false_locks_per_hour: float, training_info: dict, log=None) -> dict:
    """``genuine``: the user's recordings; ``impostors``: other users' recordings by user."""
    spec = SegmentSpec()
    heads, tails = zip(*(split_events(e) for e in genuine))
    g_train = [extract_segments(e, spec)[0] for e in heads]
    g_held = [extract_segments(e, spec)[0] for e in tails]
    i_train, i_held = [], []
    for runs in impostors.values():
        parts = [split_events(e) for e in runs]
        i_train.append(np.concatenate([extract_segments(h, spec)[0] for h, _ in parts]))
        i_held += [extract_segments(t, spec)[0] for _, t in parts]
    positives = np.concatenate(g_train)
    if len(positives) < 20 or sum(map(len, g_held)) < MIN_HELDOUT_ROWS:
        raise FitError(f"too little data of {user}: {len(positives)} segments to train on and "
                       f"{sum(map(len, g_held))} held out (at least 20 and {MIN_HELDOUT_ROWS})")
    model = FeaturesModel(cfg).fit(positives, i_train, log=log)
    g_scores = [model.score(r) for r in g_held if len(r)]
    i_scores = [model.score(r) for r in i_held if len(r)]
    seconds_per_row = sum(active_seconds(e["t"]) for e in genuine) / max(
        sum(len(extract_segments(e, spec)[0]) for e in genuine), 1)
    window, threshold, calibration = calibrate(g_scores, i_scores, seconds_per_row, false_locks_per_hour)
    metrics = {
        "heldout_segment": auc_eer(np.concatenate(g_scores), np.concatenate(i_scores) if i_scores else []),
        "train_segments": {"genuine": int(len(positives)), "impostor": int(sum(map(len, i_train))),
                           "impostor_users": len(i_train)},
    }
    parity_rows = np.concatenate([positives[:128]] + [r[:8] for r in i_train])
    fold = float(np.max(np.abs(model.score(parity_rows) - model.score_folded(parity_rows))))
    write_model_dir(
        out_dir, model.onnx_bytes(len(FEATURE_NAMES)), family="features",
        architecture="segment-features-mlp-128-64-32+cgan-unknown", user=user,
        input_spec={"name": FEATURES_INPUT, "kind": SEGMENT_KIND, "params": spec.to_dict(),
                    "shape": [None, len(FEATURE_NAMES)], "features": list(FEATURE_NAMES)},
        output_meaning="P(genuine) for each 50-event segment: softmax of the enrolled user's class",
        decision=Decision(window, threshold), calibration=calibration, metrics=metrics,
        training={**training_info, "family": "features", "max_epochs": cfg.max_epochs, "seed": cfg.seed,
                  "unknown_per_class": cfg.unknown_per_class, "holdout_fraction": HOLDOUT,
                  "preprocessing_fold_max_abs_diff": fold},
        parity_rows=parity_rows, reference=model.score_folded,
    )
    return _summary(calibration, window, threshold, metrics)


def fit_patterns(genuine: list[np.ndarray], out_dir, *, user: str, cfg: PatternsConfig,
                 false_locks_per_hour: float, training_info: dict,
                 report_impostors: list[np.ndarray] = (), log=None) -> dict:
    """Learn from ``genuine`` recordings alone; ``report_impostors`` are only scored for the report."""
    heads, tails = zip(*(split_events(e) for e in genuine))
    model = PatternsModel(cfg).fit(list(heads))
    g_held = [model.rows(t, short_files=False) for t in tails]
    if sum(map(len, g_held)) < MIN_HELDOUT_ROWS:
        raise FitError(f"too little data of {user}: {sum(map(len, g_held))} held-out windows of {cfg.window} "
                       f"actions, at least {MIN_HELDOUT_ROWS} are needed")
    g_scores = [model.score(r) for r in g_held if len(r)]
    n_rows = sum(len(model.rows(e, short_files=False)) for e in genuine)
    seconds_per_row = sum(active_seconds(e["t"]) for e in genuine) / max(n_rows, 1)
    window, threshold, calibration = calibrate(g_scores, [], seconds_per_row, false_locks_per_hour,
                                               windows=PATTERN_WINDOWS)
    calibration["note"] = "genuine data only: the longest window the held-out windows can calibrate"
    metrics = {"train_windows": model.n_train_rows, "map_windows": model.n_map_rows,
               "patterns": model.patterns_info}
    if report_impostors:
        i_scores = [model.score(model.rows(e)) for e in report_impostors]
        metrics["heldout_window_vs_other_users"] = auc_eer(np.concatenate(g_scores), np.concatenate(i_scores))
    parity_rows = np.concatenate([model.rows(e) for e in heads])[:256]
    reference = lambda rows: model.score(rows).astype(np.float32)  # noqa: E731
    write_model_dir(
        out_dir, model.to_onnx().SerializeToString(), family="patterns",
        architecture=f"action-patterns+{cfg.detector}", user=user,
        input_spec={"name": PATTERNS_INPUT, "kind": PATTERN_KIND, "params": model.spec.to_dict(),
                    "shape": [None, model.spec.width],
                    "features": [f"p{j}_{f}" for j in range(len(model.spec.patterns)) for f in PER_PATTERN]},
        output_meaning=("genuine-likeness of each window of actions in [0, 1]: logistic map of the one-class "
                        "decision value, 0.5 at the 5th percentile of held-out genuine windows, 0.95 at their median"),
        decision=Decision(window, threshold), calibration=calibration, metrics=metrics,
        training={**training_info, "family": "patterns", "detector": cfg.detector, "n_patterns": cfg.n_patterns,
                  "min_support": cfg.min_support, "seed": cfg.seed, "holdout_fraction": HOLDOUT,
                  "score_map": {"offset": model.offset, "scale": model.scale}},
        parity_rows=parity_rows, reference=reference, tolerance=1e-4, reference_name="scikit-learn",
    )
    return _summary(calibration, window, threshold, metrics)
