"""`rackwatch agent --listen HOST:PORT`: this host's monitoring over WebSocket, in the protocol of
the monitoring WebSocket server that users have written clients for (the founding document's
"API WebSocket", "Métriques Collectées" and "Système d'Alertes"), so that a client written to
that document works unchanged.

The protocol: WebSocket at path `/` (`ws://<host>:8765` by default), JSON text frames.

Server to client:

- `connection` once, on connect: `{"type": "connection", "status": "connected", "timestamp",
  "message"}`.
- `monitoring_data` after each collection, to every client (no subscription needed):
  `{"type", "timestamp", "data": {"memory", "processor", "disk", "system"[, "gpu"]}
  [, "alerts"]}`, each section with the document's field names and units (bytes, percent,
  MHz, °C, W). A value this host cannot give is null; the `gpu` section is there only where
  the host has GPUs, and `alerts` only when an alert fired with that collection. A client
  that connects gets the newest one at once (without its alerts).
- `pong` (to `ping`), `status` (to `get_status`), `subscribed` / `unsubscribed` (the
  confirmations of `subscribe` / `unsubscribe`), and `error` `{"type", "message", "code"}`.

Client to server: `{"type": "ping" | "get_status" | "subscribe" | "unsubscribe"}` (other fields
are ignored). Every client receives monitoring data from the start; `unsubscribe` stops it
for that client and `subscribe` starts it again. Anything else (not JSON, not an object, no
string `type`, an unknown type, nested deeper than 1,024, longer than 64 KiB) gets an `error`
with code `INVALID_FORMAT`, and the connection stays open. A message over 1 MiB closes the
connection (1009, message too big) before it is read. Parsing is orjson's: linear in the
message, no regular expression ever sees client input.

Timestamps are the document's: local time, ISO 8601 without an offset, to the microsecond
(`2025-01-03T10:15:30.123456`); `boot_time` to the second. Percentages are rounded to 0.1
like psutil's.

Alerts (the document's defaults, all configurable through `Thresholds`): memory use at 80 %
(WARNING) and 90 % (CRITICAL), use of the watched disk (`/` by default) at 85 % and 95 %, and
less than `disk_min_free_gb` (1 GiB) free on it (CRITICAL, metric `free_gb`). One alert per
component and metric per collection, the highest level reached; an identical alert
(component, metric, level) is not raised again within the cooldown (300 s).

Limits: at most 1,000 clients (`max_clients`); one more gets an `error` (`TOO_MANY_CLIENTS`)
and is closed with 1013 (try again later). Each client has a bounded outgoing queue (the
oldest message goes when it is full) and one sender task (`Hub.pump`): a client that does not
take a message within the send timeout (1 s: the write blocks, or its TCP peer has not
acknowledged what was written) is closed with 1008, and nobody else ever waits for it. Each
collection's message is built and encoded once, whatever the number of clients; per client
there is one queue put and one write. No compression (it would cost CPU per client).

>>> local_iso(0)[:4] in ("1969", "1970"), len(local_iso(1_736_000_000_123))
(True, 26)
>>> parse_listen("0.0.0.0:8765"), parse_listen("[::1]:9000"), parse_listen(":8765")
(('0.0.0.0', 8765), ('::1', 9000), ('0.0.0.0', 8765))
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Final, Protocol

import orjson
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from rackwatch import __version__
from rackwatch.api.fanout import Client, ClientTooSlow, Hub
from rackwatch.api.fanout.client import SendText
from rackwatch.api.ws import connection_backlog
from rackwatch.model import SeriesRegistry
from rackwatch.sources.host.loop import Collection, Entities, entities_of
from rackwatch.sources.host.system import disk_segment
from rackwatch.sources.readings import InventoryItem

try:  # POSIX: the open-files limit is checked against the client limit
    import resource
except ImportError:  # pragma: no cover - Windows
    resource = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

DEFAULT_HOST: Final = "0.0.0.0"
DEFAULT_PORT: Final = 8765
DEFAULT_MAX_CLIENTS: Final = 1000
DEFAULT_SEND_TIMEOUT_S: Final = 1.0
DEFAULT_QUEUE_SIZE: Final = 32
DEFAULT_DISK_PATH: Final = "/"
PATH: Final = "/"

MAX_MESSAGE_BYTES: Final = 2**20
"""The longest client message read at all: longer closes the connection (1009)."""
MAX_CONTROL_MESSAGE_BYTES: Final = 64 * 1024
"""The longest client message parsed; longer gets INVALID_FORMAT (control messages are
under 100 bytes)."""
CLOSE_TIMEOUT_S: Final = 1.0
CLOSE_POLICY_VIOLATION: Final = 1008
CLOSE_TRY_AGAIN_LATER: Final = 1013

INVALID_FORMAT: Final = "INVALID_FORMAT"
TOO_MANY_CLIENTS: Final = "TOO_MANY_CLIENTS"
WARNING: Final = "WARNING"
CRITICAL: Final = "CRITICAL"

GIB: Final = float(2**30)
MHZ: Final = 1e6

Json = dict[str, Any]


# ---------------------------------------------------------------------- times


def local_iso(ts_ms: int, timespec: str = "microseconds") -> str:
    """Epoch ms as the document's timestamps: local time, ISO 8601, no offset, always to the
    microsecond (`2025-01-03T10:15:30.123000`) unless `timespec` says otherwise."""
    seconds, ms = divmod(ts_ms, 1000)
    when = dt.datetime.fromtimestamp(seconds) + dt.timedelta(milliseconds=ms)
    return when.isoformat(timespec=timespec)


def now_iso() -> str:
    return dt.datetime.now().isoformat(timespec="microseconds")


def parse_listen(text: str, default_port: int = DEFAULT_PORT) -> tuple[str, int]:
    """`HOST:PORT` (`[v6]:PORT`, `:PORT` for every interface, `HOST` for port 8765) as
    (host, port); ValueError saying what is wrong.

    >>> parse_listen("127.0.0.1"), parse_listen("[::]:1")
    (('127.0.0.1', 8765), ('::', 1))
    >>> parse_listen("host:http")
    Traceback (most recent call last):
    ...
    ValueError: --listen takes HOST:PORT with a port in 0..65535, not 'host:http'
    """
    bad = ValueError(f"--listen takes HOST:PORT with a port in 0..65535, not {text!r}")
    host, port_text = text, ""
    if text.startswith("["):
        close = text.find("]")
        if close < 0 or text[close + 1 : close + 2] not in ("", ":"):
            raise bad
        host, port_text = text[1:close], text[close + 2 :]
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    if not port_text:
        port_text = str(default_port)
    if not (port_text.isascii() and port_text.isdigit()) or int(port_text) > 65535:
        raise bad
    return host or DEFAULT_HOST, int(port_text)


# ---------------------------------------------------------------------- monitoring_data


def _number(value: float | None, digits: int = 3) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), digits)


def _bytes(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return int(number) if math.isfinite(number) else None


def _percent(ratio: float | None) -> float | None:
    """A 0..1 ratio as a percentage rounded to 0.1, as psutil rounds its own."""
    return None if ratio is None or not math.isfinite(ratio) else round(ratio * 100.0, 1)


def _mhz(hertz: Any) -> float | None:
    return _number(float(hertz) / MHZ) if isinstance(hertz, int | float) else None


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and math.isfinite(value) else None


def _sum(a: float | None, b: float | None) -> int | None:
    return None if a is None or b is None else _bytes(a + b)


def _index_under(entity: str, prefix: str) -> int | None:
    """k for `<prefix><k>` (`host/h/cpu3` under `host/h/cpu`), else None."""
    if not entity.startswith(prefix):
        return None
    tail = entity[len(prefix) :]
    return int(tail) if tail.isascii() and tail.isdigit() and len(tail) < 7 else None


class HostFacts:
    """The inventory as the protocol reads it: the host item, the disks by mount point and
    the GPUs by entity."""

    def __init__(self, items: Iterable[InventoryItem] = ()) -> None:
        self.hosts: dict[str, InventoryItem] = {}
        self.disks: dict[str, InventoryItem] = {}
        self.gpus: dict[str, InventoryItem] = {}
        for item in items:
            kind, entity = item.get("kind"), item.get("entity")
            if not isinstance(entity, str):
                continue
            if kind == "host":
                self.hosts[entity] = item
            elif kind == "disk" and isinstance(item.get("mountpoint"), str):
                self.disks[entity] = item
            elif kind == "gpu":
                self.gpus[entity] = item

    def host(self, entity: str) -> InventoryItem:
        return self.hosts.get(entity, {})

    def host_entity(self) -> str | None:
        return next(iter(self.hosts), None)


_HOST_METRICS = ("memory_utilization_ratio", "cpu_utilization_ratio", "uptime_seconds")


def guess_host(entities: Entities, facts: HostFacts) -> str | None:
    """The host's entity: the inventory's host item, else the entity with host metrics."""
    known = facts.host_entity()
    if known is not None:
        return known
    for entity, metrics in entities.items():
        if entity.count("/") == 1 and any(m in metrics for m in _HOST_METRICS):
            return entity
    return None


def build_data(
    entities: Entities, facts: HostFacts, host: str | None, disk_path: str = DEFAULT_DISK_PATH
) -> Json:
    """The `data` object of `monitoring_data`: the document's sections and field names.

    >>> entities = {
    ...     "host/h": {"memory_used_bytes": 6e9, "memory_available_bytes": 2e9,
    ...                "memory_utilization_ratio": 0.75, "cpu_utilization_ratio": 0.255,
    ...                "cpu_frequency_hertz": 2.4955e9, "process_count": 250.0},
    ...     "host/h/cpu0": {"cpu_utilization_ratio": 0.201},
    ...     "host/h/cpu1": {"cpu_utilization_ratio": 0.302},
    ...     "host/h/disk-root": {"disk_used_bytes": 40e9, "disk_free_bytes": 60e9,
    ...                          "disk_utilization_ratio": 0.4},
    ... }
    >>> data = build_data(entities, HostFacts(), "host/h")
    >>> data["memory"]
    {'total': 8000000000, 'available': 2000000000, 'used': 6000000000, 'percentage': 75.0}
    >>> data["processor"]["usage_percent"], data["processor"]["per_core_usage"]
    (25.5, [20.1, 30.2])
    >>> data["processor"]["frequency_current"], data["disk"]["percentage"], data["disk"]["path"]
    (2495.5, 40.0, '/')
    >>> sorted(data), data["system"]["processes"], data["system"]["os_name"]
    (['disk', 'memory', 'processor', 'system'], 250, None)
    """
    host_metrics: Mapping[str, float | None] = entities.get(host, {}) if host else {}
    item = facts.host(host) if host else {}
    data: Json = {
        "memory": _memory(host_metrics, item),
        "processor": _processor(entities, host, host_metrics, item),
        "disk": _disk(entities, facts, host, disk_path),
        "system": _system(host_metrics, item),
    }
    gpu = _gpus(entities, facts, host)
    if gpu is not None:
        data["gpu"] = gpu
    return data


def _memory(metrics: Mapping[str, float | None], item: InventoryItem) -> Json:
    used = metrics.get("memory_used_bytes")
    available = metrics.get("memory_available_bytes")
    total = _sum(used, available)
    return {
        "total": total if total is not None else _bytes(item.get("memory_total_bytes")),
        "available": _bytes(available),
        "used": _bytes(used),
        "percentage": _percent(metrics.get("memory_utilization_ratio")),
    }


def _processor(
    entities: Entities, host: str | None, metrics: Mapping[str, float | None], item: InventoryItem
) -> Json:
    logical = _int(item.get("logical_cores"))
    cores: dict[int, float | None] = {}
    if host is not None:
        prefix = f"{host}/cpu"
        for entity, core_metrics in entities.items():
            k = _index_under(entity, prefix)
            if k is not None:
                cores[k] = _percent(core_metrics.get("cpu_utilization_ratio"))
    n = max(max(cores, default=-1) + 1, logical or 0) if cores else 0
    return {
        "usage_percent": _percent(metrics.get("cpu_utilization_ratio")),
        "core_count": _int(item.get("physical_cores")),
        "logical_count": logical,
        "frequency_current": _mhz(metrics.get("cpu_frequency_hertz")),
        "frequency_max": _mhz(item.get("max_frequency_hertz")),
        "per_core_usage": [cores.get(k) for k in range(n)],
    }


def _disk(entities: Entities, facts: HostFacts, host: str | None, path: str) -> Json:
    entity = f"{host}/{disk_segment(path)}" if host else ""
    metrics = entities.get(entity, {})
    used, free = metrics.get("disk_used_bytes"), metrics.get("disk_free_bytes")
    item = facts.disks.get(entity, {})
    total = _bytes(item.get("total_bytes"))
    return {
        "total": total if total is not None else _sum(used, free),
        "used": _bytes(used),
        "free": _bytes(free),
        "percentage": _percent(metrics.get("disk_utilization_ratio")),
        "path": path,
    }


def _system(metrics: Mapping[str, float | None], item: InventoryItem) -> Json:
    boot_ms = _int(item.get("boot_time_ms"))
    return {
        "os_name": item.get("os"),
        "os_version": item.get("os_version"),
        "os_release": item.get("os_release"),
        "architecture": item.get("architecture"),
        "machine": item.get("architecture"),
        "processor": item.get("cpu_model"),
        "hostname": item.get("hostname"),
        "python_version": item.get("python_version"),
        "processes": _int(metrics.get("process_count")),
        "boot_time": None if boot_ms is None else local_iso(boot_ms, "seconds"),
    }


def _gpus(entities: Entities, facts: HostFacts, host: str | None) -> Json | None:
    """`{"count", "gpus": [...]}`, or None for a host without GPUs (the section is absent)."""
    if host is None:
        return None
    prefix = f"{host}/gpu"
    found: dict[str, int] = {}
    for entity, item in facts.gpus.items():
        index = item.get("index")
        if isinstance(index, int) and not isinstance(index, bool):
            found[entity] = index
        elif (k := _index_under(entity, prefix)) is not None:
            found[entity] = k
    for entity, metrics in entities.items():
        if entity not in found and any(m.startswith("gpu_") for m in metrics):
            k = _index_under(entity, prefix)
            if k is not None:
                found[entity] = k
    if not found:
        return None
    gpus = []
    for entity, index in sorted(found.items(), key=lambda pair: pair[1]):
        metrics = entities.get(entity, {})
        item = facts.gpus.get(entity, {})
        used, free = metrics.get("gpu_memory_used_bytes"), metrics.get("gpu_memory_free_bytes")
        total = _bytes(item.get("memory_total_bytes"))
        gpus.append(
            {
                "id": index,
                "name": item.get("name"),
                "driver_version": item.get("driver_version"),
                "memory_total": total if total is not None else _sum(used, free),
                "memory_used": _bytes(used),
                "memory_free": _bytes(free),
                "gpu_usage_percent": _percent(metrics.get("gpu_utilization_ratio")),
                "temperature": _number(metrics.get("gpu_temperature_celsius"), 1),
                "power_draw": _number(metrics.get("gpu_power_watts")),
                "power_limit": _number(metrics.get("gpu_power_limit_watts")),
            }
        )
    return {"count": len(gpus), "gpus": gpus}


# ---------------------------------------------------------------------- alerts


@dataclass(frozen=True, slots=True)
class Thresholds:
    """The document's alert thresholds (percent, GiB) and cooldown (seconds)."""

    memory_warning: float = 80.0
    memory_critical: float = 90.0
    disk_warning: float = 85.0
    disk_critical: float = 95.0
    disk_min_free_gb: float = 1.0
    """0 turns the free-space alert off."""
    cooldown_s: float = 300.0

    def __post_init__(self) -> None:
        for name, warning, critical in (
            ("memory", self.memory_warning, self.memory_critical),
            ("disk", self.disk_warning, self.disk_critical),
        ):
            if not 0.0 < warning <= critical <= 100.0:
                raise ValueError(
                    f"{name} thresholds must satisfy 0 < warning <= critical <= 100, "
                    f"not {warning:g} and {critical:g}"
                )
        if not (math.isfinite(self.disk_min_free_gb) and self.disk_min_free_gb >= 0):
            raise ValueError(f"disk_min_free_gb must be >= 0, not {self.disk_min_free_gb:g}")
        if not (math.isfinite(self.cooldown_s) and self.cooldown_s >= 0):
            raise ValueError(f"the alert cooldown must be >= 0 s, not {self.cooldown_s:g}")


