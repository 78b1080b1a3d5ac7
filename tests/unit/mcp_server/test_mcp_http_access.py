"""`/mcp` on the real API app (in-process, its lifespan running), through the SDK's client:
the API's access rules at the door (loopback reads open, a remote caller needs a token, an
ingest token is refused), the caller's token passed on to each tool's API call, and the
control tools listed only to a control token."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from fastapi import FastAPI
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from rackwatch.api import ApiContext, create_app
from rackwatch.app import inventory_records
from rackwatch.bus import MemoryBus
from rackwatch.engine.live import LiveState
from rackwatch.mcp_server.control_tools import CONTROL_TOOLS
from rackwatch.mcp_server.http import mount
from rackwatch.model import SeriesRegistry
from rackwatch.store.duckdb import DuckDBStore
from rackwatch.tokens import TokenStore
from rackwatch.twin import Twin

START_MS = 1_767_225_600_000
MCP_URL = "http://127.0.0.1:8000/mcp"
LOOPBACK = ("127.0.0.1", 50000)
REMOTE = ("10.0.0.7", 50000)


@pytest.fixture
def room(tmp_path: Path) -> Iterator[tuple[FastAPI, dict[str, str]]]:
    """The API app of a room with the small twin's inventory, `/mcp` mounted, and a token of
    each scope."""
    registry = SeriesRegistry()
    store = DuckDBStore(tmp_path / "store", registry)
    store.upsert_inventory(inventory_records(Twin.from_scenario("small", start_ms=START_MS)))
    tokens = TokenStore(tmp_path / "tokens.json")
    secrets = {
        scope: tokens.create(scope, name=f"{scope} test")[0]
        for scope in ("read", "control", "ingest")
    }
    ctx = ApiContext(
        store=store, registry=registry, live=LiveState(0), bus=MemoryBus(), tokens=tokens
    )
    app = create_app(ctx)
    mount(app, host="127.0.0.1")
    yield app, secrets
    store.close()


def http_client(app: FastAPI, address: tuple[str, int], token: str | None) -> httpx2.AsyncClient:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    transport = httpx2.ASGITransport(app, client=address)
    return httpx2.AsyncClient(transport=transport, headers=headers)


def running(app: FastAPI, job: Callable[[], Awaitable[Any]]) -> Any:
    """`job()` while the app's lifespan runs (the MCP session manager with it)."""

    async def run() -> Any:
        async with app.router.lifespan_context(app):
            return await job()

    return asyncio.run(asyncio.wait_for(run(), 30))


def with_mcp(
    app: FastAPI,
    address: tuple[str, int],
    token: str | None,
    job: Callable[[Client], Awaitable[Any]],
) -> Any:
    async def session() -> Any:
        # the SDK leaves an http_client it is given open: this block closes it
        async with (
            http_client(app, address, token) as http,
            Client(streamable_http_client(MCP_URL, http_client=http)) as client,
        ):
            return await job(client)

    return running(app, session)


async def tool_names(client: Client) -> set[str]:
    return {tool.name for tool in (await client.list_tools()).tools}


async def post_initialize(
    app: FastAPI, address: tuple[str, int], token: str | None, **headers: str
) -> httpx2.Response:
    """A raw `initialize` POST to /mcp: what a client's first request meets."""
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "test", "version": "0"},
        },
    }
    send = {"Accept": "application/json, text/event-stream", **headers}
    async with http_client(app, address, token) as client:
        return await client.post(MCP_URL, json=body, headers=send)


def test_a_loopback_client_reads_without_a_token_and_sees_no_control_tools(
    room: tuple[FastAPI, dict[str, str]],
) -> None:
    app, _ = room

    async def job(client: Client) -> tuple[set[str], Any]:
        devices = await client.call_tool("list_devices", {"kind": "server"})
        assert not devices.is_error, devices
        return await tool_names(client), json.loads(devices.content[0].text)  # type: ignore[union-attr]

    names, devices = with_mcp(app, LOOPBACK, None, job)
    assert not names & CONTROL_TOOLS
    assert [d["path"] for d in devices["devices"]] == [f"c01/r01/s0{i}" for i in range(1, 6)]


