"""One user's model, end to end, for every family: split, fit, score the held-out part,
calibrate the decision, export the model directory.

Used by ``mouseguard train fit``, by enrolment and by the protocols that fit as they do. Each
family has its ``fit_*`` here (its inputs and its split, :mod:`training.user_model.split`),
which returns a :class:`FittedUser`: the fitted model (:mod:`training.families`) and its
held-out scores. :func:`export_user_model` is the one way any of them becomes a model
directory: the decision from the held-out scores (:func:`training.user_model.calibrate.calibrate`),
the ONNX file checked for parity, and the manifest (:func:`agent.model_dir.write_model_dir`).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from agent.blocks import BlockSpec
from agent.model_dir import Decision, write_model_dir
from agent.recorder import active_seconds
from agent.segment_features import SegmentSpec, extract_segments
from training.errors import FitError
from training.evaluation.metrics import auc_eer
from training.families.cnn.model import CNNModel
from training.families.cnn.train import FitConfig, balanced_negatives
from training.families.features.mlp import FeaturesModel, MLPConfig
from training.families.patterns.model import PatternsConfig, PatternsModel
from training.user_model.calibrate import COMMON_THRESHOLD, WINDOWS, calibrate, platt
from training.user_model.owner import as_enrolment
from training.user_model.split import (HOLDOUT, MIN_BLOCKS, MIN_HELDOUT_ROWS, PATTERN_WINDOWS,
                                       split_at, split_events, split_runs, training_heads)

#: The share of a fit's negatives taken from a local cohort, where it has that many blocks.
LOCAL_SHARE = 0.5


@dataclasses.dataclass
class FittedUser:
    """A user's fitted model with the calibrated scores of the held-out data."""

    model: object  # a family's model: CNNModel, FeaturesModel, PatternsModel
    genuine_held_scores: list[np.ndarray]
    impostor_held_scores: list[np.ndarray]
    genuine_rows: int  # of the user's recordings, cut as the agent cuts
    seconds_per_row: float  # of active movement, over those rows
    metrics: dict  # for the manifest: held-out AUC and what trained
    training: dict  # the family's settings, for the manifest
    parity_rows: np.ndarray  # real input rows to check the ONNX file on
    windows: tuple[int, ...] = WINDOWS
    common_threshold: float | None = None
    calibration_note: str | None = None

    def score(self, rows: np.ndarray) -> np.ndarray:
        """P(genuine) per row, as the exported ONNX model computes it."""
        return self.model.score(rows)

    def decision(self, false_locks_per_hour: float) -> tuple[int, float, dict]:
        """The decision window and threshold from the held-out scores (:func:`calibrate`)."""
        window, threshold, calibration = calibrate(
            self.genuine_held_scores, self.impostor_held_scores, self.seconds_per_row, false_locks_per_hour,
            windows=self.windows, common=self.common_threshold)
        if self.calibration_note:
            calibration["note"] = self.calibration_note
        return window, threshold, calibration


def _held_metric(genuine_scores, impostor_scores) -> dict:
    return auc_eer(np.concatenate(genuine_scores), np.concatenate(impostor_scores) if impostor_scores else [])


