"""What every evaluation protocol shares: users and folds, pooled AUC rows, replays through the
agent's decision, lock summaries, markdown tables, plots and the written report.

Every name here is public: a protocol module (:mod:`training.evaluation`) imports what it uses
from this one module and from no other protocol.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from agent.blocks import BlockCutter, BlockSpec
from agent.decision import RollingDecision
from agent.files import atomic_write_text, private_dir
from agent.pipeline import Pipeline
from agent.recorder import active_clock, active_seconds
from agent.replay import replay
from training.data.datasets import blocks_by_user, load_sessions, select_users, session_blocks
from training.evaluation.metrics import auc_eer, roc
from training.families.cnn.encoder import load_encoder, pretrain
from training.families.cnn.train import FitConfig, predict

WINDOWS = (1, 3, 5, 10)


def encoder_for(args, log, spec):
    """The encoder named by --encoder, else one pre-trained now on SapiMouse with ``spec``."""
    if args.encoder:
        state, spec, info = load_encoder(args.encoder)
        return state, spec, {"source": str(args.encoder), **{k: info.get(k) for k in ("dataset", "epochs")}}
    sapi = Path(args.sapimouse) if args.sapimouse else Path(args.data).parent / "sapimouse"
    sessions = load_sessions("sapimouse", sapi)
    by_user = blocks_by_user(sessions, spec)
    log(f"pre-training the encoder on SapiMouse: {len(by_user)} users, {sum(map(len, by_user.values()))} blocks")
    model, _ = pretrain(by_user, spec, FitConfig(epochs=args.epochs, seed=args.seed))
    return model.encoder.state_dict(), spec, {"source": f"pre-trained on {sapi}", "users": len(by_user)}


def mean_sd(values) -> dict:
    v = np.asarray([x for x in values if x is not None], float)
    return {"mean": float(v.mean()) if len(v) else None, "sd": float(v.std()) if len(v) else None}


def protocol_users(sessions, wanted):
    users = list(dict.fromkeys(s.user for s in sessions))
    if wanted:
        users = select_users(dict.fromkeys(users), wanted)
    return users


def window_scores(block_scores: np.ndarray, k: int) -> np.ndarray:
    """Means of consecutive non-overlapping runs of k blocks; a shorter session gives one mean."""
    if len(block_scores) == 0:
        return np.array([0.5])
    n = len(block_scores) // k
    if n == 0:
        return np.array([block_scores.mean()])
    return block_scores[: n * k].reshape(n, k).mean(axis=1)


def session_folds(sessions, users, impostors: str = "unseen"):
    """The honest protocol's folds: for each user and fold, ``(user, fold, training sessions,
    genuine test sessions, training impostor sessions by user, impostor test sessions)``.

    The user's sessions alternate between two folds. ``unseen`` impostors: the other users
    alternate between two groups, one trains and the other is tested, so a test impostor was
    never seen in training. ``seen``: every other user's sessions alternate between the folds
    like the user's own — the design of Balabit's official test, whose impostors are the
    other enrolled users — still with no session on both sides.
    """
    all_users = list(dict.fromkeys(s.user for s in sessions))
    by_user = {u: [s for s in sessions if s.user == u] for u in all_users}
    for user in users:
        own = by_user[user]
        others = [u for u in all_users if u != user]
        groups = (others[0::2], others[1::2])
        folds = (own[0::2], own[1::2])
        for f in (0, 1):
            if not (folds[f] and folds[1 - f]):
                continue
            if impostors == "seen":
                train_neg = {u: by_user[u][f::2] for u in others if by_user[u][f::2]}
                test_imp = [s for u in others for s in by_user[u][1 - f::2]]
            else:
                train_neg = {u: by_user[u] for u in groups[f]}
                test_imp = [s for u in groups[1 - f] for s in by_user[u]]
            yield user, f, folds[f], folds[1 - f], train_neg, test_imp


def pooled_windows(runs: list[np.ndarray], k: int) -> np.ndarray:
    """The means of k blocks (:func:`window_scores`) of every run, pooled."""
    return np.concatenate([np.empty(0)] + [window_scores(p, k) for p in runs])


def auc_row(genuine: list[np.ndarray], impostor: list[np.ndarray]) -> dict:
    """Pooled AUC/EER of block scores, of means of k blocks and of whole sessions (a session
    without a block scores 0.5)."""
    row = {f"k={k}": auc_eer(pooled_windows(genuine, k), pooled_windows(impostor, k)) for k in WINDOWS}

    def session(runs):
        return np.array([p.mean() if len(p) else 0.5 for p in runs])

    row["session"] = auc_eer(session(genuine), session(impostor))
    return row


def fmt(x, digits=3):
    return "–" if x is None else f"{x:.{digits}f}"


def sessions_table(summary: dict, name: str, row: str) -> list[str]:
    """The sessions protocol's markdown table: AUC/EER per row, per k rows, per session."""
    lines = [f"| {name} | {row} AUC | {row} EER | k=3 AUC | k=5 AUC | k=5 EER | k=10 AUC | session AUC | session EER |",
             "|---|---|---|---|---|---|---|---|---|"]
    for label, r in summary.items():
        lines.append(f"| {label} | {fmt(r['k=1']['auc'])} | {fmt(r['k=1']['eer'])} | {fmt(r['k=3']['auc'])} | "
                     f"{fmt(r['k=5']['auc'])} | {fmt(r['k=5']['eer'])} | {fmt(r['k=10']['auc'])} | "
                     f"{fmt(r['session']['auc'])} | {fmt(r['session']['eer'])} |")
    return lines


