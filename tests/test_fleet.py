"""Fleet events: the schema, and RFC 5424 syslog to real receivers (UDP, TCP, unix socket)."""

from __future__ import annotations

import dataclasses
import logging
import socket
import threading
import time
from datetime import datetime
from pathlib import Path

import pytest

from agent import __version__, fleet_events
from agent.fleet_events import Event, Reporter, make_event
from agent.forwarding import parse_syslog_target, valid_syslog_target, valid_webhook_url
from agent.forwarding.syslog import SD_ID, SyslogDestination, format_rfc5424
from tests.rfc5424 import UdpReceiver, parse, read_octet_counted
from tests.waiting import wait_for

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.fixture
def receiver():
    r = UdpReceiver()
    yield r
    r.close()


@pytest.fixture
def reporter_factory():
    made = []

    def make(*destinations, user="alice"):
        reporter = Reporter(list(destinations), user=user)
        made.append(reporter)
        return reporter

    yield make
    for reporter in made:
        reporter.close(1.0)


# -- the schema ------------------------------------------------------------------------------


def test_event_holds_exactly_the_documented_fields_and_no_mouse_data():
    fields = [f.name for f in dataclasses.fields(Event)]
    assert fields == ["schema", "id", "event", "time", "host", "user", "agent_version", "pid", "state",
                      "severity", "reason", "score", "threshold"]
    readme = README.read_text()
    section = readme[readme.index("## Reporting to a security team"):]
    for name in fields:  # README says what each field holds
        assert f"`{name}`" in section, f"README does not describe the field {name}"
    for name in fleet_events.EVENTS:  # ... and each event
        assert f"`{name}`" in section, f"README does not describe the event {name}"
    with pytest.raises(TypeError):  # no way to smuggle more in
        fleet_events.emit("locked", "locked", "x", 0.1, 0.5, positions=[(1, 2)])


def test_make_event_fills_who_where_and_bounds_the_reason():
    e = make_event("locked", "locked", "a\nlong\treason " * 100, score=0.3123456789, threshold=0.5,
                   user="alice", now=1_700_000_000.25)
    assert e.event == "locked" and e.user == "alice" and e.state == "locked" and e.severity == "warning"
    assert e.time == "2023-11-14T22:13:20.250000Z"
    assert e.host == socket.gethostname() and e.agent_version == __version__ and len(e.id) == 32
    assert len(e.reason) <= fleet_events.MAX_REASON and "\n" not in e.reason and "\t" not in e.reason
    assert e.score == 0.312346 and e.threshold == 0.5
    with pytest.raises(ValueError, match="unknown fleet event"):
        make_event("lokced", "locked")


def test_emit_without_a_reporter_does_nothing_but_still_rejects_unknown_names():
    fleet_events.stop_reporting()
    fleet_events.emit("paused", "paused", "for 15 min")  # no reporter: nothing happens
    with pytest.raises(ValueError):
        fleet_events.emit("pasued", "paused")


# -- targets ---------------------------------------------------------------------------------


def test_syslog_targets_parse_and_bad_ones_are_refused():
    assert parse_syslog_target("udp://logs.example.com") == ("udp", "logs.example.com", 514)
    assert parse_syslog_target("tcp://10.0.0.5:6514") == ("tcp", "10.0.0.5", 6514)
    assert parse_syslog_target("udp://[::1]:1514") == ("udp", "::1", 1514)
    assert parse_syslog_target("unix:///dev/log") == ("unix", "/dev/log", 0)
    assert parse_syslog_target("local") == ("local", "", 0)
    for bad in ("logs.example.com", "http://x", "udp://", "udp://h:99999", "unix://dev/log", "udp://h/x",
                "tcp://u@h:1", "syslog://h"):
        assert not valid_syslog_target(bad), bad
    assert valid_webhook_url("https://siem.example.com/hook?token=1")
    for bad in ("http://siem.example.com/hook", "https://", "https://u:p@h/x", "ftp://h", "https://h:0x1/"):
        assert not valid_webhook_url(bad), bad


