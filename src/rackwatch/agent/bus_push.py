"""`rackwatch agent --nats URL`: this host's collections published straight onto the NATS bus.

A site on NATS (docs/SCALE.md) has no single server to push to: the agent publishes each
collection as a Batch on `telemetry.agent` (and its inventory as `inventory.item` events,
for the store worker), in its own series space (`agent-<name>`), through
the same partitioning by rack as every producer (`bus/spaced.py`), and the store, alert and
detect workers take it from there. JetStream is the buffer: a publish waits for the stream's
ack, and while the server is away (a restart) it is tried again for up to two minutes; a
collection that still cannot be published is dropped and counted (`n_failed`).
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

from nats.errors import Error as NatsError

from rackwatch.bus import subjects
from rackwatch.bus.nats import NatsBus, StreamStorageError
from rackwatch.bus.spaced import SpacedBus
from rackwatch.engine.inventory import announcements
from rackwatch.model import SeriesRegistry
from rackwatch.sources.host.loop import Collection
from rackwatch.sources.readings import to_batch
from rackwatch.store.base import EntityRecord

log = logging.getLogger(__name__)
SOURCE = "agent"


def space_of(host_name: str) -> str:
    """
    >>> space_of("gpu-01.lab.example")
    'agent-gpu-01_lab_example'
    """
    return "agent-" + re.sub(r"[^A-Za-z0-9_-]", "_", host_name)[:58]


class BusPublisher:
    """Publishes collections on a NATS bus: `await start()`, then a CollectionLoop listener."""

    def __init__(self, url: str, host_name: str, *, prefix: str, partitions: int) -> None:
        self.url = url
        self.registry = SeriesRegistry()
        # Streams the site made keep the retention it chose; an agent makes only missing ones.
        self._nats = NatsBus(prefix=prefix, manage_streams=False)
        self.bus = SpacedBus(self._nats, self.registry, space_of(host_name), partitions=partitions)
        self.n_published = 0
        self.n_failed = 0
        self._announced: list[dict[str, Any]] | None = None

    async def start(self) -> None:
        """Connect; ConnectionError when the server does not answer."""
        try:
            await self._nats.connect(self.url)
        except StreamStorageError as exc:
            await self._nats.close()
            raise ConnectionError(str(exc)) from exc
        except (OSError, TimeoutError, NatsError) as exc:
            await self._nats.close()
            raise ConnectionError(
                f"{type(exc).__name__}: {exc or 'no answer'}; start nats-server -js there"
            ) from exc
        await self.bus.start()

    async def publish(self, collection: Collection) -> None:
        batch = to_batch(collection.readings, self.registry, collection.ts_ms)
        if not len(batch):
            return
        try:
            await self.bus.publish(subjects.telemetry(SOURCE), batch)
        except Exception as exc:  # one collection lost; the next is tried
            self.n_failed += 1
            log.warning("a collection could not be published on %s: %s", self.url, exc)
            return
        self.n_published += 1

    async def announce(self, items: list[dict[str, Any]]) -> None:
        """This host's inventory items (`{"entity", "kind", <attributes>}`) as
        `inventory.item` events, when they changed: the store worker keeps them in the
        shared store's inventory (a collection loop's inventory listener)."""
        if items == self._announced:
            return
        entities = [
            EntityRecord(
                item["entity"],
                item["kind"],
                {k: v for k, v in item.items() if k not in ("entity", "kind")},
            )
            for item in items
        ]
        try:
            for event in announcements(entities, int(time.time() * 1000)):
                await self.bus.publish(subjects.events(event.kind), event)
        except Exception as exc:  # announced again with the next inventory
            log.warning("the inventory could not be published on %s: %s", self.url, exc)
            return
        self._announced = items

    async def close(self) -> None:
        await self.bus.close()
