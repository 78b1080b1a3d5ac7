"""Issue 8, items 11, 13 and 14 through the API: GET /alerts/history (past alerts from the
store, filtered and paged, across a restart), POST /alerts/ack (many at once),
GET /alerts?group_by=rule, the roll-up in GET /states, and acknowledgements that name the
token.

The room here is made by hand (step by step, 10 s apart) so that every alert is known:

| alert | entity | what happens |
|---|---|---|
| cpu-temperature | s01 | WARNING at 60 s, CRITICAL at 150 s, open |
| cpu-temperature | s02 | WARNING at 60 s, acknowledged at 180 s (as the old code named tokens) |
| cpu-temperature | s03 | WARNING at 60 s, resolved at 240 s |
| disk-failed | s04 | CRITICAL at 180 s (a failure), open |
| fan-stopped | s03/fan1 | CRITICAL at 210 s (a failure), open: s03 itself is OK again |
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_support import START_MS, LiveApp
from room_support import RecordingBus, Tokens, make_tokens, serving_rooms

from rackwatch.api import ApiContext, create_app
from rackwatch.engine.alerts.engine import AlertEngine
from rackwatch.engine.live import LiveState
from rackwatch.model import Batch, Event, EventKind, SeriesRegistry
from rackwatch.settings import AlertSettings, build_alert_rules
from rackwatch.store.duckdb import DuckDBStore

T0 = START_MS
NOW = T0 + 400_000
S = {i: f"c01/r01/s0{i}" for i in range(1, 5)}
FAN3 = f"{S[3]}/fan1"
RACK = "c01/r01"


def _cpu(server: int, t_s: int) -> float:
    if server == 1:
        return 40.0 if t_s < 60 else 80.0 if t_s < 150 else 90.0
    if server == 2:
        return 40.0 if t_s < 60 else 80.0
    if server == 3:
        return 80.0 if 60 <= t_s < 240 else 60.0 if t_s >= 240 else 40.0
    return 40.0


def _batch(registry: SeriesRegistry, t_s: int) -> Batch:
    rows: list[tuple[str, str, float]] = []
    for i, server in S.items():
        rows.append((server, "cpu_temperature_celsius", _cpu(i, t_s)))
        rows.append((server, "disk_ok", 0.0 if i == 4 and t_s >= 180 else 1.0))
        fan = f"{server}/fan1"
        rows.append((fan, "fan_rpm", 0.0 if fan == FAN3 and t_s >= 200 else 7000.0))
        rows.append((fan, "fan_level", 2.0))
    ids = [registry.intern(entity, metric) for entity, metric, _ in rows]
    return Batch.of([T0 + t_s * 1000] * len(rows), ids, [v for _, _, v in rows])


@dataclass
class Scene:
    registry: SeriesRegistry
    store: DuckDBStore
    tokens: Tokens
    batches: list[Batch]

    def engine(self, *, steps: bool = True) -> tuple[AlertEngine, RecordingBus, list[Event]]:
        """An alert engine that saw the whole story (or, `steps=False`, nothing: a restart),
        its bus, and the alert events it made, in order (what the store writer keeps)."""
        bus = RecordingBus()
        engine = AlertEngine(bus, self.registry, build_alert_rules(AlertSettings()))
        events: list[Event] = []
        for batch in self.batches if steps else ():
            events.extend(engine.process(batch))
            if int(batch.ts[0]) == T0 + 180_000:
                s02 = _alert_of(engine, "cpu-temperature", S[2])
                # How acknowledgements were recorded before records named the token.
                legacy = f"token:{self.tokens.control_id}"
                asyncio.run(engine.acknowledge(s02, legacy))
                events.extend(bus.events())
        return engine, bus, [e for e in events if str(e.kind).startswith("alert.")]


def _alert_of(engine: AlertEngine, rule: str, entity: str) -> str:
    [found] = [a.id for a in engine.active_alerts() if (a.rule, a.entity) == (rule, entity)]
    return found


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    registry = SeriesRegistry()
    store = DuckDBStore(tmp_path_factory.mktemp("history"), registry, clock=lambda: NOW)
    tokens = make_tokens(tmp_path_factory.mktemp("tokens"))
    scene = Scene(registry, store, tokens, [_batch(registry, t) for t in range(0, 310, 10)])
    engine, _bus, events = scene.engine()
    store.write_events(events)
    active = {(a.rule, a.entity, a.severity.name) for a in engine.active_alerts()}
    assert active == {  # the story this module is about, checked once
        ("cpu-temperature", S[1], "CRITICAL"),
        ("cpu-temperature", S[2], "WARNING"),
        ("disk-failed", S[4], "CRITICAL"),
        ("fan-stopped", FAN3, "CRITICAL"),
    }
    yield scene
    store.close()


def _serve(scene: Scene, serve: Any, alerts: AlertEngine | None) -> LiveApp:
    ctx = ApiContext(
        store=scene.store,
        registry=scene.registry,
        live=LiveState(len(scene.registry)),
        bus=RecordingBus(),
        alerts=alerts,
        tokens=scene.tokens.store,
        clock_ms=lambda: NOW,
    )
    return serve(create_app(ctx))  # type: ignore[no-any-return]


@dataclass
class Apps:
    live: LiveApp
    """The engine that raised the alerts runs here."""
    restarted: LiveApp
    """A new engine that has seen nothing yet: the history comes from the store."""
    store_only: LiveApp
    """No alert engine at all."""


@pytest.fixture(scope="module")
def apps(scene: Scene) -> Iterator[Apps]:
    with serving_rooms() as serve:
        live, _, _ = scene.engine()
        restarted, _, _ = scene.engine(steps=False)
        yield Apps(
            _serve(scene, serve, live),
            _serve(scene, serve, restarted),
            _serve(scene, serve, None),
        )


def get(app: LiveApp, path: str, expect: int = 200, **params: Any) -> Any:
    response = httpx.get(app.url + path.lstrip("/"), params=params, timeout=10)
    assert response.status_code == expect, response.text
    return response.json()


def rows(answer: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(a["rule"], a["entity"], a["status"]) for a in answer["alerts"]]


# --- GET /alerts/history ----------------------------------------------------------------------


def test_history_lists_past_alerts_newest_fired_first_from_the_store(apps: Apps) -> None:
    answer = get(apps.store_only, "/api/v1/alerts/history")
    assert rows(answer) == [
        ("fan-stopped", FAN3, "firing"),  # fired at 210 s
        ("disk-failed", S[4], "firing"),  # 180 s
        ("cpu-temperature", S[1], "firing"),  # 60 s, by rule then entity
        ("cpu-temperature", S[2], "acknowledged"),
        ("cpu-temperature", S[3], "resolved"),
    ]
    assert answer["total"] == 5
    by = {(a["rule"], a["entity"]): a for a in answer["alerts"]}
    s01 = by[("cpu-temperature", S[1])]
    assert (s01["level"], s01["fired_ts_ms"], s01["ts_ms"]) == (
        "CRITICAL",
        T0 + 60_000,
        T0 + 150_000,
    )
    assert (s01["value"], s01["unit"]) == (90.0, "celsius")  # raw, for machines
    assert s01["message"].endswith("CPU temperature 90.0 °C (CRITICAL at or above 90.0 °C)")
    s03 = by[("cpu-temperature", S[3])]
    assert s03["resolved_ts_ms"] == T0 + 240_000 and "resolved" in s03["message"]
    disk = by[("disk-failed", S[4])]
    assert disk["is_failure"] is True and "disk failed" in disk["message"]
    assert set(s01) == set(get(apps.live, "/api/v1/alerts")["alerts"][0])  # GET /alerts' shape


def test_an_old_token_acknowledgement_is_shown_with_the_token_name(
    apps: Apps, scene: Scene
) -> None:
    for app in (apps.store_only, apps.live):
        answer = get(app, "/api/v1/alerts/history", status="acknowledged")
        [acked] = answer["alerts"]
        assert acked["acknowledged_by"] == scene.tokens.control_by
        assert acked["acknowledged_ts_ms"] == T0 + 180_000


def test_history_survives_a_restart(apps: Apps) -> None:
    """A new engine holds none of the alerts: the history still lists them all, from the
    store, and those the stopped run left open are no longer shown open."""
    answer = get(apps.restarted, "/api/v1/alerts/history")
    assert answer["total"] == 5
    statuses = {
        (a["rule"], a["entity"]): (a["status"], a["resolved_ts_ms"]) for a in answer["alerts"]
    }
    assert statuses[("cpu-temperature", S[3])] == ("resolved", T0 + 240_000)
    assert statuses[("fan-stopped", FAN3)] == ("resolved", None)  # left open by the old run
    live = get(apps.live, "/api/v1/alerts/history")
    assert rows(live) == rows(get(apps.store_only, "/api/v1/alerts/history"))


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"rule": "cpu-temperature"}, [S[1], S[2], S[3]]),
        ({"rule": ["disk-failed", "fan-stopped"]}, [FAN3, S[4]]),
        ({"level": "CRITICAL"}, [FAN3, S[4], S[1]]),
        ({"level": ["WARNING", "CRITICAL"]}, [FAN3, S[4], S[1], S[2], S[3]]),
        ({"status": "resolved"}, [S[3]]),
        ({"status": ["firing", "acknowledged"]}, [FAN3, S[4], S[1], S[2]]),
        ({"entity": f"{S[3]}/**"}, [FAN3, S[3]]),
        ({"entity": "c01/*/s0[12]"}, [S[1], S[2]]),
        ({"to": str(T0 + 180_000)}, [S[1], S[2], S[3]]),  # the disk fired at 180 s: not before
        ({"from": str(T0 + 240_001)}, [FAN3, S[4], S[1], S[2]]),  # s03 resolved at 240 s
        ({"from": str(T0 + 240_000), "to": str(T0 + 240_001)}, [FAN3, S[4], S[1], S[2], S[3]]),
        ({"from": "2025-12-01T00:00:00Z", "to": "2025-12-31T00:00:00Z"}, []),
        ({"from": "-92d", "to": str(T0)}, []),  # the oldest `from` allowed
    ],
)
def test_history_filters(apps: Apps, params: dict[str, Any], expected: list[str]) -> None:
    answer = get(apps.live, "/api/v1/alerts/history", **params)
    assert [a["entity"] for a in answer["alerts"]] == expected
    assert answer["total"] == len(expected)


def test_history_pages(apps: Apps) -> None:
    every = [a["id"] for a in get(apps.live, "/api/v1/alerts/history")["alerts"]]
    page = get(apps.live, "/api/v1/alerts/history", limit=2, offset=1)
    assert [a["id"] for a in page["alerts"]] == every[1:3] and page["total"] == 5
    past = get(apps.live, "/api/v1/alerts/history", offset=5)
    assert past == {"alerts": [], "total": 5}


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"offset": -1}, "offset"),
        ({"offset": 10**7}, "offset"),
        ({"level": "INFO"}, "level"),
        ({"status": "open"}, "status"),
        ({"rule": "fan stopped"}, "rule"),
        ({"rule": ["r"] * 51}, "rule"),
        ({"entity": "c01/[r01"}, "entity"),
        ({"from": "yesterday"}, "from"),
        ({"from": str(T0 + 300_000), "to": str(T0)}, "from"),
        ({"from": "-93d"}, "92 days"),
        ({"to": "9" * 400}, "to"),
    ],
)
def test_bad_history_queries_are_400_naming_the_parameter(
    apps: Apps, params: dict[str, Any], match: str
) -> None:
    answer = get(apps.live, "/api/v1/alerts/history", expect=400, **params)
    assert match in answer["detail"]


def test_history_needs_no_alert_engine_but_refuses_too_many_events(
    scene: Scene, tmp_path: Path, serve: Any
) -> None:
    """The store answers alone; a range holding more alert events than one request may fold
    is a 400 that says to narrow it (the events are read a day at a time, never all)."""
    from rackwatch.engine.alerts import views

    store = DuckDBStore(tmp_path, scene.registry, clock=lambda: NOW)
    many = [
        Event(T0 + i, EventKind.ALERT_FIRED, S[1], attributes={"alert_id": f"{i:016x}"})
        for i in range(views.MAX_HISTORY_EVENTS + 1)
    ]
    store.write_events(many)
    app = _serve(Scene(scene.registry, store, scene.tokens, []), serve, None)
    answer = get(app, "/api/v1/alerts/history", expect=400)
    assert "more than 50,000 alert events" in answer["detail"]
    assert get(app, "/api/v1/alerts/history", entity="c09/**")["total"] == 0
    store.close()


# --- GET /alerts?group_by=rule ----------------------------------------------------------------


def test_alerts_grouped_by_rule(apps: Apps) -> None:
    plain = get(apps.live, "/api/v1/alerts")
    assert set(plain) == {"alerts"}  # without group_by: as before
    grouped = get(apps.live, "/api/v1/alerts", group_by="rule")
    assert grouped["alerts"] == plain["alerts"]
    assert grouped["groups"] == [
        {
            "rule": "cpu-temperature",
            "level": "CRITICAL",
            "count": 2,
            "entities": [S[1], S[2]],
            "oldest_fired_ts_ms": T0 + 60_000,
        },
        {
            "rule": "disk-failed",
            "level": "CRITICAL",
            "count": 1,
            "entities": [S[4]],
            "oldest_fired_ts_ms": T0 + 180_000,
        },
        {
            "rule": "fan-stopped",
            "level": "CRITICAL",
            "count": 1,
            "entities": [FAN3],
            "oldest_fired_ts_ms": T0 + 210_000,
        },
    ]
    resolved_too = get(apps.live, "/api/v1/alerts", group_by="rule", state="all")
    assert resolved_too["groups"][0]["count"] == 3  # s03's resolved one too
    assert "group_by" in get(apps.live, "/api/v1/alerts", expect=400, group_by="entity")["detail"]


# --- GET /states: the roll-up ------------------------------------------------------------------


def test_a_server_with_a_stopped_fan_shows_failed_and_counts_the_alerts_under_it(
    apps: Apps,
) -> None:
    entities = get(apps.live, "/api/v1/states")["entities"]
    s03 = entities[S[3]]
    assert (s03["state"], s03["rollup_state"], s03["rollup_from"]) == ("OK", "FAILED", FAN3)
    assert s03["alerts"] == {"warning": 0, "critical": 1}
    fan = entities[FAN3]
    assert (fan["state"], fan["rollup_state"], fan["rollup_from"]) == ("FAILED", "FAILED", None)
    s02 = entities[S[2]]  # its own WARNING (acknowledged: still open, still counted)
    assert (s02["rollup_state"], s02["rollup_from"], s02["alerts"]) == (
        "WARNING",
        None,
        {"warning": 1, "critical": 0},
    )
    rack = entities[RACK]
    assert rack["state"] is None and rack["since_ms"] is None and rack["usage"] is None
    assert (rack["rollup_state"], rack["rollup_from"]) == ("FAILED", FAN3)  # first in path order
    assert rack["alerts"] == {"warning": 1, "critical": 3}
    assert entities["c01"]["alerts"] == rack["alerts"]


def test_the_rollup_covers_every_descendant_whatever_the_entity_selects(apps: Apps) -> None:
    one = get(apps.live, "/api/v1/states", entity=S[3])["entities"]
    assert list(one) == [S[3]] and one[S[3]]["rollup_from"] == FAN3
    racks = get(apps.live, "/api/v1/states", entity="*/*")["entities"]
    assert list(racks) == [RACK]
    assert list(get(apps.live, "/api/v1/states", state="FAILED")["entities"]) == [FAN3, S[4]]


# --- POST /alerts/ack ------------------------------------------------------------------------


@pytest.fixture
def acking(scene: Scene, serve: Any) -> tuple[LiveApp, AlertEngine, RecordingBus]:
    engine, bus, _ = scene.engine()
    bus.log.clear()
    return _serve(scene, serve, engine), engine, bus


def post(app: LiveApp, body: Any, tokens: Tokens, token: str | None = "control") -> httpx.Response:
    return httpx.post(
        app.url + "api/v1/alerts/ack", json=body, headers=tokens.header(token), timeout=10
    )


def test_acknowledge_many_alerts_at_once(
    scene: Scene, acking: tuple[LiveApp, AlertEngine, RecordingBus]
) -> None:
    app, engine, bus = acking
    s01 = _alert_of(engine, "cpu-temperature", S[1])
    s02 = _alert_of(engine, "cpu-temperature", S[2])  # acknowledged already
    disk = _alert_of(engine, "disk-failed", S[4])
    unknown = "0123456789abcdef"
    response = post(app, {"ids": [s01, unknown, disk, s01, s02]}, scene.tokens)
    assert response.status_code == 200, response.text
    assert response.json() == {"acknowledged": [s01, disk, s02], "not_found": [unknown]}
    acks = [e for e in bus.events() if e.kind == EventKind.ALERT_ACKNOWLEDGED]
    assert [(e.attributes["alert_id"], e.attributes["by"]) for e in acks] == [
        (s01, scene.tokens.control_by),  # the token's name and id, not `token:<id>`
        (disk, scene.tokens.control_by),
    ]
    shown = {a["id"]: a for a in get(app, "/api/v1/alerts")["alerts"]}
    assert shown[disk]["status"] == "acknowledged"
    assert shown[disk]["acknowledged_by"] == scene.tokens.control_by
    again = post(app, {"ids": [s01, disk]}, scene.tokens)
    assert again.json() == {"acknowledged": [s01, disk], "not_found": []}
    assert len([e for e in bus.events() if e.kind == EventKind.ALERT_ACKNOWLEDGED]) == 2


@pytest.mark.parametrize(
    ("body", "status", "match"),
    [
        ({"ids": []}, 422, "1 to 1000"),
        ({"ids": ["0123456789abcdef"] * 1001}, 422, "1 to 1000"),
        ({"ids": ["0123456789abcdef", ""]}, 422, "ids[1]"),
        ({"ids": ["x" * 65]}, 422, "ids[0]"),
        ({"ids": "0123456789abcdef"}, 400, "ids"),
        ({"ids": [5]}, 400, "ids"),
        ({"id": ["0123456789abcdef"]}, 400, "id"),
        ([], 400, "dictionary or object"),
    ],
)
def test_bad_bulk_acknowledgements_change_nothing(
    scene: Scene,
    acking: tuple[LiveApp, AlertEngine, RecordingBus],
    body: Any,
    status: int,
    match: str,
) -> None:
    app, engine, bus = acking
    before = [a.as_dict() for a in engine.active_alerts()]
    response = post(app, body, scene.tokens)
    assert response.status_code == status, response.text
    assert match in response.json()["detail"]
    assert [a.as_dict() for a in engine.active_alerts()] == before and bus.log == []


def test_a_read_token_may_not_acknowledge(
    scene: Scene, acking: tuple[LiveApp, AlertEngine, RecordingBus]
) -> None:
    app, engine, bus = acking
    ids = [a.id for a in engine.active_alerts()]
    assert post(app, {"ids": ids}, scene.tokens, "read").status_code == 403
    assert post(app, {"ids": ids}, scene.tokens, None).status_code == 401
    assert bus.log == [] and {a.status for a in engine.active_alerts()} == {
        "firing",
        "acknowledged",
    }


def test_an_alert_with_a_nan_value_is_null_in_json() -> None:
    """JSON has no NaN: an alert on a NULL reading answers `"value": null`."""
    import asyncio

    import httpx
    from fastapi import FastAPI

    from rackwatch.api.routes.alerts import alert_out
    from rackwatch.api.schemas import AlertOut

    alert = {
        "id": "a1", "timestamp": "2026-01-01T00:00:00.000Z", "ts_ms": 1, "entity": "c01/r01/s01",
        "rule": "cpu-temperature", "metric": "cpu_temperature_celsius", "unit": "celsius",
        "value": float("nan"), "threshold": float("inf"), "level": "WARNING",
        "status": "firing", "message": "m", "fired_ts_ms": 1, "acknowledged_by": None,
        "acknowledged_ts_ms": None, "resolved_ts_ms": None, "is_failure": False,
        "is_suppressed": False, "n_reopened": 0,
    }  # fmt: skip
    app = FastAPI()

    @app.get("/alerts", response_model=list[AlertOut])
    async def alerts() -> Any:
        return [alert_out(alert)]

    async def get() -> Any:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return (await client.get("/alerts")).json()

    body = asyncio.run(get())
    assert body[0]["value"] is None and body[0]["threshold"] is None
