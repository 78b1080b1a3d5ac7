"""Helpers for the API tests (imported by name: tests/ has no packages): a store filled from
the twin, and the app served by real uvicorn on a free loopback port in a background thread
(REST through httpx, WebSocket through the `websockets` client), so tests go through the same
stack as the dashboard."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from fastapi import FastAPI

from rackwatch.api import ApiContext
from rackwatch.api.server import serving
from rackwatch.app import inventory_records
from rackwatch.bus import MemoryBus
from rackwatch.engine.live import LiveState
from rackwatch.model import Batch, SeriesRegistry
from rackwatch.sources.twin import TwinSource
from rackwatch.store.duckdb import DuckDBStore
from rackwatch.twin import Twin

START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
HOURS = 3
END_MS = START_MS + HOURS * 3_600_000
NOW_MS = END_MS + 60_000
GAP_SERIES = ("c01/r01/s02", "power_watts")
GAP_MS = (START_MS + 3_600_000, START_MS + 3_600_000 + 10 * 60_000)  # 10 minutes absent

T = TypeVar("T")


@dataclass
class Filled:
    store: DuckDBStore
    registry: SeriesRegistry
    live: LiveState
    last_batch: Batch


def fill_store(path: Path) -> Filled:
    """Three hours of the fan-fail scenario (5 servers, one fan stops at 30 min), with ten
    minutes of one series left out (a gap) and its last reading NULL (NaN)."""
    registry = SeriesRegistry()
    store = DuckDBStore(path, registry, clock=lambda: NOW_MS)
    twin = Twin.from_scenario("fan-fail", clusters=1, seed=1, start_ms=START_MS)
    store.upsert_inventory(inventory_records(twin))
    source = TwinSource(twin, registry)
    gap_id = registry.get(*GAP_SERIES)
    live = LiveState(len(registry))
    batch = Batch.empty()
    for _ in range(HOURS):
        batch, events = source.read(720)
        hole = (batch.series == gap_id) & (batch.ts >= GAP_MS[0]) & (batch.ts < GAP_MS[1])
        batch = batch.take(~hole)
        store.write(batch)
        store.write_events(events)
        live.update(batch)
    nan_id = registry.get("c01/r01/s01", "inlet_temperature_celsius")
    last = Batch.of([END_MS - 5000], [nan_id], [np.nan])
    store.write(last)
    live.update(last)
    store.flush()
    return Filled(store, registry, live, batch)


def make_ctx(filled: Filled, **limits: Any) -> ApiContext:
    return ApiContext(
        store=filled.store,
        registry=filled.registry,
        live=filled.live,
        bus=MemoryBus(),
        scenario="fan-fail",
        clock_ms=lambda: NOW_MS,
        **limits,
    )


class LiveApp:
    """An app served by uvicorn on 127.0.0.1:<free port> in a thread with its own loop."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.url = ""
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(),), daemon=True)
        self._thread.start()
        if not self._ready.wait(20):
            raise RuntimeError("the test server did not start")
        if self._error is not None:
            raise self._error

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://") + "ws"

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            async with serving(self.app, "127.0.0.1", 0) as url:
                self.url = url
                self._ready.set()
                await self._stop.wait()
        except BaseException as exc:
            self._error = exc
            self._ready.set()

    def call(self, fn: Callable[[], Awaitable[T]], timeout: float = 10) -> T:
        """Run a coroutine on the server's loop (e.g. publish on its bus) and wait for it."""
        assert self._loop is not None

        async def run() -> T:
            return await fn()

        future: concurrent.futures.Future[T] = asyncio.run_coroutine_threadsafe(run(), self._loop)
        return future.result(timeout)

    def close(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
