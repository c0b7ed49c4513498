"""Evaluations of the ``features`` and ``patterns`` families (``train evaluate --model-family``).

``sessions`` (both families) — the CNN's honest protocol (``training.evaluation.common``), same folds
and groups: a user's sessions in two folds, the other users in two groups; a model trained on
fold A (against group A's users for the features family; on the user alone for the patterns
family) is tested on fold B against group B's users, never seen in training, and the other way
round. Every test session counts; one without any input row scores 0.5. Reported: AUC/EER of
single rows, of means of k consecutive rows and of whole sessions. The patterns family also
reports FAR/FRR at the operating point each user's model chose from its own data (the last 20 %
of its training actions held out: threshold and window from ``training.user_model.calibrate``).

``paper`` (features family) — Youssef & Mahdi's identification of all users, labelled as such:
a random 80/20 split of segments (their protocol), the same with overlapping segments (what
makes a random split leak), a session-disjoint split (SapiMouse: 3-minute sessions train,
1-minute sessions test; elsewhere alternate sessions), and open-set rejection with the CGAN's
unknown class, one user in six held out as never seen.
"""

from __future__ import annotations

import functools
import time

import numpy as np

from agent.decision import simulate_locks
from agent.mouse_actions import SI, ActionSpec, segment_actions
from agent.segment_features import SegmentSpec, extract_segments, segment_features
from training.user_model.calibrate import calibrate
from training.data.datasets import load_sessions, session_events
from training.evaluation.common import auc_row, fmt, protocol_users, session_folds, sessions_table, window_scores
from training.user_model.split import HOLDOUT, PATTERN_WINDOWS  # evaluated as the fit splits and decides
from training.families.features.mlp import FeaturesModel, MLPConfig, SegmentIdentifier
from training.errors import FitError
from training.families.patterns.model import DETECTORS, PatternsConfig, PatternsModel

#: Overlapping segments for the leak demonstration: a new segment every 10 events (80 % overlap).
OVERLAP_STRIDE = 10
OPEN_SET_EVERY = 6
PUBLISHED = {
    "features": "Youssef & Mahdi (2025), SapiMouse 120 users, random 80/20 split of segments: accuracy 99.24 %",
    "patterns": "Shen et al. (own data set, own protocol): FAR 0.37 %, FRR 1.12 %",
}


@functools.lru_cache(maxsize=None)
def _segments(session) -> np.ndarray:
    return extract_segments(session_events(session), SegmentSpec())[0]


@functools.lru_cache(maxsize=None)
def _actions(session) -> np.ndarray:
    return segment_actions(session_events(session), ActionSpec())


def _overlapping_segments(events: np.ndarray, spec: SegmentSpec, stride: int) -> np.ndarray:
    n = (len(events) - spec.size) // stride + 1
    if n <= 0:
        return np.empty((0, 30), np.float32)
    seg = events[np.arange(n)[:, None] * stride + np.arange(spec.size)]
    return segment_features(seg["t"], seg["x"], seg["y"], seg["button"], seg["state"], spec)


# -- features family ------------------------------------------------------------------------------

def features_sessions(args, log) -> dict:
    sessions = load_sessions(args.dataset, args.data)
    users = protocol_users(sessions, args.users)
    cfg = MLPConfig(max_epochs=args.epochs, seed=args.seed)
    genuine, impostor, rows = [], [], []
    empty = set()
    for user, f, train_s, test_s, negatives, test_imp in session_folds(sessions, users):
        t0 = time.time()
        pos = np.concatenate([_segments(s) for s in train_s])
        negs = [np.concatenate([_segments(s) for s in ss]) for ss in negatives.values()]
        model = FeaturesModel(cfg).fit(pos, negs)
        for s, is_genuine in [(s, True) for s in test_s] + [(s, False) for s in test_imp]:
            x = _segments(s)
            if len(x) == 0:
                empty.add(s.key)
            p = model.score(x)
            (genuine if is_genuine else impostor).append(p)
            rows.append({"model_user": user, "fold": f, "session": s.key, "genuine": is_genuine,
                         "rows": int(len(p)), "score": float(p.mean()) if len(p) else 0.5})
        log(f"features {user} fold {f}: {len(pos)} genuine segments, {sum(map(len, negs))} impostor "
            f"({time.time() - t0:.0f} s)")
    return {"protocol": "sessions", "family": "features", "summary": {"features": auc_row(genuine, impostor)},
            "sessions_without_rows": sorted(empty), "test_sessions": len(rows), "session_rows": rows,
            "row": "segment of 50 events"}


