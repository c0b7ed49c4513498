"""Capture: the global mouse hook that feeds the ring buffer, and the supervisor that keeps it alive.

The hook is the agent's only sensor, so two things matter more than anything else here:

* **Callbacks stay tiny.** pynput gives no timestamps, so each callback stamps the clock and
  writes one row into the :class:`~agent.ringbuffer.RingBuffer`, nothing more. Windows drops a
  low-level hook whose callback takes around a second; the pipeline does the real work on its
  own thread. (A benchmark can time the callback methods directly: they hold no timing code.)
* **A dead hook is noticed.** An exception in a pynput callback silently ends the listener
  (``join()`` re-raises it later, if anyone asks). Every callback therefore records its own
  death, and :class:`HookSupervisor` polls the hook, reports "not protecting" and starts a
  fresh one: a security agent never stops protecting silently.

pynput is imported lazily: on Linux importing it already connects to the X server, and
``import agent.capture`` must work without a display (tests, CLI help, training machines).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from typing import Callable, Mapping

from agent.errors import MouseguardError, one_line
from agent.events import DOWN, DRAG, LEFT, MIDDLE, MOVE, NO_BUTTON, OTHER, PRESSED, RELEASED, RIGHT, SCROLL, UP
from agent.ringbuffer import RingBuffer

log = logging.getLogger(__name__)

WAYLAND_MESSAGE = (
    "Wayland gives applications no global mouse hook; log into an X11/Xorg session to use mouseguard"
)


class CaptureUnavailable(MouseguardError, RuntimeError):
    """The mouse cannot be watched on this desktop; the message says why in one line."""


def check_platform(environ: Mapping[str, str] | None = None, platform: str | None = None) -> None:
    """Raise :class:`CaptureUnavailable` where no global mouse hook can work.

    On Wayland an X connection (XWayland) still exists, but it only sees input aimed at X
    windows: a hook there would watch part of the desktop and look healthy. Refusing is the
    honest answer, so Wayland is refused whatever ``DISPLAY`` says.
    """
    env = os.environ if environ is None else environ
    platform = sys.platform if platform is None else platform
    if platform in ("win32", "cygwin", "darwin"):
        return
    if env.get("XDG_SESSION_TYPE", "").strip().lower() == "wayland" or (
        env.get("WAYLAND_DISPLAY") and not env.get("DISPLAY")
    ):
        raise CaptureUnavailable(WAYLAND_MESSAGE)
    if not env.get("DISPLAY"):
        raise CaptureUnavailable(
            "no X display: DISPLAY is not set; run mouseguard inside your X11/Xorg desktop session"
        )


class MouseHook:
    """One pynput mouse listener writing ``(t, button, state, x, y)`` rows into a ring buffer.

    A hook is single-use, like the listener thread under it: once stopped or dead, make a new
    one (:class:`HookSupervisor` does).
    """

    def __init__(self, buffer: RingBuffer, clock: Callable[[], float] = time.monotonic):
        self.buffer = buffer
        self.clock = clock
        self._listener = None
        self._codes: dict = {}  # pynput Button -> button code, filled once pynput is imported
        self._held: list[int] = []  # button codes held down, most recent last
        self._fault = False
        self._error: BaseException | None = None
        self._stopping = False
        self._ready = threading.Event()  # the listener is connected and about to listen
        self._settled = threading.Event()  # the listener is ready, or died trying

    # -- life cycle ------------------------------------------------------------------------

    def start(self, ready_timeout: float = 5.0) -> None:
        """Start listening; return once the listener is connected, else raise CaptureUnavailable."""
        if self._listener is not None:
            raise RuntimeError("a MouseHook starts once; make a new one to listen again")
        check_platform()
        try:
            from pynput import mouse
        except ImportError as exc:  # pynput connects to the X server at import time
            raise CaptureUnavailable(f"cannot open the mouse hook: {one_line(exc)}") from None
        self._codes = {mouse.Button.left: LEFT, mouse.Button.right: RIGHT, mouse.Button.middle: MIDDLE}
        self._listener = _listener_class(mouse.Listener)(
            self, on_move=self.on_move, on_click=self.on_click, on_scroll=self.on_scroll
        )
        self._listener.start()
        if not self._settled.wait(ready_timeout):
            self.stop(timeout=0.1)
            raise CaptureUnavailable(f"the mouse hook did not start within {ready_timeout:g} s")
        if self._error is not None:
            raise CaptureUnavailable(f"cannot open the mouse hook: {one_line(self._error)}")

    def stop(self, timeout: float = 1.0) -> None:
        """Stop listening. On X11 the listener thread ends only at the next input event, so
        this waits at most ``timeout`` and leaves a daemon thread to finish on its own."""
        self._stopping = True
        listener = self._listener
        if listener is None:
            return
        # pynput's stop() waits for the listener to be ready, for ever: a listener that never
        # connected (or is still connecting) is left to end on its own; see _listener_class.
        if self._ready.is_set():
            listener.stop()
        try:
            listener.join(timeout)
        except Exception as exc:  # pynput re-raises the callback error that killed it
            self._record(exc)

    @property
    def alive(self) -> bool:
        """True while the listener runs and has not failed or been stopped."""
        listener = self._listener
        return (
            listener is not None
            and self._error is None
            and not self._stopping
            and listener.is_alive()
            and listener.running
        )

    @property
    def error(self) -> BaseException | None:
        """The exception that ended the listener, if it ended other than by :meth:`stop`."""
        listener = self._listener
        if self._error is None and listener is not None and not self._stopping and not listener.is_alive():
            try:
                listener.join(0)  # re-raises a callback error we did not see ourselves
            except Exception as exc:
                self._record(exc)
            if self._error is None:
                self._record(CaptureUnavailable("the mouse listener ended unexpectedly (X connection lost?)"))
        return self._error

    def inject_fault(self) -> None:
        """Make the next callback raise RuntimeError, killing the real listener (for tests)."""
        self._fault = True

    def _record(self, exc: BaseException) -> None:
        if self._error is None:
            self._error = exc

    # -- callbacks (the hook thread): stamp the clock, write one row ------------------------
    # Public so a benchmark can time them without a listener: they are the whole per-event cost.
    # pynput >= 1.8 passes an extra ``injected`` argument (True for synthetic input on
    # Windows/macOS; never on X11, where XTest input looks like the hardware).

    def on_move(self, x, y, *injected):
        try:
            if self._fault:
                raise RuntimeError("fault injected into the mouse hook")
            held = self._held
            if held:
                self.buffer.put(self.clock(), held[-1], DRAG, x, y, bool(injected and injected[0]))
            else:
                self.buffer.put(self.clock(), NO_BUTTON, MOVE, x, y, bool(injected and injected[0]))
        except BaseException as exc:
            self._record(exc)
            raise

    def on_click(self, x, y, button, pressed, *injected):
        try:
            if self._fault:
                raise RuntimeError("fault injected into the mouse hook")
            t = self.clock()
            code = self._codes.get(button, OTHER)
            if pressed:
                if code not in self._held:  # a lost release must not leave a button held twice
                    self._held.append(code)
            elif code in self._held:
                self._held.remove(code)
            self.buffer.put(t, code, PRESSED if pressed else RELEASED, x, y, bool(injected and injected[0]))
        except BaseException as exc:
            self._record(exc)
            raise

    def on_scroll(self, x, y, dx, dy, *injected):
        # Horizontal wheels (dy == 0) land on DOWN: the recording format only knows Up/Down,
        # and the block cutter drops wheel events anyway.
        try:
            if self._fault:
                raise RuntimeError("fault injected into the mouse hook")
            self.buffer.put(self.clock(), SCROLL, UP if dy > 0 else DOWN, x, y, bool(injected and injected[0]))
        except BaseException as exc:
            self._record(exc)
            raise


def _listener_class(base):
    """pynput's listener, reporting readiness and deaths outside callbacks to its hook.

    Two gaps in pynput's own reporting: ``Listener.wait()`` blocks forever when the X
    connection fails (it is made on the listener thread), and that failure goes to
    ``threading.excepthook`` rather than to ``join()``.
    """

    class Listener(base):
        def __init__(self, hook: MouseHook, **callbacks):
            super().__init__(**callbacks)
            self._mouseguard_hook = hook

        def _mark_ready(self):
            super()._mark_ready()
            hook = self._mouseguard_hook
            hook._ready.set()
            hook._settled.set()
            if hook._stopping:  # given up on while connecting: do not listen after all
                self.stop()

        def run(self):
            try:
                super().run()
            except Exception as exc:
                self._mouseguard_hook._record(exc)
            finally:
                self._mouseguard_hook._settled.set()

    return Listener


def display_reachable() -> bool:
    """Whether the X display in DISPLAY accepts a connection (always True off Linux/X11).

    A hook that cannot start because its display refuses or is gone means the desktop session
    it watched has ended, not that protection is merely down for a while.
    """
    if sys.platform in ("win32", "cygwin", "darwin"):
        return True
    try:
        from Xlib import display as xdisplay  # pynput's own X library

        xdisplay.Display().close()
    except Exception:
        return False
    return True


def check_display() -> None:
    """:func:`check_platform`, then that the display answers: raise :class:`CaptureUnavailable`
    with a plain reason before a command starts watching (pynput's own is a repr of a tuple)."""
    check_platform()
    if not display_reachable():
        raise CaptureUnavailable(f"cannot connect to the X display {os.environ.get('DISPLAY')!r} "
                                 "(not running, or no permission: XAUTHORITY)")


def _stop_quietly(hook, timeout: float = 0.1) -> None:
    """Stop ``hook``; one whose X server has gone raises from Xlib, which is no news by then."""
    try:
        hook.stop(timeout=timeout)
    except Exception as exc:
        log.warning("stopping the mouse hook: %s", one_line(exc))



class HookSupervisor:
    """Keeps a mouse hook running, and says so honestly.

    Every ``check_interval`` seconds it looks at the hook. When the hook is dead (or could not
    start) it calls ``on_health(False, reason)``, which the agent shows as "not protecting", and
    starts a fresh hook from ``make_hook()``; once one runs it calls ``on_health(True, "")``.
    ``on_health`` is called from the supervisor thread, and only when health or the reason
    changes, so a failure that persists is reported once, not every second.

    ``make_hook()`` returns an unstarted hook (a :class:`MouseHook` or anything with
    ``start()``, ``stop(timeout)``, ``alive`` and ``error``); the supervisor starts it. Give
    the hooks one shared ring buffer so the pipeline never notices the swap.
    """

    def __init__(
        self,
        make_hook: Callable[[], MouseHook],
        on_health: Callable[[bool, str], None],
        check_interval: float = 1.0,
        on_display_gone: Callable[[str], None] | None = None,
        display_gone_after: float = 30.0,
    ):
        if not check_interval > 0:
            raise ValueError(f"check_interval must be > 0 s, not {check_interval!r}")
        self.make_hook = make_hook
        self.on_health = on_health
        self.check_interval = check_interval
        self.on_display_gone = on_display_gone
        self.display_gone_after = display_gone_after
        self.hook: MouseHook | None = None
        self.healthy: bool | None = None  # None until the first check
        self.reason = "not started"
        self.restarts = 0  # hooks started after the first one
        self._quit = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("a HookSupervisor starts once")
        self._thread = threading.Thread(target=self._run, name="mouseguard-hook-supervisor", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._quit.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self.hook is not None:
            _stop_quietly(self.hook, timeout=0.2)

    def _run(self) -> None:
        started_once = False
        down_since = None
        while not self._quit.is_set():
            hook = self.hook
            if hook is None or not hook.alive:
                if hook is not None:
                    self._report(False, f"mouse hook died: {one_line(hook.error or RuntimeError('stopped'))}")
                    _stop_quietly(hook)  # it is dead; do not wait for the next event
                    self.hook = None
                hook = None
                try:
                    hook = self.make_hook()
                    hook.start()
                except Exception as exc:  # CaptureUnavailable, no display, a bug: keep trying
                    self._report(False, one_line(exc))
                    if hook is not None:
                        _stop_quietly(hook)
                else:
                    if self._quit.is_set():  # stop() came while this hook was starting
                        _stop_quietly(hook)
                        return
                    self.hook = hook
                    if started_once:
                        self.restarts += 1
                    started_once = True
                    self._report(True, "")
            down_since = None if self.healthy else (down_since or time.monotonic())
            if (self.on_display_gone and down_since is not None
                    and time.monotonic() - down_since >= self.display_gone_after and not display_reachable()):
                # the session's X server is gone (logout, crash): an agent left waiting for it
                # would hold the instance lock against the next session's agent
                self.on_display_gone(self.reason)
                return
            self._quit.wait(self.check_interval)

    def _report(self, healthy: bool, reason: str) -> None:
        if (healthy, reason) == (self.healthy, self.reason):
            return
        self.healthy, self.reason = healthy, reason
        (log.info if healthy else log.warning)("mouse hook %s%s", "running" if healthy else "down: ", reason)
        try:
            self.on_health(healthy, reason)
        except Exception:  # the reporter failing must not stop the supervision
            log.exception("on_health callback failed")
