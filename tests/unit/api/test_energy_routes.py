"""GET /api/v1/energy (over a range, per group), GET /api/v1/energy/live and the energy
counters in /metrics, over the filled store (3 h of fan-fail, c01/r01/s02's power absent for
ten minutes)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest
from api_support import END_MS, GAP_MS, HOURS, START_MS, Filled, LiveApp, make_ctx
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from rackwatch.api import create_app
from rackwatch.engine.energy import EnergyConfig, LiveEnergy, Membership, Tariff, TariffPeriod
from rackwatch.model import Batch

Serve = Callable[[FastAPI], LiveApp]
TARIFF = Tariff(0.20, "EUR", (TariffPeriod("night", 0.10, hours=(0, 6)),))
"""Night 00-06 UTC every day: the whole filled range (00:00-03:00)."""


@pytest.fixture(scope="module")
def http(filled: Filled) -> Iterator[httpx.Client]:
    live = LiveEnergy(filled.registry, TARIFF, membership=Membership.of(filled.store.inventory()))
    live.update(filled.last_batch)  # the third hour, as if the server had just started
    ctx = make_ctx(filled, energy=EnergyConfig(TARIFF, pue=1.4, live=live))
    app = LiveApp(create_app(ctx))
    with httpx.Client(base_url=app.url + "api/v1", timeout=30) as client:
        yield client
    app.close()


def test_a_range_per_server_reports_the_gap(http: httpx.Client) -> None:
    body = (
        http.get("/energy", params={"from": START_MS, "to": END_MS, "group": "server"})
        .raise_for_status()
        .json()
    )
    assert (body["from_ms"], body["to_ms"], body["group"]) == (START_MS, END_MS, "server")
    assert body["tiers"] == [{"tier": "1m", "from_ms": START_MS, "to_ms": END_MS}]
    rows = {row["entity"]: row for row in body["rows"]}
    assert len(rows) == 5
    gap_s = (GAP_MS[1] - GAP_MS[0]) / 1000
    assert rows["c01/r01/s02"]["gap_s"] == pytest.approx(gap_s)
    assert rows["c01/r01/s02"]["coverage"] == pytest.approx(1 - gap_s / (HOURS * 3600))
    assert rows["c01/r01/s02"]["estimated_kwh"] > rows["c01/r01/s02"]["energy_kwh"]
    assert rows["c01/r01/s01"]["gap_s"] == 0
    assert body["energy_kwh"] == pytest.approx(sum(r["energy_kwh"] for r in rows.values()))
    # every hour is night: 0.10 a kWh
    assert body["cost"] == pytest.approx(body["energy_kwh"] * 0.10)
    assert [p["name"] for p in body["periods"]] == ["night"]
    assert body["pue_source"] == "measured" and body["facility_source"] == "facility_meter"
    assert body["optimisation"]["n_fans"] == 10


def test_the_default_range_is_today_in_the_site_zone(http: httpx.Client) -> None:
    """The context's now is END + 1 min: today is from 00:00 UTC (START) to then."""
    body = http.get("/energy", params={"group": "rack"}).raise_for_status().json()
    assert (body["from_ms"], body["to_ms"]) == (START_MS, END_MS + 60_000)
    assert [row["entity"] for row in body["rows"]] == ["c01/r01"]
    # the rack's PDU against its servers, their 10-minute gap filled
    assert body["rows"][0]["metered_kwh"] == pytest.approx(body["estimated_kwh"], rel=0.01)
    assert body["currency"] == "EUR" and body["timezone"] == "UTC"


def test_a_range_into_the_future_stops_at_now(http: httpx.Client) -> None:
    body = http.get("/energy", params={"from": START_MS, "to": END_MS + 86_400_000}).json()
    assert body["to_ms"] == END_MS + 60_000  # the context's now, not a day of gap
    assert body["gap_s"] == pytest.approx(5 * 60 + 600)  # 1 min x 5 servers, and the hole


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"group": "cluster"}, "group must be one of server, rack, room, site"),
        ({"from": "-1h", "to": "-2h"}, "must be before"),
        ({"from": "yesterday"}, "from 'yesterday' is not a time"),
        ({"entity": "c01//s01"}, "bad entity pattern"),
        ({"from": "0", "to": "now"}, "at most 7,320 days"),
    ],
)
def test_bad_parameters_are_a_400_naming_them(http: httpx.Client, params, message) -> None:
    response = http.get("/energy", params=params)
    assert response.status_code == 400
    assert message in response.json()["detail"]


def test_live_today_and_counters(http: httpx.Client) -> None:
    body = http.get("/energy/live").raise_for_status().json()
    assert body["groups"] is None
    assert body["currency"] == "EUR" and body["day_from_ms"] == START_MS
    # one hour of the room (about 0.85 kWh), all of it night
    assert 0.5 < body["it_kwh_today"] < 1.5
    assert body["cost_today"] == pytest.approx(body["it_kwh_today"] * 0.10, abs=1e-6)
    assert body["pue_source"] == "measured"
    detail = http.get("/energy/live", params={"detail": "true"}).raise_for_status().json()
    assert set(detail["groups"]) == {"server", "rack", "room", "site"}
    assert detail["groups"]["site"]["site"] == pytest.approx(body["it_joules"], rel=1e-6)
    assert sum(detail["groups"]["server"].values()) == pytest.approx(body["it_joules"], rel=1e-6)


def test_metrics_export_the_counters(http: httpx.Client) -> None:
    text = httpx.get(str(http.base_url).removesuffix("api/v1/") + "metrics", timeout=10).text
    families = {f.name: f.samples for f in text_string_to_metric_families(text)}
    samples = {
        (s.labels["group"], s.labels["entity"]): s.value
        for s in families["rackwatch_energy_joules"]
    }
    live = http.get("/energy/live", params={"detail": "true"}).json()["groups"]
    assert samples[("rack", "c01/r01")] == pytest.approx(live["rack"]["c01/r01"], rel=1e-6)
    assert samples[("site", "site")] == pytest.approx(live["site"]["site"], rel=1e-6)
    assert len([k for k in samples if k[0] == "server"]) == 5  # one per power series
    assert "rackwatch_fan_energy_joules" in families
    assert "rackwatch_facility_energy_joules" in families


def test_without_a_live_accountant_live_is_a_503(filled: Filled, serve: Serve) -> None:
    server = serve(create_app(make_ctx(filled)))
    response = httpx.get(server.url + "api/v1/energy/live", timeout=10)
    assert response.status_code == 503
    assert "live energy accountant is not running" in response.json()["detail"]
    assert httpx.get(server.url + "api/v1/energy", timeout=30).status_code == 200
    text = httpx.get(server.url + "metrics", timeout=10).text
    assert "rackwatch_energy_joules" not in text


def test_new_batches_move_the_counters(filled: Filled) -> None:
    live = LiveEnergy(filled.registry, TARIFF)
    sid = filled.registry.get("c01/r01/s01", "power_watts")
    live.update(Batch.of([END_MS, END_MS + 5000], [sid, sid], [100.0, 100.0]))
    before = live.totals().it_joules
    live.update(Batch.of([END_MS + 10_000], [sid], [100.0]))
    assert (before, live.totals().it_joules) == (500.0, 1000.0)
