"""`rackwatch worker`: one part of rackwatch as its own process on a NATS JetStream bus.

A site that outgrows one `rackwatch run` splits it (docs/SCALE.md): producers publish
telemetry partitioned by rack, and each consuming role runs as workers, one per partition,
reading with durable consumers (a worker that stops resumes where it stopped):

- `twin`: the simulated room, published on `telemetry.twin` in `--partitions N`; obeys the
  fan commands of `commands.twin`; announces the room's inventory (`inventory.item` events).
- `store`: writes its partition's telemetry into the shared store (PostgreSQL for more than
  one worker); partition 0 also writes the events, and the inventory announced. What is
  queued is gathered into one write and acknowledged once written, and the store keeps one
  value per series and instant, so a message delivered twice (after a crash) is stored once.
- `alerts`: the alert rules over its partition's racks, alert events on the bus; obeys the
  acknowledgements front ends send (`commands.alerts`).
- `control`: the closed fan loop for the fans of its partition's racks (commands to the twin).
- `detect`: anomaly detection, diagnosis, predictions and health for its partition's racks
  (with a shadow alert engine for the states the health reads: it publishes and notifies
  nothing, the alerts workers do).

Every process has its own series ids; the bus's catalogue maps them (bus/spaced.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rackwatch import app
from rackwatch.bus import subjects
from rackwatch.bus.nats import NatsBus
from rackwatch.bus.spaced import Partition, SpacedBus, partition_of
from rackwatch.engine.inventory import announcements
from rackwatch.engine.writer import StoreWriter
from rackwatch.errors import ConfigError
from rackwatch.model import SeriesRegistry
from rackwatch.settings import Settings
from rackwatch.sources.poller import PacedPoller
from rackwatch.sources.twin import TwinSource
from rackwatch.store.base import EntityRecord, Store

log = logging.getLogger(__name__)


STORE_PENDING = 64
"""Messages a store worker holds unacknowledged: read, gathered, not yet written."""


class Role(enum.StrEnum):
    TWIN = "twin"
    STORE = "store"
    ALERTS = "alerts"
    CONTROL = "control"
    DETECT = "detect"


class LagMeter:
    """Seconds from the stream storing a telemetry message to this worker being done with it
    (for a store worker: written), over the last window and over the whole run (a bounded
    uniform sample), and how many messages came more than once."""

    KEPT = 100_000

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._window: list[float] = []
        self._kept: list[float] = []
        self._seen = 0
        self._rng = np.random.default_rng(0)
        self.n_messages = 0
        self.n_redelivered = 0

    def __call__(self, stored_at_s: float, delivered: int) -> None:
        lag = max(0.0, self._clock() - stored_at_s)
        self.n_messages += 1
        self.n_redelivered += delivered > 1
        self._window.append(lag)
        self._seen += 1
        if len(self._kept) < self.KEPT:
            self._kept.append(lag)
        elif (slot := int(self._rng.integers(self._seen))) < self.KEPT:
            self._kept[slot] = lag  # reservoir sampling: every lag equally likely kept

    def window(self) -> dict[str, float | None]:
        """p50 and p99 of the lags since the last call."""
        lags, self._window = self._window, []
        return _percentiles(lags)

    def overall(self) -> dict[str, float | None]:
        return _percentiles(self._kept)


def _percentiles(lags: list[float]) -> dict[str, float | None]:
    if not lags:
        return {"lag_p50_s": None, "lag_p99_s": None}
    p50, p99 = np.percentile(lags, [50, 99])
    return {"lag_p50_s": round(float(p50), 4), "lag_p99_s": round(float(p99), 4)}


@dataclass
class WorkerStatus:
    """What a running worker has done (`rackwatch worker` prints it on stop)."""

    role: Role
    partition: Partition
    counters: dict[str, Callable[[], int]] = field(default_factory=dict)
    lags: LagMeter = field(default_factory=LagMeter)

    def snapshot(self) -> dict[str, int]:
        return {name: read() for name, read in self.counters.items()}

    def write_stats(self, path: Path) -> None:
        """The counters and the last window's lags as JSON, replaced whole (for a watcher)."""
        stats = {
            "role": self.role.value,
            "partition": f"{self.partition.index}/{self.partition.count}",
            "wall_s": time.time(),
            **self.snapshot(),
            "messages": self.lags.n_messages,
            "redelivered_messages": self.lags.n_redelivered,
            **self.lags.window(),
        }
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(stats))
        tmp.replace(path)


def space_of(role: Role, partition: Partition) -> str:
    """The worker's series space and durable consumer name: one per role and partition."""
    return f"{role.value}-p{partition.index}of{partition.count}"


async def connect(settings: Settings) -> NatsBus:
    if settings.bus.url == "memory":
        raise ConfigError(
            "rackwatch worker runs on a NATS bus: give --bus nats://HOST:PORT (or [bus] url)"
        )
    bus = app.build_bus(settings)
    assert isinstance(bus, NatsBus)
    await app.connect_nats(bus, settings.bus.url)
    return bus


