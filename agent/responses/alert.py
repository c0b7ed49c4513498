"""Desktop notifications when no tray can show them.

The tray normally supplies ``notify(title, message)``. Without a tray (``--no-tray``, or a
tray backend that cannot notify, such as pystray's xorg backend) an alert still has to reach
the user, so this fallback always logs and then tries the desktop's own notifier.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from typing import Callable

Notify = Callable[[str, str], None]

NOTIFY_TIMEOUT_S = 5.0


def notify_send_command(title: str, message: str) -> list[str]:
    # "--" so a reason that starts with "-" is not read as an option; critical urgency keeps
    # the bubble on screen until dismissed in most notification daemons.
    return ["notify-send", "--app-name=mouseguard", "--urgency=critical", "--", title, message]


def _applescript_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def osascript_notify_command(title: str, message: str) -> list[str]:
    script = f"display notification {_applescript_string(message)} with title {_applescript_string(title)}"
    return ["osascript", "-e", script]


def desktop_notify_command(title: str, message: str, platform: str = sys.platform) -> list[str] | None:
    """The command that shows a notification on ``platform``, or None where there is none."""
    if platform.startswith("linux") or platform.startswith("freebsd"):
        return notify_send_command(title, message)
    if platform == "darwin":
        return osascript_notify_command(title, message)
    return None  # Windows has no stock CLI notifier; the log (and the tray) must do


class FallbackNotifier:
    """``notify(title, message)``: log at WARNING, then best-effort desktop notification.

    Never raises: a missing ``notify-send`` or no notification daemon is logged and ignored,
    because the log line has already recorded the alert.
    """

    def __init__(
        self,
        log: logging.Logger | None = None,
        run: Callable[..., subprocess.CompletedProcess] = subprocess.run,
        platform: str = sys.platform,
        timeout_s: float = NOTIFY_TIMEOUT_S,
    ):
        self._log = log or logging.getLogger("mouseguard.alert")
        self._run = run
        self._platform = platform
        self._timeout_s = timeout_s

    def __call__(self, title: str, message: str) -> None:
        self._log.warning("ALERT %s: %s", title, message)
        command = desktop_notify_command(title, message, self._platform)
        if command is None:
            return
        try:
            done = self._run(command, capture_output=True, text=True, timeout=self._timeout_s, check=False)
        except (OSError, subprocess.SubprocessError) as exc:
            self._log.info("desktop notification unavailable (%s): %s", command[0], exc)
            return
        if done.returncode != 0:
            self._log.info("%s exited %s: %s", command[0], done.returncode, (done.stderr or "").strip())
