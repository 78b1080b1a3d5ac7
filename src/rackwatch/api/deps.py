"""The API's context (what it reads, built by the wiring or a test) and its typed dependencies.

`ApiContext` holds plain parts and limits, never settings: `rackwatch.app` builds it from the
settings, a test builds it from a temporary store. Routes take `CtxDep`, `StoreDep`, `HubDep`,
`AlertsDep`, `ControllerDep`, `IntelligenceDep` (and their access, `auth.ReadAccess` /
`auth.ControlAccess`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Protocol

from fastapi import Depends, HTTPException
from starlette.requests import HTTPConnection

from rackwatch import __version__
from rackwatch.api.fanout import Hub, Ids
from rackwatch.api.params import ParamError, is_glob
from rackwatch.bus import Bus
from rackwatch.engine.alerts.engine import AlertEngine
from rackwatch.engine.alerts.site import SiteAlerts
from rackwatch.engine.control.group import FanControl
from rackwatch.engine.energy.config import EnergyConfig
from rackwatch.engine.intelligence import Intelligence
from rackwatch.engine.live import LiveState
from rackwatch.engine.reports import Reporter
from rackwatch.engine.retention import RetentionRunner
from rackwatch.engine.states import Maintenance, Rollup, UsageStatus
from rackwatch.model import METRICS, SeriesRegistry
from rackwatch.model.entity import ancestors
from rackwatch.store.base import Store
from rackwatch.store.results import SeriesIndex
from rackwatch.tokens import TokenStore


def _wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class ApiContext:
    """Everything the API reads, and its limits.

    `live` is the live state table, which the WebSocket fan-out follows; `bus` carries the
    telemetry. With `feeds_live` the app keeps `live` from the bus itself; the pipeline,
    which keeps it already, sets it False. `max_points` bounds one /series answer (rows x series);
    `raw_interval_ms` is the sampling interval assumed to estimate a raw query's size before
    running it. `bus_queue_depth` reports messages queued on the bus (for /metrics).
    """

    store: Store
    registry: SeriesRegistry
    live: LiveState
    bus: Bus
    feeds_live: bool = True
    version: str = __version__
    scenario: str | None = None
    started_at_s: float = field(default_factory=time.time)
    ws_client_limit: int = 1000
    ws_send_timeout_s: float = 1.0
    ws_queue_size: int = 32
    max_points: int = 1_000_000
    ingest_series_limit: int = 200_000
    """Series the registry may hold before `POST /ingest` refuses to create more."""
    raw_interval_ms: int = 5000
    bus_queue_depth: Callable[[], int] | None = None
    clock_ms: Callable[[], int] = _wall_clock_ms
    alerts: AlertEngine | None = None
    """Active alerts, acknowledgement, device states and maintenance (None: no alerting)."""
    site_alerts: SiteAlerts | None = None
    """A front end's view of the alerts and states the alert workers publish (`rackwatch
    serve`): GET /alerts and GET /states answer from it when no engine runs here."""
    controller: FanControl | None = None
    """Fan modes and levels (None: no fan control)."""
    tokens: TokenStore | None = None
    """Bearer tokens; None means no token can be checked, so control routes always refuse."""
    open_reads_on_loopback: bool = True
    """GET routes and the WebSocket answer loopback clients without a token."""
    retention: RetentionRunner | None = None
    """Retention runs of `rackwatch run` (reported by GET /status); None: not running."""
    control_source: str | None = "twin"
    """Source whose commands the control API may send (fault injection is twin-only)."""
    host_offline_after_s: float = 60.0
    """`[host] offline_after_seconds`: a real machine silent this long is offline (GET
    /hosts says it; the alert engine makes it UNKNOWN)."""
    intelligence: Intelligence | None = None
    """Open anomalies, fan predictions and health now (None: `[intelligence]` off; the
    stored history still answers GET /health, /predictions and /anomalies)."""
    energy: EnergyConfig = field(default_factory=EnergyConfig)
    """Tariff, configured PUE and the live accountant (`GET /energy`, `/energy/live`)."""
    reports: Reporter | None = None
    """Makes and archives reports (`/reports`; None: the routes answer 503)."""
    _selections: dict[tuple[str, tuple[str, ...] | None, int], Ids] = field(
        default_factory=dict, repr=False
    )
    _index: SeriesIndex = field(default_factory=SeriesIndex, repr=False)
    _metric_names: tuple[int, frozenset[str]] = field(default=(-1, frozenset()), repr=False)
    _entities: tuple[int, frozenset[str]] = field(default=(-1, frozenset()), repr=False)

    def newest_sample_ms(self) -> int | None:
        """Timestamp of the newest sample in the live state (the twin's simulated now)."""
        seen = self.live.ts[self.live.ts >= 0]
        return int(seen.max()) if len(seen) else None

    def now_ms(self) -> int:
        """'now' for relative times: the wall clock, or the newest sample when the twin runs
        ahead of the wall clock (--speed > 1)."""
        newest = self.newest_sample_ms()
        wall = self.clock_ms()
        return wall if newest is None else max(wall, newest)

    def series_index(self) -> SeriesIndex:
        """The registry's series by entity and metric, brought up to date (about 10 ms per
        26,000 new series, once; nothing when the registry has not grown)."""
        self._index.follow(self.registry)
        return self._index

    def select(self, entity: str, metrics: Sequence[str] | None) -> Ids:
        """Ids of the matching series; cached per (filter, registry size), so a dashboard
        polling the same selection does not re-match every series on every request. A new
        selection costs well under 1 ms at 26,405 series, whatever the pattern
        (`SeriesIndex`), so routes may call it on the event loop."""
        index = self.series_index()
        key = (entity, None if metrics is None else tuple(metrics), len(index))
        found = self._selections.get(key)
        if found is None:
            if len(self._selections) >= 256:
                self._selections.clear()
            found = index.select(entity, metrics)
            self._selections[key] = found
        return found

    def check_metric_names(self, metrics: Sequence[str] | None) -> None:
        """ParamError for a plain metric name that is neither in the catalogue nor stored."""
        if not metrics:
            return
        n, names = self._metric_names
        index = self.series_index()
        if n != len(index):
            names = frozenset(METRICS) | frozenset(index.metrics)
            self._metric_names = (len(index), names)
        unknown = [m for m in metrics if not is_glob(m) and m not in names]
        if unknown:
            raise ParamError(
                f"unknown metric {unknown[0]!r}; known metrics: {', '.join(sorted(names))}"
            )

    def series_entities(self) -> frozenset[str]:
        """Every entity that has a series, and their ancestors (racks, clusters); cached per
        registry size, so a control call does not walk every series."""
        n, found = self._entities
        index = self.series_index()
        if n != len(index):
            paths = set(index.entities)
            for entity in index.entities:
                paths.update(ancestors(entity))
            found = frozenset(paths)
            self._entities = (len(index), found)
        return found

    def build_hub(self) -> Hub:
        return Hub(
            self.registry,
            client_limit=self.ws_client_limit,
            send_timeout_s=self.ws_send_timeout_s,
            queue_size=self.ws_queue_size,
            live=self.live,
            recent_alerts=self._recent_alerts(),
        )

    def _recent_alerts(self) -> Callable[[int], list[dict[str, Any]]] | None:
        """The WebSocket's `alerts` array: the engine's, or a front end's SiteAlerts'."""
        if self.alerts is not None:
            return self.alerts.recent_alerts
        return None if self.site_alerts is None else self.site_alerts.recent_alerts


def get_ctx(conn: HTTPConnection) -> ApiContext:
    ctx: ApiContext = conn.app.state.ctx
    return ctx


def get_store(conn: HTTPConnection) -> Store:
    return get_ctx(conn).store


def get_hub(conn: HTTPConnection) -> Hub:
    hub: Hub = conn.app.state.hub
    return hub


def get_alerts(conn: HTTPConnection) -> AlertEngine:
    alerts = get_ctx(conn).alerts
    if alerts is None:
        raise HTTPException(503, "alerting is not running on this server (no alert engine)")
    return alerts


class AlertReadout(Protocol):
    """What GET /alerts and GET /states read: an alert engine, or a front end's SiteAlerts."""

    def open_alert_dicts(self) -> list[dict[str, Any]]: ...
    def recent_alerts(self, since_ms: int) -> list[dict[str, Any]]: ...
    def rollups(self) -> dict[str, Rollup]: ...
    def usage(self) -> dict[str, UsageStatus]: ...
    def state_details(self, entity: str) -> dict[str, Any] | None: ...
    def maintenance_of(self, entity: str) -> Maintenance | None: ...


def get_alert_readout(conn: HTTPConnection) -> AlertReadout:
    ctx = get_ctx(conn)
    if ctx.alerts is not None:
        return ctx.alerts
    if ctx.site_alerts is not None:
        return ctx.site_alerts
    raise HTTPException(503, "alerting is not running on this server (no alert engine)")


def get_alert_acknowledger(conn: HTTPConnection) -> AlertEngine | SiteAlerts:
    ctx = get_ctx(conn)
    if ctx.alerts is not None:
        return ctx.alerts
    if ctx.site_alerts is not None and ctx.site_alerts.publish is not None:
        return ctx.site_alerts
    raise HTTPException(503, "alerting is not running on this server (no alert engine)")


def get_controller(conn: HTTPConnection) -> FanControl:
    controller = get_ctx(conn).controller
    if controller is None:
        raise HTTPException(503, "fan control is not running on this server (no controller)")
    return controller


def get_intelligence(conn: HTTPConnection) -> Intelligence:
    intelligence = get_ctx(conn).intelligence
    if intelligence is None:
        raise HTTPException(
            503, "the intelligence is not running on this server ([intelligence] enabled = false)"
        )
    return intelligence


CtxDep = Annotated[ApiContext, Depends(get_ctx)]
AlertsDep = Annotated[AlertEngine, Depends(get_alerts)]
"""The alert engine; 503 when the server runs without one. Put it after the access check."""
AlertAckDep = Annotated[AlertEngine | SiteAlerts, Depends(get_alert_acknowledger)]
"""The alert engine, or a front end's SiteAlerts (through the alerts workers); 503 with
neither. Put it after the access check."""
AlertReadoutDep = Annotated[AlertReadout, Depends(get_alert_readout)]
"""The alert engine, or a front end's view of the alert workers' events; 503 with neither."""
ControllerDep = Annotated[FanControl, Depends(get_controller)]
"""The fan controller; 503 when the server runs without one."""
IntelligenceDep = Annotated[Intelligence, Depends(get_intelligence)]
"""The intelligence consumer; 503 when the server runs without one."""
StoreDep = Annotated[Store, Depends(get_store)]
HubDep = Annotated[Hub, Depends(get_hub)]

__all__ = [
    "AlertsDep",
    "ApiContext",
    "ControllerDep",
    "CtxDep",
    "HubDep",
    "IntelligenceDep",
    "StoreDep",
]
