"""The tray: icons, the headless stand-in, and the real pystray icon docked in a real tray.

The last test is end to end: Xvfb (the shared ``xserver`` fixture), ``trayer`` as the system
tray host, pystray's xorg backend, then a screenshot of the root window with ImageMagick's
``import`` and a count of pixels in the state's colour. The screenshots are kept in
``test-output/`` at the repository root for a human to look at.

pystray's xorg backend is used because it needs no GTK typelibs. It has no menu (a click runs
the default item, "Open logs folder") and no notifications (PystrayTray falls back to the log
and ``notify-send``); the menu's logic is still tested through pystray's Menu objects.
"""

from __future__ import annotations

import builtins
import gc
import logging
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from agent.states import COLOURS, LOCKED, NOT_ENROLLED, PAUSED, PROTECTED, STATES
from agent.tray import (
    HeadlessTray,
    PystrayTray,
    TrayCallbacks,
    TrayUnavailable,
    _import_pystray,
    draw_icon,
    format_tooltip,
    open_folder,
    open_folder_command,
)
from tests.fakes import RecordingTray

REPO_ROOT = Path(__file__).resolve().parent.parent
TEST_OUTPUT = REPO_ROOT / "test-output"
DEADLINE = 10.0  # seconds for any one thing to appear on screen; it takes well under one


# -- icons ----------------------------------------------------------------------------------


def test_every_state_has_its_own_icon():
    icons = {state: draw_icon(state).tobytes() for state in STATES}
    assert len(set(icons.values())) == len(STATES)  # locked and alerted share a colour, not an icon


