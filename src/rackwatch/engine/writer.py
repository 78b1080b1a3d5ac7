"""The store writer: a bus consumer that moves telemetry and events into the store.

Store calls block (DuckDB), so they run in a worker thread; while one write is in flight the
next messages accumulate and are written together, which keeps up with bursts without
one store call per message. A write that fails is kept and tried again with the next one (up
to `max_retry_rows` samples or events; beyond that the oldest are dropped and counted), so a
passing store error loses nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol, TypeVar

from rackwatch.bus import Bus, Subscription, subjects
from rackwatch.model import Batch, Event

log = logging.getLogger(__name__)

T = TypeVar("T")


class WritableStore(Protocol):
    def write(self, batch: Batch) -> None: ...
    def write_events(self, events: list[Event]) -> None: ...


class StoreWriter:
    def __init__(
        self,
        bus: Bus,
        store: WritableStore,
        *,
        max_pending: int = 100_000,
        max_retry_rows: int = 20_000_000,
    ) -> None:
        self._bus = bus
        self._store = store
        self._max_pending = max_pending
        self._max_retry_rows = max_retry_rows
        self.n_samples = 0
        self.n_events = 0
        self.n_errors = 0
        self.n_dropped = 0
        """Samples and events given up after failed writes (over `max_retry_rows`)."""
        self.ready = asyncio.Event()

    async def run(self) -> None:
        """Consume until the bus closes; then write what is left."""
        async with (
            self._bus.subscribe(f"{subjects.TELEMETRY}.>", max_pending=self._max_pending) as tel,
            self._bus.subscribe(f"{subjects.EVENTS}.>", max_pending=self._max_pending) as evs,
        ):
            self.ready.set()
            await asyncio.gather(self._drain_telemetry(tel), self._drain_events(evs))

    async def _drain_telemetry(self, subscription: Subscription) -> None:
        pending: list[Batch] = []
        async for _subject, batch in subscription:
            pending.append(batch)
            if subscription.pending:
                continue  # more already queued: gather them into one write
            pending = [] if await self._write_batches(pending) else self._bounded(pending, len)
        if not await self._write_batches(pending):
            self._give_up(sum(len(b) for b in pending), "samples")

    async def _drain_events(self, subscription: Subscription) -> None:
        pending: list[Event] = []
        async for _subject, event in subscription:
            pending.append(event)
            if subscription.pending:
                continue
            if await self._write_events(pending):
                pending = []
            else:
                pending = self._bounded(pending, lambda _event: 1)
        if not await self._write_events(pending):
            self._give_up(len(pending), "events")

    async def _write_batches(self, batches: list[Batch]) -> bool:
        if not batches:
            return True
        batch = Batch.concat(batches)
        try:
            await asyncio.to_thread(self._store.write, batch)
        except Exception:
            self.n_errors += 1
            log.exception("writing %d samples to the store failed; will retry", len(batch))
            return False
        self.n_samples += len(batch)
        return True

    async def _write_events(self, events: list[Event]) -> bool:
        if not events:
            return True
        try:
            await asyncio.to_thread(self._store.write_events, events)
        except Exception:
            self.n_errors += 1
            log.exception("writing %d events to the store failed; will retry", len(events))
            return False
        self.n_events += len(events)
        return True

    def _bounded(self, items: list[T], size: Callable[[T], int]) -> list[T]:
        """Drop the oldest items kept for a retry while they exceed `max_retry_rows`."""
        total = sum(size(item) for item in items)
        while items and total > self._max_retry_rows:
            total -= size(items[0])
            self._give_up(size(items.pop(0)), "rows")
        return items

    def _give_up(self, n: int, what: str) -> None:
        if n:
            self.n_dropped += n
            log.error("gave up writing %d %s to the store after repeated failures", n, what)
