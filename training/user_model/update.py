"""A template update: the owner's model refitted on enrolment data plus blocks the agent kept
as clearly theirs since, taken only when its held-out check is no worse (issue 22).

A person's movement drifts (a new mouse, another monitor, an injury), and a model frozen at
enrolment turns the drift into false locks. The agent keeps blocks it scored well above the
threshold outside any suspicious period (:mod:`agent.template`); this refits on them. What
keeps an impostor who stays just below the lock threshold from pulling the model toward
themselves:

* the new blocks are at most :attr:`Guard.max_share` of the genuine training blocks (the
  newest are kept when there are more), so the enrolment data always outweighs them;
* the enrolment data (its kept blocks, or its recordings) is always trained on and its held-out
  part always checked (the anchor): the candidate must not score the owner's enrolment hold-out
  lower;
* a slice of the new blocks (the last ``HOLDOUT`` of them, in time) is held out too, and the
  candidate must accept it about as well as the current model. It is not calibrated on: the
  agent kept those blocks because they scored high, so they cannot say how low the owner's
  scores go (on Balabit, calibrating on them or not gave the same false locks in all,
  docs/template-update.md);
* the candidate must separate held-out owner blocks from held-out pool impostors no worse
  (AUC) and let no more pool impostor blocks pass its threshold.

The decision window is the one enrolment chose, never recalibrated: only the threshold is,
at that window. Calibration picks the window that locks half-impostor runs fastest, and a
refit's slightly different held-out scores can tip that choice; on Balabit one update moved
user15's window from 10 to 5 blocks, and the owner's false locks went from 1 to 5 over the
same later sessions (docs/template-update.md). A shorter window is noisier for the owner,
whatever the held-out check said about single blocks. And the candidate's expected false
locks on the owner's enrolment hold-out, at that window and its new threshold, must not
exceed the current model's (or the target, whichever is higher), nor may it lock that
hold-out more often.

"No worse" allows a small tolerance plus what two fits of the same data differ by on a
hold-out that size (:func:`_noise`): an enrolment holds out a hundred blocks or so, where one
block more below the threshold is a percent.

Any check failing refuses the update with its reason and leaves the model as it is. Scores of
the current model come from its ONNX file (what the agent runs); the candidate's from the
fitted network, which the export checks against its ONNX file.
"""

from __future__ import annotations

import dataclasses
import datetime
from pathlib import Path

import numpy as np

import models
from agent.decision import simulate_locks
from agent.model_dir import load_model_dir
from agent.scorer import Scorer
from training.enrol import pool_impostors
from training.errors import FitError
from training.evaluation.metrics import auc_eer
from training.families.cnn.encoder import load_encoder
from training.families.cnn.train import FitConfig
from training.user_model.calibrate import WINDOWS, calibrate, rate_below, rolling_means
from training.user_model.fit import export_user_model, fit_cnn
from training.user_model.owner import as_enrolment
from training.user_model.split import HOLDOUT, split_at, training_heads

#: The most update records a manifest keeps (the newest).
MAX_HISTORY = 20


@dataclasses.dataclass(frozen=True)
class Guard:
    """What a candidate must satisfy; ``enabled=False`` is the unguarded comparison of the
    measurement (every kept block trains, nothing is refused), never the agent's setting."""

    #: The most the new blocks may make up of the genuine training blocks.
    max_share: float = 0.3
    #: How much lower the candidate's held-out AUC (owner vs pool impostors) may be.
    auc_tolerance: float = 0.01
    #: How much larger the share of the owner's enrolment hold-out below the threshold may get.
    anchor_tolerance: float = 0.02
    #: The same for the held-out slice of the new blocks: the current model scored all of them
    #: above its threshold by selection, so the candidate is given more room there.
    new_tolerance: float = 0.05
    #: How much larger the share of held-out pool impostor blocks above the threshold may get.
    impostor_tolerance: float = 0.02
    #: Fewer new blocks than this are not worth a refit.
    min_new_blocks: int = 30
    #: A kept block trains only if the current model scores it at least this far above its
    #: threshold (what the agent keeps, agent/template.py), checked again here: the file of
    #: kept blocks could have been planted.
    margin: float = 0.3
    #: More than this share of the offered blocks failing that test refuses the update:
    #: someone else's movement, or a planted file, not the owner's drift.
    max_unclear_share: float = 0.2
    #: How much the candidate's expected false locks on the enrolment hold-out may exceed the
    #: current model's (or the target, the higher), relatively: the estimate is a normal tail
    #: fitted on a hundred or so rolling means, and two fits of the same data differ by that.
    false_lock_tolerance: float = 0.25
    enabled: bool = True


