"""The tray: the one place the user sees whether mouseguard is protecting them.

``Tray`` is the interface the agent talks to; ``PystrayTray`` is the real icon and
``HeadlessTray`` the ``--no-tray`` stand-in (log + desktop notification). The agent never
imports pystray itself: pystray picks a GUI backend at import time and can fail in several
ways (ImportError, ValueError for missing GTK typelibs, an Xlib error without a display), all
of which become one :class:`TrayUnavailable` here so the agent can fall back to headless with
a clear message.

Threading: ``run(on_ready)`` blocks the calling thread, which must be the main thread on macOS
(AppKit owns it); ``on_ready`` starts the agent's own threads and must return promptly (it
runs on pystray's setup thread, which ``stop`` joins). ``set_state`` and ``notify`` may be
called from any thread, never block on the GUI and never raise. Call ``close()`` after ``run``
returns.

Linux backends: pystray tries appindicator, then gtk (both need PyGObject and GTK typelibs),
then xorg. The xorg backend docks into any XEMBED tray (e.g. ``trayer``) but has **no menu and
no notifications**: a left click runs the default item (open the logs folder), notifications
go through the fallback notifier (``notify-send``) instead, and pause/resume/stop are the
``mouseguard`` commands (the agent says so in its log when it starts with such a tray).
"""

from __future__ import annotations

import abc
import logging
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from agent.responses.alert import FallbackNotifier, Notify
from agent.states import (
    ALERTED,
    COLOURS,
    LEARNING,
    LOCKED,
    NOT_ENROLLED,
    NOT_PROTECTING,
    PAUSED,
    PROTECTED,
    SUSPICIOUS,
)

if TYPE_CHECKING:
    from PIL import Image, ImageDraw

APP_NAME = "mouseguard"
DEFAULT_PAUSE_MINUTES = 15


class TrayUnavailable(RuntimeError):
    """No tray icon can be shown here (no pystray backend, no display, no tray host)."""


@dataclass(frozen=True)
class TrayCallbacks:
    """What the menu entries do; supplied by the agent. Called from the tray's thread.

    ``pause`` receives the pause length in seconds. ``quit`` should stop the agent's threads;
    the tray stops itself right after calling it.
    """

    pause: Callable[[float], None]
    resume: Callable[[], None]
    open_logs: Callable[[], None]
    quit: Callable[[], None]


def format_tooltip(state: str, score: float | None = None) -> str:
    """The tooltip and menu status line, e.g. ``mouseguard: protected (score 0.87)``."""
    if score is None:
        return f"{APP_NAME}: {state}"
    return f"{APP_NAME}: {state} (score {score:.2f})"


class Tray(abc.ABC):
    """What the agent needs from a tray, whatever draws it."""

    @abc.abstractmethod
    def set_state(self, state: str, tooltip: str) -> None:
        """Show ``state`` (one of :data:`agent.states.STATES`); ``tooltip`` from :func:`format_tooltip`."""

    @abc.abstractmethod
    def notify(self, title: str, message: str) -> None:
        """Show an alert to the user. Always give a title (macOS requires one)."""

    @abc.abstractmethod
    def run(self, on_ready: Callable[[], None]) -> None:
        """Block the calling thread until :meth:`stop`; call ``on_ready`` once the tray is up."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Make :meth:`run` return. Safe from any thread, and before or after ``run``."""

    def close(self) -> None:
        """Release window-system resources once :meth:`run` has returned. Nothing by default."""


# -- the icon -------------------------------------------------------------------------------

_SUPERSAMPLE = 4  # ImageDraw does not antialias; draw big, then downsample with LANCZOS
_WHITE = (255, 255, 255, 255)


def _darker(colour: tuple[int, int, int], factor: float = 0.6) -> tuple[int, int, int, int]:
    return (*(int(c * factor) for c in colour), 255)


