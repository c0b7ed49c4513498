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
    # names and help texts only: these import neither torch nor a protocol
    from training.evaluation import PROTOCOLS
    from training.families import FAMILIES

    train = sub.add_parser("train", help="pre-train, fit, evaluate models (needs the [train] extra)")
    tsub = train.add_subparsers(dest="train_command", required=True, metavar="{pretrain,fit,evaluate,build-artifacts}")

    p = tsub.add_parser("pretrain", help="pre-train the encoder as an identifier of many users")
    p.add_argument("--dataset", choices=["sapimouse", "balabit"], default="sapimouse")
    p.add_argument("--data", required=True, help="folder of the data set")
    p.add_argument("--out", required=True, help="encoder folder to write")
    p.add_argument("--users", help="only these users, e.g. 1-72 or user1,user2 (default: all)")
    p.add_argument("--spec", help="block spec changes from the default, e.g. remainder=concatenate,features=vx+vy+dt "
                                  "(the encoder carries its spec to every model fitted from it)")
    _add_fit_options(p)

    p = tsub.add_parser("fit", help="train one user's model against other users and export it")
    p.add_argument("--dataset", choices=["balabit", "sapimouse", "mauth", "recording"], required=True)
    p.add_argument("--data", required=True, help="data set folder, or a recording file/folder")
    p.add_argument("--user", required=True, help="the genuine user")
    p.add_argument("--out", required=True, help="model directory to write (replaced atomically)")
    p.add_argument("--mode", choices=["plain", "transfer1", "transfer2"], default="transfer2",
                   help="plain: a fresh network; transfer1/2: the pre-trained encoder frozen / fine-tuned (default)")
    p.add_argument("--model-family", choices=list(FAMILIES), default="cnn",
                   help="; ".join(f"{name}: {what}" for name, what in FAMILIES.items()))
    p.add_argument("--encoder", help="pre-trained encoder folder (default: the shipped one)")
    p.add_argument("--false-locks-per-8h", type=_rate, default=1.0,
                   help="target false-lock rate used to calibrate the threshold (default 1)")
    _add_fit_options(p)

    p = tsub.add_parser("build-artifacts", help="rebuild models/ (encoder, background pool, demo) from public data")
    p.add_argument("--data", required=True, help="folder holding sapimouse/ and balabit-training/")
    p.add_argument("--out", help="artefact folder (default: the package's models/)")
    _add_fit_options(p)

    p = tsub.add_parser("evaluate", help="run an evaluation protocol and write a report")
    p.add_argument("--protocol", choices=list(PROTOCOLS), required=True,
                   help="; ".join(f"{name}: {what}" for name, what in PROTOCOLS.items()))
    p.add_argument("--dataset", choices=["balabit", "sapimouse", "mauth"], required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--out", default="report", help="report folder (default ./report)")
    p.add_argument("--encoder", help="pre-trained encoder folder (default: pre-train one on SapiMouse)")
    p.add_argument("--sapimouse", help="SapiMouse folder for pre-training when no --encoder is given")
    p.add_argument("--users", help="only these users (e.g. user7,user9) — for quick runs")
    p.add_argument("--model-family", choices=list(FAMILIES), default="cnn",
                   help="which model family to evaluate (default cnn)")
    p.add_argument("--false-locks-per-8h", type=_rate, default=1.0,
                   help="detection/enrolment protocols: target false-lock rate of the calibration (default 1)")
    p.add_argument("--impostors", choices=["unseen", "seen"], default="unseen",
                   help="sessions protocol: test impostors never seen in training (default), or the other "
                        "users' other sessions, as in Balabit's official test")
    p.add_argument("--cohort", type=_cohorts, default=[0],
                   help="desk protocol: cohort sizes to measure, e.g. 0,1,3,6 — each model also trained against "
                        "that many other people of the data, as on a shared workstation (default 0)")
    p.add_argument("--enrol-sessions", type=_whole(1, 1000), default=2,
                   help="enrolment protocol: sessions per user to enrol from (default 2)")
    _add_fit_options(p)


class _Parser(argparse.ArgumentParser):
    """argparse, with its refusals in one line (argparse prints the usage block first)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _whole(lo: int, hi: int):
    """An argparse type: a whole number within [lo, hi]."""
    def parse(text: str) -> int:
        try:
            n = int(text)
        except ValueError:
            n = lo - 1
        if not lo <= n <= hi:
            raise argparse.ArgumentTypeError(f"expected a whole number from {lo} to {hi}, got {text!r}")
        return n
    return parse


def _cohorts(text: str) -> list[int]:
    """An argparse type: comma-separated cohort sizes, each a whole number from 0 to 1000."""
    return [_whole(0, 1000)(part.strip()) for part in text.split(",")]


#: Epochs: 1 to 1,000 (the default 16 takes ~25 s on a core; 1,000 is a day's fit, enough for an experiment).
_epochs = _whole(1, 1000)
#: torch and numpy take seeds from 0 to 2**32 - 1.
_seed = _whole(0, 2**32 - 1)
#: Tilings start at steps spread over one block, so more than a block's 128 events repeat starts.
_tilings = _whole(1, 128)


def _minutes(text: str) -> float:
    """An argparse type: a number of minutes greater than 0 (the agent applies its own cap)."""
    try:
        x = float(text)
    except ValueError:
        x = -1.0
    if not 0 < x < float("inf"):  # also refuses nan
        raise argparse.ArgumentTypeError(f"expected a number of minutes greater than 0, got {text!r}")
    return x


def _share(text: str) -> float:
    """A share from 0 to 1 (noise augmentation: ±N on the block's features, the paper used 0.2;
    self-contrast: the share of negatives made from the owner's own movement)."""
    try:
        x = float(text)
    except ValueError:
        x = -1.0
    if not 0 <= x <= 1:  # also refuses nan
        raise argparse.ArgumentTypeError(f"expected a number from 0 to 1, got {text!r}")
    return x


def _rate(text: str) -> float:
    """A false-lock target as the config takes it: more than 0, at most 100 per 8 hours."""
    try:
        x = float(text)
    except ValueError:
        x = -1.0
    if not 0 < x <= 100:
        raise argparse.ArgumentTypeError(f"expected a number greater than 0, at most 100, got {text!r}")
    return x


def _add_fit_options(p) -> None:
    p.add_argument("--epochs", type=_epochs, default=16)
    p.add_argument("--seed", type=_seed, default=0)
    p.add_argument("--noise", type=_share, default=0.0, help="uniform noise augmentation (±N; paper: 0.2)")
    p.add_argument("--tilings", type=_tilings, help="per-user fits: cut each training recording this many ways, "
                   "from starts spread over one block (default 4; 1 = one cut, as the seed paper)")
    p.add_argument("--self-contrast", type=_share, help="per-user fits: the share of negatives made from the owner's "
                   "own movement, changed as another hand would move (default 0 = off; README: 'Someone at your desk')")
    p.add_argument("--no-pool-recast", dest="recast_pool", action="store_false", default=None,
                   help="enrolments: train against the background pool as shipped only, not also re-cast to "
                   "the owner's event rate (README: 'Someone at your desk')")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="mouseguard",
        description="Continuous authentication from mouse dynamics: learns how you move the mouse, "
        "then locks the session when someone else is at it.",
    )
    parser.add_argument("--version", action="version", version=f"mouseguard {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("run", help="watch the mouse and lock (or alert) when someone else is at it")
    p.add_argument("--model", help="model directory (default: the enrolled user's)")
    p.add_argument("--action", choices=["lock", "alert", "log"], help="what to do on an impostor (default: config)")
    p.add_argument("--no-tray", action="store_true", help="run without a tray icon")

    p = sub.add_parser("record", help="record your mouse use to a file (project CSV format)")
    p.add_argument("--out", required=True, help="file to write (.csv or .csv.gz)")
    p.add_argument("--minutes", type=float, help="stop after this many minutes (default: at Ctrl-C)")

    p = sub.add_parser("score", help="score recordings with a model: CSV of file,blocks,score",
                       description="One CSV row per file: the blocks scored and their mean P(genuine). Unlike "
                                   "the live agent, the movement left over at the end is scored too (repeated "
                                   "to fill a block): all of it in a file shorter than one block, else when it "
                                   "is at least half a block. A file without movement gets an empty score.")
    p.add_argument("--model", help="model directory (model.onnx + manifest.json; default: the enrolled user's)")
    p.add_argument("files", nargs="+", metavar="FILE",
                   help="recordings (mouseguard CSV[.gz], Balabit, SapiMouse or mAuth)")

    p = sub.add_parser("replay", help="feed a recording through the agent's pipeline and print its decisions")
    p.add_argument("file", metavar="FILE", help="a recording (mouseguard CSV[.gz], Balabit, SapiMouse or mAuth)")
    p.add_argument("--model", help="model directory (default: the enrolled user's model)")
    p.add_argument("--speed", type=float, help="1 = real time, 10 = ten times faster (default: as fast as possible)")

    p = sub.add_parser("demo", help="replay the shipped genuine and impostor demo sessions (no display needed)")
    p.add_argument("--out", default="mouseguard-demo.png", help="timeline chart to write (PNG)")

    p = sub.add_parser("enroll", help="learn how you move the mouse and create your model")
    p.add_argument("--user", help="whose model (default: the login name)")
    p.add_argument("--minutes", type=float, help="minutes of active movement to record (default: config)")
    p.add_argument("--from", dest="from_files", nargs="+", metavar="FILE",
                   help="enrol from these recordings instead of recording now (or from the enrolment blocks "
                        "file an earlier enrolment kept); files outside mouseguard's recordings folder are "
                        "never deleted")
    p.add_argument("--keep-recordings", action="store_true",
                   help="keep the recordings in mouseguard's recordings folder after a successful enrolment "
                        "(default: deleted, see enrolment.keep_recordings); whoever copies one can replay "
                        "your movement")
    p.add_argument("--epochs", type=_epochs, default=16, help=argparse.SUPPRESS)

    p = sub.add_parser("update-model", help="refit your model on the movement kept as clearly yours (guarded)",
                       description="Refit the model on the enrolment blocks plus the blocks the agent kept as "
                                   "clearly yours (README: docs/template-update.md); the new model replaces the "
                                   "current one only if its held-out check is no worse. The running agent does this "
                                   "by itself (template.update_hours). Exit 0 updated, 1 refused, 2 error.")
    p.add_argument("--user", help="whose model (default: the login name)")
    p.add_argument("--blocks", help=argparse.SUPPRESS)  # another kept-blocks file (tests, measurement)
    p.add_argument("--epochs", type=_epochs, default=16, help=argparse.SUPPRESS)

    from agent.status import EXIT_CODES

    p = sub.add_parser("status", help="what the running agent is doing (or that it is not running)",
                       description="What the running agent is doing, or why it is not running, and where its "
                                   "log is. The exit code says it to scripts.",
                       epilog="exit codes: " + "; ".join(f"{code} {what}" for code, what in EXIT_CODES.items())
                              + "; 2 bad arguments")
    p.add_argument("--json", action="store_true", help="print the status as JSON (same exit codes)")

    p = sub.add_parser("pause", help="pause protection for a while (capped: see agent.max_pause_minutes)",
                       description="Ask the running agent to stop judging the mouse for MIN minutes (default "
                                   "agent.pause_minutes). Pauses are capped in length (agent.max_pause_minutes) and "
                                   "in number per day (agent.pauses_per_day). Exit 0 paused, 1 refused, 3 no agent.")
    p.add_argument("minutes", nargs="?", type=_minutes, metavar="MIN", help="minutes to pause")
    sub.add_parser("resume", help="end a pause now",
                   description="Ask the running agent to protect again at once. Exit 0 resumed, 1 not paused, "
                               "3 no agent.")
    sub.add_parser("stop", help="stop the running agent",
                   description="Ask the running agent to end (over its private channel: no kill needed), and "
                               "wait until it has. 'mouseguard status' then says who stopped it. Exit 0 stopped, "
                               "3 no agent.")

    p = sub.add_parser("history", help="recent decisions, locks and pauses, from the agent's log",
                       description="What the agent decided and was told to do, oldest first: state changes, "
                                   "locks and alerts, pauses, starts and refusals to start. Read from its log "
                                   "(see 'mouseguard status' for where it is).")
    p.add_argument("--limit", type=_whole(1, 1_000_000), default=30, help="show the last N events (default 30)")
    p.add_argument("--json", action="store_true", help="print the events as JSON")

    p = sub.add_parser("autostart", help="start the agent at login: enable, disable, or status (is it on?)")
    p.add_argument("action", choices=["enable", "disable", "status"])

    p = sub.add_parser("forget", help="erase your models, recordings, enrolment blocks and record, logs and status")
    p.add_argument("--user", help="whose data (default: the login name)")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p.add_argument("--config", action="store_true", help="erase the configuration file too")

    p = sub.add_parser("bench",
                       help="benchmarks: inference, agent overhead, hook cost, long replay, enrolment, start-up")
    p.add_argument("--data", default="../shared/data", help="folder with balabit-training/ and sapimouse/")
    p.add_argument("--out", default="bench", help="folder for bench.json and bench.md (default ./bench)")
    p.add_argument("--quick", action="store_true", help="a short smoke run of every benchmark (CI)")

    _add_train(sub)
    _describe_from_help(parser)
    return parser


def _describe_from_help(parser: argparse.ArgumentParser) -> None:
    """A subcommand's ``--help`` opens with its one-line help where it has no description of its own."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            for name, sub in action.choices.items():
                if sub.description is None and helps.get(name):
                    sub.description = helps[name][0].upper() + helps[name][1:] + "."
                _describe_from_help(sub)


def _dispatch(args) -> int:
    if args.command in ("train", "bench"):
        from agent.enrolment import train_install_hint, training_available

        if not training_available():
            raise MouseguardError(
                f"'mouseguard {args.command}' needs PyTorch: {train_install_hint()} "
                "(CPU-only wheel: see README, 'Install')"
            )
        if args.command == "bench":
            from benchmarks import run as bench

            return bench.run(args)
        from training import commands

        return commands.run(args)
    from agent import commands

    return commands.run(args)


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = _dispatch(args)
        sys.stdout.flush()  # inside the try: a full disk under stdout is reported like any error
        return code
    except MouseguardError as exc:
        print(f"mouseguard: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `mouseguard replay ... | head`: the reader left, nothing is wrong
        sys.stderr.close()
        return 0
    except OSError as exc:  # a full disk, a read-only or vanished folder: what failed, in one line
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"mouseguard: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mouseguard: interrupted", file=sys.stderr)
        return 130
