"""POST /api/v1/ingest: agents' pushes into the pipeline; an `ingest` token writes under
`host/` only, bad input is a 4xx that changes nothing, a push sent twice is stored once."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from rackwatch.api import ApiContext, create_app
from rackwatch.api.routes import ingest
from rackwatch.api.routes.ingest import MAX_INGEST_BYTES
from rackwatch.api.schemas import MAX_INGEST_SAMPLES
from rackwatch.engine.live import LiveState
from rackwatch.model import Batch, SeriesRegistry
from rackwatch.store import base
from rackwatch.store.duckdb import DuckDBStore
from rackwatch.tokens import TokenStore

NOW_MS = 1_800_000_000_000


class Recorder:
    """The bus's telemetry as the pipeline would see it."""

    def __init__(self) -> None:
        self.batches: list[tuple[str, Batch]] = []

    async def publish(self, subject: str, message: Any) -> None:
        self.batches.append((subject, message))

    def subscribe(self, *_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError("the ingest route only publishes")


class Setup:
    def __init__(self, tmp: Path, **limits: Any) -> None:
        self.registry = SeriesRegistry()
        self.store = DuckDBStore(tmp / "rackwatch.duckdb", self.registry)
        self.bus = Recorder()
        tokens = TokenStore(tmp / "tokens.json")
        self.ingest, _ = tokens.create("ingest", name="agent")
        self.read, _ = tokens.create("read", name="dashboard")
        self.control, _ = tokens.create("control", name="ops")
        ctx = ApiContext(
            store=self.store,
            registry=self.registry,
            live=LiveState(),
            bus=self.bus,  # type: ignore[arg-type]
            feeds_live=False,
            tokens=tokens,
            clock_ms=lambda: NOW_MS,
            **limits,
        )
        self.app = create_app(ctx)

    def post(self, body: Any, token: str | None = None, **kwargs: Any) -> httpx.Response:
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        content = body if isinstance(body, bytes) else json.dumps(body).encode()

        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app, client=("127.0.0.1", 40000))
            async with httpx.AsyncClient(transport=transport, base_url="http://rw") as http:
                return await http.post(
                    "/api/v1/ingest",
                    content=content,
                    headers={**headers, "Content-Type": "application/json"},
                    **kwargs,
                )

        return asyncio.run(go())

    def published(self) -> list[tuple[str, str, int, float]]:
        rows = []
        for _subject, batch in self.bus.batches:
            for ts, sid, value in zip(batch.ts, batch.series, batch.value, strict=True):
                entity, metric = self.registry.key(int(sid))
                rows.append((entity, metric, int(ts), float(value)))
        return rows


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    s = Setup(tmp_path)
    yield s
    s.store.close()


def push(*collections: tuple[int, dict[str, dict[str, float | None]]], **extra: Any) -> Any:
    return {"batches": [{"ts_ms": ts, "entities": e} for ts, e in collections], **extra}


def test_a_push_reaches_the_bus_as_one_batch_with_its_inventory_in_the_store(
    setup: Setup,
) -> None:
    body = push(
        (NOW_MS - 5000, {"host/web1": {"cpu_utilization_ratio": 0.25, "load_average_1m": 1.5}}),
        (NOW_MS, {"host/web1": {"cpu_utilization_ratio": 0.5}, "host/web1/gpu0": {"x": None}}),
        inventory=[{"entity": "host/web1", "kind": "host", "attributes": {"os": "Linux"}}],
    )
    response = setup.post(body, setup.ingest)
    assert response.status_code == 202, response.text
    assert response.json() == {"accepted": 4, "batches": 2, "series_created": 3, "inventory": 1}
    assert [s for s, _ in setup.bus.batches] == ["telemetry.agent"]
    rows = setup.published()
    assert rows[:3] == [
        ("host/web1", "cpu_utilization_ratio", NOW_MS - 5000, 0.25),
        ("host/web1", "load_average_1m", NOW_MS - 5000, 1.5),
        ("host/web1", "cpu_utilization_ratio", NOW_MS, 0.5),
    ]
    assert rows[3][:3] == ("host/web1/gpu0", "x", NOW_MS) and np.isnan(rows[3][3])  # null: NaN
    assert {(r.path, r.kind) for r in setup.store.inventory()} == {("host/web1", "host")}


def test_a_push_sent_twice_is_stored_once(setup: Setup) -> None:
    body = push((NOW_MS, {"host/web1": {"cpu_utilization_ratio": 0.25}}))
    for _ in range(2):
        assert setup.post(body, setup.ingest).status_code == 202
    for _subject, batch in setup.bus.batches:  # what the store writer does with each
        setup.store.write(batch)
    setup.store.flush()
    result = setup.store.query(base.Query(NOW_MS - 1, NOW_MS + 1, entity="host/**"))
    assert len(result) == 1 and setup.store.stats().n_duplicates == 1


