"""GET /incidents over incident events written into a real store, shaped by the diagnosis'
own `Incident.attributes`: the newest state of each incident, open ones first, filtered by
range, entity (scope or device) and openness, bounded by `limit`; bad parameters are 400s."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_support import LiveApp

from rackwatch.api import ApiContext, create_app
from rackwatch.bus import MemoryBus
from rackwatch.engine.diagnosis.incident import Cause, Incident, Member, Nature, Scope
from rackwatch.engine.live import LiveState
from rackwatch.model import Event, EventKind, SeriesRegistry, Severity
from rackwatch.store.duckdb import DuckDBStore

HOUR = 3_600_000
DAY = 24 * HOUR
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
NOW = T0 + 6 * HOUR

FAN = Incident(
    id="inc-fan",
    scope=Scope.SERVER,
    scope_entity="c01/r01/s03",
    nature=Nature.REAL,
    cause=Cause.FAN_FAILURE,
    action="Replace fan1 of c01/r01/s03",
    start_ms=T0 + HOUR - 60_000,
    devices=["c01/r01/s03"],
    members=[Member("c01/r01/s03/fan1", "fan_rpm", "stuck", T0 + HOUR - 60_000)],
    evidence=["fan_rpm stuck at 0"],
)
COOLING = Incident(
    id="inc-cooling",
    scope=Scope.RACK,
    scope_entity="c01/r02",
    nature=Nature.REAL,
    cause=Cause.COOLING,
    action="Check the cooling of rack c01/r02",
    start_ms=T0 + 3 * HOUR,
    devices=["c01/r02/s01", "c01/r02/s02"],
    evidence=["inlet +6 °C on 2 servers"],
)
SENSOR = Incident(
    id="inc-sensor",
    scope=Scope.SERVER,
    scope_entity="c01/r01/s01",
    nature=Nature.SENSOR,
    cause=Cause.SENSOR_STUCK,
    action="Check the CPU temperature sensor of c01/r01/s01",
    start_ms=T0 + 5 * HOUR,
    devices=["c01/r01/s01"],
)
ROOM = Incident(  # opened three days before now, never changed since: still open
    id="inc-room",
    scope=Scope.ROOM,
    scope_entity="room",
    nature=Nature.REAL,
    cause=Cause.AIRFLOW,
    action="Look for recirculation",
    start_ms=NOW - 3 * DAY,
    devices=["c01/r01/s05", "c01/r02/s04"],
)
OLD = Incident(  # opened and closed days ago
    id="inc-old",
    scope=Scope.SERVER,
    scope_entity="c01/r02/s05",
    nature=Nature.REAL,
    cause=Cause.LOAD,
    action="Spread the load",
    start_ms=NOW - 3 * DAY,
    devices=["c01/r02/s05"],
)


def event(kind: EventKind, ts: int, incident: Incident) -> Event:
    return Event(
        ts=ts,
        kind=str(kind),
        entity=incident.scope_entity,
        severity=Severity.WARNING,
        attributes=incident.attributes(),
    )


def incident_events() -> list[Event]:
    fan_updated = replace(FAN, evidence=[*FAN.evidence, "cpu_temperature_celsius +9.1 °C"])
    fan_closed = replace(fan_updated, end_ms=T0 + 2 * HOUR)
    cooling_grown = replace(COOLING, devices=[*COOLING.devices, "c01/r02/s03"])
    return [
        event(EventKind.INCIDENT_OPENED, T0 + HOUR, FAN),
        event(EventKind.INCIDENT_UPDATED, T0 + HOUR + 600_000, fan_updated),
        event(EventKind.INCIDENT_CLOSED, T0 + 2 * HOUR, fan_closed),
        event(EventKind.INCIDENT_OPENED, T0 + 3 * HOUR, COOLING),
        event(EventKind.INCIDENT_UPDATED, T0 + 3 * HOUR + 1_800_000, cooling_grown),
        event(EventKind.INCIDENT_OPENED, T0 + 5 * HOUR, SENSOR),
        event(EventKind.INCIDENT_OPENED, NOW - 3 * DAY + 60_000, ROOM),
        event(EventKind.INCIDENT_OPENED, NOW - 3 * DAY + 60_000, OLD),
        event(EventKind.INCIDENT_CLOSED, NOW - 2 * DAY, replace(OLD, end_ms=NOW - 2 * DAY)),
        # other events in the same store are not incidents
        Event(T0 + HOUR, str(EventKind.ANOMALY_STARTED), "c01/r01/s03/fan1", Severity.WARNING),
    ]


def make_ctx(store: DuckDBStore, registry: SeriesRegistry) -> ApiContext:
    return ApiContext(
        store=store,
        registry=registry,
        live=LiveState(16),
        bus=MemoryBus(),
        clock_ms=lambda: NOW,
    )


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApp]:
    registry = SeriesRegistry()
    store = DuckDBStore(tmp_path_factory.mktemp("incidents") / "store.duckdb", registry)
    store.write_events(incident_events())
    store.flush()
    server = LiveApp(create_app(make_ctx(store, registry)))
    yield server
    server.close()
    store.close()


def get(api: LiveApp, **params: str | int) -> dict[str, Any]:
    response = httpx.get(api.url + "api/v1/incidents", params=params, timeout=10)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def ids(body: dict[str, Any]) -> list[str]:
    return [i["id"] for i in body["incidents"]]


def test_newest_state_of_each_incident_open_ones_first(api: LiveApp) -> None:
    body = get(api)
    assert body["now_ms"] == NOW and body["from_ms"] == NOW - DAY and body["to_ms"] == NOW
    # open: newest start first (the room's, opened 3 days ago, found before `from`); then closed
    assert ids(body) == ["inc-sensor", "inc-cooling", "inc-room", "inc-fan"]
    assert body["n_open"] == 3
    by_id = {i["id"]: i for i in body["incidents"]}
    assert by_id["inc-cooling"] == {
        "id": "inc-cooling",
        "entity": "c01/r02",
        "scope": "rack",
        "nature": "real",
        "cause": "cooling",
        "action": "Check the cooling of rack c01/r02",
        "devices": ["c01/r02/s01", "c01/r02/s02", "c01/r02/s03"],  # as updated
        "anomalies": [],
        "n_anomalies": 0,
        "evidence": ["inlet +6 °C on 2 servers"],
        "start": T0 + 3 * HOUR,
        "end": None,
        "is_open": True,
        "opened_ts": T0 + 3 * HOUR,
        "updated_ts": T0 + 3 * HOUR + 1_800_000,
        "closed_ts": None,
    }
    fan = by_id["inc-fan"]
    assert fan["is_open"] is False and fan["end"] == fan["closed_ts"] == T0 + 2 * HOUR
    assert fan["opened_ts"] == T0 + HOUR and fan["updated_ts"] == T0 + 2 * HOUR
    assert fan["evidence"] == ["fan_rpm stuck at 0", "cpu_temperature_celsius +9.1 °C"]
    assert fan["anomalies"] == [
        {
            "entity": "c01/r01/s03/fan1",
            "metric": "fan_rpm",
            "detector": "stuck",
            "start": T0 + HOUR - 60_000,
        }
    ]
    assert fan["n_anomalies"] == 1 and fan["nature"] == "real"
    assert by_id["inc-sensor"]["nature"] == "sensor"
    assert by_id["inc-sensor"]["cause"] == "sensor_stuck"
    assert by_id["inc-room"]["scope"] == "room" and by_id["inc-room"]["entity"] == "room"


def test_open_only(api: LiveApp) -> None:
    assert ids(get(api, open="true")) == ["inc-sensor", "inc-cooling", "inc-room"]
    assert ids(get(api, open="false")) == ids(get(api))


def test_entity_matches_the_scope_or_a_device(api: LiveApp) -> None:
    assert ids(get(api, entity="c01/r02")) == ["inc-cooling"]  # the rack, its scope
    assert ids(get(api, entity="c01/r02/s03")) == ["inc-cooling"]  # a device added later
    assert ids(get(api, entity="c01/r02/s04")) == ["inc-room"]  # a device of the room's
    assert ids(get(api, entity="room")) == ["inc-room"]
    assert ids(get(api, entity="c01/r01/**")) == ["inc-sensor", "inc-room", "inc-fan"]
    assert get(api, entity="c09/**") == {
        "now_ms": NOW,
        "from_ms": NOW - DAY,
        "to_ms": NOW,
        "n_open": 0,
        "incidents": [],
    }


def test_range_is_overlap_with_each_incidents_life(api: LiveApp) -> None:
    # while the fan incident was open: its newest state, closed after `to`
    during = get(api, **{"from": str(T0 + 1_800_000), "to": str(T0 + HOUR + 1_800_000)})
    assert ids(during) == ["inc-room", "inc-fan"]
    assert during["incidents"][1]["closed_ts"] == T0 + 2 * HOUR
    # after it closed, before the rack's began
    between = get(api, **{"from": str(T0 + 2 * HOUR + 1), "to": str(T0 + 3 * HOUR)})
    assert ids(between) == ["inc-room"]
    # a wider range reaches the one that closed two days ago; ISO times and durations work
    wide = get(api, **{"from": "-4d", "to": "now"})
    assert ids(wide) == ["inc-sensor", "inc-cooling", "inc-room", "inc-fan", "inc-old"]
    iso = get(api, **{"from": "2025-12-29T00:00:00Z", "to": "2025-12-30T00:00:00Z"})
    assert ids(iso) == ["inc-room", "inc-old"]


def test_limit_keeps_the_first_and_counts_every_open_one(api: LiveApp) -> None:
    body = get(api, limit=2)
    assert ids(body) == ["inc-sensor", "inc-cooling"] and body["n_open"] == 3
    assert ids(get(api, limit=1000)) == ids(get(api))


@pytest.mark.parametrize(
    ("params", "names"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"open": "maybe"}, "open"),
        ({"from": "yesterday"}, "from"),
        ({"from": "now", "to": "-1h"}, "before"),
        ({"entity": "c01/**/**/**/**/**"}, "**"),
    ],
)
def test_bad_parameters_are_400s_that_say_which(
    api: LiveApp, params: dict[str, str], names: str
) -> None:
    response = httpx.get(api.url + "api/v1/incidents", params=params, timeout=10)
    assert response.status_code == 400, response.text
    assert names in response.json()["detail"]


def test_an_empty_store_has_no_incidents(tmp_path: Path) -> None:
    registry = SeriesRegistry()
    store = DuckDBStore(tmp_path / "store.duckdb", registry)
    server = LiveApp(create_app(make_ctx(store, registry)))
    try:
        body = get(server, open="true")
        assert body["incidents"] == [] and body["n_open"] == 0
    finally:
        server.close()
        store.close()