def draw_icon(state: str, size: int = 64, background: tuple[int, int, int] | None = None) -> "Image.Image":
    """The tray icon for ``state``: a disc in the state's colour with a white mouse outline.

    Each state also gets its own badge in the lower-right corner (padlock, "!", pause bars…),
    so states that share or nearly share a colour (locked/alerted, paused/not enrolled) are
    still told apart, also by colour-blind users. The centre of the icon is always the pure
    state colour (inside the mouse body) at 32 px and up, which the tests rely on.

    RGBA with transparent corners by default; with ``background`` an opaque RGB image, for
    tray backends that ignore alpha.
    """
    from PIL import (  # here, not at import: `run --no-tray` never draws (4 MB of RSS)
        Image,
        ImageDraw,
    )

    if state not in COLOURS:
        raise ValueError(f"unknown state {state!r}")
    colour = COLOURS[state]
    s = size * _SUPERSAMPLE
    # Transparent pixels carry the state colour rather than black, so resampling never bleeds
    # a dark fringe into the edge.
    image = Image.new("RGBA", (s, s), (*colour, 0))
    draw = ImageDraw.Draw(image)
    rim = max(1, round(s * 0.04))
    draw.ellipse([s * 0.02, s * 0.02, s * 0.98, s * 0.98], fill=(*colour, 255), outline=_darker(colour), width=rim)

    # The mouse: body outline, button split and the split between the two buttons, all above
    # the centre so the centre pixel stays the state colour.
    line = max(1, round(s * 0.05))
    x0, y0, x1, y1 = s * 0.33, s * 0.20, s * 0.67, s * 0.80
    draw.rounded_rectangle([x0, y0, x1, y1], radius=(x1 - x0) / 2, outline=_WHITE, width=line)
    split_y = s * 0.40
    draw.line([(x0, split_y), (x1, split_y)], fill=_WHITE, width=line)
    draw.line([(s / 2, y0), (s / 2, split_y)], fill=_WHITE, width=line)

    _draw_badge(draw, state, s, colour)
    image = image.resize((size, size), Image.LANCZOS)
    if background is None:
        return image
    opaque = Image.new("RGB", image.size, background)
    opaque.paste(image, mask=image.getchannel("A"))
    return opaque


def _draw_badge(draw: "ImageDraw.ImageDraw", state: str, s: int, colour: tuple[int, int, int]) -> None:
    """A white disc in the lower-right corner with a per-state symbol in a dark shade of the colour."""
    if state == NOT_ENROLLED:
        return  # the plain grey mouse: nothing learnt, nothing to say
    cx, cy, r = s * 0.77, s * 0.77, s * 0.21
    draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=_WHITE, outline=_darker(colour), width=max(1, round(s * 0.02)))
    ink = _darker(colour, 0.75)
    w = max(1, round(s * 0.045))
    u = r * 0.55  # symbol half-extent
    if state == PROTECTED:  # check mark
        draw.line([(cx - u, cy), (cx - u * 0.25, cy + u * 0.7), (cx + u, cy - u * 0.7)], fill=ink, width=w,
                  joint="curve")
    elif state == LEARNING:  # three dots: in progress
        for dx in (-u * 0.8, 0, u * 0.8):
            d = w * 0.7
            draw.ellipse([cx + dx - d, cy - d, cx + dx + d, cy + d], fill=ink)
    elif state == SUSPICIOUS:  # question mark
        draw.arc([cx - u * 0.6, cy - u, cx + u * 0.6, cy - u * 0.1], start=180, end=90, fill=ink, width=w)
        draw.line([(cx, cy - u * 0.1), (cx, cy + u * 0.35)], fill=ink, width=w)
        d = w * 0.6
        draw.ellipse([cx - d, cy + u * 0.75 - d, cx + d, cy + u * 0.75 + d], fill=ink)
    elif state == LOCKED:  # padlock
        draw.arc([cx - u * 0.5, cy - u, cx + u * 0.5, cy], start=180, end=360, fill=ink, width=w)
        draw.line([(cx - u * 0.5, cy - u * 0.5), (cx - u * 0.5, cy - u * 0.1)], fill=ink, width=w)
        draw.line([(cx + u * 0.5, cy - u * 0.5), (cx + u * 0.5, cy - u * 0.1)], fill=ink, width=w)
        draw.rectangle([cx - u * 0.8, cy - u * 0.15, cx + u * 0.8, cy + u * 0.85], fill=ink)
    elif state == ALERTED:  # exclamation mark
        draw.line([(cx, cy - u), (cx, cy + u * 0.3)], fill=ink, width=w)
        d = w * 0.6
        draw.ellipse([cx - d, cy + u * 0.75 - d, cx + d, cy + u * 0.75 + d], fill=ink)
    elif state == PAUSED:  # pause bars
        draw.rectangle([cx - u * 0.6, cy - u * 0.8, cx - u * 0.15, cy + u * 0.8], fill=ink)
        draw.rectangle([cx + u * 0.15, cy - u * 0.8, cx + u * 0.6, cy + u * 0.8], fill=ink)
    elif state == NOT_PROTECTING:  # cross
        draw.line([(cx - u * 0.7, cy - u * 0.7), (cx + u * 0.7, cy + u * 0.7)], fill=ink, width=w)
        draw.line([(cx - u * 0.7, cy + u * 0.7), (cx + u * 0.7, cy - u * 0.7)], fill=ink, width=w)