def owner_false_locks(anchor_runs: list[np.ndarray], window: int, threshold: float,
                      seconds_per_block: float) -> dict:
    """What the decision (``window``, ``threshold``) does to the owner's enrolment hold-out
    (block scores per recording): the false locks per 8 active hours it expects (the share of
    rolling means below the threshold, as calibration estimates it, times the decisions in 8 h)
    and the locks a replay of the hold-out gives."""
    runs = [r for r in anchor_runs if len(r)]
    means = np.concatenate([rolling_means(r, window) for r in runs]) if runs else np.empty(0)
    expected = None
    if len(means) and seconds_per_block > 0:
        expected = float(rate_below(means, threshold) * 8 * 3600.0 / seconds_per_block)
    return {"expected_false_locks_per_8h": expected,
            "heldout_false_locks": int(sum(simulate_locks(r, window, threshold)[0] for r in runs))}


def _summary(scores: dict[str, np.ndarray], threshold: float) -> dict:
    owner = np.concatenate((scores["anchor"], scores["new"]))
    return {
        "threshold": float(threshold),
        "heldout_auc": auc_eer(owner, scores["impostor"])["auc"],
        "anchor_mean": float(np.mean(scores["anchor"])),
        "anchor_below_threshold": float(np.mean(scores["anchor"] < threshold)),
        "new_mean": float(np.mean(scores["new"])) if len(scores["new"]) else None,
        "new_below_threshold": float(np.mean(scores["new"] < threshold)) if len(scores["new"]) else 0.0,
        "impostor_mean": float(np.mean(scores["impostor"])),
        "impostor_above_threshold": float(np.mean(scores["impostor"] >= threshold)),
        "blocks": {k: int(len(v)) for k, v in scores.items()},
    }


#: One-sided 95 %: a rise in a held-out share smaller than this many standard errors of the
#: difference is what two fits of the same data differ by on a hold-out of that size.
Z_NOISE = 1.645


def _noise(rate: float, n: int) -> float:
    """The standard error of the difference of two shares ``rate`` measured on ``n`` blocks each."""
    return Z_NOISE * float(np.sqrt(2.0 * max(rate, 1.0 / max(n, 1)) * (1.0 - rate) / max(n, 1)))


