"""`rackwatch serve`: the API and the dashboard of a site run by workers (docs/SCALE.md).

A front end holds no part of the pipeline: it reads history from the shared store (PostgreSQL)
and follows the live telemetry on the NATS bus (every partition, an ephemeral consumer: a front
end that restarts starts from now), so several can run behind a load balancer. The open alerts
and the device states (GET /alerts, GET /states, the dashboard's panels and rack chips) are
folded from the events the alert workers publish, read back from the store at start
(engine/alerts/site.py); anomalies and incidents are the events the workers stored; the
inventory is what the producers announced (the store worker keeps it). An acknowledgement
goes to the alerts workers as a command (`commands.alerts`); maintenance, fan control and
fault injection stay with the processes that own them (the routes answer 503 here).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from rackwatch import app
from rackwatch.api import ApiContext, create_app
from rackwatch.api.server import serving
from rackwatch.bus import subjects
from rackwatch.bus.nats import NatsBus
from rackwatch.bus.spaced import SpacedBus
from rackwatch.engine.alerts.site import SiteAlerts
from rackwatch.engine.intelligence.roles import DERIVED_METRICS
from rackwatch.engine.live import LiveState
from rackwatch.errors import ConfigError
from rackwatch.model import Event, SeriesRegistry
from rackwatch.settings import Settings, build_alert_rules, energy_config, offline_after_s
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
    site_alerts: SiteAlerts

    def close(self) -> None:
        self.store.close()


class HeardEntities:
    """The entities whose telemetry this front end has received (rackwatch's own derived
    series aside: a rack's health score is not the rack speaking), recomputed only when a
    series was first heard since the last call."""

    def __init__(self, registry: SeriesRegistry, live: LiveState) -> None:
        self._registry = registry
        self._live = live
        self._cached: tuple[int, frozenset[str]] = (-1, frozenset())

    def __call__(self) -> frozenset[str]:
        heard = np.flatnonzero(self._live.ts >= 0)
        if len(heard) != self._cached[0]:
            keys = (self._registry.key(int(i)) for i in heard)
            entities = frozenset(k.entity for k in keys if k.metric not in DERIVED_METRICS)
            self._cached = (len(heard), entities)
        return self._cached[1]


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
    rules = build_alert_rules(settings.alerts) if settings.alerts.enabled else []
    site_alerts = SiteAlerts(
        frozenset(rule.name for rule in rules if rule.is_failure),
        history=settings.alerts.history,
        heard=HeardEntities(registry, live),
    )
    context = ApiContext(
        site_alerts=site_alerts,
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
    return FrontEnd(settings, registry, store, nats_bus, bus, live, context, site_alerts)


async def serve_front_end(
    front: FrontEnd, stop: asyncio.Event, on_serving: Callable[[str], None] | None = None
) -> None:
    """Connect to the bus, serve until `stop`, then close."""
    await app.connect_nats(front.nats, front.settings.bus.url)
    follow: asyncio.Task[None] | None = None
    try:
        await front.bus.start()
        front.site_alerts.publish = front.bus.publish  # acknowledgements, to the workers
        ready = asyncio.Event()
        follow = asyncio.create_task(follow_site_alerts(front, ready), name="site-alerts")
        await ready.wait()
        server = front.settings.server
        async with serving(create_app(front.context), server.host, server.port) as url:
            if on_serving is not None:
                on_serving(url)
            await stop.wait()
    finally:
        await front.bus.close()
        if follow is not None:
            follow.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follow


async def follow_site_alerts(front: FrontEnd, ready: asyncio.Event) -> None:
    """Fold the alert workers' events into the front end's SiteAlerts: subscribed first, then
    what the store holds (the events stored meanwhile come twice: folded once), then live."""
    site = front.site_alerts
    async with front.bus.subscribe(f"{subjects.EVENTS}.>") as events:
        seeded = await asyncio.to_thread(_seed, site, front.store)
        ready.set()
        async for _subject, event in events:
            if seeded and _key(event) in seeded:
                seeded.discard(_key(event))
                continue
            site.fold([event])


def _seed(site: SiteAlerts, store: Store) -> set[tuple[Any, ...]]:
    """Seed `site` from the store; the keys of the newest minute of what was read (what the
    subscription may deliver again)."""
    newest = site.seed(store, int(time.time() * 1000))
    if not newest:
        return set()
    since = newest[-1].ts - 60_000
    return {_key(event) for event in newest if event.ts >= since}


def _key(event: Event) -> tuple[Any, ...]:
    found = event.attributes
    return (event.ts, str(event.kind), event.entity, found.get("alert_id"), found.get("to"))