@pytest.mark.parametrize("size", [32, 64])
@pytest.mark.parametrize("state", STATES)
def test_icon_centre_is_the_state_colour(state, size):
    image = draw_icon(state, size)
    assert image.size == (size, size) and image.mode == "RGBA"
    assert image.getpixel((size // 2, size // 2)) == (*COLOURS[state], 255)
    assert image.getpixel((0, 0))[3] == 0  # round icon, transparent corners


def test_opaque_icon_for_backends_without_alpha():
    image = draw_icon(PROTECTED, 64, background=COLOURS[PROTECTED])
    assert image.mode == "RGB"
    assert image.getpixel((0, 0)) == COLOURS[PROTECTED]
    assert image.getpixel((32, 32)) == COLOURS[PROTECTED]


def test_unknown_state_has_no_icon():
    with pytest.raises(ValueError, match="unknown state"):
        draw_icon("sleepy")


def test_tooltip_text():
    assert format_tooltip(PROTECTED, 0.8712) == "mouseguard: protected (score 0.87)"
    assert format_tooltip(NOT_ENROLLED) == "mouseguard: not enrolled"


# -- helpers --------------------------------------------------------------------------------


def test_open_folder_per_os(tmp_path):
    assert open_folder_command(tmp_path, "linux") == ["xdg-open", str(tmp_path)]
    assert open_folder_command(tmp_path, "darwin") == ["open", str(tmp_path)]
    assert open_folder_command(tmp_path, "win32") is None  # os.startfile
    launched = []
    open_folder(tmp_path, "linux", popen=lambda command, **kw: launched.append((command, kw)))
    (command, kwargs), = launched
    assert command == ["xdg-open", str(tmp_path)]
    assert kwargs["start_new_session"] is True  # never wait for the file manager


@pytest.mark.parametrize("error", [ImportError("no backend"), ValueError("Namespace Gtk not available")])
def test_pystray_import_errors_become_tray_unavailable(monkeypatch, error):
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "pystray":
            raise error
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "pystray", raising=False)
    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(TrayUnavailable, match="--no-tray"):
        _import_pystray()


def test_no_display_means_tray_unavailable(monkeypatch):
    monkeypatch.setenv("PYSTRAY_BACKEND", "xorg")
    monkeypatch.delenv("DISPLAY", raising=False)
    finaliser_errors = []
    monkeypatch.setattr(sys, "unraisablehook", finaliser_errors.append)
    with pytest.raises(TrayUnavailable):
        PystrayTray(Callbacks().tray_callbacks())
    gc.collect()
    # No half-built pystray icon left behind whose __del__ raises at some later collection.
    assert finaliser_errors == []


# -- headless and recording trays ------------------------------------------------------------


def run_in_thread(tray, on_ready):
    thread = threading.Thread(target=tray.run, args=(on_ready,), daemon=True)
    thread.start()
    return thread


def test_headless_tray_runs_until_stopped(caplog):
    alerts = []
    tray = HeadlessTray(notifier=lambda t, m: alerts.append((t, m)))
    ready = threading.Event()
    thread = run_in_thread(tray, ready.set)
    assert ready.wait(DEADLINE)
    with caplog.at_level(logging.INFO, logger="mouseguard.tray"):
        tray.set_state(PROTECTED, format_tooltip(PROTECTED, 0.9))
    tray.notify("mouseguard: test", "hello")
    assert thread.is_alive()  # run blocks until stop
    tray.stop()
    thread.join(DEADLINE)
    assert not thread.is_alive()
    assert "protected" in caplog.text
    assert alerts == [("mouseguard: test", "hello")]


def test_headless_tray_survives_a_broken_notifier(caplog):
    def broken(title, message):
        raise OSError("no notification daemon")

    with caplog.at_level(logging.ERROR):
        HeadlessTray(notifier=broken).notify("t", "m")
    assert "no notification daemon" in caplog.text


def test_stop_before_run_returns_at_once():
    for tray in (HeadlessTray(notifier=lambda t, m: None), RecordingTray()):
        tray.stop()
        called = []
        tray.run(lambda: called.append(1))
        assert called == []


def test_recording_tray_records():
    tray = RecordingTray()
    thread = run_in_thread(tray, lambda: tray.set_state(PROTECTED, "tip"))
    assert tray.ran.wait(DEADLINE)
    tray.notify("title", "message")
    tray.stop()
    thread.join(DEADLINE)
    assert tray.states == [(PROTECTED, "tip")] and tray.state == PROTECTED
    assert tray.notifications == [("title", "message")]


# -- the real pystray icon ------------------------------------------------------------------


class Callbacks:
    """Records which menu callbacks ran."""

    def __init__(self):
        self.calls: list[tuple] = []

    def tray_callbacks(self) -> TrayCallbacks:
        return TrayCallbacks(
            pause=lambda seconds: self.calls.append(("pause", seconds)),
            resume=lambda: self.calls.append(("resume",)),
            open_logs=lambda: self.calls.append(("open_logs",)),
            quit=lambda: self.calls.append(("quit",)),
        )


@pytest.fixture
def xorg_backend(xserver, monkeypatch):
    """pystray on its xorg backend, on the test X server."""
    monkeypatch.setenv("PYSTRAY_BACKEND", "xorg")
    pystray = _import_pystray()
    if not pystray.Icon.__module__.endswith("._xorg"):
        pytest.fail(f"pystray was imported earlier with another backend ({pystray.Icon.__module__})")
    return xserver


@pytest.fixture
def make_tray(xorg_backend):
    """PystrayTray factory whose icons are finalised while the X server is still up.

    pystray closes an icon's X connection in ``Icon.__del__``. Log records of a test keep
    tracebacks (and so the tray) alive past the test; collected after Xvfb has gone, the
    finaliser raises, which on CPython 3.11.7 even breaks a later ``ast.parse`` ("AST
    constructor recursion depth mismatch" in pytest's assertion rewriting). ``close()``
    releases the connection now, as the agent does after ``run`` returns.
    """
    trays = []

    def make(*args, **kwargs) -> PystrayTray:
        tray = PystrayTray(*args, **kwargs)
        trays.append(tray)
        return tray

    yield make
    for tray in trays:
        tray.close()
    trays.clear()
    gc.collect()


class Trayer:
    """``trayer`` as the system tray host, ready once it owns the tray selection."""

    def __init__(self, xserver):
        if shutil.which("trayer") is None:
            pytest.fail("trayer is not installed (Debian/Ubuntu: apt-get install trayer)", pytrace=False)
        self.xserver = xserver
        self.log = tempfile.TemporaryFile()
        # A 26 px panel gives 24x24 icon slots (pystray asks for 24x24 at least).
        self.process = subprocess.Popen(
            ["trayer", "--edge", "top", "--align", "right", "--widthtype", "request", "--height", "26",
             "--transparent", "false", "--tint", "0xffffff", "--SetDockType", "true"],
            env=xserver.env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.log,
        )
        self._wait_for_selection()

    def _wait_for_selection(self) -> None:
        import Xlib.display
        import Xlib.X

        display = Xlib.display.Display(self.xserver.display)
        try:
            atom = display.intern_atom(f"_NET_SYSTEM_TRAY_S{display.get_default_screen()}")
            deadline = time.monotonic() + DEADLINE
            while display.get_selection_owner(atom) == Xlib.X.NONE:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"trayer never took the system tray selection: {self.log_tail()}", pytrace=False)
                time.sleep(0.05)
        finally:
            display.close()

    def log_tail(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-800:]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


