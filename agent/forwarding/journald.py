"""Fleet events to the systemd journal over its native protocol, for ``syslog = "local"`` on a
Linux machine whose journal runs.

Why not an RFC 5424 line on /dev/log there: journald (which owns /dev/log on systemd machines)
does not parse RFC 5424 (systemd issue 19251), and neither does rsyslog's /dev/log input by
default, so the structured data would end up inside one message string. The journal's own
protocol keeps every field of the event as a field of the entry: ``journalctl
MOUSEGUARD_EVENT=locked`` finds the locks, and rsyslog's imjournal or a journal shipper
(journal-upload, Vector, Fluent Bit) forwards them with their fields.

The protocol (systemd.io/JOURNAL_NATIVE_PROTOCOL): one datagram per entry to
/run/systemd/journal/socket, ``NAME=value`` lines; a value holding a newline is sent as
``NAME\\n`` + its length as 64-bit little-endian + the value + ``\\n``. journald adds the
sender's pid, uid and executable itself from the socket's credentials.
"""

from __future__ import annotations

import socket
import struct

from agent.fleet_events import SEVERITY, Destination, Event
from agent.forwarding.syslog import APP_NAME, FACILITY_AUTH, SUMMARIES

JOURNAL_SOCKET = "/run/systemd/journal/socket"


def journal_fields(event: Event) -> list[tuple[str, str]]:
    summary = SUMMARIES.get(event.event, event.event)
    fields = [
        ("MESSAGE", f"{summary} (user {event.user})" + (f": {event.reason}" if event.reason else "")),
        ("PRIORITY", str(SEVERITY[event.event])),
        ("SYSLOG_FACILITY", str(FACILITY_AUTH)),
        ("SYSLOG_IDENTIFIER", APP_NAME),
    ]
    for name, value in event.to_json_dict().items():
        if value is not None:
            fields.append((f"MOUSEGUARD_{name.upper()}", f"{value:.6g}" if isinstance(value, float) else str(value)))
    return fields


def encode(fields: list[tuple[str, str]]) -> bytes:
    out = bytearray()
    for name, value in fields:
        data = value.encode("utf-8")
        if b"\n" in data:
            out += name.encode() + b"\n" + struct.pack("<Q", len(data)) + data + b"\n"
        else:
            out += name.encode() + b"=" + data + b"\n"
    return bytes(out)


class JournalDestination(Destination):
    def __init__(self, path: str = JOURNAL_SOCKET):
        self.path = path
        self.name = f"the systemd journal ({path})"
        self._sock: socket.socket | None = None

    def deliver(self, event: Event) -> None:
        payload = encode(journal_fields(event))
        try:
            self._send(payload)
        except OSError:
            self.close()  # journald restarted: one fresh try
            self._send(payload)

    def _send(self, payload: bytes) -> None:
        if self._sock is None:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._sock.settimeout(5.0)
        self._sock.sendto(payload, self.path)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
