"""The drop-oldest queue: bounded, one consumer, `put` never blocks.

Every place that hands work from a fast producer to a slower consumer uses it: a bus
subscription, a WebSocket client's outgoing messages, a notifier's lane. When it is full the
oldest item goes, and is counted, so a slow consumer loses its own backlog and never slows the
producer or anyone else.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class DropOldestQueue(Generic[T]):
    """A FIFO of at most `capacity` items; `dropped` counts those pushed out by `put`.

    `close()` ends the waiting: `get` then returns what is left, and None once it is empty.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"a queue holds at least one item, not {capacity}")
        self.capacity = capacity
        self.dropped = 0
        self.closed = False
        self._items: deque[T] = deque()
        self._ready = asyncio.Event()

    def put(self, item: T) -> bool:
        """Queue `item`; True when the oldest item had to go to make room."""
        full = len(self._items) >= self.capacity
        if full:
            self._items.popleft()
            self.dropped += 1
        self._items.append(item)
        self._ready.set()
        return full

    def put_back(self, item: T) -> None:
        """Return an item just taken to the head (a send that failed and will be retried or
        kept); it may briefly exceed the bound by that one item."""
        self._items.appendleft(item)
        self._ready.set()

    def get_nowait(self) -> T | None:
        """The oldest item, or None when the queue is empty."""
        return self._items.popleft() if self._items else None

    async def get(self, timeout_s: float | None = None) -> T | None:
        """The oldest item, waiting for one; None when none came within `timeout_s` (None:
        no limit) or the queue is closed and empty."""
        while not self._items:
            if self.closed:
                return None
            self._ready.clear()
            try:
                async with asyncio.timeout(timeout_s):
                    await self._ready.wait()
            except TimeoutError:
                return None
        return self._items.popleft()

    def close(self) -> None:
        self.closed = True
        self._ready.set()

    def peek_all(self) -> list[T]:
        """Every queued item, oldest first, left in the queue."""
        return list(self._items)

    def clear(self) -> list[T]:
        """Take every queued item out, oldest first."""
        items = list(self._items)
        self._items.clear()
        return items

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[T]:
        return iter(self._items)
