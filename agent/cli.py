"""The ``mouseguard`` command line.

Every subcommand's handler is imported when it runs, so ``mouseguard --help`` and the
agent's own commands never import onnxruntime or torch needlessly; ``train`` needs the
``[train]`` extra and says so when it is missing.
"""

from __future__ import annotations

import argparse
import sys

from agent import __version__
from agent.errors import MouseguardError


def _add_train(sub) -> None:
    train = sub.add_parser("train", help="pre-train, fit, evaluate models (needs the [train] extra)")
    tsub = train.add_subparsers(dest="train_command", required=True, metavar="{pretrain,fit,evaluate}")

    p = tsub.add_parser("pretrain", help="pre-train the encoder as an identifier of many users")
    p.add_argument("--dataset", choices=["sapimouse", "balabit"], default="sapimouse")
    p.add_argument("--data", required=True, help="folder of the data set")
    p.add_argument("--out", required=True, help="encoder folder to write")
    p.add_argument("--users", help="only these users, e.g. 1-72 or user1,user2 (default: all)")
    _add_fit_options(p)

    p = tsub.add_parser("fit", help="train one user's model against other users and export it")
    p.add_argument("--dataset", choices=["balabit", "sapimouse", "recording"], required=True)
    p.add_argument("--data", required=True, help="data set folder, or a recording file/folder")
    p.add_argument("--user", required=True, help="the genuine user")
    p.add_argument("--out", required=True, help="model directory to write (replaced atomically)")
    p.add_argument("--mode", choices=["plain", "transfer1", "transfer2"], default="plain")
    p.add_argument("--encoder", help="pre-trained encoder folder (transfer modes)")
    p.add_argument("--false-locks-per-8h", type=float, default=1.0,
                   help="target false-lock rate used to calibrate the threshold (default 1)")
    _add_fit_options(p)

    p = tsub.add_parser("evaluate", help="run an evaluation protocol and write a report")
    p.add_argument("--protocol", choices=["paper", "sessions"], required=True)
    p.add_argument("--dataset", choices=["balabit", "sapimouse"], required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--out", default="report", help="report folder (default ./report)")
    p.add_argument("--encoder", help="pre-trained encoder folder (default: pre-train one on SapiMouse)")
    p.add_argument("--sapimouse", help="SapiMouse folder for pre-training when no --encoder is given")
    p.add_argument("--users", help="only these users (e.g. user7,user9) — for quick runs")
    _add_fit_options(p)


def _add_fit_options(p) -> None:
    p.add_argument("--epochs", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--noise", type=float, default=0.0, help="uniform noise augmentation (±N; paper: 0.2)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mouseguard",
        description="Continuous authentication from mouse dynamics: learns how you move the mouse, "
        "then locks the session when someone else is at it.",
    )
    parser.add_argument("--version", action="version", version=f"mouseguard {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("score", help="score recordings with a model: CSV of file,blocks,score")
    p.add_argument("--model", required=True, help="model directory (model.onnx + manifest.json)")
    p.add_argument("files", nargs="+", metavar="FILE", help="recordings (project CSV[.gz], Balabit or SapiMouse)")

    _add_train(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "train":
            try:
                import torch  # noqa: F401
            except ImportError:
                raise MouseguardError(
                    "'mouseguard train' needs PyTorch: pip install 'mouseguard[train]' "
                    "(CPU-only wheel: see README, 'Install')"
                ) from None
            from training import commands

            return commands.run(args)
        from agent import commands

        return commands.run(args)
    except MouseguardError as exc:
        print(f"mouseguard: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mouseguard: interrupted", file=sys.stderr)
        return 130
