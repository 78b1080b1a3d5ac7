"""The control, alert and state routes with a control token: alerts and acknowledgement,
states, maintenance, fans, fault injection through the bus to the twin, and every 4xx path
(each refused call checked to change nothing)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from api_support import Filled
from room_support import (
    FAILED_FAN,
    S01,
    Room,
    Serve,
    Tokens,
    build_room,
    make_tokens,
    serving_rooms,
    wait_for,
)
from websockets.sync.client import ClientConnection, connect

from rackwatch.bus import MemoryBus, subjects
from rackwatch.engine.control import FanController, FanLayout
from rackwatch.errors import CommandRejected
from rackwatch.model import EventKind
from rackwatch.twin import Twin

S03 = "c01/r01/s03"


@pytest.fixture(scope="module")
def tokens(tmp_path_factory: pytest.TempPathFactory) -> Tokens:
    return make_tokens(tmp_path_factory.mktemp("tokens"))


@pytest.fixture(scope="module")
def shared_room(filled: Filled, tokens: Tokens) -> Iterator[Room]:
    """For reads and refused calls only: tests that change something build their own room."""
    with serving_rooms() as serve:
        yield build_room(filled, tokens, serve)


@pytest.fixture
def room(filled: Filled, tokens: Tokens, serve: Serve) -> Iterator[Room]:
    room = build_room(filled, tokens, serve)
    yield room
    room.stop_tasks()


def refused(room: Room, method: str, path: str, status: int, match: str, **kw: Any) -> None:
    """The call is answered `status` with a detail containing `match`, and changes nothing."""
    before = room.snapshot()
    response = room.request(method, path, **kw)
    assert response.status_code == status, response.text
    assert match in response.json()["detail"]
    assert room.snapshot() == before


# --- alerts ----------------------------------------------------------------------------------


def test_active_alerts_list_the_stopped_fan(shared_room: Room) -> None:
    alerts = shared_room.request("GET", "/api/v1/alerts").json()["alerts"]
    stopped = [a for a in alerts if a["rule"] == "fan-stopped"]
    assert [a["entity"] for a in stopped] == [FAILED_FAN]
    alert = stopped[0]
    assert alert["status"] == "firing" and alert["level"] == "CRITICAL"
    assert alert["is_failure"] is True and alert["acknowledged_by"] is None
    assert alert["metric"] == "fan_rpm" and alert["value"] < alert["threshold"] == 100
    assert len(alert["id"]) == 16 and alert["fired_ts_ms"] <= alert["ts_ms"]


def test_alerts_by_entity_and_with_resolved_ones(shared_room: Room) -> None:
    def ids(query: str) -> set[str]:
        return {
            a["id"] for a in shared_room.request("GET", f"/api/v1/alerts{query}").json()["alerts"]
        }

    active = ids("")
    assert ids(f"?entity={S03}/**") == {
        a.id for a in shared_room.alerts.active_alerts() if a.entity.startswith(S03)
    }
    assert ids("?entity=c09/**") == set()
    every = shared_room.request("GET", "/api/v1/alerts?state=all").json()["alerts"]
    assert active <= {a["id"] for a in every}
    assert {a["status"] for a in every} <= {"firing", "acknowledged", "resolved"}
    history = {o["id"] for o in shared_room.alerts.recent_alerts(-1)}
    assert {a["id"] for a in every} == active | history


@pytest.mark.parametrize(
    ("query", "match"),
    [("?state=open", "state"), ("?entity=c01/[r01", "entity"), ("?entity=", "entity")],
)
def test_bad_alert_queries_are_400(shared_room: Room, query: str, match: str) -> None:
    response = shared_room.request("GET", f"/api/v1/alerts{query}")
    assert response.status_code == 400 and match in response.json()["detail"]


def test_acknowledge_an_alert(room: Room) -> None:
    alert_id = room.alerts.active_alerts()[0].id
    response = room.request("POST", f"/api/v1/alerts/{alert_id}/ack")
    assert response.status_code == 200, response.text
    alert = response.json()["alert"]
    by = room.tokens.control_by
    assert (alert["id"], alert["status"], alert["acknowledged_by"]) == (
        alert_id,
        "acknowledged",
        by,
    )
    [event] = room.bus.events(EventKind.ALERT_ACKNOWLEDGED)
    assert event.attributes["by"] == by
    again = room.request("POST", f"/api/v1/alerts/{alert_id}/ack")
    assert again.status_code == 200 and len(room.bus.events()) == 1  # no second event


def test_acknowledging_an_unknown_alert_is_404(shared_room: Room) -> None:
    refused(shared_room, "POST", "/api/v1/alerts/0123456789abcdef/ack", 404, "no open alert")


# --- states ----------------------------------------------------------------------------------


def test_states_show_the_failed_fan_and_server_usage(shared_room: Room) -> None:
    entities = shared_room.request("GET", "/api/v1/states").json()["entities"]
    assert entities[FAILED_FAN]["state"] == "FAILED"
    assert "Fan stopped" in entities[FAILED_FAN]["reason"]
    assert entities[FAILED_FAN]["usage"] is None and entities[FAILED_FAN]["maintenance"] is None
    assert entities[S01]["state"] in ("OK", "WARNING", "CRITICAL")
    assert entities[S01]["usage"] in ("busy", "idle")
    racks = {"c01", "c01/r01"}  # no telemetry of their own: listed by their devices
    assert set(entities) == set(shared_room.alerts.states()) | racks


def test_states_by_entity_and_by_state(shared_room: Room) -> None:
    def paths(query: str) -> list[str]:
        return list(shared_room.request("GET", f"/api/v1/states{query}").json()["entities"])

    assert paths(f"?entity={S03}/*") == [f"{S03}/fan1", f"{S03}/fan2"]
    assert paths("?state=FAILED") == [FAILED_FAN]
    assert paths("?state=MAINTENANCE&state=UNKNOWN") == []
    assert shared_room.request("GET", "/api/v1/states?state=broken").status_code == 400


# --- maintenance -----------------------------------------------------------------------------


def test_maintenance_on_and_off(room: Room) -> None:
    body = {"entity": S03, "reason": "replace fan1"}
    response = room.request("POST", "/api/v1/maintenance", json=body)
    assert response.status_code == 200, response.text
    assert response.json() == {"entity": S03, "state": "MAINTENANCE"}
    entities = room.request("GET", f"/api/v1/states?entity={S03}/**").json()["entities"]
    assert {e["state"] for e in entities.values()} == {"MAINTENANCE"}  # its fans go with it
    by = room.tokens.control_by
    assert entities[FAILED_FAN]["maintenance"]["by"] == by
    assert entities[FAILED_FAN]["maintenance"]["reason"] == "replace fan1"
    changed = room.bus.events(EventKind.STATE_CHANGED)
    assert {e.entity for e in changed} == {S03, f"{S03}/fan1", f"{S03}/fan2"}
    assert all(e.attributes["by"] == by for e in changed)

    response = room.request("DELETE", f"/api/v1/maintenance/{S03}")
    assert response.status_code == 200, response.text
    assert response.json()["entity"] == S03 and response.json()["state"] != "MAINTENANCE"
    fan = room.request("GET", f"/api/v1/states?entity={FAILED_FAN}").json()["entities"]
    assert fan[FAILED_FAN]["state"] == "FAILED"


def test_maintenance_on_a_rack(room: Room) -> None:
    response = room.request("POST", "/api/v1/maintenance", json={"entity": "c01/r01"})
    assert response.status_code == 200 and response.json()["state"] == "MAINTENANCE"


@pytest.mark.parametrize(
    ("body", "status", "match"),
    [
        ({"entity": "c01/r01/s99"}, 422, "no entity 'c01/r01/s99'"),
        ({"entity": "c01//s01"}, 422, "bad entity path"),
        ({"reason": "x"}, 400, "entity"),
        ({"entity": S01, "reason": 5}, 400, "reason"),
        ({"entity": S01, "until": "friday"}, 400, "until"),
    ],
)
def test_bad_maintenance_requests(
    shared_room: Room, body: dict[str, Any], status: int, match: str
) -> None:
    refused(shared_room, "POST", "/api/v1/maintenance", status, match, json=body)


def test_ending_maintenance_that_was_not_set_is_404(shared_room: Room) -> None:
    refused(shared_room, "DELETE", f"/api/v1/maintenance/{S01}", 404, "not in maintenance")


# --- fans ------------------------------------------------------------------------------------


def test_fans_list_every_fan_with_its_mode_and_level(shared_room: Room) -> None:
    fans = shared_room.request("GET", "/api/v1/fans").json()["fans"]
    assert len(fans) == 10 and {f["mode"] for f in fans} == {"auto"}
    failed = next(f for f in fans if f["entity"] == FAILED_FAN)
    assert failed == {
        "entity": FAILED_FAN,
        "server": S03,
        "mode": "auto",
        "level": failed["level"],
        "failed": True,
        "failsafe": False,
    }
    assert all(f["level"] in (0, 1, 2, 3) for f in fans)
    some = shared_room.request("GET", f"/api/v1/fans?entity={S01}/*").json()["fans"]
    assert [f["entity"] for f in some] == [f"{S01}/fan1", f"{S01}/fan2"]


def test_set_a_fan_level_by_hand(room: Room) -> None:
    body = {"entity": f"{S01}/fan2", "level": "high"}
    response = room.request("POST", "/api/v1/fans/level", json=body)
    assert response.status_code == 200, response.text
    assert response.json() == {"entity": f"{S01}/fan2", "level": 3, "mode": "manual"}
    [(subject, command)] = room.bus.commands()
    assert subject == subjects.commands("twin")
    assert (command.target, command.action, command.params["level"]) == (
        f"{S01}/fan2",
        "fan.set_level",
        3,
    )
    assert command.issued_by == room.tokens.control_by
    modes = {f["entity"]: f["mode"] for f in room.request("GET", "/api/v1/fans").json()["fans"]}
    assert modes[f"{S01}/fan2"] == "manual" and modes[f"{S01}/fan1"] == "auto"


def test_set_fan_mode_for_a_rack_and_back(room: Room) -> None:
    response = room.request(
        "POST", "/api/v1/fans/mode", json={"entity": "c01/r01", "mode": "MANUAL"}
    )
    assert response.status_code == 200 and response.json() == {
        "entity": "c01/r01",
        "mode": "manual",
    }
    assert {f.mode for f in room.controller.status()} == {"manual"}
    [event] = room.bus.events(EventKind.CONTROL_MODE_CHANGED)
    assert event.attributes["n_fans"] == 10
    back = room.request("POST", "/api/v1/fans/mode", json={"entity": S01, "mode": "auto"})
    assert back.status_code == 200
    assert [f.fan for f in room.controller.status() if f.mode == "auto"] == [
        f"{S01}/fan1",
        f"{S01}/fan2",
    ]


@pytest.mark.parametrize(
    ("path", "body", "status", "match"),
    [
        ("level", {"entity": S01, "level": 7}, 422, "fan level must be 0..3"),
        ("level", {"entity": S01, "level": "turbo"}, 422, "fan level must be 0..3"),
        ("level", {"entity": S01, "level": 1.5}, 422, "fan level must be 0..3"),
        ("level", {"entity": S01, "level": True}, 400, "level"),
        ("level", {"entity": "c01/r01", "level": 1}, 422, "unknown fan target"),
        ("level", {"entity": "c01/r01/s99/fan1", "level": 1}, 422, "unknown fan target"),
        ("level", {"entity": S01}, 400, "level"),
        ("level", {"entity": S01, "level": 1, "force": True}, 400, "force"),
        ("mode", {"entity": S01, "mode": "turbo"}, 422, "fan mode must be one of"),
        ("mode", {"entity": "c09", "mode": "auto"}, 422, "no fan at or below 'c09'"),
        ("mode", {"entity": S01, "mode": None}, 400, "mode"),
    ],
)
def test_bad_fan_requests(
    shared_room: Room, path: str, body: dict[str, Any], status: int, match: str
) -> None:
    refused(shared_room, "POST", f"/api/v1/fans/{path}", status, match, json=body)


def test_bad_json_is_400(shared_room: Room) -> None:
    bad = {"content": b"{level: 3", "headers": {"Content-Type": "application/json"}}
    refused(shared_room, "POST", "/api/v1/fans/level", 400, "not valid JSON", **bad)


class _LockedController(FanController):
    async def set_level(self, target: str, level: Any, by: str) -> None:
        raise CommandRejected(f"{target} is locked by the BMC ({level}, {by}); unlock it first")


def test_a_change_the_controller_refuses_is_409(
    filled: Filled, tokens: Tokens, serve: Serve
) -> None:
    layout = FanLayout.from_inventory(Twin.from_scenario("fan-fail").inventory())
    locked = _LockedController(MemoryBus(), layout, filled.registry)
    room = build_room(filled, tokens, serve, feed_steps=0, controller=locked)
    room.controller = locked
    body = {"entity": S01, "level": 1}
    refused(room, "POST", "/api/v1/fans/level", 409, "locked by the BMC", json=body)


def test_without_a_controller_or_alerts_the_routes_say_so(
    filled: Filled, tokens: Tokens, serve: Serve
) -> None:
    room = build_room(filled, tokens, serve, feed_steps=0, controller=None, alerts=None)
    for path in ("/api/v1/fans", "/api/v1/alerts", "/api/v1/states"):
        response = room.request("GET", path)
        assert response.status_code == 503 and "not running" in response.json()["detail"]
    assert room.request("GET", "/api/v1/fans", None).status_code == 503  # auth first, then 503
    refused(
        room, "POST", "/api/v1/fans/mode", 503, "fan control", json={"entity": S01, "mode": "auto"}
    )


# --- twin faults -----------------------------------------------------------------------------


def test_fault_kinds_are_listed_with_their_parameters(shared_room: Room) -> None:
    kinds = shared_room.request("GET", "/api/v1/twin/faults").json()["kinds"]
    assert kinds["fan_off"]["target"] == "fan" and kinds["fan_off"]["severity"] == "critical"
    assert kinds["fan_degradation"]["defaults"]["step_ratio"] == 0.02
    assert kinds["fan_degradation"]["bounds"]["step_ratio"] == [0.0001, 1.0]
    assert kinds["load_burst"]["target"] == "servers"


def test_an_injected_fault_reaches_the_twin_through_the_bus(room: Room) -> None:
    stop = room.run_pipeline()
    try:
        body = {"kind": "load_burst", "entity": S01, "params": {"duration_s": 60}}
        response = room.request("POST", "/api/v1/twin/faults", json=body)
        assert response.status_code == 202, response.text
        command = response.json()["command"]
        by = room.tokens.control_by
        assert response.json()["accepted"] is True
        assert command["target"] == S01 and command["action"] == "twin.inject_fault"
        assert command["params"] == {"kind": "load_burst", "params": {"duration_s": 60}}
        assert command["issued_by"] == by
        wait_for(lambda: bool(room.bus.events(EventKind.FAULT_INJECTED)))
    finally:
        room.server.call(_set(stop))
    [event] = room.bus.events(EventKind.FAULT_INJECTED)
    assert (event.entity, event.attributes["fault"]) == (S01, "load_burst")
    assert event.end_ts is not None and event.end_ts - event.ts == 60_000
    assert [c.action for _s, c in room.bus.commands()] == ["twin.inject_fault"]


def _set(stop: Any) -> Any:
    async def set_it() -> None:
        stop.set()

    return set_it


@pytest.mark.parametrize(
    ("body", "status", "match"),
    [
        ({"kind": "meteor", "entity": S01}, 422, "unknown fault kind 'meteor'"),
        ({"kind": "fan_off", "entity": "c01/r01/s99/fan1"}, 422, "no entity"),
        ({"kind": "fan_off", "entity": "c01/r01/s01/fan 1"}, 422, "bad entity path"),
        ({"kind": "fan_off", "entity": S01}, 422, "acts on a fan, and 'c01/r01/s01' is a server"),
        ({"kind": "pdu_cap", "entity": S01}, 422, "acts on a pdu or a rack"),
        ({"kind": "crac_degradation", "entity": "c01"}, 422, "acts on a crac or a room"),
        ({"kind": "fan_off", "entity": f"{S01}/fan1", "params": {"speed": 2}}, 422, "speed"),
        (
            {"kind": "pdu_cap", "entity": "c01/r01/pdu", "params": {"capacity_ratio": 3}},
            422,
            "outside [0.0, 1.0]",
        ),
        (
            {"kind": "sensor_null", "entity": S01, "params": {"metric": "fan_rpm"}},
            422,
            "has no 'fan_rpm' series",
        ),
        ({"kind": "sensor_null", "entity": S01, "params": {"metric": [1]}}, 422, "params"),
        ({"kind": "fan_off", "entity": f"{S01}/fan1", "params": [1]}, 400, "params"),
        ({"kind": "fan_off", "entity": f"{S01}/fan1", "start_ms": 0}, 422, "start_ms"),
        ({"kind": "fan_off", "entity": f"{S01}/fan1", "start_ms": "now"}, 400, "start_ms"),
        ({"kind": "fan_off"}, 400, "entity"),
    ],
)
def test_bad_fault_injections_send_nothing(
    shared_room: Room, body: dict[str, Any], status: int, match: str
) -> None:
    refused(shared_room, "POST", "/api/v1/twin/faults", status, match, json=body)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"duration_s": 1e308}, "duration_s"),  # issue 8: accepted, then blocked event storage
        ({"duration_s": 10**400}, "duration_s"),
        ({"duration_s": -5}, "duration_s"),
        ({"utilization": float("nan")}, "utilization"),
        ({"n_servers": 10**400}, "n_servers"),
    ],
)
def test_an_unbounded_fault_parameter_is_a_422_naming_it(
    shared_room: Room, params: dict[str, Any], field: str
) -> None:
    body = {"kind": "load_burst", "entity": "c01", "params": params}
    sent = {"content": json.dumps(body), "headers": {"Content-Type": "application/json"}}
    refused(shared_room, "POST", "/api/v1/twin/faults", 422, f"params.{field}: ", **sent)
    detail = shared_room.request("POST", "/api/v1/twin/faults", **sent).json()["detail"]
    assert len(detail) < 300


def test_fault_kinds_publish_the_json_schema_of_their_parameters(shared_room: Room) -> None:
    kinds = shared_room.request("GET", "/api/v1/twin/faults").json()["kinds"]
    for kind, described in kinds.items():
        schema = described["params_schema"]
        assert schema["additionalProperties"] is False, kind
        assert set(schema["properties"]) == set(described["defaults"]), kind
    burst = kinds["load_burst"]["params_schema"]["properties"]
    assert burst["utilization"]["maximum"] == 1.0 and burst["n_servers"]["type"] == "integer"
    assert burst["duration_s"]["anyOf"][0]["maximum"] == 1e8
    assert kinds["load_burst"]["bounds"]["duration_s"] == [0.0, 1e8]


@pytest.mark.parametrize("level", [10**400, -(10**400), "x" * 10_000])
def test_a_huge_fan_level_is_a_422_not_a_500(shared_room: Room, level: Any) -> None:
    body = {"entity": S01, "level": level}
    refused(shared_room, "POST", "/api/v1/fans/level", 422, "fan level must be 0..3", json=body)
    detail = shared_room.request("POST", "/api/v1/fans/level", json=body).json()["detail"]
    assert len(detail) < 300


def test_fault_injection_needs_a_twin(filled: Filled, tokens: Tokens, serve: Serve) -> None:
    room = build_room(filled, tokens, serve, feed_steps=0, control_source=None)
    body = {"kind": "fan_off", "entity": f"{S01}/fan1"}
    refused(room, "POST", "/api/v1/twin/faults", 503, "needs the twin", json=body)


# --- alerts on the WebSocket -----------------------------------------------------------------


def _subscribe(conn: ClientConnection, entity: str) -> None:
    assert json.loads(conn.recv(timeout=5))["type"] == "connection"
    conn.send(json.dumps({"type": "subscribe", "entity": entity, "metrics": ["fan_rpm"]}))
    assert json.loads(conn.recv(timeout=5))["type"] == "subscribed"


def _until_alert(conn: ClientConnection, rule: str, timeout: float = 10) -> dict[str, Any]:
    """Read monitoring_data until one carries an alert of `rule`; return that message."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = json.loads(conn.recv(timeout=timeout))
        if any(a["rule"] == rule for a in message.get("alerts", ())):
            return dict(message)
    raise AssertionError(f"no {rule} alert on the WebSocket within {timeout} s")


