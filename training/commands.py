"""Handlers of ``mouseguard train ...``."""

from __future__ import annotations

import sys

from agent.blocks import DEFAULT_SPEC, BlockSpec, BlockSpecError
from agent.files import check_output_folder
from agent.model_dir import MANIFEST
from training.data.datasets import (DatasetError, blocks_by_user, load_sessions, select_users, session_blocks,
                                    session_events)
from training.families.cnn.encoder import ENCODER_INFO, load_encoder, pretrain, save_encoder
from training.families.cnn.train import FitConfig
from training.errors import FitError


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def parse_spec(text: str | None, base=DEFAULT_SPEC):
    """``key=value,...`` over ``base``; lists with ``+`` (features=vx+vy+dt), ``none`` for null."""
    if not text:
        return base
    changes = base.to_dict()
    for item in text.split(","):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or key not in changes:
            raise BlockSpecError(f"--spec: expected key=value with a key from {', '.join(changes)}, got {item!r}")
        current = changes[key]
        try:
            if isinstance(current, list):
                changes[key] = value.split("+")
            elif value.lower() in ("none", "null"):
                changes[key] = None
            elif isinstance(current, bool) or isinstance(current, str):
                changes[key] = value
            elif isinstance(current, int):
                changes[key] = int(value)
            else:
                changes[key] = float(value)
        except ValueError:
            raise BlockSpecError(f"--spec: {key}={value!r} is not a number") from None
    return BlockSpec.from_dict(changes)


def cmd_pretrain(args) -> int:
    check_output_folder(args.out, ENCODER_INFO)  # before minutes of training, not after
    cfg = FitConfig.from_args(args)
    sessions = load_sessions(args.dataset, args.data)
    users = select_users(dict.fromkeys(s.user for s in sessions), args.users)
    spec = parse_spec(args.spec)
    by_user = blocks_by_user([s for s in sessions if s.user in users], spec)
    _say(f"pre-training on {len(by_user)} users, {sum(map(len, by_user.values()))} blocks")
    model, names = pretrain(by_user, spec, cfg, log=_say)
    save_encoder(model, spec, args.out, {"dataset": args.dataset, "users": names,
                                         "epochs": args.epochs, "seed": args.seed})
    _say(f"encoder written to {args.out}")
    return 0


def _fit_cnn(args, genuine, impostors, log):
    """The CNN's fit: TRANSFER2 from the shipped encoder unless told otherwise; blocks of the
    other users' sessions are the impostors (each one's tail held out)."""
    from training.user_model.fit import fit_cnn

    encoder_state, spec = None, DEFAULT_SPEC
    if args.mode != "plain":
        import models

        args.encoder = args.encoder or str(models.ENCODER)  # the shipped, SapiMouse-pretrained one
    if args.encoder:
        encoder_state, spec, _ = load_encoder(args.encoder)
    impostor_runs = [session_blocks(s, spec) for s in impostors]
    log(f"impostors: {sum(map(len, impostor_runs))} blocks from {len({s.user for s in impostors})} users")
    fitted = fit_cnn([session_events(s) for s in genuine], impostor_runs, spec, user=args.user, mode=args.mode,
                     encoder_state=encoder_state, cfg=FitConfig.from_args(args), log=log)
    return fitted, {"impostor_users": sorted({s.user for s in impostors}),
                    "encoder": str(args.encoder) if args.encoder else None}, "heldout_block"


def _fit_features(args, genuine, impostors, log):
    from training.families.features.mlp import MLPConfig
    from training.user_model.fit import fit_features

    by_user: dict = {}
    for s in impostors:
        by_user.setdefault(s.user, []).append(session_events(s))
    log(f"{args.user}: {len(genuine)} sessions; impostors: {len(by_user)} users")
    # --epochs is the ceiling: early stopping usually ends training sooner.
    fitted = fit_features([session_events(s) for s in genuine], by_user, user=args.user,
                          cfg=MLPConfig(max_epochs=args.epochs, seed=args.seed))
    return fitted, {"impostor_users": sorted(by_user)}, "heldout_segment"


def _fit_patterns(args, genuine, impostors, log):
    from training.families.patterns.model import PatternsConfig
    from training.user_model.fit import fit_patterns

    log(f"{args.user}: {len(genuine)} sessions (the patterns family learns from them alone)")
    fitted = fit_patterns([session_events(s) for s in genuine], user=args.user, cfg=PatternsConfig(seed=args.seed),
                          report_impostors=[session_events(s) for s in impostors[:20]])
    return fitted, {}, "heldout_window_vs_other_users"


#: ``--model-family`` -> its fit: ``(args, genuine sessions, impostor sessions, log)`` ->
#: ``(FittedUser, manifest training info, the held-out metric to print)``.
FAMILY_FITS = {"cnn": _fit_cnn, "features": _fit_features, "patterns": _fit_patterns}


def cmd_fit(args) -> int:
    from training.user_model.fit import export_user_model

    check_output_folder(args.out, MANIFEST)
    sessions = load_sessions(args.dataset, args.data, args.user)
    users = list(dict.fromkeys(s.user for s in sessions))  # the data set's order: user7 before user12
    if args.user not in users:
        raise DatasetError(f"user {args.user!r} is not in {args.data} (users: {', '.join(users[:12])}"
                           f"{' …' if len(users) > 12 else ''})")
    family = getattr(args, "model_family", "cnn")
    genuine = [s for s in sessions if s.user == args.user]
    impostors = [s for s in sessions if s.user != args.user]
    if not impostors and family != "patterns":
        raise FitError(f"no other users' sessions in {args.data} to learn impostors from")
    fitted, info, metric = FAMILY_FITS[family](args, genuine, impostors, _say)
    summary = export_user_model(
        fitted, args.out, user=args.user, false_locks_per_hour=args.false_locks_per_8h / 8.0,
        training_info={"dataset": args.dataset, "data": str(args.data),
                       "genuine_sessions": [s.key for s in genuine], **info})
    m = summary["metrics"].get(metric, {"auc": None})
    c = summary["calibration"]
    auc = f"{m['auc']:.3f}" if m.get("auc") is not None else "n/a"
    _say(f"model written to {args.out} ({family}): held-out AUC {auc}; decision: mean of {summary['window']} "
         f"{fitted.model.row}s < {summary['threshold']:.3f}; held-out genuine false locks "
         f"{c['heldout_false_locks']}; held-out impostor runs locked {c['impostor_runs_locked']}/{c['impostor_runs']}")
    return 0


def cmd_evaluate(args) -> int:
    from training import evaluation

    check_output_folder(args.out)  # reports are written into it, beside what it holds
    return evaluation.run(args, log=_say)


def cmd_build_artifacts(args) -> int:
    import models
    from training.data.artifacts import build

    out = args.out or models.ROOT
    manifest = build(args.data, out, DEFAULT_SPEC, FitConfig.from_args(args), log=_say)
    files = ", ".join(f"{k} ({v['bytes'] / 1e3:.0f} kB)" for k, v in manifest["files"].items())
    _say(f"artefacts written to {out}: {files}")
    return 0


def run(args) -> int:
    return {"pretrain": cmd_pretrain, "fit": cmd_fit, "evaluate": cmd_evaluate,
            "build-artifacts": cmd_build_artifacts}[args.train_command](args)
