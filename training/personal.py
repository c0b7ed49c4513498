"""One user's model, end to end: split, fit, score held-out data, calibrate, export.

Used by ``mouseguard train fit`` and by enrolment. Part of the owner's movement is held out —
the last whole recordings when there are two or more, else the tail of the one — and part of
the impostors' (the tail of each session, or whole users never trained on, as enrolment does):
the held-out part, never seen in training, scores the model and calibrates the decision, so
the threshold is set on blocks the model has not learnt (:func:`training_heads`).
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy.special import expit  # the logistic function, without overflow warnings for large logits

from agent.blocks import BlockSpec, cut_blocks
from agent.model_dir import Decision
from agent.recorder import active_seconds
from training.calibrate import COMMON_THRESHOLD, calibrate
from training.export import export_model_dir
from training.fit import FitConfig, FitError, fit_user, predict_logits
from training.metrics import auc_eer

HOLDOUT = 0.2
#: Fewer genuine blocks than this cannot both train a model and calibrate its threshold.
MIN_BLOCKS = 80
#: The fewest held-out blocks the calibration can set a threshold on (8 rolling means of the
#: shortest window, :mod:`training.calibrate`): a short single recording holds out this many,
#: up to a third of it, even where ``HOLDOUT`` would give fewer.
MIN_HELD = 10


def _tails(lengths: list[int], holdout: float) -> list[int]:
    return [n - int(round(n * holdout)) for n in lengths]


def training_heads(lengths: list[int], holdout: float = HOLDOUT) -> list[int]:
    """How many leading blocks of each time-ordered run train; the rest of each is held out.

    Whole runs are held out (the last ones, about ``holdout`` of the blocks) when there are two
    or more, else the tail of each. The threshold is set on held-out genuine blocks. Tails of
    the sessions the model trained on score higher than a new day's session does, and a
    threshold set on them locked the genuine user of the demo on a session of their own; whole
    held-out sessions show the model what a new session looks like. With two runs as well: in
    the ``enrolment`` protocol (Balabit, two sessions each) holding out the second whole
    session instead of both tails halved the false locks (33.6 -> 15.0 per 8 active hours) at
    a slower lock (median 25 s -> 100 s) and the same global AUCs. Runs of very different
    length fall back to tails, when the whole runs held out would hold under a tenth of the
    blocks (too little to calibrate on) or over nine tenths (too little left to learn from:
    short tries of an enrolment, then a long recording).
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


def _split(runs, heads):
    return [r[:c] for r, c in zip(runs, heads) if c], [r[c:] for r, c in zip(runs, heads) if c < len(r)]


def split_runs(runs: list[np.ndarray], holdout: float = HOLDOUT):
    """Split each time-ordered run into a training head and a held-out tail."""
    return _split(runs, _tails([len(r) for r in runs], holdout))