def _identify(train_x, train_y, test_x, test_y, cfg: MLPConfig) -> dict:
    t0 = time.time()
    model = SegmentIdentifier(cfg).fit(train_x, train_y)
    pred = model.predict_proba(test_x).argmax(1)
    return {"accuracy": float(np.mean(pred == test_y)), "train_segments": int(len(train_x)),
            "test_segments": int(len(test_x)), "seconds": round(time.time() - t0, 1)}, model


def _session_split(sessions, dataset):
    """Training and test sessions of an identification split disjoint in sessions."""
    if dataset == "sapimouse":
        return [s for s in sessions if s.kind != "1min"], [s for s in sessions if s.kind == "1min"]
    by_user: dict = {}
    for s in sessions:
        by_user.setdefault(s.user, []).append(s)
    train = [s for ss in by_user.values() for s in ss[0::2]]
    test = [s for ss in by_user.values() for s in ss[1::2]]
    return train, test


def features_paper(args, log) -> dict:
    sessions = load_sessions(args.dataset, args.data)
    users = protocol_users(sessions, args.users)
    sessions = [s for s in sessions if s.user in users]
    index = {u: i for i, u in enumerate(users)}
    closed = MLPConfig(max_epochs=args.epochs, seed=args.seed, unknown_per_class=0)
    open_cfg = MLPConfig(max_epochs=args.epochs, seed=args.seed)
    rng = np.random.default_rng(args.seed)
    out = {}

    def stack(ss, feats=_segments):
        xs = [feats(s) for s in ss]
        return np.concatenate(xs), np.concatenate([np.full(len(x), index[s.user]) for x, s in zip(xs, ss)])

    x, y = stack(sessions)
    p = rng.permutation(len(x))
    n = int(0.8 * len(x))
    out["random_split"], _ = _identify(x[p[:n]], y[p[:n]], x[p[n:]], y[p[n:]], closed)
    log(f"features paper: random 80/20 split, accuracy {out['random_split']['accuracy']:.3f}")

    ox, oy = stack(sessions, lambda s: _overlapping_segments(session_events(s), SegmentSpec(), OVERLAP_STRIDE))
    p2 = rng.permutation(len(ox))
    n2 = int(0.8 * len(ox))
    out["random_split_overlapping"], _ = _identify(ox[p2[:n2]], oy[p2[:n2]], ox[p2[n2:]], oy[p2[n2:]], closed)
    out["random_split_overlapping"]["stride_events"] = OVERLAP_STRIDE
    log("features paper: random split of overlapping segments, "
        f"accuracy {out['random_split_overlapping']['accuracy']:.3f}")

    train_s, test_s = _session_split(sessions, args.dataset)
    tx, ty = stack(train_s)
    out["session_split"], model = _identify(tx, ty, *stack(test_s), closed)
    votes = [np.bincount(model.predict_proba(_segments(s)).argmax(1), minlength=len(users)).argmax() == index[s.user]
             for s in test_s if len(_segments(s))]
    out["session_split"]["session_vote_accuracy"] = float(np.mean(votes)) if votes else None
    log(f"features paper: session-disjoint split, accuracy {out['session_split']['accuracy']:.3f}")

    # Open set: a sixth of the users never seen; do their segments land in the unknown class?
    unknown_users = set(users[OPEN_SET_EVERY - 1::OPEN_SET_EVERY])
    known = [u for u in users if u not in unknown_users]
    kindex = {u: i for i, u in enumerate(known)}
    if not unknown_users:  # fewer than OPEN_SET_EVERY users: no one to hold out; said, not dropped
        log(f"features paper: open set needs at least {OPEN_SET_EVERY} users, the data has {len(users)}")
    for split_name in ("random_split", "session_split") if unknown_users else ():
        if split_name == "random_split":
            is_known = np.isin(y, [index[u] for u in known])
            remap = np.array([kindex.get(u, -1) for u in users])
            kx, ky = x[is_known], remap[y[is_known]]
            q = rng.permutation(len(kx))
            m = int(0.8 * len(kx))
            train_x, train_y, test_x, test_y = kx[q[:m]], ky[q[:m]], kx[q[m:]], ky[q[m:]]
            unk_x = x[~is_known]
        else:
            trk = [s for s in train_s if s.user in kindex]
            tek = [s for s in test_s if s.user in kindex]
            train_x = np.concatenate([_segments(s) for s in trk])
            train_y = np.concatenate([np.full(len(_segments(s)), kindex[s.user]) for s in trk])
            test_x = np.concatenate([_segments(s) for s in tek])
            test_y = np.concatenate([np.full(len(_segments(s)), kindex[s.user]) for s in tek])
            unk_x = np.concatenate([_segments(s) for s in test_s if s.user in unknown_users])
        res = {}
        for label, cfg in (("closed", closed), ("cgan", open_cfg)):
            r, model = _identify(train_x, train_y, test_x, test_y, cfg)
            pk, pu = model.predict_proba(test_x).argmax(1), model.predict_proba(unk_x).argmax(1)
            if model.unknown_class is not None:
                r["known_rejected"] = float(np.mean(pk == model.unknown_class))
                r["unknown_rejected"] = float(np.mean(pu == model.unknown_class))
            else:
                r["known_rejected"] = r["unknown_rejected"] = 0.0
            r["unknown_segments"] = int(len(unk_x))
            res[label] = r
            log(f"features paper: open set ({split_name}, {label}): known accuracy {r['accuracy']:.3f}, "
                f"unknown rejected {r['unknown_rejected']:.3f}")
        out[f"open_set_{split_name}"] = {**res, "known_users": len(known), "unknown_users": len(unknown_users)}
    return {"protocol": "paper", "family": "features", "identification": out, "users": len(users)}


