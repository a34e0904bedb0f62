"""Group ready files into batches: up to `max_size` files, or what arrived within `max_wait`."""

from __future__ import annotations

import time
from collections import deque
from typing import Callable, Generic, TypeVar

Item = TypeVar("Item")


class Batcher(Generic[Item]):
    """Collect items and release a batch when it is full or its oldest item has waited enough.

    The batcher holds no thread and never sleeps: the caller asks `take()` whenever it wakes up
    and uses `deadline()` to know how long it may sleep.

    Args:
        max_size: Most items in one batch.
        max_wait_seconds: Longest time the oldest item waits for the batch to fill.
        clock: Monotonic time in seconds; tests pass a fake.
    """

    def __init__(
        self,
        max_size: int,
        max_wait_seconds: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ):
        if max_size < 1:
            raise ValueError(f"max_size must be at least 1, got {max_size}")
        self._max_size = max_size
        self._max_wait = max_wait_seconds
        self._clock = clock
        self._items: deque[tuple[float, Item]] = deque()

    def __len__(self) -> int:
        return len(self._items)

    def add(self, item: Item) -> None:
        self._items.append((self._clock(), item))

    def deadline(self) -> float | None:
        """Return the clock time at which the oldest item's batch is due, or None when empty."""
        if not self._items:
            return None
        if len(self._items) >= self._max_size:
            return self._clock()
        return self._items[0][0] + self._max_wait

    def take(self, *, flush: bool = False) -> list[Item]:
        """Return the next due batch, or an empty list when none is due.

        Args:
            flush: Release the waiting items now even if the batch is neither full nor due.
        """
        if not self._items:
            return []
        due = len(self._items) >= self._max_size or self._clock() >= self._items[0][0] + self._max_wait
        if not (due or flush):
            return []
        count = min(self._max_size, len(self._items))
        return [self._items.popleft()[1] for _ in range(count)]

    def drain(self) -> list[Item]:
        """Remove and return every waiting item, oldest first."""
        items = [item for _, item in self._items]
        self._items.clear()
        return items
