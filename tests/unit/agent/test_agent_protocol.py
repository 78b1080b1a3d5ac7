"""`rackwatch agent --listen`: the founding document's WebSocket protocol, served for real on a
free port of 127.0.0.1 and read by real WebSocket clients (`websockets`, the document's own
example clients in Python and, where Node.js has a WebSocket, JavaScript)."""

from __future__ import annotations

import ast
import asyncio
import contextlib
import datetime as dt
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import psutil
import pytest
import websockets
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

import rackwatch
from rackwatch.agent import protocol
from rackwatch.agent.protocol import (
    AlertMonitor,
    HostFacts,
    ProtocolServer,
    Thresholds,
    build_data,
    local_iso,
    parse_listen,
)
from rackwatch.sources.host.loop import Collection, CollectionLoop, entities_of
from rackwatch.sources.host.system import HostCollector
from rackwatch.sources.readings import InventoryItem, Reading

RECV_S = 3.0
DOC_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}$")
"""The document's format: `2025-01-03T10:15:30.123456` (local time, no offset)."""
GIB = 2**30
HERE = Path(__file__).parent


# ---------------------------------------------------------------------- helpers


def run(scenario: Callable[[], Any]) -> None:
    asyncio.run(scenario())


@contextlib.asynccontextmanager
async def serving(**kwargs: Any) -> AsyncIterator[ProtocolServer]:
    server = ProtocolServer("127.0.0.1", 0, **kwargs)
    await server.start()
    try:
        yield server
    finally:
        await server.close()


async def recv_json(ws: ClientConnection) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), RECV_S))
    return message


async def connected(server: ProtocolServer, **kwargs: Any) -> ClientConnection:
    """A client past its `connection` message."""
    ws = await connect(server.url, **kwargs)
    assert (await recv_json(ws))["type"] == "connection"
    return ws


