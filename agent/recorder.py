"""Recording live mouse use to a file: ``mouseguard record`` and live enrolment.

The hook fills a ring buffer; this loop drains it, keeps the events and counts active
movement time (gaps between events no longer than the idle gap). The file is rewritten
atomically every minute and at the end, so Ctrl-C or a crash keeps what was recorded.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time

import numpy as np

from agent.events import EVENT_DTYPE
from agent.recordings import write_recording

CHECKPOINT_SECONDS = 60.0


def active_seconds(t: np.ndarray, gap: float = 2.0) -> float:
    """Time someone was using the mouse: steps between events, without idle gaps over ``gap``
    seconds (or clocks running back). Every "active hour" in the project is counted this way."""
    dt = np.diff(t)
    return float(dt[(dt > 0) & (dt <= gap)].sum())


def active_clock(t: np.ndarray, gap: float = 2.0) -> np.ndarray:
    """:func:`active_seconds` elapsed at each event (0 at the first)."""
    dt = np.diff(t, prepend=t[:1])
    return np.cumsum(np.where((dt > 0) & (dt <= gap), dt, 0.0))


@contextlib.contextmanager
def _signals_stop(stop: threading.Event):
    """While recording, let Ctrl-C, SIGTERM and SIGHUP (a logout, ``kill``, a closed terminal)
    set ``stop`` — the loop then ends and writes what was recorded — and put the previous
    handlers back afterwards. Setting a flag, not raising KeyboardInterrupt: an exception
    raised from a handler lands wherever the main thread is, and inside a lock's wait it left
    the lock broken ("release unlocked lock") or the process hung."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers belong to the main thread; the agent's learner has its own stop
        return
    names = [n for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n)]  # Windows: no SIGHUP
    previous = {n: signal.signal(getattr(signal, n), lambda *_: stop.set()) for n in names}
    try:
        yield
    finally:
        for n, handler in previous.items():
            signal.signal(getattr(signal, n), handler)


def _say_stopped() -> None:
    print(file=sys.stderr)
    print("stopped: keeping what was recorded", file=sys.stderr)


def record(out_path, *, active_minutes: float | None = None, wall_minutes: float | None = None,
           progress=None, hook_factory=None, stop_event=None, key: bytes | None = None) -> np.ndarray:
    """Record until enough active (or wall-clock) minutes, Ctrl-C (or SIGTERM, SIGHUP), or
    ``stop_event``.

    Returns the events; they are also in ``out_path`` (project format, sealed with ``key`` if
    given: agent/sealing.py) however it ends.
    """
    from agent.capture import MouseHook
    from agent.ringbuffer import RingBuffer

    buffer = RingBuffer()
    hook = (hook_factory or MouseHook)(buffer)
    chunks: list[np.ndarray] = []
    active, last_t = 0.0, None
    start = last_save = time.monotonic()
    signalled = threading.Event()
    try:
        hook.start()  # inside the try: a Ctrl-C during the start still stops the listener
        with _signals_stop(signalled):
            while not signalled.is_set():
                buffer.wait(0.5)
                events, _ = buffer.drain()
                if len(events):
                    t = events["t"] if last_t is None else np.concatenate(([last_t], events["t"]))
                    active += active_seconds(t)
                    last_t = float(events["t"][-1])
                    chunks.append(events)
                now = time.monotonic()
                if progress:
                    progress(active, now - start, sum(map(len, chunks)))
                if now - last_save >= CHECKPOINT_SECONDS and chunks:
                    write_recording(out_path, np.concatenate(chunks), key)
                    last_save = now
                if active_minutes is not None and active >= active_minutes * 60:
                    break
                if wall_minutes is not None and now - start >= wall_minutes * 60:
                    break
                if stop_event is not None and stop_event.is_set():
                    break
                if not hook.alive:
                    raise RuntimeError(f"the mouse hook stopped: {hook.error}")
        if signalled.is_set():
            _say_stopped()
    except KeyboardInterrupt:  # Ctrl-C while the hook was starting
        _say_stopped()
    finally:
        # Written before the hook is stopped: stopping a hook whose X server has gone raises,
        # and what was recorded must not go with it.
        events = np.concatenate(chunks) if chunks else np.zeros(0, EVENT_DTYPE)
        events = np.concatenate((events, buffer.drain()[0]))
        if len(events):
            write_recording(out_path, events, key)
        try:
            hook.stop(timeout=0.5)
        except Exception as exc:  # the display is gone: nothing left to stop
            print(f"\nthe mouse hook ended with an error: {exc}", file=sys.stderr)
    return events
