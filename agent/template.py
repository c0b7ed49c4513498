"""The model follows its owner: blocks kept as clearly the owner's, for a guarded refit (issue 22).

A model frozen at enrolment turns drift (a new mouse, another monitor, an injury) into false
locks. The agent keeps the blocks it scored as clearly the owner's and, after enough active
time, a low-priority child process (``mouseguard update-model``; the agent never imports
torch) refits the model on the enrolment blocks (agent/enrolment_blocks.py; the recordings of a
user enrolled before those were kept) plus these blocks and swaps it in only
if its held-out check is no worse (:mod:`training.user_model.update` has the guards).

What is kept, and why:

* only blocks scoring at least ``threshold + template.margin``: an impostor who stays just
  below the lock threshold gives none;
* only while protecting calmly: never while suspicious, locked, alerted or paused;
* never in the trial: its threshold is not proven yet and it only alerts, so whoever is at the
  mouse keeps using it after a "would have locked";
* never within ``template.quiet_minutes`` after a lock, an alert or a suspicious state: the
  agent cannot tell whether the owner or someone else unlocked, so the minutes after are not
  trusted;
* a block waits ``quiet_minutes`` before it is kept: a suspicious state or a lock in that time
  drops it too (an impostor's first blocks can score high before the rolling mean falls).

The kept blocks (velocities, time steps, buttons held: no positions) live in one private file
(0600) in the state folder, the newest ``MAX_BLOCKS`` of them, with the active time since the
last update attempt.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from agent import states
from agent.blocks import BlockSpec
from agent.errors import MouseguardError
from agent.files import atomic_open

log = logging.getLogger("mouseguard.agent")

FORMAT = "mouseguard-template"
FORMAT_VERSION = 1
#: The most kept blocks (newest first to stay): about 4 hours of movement, 6 MB.
MAX_BLOCKS = 4000
#: A gap between scored blocks longer than this is not active time.
MAX_ACTIVE_GAP = 30.0
#: How often the kept blocks are written at most (seconds); a kill loses no more than this.
SAVE_EVERY = 60.0
#: Fewer kept blocks than this start no update (training.user_model.update.Guard.min_new_blocks).
MIN_BLOCKS_FOR_UPDATE = 30
#: Exit code of ``update-model`` for a refused update (0 updated, 2 error).
EXIT_REFUSED = 1


def store_path(user: str, env=None) -> Path:
    from agent import paths

    return paths.state_dir(env) / f"template-{paths.safe_user_name(user)}.npz"


class TemplateError(MouseguardError):
    """The kept blocks cannot be read; one line."""


def read_store(path: str | os.PathLike, spec: BlockSpec) -> tuple[np.ndarray, float]:
    """The kept blocks (oldest first) and the active seconds since the last update attempt; none
    when there is no file or it was cut with another spec (an older model's)."""
    path = Path(path)
    empty = np.empty((0, spec.channels, spec.size), np.float32)
    if not path.exists():
        return empty, 0.0
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["format"]) != FORMAT or int(z["version"]) != FORMAT_VERSION:
                raise TemplateError(f"{path}: not a mouseguard template file")
            if BlockSpec.from_dict(json.loads(str(z["spec"]))) != spec:
                return empty, 0.0
            blocks, active = z["blocks"], float(z["active_seconds"])
    except TemplateError:
        raise
    except Exception as exc:  # zip, npy, json: a damaged file
        raise TemplateError(f"{path}: unreadable kept blocks ({type(exc).__name__}: {exc})") from None
    if blocks.dtype != np.float32 or blocks.ndim != 3 or blocks.shape[1:] != (spec.channels, spec.size):
        raise TemplateError(f"{path}: kept blocks of shape {blocks.shape} do not match the model's block spec")
    return blocks, active


def write_store(path: str | os.PathLike, spec: BlockSpec, blocks: np.ndarray, active_seconds: float) -> None:
    with atomic_open(path, "wb") as f:
        np.savez(f, format=np.array(FORMAT), version=np.array(FORMAT_VERSION),
                 spec=np.array(json.dumps(spec.to_dict(), sort_keys=True)),
                 blocks=np.ascontiguousarray(blocks[-MAX_BLOCKS:], np.float32),
                 active_seconds=np.array(float(active_seconds)))


