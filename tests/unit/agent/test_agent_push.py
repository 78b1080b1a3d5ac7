"""The agent's push against the real ingest route: everything arrives once and in order
across an outage, a refused collection does not block the others, a refused token waits."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from rackwatch.agent.buffer import DiskBuffer
from rackwatch.agent.push import Pusher, PushRefused
from rackwatch.api import ApiContext, create_app
from rackwatch.engine.live import LiveState
from rackwatch.model import Batch, SeriesRegistry
from rackwatch.store import base
from rackwatch.store.duckdb import DuckDBStore
from rackwatch.tokens import TokenStore

NOW_MS = 1_800_000_000_000


class Bus:
    def __init__(self) -> None:
        self.batches: list[Batch] = []

    async def publish(self, _subject: str, message: Any) -> None:
        self.batches.append(message)


class Server(httpx.AsyncBaseTransport):
    """The real app in-process; `down` makes every request fail to connect, `lose_answers`
    lets the app take a request and the connection drop before its answer arrives."""

    def __init__(self, tmp: Path) -> None:
        self.registry = SeriesRegistry()
        self.store = DuckDBStore(tmp / "rackwatch.duckdb", self.registry)
        self.bus = Bus()
        self.tokens = TokenStore(tmp / "tokens.json")
        self.token, _ = self.tokens.create("ingest", name="agent")
        app = create_app(
            ApiContext(
                store=self.store,
                registry=self.registry,
                live=LiveState(),
                bus=self.bus,  # type: ignore[arg-type]
                feeds_live=False,
                tokens=self.tokens,
                clock_ms=lambda: NOW_MS,
            )
        )
        self.app_transport = httpx.ASGITransport(app=app, client=("10.1.1.1", 40000))
        self.down = False
        self.lose_answers = False
        self.requests = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        response = await self.app_transport.handle_async_request(request)
        if self.lose_answers:
            raise httpx.ReadError("connection reset", request=request)
        return response

    def received(self) -> list[tuple[int, str, str, float]]:
        return [
            (int(t), *self.registry.key(int(s)), float(v))
            for b in self.bus.batches
            for t, s, v in zip(b.ts, b.series, b.value, strict=True)
        ]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    s = Server(tmp_path / "server")
    yield s
    s.store.close()


def pusher_for(server: Server, buffer: DiskBuffer, token: str | None = None) -> Pusher:
    client = httpx.AsyncClient(transport=server, base_url="http://rw")
    return Pusher("http://rw", token or server.token, buffer, client=client)


def collection(i: int) -> dict[str, Any]:
    return {"ts_ms": NOW_MS - 3_600_000 + i * 5000, "entities": {"host/a": {"uptime_seconds": i}}}


async def drain(pusher: Pusher) -> None:
    while await pusher.push_once():
        pass


def test_an_outage_loses_nothing_and_duplicates_nothing(server: Server, tmp_path: Path) -> None:
    buffer = DiskBuffer(tmp_path / "buffer")
    pusher = pusher_for(server, buffer)

    async def scenario() -> None:
        for i in range(3):
            buffer.append(collection(i))
        await drain(pusher)
        server.down = True
        for i in range(3, 10):
            buffer.append(collection(i))
            with pytest.raises(httpx.ConnectError):
                await pusher.push_once()
        server.down = False
        await drain(pusher)
        await pusher.aclose()

    asyncio.run(scenario())
    values = [v for _t, _e, _m, v in server.received()]
    assert values == [float(i) for i in range(10)]  # every one, once, in order
    assert buffer.pending(10, 1000) is None and pusher.stats.sent == 10


def test_a_push_whose_answer_was_lost_is_sent_again_and_stored_once(
    server: Server, tmp_path: Path
) -> None:
    async def first_run() -> None:
        buffer = DiskBuffer(tmp_path / "buffer")
        for i in range(4):
            buffer.append(collection(i))
        pusher = pusher_for(server, buffer)
        server.lose_answers = True  # the server takes them; the agent never hears so
        with pytest.raises(httpx.ReadError):
            await pusher.push_once()
        await pusher.aclose()

    async def second_run() -> None:  # the agent was restarted meanwhile
        server.lose_answers = False
        buffer = DiskBuffer(tmp_path / "buffer")
        buffer.append(collection(4))
        pusher = pusher_for(server, buffer)
        await drain(pusher)
        await pusher.aclose()

    asyncio.run(first_run())
    asyncio.run(second_run())
    for batch in server.bus.batches:  # what the store writer does with them
        server.store.write(batch)
    server.store.flush()
    result = server.store.query(base.Query(NOW_MS - 7_200_000, NOW_MS, entity="host/**"))
    ((_key, rows),) = list(result)
    assert rows["value"].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert server.store.stats().n_duplicates == 4  # the four sent twice, kept once


def test_one_refused_collection_is_dropped_and_the_others_go_through(
    server: Server, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    buffer = DiskBuffer(tmp_path / "buffer")
    for i in range(6):
        buffer.append(collection(i))
    bad = {"ts_ms": NOW_MS, "entities": {"c01/r01/s01": {"power_watts": 1.0}}}  # not host/
    buffer.append(bad)
    for i in range(7, 12):
        buffer.append(collection(i))
    pusher = pusher_for(server, buffer)
    with caplog.at_level(logging.ERROR, logger="rackwatch.agent.push"):
        asyncio.run(drain(pusher))
    assert [v for *_, v in server.received()] == [float(i) for i in range(12) if i != 6]
    assert pusher.stats.rejected == 1 and "not under host/" in caplog.text
    assert buffer.pending(100, 10_000) is None


def test_a_refused_token_says_what_to_do_and_keeps_the_data(server: Server, tmp_path: Path) -> None:
    buffer = DiskBuffer(tmp_path / "buffer")
    buffer.append(collection(0))
    pusher = pusher_for(server, buffer, token="rw_not_a_token")
    with pytest.raises(PushRefused, match="token create --scope ingest"):
        asyncio.run(pusher.push_once())
    assert buffer.n_pending == 1 and server.bus.batches == []


def test_the_inventory_goes_once_and_again_when_it_changes(server: Server, tmp_path: Path) -> None:
    buffer = DiskBuffer(tmp_path / "buffer")
    pusher = pusher_for(server, buffer)
    host = {"entity": "host/a", "kind": "host", "os": "Linux", "cores": 2}

    async def scenario() -> int:
        pusher.set_inventory([host])
        await drain(pusher)
        pusher.set_inventory([host])  # the same: nothing to send
        before = server.requests
        await drain(pusher)
        assert server.requests == before
        pusher.set_inventory([{**host, "cores": 4}])
        await drain(pusher)
        return server.requests - before

    assert asyncio.run(scenario()) == 1
    (record,) = server.store.inventory()
    assert record.path == "host/a" and record.attributes == {"os": "Linux", "cores": 4}
