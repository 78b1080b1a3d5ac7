"""REST under /api/v1, as docs/API.md describes it, on a store filled from the twin."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from api_support import END_MS, GAP_MS, NOW_MS, START_MS, LiveApp

from rackwatch.model import METRICS

H = 3_600_000


@pytest.fixture(scope="module")
def http(api: LiveApp) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api.url, timeout=10) as client:
        yield client


def get(http: httpx.Client, path: str, **params: Any) -> Any:
    response = http.get(path, params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    return response.json()


# ---------------------------------------------------------------------------------- inventory


def test_inventory_is_a_tree_with_static_attributes(http: httpx.Client) -> None:
    entities = get(http, "/api/v1/inventory")["entities"]
    paths = [e["path"] for e in entities]
    assert paths == sorted(paths)
    by_path = {e["path"]: e for e in entities}
    assert by_path["c01/r01/s01/fan1"]["parent"] == "c01/r01/s01"
    assert by_path["c01/r01/s01"]["parent"] == "c01/r01"
    assert by_path["room/crac1"]["parent"] == "room"
    assert by_path["c01"]["parent"] is None and by_path["room"]["parent"] is None
    assert by_path["c01/r01/s01"]["attributes"]["peak_watts"] > 0
    assert {e["kind"] for e in entities} == {
        "room",
        "crac",
        "cluster",
        "rack",
        "pdu",
        "server",
        "fan",
    }


def test_inventory_by_kind(http: httpx.Client) -> None:
    servers = get(http, "/api/v1/inventory", kind="server")["entities"]
    assert [e["path"] for e in servers] == [f"c01/r01/s0{i}" for i in range(1, 6)]


# ---------------------------------------------------------------------------------- live


def test_live_gives_the_newest_value_per_entity_with_its_age(http: httpx.Client) -> None:
    body = get(http, "/api/v1/live", entity="c01/r01/s0[12]", metric="power_watts")
    assert body["now_ms"] == NOW_MS
    assert set(body["entities"]) == {"c01/r01/s01", "c01/r01/s02"}
    reading = body["entities"]["c01/r01/s01"]["power_watts"]
    assert reading["ts_ms"] == END_MS - 5000
    assert reading["age_s"] == (NOW_MS - reading["ts_ms"]) / 1000
    assert reading["value"] > 0


def test_live_sends_a_null_reading_as_null(http: httpx.Client) -> None:
    body = get(http, "/api/v1/live", entity="c01/r01/s01", metric="inlet_*")
    assert body["entities"]["c01/r01/s01"]["inlet_temperature_celsius"]["value"] is None


def test_live_of_everything_covers_every_series(http: httpx.Client) -> None:
    body = get(http, "/api/v1/live")
    assert sum(len(metrics) for metrics in body["entities"].values()) == 72
    assert "c01/r01/s01/fan1" in body["entities"] and "room" in body["entities"]


# ---------------------------------------------------------------------------------- series


def series(http: httpx.Client, **params: Any) -> Any:
    params.setdefault("from", START_MS)
    params.setdefault("to", END_MS)
    return get(http, "/api/v1/series", **params)


def test_series_raw_rows_and_their_gap(http: httpx.Client) -> None:
    body = series(http, entity="c01/r01/s02", metric="power_watts")
    assert (body["tier"], body["bucket_ms"]) == ("raw", 0)
    (s,) = body["series"]
    assert (s["entity"], s["metric"], s["unit"]) == ("c01/r01/s02", "power_watts", "watts")
    assert len(s["ts"]) == len(s["value"]) == 3 * 720 - 120
    assert "open" not in s
    assert s["gaps"] == [[GAP_MS[0] - 5000, GAP_MS[1]]]


def test_series_minute_step_reads_the_rollup_with_ohlc(http: httpx.Client) -> None:
    body = series(http, entity="c01/r01/s02", metric="power_watts", step="1m")
    assert (body["tier"], body["bucket_ms"]) == ("1m", 60_000)
    (s,) = body["series"]
    assert len(s["ts"]) == 180 - 10  # the ten absent minutes are not invented
    for column in ("open", "high", "low", "close", "avg", "count", "missing"):
        assert len(s[column]) == len(s["ts"])
    assert "value" not in s
    assert set(s["count"]) == {12}
    assert all(lo <= avg <= hi for lo, avg, hi in zip(s["low"], s["avg"], s["high"], strict=True))
    assert s["gaps"] == [[GAP_MS[0] - 60_000, GAP_MS[1]]]


def test_series_hour_step_and_rebucketed_steps(http: httpx.Client) -> None:
    hour = series(http, entity="c01/r01/s02", metric="power_watts", step="1h")
    assert hour["tier"] == "1h" and hour["series"][0]["count"] == [720, 600, 720]
    five = series(http, entity="c01/r01/s02", metric="power_watts", step="300000")
    assert (five["tier"], five["bucket_ms"]) == ("1m", 300_000)
    ten_s = series(http, entity="c01/r01/s02", metric="power_watts", step="10s")
    assert (ten_s["tier"], ten_s["bucket_ms"]) == ("raw", 10_000)
    assert "open" in ten_s["series"][0]


def test_series_selectors_and_time_forms(http: httpx.Client) -> None:
    body = series(
        http,
        entity="c01/*/s0[1-3]/**",
        metric=["fan_rpm", "cpu_*"],
        **{"from": "2026-01-01T01:00:00Z"},
        to="-1h",  # NOW_MS - 1 h
        step="1h",
    )
    got = {(s["entity"], s["metric"]) for s in body["series"]}
    assert ("c01/r01/s01", "cpu_temperature_celsius") in got
    assert ("c01/r01/s03/fan1", "fan_rpm") in got
    assert all(m in ("fan_rpm", "cpu_temperature_celsius", "cpu_utilization_ratio") for _, m in got)
    assert body["from_ms"] == START_MS + H and body["to_ms"] == NOW_MS - H
    assert all(s["ts"] == [START_MS + H, START_MS + 2 * H] for s in body["series"])


def test_series_matching_nothing_is_empty_not_an_error(http: httpx.Client) -> None:
    assert series(http, entity="c09/**")["series"] == []


# ---------------------------------------------------------------------------------- events


def test_events_by_range_entity_and_kind_newest_first(http: httpx.Client) -> None:
    events = get(http, "/api/v1/events", **{"from": START_MS, "to": END_MS})["events"]
    assert [(e["kind"], e["entity"], e["severity"]) for e in events] == [
        ("fault.injected", "c01/r01/s03/fan1", "critical")
    ]
    assert events[0]["ts_ms"] == START_MS + H // 2 and events[0]["attributes"]["fault"] == "fan_off"
    none = get(http, "/api/v1/events", entity="c01/r01/s01/**", **{"from": START_MS, "to": END_MS})
    assert none["events"] == []
    other = get(http, "/api/v1/events", kind="alert.fired", **{"from": START_MS, "to": END_MS})
    assert other["events"] == []
    before = get(http, "/api/v1/events", **{"from": START_MS, "to": START_MS + 60_000})
    assert before["events"] == []


# ---------------------------------------------------------------------------------- status


def test_status(http: httpx.Client, api: LiveApp) -> None:
    body = get(http, "/api/v1/status")
    assert body["version"] and body["started_at"].endswith("Z")
    assert body["uptime_s"] >= 0 and body["ws_clients"] == 0
    assert body["n_series"] == 72 and body["store_bytes"] > 0
    assert body["scenario"] == "fan-fail" and body["sim_time_ms"] == END_MS - 5000
    # Every sample folded into the live state counts (here the fixture's fill); the rate's
    # window is tested with the meter.
    folded = api.app.state.ctx.live.n_samples
    assert folded > 72 and body["samples_total"] == folded


# ---------------------------------------------------------------------------------- the rest


def test_openapi_documents_every_route(http: httpx.Client) -> None:
    paths = get(http, "/openapi.json")["paths"]
    for route in ("inventory", "live", "series", "events", "status"):
        assert f"/api/v1/{route}" in paths
    assert http.get("/docs").status_code == 200


def test_dashboard_and_favicon_are_served(http: httpx.Client) -> None:
    assert http.get("/favicon.ico").status_code == 200
    index = http.get("/")
    assert index.status_code == 200 and "<html" in index.text.lower()


def test_unknown_api_route_is_a_json_404(http: httpx.Client) -> None:
    response = http.get("/api/v1/nothing")
    assert response.status_code == 404 and "/docs" in response.json()["detail"]


BAD = [
    ("/api/v1/series", {"entity": "c01//s01"}, "empty"),
    ("/api/v1/series", {"entity": "c01/**x"}, "whole segment"),
    ("/api/v1/series", {"entity": "c01/[r01"}, "unclosed"),
    ("/api/v1/series", {"entity": "c01/r 01"}, "letters"),
    ("/api/v1/series", {"entity": ""}, "1.."),
    ("/api/v1/series", {"from": "now", "to": "-1h"}, "before"),
    ("/api/v1/series", {"from": START_MS, "to": START_MS}, "before"),
    ("/api/v1/series", {"from": "yesterday"}, "not a time"),
    ("/api/v1/series", {"from": "1e5"}, "not a time"),
    ("/api/v1/series", {"to": "99999999999999999"}, "outside"),
    ("/api/v1/series", {"from": "-100000000d"}, "too long"),
    ("/api/v1/series", {"step": "7x"}, "duration"),
    ("/api/v1/series", {"step": "0"}, "between"),
    ("/api/v1/series", {"step": "-5s"}, "duration"),
    ("/api/v1/series", {"step": "0s"}, "more than 0"),
    ("/api/v1/series", {"metric": "no_such_metric"}, "unknown metric"),
    ("/api/v1/series", {"metric": "power watts!"}, "bad metric"),
    ("/api/v1/live", {"entity": "a//b"}, "empty"),
    ("/api/v1/live", {"metric": "nope_celsius"}, "unknown metric"),
    ("/api/v1/events", {"limit": "abc"}, "limit"),
    ("/api/v1/events", {"limit": 0}, "limit"),
    ("/api/v1/events", {"limit": 10**9}, "limit"),
    ("/api/v1/events", {"kind": "Fault Injected"}, "dotted"),
    ("/api/v1/events", {"from": "-1h", "to": "-2h"}, "before"),
    ("/api/v1/events", {"entity": "**/x**"}, "whole segment"),
    ("/api/v1/inventory", {"kind": "spaceship"}, "unknown kind"),
]


@pytest.mark.parametrize(("path", "params", "says"), BAD, ids=[f"{p}{q}" for p, q, _ in BAD])
def test_bad_parameters_get_a_400_saying_what_is_wrong(
    http: httpx.Client, path: str, params: dict[str, Any], says: str
) -> None:
    response = http.get(path, params=params)
    assert response.status_code == 400, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, str) and says in detail


def test_every_catalogue_metric_is_accepted_by_name(http: httpx.Client) -> None:
    response = http.get("/api/v1/live", params={"metric": list(METRICS)})
    assert response.status_code == 200
