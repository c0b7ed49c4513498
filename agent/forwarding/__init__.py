"""Where fleet events go: a syslog collector or socket (``syslog``, RFC 5424), the systemd
journal (``journald``, for ``syslog = "local"`` where it runs), an HTTPS collector (``webhook``),
and on Windows the Event Log (``windows_eventlog``: ``eventlog = true``, or ``syslog = "local"``
there).

``destinations(config, state_dir)`` builds them from the ``[forwarding]`` settings; the target
checks here are what the config validates with, so a bad target stops the agent at start-up
with one line instead of failing at the first lock.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from urllib.parse import urlsplit

#: Default ports: RFC 5426 (UDP) and RFC 6587 (TCP, octet counting; 601 is syslog-conn).
SYSLOG_PORTS = {"udp": 514, "tcp": 601}
#: The platform's own log socket for syslog = "local" (Windows: the Event Log).
LOCAL_SOCKETS = {"linux": "/dev/log", "darwin": "/var/run/syslog"}


class TargetError(ValueError):
    pass


def parse_syslog_target(text: str) -> tuple[str, str, int]:
    """``udp://host[:port]``, ``tcp://host[:port]``, ``unix:///path`` or ``local`` ->
    (scheme, host or socket path, port). Raises TargetError with what is wrong."""
    if text == "local":
        return "local", "", 0
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise TargetError(str(exc)) from None
    if parts.scheme == "unix":
        if parts.netloc or not parts.path.startswith("/"):
            raise TargetError("a unix socket target is unix:///absolute/path")
        return "unix", parts.path, 0
    if parts.scheme not in SYSLOG_PORTS:
        raise TargetError("the scheme is udp://, tcp://, unix:// or the word local")
    if not parts.hostname or parts.path not in ("", "/") or parts.query or parts.username:
        raise TargetError("expected scheme://host[:port] and nothing else")
    return parts.scheme, parts.hostname, port or SYSLOG_PORTS[parts.scheme]


def valid_syslog_target(text: str) -> bool:
    if text == "":
        return True
    try:
        parse_syslog_target(text)
    except TargetError:
        return False
    return True


def valid_webhook_url(text: str) -> bool:
    """HTTPS only: events name users and say when their sessions were locked, so they never
    travel in clear text. No user:password in the URL (it would end up in logs)."""
    if text == "":
        return True
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        return False
    return parts.scheme == "https" and bool(parts.hostname) and not parts.username and not parts.fragment


def valid_authorization(text: str) -> bool:
    """An HTTP header value: printable ASCII on one line (a newline would inject headers)."""
    return len(text) <= 4096 and all(32 <= ord(c) <= 126 for c in text)


def valid_ca_file(text: str) -> bool:
    """An absolute path (the agent's working folder is anywhere), or "" for the system's CAs.
    Whether it exists is checked when the agent starts, where a missing file can be named."""
    return text == "" or ("\0" not in text and os.path.isabs(text))


def destinations(forwarding, state_dir: Path, platform: str = sys.platform,
                 journal_socket: str | None = None) -> list:
    """The destinations the ``[forwarding]`` settings ask for (may be empty). ``local`` is the
    journal where it runs (its native protocol keeps the fields), else the log socket."""
    from agent.forwarding.journald import JOURNAL_SOCKET, JournalDestination
    from agent.forwarding.syslog import SyslogDestination
    from agent.forwarding.webhook import WebhookDestination

    journal_socket = journal_socket or JOURNAL_SOCKET
    found = []
    eventlog = bool(getattr(forwarding, "eventlog", False))
    if eventlog and platform != "win32":
        from agent.forwarding.windows_eventlog import ONLY_ON_WINDOWS

        raise TargetError(f"forwarding.eventlog = true: {ONLY_ON_WINDOWS}")
    if eventlog or (forwarding.syslog == "local" and platform == "win32"):
        from agent.forwarding.windows_eventlog import WindowsEventLogDestination

        found.append(WindowsEventLogDestination())
    if forwarding.syslog:
        if forwarding.syslog == "local" and platform == "win32":
            pass  # the Event Log, above
        elif forwarding.syslog == "local" and platform.startswith("linux") and os.path.exists(journal_socket):
            found.append(JournalDestination(journal_socket))
        else:
            found.append(SyslogDestination(forwarding.syslog, platform=platform))
    if forwarding.webhook:
        found.append(WebhookDestination(forwarding.webhook, Path(state_dir) / "fleet-queue",
                                        ca_file=forwarding.webhook_ca or None,
                                        authorization=forwarding.webhook_authorization,
                                        max_queued=forwarding.webhook_queue))
    return found