def test_a_remote_client_without_a_token_is_refused_at_the_door(
    room: tuple[FastAPI, dict[str, str]],
) -> None:
    app, _ = room
    response = running(app, lambda: post_initialize(app, REMOTE, None))
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert "reads from another machine need a bearer token" in response.json()["detail"]


def test_an_ingest_or_unknown_token_is_refused_at_the_door(
    room: tuple[FastAPI, dict[str, str]],
) -> None:
    app, secrets = room

    async def both() -> tuple[httpx2.Response, httpx2.Response]:
        ingest = await post_initialize(app, LOOPBACK, secrets["ingest"])
        return ingest, await post_initialize(app, LOOPBACK, "rw_not-a-token")

    ingest, unknown = running(app, both)
    assert ingest.status_code == 403
    assert "this route needs 'read'" in ingest.json()["detail"]
    assert unknown.status_code == 401
    assert "unknown or revoked token" in unknown.json()["detail"]


def test_a_read_token_reads_and_a_control_call_with_it_is_refused(
    room: tuple[FastAPI, dict[str, str]],
) -> None:
    app, secrets = room

    async def job(client: Client) -> tuple[set[str], Any, Any]:
        devices = await client.call_tool("list_devices", {})
        control = await client.call_tool("set_maintenance", {"entity": "c01/r01/s01", "on": True})
        return await tool_names(client), devices, control

    names, devices, control = with_mcp(app, REMOTE, secrets["read"], job)
    assert not names & CONTROL_TOOLS
    assert not devices.is_error
    assert control.is_error
    assert "refused by rackwatch (403)" in control.content[0].text
    assert "'read' scope; this route needs 'control'" in control.content[0].text


def test_a_control_token_sees_the_control_tools_and_its_calls_pass_the_check(
    room: tuple[FastAPI, dict[str, str]],
) -> None:
    app, secrets = room

    async def job(client: Client) -> tuple[set[str], Any]:
        call = await client.call_tool("set_maintenance", {"entity": "c01/r01/s01", "on": True})
        return await tool_names(client), call

    names, call = with_mcp(app, REMOTE, secrets["control"], job)
    assert names >= CONTROL_TOOLS
    # past the token check: this app runs no alert engine, so the route itself answers 503
    assert call.is_error
    assert "cannot answer this now: alerting is not running" in call.content[0].text


def test_a_host_name_other_than_this_machine_is_refused_on_loopback(
    room: tuple[FastAPI, dict[str, str]],
) -> None:
    app, _ = room

    async def both() -> tuple[httpx2.Response, httpx2.Response]:
        rebound = await post_initialize(app, LOOPBACK, None, Host="attacker.example:8000")
        return rebound, await post_initialize(app, LOOPBACK, None)

    rebound, local = running(app, both)
    assert rebound.status_code == 421
    assert local.status_code == 200


def test_mcp_answers_503_while_the_app_is_not_running(
    room: tuple[FastAPI, dict[str, str]],
) -> None:
    app, _ = room

    async def post() -> httpx2.Response:
        async with http_client(app, LOOPBACK, None) as client:
            return await client.post(MCP_URL, json={})

    response = asyncio.run(post())
    assert response.status_code == 503
    assert "MCP is not running" in response.json()["detail"]


def test_mcp_offers_no_stream_to_a_get(room: tuple[FastAPI, dict[str, str]]) -> None:
    app, _ = room

    async def get() -> httpx2.Response:
        async with http_client(app, LOOPBACK, None) as client:
            return await client.get(MCP_URL, headers={"Accept": "text/event-stream"})

    response = running(app, get)
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
