"""``mouseguard enroll``: record (or take recordings), then train the person's model.

Training needs the ``[train]`` extra; recording does not. The model directory is replaced
atomically: the previous model protects until the new one is complete, and an interrupted
enrolment leaves it untouched.

A recording is a replay kit (docs/threat-model.md), so once the new model is in place the
recordings it was made from are deleted from mouseguard's recordings folder, unless the user
keeps them (``--keep-recordings``, ``enrolment.keep_recordings``); what a cohort refit or a
template update retrains on is kept instead as the enrolment blocks (agent/enrolment_blocks.py).
Files given with ``--from`` from anywhere else are the user's own and are never deleted. A
failed or interrupted enrolment deletes nothing.

With ``cohort.dir`` set (a shared workstation, see agent/cohort.py) the model is also trained
against the blocks the machine's other accounts published there, and after a successful
enrolment the person's own blocks are published for theirs.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import importlib.util
import sys
from pathlib import Path

import numpy as np

from agent.blocks import BlockSpec
from agent.errors import MouseguardError
from agent.model_dir import load_model_dir
from agent.recordings import read_recording


def _warn(message: str) -> None:
    print(f"mouseguard: warning: {message}", file=sys.stderr, flush=True)


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


def read_sources(files: list, user: str):
    """What ``enroll --from`` / a refit was given: the events of recordings, or (one file alone)
    the enrolment blocks kept at an earlier enrolment of ``user``'s."""
    from agent.enrolment_blocks import is_blocks_file, read_blocks

    kept = [f for f in files if is_blocks_file(f)]
    if not kept:
        return read_recordings(files)
    if len(files) > 1:
        raise MouseguardError(f"{kept[0]} holds the blocks of an enrolment: give it alone, not with other files")
    owner = read_blocks(kept[0])
    if owner.user != user:
        raise MouseguardError(f"{kept[0]} holds the enrolment blocks of {owner.user!r}, not of {user!r}")
    return owner


def cut_owner(sources, user: str):
    """``sources`` (:func:`read_sources`) as EnrolmentBlocks cut with the shipped encoder's
    spec, as enrolment trains on them. Needs torch: call after :func:`require_training`."""
    import models
    from training.errors import FitError
    from training.families.cnn.encoder import load_encoder
    from training.families.cnn.train import FitConfig
    from training.user_model.owner import as_enrolment

    spec = load_encoder(models.ENCODER)[1]
    try:
        owner = as_enrolment(sources, spec, FitConfig().tilings)
    except FitError as exc:
        raise MouseguardError(f"{exc}; nothing was changed") from None
    return dataclasses.replace(owner, user=user)


def _inside(path, folder: Path) -> bool:
    """Whether ``path`` (its target, for a link) lies in ``folder``."""
    try:
        Path(path).resolve().relative_to(folder.resolve())
    except (ValueError, OSError):
        return False
    return True


def settle_recordings(user: str, owner, files: list, keep: bool, warn=_warn) -> list[str]:
    """After a successful enrolment (the model is in place): keep ``owner``'s enrolment blocks,
    then delete the ``files`` that lie in mouseguard's recordings folder unless ``keep``.
    Returns the summary lines saying what was kept and what deleted.

    Deleting is unlinking: on an SSD (wear levelling, TRIM) overwriting a file in place does not
    reach the cells that held it, so an overwrite would only pretend to be more. Files given
    from elsewhere are the user's and stay. When the blocks cannot be written, every recording
    stays: a later refit needs one or the other.
    """
    import os

    from agent.enrolment_blocks import blocks_path, is_blocks_file, write_blocks
    from agent.paths import recordings_dir
    from agent.sealing import key_for_writing

    path = blocks_path(user)
    if any(is_blocks_file(f) for f in files):
        if Path(files[0]).resolve() != path.resolve():  # blocks from elsewhere: the new model's data now
            try:
                write_blocks(path, owner, key_for_writing())
            except OSError as exc:
                warn(f"the enrolment blocks were not written to {path}: {exc.strerror or exc}")
                return []
        return [f"re-enrolled from the enrolment blocks in {files[0]}: no recording was read or deleted"]
    try:
        write_blocks(path, owner, key_for_writing())
    except OSError as exc:
        warn(f"the enrolment blocks were not written to {path} ({exc.strerror or exc}); every recording is kept")
        return []
    lines = [f"enrolment blocks: {len(owner.blocks)} blocks (velocities, time steps, buttons held: no screen "
             f"positions) in {path}, what a cohort refit or a model update retrains on ('mouseguard forget' "
             "erases them)"]
    folder = recordings_dir()
    ours = [str(f) for f in files if _inside(f, folder)]
    theirs = [str(f) for f in files if str(f) not in ours]
    if ours and keep:
        lines.append(f"recordings: {len(ours)} kept in {folder}, as asked (--keep-recordings or "
                     "enrolment.keep_recordings); whoever copies them can replay your movement")
    elif ours:
        deleted = []
        for f in ours:
            try:
                os.unlink(f)
                deleted.append(f)
            except FileNotFoundError:
                continue
            except OSError as exc:
                warn(f"recording {f} was not deleted: {exc.strerror or exc}")
        lines.append(f"recordings: {len(deleted)} deleted from {folder} (a copy could replay your movement; "
                     "--keep-recordings or enrolment.keep_recordings keeps them)")
    if theirs:
        lines.append(f"recordings: the {len(theirs)} given from outside {folder} are yours and stay where they are")
    return lines