def screenshot(xserver, path: Path) -> np.ndarray:
    """The whole root window, via ImageMagick's ``import``, as an RGB array."""
    if shutil.which("import") is None:
        pytest.fail("ImageMagick's import is not installed (apt-get install imagemagick)", pytrace=False)
    done = subprocess.run(["import", "-window", "root", str(path)], env=xserver.env, capture_output=True, timeout=30)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return np.asarray(Image.open(path).convert("RGB"))


def colour_mask(pixels: np.ndarray, colour, tolerance: int = 12) -> np.ndarray:
    return (np.abs(pixels.astype(int) - np.array(colour)) <= tolerance).all(axis=-1)


def wait_for_colour(xserver, path: Path, colour, minimum: int = 150) -> np.ndarray:
    """Screenshot until at least ``minimum`` pixels have ``colour``; the last mask is returned."""
    deadline = time.monotonic() + DEADLINE
    while True:
        mask = colour_mask(screenshot(xserver, path), colour)
        if mask.sum() >= minimum or time.monotonic() > deadline:
            return mask
        time.sleep(0.2)


def window_names(xserver, pattern: str) -> list[str]:
    done = subprocess.run(["xdotool", "search", "--name", pattern], env=xserver.env, capture_output=True, text=True)
    return done.stdout.split()


def keep(path: Path) -> None:
    TEST_OUTPUT.mkdir(exist_ok=True)
    shutil.copy(path, TEST_OUTPUT / path.name)


def test_menu_follows_the_state(make_tray):
    calls = Callbacks()
    tray = make_tray(calls.tray_callbacks(), pause_minutes=15)
    assert tray.backend == "xorg" and tray.has_menu is False  # xorg: no native menu, logic still here

    tray.set_state(PROTECTED, format_tooltip(PROTECTED, 0.87))
    texts = [str(item) for item in tray.menu]
    assert texts == ["mouseguard: protected (score 0.87)", "- - - -", "Pause for 15 minutes", "Open logs folder",
                     "Quit"]
    status = next(iter(tray.menu))
    assert status.enabled is False

    items = {str(item): item for item in tray.menu}
    items["Pause for 15 minutes"](tray._icon)
    tray.set_state(PAUSED, format_tooltip(PAUSED))
    texts = [str(item) for item in tray.menu]
    assert "Resume" in texts and "Pause for 15 minutes" not in texts
    {str(item): item for item in tray.menu}["Resume"](tray._icon)
    tray.menu(tray._icon)  # what a click does without a menu: the default item
    items["Quit"](tray._icon)
    assert calls.calls == [("pause", 900.0), ("resume",), ("open_logs",), ("quit",)]


def test_menu_callback_errors_are_contained(make_tray, caplog):
    def broken(*_):
        raise RuntimeError("agent bug")

    tray = make_tray(TrayCallbacks(pause=broken, resume=broken, open_logs=broken, quit=broken))
    with caplog.at_level(logging.ERROR):
        {str(item): item for item in tray.menu}["Open logs folder"](tray._icon)
    assert "agent bug" in caplog.text


