"""The hand-over points between capture and workers: a latest-wins slot that never
queues, and a bounded ring buffer that drops the oldest."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from emoapp.core.messages import AudioChunk
from emoapp.live.slots import LatestSlot, RingBuffer


def test_latest_slot_keeps_only_the_newest_and_counts_the_rest() -> None:
    slot: LatestSlot[int] = LatestSlot()
    assert slot.take(timeout=0) is None
    for i in range(5):
        assert slot.put(i)
    assert len(slot) == 1
    assert slot.take(timeout=0) == 4
    assert slot.take(timeout=0) is None
    assert (slot.puts, slot.dropped) == (5, 4)


def test_latest_slot_take_waits_for_a_put() -> None:
    slot: LatestSlot[str] = LatestSlot()
    timer = threading.Timer(0.05, slot.put, args=("frame",))
    timer.start()
    try:
        assert slot.take(timeout=5) == "frame"
    finally:
        timer.join()


def test_latest_slot_close_empties_wakes_and_refuses() -> None:
    slot: LatestSlot[int] = LatestSlot()
    got: list[int | None] = []
    taker = threading.Thread(target=lambda: got.append(slot.take(timeout=10)))
    taker.start()
    time.sleep(0.05)
    slot.close()
    taker.join(2)
    assert not taker.is_alive() and got == [None]
    assert not slot.put(1)
    assert len(slot) == 0 and slot.closed


def test_latest_slot_clear_discards_the_waiting_item() -> None:
    slot: LatestSlot[int] = LatestSlot()
    slot.put(1)
    assert slot.clear() == 1 and slot.clear() == 0
    assert slot.take(timeout=0) is None and slot.dropped == 1


def test_latest_slot_accounts_for_every_item_under_concurrency() -> None:
    slot: LatestSlot[int] = LatestSlot()
    taken: list[int] = []
    done = threading.Event()

    def consume() -> None:
        while not done.is_set() or len(slot):
            item = slot.take(timeout=0.01)
            if item is not None:
                taken.append(item)
                time.sleep(0.0005)  # a slow consumer

    consumer = threading.Thread(target=consume)
    consumer.start()
    for i in range(5000):
        slot.put(i)
    done.set()
    consumer.join(5)
    assert len(taken) + slot.dropped == 5000
    assert taken == sorted(taken) and taken[-1] == 4999  # in order, newest never lost
    assert slot.dropped > 0


def test_ring_buffer_drops_the_oldest_beyond_capacity() -> None:
    ring: RingBuffer[int] = RingBuffer(3)
    for i in range(5):
        assert ring.put(i)
    assert len(ring) == 3 and ring.dropped == 2
    assert ring.drain(timeout=0) == [2, 3, 4]
    assert ring.drain(timeout=0) == []


def test_ring_buffer_bounds_audio_by_seconds() -> None:
    ring: RingBuffer[AudioChunk] = RingBuffer(1.0, size=lambda c: c.duration)
    chunks = [AudioChunk(i * 0.1, np.zeros(1600, np.float32), 16_000) for i in range(25)]
    for chunk in chunks:
        ring.put(chunk)
    assert ring.size == pytest.approx(1.0)
    assert ring.dropped == 15 and ring.dropped_size == pytest.approx(1.5)
    assert [c.t for c in ring.drain()] == [c.t for c in chunks[15:]]
    # A single item larger than the capacity is still kept (the newest always is).
    ring.put(AudioChunk(9.0, np.zeros(32_000, np.float32), 16_000))
    assert len(ring) == 1


def test_ring_buffer_close_empties_wakes_and_refuses() -> None:
    ring: RingBuffer[int] = RingBuffer(10)
    ring.put(1)
    ring.put(2)
    ring.close()
    assert len(ring) == 0 and ring.dropped == 2 and not ring.put(3)
    assert ring.drain(timeout=1) == []
    with pytest.raises(ValueError):
        RingBuffer(0)