# -- patterns family ------------------------------------------------------------------------------

def _split_actions(actions: np.ndarray, holdout: float = HOLDOUT):
    """Head and tail of a recording's actions; the tail holds the last ``holdout`` of real actions."""
    real = np.flatnonzero(actions["kind"] != SI)
    n_tail = int(round(len(real) * holdout))
    if n_tail == 0:
        return actions, actions[:0]
    cut = real[len(real) - n_tail]
    return actions[:cut], actions[cut:]


def _seconds_per_row(actions: list[np.ndarray], n_rows: int) -> float:
    busy = sum(float(np.sum(a["t1"][a["kind"] != SI] - a["t0"][a["kind"] != SI])) for a in actions)
    return busy / max(n_rows, 1)


def patterns_sessions(args, log) -> dict:
    sessions = load_sessions(args.dataset, args.data)
    users = protocol_users(sessions, args.users)
    per = {d: {"genuine": [], "impostor": [], "rows": [], "failed": 0, "op": []} for d in DETECTORS}
    empty = set()
    for user, f, train_s, test_s, _negatives, test_imp in session_folds(sessions, users):
        t0 = time.time()
        heads, tails = zip(*(_split_actions(_actions(s)) for s in train_s))
        tests = [(s, True) for s in test_s] + [(s, False) for s in test_imp]
        models, base, held_rows, spr = {}, None, None, None
        for det in DETECTORS:
            model, window, threshold = None, None, None
            try:
                model = base.with_detector(det) if base else \
                    PatternsModel(PatternsConfig(detector=det, seed=args.seed)).fit_actions(list(heads))
                base = base or model
                if held_rows is None:  # the same windows for every detector
                    held_rows = [model.rows_from_actions(t, short_files=False) for t in tails]
                    n_rows = sum(len(model.rows_from_actions(a, short_files=False)) for a in heads)
                    spr = _seconds_per_row([_actions(s) for s in train_s], n_rows + sum(map(len, held_rows)))
                window, threshold, _ = calibrate([model.score(r) for r in held_rows if len(r)], [], spr,
                                                 args_rate(args), windows=PATTERN_WINDOWS)
            except (FitError, ValueError) as exc:
                per[det]["failed"] += 1
                log(f"patterns {user} fold {f} {det}: {'no operating point' if model else 'cannot enrol'} "
                    f"({exc}){'' if model else '; its test sessions score 0.5'}")
            models[det] = (model, window, threshold)
        spec_model = next((m for m, _, _ in models.values() if m is not None), None)
        for s, is_genuine in tests:
            rows = spec_model.rows_from_actions(_actions(s)) if spec_model else np.empty((0, 0))
            if len(rows) == 0:
                empty.add(s.key)
            for det, (model, window, threshold) in models.items():
                d = per[det]
                p = model.score(rows) if model is not None and len(rows) else np.empty(0)
                (d["genuine"] if is_genuine else d["impostor"]).append(p)
                rejected, locked = None, None
                if window is not None and len(p):
                    w = window_scores(p, window)
                    rejected = int(np.sum(w < threshold)), int(len(w))
                    locked = simulate_locks(p, window, threshold)[0] > 0
                d["op"].append({"genuine": is_genuine, "rejected": rejected, "locked": locked})
                d["rows"].append({"model_user": user, "fold": f, "detector": det, "session": s.key,
                                  "genuine": is_genuine, "rows": int(len(p)),
                                  "score": float(p.mean()) if len(p) else 0.5})
        log(f"patterns {user} fold {f}: {len(tests)} test sessions ({time.time() - t0:.0f} s)")
    summary, operating = {}, {}
    for det, d in per.items():
        summary[det] = auc_row(d["genuine"], d["impostor"])
        g = [o for o in d["op"] if o["genuine"] and o["rejected"]]
        i = [o for o in d["op"] if not o["genuine"] and o["rejected"]]
        frr = sum(o["rejected"][0] for o in g) / max(sum(o["rejected"][1] for o in g), 1)
        far = 1 - sum(o["rejected"][0] for o in i) / max(sum(o["rejected"][1] for o in i), 1)
        operating[det] = {"far_decisions": far, "frr_decisions": frr,
                          "genuine_sessions_locked": float(np.mean([o["locked"] for o in g])) if g else None,
                          "impostor_sessions_not_locked": float(np.mean([not o["locked"] for o in i])) if i else None,
                          "folds_without_operating_point": d["failed"]}
    return {"protocol": "sessions", "family": "patterns", "summary": summary, "operating_point": operating,
            "sessions_without_rows": sorted(empty), "test_sessions": len(per[DETECTORS[0]]["rows"]),
            "session_rows": per[DETECTORS[0]]["rows"], "row": "window of 16 actions, every 2 actions"}


