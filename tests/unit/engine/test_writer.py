import asyncio
from collections.abc import Callable
from pathlib import Path

from rackwatch.bus import MemoryBus, subjects
from rackwatch.engine.inventory import announcements
from rackwatch.engine.writer import StoreWriter
from rackwatch.model import Batch, Event, SeriesRegistry
from rackwatch.store.base import EntityRecord
from rackwatch.store.duckdb import DuckDBStore


class FlakyStore:
    """Fails the first `n_failures` writes of each kind, then stores."""

    def __init__(self, n_failures: int) -> None:
        self.failures = {"write": n_failures, "events": n_failures}
        self.attempts = {"write": 0, "events": 0}
        self.busy = 0
        """Writes in progress (in the writer's threads)."""
        self.samples: list[Batch] = []
        self.events: list[Event] = []

    def write(self, batch: Batch) -> None:
        self._attempt("write", lambda: self.store_samples(batch))

    def write_events(self, events: list[Event]) -> None:
        self._attempt("events", lambda: self.store_events(events))

    def _attempt(self, kind: str, store: Callable[[], None]) -> None:
        self.busy += 1
        self.attempts[kind] += 1
        try:
            store()
        finally:
            self.busy -= 1

    def store_samples(self, batch: Batch) -> None:
        if self.failures["write"]:
            self.failures["write"] -= 1
            raise OSError("disk busy")
        self.samples.append(batch)

    def store_events(self, events: list[Event]) -> None:
        if self.failures["events"]:
            self.failures["events"] -= 1
            raise OSError("disk busy")
        self.events.extend(events)


async def written(store: FlakyStore, before: dict[str, int]) -> None:
    """Until the writer has tried the messages just published and is done with them (its
    retries and probes included), so that the next two are not gathered into one write."""
    async with asyncio.timeout(10):
        while any(store.attempts[k] <= before[k] for k in before):
            await asyncio.sleep(0.001)
        idle = 0
        while idle < 3:  # no write in a thread for 3 ticks: the writer waits for the next
            await asyncio.sleep(0.005)
            idle = idle + 1 if not store.busy else 0


def run_writer(store: FlakyStore, n: int, **kwargs: int) -> StoreWriter:
    async def scenario() -> StoreWriter:
        bus = MemoryBus()
        writer = StoreWriter(bus, store, **kwargs)
        task = asyncio.create_task(writer.run())
        await writer.ready.wait()
        for i in range(n):
            before = dict(store.attempts)
            await bus.publish(subjects.telemetry("t"), Batch.of([i], [0], [float(i)]))
            await bus.publish(subjects.events("e"), Event(ts=i, kind="fault.injected", entity="x"))
            await written(store, before)  # one write per message, however loaded the machine
        bus.close()
        await task
        return writer

    return asyncio.run(scenario())


def test_a_failed_write_is_retried_with_the_next_and_nothing_is_lost() -> None:
    store = FlakyStore(n_failures=2)
    writer = run_writer(store, 5)
    assert sorted(int(t) for b in store.samples for t in b.ts) == [0, 1, 2, 3, 4]
    assert [e.ts for e in store.events] == [0, 1, 2, 3, 4]
    assert writer.n_errors == 4 and writer.n_dropped == 0
    assert writer.n_samples == 5 and writer.n_events == 5


class RecoveringStore(FlakyStore):
    """Down until a write carries record 3 (the fourth message): then it stores everything."""

    def __init__(self) -> None:
        super().__init__(n_failures=0)

    def store_samples(self, batch: Batch) -> None:
        if int(batch.ts.max()) < 3:
            raise OSError("disk busy")
        self.samples.append(batch)

    def store_events(self, events: list[Event]) -> None:
        if max(e.ts for e in events) < 3:
            raise OSError("disk busy")
        self.events.extend(events)


def test_retries_are_bounded_and_the_oldest_are_given_up() -> None:
    store = RecoveringStore()
    writer = run_writer(store, 5, max_retry_rows=2)
    kept = sorted(int(t) for b in store.samples for t in b.ts)
    # three writes fail: the third retry holds 3 rows > 2, so the oldest (0) is given up
    assert kept == [1, 2, 3, 4] and writer.n_dropped == 2  # sample 0 and event 0
    assert writer.n_quarantined == 0  # the store was down: no record is to blame


def test_announced_inventory_goes_to_the_inventory_not_the_events(tmp_path: Path) -> None:
    # A twin worker or a bus agent has no store: it announces its entities as events, and the
    # store worker keeps them in the inventory (again: an upsert, nothing twice); a malformed
    # announcement is counted and left out, and holds nothing back.
    store = DuckDBStore(tmp_path / "db", SeriesRegistry())
    rack = EntityRecord("c01/r01", "rack", {"slots": 42})
    server = EntityRecord("c01/r01/s01", "server", {"slot": 1, "model": "R650"})

    async def scenario() -> StoreWriter:
        bus = MemoryBus()
        writer = StoreWriter(bus, store)
        task = asyncio.create_task(writer.run())
        await writer.ready.wait()
        for event in [*announcements([rack, server], 1000), *announcements([server], 2000)]:
            await bus.publish(subjects.events(event.kind), event)
        bad = Event(3000, "inventory.item", "c01/r01/s02", attributes={"kind": ["server"]})
        await bus.publish(subjects.events(bad.kind), bad)
        await bus.publish(subjects.events("fault.injected"), Event(4000, "fault.injected", "x"))
        bus.close()
        await task
        return writer

    try:
        writer = asyncio.run(scenario())
        assert [(r.path, r.kind, dict(r.attributes)) for r in store.inventory()] == [
            ("c01/r01", "rack", {"slots": 42}),
            ("c01/r01/s01", "server", {"slot": 1, "model": "R650"}),
        ]
        assert [e.kind for e in store.events(0, 10_000)] == ["fault.injected"]
        assert writer.n_malformed_announcements == 1
    finally:
        store.close()
