"""Measuring the template update (issue 22): does the model follow its owner, and what does the
guard hold against an impostor who poisons the kept blocks?

    python -m benchmarks.template_update --data ../shared/data/balabit-training --users user7,user15,...

Per user (Balabit: sessions spanning weeks, in the data set's order): enrol on the first
``--enrol-sessions`` sessions as ``mouseguard enroll`` does (shipped encoder and pool, the
tested group's users left out of the pool, as the enrolment protocol does), then replay the
later sessions in order through the agent's pipeline twice:

* frozen: the enrolment model throughout;
* updated: the agent's own keeper (:class:`agent.template.TemplateKeeper`, its margin and
  quiet minutes) keeps blocks while replaying, and after every ``--update-hours`` of active
  movement :func:`training.user_model.update.update` refits (guarded); an accepted model
  replays the sessions after it.

Reported: false locks per 8 active hours of the owner's later sessions in each arm, and the
other users' sessions (the tested group) replayed against the enrolment model and the last
model of the updated arm: sessions locked and median active seconds to the lock.

The attack: another user of the group is mixed into the owner's later blocks at the largest
share (of a grid) that never locks more than the owner alone; the agent would keep blocks of
that stream. Unguarded (every block of the mixed stream trains, no cap, no checks) and
guarded (the keeper's margin, the cap, the checks), the impostor's mean P(genuine) on blocks
of theirs not in the mix, before and after.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from agent.blocks import BlockCutter
from agent.decision import RollingDecision, simulate_locks
from agent.model_dir import load_model_dir
from agent.pipeline import Pipeline
from agent.recorder import active_clock
from agent.replay import replay
from agent.scorer import Scorer
from agent.template import TemplateKeeper
from training.data.datasets import load_sessions, session_blocks, session_events
from training.enrol import enrol
from training.families.cnn.train import FitConfig
from training.user_model.update import Guard, update

SHARES = (0.01, 0.02, 0.03, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5)
GRACE_SECONDS = 60.0


def replay_keeping(events, model, keeper: TemplateKeeper | None, offset: float) -> dict:
    """One session through the agent's pipeline with ``model``; the keeper sees every verdict as
    the live agent's callback shows it (agent.runner.Agent._offer_template)."""
    spec = model.spec
    decision = RollingDecision(model.decision.window, model.decision.threshold, grace_seconds=GRACE_SECONDS)
    events = events.copy()
    events["t"] += offset - events["t"][0]
    verdicts = replay(events, Pipeline(BlockCutter(spec), Scorer(model), decision), chunk_seconds=60.0)
    locks = [v for v in verdicts if v.verdict.act]
    first = None
    clock = active_clock(events["t"], spec.gap)
    if locks:
        first = float(clock[min(np.searchsorted(events["t"], locks[0].t), len(clock) - 1)])
    if keeper is not None:
        for v in verdicts:
            keeper.verdict(v, model.decision.threshold, calm=True)
    return {"locks": len(locks), "active_seconds": float(clock[-1]) if len(clock) else 0.0,
            "seconds_to_lock": first, "end": float(events["t"][-1])}


def per8(rows) -> tuple[int, float, float | None]:
    hours = sum(r["active_seconds"] for r in rows) / 3600
    locks = sum(r["locks"] for r in rows)
    return locks, hours, (8 * locks / hours if hours else None)


def impostor_summary(model, sessions) -> dict:
    rows = [replay_keeping(session_events(s), model, None, 0.0) for s in sessions]
    times = [r["seconds_to_lock"] for r in rows if r["seconds_to_lock"] is not None]
    return {"sessions": len(rows), "locked": len(times), "median_seconds_to_lock":
            float(np.median(times)) if times else None}


