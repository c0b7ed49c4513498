"""The detection protocol: what a person lives with — false locks per hour, seconds to lock.

Per-block AUCs do not say how often the agent locks its owner out or how long someone else
can use the machine. This protocol answers both with the agent's own code. For every fold
of the honest ``sessions`` protocol (session-disjoint; impostors never seen in training) a
model is fitted and calibrated exactly as ``mouseguard train fit`` does it (threshold and
window for the target false-lock rate, from held-out data of the training sessions only),
and then every test session is replayed through the live pipeline (``agent.replay``: the
streaming block cutter, the rolling decision with its grace period after a lock):

* genuine test sessions: every lock is a false lock; their count over the sessions'
  active hours is the false-lock rate;
* impostor test sessions: the active seconds of movement from the session's start until the
  first lock. A session that never locks counts as "not locked" with its whole length — it
  is not dropped, so a median above the locked share reads "not reached".

Time to lock is also reported apart for impostor sessions recorded on the owner's capture
set-up and on another (:func:`same_setup`). Someone at the owner's desk uses the owner's
machine, so the first figure is the one a deployed agent lives with; on Balabit, whose users
come from two set-ups, the second is a clue real life does not give.

The network is scored in torch (``FittedUser.score``): the exported ONNX model reproduces it
to 1e-5 (checked at every export), and fitting without exporting saves a minute per fold.
"""

from __future__ import annotations

import numpy as np

from agent.blocks import BlockCutter, DEFAULT_SPEC
from agent.config import AgentConfig
from agent.decision import RollingDecision
from agent.pipeline import Pipeline
from agent.recorder import active_clock, active_seconds
from agent.replay import replay
from training.datasets import session_events, load_sessions, session_blocks
from training.fit import FitConfig
from training.personal import fit_calibrated

#: The goal of the issue that asked for this protocol: median seconds to lock an impostor ...
GOAL_MEDIAN_SECONDS = 20.0
#: ... while locking the owner at most once per 8 active hours.
GOAL_FALSE_LOCKS_PER_HOUR = 1.0 / 8.0
#: Checkpoints of the time-to-lock distribution reported beside the median.
WITHIN_SECONDS = (10, 20, 30, 60, 120)
#: Recordings whose event rates (events per active second) lie within this factor of each
#: other count as one capture set-up. Balabit holds two: users 7, 9 and 20 at 23-44 events per
#: active second, the other seven at 5-8 (and one session of user20 at 6); hardware, driver
#: and remote-desktop client set the rate, not the hand.
SAME_SETUP_FACTOR = 2.0


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
           "quartiles_seconds": [float(q) if np.isfinite(q) else None for q in np.quantile(times, (0.25, 0.75), method="inverted_cdf")]}
    out["locked_within"] = {str(s): float(np.mean(times <= s)) for s in WITHIN_SECONDS}
    return out


def false_lock_summary(rows: list[dict]) -> dict:
    hours = sum(r["active_seconds"] for r in rows) / 3600.0
    locks = sum(r["locks"] for r in rows)
    return {"sessions": len(rows), "active_hours": hours, "false_locks": int(locks),
            "per_hour": locks / hours if hours else None,
            "sessions_with_false_lock": int(sum(r["locks"] > 0 for r in rows))}


