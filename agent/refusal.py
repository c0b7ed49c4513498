"""An agent that cannot start says so where someone will look.

Started by autostart, the agent has no terminal: a refusal printed on stderr (bad config key,
no display, a Wayland session) reaches nobody, the log stays as it was and ``mouseguard
status`` goes on describing the previous run. So every refusal also goes to the log file, to
the status file ("not running: why", read by ``status``) and to a desktop notification.
"""

from __future__ import annotations

import logging
import os
import time

from agent.responses.alert import FallbackNotifier, Notify

TITLE = "mouseguard did not start"


def report_refusal(why: str, notify: Notify | None = None) -> None:
    """Record that the agent refused to start, and ``why``; never raises (the caller goes on to
    print the one-line error and exit). Logging goes to the file only: stderr gets that line."""
    from agent.logs import LOG_FILE_NAME, setup_logging
    from agent.paths import ensure, log_dir, status_file
    from agent.states import NOT_PROTECTING
    from agent.status import write_status

    log = logging.getLogger("mouseguard.agent")
    reason = f"refused to start: {why}"
    logfile = log_dir() / LOG_FILE_NAME
    try:
        logfile = setup_logging(ensure(log_dir()), "info", console=False)
        log.error("%s", reason)
    except (OSError, ValueError):
        pass  # no log folder to write to: the status file and the notification still say it
    from agent.instance import running_pid
    from agent.paths import lock_file

    other = running_pid(lock_file())
    if other is not None:
        # A second start (from a terminal without a display, say) while an agent protects: its
        # status file is that agent's, and it is running; nothing needs showing on the desktop.
        log.info("(agent pid %s is running; its status is left as it is)", other)
        return
    now = time.time()
    try:
        write_status(status_file(), NOT_PROTECTING, now, 0, None, os.getpid(), detail=reason,
                     extra={"stopped": reason, "log": str(logfile)})
    except OSError as exc:
        log.error("cannot write the status file %s: %s", status_file(), exc.strerror or exc)
    try:
        (notify or FallbackNotifier(log))(TITLE, f"{why}. mouseguard is not protecting this session.")
    except Exception:  # a notifier is best effort; the log and status already say it
        log.exception("the refusal could not be shown as a notification")
