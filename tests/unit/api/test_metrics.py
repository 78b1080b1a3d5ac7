"""/metrics in the Prometheus text format, from an app's own registry."""

from __future__ import annotations

import math
from collections.abc import Callable

import httpx
from api_support import Filled, LiveApp, make_ctx
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from websockets.sync.client import connect

from rackwatch.api import create_app

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
    power = {s.labels["entity"]: s for s in families["power_watts"]}
    assert len(power) == 5
    s01 = power["c01/r01/s01"]
    assert s01.labels == {
        "entity": "c01/r01/s01",
        "cluster": "c01",
        "rack": "r01",
        "server": "s01",
        "component": "",
    }
    assert s01.value > 0 and s01.timestamp is None
    fan = next(s for s in families["fan_rpm"] if s.labels["entity"] == "c01/r01/s03/fan1")
    assert fan.labels["server"] == "s03" and fan.labels["component"] == "fan1"
    crac = families["crac_supply_temperature_celsius"][0]
    assert crac.labels["component"] == "crac1" and crac.labels["cluster"] == ""
    inlet = next(
        s for s in families["inlet_temperature_celsius"] if s.labels["entity"] == "c01/r01/s01"
    )
    assert math.isnan(inlet.value)  # the last reading was NULL
    assert (
        sum(len(families[m]) for m in families if not m.startswith(("rackwatch", "process"))) == 72
    )
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
