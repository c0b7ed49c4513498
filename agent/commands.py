"""Handlers of the agent's subcommands (everything but ``train``)."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np

from agent.errors import MouseguardError
from agent.files import check_output_folder
from agent.model_dir import load_model_dir
from agent.recordings import read_recording


def score(args) -> int:
    """One CSV row per file: blocks cut and the mean P(genuine) over them.

    Remainders are concatenated here whatever the model's spec says, so that a short file
    (many brief movements, none of them a whole block) still yields blocks to score.
    """
    from agent.model_inputs import extract_all
    from agent.scorer import Scorer

    from agent.config import load_config

    model = load_model_dir(resolve_model(args.model, load_config(write_defaults=False)))
    scorer = Scorer(model)
    out = csv.writer(sys.stdout, lineterminator="\n")
    # Read every file before printing anything: a bad file fails the command, not row 3.
    recordings = [(path, read_recording(path)) for path in args.files]
    out.writerow(["file", "blocks", "score"])
    for path, events in recordings:
        blocks, _ = extract_all(model, events, short_files=True)
        p = scorer.score(blocks)
        out.writerow([path, len(blocks), f"{float(np.mean(p)):.6f}" if len(p) else ""])
    return 0




def replay_cmd(args) -> int:
    from agent.config import decision_settings, load_config
    from agent.pipeline import make_pipeline
    from agent.replay import replay_printed, summary
    from agent.scorer import Scorer

    if args.speed is not None and not args.speed > 0:
        raise MouseguardError("--speed must be a positive number (omit it to replay as fast as possible)")
    from agent.policy import enforce, load_policy

    config, _ = enforce(load_config(write_defaults=False), load_policy())  # decide as the agent would
    model = load_model_dir(resolve_model(args.model, config))
    events = read_recording(args.file)
    # The agent's own settings for this model (config overrides, grace): what it would have done.
    settings = decision_settings(model, config)
    pipeline = make_pipeline(model, Scorer(model), window=settings.window, threshold=settings.threshold,
                             grace_seconds=settings.grace_seconds, unjudged_seconds=settings.unjudged_seconds)
    print(f"replaying {args.file} ({len(events)} events) with the model of {model.user}: "
          f"{settings.describe()}")
    verdicts = replay_printed(events, pipeline, lambda line: print(line, flush=True), speed=args.speed)
    print(summary(verdicts))
    return 0


def resolve_model(explicit: str | None, config) -> str:
    """The model to use: ``--model`` if given, else the enrolled user's (see config)."""
    if explicit:
        return explicit
    from agent.config import effective_model_dir

    return str(effective_model_dir(config))


def status(args) -> int:
    """What the running agent does; the exit code says it to scripts (``status.EXIT_CODES``)."""
    import json
    import time

    from agent.logs import LOG_FILE_NAME
    from agent.paths import log_dir, status_file
    from agent.status import EXIT_NOT_RUNNING, assess, read_status

    path = status_file()
    found = _status_from_agent(read_status(path))
    code, text = assess(found, time.time())
    logfile = log_dir() / LOG_FILE_NAME
    if getattr(args, "json", False):
        print(json.dumps({"running": code != EXIT_NOT_RUNNING, "exit_code": code,
                          "summary": text.splitlines()[0], "text": text,
                          "status": found if found and "unreadable" not in found else None,
                          "status_file": str(path), "log": str(logfile)}, indent=2))
    else:
        print(text)
        print(f"  log: {logfile}")
        for line in policy_lines():
            print(line)
    return code


def _status_from_agent(found):
    """The running agent's own answer over its control socket when the status file says it has
    one; when none answers there, the file (which anyone in the account can write) is stale or
    forged, and says so."""
    import json

    from agent.control import ControlError, NotRunning, available, request

    # Not keyed on the file naming a socket: a forger would only have to drop that key.
    if not found or "unreadable" in found or found.get("stopped") or not available():
        return found
    try:
        ok, answer = request("status", timeout=3.0)
        live = json.loads(answer) if ok else None
    except (NotRunning, ControlError, ValueError) as exc:
        live, why = None, str(exc)
    else:
        why = "its answer was not a status"
    if isinstance(live, dict) and isinstance(live.get("updated"), (int, float)):
        return live
    return {**found, "stopped": (f"the status file says {found.get('state', '?')} (pid {found.get('pid', '?')}), "
                                 f"but no agent answers on its control socket ({why}): the file is stale or forged")}


