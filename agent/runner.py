"""The running agent: hook -> ring buffer -> pipeline -> decision -> act, with tray and status.

Threads: the pynput hook (only stamps and stores events), the hook supervisor, one consumer
of the ring buffer — the pipeline when a model protects, the learner while there is none yet
— and a heartbeat that keeps the status file fresh. The tray owns the main thread (macOS
needs that) and starts the rest once it is up.

Every way of not protecting is a visible state: no model (learning / not enrolled), a model
refused (not protecting), a dead hook (not protecting until the supervisor restarts it), a
model giving no valid score or failing to score (not protecting, then acted on as an impostor
after ``FAULT_GRACE_SECONDS``), a failed lock (alert). Nothing here ends the agent except quit.

On a shared workstation (``cohort.dir``) the heartbeat also looks at the cohort folder every
few minutes while the agent calmly protects; when people joined or left it since the model was
trained, a child process re-enrols the user at low priority and the agent switches to the new
model once it is written (and nothing is being judged at that moment).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from agent import fleet_events, states
from agent.model_dir import MANIFEST, ModelError
from agent.responses import actor as outcomes
from agent.status import HEARTBEAT_SECONDS

log = logging.getLogger("mouseguard.agent")

#: How often a protecting agent looks at the cohort folder (names and file times only).
COHORT_CHECK_SECONDS = 300.0
#: Added to the agent's niceness for a background refit: the owner's own work comes first.
REFIT_NICENESS = 10


def live_clock() -> float:
    """Monotonic time rounded to microseconds: what a recording keeps (6 decimals), so the
    blocks cut live equal the blocks cut from the recording of the same events."""
    return round(time.monotonic(), 6)


class Agent:
    def __init__(self, config, tray, actor, *, model_dir: Path, user: str, status_path: Path,
                 recordings_dir: Path, hook_factory=None, enrol_command=None, heartbeat: float = HEARTBEAT_SECONDS,
                 input_sources=None, enrolment_record: Path | None = None, watched_files=(), owner_check=None):
        self.config = config
        self.tray = tray
        self.actor = actor
        self.model_dir = Path(model_dir)
        self.user = user
        self.status_path = status_path
        self.recordings_dir = recordings_dir
        self.hook_factory = hook_factory
        #: ``clock -> XInputSources | None``: where pointer events come from on X11 (run_agent
        #: passes agent.injected_input.x11_sources); None: only the OS's own flag is read.
        self.input_sources = input_sources
        self.injected = None  # agent.injected_input.InjectedInputJudge, from start on
        self.enrol_command = enrol_command or default_enrol_command
        self.heartbeat = heartbeat
        #: The user's enrolment record (agent/enrolled.py): once it exists, a missing or changed
        #: model is a fault, never a reason to learn again. None for a model named in the config.
        self.enrolment_record = enrolment_record
        #: Files that weaken protection when edited while the agent runs (its config.toml): with
        #: the model folder and the enrolment record, a change seen there locks first.
        self.watched_files = list(watched_files)
        self.files_watch = None  # agent.tamper_watch.FileWatch, from start on
        self.watchdog = None  # agent.watchdog.Watchdog, set by run_agent
        #: True once the agent ends through an authenticated stop (the watchdog then stays calm).
        self.clean_stop = False
        #: agent.owner_check.OwnerCheck: a pause or stop locks the session first and is applied
        #: only once the OS reports it unlocked (the password). None: applied at once (tests).
        self.owner_check = owner_check
        self.control_socket = ""  # set once `mouseguard status|pause|resume|stop` reach this agent
        self._lock = threading.RLock()
        self._stopped = threading.Event()
        self.state = states.NOT_ENROLLED
        self.detail = ""
        self.since = time.time()
        self.last_rolling: float | None = None
        self.blocks_scored = 0
        self.mode = states.NOT_ENROLLED  # what the agent does when nothing is wrong
        self.mode_detail = ""
        self.fault = ""  # why the model's scores cannot be judged right now ("" while they can)
        self.hook_ok = False
        self._hook_was_down = False  # the hook failed after it had run (not: has not started yet)
        self.paused_until: float | None = None
        #: Wall-clock end of the grace period after acting (no decision until then), or None.
        self.grace_until: float | None = None
        self.logfile = ""  # shown by `mouseguard status`
        self.stop_reason = ""  # why the agent ended, once it has: "not running: why"
        self.trial = None  # agent.trial.Trial while a model fresh from enrolment only alerts
        from agent.pauses import FILE_NAME, PauseAllowance

        self.pauses = PauseAllowance(Path(status_path).parent / FILE_NAME, config.agent.pauses_per_day)
        self._control_lock = threading.Lock()
        self.consumer = None
        self.supervisor = None
        self.keyboard = None
        self.buffer = None
        self.model = None
        self.model_mtime_ns = 0  # of the manifest the model was loaded from
        self.refit: CohortRefit | None = None
        self._refitted = False  # a refit wrote a new model; switch to it at a calm moment
        self._cohort_checked: float | None = None
        self._cohort_tried: dict | None = None  # the members a refit was last started for
        self._cohort_said: set[str] = set()
        #: The blocks kept for a template update (agent/template.py), None when not kept.
        self.template = None
        self.template_refit = None
        self.template_command = None  # -> the update-model command line; None: agent.template's
        self._template_updated = ""  # what the last accepted update changed, until switched to
        #: Config keys a managed policy locks (agent.policy): pause() keeps to pause_minutes then.
        self.policy_locked: frozenset[str] = frozenset()

    # -- state ------------------------------------------------------------------------------

    def set_state(self, state: str, detail: str = "", *, anew: bool = False) -> None:
        """``anew``: the state starts again even if it is the one shown (a second lock or alert
        is news, and "since" must say when it came)."""
        from agent.tray import format_tooltip

        with self._lock:
            changed = anew or (state, detail) != (self.state, self.detail)
            if state != self.state or anew:
                self.since = time.time()
                log.info("state: %s%s", state, f" ({detail})" if detail else "")
            self.state, self.detail = state, detail
        if changed:
            self.tray.set_state(state, format_tooltip(state, self.last_rolling))
            self.write_status()

    def write_status(self) -> None:
        from agent.files import atomic_write_text

        try:
            # Under the state lock, so the heartbeat cannot write older values over newer ones.
            with self._lock:
                atomic_write_text(self.status_path, json.dumps(self.status_now(), indent=2) + "\n")
        except OSError as exc:
            log.warning("cannot write the status file %s: %s", self.status_path, exc)

    def status_now(self) -> dict:
        """What the status file holds; the agent answers ``mouseguard status`` with it too."""
        from agent.status import make_status

        with self._lock:
            grace = self.grace_until if self.grace_until and self.grace_until > time.time() else None
            return make_status(self.state, self.since, self.blocks_scored, self.last_rolling, pid=os.getpid(),
                               detail=self.detail, model=str(self.model_dir),
                               extra={"grace_until": grace, "log": self.logfile or None,
                                      "stopped": self.stop_reason or None, "trial_hours_left": self._trial_left(),
                                      "control": self.control_socket or None, **self._model_ages()})

    def _normal_state(self) -> None:
        """Back to what the mode says, unless the hook is down or a pause runs."""
        if not self.hook_ok:
            return
        if self.paused_until is not None:
            self.set_state(states.PAUSED, f"until {time.strftime('%H:%M', time.localtime(self.paused_until))}")
        elif self.fault:
            self.set_state(states.NOT_PROTECTING, self.fault)
        else:
            self.set_state(self.mode, self.mode_detail)

    # -- life cycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Called by the tray once it is up: load the model (or learn), start the hook."""
        from agent.capture import HookSupervisor, MouseHook
        from agent.ringbuffer import RingBuffer

        self.buffer = RingBuffer()
        if self.config.agent.injected_input != "off":
            from agent.injected_input import InjectedInputJudge

            self.injected = InjectedInputJudge(self.input_sources(live_clock) if self.input_sources else None)
        self._choose_mode()
        self._watch_files()
        make_hook = self.hook_factory or (lambda: MouseHook(self.buffer, clock=live_clock))
        self.supervisor = HookSupervisor(make_hook, self.on_health, on_display_gone=self.on_display_gone)
        self.supervisor.start()
        from agent.keyboard_activity import KeyboardActivity

        self.keyboard = KeyboardActivity(self.on_key, clock=live_clock).start()
        threading.Thread(target=self._heartbeat, name="mouseguard-heartbeat", daemon=True).start()
        self._report(fleet_events.AGENT_STARTED, f"action {self.actor.action}; {self.mode_detail or self.mode}",
                     state=self.mode)

    def _report(self, name: str, reason: str = "", score: float | None = None, threshold: float | None = None,
                state: str | None = None) -> None:
        """A fleet event (README, 'Reporting to a security team'); hands it over, never waits."""
        fleet_events.emit(name, state or self.state, reason, score, threshold)

    def stop(self, reason: str | None = None) -> None:
        """End the agent's threads; the first reason given (here or in ``stop_reason``) is what
        ``status`` shows afterwards ("not running: why")."""
        if not self._stopped.is_set():
            self.stop_reason = self.stop_reason or reason or "stopped"
            log.warning("mouseguard stops: %s", self.stop_reason)
            self._report(fleet_events.AGENT_STOPPED, self.stop_reason, state=states.NOT_PROTECTING)
        self._stopped.set()
        if self.refit is not None:
            self.refit.stop()
        if self.template_refit is not None:
            self.template_refit.stop()
        if self.template is not None:
            with contextlib.suppress(OSError):
                self.template.save(force=True)
        if self.supervisor:
            self.supervisor.stop()
        if self.keyboard:
            self.keyboard.stop()
        if self.consumer:
            self.consumer.stop()
        if self.injected is not None and self.injected.sources is not None:
            self.injected.sources.stop()
        self.set_state(states.NOT_PROTECTING, "stopped")

    def _choose_mode(self) -> None:
        from agent.files import recover_directory, remove_stale_partial_files

        # a model stranded by a kill mid-swap; a recording checkpoint killed mid-write
        for note in recover_directory(self.model_dir) + remove_stale_partial_files(self.recordings_dir / self.user):
            log.warning("%s", note)
        from agent.enrolled import read_record

        try:
            record = None if self.enrolment_record is None else read_record(self.enrolment_record)
        except ModelError as exc:
            self._fail_closed(f"model refused: {exc}", f"The enrolment record was refused: {exc}")
            return
        if (self.model_dir / "manifest.json").exists() or (self.model_dir / "model.onnx").exists():
            try:
                self._protect(self._load_model())
                if self.enrolment_record is not None and record is not None:
                    self._announce_new_enrolment(record)
                if self.enrolment_record is not None and record is None:  # never silently: it may be planted
                    self.tray.notify("mouseguard recorded your model",
                                     f"No enrolment record was found, so the model in {self.model_dir} is now the "
                                     "one mouseguard vouches for. If you did not just enrol or upgrade, re-enrol.")
            except ModelError as exc:
                log.error("model refused: %s", exc)
                self._fail_closed(f"model refused: {exc}", f"The model was refused: {exc}")
            return
        if record is not None:
            detail = (f"the model of {self.user} is missing from {self.model_dir} (enrolled "
                      f"{record.get('recorded', '')}); re-enrol or run 'mouseguard forget'")
            log.error("not protecting: %s", detail)
            self._fail_closed(detail, f"Your model is missing from {self.model_dir}: someone enrolled here, "
                                      "so mouseguard will not learn anew.")
            return
        from agent.enrolment import training_available

        if self.config.enrolment.auto and training_available():
            self._learn()
            return
        if self.config.enrolment.auto:
            # learning would record for half an hour and then fail to train, again every 10 minutes
            from agent.enrolment import train_install_hint

            detail, notice = (f"enrolment needs PyTorch: {train_install_hint()}",
                              "No model for you yet, and this installation cannot train one: "
                              f"run {train_install_hint()}, then 'mouseguard enroll'.")
        else:
            detail, notice = "run 'mouseguard enroll'", "No model for you yet: run 'mouseguard enroll'."
        self.mode, self.mode_detail = states.NOT_ENROLLED, detail
        self.set_state(self.mode, self.mode_detail)
        self.tray.notify("mouseguard is not protecting yet", notice)

    def _announce_new_enrolment(self, record: dict) -> None:
        from agent.enrolled import enrolled_since_last_run

        news = enrolled_since_last_run(record, self.enrolment_record)
        if news:
            log.warning("%s", news)
            self.tray.notify("mouseguard: a new model protects you", news)
            self._report(fleet_events.MODEL_UPDATED, news)

    def _load_model(self):
        """The model folder, verified (with the enrolment record, against it too)."""
        from agent.enrolled import load_verified

        return load_verified(self.model_dir, self.enrolment_record, self.user)

    def _fail_closed(self, detail: str, notice: str) -> None:
        """No usable model although one is expected: not protecting, and act as on an impostor
        after the short grace (agent/no_model.py), never learning."""
        from agent.no_model import NoModelPipeline
        from agent.pipeline import PipelineThread

        pipeline = NoModelPipeline(detail, grace_seconds=float(self.config.agent.grace_seconds))
        pipeline.start(live_clock())
        self.model = None
        self.mode, self.mode_detail = states.NOT_PROTECTING, detail
        self.fault = detail  # the notice below says it; the first block does not say it again
        if self.consumer:
            self.consumer.stop()
        self.consumer = PipelineThread(self.buffer, pipeline, self.on_verdicts, self.on_pipeline_error,
                                       clock=live_clock)
        self.consumer.start()
        self.set_state(self.mode, self.mode_detail)
        self._report(fleet_events.MODEL_REFUSED, detail, state=states.NOT_PROTECTING)
        grace = pipeline.decision.fault_grace_seconds
        self.tray.notify("mouseguard is not protecting",
                         f"{notice} Unless this is fixed, mouseguard acts as on an impostor ({self.actor.action}) "
                         f"in {grace:g} s.")

    def _trial_left(self) -> float | None:
        trial = self.trial
        if trial is None or not trial.running or self.actor.action != "lock":
            return None
        return round(trial.hours_left, 3)

    def _start_trial(self, model, refitted: bool) -> None:
        """A model fresh from enrolment alerts instead of locking for agent.trial_hours of use."""
        from agent import trial as trials

        if not (trials.applies_to(model) and self.config.agent.trial_hours > 0):
            self.trial = None
            return
        if refitted and self.trial is not None:
            self._trial_saving(self.trial.adopt, trials.model_id(model))
            return
        path = Path(self.status_path).parent / f"trial-{self.user}.json"
        age = trials.model_age_days(model)
        self.trial = trials.Trial(path, self.config.agent.trial_hours, trials.model_id(model),
                                  settled=age is not None and age > trials.SETTLED_DAYS)
        if self.trial.running:
            log.warning("trial: alert only (no lock) for %.1f more hours of active use, then locking",
                        self.trial.hours_left)

    def _trial_saving(self, step, *args):
        """Run a Trial step that writes its file; a full disk must not stop the decisions."""
        try:
            return step(*args)
        except OSError as exc:
            log.error("cannot write the trial progress %s: %s", self.trial.path, exc.strerror or exc)
            return None

    def _protect(self, model, refitted: bool = False) -> None:
        from agent.config import decision_settings
        from agent.pipeline import PipelineThread, make_pipeline
        from agent.scorer import Scorer

        d = decision_settings(model, self.config)  # the settings replay and demo use too
        pipeline = make_pipeline(model, Scorer(model), window=d.window, threshold=d.threshold,
                                 grace_seconds=d.grace_seconds, unjudged_seconds=d.unjudged_seconds)
        self.model = model
        try:
            self.model_mtime_ns = (model.path / MANIFEST).stat().st_mtime_ns
        except OSError:
            self.model_mtime_ns = 0
        if self.consumer:
            self.consumer.stop()
        self._start_trial(model, refitted)
        self._keep_template(model)
        self.consumer = PipelineThread(self.buffer, pipeline, self.on_verdicts, self.on_pipeline_error,
                                       clock=live_clock, on_input=self.on_input)
        self.fault = ""
        self.consumer.start()
        self.mode, self.mode_detail = states.PROTECTED, ""
        log.info("protecting with %s: mean of %d blocks < %.3f -> %s", model.path, pipeline.decision.window,
                 pipeline.decision.threshold, self.actor.action)
        self._normal_state()

    def _learn(self) -> None:
        self.mode, self.mode_detail = states.LEARNING, ""
        self.consumer = Learner(self)
        self.consumer.start()
        self._normal_state()

    def _heartbeat(self) -> None:
        while not self._stopped.wait(self.heartbeat):
            if self.paused_until is not None and time.time() >= self.paused_until:
                self.resume("the pause ended")
            self.write_status()
            self._check_files()
            self._check_watchdog()
            try:
                self.check_cohort()
            except Exception:  # a refit problem must not stop the heartbeat (and the status file)
                log.exception("cohort check failed")
            try:
                self.check_template()
            except Exception:
                log.exception("template update check failed")

    # -- tampering while running ----------------------------------------------------------

    def _watch_files(self) -> None:
        from agent.tamper_watch import FileWatch, model_files

        extra = [self.enrolment_record] if self.enrolment_record is not None else []
        self.files_watch = FileWatch(self.watched_files + model_files(self.model_dir) + extra)

    def _check_files(self) -> None:
        """Called by the heartbeat: a config, model or enrolment-record change made while the
        agent runs locks first (agent/tamper_watch.py). Not while learning or refitting: the
        agent writes the model itself then."""
        watch = self.files_watch
        if (watch is None or self.mode == states.LEARNING or self.refit is not None or self._refitted
                or self._stopped.is_set()):
            return
        changed = watch.changed()
        if not changed:
            return
        watch.accept()
        reason = (f"{', '.join(str(p) for p in changed)} changed while mouseguard runs; the change applies "
                  "only after the owner unlocks and restarts mouseguard")
        self._act_now(reason)

    def _check_watchdog(self) -> None:
        """The watchdog killed while the agent runs: the next step is killing the agent."""
        if self.watchdog is None or self.watchdog.alive or self._stopped.is_set():
            return
        self.watchdog = None
        self._act_now("the mouseguard watchdog was killed")

    def _act_now(self, reason: str) -> None:
        log.error("%s: acting (%s)", reason, self.actor.action)
        outcome = self.actor.act(reason)
        self.set_state(states.LOCKED if outcome == "locked" else states.ALERTED, f"{outcome}: {reason}", anew=True)
        self._report(OUTCOME_EVENTS.get(outcome, fleet_events.ALERTED), reason)

    # -- cohort refit -----------------------------------------------------------------------

    def _calmly_protecting(self) -> bool:
        """Protecting, and nothing being judged: not learning, paused, suspicious or locked."""
        return (self.model is not None and self.mode == states.PROTECTED and self.state == states.PROTECTED
                and self.paused_until is None)

    def check_cohort(self, now: float | None = None) -> bool:
        """Called by the heartbeat: switch to a refitted model, or start a refit when the cohort
        folder no longer matches the model (at most every COHORT_CHECK_SECONDS). Returns
        whether a refit was started."""
        c = self.config.cohort
        if not (c.dir and c.refit) or self.config.agent.model or self._stopped.is_set():
            return False  # (a model named in the config is not the user's to refit)
        if self.refit is not None and not self.refit.is_alive():
            self._refitted, self.refit = self.refit.succeeded, None
        if self.refit is not None or self.template_refit is not None or not self._calmly_protecting():
            return False
        if self._refitted:
            # Switching resets the rolling decision; at a calm moment that forgets nothing.
            self._refitted = False
            self._switch_to_refitted()
            return False
        now = time.monotonic() if now is None else now
        if self._cohort_checked is not None and now - self._cohort_checked < COHORT_CHECK_SECONDS:
            return False
        self._cohort_checked = now
        command = self.refit_command()
        if command is None:
            return False
        self.refit = CohortRefit(command)
        self.refit.start()
        return True

    def refit_command(self) -> list[str] | None:
        """The re-enrolment to run when the cohort folder's members differ from the model's
        (someone joined, left or republished), else None."""
        from agent import cohort
        from agent.enrolment import train_install_hint, training_available

        training = self.model.manifest.get("training") or {}
        if training.get("dataset") != "enrolment":
            return None  # a model made by `train fit` or elsewhere is not re-enrolled behind one's back
        try:
            present = cohort.snapshot(self.config.cohort.dir, self.user)
        except OSError as exc:  # unreachable for now: no refit without the members it had
            self._say_once(f"cohort folder {self.config.cohort.dir} cannot be listed ({exc.strerror or exc}); "
                           "no refit until it can")
            return None
        trained = training.get("cohort") if isinstance(training.get("cohort"), dict) else {}
        if not cohort.needs_refit(present, trained, self.model_mtime_ns) or present == self._cohort_tried:
            return None  # up to date, or a refit for exactly these members already ran (and failed)
        self._cohort_tried = present
        if not training_available():
            self._say_once("the cohort folder has changed, but refitting the model needs PyTorch "
                           f"({train_install_hint()}); keeping the current model")
            return None
        from agent.enrolment_blocks import blocks_path

        files = refit_sources(training, self.recordings_dir / self.user, blocks_path(self.user))
        if not files:
            self._say_once(f"the cohort folder has changed, but neither enrolment blocks nor recordings of "
                           f"{self.user} are kept to refit from; run 'mouseguard enroll' to train against the cohort")
            return None
        log.info("the cohort has changed (other members now: %s); re-enrolling in the background",
                 ", ".join(sorted(present)) or "none")
        return self.enrol_command(self.user, files)

    def _switch_to_refitted(self, why: str | None = None) -> None:
        """Switch to the model a refit wrote; ``why``: a template update's summary (None: the cohort refit)."""
        try:
            model = self._load_model()
        except ModelError as exc:
            log.error("the refitted model was refused, keeping the current one: %s", exc)
            self._report(fleet_events.MODEL_REFUSED, f"the refitted model, keeping the current one: {exc}")
            return
        log.info("switching to the model %s", why or "refitted against the cohort")
        self._protect(model, refitted=True)
        self._watch_files()  # the agent's own refit is no tampering
        self._report(fleet_events.MODEL_UPDATED, why or "refitted against the changed cohort")

    # -- template update (agent/template.py) ------------------------------------------------

    def _keep_template(self, model) -> None:
        """Keep blocks for a template update with this model, when it is the user's enrolled CNN."""
        from agent.template import TemplateKeeper

        if self.template is not None:
            with contextlib.suppress(OSError):
                self.template.save(force=True)
        self.template = None
        training = model.manifest.get("training") or {}
        if (not self.config.template.enabled or self.config.agent.model or model.input_kind != "blocks"
                or training.get("dataset") != "enrolment"):
            return
        c = self.config.template
        self.template = TemplateKeeper(Path(self.status_path).parent / f"template-{self.user}.npz", model.spec,
                                       margin=c.margin, quiet_minutes=c.quiet_minutes)

    def _offer_template(self, v, threshold: float) -> None:
        if self.template is not None:
            calm = (self.state == states.PROTECTED and self.paused_until is None
                    and not (self.trial is not None and self.trial.running))
            self.template.verdict(v, threshold, calm)

    def _model_ages(self) -> dict:
        from agent.template import model_ages

        return {} if self.model is None else model_ages(self.model, self.template)

    def check_template(self) -> bool:
        """Called by the heartbeat: save the kept blocks, switch to an accepted update at a calm
        moment, or start an update after template.update_hours of active use (never while
        locked, suspicious, paused, in the trial, or while another refit runs). Returns whether
        an update was started."""
        from agent.template import MIN_BLOCKS_FOR_UPDATE, TemplateRefit, update_command

        keeper = self.template
        if keeper is None or self._stopped.is_set():
            return False
        try:
            keeper.save()
        except OSError as exc:
            self._say_once(f"cannot keep blocks for the model update in {keeper.path}: {exc.strerror or exc}")
        job = self.template_refit
        if job is not None and not job.is_alive():
            self.template_refit = None
            if job.accepted:
                lines = [line for line in job.report.splitlines() if line and line != "model updated"]
                self._template_updated = "updated on the movement kept as yours: " + "; ".join(lines[-4:])
        if (self.template_refit is not None or self.refit is not None or not self._calmly_protecting()
                or (self.trial is not None and self.trial.running)):
            return False
        if self._template_updated:
            why, self._template_updated = self._template_updated, ""
            self._switch_to_refitted(why)
            return False
        if (keeper.active_seconds < self.config.template.update_hours * 3600
                or keeper.kept < MIN_BLOCKS_FOR_UPDATE):
            return False
        from agent.enrolment import train_install_hint, training_available

        if not training_available():
            self._say_once(f"updating the model needs PyTorch ({train_install_hint()}); keeping it as enrolled")
            return False
        keeper.started_update()  # a refused update waits another update_hours, not one heartbeat
        keeper.save(force=True)
        log.info("updating the model in the background on %d blocks kept as yours", keeper.kept)
        self.template_refit = TemplateRefit((self.template_command or update_command)(self.user))
        self.template_refit.start()
        return True

    def _say_once(self, message: str) -> None:
        if message not in self._cohort_said:
            self._cohort_said.add(message)
            log.warning("%s", message)

    # -- callbacks --------------------------------------------------------------------------

    def on_health(self, healthy: bool, reason: str) -> None:
        was_down, self.hook_ok = self._hook_was_down, healthy
        self._hook_was_down = not healthy
        if healthy:
            self._normal_state()
            if was_down:
                self._report(fleet_events.PROTECTION_RESTORED, "the mouse hook runs again")
        else:
            log.error("mouse hook down: %s", reason)
            self.set_state(states.NOT_PROTECTING, f"mouse hook: {reason}")
            if not was_down:
                self._report(fleet_events.PROTECTION_STOPPED, f"mouse hook: {reason}")

    def on_key(self, now: float) -> None:
        """A key was pressed (which one is never known here): input the decision judges on time
        (RollingDecision.activity), so typing without the mouse is not unwatched."""
        pipeline = getattr(self.consumer, "pipeline", None)
        if pipeline is not None and self.paused_until is None:
            pipeline.key_pressed(now)  # the pipeline's thread folds it in: the decision is not thread-safe

    def on_input(self, events, injected, now: float) -> None:
        """After each drain of the ring buffer, on the pipeline's thread: pointer input made by a
        program (agent/injected_input.py) is an alarm of its own while protecting, whatever the
        model thinks of the movement: replaying the owner's recordings must not pass."""
        judge = self.injected
        if judge is None:
            return
        judge.feed(events, injected)
        reason = judge.verdict(now)
        if reason is None or not self._judging_input():
            return
        how = self.config.agent.injected_input
        log.error("%s: acting (agent.injected_input = %s)", reason, how)
        if self.template is not None:  # no block of this time is the owner's to learn from
            self.template.incident(now)
        if self._in_trial():
            outcome = self._trial_alert(reason)
        else:
            outcome = self.actor.act(reason, action=how)
        self.consumer.pipeline.decision.reset(now)  # it acted from outside the rolling decision
        self._acted(outcome, reason)

    def _acted(self, outcome: str, reason: str, score: float | None = None, threshold: float | None = None) -> None:
        """After a decision acted (pipeline thread): the person now at the mouse is judged afresh
        after the grace period; the state and the fleet event say what was done."""
        pipeline = self.consumer.pipeline
        pipeline.cutter.flush()
        self.grace_until = time.time() + pipeline.decision.grace_seconds
        self.set_state(states.LOCKED if outcome == "locked" else states.ALERTED, f"{outcome}: {reason}", anew=True)
        self._report(OUTCOME_EVENTS.get(outcome, fleet_events.ALERTED), reason, score, threshold)

    def _judging_input(self) -> bool:
        """Protecting with a model, not paused, and not in the grace after acting."""
        return (self.mode == states.PROTECTED and self.paused_until is None
                and not (self.grace_until and time.time() < self.grace_until))

    def on_display_gone(self, reason: str) -> None:
        """The X display has refused the hook for a while: the desktop session is over, and the
        agent ends with it, so the next session's agent is not locked out by this one."""
        log.error("the X display is gone (%s): the desktop session has ended; mouseguard stops", reason)
        self.stop_reason = self.stop_reason or "the desktop session ended (its X display is gone)"
        self.clean_stop = True  # nothing left to lock
        self.tray.stop()

    def on_verdicts(self, verdicts) -> None:
        decision = self.consumer.pipeline.decision
        for v in verdicts:
            log.debug("block %d: P(genuine) %.3f, rolling %s -> %s", v.index, v.verdict.score,
                      "-" if v.verdict.rolling is None else f"{v.verdict.rolling:.3f}", v.verdict.state)
            self.blocks_scored = v.index
            # None while the window refills after a lock or a pause: the last mean is not shown
            # as if it were current (the one that acted is in the state's detail)
            self.last_rolling = None if v.verdict.act else v.verdict.rolling
            self._note_fault(v.verdict.fault, decision.fault_grace_seconds)
            if self.trial is not None and not v.verdict.fault and self._trial_saving(self.trial.block, v.t):
                self._end_trial()
            self._offer_template(v, decision.threshold)
            if v.verdict.act:
                if v.verdict.reason:  # judged on time: input without a block to judge
                    reason = v.verdict.reason
                elif v.verdict.fault:
                    reason = f"no valid score for {decision.fault_grace_seconds:g} s ({v.verdict.fault})"
                    self.fault = ""  # acted on; the next block without a valid score starts a new grace
                else:
                    reason = (f"mean P(genuine) of the last {decision.window} blocks "
                              f"{v.verdict.rolling:.3f} < {decision.threshold:.3f}")
                if self._in_trial() and not v.verdict.fault:  # a broken model locks even on day one
                    outcome = self._trial_alert(reason)
                else:
                    outcome = self.actor.act(reason)
                self._acted(outcome, reason, None if v.verdict.fault else v.verdict.rolling, decision.threshold)
            elif self.hook_ok and self.paused_until is None:
                if v.verdict.fault:
                    self.set_state(states.NOT_PROTECTING, v.verdict.fault)
                    continue
                if self.state in (states.LOCKED, states.ALERTED) and v.verdict.rolling is None:
                    continue  # grace period after a lock: keep showing it until a new judgement
                self.set_state(v.verdict.state)
        self.write_status()

    def _in_trial(self) -> bool:
        return self.trial is not None and self.trial.running and self.actor.action == "lock"

    def _trial_alert(self, reason: str) -> str:
        """During the trial a lock decision alerts, and is kept for the summary at its end."""
        log.warning("trial: would have locked (alert only for %.1f more hours of active use): %s",
                    self.trial.hours_left, reason)
        self._trial_saving(self.trial.note, reason)
        self.tray.notify("mouseguard (trial): would have locked",
                         f"{reason}. During the trial mouseguard only alerts; in "
                         f"{self.trial.hours_left:.1f} h of use it starts locking.")
        return "trial, would have locked"

    def _end_trial(self) -> None:
        summary = self.trial.summary()
        log.warning("trial: %s", summary)
        self.tray.notify("mouseguard: the trial is over, it now locks", summary)

    def _note_fault(self, fault: str, grace: float) -> None:
        """One log line (and a notice) when the model's scores stop being judgeable, one when they
        are judged again."""
        if fault and not self.fault:
            log.error("not protecting: %s; acting as on an impostor in %g s unless valid scores return", fault, grace)
            self._report(fleet_events.PROTECTION_STOPPED,
                         f"{fault}; acting as on an impostor in {grace:g} s unless valid scores return",
                         state=states.NOT_PROTECTING)
            self.tray.notify("mouseguard is not protecting",
                             f"{fault}. Unless valid scores return, mouseguard acts as on an impostor "
                             f"({self.actor.action}) in {grace:g} s.")
        elif self.fault and not fault:
            log.warning("the model gives valid scores again: judging as before")
            self._report(fleet_events.PROTECTION_RESTORED, "the model gives valid scores again")
        self.fault = fault

    def on_pipeline_error(self, exc: BaseException) -> None:
        log.exception("scoring failed", exc_info=exc)
        self.set_state(states.NOT_PROTECTING, f"scoring failed: {exc}")
        self._report(fleet_events.PROTECTION_STOPPED, f"scoring failed: {exc}")

    def pause(self, seconds: float, by: str = "by the user") -> None:
        self.paused_until = time.time() + seconds
        if self.template is not None:  # whoever paused may not be the owner
            self.template.incident(live_clock())
        if self.consumer is not None:
            self.consumer.paused.set()
        log.warning("paused %s for %g min", by, round(seconds / 60, 1))
        self._normal_state()
        self._report(fleet_events.PAUSED, f"{by} for {seconds / 60:.0f} min", state=states.PAUSED)

    def resume(self, reason: str = "by the user") -> None:
        if self.paused_until is None:
            return
        self.paused_until = None
        if self.consumer is not None:
            pipeline = getattr(self.consumer, "pipeline", None)
            if pipeline is not None:  # what was half-cut before the pause is not judged
                pipeline.cutter.flush()
                pipeline.decision.reset()
                self.fault = ""
            self.consumer.paused.clear()
        log.warning("resumed")
        self._normal_state()
        self._report(fleet_events.RESUMED, reason)



    # -- requests that weaken protection ---------------------------------------------------

    def control(self, command: str, minutes: float | None = None, by: str = "") -> tuple[bool, str]:
        """Pause, resume or stop, asked from the tray menu or ``mouseguard pause|resume|stop``.

        Every request that weakens protection comes through here, and only here, so a step in
        front of them (lock the session first, ask for the password) has one place to go.
        Returns whether it was done and what to tell the one who asked.
        """
        if command == "status":  # read-only, and not behind a pause waiting for the password
            return True, json.dumps(self.status_now())
        with self._control_lock:
            if command == "pause":
                return self._pause_request(minutes, by)
            if command == "resume":
                if self.paused_until is None:
                    return False, "mouseguard is not paused"
                self.resume()
                return True, "resumed: protecting again"
            if command == "stop":
                refused = self._owner_refuses("stop")
                if refused:
                    return False, refused
                self.clean_stop = True
                self.stop_reason = self.stop_reason or f"stopped {by}".strip()
                self.tray.stop()  # run_agent's tray.run returns and stops the agent
                return True, "mouseguard stops"
            return False, f"unknown request {command!r}"

    def _owner_refuses(self, what: str) -> str:
        """Why ``what`` is refused by the owner check (lock, then the password), or ""."""
        if self.owner_check is None:
            return ""
        ok, message = self.owner_check(what)
        if ok:
            return ""
        log.warning("%s", message)
        return message

    def from_tray(self, command: str, minutes: float | None = None) -> None:
        """A tray menu entry: the same door as the commands, caps included; a refusal is shown,
        since a menu click has no terminal to answer on."""
        done, message = self.control(command, minutes, by="from the tray menu")
        if not done:
            self.tray.notify(f"mouseguard: {command} refused", message)

    def _pause_request(self, minutes, by: str) -> tuple[bool, str]:
        cfg = self.config.agent
        if not cfg.pause_allowed:
            who = ("your administrator's managed policy" if "agent.pause_allowed" in self.policy_locked
                   else "your configuration")
            log.warning("pause refused: %s does not allow pausing (agent.pause_allowed = false)", who)
            return False, f"pausing is not allowed by {who} (agent.pause_allowed = false)"
        limit = cfg.max_pause_minutes
        if "agent.pause_minutes" in self.policy_locked:  # a policy's pause length is its cap too
            limit = min(limit, cfg.pause_minutes)
        if minutes is None:
            minutes = min(cfg.pause_minutes, limit)
        if (not isinstance(minutes, (int, float)) or isinstance(minutes, bool) or not math.isfinite(minutes)
                or not 0 < minutes <= limit):
            return False, f"a pause lasts more than 0 and at most {limit} minutes (agent.max_pause_minutes)"
        if self.pauses.left(time.time()) > 0:  # (no lock for a pause that would be refused anyway)
            refused = self._owner_refuses("pause")
            if refused:
                return False, refused
        now = time.time()
        if not self.pauses.take(now):
            return False, (f"no pause left today: {cfg.pauses_per_day} a day (agent.pauses_per_day); "
                           "protection stays on")
        self.pause(minutes * 60, by or "by the user")
        left = self.pauses.left(now)
        log.info("%d pause%s left today", left, "" if left == 1 else "s")
        until = time.strftime("%H:%M", time.localtime(self.paused_until))
        return True, f"paused until {until} ({left} pause{'' if left == 1 else 's'} left today)"


