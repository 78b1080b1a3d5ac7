"""The agent's loop: collections on the interval's instants, into the buffer, a failing
collector isolated, the inventory handed on."""

from __future__ import annotations

import asyncio
import itertools
import math
from pathlib import Path

from rackwatch.agent.buffer import DiskBuffer
from rackwatch.agent.runner import AgentLoop, Collection
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


def test_collections_land_on_the_intervals_instants_in_the_buffer(tmp_path: Path) -> None:
    buffer = DiskBuffer(tmp_path)
    wake = asyncio.Event()
    loop = AgentLoop([Counting(), Broken()], interval_s=0.1, buffer=buffer, wake=wake)
    seen: list[Collection] = []
    inventories: list[list[InventoryItem]] = []
    loop.listeners.append(seen.append)
    loop.inventory_listeners.append(inventories.append)

    async def scenario() -> None:
        task = asyncio.create_task(loop.run())
        await asyncio.sleep(0.55)
        task.cancel()

    asyncio.run(scenario())
    assert 3 <= len(seen) <= 7 and wake.is_set()
    stamps = [c.ts_ms for c in seen]
    assert all(t % 100 == 0 for t in stamps)  # the interval's instants
    assert all(b - a == 100 for a, b in itertools.pairwise(stamps))
    assert loop.n_errors >= len(seen)  # the broken collector, every time, logged not fatal
    assert inventories == [[{"entity": "host/a", "kind": "host"}]]  # once at start
    pending = buffer.pending(100, 10_000)
    assert pending is not None and [e["ts_ms"] for e in pending.entries] == stamps
    assert pending.entries[0]["entities"] == {"host/a": {"uptime_seconds": 1.0, "x": None}}
