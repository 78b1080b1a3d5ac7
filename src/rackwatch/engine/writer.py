"""The store writer: a bus consumer that moves telemetry and events into the store.

Store calls block (DuckDB), so they run in a worker thread; while one write is in flight the
next messages accumulate and are written together, which keeps up with bursts without one
store call per message.

A write that fails is kept and tried again with the next one (up to `max_retry_rows` samples
or events; beyond that the oldest are dropped and counted), so a passing store error loses
nothing. One record the store can never take (an event whose end does not fit its column, a
batch it refuses) must not hold the others back: when a write fails, its records are written
again by halves, in order (a half that fails is split again) to find the culprit. A record
that fails alone, twice, in a pass where other records were written is quarantined: logged
once with a short excerpt, counted in `n_quarantined`, kept among the last `quarantined`, and
never tried again. When nothing at all can be written (the store is down), the search stops
after a few probes and every record waits for the next write.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from rackwatch.bus import Bus, Subscription, subjects
from rackwatch.engine.inventory import split_announcements
from rackwatch.model import Batch, Event
from rackwatch.store.base import EntityRecord

log = logging.getLogger(__name__)

T = TypeVar("T", Batch, Event)
QUARANTINE_KEPT = 16
"""Quarantined records kept in memory for inspection (the rest are only logged and counted)."""
_EXCERPT = 200


class WritableStore(Protocol):
    def write(self, batch: Batch) -> None: ...
    def write_events(self, events: list[Event]) -> None: ...
    def upsert_inventory(self, entities: Sequence[EntityRecord]) -> None: ...


@dataclass(eq=False)
class _Lane(Generic[T]):
    """Records of one kind (telemetry batches, or events) on their way to the store."""

    what: str
    write: Callable[[list[T]], None]
    """One blocking store call for all the records given."""
    size: Callable[[T], int]
    """Rows in a record (samples of a batch; 1 for an event)."""
    describe: Callable[[T], str]
    pending: list[T] = field(default_factory=list)
    n_written: int = 0
    wrote_in_pass: bool = False
    last_error: BaseException | None = None


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
        self._max_pending = max_pending
        self._max_retry_rows = max_retry_rows
        self._telemetry = _Lane[Batch](
            "samples", lambda batches: store.write(Batch.concat(batches)), len, _describe_batch
        )
        self._events = _Lane[Event]("events", self._events_writer(store), lambda _e: 1, repr)
        self.n_errors = 0
        """Writes that failed (their records were retried, or a bad one isolated)."""
        self.n_dropped = 0
        """Samples and events given up after failed writes (over `max_retry_rows`)."""
        self.n_malformed_announcements = 0
        """`inventory.item` events without a kind or attributes (left out; a retried write
        may count one again)."""
        self.n_quarantined = 0
        """Samples and events of the records the store refused while it took the others."""
        self.quarantined: deque[Batch | Event] = deque(maxlen=QUARANTINE_KEPT)
        """The last quarantined records, newest last."""
        self.ready = asyncio.Event()

    def _events_writer(self, store: WritableStore) -> Callable[[list[Event]], None]:
        """Events go to the store's events; the inventory entries that producers with no
        store announce on the bus (`inventory.item`) go to its inventory (an upsert: one
        announced again changes nothing)."""

        def write(events: list[Event]) -> None:
            split = split_announcements(events)
            if split.entities:
                store.upsert_inventory(split.entities)
            if split.events:
                store.write_events(split.events)
            self.n_malformed_announcements += split.n_malformed

        return write

    @property
    def n_samples(self) -> int:
        return self._telemetry.n_written

    @property
    def n_events(self) -> int:
        return self._events.n_written

    async def run(self) -> None:
        """Consume until the bus closes; then write what is left."""
        async with (
            self._bus.subscribe(f"{subjects.TELEMETRY}.>", max_pending=self._max_pending) as tel,
            self._bus.subscribe(f"{subjects.EVENTS}.>", max_pending=self._max_pending) as evs,
        ):
            self.ready.set()
            await asyncio.gather(self._drain(tel, self._telemetry), self._drain(evs, self._events))

    async def _drain(self, subscription: Subscription, lane: _Lane[Any]) -> None:
        # A bus whose subscriptions acknowledge on demand (a store worker's, ack_later): what
        # was read is acknowledged once written, so a crash before that has it come again.
        acknowledge = getattr(subscription, "ack_held", None)
        async for _subject, record in subscription:
            lane.pending.append(record)
            if subscription.pending:
                continue  # more already queued: gather them into one write
            await self._flush(lane)
            if not lane.pending and acknowledge is not None:
                await acknowledge()  # a durable bus's messages, now written
        await self._flush(lane)
        if not lane.pending and acknowledge is not None:
            await acknowledge()
        self._give_up(lane, lane.pending)

    async def _flush(self, lane: _Lane[T]) -> None:
        """Write the lane's pending records; keep for the next write those the store could
        not take now, quarantine those it will never take."""
        records, lane.pending = lane.pending, []
        lane.wrote_in_pass = False
        if not records or await self._try(lane, records):
            return
        self.n_errors += 1
        log.error(
            "writing %d %s to the store failed",
            sum(map(lane.size, records)),
            lane.what,
            exc_info=lane.last_error,
        )
        alone = await self._isolate(lane, records)
        if alone is None or not lane.wrote_in_pass:  # the store took nothing: it is the store
            lane.pending = self._bounded(lane, records)
            return
        for record in alone:
            if not await self._try(lane, [record]):
                self._quarantine(lane, record)

    async def _isolate(self, lane: _Lane[T], records: list[T]) -> list[T] | None:
        """Write what can be written of `records` (whose write failed), by halves, in order;
        return the records that failed alone, or None when nothing could be written within a
        budget of probes (a store that is down is not probed record by record)."""
        if len(records) == 1:
            return records
        budget = 2 * len(records).bit_length() + 2
        n_failed = 0
        alone: list[T] = []
        half = len(records) // 2
        untried = [records[half:], records[:half]]  # a stack: the older half comes first
        while untried:
            part = untried.pop()
            if await self._try(lane, part):
                continue
            n_failed += 1
            if n_failed > budget and not lane.wrote_in_pass:
                return None
            if len(part) == 1:
                alone.append(part[0])
            else:
                half = len(part) // 2
                untried += [part[half:], part[:half]]
        return alone

    async def _try(self, lane: _Lane[T], records: list[T]) -> bool:
        try:
            await asyncio.to_thread(lane.write, records)
        except Exception as exc:
            lane.last_error = exc
            return False
        lane.n_written += sum(map(lane.size, records))
        lane.wrote_in_pass = True
        return True

    def _quarantine(self, lane: _Lane[T], record: T) -> None:
        n = lane.size(record)
        self.n_quarantined += n
        self.quarantined.append(record)
        log.error(
            "quarantined %d %s the store refuses while it takes the others (never retried): %s: %s",
            n,
            lane.what,
            _cut(lane.describe(record)),
            _cut(repr(lane.last_error)),
        )

    def _bounded(self, lane: _Lane[T], records: list[T]) -> list[T]:
        """Drop the oldest records kept for a retry while they exceed `max_retry_rows`."""
        total = sum(map(lane.size, records))
        while records and total > self._max_retry_rows:
            oldest = records.pop(0)
            total -= lane.size(oldest)
            self._give_up(lane, [oldest])
        return records

    def _give_up(self, lane: _Lane[T], records: list[T]) -> None:
        n = sum(map(lane.size, records))
        if n:
            self.n_dropped += n
            log.error("gave up writing %d %s to the store after repeated failures", n, lane.what)


def _describe_batch(batch: Batch) -> str:
    if not len(batch):
        return "an empty batch"
    return (
        f"batch of {len(batch)} samples, ts {int(batch.ts.min())}..{int(batch.ts.max())}, "
        f"series {int(batch.series.min())}..{int(batch.series.max())}"
    )


def _cut(text: str) -> str:
    return text if len(text) <= _EXCERPT else text[:_EXCERPT] + f"… ({len(text)} characters)"
