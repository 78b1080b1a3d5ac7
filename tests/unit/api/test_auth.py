"""Bearer tokens on every surface: the access matrix of each route, loopback-open reads on and
off, a remote client, the WebSocket, and that a refused call changes nothing."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_support import Filled, make_ctx
from room_support import (
    FAILED_FAN,
    S01,
    Room,
    Serve,
    Tokens,
    build_room,
    make_tokens,
    serving_rooms,
)
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from rackwatch.api import create_app
from rackwatch.tokens import TokenStore

READS = [
    "/api/v1/inventory",
    "/api/v1/live?entity=c01/r01/s01",
    "/api/v1/series?entity=c01/r01/s01&metric=power_watts&from=-5m",
    "/api/v1/plot?entity=c01/r01/s01&metric=power_watts&from=-5m",
    "/api/v1/events",
    "/api/v1/status",
    "/api/v1/alerts",
    "/api/v1/alerts/history",
    "/api/v1/states",
    "/api/v1/hosts",
    "/api/v1/energy",
    "/api/v1/energy/live",
    "/api/v1/recommend",
    "/api/v1/recommend/placement?gpus=1",
    "/api/v1/reports",
    "/api/v1/fans",
    "/api/v1/twin/faults",
    "/api/v1/health/now",
    "/api/v1/health?entity=c01/r01/s01",
    "/api/v1/predictions",
    "/api/v1/incidents",
    "/api/v1/anomalies",
    "/metrics",
]
CONTROLS: list[tuple[str, str, dict[str, Any] | None]] = [
    ("POST", "/api/v1/fans/level", {"entity": f"{S01}/fan1", "level": 3}),
    ("POST", "/api/v1/fans/mode", {"entity": S01, "mode": "manual"}),
    ("POST", "/api/v1/maintenance", {"entity": S01, "reason": "disk swap"}),
    ("DELETE", f"/api/v1/maintenance/{FAILED_FAN}", None),
    ("POST", "/api/v1/alerts/{alert_id}/ack", None),
    ("POST", "/api/v1/alerts/ack", {"ids": ["{alert_id}"]}),
    ("POST", "/api/v1/twin/faults", {"kind": "fan_off", "entity": f"{S01}/fan2"}),
]
INGESTS = ["/api/v1/ingest"]
"""Agents' pushes: an `ingest` or `control` token (tests/unit/api/test_ingest.py)."""
REPORT_FILES_AND_MAKING = 2
"""GET /reports/{name} and POST /reports (tests/unit/api/test_report_routes.py)."""


@pytest.fixture(scope="module")
def tokens(tmp_path_factory: pytest.TempPathFactory) -> Tokens:
    return make_tokens(tmp_path_factory.mktemp("tokens"))


@pytest.fixture(scope="module")
def shared_room(filled: Filled, tokens: Tokens) -> Iterator[Room]:
    """One room for the tests that change nothing (each checks that itself)."""
    with serving_rooms() as serve:
        room = build_room(filled, tokens, serve)
        room.server.call(lambda: room.alerts.set_maintenance(FAILED_FAN, "test", "for DELETE"))
        yield room


@pytest.fixture
def room(filled: Filled, tokens: Tokens, serve: Serve) -> Room:
    room = build_room(filled, tokens, serve)
    room.server.call(lambda: room.alerts.set_maintenance(FAILED_FAN, "test", "for DELETE"))
    room.bus.log.clear()
    return room


@pytest.fixture(scope="module")
def closed_room(filled: Filled, tokens: Tokens) -> Iterator[Room]:
    with serving_rooms() as serve:
        yield build_room(filled, tokens, serve, feed_steps=0, open_reads_on_loopback=False)


def _control(room: Room, method: str, path: str, body: Any, token: str | None) -> httpx.Response:
    alert_id = room.alerts.active_alerts()[0].id
    if body == {"ids": ["{alert_id}"]}:
        body = {"ids": [alert_id]}
    return room.request(method, path.format(alert_id=alert_id), token, json=body)


@pytest.mark.parametrize(("method", "path", "body"), CONTROLS, ids=[c[1] for c in CONTROLS])
@pytest.mark.parametrize(
    ("token", "status"), [(None, 401), ("bad", 401), ("revoked", 401), ("read", 403)]
)
def test_a_refused_control_call_changes_nothing(
    shared_room: Room, method: str, path: str, body: Any, token: str | None, status: int
) -> None:
    before = shared_room.snapshot()
    response = _control(shared_room, method, path, body, token)
    assert response.status_code == status, response.text
    assert "rackwatch token create --scope control" in response.json()["detail"]
    if status == 401:
        assert response.headers["www-authenticate"] == "Bearer"
    assert shared_room.snapshot() == before


@pytest.mark.parametrize(("method", "path", "body"), CONTROLS, ids=[c[1] for c in CONTROLS])
def test_a_control_token_may_do_each_control_call(
    room: Room, method: str, path: str, body: Any
) -> None:
    response = _control(room, method, path, body, "control")
    assert response.status_code in (200, 202), response.text
    assert room.bus.log  # something was sent: an event or a command


def test_a_control_token_reads_too(shared_room: Room) -> None:
    assert shared_room.request("GET", "/api/v1/alerts", "control").status_code == 200


@pytest.mark.parametrize("path", READS)
def test_reads_are_open_on_loopback_by_default(shared_room: Room, path: str) -> None:
    assert shared_room.request("GET", path, None).status_code == 200


@pytest.mark.parametrize("path", READS)
def test_a_bad_token_is_refused_even_where_none_is_needed(shared_room: Room, path: str) -> None:
    response = shared_room.request("GET", path, "revoked")
    assert response.status_code == 401 and "unknown or revoked" in response.json()["detail"]