#: The actor's outcome -> the fleet event reporting it.
OUTCOME_EVENTS = {outcomes.LOCKED: fleet_events.LOCKED, outcomes.ALERTED: fleet_events.ALERTED,
                  outcomes.LOGGED: fleet_events.IMPOSTOR_LOGGED, outcomes.LOCK_FAILED: fleet_events.LOCK_FAILED}


def default_enrol_command(user: str, files: list[str]) -> list[str]:
    """Enrolment runs in a child process: torch never enters the agent's own memory."""
    return [sys.executable, "-m", "agent", "enroll", "--user", user, "--from", *files]


def refit_sources(training: dict, recordings: Path, blocks: Path | None = None) -> list[str]:
    """What a refit re-enrols from: the files the model was enrolled from when every one is
    still there (``enroll --from`` files kept elsewhere, kept recordings, the enrolment blocks
    of a refit), else the enrolment blocks file ``blocks`` the enrolment kept when it deleted
    its recordings, else the recordings in ``recordings`` (a user enrolled before enrolments
    deleted them: their first refit turns them into enrolment blocks)."""
    sources = training.get("sources")
    if (isinstance(sources, list) and sources
            and all(isinstance(s, str) and Path(s).is_absolute() and Path(s).is_file() for s in sources)):
        return list(sources)
    if blocks is not None and blocks.is_file():
        return [str(blocks)]
    return sorted(str(p) for p in recordings.glob("*.csv*"))


