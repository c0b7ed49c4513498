"""The Windows Event Log destination (agent/forwarding/windows_eventlog.py).

advapi32 cannot exist on the Linux CI, so a fake library stands in for it, injected where the
module keeps the loaded one: it receives exactly the ctypes values the real ReportEventW would,
and the tests read what was marshalled (entry type, event id, the insertion string) and how
failures of the real calls are handled. Everything around it (the reporter, the config, the
destinations) is real.
"""

from __future__ import annotations

import ctypes
import logging
from ctypes import wintypes
import re
from types import SimpleNamespace

import pytest

from agent import fleet_events
from agent.fleet_events import Reporter, make_event
from agent.forwarding import TargetError, destinations
from agent.forwarding import windows_eventlog as wel


class FakeAdvapi32:
    """RegisterEventSourceW / ReportEventW / DeregisterEventSource with the real return
    conventions: a handle or NULL (None); a BOOL (0 on failure)."""

    def __init__(self):
        self.registered, self.reports, self.deregistered = [], [], []
        self.register_fails = 0
        self.report_fails = 0
        self._next = 0x100

    def RegisterEventSourceW(self, server, source):  # noqa: N802 - the Windows name
        self.registered.append((server, source))
        if self.register_fails:
            self.register_fails -= 1
            return None
        self._next += 4
        return self._next

    def ReportEventW(self, handle, wtype, category, event_id, sid, nstrings, data_size, strings, raw):  # noqa: N802
        if self.report_fails:
            self.report_fails -= 1
            return 0
        self.reports.append({"handle": handle, "type": wtype, "category": category, "id": event_id, "sid": sid,
                             "nstrings": nstrings, "data_size": data_size, "strings": strings, "raw": raw})
        return 1

    def DeregisterEventSource(self, handle):  # noqa: N802
        self.deregistered.append(handle)
        return 1


@pytest.fixture
def advapi32(monkeypatch):
    fake = FakeAdvapi32()
    monkeypatch.setattr(wel, "_advapi32", fake)
    monkeypatch.setattr(wel, "_last_error", lambda: 5)  # ERROR_ACCESS_DENIED
    return fake


def _event(name="locked", reason="mean P(genuine) of the last 5 blocks 0.212 < 0.500", **kw):
    return make_event(name, "locked", reason, kw.get("score", 0.212), kw.get("threshold", 0.5),
                      user="alice", host="desk-17")


def test_an_event_is_marshalled_as_reporteventw_takes_it(advapi32):
    dest = wel.WindowsEventLogDestination()
    event = _event()
    dest.deliver(event)
    assert advapi32.registered == [(None, "mouseguard")]
    (call,) = advapi32.reports
    assert call["handle"] == 0x104
    for name in ("type", "category", "nstrings"):
        assert isinstance(call[name], wintypes.WORD)
    for name in ("id", "data_size"):
        assert isinstance(call[name], wintypes.DWORD)
    assert call["type"].value == wel.EVENTLOG_WARNING_TYPE and call["id"].value == 10
    assert call["category"].value == 0 and call["nstrings"].value == 1 and call["data_size"].value == 0
    assert call["sid"] is None and call["raw"] is None
    assert len(call["strings"]) == 1 and isinstance(call["strings"], ctypes.Array)
    assert call["strings"]._type_ is wintypes.LPCWSTR  # what POINTER(LPCWSTR) accepts
    text = call["strings"][0]
    lines = text.split("\r\n")
    assert lines[0] == ("someone else was at the mouse: the session was locked (user alice): "
                        "mean P(genuine) of the last 5 blocks 0.212 < 0.500")
    fields = dict(line.split("=", 1) for line in lines[2:])
    assert list(fields) == list(event.to_json_dict())  # every field, in the schema's order
    assert fields["event"] == "locked" and fields["id"] == event.id and fields["host"] == "desk-17"
    assert fields["score"] == "0.212" and fields["threshold"] == "0.5" and fields["severity"] == "warning"


@pytest.mark.parametrize("name, entry_type", [
    ("lock_failed", wel.EVENTLOG_ERROR_TYPE), ("model_refused", wel.EVENTLOG_ERROR_TYPE),
    ("paused", wel.EVENTLOG_WARNING_TYPE), ("agent_started", wel.EVENTLOG_INFORMATION_TYPE),
    ("model_updated", wel.EVENTLOG_INFORMATION_TYPE),
])
def test_the_entry_type_follows_the_events_severity(advapi32, name, entry_type):
    dest = wel.WindowsEventLogDestination()
    dest.deliver(make_event(name, "protected", user="alice"))
    assert advapi32.reports[-1]["type"].value == entry_type
    assert advapi32.reports[-1]["id"].value == wel.EVENT_IDS[name]


