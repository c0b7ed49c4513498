"""Pointer input that a program made, told apart from a hand's (issue 19, item 5).

Someone at the owner's desk could replay the owner's recorded movement with ``xdotool`` and
pass every model. The movement itself looks right; where it comes from does not:

* **Windows and macOS** flag synthetic input themselves (``LLMHF_INJECTED``, the event
  source of ``CGEventPost``); pynput hands the flag to the hook, which stores it beside each
  event in the ring buffer.
* **X11** gives the hook (pynput's RECORD listener) nothing of the kind. XInput2 does: every
  *raw* event names the slave device it came from, and programs inject through the server's
  "Virtual core XTEST pointer". Raw events reach the root window whatever window is under the
  pointer and whoever grabs it, so :class:`XInputSources` watches them on its own X connection.
  Absolute XTest motion (``xdotool mousemove X Y``, the replay an attacker needs) and
  ``XWarpPointer`` make *no* raw event at all (seen on Xvfb and Xorg), so motion the hook sees
  while no physical device moved is counted as made by a program too.

:class:`InjectedInputJudge` counts both and says when there is enough for an alarm: a few
events within a few seconds, so an application warping the pointer once (a dialog centring it)
is not an attack. What it cannot see: a program that writes to ``/dev/uinput`` (root or the
``input`` group) makes a device the server takes for hardware; and absolute XTest moves made
while a hand keeps the real mouse moving pass the motion rule (XTest clicks and relative moves
are still named by their device). docs/threat-model.md says so.
"""

from __future__ import annotations

import contextlib
import logging
import select
import sys
import threading
from collections import deque
from typing import Callable

import numpy as np

from agent.errors import one_line
from agent.events import DRAG, MOVE

log = logging.getLogger(__name__)

#: An alarm needs this many injected pointer events within WITHIN_SECONDS: one click of an
#: accessibility tool or a single warp is not someone replaying movement (xdotool sends
#: dozens a second).
MIN_EVENTS = 5
WITHIN_SECONDS = 5.0
#: Motion the hook saw counts as a hand's when a physical device moved within this many
#: seconds of it: the hook and the watcher read the same server over two connections, on two
#: threads that a loaded machine may run late. (Generous: a replay moves no device at all.)
TOLERANCE_SECONDS = 1.0
#: Physical motion older than this is forgotten (the hook's motion is judged within ~1 s).
KEEP_SECONDS = 10.0

XTEST_MARK = "XTEST"  # Xorg and Xvfb name the devices "<master> XTEST pointer|keyboard"
FLAGGED = "input the operating system flagged as injected"
UNMOVED = "pointer motion while no input device moved (XTest or a pointer warp)"