async def until(condition: Callable[[], bool], timeout_s: float = RECV_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def host_readings(
    *,
    memory: float = 0.5,
    disk: float = 0.5,
    disk_free: float = 50.0 * GIB,
    cores: int = 2,
    host: str = "host/h",
) -> list[Reading]:
    total = 16.0 * GIB
    readings = [
        Reading(host, "memory_used_bytes", total * memory),
        Reading(host, "memory_available_bytes", total * (1 - memory)),
        Reading(host, "memory_utilization_ratio", memory),
        Reading(host, "cpu_utilization_ratio", 0.255),
        Reading(host, "cpu_frequency_hertz", 2.495e9),
        Reading(host, "process_count", 250.0),
        Reading(f"{host}/disk-root", "disk_used_bytes", disk_free * disk / (1 - disk)),
        Reading(f"{host}/disk-root", "disk_free_bytes", disk_free),
        Reading(f"{host}/disk-root", "disk_utilization_ratio", disk),
    ]
    readings += [Reading(f"{host}/cpu{k}", "cpu_utilization_ratio", 0.1) for k in range(cores)]
    return readings


HOST_ITEM: InventoryItem = {
    "entity": "host/h",
    "kind": "host",
    "hostname": "DESKTOP-ABC123",
    "os": "Windows",
    "os_release": "10",
    "os_version": "10.0.19045",
    "architecture": "AMD64",
    "cpu_model": "Intel64 Family 6 Model 142 Stepping 10",
    "physical_cores": 1,
    "logical_cores": 2,
    "max_frequency_hertz": 3.7e9,
    "memory_total_bytes": 16 * GIB,
    "boot_time_ms": 1_735_718_400_000,
    "python_version": "3.11.5",
}


def collection(ts_ms: int = 1_735_899_330_123, **kwargs: Any) -> Collection:
    return Collection(ts_ms, host_readings(**kwargs))


# ---------------------------------------------------------------------- pure parts


def test_listen_addresses_and_thresholds_are_checked() -> None:
    assert parse_listen("127.0.0.1:8080") == ("127.0.0.1", 8080)
    assert parse_listen("[::1]") == ("::1", 8765)
    assert parse_listen("::1") == ("::1", 8765)  # a bare IPv6 address: the default port
    assert parse_listen("host:") == ("host", 8765)
    for bad in ("host:99999", "[::1", "[::1]8765", "host:http", "host:-1", "host:٣"):
        with pytest.raises(ValueError, match="HOST:PORT"):
            parse_listen(bad)
    with pytest.raises(ValueError, match="warning <= critical"):
        Thresholds(memory_warning=95, memory_critical=90)
    with pytest.raises(ValueError, match="cooldown"):
        Thresholds(cooldown_s=-1)


def test_the_gpu_section_from_gpu_readings_and_inventory() -> None:
    readings = [
        *host_readings(),
        Reading("host/h/gpu0", "gpu_utilization_ratio", 0.45),
        Reading("host/h/gpu0", "gpu_memory_used_bytes", 5 * GIB),
        Reading("host/h/gpu0", "gpu_memory_free_bytes", 5 * GIB),
        Reading("host/h/gpu0", "gpu_memory_utilization_ratio", 0.5),
        Reading("host/h/gpu0", "gpu_temperature_celsius", 65.0),
        Reading("host/h/gpu0", "gpu_power_watts", 220.5),
        Reading("host/h/gpu0", "gpu_power_limit_watts", 350.0),
        Reading("host/h/gpu0", "gpu_fan_ratio", 0.3),
        # a second board: no power reading, and its utilisation answered nothing (NaN)
        Reading("host/h/gpu1", "gpu_memory_used_bytes", 0.0),
        Reading("host/h/gpu1", "gpu_memory_free_bytes", 80 * GIB),
        Reading("host/h/gpu1", "gpu_utilization_ratio", float("nan")),
    ]
    gpu_items: list[InventoryItem] = [
        {
            "entity": f"host/h/gpu{k}",
            "kind": "gpu",
            "index": k,
            "name": name,
            "uuid": f"GPU-{k}",
            "memory_total_bytes": total,
            "power_limit_default_watts": 350.0,
            "driver_version": "537.58",
            "cuda_version": "12.2",
            "backend": "nvml",
        }
        for k, name, total in ((1, "NVIDIA H200", 80 * GIB), (0, "NVIDIA GeForce RTX 3080", None))
    ]
    data = build_data(entities_of(readings), HostFacts([HOST_ITEM, *gpu_items]), "host/h")
    assert data["gpu"] == {
        "count": 2,
        "gpus": [
            {
                "id": 0,
                "name": "NVIDIA GeForce RTX 3080",
                "driver_version": "537.58",
                "memory_total": 10 * GIB,  # no total in the inventory: used + free
                "memory_used": 5 * GIB,
                "memory_free": 5 * GIB,
                "gpu_usage_percent": 45.0,
                "temperature": 65.0,
                "power_draw": 220.5,
                "power_limit": 350.0,
            },
            {
                "id": 1,
                "name": "NVIDIA H200",
                "driver_version": "537.58",
                "memory_total": 80 * GIB,
                "memory_used": 0,
                "memory_free": 80 * GIB,
                "gpu_usage_percent": None,
                "temperature": None,
                "power_draw": None,
                "power_limit": None,
            },
        ],
    }
    assert all(isinstance(g["memory_total"], int) for g in data["gpu"]["gpus"])
    # a host without GPUs has no gpu section at all ("si disponible")
    assert "gpu" not in build_data(entities_of(host_readings()), HostFacts([HOST_ITEM]), "host/h")


def test_the_sections_follow_the_document_field_by_field() -> None:
    data = build_data(
        entities_of(host_readings(memory=0.5, disk=0.5)), HostFacts([HOST_ITEM]), "host/h"
    )
    assert list(data) == ["memory", "processor", "disk", "system"]
    assert data["memory"] == {
        "total": 17179869184,
        "available": 8589934592,
        "used": 8589934592,
        "percentage": 50.0,
    }
    assert data["processor"] == {
        "usage_percent": 25.5,
        "core_count": 1,
        "logical_count": 2,
        "frequency_current": 2495.0,
        "frequency_max": 3700.0,
        "per_core_usage": [10.0, 10.0],
    }
    assert data["disk"] == {
        "total": 100 * GIB,
        "used": 50 * GIB,
        "free": 50 * GIB,
        "percentage": 50.0,
        "path": "/",
    }
    boot = dt.datetime.fromtimestamp(1_735_718_400).isoformat(timespec="seconds")
    assert data["system"] == {
        "os_name": "Windows",
        "os_version": "10.0.19045",
        "os_release": "10",
        "architecture": "AMD64",
        "machine": "AMD64",
        "processor": "Intel64 Family 6 Model 142 Stepping 10",
        "hostname": "DESKTOP-ABC123",
        "python_version": "3.11.5",
        "processes": 250,
        "boot_time": boot,
    }


def test_alerts_fire_at_the_thresholds_with_a_cooldown_per_component_and_level() -> None:
    now = [0.0]
    monitor = AlertMonitor(Thresholds(), clock=lambda: now[0])

    def check(memory: float, disk: float = 50.0, free_gb: float = 100.0) -> list[tuple[Any, ...]]:
        data = {
            "memory": {"percentage": memory},
            "disk": {"percentage": disk, "free": int(free_gb * GIB), "path": "/"},
        }
        alerts = monitor.check(data, "2025-01-03T10:15:30.123456")
        return [(a["component"], a["metric"], a["level"], a["value"]) for a in alerts]

    assert check(79.9) == []
    assert check(80.0) == [("memory", "usage_percent", "WARNING", 80.0)]  # at the threshold
    now[0] = 10.0
    assert check(85.0) == []  # the same alert within 300 s
    assert check(90.5) == [("memory", "usage_percent", "CRITICAL", 90.5)]  # another level
    now[0] = 299.9
    assert check(85.0) == []
    now[0] = 300.0
    assert check(85.0) == [("memory", "usage_percent", "WARNING", 85.0)]
    assert check(10.0, disk=85.0) == [("disk", "usage_percent", "WARNING", 85.0)]
    assert check(10.0, disk=96.2, free_gb=0.5) == [
        ("disk", "usage_percent", "CRITICAL", 96.2),
        ("disk", "free_gb", "CRITICAL", 0.5),
    ]
    assert monitor.n_suppressed == 2
    custom = AlertMonitor(Thresholds(memory_warning=50, memory_critical=60, disk_min_free_gb=0))
    alerts = custom.check({"memory": {"percentage": 55.0}, "disk": {"free": 0}}, "t")
    assert [(a["threshold"], a["message"]) for a in alerts] == [
        (50.0, "High memory usage: 55.0% (threshold: 50.0%)")
    ]


# ---------------------------------------------------------------------- over the wire


def test_a_client_gets_the_connection_message_first() -> None:
    async def scenario() -> None:
        async with serving() as server, connect(server.url) as ws:
            message = await recv_json(ws)
            assert message["type"] == "connection" and message["status"] == "connected"
            assert DOC_TIMESTAMP.match(message["timestamp"])
            sent = dt.datetime.fromisoformat(message["timestamp"])
            assert abs((sent - dt.datetime.now()).total_seconds()) < 60  # local time

    run(scenario)


def test_every_client_gets_monitoring_data_from_the_real_host_without_subscribing() -> None:
    collector = HostCollector("protocol-test")
    inventory = collector.inventory()
    time.sleep(0.2)  # a CPU interval long enough for every core to count ticks
    readings = collector.collect()
    ts_ms = time.time_ns() // 1_000_000

    async def scenario() -> None:
        async with serving() as server:
            first, second = await connected(server), await connected(server)
            server.set_inventory(inventory)
            server.publish(Collection(ts_ms, readings))
            messages = [await recv_json(first), await recv_json(second)]
            await first.close()
            await second.close()
        assert messages[0] == messages[1]
        check_real_host(messages[0], ts_ms)

    run(scenario)


def check_real_host(message: dict[str, Any], ts_ms: int) -> None:
    assert message["type"] == "monitoring_data"
    assert set(message) <= {"type", "timestamp", "data", "alerts"}  # alerts: only if any
    assert message["timestamp"] == local_iso(ts_ms) and DOC_TIMESTAMP.match(message["timestamp"])
    data = message["data"]
    assert list(data) == ["memory", "processor", "disk", "system"]  # no GPU collector here

    memory, vm = data["memory"], psutil.virtual_memory()
    assert list(memory) == ["total", "available", "used", "percentage"]
    assert memory["total"] == vm.total and memory["used"] + memory["available"] == vm.total
    assert all(isinstance(memory[k], int) for k in ("total", "available", "used"))
    assert abs(memory["percentage"] - vm.percent) < 5.0

    processor = data["processor"]
    assert list(processor) == [
        "usage_percent",
        "core_count",
        "logical_count",
        "frequency_current",
        "frequency_max",
        "per_core_usage",
    ]
    assert processor["logical_count"] == psutil.cpu_count()
    assert processor["core_count"] == psutil.cpu_count(logical=False)
    assert 0.0 <= processor["usage_percent"] <= 100.0
    assert len(processor["per_core_usage"]) == psutil.cpu_count()
    assert all(0.0 <= u <= 100.0 for u in processor["per_core_usage"])
    freq = psutil.cpu_freq()
    if freq is not None and freq.current > 0:
        assert 1.0 <= processor["frequency_current"] <= 20_000.0  # MHz, not Hz

    disk, usage = data["disk"], psutil.disk_usage("/")
    assert list(disk) == ["total", "used", "free", "percentage", "path"]
    assert disk["path"] == "/" and disk["total"] == usage.total
    assert abs(disk["percentage"] - usage.percent) < 1.0
    assert abs(disk["free"] - usage.free) < 0.05 * usage.total

    system = data["system"]
    assert list(system) == [
        "os_name",
        "os_version",
        "os_release",
        "architecture",
        "machine",
        "processor",
        "hostname",
        "python_version",
        "processes",
        "boot_time",
    ]
    assert system["os_name"] == platform.system()
    assert system["os_release"] == platform.release()
    assert system["machine"] == platform.machine()
    assert system["hostname"] == socket.gethostname()
    assert system["python_version"] == platform.python_version()
    assert 0.5 < system["processes"] / len(psutil.pids()) < 2.0
    boot = dt.datetime.fromisoformat(system["boot_time"])
    assert abs(boot.timestamp() - psutil.boot_time()) <= 1.0


def test_alerts_ride_in_the_monitoring_message_as_the_document_shows() -> None:
    now = [1000.0]

    async def scenario() -> None:
        async with serving(alert_clock=lambda: now[0]) as server:
            server.set_inventory([HOST_ITEM])
            ws = await connected(server)
            server.publish(collection(memory=0.5))
            assert "alerts" not in await recv_json(ws)  # optional: only when one fired
            server.publish(collection(memory=0.855, disk=0.962))
            message = await recv_json(ws)
            assert message["alerts"] == [
                {
                    "timestamp": message["timestamp"],
                    "component": "memory",
                    "metric": "usage_percent",
                    "value": 85.5,
                    "threshold": 80.0,
                    "level": "WARNING",
                    "message": "High memory usage: 85.5% (threshold: 80.0%)",
                },
                {
                    "timestamp": message["timestamp"],
                    "component": "disk",
                    "metric": "usage_percent",
                    "value": 96.2,
                    "threshold": 95.0,
                    "level": "CRITICAL",
                    "message": "Critical disk usage: 96.2% (threshold: 95.0%)",
                },
            ]
            now[0] += 60
            server.publish(collection(memory=0.855, disk=0.962))
            assert "alerts" not in await recv_json(ws)  # the cooldown
            late = await connected(server)  # gets the newest data at once, not old alerts
            latest = await recv_json(late)
            assert latest["type"] == "monitoring_data" and "alerts" not in latest
            await ws.close()
            await late.close()

    run(scenario)


def test_each_collection_is_encoded_once_whatever_the_number_of_clients(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []
    encode = protocol.dumps

    def counting(message: dict[str, Any]) -> str:
        calls.append(message["type"])
        return encode(message)

    async def scenario() -> None:
        async with serving() as server:
            clients = [await connected(server) for _ in range(4)]
            monkeypatch.setattr(protocol, "dumps", counting)
            server.publish(collection())
            texts = [await asyncio.wait_for(ws.recv(), RECV_S) for ws in clients]
            for ws in clients:
                await ws.close()
        assert calls == ["monitoring_data"]
        assert len(set(texts)) == 1 and isinstance(texts[0], str)  # a text frame

    run(scenario)


def test_ping_get_status_subscribe_and_unsubscribe() -> None:
    async def scenario() -> None:
        async with serving() as server:
            ws, other = await connected(server), await connected(server)
            await ws.send(json.dumps({"type": "ping"}))
            pong = await recv_json(ws)
            assert list(pong) == ["type", "timestamp"] and pong["type"] == "pong"
            assert DOC_TIMESTAMP.match(pong["timestamp"])

            await ws.send('{"type": "get_status"}')
            status = await recv_json(ws)
            assert status["type"] == "status"
            assert status["server_version"] == rackwatch.__version__
            assert status["connected_clients"] == 2
            assert status["server_start_time"] == server.started_at.isoformat(
                timespec="microseconds"
            )
            assert DOC_TIMESTAMP.match(status["server_start_time"])
            assert status["message"] == "Server is running"

            await ws.send('{"type": "unsubscribe"}')
            assert (await recv_json(ws))["type"] == "unsubscribed"
            server.publish(collection())  # queued, in order, before any later reply
            await ws.send('{"type": "ping"}')
            assert (await recv_json(ws))["type"] == "pong"  # no monitoring_data in between
            assert (await recv_json(other))["type"] == "monitoring_data"  # others still get it

            await ws.send('{"type": "subscribe"}')
            assert (await recv_json(ws))["type"] == "subscribed"
            server.publish(collection())
            assert (await recv_json(ws))["type"] == "monitoring_data"
            await ws.close()
            await other.close()

    run(scenario)


BAD_MESSAGES: list[str | bytes] = [
    "not json",
    "",
    "[1, 2]",
    '"ping"',
    "null",
    '{"kind": "ping"}',
    '{"type": 5}',
    '{"type": "shutdown"}',
    '{"type": "' + "x" * 10_000 + '"}',
    "[" * 100_000 + "]" * 100_000,  # 200 KB: over the 64 KiB a control message may have
    '{"a":' * 5_000 + "1" + "}" * 5_000,  # 30 KB, nested 5,000 deep
    b"\xff\xfe not UTF-8",
    b'{"type": "ping"} trailing',
]


def test_malformed_messages_get_invalid_format_and_the_connection_stays_open() -> None:
    async def scenario() -> None:
        async with serving() as server:
            ws = await connected(server)
            for bad in BAD_MESSAGES:
                started = time.perf_counter()
                await ws.send(bad)
                reply = await recv_json(ws)
                assert reply["type"] == "error" and reply["code"] == "INVALID_FORMAT", bad[:40]
                assert reply["message"].startswith("Invalid message format")
                assert len(reply["message"]) < 300  # an unknown type is not echoed in full
                assert time.perf_counter() - started < 1.0
            await ws.send('{"type": "ping"}')
            assert (await recv_json(ws))["type"] == "pong"  # still open
            assert server.n_invalid == len(BAD_MESSAGES)
            # over 1 MiB is not read at all: the connection is closed (1009, too big)
            await ws.send("x" * (2**20 + 1))
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), RECV_S)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
            await until(lambda: server.n_clients == 0)

    run(scenario)


