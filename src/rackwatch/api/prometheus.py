"""GET /metrics: the Prometheus text exposition.

Two collectors on a CollectorRegistry of the app's own (never the global one, so every app and
every test has its own): `SeriesCollector`, the newest value of every series, named by its
metric and labelled by its entity path; `RackwatchCollector`, rackwatch's own counters (ingest,
bus, WebSocket). prometheus_client's process collector adds CPU and memory. Samples carry no
timestamp: the twin's simulated time may run ahead of the wall clock, and Prometheus would
drop samples "from the future".
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable, Mapping

import numpy as np
from fastapi import APIRouter, Request
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

from rackwatch.api.auth import READ_ACCESS
from rackwatch.api.deps import ApiContext
from rackwatch.api.fanout import Hub
from rackwatch.errors import RackwatchError
from rackwatch.model import METRICS, MetricKind

log = logging.getLogger(__name__)

router = APIRouter()

LABEL_NAMES = ("entity", "cluster", "rack", "server", "component")
Labels = tuple[str, str, str, str, str]
_LEVEL_OF_KIND = {"cluster": 1, "rack": 2, "server": 3, "host": 3}
_VALID_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_OWN_PREFIXES = ("rackwatch_", "process_", "python_")


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


class SeriesCollector:
    """The newest value of every series seen, one metric family per metric name."""

    def __init__(self, ctx: ApiContext) -> None:
        self.ctx = ctx
        self._labels: list[Labels] = []

    def collect(self) -> Iterable[Metric]:
        keys = self.ctx.registry.keys()
        if len(keys) != len(self._labels):
            kinds = self._inventory_kinds()
            self._labels = [path_labels(k.entity, kinds) for k in keys]
        labels = self._labels
        ts, value = self.ctx.live.snapshot()
        n = min(len(keys), len(ts), len(labels))
        families: dict[str, GaugeMetricFamily | CounterMetricFamily | None] = {}
        for i in np.flatnonzero(ts[:n] >= 0).tolist():
            metric = keys[i].metric
            if metric not in families:
                families[metric] = _family(metric)
            family = families[metric]
            if family is not None:
                family.add_metric(labels[i], float(value[i]))
        return [f for f in families.values() if f is not None]

    def _inventory_kinds(self) -> dict[str, str]:
        try:
            return {r.path: r.kind for r in self.ctx.store.inventory()}
        except RackwatchError:
            log.warning("inventory unavailable: /metrics labels series by path position")
            return {}


def _family(metric: str) -> GaugeMetricFamily | CounterMetricFamily | None:
    if not _VALID_NAME.match(metric) or metric.startswith(_OWN_PREFIXES):
        return None
    spec = METRICS.get(metric)
    doc = spec.help if spec is not None else f"Latest value of {metric}."
    if spec is not None and spec.kind is MetricKind.COUNTER and metric.endswith("_total"):
        return CounterMetricFamily(metric, doc, labels=LABEL_NAMES)
    return GaugeMetricFamily(metric, doc, labels=LABEL_NAMES)


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
            "rackwatch_ingest_samples", "Samples received from the bus.", value=hub.meter.total
        )
        yield GaugeMetricFamily(
            "rackwatch_ingest_samples_per_second",
            "Samples received per second over the last 10 s.",
            value=hub.meter.rate(),
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


def build_registry(ctx: ApiContext, hub: Hub) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SeriesCollector(ctx))
    registry.register(RackwatchCollector(ctx, hub))
    ProcessCollector(registry=registry)
    return registry


@router.get("/metrics", include_in_schema=False, dependencies=[READ_ACCESS])
async def metrics(request: Request) -> Response:
    """Prometheus exposition, in the format the scraper asks for (Accept header)."""
    registry: CollectorRegistry = request.app.state.metrics_registry
    encoder, content_type = choose_encoder(request.headers.get("accept", ""))
    body = await run_in_threadpool(encoder, registry)
    return Response(body, media_type=content_type)