def test_event_ids_are_fixed_and_distinct():
    assert set(wel.EVENT_IDS) == set(fleet_events.EVENTS)
    assert len(set(wel.EVENT_IDS.values())) == len(wel.EVENT_IDS)


def test_the_source_is_registered_once_and_deregistered_at_close(advapi32):
    dest = wel.WindowsEventLogDestination()
    for name in ("agent_started", "paused", "resumed"):
        dest.deliver(make_event(name, "protected", user="alice"))
    assert len(advapi32.registered) == 1 and {c["handle"] for c in advapi32.reports} == {0x104}
    dest.close()
    dest.close()  # idempotent
    assert advapi32.deregistered == [0x104]


def test_a_nul_or_an_overlong_text_cannot_cut_the_entry(advapi32):
    event = _event(reason="a\0b")
    assert "\0" not in wel.entry_text(event) and "a b" in wel.entry_text(event)
    long = make_event("paused", "paused", "x" * 400, user="u" * 40000)
    text = wel.entry_text(long)
    assert len(text) == wel.MAX_STRING and text.endswith("...")


def test_a_failed_registration_is_one_line_with_the_windows_error(advapi32):
    advapi32.register_fails = 2
    dest = wel.WindowsEventLogDestination()
    with pytest.raises(OSError, match=r"RegisterEventSourceW\('mouseguard'\) failed: Windows error 5"):
        dest.deliver(_event())
    assert advapi32.reports == [] and len(advapi32.registered) == 2  # tried once more
    dest.deliver(_event())  # the service is back
    assert len(advapi32.reports) == 1


def test_a_failed_report_reopens_the_source_once(advapi32):
    dest = wel.WindowsEventLogDestination()
    dest.deliver(_event())
    advapi32.report_fails = 1
    dest.deliver(_event())  # a dead handle: deregistered, registered again, delivered
    assert advapi32.deregistered == [0x104] and len(advapi32.registered) == 2
    assert [c["handle"] for c in advapi32.reports] == [0x104, 0x108]
    advapi32.report_fails = 2
    with pytest.raises(OSError, match="ReportEventW failed: Windows error 5"):
        dest.deliver(_event())


def test_a_failing_event_log_is_logged_once_through_the_reporter(advapi32, caplog):
    advapi32.register_fails = 100
    reporter = Reporter([wel.WindowsEventLogDestination()], user="alice")
    try:
        with caplog.at_level(logging.ERROR, logger="mouseguard.fleet"):
            for _ in range(3):
                reporter.emit("locked", "locked")
            reporter.flush(2)
    finally:
        reporter.close(1.0)
    failed = [r.getMessage() for r in caplog.records if "failed" in r.getMessage()]
    assert len(failed) == 1
    assert re.search(r"the Windows Event Log failed: RegisterEventSourceW\('mouseguard'\) failed: "
                     r"Windows error 5", failed[0])


def test_off_windows_the_destination_is_a_one_line_error(monkeypatch):
    monkeypatch.setattr(wel, "_advapi32", None)
    with pytest.raises(wel.EventLogError) as caught:
        wel.WindowsEventLogDestination()
    assert str(caught.value) == wel.ONLY_ON_WINDOWS and "\n" not in str(caught.value)


def _forwarding(**kw):
    return SimpleNamespace(**{"syslog": "", "eventlog": False, "webhook": "", "webhook_ca": "",
                              "webhook_authorization": "", "webhook_queue": 10, **kw})


def test_which_settings_choose_the_event_log(advapi32, tmp_path):
    from agent.forwarding.syslog import SyslogDestination

    (found,) = destinations(_forwarding(syslog="local"), tmp_path, platform="win32")
    assert isinstance(found, wel.WindowsEventLogDestination)
    (found,) = destinations(_forwarding(syslog="local", eventlog=True), tmp_path, platform="win32")
    assert isinstance(found, wel.WindowsEventLogDestination)  # once, not twice
    both = destinations(_forwarding(syslog="udp://127.0.0.1:9", eventlog=True), tmp_path, platform="win32")
    assert [type(d) for d in both] == [wel.WindowsEventLogDestination, SyslogDestination]
    for d in both:
        d.close()
    with pytest.raises(TargetError, match=r"^forwarding.eventlog = true: the Windows Event Log exists only on "
                                          r"Windows"):
        destinations(_forwarding(eventlog=True), tmp_path, platform="linux")


def test_the_eventlog_key_is_a_boolean():
    from agent.config import ConfigError, parse_config

    assert parse_config("[forwarding]\neventlog = true\n", source="c.toml").forwarding.eventlog is True
    with pytest.raises(ConfigError, match=r"^c.toml: forwarding.eventlog: expected true or false"):
        parse_config('[forwarding]\neventlog = "yes"\n', source="c.toml")
