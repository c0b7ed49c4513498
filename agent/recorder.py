"""Recording live mouse use to a file: ``mouseguard record`` and live enrolment.

The hook fills a ring buffer; this loop drains it, keeps the events and counts active
movement time (gaps between events no longer than the idle gap). The file is rewritten
atomically every minute and at the end, so Ctrl-C or a crash keeps what was recorded.
"""

from __future__ import annotations

import sys
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


def _stop_on_termination() -> None:
    """Let SIGTERM and SIGHUP (a logout, ``kill``, a closed terminal) stop a recording as Ctrl-C
    does — keeping what was recorded — instead of ending the process before it is written."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return  # signal handlers belong to the main thread; the agent's learner has its own stop

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    for name in ("SIGTERM", "SIGHUP"):
        if hasattr(signal, name):  # Windows has no SIGHUP
            signal.signal(getattr(signal, name), interrupt)


def record(out_path, *, active_minutes: float | None = None, wall_minutes: float | None = None,
           progress=None, hook_factory=None, stop_event=None) -> np.ndarray:
    """Record until enough active (or wall-clock) minutes, Ctrl-C, or ``stop_event``.

    Returns the events; they are also in ``out_path`` (project format) however it ends.
    """
    from agent.capture import MouseHook
    from agent.ringbuffer import RingBuffer

    buffer = RingBuffer()
    hook = (hook_factory or MouseHook)(buffer)
    chunks: list[np.ndarray] = []
    active, last_t = 0.0, None
    start = last_save = time.monotonic()
    try:
        hook.start()  # inside the try: an interrupt during the start still stops the listener
        _stop_on_termination()
        while True:
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
                write_recording(out_path, np.concatenate(chunks))
                last_save = now
            if active_minutes is not None and active >= active_minutes * 60:
                break
            if wall_minutes is not None and now - start >= wall_minutes * 60:
                break
            if stop_event is not None and stop_event.is_set():
                break
            if not hook.alive:
                raise RuntimeError(f"the mouse hook stopped: {hook.error}")
    except KeyboardInterrupt:
        print(file=sys.stderr)
        print("stopped: keeping what was recorded", file=sys.stderr)
    finally:
        # Written before the hook is stopped: stopping a hook whose X server has gone raises,
        # and what was recorded must not go with it.
        events = np.concatenate(chunks) if chunks else np.zeros(0, EVENT_DTYPE)
        events = np.concatenate((events, buffer.drain()[0]))
        if len(events):
            write_recording(out_path, events)
        try:
            hook.stop(timeout=0.5)
        except Exception as exc:  # the display is gone: nothing left to stop
            print(f"\nthe mouse hook ended with an error: {exc}", file=sys.stderr)
    return events