async def run_worker(
    settings: Settings,
    role: Role,
    partition: Partition,
    stop: asyncio.Event,
    *,
    on_ready: Callable[[WorkerStatus], None] | None = None,
    stats_file: Path | None = None,
    stats_interval_s: float = 2.0,
) -> WorkerStatus:
    """Run `role` for `partition` until `stop` is set; then finish what was read and close."""
    if role is Role.TWIN and partition.index != 0:
        # One room is one simulation (its racks share the air conditioner): a second twin
        # would publish the whole room again.
        raise ConfigError(
            f"the twin is one process for the whole room, publishing in {partition.count} "
            f"partitions: run it once, with --partition 0/{partition.count}"
        )
    nats_bus = await connect(settings)
    store: Store | None = None
    try:
        registry = SeriesRegistry()
        if role is Role.STORE:
            store = await asyncio.to_thread(
                app.open_store, settings, registry, live=True, synced_writes=True
            )
        status = WorkerStatus(role, partition)
        bus = SpacedBus(
            nats_bus,
            registry,
            space_of(role, partition),
            partitions=partition.count,
            take=None if role is Role.TWIN else partition,
            durable=None if role is Role.TWIN else space_of(role, partition),
            take_events=role is not Role.STORE or partition.index == 0,
            on_telemetry_done=status.lags,
            ack_later=role is Role.STORE,  # acknowledged once written (StoreWriter)
            # a store worker started after the producers still gets their inventory
            replay_events=role is Role.STORE,
        )
        await bus.start()
        jobs = _jobs(settings, role, partition, bus, registry, store, status, stop)
        tasks = [asyncio.create_task(job, name=f"{role}-{name}") for name, job in jobs]
        await nats_bus.wait_subscribed(app.SETTLE_S)
        if on_ready is not None:
            on_ready(status)
        if stats_file is None:
            await stop.wait()
        else:
            while not stop.is_set():
                status.write_stats(stats_file)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), stats_interval_s)
        if role is Role.TWIN:  # its last steps are published: give the readers time
            await asyncio.gather(tasks[0], return_exceptions=True)
        await bus.settle(app.SETTLE_S)
        bus.end_subscriptions()  # the readers finish (and acknowledge) what they hold
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        await bus.close()
        for task, outcome in zip(tasks, outcomes, strict=True):
            if isinstance(outcome, BaseException) and not isinstance(
                outcome, asyncio.CancelledError
            ):
                log.error("%s stopped with an error", task.get_name(), exc_info=outcome)
        if stats_file is not None:
            status.write_stats(stats_file)
        return status
    finally:
        await nats_bus.close()
        if store is not None:
            await asyncio.to_thread(store.flush)
            store.close()


async def _announce(
    bus: SpacedBus, entities: list[EntityRecord], ts_ms: int, status: WorkerStatus
) -> None:
    """The room's inventory, once, as `inventory.item` events: the store worker keeps it in
    the shared store (the front ends' racks and servers). Again at each start: an upsert."""
    n_announced = 0
    status.counters["announced_entities"] = lambda: n_announced
    for event in announcements(entities, ts_ms):
        await bus.publish(subjects.events(event.kind), event)
        n_announced += 1


def within_a_rack(path: str) -> bool:
    """Whether an entity lies in one partition: a rack or anything in it (not a cluster, the
    room or a root such as `host`, whose members the partitions share).

    >>> [within_a_rack(p) for p in ("c01/r01/s01", "c01/r01", "c01", "room", "room/crac")]
    [True, True, False, False, True]
    """
    return "/" in path


def _jobs(
    settings: Settings,
    role: Role,
    partition: Partition,
    bus: SpacedBus,
    registry: SeriesRegistry,
    store: Store | None,
    status: WorkerStatus,
    stop: asyncio.Event,
) -> list[tuple[str, Any]]:
    status.counters["unresolved_samples"] = lambda: bus.n_unresolved
    if role is Role.TWIN:
        twin = app.build_twin(settings, app.aligned_now_ms(5000, up=True))
        poller = PacedPoller(
            TwinSource(twin, registry), bus, step_s=twin.step_s, speed=settings.twin.speed
        )
        status.counters["samples"] = lambda: poller.n_samples
        entities = app.inventory_records(twin)
        return [
            ("steps", poller.run(stop)),
            ("commands", poller.obey()),
            ("inventory", _announce(bus, entities, twin.now_ms, status)),
        ]
    if role is Role.STORE:
        assert store is not None
        # Messages queued meanwhile go in one write, then are acknowledged; at most
        # STORE_PENDING held (each up to NATS's 1 MB payload).
        writer = StoreWriter(bus, store, max_pending=STORE_PENDING)
        status.counters["samples"] = lambda: writer.n_samples
        status.counters["events"] = lambda: writer.n_events
        status.counters["quarantined"] = lambda: writer.n_quarantined
        status.counters["malformed_announcements"] = lambda: writer.n_malformed_announcements
        return [("writer", writer.run())]
    # The detect role's engine is a shadow (its health reads the states): the alerts workers
    # publish the alert events and send the notifications, once.
    alerts = app.build_alert_engine(settings, bus, registry, publishes=role is Role.ALERTS)
    if role is Role.ALERTS:  # and the front ends' acknowledgements
        return [("rules", alerts.run()), ("acknowledgements", alerts.obey())]
    if role is Role.CONTROL:
        twin = app.build_twin(settings, app.aligned_now_ms(5000, up=True))
        mine = [
            item
            for item in twin.inventory()
            if partition_of(str(item["entity"]), partition.count) == partition.index
        ]
        controller = app.build_controller(
            settings, bus, registry, None, inventory=mine, source="twin"
        )
        return [("fans", controller.run())]
    intelligence = app.build_intelligence(settings, bus, registry, alerts)
    if intelligence is None:
        raise ConfigError("the detect role needs [intelligence] enabled = true")
    if partition.count > 1:  # its racks only: a cluster or the room spans the partitions
        intelligence.publishes_health_of = within_a_rack
    return [("rules", alerts.run()), ("intelligence", intelligence.run())]
