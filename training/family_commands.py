"""``mouseguard train fit --model-family features|patterns``: the other families' fit handler."""

from __future__ import annotations

from training.datasets import _events
from training.features_mlp import MLPConfig
from training.fit import FitError
from training.patterns import PatternsConfig


def fit_family(args, sessions, log) -> int:
    from training.family_fit import fit_features, fit_patterns

    genuine_s = [s for s in sessions if s.user == args.user]
    others = [s for s in sessions if s.user != args.user]
    genuine = [_events(s.path) for s in genuine_s]
    info = {"dataset": args.dataset, "data": str(args.data), "genuine_sessions": [s.key for s in genuine_s]}
    rate = args.false_locks_per_8h / 8.0
    if args.model_family == "features":
        if not others:
            raise FitError(f"no other users' sessions in {args.data} to learn impostors from")
        impostors: dict = {}
        for s in others:
            impostors.setdefault(s.user, []).append(_events(s.path))
        log(f"{args.user}: {len(genuine)} sessions; impostors: {len(impostors)} users")
        # --epochs is the ceiling: early stopping usually ends training sooner.
        cfg = MLPConfig(max_epochs=args.epochs, seed=args.seed)
        summary = fit_features(genuine, impostors, args.out, user=args.user, cfg=cfg, false_locks_per_hour=rate,
                               training_info={**info, "impostor_users": sorted(impostors)}, log=None)
        m = summary["metrics"]["heldout_segment"]
    else:
        log(f"{args.user}: {len(genuine)} sessions (the patterns family learns from them alone)")
        summary = fit_patterns(genuine, args.out, user=args.user, cfg=PatternsConfig(seed=args.seed),
                               false_locks_per_hour=rate, training_info=info,
                               report_impostors=[_events(s.path) for s in others[:20]])
        m = summary["metrics"].get("heldout_window_vs_other_users", {"auc": None})
    c = summary["calibration"]
    auc = f"{m['auc']:.3f}" if m.get("auc") is not None else "n/a"
    log(f"model written to {args.out} ({args.model_family}): held-out AUC {auc}; decision: mean of "
        f"{summary['window']} rows < {summary['threshold']:.3f}; held-out genuine false locks "
        f"{c['heldout_false_locks']}")
    return 0
