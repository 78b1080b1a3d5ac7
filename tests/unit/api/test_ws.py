"""WebSocket /ws through real uvicorn and the `websockets` client: every message type, bad
input, filters, unsubscribe, the client limit and a stuck client."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from api_support import END_MS, START_MS, Filled, LiveApp, make_ctx
from fastapi import FastAPI
from room_support import make_tokens
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from rackwatch.api import ApiContext, create_app
from rackwatch.api import ws as ws_module
from rackwatch.api.fanout import Filter
from rackwatch.bus import MemoryBus
from rackwatch.engine.live import LiveState
from rackwatch.model import Batch, SeriesRegistry
from rackwatch.store.duckdb import DuckDBStore
from rackwatch.tokens import TokenStore

Serve = Callable[[FastAPI], LiveApp]


@pytest.fixture
def server(filled: Filled, serve: Serve) -> LiveApp:
    return serve(create_app(make_ctx(filled, ws_client_limit=3)))


@pytest.fixture
def ws(server: LiveApp) -> Iterator[ClientConnection]:
    with connect(server.ws_url) as conn:
        assert recv(conn)["type"] == "connection"
        yield conn


@pytest.fixture(scope="module")
def shared_ws(filled: Filled) -> Iterator[ClientConnection]:
    """One connection for the tests that only talk (no data, no client counts)."""
    server = LiveApp(create_app(make_ctx(filled)))
    try:
        with connect(server.ws_url) as conn:
            assert recv(conn)["type"] == "connection"
            yield conn
    finally:
        server.close()


def recv(conn: ClientConnection, timeout: float = 5) -> Any:
    return json.loads(conn.recv(timeout=timeout))


def ask(conn: ClientConnection, message: Any) -> Any:
    conn.send(message if isinstance(message, str | bytes) else json.dumps(message))
    return recv(conn)


def publish(server: LiveApp, filled: Filled, ts_ms: int, values: dict[tuple[str, str], float]):
    ids = [filled.registry.get(*key) for key in values]
    batch = Batch.of([ts_ms] * len(ids), ids, list(values.values()))
    bus = server.app.state.ctx.bus
    server.call(lambda: bus.publish("telemetry.twin", batch))


S1_POWER = ("c01/r01/s01", "power_watts")
S2_POWER = ("c01/r01/s02", "power_watts")
S1_CPU = ("c01/r01/s01", "cpu_temperature_celsius")


def test_connection_message(server: LiveApp) -> None:
    with connect(server.ws_url) as conn:
        hello = recv(conn)
    assert hello["type"] == "connection" and hello["status"] == "connected"
    assert hello["client_id"] and hello["timestamp"].endswith("Z")


def test_ping_pong(shared_ws: ClientConnection) -> None:
    pong = ask(shared_ws, {"type": "ping"})
    assert pong["type"] == "pong" and pong["timestamp"].endswith("Z")


def test_get_status(ws: ClientConnection, server: LiveApp) -> None:
    status = ask(ws, {"type": "get_status"})
    ctx: ApiContext = server.app.state.ctx
    assert status == {
        "type": "status",
        "connected_clients": 1,
        "server_start_time": status["server_start_time"],
        "version": ctx.version,
        "message": "Server is running",
    }
    assert status["server_start_time"].endswith("Z")


def test_subscribe_sends_the_newest_values_then_only_the_filtered_updates(
    ws: ClientConnection, server: LiveApp, filled: Filled
) -> None:
    ack = ask(ws, {"type": "subscribe", "entity": "c01/r01/s01", "metrics": ["power_watts"]})
    assert ack == {
        "type": "subscribed",
        "filters": {"entity": "c01/r01/s01", "metrics": ["power_watts"], "max_rate_hz": None},
    }
    snapshot = recv(ws)
    assert snapshot["type"] == "monitoring_data" and snapshot["ts_ms"] == END_MS - 5000
    assert list(snapshot["data"]) == ["c01/r01/s01"]
    assert list(snapshot["data"]["c01/r01/s01"]) == ["power_watts"]
    publish(server, filled, END_MS, {S1_POWER: 321.0, S2_POWER: 123.0, S1_CPU: 55.5})
    update = recv(ws)
    assert update == {
        "type": "monitoring_data",
        "timestamp": "2026-01-01T03:00:00.000Z",
        "ts_ms": END_MS,
        "data": {"c01/r01/s01": {"power_watts": 321.0}},
        "alerts": [],
    }


def test_each_client_gets_its_own_filter(server: LiveApp, filled: Filled) -> None:
    with connect(server.ws_url) as a, connect(server.ws_url) as b:
        for conn, entity in ((a, "c01/r01/s01"), (b, "c01/r01/s0[2]")):
            recv(conn)
            ask(conn, {"type": "subscribe", "entity": entity, "metrics": "power_watts"})
            recv(conn)  # snapshot
        publish(server, filled, END_MS, {S1_POWER: 1.0, S2_POWER: 2.0})
        assert recv(a)["data"] == {"c01/r01/s01": {"power_watts": 1.0}}
        assert recv(b)["data"] == {"c01/r01/s02": {"power_watts": 2.0}}


def test_a_null_reading_is_sent_as_null(
    ws: ClientConnection, server: LiveApp, filled: Filled
) -> None:
    ask(ws, {"type": "subscribe", "entity": "c01/r01/s02", "metrics": ["power_watts"]})
    recv(ws)
    publish(server, filled, END_MS, {S2_POWER: float("nan")})
    assert recv(ws)["data"] == {"c01/r01/s02": {"power_watts": None}}


def test_unsubscribe_stops_the_data(ws: ClientConnection, server: LiveApp, filled: Filled) -> None:
    ask(ws, {"type": "subscribe", "entity": "c01/r01/s01"})
    recv(ws)
    assert ask(ws, {"type": "unsubscribe"}) == {"type": "unsubscribed"}
    publish(server, filled, END_MS, {S1_POWER: 1.0})
    assert ask(ws, {"type": "ping"})["type"] == "pong"  # and no monitoring_data before it


def test_max_rate_merges_updates_into_the_newest(
    ws: ClientConnection, server: LiveApp, filled: Filled
) -> None:
    ask(ws, {"type": "subscribe", "entity": "c01/r01/s01", "max_rate_hz": 2})
    recv(ws)  # snapshot
    for i in range(10):
        publish(server, filled, END_MS + i * 5000, {S1_POWER: float(i), S1_CPU: 40.0 + i})
    first = recv(ws)
    assert first["data"]["c01/r01/s01"]["power_watts"] == 0.0  # sent at once
    began = time.monotonic()
    second = recv(ws)  # the other nine, merged, half a second later
    assert time.monotonic() - began > 0.3
    assert second["data"]["c01/r01/s01"] == {"power_watts": 9.0, "cpu_temperature_celsius": 49.0}
    with pytest.raises(TimeoutError):
        ws.recv(timeout=0.7)


ERRORS = [
    ("not json", "INVALID_FORMAT"),
    ("[1, 2]", "INVALID_FORMAT"),
    ('{"kind": "ping"}', "INVALID_FORMAT"),
    ('{"type": 7}', "INVALID_FORMAT"),
    (b"\xff\xfe", "INVALID_FORMAT"),
    ('{"type": "dance"}', "UNKNOWN_TYPE"),
    ('{"type": "subscribe", "entity": "c01//s01"}', "INVALID_FILTER"),
    ('{"type": "subscribe", "entity": 5}', "INVALID_FILTER"),
    ('{"type": "subscribe", "metrics": [1, 2]}', "INVALID_FILTER"),
    ('{"type": "subscribe", "metrics": ["no_such_metric"]}', "INVALID_FILTER"),
    ('{"type": "subscribe", "metrics": ["bad name!"]}', "INVALID_FILTER"),
    ('{"type": "subscribe", "max_rate_hz": -1}', "INVALID_FILTER"),
    ('{"type": "subscribe", "max_rate_hz": "fast"}', "INVALID_FILTER"),
    ('{"type": "subscribe", "max_rate_hz": 1000}', "INVALID_FILTER"),
    ('{"type": "subscribe", "server": "s01"}', "INVALID_FILTER"),
    ("[" * 10_000, "INVALID_FORMAT"),  # deeper than the parser goes
    ("[" * 2_000 + "]" * 2_000, "INVALID_FORMAT"),  # well formed, as deep
    ("[" * 60_000, "INVALID_FORMAT"),  # longer than a message may be
    ("[" * 100_000, "INVALID_FORMAT"),  # the nesting that closed the socket with 1006
    ('{"type": "ping", "pad": "' + "x" * 20_000 + '"}', "INVALID_FORMAT"),
]


@pytest.mark.parametrize(("message", "code"), ERRORS)
def test_bad_messages_get_an_error_and_the_connection_stays(
    shared_ws: ClientConnection, message: str | bytes, code: str
) -> None:
    reply = ask(shared_ws, message)
    assert reply["type"] == "error" and reply["code"] == code and reply["message"]
    assert ask(shared_ws, {"type": "ping"})["type"] == "pong"


def test_client_limit_refuses_with_a_clear_error(server: LiveApp) -> None:
    with connect(server.ws_url) as a, connect(server.ws_url) as b, connect(server.ws_url) as c:
        for conn in (a, b, c):
            recv(conn)
        with connect(server.ws_url) as refused:
            reply = recv(refused)
            assert reply["code"] == "TOO_MANY_CLIENTS" and "try again" in reply["message"]
            with pytest.raises(ConnectionClosed) as closed:
                refused.recv(timeout=5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
        assert ask(a, {"type": "get_status"})["connected_clients"] == 3
    with connect(server.ws_url) as again:  # room again once they left
        assert recv(again)["type"] == "connection"


@contextlib.contextmanager
def stuck_client(port: int, rcvbuf: int | None = 4096) -> Iterator[socket.socket]:
    """A WebSocket client that subscribes to everything and then never reads: a raw socket,
    by default with a tiny receive window, so the server's writes back up after a few
    messages (`rcvbuf=None`: the OS's own buffers, which take megabytes)."""
    sock = socket.socket()
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)  # before connect
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    response = b""
    while b"\r\n\r\n" not in response:  # the response only, not the frames after it
        response += sock.recv(1)
    assert response.startswith(b"HTTP/1.1 101")
    payload = b'{"type": "subscribe"}'
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    sock.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + masked)
    try:
        yield sock
    finally:
        sock.close()