def extra_tilings(events: np.ndarray, spec: BlockSpec, tilings: int, until: float) -> np.ndarray:
    """The blocks of ``events`` cut again from ``tilings - 1`` later starts (spread over one
    block), keeping those that end by ``until``: more views of the same movement to learn from.

    The agent cuts a stream wherever it happens to start, so a block boundary falls anywhere in
    a movement; training on one tiling shows the network each movement cut one way only. With
    four tilings (sessions protocol, Balabit, TRANSFER2, 2026-11-22; block / 5-block / session
    AUC) 0.872 / 0.891 / 0.903 (one tiling, mean of two seeds) -> 0.884 / 0.905 / 0.921, for
    3.3x the training time; two tilings gave 0.879 / 0.898 / 0.914, four tilings with half the
    epochs 0.881 / 0.900 / 0.915.
    """
    out = [np.empty((0, spec.channels, spec.size), np.float32)]
    for i in range(1, tilings):
        blocks, ends = cut_blocks(events[i * spec.size // tilings:], spec)
        out.append(blocks[ends <= until])
    return np.concatenate(out)


@dataclasses.dataclass
class FittedUser:
    """A user's network with its score calibration and the held-out blocks' calibrated scores."""

    model: object
    score_calibration: tuple[float, float]
    genuine_held_scores: list[np.ndarray]
    impostor_held_scores: list[np.ndarray]
    positives: np.ndarray
    negatives: np.ndarray
    genuine_blocks: int  # of the user's recordings, cut once as the agent cuts
    seconds_per_block: float  # of active movement, over those blocks

    def score(self, blocks: np.ndarray) -> np.ndarray:
        """Calibrated P(genuine), as the exported ONNX model computes it."""
        a, b = self.score_calibration
        return expit(a * predict_logits(self.model, blocks) + b)

    def decision(self, false_locks_per_hour: float) -> tuple[int, float, dict]:
        """The decision window and threshold from the held-out scores (:func:`calibrate`): the
        common threshold on the Platt scale wherever the held-out owner allows it."""
        return calibrate(self.genuine_held_scores, self.impostor_held_scores, self.seconds_per_block,
                         false_locks_per_hour, common=COMMON_THRESHOLD)


#: The share of Platt's fitted shift that is kept (:func:`platt`).
PLATT_SHIFT_KEPT = 0.5


def platt(genuine_logits: np.ndarray, impostor_logits: np.ndarray) -> tuple[float, float]:
    """Logistic regression of genuine-vs-impostor on the logit, classes weighted equally, with
    its shift (intercept) shrunk towards zero by :data:`PLATT_SHIFT_KEPT`.

    Regularised (C=1): held-out impostors from another data set are separated perfectly, and
    an unregularised fit would then blow the slope up. A slope that comes out non-positive
    (a model no better than chance on held-out data) leaves the scores as they are.

    Why shrink the shift: the network trains on balanced classes, so its logit 0 is the same
    even-odds point for every user; the shift moves it to where one or two held-out sessions
    put it, and that estimate carries the held-out session's own mood. Pooled over users the
    fitted shift made scores less comparable than raw logits (sessions protocol, block /
    5-block / session AUC: 0.881 / 0.900 / 0.917 vs 0.887 / 0.906 / 0.918); dropping it cost
    where the impostors were seen in training (session AUC 0.982 -> 0.977), whose fit uses
    those very users. Half of it: ``sessions`` 0.880 / 0.898 / 0.916 -> 0.883 / 0.904 / 0.925,
    ``enrolment`` session AUC 0.920 -> 0.936, SapiMouse unseen 5-block AUC 0.930 -> 0.937, seen
    level, fewer false locks in ``detection`` and fewer locks in an impostor's first minute
    (README, Accuracy, has the sweep and every figure).
    """
    from sklearn.linear_model import LogisticRegression

    if len(genuine_logits) == 0 or len(impostor_logits) == 0:
        return 1.0, 0.0
    x = np.concatenate((genuine_logits, impostor_logits)).reshape(-1, 1)
    y = np.concatenate((np.ones(len(genuine_logits)), np.zeros(len(impostor_logits))))
    lr = LogisticRegression(C=1.0, class_weight="balanced").fit(x, y)
    scale, shift = float(lr.coef_[0, 0]), float(lr.intercept_[0])
    return (scale, PLATT_SHIFT_KEPT * shift) if scale > 0 else (1.0, 0.0)


def fit_calibrated(genuine_recordings, impostor_runs, spec: BlockSpec, *, user: str, mode: str, encoder_state,
                   cfg: FitConfig, impostor_heldout_runs=None, log=None, min_blocks: int = MIN_BLOCKS) -> FittedUser:
    """Cut, split, fit on the training part, Platt-calibrate on the held-out part.

    ``genuine_recordings``: the user's event arrays, in time order; the training part of each
    is cut ``cfg.tilings`` ways (:func:`extra_tilings`), the held-out part once, as the agent
    cuts. ``impostor_runs``: other users' blocks, each run's tail held out (:func:`split_runs`), unless
    ``impostor_heldout_runs`` gives separate impostors (whole users never seen in training) for
    the held-out side.
    """
    cut = [cut_blocks(events, spec) for events in genuine_recordings]
    runs = [blocks for blocks, _ in cut]
    have = sum(map(len, runs))
    spb = sum(active_seconds(events["t"], spec.gap) for events in genuine_recordings) / max(have, 1)
    if log:
        log(f"{user}: {have} blocks from {len(runs)} recording(s), {spb:.1f} s of movement per block")
    if have < min_blocks:
        more = (f"about {(min_blocks - have) * spb / 60:.0f} more minutes of mouse movement" if have
                else "the recordings hold no movement a block can be cut from")
        raise FitError(f"too little data of {user}: {have} blocks, at least {min_blocks} are needed ({more})")
    heads = training_heads([len(r) for r in runs])
    genuine_train, genuine_held = _split(runs, heads)
    extra = [extra_tilings(events, spec, cfg.tilings, until=ends[c - 1])
             for events, (_, ends), c in zip(genuine_recordings, cut, heads) if c and cfg.tilings > 1]
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
    positives = np.concatenate(genuine_train) if genuine_train else empty
    negatives = np.concatenate(impostor_train) if impostor_train else empty
    model = fit_user(positives, negatives, spec, mode, encoder_state, cfg, log=log)
    genuine_logits = [predict_logits(model, r) for r in genuine_held]
    impostor_logits = [predict_logits(model, r) for r in impostor_held if len(r)]
    a, b = platt(np.concatenate(genuine_logits),
                 np.concatenate(impostor_logits) if impostor_logits else np.empty(0))

    def squash(logits):
        return expit(a * logits + b)

    return FittedUser(model, (a, b), [squash(g) for g in genuine_logits], [squash(i) for i in impostor_logits],
                      positives, negatives, have, spb)


def train_personal_model(genuine_recordings: list[np.ndarray], impostor_runs: list[np.ndarray], spec: BlockSpec,
                         out_dir, *, user: str, mode: str, encoder_state, cfg: FitConfig,
                         false_locks_per_hour: float, training_info: dict,
                         impostor_heldout_runs: list[np.ndarray] | None = None, log=None,
                         min_blocks: int = MIN_BLOCKS) -> dict:
    """Fit, calibrate and export; returns the manifest's metrics and decision summary."""
    fitted = fit_calibrated(genuine_recordings, impostor_runs, spec, user=user, mode=mode, encoder_state=encoder_state,
                            cfg=cfg, impostor_heldout_runs=impostor_heldout_runs, log=log, min_blocks=min_blocks)
    genuine_scores, impostor_scores = fitted.genuine_held_scores, fitted.impostor_held_scores
    window, threshold, calibration = fitted.decision(false_locks_per_hour)
    block_metrics = auc_eer(np.concatenate(genuine_scores),
                            np.concatenate(impostor_scores) if impostor_scores else [])
    metrics = {
        "heldout_block": block_metrics,
        "train_blocks": {"genuine": int(len(fitted.positives)), "impostor_available": int(len(fitted.negatives))},
        "heldout_blocks": {"genuine": int(sum(map(len, genuine_scores))),
                           "impostor": int(sum(map(len, impostor_scores)))},
    }
    export_model_dir(fitted.model, spec, out_dir, user=user, decision=Decision(window, threshold),
                     calibration=calibration, metrics=metrics,
                     training={**training_info, "mode": mode, **dataclasses.asdict(cfg), "holdout_fraction": HOLDOUT},
                     parity_blocks=fitted.positives, score_calibration=fitted.score_calibration)
    chosen = next(c for c in calibration["candidates"] if c["window"] == window)
    return {"metrics": metrics, "window": window, "threshold": threshold, "calibration": chosen,
            "blocks": fitted.genuine_blocks, "seconds_per_block": fitted.seconds_per_block}