@pytest.mark.parametrize("line, message", [
    ('syslog = "udp:/x"', 'forwarding.syslog: expected udp://host[:port], tcp://host[:port], unix:///path, "local"'),
    ('webhook = "http://siem/x"', "forwarding.webhook: expected an https:// URL without user:password"),
    ('webhook_ca = "ca.pem"', "forwarding.webhook_ca: expected an absolute path to a PEM file"),
    ('webhook_authorization = "Bearer a\\r\\nX-Evil: 1"', "forwarding.webhook_authorization: expected one line"),
    ("webhook_queue = 0", "forwarding.webhook_queue: expected a whole number of events from 1 to 100000"),
    ('sislog = "local"', "unknown key forwarding.sislog (did you mean forwarding.syslog?)"),
])
def test_bad_forwarding_settings_are_one_line_errors(line, message):
    from agent.config import ConfigError, parse_config

    with pytest.raises(ConfigError) as caught:
        parse_config(f"[forwarding]\n{line}\n", source="config.toml")
    text = str(caught.value)
    assert text.startswith("config.toml: ") and message in text and "\n" not in text


# -- RFC 5424 --------------------------------------------------------------------------------


def test_rfc5424_line_parses_with_every_field_and_escapes():
    e = make_event("lock_failed", "alerted", 'no lock: "loginctl" said ] and \\ too', 0.25, 0.5, user="bob",
                   now=1_700_000_000.0)
    line = format_rfc5424(e)
    p = parse(line)
    assert p["pri"] == 4 * 8 + 3  # facility auth, severity error
    assert p["version"] == "1" and p["timestamp"] == e.time and p["hostname"] == e.host
    assert p["app"] == "mouseguard" and p["procid"] == str(e.pid) and p["msgid"] == "lock_failed"
    assert p["sd"]["origin"] == {"software": "mouseguard", "swVersion": __version__}
    sd = p["sd"][SD_ID]
    assert sd["reason"] == 'no lock: "loginctl" said ] and \\ too'  # escaped and back
    assert sd["user"] == "bob" and sd["state"] == "alerted" and sd["id"] == e.id
    assert float(sd["score"]) == 0.25 and float(sd["threshold"]) == 0.5
    assert "could NOT be locked" in p["msg"] and "bob" in p["msg"]


def test_rfc5424_leaves_out_score_and_threshold_when_there_are_none():
    p = parse(format_rfc5424(make_event("agent_started", "protected", user="alice")))
    assert "score" not in p["sd"][SD_ID] and "threshold" not in p["sd"][SD_ID]
    assert p["pri"] == 4 * 8 + 5


def test_events_reach_a_real_udp_receiver(receiver, reporter_factory):
    reporter = reporter_factory(SyslogDestination(receiver.target))
    sent = reporter.emit("locked", "locked", "mean P(genuine) of the last 5 blocks 0.210 < 0.500", 0.21, 0.5)
    reporter.emit("resumed", "protected", "by the user")
    wait_for(lambda: len(receiver.lines) == 2, what="two syslog datagrams")
    first, second = receiver.events()
    assert first["msgid"] == "locked" and second["msgid"] == "resumed"
    sd = first["sd"][SD_ID]
    assert sd["id"] == sent.id and sd["user"] == "alice" and sd["event"] == "locked"
    assert float(sd["score"]) == 0.21 and sd["agent_version"] == __version__
    assert datetime.fromisoformat(first["timestamp"].replace("Z", "+00:00")).timestamp() == pytest.approx(
        time.time(), abs=10)
    assert all(len(line.encode()) < 2048 for line in receiver.lines)


def test_events_reach_a_real_tcp_receiver_octet_counted(reporter_factory):
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    got = []
    t = threading.Thread(target=lambda: got.extend(read_octet_counted(server.accept()[0])), daemon=True)
    t.start()
    destination = SyslogDestination(f"tcp://127.0.0.1:{port}")
    reporter = reporter_factory(destination)
    reporter.emit("paused", "paused", "for 15 min")
    reporter.emit("agent_stopped", "not protecting")
    reporter.close(2.0)  # closes the connection: the receiver sees the end of the stream
    t.join(5)
    server.close()
    assert [parse(line)["msgid"] for line in got] == ["paused", "agent_stopped"]


def test_events_reach_a_real_unix_datagram_socket(tmp_path, reporter_factory):
    path = tmp_path / "log"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(5)
    try:
        reporter = reporter_factory(SyslogDestination(f"unix://{path}"))
        reporter.emit("model_refused", "not protecting", "the SHA-256 of model.onnx does not match")
        p = parse(sock.recv(65536).decode())
        assert p["msgid"] == "model_refused" and "SHA-256" in p["sd"][SD_ID]["reason"]
    finally:
        sock.close()