def test_a_stuck_client_is_dropped_without_delaying_a_fast_one(
    tmp_path: Path, serve: Serve
) -> None:
    registry = SeriesRegistry()
    ids = np.asarray(
        [
            registry.intern(f"c01/r{i // 40:02d}/s{i % 40:02d}/sensor", "power_watts")
            for i in range(8000)
        ],
        dtype=np.int32,
    )
    store = DuckDBStore(tmp_path, registry)
    try:
        ctx = ApiContext(
            store=store,
            registry=registry,
            live=LiveState(),
            bus=MemoryBus(),
            ws_send_timeout_s=0.5,
        )
        server = serve(create_app(ctx))
        hub = server.app.state.hub
        port = int(server.url.rsplit(":", 1)[1][:-1])
        with stuck_client(port), connect(server.ws_url) as fast:
            recv(fast)
            ask(fast, {"type": "subscribe"})
            while hub.n_clients < 2 or len(hub.groups[Filter()].clients) < 2:
                time.sleep(0.01)
            delays = []
            deadline = time.monotonic() + 60  # generous: the machine may be busy
            k = dropped_at = 0
            while not dropped_at or k < dropped_at + 10:  # and ten more once it is gone
                assert time.monotonic() < deadline, "the stuck client was never dropped"
                if not dropped_at and hub.n_clients == 1:
                    dropped_at = k
                ts = START_MS + k * 5000
                batch = Batch.of(np.full(len(ids), ts), ids, np.full(len(ids), float(k)))
                began = time.monotonic()
                server.call(lambda b=batch: ctx.bus.publish("telemetry.twin", b))
                while (message := recv(fast))["ts_ms"] != ts:
                    pass
                delays.append(time.monotonic() - began)
                assert len(message["data"]) == len(ids)
                k += 1
                time.sleep(0.02)
            assert hub.n_too_slow == 1 and hub.n_clients == 1
            assert max(delays) < 0.4, f"the fast client waited {max(delays):.3f} s"
    finally:
        store.close()


