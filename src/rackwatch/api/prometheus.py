"""GET /metrics: the Prometheus text exposition.

Three collectors on a registry of the app's own (never the global one, so every app and every
test has its own): `SeriesCollector`, the newest value of every series, named `rackwatch_` +
its metric (`rackwatch_power_watts`: bare names such as `power_watts` clash with other
exporters) and labelled by its entity path; `RackwatchCollector`, rackwatch's own counters
(ingest, bus, WebSocket); `EngineCollector`, the engine's state (open alerts, device states,
silent sources, notifier and store-writer counters, health and time to failure) for Grafana
and Alertmanager.
prometheus_client's process collector adds CPU and memory. A label with nothing to say is left
out, never exported empty. Samples carry no timestamp: the twin's simulated time may run ahead
of the wall clock, and Prometheus would drop samples "from the future".

The engine changes its state on the event loop while the exposition is encoded in a worker
thread, so the route takes the engine's snapshot on the loop first (`MetricsRegistry.refresh`,
cheap: lists and counters; the health report is the intelligence's, computed in a thread and
cached a few seconds) and the thread only formats it.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.exposition import choose_encoder
from starlette.concurrency import run_in_threadpool

from rackwatch.api import energy_metrics
from rackwatch.api.auth import READ_ACCESS
from rackwatch.api.deps import ApiContext
from rackwatch.api.fanout import Hub
from rackwatch.engine.alerts.lifecycle import Alert
from rackwatch.engine.intelligence import HealthReport
from rackwatch.engine.states import DeviceState
from rackwatch.errors import RackwatchError
from rackwatch.model import METRICS, MetricKind

log = logging.getLogger(__name__)

router = APIRouter()

PREFIX = "rackwatch_"
"""Every series rackwatch exports starts with this (process_* aside)."""
LABEL_NAMES = ("entity", "cluster", "rack", "server", "component")
Labels = tuple[str, str, str, str, str]
_LEVEL_OF_KIND = {"cluster": 1, "rack": 2, "server": 3, "host": 3}
_VALID_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
OWN_NAMES = frozenset(
    {
        "build",
        "ingest_samples",
        "ingest_samples_per_second",
        "bus_queue_depth",
        "bus_dropped_messages",
        "ws_clients",
        "ws_dropped_messages",
        "ws_messages_sent",
        "ws_slow_clients_dropped",
        "ws_clients_refused",
        "series",
        "uptime_seconds",
        "alert_firing",
        "device_state",
        "source_up",
        "notifications_sent",
        "notifications_failed",
        "notifications_retries",
        "notifications_dropped",
        "notifications_filtered",
        "notifications_spooled",
        "notifications_restored",
        "notifications_pending",
        "store_written_samples",
        "store_written_events",
        "store_write_errors",
        "store_dropped",
        "store_quarantined",
        "health_score",
        "time_to_failure_seconds",
        *energy_metrics.NAMES,
    }
)
"""rackwatch's own families, without the prefix: a telemetry metric of one of these names (or
with `_total`/`_info` after it) is not exported, rather than clash with them."""


def label_dict(labels: Labels) -> dict[str, str]:
    """The labels that say something: an empty one is left out, not exported as "".

    >>> label_dict(("room/crac1", "", "", "", "crac1"))
    {'entity': 'room/crac1', 'component': 'crac1'}
    """
    return {name: value for name, value in zip(LABEL_NAMES, labels, strict=True) if value}


def path_labels(path: str, kinds: Mapping[str, str]) -> Labels:
    """Labels from an entity path: each ancestor whose inventory kind is cluster, rack or
    server (a host counts as a server) names that level, and a last segment of another kind is
    the component. Paths missing from the inventory are read by position.

    >>> kinds = {"room": "room", "room/crac1": "crac", "c01": "cluster", "c01/r01": "rack",
    ...          "c01/r01/pdu": "pdu", "c01/r01/s01": "server", "c01/r01/s01/fan1": "fan"}
    >>> path_labels("c01/r01/s01/fan1", kinds)
    ('c01/r01/s01/fan1', 'c01', 'r01', 's01', 'fan1')
    >>> path_labels("c01/r01/pdu", kinds), path_labels("room/crac1", kinds)[1:]
    (('c01/r01/pdu', 'c01', 'r01', '', 'pdu'), ('', '', '', 'crac1'))
    >>> path_labels("c02/r09/s03", {})
    ('c02/r09/s03', 'c02', 'r09', 's03', '')
    >>> path_labels("host/db1/gpu0", {})
    ('host/db1/gpu0', '', '', 'db1', 'gpu0')
    """
    segments = path.split("/")
    levels = ["", "", "", ""]
    for depth in range(1, len(segments) + 1):
        segment = segments[depth - 1]
        kind = kinds.get("/".join(segments[:depth]))
        if kind is None:
            level = _position_level(segments, depth)
        else:
            level = _LEVEL_OF_KIND.get(kind, 4 if depth == len(segments) and depth > 1 else 0)
        if level:
            levels[level - 1] = segment
    return (path, levels[0], levels[1], levels[2], levels[3])


def _position_level(segments: list[str], depth: int) -> int:
    """Level of an entity segment not in the inventory: `room/...` and `host/<name>/...` are
    read as room and host paths, anything else as cluster/rack/server/component."""
    last = depth == len(segments)
    if segments[0] == "room":
        return 4 if last and depth > 1 else 0
    if segments[0] == "host":
        return 3 if depth == 2 else (4 if last and depth > 2 else 0)
    return min(depth, 4)


class PathLabels:
    """Entity path -> its labels (`label_dict(path_labels(...))`), from the inventory's kinds.
    Cached; the cache starts over when the registry grows (new entities, maybe a new
    inventory). Reads the store: call it from a worker thread, as the exposition is."""

    def __init__(self, ctx: ApiContext) -> None:
        self.ctx = ctx
        self._size = -1
        self._kinds: dict[str, str] = {}
        self._cache: dict[str, dict[str, str]] = {}

    def __call__(self, path: str) -> dict[str, str]:
        size = len(self.ctx.registry)
        if size != self._size:
            self._size, self._kinds, self._cache = size, self._inventory_kinds(), {}
        found = self._cache.get(path)
        if found is None:
            found = self._cache[path] = label_dict(path_labels(path, self._kinds))
        return found

    def _inventory_kinds(self) -> dict[str, str]:
        try:
            return {r.path: r.kind for r in self.ctx.store.inventory()}
        except RackwatchError:
            log.warning("inventory unavailable: /metrics labels series by path position")
            return {}


class SeriesCollector:
    """The newest value of every series seen, one family per metric: `rackwatch_<metric>`."""

    def __init__(self, ctx: ApiContext, labels: PathLabels) -> None:
        self.ctx = ctx
        self.path_labels = labels
        self._labels: list[dict[str, str]] = []

    def collect(self) -> Iterable[Metric]:
        keys = self.ctx.registry.keys()
        if len(keys) != len(self._labels):
            self._labels = [self.path_labels(k.entity) for k in keys]
        labels = self._labels
        ts, value = self.ctx.live.snapshot()
        n = min(len(keys), len(ts), len(labels))
        families: dict[str, tuple[Metric, str] | None] = {}
        for i in np.flatnonzero(ts[:n] >= 0).tolist():
            metric = keys[i].metric
            if metric not in families:
                families[metric] = _family(metric)
            found = families[metric]
            if found is not None:
                family, sample_name = found
                family.add_sample(sample_name, labels[i], float(value[i]))
        return [found[0] for found in families.values() if found is not None]


def _family(metric: str) -> tuple[Metric, str] | None:
    """The family of a telemetry metric and its samples' name; None for a name Prometheus
    cannot take or one of rackwatch's own."""
    base = metric.removesuffix("_total").removesuffix("_info")
    if not _VALID_NAME.match(metric) or base in OWN_NAMES:
        return None
    name = PREFIX + metric
    spec = METRICS.get(metric)
    doc = spec.help if spec is not None else f"Latest value of {metric}."
    if spec is not None and spec.kind is MetricKind.COUNTER and metric.endswith("_total"):
        counter = CounterMetricFamily(name, doc)
        return counter, counter.name + "_total"
    return GaugeMetricFamily(name, doc), name