def fit_cnn(genuine_recordings, impostor_runs, spec: BlockSpec, *, user: str, mode: str, encoder_state,
            cfg: FitConfig, impostor_heldout_runs=None, local_runs=(), log=None,
            min_blocks: int = MIN_BLOCKS, kept_blocks=None) -> FittedUser:
    """Cut, split, fit on the training part, Platt-calibrate the logits on the held-out part.

    ``genuine_recordings``: the user's event arrays, in time order, or their enrolment blocks
    kept instead (:mod:`training.user_model.owner`); the training part of each is cut
    ``cfg.tilings`` ways (:func:`extra_tilings`), the held-out part once, as the agent cuts.
    ``impostor_runs``: other users' blocks, each run's tail held out (:func:`split_runs`), unless
    ``impostor_heldout_runs`` gives separate impostors (whole users never seen in training) for
    the held-out side. ``local_runs``: blocks of other people at the owner's own machine (a
    cohort): each run's tail is held out too, and they make up :data:`LOCAL_SHARE` of the
    negatives (as many as they have), since they differ from the owner by the hand alone.
    ``kept_blocks``: ``(train, held)`` blocks the agent kept as clearly the owner's since
    enrolment (a template update, :mod:`training.user_model.update`): the first train beside
    the enrolment's, the second is one more held-out genuine run, so the decision is also
    calibrated on the owner's recent movement.
    """
    owner = as_enrolment(genuine_recordings, spec, cfg.tilings, pool_keys=False)
    runs = list(owner.runs)
    have = sum(map(len, runs))
    spb = sum(owner.active_seconds) / max(have, 1)
    if log:
        log(f"{user}: {have} blocks from {len(runs)} recording(s), {spb:.1f} s of movement per block")
    if have < min_blocks:
        more = (f"about {(min_blocks - have) * spb / 60:.0f} more minutes of mouse movement" if have
                else "the recordings hold no movement a block can be cut from")
        raise FitError(f"too little data of {user}: {have} blocks, at least {min_blocks} are needed ({more})")
    heads = training_heads([len(r) for r in runs])
    genuine_train, genuine_held = split_at(runs, heads)
    extra = [owner.extra_until(r, until=owner.ends[r][c - 1]) for r, c in enumerate(heads) if c and cfg.tilings > 1]
    if extra:
        extra = np.concatenate(extra)
        room = max(cfg.max_genuine_blocks - sum(map(len, genuine_train)), 0)
        if len(extra) > room:
            if log:
                log(f"{user}: {room} of the {len(extra)} blocks of the extra tilings used")
            extra = extra[np.sort(np.random.default_rng(cfg.seed).choice(len(extra), room, replace=False))]
        genuine_train.append(extra)
    if impostor_heldout_runs is None:
        impostor_train, impostor_held = split_runs(impostor_runs)
    else:
        impostor_train, impostor_held = list(impostor_runs), list(impostor_heldout_runs)
    empty = np.empty((0, spec.channels, spec.size), np.float32)
    if kept_blocks is not None and len(kept_blocks[0]):
        genuine_train.append(np.asarray(kept_blocks[0], np.float32))
    if kept_blocks is not None and len(kept_blocks[1]):
        genuine_held.append(np.asarray(kept_blocks[1], np.float32))
    positives = np.concatenate(genuine_train) if genuine_train else empty
    negatives = np.concatenate(impostor_train) if impostor_train else empty
    local_held = []
    if any(len(r) for r in local_runs):
        local_train, local_held = split_runs([r for r in local_runs if len(r)])
        local = np.concatenate(local_train)
        k = min(len(local), int(round(LOCAL_SHARE * len(positives))))
        chosen = np.sort(np.random.default_rng(cfg.seed + 2).choice(len(local), k, replace=False))
        negatives = np.concatenate((local[chosen], balanced_negatives(negatives, len(positives) - k, cfg.seed)))
    model = CNNModel(spec, mode, encoder_state, cfg).fit(positives, negatives, log=log)
    genuine_logits = [model.logits(r) for r in genuine_held]
    local_held = [r for r in local_held if len(r)]
    impostor_held = list(impostor_held) + local_held
    impostor_logits = [model.logits(r) for r in impostor_held if len(r)]
    model.score_calibration = platt(np.concatenate(genuine_logits),
                                    np.concatenate(impostor_logits) if impostor_logits else np.empty(0))
    genuine_scores = [model.score(r) for r in genuine_held]
    impostor_scores = [model.score(r) for r in impostor_held if len(r)]
    metrics = {
        "heldout_block": _held_metric(genuine_scores, impostor_scores),
        "train_blocks": {"genuine": int(len(positives)), "impostor_available": int(len(negatives))},
        "heldout_blocks": {"genuine": int(sum(map(len, genuine_scores))),
                           "impostor": int(sum(map(len, impostor_scores)))},
    }
    if local_held:  # the cohort's held-out tails, the last of the impostor runs: people at this desk
        metrics["heldout_block_local"] = {**_held_metric(genuine_scores, impostor_scores[-len(local_held):]),
                                          "runs": len(local_held)}
    return FittedUser(model, genuine_scores, impostor_scores, have, spb, metrics,
                      training={**dataclasses.asdict(cfg), "holdout_fraction": HOLDOUT},
                      parity_rows=positives, common_threshold=COMMON_THRESHOLD)