def close_code_after_reading_all(sock: socket.socket, timeout: float = 10) -> int:
    """Read the frames a stuck client left unread, up to the server's close frame: its code."""
    sock.settimeout(timeout)
    buf = bytearray()

    def need(n: int) -> None:
        while len(buf) < n:
            chunk = sock.recv(1 << 16)
            if not chunk:
                raise ConnectionError("closed without a close frame")
            buf.extend(chunk)

    while True:
        need(2)
        opcode, size, head = buf[0] & 0x0F, buf[1] & 0x7F, 2
        if size >= 126:
            head = 4 if size == 126 else 10
            need(head)
            size = int.from_bytes(buf[2:head], "big")
        need(head + size)
        payload = bytes(buf[head : head + size])
        del buf[: head + size]
        if opcode == 0x8:
            return int.from_bytes(payload[:2], "big")


def test_a_client_that_stops_reading_is_closed_with_1008_though_the_os_takes_the_writes(
    tmp_path: Path, serve: Serve
) -> None:
    """The OS buffers megabytes for a socket whose peer does not read, so every send completes
    at once; the server must still see that the client takes nothing and close it, without
    delaying a client that reads."""
    registry = SeriesRegistry()
    ids = np.asarray(
        [registry.intern(f"c01/r01/s{i:03d}", "power_watts") for i in range(200)],
        dtype=np.int32,
    )  # about 9 KB a message: 6 s of them fit in the OS's buffers many times over
    store = DuckDBStore(tmp_path, registry)
    try:
        ctx = ApiContext(
            store=store, registry=registry, live=LiveState(), bus=MemoryBus(), ws_send_timeout_s=0.5
        )
        server = serve(create_app(ctx))
        hub = server.app.state.hub
        port = int(server.url.rsplit(":", 1)[1][:-1])
        with stuck_client(port, rcvbuf=None) as stuck, connect(server.ws_url) as fast:
            recv(fast)
            ask(fast, {"type": "subscribe"})
            while hub.n_clients < 2 or len(hub.groups[Filter()].clients) < 2:
                time.sleep(0.01)
            began = time.monotonic()
            dropped_after, dropped_at = None, 0
            for k in range(120):  # 20 a second for 6 s, or ten more once it is closed
                if dropped_after is not None and k >= dropped_at + 10:
                    break
                ts = START_MS + k * 5000
                batch = Batch.of(np.full(len(ids), ts), ids, np.full(len(ids), float(k)))
                server.call(lambda b=batch: ctx.bus.publish("telemetry.twin", b))
                while recv(fast)["ts_ms"] != ts:
                    pass
                if dropped_after is None and hub.n_clients == 1:
                    dropped_after, dropped_at = time.monotonic() - began, k
                time.sleep(0.05)
            assert dropped_after is not None, "the client that does not read was never closed"
            assert dropped_after < 3.0, f"closed only after {dropped_after:.1f} s"
            assert hub.n_too_slow == 1 and hub.n_clients == 1
            assert close_code_after_reading_all(stuck) == 1008
    finally:
        store.close()


