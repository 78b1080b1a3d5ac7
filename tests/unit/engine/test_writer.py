import asyncio

from rackwatch.bus import MemoryBus, subjects
from rackwatch.engine.writer import StoreWriter
from rackwatch.model import Batch, Event


class FlakyStore:
    """Fails the first `n_failures` writes of each kind, then stores."""

    def __init__(self, n_failures: int) -> None:
        self.failures = {"write": n_failures, "events": n_failures}
        self.samples: list[Batch] = []
        self.events: list[Event] = []

    def write(self, batch: Batch) -> None:
        if self.failures["write"]:
            self.failures["write"] -= 1
            raise OSError("disk busy")
        self.samples.append(batch)

    def write_events(self, events: list[Event]) -> None:
        if self.failures["events"]:
            self.failures["events"] -= 1
            raise OSError("disk busy")
        self.events.extend(events)


def run_writer(store: FlakyStore, n: int, **kwargs: int) -> StoreWriter:
    async def scenario() -> StoreWriter:
        bus = MemoryBus()
        writer = StoreWriter(bus, store, **kwargs)
        task = asyncio.create_task(writer.run())
        await writer.ready.wait()
        for i in range(n):
            await bus.publish(subjects.telemetry("t"), Batch.of([i], [0], [float(i)]))
            await bus.publish(subjects.events("e"), Event(ts=i, kind="fault.injected", entity="x"))
            await asyncio.sleep(0.01)  # one write per message
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

    def write(self, batch: Batch) -> None:
        if int(batch.ts.max()) < 3:
            raise OSError("disk busy")
        self.samples.append(batch)

    def write_events(self, events: list[Event]) -> None:
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
