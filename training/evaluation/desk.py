"""``desk`` — someone else at the owner's own desk: the figure a buyer should read.

Every person enrols exactly as ``mouseguard enroll --from`` does (shipped encoder and pool,
:func:`training.enrol.enrol`) and every person's model then meets every person's test units,
scored as ``mouseguard score`` scores a file (the exported ONNX model) and replayed through the
agent's own decision (the manifest's window and threshold, the grace period after a lock).

* ``--dataset mauth`` (people at one kind of desk: same game, similar lab machines, one
  30-minute pynput recording each): the first 20 minutes enrol, the rest is cut into one-minute
  test units. Every other person's minutes are the impostors: all of them share the desk.
* ``--dataset balabit``: the owner's view of Balabit's two capture set-ups. Each user enrols
  from their first two sessions (the tested half of the users left out of the pool, as in the
  ``enrolment`` protocol); the test units are whole later sessions, and the impostors are only
  those recorded on the owner's capture set-up (:func:`~training.evaluation.common.same_setup`).

``--cohort 0,1,3,6``: the same with each model also trained against that many other people of
the data (the next ones in order) — the local cohort of a shared workstation
(``enrol(cohort=...)``). Their test units are reported apart (people the model trained against,
on minutes it never saw) from those of the people outside the cohort.

Reported per cohort size: per-user AUC of the units' mean P(genuine) (mean, min), the share of
impostor units in which the agent locks, genuine units locked, active seconds of movement to
the first lock; beside them what each enrolment summary promised (held-out pool impostors).
Nothing is dropped: a unit without a block scores 0.5 and never locks, and is counted.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

import numpy as np

import models
from agent.config import AgentConfig
from agent.errors import MouseguardError
from agent.model_dir import load_model_dir
from agent.model_inputs import extract_all
from agent.scorer import Scorer
from training.data.datasets import load_sessions, session_events
from training.enrol import cohort_blocks, enrol
from training.errors import FitError
from training.evaluation.common import (event_rate, fmt, median_text, protocol_users, replay_session, same_setup,
                                        time_to_lock_summary)
from training.evaluation.metrics import auc_eer
from training.families.cnn.encoder import load_encoder
from training.families.cnn.train import FitConfig

#: mauth: minutes of each recording that enrol, and the length of a test unit.
ENROL_MINUTES = 20.0
UNIT_SECONDS = 60.0
#: balabit: sessions that enrol (as the ``enrolment`` protocol's default).
ENROL_SESSIONS = 2
#: The goals of the desk issue, per cohort-free model (README, Accuracy).
GOALS = {"mean_auc": 0.97, "impostor_units_locked": 0.90, "genuine_units_locked": 1 / 80}


@dataclasses.dataclass
class Person:
    user: str
    enrol: list[np.ndarray]  # recordings to enrol from
    units: list[tuple[str, np.ndarray]]  # (name, events) test units, in time order
    unused_seconds: float = 0.0  # a last partial minute (mauth), reported


def minute_units(events: np.ndarray, start: float, seconds: float = UNIT_SECONDS):
    """Whole units of ``seconds`` from ``start`` on, and the seconds of the partial one left over."""
    t = events["t"]
    end = float(t[-1]) if len(t) else start
    n = max(int((end - start) // seconds), 0)
    units = [events[(t >= start + k * seconds) & (t < start + (k + 1) * seconds)] for k in range(n)]
    return units, max(end - start - n * seconds, 0.0)


def mauth_people(sessions) -> list[Person]:
    people = []
    for s in sessions:
        events = session_events(s)
        t0 = float(events["t"][0])
        split = t0 + ENROL_MINUTES * 60
        units, rest = minute_units(events, split)
        people.append(Person(s.user, [events[events["t"] < split]],
                             [(f"{s.user}/min{21 + k}", u) for k, u in enumerate(units)], rest))
    return people


def session_people(sessions) -> list[Person]:
    people = []
    for user in dict.fromkeys(s.user for s in sessions):
        own = [s for s in sessions if s.user == user]
        people.append(Person(user, [session_events(s) for s in own[:ENROL_SESSIONS]],
                             [(s.key, session_events(s)) for s in own[ENROL_SESSIONS:]]))
    return people


def unit_score(scorer: Scorer, model, events: np.ndarray) -> tuple[int, float]:
    """Blocks and mean P(genuine) of one unit, as ``mouseguard score`` scores a file."""
    blocks, _ = extract_all(model, events, short_files=True)
    p = scorer.score(blocks)
    return len(blocks), float(np.mean(p)) if len(p) else 0.5


def cohort_of(people: list[Person], i: int, size: int) -> list[int]:
    """The ``size`` people after person ``i`` (in the data's order, wrapping round)."""
    return [(i + k) % len(people) for k in range(1, min(size, len(people) - 1) + 1)]


def run(args, log) -> dict:
    if args.dataset not in ("mauth", "balabit"):
        raise MouseguardError("the desk protocol runs on --dataset mauth (people at one desk) or balabit (its "
                              "two capture set-ups); SapiMouse's two sessions per person leave none to test "
                              "after enrolling")
    cfg = FitConfig.from_args(args)
    sessions = load_sessions(args.dataset, args.data)
    wanted = set(protocol_users(sessions, args.users))
    one_desk = args.dataset == "mauth"  # everyone shares the desk; elsewhere, by capture set-up
    people = [p for p in (mauth_people(sessions) if one_desk else session_people(sessions)) if p.user in wanted]
    # Balabit's half of the users stay in the pool while the other half is tested (the enrolment
    # protocol's design); mauth's people are in no pool.
    groups = [[p.user for p in people]] if one_desk else [
        [p.user for p in people][0::2], [p.user for p in people][1::2]]
    group_of = {u: g for g in groups for u in g}
    grace = float(AgentConfig().grace_seconds)
    _, spec, _ = load_encoder(models.ENCODER)  # the shipped one, which every enrolment here cuts with
    gap = spec.gap
    rates = {p.user: event_rate(p.enrol, gap) for p in people}
    unit_rates = {name: event_rate(e, gap) for p in people for name, e in p.units}
    results = {}
    for size in args.cohort:
        rows, per_user = [], []
        for i, owner in enumerate(people):
            members = cohort_of(people, i, size)
            cohort_users = {people[j].user for j in members}
            exclude = [f"{args.dataset}/{u}" for u in group_of[owner.user]]
            with tempfile.TemporaryDirectory() as tmp:
                try:
                    summary = enrol(owner.enrol, owner.user, Path(tmp) / "model", cfg=cfg,
                                    false_locks_per_8h=args.false_locks_per_8h, exclude_pool_users=exclude,
                                    cohort={people[j].user: cohort_blocks(people[j].enrol, spec) for j in members})
                except (FitError, ValueError) as exc:  # enroll would refuse this person too: count it
                    log(f"desk {owner.user} (cohort {size}): not enrolled ({exc})")
                    per_user.append({"user": owner.user, "skipped": f"not enrolled: {exc}"})
                    continue
                model = load_model_dir(Path(tmp) / "model")
                scorer = Scorer(model)
                d = model.decision
                mine = []
                for other in people:
                    genuine = other.user == owner.user
                    for name, events in other.units:
                        if not (genuine or one_desk or same_setup(unit_rates[name], rates[owner.user])):
                            continue  # Balabit: an impostor of another capture set-up is not at this desk
                        blocks, score = unit_score(scorer, model, events)
                        replayed = replay_session(events, scorer, model.spec, d.window, d.threshold, grace)
                        mine.append({"model_user": owner.user, "unit": name, "unit_user": other.user,
                                     "genuine": genuine, "in_cohort": other.user in cohort_users,
                                     "blocks": blocks, "score": score, **replayed})
            rows += mine
            g = [r["score"] for r in mine if r["genuine"]]
            imp = [r for r in mine if not r["genuine"]]
            m = auc_eer(np.array(g), np.array([r["score"] for r in imp]))
            calib = summary["calibration"]
            per_user.append({
                "user": owner.user, "cohort": sorted(cohort_users), "window": d.window, "threshold": d.threshold,
                "unit_auc": m["auc"], "genuine_units": len(g),
                "genuine_units_locked": sum(r["locks"] > 0 for r in mine if r["genuine"]),
                "impostor_units": len(imp), "impostor_units_locked": sum(r["locks"] > 0 for r in imp),
                "promised": {"heldout_block_auc": summary["metrics"]["heldout_block"]["auc"],
                             "pool_impostors_locked": f"{calib['impostor_runs_locked']} of {calib['impostor_runs']}"},
            })
            u = per_user[-1]
            log(f"desk {owner.user} (cohort {size}): unit AUC {fmt(m['auc'])}, impostor units locked "
                f"{u['impostor_units_locked']}/{u['impostor_units']}, genuine locked "
                f"{u['genuine_units_locked']}/{u['genuine_units']}; decision {d.window} < {d.threshold:.3f}")
        results[str(size)] = _summary(rows, per_user)
    return {"protocol": "desk", "units": "minutes" if one_desk else "sessions",
            "enrol": f"first {ENROL_MINUTES:g} minutes" if one_desk else f"first {ENROL_SESSIONS} sessions",
            "impostors": "everyone else (one kind of desk)" if one_desk else
                         "sessions of the owner's capture set-up only",
            "grace_seconds": grace, "target_false_locks_per_8h": args.false_locks_per_8h, "goals": GOALS,
            "unused_seconds": {p.user: round(p.unused_seconds, 1) for p in people},
            "cohorts": results, "_rocs": None}


def _share(rows) -> dict:
    locked = sum(r["locks"] > 0 for r in rows)
    return {"units": len(rows), "locked": int(locked), "share": locked / len(rows) if rows else None}


def _summary(rows: list[dict], per_user: list[dict]) -> dict:
    aucs = [u["unit_auc"] for u in per_user if u.get("unit_auc") is not None]
    impostors = [r for r in rows if not r["genuine"]]
    genuine_rows = [r for r in rows if r["genuine"]]
    return {
        "mean_user_auc": float(np.mean(aucs)) if aucs else None, "min_user_auc": float(np.min(aucs)) if aucs else None,
        "impostor_units_locked": _share(impostors),
        "impostor_units_locked_outside_cohort": _share([r for r in impostors if not r["in_cohort"]]),
        "impostor_units_locked_in_cohort": _share([r for r in impostors if r["in_cohort"]]),
        "genuine_units_locked": _share(genuine_rows),
        "time_to_lock": time_to_lock_summary(impostors),
        "users_not_enrolled": sum("skipped" in u for u in per_user),
        "per_user": per_user, "rows": rows,
    }


def _pct(share: dict) -> str:
    if not share["units"]:
        return "–"
    return f"{share['locked']} of {share['units']} ({100 * share['share']:.0f} %)"


def markdown_lines(report: dict) -> list[str]:
    unit = report["units"][:-1]
    lines = [f"Each person enrols from the {report['enrol']} exactly as `mouseguard enroll --from` does; every "
             f"model meets every person's test {report['units']} (impostors: {report['impostors']}), scored as "
             f"`mouseguard score` and replayed through the agent's decision (grace {report['grace_seconds']:.0f} s). "
             f"A {unit} is locked when the agent locks at least once in it.", "",
             f"| cohort | mean (min) per-user AUC | impostor {report['units']} locked | of them outside the cohort "
             f"| genuine {report['units']} locked | median active seconds to lock |", "|---|---|---|---|---|---|"]
    for size, s in report["cohorts"].items():
        lines.append(f"| {size} | {fmt(s['mean_user_auc'])} ({fmt(s['min_user_auc'])}) | "
                     f"{_pct(s['impostor_units_locked'])} | {_pct(s['impostor_units_locked_outside_cohort'])} | "
                     f"{_pct(s['genuine_units_locked'])} | {median_text(s['time_to_lock'])} |")
    g = report["goals"]
    lines += ["", f"Goals without a cohort: mean per-user AUC ≥ {g['mean_auc']}, ≥ "
                  f"{100 * g['impostor_units_locked']:.0f} % of impostor {report['units']} locked, ≤ 1 in "
                  f"{1 / g['genuine_units_locked']:.0f} genuine {report['units']} locked.", ""]
    for size, s in report["cohorts"].items():
        lines += [f"Cohort {size}, per user (and what the enrolment summary promised, measured on the shipped "
                  "pool's held-out people):", "",
                  f"| user | AUC | impostor {report['units']} locked | genuine locked | decision | promised: "
                  "held-out block AUC, pool impostors locked |", "|---|---|---|---|---|---|"]
        for u in s["per_user"]:
            if "skipped" in u:
                lines.append(f"| {u['user']} | {u['skipped']} | | | | |")
                continue
            p = u["promised"]
            lines.append(f"| {u['user']} | {fmt(u['unit_auc'])} | {u['impostor_units_locked']} of "
                         f"{u['impostor_units']} | {u['genuine_units_locked']} of {u['genuine_units']} | mean of "
                         f"{u['window']} < {u['threshold']:.3f} | {fmt(p['heldout_block_auc'])}, "
                         f"{p['pool_impostors_locked']} |")
        lines.append("")
    return lines
