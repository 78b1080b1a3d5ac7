"""The MCP tools through the SDK's own client (in-process), over a stub of the REST API: the
routes whose shapes other parts own (energy, reports, recommendations) are passed on with
the caller's arguments, a missing route is a clear tool error, a refusal says how to get a
token, the control tools are listed only with a control token, and bad arguments are tool
errors, never calls."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from mcp import Client
from mcp_types import CallToolResult

from rackwatch.mcp_server.control_tools import CONTROL_TOOLS
from rackwatch.mcp_server.links import RemoteLink
from rackwatch.mcp_server.planning_tools import MAX_REPORT_CHARS
from rackwatch.mcp_server.server import build_server

URL = "http://127.0.0.1:8000/"
LONG_REPORT = "# Daily energy\n" + "x" * (MAX_REPORT_CHARS + 5000)


def stub_api(calls: list[tuple[str, str, dict[str, Any]]], *, features: bool = True) -> FastAPI:
    """The API's routes the tests need (`features`: energy, reports, recommendations too),
    each call recorded as (method, path, query or body); any other /api path is the real
    API's 404."""
    app = FastAPI()

    async def record(request: Request) -> dict[str, Any]:
        body = await request.body()
        given = json.loads(body) if body else dict(request.query_params.multi_items())
        calls.append((request.method, request.url.path, given))
        return given

    if features:

        @app.get("/api/v1/energy")
        async def energy(request: Request) -> dict[str, Any]:
            return {"query": await record(request), "total_kwh": 12.5}

        @app.get("/api/v1/reports")
        async def reports(request: Request) -> list[dict[str, str]]:
            await record(request)
            return [{"name": "energy-daily"}, {"name": "availability"}]

        @app.get("/api/v1/reports/{name}")
        async def report(request: Request, name: str) -> Any:
            await record(request)
            if name == "energy-daily":
                return PlainTextResponse(LONG_REPORT)
            if name == "availability":
                return {"name": name, "availability_ratio": 0.99912345678}
            return JSONResponse({"detail": f"no report named {name!r}"}, 404)

        @app.get("/api/v1/recommend")
        async def recommend(request: Request) -> dict[str, Any]:
            return {"ranked": [{"server": "c01/r01/s02"}], "query": await record(request)}

        @app.get("/api/v1/recommend/placement")
        async def placement(request: Request) -> dict[str, Any]:
            return {"placement": "c01/r01/s04", "query": await record(request)}

    @app.post("/api/v1/fans/level")
    async def fan_level(request: Request) -> Any:
        if request.headers.get("authorization") != "Bearer rw_control":
            detail = "this route needs a bearer token with the 'control' scope"
            return JSONResponse({"detail": detail}, 401)
        return {**await record(request), "mode": "manual"}

    @app.api_route("/api/{path:path}", methods=["GET", "POST", "DELETE"])
    async def no_such_route(path: str) -> JSONResponse:
        return JSONResponse({"detail": f"no API route '/api/{path}': see /docs"}, 404)

    return app


def with_client(
    link: RemoteLink, job: Callable[[Client], Awaitable[Any]], timeout_s: float = 30
) -> Any:
    async def run() -> Any:
        async with Client(build_server(link)) as client:
            return await job(client)

    return asyncio.run(asyncio.wait_for(run(), timeout_s))


def stub_link(app: FastAPI, token: str | None = None, *, is_control: bool = False) -> RemoteLink:
    return RemoteLink(
        lambda: URL,
        "/data",
        token,
        is_control=is_control,
        transport=httpx.ASGITransport(app),
    )


def call(link: RemoteLink, tool: str, arguments: dict[str, Any]) -> CallToolResult:
    result: CallToolResult = with_client(link, lambda c: c.call_tool(tool, arguments))
    return result


def text(result: CallToolResult) -> str:
    item = result.content[0]
    assert item.type == "text"
    return item.text


def answer(result: CallToolResult) -> Any:
    assert not result.is_error, text(result)
    return json.loads(text(result))


def test_get_energy_passes_the_range_and_group_on() -> None:
    calls: list[tuple[str, str, dict[str, Any]]] = []
    got = answer(call(stub_link(stub_api(calls)), "get_energy", {"since": "-7d", "group": "rack"}))
    assert got["total_kwh"] == 12.5
    assert calls == [("GET", "/api/v1/energy", {"from": "-7d", "to": "now", "group": "rack"})]


def test_reports_are_listed_and_read_as_json_or_bounded_text() -> None:
    calls: list[tuple[str, str, dict[str, Any]]] = []
    link = stub_link(stub_api(calls))
    listed = answer(call(link, "list_reports", {}))
    assert [r["name"] for r in listed["result"]] == ["energy-daily", "availability"]
    assert (
        answer(call(link, "get_report", {"name": "availability"}))["availability_ratio"] == 0.999123
    )  # rounded to 6 significant digits
    long = answer(call(link, "get_report", {"name": "energy-daily"}))
    assert long["text"] == LONG_REPORT[:MAX_REPORT_CHARS]
    assert "cut" in long["note"]
    unknown = call(link, "get_report", {"name": "nope"})
    assert unknown.is_error and "no report named 'nope'" in text(unknown)


