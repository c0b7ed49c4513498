"""Fleet events to syslog as RFC 5424 lines with structured data, over UDP, TCP or a unix socket.

Why not ``logging.handlers.SysLogHandler``: it sends ``<PRI>`` followed by the formatted log
message, i.e. the old BSD format without the RFC 5424 header (version, timestamp, hostname,
app name, process id, message id) and with no structured data; a collector then has to parse
our free text to learn which user was locked. Here every field of the event is an SD-PARAM a
collector can index (rsyslog ``$!rfc5424-sd``/mmpstrucdata, syslog-ng ``${.SDATA.*}``, Splunk,
Graylog), and MSGID is the event name for filtering.

The line::

    <PRI>1 TIMESTAMP HOST mouseguard PID EVENT [origin ...][mouseguard@32473 ...] summary

- PRI = facility ``auth`` (4: security/authorisation messages) * 8 + the event's severity.
- ``origin`` is an SD-ID registered by RFC 5424 itself (software, swVersion).
- ``mouseguard@32473``: private SD-IDs are ``name@<IANA enterprise number>``; mouseguard has no
  enterprise number of its own, so this uses 32473, the number RFC 5612 reserves for
  documentation and examples. Collectors match on it as a string; a deployment with its own
  number can rewrite it in the collector.
- No BOM before the message (MSG-ANY): several collectors show a BOM as garbage.

Framing: UDP one datagram per line (RFC 5426); TCP octet counting, ``LEN SP LINE``
(RFC 6587); a unix datagram socket one line per datagram, as syslog(3) writes to /dev/log.
Collectors' network inputs (rsyslog imudp/imtcp, syslog-ng's syslog() source) parse RFC 5424.
The local /dev/log is traditionally RFC 3164: journald does not parse 5424 there (systemd
issue 19251), nor does rsyslog's imuxsock by default, so the header and structured data stay
in the message text; that is why ``local`` uses the journal's native protocol where the
journal runs (``journald.py``) and this socket only where it does not.
"""

from __future__ import annotations

import socket
import sys

from agent.fleet_events import SEVERITY, Destination, Event
from agent.forwarding import LOCAL_SOCKETS, parse_syslog_target

FACILITY_AUTH = 4
APP_NAME = "mouseguard"
SD_ID = "mouseguard@32473"
TIMEOUT = 5.0

#: The event's fields as SD-PARAMs, in this order (score/threshold only when set).
SD_FIELDS = ("event", "id", "user", "host", "state", "reason", "score", "threshold", "agent_version", "schema")

SUMMARIES = {
    "agent_started": "mouseguard started",
    "agent_stopped": "mouseguard stopped",
    "locked": "someone else was at the mouse: the session was locked",
    "lock_failed": "someone else was at the mouse and the session could NOT be locked (the user was alerted)",
    "alerted": "someone else was at the mouse: the user was alerted",
    "impostor_logged": "someone else was at the mouse (action=log: nothing else done)",
    "model_refused": "the model was refused: not protecting",
    "protection_stopped": "not protecting",
    "protection_restored": "protecting again",
    "paused": "protection paused by the user",
    "resumed": "protection resumed",
    "model_updated": "a new model is in use",
}


def sd_escape(value: str) -> str:
    """PARAM-VALUE escaping (RFC 5424 6.3.3): '"', '\\' and ']' get a backslash."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def _header_field(text: str, limit: int) -> str:
    """A header field is 1..limit printable US-ASCII characters, or "-" (NILVALUE)."""
    text = "".join(c for c in text if 33 <= ord(c) <= 126)[:limit]
    return text or "-"


def format_rfc5424(event: Event, facility: int = FACILITY_AUTH) -> str:
    pri = facility * 8 + SEVERITY[event.event]
    fields = event.to_json_dict()
    params = " ".join(f'{name}="{sd_escape(_sd_value(fields[name]))}"' for name in SD_FIELDS
                      if fields[name] is not None)
    structured = (f'[origin software="{APP_NAME}" swVersion="{sd_escape(event.agent_version)}"]'
                  f"[{SD_ID} {params}]")
    summary = SUMMARIES.get(event.event, event.event)
    message = f"{summary} (user {event.user})" + (f": {event.reason}" if event.reason else "")
    return (f"<{pri}>1 {event.time} {_header_field(event.host, 255)} {APP_NAME} {event.pid} "
            f"{_header_field(event.event, 32)} {structured} {message}")


def _sd_value(value) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


class SyslogDestination(Destination):
    """One syslog target; the socket is (re)opened on demand, so a restarted receiver (rsyslog,
    journald) is reached again from the next event on."""

    def __init__(self, target: str, platform: str = sys.platform, facility: int = FACILITY_AUTH):
        self.scheme, self.address, self.port = parse_syslog_target(target)
        if self.scheme == "local":
            path = LOCAL_SOCKETS.get("linux" if platform.startswith("linux") else platform)
            if path is None:
                raise ValueError(f"no local syslog socket known on {platform}")
            self.scheme, self.address = "unix", path
        self.name = f"syslog {target}" + (f" ({self.address})" if target == "local" else "")
        self.facility = facility
        self._sock: socket.socket | None = None

    def deliver(self, event: Event) -> None:
        line = format_rfc5424(event, self.facility).encode("utf-8")
        try:
            self._send(line)
        except OSError:
            self.close()  # the receiver restarted, or the connection broke: one fresh try
            self._send(line)

    def _send(self, line: bytes) -> None:
        if self._sock is None:
            self._sock = self._connect()
        if self.scheme == "tcp":
            self._sock.sendall(b"%d " % len(line) + line)
        elif self._sock.type == socket.SOCK_STREAM:  # a stream /dev/log: one line per event
            self._sock.sendall(line + b"\n")
        else:
            self._sock.send(line)

    def _connect(self) -> socket.socket:
        if self.scheme == "unix":
            # Datagram first, as syslog(3) and SysLogHandler do; some systems serve a stream.
            for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                sock = socket.socket(socket.AF_UNIX, kind)
                sock.settimeout(TIMEOUT)
                try:
                    sock.connect(self.address)
                    return sock
                except OSError as exc:
                    sock.close()
                    error = exc
            raise error
        kind = socket.SOCK_DGRAM if self.scheme == "udp" else socket.SOCK_STREAM
        family, _, _, _, address = socket.getaddrinfo(self.address, self.port, 0, kind)[0]
        sock = socket.socket(family, kind)
        sock.settimeout(TIMEOUT)  # a TCP collector that stops reading must not hold the thread forever
        try:
            sock.connect(address)  # for UDP: fixes the peer, so send() reports ICMP refusals
        except OSError:
            sock.close()
            raise
        return sock

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
