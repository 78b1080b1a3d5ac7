"""`rackwatch serve`: the API and the dashboard of a site run by workers (docs/SCALE.md).

A front end holds no part of the pipeline: it reads history from the shared store (PostgreSQL)
and follows the live telemetry on the NATS bus (every partition, an ephemeral consumer: a front
end that restarts starts from now), so several can run behind a load balancer. Alerts,
anomalies and incidents reach it as the events the workers stored; fan control and fault
injection stay with `rackwatch run` (the routes answer 503 here).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from rackwatch import app
from rackwatch.api import ApiContext, create_app
from rackwatch.api.server import serving
from rackwatch.bus.nats import NatsBus
from rackwatch.bus.spaced import SpacedBus
from rackwatch.engine.live import LiveState
from rackwatch.errors import ConfigError
from rackwatch.model import SeriesRegistry
from rackwatch.settings import Settings, energy_config, offline_after_s
from rackwatch.store.base import Store
from rackwatch.tokens import TOKENS_FILE, TokenStore


@dataclass
class FrontEnd:
    settings: Settings
    registry: SeriesRegistry
    store: Store
    nats: NatsBus
    bus: SpacedBus
    live: LiveState
    context: ApiContext

    def close(self) -> None:
        self.store.close()


def build_front_end(settings: Settings) -> FrontEnd:
    if settings.bus.url == "memory":
        raise ConfigError("rackwatch serve follows a NATS bus: give --bus nats://HOST:PORT")
    if settings.store.url == "duckdb":
        raise ConfigError(
            "rackwatch serve reads a store the workers share: give --store postgresql://... "
            "(one machine on DuckDB: use rackwatch run)"
        )
    registry = SeriesRegistry()
    store = app.open_store(settings, registry)
    nats_bus = app.build_bus(settings)
    assert isinstance(nats_bus, NatsBus)
    # Its own space, unique to this process: a front end publishes nothing, but the catalogue
    # must never hand its ids to another process.
    bus = SpacedBus(
        nats_bus, registry, f"serve-{uuid.uuid4().hex[:12]}", partitions=settings.bus.partitions
    )
    live = LiveState(len(registry))
    context = ApiContext(
        store=store,
        registry=registry,
        live=live,
        bus=bus,
        feeds_live=True,
        ws_client_limit=settings.server.ws_client_limit,
        ws_send_timeout_s=settings.server.ws_send_timeout_seconds,
        tokens=TokenStore(settings.data_dir / TOKENS_FILE),
        open_reads_on_loopback=settings.server.open_reads_on_loopback,
        control_source=None,
        host_offline_after_s=offline_after_s(settings),
        energy=energy_config(settings),
        reports=app.build_reporter(settings, store),
    )
    return FrontEnd(settings, registry, store, nats_bus, bus, live, context)


async def serve_front_end(
    front: FrontEnd, stop: asyncio.Event, on_serving: Callable[[str], None] | None = None
) -> None:
    """Connect to the bus, serve until `stop`, then close."""
    await app.connect_nats(front.nats, front.settings.bus.url)
    try:
        await front.bus.start()
        server = front.settings.server
        async with serving(create_app(front.context), server.host, server.port) as url:
            if on_serving is not None:
                on_serving(url)
            await stop.wait()
    finally:
        await front.bus.close()