def test_revoking_a_token_closes_the_sockets_it_opened(
    filled: Filled, serve: Serve, tmp_path: Path
) -> None:
    tokens = make_tokens(tmp_path)
    server = serve(create_app(make_ctx(filled, tokens=tokens.store)))
    doomed, info = tokens.store.create("read", name="to revoke")
    with (
        connect(server.ws_url + f"?token={doomed}") as revoked,
        connect(server.ws_url + f"?token={tokens.read}") as kept,
        connect(server.ws_url) as open_read,  # loopback, no token
    ):
        for conn in (revoked, kept, open_read):
            assert recv(conn)["type"] == "connection"
            assert ask(conn, {"type": "subscribe"})["type"] == "subscribed"
            assert recv(conn)["type"] == "monitoring_data"  # the newest values
        # as `rackwatch token revoke` does, from another process: another store, same file
        assert TokenStore(tokens.store.path).revoke(info.id)
        began = time.monotonic()
        while (message := recv(revoked, timeout=ws_module.TOKEN_RECHECK_SECONDS + 3))[
            "type"
        ] != "error":
            pass
        assert message["code"] == "UNAUTHORIZED" and info.id in message["message"]
        with pytest.raises(ConnectionClosed) as closed:
            revoked.recv(timeout=5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
        assert time.monotonic() - began < ws_module.TOKEN_RECHECK_SECONDS + 2
        for conn in (kept, open_read):
            assert ask(conn, {"type": "ping"})["type"] == "pong"