def test_a_fan_failure_shows_in_the_websocket_alerts(room: Room) -> None:
    """The whole loop: fault over the bus to the twin, telemetry to the alert engine, and the
    alert in the `alerts` array of the subscribers whose entity glob covers the fan."""
    stop = room.run_pipeline()
    fan = f"{S01}/fan1"
    try:
        with connect(room.server.ws_url) as s01, connect(room.server.ws_url) as s05:
            _subscribe(s01, f"{S01}/**")
            _subscribe(s05, "c01/r01/s05/**")
            body = {"kind": "fan_off", "entity": fan}
            assert room.request("POST", "/api/v1/twin/faults", json=body).status_code == 202
            message = _until_alert(s01, "fan-stopped")
            [alert] = [a for a in message["alerts"] if a["rule"] == "fan-stopped"]
            assert alert["entity"] == fan and alert["status"] == "firing"
            assert alert["level"] == "CRITICAL" and alert["value"] < 100
            assert set(alert) >= {"timestamp", "metric", "threshold", "message", "id"}
            while True:  # the other subscriber, up to the same batch: not a word of it
                other = json.loads(s05.recv(timeout=5))
                assert all(a["entity"].startswith("c01/r01/s05") for a in other["alerts"])
                if other["ts_ms"] >= message["ts_ms"]:
                    break
    finally:
        room.server.call(_set(stop))
    assert room.alerts.state_details(fan)["state"] == "failed"