#: PyTorch's own index of CPU-only wheels (PyPI's Linux torch brings gigabytes of CUDA).
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
#: The fewest minutes of movement worth recording for an enrolment: fewer cannot give the
#: MIN_BLOCKS genuine blocks (about 3-4 s of movement each) a model is trained and calibrated on.
MIN_ENROL_MINUTES = 5.0


def train_install_hint() -> str:
    """The command that adds the ``[train]`` extra to *this* installation: its own Python's pip
    (the private venv of installer/install.sh), not whichever ``pip`` comes first on PATH."""
    return f"{sys.executable} -m pip install --extra-index-url {TORCH_CPU_INDEX} 'mouseguard[train]'"


def training_available() -> bool:
    """Whether the ``[train]`` extra's PyTorch is installed — looked up, not imported: agent/
    never imports torch."""
    return importlib.util.find_spec("torch") is not None


def require_training() -> None:
    """Refuse at once when a model cannot be trained here, before any recording or reading
    that would only end in that error (a runtime-only install has no torch)."""
    if not training_available():
        raise MouseguardError(f"training a model needs PyTorch: {train_install_hint()} "
                              "(see README, 'Install'); 'mouseguard record' records without it")


def check_minutes(minutes: float, named: str, recordings: Path) -> None:
    """Refuse, before recording, a length that cannot make a model even with the recordings
    already kept (``--minutes 0.2`` used to record, then fail for too little movement)."""
    if not minutes > 0:
        raise MouseguardError(f"{named} must be positive")
    from agent.recorder import active_seconds

    kept = 0.0
    for f in sorted(recordings.glob("*.csv*")) if recordings.is_dir() else []:
        try:
            kept += active_seconds(read_recording(f)["t"]) / 60
        except MouseguardError:
            continue  # a damaged file is reported when enrolment reads it
    if minutes + kept < MIN_ENROL_MINUTES:
        have = f" ({kept:.1f} min kept from earlier recordings)" if kept else ""
        raise MouseguardError(f"{named} {minutes:g}: an enrolment needs at least {MIN_ENROL_MINUTES:g} minutes of "
                              f"movement{have}; give {max(0.1, MIN_ENROL_MINUTES - kept):.1f} or more")


def training_log(stream=None):
    """The enrolment's progress lines: on a terminal the epochs share one line rewritten in
    place; into a file or pipe only the last epoch is written, not one line per epoch."""
    import re

    stream = stream or sys.stderr
    tty = stream.isatty()
    epoch = re.compile(r"^epoch (\d+)/(\d+):")

    def log(message: str) -> None:
        found = epoch.match(message)
        if found is None:
            print(message, file=stream, flush=True)
            return
        last = found.group(1) == found.group(2)
        if tty:
            print("\r" + message, end="\n" if last else "", file=stream, flush=True)
        elif last:
            print(message, file=stream, flush=True)
    return log


@dataclasses.dataclass(frozen=True)
class CohortPlan:
    """The local cohort of one enrolment: the folder, the encoder's block spec, the enrolling
    person's own blocks (cut with it) and the other members' blocks, by name."""

    folder: Path
    spec: BlockSpec
    own: np.ndarray  # (n, channels, size)
    members: dict[str, np.ndarray]


def plan_cohort(folder: str, user: str, owner, warn=_warn) -> CohortPlan | None:
    """Read the other members of ``folder`` for ``user``'s enrolment from ``owner`` (their
    EnrolmentBlocks, :func:`cut_owner`); None (after one warning line) when the folder cannot
    be used — enrolment then goes on without a cohort."""
    from agent import cohort

    try:
        path = cohort.check_folder(folder)
    except cohort.CohortError as exc:
        warn(f"{exc}; enrolling without the cohort")
        return None
    spec = owner.spec  # the encoder's: cut_owner cut them with it
    own = owner.blocks
    try:
        members = cohort.read_members(path, user, spec, own_blocks=own, warn=warn)
    except OSError as exc:
        warn(f"cohort folder {path}: cannot list it ({exc.strerror or exc}); enrolling without the cohort")
        return None
    return CohortPlan(path, spec, own, members)