def test_local_means_the_platforms_log_socket():
    assert SyslogDestination("local", platform="linux").address == "/dev/log"
    assert SyslogDestination("local", platform="darwin").address == "/var/run/syslog"


def test_a_receiver_that_restarts_is_reached_again(reporter_factory):
    receiver = UdpReceiver()
    port = receiver.port
    reporter = reporter_factory(SyslogDestination(receiver.target))
    reporter.emit("paused", "paused")
    wait_for(lambda: receiver.lines, what="the first datagram")
    receiver.close()
    reporter.emit("resumed", "protected")  # lost (nobody listens), perhaps refused by ICMP
    reporter.flush(2)
    again = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    again.bind(("127.0.0.1", port))
    again.settimeout(5)
    try:
        reporter.emit("locked", "locked")
        reporter.flush(2)
        reporter.emit("agent_stopped", "not protecting")  # the socket reopened after a refusal
        names = set()
        deadline = time.monotonic() + 5
        while "agent_stopped" not in names and time.monotonic() < deadline:
            names.add(parse(again.recv(65536).decode())["msgid"])
        assert "agent_stopped" in names
    finally:
        again.close()


# -- failures: never blocking, logged once ---------------------------------------------------


class Hanging(fleet_events.Destination):
    name = "hanging"

    def __init__(self):
        self.release = threading.Event()

    def deliver(self, event):
        self.release.wait(30)


class Broken(fleet_events.Destination):
    name = "broken"

    def __init__(self):
        self.ok = False
        self.got = []

    def deliver(self, event):
        if not self.ok:
            raise ConnectionRefusedError("connection refused")
        self.got.append(event.event)


def test_emit_never_blocks_on_a_hanging_destination_and_others_still_get_events(receiver, reporter_factory):
    hanging = Hanging()
    reporter = reporter_factory(hanging, SyslogDestination(receiver.target))
    t0 = time.monotonic()
    for _ in range(fleet_events.MEMORY_QUEUE + 50):  # more than the memory queue holds: dropped, not waited
        reporter.emit("locked", "locked")
    assert time.monotonic() - t0 < 2.0
    wait_for(lambda: len(receiver.lines) >= 100, what="the syslog receiver to get events meanwhile")
    hanging.release.set()


def test_failures_are_logged_once_and_recovery_once(caplog, reporter_factory):
    broken = Broken()
    reporter = reporter_factory(broken)
    with caplog.at_level(logging.WARNING, logger="mouseguard.fleet"):
        for _ in range(5):
            reporter.emit("locked", "locked")
        reporter.flush(2)
        broken.ok = True
        reporter.emit("resumed", "protected")
        reporter.flush(2)
    lines = [r.getMessage() for r in caplog.records if r.name == "mouseguard.fleet"]
    assert len([m for m in lines if "failed" in m]) == 1
    recovered = [m for m in lines if "works again" in m]
    assert recovered == ["fleet reporting to broken works again (5 events lost meanwhile)"]
    assert broken.got == ["resumed"]


# -- the systemd journal (syslog = "local" where journald runs) ------------------------------


def parse_journal(datagram: bytes) -> dict[str, str]:
    """The native protocol, read from the protocol's description, including the binary form."""
    import struct

    fields, i = {}, 0
    while i < len(datagram):
        end = datagram.index(b"\n", i)
        line = datagram[i:end]
        if b"=" in line:
            name, value = line.split(b"=", 1)
            i = end + 1
        else:
            name, (size,) = line, struct.unpack("<Q", datagram[end + 1:end + 9])
            value = datagram[end + 9:end + 9 + size]
            assert datagram[end + 9 + size:end + 10 + size] == b"\n"
            i = end + 10 + size
        fields[name.decode()] = value.decode()
    return fields


