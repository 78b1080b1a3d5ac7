"""Seed 002's application signals in the health: the intelligence core keeps each scraped
application's newest `app_*` gauges, `health_now` makes them reasons with the seed's classes
and scores the worst, and `GET /health/now` shows them under `app`."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import numpy as np
import pytest

from rackwatch.api import ApiContext, create_app
from rackwatch.bus import MemoryBus
from rackwatch.engine.health import (
    DEFAULT_HEALTH,
    Criticity,
    HealthInputs,
    ReasonKind,
    app_reasons,
    health_report,
)
from rackwatch.engine.intelligence import Intelligence, IntelligenceConfig, IntelligenceCore
from rackwatch.engine.intelligence.healthview import health_now
from rackwatch.engine.live import LiveState
from rackwatch.model import Batch, SeriesRegistry
from rackwatch.store.duckdb import DuckDBStore

START_MS = 1_767_225_600_000
APP = "app/forms"


def app_batch(registry: SeriesRegistry, ts_ms: int, entity: str = APP, **values: float) -> Batch:
    """One scrape's samples of `entity`: `values` by metric."""
    ids = registry.intern_many((entity, metric) for metric in values)
    return Batch.of(
        np.full(len(values), ts_ms, dtype=np.int64), ids, np.array(list(values.values()))
    )


def fed_core(*batches: Batch, registry: SeriesRegistry) -> IntelligenceCore:
    core = IntelligenceCore(registry, IntelligenceConfig())
    for batch in batches:
        core.process(batch, "scrape")
    return core


def test_the_core_keeps_each_applications_newest_scrape() -> None:
    registry = SeriesRegistry()
    first = app_batch(
        registry,
        START_MS,
        app_cpu_usage_ratio=0.2,
        app_jvm_memory_usage_ratio=0.4,
        app_request_rate_per_second=12.0,
        app_response_time_seconds=0.1,
        process_cpu_usage=0.2,  # not one of the signals
    )
    other = app_batch(registry, START_MS, entity="app/orders", app_cpu_usage_ratio=0.9)
    node = app_batch(registry, START_MS, entity="scrape/node", node_load1=0.5)
    # 5 s later no request came: no response time; the memory sample is NaN (skipped)
    later = app_batch(
        registry,
        START_MS + 5000,
        app_cpu_usage_ratio=0.3,
        app_jvm_memory_usage_ratio=float("nan"),
        app_request_rate_per_second=0.0,
    )
    stale = app_batch(registry, START_MS + 1000, app_cpu_usage_ratio=0.99)  # late, older
    core = fed_core(first, other, node, Batch.concat([later, stale]), registry=registry)
    signals = core.snapshot().app_signals
    assert set(signals) == {APP, "app/orders"}
    forms = signals[APP]
    assert forms.ts_ms == START_MS + 5000
    assert dict(forms.values) == {"cpu_usage": 0.3, "request_count": 0.0}
    assert dict(signals["app/orders"].values) == {"cpu_usage": 0.9}
    assert IntelligenceCore(registry, IntelligenceConfig()).snapshot().app_signals == {}


def test_health_now_classes_each_signal_and_scores_the_worst() -> None:
    registry = SeriesRegistry()
    busy = app_batch(
        registry,
        START_MS,
        app_cpu_usage_ratio=0.62,  # high
        app_jvm_memory_usage_ratio=0.30,  # medium
        app_request_rate_per_second=8.0,  # low
        app_response_time_seconds=0.12,  # regular
    )
    slow = app_batch(
        registry,
        START_MS,
        entity="app/orders",
        app_cpu_usage_ratio=0.1,  # low
        app_response_time_seconds=0.45,  # critical
    )
    calm = app_batch(
        registry,
        START_MS,
        entity="app/calm",
        app_cpu_usage_ratio=0.05,
        app_request_rate_per_second=1.0,
    )
    core = fed_core(busy, slow, calm, registry=registry)
    report = health_now(core.snapshot(), [], {})
    forms = report.entities[APP]
    assert [(r.kind, r.detail, r.penalty) for r in forms.reasons] == [
        (ReasonKind.APP, "cpu_usage 62%: high (seed 002)", 55.0),
        (ReasonKind.APP, "jvm_memory_usage 30%: medium (seed 002)", 30.0),
    ]
    # the worst signal only: 100 - 55, in the worst signal's class; held an hour ahead
    assert forms.score == pytest.approx(45.0) and forms.criticity is Criticity.HIGH
    assert forms.predicted_score == pytest.approx(45.0)
    orders = report.entities["app/orders"]
    assert orders.score == pytest.approx(20.0) and orders.criticity is Criticity.CRITICAL
    assert orders.reasons[0].detail == "response_time 0.450 s: critical (seed 002)"
    calm_health = report.entities["app/calm"]
    assert calm_health.score == 100.0 and calm_health.reasons == ()
    # `app` is its own tree: the room knows nothing of it
    assert report.entities["app"].n_members == 3 and "room" not in report.entities


def test_three_medium_signals_stay_medium_and_other_reasons_still_combine() -> None:
    medium = {"cpu_usage": 0.3, "jvm_memory_usage": 0.3, "request_count": 20.0}
    assert [r.penalty for r in app_reasons(APP, medium)] == [30.0, 30.0, 30.0]
    report = health_report(
        {APP: HealthInputs(app=medium), "app/b": HealthInputs(app=medium, anomaly_scores=[1.0])}
    )
    assert report[APP].score == pytest.approx(70.0) and report[APP].criticity is Criticity.MEDIUM
    assert report["app/b"].score == pytest.approx(70.0 * 0.6)  # and an anomaly (40) on top
    assert DEFAULT_HEALTH.app_penalty[Criticity.CRITICAL] == DEFAULT_HEALTH.failure_penalty


def test_get_health_now_shows_the_app_signals(tmp_path: Path) -> None:
    registry = SeriesRegistry()
    intelligence = Intelligence(MemoryBus(), registry, IntelligenceConfig(in_thread=False))
    intelligence.process(
        app_batch(
            registry,
            START_MS,
            app_cpu_usage_ratio=0.8,
            app_request_rate_per_second=42.0,
            app_response_time_seconds=0.2,
        ),
        "scrape",
    )
    intelligence.process(
        app_batch(registry, START_MS, entity="scrape/node", node_load1=0.5), "scrape"
    )
    store = DuckDBStore(tmp_path / "store", registry)
    try:
        ctx = ApiContext(
            store=store,
            registry=registry,
            live=LiveState(len(registry)),
            bus=MemoryBus(),
            intelligence=intelligence,
            clock_ms=lambda: START_MS,
        )
        transport = httpx.ASGITransport(app=create_app(ctx))

        async def get() -> httpx.Response:
            async with httpx.AsyncClient(transport=transport, base_url="http://rackwatch") as c:
                return await c.get("/api/v1/health/now")

        response = asyncio.run(get())
        assert response.status_code == 200, response.text
        entities = response.json()["entities"]
    finally:
        store.close()
    forms = entities[APP]
    assert forms["app"] == {
        "cpu_usage": {"value": 0.8, "criticity": "critical"},
        "request_count": {"value": 42.0, "criticity": "high"},
        "response_time": {"value": 0.2, "criticity": "regular"},
    }
    assert forms["criticity"] == "critical" and forms["score"] == 20.0
    assert forms["reasons"][0] == {
        "entity": APP,
        "kind": "app",
        "detail": "cpu_usage 80%: critical (seed 002)",
        "penalty": 80.0,
    }
    assert "app" not in entities["scrape/node"] and "app" not in entities["app"]
