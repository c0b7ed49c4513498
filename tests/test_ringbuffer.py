"""The ring buffer between the hook thread and the pipeline thread."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from agent.events import EVENT_DTYPE, LEFT, MOVE, NO_BUTTON, PRESSED
from agent.ringbuffer import RingBuffer


def put_moves(buf: RingBuffer, start: int, stop: int) -> None:
    for i in range(start, stop):
        buf.put(float(i), NO_BUTTON, MOVE, i, -i, injected=bool(i % 2))


def test_drain_returns_events_in_order_with_their_fields():
    buf = RingBuffer(capacity=8)
    buf.put(0.5, NO_BUTTON, MOVE, -3, 7)
    buf.put(0.75, LEFT, PRESSED, 10, 20, injected=True)
    events, injected = buf.drain()
    assert events.dtype == EVENT_DTYPE
    assert events.tolist() == [(0.5, NO_BUTTON, MOVE, -3, 7), (0.75, LEFT, PRESSED, 10, 20)]
    assert injected.dtype == np.bool_ and injected.tolist() == [False, True]


def test_drain_empties_and_returns_copies():
    buf = RingBuffer(capacity=4)
    put_moves(buf, 0, 3)
    first, _ = buf.drain()
    assert len(buf) == 0
    empty, empty_injected = buf.drain()
    assert len(empty) == 0 and len(empty_injected) == 0 and empty.dtype == EVENT_DTYPE
    put_moves(buf, 3, 7)  # wraps round the storage and overwrites the drained rows
    second, _ = buf.drain()
    assert first["t"].tolist() == [0.0, 1.0, 2.0]  # untouched by later puts: a copy
    assert second["t"].tolist() == [3.0, 4.0, 5.0, 6.0]
    assert buf.total == 7 and buf.dropped == 0


def test_overflow_keeps_the_newest_and_counts_the_dropped():
    buf = RingBuffer(capacity=5)
    put_moves(buf, 0, 12)
    assert len(buf) == 5
    events, injected = buf.drain()
    assert events["t"].tolist() == [7.0, 8.0, 9.0, 10.0, 11.0]
    assert events["x"].tolist() == [7, 8, 9, 10, 11] and events["y"].tolist() == [-7, -8, -9, -10, -11]
    assert injected.tolist() == [True, False, True, False, True]
    assert buf.dropped == 7 and buf.total == 12


def test_overflow_at_exactly_full_storage():
    buf = RingBuffer(capacity=4)
    put_moves(buf, 0, 4)  # full, the write position back at the start
    assert buf.drain()[0]["t"].tolist() == [0.0, 1.0, 2.0, 3.0]
    assert buf.dropped == 0


def test_wait_times_out_without_events_and_wakes_on_put():
    buf = RingBuffer(capacity=4)
    started = time.monotonic()
    assert buf.wait(0.05) is False
    assert time.monotonic() - started >= 0.04

    woke = threading.Event()

    def consumer():
        if buf.wait(5.0):
            woke.set()

    thread = threading.Thread(target=consumer)
    thread.start()
    time.sleep(0.05)  # let the consumer block first: the point is waking a sleeper
    assert not woke.is_set()
    buf.put(1.0, NO_BUTTON, MOVE, 0, 0)
    thread.join(2.0)
    assert woke.is_set()


def test_wait_blocks_again_after_a_drain():
    buf = RingBuffer(capacity=4)
    buf.put(1.0, NO_BUTTON, MOVE, 0, 0)
    assert buf.wait(0) is True
    buf.drain()
    assert buf.wait(0.01) is False


def test_concurrent_producer_and_consumer_lose_nothing_under_capacity():
    n = 200_000
    buf = RingBuffer(capacity=65536)
    chunks = []
    done = threading.Event()

    def producer():
        for i in range(n):
            buf.put(float(i), NO_BUTTON, MOVE, i, i & 0xFF)
        done.set()

    def consumer():
        while True:
            finished = done.is_set()  # read before draining, so the last drain sees everything
            buf.wait(0.01)
            events, _ = buf.drain()
            if len(events):
                chunks.append(events)
            if finished:
                return

    threads = [threading.Thread(target=producer), threading.Thread(target=consumer)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    events = np.concatenate(chunks)
    assert buf.dropped == 0, "the consumer fell a whole buffer behind; the test cannot judge ordering"
    assert buf.total == n
    np.testing.assert_array_equal(events["x"], np.arange(n))
    np.testing.assert_array_equal(events["t"], np.arange(n, dtype=np.float64))
    assert len(chunks) > 1  # the two threads really interleaved


@pytest.mark.parametrize("capacity", [0, -1, 2.5])
def test_capacity_must_be_a_positive_integer(capacity):
    with pytest.raises(ValueError):
        RingBuffer(capacity)
