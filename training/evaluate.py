"""Evaluation protocols and their report (JSON, markdown, ROC plots).

``paper`` — the seed paper's protocol (Fejér & Antal, Tables 2–5), labelled as such: per user,
blocks are shuffled across sessions; 70 genuine and 70 impostor blocks are held out, the rest
trains (300 genuine blocks or ALL), negatives come from the same other users whose blocks
are tested. Blocks of one session sit on both sides and the test impostors were seen in
training, so its figures are optimistic; they are here to compare with the paper.

``sessions`` — the honest protocol: each user's sessions split into two folds and the other
users into two groups. A model fitted as ``mouseguard train fit`` fits one (part of the
training sessions held out for score calibration, :mod:`training.personal`) on fold A of the
user against group A's users is tested on fold B of the user against group B's users (never seen in training), then the
other way round, so every session is tested exactly once as genuine. With ``--impostors
seen`` the other users' sessions alternate between the folds too (Balabit's official test:
impostors are the other enrolled users, on sessions not trained on). Test sessions are cut
with remainders concatenated and every session is counted, including those too short for
a block (scored 0.5, counted in the report). The report adds the same figures against only the
impostor sessions recorded on the owner's capture set-up (:func:`training.detection.same_setup`):
Balabit's users come from two set-ups, and an impostor at the owner's desk shares the owner's.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import platform
import time
from pathlib import Path

import numpy as np

from agent.blocks import DEFAULT_SPEC, SEED_SPEC
from agent.files import atomic_write_text, private_dir
from training.datasets import blocks_by_user, load_sessions, session_blocks, session_events
from training.detection import SAME_SETUP_FACTOR, event_rate, same_setup
from training.fit import FitConfig, fit_user, load_encoder, predict, pretrain
from training.identification import TEST_BLOCKS as PAPER_TEST_BLOCKS, identify
from training.metrics import auc_eer, roc
from training.personal import fit_calibrated

PAPER_SIZES = ("300", "ALL")
MODES = ("plain", "transfer1", "transfer2")
WINDOWS = (1, 3, 5, 10)
PAPER_FIGURES = "Paper (Balabit, its own protocol): ALL/TRANSFER2 AUC 0.98."


def _encoder(args, log, spec):
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


def _mean_sd(values) -> dict:
    v = np.asarray([x for x in values if x is not None], float)
    return {"mean": float(v.mean()) if len(v) else None, "sd": float(v.std()) if len(v) else None}


def _users(sessions, wanted):
    users = list(dict.fromkeys(s.user for s in sessions))
    if wanted:
        from training.commands import select_users
        users = select_users(dict.fromkeys(users), wanted)
    return users


def paper_protocol(args, log) -> dict:
    # the seed paper's fit: no generated scripted negatives, one tiling, batches of 32
    cfg = FitConfig.from_args(args, scripted=0.0, tilings=1, batch=32)
    sessions = load_sessions(args.dataset, args.data)
    users = _users(sessions, args.users)
    encoder_state, spec, encoder_info = _encoder(args, log, SEED_SPEC)
    by_user = {u: np.concatenate([session_blocks(s, spec) for s in sessions if s.user == u]) for u in users}
    rng = np.random.default_rng(args.seed)
    results = {f"{size}/{mode}": [] for size in PAPER_SIZES for mode in MODES}
    rocs = {}
    for user in users:
        own = by_user[user][rng.permutation(len(by_user[user]))]
        others = np.concatenate([b for u, b in by_user.items() if u != user])
        others = others[rng.permutation(len(others))]
        test_pos, train_pos_all = own[:PAPER_TEST_BLOCKS], own[PAPER_TEST_BLOCKS:]
        test_neg, train_neg = others[:PAPER_TEST_BLOCKS], others[PAPER_TEST_BLOCKS:]
        for size in PAPER_SIZES:
            train_pos = train_pos_all[:300] if size == "300" else train_pos_all
            for mode in MODES:
                t0 = time.time()
                model = fit_user(train_pos, train_neg, spec, mode, encoder_state, cfg)
                pg, pi = predict(model, test_pos), predict(model, test_neg)
                m = auc_eer(pg, pi)
                m["accuracy"] = float((np.sum(pg >= 0.5) + np.sum(pi < 0.5)) / (len(pg) + len(pi)))
                m["user"], m["train_genuine"] = user, int(len(train_pos))
                results[f"{size}/{mode}"].append(m)
                rocs.setdefault(f"{size}/{mode}", []).append((pg, pi))
                log(f"paper {user} {size}/{mode}: AUC {m['auc']:.3f} acc {m['accuracy']:.3f} ({time.time() - t0:.0f} s)")
    summary = {k: {"auc": _mean_sd(r["auc"] for r in v), "accuracy": _mean_sd(r["accuracy"] for r in v)}
               for k, v in results.items()}
    identification = {}
    for remainder in ("drop", "concatenate"):
        r = identify(sessions, users, dataclasses.replace(spec, remainder=remainder), cfg, "blocks", rng)
        identification[remainder] = r
        log(f"paper identification ({remainder}): accuracy {r['accuracy']:.3f}")
    return {"protocol": "paper", "results": results, "summary": summary, "identification": identification,
            "encoder": encoder_info, "_rocs": rocs}


def _window_scores(block_scores: np.ndarray, k: int) -> np.ndarray:
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


def sessions_protocol(args, log) -> dict:
    cfg = FitConfig.from_args(args)
    sessions = load_sessions(args.dataset, args.data)
    users = _users(sessions, args.users)
    encoder_state, spec, encoder_info = _encoder(args, log, DEFAULT_SPEC)
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
            fitted = fit_calibrated(pos_recordings, neg_runs, spec, user=user, mode=mode,
                                    encoder_state=encoder_state, cfg=cfg, min_blocks=10)  # SapiMouse 1-min sessions hold ~16 blocks
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
                     "same_setup": own_setup[s.key], "blocks": int(len(p)), "score": float(p.mean()) if len(p) else 0.5})
        log(f"sessions {user} fold {f}: {len(train_s)} training sessions, {len(test_sessions)} test sessions")
    summary, own_setup_summary = {}, {}
    rocs = {}
    for mode, d in per_mode.items():
        summary[mode] = _auc_row(d["genuine"], d["impostor"])
        # impostors at the owner's capture set-up only: what someone at the owner's desk looks like
        own_setup_summary[mode] = _auc_row(d["genuine"], d["impostor_own_setup"])
        for k in (1, 5):
            rocs[f"{mode} k={k}"] = (_pooled_windows(d["genuine"], k), _pooled_windows(d["impostor"], k))
    return {"protocol": "sessions", "impostors": args.impostors, "summary": summary,
            "summary_own_setup_impostors": own_setup_summary, "encoder": encoder_info,
            "sessions_without_blocks": sorted(empty_sessions),
            "test_sessions": {m: len(d["session_rows"]) for m, d in per_mode.items()},
            "session_rows": per_mode["transfer2"]["session_rows"], "_rocs": rocs}


def _pooled_windows(runs: list[np.ndarray], k: int) -> np.ndarray:
    """The means of k blocks (:func:`_window_scores`) of every run, pooled."""
    return np.concatenate([np.empty(0)] + [_window_scores(p, k) for p in runs])


def _auc_row(genuine: list[np.ndarray], impostor: list[np.ndarray]) -> dict:
    """Pooled AUC/EER of block scores, of means of k blocks and of whole sessions (a session
    without a block scores 0.5)."""
    row = {f"k={k}": auc_eer(_pooled_windows(genuine, k), _pooled_windows(impostor, k)) for k in WINDOWS}
    session = lambda runs: np.array([p.mean() if len(p) else 0.5 for p in runs])
    row["session"] = auc_eer(session(genuine), session(impostor))
    return row


def _fmt(x, digits=3):
    return "–" if x is None else f"{x:.{digits}f}"


def markdown(report: dict) -> str:
    lines = [f"# mouseguard evaluation: {report['protocol']} protocol on {report['dataset']}", "",
             f"{report['date']}, {report['machine']}; command: `{report['command']}`", ""]
    if report["protocol"] == "paper":
        lines += ["Seed paper's protocol (blocks of the same sessions in training and test, test impostors "
                  "seen in training) — optimistic by construction; see the `sessions` protocol for honest figures.", "",
                  "| training blocks | mode | AUC mean (sd) | accuracy mean (sd) |", "|---|---|---|---|"]
        for key, s in report["summary"].items():
            size, mode = key.split("/")
            lines.append(f"| {size} | {mode.upper()} | {_fmt(s['auc']['mean'])} ({_fmt(s['auc']['sd'])}) | "
                         f"{_fmt(s['accuracy']['mean'])} ({_fmt(s['accuracy']['sd'])}) |")
        lines += ["", "| identification | accuracy | users | test blocks |", "|---|---|---|---|"]
        for rem, r in report["identification"].items():
            lines.append(f"| {rem} | {_fmt(r['accuracy'])} | {r['users']} | {r['test_blocks']} |")
        lines += ["", PAPER_FIGURES]
    elif report["protocol"] == "detection":
        from training.detection import markdown_lines

        lines += markdown_lines(report)
    elif report["protocol"] == "enrolment":
        from training.enrolment_eval import markdown_lines

        lines += markdown_lines(report)
    elif report["protocol"] == "identification":
        from training.identification import markdown_lines

        lines += markdown_lines(report)
    else:
        seen = ("test impostors are the other users, whose other sessions trained the model (as in Balabit's "
                "official test)" if report.get("impostors") == "seen" else "test impostors never seen in training")
        lines += [f"Session-disjoint; {seen}; every session counted "
                  f"({len(report['sessions_without_blocks'])} sessions had no block and score 0.5).", ""]
        lines += sessions_table({m.upper(): r for m, r in report["summary"].items()}, "mode", "block")
        lines += ["", "The same, with only the impostor sessions recorded on the owner's capture set-up (event rate "
                      f"within {SAME_SETUP_FACTOR:g}x of the owner's training recordings): someone at the owner's desk.", ""]
        lines += sessions_table({m.upper(): r for m, r in report["summary_own_setup_impostors"].items()}, "mode", "block")
    return "\n".join(lines) + "\n"


def sessions_table(summary: dict, name: str, row: str) -> list[str]:
    """The sessions protocol's markdown table: AUC/EER per row, per k rows, per session."""
    lines = [f"| {name} | {row} AUC | {row} EER | k=3 AUC | k=5 AUC | k=5 EER | k=10 AUC | session AUC | session EER |",
             "|---|---|---|---|---|---|---|---|---|"]
    for label, r in summary.items():
        lines.append(f"| {label} | {_fmt(r['k=1']['auc'])} | {_fmt(r['k=1']['eer'])} | {_fmt(r['k=3']['auc'])} | "
                     f"{_fmt(r['k=5']['auc'])} | {_fmt(r['k=5']['eer'])} | {_fmt(r['k=10']['auc'])} | "
                     f"{_fmt(r['session']['auc'])} | {_fmt(r['session']['eer'])} |")
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
            ylim=norm.ppf(ticks[[0, -1]]), xlabel="false acceptance rate", ylabel="false rejection rate (genuine refused)",
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
    import os
    import shlex
    import sys

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


def run(args, log) -> int:
    if getattr(args, "model_family", "cnn") != "cnn":
        from training import family_eval

        return family_eval.run(args, log)
    from training import detection, enrolment_eval, identification

    t0 = time.time()
    protocols = {"paper": paper_protocol, "sessions": sessions_protocol, "detection": detection.detection_protocol,
                 "enrolment": enrolment_eval.enrolment_protocol,
                 "identification": identification.identification_protocol}
    report = protocols[args.protocol](args, log)
    rocs = report.pop("_rocs")
    out = write_report(report, args, t0, markdown, {"epochs": args.epochs, "seed": args.seed, "noise": args.noise})
    if args.protocol in ("detection", "enrolment"):
        detection.plot_time_to_lock(report, out / "time-to-lock.png")
    if rocs:
        plot_rocs(rocs, out / f"roc-{args.protocol}.png", f"{args.protocol} protocol, {args.dataset} (pooled over users)")
    print(markdown(report))
    log(f"report written to {out} ({report['seconds']:.0f} s)")
    return 0