# -- helpers --------------------------------------------------------------------------------


def open_folder_command(path: str | os.PathLike, platform: str = sys.platform) -> list[str] | None:
    """The command that opens ``path`` in the file manager; None on Windows (os.startfile)."""
    if platform == "win32":
        return None
    if platform == "darwin":
        return ["open", os.fspath(path)]
    return ["xdg-open", os.fspath(path)]


def open_folder(path: str | os.PathLike, platform: str = sys.platform, popen: Callable = subprocess.Popen) -> None:
    """Open ``path`` in the desktop's file manager without waiting for it.

    Not waiting matters: some xdg-open handlers only return when the file manager exits,
    and this runs on the tray's thread.
    """
    command = open_folder_command(path, platform)
    if command is None:
        os.startfile(os.fspath(path))  # type: ignore[attr-defined]  # Windows only
        return
    popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def _undocked_without_traceback(record: logging.LogRecord) -> bool:
    """pystray's xorg backend logs 'Failed to dock icon' with an AssertionError traceback every
    time the icon changes while no tray host runs, though it docks by itself once one starts:
    one line without the traceback says the same."""
    if record.getMessage() == "Failed to dock icon":
        record.exc_info, record.exc_text = None, None
        record.msg, record.args, record.levelno, record.levelname = (
            "no tray host to dock the icon into (yet); it docks when one starts", (), logging.WARNING, "WARNING")
    return True


def _import_pystray():
    """Import pystray, turning every way its backend selection fails into TrayUnavailable."""
    logging.getLogger("pystray._base").addFilter(_undocked_without_traceback)
    try:
        import pystray
    except Exception as exc:  # ImportError, ValueError (GTK typelibs), Xlib DisplayNameError …
        raise TrayUnavailable(
            f"no system tray backend is usable ({type(exc).__name__}: {exc}). On Linux pystray needs a "
            "display and either PyGObject with GTK/AppIndicator typelibs or PYSTRAY_BACKEND=xorg "
            "with an XEMBED tray; run with --no-tray to go without an icon."
        ) from exc
    return pystray


def _check_x_display() -> None:
    """Fail with TrayUnavailable unless the X display opens.

    pystray's xorg backend checks the display once, at import; if it is gone later, its
    Icon constructor fails half-way and leaves an icon whose finaliser raises whenever the
    garbage collector reaches it. Checking first means no half-built icon is ever made.
    """
    import Xlib.display

    try:
        Xlib.display.Display().close()
    except Exception as exc:
        raise TrayUnavailable(f"the X display cannot be opened ({exc!r}); run with --no-tray") from exc


# -- the real tray --------------------------------------------------------------------------