class RackwatchCollector:
    """rackwatch's own figures: ingest, bus and WebSocket counters, series, uptime."""

    def __init__(self, ctx: ApiContext, hub: Hub) -> None:
        self.ctx = ctx
        self.hub = hub

    def collect(self) -> Iterable[Metric]:
        ctx, hub = self.ctx, self.hub
        info = InfoMetricFamily("rackwatch_build", "rackwatch version.")
        info.add_metric([], {"version": ctx.version})
        yield info
        yield CounterMetricFamily(
            "rackwatch_ingest_samples", "Samples received from the bus.", value=ctx.live.meter.total
        )
        yield GaugeMetricFamily(
            "rackwatch_ingest_samples_per_second",
            "Samples received per second over the last 10 s.",
            value=ctx.live.meter.rate(),
        )
        if ctx.bus_queue_depth is not None:
            yield GaugeMetricFamily(
                "rackwatch_bus_queue_depth",
                "Messages queued on the bus, not yet read by a consumer.",
                value=ctx.bus_queue_depth(),
            )
        dropped = getattr(ctx.bus, "dropped", None)
        if isinstance(dropped, int):
            yield CounterMetricFamily(
                "rackwatch_bus_dropped_messages",
                "Messages a slow bus consumer lost (oldest dropped).",
                value=dropped,
            )
        yield GaugeMetricFamily(
            "rackwatch_ws_clients", "WebSocket clients connected.", value=hub.n_clients
        )
        yield CounterMetricFamily(
            "rackwatch_ws_dropped_messages",
            "WebSocket messages dropped from a full client queue (oldest first).",
            value=hub.n_dropped,
        )
        yield CounterMetricFamily(
            "rackwatch_ws_messages_sent", "WebSocket messages sent.", value=hub.n_sent
        )
        yield CounterMetricFamily(
            "rackwatch_ws_slow_clients_dropped",
            "WebSocket clients disconnected for not taking a message in time.",
            value=hub.n_too_slow,
        )
        yield CounterMetricFamily(
            "rackwatch_ws_clients_refused",
            "WebSocket clients refused because the client limit was reached.",
            value=hub.n_refused,
        )
        yield GaugeMetricFamily("rackwatch_series", "Series registered.", value=len(ctx.registry))
        yield GaugeMetricFamily(
            "rackwatch_uptime_seconds",
            "Seconds since the server started.",
            value=time.time() - ctx.started_at_s,
        )