class InjectedInputJudge:
    """Counts pointer events a program made and says when they are an alarm.

    Fed on the pipeline's thread with each drain of the ring buffer (:meth:`feed`) and asked
    after it (:meth:`verdict`). ``sources`` is an :class:`XInputSources` on X11, or None where
    the OS flags injected input itself.
    """

    def __init__(self, sources: XInputSources | None = None, min_events: int = MIN_EVENTS,
                 within: float = WITHIN_SECONDS, tolerance: float = TOLERANCE_SECONDS):
        self.sources = sources
        self.min_events = min_events
        self.within = within
        self.tolerance = tolerance
        self._pending: deque[float] = deque(maxlen=4096)  # hook motion not yet compared (X11)
        self._seen: deque[tuple[float, str]] = deque()  # injected events: (time, where from)

    def feed(self, events: np.ndarray, injected: np.ndarray | None) -> None:
        """The hook's events of one drain, and the OS's injected flag of each."""
        if len(events) == 0:
            return
        if injected is not None and injected.any():
            self._seen.extend((float(t), FLAGGED) for t in events["t"][injected])
        if self.sources is not None:
            motion = np.isin(events["state"], (MOVE, DRAG))
            if injected is not None:
                motion &= ~injected
            self._pending.extend(events["t"][motion].tolist())

    def verdict(self, now: float) -> str | None:
        """Why the input up to ``now`` was made by a program, once it is enough for an alarm."""
        if self.sources is not None:
            self._seen.extend((t, f"the {name!r} device") for t, name in self.sources.take_xtest())
            self._compare_motion()
        while self._seen and self._seen[0][0] < now - self.within:
            self._seen.popleft()
        if len(self._seen) < self.min_events:
            return None
        where = sorted({what for _, what in self._seen})
        reason = (f"pointer input made by a program, not a hand: {len(self._seen)} events within "
                  f"{self.within:g} s ({'; '.join(where)})")
        self.clear()
        return reason

    def clear(self) -> None:
        """Forget what was counted (after an alarm, or while nothing is judged)."""
        self._seen.clear()
        self._pending.clear()

    def _compare_motion(self) -> None:
        """Hook motion with no physical device moving near it: compared only once the watcher
        has read the server past it, so a slow watcher thread does not look like an attack."""
        ready = self.sources.caught_up() - self.tolerance
        times = []
        while self._pending and self._pending[0] <= ready:
            times.append(self._pending.popleft())
        if not times:
            return
        physical = self.sources.physical_motion()
        t = np.asarray(times)
        if len(physical):
            i = np.clip(np.searchsorted(physical, t), 1, len(physical)) - 1
            near = np.abs(physical[i] - t) <= self.tolerance
            j = np.minimum(i + 1, len(physical) - 1)
            near |= np.abs(physical[j] - t) <= self.tolerance
        else:
            near = np.zeros(len(t), dtype=bool)
        self._seen.extend((float(x), UNMOVED) for x in t[~near])


class SourcesUnavailable(RuntimeError):
    """XInput2 cannot be watched on this display; the message says why in one line."""