def plot_rocs(rocs: dict, path: Path, title: str) -> None:
    """ROC (linear axes) and DET (miss vs false-accept rate on normal-deviate axes) side by side."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy.stats import norm

    fig, (ax, det) = plt.subplots(1, 2, figsize=(10, 4.8), dpi=110)
    ticks = np.array([0.001, 0.01, 0.05, 0.2, 0.5, 0.8, 0.95])
    for label, pairs in rocs.items():
        g, i = pairs if isinstance(pairs, tuple) else (np.concatenate([p[0] for p in pairs]),
                                                       np.concatenate([p[1] for p in pairs]))
        fpr, tpr = roc(g, i)
        m = auc_eer(g, i)
        ax.plot(fpr, tpr, label=f"{label} (AUC {m['auc']:.3f})")
        clip = lambda p: np.clip(p, 5e-4, 1 - 5e-4)  # noqa: E731 - the axes end where the data can
        det.plot(norm.ppf(clip(fpr)), norm.ppf(clip(1 - tpr)), label=f"{label} (EER {m['eer']:.3f})")
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
    ax.set(xlabel="false acceptance rate (impostor accepted)", ylabel="true acceptance rate (genuine accepted)",
           title=f"ROC: {title}", xlim=(0, 1), ylim=(0, 1.01))
    det.plot(norm.ppf(ticks[[0, -1]]), norm.ppf(ticks[[0, -1]]), color="grey", lw=0.8, ls="--")
    det.set(xticks=norm.ppf(ticks), yticks=norm.ppf(ticks), xlim=norm.ppf(ticks[[0, -1]]),
            ylim=norm.ppf(ticks[[0, -1]]), xlabel="false acceptance rate",
            ylabel="false rejection rate (genuine refused)",
            title="DET (EER where a curve meets the diagonal)")
    det.set_xticklabels([f"{t:g}" for t in ticks])
    det.set_yticklabels([f"{t:g}" for t in ticks])
    for a in (ax, det):
        a.legend(fontsize=7, loc="lower right" if a is ax else "upper right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_report(report: dict, args, t0: float, to_markdown, config: dict) -> Path:
    """Stamp ``report`` with where, when and how it was made; write JSON and markdown to --out."""
    report.update({
        "dataset": args.dataset,
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "command": "mouseguard " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
        "seconds": round(time.time() - t0, 1),
        "config": config,
    })
    out = private_dir(args.out)
    atomic_write_text(out / "report.json", json.dumps(report, indent=2) + "\n")
    atomic_write_text(out / "report.md", to_markdown(report))
    return out




#: Checkpoints of the time-to-lock distribution reported beside the median.
WITHIN_SECONDS = (10, 20, 30, 60, 120)


#: Recordings whose event rates (events per active second) lie within this factor of each
#: other count as one capture set-up. Balabit holds two: users 7, 9 and 20 at 23-44 events per
#: active second, the other seven at 5-8 (and one session of user20 at 6); hardware, driver
#: and remote-desktop client set the rate, not the hand.
SAME_SETUP_FACTOR = 2.0


#: The goal of the issue that asked for this protocol: median seconds to lock an impostor ...
GOAL_MEDIAN_SECONDS = 20.0


#: ... while locking the owner at most once per 8 active hours.
GOAL_FALSE_LOCKS_PER_HOUR = 1.0 / 8.0


def event_rate(recordings, gap: float) -> float:
    """Events per active second over one or more event arrays."""
    recordings = [recordings] if isinstance(recordings, np.ndarray) else list(recordings)
    seconds = sum(active_seconds(e["t"], gap) for e in recordings)
    return sum(len(e) for e in recordings) / seconds if seconds else 0.0


def same_setup(rate: float, owner_rate: float) -> bool:
    """Whether a recording at ``rate`` comes from the owner's capture set-up."""
    return bool(rate > 0 and owner_rate > 0 and abs(np.log(rate / owner_rate)) <= np.log(SAME_SETUP_FACTOR))


