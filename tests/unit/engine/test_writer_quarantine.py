"""The store writer isolates a record the store refuses (issue 8): the others are written, the
bad one is quarantined (logged once, counted, never retried), and a store that is down is not
mistaken for bad records."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

from rackwatch.bus import MemoryBus, subjects
from rackwatch.engine.writer import StoreWriter
from rackwatch.model import Batch, Event, SeriesRegistry
from rackwatch.store.duckdb import DuckDBStore

POISON_SERIES = 666
T0 = 1_767_225_600_000


class PickyStore:
    """Refuses any write that holds a poisoned record, as a real store refuses a whole write
    when one row does not fit; counts every call."""

    def __init__(self, *, down: bool = False) -> None:
        self.down = down
        self.samples: list[int] = []
        self.events: list[Event] = []
        self.n_calls = 0

    def write(self, batch: Batch) -> None:
        self.n_calls += 1
        if self.down or POISON_SERIES in batch.series:
            raise ValueError("series id out of range")
        self.samples.extend(int(t) for t in batch.ts)

    def write_events(self, events: list[Event]) -> None:
        self.n_calls += 1
        if self.down or any(e.entity == "poison" for e in events):
            raise OverflowError("end_ts does not fit in int64")
        self.events.extend(events)


def event(ts: int, entity: str = "c01/r01/s01") -> Event:
    return Event(ts=ts, kind="fault.injected", entity=entity)


def batch(ts: int, series: int = 0) -> Batch:
    return Batch.of([ts], [series], [float(ts)])


def write_all_at_once(
    store: Any, batches: list[Batch], events: list[Event], **kwargs: int
) -> StoreWriter:
    """Publish everything before the writer drains (so it is gathered into one write), then
    close the bus and let the writer finish."""

    async def scenario() -> StoreWriter:
        bus = MemoryBus()
        writer = StoreWriter(bus, store, **kwargs)
        task = asyncio.create_task(writer.run())
        await writer.ready.wait()
        for b in batches:
            await bus.publish(subjects.telemetry("t"), b)
        for e in events:
            await bus.publish(subjects.events("e"), e)
        bus.close()
        await task
        return writer

    return asyncio.run(scenario())


def test_one_bad_record_is_quarantined_and_every_other_is_written(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = PickyStore()
    events = [event(i) for i in range(10)]
    events[3] = event(3, "poison")
    batches = [batch(i, POISON_SERIES if i == 6 else 0) for i in range(10)]
    with caplog.at_level(logging.ERROR, logger="rackwatch.engine.writer"):
        writer = write_all_at_once(store, batches, events)
    assert [e.ts for e in store.events] == [0, 1, 2, 4, 5, 6, 7, 8, 9]  # in order
    assert store.samples == [0, 1, 2, 3, 4, 5, 7, 8, 9]
    assert writer.n_quarantined == 2 and writer.n_dropped == 0
    assert list(writer.quarantined) in ([batches[6], events[3]], [events[3], batches[6]])
    assert writer.n_events == 9 and writer.n_samples == 9
    said = [r.getMessage() for r in caplog.records if "quarantined" in r.getMessage()]
    assert len(said) == 2  # once per bad record
    assert any("poison" in m and "int64" in m for m in said)


def test_bad_records_in_both_halves_are_all_found() -> None:
    store = PickyStore()
    events = [event(i, "poison" if i in (1, 2, 13) else "c01") for i in range(16)]
    writer = write_all_at_once(store, [], events)
    assert [e.ts for e in store.events] == [i for i in range(16) if i not in (1, 2, 13)]
    assert writer.n_quarantined == 3 and writer.n_dropped == 0


def test_a_store_that_is_down_is_probed_a_few_times_not_record_by_record() -> None:
    store = PickyStore(down=True)
    writer = write_all_at_once(store, [], [event(i) for i in range(1000)])
    assert writer.n_quarantined == 0  # nothing was written: the store is to blame, not a record
    assert writer.n_dropped == 1000  # given up only when the bus closed
    # two passes (the write, and the last one when the bus closed), each one write and at most
    # about 2 x log2(1000) probes: not 1000
    assert store.n_calls <= 50


def test_an_event_whose_end_overflows_int64_does_not_stop_event_storage(tmp_path: Path) -> None:
    """The issue's record: a fault whose end time does not fit the events table."""
    store = DuckDBStore(tmp_path / "store", SeriesRegistry(), clock=lambda: T0)
    try:
        bad = Event(ts=T0, kind="fault.injected", entity="c01", end_ts=2**70)
        events = [event(T0 - 1000), bad, event(T0 + 1000), event(T0 + 2000)]
        writer = write_all_at_once(store, [], events)
        stored = store.events(T0 - 10_000, T0 + 10_000)
    finally:
        store.close()
    assert [e.ts for e in stored] == [T0 - 1000, T0 + 1000, T0 + 2000]
    assert writer.n_quarantined == 1 and list(writer.quarantined) == [bad]
