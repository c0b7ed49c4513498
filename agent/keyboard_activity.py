"""That keys are being pressed — never which — so the decision can judge time, not only blocks.

Blocks come from mouse movement only. Someone who sits down at the unlocked desk and only types
(a terminal, a mail) produces no block and was never judged; a mouse jiggler's nudge a minute
neither. The agent therefore also counts input without a judged block
(``RollingDecision.activity``), and keys are input. This listener hands on the moment of each
key press and nothing else: the key itself is dropped in the callback, never stored or logged.

The callback does O(1) work and never raises: pynput silently stops a listener whose callback
raised, and Windows removes a slow low-level hook.
"""

from __future__ import annotations

import logging
import threading
import time

from agent.errors import one_line

log = logging.getLogger("mouseguard.agent")


class KeyboardActivity:
    def __init__(self, on_key, clock=time.monotonic):
        """``on_key(t)`` is called with ``clock()`` at each key press."""
        self.on_key = on_key
        self.clock = clock
        self._listener = None

    def start(self) -> KeyboardActivity:
        """Start listening; without a keyboard hook (no display, a platform pynput cannot hook)
        say so once and go on: the mouse is still watched."""
        try:
            from pynput import keyboard

            owner = self

            class Listener(keyboard.Listener):
                def run(self):
                    # pynput hands an X error at the end (the server gone, a stop racing its
                    # flush) to threading.excepthook; say it once, as the mouse hook does
                    try:
                        super().run()
                    except Exception as exc:
                        if owner._listener is self:
                            log.warning("keys are no longer watched: %s", one_line(exc))

            self._listener = Listener(on_press=self._on_press)
            self._listener.daemon = True
            self._listener.start()
        except Exception as exc:  # ImportError without a display; the backends' own errors
            self._listener = None
            log.warning("keys are not watched (%s): typing without the mouse is not judged", one_line(exc))
        return self

    def _on_press(self, key) -> None:
        del key  # which key is none of the agent's business
        try:
            self.on_key(self.clock())
        except Exception:  # an exception here would end pynput's listener without a word
            log.exception("noting a key press failed")

    @property
    def alive(self) -> bool:
        return self._listener is not None and self._listener.is_alive()

    def stop(self) -> None:
        """Stop listening without waiting: on X11 pynput's stop() returns only at the next input
        event (and waits for ever for a listener still connecting), so it runs on its own thread."""
        listener, self._listener = self._listener, None
        if listener is not None and listener.is_alive():
            threading.Thread(target=_stop_quietly, args=(listener,), name="mouseguard-keyboard-stop",
                             daemon=True).start()


def _stop_quietly(listener) -> None:
    try:
        listener.stop()
        _end_x11_recording(listener)
    except Exception:  # the X server has gone (the session ended): nothing is left to stop
        pass


def _end_x11_recording(listener) -> None:
    """On X11 pynput's stop() queues the XRecord "disable" on the very connection its listener
    thread is blocked reading, so it goes out only with the next key event: until someone types,
    the thread and its two X connections stay. Disabling the context (pynput's ``_context``) from
    a connection of our own ends it at once."""
    context = getattr(listener, "_context", None)
    if context is None or not hasattr(listener, "_display_record"):  # not the X11 backend
        return
    import Xlib.display

    display = Xlib.display.Display()
    try:
        display.record_disable_context(context)
        display.flush()
    finally:
        display.close()