def time_to_lock_by_setup(rows: list[dict]) -> dict:
    """:func:`time_to_lock_summary` of the impostor sessions of the owner's set-up and of others."""
    return {"same": time_to_lock_summary([r for r in rows if r["same_setup"]]),
            "other": time_to_lock_summary([r for r in rows if not r["same_setup"]])}


def replay_session(events: np.ndarray, scorer, spec, window: int, threshold: float,
                   grace_seconds: float) -> dict:
    """One session through the live pipeline: locks, active seconds, active seconds to 1st lock."""
    decision = RollingDecision(window, threshold, grace_seconds=grace_seconds)
    # Minute-long chunks: the cutter streams and the decision runs on block end times, so the
    # verdicts are the same as the live agent's quarter-second gathers (a test pins
    # streaming == batch), at a fraction of the per-chunk overhead over hours of recordings.
    verdicts = replay(events, Pipeline(BlockCutter(spec), scorer, decision), chunk_seconds=60.0)
    clock = active_clock(events["t"], spec.gap)
    locks = [v for v in verdicts if v.verdict.act]
    first = None
    if locks:
        first = float(clock[min(np.searchsorted(events["t"], locks[0].t, side="left"), len(clock) - 1)])
    return {"blocks": len(verdicts), "locks": len(locks), "active_seconds": float(clock[-1]) if len(clock) else 0.0,
            "seconds_to_lock": first}


def time_to_lock_summary(rows: list[dict]) -> dict:
    """Median and shares of impostor sessions locked within given active seconds; never-locked
    sessions count as locked at infinity (so a median beyond the locked share is None)."""
    times = np.array([r["seconds_to_lock"] if r["seconds_to_lock"] is not None else np.inf for r in rows])
    if len(times) == 0:
        return {"sessions": 0, "locked": 0, "median_seconds": None}
    median = float(np.median(times))
    out = {"sessions": int(len(times)), "locked": int(np.isfinite(times).sum()),
           "median_seconds": median if np.isfinite(median) else None,
           "quartiles_seconds": [float(q) if np.isfinite(q) else None
                                 for q in np.quantile(times, (0.25, 0.75), method="inverted_cdf")]}
    out["locked_within"] = {str(s): float(np.mean(times <= s)) for s in WITHIN_SECONDS}
    return out


def false_lock_summary(rows: list[dict]) -> dict:
    hours = sum(r["active_seconds"] for r in rows) / 3600.0
    locks = sum(r["locks"] for r in rows)
    return {"sessions": len(rows), "active_hours": hours, "false_locks": int(locks),
            "per_hour": locks / hours if hours else None,
            "sessions_with_false_lock": int(sum(r["locks"] > 0 for r in rows))}


def rates_text(report: dict) -> tuple[str, str]:
    """False locks per 8 active hours and the median seconds to lock, as the reports print them."""
    fl, ttl = report["false_locks"], report["time_to_lock"]
    return ("–" if fl["per_hour"] is None else f"{8 * fl['per_hour']:.2f}",
            median_text(ttl))