def start_low_priority(command: list[str]) -> subprocess.Popen:
    """Start ``command`` with its output captured, REFIT_NICENESS below the agent's priority."""
    extra = {"creationflags": subprocess.BELOW_NORMAL_PRIORITY_CLASS} if sys.platform == "win32" else {}
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **extra)
    if hasattr(os, "setpriority"):
        # Set from here rather than in a preexec_fn (unsafe with the agent's threads). On Linux it
        # applies to the child's main thread; the threads torch starts later inherit it.
        with contextlib.suppress(OSError):  # it may have ended already
            os.setpriority(os.PRIO_PROCESS, proc.pid, min(19, os.getpriority(os.PRIO_PROCESS, 0) + REFIT_NICENESS))
    return proc


class CohortRefit(threading.Thread):
    """One background re-enrolment in a low-priority child process."""

    def __init__(self, command: list[str]):
        super().__init__(name="mouseguard-refit", daemon=True)
        self.command = command
        self.proc: subprocess.Popen | None = None
        self.succeeded = False
        self._stopping = threading.Event()

    def run(self) -> None:
        try:
            self.proc = start_low_priority(self.command)
        except OSError as exc:
            log.error("the cohort refit could not start: %s", exc)
            return
        if self._stopping.is_set():
            self.stop()
        out, err = self.proc.communicate()
        if self.proc.returncode == 0:
            self.succeeded = True
            log.info("re-enrolled against the cohort:\n%s", out.strip())
        elif not self._stopping.is_set():
            log.error("the cohort refit failed, keeping the current model: %s",
                      err.strip().splitlines()[-1:] or self.proc.returncode)

    def stop(self, timeout: float = 10.0) -> None:
        """End the child as Ctrl-C would, so its half-written model folder is cleaned up."""
        self._stopping.set()
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGINT if sys.platform != "win32" else signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()