class PystrayTray(Tray):
    """A pystray icon with a status line, pause/resume, open logs and quit.

    Raises TrayUnavailable from the constructor when no backend works, so the agent can
    choose HeadlessTray before it starts anything.
    """

    def __init__(
        self,
        callbacks: TrayCallbacks,
        pause_minutes: int = DEFAULT_PAUSE_MINUTES,
        state: str = NOT_ENROLLED,
        notifier: Notify | None = None,
        log: logging.Logger | None = None,
        icon_size: int = 64,
    ):
        self._callbacks = callbacks
        self._pause_minutes = pause_minutes
        self._log = log or logging.getLogger("mouseguard.tray")
        self._fallback_notify = notifier or FallbackNotifier(self._log)
        self._icon_size = icon_size
        self._images: dict[str, "Image.Image"] = {}
        self._lock = threading.Lock()  # set_state comes from agent threads; keep updates whole
        self._state = state
        self._status_line = format_tooltip(state)
        self._stop_requested = threading.Event()
        self._pending = threading.Event()  # set_state recorded something the icon does not show yet
        self._loop_done = threading.Event()  # pystray's loop has returned
        self._ready_error: BaseException | None = None
        #: (state, tooltip) the icon shows now; for the tests and ``mouseguard status``.
        self.shown: tuple[str, str] | None = None

        pystray = _import_pystray()
        # pystray's xorg backend drops alpha (pastes RGBA onto black, with resampling speckle),
        # and the tray's background is unknown: give it an opaque tile in the state colour.
        self._opaque = pystray.Icon.__module__.endswith("._xorg")
        if self._opaque:
            _check_x_display()
        try:
            self._icon = pystray.Icon(
                APP_NAME, icon=self._image(state), title=self._status_line, menu=self._build_menu(pystray)
            )
        except Exception as exc:  # e.g. the X connection is refused
            raise TrayUnavailable(f"the tray icon could not be created: {exc!r}") from exc

    # The menu is built once; pystray re-evaluates the callables on every update_menu().
    def _build_menu(self, pystray):
        item, menu = pystray.MenuItem, pystray.Menu
        unit = "minute" if self._pause_minutes == 1 else "minutes"
        return menu(
            item(lambda _item: self._status_line, None, enabled=False),
            menu.SEPARATOR,
            item(f"Pause for {self._pause_minutes} {unit}", self._on_pause,
                 visible=lambda _item: self._state != PAUSED),
            item("Resume", self._on_resume, visible=lambda _item: self._state == PAUSED),
            # Default item: the only thing a click does on backends without a menu (xorg).
            # Never pause: a stray click must not switch protection off.
            item("Open logs folder", self._on_open_logs, default=True),
            item("Quit", self._on_quit),
        )

    @property
    def backend(self) -> str:
        """The pystray backend in use ("xorg", "gtk", "appindicator", "darwin", "win32")."""
        return type(self._icon).__module__.rsplit("._", 1)[-1]

    @property
    def has_menu(self) -> bool:
        return bool(self._icon.HAS_MENU)

    @property
    def menu(self):
        return self._icon.menu

    def _image(self, state: str) -> "Image.Image":
        if state not in self._images:
            background = COLOURS.get(state) if self._opaque else None
            self._images[state] = draw_icon(state, self._icon_size, background=background)
        return self._images[state]

    @property
    def docked(self) -> bool | None:
        """xorg backend: whether a tray host took the icon; None where pystray cannot tell."""
        if self.backend != "xorg":
            return None
        return getattr(self._icon, "_systray_manager", None) is not None

    def set_state(self, state: str, tooltip: str) -> None:
        # Only record the wish here: the icon is redrawn on the tray's own updater thread, so
        # the decision thread never waits on the GUI (pystray's xorg backend blocks the caller
        # until its loop has drawn, and forever if the loop has just ended).
        with self._lock:
            self._state = state
            self._status_line = tooltip
        self._pending.set()

    def _apply_pending(self) -> None:
        """Updater thread: push the latest state to the icon; rapid changes coalesce."""
        while True:
            self._pending.wait()
            if self._stop_requested.is_set():
                return
            self._pending.clear()
            with self._lock:
                state, tooltip = self._state, self._status_line
            try:
                self._icon.icon = self._image(state)
                self._icon.title = tooltip
                if self.has_menu:
                    self._icon.update_menu()
                self._flush_x()
            except Exception:  # a broken tray must not end the updates for good
                self._log.exception("could not show state %r in the tray", state)
            else:
                self.shown = (state, tooltip)

    def notify(self, title: str, message: str) -> None:
        if self._icon.HAS_NOTIFICATION and self._icon.visible:
            try:
                self._log.warning("ALERT %s: %s", title, message)
                self._icon.notify(message, title)  # pystray's order is (message, title)
                return
            except Exception:
                self._log.exception("the tray could not show a notification; using the fallback")
        self._fallback_notify(title, message)

    def run(self, on_ready: Callable[[], None]) -> None:
        if self._stop_requested.is_set():
            return

        setup_started, setup_done = threading.Event(), threading.Event()

        def setup(icon) -> None:
            setup_started.set()
            try:
                self._setup(icon, on_ready)
            finally:
                setup_done.set()

        try:
            self._icon.run(setup=setup)
        finally:
            self._loop_done.set()
            self._stop_requested.set()
            self._pending.set()  # release the updater thread
            # A stop() issued from the setup thread may still be finishing its bookkeeping.
            if setup_started.is_set():
                setup_done.wait(getattr(self._icon, "SETUP_THREAD_TIMEOUT", 5.0))
            # The loop has ended. pystray clears its running flag only in a completed stop();
            # left set, its finaliser would "stop" the dead loop and wait for it forever.
            self._icon._running = False
        if self._ready_error is not None:
            raise self._ready_error

    def _setup(self, icon, on_ready: Callable[[], None]) -> None:
        """Runs on pystray's setup thread once its loop is ready."""
        try:
            self._show(icon)
            if self.docked is False:
                self._log.warning(
                    "no system tray host took the mouseguard icon: its state is not visible "
                    "(alerts still go to the log and the desktop notifier)"
                )
            if not self.has_menu:
                self._log.warning(
                    "this tray icon (pystray's %s backend) has no menu: pause, resume and stop with "
                    "`mouseguard pause [MIN]`, `mouseguard resume` and `mouseguard stop` (README: 'The tray')",
                    self.backend)
            threading.Thread(target=self._apply_pending, name="tray-updater", daemon=True).start()
            on_ready()
        except BaseException as exc:
            self._log.exception("starting under the tray failed")
            self._ready_error = exc
            self._stop_requested.set()
        if self._stop_requested.is_set():  # stop() came before the loop could honour it
            self._stop_icon()

    def _show(self, icon) -> None:
        with self._lock:  # whatever set_state recorded before the loop started
            shown = (self._state, self._status_line)
        icon.icon = self._image(shown[0])
        icon.title = shown[1]
        # pystray's xorg backend marks itself ready before recording its loop thread, so a
        # setup thread that wins the race gets AttributeError('_thread'); it is gone a moment later.
        for _ in range(50):
            try:
                icon.visible = True
                break
            except AttributeError:
                time.sleep(0.02)
        else:
            icon.visible = True
        self._flush_x()
        self.shown = shown

    def stop(self) -> None:
        self._stop_requested.set()
        self._pending.set()
        if self._loop_done.is_set():
            return  # pystray's xorg stop() would wait forever for a loop that has ended
        self._stop_icon()

    def _stop_icon(self) -> None:
        try:
            self._icon.stop()
            self._flush_x()
        except Exception:
            self._log.exception("stopping the tray icon failed")

    def close(self) -> None:
        """Release the icon's X connection now; call after ``run`` has returned (or instead of it).

        pystray's xorg backend closes that connection in ``Icon.__del__``, i.e. whenever the
        garbage collector reaches the icon — possibly after the X server has gone (logout, the
        end of a test session), where the close raises inside a finaliser. No-op on other
        backends and when the icon is still running.
        """
        if self.backend != "xorg" or getattr(self._icon, "_running", False):
            return
        display = getattr(self._icon, "_display", None)
        if display is None or isinstance(display, _ReleasedDisplay):
            return
        self._icon._display = _ReleasedDisplay()  # what pystray's finaliser will "close"
        try:
            display.close()
        except Exception:  # the server is gone already: nothing is left to release
            pass

    def _flush_x(self) -> None:
        """Work around a lost-request race in python-xlib, which pystray's xorg backend hits.

        A call from another thread (icon update, stop) is executed by the icon's loop thread,
        whose requests (draw, destroy window) can be left queued and unsent when our thread is
        still flushing at that instant: the loop then waits for events forever (seen ~1 in 4
        stops under Xvfb + trayer). Flushing again from this thread, after the loop has done the
        work, sends whatever was left. Other backends have no shared X connection to flush.
        """
        if self.backend != "xorg":
            return
        display = getattr(self._icon, "_display", None)
        if display is not None:
            display.flush()

    # Menu actions run on the tray's thread; an exception there would be swallowed by pystray
    # or end its loop, so each is logged instead.
    def _on_pause(self) -> None:
        self._safely(self._callbacks.pause, self._pause_minutes * 60.0)

    def _on_resume(self) -> None:
        self._safely(self._callbacks.resume)

    def _on_open_logs(self) -> None:
        self._safely(self._callbacks.open_logs)

    def _on_quit(self) -> None:
        self._safely(self._callbacks.quit)
        self.stop()

    def _safely(self, callback: Callable, *args) -> None:
        try:
            callback(*args)
        except Exception:
            self._log.exception("tray action %s failed", getattr(callback, "__name__", callback))