def args_rate(args) -> float:
    """Target false locks per active hour (1 per 8 h, as ``train fit``'s default)."""
    return getattr(args, "false_locks_per_8h", 1.0) / 8.0


# -- report ---------------------------------------------------------------------------------------

def markdown_lines(report: dict) -> list[str]:
    lines = []
    if report["protocol"] == "paper":
        idn = report["identification"]
        lines += [f"Identification of {report['users']} users (paper's task). Published: {PUBLISHED['features']}.", "",
                  "| split | accuracy | train segments | test segments |", "|---|---|---|---|"]
        for key in ("random_split", "random_split_overlapping", "session_split"):
            r = idn[key]
            lines.append(f"| {key.replace('_', ' ')} | {fmt(r['accuracy'])} | {r['train_segments']} | "
                         f"{r['test_segments']} |")
        if idn["session_split"].get("session_vote_accuracy") is not None:
            vote = fmt(idn["session_split"]["session_vote_accuracy"])
            lines.append(f"| session split, majority vote per test session | {vote} | | |")
        lines += ["", "| open set | model | known accuracy | known rejected | unknown rejected |",
                  "|---|---|---|---|---|"]
        if "open_set_random_split" not in idn:
            lines.append(f"| not run: needs at least {OPEN_SET_EVERY} users | | | | |")
        for key in ("open_set_random_split", "open_set_session_split"):
            for label in ("closed", "cgan") if key in idn else ():
                r = idn[key][label]
                lines.append(f"| {key[9:].replace('_', ' ')} | {label} | {fmt(r['accuracy'])} | "
                             f"{fmt(r['known_rejected'])} | {fmt(r['unknown_rejected'])} |")
    else:
        lines += [f"Session-disjoint; test impostors never seen in training; every session counted "
                  f"({len(report['sessions_without_rows'])} sessions had no input row and score 0.5). "
                  f"Input row: {report['row']}.", ""] + sessions_table(report["summary"], "model", "row")
        if "operating_point" in report:
            lines += ["", f"Operating point chosen by each user's model from its own held-out data. "
                      f"Published (different data set and protocol): {PUBLISHED['patterns']}.", "",
                      "| detector | FAR (decisions) | FRR (decisions) | genuine sessions locked "
                      "| impostor sessions never locked | user-folds without operating point |",
                      "|---|---|---|---|---|---|"]
            for name, o in report["operating_point"].items():
                lines.append(f"| {name} | {fmt(o['far_decisions'])} | {fmt(o['frr_decisions'])} | "
                             f"{fmt(o['genuine_sessions_locked'])} | {fmt(o['impostor_sessions_not_locked'])} | "
                             f"{o['folds_without_operating_point']} |")
    return lines


def run(args, log) -> dict:
    from agent.errors import MouseguardError

    if args.protocol == "identification":
        raise MouseguardError("the identification protocol is the cnn family's; the features family reports "
                              "identification in --protocol paper")
    if args.protocol in ("detection", "enrolment"):
        raise MouseguardError(f"the {args.protocol} protocol is run for the cnn family (the agent's default model); "
                              "use --protocol sessions for the other families")
    if args.model_family == "features":
        report = (features_paper if args.protocol == "paper" else features_sessions)(args, log)
    elif args.protocol == "paper":
        raise MouseguardError("the patterns family has only the sessions protocol here (Shen et al.'s data and "
                              "protocol are not available); use --protocol sessions")
    else:
        report = patterns_sessions(args, log)
    return report