@pytest.mark.parametrize("path", READS)
def test_closed_reads_need_a_read_or_control_token(closed_room: Room, path: str) -> None:
    response = closed_room.request("GET", path, None)
    assert response.status_code == 401
    assert "rackwatch token create --scope read" in response.json()["detail"]
    assert closed_room.request("GET", path, "bad").status_code == 401
    assert closed_room.request("GET", path, "read").status_code == 200
    assert closed_room.request("GET", path, "control").status_code == 200


def test_dashboard_files_and_docs_stay_open(closed_room: Room) -> None:
    for path in ("/", "/docs", "/openapi.json", "/favicon.ico"):
        assert closed_room.request("GET", path, None).status_code == 200, path


def test_openapi_documents_the_bearer_scheme(closed_room: Room) -> None:
    schema = closed_room.request("GET", "/openapi.json", None).json()
    assert schema["components"]["securitySchemes"]["token"]["scheme"] == "bearer"
    assert "/api/v1/fans/level" in schema["paths"]


def test_every_api_route_states_its_access(closed_room: Room) -> None:
    """Enforced, not hoped for: every operation in the schema refuses a call without a token,
    and every one that changes something refuses a read token (a new route that forgets
    ReadAccess/ControlAccess fails here)."""
    schema = closed_room.request("GET", "/openapi.json", None).json()
    checked = 0
    for path, operations in schema["paths"].items():
        if not path.startswith("/api/v1/"):
            continue
        url = re.sub(r"\{[^}]+\}", "x", path)
        for method, operation in operations.items():
            assert operation["security"] == [{"token": []}], f"{method} {path}"
            assert closed_room.request(method, url, None).status_code == 401, f"{method} {path}"
            if method != "get":
                response = closed_room.request(method, url, "read")
                assert response.status_code == 403, f"{method} {path} obeys a read token"
            checked += 1
    assert checked == (  # /metrics: no schema
        len(READS) - 1 + len(CONTROLS) + len(INGESTS) + REPORT_FILES_AND_MAKING
    )


def test_a_remote_client_needs_a_token_even_with_open_loopback_reads(
    filled: Filled, tokens: Tokens
) -> None:
    ctx = make_ctx(filled, tokens=tokens.store)
    app = create_app(ctx)

    async def get(headers: dict[str, str]) -> httpx.Response:
        transport = httpx.ASGITransport(app=app, client=("192.0.2.7", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://rackwatch") as http:
            return await http.get("/api/v1/status", headers=headers)

    refused = asyncio.run(get({}))
    assert refused.status_code == 401 and "another machine" in refused.json()["detail"]
    assert asyncio.run(get(tokens.header("read"))).status_code == 200


def test_without_a_token_store_control_is_refused(
    filled: Filled, tokens: Tokens, serve: Serve
) -> None:
    room = build_room(filled, tokens, serve, feed_steps=0, token_store=None)
    response = room.request("POST", "/api/v1/fans/mode", json={"entity": S01, "mode": "auto"})
    assert response.status_code == 401 and "checks no tokens" in response.json()["detail"]
    assert room.request("GET", "/api/v1/fans", None).status_code == 200  # loopback reads


def test_a_broken_token_file_is_a_503_that_says_what_to_do(
    filled: Filled, tokens: Tokens, serve: Serve, tmp_path: Path
) -> None:
    broken = tmp_path / "tokens.json"
    broken.write_text("{not json")
    room = build_room(filled, tokens, serve, feed_steps=0, token_store=TokenStore(broken))
    response = room.request("POST", "/api/v1/fans/mode", json={"entity": S01, "mode": "auto"})
    assert response.status_code == 503 and "fix or delete it" in response.json()["detail"]


# --- WebSocket -------------------------------------------------------------------------------


def _ws_url(room: Room, query: str = "") -> str:
    return room.server.ws_url + query


def test_closed_websocket_refuses_a_client_without_a_token(closed_room: Room) -> None:
    before = closed_room.server.app.state.hub.n_clients
    with connect(_ws_url(closed_room)) as conn:
        message = json.loads(conn.recv(timeout=5))
        assert message["type"] == "error" and message["code"] == "UNAUTHORIZED"
        assert "bearer token" in message["message"]
        with pytest.raises(ConnectionClosed) as closed:
            conn.recv(timeout=5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
    assert closed_room.server.app.state.hub.n_clients == before


@pytest.mark.parametrize("how", ["query", "header"])
def test_closed_websocket_takes_a_read_token(closed_room: Room, how: str) -> None:
    secret = closed_room.tokens.read
    if how == "query":
        conn = connect(_ws_url(closed_room, f"?token={secret}"))
    else:
        conn = connect(
            _ws_url(closed_room), additional_headers={"Authorization": f"Bearer {secret}"}
        )
    with conn:
        assert json.loads(conn.recv(timeout=5))["type"] == "connection"


def test_websocket_refuses_a_revoked_token_even_on_loopback(shared_room: Room) -> None:
    with connect(_ws_url(shared_room, f"?token={shared_room.tokens.revoked}")) as conn:
        assert json.loads(conn.recv(timeout=5))["code"] == "UNAUTHORIZED"
        with pytest.raises(ConnectionClosed):
            conn.recv(timeout=5)


def test_open_websocket_needs_no_token_on_loopback(shared_room: Room) -> None:
    with connect(_ws_url(shared_room)) as conn:
        assert json.loads(conn.recv(timeout=5))["type"] == "connection"