class _ReleasedDisplay:
    """Stands in for an X connection PystrayTray.close() has already closed."""

    def close(self) -> None:
        pass

    def flush(self) -> None:
        pass


# -- no tray --------------------------------------------------------------------------------


class HeadlessTray(Tray):
    """The tray interface without a GUI (``--no-tray``): states go to the log, alerts to the
    log and the desktop notifier; ``run`` calls ``on_ready`` and waits for ``stop``."""

    def __init__(self, notifier: Notify | None = None, log: logging.Logger | None = None):
        self._log = log or logging.getLogger("mouseguard.tray")
        self._notify = notifier or FallbackNotifier(self._log)
        self._stopped = threading.Event()
        self.state: str | None = None
        self.tooltip: str | None = None

    def set_state(self, state: str, tooltip: str) -> None:
        if state != self.state:
            self._log.info("state: %s (%s)", state, tooltip)
        self.state, self.tooltip = state, tooltip

    def notify(self, title: str, message: str) -> None:
        try:
            self._notify(title, message)
        except Exception:
            self._log.exception("could not show the alert %r: %s", title, message)

    def run(self, on_ready: Callable[[], None]) -> None:
        if self._stopped.is_set():
            return
        on_ready()
        while not self._stopped.wait(1.0):  # timed: an untimed wait was once seen to sit through SIGTERM
            pass

    def stop(self) -> None:
        self._stopped.set()
