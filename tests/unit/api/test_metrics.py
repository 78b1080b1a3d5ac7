"""/metrics in the Prometheus text format, from an app's own registry; the engine's counters
in /metrics and GET /api/v1/status."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import httpx
from api_support import END_MS, Filled, LiveApp, make_ctx
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from websockets.sync.client import connect

from rackwatch.api import create_app
from rackwatch.api.prometheus import watch_writer
from rackwatch.bus import MemoryBus
from rackwatch.engine.alerts.engine import AlertEngine
from rackwatch.engine.notifiers import Notification
from rackwatch.engine.states import SilencePolicy
from rackwatch.settings import AlertSettings, build_alert_rules

Serve = Callable[[FastAPI], LiveApp]


def scrape(url: str, accept: str | None = None) -> tuple[str, dict[str, list]]:
    headers = {"accept": accept} if accept else {}
    response = httpx.get(f"{url}metrics", headers=headers, timeout=10)
    assert response.status_code == 200
    families = {f.name: f.samples for f in text_string_to_metric_families(response.text)}
    return response.headers["content-type"], families


def test_every_series_with_path_labels_and_no_timestamps(filled: Filled, serve: Serve) -> None:
    server = serve(create_app(make_ctx(filled, bus_queue_depth=lambda: 7)))
    content_type, families = scrape(server.url)
    assert content_type.startswith("text/plain; version=0.0.4")
    assert "power_watts" not in families and "fan_rpm" not in families  # clash with others
    power = {s.labels["entity"]: s for s in families["rackwatch_power_watts"]}
    assert len(power) == 5
    s01 = power["c01/r01/s01"]
    assert s01.labels == {  # no empty `component`
        "entity": "c01/r01/s01",
        "cluster": "c01",
        "rack": "r01",
        "server": "s01",
    }
    assert s01.value > 0 and s01.timestamp is None
    fan = next(s for s in families["rackwatch_fan_rpm"] if s.labels["entity"] == "c01/r01/s03/fan1")
    assert fan.labels["server"] == "s03" and fan.labels["component"] == "fan1"
    crac = families["rackwatch_crac_supply_temperature_celsius"][0]
    assert crac.labels == {"entity": "room/crac1", "component": "crac1"}
    inlet = next(
        s
        for s in families["rackwatch_inlet_temperature_celsius"]
        if s.labels["entity"] == "c01/r01/s01"
    )
    assert math.isnan(inlet.value)  # the last reading was NULL
    stored = {key.metric for key in list(filled.registry.keys())}
    assert sum(len(families[m]) for m in families if m.removeprefix("rackwatch_") in stored) == 72
    assert all(m.startswith(("rackwatch_", "process_", "python_")) for m in families)
    assert all(v for samples in families.values() for s in samples for v in s.labels.values())
    own = {
        name: samples[0].value for name, samples in families.items() if name.startswith("rackwatch")
    }
    assert own["rackwatch_bus_queue_depth"] == 7
    for name in (
        "rackwatch_ingest_samples",
        "rackwatch_ws_clients",
        "rackwatch_ws_dropped_messages",
        "rackwatch_bus_dropped_messages",
        "rackwatch_series",
    ):
        assert name in own
    assert "process_cpu_seconds" in families and "process_resident_memory_bytes" in families


def test_each_app_has_its_own_registry(filled: Filled, serve: Serve) -> None:
    one = serve(create_app(make_ctx(filled)))
    two = serve(create_app(make_ctx(filled)))
    with connect(one.ws_url) as ws:
        ws.recv(timeout=5)
        assert scrape(one.url)[1]["rackwatch_ws_clients"][0].value == 1
        assert scrape(two.url)[1]["rackwatch_ws_clients"][0].value == 0


def test_openmetrics_when_the_scraper_asks_for_it(filled: Filled, serve: Serve) -> None:
    server = serve(create_app(make_ctx(filled)))
    response = httpx.get(
        f"{server.url}metrics", headers={"accept": "application/openmetrics-text; version=1.0.0"}
    )
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.rstrip().endswith("# EOF")


class Kept:
    """A notifier that keeps what it is given (never started here: it stays queued)."""

    name = "ops"

    async def send(self, _notification: Notification) -> None:
        return None

    async def close(self) -> None:
        return None


@dataclass
class OldWriter:
    """A store writer without `n_quarantined` (read as 0)."""

    n_samples: int = 10
    n_events: int = 1
    n_errors: int = 2
    n_dropped: int = 3


def test_alerts_states_sources_notifiers_and_the_writer_are_exported(
    filled: Filled, serve: Serve
) -> None:
    """Issue 8 items 7 and 15: Grafana and Alertmanager see the alerts and device states;
    notifier failures and drops and the writer's errors are in /metrics and /status."""
    engine = AlertEngine(
        MemoryBus(),
        filled.registry,
        build_alert_rules(AlertSettings()),
        [Kept()],
        silence=SilencePolicy(30.0, monotonic=lambda: 0.0),
    )
    engine.process(filled.last_batch)  # fan-fail: s03/fan1 stopped, notified (queued)
    assert engine.watch is not None
    engine.watch.heard("twin", 0.0, END_MS)
    engine.watch.heard("host", 0.0, END_MS)
    engine.watch.heard("twin", 100.0, END_MS)
    engine.sources_silent(engine.watch.check(100.0, fallback_ms=0))
    app = create_app(make_ctx(filled, alerts=engine))
    watch_writer(app, OldWriter())
    server = serve(app)
    _, families = scrape(server.url)

    fan = "c01/r01/s03/fan1"
    [firing] = families["rackwatch_alert_firing"]
    assert firing.value == 1 and firing.labels == {
        "entity": fan,
        "cluster": "c01",
        "rack": "r01",
        "server": "s03",
        "component": "fan1",
        "rule": "fan-stopped",
        "severity": "critical",
        "status": "firing",
        "suppressed": "false",
    }
    states = {s.labels["entity"]: s for s in families["rackwatch_device_state"]}
    assert len(states) == len(families["rackwatch_device_state"])  # one series per entity
    assert states[fan].labels["state"] == "failed" and states[fan].value == 1
    assert states[fan].labels["component"] == "fan1"
    assert states["c01/r01/s01"].labels["state"] == "ok"
    up = {s.labels["source"]: s.value for s in families["rackwatch_source_up"]}
    assert up == {"twin": 1, "host": 0}
    sent = {s.labels["notifier"]: s.value for s in families["rackwatch_notifications_sent"]}
    pending = {s.labels["notifier"]: s.value for s in families["rackwatch_notifications_pending"]}
    assert sent == {"ops": 0} and pending == {"ops": 2}  # the fan alert and the host silence
    for name in ("failed", "retries", "dropped", "spooled", "restored"):
        assert families[f"rackwatch_notifications_{name}"][0].value == 0
    own = {name: samples[0].value for name, samples in families.items()}
    assert own["rackwatch_store_write_errors"] == 2 and own["rackwatch_store_dropped"] == 3
    assert own["rackwatch_store_quarantined"] == 0

    status = httpx.get(f"{server.url}api/v1/status", timeout=10).json()
    assert status["notifiers"]["ops"]["pending"] == 2
    assert status["notifiers"]["ops"]["dropped"] == 0
    assert status["silent_sources"] == ["host"]
    assert status["writer"] == {
        "samples_written": 10,
        "events_written": 1,
        "errors": 2,
        "dropped": 3,
        "quarantined": 0,
    }


def test_without_an_engine_or_a_writer_status_says_so(filled: Filled, serve: Serve) -> None:
    server = serve(create_app(make_ctx(filled)))
    status = httpx.get(f"{server.url}api/v1/status", timeout=10).json()
    assert (status["notifiers"], status["silent_sources"], status["writer"]) == ({}, [], None)
    assert "rackwatch_alert_firing" not in scrape(server.url)[1]