class WriterCounters(Protocol):
    """What /metrics and /status read of the store writer (`engine.writer.StoreWriter`):
    `n_errors` and `n_dropped`, and `n_samples`, `n_events`, `n_quarantined` where it has them."""

    @property
    def n_errors(self) -> int: ...

    @property
    def n_dropped(self) -> int: ...


def writer_counts(writer: WriterCounters) -> dict[str, int]:
    """The writer's counters; 0 for one this writer does not keep."""
    names = ("n_samples", "n_events", "n_errors", "n_dropped", "n_quarantined")
    counts = {}
    for name in names:
        value = getattr(writer, name, 0)
        counts[name] = value if isinstance(value, int) else 0
    return counts


@dataclass(frozen=True, slots=True)
class EngineSnapshot:
    """The engine's state at one instant, taken on the event loop."""

    alerts: list[Alert] = field(default_factory=list)
    states: dict[str, DeviceState] = field(default_factory=dict)
    sources: dict[str, bool] = field(default_factory=dict)
    """Watched source -> silent."""
    notifiers: dict[str, dict[str, int]] = field(default_factory=dict)
    writer: dict[str, int] | None = None
    health: HealthReport | None = None
    """The intelligence's health report (None: it does not run)."""


def engine_snapshot(
    ctx: ApiContext, writer: WriterCounters | None, health: HealthReport | None = None
) -> EngineSnapshot:
    """Copy what the exposition needs; call it on the event loop."""
    engine = ctx.alerts
    return EngineSnapshot(
        alerts=[] if engine is None else engine.active_alerts(),
        states={} if engine is None else engine.states(),
        sources={} if engine is None else engine.sources(),
        notifiers={} if engine is None else engine.notifier_stats(),
        writer=None if writer is None else writer_counts(writer),
        health=health,
    )