def test_real_icon_docks_and_shows_the_state_colour(xorg_backend, make_tray, tmp_path, caplog):
    xserver = xorg_backend
    trayer = Trayer(xserver)
    alerts = []
    tray = make_tray(Callbacks().tray_callbacks(), notifier=lambda t, m: alerts.append((t, m)))
    ready = threading.Event()
    thread = run_in_thread(tray, ready.set)
    try:
        assert ready.wait(DEADLINE), "the tray never became ready"
        assert tray.docked, f"the icon did not dock into trayer: {caplog.text}"

        # Before: not enrolled (grey) — no green anywhere on the screen.
        before = tmp_path / "tray-not-enrolled.png"
        assert not colour_mask(screenshot(xserver, before), COLOURS[PROTECTED]).any()

        tray.set_state(PROTECTED, format_tooltip(PROTECTED, 0.87))
        shot = tmp_path / "tray-protected.png"
        green = wait_for_colour(xserver, shot, COLOURS[PROTECTED])
        keep(shot)
        assert green.sum() >= 150, f"only {green.sum()} pixels of the protected colour; see {shot}"
        rows, cols = np.nonzero(green)
        assert rows.max() < 32 and cols.min() > xserver.width - 100, "the colour is not in the tray (top right)"
        assert window_names(xserver, "mouseguard: protected"), "the tooltip (window name) was not updated"

        tray.set_state(LOCKED, format_tooltip(LOCKED, 0.12))
        shot = tmp_path / "tray-locked.png"
        red = wait_for_colour(xserver, shot, COLOURS[LOCKED])
        keep(shot)
        assert red.sum() >= 150, f"only {red.sum()} pixels of the locked colour; see {shot}"
        assert not colour_mask(np.asarray(Image.open(shot).convert("RGB")), COLOURS[PROTECTED]).any()
        assert window_names(xserver, "mouseguard: locked")
        assert tray.shown == (LOCKED, format_tooltip(LOCKED, 0.12))

        # A bad state from the agent is logged by the tray's updater, never raised at the caller.
        with caplog.at_level(logging.ERROR, logger="mouseguard.tray"):
            tray.set_state("no such state", "mouseguard: ?")
            deadline = time.monotonic() + DEADLINE
            while "could not show state" not in caplog.text and time.monotonic() < deadline:
                time.sleep(0.05)
        assert "could not show state" in caplog.text
        assert tray.shown[0] == LOCKED

        # xorg cannot notify: the alert must still reach the user through the fallback.
        tray.notify("mouseguard: test alert", "someone else")
        assert alerts == [("mouseguard: test alert", "someone else")]
    finally:
        tray.stop()
        thread.join(DEADLINE)
        trayer.stop()
    assert not thread.is_alive(), "tray.run did not return after stop()"


def test_run_reraises_a_failed_start_and_warns_when_nothing_docks(make_tray, caplog):
    tray = make_tray(Callbacks().tray_callbacks())

    def on_ready():
        raise RuntimeError("agent failed to start")

    with caplog.at_level(logging.WARNING, logger="mouseguard.tray"):
        with pytest.raises(RuntimeError, match="agent failed to start"):
            tray.run(on_ready)  # no trayer here: the icon cannot dock
    assert "no system tray host" in caplog.text
    # xorg has no menu: the log says where pause, resume and stop are instead
    assert "has no menu: pause, resume and stop with `mouseguard pause [MIN]`" in caplog.text


def test_pystrays_docking_failure_is_one_line_without_traceback():
    from agent.tray import _undocked_without_traceback

    try:
        raise AssertionError
    except AssertionError:
        record = logging.LogRecord("pystray._base", logging.ERROR, __file__, 1, "Failed to dock icon", (),
                                   sys.exc_info())
    assert _undocked_without_traceback(record)
    text = logging.Formatter("%(levelname)s %(message)s").format(record)
    assert text.count("\n") == 0 and "Traceback" not in text and text.startswith("WARNING no tray host")
    other = logging.LogRecord("pystray._base", logging.ERROR, __file__, 1, "something else", (), None)
    assert _undocked_without_traceback(other) and other.levelno == logging.ERROR  # left alone
