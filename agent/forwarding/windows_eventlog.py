"""The Windows Event Log as a fleet destination: NOT IMPLEMENTED YET.

``syslog = "local"`` on Windows means the Event Log. Writing there properly needs an event
source registered under HKLM (an administrator's step at install time, with a message file),
and ReportEventW through ctypes; neither is written nor testable on the Linux CI yet. Until it
is, this destination says so in the log once, and each event it is given counts as lost (the
courier logs the failure once per outage), rather than pretending the events went somewhere.
On Windows today, use the webhook, or a syslog collector over udp:// or tcp://.
"""

from __future__ import annotations

from agent.fleet_events import Destination, Event

NOT_IMPLEMENTED = ("the Windows Event Log is not supported yet: no event is written there; "
                   "use forwarding.webhook or forwarding.syslog = \"udp://host:514\"")


class WindowsEventLogDestination(Destination):
    name = "Windows Event Log"

    def deliver(self, event: Event) -> None:
        raise NotImplementedError(NOT_IMPLEMENTED)