_NOTIFIER_COUNTERS = (
    ("sent", "Notifications delivered."),
    ("failed", "Notifications whose delivery failed or timed out (after the notifier's retries)."),
    ("retries", "Delivery attempts after the first (webhook and Slack retries)."),
    ("dropped", "Notifications lost: pushed out of a full queue, or left at stop unspooled."),
    ("filtered", "Notifications the notifier's filter refused."),
    ("spooled", "Notifications undelivered at stop, kept for the next start."),
    ("restored", "Notifications taken back from the spool at start."),
)
_WRITER_COUNTERS = (
    ("n_samples", "store_written_samples", "Samples the store writer wrote."),
    ("n_events", "store_written_events", "Events the store writer wrote."),
    ("n_errors", "store_write_errors", "Failed store writes (kept and tried again)."),
    ("n_dropped", "store_dropped", "Samples and events given up after repeated write failures."),
    ("n_quarantined", "store_quarantined", "Samples and events set aside as unwritable."),
)


class EngineCollector:
    """Open alerts, device states, silent sources, notifier and store-writer counters, from
    the snapshot the route took on the loop (`refresh`)."""

    def __init__(self, ctx: ApiContext, labels: PathLabels) -> None:
        self.ctx = ctx
        self.path_labels = labels
        self.writer: WriterCounters | None = None
        """Set by the wiring (`watch_writer`)."""
        self.snapshot = EngineSnapshot()

    def refresh(self, health: HealthReport | None = None) -> None:
        self.snapshot = engine_snapshot(self.ctx, self.writer, health)

    def collect(self) -> Iterable[Metric]:
        snap = self.snapshot
        if self.ctx.alerts is not None:
            yield self._alerts(snap.alerts)
            yield self._states(snap.states)
            up = GaugeMetricFamily(
                PREFIX + "source_up",
                "1 while the telemetry source sends, 0 once silent on the wall clock.",
                labels=("source",),
            )
            for source, is_silent in sorted(snap.sources.items()):
                up.add_metric((source,), 0.0 if is_silent else 1.0)
            yield up
            yield from self._notifiers(snap.notifiers)
        if snap.writer is not None:
            for key, name, doc in _WRITER_COUNTERS:
                yield CounterMetricFamily(PREFIX + name, doc, value=snap.writer[key])
        if snap.health is not None:
            yield from self._health(snap.health)

    def _health(self, report: HealthReport) -> Iterable[Metric]:
        score = GaugeMetricFamily(
            PREFIX + "health_score",
            "Health 0-100 of every device, rack, cluster and the room (100: nothing wrong; "
            "criticity: low above 75, medium above 50, high above 25, critical).",
        )
        eta = GaugeMetricFamily(
            PREFIX + "time_to_failure_seconds",
            "Seconds until the next predicted failure of the entity or one of its members "
            "(0: it has failed), labelled with the device and what fails; no series: none "
            "predicted.",
        )
        for entity, h in sorted(report.entities.items()):
            labels = self.path_labels(entity)
            score.add_sample(score.name, labels, round(h.score, 1))
            nf = h.next_failure
            if nf is not None:
                eta.add_sample(eta.name, {**labels, "device": nf.entity, "what": nf.what}, nf.eta_s)
        yield score
        yield eta

    def _alerts(self, alerts: list[Alert]) -> Metric:
        family = GaugeMetricFamily(
            PREFIX + "alert_firing",
            "1 per open alert (firing or acknowledged), labelled by rule, severity, status and "
            "entity; suppressed=true while its entity is in maintenance.",
        )
        name = family.name
        for a in alerts:
            labels = {
                **self.path_labels(a.entity),
                "rule": a.rule,
                "severity": a.severity.name.lower(),
                "status": str(a.status),
                "suppressed": "true" if a.is_suppressed else "false",
            }
            family.add_sample(name, labels, 1.0)
        return family

    def _states(self, states: dict[str, DeviceState]) -> Metric:
        # One series per entity, its current state (not one per possible state at 0 or 1:
        # six times the series for a room of thousands of entities, for little gain).
        family = GaugeMetricFamily(
            PREFIX + "device_state",
            "1, labelled with the entity's current state (ok, warning, critical, failed, "
            "maintenance, unknown).",
        )
        name = family.name
        for entity, state in states.items():
            family.add_sample(name, {**self.path_labels(entity), "state": str(state)}, 1.0)
        return family

    def _notifiers(self, stats: dict[str, dict[str, int]]) -> Iterable[Metric]:
        for key, doc in _NOTIFIER_COUNTERS:
            family = CounterMetricFamily(f"{PREFIX}notifications_{key}", doc, labels=("notifier",))
            for notifier, counts in sorted(stats.items()):
                family.add_metric((notifier,), counts.get(key, 0))
            yield family
        pending = GaugeMetricFamily(
            PREFIX + "notifications_pending",
            "Notifications queued for the notifier now.",
            labels=("notifier",),
        )
        for notifier, counts in sorted(stats.items()):
            pending.add_metric((notifier,), counts.get("pending", 0))
        yield pending


