"""The MCP server as an assistant meets it, with the SDK's own client: `rackwatch run` (the
fan-fail twin at 20x) in a subprocess, reached over its streamable HTTP endpoint `/mcp` and
through `rackwatch mcp --data-dir D` over stdio. Read tools give the twin's real answers,
control tools are refused without a control token and work with one, bad arguments are tool
errors (issue 12)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult

from rackwatch.mcp_server.control_tools import CONTROL_TOOLS

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RACKWATCH = [sys.executable, "-m", "rackwatch"]
SERVERS = [f"c01/r01/s0{i}" for i in range(1, 6)]
START_TIMEOUT_S = 60.0
SESSION_TIMEOUT_S = 90.0


@dataclass
class Server:
    url: str
    data_dir: Path
    control_token: str
    read_token: str

    @property
    def mcp_url(self) -> str:
        return f"{self.url}/mcp"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=2) as response:
        return json.load(response)


def wait_for(what: str, check: Callable[[], Any], timeout_s: float = START_TIMEOUT_S) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError, KeyError):
            found = check()
            if found:
                return found
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`rackwatch run` on a free loopback port, once its servers have telemetry."""
    root = tmp_path_factory.mktemp("mcp")
    data_dir, port = root / "data", free_port()
    url = f"http://127.0.0.1:{port}"
    command = [*RACKWATCH, "run", "--scenario", "fan-fail", "--speed", "20", "--no-host"]
    command += ["--port", str(port), "--data-dir", str(data_dir)]
    with (root / "server.log").open("wb") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        live = f"{url}/api/v1/live?entity=c01/r01/*&metric=cpu_temperature_celsius"
        wait_for("the servers' telemetry", lambda: len(get_json(live)["entities"]) == 5)
        created = subprocess.run(
            [*RACKWATCH, "token", "create", "--scope", "read", "--data-dir", str(data_dir)],
            capture_output=True,
            text=True,
            check=True,
        )
        read_token = next(w for w in created.stdout.split() if w.startswith("rw_"))
        control_token = (data_dir / "control-token.txt").read_text().strip()
        yield Server(url, data_dir, control_token, read_token)
    finally:
        proc.send_signal(signal.SIGINT)  # by PID: the process this fixture started
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


Connect = Callable[[], contextlib.AbstractAsyncContextManager[Client]]
"""Opens one MCP session (`http`, `stdio`)."""


def http(server: Server, token: str | None = None) -> Connect:
    @contextlib.asynccontextmanager
    async def connect() -> AsyncIterator[Client]:
        if token is None:  # no token: a loopback client's open reads
            async with Client(server.mcp_url) as client:
                yield client
            return
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx2.AsyncClient(headers=headers) as http_client:  # the SDK leaves it open
            transport = streamable_http_client(server.mcp_url, http_client=http_client)
            async with Client(transport) as client:
                yield client

    return connect


def stdio(server: Server | Path, token: str | None = None) -> Connect:
    data_dir = server.data_dir if isinstance(server, Server) else server
    env = {} if token is None else {"RACKWATCH_TOKEN": token}
    args = ["-m", "rackwatch", "mcp", "--data-dir", str(data_dir)]
    return lambda: Client(StdioServerParameters(command=sys.executable, args=args, env=env))


def session(connect: Connect, job: Callable[[Client], Awaitable[Any]]) -> Any:
    async def run() -> Any:
        async with connect() as client:
            return await job(client)

    return asyncio.run(asyncio.wait_for(run(), SESSION_TIMEOUT_S))


def text(result: CallToolResult) -> str:
    item = result.content[0]
    assert item.type == "text"
    return item.text


def answer(result: CallToolResult) -> Any:
    assert not result.is_error, text(result)
    return json.loads(text(result))


async def tool_names(client: Client) -> set[str]:
    return {tool.name for tool in (await client.list_tools()).tools}


async def read_everything(client: Client) -> dict[str, Any]:
    """Every read tool that the twin answers, once."""
    arguments: dict[str, dict[str, Any]] = {
        "list_devices": {"kind": "server"},
        "get_state": {"entity": "c01/r01/s01", "metric": ["cpu_temperature_celsius"]},
        "get_history": {
            "entity": "c01/r01/s01",
            "metric": ["cpu_temperature_celsius"],
            "since": "-10m",
        },
        "list_alerts": {"state": "all"},
        "list_incidents": {},
        "explain_health": {"entity": "c01/r01/s01"},
    }
    found: dict[str, Any] = {"tools": await tool_names(client)}
    for tool, args in arguments.items():
        found[tool] = answer(await client.call_tool(tool, args))
    return found


def check_read_answers(found: dict[str, Any]) -> None:
    assert not found["tools"] & CONTROL_TOOLS
    assert {"list_devices", "get_state", "get_history", "explain_health"} <= found["tools"]
    assert [d["path"] for d in found["list_devices"]["devices"]] == SERVERS
    values = found["get_state"]["entities"]["c01/r01/s01"]["values"]
    assert 20.0 < values["cpu_temperature_celsius"] < 95.0
    assert found["get_state"]["units"] == {"cpu_temperature_celsius": "celsius"}
    (series,) = found["get_history"]["series"]
    assert series["metric"] == "cpu_temperature_celsius" and series["n_points"] > 0
    assert 20.0 < series["summary"]["min"] <= series["summary"]["max"] < 95.0
    assert isinstance(found["list_alerts"]["alerts"], list)
    assert isinstance(found["list_incidents"]["incidents"], list)
    assert 0.0 <= found["explain_health"]["score"] <= 100.0


