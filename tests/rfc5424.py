"""A strict parser of RFC 5424 lines for the tests, written from the RFC's ABNF (section 6), not
from the formatter under test, plus real receivers (UDP, TCP with octet counting, unix datagram)."""

from __future__ import annotations

import re
import socket
import threading

HEADER = re.compile(
    r"<(?P<pri>\d{1,3})>(?P<version>[1-9]\d{0,2}) "
    r"(?P<timestamp>-|\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,6})?(?:Z|[+-]\d\d:\d\d)) "
    r"(?P<hostname>[!-~]{1,255}) (?P<app>[!-~]{1,48}) (?P<procid>[!-~]{1,128}) (?P<msgid>[!-~]{1,32}) "
)
SD_NAME = re.compile(r'[!-~]{1,32}')


def parse(line: str) -> dict:
    """{pri, version, timestamp, hostname, app, procid, msgid, sd: {id: {param: value}}, msg}."""
    m = HEADER.match(line)
    assert m, f"not an RFC 5424 header: {line[:120]!r}"
    out = m.groupdict()
    rest = line[m.end():]
    sd: dict[str, dict[str, str]] = {}
    if rest.startswith("-"):
        rest = rest[1:]
    else:
        while rest.startswith("["):
            i = 1
            sd_id = re.match(r'[^ =\]"]{1,32}', rest[i:]).group(0)
            i += len(sd_id)
            params = {}
            while rest[i] == " ":
                i += 1
                name = re.match(r'[^ =\]"]{1,32}', rest[i:]).group(0)
                i += len(name)
                assert rest[i:i + 2] == '="', f"bad SD-PARAM at {rest[i:i + 20]!r}"
                i += 2
                value = []
                while rest[i] != '"':
                    if rest[i] == "\\" and rest[i + 1] in '"\\]':
                        value.append(rest[i + 1])
                        i += 2
                    else:
                        assert rest[i] != "]", "an unescaped ] inside a PARAM-VALUE"
                        value.append(rest[i])
                        i += 1
                params[name] = "".join(value)
                i += 1
            assert rest[i] == "]", f"SD-ELEMENT not closed at {rest[i:i + 20]!r}"
            assert sd_id not in sd, "an SD-ID twice"
            sd[sd_id] = params
            rest = rest[i + 1:]
    assert sd or line[m.end()] == "-"
    assert rest == "" or rest.startswith(" "), "no space between STRUCTURED-DATA and MSG"
    out["sd"] = sd
    out["msg"] = rest[1:]
    out["pri"] = int(out["pri"])
    return out


class UdpReceiver:
    """A real syslog receiver: a UDP socket on 127.0.0.1 collecting datagrams."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.lines: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @property
    def target(self) -> str:
        return f"udp://127.0.0.1:{self.port}"

    def _run(self):
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            self.lines.append(data.decode("utf-8"))

    def events(self) -> list[dict]:
        return [parse(line) for line in list(self.lines)]

    def names(self) -> list[str]:
        return [e["msgid"] for e in self.events()]

    def close(self):
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


def read_octet_counted(conn: socket.socket) -> list[str]:
    """RFC 6587 octet-counting frames from a TCP connection until it closes."""
    data = b""
    while chunk := conn.recv(65536):
        data += chunk
    lines = []
    while data:
        length, _, data = data.partition(b" ")
        n = int(length)
        lines.append(data[:n].decode("utf-8"))
        data = data[n:]
    return lines
