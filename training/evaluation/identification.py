"""Identification: which of N users made a block — one multi-class network, accuracy per block.

Two splits, both reported:

* ``blocks`` — the seed paper's: each user's blocks shuffled across sessions and 70 held out,
  so blocks of one session sit on both sides (optimistic; here to compare with the paper);
* ``sessions`` — each user's sessions alternate between training and test, so the network
  must recognise a user on a day it has not seen (honest).

``--protocol identification`` runs both with the seed paper's block spec and mouseguard's
default one; the paper protocol reports the ``blocks`` split with the seed spec.
"""

from __future__ import annotations

import numpy as np

from agent.blocks import DEFAULT_SPEC, SEED_SPEC
from training.data.datasets import load_sessions
from training.evaluation.common import TEST_BLOCKS, identify, protocol_users
from training.families.cnn.train import FitConfig

SPLITS = ("blocks", "sessions")


def run(args, log) -> dict:
    cfg = FitConfig.from_args(args)
    sessions = load_sessions(args.dataset, args.data)
    users = protocol_users(sessions, args.users)
    multi = [u for u in users if sum(s.user == u for s in sessions) >= 2]
    results = {}
    for spec_name, spec in (("seed", SEED_SPEC), ("default", DEFAULT_SPEC)):
        for split in SPLITS:
            chosen = users if split == "blocks" else multi
            r = identify(sessions, chosen, spec, cfg, split, np.random.default_rng(args.seed))
            results[f"{spec_name}/{split}"] = r
            log(f"identification, {spec_name} spec, {split} split: accuracy {r['accuracy']:.3f} "
                f"({r['users']} users, {r['test_blocks']} test blocks)")
    return {"protocol": "identification", "results": results,
            "users_with_one_session": [u for u in users if u not in multi], "_rocs": {}}


def markdown_lines(report: dict) -> list[str]:
    lines = ["Which user made a block (one multi-class network). Split `blocks`: the seed paper's — "
             f"{TEST_BLOCKS} random blocks per user held out of the same sessions (optimistic). Split "
             "`sessions`: alternate sessions of each user train and test (honest).", "",
             "| block spec | split | accuracy | chance | users | test blocks |", "|---|---|---|---|---|---|"]
    for key, r in report["results"].items():
        spec, split = key.split("/")
        lines.append(f"| {spec} | {split} | {r['accuracy']:.3f} | {r['chance']:.3f} | {r['users']} | "
                     f"{r['test_blocks']} |")
    if report["users_with_one_session"]:
        lines += ["", f"Not in the `sessions` split (one session only): {', '.join(report['users_with_one_session'])}."]
    return lines