def test_only_the_root_path_is_served() -> None:
    async def scenario() -> None:
        async with serving() as server:
            with pytest.raises(InvalidStatus) as refused:
                await connect(server.url + "ws")
            assert refused.value.response.status_code == 404
            async with connect(server.url + "?client=1") as ws:  # a query string is fine
                assert (await recv_json(ws))["type"] == "connection"

    run(scenario)


def test_clients_beyond_the_limit_are_refused_with_a_reason() -> None:
    async def scenario() -> None:
        async with serving(max_clients=2) as server:
            first, second = await connected(server), await connected(server)
            async with connect(server.url) as third:
                refusal = await recv_json(third)
                assert refusal["type"] == "error" and refusal["code"] == "TOO_MANY_CLIENTS"
                with pytest.raises(ConnectionClosed) as closed:
                    await asyncio.wait_for(third.recv(), RECV_S)
                assert closed.value.rcvd is not None
                assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (
                    1013,
                    "server at capacity",
                )
            assert server.n_clients == 2 and server.hub.n_refused == 1
            await first.close()
            await until(lambda: server.n_clients == 1)
            fourth = await connected(server)  # room again
            assert server.n_clients == 2
            await second.close()
            await fourth.close()

    run(scenario)


def test_a_client_that_stops_reading_is_dropped_while_another_keeps_receiving() -> None:
    async def scenario() -> None:
        async with serving(send_timeout_s=0.5) as server:
            good = await connected(server)
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window
            sock.connect(("127.0.0.1", server.port))
            sock.setblocking(False)
            stuck = await connect(server.url, sock=sock, max_queue=1)  # then never reads
            await until(lambda: server.n_clients == 2)

            received: list[str] = []

            async def read_good() -> None:
                async for raw in good:
                    received.append(json.loads(raw)["timestamp"])

            reader = asyncio.create_task(read_good())
            published: list[str] = []
            ts_ms = 1_735_899_330_000
            try:
                deadline = time.monotonic() + 4.0
                while server.hub.n_too_slow == 0 and time.monotonic() < deadline:
                    ts_ms += 1000
                    server.publish(collection(ts_ms, cores=256))  # about 2 KB each
                    published.append(local_iso(ts_ms))
                    await asyncio.sleep(0.01)
                assert server.hub.n_too_slow == 1
                await until(lambda: server.n_clients == 1)
                for _ in range(3):  # the other client still gets everything
                    ts_ms += 1000
                    server.publish(collection(ts_ms, cores=256))
                    published.append(local_iso(ts_ms))
                await until(lambda: len(received) >= len(published))
                assert received == published
            finally:
                reader.cancel()
                stuck.transport.abort()
                await good.close()

    run(scenario)