def run_user(user, own, others, args, tmp: Path, exclude, log) -> dict:
    cfg = FitConfig(epochs=args.epochs)
    enrol_s, later = own[:args.enrol_sessions], own[args.enrol_sessions:]
    recordings = [session_events(s) for s in enrol_s]
    base = tmp / f"{user}-enrolled"
    enrol(recordings, user, base, cfg=cfg, exclude_pool_users=exclude, min_blocks=10)
    model0 = load_model_dir(base)
    spec = model0.spec
    # frozen
    frozen = [replay_keeping(session_events(s), model0, None, 0.0) for s in later]
    # updated: the keeper and the guarded update between sessions
    live = tmp / f"{user}-updated"
    import shutil

    shutil.copytree(base, live)
    keeper = TemplateKeeper(tmp / f"{user}-template.npz", spec, margin=args.margin, quiet_minutes=args.quiet_minutes)
    updated_rows, updates, offset = [], [], 0.0
    model = load_model_dir(live)
    for s in later:
        row = replay_keeping(session_events(s), model, keeper, offset)
        offset = row["end"] + 3600.0  # the next session starts an hour later: waiting blocks are kept
        keeper.offer(offset, None, 0.0, 1.0, False)  # (commits what waited its quiet minutes)
        updated_rows.append(row)
        if keeper.active_seconds >= args.update_hours * 3600 and len(keeper.blocks) >= Guard().min_new_blocks:
            report = update(live, recordings, keeper.blocks, cfg=cfg, exclude_pool_users=exclude)
            keeper.started_update()
            updates.append({k: report.get(k) for k in ("accepted", "reason", "blocks_offered", "blocks_trained")}
                           | {"window": [report.get("before", {}).get("window"), report.get("after", {}).get("window")],
                              "auc": [report.get("before", {}).get("heldout_auc"),
                                      report.get("after", {}).get("heldout_auc")],
                              "threshold": [report.get("before", {}).get("threshold"),
                                            report.get("after", {}).get("threshold")]})
            log(f"{user}: update after {s.key}: {'accepted' if report['accepted'] else report['reason']}")
            model = load_model_dir(live)
    result = {"user": user, "enrolled_on": [s.key for s in enrol_s], "later_sessions": len(later),
              "frozen": per8(frozen), "updated": per8(updated_rows), "updates": updates,
              "impostors_frozen": impostor_summary(model0, others),
              "impostors_updated": impostor_summary(model, others) if any(u["accepted"] for u in updates) else None}
    # the attack: the first other user's blocks mixed into the owner's later blocks
    victim_blocks = np.concatenate([session_blocks(s, spec) for s in later])
    attacker = others[0].user
    theirs = [s for s in others if s.user == attacker]
    mix_source = session_blocks(theirs[0], spec)
    probe = np.concatenate([session_blocks(s, spec) for s in theirs[1:]]) if len(theirs) > 1 else mix_source[::2]
    scorer0 = Scorer(model0)
    w, th = model0.decision.window, model0.decision.threshold
    alone = simulate_locks(scorer0.score(victim_blocks), w, th)[0]
    best, best_stream = 0.0, None
    rng = np.random.default_rng(0)
    for share in SHARES:
        n_imp = int(round(share / (1 - share) * len(victim_blocks)))
        picks = mix_source[rng.choice(len(mix_source), n_imp, replace=n_imp > len(mix_source))]
        at = np.sort(rng.choice(len(victim_blocks) + n_imp, n_imp, replace=False))
        stream = np.empty((len(victim_blocks) + n_imp, *victim_blocks.shape[1:]), np.float32)
        mask = np.zeros(len(stream), bool)
        mask[at] = True
        stream[mask], stream[~mask] = picks, victim_blocks
        if simulate_locks(scorer0.score(stream), w, th)[0] <= alone:
            best, best_stream, best_mask = share, stream, mask
    attack = {"attacker": attacker, "owner_alone_locks": alone, "largest_share_not_locking": best}
    if best_stream is not None:
        before = float(scorer0.score(probe).mean())
        scores = scorer0.score(best_stream)
        kept = scores >= min(th + args.margin, 0.99)
        attack.update({"impostor_mean_before": before, "stream_blocks": int(len(best_stream)),
                       "impostor_blocks_in_stream": int(best_mask.sum()),
                       "impostor_blocks_past_margin": int((kept & best_mask).sum()),
                       "owner_blocks_past_margin": int((kept & ~best_mask).sum())})
        for name, blocks, guard in (("unguarded", best_stream, Guard(enabled=False)),
                                    ("guarded", best_stream[kept], Guard())):
            target = tmp / f"{user}-attack-{name}"
            shutil.copytree(base, target)
            report = update(target, recordings, blocks, cfg=cfg, guard=guard, exclude_pool_users=exclude)
            after = float(Scorer(load_model_dir(target)).score(probe).mean()) if report["accepted"] else before
            attack[name] = {"accepted": report["accepted"], "reason": report.get("reason"),
                            "blocks_trained": report.get("blocks_trained"), "impostor_mean_after": after}
    result["attack"] = attack
    log(json.dumps(result))
    return result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="balabit-training folder")
    p.add_argument("--users", help="comma-separated users (default: all)")
    p.add_argument("--enrol-sessions", type=int, default=2)
    p.add_argument("--update-hours", type=float, default=1.0)
    p.add_argument("--margin", type=float, default=0.3)
    p.add_argument("--quiet-minutes", type=float, default=30.0)
    p.add_argument("--epochs", type=int, default=16)
    p.add_argument("--out", help="JSON file for the results")
    args = p.parse_args(argv)
    data = Path(args.data)
    if not data.is_dir():
        print(f"template_update: error: --data {data} is not a folder", file=sys.stderr)
        return 2
    sessions = load_sessions("balabit", data)
    users = list(dict.fromkeys(s.user for s in sessions))
    groups = (users[0::2], users[1::2])
    wanted = args.users.split(",") if args.users else users
    unknown = [u for u in wanted if u not in users]
    if unknown:
        print(f"template_update: error: no such user(s) in {data}: {', '.join(unknown)}", file=sys.stderr)
        return 2

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    t0, results = time.time(), []
    with tempfile.TemporaryDirectory() as tmp:
        for user in wanted:
            group = next(g for g in groups if user in g)
            own = [s for s in sessions if s.user == user]
            others = [s for s in sessions if s.user in group and s.user != user]
            if len(own) <= args.enrol_sessions:
                log(f"{user}: no later session; skipped")
                continue
            results.append(run_user(user, own, others, args, Path(tmp), [f"balabit/{u}" for u in group], log))
    summary = {"seconds": time.time() - t0, "args": vars(args), "users": results}
    if args.out:
        Path(args.out).write_text(json.dumps(summary, indent=2))
    for name in ("frozen", "updated"):
        locks = sum(r[name][0] for r in results)
        hours = sum(r[name][1] for r in results)
        print(f"{name}: {locks} false locks in {hours:.1f} active hours = {8 * locks / hours:.2f} per 8 h"
              if hours else f"{name}: no active hours")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
