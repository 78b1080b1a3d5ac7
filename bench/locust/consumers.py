"""Locust consumers: what reads a running `rackwatch run` (seed 000's `locust -f
locust_consumer.py`), as the dashboard reads it (`web/static/js/overview.js`, `server.js`).

- `OverviewReader`: an open overview page, REST only. It loads `/inventory`, `/live` and
  `/states` once, then polls what the page polls, at the page's own rates (per 30 s: `/states`,
  `/events`, `/health/now` 6 times each; `/incidents`, `/predictions`, `/status` 3 times;
  the room history (`/series` of the room and of every CPU temperature, the last hour of raw
  rows) and its markers (`/events` by kind) once): about one request a second.
- `ServerPageReader`: an open server page on one of the twin's servers: `/fans` every 3 s,
  `/states` every 4 s, `/health/now`, `/incidents`, `/events` and the 1-minute candles every
  10 s, the server's charts (`/series` of the server and its fans, last hour, raw) every 30 s.
- `OverviewStream`, `ServerPageStream`: the same pages' WebSocket (`/ws`), subscribed as they
  subscribe (the overview: every entity, its metrics, at most 4 messages/s; a server page: the
  server and its fans) and pinging every 5 s as they do. Each `monitoring_data` counts as one
  "request" whose time is its **lag**: receipt (wall clock) minus the message's `ts_ms`, the
  instant its samples describe. With the twin at `--speed 1` that is how late the data reaches a
  browser; Locust's "requests/s" column is then the message rate. `ping` is timed to its
  `pong`, `connect` to the `connection` message, `subscribe` to `subscribed`. A socket the
  server closes is a failure, and the page dials again at its next ping, as the dashboard does.

Reads from this machine need no token (`[server] open_reads_on_loopback`); set
`RACKWATCH_LOCUST_READ_TOKEN` (`rackwatch token create --scope read`) to send one, as a remote
browser does. Run with `--host http://HOST:PORT` of the server; `bench/locust_run.py` does it all.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import time
import urllib.parse
import urllib.request
from typing import Any, ClassVar

import gevent  # type: ignore[import-untyped]  # gevent ships no types
import websocket
from locust import FastHttpUser, User, between, constant_pacing, events, task
from locust.env import Environment

API = "/api/v1"
HOUR_MS = 3_600_000
# The overview's stream and snapshot metrics (overview.js ALL_METRICS).
ROOM_METRICS = ["it_power_watts", "facility_power_watts", "pue_ratio"]
HOTTEST = "cpu_temperature_celsius"
OVERVIEW_METRICS = [
    "cpu_temperature_celsius",
    "power_watts",
    "cpu_utilization_ratio",
    "disk_ok",
    "fan_level",
    "fan_rpm",
    *ROOM_METRICS,
    "crac_supply_temperature_celsius",
    "crac_power_watts",
    "pdu_power_watts",
    "pdu_capacity_watts",
]
# A server page's (server.js KPI_METRICS + FAN_METRICS).
SERVER_METRICS = [
    "cpu_temperature_celsius",
    "inlet_temperature_celsius",
    "chassis_temperature_celsius",
    "power_watts",
    "airflow_cfm",
    "cpu_utilization_ratio",
    "disk_ok",
    "fan_level",
    "fan_rpm",
    "fan_power_watts",
]
MARKER_KINDS = ["fault.injected", "alert.fired", "alert.escalated"]
PING_EVERY_S = 5.0  # api.js: PING_EVERY_MS / 3
WS_TIMEOUT_S = 10.0


def _headers() -> dict[str, str]:
    headers = {"Accept": "application/json"}
    token = os.environ.get("RACKWATCH_LOCUST_READ_TOKEN", "")
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return headers


def _query(params: dict[str, Any]) -> str:
    """`?a=1&metric=x&metric=y`: lists repeated, as api.js's getJSON sends them."""
    clean = {k: v for k, v in params.items() if v is not None}
    return "?" + urllib.parse.urlencode(clean, doseq=True) if clean else ""


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _last_hour() -> dict[str, int]:
    """The pages' default range, "last hour" (raw rows: 720 samples at 5 s)."""
    now = _now_ms()
    return {"from": now - HOUR_MS, "to": now + 1}