def median_text(ttl: dict) -> str:
    return "not reached" if ttl["median_seconds"] is None else f"{ttl['median_seconds']:.0f} s"


def within_text(ttl: dict) -> str:
    return ", ".join(f"{100 * v:.0f} %" for v in ttl["locked_within"].values())


def setup_lines(report: dict) -> list[str]:
    """Time to lock for impostors of the owner's capture set-up and of another, as a table."""
    lines = ["Impostor sessions by capture set-up (event rate within "
             f"{SAME_SETUP_FACTOR:g}x of the owner's recordings or not). At a real desk the impostor "
             "shares the owner's set-up: the first row is the one to expect.", "",
             "| impostors | sessions | locked | median active seconds to lock | locked within "
             + ", ".join(f"{s} s" for s in WITHIN_SECONDS) + " |", "|---|---|---|---|---|"]
    for key, name in (("same", "owner's set-up"), ("other", "another set-up")):
        t = report["time_to_lock_by_setup"][key]
        if not t["sessions"]:
            lines.append(f"| {name} | 0 | | | |")
            continue
        lines.append(f"| {name} | {t['sessions']} | {t['locked']} | {median_text(t)} | {within_text(t)} |")
    return lines


def plot_time_to_lock(report: dict, path) -> None:
    """Share of impostor sessions locked against active seconds of their movement."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["impostor_sessions"]
    fig, ax = plt.subplots(figsize=(6, 4), dpi=110)

    def curve(part, label, **style):
        """The share of ``part`` locked by each active second; never-locked sessions count too."""
        t = np.sort([r["seconds_to_lock"] for r in part if r["seconds_to_lock"] is not None])
        if part:
            ax.step(np.concatenate(([0.0], t)), np.arange(len(t) + 1) / len(part), where="post",
                    label=f"{label} ({len(t)} of {len(part)})", **style)
        return t

    times = curve(rows, "impostor sessions locked")
    for same, name, style in ((True, "owner's set-up", "--"), (False, "another set-up", ":")):
        curve([r for r in rows if r.get("same_setup") == same], f"of them, {name}", ls=style, lw=1)
    ax.axvline(GOAL_MEDIAN_SECONDS, color="grey", ls="--", lw=0.8,
               label=f"goal: half within {GOAL_MEDIAN_SECONDS:.0f} s")
    ax.axhline(0.5, color="grey", ls=":", lw=0.8)
    per8, _ = rates_text(report)
    ax.set(xscale="log", xlim=(1, max(600.0, float(times.max()) if len(times) else 600.0)), ylim=(0, 1.02),
           xlabel="active seconds of impostor movement", ylabel="share of impostor sessions locked",
           title=f"time to lock ({per8} false locks per 8 active hours of the owner)")
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


TEST_BLOCKS = 70  # per user, in the paper's split


def identify(sessions, users: list[str], spec: BlockSpec, cfg: FitConfig, split: str,
             rng: np.random.Generator) -> dict:
    """Train the identifier on one side of ``split``, return its accuracy on the other."""
    train, test_x, test_y = {}, [], []
    for i, user in enumerate(users):
        own = [session_blocks(s, spec) for s in sessions if s.user == user]
        if split == "blocks":
            b = np.concatenate(own)
            b = b[rng.permutation(len(b))]
            held, kept = b[:TEST_BLOCKS], b[TEST_BLOCKS:]
        else:
            held, kept = np.concatenate(own[1::2]), np.concatenate(own[0::2])
        train[user] = kept
        test_x.append(held)
        test_y.append(np.full(len(held), i))
    model, classes = pretrain(train, spec, cfg)
    proba = predict(model, np.concatenate(test_x))
    predicted = np.array([users.index(classes[c]) for c in proba.argmax(1)])
    truth = np.concatenate(test_y)
    per_user = {u: float(np.mean(predicted[truth == i] == i)) if np.any(truth == i) else None
                for i, u in enumerate(users)}
    return {"accuracy": float(np.mean(predicted == truth)), "users": len(users), "test_blocks": int(len(truth)),
            "chance": 1 / len(users), "per_user": per_user}