def test_local_uses_the_journals_native_protocol_where_the_journal_runs(tmp_path, reporter_factory):
    from agent.config import ForwardingConfig
    from agent.forwarding import destinations
    from agent.forwarding.journald import JournalDestination, encode

    path = tmp_path / "journal.socket"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(5)
    try:
        chosen = destinations(ForwardingConfig(syslog="local"), tmp_path, platform="linux",
                              journal_socket=str(path))
        assert [type(d) for d in chosen] == [JournalDestination]
        reporter = reporter_factory(*chosen)
        sent = reporter.emit("locked", "locked", "mean P(genuine) of the last 5 blocks 0.210 < 0.500", 0.21, 0.5)
        fields = parse_journal(sock.recv(65536))
        assert fields["PRIORITY"] == "4" and fields["SYSLOG_FACILITY"] == "4"
        assert fields["SYSLOG_IDENTIFIER"] == "mouseguard"
        assert fields["MOUSEGUARD_EVENT"] == "locked" and fields["MOUSEGUARD_ID"] == sent.id
        assert fields["MOUSEGUARD_USER"] == "alice" and fields["MOUSEGUARD_STATE"] == "locked"
        assert float(fields["MOUSEGUARD_SCORE"]) == 0.21 and float(fields["MOUSEGUARD_THRESHOLD"]) == 0.5
        assert fields["MESSAGE"].startswith("someone else was at the mouse: the session was locked (user alice)")
        assert "MOUSEGUARD_PID" in fields and "MOUSEGUARD_TIME" in fields
        # a value with a newline goes in the binary form, and comes back whole
        assert parse_journal(encode([("A", "one\ntwo"), ("B", "x")])) == {"A": "one\ntwo", "B": "x"}
    finally:
        sock.close()
    # without a journal, local is the log socket, with RFC 5424 lines
    chosen = destinations(ForwardingConfig(syslog="local"), tmp_path, platform="linux",
                          journal_socket=str(tmp_path / "none"))
    assert [(type(d), d.address) for d in chosen] == [(SyslogDestination, "/dev/log")]


# -- interoperability: a real rsyslog parses the lines ---------------------------------------

RSYSLOG_CONF = """
global(workDirectory="{dir}")
module(load="imudp")
module(load="mmpstrucdata")
input(type="imudp" address="127.0.0.1" port="{port}")
template(name="fields" type="string" string="%protocol-version%|%app-name%|%procid%|%msgid%|%syslogfacility%|\
%syslogseverity%|%$!rfc5424-sd!mouseguard@32473!user%|%$!rfc5424-sd!mouseguard@32473!score%|\
%$!rfc5424-sd!mouseguard@32473!reason%|%msg%\\n")
action(type="mmpstrucdata")
action(type="omfile" file="{dir}/out.log" template="fields")
"""


def test_rsyslog_parses_the_lines_and_their_structured_data(tmp_path, reporter_factory):
    """Where rsyslog is installed (CI installs it): its RFC 5424 parser and mmpstrucdata read every
    field back, escapes included — the formatter agrees with a real collector, not only with our
    own parser."""
    import shutil
    import subprocess

    rsyslogd = shutil.which("rsyslogd") or ("/usr/sbin/rsyslogd" if Path("/usr/sbin/rsyslogd").exists() else None)
    if rsyslogd is None:
        pytest.skip("rsyslogd is not installed (Debian: rsyslog)")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    conf = tmp_path / "rsyslog.conf"
    conf.write_text(RSYSLOG_CONF.format(dir=tmp_path, port=port))
    out = tmp_path / "out.log"
    proc = subprocess.Popen([rsyslogd, "-n", "-f", str(conf), "-i", str(tmp_path / "rsyslogd.pid")],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        reporter = reporter_factory(SyslogDestination(f"udp://127.0.0.1:{port}"))
        deadline = time.monotonic() + 15
        while not out.exists() and time.monotonic() < deadline:  # UDP: send until rsyslog listens
            reporter.emit("agent_started", "protected")
            time.sleep(0.2)
        reporter.emit("locked", "locked", 'mean "P" ] of \\ the last 5 blocks 0.210 < 0.500', 0.21, 0.5)
        wait_for(lambda: "|locked|" in out.read_text(), what="rsyslog to write the lock")
    finally:
        proc.terminate()
        proc.wait(10)
    line = next(x for x in out.read_text().splitlines() if "|locked|" in x)
    version, app, procid, msgid, facility, severity, user, score, reason, msg = line.split("|", 9)
    assert (version, app, msgid, facility, severity) == ("1", "mouseguard", "locked", "4", "4")
    assert procid.isdigit() and user == "alice" and float(score) == 0.21
    assert reason == 'mean "P" ] of \\ the last 5 blocks 0.210 < 0.500'
    assert msg.startswith("someone else was at the mouse: the session was locked (user alice)")