class MetricsRegistry(CollectorRegistry):
    """The app's registry; `refresh()` (on the event loop) snapshots the engine first."""

    def __init__(self, engine: EngineCollector) -> None:
        super().__init__(auto_describe=False)
        self.engine = engine

    def refresh(self, health: HealthReport | None = None) -> None:
        self.engine.refresh(health)


def build_registry(ctx: ApiContext, hub: Hub) -> MetricsRegistry:
    labels = PathLabels(ctx)
    engine = EngineCollector(ctx, labels)
    registry = MetricsRegistry(engine)
    registry.register(SeriesCollector(ctx, labels))
    registry.register(RackwatchCollector(ctx, hub))
    registry.register(engine)
    registry.register(energy_metrics.EnergyCollector(ctx))
    ProcessCollector(registry=registry)
    return registry


def watch_writer(app: FastAPI, writer: WriterCounters) -> None:
    """Report the store writer's counters in /metrics and GET /status (the wiring calls it:
    the writer is built beside the API, not inside its context)."""
    app.state.writer = writer
    registry = getattr(app.state, "metrics_registry", None)
    if isinstance(registry, MetricsRegistry):
        registry.engine.writer = writer


@router.get("/metrics", include_in_schema=False, dependencies=[READ_ACCESS])
async def metrics(request: Request) -> Response:
    """Prometheus exposition, in the format the scraper asks for (Accept header)."""
    registry: CollectorRegistry = request.app.state.metrics_registry
    if isinstance(registry, MetricsRegistry):
        intelligence = registry.engine.ctx.intelligence
        health = None if intelligence is None else await intelligence.health()
        registry.refresh(health)  # on the loop, where the engine changes
    encoder, content_type = choose_encoder(request.headers.get("accept", ""))
    body = await run_in_threadpool(encoder, registry)
    return Response(body, media_type=content_type)