class _Reader(FastHttpUser):
    abstract = True
    page = ""

    def on_start(self) -> None:
        self.headers = _headers()
        self.servers: list[str] = []
        inventory = self.get("/inventory")
        if inventory is not None:
            self.servers = [
                e["path"] for e in inventory.get("entities", []) if e.get("kind") == "server"
            ]

    def get(self, path: str, params: dict[str, Any] | None = None, label: str = "") -> Any:
        """GET a resource as the page does; its JSON, or None (the failure is recorded)."""
        name = f"{self.page} {path}" + (f" [{label}]" if label else "")
        url = API + path + _query(params or {})
        with self.client.get(url, headers=self.headers, name=name, catch_response=True) as r:
            if r.status_code != 200:
                r.failure(f"{r.status_code}: {(r.text or '')[:200]}")
                return None
            try:
                return r.json()
            except ValueError as exc:
                r.failure(f"not JSON: {exc}")
                return None


class OverviewReader(_Reader):
    """The overview page's REST reads (see the module docstring)."""

    page = "overview"
    wait_time = between(0.5, 1.5)  # about a request a second, the page's rate

    def on_start(self) -> None:
        super().on_start()
        self.get("/live", {"metric": OVERVIEW_METRICS})
        self.get("/states")

    @task(6)
    def states(self) -> None:
        self.get("/states")

    @task(6)
    def recent_events(self) -> None:
        self.get("/events", {"limit": 200})

    @task(6)
    def health(self) -> None:
        self.get("/health/now", {"entity": "**"})

    @task(3)
    def incidents(self) -> None:
        self.get("/incidents", {"limit": 50, "from": "-6h"})

    @task(3)
    def predictions(self) -> None:
        self.get("/predictions")

    @task(3)
    def status(self) -> None:
        self.get("/status")

    @task(1)
    def room_history(self) -> None:
        window = _last_hour()
        self.get("/series", {"entity": "room", "metric": ROOM_METRICS, **window}, "room")
        self.get("/series", {"entity": "**", "metric": HOTTEST, **window}, "hottest")
        self.get("/events", {**window, "kind": MARKER_KINDS, "limit": 2000}, "markers")


class ServerPageReader(_Reader):
    """One server page's REST reads (see the module docstring)."""

    page = "server"
    wait_time = between(0.5, 1.5)

    def on_start(self) -> None:
        super().on_start()
        self.entity = random.choice(self.servers) if self.servers else "c01/r01/s01"
        self.get("/live", {"entity": f"{self.entity}/**"})

    @task(10)
    def fans(self) -> None:
        self.get("/fans", {"entity": f"{self.entity}/**"})

    @task(8)
    def states(self) -> None:
        self.get("/states", {"entity": f"{self.entity}/**"})

    @task(3)
    def health(self) -> None:
        self.get("/health/now", {"entity": self.entity})

    @task(3)
    def incidents(self) -> None:
        self.get("/incidents", {"limit": 50, "entity": self.entity, "open": "true"})

    @task(3)
    def recent_events(self) -> None:
        self.get("/events", {"entity": f"{self.entity}/**", "limit": 100})

    @task(3)
    def candles(self) -> None:
        params = {"entity": self.entity, "metric": HOTTEST, "step": "1m", **_last_hour()}
        self.get("/series", params, "candles 1m")

    @task(1)
    def charts(self) -> None:
        params = {"entity": f"{self.entity}/**", "metric": SERVER_METRICS, **_last_hour()}
        self.get("/series", params, "charts raw")


# ------------------------------------------------------------------------------ WebSocket