def test_attached_to_the_collection_loop_it_serves_each_collection() -> None:
    class Stub:
        def collect(self) -> list[Reading]:
            return host_readings(memory=0.42)

        def inventory(self) -> list[InventoryItem]:
            return [HOST_ITEM]

    async def scenario() -> None:
        loop = CollectionLoop([Stub()], interval_s=0.1)
        async with serving() as server:
            server.attach(loop)
            ws = await connected(server)
            task = asyncio.create_task(loop.run())
            try:
                message = await recv_json(ws)
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await ws.close()
        assert message["type"] == "monitoring_data"
        assert message["data"]["memory"]["percentage"] == 42.0
        assert message["data"]["system"]["hostname"] == "DESKTOP-ABC123"  # the inventory

    run(scenario)


# ---------------------------------------------------------------------- the document's clients


async def _lines_until(
    proc: asyncio.subprocess.Process, done: Callable[[list[str]], bool]
) -> list[str]:
    assert proc.stdout is not None
    lines: list[str] = []
    while not done(lines):
        line = await asyncio.wait_for(proc.stdout.readline(), RECV_S)
        assert line, "the client ended early"
        lines.append(line.decode("utf-8").rstrip("\n"))
    return lines


def test_the_documents_python_client_runs_unchanged() -> None:
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}

    async def scenario() -> None:
        async with serving() as server:
            server.set_inventory([HOST_ITEM])
            server.publish(collection(memory=0.5))
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-u",
                str(HERE / "seed_client.py"),
                server.url,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=env,
            )
            try:
                lines = await _lines_until(proc, lambda got: len(got) == 2)
                server.publish(collection(memory=0.93))
                lines += await _lines_until(proc, lambda got: len(got) == 1)
            finally:
                proc.kill()
                await proc.communicate()
        assert all(line.startswith("Reçu: ") for line in lines), lines
        messages = [ast.literal_eval(line.removeprefix("Reçu: ")) for line in lines]
        assert [m["type"] for m in messages] == ["connection", "monitoring_data", "monitoring_data"]
        assert messages[1]["data"]["memory"]["percentage"] == 50.0
        assert [a["level"] for a in messages[2]["alerts"]] == ["CRITICAL"]

    run(scenario)


