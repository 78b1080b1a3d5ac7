"""One process among many on a NATS bus: its series in the catalogue, its telemetry partitioned.

`SpacedBus` wraps a connected NatsBus for a process that does not share its SeriesRegistry
with the others (a worker, a front end, an agent, a producer of the twin):

- A Batch published on `telemetry.<source>` goes out as one Batch per partition, on
  `telemetry.<source>.<space>.p<K>`, after the catalogue holds its series (`catalogue.py`).
  K is the partition of the series' rack (`partition_of`), so a rack stays in one partition.
- A subscription to `telemetry...` asks the server for the wanted partition only
  (`telemetry.*.*.p<K>`), gives its readers the subject as it was published
  (`telemetry.<source>`) and Batches with this process's own series ids.
- With `durable`, each subscription is a durable consumer named after it, so a worker that
  stops (or is killed) resumes where it stopped; messages are acknowledged once the reader
  comes back for the next (at least once: an effect must be idempotent).
- Events and commands pass through unchanged; `take_events=False` makes event subscriptions
  empty (only one of several store workers writes the events).
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from rackwatch.bus import subjects
from rackwatch.bus.catalogue import Publisher, Resolver, check_space, open_bucket
from rackwatch.bus.nats import NatsBus
from rackwatch.model import Batch, SeriesRegistry

MAX_PARTITIONS = 1024


@dataclass(frozen=True, slots=True)
class Partition:
    """Partition `index` of `count` (`--partition K/N`)."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.count <= MAX_PARTITIONS or not 0 <= self.index < self.count:
            raise ValueError(
                f"partition {self.index}/{self.count}: K/N needs 0 <= K < N <= {MAX_PARTITIONS}"
            )

    @classmethod
    def parse(cls, text: str) -> Partition:
        """
        >>> Partition.parse("1/4")
        Partition(index=1, count=4)
        """
        index, slash, count = text.partition("/")
        if not slash or not index.isdigit() or not count.isdigit():
            raise ValueError(f"a partition is K/N (such as 0/4), not {text!r}")
        return cls(int(index), int(count))

    @property
    def token(self) -> str:
        return f"p{self.index}"


def rack_of(entity: str) -> str:
    """The part of a path that names its rack: `c01/r02` of `c01/r02/s03/fan1`."""
    return "/".join(entity.split("/", 2)[:2])


def partition_of(entity: str, count: int) -> int:
    """
    >>> partition_of("c01/r02/s03/fan1", 4) == partition_of("c01/r02", 4)
    True
    """
    return zlib.crc32(rack_of(entity).encode()) % count


class _Partitioner:
    """The partition of every series id of a registry, computed once per id."""

    def __init__(self, registry: SeriesRegistry, count: int) -> None:
        self._registry = registry
        self._count = count
        self._table: npt.NDArray[np.int32] = np.empty(0, np.int32)

    def of(self, series: npt.NDArray[np.int32]) -> npt.NDArray[np.int32]:
        known = len(self._registry)
        if known > len(self._table):
            keys = self._registry.keys()[len(self._table) : known]
            new = np.fromiter((partition_of(k.entity, self._count) for k in keys), np.int32)
            self._table = np.concatenate([self._table, new])
        return self._table[series]


class _NoEvents:
    """A subscription that yields nothing until the bus closes."""

    def __init__(self, closed: asyncio.Event) -> None:
        self._closed = closed
        self.dropped = 0
        self.pending = 0

    async def ack_held(self) -> None:
        return

    async def __aiter__(self) -> AsyncIterator[tuple[str, Any]]:
        await self._closed.wait()
        return
        yield  # an async generator that ends


class _SpacedSubscription:
    """A NATS subscription whose telemetry is given back as it was published."""

    def __init__(self, inner: Any, resolver: Resolver) -> None:
        self._inner = inner
        self._resolver = resolver

    @property
    def dropped(self) -> int:
        return int(self._inner.dropped)

    @property
    def pending(self) -> int:
        return int(self._inner.pending)

    @property
    def rejected(self) -> int:
        return int(self._inner.rejected)

    async def ack_held(self) -> None:
        await self._inner.ack_held()

    async def __aiter__(self) -> AsyncIterator[tuple[str, Any]]:
        async for subject, message in self._inner:
            tokens = subject.split(".")
            if tokens[0] == subjects.TELEMETRY and isinstance(message, Batch):
                if len(tokens) != 4:
                    continue  # not published through a SpacedBus: its ids mean nothing here
                message = await self._resolver.resolve(tokens[2], message)
                subject = f"{tokens[0]}.{tokens[1]}"
            yield subject, message


