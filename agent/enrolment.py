"""``mouseguard enroll``: record (or take recordings), then train the person's model.

Training needs the ``[train]`` extra; recording does not. Recordings are kept under the
user's recordings folder, so a later re-enrolment learns from everything recorded so far.
The model directory is replaced atomically: the previous model protects until the new one
is complete, and an interrupted enrolment leaves it untouched.
"""

from __future__ import annotations

import datetime
import hashlib
import importlib.util
import sys
from pathlib import Path

from agent.errors import MouseguardError
from agent.recordings import read_recording


def _progress_line(target_minutes: float):
    def show(active: float, wall: float, events: int) -> None:
        done = min(1.0, active / (target_minutes * 60))
        bar = "#" * int(done * 30)
        print(f"\rrecording [{bar:<30}] {active / 60:5.1f} / {target_minutes:g} min of movement, "
              f"{events} events (Ctrl-C to stop early)", end="", file=sys.stderr, flush=True)
    return show


def new_recording_path(folder: Path) -> Path:
    """A fresh recording file in ``folder`` (created private), named by the time."""
    from agent.paths import ensure

    folder = ensure(folder)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return folder / f"{stamp}.csv.gz"


def read_recordings(files: list) -> list:
    """The events of each recording file, refusing one given twice (by another name too): the
    copy would be held out to check the model on the movement it trained on."""
    recordings, seen = [], {}
    for f in files:
        events = read_recording(f)
        digest = hashlib.sha256(events.tobytes()).digest()
        if digest in seen:
            twice = "is given twice" if seen[digest] == f else f"holds the same recording as {seen[digest]}"
            raise MouseguardError(f"{f} {twice}: give each recording once")
        seen[digest] = f
        recordings.append(events)
    return recordings


def training_available() -> bool:
    """Whether the ``[train]`` extra's PyTorch is installed — looked up, not imported: agent/
    never imports torch."""
    return importlib.util.find_spec("torch") is not None


def require_training() -> None:
    """Refuse at once when a model cannot be trained here, before any recording or reading
    that would only end in that error (a runtime-only install has no torch)."""
    if not training_available():
        raise MouseguardError("training a model needs PyTorch: pip install 'mouseguard[train]' "
                              "(see README, 'Install'); 'mouseguard record' records without it")


def train_from(recordings: list, files: list, user: str, config, epochs: int = 16) -> dict:
    """Enrol ``user`` from the events of ``recordings`` (read from ``files``); returns the
    enrolment summary."""
    require_training()
    from agent.paths import user_model_dir
    from training.enrol import enrol
    from training.families.cnn.train import FitConfig

    out = user_model_dir(user)
    return enrol(recordings, user, out, cfg=FitConfig(epochs=epochs),
                 false_locks_per_8h=config.enrolment.false_locks_per_8h, sources=files,
                 log=lambda m: print(m, file=sys.stderr, flush=True))


def enroll_cmd(args) -> int:
    from agent.config import effective_user, load_config
    from agent.paths import user_model_dir, user_recordings_dir

    require_training()
    config = load_config()
    user = args.user or effective_user(config)
    user_model_dir(user)  # a path instead of a name is refused before anything is read or recorded
    if args.from_files:
        files = list(args.from_files)
        recordings = read_recordings(files)  # a bad file fails before anything is trained
    else:
        minutes = args.minutes or config.enrolment.minutes
        if not minutes > 0:
            raise MouseguardError("--minutes must be positive")
        from agent.capture import check_display
        from agent.recorder import record

        check_display()  # before the announcement below; CaptureUnavailable is a MouseguardError
        path = new_recording_path(user_recordings_dir(user))
        print(f"Use the computer as you normally do; mouseguard records {minutes:g} minutes of mouse "
              f"movement into {path}.", file=sys.stderr)
        record(path, active_minutes=minutes, progress=_progress_line(minutes))
        print(file=sys.stderr)
        files = sorted(str(p) for p in user_recordings_dir(user).glob("*.csv*"))
        if not files:
            raise MouseguardError("nothing was recorded")
        recordings = read_recordings(files)
    from training.enrol import describe  # torch is there: require_training() above
    from training.errors import FitError

    try:
        summary = train_from(recordings, files, user, config, epochs=args.epochs)
    except FitError as exc:
        raise MouseguardError(f"{exc}; nothing was changed") from None

    print(f"enrolled {user}: model in {user_model_dir(user)}")
    print(describe(summary))
    return 0