def control(args) -> int:
    """``mouseguard pause [MIN] | resume | stop``: ask the running agent over its private channel.

    Exit 0 when it was done, 1 when the agent refused (no pause left today, too long, not
    paused), 3 when no agent runs (as ``status``)."""
    from agent.control import NotRunning, request
    from agent.owner_check import LOCKED_WAIT_S, UNLOCK_WAIT_S
    from agent.status import EXIT_NOT_RUNNING

    fields = {"minutes": args.minutes} if args.command == "pause" and args.minutes is not None else {}
    try:  # a pause or stop waits while the owner unlocks the session it locks first
        done, message = request(args.command, timeout=UNLOCK_WAIT_S + LOCKED_WAIT_S + 30, **fields)
    except NotRunning as exc:
        print(f"mouseguard: {exc}", file=sys.stderr)
        return EXIT_NOT_RUNNING
    if not done:
        print(f"mouseguard: {args.command} refused: {message}", file=sys.stderr)
        return 1
    if args.command == "stop":
        message = _wait_for_the_end() or message
    print(message)
    return 0


def _wait_for_the_end(timeout: float = 15.0) -> str:
    """After ``stop``: wait until the agent has let go of its instance lock."""
    import time

    from agent.instance import running_pid
    from agent.paths import lock_file

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if running_pid(lock_file()) is None:
            return "mouseguard stopped"
        time.sleep(0.1)
    return f"mouseguard was asked to stop and has not yet after {timeout:g} s"


def history(args) -> int:
    """Recent decisions, locks and pauses, read from the agent's log."""
    import dataclasses
    import json

    from agent.history import format_history, read_history
    from agent.logs import LOG_FILE_NAME
    from agent.paths import log_dir

    events = read_history(log_dir(), args.limit)
    if args.json:
        print(json.dumps([dataclasses.asdict(e) for e in events], indent=2))
    elif events:
        print(format_history(events))
    else:
        print(f"no history yet (the agent's log {log_dir() / LOG_FILE_NAME} holds no decision)")
    return 0


def policy_lines() -> list[str]:
    """What ``status`` says about the managed policy: the keys it locks, and each of the user's
    settings it overrides (nothing when there is no policy file)."""
    from agent.config import ConfigError, load_config
    from agent.policy import enforce, load_policy

    try:
        policy = load_policy()
    except ConfigError as exc:
        return [f"managed policy: unusable, the agent will not start: {exc}"]
    lines = policy.describe()
    if policy.values:
        try:
            _, notes = enforce(load_config(write_defaults=False), policy)
        except ConfigError as exc:
            notes = [f"your configuration cannot be read: {exc}"]
        lines += [f"  {note}" for note in notes]
    return lines


def autostart(args) -> int:
    from agent import autostart as auto

    if args.action == "enable":
        print(auto.enable(auto.default_command()))
    elif args.action == "disable":
        print("autostart disabled" if auto.disable() else "autostart was not enabled")
    else:
        print(auto.status())
    return 0


def forget(args) -> int:
    """Erase a user's models (with the staging and backup folders a model swap leaves), their
    recordings and enrolment blocks, their enrolment record and their blocks in the shared cohort folder; for the
    agent's own user also its log and status files, and with ``--config`` the configuration:
    everything mouseguard learnt about them.

    The enrolment record is what keeps a running agent from learning anew when a model goes
    missing, so only this explicit command removes it — and not while an agent runs: quitting
    the agent first is what the owner's password guards.
    """
    import shutil

    from agent import enrolled, paths
    from agent.cohort import member_path
    from agent.config import effective_user, load_config
    from agent.files import leftovers
    from agent.instance import AlreadyRunning, InstanceLock
    from agent.logs import LOG_FILE_NAME

    config = load_config(write_defaults=False)  # erasing must not leave a new config file behind
    user = paths.safe_user_name(args.user or effective_user(config))
    if paths.lock_file().exists():
        try:
            InstanceLock(paths.lock_file()).acquire().release()
        except AlreadyRunning as running:
            raise MouseguardError(f"the mouseguard agent is running (pid {running.pid}): quit it first (tray "
                                  "menu, Quit), then forget; nothing was erased") from None
    model = paths.user_model_dir(user)
    staging, backups = leftovers(model)
    from agent.enrolment_blocks import blocks_path
    from agent.template import store_path

    candidates = [model, *staging, *backups, paths.user_recordings_dir(user), enrolled.record_path(user),
                  enrolled.seen_path(enrolled.record_path(user)),
                  blocks_path(user),  # what enrolment kept instead of the recordings
                  store_path(user)]  # the blocks kept for a template update
    if config.cohort.dir:
        candidates.append(member_path(config.cohort.dir, user))
    if user == effective_user(config):  # the agent's log and status are about the user it protects
        log_dir = paths.log_dir()
        candidates += sorted(log_dir.glob(f"{LOG_FILE_NAME}*")) if log_dir.is_dir() else []
        candidates.append(paths.status_file())
    if getattr(args, "config", False):
        candidates.append(paths.config_file())
    targets = [p for p in candidates if p.exists() or p.is_symlink()]
    if not targets:
        print(f"nothing stored for {user}")
        return 0
    if not args.yes:
        if not sys.stdin.isatty():
            raise MouseguardError("refusing to erase without confirmation: run it in a terminal or add --yes")
        answer = input(f"Erase {' and '.join(map(str, targets))}? This cannot be undone. [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing erased")
            return 1
    for p in targets:
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:  # a file, or a link planted under a name: the link goes, never its target
            p.unlink()
        print(f"erased {p}")
    # The key is the account's, not one user's: it goes with the last sealed file it opens.
    sealed_left = [*paths.recordings_dir().glob("*/*.csv*"), *blocks_path(user).parent.glob("*.npz")]
    if not sealed_left:
        from agent.sealing import forget_key

        print(forget_key())
    return 0