@dataclass(frozen=True, slots=True)
class Alert:
    component: str
    metric: str
    value: float
    threshold: float
    level: str
    message: str


class AlertMonitor:
    """The document's alerts over each `data` object, with the cooldown between identical
    alerts (same component, metric and level); `clock` in seconds (monotonic).

    >>> now = [0.0]
    >>> monitor = AlertMonitor(Thresholds(), clock=lambda: now[0])
    >>> data = {"memory": {"percentage": 85.5},
    ...         "disk": {"percentage": 96.2, "free": 40 * 2**30, "path": "/"}}
    >>> for alert in monitor.check(data, "T"):
    ...     print(alert["component"], alert["level"], alert["message"])
    memory WARNING High memory usage: 85.5% (threshold: 80.0%)
    disk CRITICAL Critical disk usage: 96.2% (threshold: 95.0%)
    >>> now[0] = 299.0; monitor.check(data, "T")
    []
    >>> now[0] = 300.0; len(monitor.check(data, "T"))
    2
    """

    def __init__(
        self, thresholds: Thresholds | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.thresholds = thresholds if thresholds is not None else Thresholds()
        self.clock = clock
        self.n_raised = 0
        self.n_suppressed = 0
        """Alerts not raised again within the cooldown."""
        self._last: dict[tuple[str, str, str], float] = {}

    def check(self, data: Json, timestamp: str) -> list[Json]:
        t = self.thresholds
        now = self.clock()
        alerts: list[Json] = []
        memory, disk = data.get("memory") or {}, data.get("disk") or {}
        for component, section, warning, critical in (
            ("memory", memory, t.memory_warning, t.memory_critical),
            ("disk", disk, t.disk_warning, t.disk_critical),
        ):
            self._levels(
                alerts, now, timestamp, component, section.get("percentage"), warning, critical
            )
        free = disk.get("free")
        if t.disk_min_free_gb > 0 and isinstance(free, int | float):
            free_gb = free / GIB
            if free_gb < t.disk_min_free_gb:
                message = (
                    f"Low disk space: {free_gb:.2f} GB free on {disk.get('path')} "
                    f"(minimum: {float(t.disk_min_free_gb)} GB)"
                )
                alert = Alert(
                    "disk",
                    "free_gb",
                    round(free_gb, 2),
                    float(t.disk_min_free_gb),
                    CRITICAL,
                    message,
                )
                self._raise(alerts, now, timestamp, alert)
        return alerts

    def _levels(
        self,
        alerts: list[Json],
        now: float,
        timestamp: str,
        component: str,
        value: Any,
        warning: float,
        critical: float,
    ) -> None:
        if not isinstance(value, int | float) or not math.isfinite(value):
            return
        if value >= critical:
            level, threshold, word = CRITICAL, float(critical), "Critical"
        elif value >= warning:
            level, threshold, word = WARNING, float(warning), "High"
        else:
            return
        message = f"{word} {component} usage: {value:.1f}% (threshold: {threshold}%)"
        alert = Alert(component, "usage_percent", value, threshold, level, message)
        self._raise(alerts, now, timestamp, alert)

    def _raise(self, alerts: list[Json], now: float, timestamp: str, alert: Alert) -> None:
        key = (alert.component, alert.metric, alert.level)
        last = self._last.get(key)
        if last is not None and now - last < self.thresholds.cooldown_s:
            self.n_suppressed += 1
            return
        self._last[key] = now
        self.n_raised += 1
        alerts.append(
            {
                "timestamp": timestamp,
                "component": alert.component,
                "metric": alert.metric,
                "value": alert.value,
                "threshold": alert.threshold,
                "level": alert.level,
                "message": alert.message,
            }
        )


# ---------------------------------------------------------------------- messages


def dumps(message: Json) -> str:
    return orjson.dumps(message).decode()


def error(message: str, code: str = INVALID_FORMAT) -> str:
    """The document's error message: `{"type": "error", "message", "code"}`."""
    return dumps({"type": "error", "message": message, "code": code})


def invalid(detail: str) -> str:
    return error(f"Invalid message format: {detail}")


# ---------------------------------------------------------------------- the server


class CollectionSource(Protocol):
    """What `attach` needs of the collection loop (`CollectionLoop`)."""

    @property
    def listeners(self) -> list[Any]: ...

    @property
    def inventory_listeners(self) -> list[Any]: ...


class ProtocolServer:
    """The document's WebSocket server on `host`:`port` (0: any free port, see `port`),
    fed by a collection loop (`attach`) or by `set_inventory` and `publish` directly."""

    def __init__(
        self,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        *,
        max_clients: int = DEFAULT_MAX_CLIENTS,
        send_timeout_s: float = DEFAULT_SEND_TIMEOUT_S,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        disk_path: str = DEFAULT_DISK_PATH,
        thresholds: Thresholds | None = None,
        host_entity: str | None = None,
        alert_clock: Callable[[], float] = time.monotonic,
        server_version: str = __version__,
    ) -> None:
        if not 0 <= port <= 65535:
            raise ValueError(f"the port must be 0..65535, not {port}")
        self.host = host
        self.requested_port = port
        self.disk_path = disk_path
        self.host_entity = host_entity
        self.server_version = server_version
        self.alerts = AlertMonitor(thresholds, clock=alert_clock)
        self.hub = Hub(
            SeriesRegistry(),
            client_limit=max_clients,
            send_timeout_s=send_timeout_s,
            queue_size=queue_size,
        )
        self.facts = HostFacts()
        self.started_at = dt.datetime.now()
        self.n_collections = 0
        self.n_invalid = 0
        """Client messages answered with INVALID_FORMAT."""
        self._unsubscribed: set[str] = set()
        self._latest: str | None = None
        """The newest monitoring_data, without its alerts: what a new client gets first."""
        self._wire: tuple[str, bytes] | None = None
        """The newest broadcast text and its UTF-8 bytes, encoded once for every client."""
        self._server: Server | None = None

    # ------------------------------------------------------------------ feeding

    @property
    def max_clients(self) -> int:
        return self.hub.client_limit

    @property
    def n_clients(self) -> int:
        return self.hub.n_clients

    def attach(self, loop: CollectionSource) -> None:
        """Follow a collection loop: its inventory, then each of its collections."""
        loop.inventory_listeners.append(self.set_inventory)
        loop.listeners.append(self.publish)

    def set_inventory(self, items: list[InventoryItem]) -> None:
        self.facts = HostFacts(items)

    def publish(self, collection: Collection) -> None:
        """Build one collection's monitoring_data (alerts checked), encode it once, and queue
        it for every subscribed client. Never waits for a client."""
        self.n_collections += 1
        entities = entities_of(collection.readings)
        host = self.host_entity or guess_host(entities, self.facts)
        data = build_data(entities, self.facts, host, self.disk_path)
        timestamp = local_iso(collection.ts_ms)
        alerts = self.alerts.check(data, timestamp)
        message: Json = {"type": "monitoring_data", "timestamp": timestamp, "data": data}
        self._latest = plain = dumps(message)
        if alerts:
            message["alerts"] = alerts
            for alert in alerts:
                log.warning("%s: %s", alert["level"], alert["message"])
        text = dumps(message) if alerts else plain
        self._wire = (text, text.encode())
        for client in self.hub.clients.values():
            if client.id not in self._unsubscribed:
                self.hub.put(client, text)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Listen (on this event loop); OSError when the address cannot be bound."""
        if self._server is not None:
            return
        self.started_at = dt.datetime.now()
        self._warn_if_few_files()
        self._server = await serve(
            self._handle,
            self.host,
            self.requested_port,
            process_request=self._only_root,
            compression=None,
            max_size=MAX_MESSAGE_BYTES,
            close_timeout=CLOSE_TIMEOUT_S,
        )
        log.info("monitoring protocol on ws://%s:%d%s", self.host, self.port, PATH)

    async def close(self) -> None:
        """Close every connection (1001, going away) and stop listening."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()
        self.hub.close()

    async def __aenter__(self) -> ProtocolServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def port(self) -> int:
        """The port listened on (the one chosen by the OS for port 0)."""
        if self._server is None:
            return self.requested_port
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(self.host, self.host)
        host = f"[{host}]" if ":" in host else host
        return f"ws://{host}:{self.port}{PATH}"

    def _warn_if_few_files(self) -> None:
        if resource is None:  # pragma: no cover - Windows
            return
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != resource.RLIM_INFINITY and soft < self.max_clients + 64:
            log.warning(
                "this process may open %d files, too few for %d clients (ulimit -n)",
                soft,
                self.max_clients,
            )

    # ------------------------------------------------------------------ connections

    def _only_root(self, connection: ServerConnection, request: Request) -> Response | None:
        if request.path.partition("?")[0] == PATH:
            return None
        return connection.respond(HTTPStatus.NOT_FOUND, f"the monitoring WebSocket is at {PATH}\n")

    async def _handle(self, connection: ServerConnection) -> None:
        client = self.hub.connect(
            self._sender(connection), backlog=connection_backlog(connection.transport)
        )
        if client is None:
            await self._refuse(connection)
            return
        self.hub.put(
            client,
            dumps(
                {
                    "type": "connection",
                    "status": "connected",
                    "timestamp": now_iso(),
                    "message": "Connected to monitoring server",
                }
            ),
        )
        if self._latest is not None:
            self.hub.put(client, self._latest)
        sender = asyncio.create_task(self.hub.pump(client), name=f"protocol-send-{client.id}")
        receiver = asyncio.create_task(
            self._receive(connection, client), name=f"protocol-{client.id}"
        )
        try:
            await asyncio.wait({sender, receiver}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.hub.disconnect(client)
            self._unsubscribed.discard(client.id)
            for task in (sender, receiver):
                task.cancel()
            results = await asyncio.gather(sender, receiver, return_exceptions=True)
        if any(isinstance(r, ClientTooSlow) for r in results):
            log.info("client %s took no message within the send timeout: closed", client.id)
            await self._close(connection, CLOSE_POLICY_VIOLATION, "too slow")

    def _sender(self, connection: ServerConnection) -> SendText:
        async def send(text: str) -> None:
            wire = self._wire
            if wire is not None and wire[0] is text:  # the broadcast: already encoded
                await connection.send(wire[1], text=True)
            else:
                await connection.send(text)

        return send

    async def _refuse(self, connection: ServerConnection) -> None:
        log.warning("refused a client: %d clients already connected", self.max_clients)
        text = error(
            f"Server at capacity: {self.max_clients} clients are connected; try again later",
            TOO_MANY_CLIENTS,
        )
        try:
            async with asyncio.timeout(self.hub.send_timeout_s):
                await connection.send(text)
        except (TimeoutError, ConnectionClosed):
            pass
        await self._close(connection, CLOSE_TRY_AGAIN_LATER, "server at capacity")

    async def _close(self, connection: ServerConnection, code: int, reason: str) -> None:
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await connection.close(code, reason)
        except Exception:  # the close frame cannot even be written: drop the connection
            connection.transport.abort()

    async def _receive(self, connection: ServerConnection, client: Client) -> None:
        try:
            async for raw in connection:
                reply = self.answer(raw, client.id)
                if reply is not None:
                    self.hub.put(client, reply)
        except ConnectionClosed:
            return

    # ------------------------------------------------------------------ client messages

    def answer(self, raw: str | bytes, client_id: str) -> str | None:
        """The reply to one client message (never raises; linear in the message)."""
        if len(raw) > MAX_CONTROL_MESSAGE_BYTES:
            self.n_invalid += 1
            unit = "bytes" if isinstance(raw, bytes) else "characters"
            return invalid(
                f"messages are at most {MAX_CONTROL_MESSAGE_BYTES} {unit}, "
                f'like {{"type": "ping"}}; this one has {len(raw)}'
            )
        try:
            message = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            self.n_invalid += 1
            return invalid(f"not JSON ({exc})")
        kind = message.get("type") if isinstance(message, dict) else None
        if not isinstance(kind, str):
            self.n_invalid += 1
            return invalid('send a JSON object with a string "type", like {"type": "ping"}')
        if kind == "ping":
            return dumps({"type": "pong", "timestamp": now_iso()})
        if kind == "get_status":
            return self._status()
        if kind == "subscribe":
            self._unsubscribed.discard(client_id)
            return self._confirmation("subscribed", "Subscribed to monitoring updates")
        if kind == "unsubscribe":
            self._unsubscribed.add(client_id)
            return self._confirmation("unsubscribed", "Unsubscribed from monitoring updates")
        self.n_invalid += 1
        shown = kind if len(kind) <= 40 else kind[:40] + "..."
        return invalid(
            f"unknown message type {shown!r}: use ping, get_status, subscribe or unsubscribe"
        )

    def _status(self) -> str:
        return dumps(
            {
                "type": "status",
                "server_version": self.server_version,
                "connected_clients": self.n_clients,
                "server_start_time": self.started_at.isoformat(timespec="microseconds"),
                "message": "Server is running",
                "timestamp": now_iso(),
            }
        )

    @staticmethod
    def _confirmation(kind: str, message: str) -> str:
        return dumps({"type": kind, "message": message, "timestamp": now_iso()})