class SpacedBus:
    """A NatsBus seen by one process of many (see the module's docstring)."""

    def __init__(
        self,
        nats_bus: NatsBus,
        registry: SeriesRegistry,
        space: str,
        *,
        partitions: int = 1,
        take: Partition | None = None,
        durable: str | None = None,
        take_events: bool = True,
        on_telemetry_done: Callable[[float, int], None] | None = None,
        ack_later: bool = False,
        replay_events: bool = False,
    ) -> None:
        self.nats = nats_bus
        self.registry = registry
        self.space = check_space(space)
        self.partitions = Partition(0, partitions).count
        self.take = take
        if take is not None and take.count != self.partitions:
            raise ValueError(f"partition {take.index}/{take.count} of {self.partitions}")
        if durable is not None:
            check_space(durable)
        self.durable = durable
        self.take_events = take_events
        self.on_telemetry_done = on_telemetry_done
        """Told of each telemetry message read and acknowledged (`NatsSubscription`)."""
        self.ack_later = ack_later
        """Subscriptions acknowledge only on `ack_held()` (a reader that gathers messages
        into one write acknowledges them once written)."""
        self.replay_events = replay_events
        """A durable events consumer made for the first time starts at the oldest event the
        stream holds, not at the next one (a store worker started after the producers still
        gets their inventory announcements and events; the store keeps each once)."""
        self._partitioner = _Partitioner(registry, self.partitions)
        self._publisher: Publisher | None = None
        self._resolver: Resolver | None = None
        self._closed = asyncio.Event()

    async def start(self) -> None:
        """Open the catalogue (the NatsBus is connected) and take back this space's ids."""
        kv = await open_bucket(self.nats.jetstream, self.nats.prefix)
        self._publisher = Publisher(kv, self.space, self.registry)
        await self._publisher.load()
        self._resolver = Resolver(kv, self.registry, own_space=self.space)

    @property
    def n_unresolved(self) -> int:
        return 0 if self._resolver is None else self._resolver.n_unresolved

    @property
    def pending(self) -> int:
        return self.nats.pending

    @property
    def dropped(self) -> int:
        return self.nats.dropped

    async def publish(self, subject: str, message: Any) -> None:
        tokens = subject.split(".")
        if tokens[0] != subjects.TELEMETRY or not isinstance(message, Batch):
            await self.nats.publish(subject, message)
            return
        if len(tokens) != 2:
            raise ValueError(f"telemetry goes on telemetry.<source>, not {subject!r}")
        publisher = self._started()[0]
        await publisher.sync()  # the catalogue first: a reader resolves whatever it gets
        if self.partitions == 1:
            await self.nats.publish(f"{subject}.{self.space}.p0", message)
            return
        parts = self._partitioner.of(message.series)
        order = np.argsort(parts, kind="stable")
        bounds = np.searchsorted(parts[order], np.arange(self.partitions + 1))
        for k in range(self.partitions):
            rows = order[bounds[k] : bounds[k + 1]]
            if len(rows):
                part = Batch(message.ts[rows], message.series[rows], message.value[rows])
                await self.nats.publish(f"{subject}.{self.space}.p{k}", part)

    @asynccontextmanager
    async def subscribe(self, pattern: str, *, max_pending: int = 10_000) -> AsyncIterator[Any]:
        tokens = pattern.split(".")
        family = tokens[0]
        if family == subjects.EVENTS and not self.take_events:
            yield _NoEvents(self._closed)
            return
        wire = pattern
        if family == subjects.TELEMETRY:
            source = "*" if len(tokens) == 1 or tokens[1] == ">" else tokens[1]
            wire = f"{family}.{source}.*.{'*' if self.take is None else self.take.token}"
        durable = None
        if self.durable is not None:
            durable = f"{self.durable}-{pattern.replace('.', '_').replace('>', 'all')}"
            durable = durable.replace("*", "any")
        done = self.on_telemetry_done if family == subjects.TELEMETRY else None
        replay = self.replay_events and family == subjects.EVENTS and durable is not None
        async with self.nats.subscribe(
            wire,
            max_pending=max_pending,
            durable=durable,
            replay=replay,
            on_acked=done,
            ack_later=self.ack_later,
        ) as inner:
            yield _SpacedSubscription(inner, self._started()[1])

    async def wait_subscribed(self, timeout_s: float) -> None:
        await self.nats.wait_subscribed(timeout_s)

    async def settle(self, timeout_s: float) -> None:
        await self.nats.settle(timeout_s)

    def end_subscriptions(self) -> None:
        """End the readers' iterations, still connected (see NatsBus.end_subscriptions)."""
        self._closed.set()
        self.nats.end_subscriptions()

    async def close(self) -> None:
        self.end_subscriptions()
        await self.nats.close()

    def _started(self) -> tuple[Publisher, Resolver]:
        if self._publisher is None or self._resolver is None:
            raise RuntimeError("SpacedBus is not started: await start() after connecting")
        return self._publisher, self._resolver