def run_agent(args) -> int:
    """``mouseguard run``: the agent in the foreground until Quit, Ctrl-C or SIGTERM."""
    import logging
    import signal
    import threading

    from agent import fleet_events
    from agent.capture import check_display
    from agent.config import apply_overrides, effective_model_dir, effective_user, load_config
    from agent.control import ControlError, ControlServer
    from agent.control import available as channel_available
    from agent.forwarding import destinations
    from agent.instance import InstanceLock
    from agent.logs import setup_logging
    from agent.paths import (config_file, control_socket, ensure, lock_file, log_dir, recordings_dir, state_dir,
                             status_file)
    from agent.policy import enforce, load_policy
    from agent.responses import platform_locker
    from agent.responses.actor import Actor
    from agent.runner import Agent
    from agent.tray import HeadlessTray, PystrayTray, TrayCallbacks, TrayUnavailable, open_folder

    try:
        check_display()  # Wayland, no display: say so and stop, as README promises, not sit unprotected
        config = apply_overrides(load_config(), action=args.action, model=args.model,
                                 tray=False if args.no_tray else None)
        policy = load_policy()  # after the flags: a locked key is locked for --action too
        config, policy_notes = enforce(config, policy)
        if args.model:  # a model named on the command line must be one; a typo would start learning
            load_model_dir(args.model)
    except MouseguardError as exc:
        from agent.refusal import report_refusal

        report_refusal(str(exc))  # autostarted, nobody reads stderr: log, status file, notification
        raise
    logfile = setup_logging(ensure(log_dir()), config.logging.level)
    log = logging.getLogger("mouseguard.agent")
    for line in policy.describe():
        (log.error if policy.ignored else log.info)("%s", line)
    for note in policy_notes:
        log.warning("%s", note)
    ensure(state_dir())
    with InstanceLock(lock_file()):
        try:
            fleet_events.start_reporting(fleet_events.Reporter(destinations(config.forwarding, state_dir())))
        except ValueError as exc:  # a CA file that is not there, no local syslog socket on this OS
            raise MouseguardError(f"[forwarding]: {exc}") from None
        holder = {}

        def from_tray(*request):  # off the tray's thread: a pause or stop waits for the password
            threading.Thread(target=holder["agent"].from_tray, args=request, daemon=True).start()

        callbacks = TrayCallbacks(pause=lambda seconds: from_tray("pause", seconds / 60),
                                  resume=lambda: from_tray("resume"),
                                  open_logs=lambda: open_folder(log_dir()),
                                  quit=lambda: from_tray("stop"))
        tray = None
        if config.agent.tray:
            try:
                tray = PystrayTray(callbacks,  # the menu's pause is the one the cap lets through
                                   pause_minutes=min(config.agent.pause_minutes, config.agent.max_pause_minutes))
            except TrayUnavailable as exc:
                log.warning("no tray icon (%s); running without one", exc)
        tray = tray or HeadlessTray()
        actor = Actor(config.agent.action, platform_locker(), tray.notify)
        from agent.injected_input import x11_sources
        from agent.owner_check import OwnerCheck, platform_lock_state
        from agent.enrolled import record_path

        user = effective_user(config)
        agent = holder["agent"] = Agent(config, tray, actor, model_dir=effective_model_dir(config),
                                        user=user, status_path=status_file(), recordings_dir=recordings_dir(),
                                        enrolment_record=None if config.agent.model else record_path(user),
                                        watched_files=[config_file()],
                                        owner_check=OwnerCheck(platform_locker(), platform_lock_state()),
                                        input_sources=x11_sources if sys.platform.startswith("linux") else None)
        agent.policy_locked = frozenset(policy.locked)

        def on_sigterm(*_):
            agent.stop_reason = agent.stop_reason or "ended by SIGTERM (logout, shutdown or kill)"
            tray.stop()

        signal.signal(signal.SIGTERM, on_sigterm)
        agent.logfile = str(logfile)
        log.info("mouseguard agent starting (action=%s, log %s)", config.agent.action, logfile)
        started = threading.Event()

        def answer(request):
            # the channel opens just before the agent starts (on_ready): only `status` until then
            if not started.is_set() and request["command"] != "status":
                return False, "mouseguard is still starting; ask again in a moment"
            return agent.control(request["command"], request.get("minutes"),
                                 by="with `mouseguard " + request["command"] + "`")

        channel = ControlServer(control_socket(), answer)

        from dataclasses import asdict

        from agent.watchdog import Watchdog

        # a kill -9 of this process locks the session (agent/watchdog.py)
        agent.watchdog = Watchdog({"log": str(logfile), "level": config.logging.level,
                                   "forwarding": asdict(config.forwarding), "state_dir": str(state_dir())})

        def on_ready():
            # The channel first: `status` believes only the agent's own answer, so it must be
            # there by the time the first status file says "protected".
            if not channel_available():
                log.info("no 'mouseguard pause/resume/stop' channel on this platform yet: the tray menu does it")
            else:
                try:
                    channel.start()
                    agent.control_socket = str(channel.path)
                except ControlError as exc:  # the agent protects all the same; only the commands are lost
                    log.error("no control channel, 'mouseguard pause/resume/stop' will not reach this agent: %s", exc)
                    agent.tray.notify("mouseguard cannot be paused or stopped from the command line", str(exc))
            agent.start()
            started.set()

        try:
            tray.run(on_ready)
        except KeyboardInterrupt:
            agent.stop_reason = agent.stop_reason or "interrupted (Ctrl-C)"
        finally:
            channel.stop()
            agent.stop()
            tray.stop()
            tray.close()
            fleet_events.stop_reporting(timeout=3.0)  # agent_stopped out (or on disk) before exit
            if agent.watchdog is not None:
                agent.watchdog.release(clean=agent.clean_stop)
    return 0