def refusal(before: dict, after: dict, guard: Guard) -> str | None:
    """Why the candidate (``after``) is refused against the current model (``before``), or None."""
    if not guard.enabled:
        return None
    if (before["heldout_auc"] is not None and after["heldout_auc"] is not None
            and after["heldout_auc"] < before["heldout_auc"] - guard.auc_tolerance):
        return (f"held-out AUC would fall from {before['heldout_auc']:.3f} to {after['heldout_auc']:.3f} "
                f"(owner against pool impostors)")
    n = before.get("blocks", {})
    if after["anchor_below_threshold"] > (before["anchor_below_threshold"] + guard.anchor_tolerance
                                          + _noise(before["anchor_below_threshold"], n.get("anchor", 0))):
        return (f"the owner's enrolment hold-out would score lower: {100 * after['anchor_below_threshold']:.1f} % "
                f"of its blocks below the threshold instead of {100 * before['anchor_below_threshold']:.1f} %")
    if after["new_below_threshold"] > (before["new_below_threshold"] + guard.new_tolerance
                                       + _noise(before["new_below_threshold"], n.get("new", 0))):
        return (f"the held-out new blocks would score lower: {100 * after['new_below_threshold']:.1f} % below "
                f"the threshold instead of {100 * before['new_below_threshold']:.1f} %")
    if after["impostor_above_threshold"] > (before["impostor_above_threshold"] + guard.impostor_tolerance
                                            + _noise(before["impostor_above_threshold"], n.get("impostor", 0))):
        return (f"more held-out pool impostor blocks would pass: {100 * after['impostor_above_threshold']:.1f} % "
                f"instead of {100 * before['impostor_above_threshold']:.1f} %")
    b8, a8 = before.get("expected_false_locks_per_8h"), after.get("expected_false_locks_per_8h")
    if a8 is not None:
        allowed = max(b8 or 0.0, before.get("target_false_locks_per_8h") or 0.0) * (1.0 + guard.false_lock_tolerance)
        if a8 > allowed:
            return (f"the owner would be locked out more often: {a8:.2f} expected false locks per 8 active hours "
                    f"on the enrolment hold-out instead of {b8 or 0.0:.2f} (window {after.get('window')})")
    if after.get("heldout_false_locks", 0) > before.get("heldout_false_locks", 0):
        return (f"the owner's enrolment hold-out would lock {after['heldout_false_locks']} times instead of "
                f"{before.get('heldout_false_locks', 0)}")
    return None


def split_new(new_blocks: np.ndarray, enrolment_train_blocks: int, guard: Guard) -> tuple[np.ndarray, np.ndarray]:
    """The new blocks (time order) as ``(train, held)``: the last ``HOLDOUT`` held out, the
    newest of the rest up to ``max_share`` of the genuine training set (enrolment + new)."""
    n = len(new_blocks)
    held_n = max(1, int(round(n * HOLDOUT))) if n >= 5 else 0
    train, held = new_blocks[: n - held_n], new_blocks[n - held_n:]
    if guard.enabled:
        cap = int(guard.max_share / (1.0 - guard.max_share) * enrolment_train_blocks)
        train = train[len(train) - min(cap, len(train)):]
    return train, held