def publish_own(plan: CohortPlan, user: str, warn=_warn) -> str:
    """Publish ``user``'s blocks, cut with the new model's spec, into the cohort folder; the
    line to print (or "" after a warning)."""
    from agent import cohort
    from agent.paths import user_model_dir

    try:
        spec = load_model_dir(user_model_dir(user)).spec
        if spec != plan.spec:  # (enrolment cuts with the encoder's spec: not expected)
            raise MouseguardError("the new model was cut with another block spec than your blocks")
        blocks = plan.own
        written = cohort.publish(plan.folder, user, blocks, spec)
    except (MouseguardError, OSError, ValueError) as exc:
        warn(f"cohort: your blocks were not published in {plan.folder}: {exc}")
        return ""
    where = cohort.member_path(plan.folder, user)
    if not written:
        return f"cohort: {where} already holds these blocks of yours"
    return (f"cohort: your blocks ({len(blocks)}: velocities, time steps, buttons held; no positions) are in "
            f"{where}, readable by the other accounts of this machine ('mouseguard forget' removes them)")


def describe_cohort(plan: CohortPlan) -> str:
    if not plan.members:
        return f"cohort: no one else has published their movement in {plan.folder} yet"
    names = ", ".join(sorted(plan.members))
    blocks = sum(len(b) for b in plan.members.values())
    who = "person who uses" if len(plan.members) == 1 else "people who use"
    return (f"cohort: trained against the movement of {len(plan.members)} other {who} this machine "
            f"({names}; {blocks} blocks)")


def train_from(recordings, files: list, user: str, config, epochs: int = 16,
               cohort: dict | None = None) -> dict:
    """Enrol ``user`` from ``recordings`` (event arrays, or EnrolmentBlocks) read from ``files``,
    against the ``cohort`` members' blocks if given; returns the enrolment summary."""
    require_training()
    from agent.paths import user_model_dir
    from training.enrol import enrol
    from training.families.cnn.train import FitConfig

    out = user_model_dir(user)
    with_cohort = {} if cohort is None else {"cohort": cohort}  # no cohort folder: enrol as before it existed
    return enrol(recordings, user, out, cfg=FitConfig(epochs=epochs),
                 false_locks_per_8h=config.enrolment.false_locks_per_8h, sources=files,
                 log=training_log(), **with_cohort)


def enroll_cmd(args) -> int:
    from agent.config import effective_user, load_config
    from agent.paths import user_model_dir, user_recordings_dir

    require_training()
    config = load_config()
    user = args.user or effective_user(config)
    user_model_dir(user)  # a path instead of a name is refused before anything is read or recorded
    if args.from_files:
        files = list(args.from_files)
        recordings = read_sources(files, user)  # a bad file fails before anything is trained
    else:
        minutes = args.minutes or config.enrolment.minutes
        check_minutes(minutes, "--minutes" if args.minutes else f"enrolment.minutes in {config.source or 'the config'}",
                      user_recordings_dir(user))
        from agent.capture import check_display
        from agent.recorder import record
        from agent.sealing import key_for_writing

        check_display()  # before the announcement below; CaptureUnavailable is a MouseguardError
        path = new_recording_path(user_recordings_dir(user))
        print(f"Use the computer as you normally do; mouseguard records {minutes:g} minutes of mouse "
              f"movement into {path}.", file=sys.stderr)
        tty = sys.stderr.isatty()  # a line rewritten in place is for a terminal, not a log file
        # sealed: it stays in mouseguard's folder (agent/sealing.py)
        record(path, active_minutes=minutes, progress=_progress_line(minutes) if tty else None,
               key=key_for_writing())
        if tty:
            print(file=sys.stderr)
        files = sorted(str(p) for p in user_recordings_dir(user).glob("*.csv*"))
        if not files:
            raise MouseguardError("nothing was recorded")
        recordings = read_recordings(files)
    from training.enrol import describe  # torch is there: require_training() above
    from training.errors import FitError

    owner = cut_owner(recordings, user)
    plan = plan_cohort(config.cohort.dir, user, owner) if config.cohort.dir else None
    try:
        summary = train_from(owner, files, user, config, epochs=args.epochs,
                             cohort=plan.members if plan else None)
    except FitError as exc:
        raise MouseguardError(f"{exc}; nothing was changed") from None
    from agent import enrolled

    # From now on a missing or changed model is a fault for the agent, not "never enrolled".
    enrolled.write_record(enrolled.record_path(user), user, user_model_dir(user))
    print(f"enrolled {user}: model in {user_model_dir(user)}")
    print(describe(summary))
    if plan is not None:
        print(describe_cohort(plan))
        published = publish_own(plan, user)
        if published:
            print(published)
    keep = bool(getattr(args, "keep_recordings", False)) or config.enrolment.keep_recordings
    for line in settle_recordings(user, owner, files, keep):
        print(line)
    return 0
