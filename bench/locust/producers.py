"""Locust producers: what pushes telemetry into a running `rackwatch run` (seed 000's
`locust -f locust_producer.py`).

- `IngestAgent`: a machine running `rackwatch agent`. Every `RACKWATCH_LOCUST_INTERVAL_S`
  (5 s, the agent's default) it collects `RACKWATCH_LOCUST_READINGS` readings (50) named as the
  host collector names them, and POSTs them to `/api/v1/ingest` with an ingest token, in the
  agent's own body (`agent/push.py`: `{"batches": [{"ts_ms", "entities"}]}`, its inventory in
  a push of its own after a start). As the agent's buffer does, a push that fails (timeout,
  5xx) keeps its collections for the next one (at most 720); a 4xx drops them.
- `MqttSensor`: an IoT temperature probe on the MQTT broker (docs/MQTT.md): its retained
  capabilities and `online` (with `offline` as its last will), then a telemetry message every
  interval at QoS 1. The time measured is publish -> PUBACK, the broker's side of the path;
  `bench/locust_run.py` reads the server's counters to see that rackwatch took them. A stopped
  user says `offline` and clears its retained topics, so the broker keeps nothing of the test.

NATS is left out on purpose: a Batch on the bus names its series by ids of the server's own
registry (`bus/codec.py`), so a device outside the process has no way to publish one; real
devices reach rackwatch through the agent's push, MQTT, SNMP or a scrape.

Environment: `RACKWATCH_LOCUST_INGEST_TOKEN` (required by IngestAgent: `rackwatch token create
--scope ingest`), `RACKWATCH_LOCUST_MQTT` (mqtt://127.0.0.1:1883) and
`RACKWATCH_LOCUST_MQTT_PREFIX` (rackwatch: the server's `[mqtt] prefix`),
`RACKWATCH_LOCUST_INTERVAL_S`, `RACKWATCH_LOCUST_READINGS`. Run with `--host http://HOST:PORT`
of the server; `bench/locust_run.py` does it all.
"""

from __future__ import annotations

import json
import math
import os
import random
import threading
import time
import urllib.parse
import uuid
from typing import Any, ClassVar

import paho.mqtt.client as mqtt
from locust import FastHttpUser, User, constant_pacing, events, task
from locust.env import Environment
from paho.mqtt.enums import CallbackAPIVersion

INGEST_PATH = "/api/v1/ingest"
MAX_PENDING = 720  # collections an agent keeps for the next push (agent/push.py MAX_ENTRIES)
PUBACK_TIMEOUT_S = 10.0
JITTER_S = 0.02


def _env_number(name: str, default: float, low: float, high: float) -> float:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise SystemExit(f"{name}={text!r} is not a number") from None
    if not (math.isfinite(value) and low <= value <= high):
        raise SystemExit(f"{name}={text!r}: use a number from {low:g} to {high:g}")
    return value


INTERVAL_S = _env_number("RACKWATCH_LOCUST_INTERVAL_S", 5.0, 0.1, 3600.0)
READINGS = int(_env_number("RACKWATCH_LOCUST_READINGS", 50, 13, 50_000))
RUN_ID = os.environ.get("RACKWATCH_LOCUST_RUN_ID") or uuid.uuid4().hex[:8]
"""Names this test's hosts and devices apart from another's on the same server or broker."""


class _Slots:
    """Lowest free index first: a user that stops gives its machine back, and the next one
    started takes it, so a load shape that goes up and down replays one fleet instead of
    creating new series at every rise."""

    def __init__(self) -> None:
        self._free: list[int] = []
        self._next = 0
        self._lock = threading.Lock()

    def take(self) -> int:
        with self._lock:
            if self._free:
                self._free.sort()
                return self._free.pop(0)
            self._next += 1
            return self._next - 1

    def give(self, slot: int) -> None:
        with self._lock:
            self._free.append(slot)


# ------------------------------------------------------------------------------ agents

# (metric, typical value) of a host, as the host collector names them (sources/host/system.py).
HOST_METRICS = [
    ("cpu_utilization_ratio", 1.0),
    ("cpu_frequency_hertz", 3.5e9),
    ("load_average_1m", 16.0),
    ("load_average_5m", 16.0),
    ("load_average_15m", 16.0),
    ("memory_used_bytes", 6.4e10),
    ("memory_available_bytes", 6.4e10),
    ("memory_utilization_ratio", 1.0),
    ("swap_used_bytes", 1e9),
    ("swap_utilization_ratio", 1.0),
    ("uptime_seconds", 1e7),
    ("process_count", 500),
    ("user_session_count", 10),
]
DISK_METRICS = [
    ("disk_used_bytes", 1e12),
    ("disk_free_bytes", 1e12),
    ("disk_utilization_ratio", 1.0),
    ("disk_read_bytes_per_second", 1e8),
    ("disk_write_bytes_per_second", 1e8),
]
NET_METRICS = [
    ("network_receive_bytes_per_second", 1e8),
    ("network_transmit_bytes_per_second", 1e8),
]