def update(model_dir, recordings: list[np.ndarray], new_blocks: np.ndarray, out_dir=None, *,
           guard: Guard = Guard(), cfg: FitConfig = FitConfig(), false_locks_per_8h: float = 1.0,
           encoder_dir=None, pool_path=None, cohort: dict[str, np.ndarray] | None = None, log=None,
           exclude_pool_users=()) -> dict:
    """Refit the model in ``model_dir`` on ``recordings`` (its enrolment's events, or the
    enrolment blocks kept instead, :mod:`training.user_model.owner`) plus
    ``new_blocks`` (kept by the agent, oldest first); write it to ``out_dir`` (default: over
    ``model_dir``, atomically) only if the guard accepts it. Returns the report: ``accepted``,
    ``reason`` (why refused), the blocks offered / trained / held out, and ``before`` /
    ``after`` (held-out AUC, owner and impostor scores, threshold). Raises FitError when the
    model cannot be updated at all (not an enrolled CNN, blocks of another spec, too little data).
    """
    model_dir = Path(model_dir)
    current = load_model_dir(model_dir)
    training = current.manifest.get("training") or {}
    if current.manifest.get("family") != "cnn" or training.get("dataset") != "enrolment":
        raise FitError(f"{model_dir} was not made by enrolment (a CNN enrolled here); only such a model is updated")
    encoder_dir = encoder_dir or models.ENCODER
    pool_path = pool_path or models.BACKGROUND_POOL
    encoder_state, spec, _ = load_encoder(encoder_dir)
    if current.spec != spec:
        raise FitError("the model was cut with another block spec than the shipped encoder's; re-enrol instead")
    new_blocks = np.ascontiguousarray(new_blocks, dtype=np.float32)
    if new_blocks.ndim != 3 or new_blocks.shape[1:] != (spec.channels, spec.size):
        raise FitError(f"kept blocks of shape {new_blocks.shape} were not cut with this model's block spec")
    if len(new_blocks) < guard.min_new_blocks:
        raise FitError(f"{len(new_blocks)} kept blocks, at least {guard.min_new_blocks} are needed for an update")

    scorer = Scorer(current)
    offered = len(new_blocks)
    unclear = 0
    if guard.enabled:
        clear = scorer.score(new_blocks) >= min(current.decision.threshold + guard.margin, 0.99)
        unclear = int(offered - clear.sum())
        new_blocks = new_blocks[clear]
        if unclear > guard.max_unclear_share * offered:
            return {"accepted": False, "blocks_offered": offered, "blocks_unclear": unclear, "guard": True,
                    "reason": f"{unclear} of the {offered} kept blocks do not score as clearly yours with the "
                              "current model (someone else's movement, or a planted file)",
                    "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    recordings = as_enrolment(recordings, spec, cfg.tilings)  # cut once, for the split here and the fit
    runs = list(recordings.runs)
    heads = training_heads([len(r) for r in runs])
    enrol_train, anchor_held = split_at(runs, heads)
    new_train, new_held = split_new(new_blocks, sum(map(len, enrol_train)), guard)
    impostor_train, impostor_held, _, _ = pool_impostors(recordings, spec, pool_path, cfg, exclude_pool_users, log)
    if log:
        log(f"update: {len(new_blocks)} kept blocks offered, {len(new_train)} train "
            f"(enrolment: {sum(map(len, enrol_train))}), {len(new_held)} held out")
    fitted = fit_cnn(recordings, impostor_train, spec, user=current.user, mode="transfer2",
                     encoder_state=encoder_state, cfg=cfg, impostor_heldout_runs=impostor_held,
                     local_runs=list((cohort or {}).values()), log=log, kept_blocks=(new_train, new_held[:0]))
    held = {"anchor": np.concatenate(anchor_held) if anchor_held else np.empty((0, spec.channels, spec.size)),
            "new": new_held, "impostor": np.concatenate([r for r in impostor_held if len(r)])}
    before_scores = {k: scorer.score(v) if len(v) else np.empty(0) for k, v in held.items()}
    after_scores = {k: fitted.score(v) if len(v) else np.empty(0) for k, v in held.items()}
    false_locks_per_hour = false_locks_per_8h / 8.0
    window = current.decision.window
    free_window = _free_window(fitted, false_locks_per_hour)
    if guard.enabled:
        # Only the threshold is recalibrated, at the enrolled window (the module's docstring).
        fitted.windows = (window,)
        fitted.calibration_note = (f"template update: the window kept at the enrolled {window} blocks "
                                   f"(a free calibration would pick {free_window}); the threshold recalibrated")
    try:
        window, threshold, _ = fitted.decision(false_locks_per_hour)
    except ValueError as exc:
        raise FitError(f"cannot recalibrate the threshold at the window of {window} blocks: {exc}") from None
    spb = fitted.seconds_per_row
    before = {**_summary(before_scores, current.decision.threshold), "window": current.decision.window,
              **owner_false_locks([scorer.score(r) for r in anchor_held], current.decision.window,
                                  current.decision.threshold, spb),
              "target_false_locks_per_8h": float(false_locks_per_8h)}
    after = {**_summary(after_scores, threshold), "window": window, "free_window": free_window,
             **owner_false_locks([fitted.score(r) for r in anchor_held], window, threshold, spb)}
    reason = refusal(before, after, guard)
    report = {"accepted": reason is None, "reason": reason, "blocks_offered": offered, "blocks_unclear": unclear,
              "blocks_trained": int(len(new_train)), "blocks_held_out": int(len(new_held)),
              "enrolment_blocks_trained": int(sum(map(len, enrol_train))), "guard": guard.enabled,
              "before": before, "after": after,
              "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    if reason is not None:
        return report
    history = [h for h in training.get("updates", []) if isinstance(h, dict)]
    record = {k: report[k] for k in ("time", "blocks_offered", "blocks_trained", "blocks_held_out")}
    record.update({"heldout_auc": [before["heldout_auc"], after["heldout_auc"]],
                   "threshold": [before["threshold"], after["threshold"]],
                   "window": [before["window"], after["window"]],
                   "expected_false_locks_per_8h": [before["expected_false_locks_per_8h"],
                                                   after["expected_false_locks_per_8h"]]})
    info = {k: v for k, v in training.items() if k in ("dataset", "sources", "encoder", "background_pool",
                                                         "pool_users_left_out", "background_pool_recast_to",
                                                         "cohort")}
    if cohort is not None:
        info["cohort"] = {name: int(len(blocks)) for name, blocks in cohort.items() if len(blocks)}
    info["enrolled"] = training.get("enrolled") or current.manifest.get("created")
    info["updates"] = (history + [record])[-MAX_HISTORY:]
    export_user_model(fitted, out_dir or model_dir, user=current.user, false_locks_per_hour=false_locks_per_hour,
                      training_info=info)
    return report


def _free_window(fitted, false_locks_per_hour: float) -> int | None:
    """The window a calibration free to choose would take for the candidate (for the record)."""
    try:
        return calibrate(fitted.genuine_held_scores, fitted.impostor_held_scores, fitted.seconds_per_row,
                         false_locks_per_hour, windows=WINDOWS, common=fitted.common_threshold)[0]
    except ValueError:
        return None


def describe(report: dict) -> str:
    """The lines a person (and the agent's log) reads."""
    head = "model updated" if report["accepted"] else f"update refused: {report['reason']}"
    if "before" not in report:
        return f"{head}\nkept blocks: {report['blocks_offered']} offered, {report['blocks_unclear']} not clearly yours"
    b, a = report["before"], report["after"]

    def auc(x):
        return "n/a" if x is None else f"{x:.3f}"

    def per8(x):
        return "n/a" if x is None else f"{x:.2f}"

    kept = "" if a.get("free_window") in (None, a["window"]) else f" (kept; free choice: {a['free_window']})"
    replay = (b.get("heldout_false_locks", 0), a.get("heldout_false_locks", 0))
    # (one line of the model_updated fleet event, which holds 400 characters: no "0 -> 0")
    replay_text = f", hold-out replay locks {replay[0]} -> {replay[1]}" if any(replay) else ""

    return "\n".join([
        head,
        f"kept blocks: {report['blocks_offered']} offered ({report['blocks_unclear']} not clearly yours), "
        f"{report['blocks_trained']} trained beside "
        f"{report['enrolment_blocks_trained']} enrolment blocks, {report['blocks_held_out']} held out",
        f"held-out AUC {auc(b['heldout_auc'])} -> {auc(a['heldout_auc'])}; threshold {b['threshold']:.3f} -> "
        f"{a['threshold']:.3f}; window {b['window']} -> {a['window']}{kept}",
        f"owner's expected false locks per 8 h {per8(b.get('expected_false_locks_per_8h'))} -> "
        f"{per8(a.get('expected_false_locks_per_8h'))}{replay_text}",
        f"owner enrolment hold-out below threshold {100 * b['anchor_below_threshold']:.1f} % -> "
        f"{100 * a['anchor_below_threshold']:.1f} %; pool impostor blocks passing "
        f"{100 * b['impostor_above_threshold']:.1f} % -> {100 * a['impostor_above_threshold']:.1f} %",
    ])