class TemplateKeeper:
    """Decides block by block what is kept; fed from the agent's verdict callback (event clock)."""

    def __init__(self, path: Path, spec: BlockSpec, *, margin: float, quiet_minutes: float):
        self.path = Path(path)
        self.spec = spec
        self.margin = margin
        self.quiet = quiet_minutes * 60.0
        # One array per kept block, oldest dropped past MAX_BLOCKS: keeping a block costs no copy
        # of the thousands already kept (the verdict callback runs for every block).
        self._kept: collections.deque[np.ndarray] = collections.deque(maxlen=MAX_BLOCKS)
        try:
            blocks, self.active_seconds = read_store(self.path, spec)
            self._kept.extend(blocks)
        except TemplateError as exc:
            log.warning("%s; starting with no kept blocks", exc)
            self.active_seconds = 0.0
        self.pending: list[tuple[float, np.ndarray]] = []
        self.quiet_until = -float("inf")
        self._last_t: float | None = None
        self._dirty = False
        self._saved = time.monotonic()
        self._lock = threading.Lock()

    @property
    def blocks(self) -> np.ndarray:
        """The kept blocks, oldest first, as one array."""
        with self._lock:
            return self._stacked()

    @property
    def kept(self) -> int:
        return len(self._kept)

    def _stacked(self) -> np.ndarray:
        if not self._kept:
            return np.empty((0, self.spec.channels, self.spec.size), np.float32)
        return np.stack(self._kept)

    def incident(self, t: float) -> None:
        """A suspicious state, a lock, an alert or a pause at ``t``: nothing of the last
        ``quiet`` minutes is kept, nor of the next."""
        with self._lock:
            self.pending.clear()
            self.quiet_until = max(self.quiet_until, t + self.quiet)

    def offer(self, t: float, block: np.ndarray | None, score: float, threshold: float, calm: bool) -> bool:
        """One scored block; ``calm``: protecting, not suspicious, not in the trial. Returns
        whether it was put aside (kept once ``quiet`` minutes pass without an incident)."""
        with self._lock:
            if self._last_t is not None and t > self._last_t:
                self.active_seconds += min(t - self._last_t, MAX_ACTIVE_GAP)
                self._dirty = True
            self._last_t = t
            self._commit(t)
            if (block is None or not calm or t < self.quiet_until or not np.isfinite(score)
                    or score < threshold + self.margin or block.shape != (self.spec.channels, self.spec.size)):
                return False
            self.pending.append((t, np.asarray(block, np.float32)))
            return True

    def verdict(self, v, threshold: float, calm: bool) -> None:
        """One verdict of the agent's pipeline (agent.pipeline.BlockVerdict): a suspicious,
        locking or alerting one is an incident, a protected one's block is offered. ``calm``:
        the agent protects, no pause, no trial."""
        verdict = v.verdict
        if verdict.act or verdict.state in (states.SUSPICIOUS, states.LOCKED, states.ALERTED):
            self.incident(v.t)
        elif not verdict.fault and verdict.state == states.PROTECTED:
            self.offer(v.t, v.block, verdict.score, threshold, calm)

    def _commit(self, now: float) -> None:
        k = 0  # pending blocks are in time order: the ready ones are a prefix
        while k < len(self.pending) and now - self.pending[k][0] >= self.quiet:
            k += 1
        if k:
            self._kept.extend(b for _, b in self.pending[:k])
            del self.pending[:k]
            self._dirty = True

    def started_update(self) -> None:
        """An update ran on what is kept: the active time counts again from zero."""
        with self._lock:
            self.active_seconds = 0.0
            self._dirty = True

    def save(self, force: bool = False) -> None:
        with self._lock:
            if not self._dirty or (not force and time.monotonic() - self._saved < SAVE_EVERY):
                return
            blocks, active = self._stacked(), self.active_seconds
            self._dirty, self._saved = False, time.monotonic()
        write_store(self.path, self.spec, blocks, active)


