"""The store writer: a bus consumer that moves telemetry and events into the store.

Store calls block (DuckDB), so they run in a worker thread; while one write is in flight the
next messages accumulate and are written together, which keeps up with bursts without
one store call per message.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from rackwatch.bus import Bus, Subscription, subjects
from rackwatch.model import Batch, Event

log = logging.getLogger(__name__)


class WritableStore(Protocol):
    def write(self, batch: Batch) -> None: ...
    def write_events(self, events: list[Event]) -> None: ...


class StoreWriter:
    def __init__(self, bus: Bus, store: WritableStore, *, max_pending: int = 100_000) -> None:
        self._bus = bus
        self._store = store
        self._max_pending = max_pending
        self.n_samples = 0
        self.n_events = 0
        self.n_errors = 0
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
            await self._write_batches(pending)
            pending = []
        await self._write_batches(pending)

    async def _drain_events(self, subscription: Subscription) -> None:
        pending: list[Event] = []
        async for _subject, event in subscription:
            pending.append(event)
            if subscription.pending:
                continue
            await self._write_events(pending)
            pending = []
        await self._write_events(pending)

    async def _write_batches(self, batches: list[Batch]) -> None:
        if not batches:
            return
        batch = Batch.concat(batches)
        try:
            await asyncio.to_thread(self._store.write, batch)
            self.n_samples += len(batch)
        except Exception:
            self.n_errors += 1
            log.exception("writing %d samples to the store failed", len(batch))

    async def _write_events(self, events: list[Event]) -> None:
        if not events:
            return
        try:
            await asyncio.to_thread(self._store.write_events, events)
            self.n_events += len(events)
        except Exception:
            self.n_errors += 1
            log.exception("writing %d events to the store failed", len(events))