class Learner(threading.Thread):
    """No model yet: record the user's movement; once enough, enrol and start protecting."""

    def __init__(self, agent: Agent):
        super().__init__(name="mouseguard-learner", daemon=True)
        self.agent = agent
        self._stop_event = threading.Event()
        self.paused = threading.Event()
        self.active = 0.0

    def stop(self, timeout: float = 2.0) -> None:
        self._stop_event.set()
        if threading.current_thread() is not self:  # the learner hands over to the pipeline itself
            self.join(timeout)

    def run(self) -> None:
        from agent.enrolment import new_recording_path
        from agent.events import EVENT_DTYPE
        from agent.recorder import CHECKPOINT_SECONDS, active_seconds
        from agent.recordings import write_recording
        from agent.sealing import key_for_writing

        agent = self.agent
        minutes = agent.config.enrolment.minutes
        path = new_recording_path(agent.recordings_dir / agent.user)
        key = key_for_writing()  # sealed: they stay in mouseguard's folder (agent/sealing.py)
        existing = sorted(str(p) for p in path.parent.glob("*.csv*") if p != path)
        self.active = sum(active_seconds(_read_times(f)) for f in existing)
        chunks, last_t, last_save = [], None, time.monotonic()
        while not self._stop_event.is_set():
            agent.buffer.wait(0.5)
            events, _ = agent.buffer.drain()
            if self.paused.is_set() or len(events) == 0:
                continue
            t = events["t"] if last_t is None else np.concatenate(([last_t], events["t"]))
            self.active += active_seconds(t)
            last_t = float(events["t"][-1])
            chunks.append(events)
            agent.set_state(states.LEARNING, f"{self.active / 60:.0f} of {minutes:g} min of movement recorded")
            if time.monotonic() - last_save >= CHECKPOINT_SECONDS or self.active >= minutes * 60:
                write_recording(path, np.concatenate(chunks) if chunks else np.zeros(0, EVENT_DTYPE), key)
                last_save = time.monotonic()
            if self.active >= minutes * 60:
                if self._enrol(existing + [str(path)]):
                    return
                minutes += 10  # too little for a model after all: learn a while longer
                path, existing, chunks = new_recording_path(path.parent), existing + [str(path)], []

    def _enrol(self, files: list[str]) -> bool:
        agent = self.agent
        agent.set_state(states.LEARNING, "enough movement recorded: training your model")
        proc = subprocess.run(agent.enrol_command(agent.user, files), capture_output=True, text=True)
        if proc.returncode != 0:
            log.error("automatic enrolment failed: %s", proc.stderr.strip().splitlines()[-1:] or proc.returncode)
            return False
        log.info("enrolled automatically:\n%s", proc.stdout.strip())
        try:
            model = agent._load_model()
        except ModelError as exc:
            log.error("the new model was refused: %s", exc)
            agent._report(fleet_events.MODEL_REFUSED, f"the model just enrolled: {exc}")
            return False
        agent.tray.notify("mouseguard is now protecting", "Your model is ready; mouseguard watches the mouse.")
        agent._watch_files()  # the model it just wrote is no tampering (still learning: not yet checked)
        agent._protect(model)
        agent._report(fleet_events.MODEL_UPDATED, "enrolled automatically from the movement learnt")
        return True


def _read_times(path) -> np.ndarray:
    from agent.recordings import RecordingError, read_recording

    try:
        return read_recording(path)["t"]
    except RecordingError:
        return np.zeros(0)
