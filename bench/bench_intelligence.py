"""The intelligence consumer of `rackwatch run` at 20 and 2,000 servers: CPU per 5-s step
(anomaly scores of every scored series, the explanations, the physics residual and its drift
tracker, fan wear, the diagnosis), samples per second, the memory it holds, the health of
every entity, and how long the event loop that drives the fans is held while it works.

    python bench/bench_intelligence.py                 # both room sizes
    python bench/bench_intelligence.py --servers 2000

The twin's batches are made first (the very-large preset: 20 servers per cluster, 1 or 100
clusters), then fed one 5-s step at a time to `IntelligenceCore.process` after a warm-up of
`WARMUP_STEPS` (the detectors' warm-up, and the fans' learning minute buckets), with a residual
model fitted on those warm-up steps (as the retrainer would from the store). CPU time is the
thread's own (`time.thread_time`). "Loop" runs the real consumer on a bus (scoring in a worker
thread) while a 1 ms ticker on the same loop records how late it wakes: the ticker's worst
lateness is how long the loop was held, i.e. what the fan controller would wait.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import tracemalloc

import numpy as np

from rackwatch.bus import MemoryBus, subjects
from rackwatch.engine.anomaly import ResidualModel
from rackwatch.engine.intelligence import Intelligence, IntelligenceConfig, IntelligenceCore
from rackwatch.engine.intelligence.healthview import health_now
from rackwatch.model import Batch, SeriesRegistry
from rackwatch.sources.twin import TwinSource
from rackwatch.twin import Twin

START_MS = 1_767_225_600_000
WARMUP_STEPS = 120
LIVE_STEPS = 60


def batches(clusters: int, n: int) -> tuple[SeriesRegistry, list[Batch], int]:
    registry = SeriesRegistry()
    source = TwinSource(Twin("very-large", clusters=clusters, seed=0, start_ms=START_MS), registry)
    steps = [source.read(1)[0] for _ in range(n)]
    return registry, steps, source.twin.topology.n_servers


def memory_held(registry: SeriesRegistry, steps: list[Batch], model: ResidualModel) -> int:
    """Bytes a core holds after the run (traced separately: tracing slows the timed run)."""
    tracemalloc.start()
    core = IntelligenceCore(registry, IntelligenceConfig())
    core.use_model(model, "bench", START_MS)
    core.process(Batch.concat(steps[:WARMUP_STEPS]), "twin")
    for batch in steps[WARMUP_STEPS:]:
        core.process(batch, "twin")
    held, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del core
    return held


def per_step(clusters: int) -> None:
    registry, steps, n_servers = batches(clusters, WARMUP_STEPS + LIVE_STEPS)
    model = ResidualModel.fit(Batch.concat(steps[:WARMUP_STEPS]), registry)
    held = memory_held(registry, steps, model)
    core = IntelligenceCore(registry, IntelligenceConfig())
    core.use_model(model, "bench", START_MS)
    core.process(Batch.concat(steps[:WARMUP_STEPS]), "twin")
    cpu = []
    for batch in steps[WARMUP_STEPS:]:
        began = time.thread_time()
        core.process(batch, "twin")
        cpu.append(time.thread_time() - began)
    snap = core.snapshot()
    began = time.thread_time()
    report = health_now(snap, [], {})
    health_cpu = time.thread_time() - began
    median, p95 = statistics.median(cpu), float(np.percentile(cpu, 95))
    per_step_samples = len(steps[-1])
    print(
        f"{n_servers:5d} servers, {len(registry):6d} series: {median * 1e3:6.1f} ms CPU per "
        f"5-s step (p95 {p95 * 1e3:.1f}, max {max(cpu) * 1e3:.1f}) = "
        f"{median / 5 * 100:.2f} % of one core, {per_step_samples / median:,.0f} samples/s; "
        f"state {held / 2**20:.1f} MiB; health of {len(report.entities)} entities "
        f"{health_cpu * 1e3:.0f} ms CPU"
    )


def loop_held(clusters: int, *, in_thread: bool | None = True) -> None:
    """The consumer on a bus (`in_thread` True: scoring in a worker thread, as `rackwatch run`
    does; False: on the loop; None: no consumer at all, the machine's own lateness)."""
    registry, steps, n_servers = batches(clusters, WARMUP_STEPS + LIVE_STEPS)
    bus = MemoryBus()
    config = IntelligenceConfig(in_thread=bool(in_thread))
    intelligence = Intelligence(bus, registry, config)
    intelligence.use_model(
        ResidualModel.fit(Batch.concat(steps[:WARMUP_STEPS]), registry), "bench", START_MS
    )
    lateness: list[float] = []

    async def ticker(stop: asyncio.Event) -> None:
        while not stop.is_set():
            began = time.perf_counter()
            await asyncio.sleep(0.001)
            lateness.append(time.perf_counter() - began - 0.001)

    async def scenario() -> None:
        task = asyncio.create_task(intelligence.run())
        await intelligence.ready.wait()
        await bus.publish(subjects.telemetry("twin"), Batch.concat(steps[:WARMUP_STEPS]))
        await intelligence.settle(120)
        stop = asyncio.Event()
        tick = asyncio.create_task(ticker(stop))
        began = time.perf_counter()
        for batch in steps[WARMUP_STEPS:]:
            if in_thread is not None:
                await bus.publish(subjects.telemetry("twin"), batch)
            await asyncio.sleep(0.05)  # 100x real time: a step every 50 ms
        await intelligence.settle(120)
        wall = time.perf_counter() - began
        stop.set()
        await tick
        bus.close()
        await task
        calls = intelligence.snapshot.stats.n_batches - 1
        where = {True: "in a worker thread", False: "on the loop", None: "no consumer"}
        print(
            f"{n_servers:5d} servers, {where[in_thread]:18s}: {LIVE_STEPS} steps at 100x in "
            f"{wall:.1f} s, {max(calls, 0)} scoring calls; the loop woke late by at most "
            f"{max(lateness) * 1e3:.1f} ms (p99 {np.percentile(lateness, 99) * 1e3:.1f} ms)"
        )

    asyncio.run(scenario())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--servers", type=int, nargs="*", default=[20, 2000])
    args = parser.parse_args()
    for n in args.servers:
        clusters = max(1, n // 20)
        per_step(clusters)
        for where in (None, True, False):
            loop_held(clusters, in_thread=where)


if __name__ == "__main__":
    main()
