"""The intelligence consumer on a bus: events out, health samples on each source's clock,
its own samples skipped, coalescing when behind, settle at stop, the health cache."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np

from rackwatch.bus import MemoryBus, subjects
from rackwatch.engine.intelligence import HEALTH_METRIC, SOURCE, Intelligence, IntelligenceConfig
from rackwatch.model import Batch, Event, EventKind, SeriesRegistry
from rackwatch.sources.twin import TwinSource
from rackwatch.twin import Twin
from rackwatch.worker import within_a_rack

START_MS = 1_767_225_600_000
HOST_MS = START_MS + 300 * 86_400_000  # a real machine's wall clock, far from the twin's time


def test_events_and_health_samples_go_out_on_the_bus() -> None:
    registry = SeriesRegistry()
    source = TwinSource(Twin.from_scenario("fan-fail", seed=4, start_ms=START_MS), registry)
    host = registry.intern("host/box", "memory_used_bytes")
    bus = MemoryBus()
    intelligence = Intelligence(bus, registry)
    published: list[tuple[str, Any]] = []
    n_twin_samples = 0

    async def main() -> None:
        nonlocal n_twin_samples
        async with (
            bus.subscribe("events.>") as events,
            bus.subscribe(subjects.telemetry(SOURCE)) as health,
        ):
            task = asyncio.create_task(intelligence.run())
            await intelligence.ready.wait()
            for step in range(35 * 12):  # s03/fan1 stops at 30 min
                batch, _faults = source.read(1)
                n_twin_samples += len(batch)
                await bus.publish(subjects.telemetry("twin"), batch)
                if step % 12 == 0:  # this host, every minute of its own (wall) clock
                    at = HOST_MS + step * 5000
                    await bus.publish(subjects.telemetry("agent"), Batch.of([at], [host], [1e9]))
                if step % 12 == 11:
                    await asyncio.sleep(0.02)  # let it catch up every minute (of twin time)
            assert await intelligence.settle(10)
            bus.close()
            await task
            for sub in (events, health):
                while (item := sub._queue.get_nowait()) is not None:  # type: ignore[attr-defined]
                    published.append(item)

    asyncio.run(asyncio.wait_for(main(), 60))
    events = [m for s, m in published if s.startswith("events.")]
    assert all(isinstance(e, Event) for e in events)
    started = [e for e in events if e.kind == EventKind.ANOMALY_STARTED]
    assert any(e.entity == "c01/r01/s03/fan1" for e in started)
    assert all(s == subjects.events(e.kind) for s, e in published if s.startswith("events."))

    samples = [m for s, m in published if s == subjects.telemetry(SOURCE)]
    assert samples and intelligence.n_health_samples == sum(len(b) for b in samples)
    keys = registry.keys()
    stamped: dict[str, set[int]] = {}
    anomaly_scores: dict[str, list[float]] = {}
    for batch in samples:
        for ts, sid, value in zip(batch.ts, batch.series, batch.value, strict=True):
            key = keys[sid]
            if key.metric == "anomaly_score":
                assert 0.0 <= value <= 1.0
                anomaly_scores.setdefault(key.entity, []).append(float(value))
                continue
            assert key.metric == HEALTH_METRIC and 0.0 <= value <= 100.0
            stamped.setdefault(key.entity, set()).add(int(ts))
    assert max(anomaly_scores["c01/r01/s03/fan1"]) > 0.5  # its stop, while it lasted
    assert max(anomaly_scores["c01/r01/s01"]) == 0.0
    assert "c01/r01" not in anomaly_scores  # devices only, not racks
    twin_ts, host_ts = stamped["c01/r01/s03/fan1"], stamped["host/box"]
    assert min(twin_ts) >= START_MS and max(twin_ts) < START_MS + 35 * 60_000  # twin time
    assert min(host_ts) >= HOST_MS and "host" in stamped  # the wall clock of its own source
    assert len(twin_ts) >= 5  # one a minute while it keeps up (fewer when batches coalesce)
    stats = intelligence.snapshot.stats
    assert stats.n_samples == n_twin_samples + 35  # its own samples are not scored
    assert stats.n_batches < stats.n_messages  # batches that queued were taken together
    assert stats.cpu_s > 0 and stats.max_cpu_s >= stats.last_cpu_s


def test_health_is_cached_for_a_few_seconds_unless_fresh_is_asked() -> None:
    registry = SeriesRegistry()
    intelligence = Intelligence(MemoryBus(), registry, IntelligenceConfig(health_cache_s=60))
    sid = registry.intern("c01/r01/s01", "cpu_temperature_celsius")
    intelligence.process(Batch.of([START_MS], [sid], [50.0]), "twin")

    async def main() -> tuple[Any, Any, Any]:
        first = await intelligence.health()
        other = registry.intern("c01/r01/s02", "cpu_temperature_celsius")
        intelligence.process(Batch.of([START_MS + 5000], [other], [50.0]), "twin")
        return first, await intelligence.health(), await intelligence.health(fresh=True)

    first, cached, fresh = asyncio.run(main())
    assert cached is first and "c01/r01/s02" not in cached.entities
    assert fresh.entities["c01/r01/s02"].score == 100.0 and fresh.now_ms == START_MS + 5000
    assert set(fresh.entities) == {"c01/r01/s01", "c01/r01/s02", "c01/r01", "c01", "room"}


def test_a_batch_that_fails_is_skipped_and_the_consumer_goes_on() -> None:
    registry = SeriesRegistry()
    bus = MemoryBus()
    intelligence = Intelligence(bus, registry, IntelligenceConfig(in_thread=False))
    sid = registry.intern("c01/r01/s01", "cpu_temperature_celsius")
    bad = Batch(np.array([START_MS]), np.array([sid + 50], dtype=np.int32), np.array([1.0]))

    async def main() -> None:
        task = asyncio.create_task(intelligence.run())
        await intelligence.ready.wait()
        await bus.publish(subjects.telemetry("twin"), bad)  # an id the registry never gave
        assert await intelligence.settle(5)
        await bus.publish(subjects.telemetry("twin"), Batch.of([START_MS], [sid], [40.0]))
        assert await intelligence.settle(5)
        bus.close()
        await task

    asyncio.run(asyncio.wait_for(main(), 30))
    assert intelligence.snapshot.stats.n_samples == 1


def test_a_partitions_detect_worker_publishes_no_health_for_the_clusters_or_the_room() -> None:
    # Its racks are one share of the room: the room's and the clusters' scores are not its own.
    registry = SeriesRegistry()
    source = TwinSource(Twin.from_scenario("small", seed=4, start_ms=START_MS), registry)
    bus = MemoryBus()
    intelligence = Intelligence(bus, registry)
    intelligence.publishes_health_of = within_a_rack
    scored: set[str] = set()

    async def main() -> None:
        async with bus.subscribe(subjects.telemetry(SOURCE)) as health:
            task = asyncio.create_task(intelligence.run())
            await intelligence.ready.wait()
            for _ in range(4 * 12):  # 4 minutes: health once a minute
                await bus.publish(subjects.telemetry("twin"), source.read(1)[0])
                await asyncio.sleep(0)
            assert await intelligence.settle(10)
            bus.close()
            await task
            while (item := health._queue.get_nowait()) is not None:  # type: ignore[attr-defined]
                batch = item[1]
                keys = registry.keys()
                scored.update(keys[s].entity for s in batch.series)

    asyncio.run(asyncio.wait_for(main(), 60))
    assert {"c01/r01", "c01/r01/s01"} <= scored
    assert not scored & {"c01", "room"}
