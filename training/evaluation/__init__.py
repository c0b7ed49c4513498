"""Evaluation protocols: one module each, over :mod:`training.evaluation.common`.

A protocol module has ``run(args, log) -> report`` (a JSON-able dict; ``_rocs``, if present, holds
the score pairs to plot and is not written) and ``markdown_lines(report) -> list[str]``. A new
protocol is a new module here and a line in :data:`PROTOCOLS`; ``mouseguard train evaluate
--protocol`` offers exactly these names. ``--model-family features|patterns`` runs the
``families`` module, which carries those families' versions of ``sessions`` and ``paper``.
"""

from __future__ import annotations

import importlib
import time

#: ``--protocol`` name -> its module, and what it is, for ``--help``.
PROTOCOLS = {
    "paper": "the seed paper's (optimistic)",
    "sessions": "session-disjoint, unseen impostors",
    "detection": "false locks per hour and seconds to lock, replayed through the agent",
    "enrolment": "`enroll --from` a user's first sessions with the shipped pool, scored on the rest",
    "identification": "which user made a block, paper's and session-disjoint splits",
    "desk": "someone else at the owner's own desk: every person's enrolled model against everyone's minutes",
}
#: Protocols whose report has replayed impostor sessions to draw a time-to-lock curve of.
TIME_TO_LOCK = ("detection", "enrolment")


def protocol_module(args):
    """The module that runs ``args.protocol`` for ``args.model_family``."""
    family = getattr(args, "model_family", "cnn")
    return importlib.import_module(f"training.evaluation.{'families' if family != 'cnn' else args.protocol}")


def markdown(report: dict, module) -> str:
    family = f"{report['family']} family, " if "family" in report else ""
    lines = [f"# mouseguard evaluation: {family}{report['protocol']} protocol on {report['dataset']}", "",
             f"{report['date']}, {report['machine']}; command: `{report['command']}`; {report['seconds']:.0f} s", ""]
    return "\n".join(lines + module.markdown_lines(report)) + "\n"


def run(args, log) -> int:
    from training.evaluation.common import plot_rocs, plot_time_to_lock, write_report

    module = protocol_module(args)
    t0 = time.time()
    report = module.run(args, log)
    rocs = report.pop("_rocs", None)
    config = {"epochs": args.epochs, "seed": args.seed}
    if "family" not in report:
        from training.families.cnn.train import FitConfig

        config["noise"] = args.noise
        fit = FitConfig.from_args(args)
        config["self_contrast"] = fit.self_contrast
        config["recast_pool"] = fit.recast_pool
    out = write_report(report, args, t0, lambda r: markdown(r, module), config)
    if args.protocol in TIME_TO_LOCK and "family" not in report:
        plot_time_to_lock(report, out / "time-to-lock.png")
    if rocs:
        plot_rocs(rocs, out / f"roc-{args.protocol}.png",
                  f"{args.protocol} protocol, {args.dataset} (pooled over users)")
    print(markdown(report, module))
    log(f"report written to {out} ({report['seconds']:.0f} s)")
    return 0
