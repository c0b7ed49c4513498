"""Handlers of the agent's subcommands (everything but ``train``)."""

from __future__ import annotations

import csv
import dataclasses
import sys

import numpy as np

from agent.blocks import cut_blocks
from agent.model_dir import load_model_dir
from agent.recordings import read_recording


def score(args) -> int:
    """One CSV row per file: blocks cut and the mean P(genuine) over them.

    Remainders are concatenated here whatever the model's spec says, so that a short file
    (many brief movements, none of them a whole block) still yields blocks to score.
    """
    from agent.scorer import Scorer

    model = load_model_dir(args.model)
    scorer = Scorer(model)
    spec = dataclasses.replace(model.spec, remainder="concatenate")
    out = csv.writer(sys.stdout, lineterminator="\n")
    out.writerow(["file", "blocks", "score"])
    # Read every file before printing anything: a bad file fails the command, not row 3.
    recordings = [(path, read_recording(path)) for path in args.files]
    for path, events in recordings:
        blocks, _ = cut_blocks(events, spec)
        p = scorer.score(blocks)
        out.writerow([path, len(blocks), f"{float(np.mean(p)):.6f}" if len(p) else ""])
    return 0


HANDLERS = {"score": score}


def run(args) -> int:
    return HANDLERS[args.command](args)