def record_cmd(args) -> int:
    from agent.capture import check_display
    from agent.recorder import record

    if args.minutes is not None and not args.minutes > 0:
        raise MouseguardError("--minutes must be positive")
    check_display()  # CaptureUnavailable is a MouseguardError: one line, exit 2
    out = Path(args.out)
    if out.exists():  # checked now, not after the recording it would cost
        raise MouseguardError(f"--out {out}: already exists; mouseguard does not overwrite a recording, "
                              "give a new name")
    check_output_folder(out.parent)

    def progress(active, wall, events):
        limit = f" / {args.minutes:g}" if args.minutes else ""
        print(f"\rrecording {wall / 60:5.1f}{limit} min, {active / 60:5.1f} min of movement, {events} events "
              f"(Ctrl-C to stop)", end="", file=sys.stderr, flush=True)

    # A line rewritten in place is for a terminal; into a file or pipe it would be hundreds of lines.
    tty = sys.stderr.isatty()
    said = []

    def started(*_):  # once, when the hook runs: what a log (and a script waiting on it) needs
        if not said:
            said.append(True)
            print(f"recording into {args.out} (Ctrl-C to stop)", file=sys.stderr, flush=True)

    events = record(args.out, wall_minutes=args.minutes, progress=progress if tty else started)
    if len(events) == 0:
        raise MouseguardError("nothing was recorded (no mouse input reached the hook); no file written")
    print(f"{chr(10) if tty else ''}{len(events)} events written to {args.out}", file=sys.stderr)
    return 0


def demo(args) -> int:
    from pathlib import Path

    from agent.demo import run_demo

    out = Path(args.out)
    if out.is_dir():
        out = out / "mouseguard-demo.png"
    elif out.suffix.lower() != ".png":
        raise MouseguardError(f"--out {args.out}: the timeline chart is a PNG; give a folder or a name ending in .png")
    elif not out.parent.is_dir():
        raise MouseguardError(f"--out {args.out}: folder {out.parent} does not exist")
    run_demo(out)
    return 0


def enroll(args) -> int:
    from agent.enrolment import enroll_cmd

    return enroll_cmd(args)


def update_model(args) -> int:
    from agent.template import update_model_cmd

    return update_model_cmd(args)


HANDLERS = {"run": run_agent, "record": record_cmd, "score": score, "replay": replay_cmd, "demo": demo,
            "enroll": enroll, "update-model": update_model, "status": status, "history": history,
            "pause": control, "resume": control, "stop": control, "autostart": autostart, "forget": forget}


def run(args) -> int:
    return HANDLERS[args.command](args)