def test_http_read_tools_answer_from_the_twin(server: Server) -> None:
    check_read_answers(session(http(server), read_everything))


def test_http_control_tools_need_a_control_token_and_then_drive_the_fans(server: Server) -> None:
    fan = "c01/r01/s02/fan1"
    set_low = {"entity": fan, "level": "low"}
    anonymous = session(http(server), lambda c: c.call_tool("set_fan_level", set_low))
    assert anonymous.is_error and "refused by rackwatch (401)" in text(anonymous)
    reader = session(
        http(server, server.read_token), lambda c: c.call_tool("set_fan_level", set_low)
    )
    assert reader.is_error and "refused by rackwatch (403)" in text(reader)

    async def drive(client: Client) -> tuple[set[str], Any, float, Any]:
        names = await tool_names(client)
        done = answer(await client.call_tool("set_fan_level", set_low))
        deadline = time.monotonic() + 30
        level = None
        while time.monotonic() < deadline:  # applied at the twin's next step (0.25 s at 20x)
            state = answer(
                await client.call_tool("get_state", {"entity": fan, "metric": ["fan_level"]})
            )
            level = state["entities"].get(fan, {}).get("values", {}).get("fan_level")
            if level == 1.0:
                break
            await asyncio.sleep(0.25)
        back = answer(await client.call_tool("set_fan_mode", {"entity": fan, "mode": "auto"}))
        return names, done, level, back

    names, done, level, back = session(http(server, server.control_token), drive)
    assert names >= CONTROL_TOOLS
    assert done == {"entity": fan, "level": 1, "mode": "manual"}
    assert level == 1.0
    assert back == {"entity": fan, "mode": "auto"}


def test_http_bad_arguments_are_tool_errors(server: Server) -> None:
    async def misuse(client: Client) -> list[CallToolResult]:
        return [
            await client.call_tool("set_fan_level", {"entity": "c01/r01/s01/fan1", "level": 7}),
            await client.call_tool("get_state", {"entity": "c01/r01/s01", "metrics": ["x"]}),
            await client.call_tool("get_history", {"entity": "**", "metric": ["*"]}),
            await client.call_tool("explain_health", {"entity": "c01/r09/s01"}),
        ]

    level, unknown, too_many, nowhere = session(http(server, server.control_token), misuse)
    assert level.is_error and "less than or equal to 3" in text(level)
    assert unknown.is_error and "does not take 'metrics'" in text(unknown)
    assert too_many.is_error and "get_history gives at most 12" in text(too_many)
    assert nowhere.is_error and "no health is known for c01/r09/s01" in text(nowhere)


def test_stdio_reads_through_the_running_server_and_refuses_control(server: Server) -> None:
    async def job(client: Client) -> tuple[dict[str, Any], CallToolResult]:
        found = await read_everything(client)
        refused = await client.call_tool("set_maintenance", {"entity": SERVERS[4], "on": True})
        return found, refused

    found, refused = session(stdio(server), job)
    check_read_answers(found)
    assert refused.is_error and "refused by rackwatch (401)" in text(refused)
    assert "RACKWATCH_TOKEN" in text(refused)


def test_stdio_with_a_control_token_sets_maintenance(server: Server) -> None:
    target = SERVERS[4]

    async def job(client: Client) -> tuple[set[str], Any, Any, Any]:
        names = await tool_names(client)
        started = answer(
            await client.call_tool(
                "set_maintenance", {"entity": target, "on": True, "reason": "mcp"}
            )
        )
        listed = answer(await client.call_tool("list_devices", {"entity": target}))
        ended = answer(await client.call_tool("set_maintenance", {"entity": target, "on": False}))
        return names, started, listed, ended

    names, started, listed, ended = session(stdio(server, server.control_token), job)
    assert names >= CONTROL_TOOLS
    assert started == {"entity": target, "state": "MAINTENANCE"}
    (device,) = listed["devices"]
    assert device["state"] == "MAINTENANCE"
    assert device["maintenance"]["reason"] == "mcp"
    assert "created by the first rackwatch run" in device["maintenance"]["by"]
    assert ended["entity"] == target and ended["state"] != "MAINTENANCE"


def test_stdio_refuses_a_token_the_data_directory_does_not_know(server: Server) -> None:
    done = subprocess.run(
        [*RACKWATCH, "mcp", "--data-dir", str(server.data_dir)],
        env={**os.environ, "RACKWATCH_TOKEN": "rw_not-a-token"},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stdout == ""  # stdout is the protocol's: messages go to stderr
    assert "the token is not one of" in done.stderr


def test_stdio_without_a_server_says_to_start_one(tmp_path: Path) -> None:
    result = session(stdio(tmp_path), lambda c: c.call_tool("list_devices", {}))
    assert result.is_error
    assert f"no `rackwatch run` is serving the data directory {tmp_path}" in text(result)
