"""GET /api/v1/recommend and /recommend/placement over a live state fed as agents feed it: the
top 3 by free GPU memory, each machine's like index with why, placements best first with the
reasons of the others, offline machines excluded, and bad parameters refused naming them."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from rackwatch.api import ApiContext, create_app
from rackwatch.bus import MemoryBus
from rackwatch.engine.alerts.engine import AlertEngine
from rackwatch.engine.live import LiveState
from rackwatch.model import Batch, SeriesRegistry
from rackwatch.store.base import EntityRecord
from rackwatch.store.duckdb import DuckDBStore
from rackwatch.tokens import TokenStore

NOW_MS = 1_800_000_000_000
GIB = 1024**3
HUGE = "1" + "0" * 400
INVENTORY = [
    EntityRecord("host/a", "host", {"logical_cores": 64, "memory_total_bytes": 512 * GIB}),
    *(EntityRecord(f"host/a/gpu{k}", "gpu", {"index": k, "name": "NVIDIA H100"}) for k in range(4)),
    EntityRecord("host/d/gpu0", "gpu", {"index": 0, "name": "A100"}),  # never sends
    EntityRecord("host/b", "host", {"gpu_count": 8}),  # 2 of its cards send
]


def gpus(*cards: tuple[float, float]) -> dict[str, dict[str, float]]:
    """Cards as (free GiB, utilisation), each with 80 GiB in all."""
    return {
        f"gpu{k}": {
            "gpu_memory_free_bytes": free * GIB,
            "gpu_memory_used_bytes": (80 - free) * GIB,
            "gpu_utilization_ratio": util,
        }
        for k, (free, util) in enumerate(cards)
    }


def host(name: str, cpu: float, *cards: tuple[float, float]) -> dict[str, dict[str, float]]:
    out = {f"host/{name}": {"cpu_utilization_ratio": cpu, "memory_available_bytes": 400 * GIB}}
    out.update({f"host/{name}/{card}": v for card, v in gpus(*cards).items()})
    return out


READINGS = {
    **host("a", 0.1, (70, 0.0), (60, 0.1), (75, 0.95), (10, 0.0)),  # 215 GiB free
    **host("b", 0.5, (79, 0.2), (79, 0.2)),  # 158 GiB free
    **host("c", 0.05, (40, 0.0)),  # 40 GiB free
    **host("e", 0.9, (79, 0.0)),  # 79 GiB free, CPU busy: low
}


class Room:
    """A store with the inventory, a live state and (optionally) an alert engine fed as the
    pipeline feeds them from agents, and the app over them."""

    def __init__(
        self,
        tmp: Path,
        *,
        with_alerts: bool = True,
        inventory: list[EntityRecord] = INVENTORY,
        **ctx: Any,
    ) -> None:
        self.registry = SeriesRegistry()
        self.store = DuckDBStore(tmp / "rackwatch.duckdb", self.registry)
        self.store.upsert_inventory(inventory)
        self.live = LiveState()
        self.alerts = None
        if with_alerts:
            self.alerts = AlertEngine(
                MemoryBus(), self.registry, [], source_timeouts={"agent": 30.0}
            )
        self.now_ms = NOW_MS
        self.app = create_app(
            ApiContext(
                store=self.store,
                registry=self.registry,
                live=self.live,
                bus=MemoryBus(),
                feeds_live=False,
                clock_ms=lambda: self.now_ms,
                alerts=self.alerts,
                host_offline_after_s=30.0,
                **ctx,
            )
        )

    def push(self, ts_ms: int, readings: dict[str, dict[str, float]]) -> None:
        rows = [(e, m, v) for e, metrics in readings.items() for m, v in metrics.items()]
        ids = [self.registry.intern(e, m) for e, m, _ in rows]
        batch = Batch.of([ts_ms] * len(ids), ids, [v for _, _, v in rows])
        self.live.update(batch)
        if self.alerts is not None:
            self.alerts.process(batch, source="agent")

    def get(self, path: str, client: str = "127.0.0.1", **params: Any) -> httpx.Response:
        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app, client=(client, 40000))
            async with httpx.AsyncClient(transport=transport, base_url="http://rw") as http:
                return await http.get(f"/api/v1{path}", params=params)

        return asyncio.run(go())

    def ok(self, path: str, **params: Any) -> dict[str, Any]:
        response = self.get(path, **params)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


@pytest.fixture
def room(tmp_path: Path) -> Iterator[Room]:
    made = Room(tmp_path)
    made.push(NOW_MS - 2_000, READINGS)
    yield made
    made.store.close()


def test_recommend_gives_the_top_3_and_every_machines_like_index(room: Room) -> None:
    answer = room.ok("/recommend")
    assert answer["now_ms"] == NOW_MS and answer["source"] == "live"
    assert [(s["rank"], s["entity"]) for s in answer["like_server"]] == [
        (1, "host/b"),  # 158 GiB free on idle cards
        (2, "host/a"),  # 215 GiB free, 75 of them on a card 95 % busy: 140 available
        (3, "host/e"),
    ]
    assert answer["like_server"][1]["gpu_memory_free_bytes"] == 215 * GIB
    machines = {m["entity"]: m for m in answer["machines"]}
    assert list(machines) == ["host/a", "host/b", "host/c", "host/d", "host/e"]
    assert {e: m["like_index"] for e, m in machines.items()} == {
        "host/a": "medium",  # cards 26 % busy on average, 33 % of their memory used
        "host/b": "medium",  # CPU 50 %
        "host/c": "medium",  # half its GPU memory used
        "host/d": None,  # never sent anything
        "host/e": "low",  # CPU 90 %
    }
    assert machines["host/c"]["why"] == (
        "GPUs 0 % busy, GPU memory 50 % used, CPU 5 % busy: GPU memory at 50 %, "
        "between 30 % and 70 %"
    )
    assert machines["host/e"]["why"].endswith("CPU at or above 70 %")
    assert answer["counts"] == {"high": 0, "medium": 3, "low": 1, "unknown": 0, "excluded": 1}
    a = machines["host/a"]
    assert (a["n_cards"], a["cores"], a["available"], a["excluded"]) == (4, 64, True, None)
    assert a["cards"][2] == {
        "entity": "host/a/gpu2",
        "index": 2,
        "model": "NVIDIA H100",
        "memory_free_bytes": 75 * GIB,
        "memory_used_bytes": 5 * GIB,
        "memory_total_bytes": 80 * GIB,
        "utilization_ratio": 0.95,
        "temperature_celsius": None,
        "busy": True,
    }
    assert machines["host/b"]["notes"] == [
        "the inventory lists 8 cards, 2 send values",
        "core count not in the inventory: cores are not checked",
    ]
    assert machines["host/b"]["n_cards_expected"] == 8
    d = machines["host/d"]  # only in the inventory
    assert d["excluded"] == "offline: no value received yet" and d["last_seen_ms"] is None
    assert room.ok("/recommend", cards="false")["machines"][0]["cards"] == []


def test_placement_ranks_the_machines_that_fit_and_says_why_the_others_do_not(
    room: Room,
) -> None:
    answer = room.ok("/recommend/placement", gpus=2, gpu_memory_gb=50, cores=8)
    assert answer["job"] == {"gpus": 2, "gpu_memory_gb": 50.0, "cores": 8, "memory_gb": 0.0}
    assert [c["entity"] for c in answer["candidates"]] == ["host/b", "host/a"]
    b, a = answer["candidates"]
    assert b["cards"] == ["host/b/gpu0", "host/b/gpu1"] and b["headroom_bytes"] == 29 * GIB
    assert "cores not checked (the inventory gives no core count)" in b["why"]
    assert a["cards"] == ["host/a/gpu0", "host/a/gpu1"]  # gpu2 is busy, gpu3 too small
    assert "2 of 4 cards fit; takes gpu0, gpu1" in a["why"] and "58 of 64 cores free" in a["why"]
    rejected = {r["entity"]: r["why"] for r in answer["rejected"]}
    assert rejected == {
        "host/c": "0 of 1 cards fit, 2 needed (1 with under 50.0 GiB free)",
        "host/e": "1 of 1 cards fit, 2 needed",
        "host/d": "offline: no value received yet",
    }
    assert [r["entity"] for r in answer["rejected"]][-1] == "host/d"  # excluded: last
    assert (answer["n_candidates"], answer["n_rejected"]) == (2, 3)
    one = room.ok("/recommend/placement", gpus=1, limit=1)
    assert len(one["candidates"]) == 1 and one["n_candidates"] == 4


def test_a_machine_that_stops_reporting_is_excluded_with_the_reason(room: Room) -> None:
    room.push(NOW_MS + 40_000, {k: v for k, v in READINGS.items() if not k.startswith("host/a")})
    room.now_ms = NOW_MS + 40_000
    answer = room.ok("/recommend")
    a = next(m for m in answer["machines"] if m["entity"] == "host/a")
    assert a["available"] is False and a["like_index"] is None
    assert a["excluded"].startswith("offline: nothing received for")
    assert "host/a" not in [s["entity"] for s in answer["like_server"]]
    placement = room.ok("/recommend/placement", gpus=1, gpu_memory_gb=60)
    assert "host/a" not in [c["entity"] for c in placement["candidates"]]


def test_maintenance_excludes_a_machine(room: Room) -> None:
    assert room.alerts is not None
    asyncio.run(room.alerts.set_maintenance("host/a", "ops"))
    a = room.ok("/recommend")["machines"][0]
    assert (a["entity"], a["excluded"]) == ("host/a", "in maintenance")


def test_without_alerting_the_newest_sample_decides(tmp_path: Path) -> None:
    room = Room(tmp_path, with_alerts=False)
    try:
        room.push(NOW_MS - 29_000, READINGS)
        assert room.ok("/recommend")["counts"]["excluded"] == 1  # host/d only
        room.now_ms = NOW_MS + 2_000
        answer = room.ok("/recommend")
        assert answer["counts"]["excluded"] == 5 and answer["like_server"] == []
        assert answer["machines"][0]["why"] == (
            "offline: nothing received for 31 s (the timeout is 30 s)"
        )
    finally:
        room.store.close()


def test_machines_only_in_the_inventory_are_listed_and_excluded(tmp_path: Path) -> None:
    room = Room(tmp_path)
    try:
        answer = room.ok("/recommend")
        assert answer["like_server"] == []
        assert [m["entity"] for m in answer["machines"]] == ["host/a", "host/d"]
        assert answer["counts"]["excluded"] == 2
        assert room.ok("/recommend/placement", gpus=1)["candidates"] == []
    finally:
        room.store.close()


def test_no_gpu_machine_is_an_empty_answer(tmp_path: Path) -> None:
    room = Room(tmp_path, inventory=[])
    try:
        room.push(NOW_MS, {"host/web": {"cpu_utilization_ratio": 0.2}, "room": {"pue_ratio": 1.3}})
        answer = room.ok("/recommend")
        assert (answer["like_server"], answer["machines"]) == ([], [])
        placement = room.ok("/recommend/placement", gpus=1)
        assert (placement["candidates"], placement["rejected"]) == ([], [])
    finally:
        room.store.close()


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"gpus": 0}, "gpus"),
        ({"gpus": 65}, "gpus"),
        ({"gpus": "two"}, "gpus"),
        ({"gpus": HUGE}, "gpus"),
        ({"gpu_memory_gb": "nan"}, "gpu_memory_gb"),
        ({"gpu_memory_gb": "inf"}, "gpu_memory_gb"),
        ({"gpu_memory_gb": -1}, "gpu_memory_gb"),
        ({"gpu_memory_gb": HUGE}, "gpu_memory_gb"),
        ({"cores": -1}, "cores"),
        ({"cores": 10**6}, "cores"),
        ({"memory_gb": "1e400"}, "memory_gb"),
        ({"limit": 0}, "limit"),
    ],
)
def test_a_bad_parameter_is_a_400_naming_it(room: Room, params: dict[str, Any], field: str) -> None:
    response = room.get("/recommend/placement", **params)
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert detail.startswith(f"{field}:") and len(detail) < 300


def test_a_bad_cards_flag_is_a_400(room: Room) -> None:
    response = room.get("/recommend", cards="maybe")
    assert response.status_code == 400 and response.json()["detail"].startswith("cards:")


def test_reads_from_another_machine_need_a_token(tmp_path: Path) -> None:
    tokens = TokenStore(tmp_path / "tokens.json")
    secret, _ = tokens.create("read", name="dashboard")
    room = Room(tmp_path, tokens=tokens)
    try:
        for path in ("/recommend", "/recommend/placement"):
            assert room.get(path, client="10.0.0.9").status_code == 401

        async def with_token() -> httpx.Response:
            transport = httpx.ASGITransport(app=room.app, client=("10.0.0.9", 40000))
            headers = {"Authorization": f"Bearer {secret}"}
            async with httpx.AsyncClient(
                transport=transport, base_url="http://rw", headers=headers
            ) as http:
                return await http.get("/api/v1/recommend/placement")

        assert asyncio.run(with_token()).status_code == 200
    finally:
        room.store.close()