def test_pushes_arriving_together_go_on_the_bus_as_one_batch(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ingest, "COALESCE_S", 1.0)  # ample, even on a busy machine
    bodies = [push((NOW_MS, {f"host/web{i}": {"uptime_seconds": float(i)}})) for i in range(3)]

    async def go() -> list[int]:
        transport = httpx.ASGITransport(app=setup.app, client=("127.0.0.1", 40000))
        headers = {"Authorization": f"Bearer {setup.ingest}"}
        async with httpx.AsyncClient(transport=transport, base_url="http://rw") as http:
            answers = await asyncio.gather(
                *(http.post("/api/v1/ingest", json=body, headers=headers) for body in bodies)
            )
        return [answer.status_code for answer in answers]

    assert asyncio.run(go()) == [202, 202, 202]  # each answered once its batch is published
    assert [s for s, _ in setup.bus.batches] == ["telemetry.agent"]
    rows = setup.published()
    assert sorted(rows) == [(f"host/web{i}", "uptime_seconds", NOW_MS, float(i)) for i in range(3)]


@pytest.mark.parametrize(
    ("token_name", "status"), [(None, 401), ("read", 403), ("ingest", 202), ("control", 202)]
)
def test_only_an_ingest_or_control_token_may_push(
    setup: Setup, token_name: str | None, status: int
) -> None:
    token = None if token_name is None else getattr(setup, token_name)
    body = push((NOW_MS, {"host/web1": {"uptime_seconds": 10.0}}))
    assert setup.post(body, token).status_code == status
    assert len(setup.bus.batches) == (1 if status == 202 else 0)


def test_an_ingest_token_cannot_read(setup: Setup) -> None:
    async def go() -> int:
        transport = httpx.ASGITransport(app=setup.app, client=("10.0.0.9", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://rw") as http:
            headers = {"Authorization": f"Bearer {setup.ingest}"}
            return (await http.get("/api/v1/inventory", headers=headers)).status_code

    assert asyncio.run(go()) == 403


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        (push((NOW_MS, {"c01/r01/s01": {"power_watts": 1.0}})), 422, "not under host/"),
        (push((NOW_MS, {"host/a b": {"uptime_seconds": 1.0}})), 422, "bad entity path"),
        (push((NOW_MS, {"host/web1": {"Power Watts": 1.0}})), 400, "pattern"),
        (push((NOW_MS, {"host/web1": {"uptime_seconds": "1"}})), 400, "valid number"),
        (push((NOW_MS, {"host/web1": {"uptime_seconds": 1e300}})), 422, "finite number"),
        (push((NOW_MS + 3_600_000, {"host/web1": {"uptime_seconds": 1.0}})), 422, "NTP"),
        (push((-5, {"host/web1": {"uptime_seconds": 1.0}})), 422, "ts_ms"),
        ({"batches": [], "extra": 1}, 400, "extra"),
        (b'{"batches": [', 400, "not valid JSON"),
        (
            push(inventory=[{"entity": "room", "kind": "host", "attributes": {}}]),
            422,
            "not under host/",
        ),
    ],
)
def test_bad_input_is_refused_naming_the_problem_and_changes_nothing(
    setup: Setup, body: Any, status: int, says: str
) -> None:
    if isinstance(body, dict) and "batches" not in body:
        body = {"batches": [], **body}
    response = setup.post(body, setup.ingest)
    assert response.status_code == status, response.text
    assert says in response.json()["detail"]
    assert setup.bus.batches == [] and len(setup.registry) == 0
    assert setup.store.inventory() == []


def test_a_huge_number_literal_is_a_422_not_a_500(setup: Setup) -> None:
    raw = b'{"batches": [{"ts_ms": 1, "entities": {"host/a": {"x": 1' + b"0" * 400 + b"}}}]}"
    response = setup.post(raw, setup.ingest)
    assert response.status_code == 422 and len(response.json()["detail"]) < 400


def test_too_many_readings_or_too_big_a_body_is_refused(setup: Setup) -> None:
    metrics = {f"m{i}": 1.0 for i in range(1000)}
    n_entities = MAX_INGEST_SAMPLES // 1000 + 1
    body = push((NOW_MS, {f"host/h{i}": metrics for i in range(n_entities)}))
    response = setup.post(body, setup.ingest)
    assert response.status_code == 422 and "at most" in response.json()["detail"]
    big = b'{"batches": [], "inventory": [' + b" " * (MAX_INGEST_BYTES + 1) + b"]}"
    assert setup.post(big, setup.ingest).status_code == 413
    assert setup.bus.batches == [] and len(setup.registry) == 0


def test_the_series_limit_bounds_what_agents_can_create(tmp_path: Path) -> None:
    setup = Setup(tmp_path, ingest_series_limit=3)
    try:
        ok = push((NOW_MS, {"host/a": {"m1": 1.0, "m2": 2.0}}))
        assert setup.post(ok, setup.ingest).status_code == 202
        over = push((NOW_MS, {"host/a": {"m1": 1.0, "m3": 3.0, "m4": 4.0}}))
        response = setup.post(over, setup.ingest)
        assert response.status_code == 422 and "ingest_series_limit" in response.json()["detail"]
        assert len(setup.registry) == 2 and len(setup.bus.batches) == 1
        known = push((NOW_MS + 5000, {"host/a": {"m1": 1.5, "m2": 2.5}}))  # no new series: fine
        assert setup.post(known, setup.ingest).status_code == 202
    finally:
        setup.store.close()