# The document's JavaScript (section 5, "Connexion au Serveur" then "Gestion des Alertes côté
# Client"), line by line. Adapted: the URL (from the command line), the functions a page would
# define (updateMetrics, show*Notification: here they print, and exit after the second
# monitoring_data), and the emoji, which the document's text shows garbled.
JS_CLIENT = """
const ws = new WebSocket(process.argv[2]);  // adapted: was 'ws://localhost:8765'
let seen = 0;  // adapted: from here to ws.onopen, what a page would define
const updateMetrics = (data) => {
    console.log(JSON.stringify({ metrics: data.memory.percentage }));
    if (++seen === 2) { setTimeout(() => process.exit(0), 0); }  // once this message is done
};
const showCriticalNotification = (alert) => console.log(JSON.stringify({ critical: alert }));
const showWarningNotification = (alert) => console.log(JSON.stringify({ warning: alert }));

ws.onopen = () => {
    console.log('Connecté au serveur de monitoring');
};

ws.onmessage = (event) => {
    const data = JSON.parse(event.data);
    console.log('Données reçues:', data);
};

ws.onerror = (error) => {
    console.error('Erreur WebSocket:', error);
};

ws.onmessage = (event) => {
    const message = JSON.parse(event.data);

    if (message.type === 'monitoring_data') {
        // Traiter les données de monitoring
        updateMetrics(message.data);

        // Vérifier et traiter les alertes
        if (message.alerts && message.alerts.length > 0) {
            message.alerts.forEach(alert => {
                if (alert.level === 'CRITICAL') {
                    console.error(`🚨 CRITICAL: ${alert.message}`);
                    // Afficher une notification urgente
                    showCriticalNotification(alert);
                } else if (alert.level === 'WARNING') {
                    console.warn(`⚠️ WARNING: ${alert.message}`);
                    // Afficher un avertissement
                    showWarningNotification(alert);
                }
            });
        }
    }
};
"""


