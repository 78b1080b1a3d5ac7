"""Collecting on an interval: the loop behind `rackwatch agent` and `rackwatch run`'s own host.

Every interval the collectors are read (in a worker thread) and each listener gets the
`Collection`: the agent writes it to its buffer and serves it on `--listen`, `rackwatch run`
publishes it on its bus. Collections are stamped with the interval's instant on the wall
clock (`:00`, `:05`, ... for 5 s), like the twin's steps, so a collection pushed twice is the
same instant twice and the server keeps one. A collection that ran past its interval skips
the instants it missed (counted) rather than piling up.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from rackwatch.sources.readings import InventoryItem, Reading

log = logging.getLogger(__name__)

T = TypeVar("T")
Entities = dict[str, dict[str, float | None]]
"""entity -> metric -> value (None: the reading answered nothing)."""


class Collector(Protocol):
    def collect(self) -> list[Reading]: ...

    def inventory(self) -> list[InventoryItem]: ...


@dataclass(frozen=True, slots=True)
class Collection:
    ts_ms: int
    readings: list[Reading]


Listener = Callable[[Collection], Awaitable[None] | None]
"""Gets each collection; may be a coroutine function (awaited before the next listener)."""
InventoryListener = Callable[[list[InventoryItem]], Awaitable[None] | None]


def entities_of(readings: Sequence[Reading]) -> Entities:
    """Readings grouped by entity, as the ingest body and the buffer carry them.

    >>> entities_of([Reading("host/a", "uptime_seconds", 5.0), Reading("host/a", "x", math.nan)])
    {'host/a': {'uptime_seconds': 5.0, 'x': None}}
    """
    out: Entities = {}
    for r in readings:
        if math.isinf(r.value):
            continue
        out.setdefault(r.entity, {})[r.metric] = None if math.isnan(r.value) else r.value
    return out


class CollectionLoop:
    """Collects from `collectors` every `interval_s` and hands each collection to the
    listeners, and the inventory (at start, then every `inventory_every_s`) to theirs."""

    def __init__(
        self,
        collectors: Sequence[Collector],
        *,
        interval_s: float,
        inventory_every_s: float = 3600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not 0.1 <= interval_s <= 3600:
            raise ValueError(f"the interval must be 0.1..3600 s, not {interval_s:g}")
        self.collectors = list(collectors)
        self.interval_s = interval_s
        self.inventory_every_s = inventory_every_s
        self.clock = clock
        self.listeners: list[Listener] = []
        self.inventory_listeners: list[InventoryListener] = []
        self.n_collections = 0
        self.n_skipped = 0
        self.n_errors = 0
        self.last: Collection | None = None

    def collect_once(self, ts_ms: int) -> Collection:
        """One collection from every collector (a failing one is logged and left out)."""
        readings: list[Reading] = []
        for collector in self.collectors:
            try:
                readings.extend(collector.collect())
            except Exception:
                self.n_errors += 1
                log.exception("collector %s failed", type(collector).__name__)
        return Collection(ts_ms, readings)

    def inventory(self) -> list[InventoryItem]:
        items: list[InventoryItem] = []
        for collector in self.collectors:
            try:
                items.extend(collector.inventory())
            except Exception:
                self.n_errors += 1
                log.exception("inventory of %s failed", type(collector).__name__)
        return items

    async def run(self) -> None:
        """Collect until cancelled."""
        interval_ms = round(self.interval_s * 1000)
        next_inventory = 0.0
        next_ms = math.ceil(self.clock() * 1000 / interval_ms) * interval_ms
        while True:
            await asyncio.sleep(max(0.0, next_ms / 1000 - self.clock()))
            if time.monotonic() >= next_inventory:
                items = await asyncio.to_thread(self.inventory)
                for inventory_listener in self.inventory_listeners:
                    await _call(inventory_listener, items)
                next_inventory = time.monotonic() + self.inventory_every_s
            collection = await asyncio.to_thread(self.collect_once, next_ms)
            await self._deliver(collection)
            now_ms = self.clock() * 1000
            following = next_ms + interval_ms
            if now_ms >= following:  # the collection overran: skip the instants it missed
                missed = int((now_ms - following) // interval_ms) + 1
                self.n_skipped += missed
                following += missed * interval_ms
                log.warning("a collection took longer than the interval: skipped %d", missed)
            next_ms = following

    async def _deliver(self, collection: Collection) -> None:
        self.n_collections += 1
        self.last = collection
        for listener in self.listeners:
            await _call(listener, collection)


async def _call(listener: Callable[[T], Awaitable[None] | None], arg: T) -> None:
    """Call a listener, awaiting it if it is a coroutine function; a failure is logged and
    goes no further (one broken listener does not stop the loop or the others)."""
    try:
        outcome = listener(arg)
        if inspect.isawaitable(outcome):
            await outcome
    except Exception:
        log.exception("a listener of the collections failed")
