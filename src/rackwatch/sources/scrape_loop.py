"""Scraping on an interval inside `rackwatch run`: each target's readings on the bus.

One `ScrapeLoop` per target scrapes on the interval's instants of the wall clock (as the twin
steps and the host collects), stamps the readings with the scrape's instant and publishes them
as one Batch on `telemetry.scrape`. A failed scrape is logged by the scraper (once per spell
of failures) and skipped; the loop goes on. The target's inventory item (its URL and how its
scrapes went) is handed to `on_inventory` at start and every ten minutes.

**Seed 002's application signals.** A target that exposes the application metrics of seed 002
(a Spring Boot actuator: `process_cpu_usage`, `jvm_memory_used_bytes`/`_max_bytes`,
`http_server_requests_seconds_count`/`_sum`) also gets, in the same batch and on the target's
own entity (its `name`), the four signals the seed derives from them (`app_signals`):

| metric | seed 002 | from |
|---|---|---|
| `app_cpu_usage_ratio` | cpu_usage | `process_cpu_usage` |
| `app_jvm_memory_usage_ratio` | jvm_memory_usage | sum(used) / sum(max) over the pools |
| `app_request_rate_per_second` | request_count | irate of sum(`_count`) |
| `app_response_time_seconds` | response_time | irate of sum(`_sum`) / irate of sum(`_count`) |

The rates are taken between this scrape and the target's previous successful one, over the
interval between their instants, as Prometheus' `irate`. A counter that went down (the
application restarted), a first scrape, a signal that comes out negative or not finite, and a
response time with no request in the interval give no sample. A target that exposes none of
these metrics (node_exporter) gets nothing more.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence

from rackwatch.bus import Bus, subjects
from rackwatch.model.series import SeriesRegistry
from rackwatch.sources.readings import InventoryItem, Reading, to_batch
from rackwatch.sources.scrape import ScrapeError, Scraper

SOURCE = "scrape"
INVENTORY_EVERY_S = 600.0

APP_SIGNAL_METRICS: dict[str, str] = {
    "cpu_usage": "app_cpu_usage_ratio",
    "jvm_memory_usage": "app_jvm_memory_usage_ratio",
    "request_count": "app_request_rate_per_second",
    "response_time": "app_response_time_seconds",
}
"""Seed 002's signal -> the rackwatch metric it is published as (model/catalogue.py)."""
CPU_USAGE = "process_cpu_usage"
MEMORY_USED, MEMORY_MAX = "jvm_memory_used_bytes", "jvm_memory_max_bytes"
REQUEST_COUNT = ("http_server_requests_seconds_count", "http_server_requests_seconds_count_total")
"""The first name found counts (the parser adds `_total` to a counter that left it out)."""
REQUEST_SECONDS = ("http_server_requests_seconds_sum", "http_server_requests_seconds_sum_total")

Values = Mapping[str, float | Sequence[float]]
"""Metric name -> its value, or the values of its label sets (summed, as Prometheus' sum())."""


def _total(values: Values, *names: str) -> float | None:
    """The named metric summed over its label sets, first name found."""
    for name in names:
        found = values.get(name)
        if found is not None:
            return float(found) if isinstance(found, int | float) else float(sum(found))
    return None


def app_signals(
    current: Values, previous: Values | None = None, interval_s: float | None = None
) -> dict[str, float]:
    """Seed 002's signals known from a scrape and the one `interval_s` before it (for the two
    rates), by signal name (`APP_SIGNAL_METRICS`'s keys); the unknown and the bad (negative,
    not finite, a counter that went down) left out. Pure; `engine.health` classes them.

    >>> now = {"process_cpu_usage": 0.31, "jvm_memory_used_bytes": [300.0, 100.0],
    ...        "jvm_memory_max_bytes": [1000.0, 600.0],
    ...        "http_server_requests_seconds_count": 1200.0,
    ...        "http_server_requests_seconds_sum": 130.0}
    >>> before = {"http_server_requests_seconds_count": 1000.0,
    ...           "http_server_requests_seconds_sum": 100.0}
    >>> app_signals(now, before, 5.0)
    {'cpu_usage': 0.31, 'jvm_memory_usage': 0.25, 'request_count': 40.0, 'response_time': 0.15}
    >>> app_signals(now), app_signals({"process_cpu_usage": -1.0})   # no rates; -1: unknown
    ({'cpu_usage': 0.31, 'jvm_memory_usage': 0.25}, {})
    """
    found: dict[str, float | None] = {"cpu_usage": _total(current, CPU_USAGE)}
    used, limit = _total(current, MEMORY_USED), _total(current, MEMORY_MAX)
    if used is not None and limit is not None and limit > 0:
        found["jvm_memory_usage"] = used / limit
    if previous is not None and interval_s is not None and interval_s > 0:
        count, count_before = _total(current, *REQUEST_COUNT), _total(previous, *REQUEST_COUNT)
        seconds = _total(current, *REQUEST_SECONDS)
        seconds_before = _total(previous, *REQUEST_SECONDS)
        if count is not None and count_before is not None and count >= count_before:
            found["request_count"] = (count - count_before) / interval_s
            if (
                seconds is not None
                and seconds_before is not None
                and seconds >= seconds_before
                and count > count_before
            ):
                found["response_time"] = (seconds - seconds_before) / (count - count_before)
    return {k: v for k, v in found.items() if v is not None and math.isfinite(v) and v >= 0}


class AppSignalTracker:
    """One target's seed 002 signals, scrape after scrape: it keeps the previous scrape's
    application metrics (a few floats) for the rates. Not thread-safe: one loop owns it."""

    def __init__(self, entity: str) -> None:
        self.entity = entity
        self._previous: Values | None = None
        self._previous_ms: int | None = None

    def update(self, current: Mapping[str, Sequence[float]], ts_ms: int) -> list[Reading]:
        """The signals of the scrape at `ts_ms` (its `ScrapeResult.app_inputs`) as readings
        of the target's entity; none when it exposes none of seed 002's metrics."""
        previous, previous_ms = self._previous, self._previous_ms
        self._previous, self._previous_ms = current, ts_ms
        if not current:
            return []
        interval_s = None if previous_ms is None else (ts_ms - previous_ms) / 1000.0
        signals = app_signals(current, previous, interval_s)
        return [Reading(self.entity, APP_SIGNAL_METRICS[k], v) for k, v in signals.items()]


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
        self.app = AppSignalTracker(scraper.target.name)

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
        ts_ms, result = self.scraper.last_ts_ms, self.scraper.last
        if ts_ms is None or not readings:
            return 0
        derived = self.app.update({} if result is None else result.app_inputs, ts_ms)
        if derived:
            # the exposition's own series of the same name and entity, if any, stays
            exposed = {(r.entity, r.metric) for r in readings if r.entity == self.app.entity}
            readings = readings + [r for r in derived if (r.entity, r.metric) not in exposed]
        batch = to_batch(readings, self.registry, ts_ms)
        if len(batch):
            await self.bus.publish(subjects.telemetry(SOURCE), batch)
            self.n_published += len(batch)
        return len(batch)
