"""The collection loop: collections on the interval's instants, to every listener (a
coroutine one too), a failing collector or listener isolated, the inventory handed on."""

from __future__ import annotations

import asyncio
import itertools
import math

from rackwatch.sources.host.loop import Collection, CollectionLoop, entities_of
from rackwatch.sources.readings import InventoryItem, Reading


class Counting:
    def __init__(self) -> None:
        self.n = 0

    def collect(self) -> list[Reading]:
        self.n += 1
        return [
            Reading("host/a", "uptime_seconds", float(self.n)),
            Reading("host/a", "x", math.nan),
        ]

    def inventory(self) -> list[InventoryItem]:
        return [{"entity": "host/a", "kind": "host"}]


class Broken:
    def collect(self) -> list[Reading]:
        raise OSError("sensor gone")

    def inventory(self) -> list[InventoryItem]:
        raise OSError("sensor gone")


def test_collections_land_on_the_intervals_instants_and_reach_every_listener() -> None:
    loop = CollectionLoop([Counting(), Broken()], interval_s=0.1)
    seen: list[Collection] = []
    awaited: list[int] = []
    inventories: list[list[InventoryItem]] = []

    async def slow_listener(collection: Collection) -> None:
        await asyncio.sleep(0)
        awaited.append(collection.ts_ms)

    def broken_listener(_collection: Collection) -> None:
        raise RuntimeError("a listener's bug")

    loop.listeners += [seen.append, broken_listener, slow_listener]
    loop.inventory_listeners.append(inventories.append)

    async def scenario() -> None:
        task = asyncio.create_task(loop.run())
        await asyncio.sleep(0.55)
        task.cancel()

    asyncio.run(scenario())
    assert 3 <= len(seen) <= 7
    stamps = [c.ts_ms for c in seen]
    assert all(t % 100 == 0 for t in stamps)  # the interval's instants
    assert all(b - a == 100 for a, b in itertools.pairwise(stamps))
    assert awaited == stamps[: len(awaited)] and len(awaited) >= len(stamps) - 1  # awaited
    assert loop.n_errors >= len(seen)  # the broken collector, every time, logged not fatal
    assert inventories == [[{"entity": "host/a", "kind": "host"}]]  # once at start
    assert entities_of(seen[0].readings) == {"host/a": {"uptime_seconds": 1.0, "x": None}}