def host_layout(host: str, n: int, rnd: random.Random) -> list[tuple[str, str, float]]:
    """(entity, metric, level) of a host's `n` readings: the host's own metrics, its cores,
    and after every eighth core a disk, a NIC and a temperature sensor. Levels sit between
    10 % and 70 % of a metric's scale, below the default alert thresholds, as most of a fleet
    is."""
    out = [(host, metric, scale) for metric, scale in HOST_METRICS]
    k = 0
    while len(out) < n:
        out.append((f"{host}/cpu{k}", "cpu_utilization_ratio", 1.0))
        if k % 8 == 7:
            j = k // 8
            disk = "disk-root" if j == 0 else f"disk-data{j}"
            out += [(f"{host}/{disk}", metric, scale) for metric, scale in DISK_METRICS]
            out += [(f"{host}/net-eth{j}", metric, scale) for metric, scale in NET_METRICS]
            out.append((f"{host}/sensor-coretemp_Package_id_{j}", "temperature_celsius", 100.0))
        k += 1
    return [(e, m, scale * rnd.uniform(0.1, 0.7)) for e, m, scale in out[:n]]


class IngestAgent(FastHttpUser):
    """`rackwatch agent` on one machine, pushing every interval (see the module docstring)."""

    weight = 1
    slots: ClassVar[_Slots] = _Slots()
    # The server closes a connection idle for 5 s (uvicorn's keep-alive), the agents' very
    # period: httpx, in the agent, drops such a connection before reusing it; here a push cut
    # short is sent once more on a new one (the server takes a push sent twice only once).
    max_retries = 1

    def wait_time(self) -> float:
        """Until the next interval instant (:00, :05 ... on the wall clock), plus up to
        `JITTER_S`: the agent collects at those instants and pushes at once, so a fleet on
        NTP pushes together, as `bench/bench_ingest.py` has it too."""
        return INTERVAL_S - time.time() % INTERVAL_S + self.rnd.uniform(0.0, JITTER_S)

    def on_start(self) -> None:
        token = os.environ.get("RACKWATCH_LOCUST_INGEST_TOKEN", "")
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self.slot = self.slots.take()
        self.host_path = f"host/locust-{RUN_ID}-{self.slot:05d}"
        self.rnd = random.Random(self.slot)
        self.layout = host_layout(self.host_path, READINGS, self.rnd)
        self.pending: list[dict[str, Any]] = []
        inventory = {
            "batches": [],
            "inventory": [
                {
                    "entity": self.host_path,
                    "kind": "host",
                    "attributes": {"name": self.host_path.rsplit("/", 1)[1], "os": "Linux"},
                }
            ],
        }
        self._post(inventory, "/api/v1/ingest (inventory)", 0)
        time.sleep(self.wait_time())  # the first collection at the next instant, as the agent

    def on_stop(self) -> None:
        self.slots.give(self.slot)

    @task
    def push(self) -> None:
        uniform = self.rnd.uniform
        entities: dict[str, dict[str, float]] = {}
        for entity, metric, level in self.layout:
            entities.setdefault(entity, {})[metric] = level * uniform(0.98, 1.02)
        # Stamped with the interval's instant, as the agent stamps its collections.
        ts_ms = int(time.time() / INTERVAL_S) * round(INTERVAL_S * 1000)
        self.pending.append({"ts_ms": ts_ms, "entities": entities})
        del self.pending[:-MAX_PENDING]
        sent = self.pending
        if self._post({"batches": sent}, INGEST_PATH, len(sent) * len(self.layout)):
            self.pending = []

    def _post(self, body: dict[str, Any], name: str, n_readings: int) -> bool:
        """True when the server took the push (or refused it for good: dropped, as the
        agent drops what the server will never take)."""
        with self.client.post(
            INGEST_PATH,
            data=json.dumps(body),
            headers=self.headers,
            name=name,
            catch_response=True,
        ) as response:
            if response.status_code == 202:
                accepted = (response.json() or {}).get("accepted")
                if accepted != n_readings:
                    response.failure(f"accepted {accepted} of {n_readings} readings")
                return True
            error = getattr(response, "error", None)  # no answer: what the client saw
            detail = repr(error) if error is not None else (response.text or "")[:200]
            response.failure(f"{response.status_code}: {detail}")
            return 400 <= int(response.status_code) < 500