def model_ages(model, keeper: TemplateKeeper | None) -> dict:
    """For the status file: when ``model`` was enrolled and last updated (epoch seconds), and the
    active hours counted towards the next update."""
    import datetime

    training = model.manifest.get("training") or {}
    updates = training.get("updates") or []

    def stamp(text):
        try:
            return datetime.datetime.fromisoformat(str(text)).timestamp()
        except (TypeError, ValueError):
            return None

    enrolled = stamp(training.get("enrolled") or model.manifest.get("created"))
    if enrolled is None:
        return {}
    out = {"model_enrolled": enrolled}
    last = stamp(updates[-1].get("time")) if updates and isinstance(updates[-1], dict) else None
    if last is not None:
        out["model_updated"] = last
    if keeper is not None:
        out["template_hours"] = round(keeper.active_seconds / 3600, 3)
    return out


class TemplateRefit(threading.Thread):
    """One ``update-model`` run in a low-priority child process; ``accepted`` once it wrote a model."""

    def __init__(self, command: list[str]):
        super().__init__(name="mouseguard-template-update", daemon=True)
        self.command = command
        self.proc: subprocess.Popen | None = None
        self.accepted = False
        self.report = ""
        self._stopping = threading.Event()

    def run(self) -> None:
        from agent.runner import start_low_priority

        try:
            self.proc = start_low_priority(self.command)
        except OSError as exc:
            log.error("the model update could not start: %s", exc)
            return
        if self._stopping.is_set():
            self.stop()
        out, err = self.proc.communicate()
        self.report = out.strip()
        if self.proc.returncode == 0:
            self.accepted = True
            log.info("model update:\n%s", self.report)
        elif self.proc.returncode == EXIT_REFUSED:
            log.warning("model update:\n%s", self.report)
        elif not self._stopping.is_set():
            log.error("the model update failed, keeping the current model: %s",
                      err.strip().splitlines()[-1:] or self.proc.returncode)

    def stop(self, timeout: float = 10.0) -> None:
        from agent.runner import CohortRefit

        CohortRefit.stop(self, timeout)  # the same: end the child as Ctrl-C would


def update_command(user: str) -> list[str]:
    return [sys.executable, "-m", "agent", "update-model", "--user", user]


def update_model_cmd(args) -> int:
    """``mouseguard update-model``: refit the user's model on the kept blocks (guarded).
    Exit 0 updated, 1 refused (the reason printed), 2 error."""
    from agent import enrolled
    from agent.config import effective_user, load_config
    from agent.enrolment import cut_owner, read_sources, require_training
    from agent.enrolment_blocks import blocks_path
    from agent.model_dir import load_model_dir
    from agent.paths import user_model_dir, user_recordings_dir
    from agent.runner import refit_sources

    require_training()
    config = load_config()
    user = args.user or effective_user(config)
    model_dir = user_model_dir(user)
    if not (model_dir / "manifest.json").exists():
        raise MouseguardError(f"no model of {user} in {model_dir}: run 'mouseguard enroll' first")
    model = load_model_dir(model_dir)
    record_file = enrolled.record_path(user)
    record = enrolled.read_record(record_file)
    if record is not None:
        enrolled.check_model(record, model_dir)  # never update (and then vouch for) a tampered model
    blocks, _ = read_store(Path(args.blocks) if args.blocks else store_path(user), model.spec)
    files = refit_sources(model.manifest.get("training") or {}, user_recordings_dir(user), blocks_path(user))
    if not files:
        raise MouseguardError(f"neither enrolment blocks nor recordings of {user} are kept to update the model from")
    owner = cut_owner(read_sources(files, user), user)
    from training.errors import FitError
    from training.families.cnn.train import FitConfig
    from agent.enrolment import training_log
    from training.user_model.update import describe, update

    from agent.enrolment import plan_cohort

    plan = plan_cohort(config.cohort.dir, user, owner) if config.cohort.dir else None
    try:
        report = update(model_dir, owner, blocks, cfg=FitConfig(epochs=args.epochs),
                        false_locks_per_8h=config.enrolment.false_locks_per_8h, log=training_log(),
                        cohort=plan.members if plan else None)
    except FitError as exc:
        raise MouseguardError(f"{exc}; the model was not changed") from None
    if report["accepted"]:
        enrolled.write_record(record_file, user, model_dir)  # the fail-closed check vouches for the new model
    print(describe(report))
    return 0 if report["accepted"] else EXIT_REFUSED
