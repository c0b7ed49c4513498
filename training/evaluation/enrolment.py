"""The enrolment protocol: the product path, judged on people it has never met.

``mouseguard enroll --from`` on the first ``--enrol-sessions`` sessions of a user, exactly as
a person would run it (shipped encoder, shipped pool, calibration, ONNX export), then
``score`` and a replay through the agent for every other session of the data set's users in
the same group. The users split in two groups (alternating); while one group is tested, its
users are left out of the pool, so every test impostor is someone the model never saw. The
other group stays in the pool: that is what the shipped pool offers a real enrolment (people
from the same kind of set-up), but never the people being tested. With ``--users``, only those
users are enrolled and only they are the impostors: SapiMouse users 73–120 against an encoder
pre-trained on users 1–72 meet nobody the encoder or the pool has seen.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

import models
from agent.config import AgentConfig
from agent.model_dir import load_model_dir
from agent.scorer import Scorer
from training.data.datasets import load_sessions, session_blocks, session_events
from training.data.pool import load_pool
from training.enrol import enrol
from training.errors import FitError
from training.evaluation.common import (auc_row, event_rate, false_lock_summary, fmt, protocol_users, rates_text,
                                        replay_session, same_setup, sessions_table, setup_lines,
                                        time_to_lock_by_setup, time_to_lock_summary)
from training.evaluation.metrics import auc_eer
from training.families.cnn.encoder import load_encoder
from training.families.cnn.train import FitConfig


#: SapiMouse's 3-minute sessions hold ~60 blocks, under `enroll`'s minimum of 80; the protocol
#: enrols them anyway (as the data set's own protocol does), the report says so.
ENROL_MIN_BLOCKS = 10


def run(args, log) -> dict:
    cfg = FitConfig.from_args(args)
    encoder_dir = Path(args.encoder) if args.encoder else models.ENCODER
    _, spec, encoder_info = load_encoder(encoder_dir)
    pool_users = load_pool(models.BACKGROUND_POOL, spec).users
    sessions = load_sessions(args.dataset, args.data)
    all_users = list(dict.fromkeys(s.user for s in sessions))
    wanted = set(protocol_users(sessions, args.users))
    grace = float(AgentConfig().grace_seconds)
    groups = (all_users[0::2], all_users[1::2])
    rows, per_user, genuine_replays, impostor_replays = [], [], [], []
    rates = {s.key: event_rate(session_events(s), spec.gap) for s in sessions}  # once, not once per user
    block_scores = {True: [], False: []}
    for group in groups:
        exclude = [f"{args.dataset}/{u}" for u in group]
        for user in (u for u in group if u in wanted):
            # SapiMouse: enrol on the 3-minute session, test on the 1-minute one (the data set's own design)
            own = sorted((s for s in sessions if s.user == user), key=lambda s: s.kind == "1min")
            enrol_s, test_own = own[:args.enrol_sessions], own[args.enrol_sessions:]
            if not test_own:
                log(f"enrolment {user}: no session left to test after {args.enrol_sessions} for enrolment; skipped")
                per_user.append({"user": user, "skipped": "no test session"})
                continue
            with tempfile.TemporaryDirectory() as tmp:
                try:
                    summary = enrol([session_events(s) for s in enrol_s], user, Path(tmp) / "model",
                                    encoder_dir=encoder_dir, cfg=cfg, false_locks_per_8h=args.false_locks_per_8h,
                                    exclude_pool_users=exclude, min_blocks=ENROL_MIN_BLOCKS)
                except (FitError, ValueError) as exc:  # enroll would refuse this person too: count it
                    log(f"enrolment {user}: not enrolled ({exc})")
                    per_user.append({"user": user, "skipped": f"not enrolled: {exc}"})
                    continue
                model = load_model_dir(Path(tmp) / "model")
                scorer = Scorer(model)
                window, threshold = model.decision.window, model.decision.threshold
                # impostors: the tested group's other users (within --users, so an encoder
                # pre-trained on the rest has never seen anyone tested)
                tests = [(s, True) for s in test_own] + [(s, False) for s in sessions
                                                         if s.user in group and s.user in wanted and s.user != user]
                owner_rate = event_rate([session_events(s) for s in enrol_s], spec.gap)
                g, i = [], []
                for s, genuine in tests:
                    blocks = session_blocks(s, spec)
                    p = scorer.score(blocks) if len(blocks) else np.empty(0)
                    score = float(p.mean()) if len(p) else 0.5
                    (g if genuine else i).append(score)
                    block_scores[genuine].append(p)
                    replay_row = {"model_user": user, "session": s.key,
                                  "same_setup": same_setup(rates[s.key], owner_rate),
                                  **replay_session(session_events(s), scorer, spec, window, threshold, grace)}
                    (genuine_replays if genuine else impostor_replays).append(replay_row)
                    rows.append({"model_user": user, "session": s.key, "genuine": genuine, "blocks": int(len(p)),
                                 "score": score})
            m = auc_eer(np.array(g), np.array(i))
            per_user.append({"user": user, "enrolled_on": [s.key for s in enrol_s], "window": window,
                             "threshold": threshold, "session_auc": m["auc"],
                             "heldout_block_auc": summary["metrics"]["heldout_block"]["auc"]})
            log(f"enrolment {user}: session AUC {m['auc']:.3f}, decision {window} block(s) < {threshold:.3f}")
    summary = auc_row(block_scores[True], block_scores[False])
    skipped = [u for u in per_user if "skipped" in u]
    aucs = [u["session_auc"] for u in per_user if u.get("session_auc") is not None]
    return {"protocol": "enrolment", "encoder": {"source": str(encoder_dir), **encoder_info},
            "pool": {"users": len(pool_users),
                     "dataset_users_in_pool": sum(u.startswith(f"{args.dataset}/") for u in pool_users)},
            "users_not_enrolled": len(skipped), "enrol_sessions": args.enrol_sessions,
            "min_enrol_blocks": ENROL_MIN_BLOCKS, "summary": summary,
            "mean_user_session_auc": float(np.mean(aucs)) if aucs else None, "per_user": per_user,
            "false_locks": false_lock_summary(genuine_replays), "time_to_lock": time_to_lock_summary(impostor_replays),
            "time_to_lock_by_setup": time_to_lock_by_setup(impostor_replays),
            "grace_seconds": grace, "target_false_locks_per_8h": args.false_locks_per_8h,
            "session_rows": rows, "genuine_sessions": genuine_replays, "impostor_sessions": impostor_replays,
            "_rocs": {"enrolment k=1": (np.concatenate(block_scores[True]), np.concatenate(block_scores[False]))}}


def markdown_lines(report: dict) -> list[str]:
    fl, ttl = report["false_locks"], report["time_to_lock"]
    per8, median = rates_text(report)
    lines = [f"`mouseguard enroll --from` the first {report['enrol_sessions']} sessions of each user (shipped encoder "
             f"and pool, the tested group's users left out of the pool), then every other session of that group scored "
             f"(ONNX) and replayed through the agent. Test impostors never seen in training.", ""]
    lines += sessions_table({"enrolment": report["summary"]}, "model", "block")
    lines += ["", f"Mean of per-user session AUCs: {fmt(report['mean_user_session_auc'])}; "
                  f"{report['users_not_enrolled']} user(s) could not be enrolled (listed below).", "",
              f"False locks of the owner: {fl['false_locks']} in {fl['active_hours']:.1f} active hours "
              f"= {per8} per 8 h; "
              f"impostor sessions locked: {ttl['locked']} of {ttl['sessions']}, median {median} of their movement.", "",
              *setup_lines(report), "",
              "| user | enrolled on | session AUC | decision |", "|---|---|---|---|"]
    for u in report["per_user"]:
        if "skipped" in u:
            lines.append(f"| {u['user']} | – | skipped: {u['skipped']} | |")
        else:
            lines.append(f"| {u['user']} | {', '.join(u['enrolled_on'])} | {fmt(u['session_auc'])} | "
                         f"mean of {u['window']} < {u['threshold']:.3f} |")
    return lines
