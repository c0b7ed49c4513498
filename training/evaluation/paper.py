"""``paper`` — the seed paper's protocol (Fejér & Antal, Tables 2–5), labelled as such.

Per user, blocks are shuffled across sessions; 70 genuine and 70 impostor blocks are held out,
the rest trains (300 genuine blocks or ALL), negatives come from the same other users whose
blocks are tested. Blocks of one session sit on both sides and the test impostors were seen in
training, so its figures are optimistic; they are here to compare with the paper.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from agent.blocks import SEED_SPEC
from training.data.datasets import load_sessions, session_blocks
from training.evaluation.common import TEST_BLOCKS, encoder_for, fmt, identify, mean_sd, protocol_users
from training.evaluation.metrics import auc_eer
from training.families.cnn.train import MODES, FitConfig, fit_user, predict

PAPER_SIZES = ("300", "ALL")


PAPER_FIGURES = "Paper (Balabit, its own protocol): ALL/TRANSFER2 AUC 0.98."


def run(args, log) -> dict:
    # the seed paper's fit: no generated scripted negatives, one tiling, batches of 32
    cfg = FitConfig.from_args(args, scripted=0.0, tilings=1, batch=32)
    sessions = load_sessions(args.dataset, args.data)
    users = protocol_users(sessions, args.users)
    encoder_state, spec, encoder_info = encoder_for(args, log, SEED_SPEC)
    by_user = {u: np.concatenate([session_blocks(s, spec) for s in sessions if s.user == u]) for u in users}
    rng = np.random.default_rng(args.seed)
    results = {f"{size}/{mode}": [] for size in PAPER_SIZES for mode in MODES}
    rocs = {}
    for user in users:
        own = by_user[user][rng.permutation(len(by_user[user]))]
        others = np.concatenate([b for u, b in by_user.items() if u != user])
        others = others[rng.permutation(len(others))]
        test_pos, train_pos_all = own[:TEST_BLOCKS], own[TEST_BLOCKS:]
        test_neg, train_neg = others[:TEST_BLOCKS], others[TEST_BLOCKS:]
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
                log(f"paper {user} {size}/{mode}: AUC {m['auc']:.3f} acc {m['accuracy']:.3f} "
                    f"({time.time() - t0:.0f} s)")
    summary = {k: {"auc": mean_sd(r["auc"] for r in v), "accuracy": mean_sd(r["accuracy"] for r in v)}
               for k, v in results.items()}
    identification = {}
    for remainder in ("drop", "concatenate"):
        r = identify(sessions, users, dataclasses.replace(spec, remainder=remainder), cfg, "blocks", rng)
        identification[remainder] = r
        log(f"paper identification ({remainder}): accuracy {r['accuracy']:.3f}")
    return {"protocol": "paper", "results": results, "summary": summary, "identification": identification,
            "encoder": encoder_info, "_rocs": rocs}


def markdown_lines(report: dict) -> list[str]:
    lines = ["Seed paper's protocol (blocks of the same sessions in training and test, test impostors "
             "seen in training) — optimistic by construction; see the `sessions` protocol for honest figures.", "",
             "| training blocks | mode | AUC mean (sd) | accuracy mean (sd) |", "|---|---|---|---|"]
    for key, s in report["summary"].items():
        size, mode = key.split("/")
        lines.append(f"| {size} | {mode.upper()} | {fmt(s['auc']['mean'])} ({fmt(s['auc']['sd'])}) | "
                     f"{fmt(s['accuracy']['mean'])} ({fmt(s['accuracy']['sd'])}) |")
    lines += ["", "| identification | accuracy | users | test blocks |", "|---|---|---|---|"]
    for rem, r in report["identification"].items():
        lines.append(f"| {rem} | {fmt(r['accuracy'])} | {r['users']} | {r['test_blocks']} |")
    return lines + ["", PAPER_FIGURES]