def detection_protocol(args, log) -> dict:
    from training.evaluate import _encoder, _users, session_folds

    cfg = FitConfig.from_args(args)
    target = args.false_locks_per_8h / 8.0
    grace = float(AgentConfig().grace_seconds)
    sessions = load_sessions(args.dataset, args.data)
    users = _users(sessions, args.users)
    encoder_state, spec, encoder_info = _encoder(args, log, DEFAULT_SPEC)
    genuine_rows, impostor_rows, models, not_calibrated = [], [], [], []
    rates = {s.key: event_rate(session_events(s), spec.gap) for s in sessions}  # once, not once per fold
    for user, f, train_s, test_s, negatives, test_impostors in session_folds(sessions, users):
        neg_runs = [session_blocks(s, spec) for ss in negatives.values() for s in ss]
        try:
            # exactly what `mouseguard train fit` does: split, fit, Platt-calibrate, choose the decision
            fitted = fit_calibrated([session_events(s) for s in train_s], neg_runs, spec, user=user,
                                    mode="transfer2", encoder_state=encoder_state, cfg=cfg, min_blocks=10)
            window, threshold, _ = fitted.decision(target)
        except ValueError as exc:  # `train fit` would refuse this user too: say so, drop nothing silently
            not_calibrated.append({"model_user": user, "fold": f, "reason": str(exc),
                                   "test_sessions": [s.key for s in test_s + test_impostors]})
            log(f"detection {user} fold {f}: not calibrated ({exc}); its test sessions are listed as not replayed")
            continue
        owner_rate = event_rate([session_events(s) for s in train_s], spec.gap)
        models.append({"model_user": user, "fold": f, "window": window, "threshold": threshold,
                       "seconds_per_block": fitted.seconds_per_block, "events_per_second": owner_rate})
        for s, genuine in [(s, True) for s in test_s] + [(s, False) for s in test_impostors]:
            row = {"model_user": user, "fold": f, "session": s.key, "same_setup": same_setup(rates[s.key], owner_rate),
                   **replay_session(session_events(s), fitted, spec, window, threshold, grace)}
            (genuine_rows if genuine else impostor_rows).append(row)
        mine = [r for r in genuine_rows if r["model_user"] == user and r["fold"] == f]
        log(f"detection {user} fold {f}: window {window}, threshold {threshold:.3f}; "
            f"{sum(r['locks'] for r in mine)} false locks in {sum(r['active_seconds'] for r in mine) / 3600:.2f} h")
    false_locks = false_lock_summary(genuine_rows)
    ttl = time_to_lock_summary(impostor_rows)
    goal_met = (false_locks["per_hour"] is not None and false_locks["per_hour"] <= GOAL_FALSE_LOCKS_PER_HOUR
                and ttl["median_seconds"] is not None and ttl["median_seconds"] <= GOAL_MEDIAN_SECONDS)
    return {"protocol": "detection", "encoder": encoder_info, "grace_seconds": grace,
            "target_false_locks_per_8h": args.false_locks_per_8h,
            "false_locks": false_locks, "time_to_lock": ttl,
            "time_to_lock_by_setup": time_to_lock_by_setup(impostor_rows),
            "goal": {"median_seconds": GOAL_MEDIAN_SECONDS, "false_locks_per_8h": 8 * GOAL_FALSE_LOCKS_PER_HOUR,
                     "met": bool(goal_met)},
            "models": models, "folds_not_calibrated": not_calibrated,
            "genuine_sessions": genuine_rows, "impostor_sessions": impostor_rows, "_rocs": None}


def rates_text(report: dict) -> tuple[str, str]:
    """False locks per 8 active hours and the median seconds to lock, as the reports print them."""
    fl, ttl = report["false_locks"], report["time_to_lock"]
    return ("–" if fl["per_hour"] is None else f"{8 * fl['per_hour']:.2f}",
            _median_text(ttl))


def _median_text(ttl: dict) -> str:
    return "not reached" if ttl["median_seconds"] is None else f"{ttl['median_seconds']:.0f} s"


def _within_text(ttl: dict) -> str:
    return ", ".join(f"{100 * v:.0f} %" for v in ttl["locked_within"].values())


def markdown_lines(report: dict) -> list[str]:
    fl, ttl = report["false_locks"], report["time_to_lock"]
    per8, median = rates_text(report)
    lines = [
        "Each fold's model fitted and calibrated as `mouseguard train fit` does it (target "
        f"{report['target_false_locks_per_8h']:g} false lock per 8 active hours), then every held-out session "
        f"replayed through the agent's pipeline and rolling decision (grace {report['grace_seconds']:.0f} s after a lock). "
        "Session-disjoint; impostors never seen in training; never-locked impostor sessions counted as not locked.", "",
        "| | figure | goal |", "|---|---|---|",
        f"| false locks of the owner | {fl['false_locks']} in {fl['active_hours']:.1f} active hours = **{per8} per 8 h** "
        f"({fl['sessions_with_false_lock']} of {fl['sessions']} sessions) | ≤ 1 per 8 h |",
        f"| impostor sessions locked | {ttl['locked']} of {ttl['sessions']} | |",
        f"| median active seconds to lock | **{median}** | ≤ 20 s |",
    ]
    if ttl["sessions"]:
        lines.append("| locked within " + ", ".join(f"{s} s" for s in WITHIN_SECONDS) + f" | {_within_text(ttl)} | |")
    lines += ["", *setup_lines(report)]
    if report["folds_not_calibrated"]:
        lines += ["", f"{len(report['folds_not_calibrated'])} fold(s) could not be calibrated (too little held-out "
                      "genuine data, as `train fit` would report); their test sessions were not replayed — see the JSON."]
    lines += ["", f"Goal {'met' if report['goal']['met'] else 'not met'}."]
    return lines


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
        lines.append(f"| {name} | {t['sessions']} | {t['locked']} | {_median_text(t)} | {_within_text(t)} |")
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
    ax.axvline(GOAL_MEDIAN_SECONDS, color="grey", ls="--", lw=0.8, label=f"goal: half within {GOAL_MEDIAN_SECONDS:.0f} s")
    ax.axhline(0.5, color="grey", ls=":", lw=0.8)
    per8, _ = rates_text(report)
    ax.set(xscale="log", xlim=(1, max(600.0, float(times.max()) if len(times) else 600.0)), ylim=(0, 1.02),
           xlabel="active seconds of impostor movement", ylabel="share of impostor sessions locked",
           title=f"time to lock ({per8} false locks per 8 active hours of the owner)")
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
