"""SpacedBus and the series catalogue against the real NATS server (127.0.0.1:4222).

Two processes are played by two SpacedBuses with their own registries: what one publishes the
other reads with its own ids, in the partitions it asked for.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import pytest

from rackwatch.bus.catalogue import CHUNK, CatalogueError
from rackwatch.bus.nats import NatsBus
from rackwatch.bus.spaced import Partition, SpacedBus, partition_of
from rackwatch.model import Batch, SeriesRegistry

pytestmark = pytest.mark.integration
URL = "nats://127.0.0.1:4222"


def run(scenario: Callable[[str], Awaitable[Any]]) -> Any:
    prefix = f"t{uuid.uuid4().hex[:10]}"

    async def main() -> Any:
        try:
            return await scenario(prefix)
        finally:
            cleaner = NatsBus(prefix=prefix)
            await cleaner.connect(URL)
            for name in [*cleaner.stream_names.values(), f"KV_{prefix.upper()}_SERIES"]:
                with contextlib.suppress(Exception):  # a stream never made
                    await cleaner.jetstream.delete_stream(name)
            await cleaner.close()

    return asyncio.run(main())


async def spaced(prefix: str, space: str, **options: Any) -> SpacedBus:
    nats_bus = NatsBus(prefix=prefix)
    await nats_bus.connect(URL)
    bus = SpacedBus(nats_bus, options.pop("registry", SeriesRegistry()), space, **options)
    await bus.start()
    return bus


async def take_rows(sub: Any, rows: int) -> list[tuple[str, Batch]]:
    got: list[tuple[str, Batch]] = []
    it = aiter(sub)
    while sum(len(b) for _, b in got) < rows:
        got.append(await asyncio.wait_for(anext(it), 5))
    return got


def racks_keys(n_racks: int, per_rack: int) -> list[tuple[str, str]]:
    return [
        (f"c01/r{r:02d}/s{s:02d}", "cpu_temperature")
        for r in range(n_racks)
        for s in range(per_rack)
    ]


def test_a_reader_gets_the_publishers_series_under_its_own_ids() -> None:
    async def scenario(prefix: str) -> None:
        reader_registry = SeriesRegistry([("room", "unrelated"), ("room", "other")])
        reader = await spaced(prefix, "reader", registry=reader_registry)
        writer = await spaced(prefix, "writer")
        keys = racks_keys(3, 4)
        ids = writer.registry.intern_many(keys)
        batch = Batch.of(np.full(len(ids), 1000), ids, np.arange(len(ids), dtype=float))
        async with reader.subscribe("telemetry.>") as sub:
            await reader.wait_subscribed(5)
            await writer.publish("telemetry.twin", batch)
            [(subject, got)] = await take_rows(sub, len(ids))
        assert subject == "telemetry.twin"
        names = [tuple(reader_registry.key(int(i))) for i in got.series]
        assert names == keys  # the reader's ids (2 and up) name the writer's series
        assert got.series.min() == 2
        np.testing.assert_array_equal(got.value, batch.value)
        await reader.close()
        await writer.close()

    run(scenario)


def test_partitions_split_by_rack_and_each_worker_reads_only_its_own() -> None:
    async def scenario(prefix: str) -> None:
        readers = [
            await spaced(prefix, f"r{k}", partitions=3, take=Partition(k, 3)) for k in range(3)
        ]
        writer = await spaced(prefix, "writer", partitions=3)
        keys = racks_keys(12, 5)
        ids = writer.registry.intern_many(keys)
        batch = Batch.of(np.full(len(ids), 5000), ids, np.arange(len(ids), dtype=float))
        expected = [sum(partition_of(e, 3) == k for e, _ in keys) for k in range(3)]
        assert all(expected), "the test needs racks in every partition"
        subs = [r.subscribe("telemetry.>") for r in readers]
        opened = [await s.__aenter__() for s in subs]
        for r in readers:
            await r.wait_subscribed(5)
        await writer.publish("telemetry.twin", batch)
        for k, (reader, sub) in enumerate(zip(readers, opened, strict=True)):
            got = Batch.concat([b for _, b in await take_rows(sub, expected[k])])
            racks = {reader.registry.key(int(i)).entity.split("/")[1] for i in got.series}
            assert len(got) == expected[k]
            assert all(partition_of(f"c01/{rack}", 3) == k for rack in racks)
            await asyncio.sleep(0.2)
            assert sub.pending == 0  # nothing of another partition came
        for s in subs:
            await s.__aexit__(None, None, None)
        for r in [*readers, writer]:
            await r.close()

    run(scenario)


def test_a_restarted_publisher_keeps_its_ids_and_a_new_reader_resolves_many_chunks() -> None:
    async def scenario(prefix: str) -> None:
        first = await spaced(prefix, "twin")
        keys = [(f"c01/r01/s{i:05d}", "power_watts") for i in range(CHUNK * 2 + 10)]
        first.registry.intern_many(keys)
        await first.publish("telemetry.twin", Batch.of([1], [0], [1.0]))  # writes the chunks
        await first.close()

        again = await spaced(prefix, "twin")  # a new process: an empty registry at first
        assert again.registry.keys() == first.registry.keys()
        late = again.registry.intern("c01/r09/s01", "power_watts")
        assert late == len(keys)
        reader = await spaced(prefix, "reader")
        async with reader.subscribe("telemetry.twin") as sub:
            await reader.wait_subscribed(5)
            await again.publish("telemetry.twin", Batch.of([7, 7], [late, CHUNK + 3], [1.0, 2.0]))
            [(_, got)] = await take_rows(sub, 2)
        named = [reader.registry.key(int(i)) for i in got.series]
        assert [(k.entity, k.metric) for k in named] == [
            ("c01/r09/s01", "power_watts"),
            keys[CHUNK + 3],
        ]
        for bus in (again, reader):
            await bus.close()

    run(scenario)


def test_a_registry_that_disagrees_with_its_space_is_refused() -> None:
    async def scenario(prefix: str) -> None:
        first = await spaced(prefix, "twin")
        first.registry.intern("c01/r01/s01", "fan_rpm")
        await first.publish("telemetry.twin", Batch.of([1], [0], [1.0]))
        await first.close()
        clash = NatsBus(prefix=prefix)
        await clash.connect(URL)
        bus = SpacedBus(clash, SeriesRegistry([("room", "pue")]), "twin")
        with pytest.raises(CatalogueError, match="another space name"):
            await bus.start()
        await clash.close()

    run(scenario)


def test_ids_no_chunk_names_are_dropped_and_counted() -> None:
    async def scenario(prefix: str) -> None:
        reader = await spaced(prefix, "reader")
        raw = NatsBus(prefix=prefix)
        await raw.connect(URL)
        writer = await spaced(prefix, "writer")
        writer.registry.intern("c01/r01/s01", "fan_rpm")
        async with reader.subscribe("telemetry.>") as sub:
            await reader.wait_subscribed(5)
            await writer.publish("telemetry.twin", Batch.of([1], [0], [1.0]))
            # As if the writer published ids it never put in the catalogue: 0 known, 5 not.
            await raw.publish("telemetry.twin.writer.p0", Batch.of([2, 2], [0, 5], [1.0, 2.0]))
            got = await take_rows(sub, 2)
        assert sum(len(b) for _, b in got) == 2
        assert reader.n_unresolved == 1
        for bus in (reader, writer):
            await bus.close()
        await raw.close()

    run(scenario)


def test_bad_partitions_are_refused() -> None:
    for text in ("3/3", "1", "a/b", "0/0", "-1/2", "0/5000"):
        with pytest.raises(ValueError, match="K/N"):
            Partition.parse(text)


def test_ack_later_holds_messages_unacknowledged_until_the_reader_says_written() -> None:
    async def scenario(prefix: str) -> None:
        async def consumer_acks_pending(bus: SpacedBus) -> int:
            [info] = [
                c
                for c in await bus.nats.jetstream.consumers_info(bus.nats.stream_names["telemetry"])
                if c.name.startswith("store")
            ]
            return int(info.num_ack_pending or 0)

        writer = await spaced(prefix, "writer")
        ids = writer.registry.intern_many(racks_keys(1, 2))
        reader = await spaced(prefix, "reader", durable="store", ack_later=True)
        async with reader.subscribe("telemetry.>") as sub:
            await reader.wait_subscribed(5)
            for t in range(3):
                await writer.publish("telemetry.twin", Batch.of(np.full(2, t), ids, np.ones(2)))
            await take_rows(sub, 6)
            await asyncio.sleep(0.3)
            assert sub.pending == 0
            assert await consumer_acks_pending(reader) == 3  # read, none acknowledged
            await sub.ack_held()
            await asyncio.sleep(0.3)
            assert await consumer_acks_pending(reader) == 0
            await writer.publish("telemetry.twin", Batch.of(np.full(2, 9), ids, np.ones(2)))
            [(_, unwritten)] = await take_rows(sub, 2)
        await reader.close()  # read, never said written: given back
        again = await spaced(prefix, "reader", durable="store", ack_later=True)
        async with again.subscribe("telemetry.>") as sub:
            [(_, redelivered)] = await take_rows(sub, 2)
            assert redelivered.ts.tolist() == unwritten.ts.tolist() == [9, 9]
            await sub.ack_held()
        await again.close()
        await writer.close()

    run(scenario)


def test_a_reader_slower_than_ack_wait_is_not_sent_its_backlog_twice() -> None:
    async def scenario(prefix: str) -> None:
        writer = await spaced(prefix, "writer")
        ids = writer.registry.intern_many(racks_keys(1, 2))
        nats_bus = NatsBus(prefix=prefix, ack_wait_s=1.0)
        await nats_bus.connect(URL)
        reader = SpacedBus(nats_bus, SeriesRegistry(), "reader", durable="store", ack_later=True)
        await reader.start()
        async with reader.subscribe("telemetry.>") as sub:
            await reader.wait_subscribed(5)
            for t in range(3):
                await writer.publish("telemetry.twin", Batch.of(np.full(2, t), ids, np.ones(2)))
            await take_rows(sub, 6)
            await asyncio.sleep(3.5)  # "writing" for 3.5 ack waits: told in progress
            stream = nats_bus.stream_names["telemetry"]
            [info] = await nats_bus.jetstream.consumers_info(stream)
            assert sub.pending == 0 and (info.num_redelivered or 0) == 0
            assert info.num_ack_pending == 3
            await sub.ack_held()
        await reader.close()
        await writer.close()

    run(scenario)
