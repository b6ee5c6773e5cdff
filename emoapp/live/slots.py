"""The hand-over points between capture threads and worker threads.

A device callback must return at once, and a slow model must never make input pile up.
So sources only ever *put* into one of these, and a worker *takes*:

- :class:`LatestSlot` holds one item: a new item replaces the one still waiting, which is
  counted as dropped (video frames: the encoder always sees the newest frame, and stale
  frames are never queued);
- :class:`RingBuffer` holds a bounded run of items (audio chunks, text entries): when a
  put goes past the capacity the oldest items are dropped and counted.

Both are thread-safe, never block a put, and can be closed: ``close()`` empties them at
once (the memory is freed there and then), wakes any waiting taker, and refuses further
puts.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class LatestSlot(Generic[T]):
    """Holds at most one item; a put replaces a waiting item (latest wins)."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._item: T | None = None
        self._full = False
        self._closed = False
        self.puts = 0
        """Items put (accepted) so far."""
        self.dropped = 0
        """Items replaced before anyone took them, or discarded by clear()/close()."""

    def put(self, item: T) -> bool:
        """Offer an item; returns False when the slot is closed (the item is discarded).
        Never blocks beyond a short lock."""
        with self._cond:
            if self._closed:
                return False
            if self._full:
                self.dropped += 1
            self._item = item
            self._full = True
            self.puts += 1
            self._cond.notify()
            return True

    def take(self, timeout: float | None = None) -> T | None:
        """The waiting item (emptying the slot), waiting up to ``timeout`` seconds for one;
        None when there is none by then or the slot is closed."""
        with self._cond:
            if not self._full and not self._closed:
                self._cond.wait_for(lambda: self._full or self._closed, timeout)
            if not self._full:
                return None
            item, self._item, self._full = self._item, None, False
            return item

    def clear(self) -> int:
        """Discard the waiting item, if any; returns how many were discarded (0 or 1)."""
        with self._cond:
            if not self._full:
                return 0
            self._item, self._full = None, False
            self.dropped += 1
            return 1

    def close(self) -> None:
        """Empty the slot, wake a waiting taker, and refuse further puts."""
        with self._cond:
            if self._full:
                self.dropped += 1
            self._item, self._full = None, False
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    def __len__(self) -> int:
        return 1 if self._full else 0


class RingBuffer(Generic[T]):
    """A bounded FIFO: puts beyond ``capacity`` drop the oldest items.

    ``size`` measures an item (default: 1 each), so capacity can be a count of entries or
    seconds of audio (``size=lambda chunk: chunk.duration``). The newest item is always
    kept, even when it alone exceeds the capacity.
    """

    def __init__(self, capacity: float, size: Callable[[T], float] | None = None) -> None:
        if capacity <= 0:
            raise ValueError("capacity must be positive")
        self.capacity = float(capacity)
        self._size = size or (lambda _item: 1.0)
        self._cond = threading.Condition(threading.Lock())
        self._items: deque[tuple[T, float]] = deque()
        self._total = 0.0
        self._closed = False
        self.puts = 0
        self.dropped = 0
        """Items dropped because the buffer was full, or discarded by clear()/close()."""
        self.dropped_size = 0.0
        """The same, measured with ``size`` (e.g. seconds of audio)."""

    def put(self, item: T) -> bool:
        """Append an item, dropping the oldest while over capacity; False when closed."""
        size = float(self._size(item))
        with self._cond:
            if self._closed:
                return False
            self._items.append((item, size))
            self._total += size
            self.puts += 1
            while self._total > self.capacity and len(self._items) > 1:
                _, old = self._items.popleft()
                self._total -= old
                self.dropped += 1
                self.dropped_size += old
            self._cond.notify()
            return True

    def drain(self, timeout: float | None = None) -> list[T]:
        """Every waiting item, oldest first (emptying the buffer), waiting up to
        ``timeout`` seconds for at least one; [] when none came or the buffer is closed."""
        with self._cond:
            if not self._items and not self._closed:
                self._cond.wait_for(lambda: bool(self._items) or self._closed, timeout)
            items = [item for item, _ in self._items]
            self._items.clear()
            self._total = 0.0
            return items

    def _discard(self) -> int:
        n = len(self._items)
        self.dropped += n
        self.dropped_size += self._total
        self._items.clear()
        self._total = 0.0
        return n

    def clear(self) -> int:
        """Discard every waiting item; returns how many."""
        with self._cond:
            return self._discard()

    def discard_if(self, unwanted: Callable[[T], bool]) -> int:
        """Discard the waiting items ``unwanted`` picks (e.g. those of a withdrawn
        capture); returns how many."""
        with self._cond:
            kept = deque((item, size) for item, size in self._items if not unwanted(item))
            gone = len(self._items) - len(kept)
            if gone:
                lost = self._total - sum(size for _, size in kept)
                self._items = kept
                self._total -= lost
                self.dropped += gone
                self.dropped_size += lost
            return gone

    def close(self) -> None:
        """Empty the buffer, wake a waiting taker, and refuse further puts."""
        with self._cond:
            self._discard()
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def size(self) -> float:
        """What the buffer holds now, measured with ``size``."""
        return self._total

    def __len__(self) -> int:
        return len(self._items)