@events.init.add_listener  # type: ignore[untyped-decorator]  # locust: untyped
def _check_token(environment: Environment, **_kwargs: Any) -> None:
    """Refuse to start agents without a token: every push would be a 401."""
    if IngestAgent in environment.user_classes and not os.environ.get(
        "RACKWATCH_LOCUST_INGEST_TOKEN"
    ):
        raise SystemExit(
            "IngestAgent needs RACKWATCH_LOCUST_INGEST_TOKEN: create one on the server with "
            "`rackwatch token create --scope ingest`, or pick other users (-f ... MqttSensor)"
        )


# ------------------------------------------------------------------------------ MQTT devices


def _broker() -> tuple[str, int]:
    url = urllib.parse.urlsplit(os.environ.get("RACKWATCH_LOCUST_MQTT", "mqtt://127.0.0.1:1883"))
    if url.scheme != "mqtt" or not url.hostname:
        raise SystemExit("RACKWATCH_LOCUST_MQTT wants mqtt://HOST:PORT")
    return url.hostname, url.port or 1883


class MqttSensor(User):
    """A temperature probe publishing over MQTT (see the module docstring)."""

    weight = 1
    wait_time = constant_pacing(INTERVAL_S)
    slots: ClassVar[_Slots] = _Slots()

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        self.prefix = os.environ.get("RACKWATCH_LOCUST_MQTT_PREFIX", "rackwatch")
        self.client: mqtt.Client | None = None

    def _fire(self, name: str, began: float, length: int, exc: BaseException | None) -> None:
        events.request.fire(  # type: ignore[no-untyped-call]  # locust: untyped
            request_type="MQTT",
            name=name,
            response_time=(time.perf_counter() - began) * 1000,
            response_length=length,
            exception=exc,
            context={},
        )

    def _publish(self, topic: str, payload: str, *, retain: bool, name: str | None) -> None:
        assert self.client is not None
        began = time.perf_counter()
        exc: BaseException | None = None
        try:
            info = self.client.publish(f"{self.topic}/{topic}", payload, qos=1, retain=retain)
            info.wait_for_publish(PUBACK_TIMEOUT_S)
            if not info.is_published():
                exc = TimeoutError(f"no PUBACK within {PUBACK_TIMEOUT_S:g} s (rc {info.rc})")
        except (RuntimeError, ValueError, OSError) as error:  # not connected, queue full
            exc = error
        if name is not None:
            self._fire(name, began, len(payload), exc)

    def on_start(self) -> None:
        self.slot = self.slots.take()
        # A device id is its entity path with `.` for `/` (docs/MQTT.md).
        self.device = f"locust-{RUN_ID}.rack{self.slot // 40:02d}.probe{self.slot % 40:02d}"
        self.topic = f"{self.prefix}/{self.device}"
        self.rnd = random.Random(self.slot)
        self.level = self.rnd.uniform(22.0, 30.0)
        host, port = _broker()
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"locust-{RUN_ID}-{self.slot}")
        client.will_set(f"{self.topic}/availability", "offline", qos=1, retain=True)
        began = time.perf_counter()
        try:
            client.connect(host, port, keepalive=30)
        except OSError as exc:
            self._fire("connect", began, 0, exc)
            raise
        client.loop_start()  # a greenlet under Locust's gevent
        self.client = client
        self._fire("connect", began, 0, None)
        capabilities = {
            "kind": "sensor",
            "name": f"probe {self.slot}",
            "metrics": ["temperature_celsius"],
        }
        self._publish("capabilities", json.dumps(capabilities), retain=True, name=None)
        self._publish("availability", "online", retain=True, name=None)

    def on_stop(self) -> None:
        if self.client is not None:
            self._publish("availability", "offline", retain=True, name=None)
            for topic in ("capabilities", "availability"):  # leave no retained message behind
                self._publish(topic, "", retain=True, name=None)
            self.client.disconnect()
            self.client.loop_stop()
            self.client = None
        self.slots.give(self.slot)

    @task
    def telemetry(self) -> None:
        self.level += self.rnd.gauss(0.0, 0.05)
        payload = json.dumps(
            {"ts": int(time.time() * 1000), "values": {"temperature_celsius": self.level}}
        )
        self._publish("telemetry", payload, retain=False, name="publish telemetry")