def fit_features(genuine: list[np.ndarray], impostors: dict[str, list[np.ndarray]], *, user: str,
                 cfg: MLPConfig, log=None) -> FittedUser:
    """``genuine``: the user's recordings; ``impostors``: other users' recordings by user. Each
    recording's head trains, its tail is held out."""
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
    n_rows = sum(len(extract_segments(e, spec)[0]) for e in genuine)
    metrics = {
        "heldout_segment": _held_metric(g_scores, i_scores),
        "train_segments": {"genuine": int(len(positives)), "impostor": int(sum(map(len, i_train))),
                           "impostor_users": len(i_train)},
    }
    parity_rows = np.concatenate([positives[:128]] + [r[:8] for r in i_train])
    fold = float(np.max(np.abs(model.score(parity_rows) - model.score_folded(parity_rows))))
    return FittedUser(model, g_scores, i_scores, n_rows,
                      sum(active_seconds(e["t"]) for e in genuine) / max(n_rows, 1), metrics,
                      training={"max_epochs": cfg.max_epochs, "seed": cfg.seed,
                                "unknown_per_class": cfg.unknown_per_class, "holdout_fraction": HOLDOUT,
                                "preprocessing_fold_max_abs_diff": fold},
                      parity_rows=parity_rows)


def fit_patterns(genuine: list[np.ndarray], *, user: str, cfg: PatternsConfig,
                 report_impostors: list[np.ndarray] = ()) -> FittedUser:
    """Learn from ``genuine`` recordings alone (each one's head; the tails are held out);
    ``report_impostors`` are only scored for the manifest's metrics, never fitted or calibrated on."""
    heads, tails = zip(*(split_events(e) for e in genuine))
    model = PatternsModel(cfg).fit(list(heads))
    g_held = [model.rows(t, short_files=False) for t in tails]
    if sum(map(len, g_held)) < MIN_HELDOUT_ROWS:
        raise FitError(f"too little data of {user}: {sum(map(len, g_held))} held-out windows of {cfg.window} "
                       f"actions, at least {MIN_HELDOUT_ROWS} are needed")
    g_scores = [model.score(r) for r in g_held if len(r)]
    n_rows = sum(len(model.rows(e, short_files=False)) for e in genuine)
    metrics = {"train_windows": model.n_train_rows, "map_windows": model.n_map_rows,
               "patterns": model.patterns_info}
    if report_impostors:
        i_scores = [model.score(model.rows(e)) for e in report_impostors]
        metrics["heldout_window_vs_other_users"] = auc_eer(np.concatenate(g_scores), np.concatenate(i_scores))
    return FittedUser(model, g_scores, [], n_rows, sum(active_seconds(e["t"]) for e in genuine) / max(n_rows, 1),
                      metrics,
                      training={"detector": cfg.detector, "n_patterns": cfg.n_patterns, "min_support": cfg.min_support,
                                "seed": cfg.seed, "holdout_fraction": HOLDOUT,
                                "score_map": {"offset": model.offset, "scale": model.scale}},
                      parity_rows=np.concatenate([model.rows(e) for e in heads])[:256],
                      windows=PATTERN_WINDOWS,
                      calibration_note="genuine data only: the longest window the held-out windows can calibrate")


def export_user_model(fitted: FittedUser, out_dir, *, user: str, false_locks_per_hour: float,
                      training_info: dict) -> dict:
    """Calibrate the decision and write the model directory; returns what the commands print."""
    window, threshold, calibration = fitted.decision(false_locks_per_hour)
    fields = fitted.model.export_fields(fitted.parity_rows)
    write_model_dir(
        out_dir, fitted.model.to_onnx(), user=user, family=fields["family"], architecture=fields["architecture"],
        input_spec=fields["input_spec"], output=fields["output"], decision=Decision(window, threshold),
        calibration=calibration, metrics=fitted.metrics,
        training={**training_info, "family": fields["family"], **fitted.training, **fields.get("training", {})},
        parity_rows=fields["parity_rows"], reference=fields["reference"],
        tolerance=fields.get("tolerance", 1e-5), reference_name=fields["reference_name"], extra=fields.get("extra"))
    chosen = next(c for c in calibration["candidates"] if c["window"] == window)
    return {"metrics": fitted.metrics, "window": window, "threshold": threshold, "calibration": chosen,
            "rows": fitted.genuine_rows, "seconds_per_row": fitted.seconds_per_row}
