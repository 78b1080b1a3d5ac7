"""Scraping on an interval inside `rackwatch run`: each target's readings on the bus.

One `ScrapeLoop` per target scrapes on the interval's instants of the wall clock (as the twin
steps and the host collects), stamps the readings with the scrape's instant and publishes them
as one Batch on `telemetry.scrape`. A failed scrape is logged by the scraper (once per spell
of failures) and skipped; the loop goes on. The target's inventory item (its URL and how its
scrapes went) is handed to `on_inventory` at start and every ten minutes.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable

from rackwatch.bus import Bus, subjects
from rackwatch.model.series import SeriesRegistry
from rackwatch.sources.readings import InventoryItem, to_batch
from rackwatch.sources.scrape import ScrapeError, Scraper

SOURCE = "scrape"
INVENTORY_EVERY_S = 600.0


class ScrapeLoop:
    def __init__(
        self,
        scraper: Scraper,
        registry: SeriesRegistry,
        bus: Bus,
        on_inventory: Callable[[list[InventoryItem]], Awaitable[None]] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.scraper = scraper
        self.registry = registry
        self.bus = bus
        self.on_inventory = on_inventory
        self.clock = clock
        self.n_published = 0

    async def run(self) -> None:
        """Scrape until cancelled."""
        interval_ms = round(self.scraper.target.interval_s * 1000)
        next_ms = math.ceil(self.clock() * 1000 / interval_ms) * interval_ms
        next_inventory = 0.0
        try:
            while True:
                await asyncio.sleep(max(0.0, next_ms / 1000 - self.clock()))
                await self.scrape_once()
                if self.on_inventory is not None and time.monotonic() >= next_inventory:
                    await self.on_inventory(self.scraper.inventory())
                    next_inventory = time.monotonic() + INVENTORY_EVERY_S
                now_ms = self.clock() * 1000
                next_ms += interval_ms
                if now_ms >= next_ms:  # the scrape overran: skip the instants it missed
                    next_ms += math.ceil((now_ms - next_ms) / interval_ms) * interval_ms
        finally:
            await self.scraper.aclose()

    async def scrape_once(self) -> int:
        """One scrape published; the number of samples (0 when it failed)."""
        try:
            readings = await self.scraper.scrape()
        except ScrapeError:
            return 0  # logged and counted by the scraper
        ts_ms = self.scraper.last_ts_ms
        if ts_ms is None or not readings:
            return 0
        batch = to_batch(readings, self.registry, ts_ms)
        if len(batch):
            await self.bus.publish(subjects.telemetry(SOURCE), batch)
            self.n_published += len(batch)
        return len(batch)
