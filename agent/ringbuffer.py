"""The ring buffer between the mouse hook and the pipeline.

The hook thread must return from its callback at once (Windows removes a low-level hook whose
callback takes around a second; on X11 a slow callback backs up the RECORD stream), so it only
writes one row here. The pipeline thread drains whatever has arrived, in order, and cuts
blocks from it at its own pace.

Single producer, single consumer. The storage is allocated once: a long-running agent must not
grow memory with the user's activity, and when the consumer falls behind (a laptop resumes, the
scorer stalls) the oldest events are overwritten and counted rather than queued without bound.
"""

from __future__ import annotations

import threading

import numpy as np

from agent.events import EVENT_DTYPE

#: One stored event: the shared event fields, then whether the OS flagged it as synthetic.
#: ``injected`` travels beside the events rather than inside them because recordings and the
#: block cutter have no use for it; the agent may (Windows/macOS mark software input).
RING_DTYPE = np.dtype(EVENT_DTYPE.descr + [("injected", "?")])


class RingBuffer:
    """Fixed-size FIFO of mouse events; :meth:`put` is O(1) and never allocates storage."""

    def __init__(self, capacity: int = 65536):
        if not (isinstance(capacity, int) and capacity >= 1):
            raise ValueError(f"capacity must be a positive integer, not {capacity!r}")
        self._rows = np.zeros(capacity, dtype=RING_DTYPE)
        self._capacity = capacity
        self._lock = threading.Lock()
        # Set by put, cleared by drain (both under the lock), so a put after a drain always
        # wakes the consumer again; a spurious wake-up at worst drains nothing.
        self._arrived = threading.Event()
        self._next = 0  # where the next put writes
        self._pending = 0  # rows written since the last drain, at most capacity
        self._dropped = 0
        self._total = 0

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def dropped(self) -> int:
        """Events overwritten before the consumer drained them."""
        return self._dropped

    @property
    def total(self) -> int:
        """Events ever put, dropped ones included."""
        return self._total

    def __len__(self) -> int:
        """Events waiting to be drained."""
        return self._pending

    def put(self, t: float, button: int, state: int, x: int, y: int, injected: bool = False) -> None:
        """Append one event; on overflow the oldest waiting event is overwritten."""
        with self._lock:
            i = self._next
            self._rows[i] = (t, button, state, x, y, injected)
            self._next = i + 1 if i + 1 < self._capacity else 0
            if self._pending < self._capacity:
                self._pending += 1
            else:
                self._dropped += 1
            self._total += 1
            if not self._arrived.is_set():  # a plain flag read; set() takes a second lock
                self._arrived.set()

    def drain(self) -> tuple[np.ndarray, np.ndarray]:
        """Everything put since the last drain, oldest first: ``(events, injected)`` copies."""
        with self._lock:
            n = self._pending
            start = self._next - n
            if start >= 0:
                rows = self._rows[start:self._next].copy()
            else:  # the waiting rows wrap around the end of the storage
                rows = np.concatenate((self._rows[start:], self._rows[:self._next]))
            self._pending = 0
            self._arrived.clear()
        events = np.empty(n, dtype=EVENT_DTYPE)
        for name in EVENT_DTYPE.names:
            events[name] = rows[name]
        return events, rows["injected"].copy()

    def wait(self, timeout: float | None = None) -> bool:
        """Sleep until an event has been put since the last drain; False on timeout."""
        return self._arrived.wait(timeout)