def _node_with_websocket() -> str | None:
    node = shutil.which("node")
    if node is None:
        return None
    probe = subprocess.run(
        [
            node,
            "--experimental-websocket",
            "-e",
            "process.exit(typeof WebSocket === 'function' ? 0 : 1)",
        ],
        capture_output=True,
        timeout=30,
        check=False,
    )
    return node if probe.returncode == 0 else None


def test_the_documents_javascript_client_runs_unchanged(tmp_path: Path) -> None:
    node = _node_with_websocket()
    if node is None:
        pytest.skip("no Node.js with a WebSocket here")
    script = tmp_path / "client.js"
    script.write_text(JS_CLIENT, encoding="utf-8")

    async def scenario() -> tuple[bytes, bytes, int | None]:
        async with serving() as server:
            server.publish(collection(memory=0.5))  # the newest, sent on connect
            proc = await asyncio.create_subprocess_exec(
                node,
                "--experimental-websocket",
                "--no-warnings",
                str(script),
                server.url,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            try:
                await _lines_until(proc, lambda got: any('"metrics"' in line for line in got))
                server.publish(collection(memory=0.85))
                out, err = await asyncio.wait_for(proc.communicate(), RECV_S)
            finally:
                if proc.returncode is None:
                    proc.kill()
                    await proc.communicate()
            return out, err, proc.returncode

    out, err, returncode = asyncio.run(scenario())
    assert returncode == 0, err.decode()
    warnings = [
        json.loads(line)["warning"] for line in out.decode().splitlines() if "warning" in line
    ]
    assert [w["message"] for w in warnings] == ["High memory usage: 85.0% (threshold: 80.0%)"]
    assert "⚠️ WARNING: High memory usage: 85.0%" in err.decode()
    assert "Erreur" not in err.decode()


def test_websockets_is_the_current_asyncio_implementation() -> None:
    # the document's client calls websockets.connect: the asyncio client since websockets 14
    assert websockets.connect is connect