class _Stream(User):
    """A page's live stream: subscribe, then take every message; ping every 5 s."""

    abstract = True
    page = ""
    wait_time = constant_pacing(PING_EVERY_S)

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        self.ws: websocket.WebSocket | None = None
        self.reader: gevent.Greenlet | None = None
        self.ping_sent: float | None = None
        self.subscribe_sent = 0.0

    def subscription(self) -> dict[str, Any]:
        raise NotImplementedError

    def fire(self, name: str, ms: float, length: int, exc: BaseException | None = None) -> None:
        events.request.fire(  # type: ignore[no-untyped-call]  # locust: untyped
            request_type="WS",
            name=f"{self.page} {name}",
            response_time=ms,
            response_length=length,
            exception=exc,
            context={},
        )

    def on_start(self) -> None:
        self.dial()

    def on_stop(self) -> None:
        self.hang_up()

    def dial(self) -> None:
        assert self.host is not None
        url = self.host.replace("http://", "ws://", 1).replace("https://", "wss://", 1)
        headers = [f"{k}: {v}" for k, v in _headers().items() if k == "Authorization"]
        began = time.perf_counter()
        try:
            subscribe = {"type": "subscribe", **self.subscription()}
            ws = websocket.create_connection(
                url.rstrip("/") + "/ws", timeout=WS_TIMEOUT_S, header=headers
            )
            hello = json.loads(ws.recv())
            if hello.get("type") != "connection":
                raise ConnectionError(f"first message {hello!r}, not a connection")
        except (OSError, websocket.WebSocketException, ValueError) as exc:
            self.fire("connect", (time.perf_counter() - began) * 1000, 0, exc)
            return
        self.fire("connect", (time.perf_counter() - began) * 1000, 0)
        ws.settimeout(None)  # the reader blocks until a message; the ping notices a dead one
        self.ws = ws
        self.subscribe_sent = time.perf_counter()
        ws.send(json.dumps(subscribe))
        self.reader = gevent.spawn(self.read, ws)

    def hang_up(self) -> None:
        ws, self.ws = self.ws, None
        if self.reader is not None:
            self.reader.kill(block=False)
            self.reader = None
        if ws is not None:
            with contextlib.suppress(OSError, websocket.WebSocketException):
                ws.close()

    def read(self, ws: websocket.WebSocket) -> None:
        """Every message until the socket closes: monitoring_data timed by its lag."""
        snapshot = False
        try:
            while True:
                text = ws.recv()
                arrived_ms = time.time_ns() / 1e6
                if not text:
                    raise ConnectionError("closed by the server")
                message = json.loads(text)
                kind = message.get("type")
                if kind == "monitoring_data":
                    # The first one after `subscribed` is the snapshot of the newest values,
                    # up to a twin step old: kept apart so the lag is that of live data.
                    name = "monitoring_data (snapshot)" if snapshot else "monitoring_data (lag)"
                    snapshot = False
                    self.fire(name, arrived_ms - message["ts_ms"], len(text))
                elif kind == "pong" and self.ping_sent is not None:
                    self.fire("ping", (time.perf_counter() - self.ping_sent) * 1000, len(text))
                    self.ping_sent = None
                elif kind == "subscribed":
                    snapshot = True
                    ms = (time.perf_counter() - self.subscribe_sent) * 1000
                    self.fire("subscribe", ms, len(text))
                elif kind == "error":
                    self.fire("error message", 0, len(text), RuntimeError(text[:200]))
        except (OSError, websocket.WebSocketException, ValueError, ConnectionError) as exc:
            if self.ws is ws:  # not our own hang-up
                self.fire("closed", 0, 0, exc)
                self.ws = None

    @task
    def ping(self) -> None:
        if self.ws is None:  # dropped: dial again, as the page does
            self.hang_up()
            self.dial()
            return
        if self.ping_sent is not None:  # the previous ping got no pong in 5 s
            self.fire("ping", (time.perf_counter() - self.ping_sent) * 1000, 0, TimeoutError())
        self.ping_sent = time.perf_counter()
        try:
            self.ws.send(json.dumps({"type": "ping"}))
        except (OSError, websocket.WebSocketException) as exc:
            self.fire("ping", 0, 0, exc)
            self.hang_up()


class OverviewStream(_Stream):
    """The overview's stream: every entity, its metrics, at most 4 messages a second."""

    page = "overview"

    def subscription(self) -> dict[str, Any]:
        return {"entity": "**", "metrics": OVERVIEW_METRICS, "max_rate_hz": 4}


class ServerPageStream(_Stream):
    """A server page's stream: one of the twin's servers (from `/inventory`) and its fans."""

    page = "server"
    servers: ClassVar[list[str]] = []

    def subscription(self) -> dict[str, Any]:
        if not ServerPageStream.servers:
            assert self.host is not None
            request = urllib.request.Request(
                self.host.rstrip("/") + API + "/inventory", headers=_headers()
            )
            with urllib.request.urlopen(request, timeout=WS_TIMEOUT_S) as answer:
                entities = json.loads(answer.read()).get("entities", [])
            found = [e["path"] for e in entities if e.get("kind") == "server"]
            ServerPageStream.servers = found or ["c01/r01/s01"]
        entity = random.choice(ServerPageStream.servers)
        return {"entity": f"{entity}/**", "metrics": SERVER_METRICS}
