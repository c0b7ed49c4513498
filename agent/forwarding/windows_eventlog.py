"""Fleet events to the Windows Event Log (the Application log, source ``mouseguard``), through
ctypes on advapi32: ``RegisterEventSourceW`` once, ``ReportEventW`` per event,
``DeregisterEventSource`` at the end.

Why ctypes and not pywin32: three calls do not justify a compiled dependency of the agent (and
pywin32's post-install step) on every Windows desk; the stdlib reaches advapi32 directly.

What a security team sees: the event's severity as the entry's type (error, warning,
information), a fixed event id per event name (:data:`EVENT_IDS`, so a collector or a
"Custom View" can filter on locks without parsing text), and one insertion string: the same
sentence the syslog line carries, then every field of the event as ``name=value`` lines — the
structured data, in a form Windows Event Forwarding and SIEM agents ship as is.

The source: writing needs no administrator, but an unregistered source's entries open in Event
Viewer with "The description for Event ID ... cannot be found" before the text. An administrator
registers it once (docs/fleet.md: ``New-EventLog -LogName Application -Source mouseguard``, whose
message file prints the insertion string alone).

The library is looked up when the destination is built, not at import: this module imports on
every OS (the config and its tests do), and on a machine without advapi32 building the
destination is the one-line error. Tests inject a fake library as :data:`_advapi32`: the only way
to check what is marshalled where the real one cannot exist.
"""

from __future__ import annotations

import ctypes
import sys

from agent.fleet_events import SEVERITY, Destination, Event
from agent.forwarding.syslog import SUMMARIES

SOURCE = "mouseguard"

#: winnt.h: the entry types ReportEventW takes.
EVENTLOG_ERROR_TYPE = 0x0001
EVENTLOG_WARNING_TYPE = 0x0002
EVENTLOG_INFORMATION_TYPE = 0x0004
#: The fleet severity (RFC 5424 numbers, agent.fleet_events.SEVERITY) -> entry type. Notice has
#: no Windows counterpart; information is the nearest.
ENTRY_TYPES = {3: EVENTLOG_ERROR_TYPE, 4: EVENTLOG_WARNING_TYPE, 5: EVENTLOG_INFORMATION_TYPE}

#: One id per event, fixed (docs/fleet.md lists them): tens by kind, so a filter can take a range.
EVENT_IDS = {
    "agent_started": 1,
    "agent_stopped": 2,
    "locked": 10,
    "lock_failed": 11,
    "alerted": 12,
    "impostor_logged": 13,
    "model_refused": 20,
    "model_updated": 21,
    "protection_stopped": 30,
    "protection_restored": 31,
    "paused": 40,
    "resumed": 41,
}
assert set(EVENT_IDS) == set(SEVERITY), "every fleet event needs its Event Log id"

#: ReportEventW refuses an insertion string longer than this (characters).
MAX_STRING = 31839

ONLY_ON_WINDOWS = ("the Windows Event Log exists only on Windows; on this machine use "
                   "forwarding.syslog = \"local\" (the system log) or a collector")

#: advapi32, once loaded (or a test's fake).
_advapi32 = None


class EventLogError(ValueError):
    """The Event Log cannot be used here (not Windows, no advapi32): raised when the destination
    is built, so the agent stops at start-up with one line. A ValueError, like the other
    destinations' set-up errors (agent.commands turns it into ``[forwarding]: ...``)."""


def _last_error() -> int:
    """GetLastError as ctypes saved it after the call (``use_last_error``); 0 off Windows."""
    get = getattr(ctypes, "get_last_error", None)
    return int(get()) if get is not None else 0


def _describe_error(code: int) -> str:
    text = ""
    format_error = getattr(ctypes, "FormatError", None)
    if code and format_error is not None:
        text = ": " + " ".join(str(format_error(code)).split())
    return f"Windows error {code}{text}"


def load_advapi32():
    """advapi32 with the three functions' signatures set, or EventLogError off Windows."""
    global _advapi32
    if _advapi32 is not None:
        return _advapi32
    if sys.platform != "win32" or not hasattr(ctypes, "WinDLL"):
        raise EventLogError(ONLY_ON_WINDOWS)
    from ctypes import wintypes

    try:
        lib = ctypes.WinDLL("advapi32", use_last_error=True)
    except OSError as exc:
        raise EventLogError(f"cannot load advapi32 for the Windows Event Log: {exc}") from None
    lib.RegisterEventSourceW.argtypes = (wintypes.LPCWSTR, wintypes.LPCWSTR)
    lib.RegisterEventSourceW.restype = wintypes.HANDLE
    lib.ReportEventW.argtypes = (wintypes.HANDLE, wintypes.WORD, wintypes.WORD, wintypes.DWORD, ctypes.c_void_p,
                                 wintypes.WORD, wintypes.DWORD, ctypes.POINTER(wintypes.LPCWSTR), ctypes.c_void_p)
    lib.ReportEventW.restype = wintypes.BOOL
    lib.DeregisterEventSource.argtypes = (wintypes.HANDLE,)
    lib.DeregisterEventSource.restype = wintypes.BOOL
    _advapi32 = lib
    return lib


def _clean(text: str) -> str:
    # A NUL ends a wide string early: the rest of the entry would vanish without a trace.
    return str(text).replace("\0", " ")


def entry_text(event: Event) -> str:
    """The insertion string: the sentence, then the fields (None as an empty value)."""
    summary = SUMMARIES.get(event.event, event.event)
    head = f"{summary} (user {event.user})" + (f": {event.reason}" if event.reason else "")
    fields = [f"{name}={'' if value is None else (f'{value:.6g}' if isinstance(value, float) else value)}"
              for name, value in event.to_json_dict().items()]
    text = _clean("\r\n".join([head, ""] + fields))
    return text if len(text) <= MAX_STRING else text[: MAX_STRING - 3] + "..."


class WindowsEventLogDestination(Destination):
    name = "the Windows Event Log"

    def __init__(self, source: str = SOURCE):
        self.source = source
        self._lib = load_advapi32()
        self._handle = None

    def deliver(self, event: Event) -> None:
        try:
            self._report(event)
        except OSError:
            self.close()  # the Event Log service restarted: its old handle is dead; one fresh try
            self._report(event)

    def _open(self):
        if self._handle is None:
            handle = self._lib.RegisterEventSourceW(None, self.source)
            if not handle:
                raise OSError(f"RegisterEventSourceW({self.source!r}) failed: {_describe_error(_last_error())}")
            self._handle = handle
        return self._handle

    def _report(self, event: Event) -> None:
        from ctypes import wintypes

        handle = self._open()
        strings = (wintypes.LPCWSTR * 1)(entry_text(event))
        ok = self._lib.ReportEventW(handle, wintypes.WORD(ENTRY_TYPES[SEVERITY[event.event]]), wintypes.WORD(0),
                                    wintypes.DWORD(EVENT_IDS[event.event]), None, wintypes.WORD(1),
                                    wintypes.DWORD(0), strings, None)
        if not ok:
            raise OSError(f"ReportEventW failed: {_describe_error(_last_error())}")

    def close(self) -> None:
        handle, self._handle = self._handle, None
        if handle is not None:
            self._lib.DeregisterEventSource(handle)  # nothing to do if it fails: the handle is gone