def test_recommend_server_asks_for_a_placement_only_with_needs() -> None:
    calls: list[tuple[str, str, dict[str, Any]]] = []
    link = stub_link(stub_api(calls))
    assert answer(call(link, "recommend_server", {}))["ranked"][0]["server"] == "c01/r01/s02"
    needs = {"gpus": 2, "gpu_memory_gb": 40, "cores": 16}
    assert answer(call(link, "recommend_server", needs))["placement"] == "c01/r01/s04"
    assert calls == [
        ("GET", "/api/v1/recommend", {}),
        (
            "GET",
            "/api/v1/recommend/placement",
            {"gpus": "2", "gpu_memory_gb": "40.0", "cores": "16"},
        ),
    ]


def test_a_route_the_server_lacks_is_a_clear_tool_error() -> None:
    link = stub_link(stub_api([], features=False))
    for tool, arguments, route in [
        ("get_energy", {}, "/api/v1/energy"),
        ("list_reports", {}, "/api/v1/reports"),
        ("get_report", {"name": "energy-daily"}, "/api/v1/reports/energy-daily"),
        ("recommend_server", {"gpus": 1}, "/api/v1/recommend/placement"),
    ]:
        result = call(link, tool, arguments)
        assert result.is_error
        assert f"has no {route} route" in text(result)
        assert "update rackwatch" in text(result)


def test_control_tools_are_listed_only_with_a_control_token() -> None:
    app = stub_api([])

    async def names(client: Client) -> set[str]:
        return {tool.name for tool in (await client.list_tools()).tools}

    reader = with_client(stub_link(app, "rw_read"), names)
    controller = with_client(stub_link(app, "rw_control", is_control=True), names)
    assert not reader & CONTROL_TOOLS
    assert {"list_devices", "get_state", "get_history", "explain_health"} <= reader
    assert controller == reader | CONTROL_TOOLS


def test_a_control_call_without_a_control_token_is_refused_with_what_to_do() -> None:
    calls: list[tuple[str, str, dict[str, Any]]] = []
    app = stub_api(calls)
    arguments = {"entity": "c01/r01/s01/fan1", "level": "high"}
    refused = call(stub_link(app, "rw_read"), "set_fan_level", arguments)
    assert refused.is_error
    assert "refused by rackwatch (401)" in text(refused)
    assert "--token" in text(refused) and "RACKWATCH_TOKEN" in text(refused)
    done = answer(call(stub_link(app, "rw_control", is_control=True), "set_fan_level", arguments))
    assert done == {"entity": "c01/r01/s01/fan1", "level": "high", "mode": "manual"}
    assert calls == [("POST", "/api/v1/fans/level", arguments)]


def test_bad_arguments_are_tool_errors_and_call_nothing() -> None:
    calls: list[tuple[str, str, dict[str, Any]]] = []
    link = stub_link(stub_api(calls), "rw_control", is_control=True)
    for tool, arguments, says in [
        ("set_fan_level", {"entity": "c01/r01/s01/fan1", "level": 7}, "less than or equal to 3"),
        ("set_fan_level", {"entity": "c01/r01/s01/fan1", "level": "turbo"}, "'off', 'low'"),
        ("set_fan_level", {"entity": "c01/*/s01", "level": 1}, "is a pattern"),
        ("set_maintenance", {"entity": "c01/../x", "on": False}, "cannot be . or .."),
        ("get_energy", {"since": "yesterday"}, "since 'yesterday' is not a time"),
        ("get_report", {"name": "../etc"}, "should match pattern"),
        ("recommend_server", {"gpus": 0}, "greater than or equal to 1"),
        ("get_state", {"entity": "c01/[r01"}, "unclosed ["),
        ("get_state", {"entiti": "c01"}, "get_state does not take 'entiti'; it takes: entity"),
        ("inject_fault", {"kind": "meteor", "entity": "c01"}, "unknown fault kind 'meteor'"),
    ]:
        result = call(link, tool, arguments)
        assert result.is_error, (tool, arguments)
        assert says in text(result), text(result)
        assert "errors.pydantic.dev" not in text(result)
    assert calls == []


def test_no_server_running_says_to_start_one() -> None:
    link = RemoteLink(lambda: None, "/srv/rackwatch-data")
    result = call(link, "list_devices", {})
    assert result.is_error
    assert "no `rackwatch run` is serving the data directory /srv/rackwatch-data" in text(result)
    assert "rackwatch run --data-dir /srv/rackwatch-data" in text(result)


def test_a_server_that_does_not_answer_is_a_tool_error() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    link = RemoteLink(lambda: URL, "/data", transport=httpx.MockTransport(refuse))
    result = call(link, "list_alerts", {})
    assert result.is_error
    assert f"rackwatch at {URL} does not answer" in text(result)
