"""``sessions`` — the honest protocol: session-disjoint, impostors never seen in training.

Each user's sessions split into two folds and the other users into two groups. A model fitted
as ``mouseguard train fit`` fits one (part of the training recordings held out for score
calibration, :mod:`training.user_model`) on fold A of the user against group A's users is
tested on fold B of the user against group B's users (never seen in training), then the other
way round, so every session is tested exactly once as genuine. With ``--impostors seen`` the
other users' sessions alternate between the folds too (Balabit's official test: impostors are
the other enrolled users, on sessions not trained on). Test sessions are cut with remainders
concatenated and every session is counted, including those too short for a block (scored 0.5,
counted in the report). The report adds the same figures against only the impostor sessions
recorded on the owner's capture set-up (:func:`~training.evaluation.common.same_setup`):
Balabit's users come from two set-ups, and an impostor at the owner's desk shares the owner's.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from agent.blocks import DEFAULT_SPEC
from training.data.datasets import load_sessions, session_blocks, session_events
from training.evaluation.common import (SAME_SETUP_FACTOR, auc_row, encoder_for, event_rate, pooled_windows,
                                        protocol_users, same_setup, session_folds, sessions_table)
from training.families.cnn.train import FitConfig
from training.user_model.fit import fit_cnn

def run(args, log) -> dict:
    cfg = FitConfig.from_args(args)
    sessions = load_sessions(args.dataset, args.data)
    users = protocol_users(sessions, args.users)
    encoder_state, spec, encoder_info = encoder_for(args, log, DEFAULT_SPEC)
    test_spec = dataclasses.replace(spec, remainder="concatenate")
    modes = ("plain", "transfer2")
    per_mode = {m: {"genuine": [], "impostor": [], "impostor_own_setup": [], "session_rows": []} for m in modes}
    empty_sessions = set()
    rates = {s.key: event_rate(session_events(s), spec.gap) for s in sessions}  # once, not once per fold
    for user, f, train_s, test_s, negatives, test_impostors in session_folds(sessions, users, args.impostors):
        neg_runs = [session_blocks(s, spec) for ss in negatives.values() for s in ss]
        pos_recordings = [session_events(s) for s in train_s]
        test_sessions = [(s, True) for s in test_s] + [(s, False) for s in test_impostors]
        owner_rate = event_rate(pos_recordings, spec.gap)
        own_setup = {s.key: same_setup(rates[s.key], owner_rate) for s, _ in test_sessions}
        for mode in modes:
            # exactly what `mouseguard train fit` does: split, fit, Platt-calibrate
            fitted = fit_cnn(pos_recordings, neg_runs, spec, user=user, mode=mode,
                             encoder_state=encoder_state, cfg=cfg,
                             min_blocks=10)  # SapiMouse 1-min sessions hold ~16 blocks
            for s, genuine in test_sessions:
                blocks = session_blocks(s, test_spec)
                if len(blocks) == 0:
                    empty_sessions.add(s.key)
                p = fitted.score(blocks) if len(blocks) else np.empty(0)
                per_mode[mode]["genuine" if genuine else "impostor"].append(p)
                if not genuine and own_setup[s.key]:
                    per_mode[mode]["impostor_own_setup"].append(p)
                per_mode[mode]["session_rows"].append(
                    {"model_user": user, "fold": f, "session": s.key, "genuine": genuine,
                     "same_setup": own_setup[s.key], "blocks": int(len(p)),
                     "score": float(p.mean()) if len(p) else 0.5})
        log(f"sessions {user} fold {f}: {len(train_s)} training sessions, {len(test_sessions)} test sessions")
    summary, own_setup_summary = {}, {}
    rocs = {}
    for mode, d in per_mode.items():
        summary[mode] = auc_row(d["genuine"], d["impostor"])
        # impostors at the owner's capture set-up only: what someone at the owner's desk looks like
        own_setup_summary[mode] = auc_row(d["genuine"], d["impostor_own_setup"])
        for k in (1, 5):
            rocs[f"{mode} k={k}"] = (pooled_windows(d["genuine"], k), pooled_windows(d["impostor"], k))
    return {"protocol": "sessions", "impostors": args.impostors, "summary": summary,
            "summary_own_setup_impostors": own_setup_summary, "encoder": encoder_info,
            "sessions_without_blocks": sorted(empty_sessions),
            "test_sessions": {m: len(d["session_rows"]) for m, d in per_mode.items()},
            "session_rows": per_mode["transfer2"]["session_rows"], "_rocs": rocs}


def markdown_lines(report: dict) -> list[str]:
    seen = ("test impostors are the other users, whose other sessions trained the model (as in Balabit's "
            "official test)" if report.get("impostors") == "seen" else "test impostors never seen in training")
    lines = [f"Session-disjoint; {seen}; every session counted "
             f"({len(report['sessions_without_blocks'])} sessions had no block and score 0.5).", ""]
    lines += sessions_table({m.upper(): r for m, r in report["summary"].items()}, "mode", "block")
    lines += ["", "The same, with only the impostor sessions recorded on the owner's capture set-up (event rate "
                  f"within {SAME_SETUP_FACTOR:g}x of the owner's training recordings): someone at the owner's "
                  "desk.", ""]
    own = {m.upper(): r for m, r in report["summary_own_setup_impostors"].items()}
    return lines + sessions_table(own, "mode", "block")
