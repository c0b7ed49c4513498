"""Handlers of ``mouseguard train ...``."""

from __future__ import annotations

import re
import sys

from agent.blocks import DEFAULT_SPEC, BlockSpec, BlockSpecError
from agent.files import check_output_folder
from agent.model_dir import MANIFEST
from training.datasets import DatasetError, blocks_by_user, load_sessions, session_blocks, session_events
from training.fit import ENCODER_INFO, FitConfig, FitError, load_encoder, pretrain, save_encoder


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def select_users(all_users, wanted: str | None) -> list[str]:
    """``user7,user9``, ``7,9`` or ranges ``1-72``; names keep the data set's spelling."""
    if not wanted:
        return list(all_users)
    chosen = []
    for part in wanted.split(","):
        part = part.strip()
        m = re.fullmatch(r"(?:user)?(\d+)-(?:user)?(\d+)", part)
        names = [f"user{i}" for i in range(int(m.group(1)), int(m.group(2)) + 1)] if m else \
            [part if part.startswith("user") else f"user{part}"]
        chosen += [n for n in names if n in all_users]
        if not m and names[0] not in all_users:
            raise DatasetError(f"unknown user {part!r} (the data has {len(all_users)} users, e.g. {', '.join(list(all_users)[:3])})")
    if not chosen:
        raise DatasetError(f"no users match {wanted!r}")
    return sorted(set(chosen), key=list(all_users).index)


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


def cmd_fit(args) -> int:
    from training.personal import train_personal_model

    check_output_folder(args.out, MANIFEST)
    cfg = FitConfig.from_args(args)
    sessions = load_sessions(args.dataset, args.data, args.user)
    users = list(dict.fromkeys(s.user for s in sessions))  # the data set's order: user7 before user12
    if args.user not in users:
        raise DatasetError(f"user {args.user!r} is not in {args.data} (users: {', '.join(users[:12])}"
                           f"{' …' if len(users) > 12 else ''})")
    if getattr(args, "model_family", "cnn") != "cnn":
        from training.family_commands import fit_family

        return fit_family(args, sessions, log=_say)
    encoder_state, spec = None, DEFAULT_SPEC
    if args.mode != "plain":
        import models

        args.encoder = args.encoder or str(models.ENCODER)  # the shipped, SapiMouse-pretrained one
    if args.encoder:
        encoder_state, spec, _ = load_encoder(args.encoder)
    genuine = [s for s in sessions if s.user == args.user]
    impostors = [s for s in sessions if s.user != args.user]
    if not impostors:
        raise FitError(f"no other users' sessions in {args.data} to learn impostors from")
    genuine_recordings = [session_events(s) for s in genuine]
    impostor_runs = [session_blocks(s, spec) for s in impostors]
    _say(f"impostors: {sum(map(len, impostor_runs))} blocks from {len({s.user for s in impostors})} users")
    summary = train_personal_model(
        genuine_recordings, impostor_runs, spec, args.out, user=args.user, mode=args.mode,
        encoder_state=encoder_state, cfg=cfg, false_locks_per_hour=args.false_locks_per_8h / 8.0, log=_say,
        training_info={"dataset": args.dataset, "data": str(args.data),
                       "genuine_sessions": [s.key for s in genuine],
                       "impostor_users": sorted({s.user for s in impostors}),
                       "encoder": str(args.encoder) if args.encoder else None},
    )
    m = summary["metrics"]["heldout_block"]
    c = summary["calibration"]
    auc = f"{m['auc']:.3f}" if m["auc"] is not None else "n/a"
    _say(f"model written to {args.out}: held-out block AUC {auc}; decision: mean of {summary['window']} "
         f"blocks < {summary['threshold']:.3f}; held-out impostor runs locked "
         f"{c['impostor_runs_locked']}/{c['impostor_runs']}")
    return 0


def cmd_evaluate(args) -> int:
    from training import evaluate

    check_output_folder(args.out)  # reports are written into it, beside what it holds
    return evaluate.run(args, log=_say)


def cmd_build_artifacts(args) -> int:
    import models
    from training.artifacts import build

    out = args.out or models.ROOT
    manifest = build(args.data, out, DEFAULT_SPEC, FitConfig.from_args(args), log=_say)
    _say(f"artefacts written to {out}: " + ", ".join(f"{k} ({v['bytes'] / 1e3:.0f} kB)" for k, v in manifest["files"].items()))
    return 0


def run(args) -> int:
    return {"pretrain": cmd_pretrain, "fit": cmd_fit, "evaluate": cmd_evaluate,
            "build-artifacts": cmd_build_artifacts}[args.train_command](args)