class XInputSources:
    """Which device every pointer event came from, read from XInput2 raw events (X11).

    A thread with its own X connection: raw motion, button and touch events of every master
    device, each naming its source slave device. Raw events of an XTEST device are injected;
    the times of the others' motion tell the hook's motion that a hand made.
    """

    def __init__(self, clock: Callable[[], float], display_name: str | None = None):
        self.clock = clock
        self.display_name = display_name
        self.error = ""  # why watching stopped, once it has
        self._lock = threading.Lock()
        self._physical: deque[float] = deque()
        self._xtest: list[tuple[float, str]] = []
        self._caught_up = float("-inf")
        self._devices: dict[int, str] = {}
        self._quit = threading.Event()
        self._thread: threading.Thread | None = None
        self._display = None

    # -- what the judge asks (pipeline thread) ----------------------------------------------

    def caught_up(self) -> float:
        """Every raw event the server sent before this time has been read."""
        with self._lock:
            return self._caught_up

    def physical_motion(self) -> np.ndarray:
        """Sorted times of recent motion from devices that are not XTEST."""
        with self._lock:
            return np.fromiter(self._physical, dtype=float, count=len(self._physical))

    def take_xtest(self) -> list[tuple[float, str]]:
        """The XTEST events read since the last call: (time, device name)."""
        with self._lock:
            taken, self._xtest = self._xtest, []
        return taken

    # -- life cycle -------------------------------------------------------------------------

    def start(self) -> XInputSources:
        """Connect and select the raw events; raise :class:`SourcesUnavailable` where XInput 2.2
        is missing (raw events reach the root window unconditionally only from 2.1 on)."""
        try:
            from Xlib import display as xdisplay
            from Xlib.ext import xinput

            d = xdisplay.Display(self.display_name)
        except Exception as exc:
            raise SourcesUnavailable(f"cannot connect to the X display: {one_line(exc)}") from None
        try:
            if not d.has_extension("XInputExtension"):
                raise SourcesUnavailable("the X server has no XInput extension")
            opcode = d.display.get_extension_major("XInputExtension")
            version = xinput.XIQueryVersion(display=d.display, opcode=opcode, major_version=2, minor_version=2)
            if (version.major_version, version.minor_version) < (2, 2):
                raise SourcesUnavailable(f"the X server has XInput {version.major_version}.{version.minor_version}, "
                                         "not 2.2")
            self._opcode = opcode
            self._read_devices(d)
            mask = (xinput.RawMotionMask | xinput.RawButtonPressMask | xinput.RawButtonReleaseMask
                    | _RAW_TOUCH_MASK)
            d.screen().root.xinput_select_events([(xinput.AllMasterDevices, mask)])
            d.sync()  # a refused selection raises here, not later on the thread
        except SourcesUnavailable:
            d.close()
            raise
        except Exception as exc:
            d.close()
            raise SourcesUnavailable(f"cannot watch XInput2 raw events: {one_line(exc)}") from None
        self._display = d
        self._caught_up = self.clock()
        self._thread = threading.Thread(target=self._run, name="mouseguard-input-sources", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 1.0) -> None:
        self._quit.set()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- the watcher's thread ---------------------------------------------------------------

    def _run(self) -> None:
        d = self._display
        try:
            while not self._quit.is_set():
                # Stamped before reading: everything the server sent up to now is in the socket.
                now = self.clock()
                select.select([d.fileno()], [], [], 0.2)
                for _ in range(d.pending_events()):
                    self._take(d, d.next_event(), self.clock())
                with self._lock:
                    self._caught_up = now
                    while self._physical and self._physical[0] < now - KEEP_SECONDS:
                        self._physical.popleft()
        except Exception as exc:  # the display went away, a protocol error
            self.error = one_line(exc)
            log.warning("stopped telling injected input apart: %s", self.error)
        finally:
            with contextlib.suppress(Exception):  # closing a connection the server dropped raises
                d.close()

    def _take(self, d, event, t: float) -> None:
        if getattr(event, "extension", None) != self._opcode or event.evtype not in _RAW_TYPES:
            return
        # xXIRawEvent.sourceid, in the machine's byte order: python-xlib asks the server for it
        source = int.from_bytes(bytes(event.data[10:12]), sys.byteorder)
        name = self._devices.get(source)
        if name is None:  # a device plugged in since: read the list again
            self._read_devices(d)
            name = self._devices.get(source, "")
        with self._lock:
            if XTEST_MARK in name:
                self._xtest.append((t, name))
            elif event.evtype != _RAW_BUTTON_RELEASE:
                self._physical.append(t)

    def _read_devices(self, d) -> None:
        from Xlib.ext import xinput

        self._devices = {dev.deviceid: str(dev.name) for dev in d.xinput_query_device(xinput.AllDevices).devices}


# XI2 raw event types (XI2.h); python-xlib 0.33 names the motion and button ones only.
_RAW_BUTTON_PRESS, _RAW_BUTTON_RELEASE, _RAW_MOTION = 15, 16, 17
_RAW_TOUCH_BEGIN, _RAW_TOUCH_UPDATE, _RAW_TOUCH_END = 22, 23, 24
_RAW_TYPES = (_RAW_BUTTON_PRESS, _RAW_BUTTON_RELEASE, _RAW_MOTION, _RAW_TOUCH_BEGIN, _RAW_TOUCH_UPDATE)
_RAW_TOUCH_MASK = (1 << _RAW_TOUCH_BEGIN) | (1 << _RAW_TOUCH_UPDATE) | (1 << _RAW_TOUCH_END)


def x11_sources(clock: Callable[[], float]) -> XInputSources | None:
    """The X11 watcher, started; None (and one log line) where it cannot run."""
    try:
        return XInputSources(clock).start()
    except SourcesUnavailable as exc:
        log.warning("injected pointer input cannot be told from a hand's on this display: %s", exc)
        return None

