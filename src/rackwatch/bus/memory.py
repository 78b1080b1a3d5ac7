"""In-process bus: one bounded queue per subscriber; a slow subscriber loses its oldest messages
(counted in `dropped`) instead of slowing the publisher or the other subscribers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from rackwatch.bus.queue import DropOldestQueue
from rackwatch.bus.subjects import subject_matches


class MemorySubscription:
    def __init__(self, pattern: str, max_pending: int) -> None:
        self.pattern = pattern
        self._queue: DropOldestQueue[tuple[str, Any]] = DropOldestQueue(max_pending)

    def offer(self, subject: str, message: Any) -> None:
        self._queue.put((subject, message))

    def close(self) -> None:
        self._queue.close()

    @property
    def dropped(self) -> int:
        return self._queue.dropped

    @property
    def pending(self) -> int:
        return len(self._queue)

    async def __aiter__(self) -> AsyncIterator[tuple[str, Any]]:
        while (item := await self._queue.get()) is not None:
            yield item


class MemoryBus:
    """The default bus; `publish` never blocks. Close it to end every subscription's iteration."""

    def __init__(self) -> None:
        self._subscriptions: list[MemorySubscription] = []
        self.published = 0

    async def publish(self, subject: str, message: Any) -> None:
        self.published += 1
        for sub in self._subscriptions:
            if subject_matches(subject, sub.pattern):
                sub.offer(subject, message)

    @asynccontextmanager
    async def subscribe(
        self, pattern: str, *, max_pending: int = 10_000
    ) -> AsyncIterator[MemorySubscription]:
        sub = MemorySubscription(pattern, max_pending)
        self._subscriptions.append(sub)
        try:
            yield sub
        finally:
            self._subscriptions.remove(sub)

    def close(self) -> None:
        for sub in self._subscriptions:
            sub.close()

    @property
    def pending(self) -> int:
        """Messages queued and not yet read, over every subscription."""
        return sum(sub.pending for sub in self._subscriptions)

    @property
    def dropped(self) -> int:
        return sum(sub.dropped for sub in self._subscriptions)
