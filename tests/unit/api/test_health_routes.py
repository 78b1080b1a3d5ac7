"""GET /health/now, /health, /predictions, /anomalies and the /metrics gauges, over 45 minutes
of the fan-fail scenario run through a bus with the store writer, the alert engine and the
intelligence consumer (as `rackwatch run` wires them, without the twin's pacing)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_support import LiveApp
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from rackwatch.api import ApiContext, create_app
from rackwatch.app import inventory_records
from rackwatch.bus import MemoryBus, subjects
from rackwatch.engine.alerts.engine import AlertEngine
from rackwatch.engine.intelligence import SOURCE, FanPrediction, Intelligence
from rackwatch.engine.live import LiveState, feed
from rackwatch.engine.writer import StoreWriter
from rackwatch.model import EventKind, SeriesRegistry
from rackwatch.settings import AlertSettings, build_alert_rules
from rackwatch.sources.twin import TwinSource
from rackwatch.store.duckdb import DuckDBStore
from rackwatch.twin import Twin

Serve = Callable[[FastAPI], LiveApp]
START_MS = 1_767_225_600_000
MINUTES = 45
END_MS = START_MS + MINUTES * 60_000
FAN = "c01/r01/s03/fan1"  # stops at 30 min
FAULT_MS = START_MS + 30 * 60_000
RANGE = {"from": str(START_MS), "to": str(END_MS)}


@dataclass
class World:
    ctx: ApiContext
    intelligence: Intelligence
    store: DuckDBStore


def run_room(path: Path) -> World:
    registry = SeriesRegistry()
    store = DuckDBStore(path, registry, clock=lambda: END_MS)
    twin = Twin.from_scenario("fan-fail", seed=1, start_ms=START_MS)
    store.upsert_inventory(inventory_records(twin))
    source = TwinSource(twin, registry)
    bus = MemoryBus()
    live = LiveState(len(registry))
    writer = StoreWriter(bus, store)
    alerts = AlertEngine(
        bus, registry, build_alert_rules(AlertSettings()), derived_sources=(SOURCE,)
    )
    intelligence = Intelligence(bus, registry, alerts=alerts)

    async def main() -> None:
        tasks = [
            asyncio.create_task(job)
            for job in (writer.run(), alerts.run(), intelligence.run(), feed(bus, live))
        ]
        for ready in (writer.ready, alerts.ready, intelligence.ready):
            await ready.wait()
        for _ in range(MINUTES):
            batch, faults = source.read(12)
            await bus.publish(subjects.telemetry("twin"), batch)
            for fault in faults:
                await bus.publish(subjects.events(fault.kind), fault)
            # a minute at a time, scored before the next: one health sample each (a
            # consumer that falls behind takes the queued minutes together, one sample)
            assert await intelligence.settle(10)
        assert await intelligence.settle(30)
        bus.close()
        await asyncio.gather(*tasks)

    asyncio.run(asyncio.wait_for(main(), 120))
    store.flush()
    ctx = ApiContext(
        store=store,
        registry=registry,
        live=live,
        bus=MemoryBus(),
        alerts=alerts,
        intelligence=intelligence,
        clock_ms=lambda: END_MS,
    )
    return World(ctx, intelligence, store)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    found = run_room(tmp_path_factory.mktemp("health") / "store.duckdb")
    yield found
    found.store.close()


@pytest.fixture(scope="module")
def api(world: World) -> Iterator[LiveApp]:
    server = LiveApp(create_app(world.ctx))
    yield server
    server.close()


def get(api: LiveApp, path: str, **params: str | int) -> dict[str, Any]:
    response = httpx.get(api.url + "api/v1/" + path, params=params, timeout=10)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_health_now_per_device_and_rolled_up(api: LiveApp) -> None:
    body = get(api, "health/now")
    assert body["now_ms"] == END_MS - 5000 and body["horizon_s"] == 3600.0
    entities = body["entities"]
    assert {"room", "c01", "c01/r01", "c01/r01/s03", FAN, "room/crac1"} <= set(entities)
    fan = entities[FAN]
    assert fan["criticity"] == "critical" and fan["score"] <= 25
    assert fan["reasons"][0] == {
        "entity": FAN,
        "kind": "alert",
        "detail": "failure alert fan-stopped",
        "penalty": 80.0,
    }
    assert any(r["kind"] == "anomaly" for r in fan["reasons"])
    assert fan["next_failure"] is None  # it has failed: the alert says so, not a forecast
    server, rack = entities["c01/r01/s03"], entities["c01/r01"]
    assert server["n_members"] == 2 and server["score"] < 50  # its CPU runs hot too
    assert server["criticity"] in ("high", "critical")
    assert rack["score"] > server["score"] and rack["reasons"][0]["entity"] == FAN
    assert entities["c01/r01/s01"] == {
        "score": 100.0,
        "criticity": "low",
        "predicted_score": 100.0,
        "predicted_criticity": "low",
        "next_failure": None,
        "reasons": [],
        "n_members": 2,
    }


def test_health_now_filters_by_entity_and_criticity(api: LiveApp) -> None:
    assert set(get(api, "health/now", entity="c01/r01/s03/**")["entities"]) == {
        "c01/r01/s03",
        FAN,
        "c01/r01/s03/fan2",
    }
    critical = get(api, "health/now", criticity="critical")["entities"]
    assert FAN in critical and all(h["criticity"] == "critical" for h in critical.values())
    bad = httpx.get(api.url + "api/v1/health/now", params={"criticity": "dire"}, timeout=10)
    assert bad.status_code == 400 and "criticity" in bad.json()["detail"]


def test_health_over_a_range_from_the_stored_samples(api: LiveApp) -> None:
    raw = get(api, "health", entity="c01/r01/s03/*", **RANGE)
    assert raw["tier"] == "raw" and raw["bucket_ms"] == 0
    fan = next(e for e in raw["entities"] if e["entity"] == FAN)
    # one sample a minute (the feeder waits for each minute to be scored; the first minute
    # only sets the source's clock)
    assert len(fan["ts"]) >= MINUTES - 2 and fan["low"] is None
    before = [s for t, s in zip(fan["ts"], fan["score"], strict=True) if t < FAULT_MS]
    after = [s for t, s in zip(fan["ts"], fan["score"], strict=True) if t > FAULT_MS + 60_000]
    assert set(before) == {100.0} and max(after) <= 25.0
    assert fan["worst_criticity"] == "critical"
    bucketed = get(api, "health", entity=FAN, step="15m", **RANGE)
    assert bucketed["tier"] == "1m" and bucketed["bucket_ms"] == 900_000
    (only,) = bucketed["entities"]
    assert only["score"][0] == 100.0 and only["low"][-1] <= 25.0 < only["score"][1]


def test_predictions_over_a_range(api: LiveApp) -> None:
    body = get(api, "predictions", **RANGE)
    (fan,) = body["predictions"]
    assert fan["entity"] == FAN and fan["status"] == "failed" and fan["eta_s"] == 0.0
    assert FAULT_MS <= fan["first_made_ms"] <= fan["made_ms"] <= END_MS
    assert fan["n_updates"] == 1 and fan["what"] == "fan wear"
    assert get(api, "predictions", entity="c01/r01/s01/**", **RANGE)["predictions"] == []


def test_anomalies_open_first(api: LiveApp) -> None:
    body = get(api, "anomalies", **RANGE)
    rows = body["anomalies"]
    assert body["n_open"] == sum(r["is_open"] for r in rows) >= 1
    is_open = [r["is_open"] for r in rows]
    assert is_open == sorted(is_open, reverse=True)  # open ones first
    fan = [r for r in rows if r["entity"] == FAN]
    assert fan and fan[0]["metric"] == "fan_rpm" and fan[0]["start_ms"] >= FAULT_MS
    assert all(r["end_ms"] is None for r in rows if r["is_open"])
    s03 = [r for r in rows if r["entity"].startswith("c01/r01/s03")]
    assert get(api, "anomalies", entity="c01/r01/s03/**", limit=1, **RANGE)["anomalies"] == s03[:1]


def test_the_history_routes_answer_from_the_store_without_the_consumer(
    world: World, serve: Serve
) -> None:
    server = serve(create_app(replace(world.ctx, intelligence=None)))
    now = httpx.get(server.url + "api/v1/health/now", timeout=10)
    assert now.status_code == 503 and "[intelligence]" in now.json()["detail"]
    (fan,) = get(server, "predictions", **RANGE)["predictions"]
    assert fan["status"] == "failed"  # from the stored event
    rows = get(server, "anomalies", **RANGE)["anomalies"]
    assert any(r["entity"] == FAN and r["is_open"] for r in rows)  # started, never ended
    assert get(server, "health", entity=FAN, **RANGE)["entities"][0]["score"]
    events = get(server, "events", kind=EventKind.ANOMALY_STARTED.value, **RANGE)["events"]
    assert any(e["entity"] == FAN for e in events)  # in the event feed too


def test_metrics_export_health_and_time_to_failure(world: World, serve: Serve) -> None:
    fan2 = "c01/r01/s02/fan2"
    snap = world.intelligence.snapshot
    wear = FanPrediction(fan2, END_MS - 65_000, 7200.0, 5400.0, 14_400.0, 0.9, 0.9)
    intelligence = Intelligence(MemoryBus(), world.ctx.registry, alerts=world.ctx.alerts)
    intelligence.snapshot = replace(snap, predictions={**snap.predictions, fan2: wear})
    server = serve(create_app(replace(world.ctx, intelligence=intelligence)))
    text = httpx.get(server.url + "metrics", timeout=10).text
    families = {f.name: f.samples for f in text_string_to_metric_families(text)}
    health = {s.labels["entity"]: s for s in families["rackwatch_health_score"]}
    assert health[FAN].value <= 25.0 and health["c01/r01/s01"].value == 100.0
    assert health[FAN].labels == {
        "entity": FAN,
        "cluster": "c01",
        "rack": "r01",
        "server": "s03",
        "component": "fan1",
    }
    assert "room" in health and "c01/r01" in health
    ttf = {s.labels["entity"]: s for s in families["rackwatch_time_to_failure_seconds"]}
    assert set(ttf) == {fan2, "c01/r01/s02", "c01/r01", "c01", "room"}
    assert ttf["room"].labels["device"] == fan2 and ttf["room"].labels["what"] == "fan wear"
    assert ttf[fan2].value == pytest.approx(7200.0 - 60.0)  # on the twin's clock
    assert "rackwatch_health_score" not in {  # the live health_score series is not exported twice
        f.name for f in text_string_to_metric_families(text) if len(f.samples) == 0
    }


def test_status_reports_the_kpis_the_incidents_and_the_model(api: LiveApp) -> None:
    # the KPIs are computed in a thread; /status answers with null until they are ready
    deadline = time.monotonic() + 10
    while (body := get(api, "status")["intelligence"])["anomalies_per_day"] is None:
        assert time.monotonic() < deadline, body
        time.sleep(0.05)
    assert body["window_s"] == 86_400.0
    assert body["anomalies_per_day"] > 0 and body["incidents_per_day"] > 0
    assert body["incidents_open"] >= 1  # the stopped fan's
    latency = body["detection_latency_s"]
    # the one labelled fault (the fan stop), found from its reading within a step or two
    assert latency["n_faults"] == 1 and latency["n_detected"] == 1
    assert 0.0 <= latency["median"] <= 15.0
    assert body["model"] == {"version": None, "trained_at": None, "n_devices": 0}


def test_incidents_of_the_stopped_fan_are_stored_and_served(api: LiveApp) -> None:
    body = get(api, "incidents", entity="c01/r01/s03", **RANGE)
    found = body["incidents"]
    assert [(i["scope"], i["nature"], i["cause"]) for i in found] == [
        ("server", "real", "fan_failure")
    ]
    assert found[0]["is_open"] and "Move the load away from c01/r01/s03" in found[0]["action"]
