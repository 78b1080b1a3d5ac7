"""GET /api/v1/hosts: one row per real machine in the shape of the GPU-fleet document (seed
004), its values from the live state and its sizes from the inventory; offline once it has
sent nothing for `offline_after_s` (the alert engine's word, in maintenance too)."""

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

NOW_MS = 1_800_000_000_000
GIB = 1024**3
GPU_HOST, WEB_HOST = "host/gpu1", "host/web1"
INVENTORY = [
    EntityRecord(
        GPU_HOST,
        "host",
        {
            "os_pretty_name": "Ubuntu 22.04.4 LTS",
            "memory_total_bytes": 128 * GIB,
            "addresses": {"eno1": ["fe80::1", "10.0.0.21"], "docker0": ["169.254.1.1"]},
        },
    ),
    EntityRecord(f"{GPU_HOST}/disk-root", "disk", {"mountpoint": "/", "total_bytes": 1000 * GIB}),
    EntityRecord(f"{GPU_HOST}/gpu1", "gpu", {"index": 1, "name": "TITAN Xp"}),
    EntityRecord(f"{GPU_HOST}/gpu0", "gpu", {"index": 0, "name": "TITAN Xp"}),
    EntityRecord("c01/r01/s01", "server", {}),  # the twin's: not a host
]
# Seed 004's demo: 4 x TITAN Xp with 12,196 MiB, 7,271 and 10 MiB of it used.
GPU_READINGS = {
    GPU_HOST: {
        "uptime_seconds": 7_793_761,
        "cpu_utilization_ratio": 0.319,
        "memory_used_bytes": 32 * GIB,
        "memory_available_bytes": 96 * GIB,
    },
    f"{GPU_HOST}/disk-root": {"disk_used_bytes": 250 * GIB, "disk_utilization_ratio": 0.25},
    f"{GPU_HOST}/net-eno1": {
        "network_receive_bytes_per_second": 1_000.0,
        "network_transmit_bytes_per_second": 500.0,
    },
    f"{GPU_HOST}/net-eno2": {"network_receive_bytes_per_second": 24.0},
    f"{GPU_HOST}/gpu0": {
        "gpu_utilization_ratio": 0.97,
        "gpu_memory_used_bytes": 7_271 * 2**20,
        "gpu_memory_free_bytes": 4_925 * 2**20,
    },
    f"{GPU_HOST}/gpu1": {
        "gpu_utilization_ratio": 0.0,
        "gpu_memory_used_bytes": 10 * 2**20,
        "gpu_memory_free_bytes": 12_186 * 2**20,
    },
}
WEB_READINGS = {
    WEB_HOST: {"uptime_seconds": 60, "memory_used_bytes": GIB, "memory_available_bytes": GIB}
}


class Fleet:
    """A store with the hosts' inventory, a live state and an alert engine fed as the pipeline
    feeds them (`telemetry.agent`), and the app over them."""

    def __init__(self, tmp: Path, *, with_alerts: bool = True) -> None:
        self.registry = SeriesRegistry()
        self.store = DuckDBStore(tmp / "rackwatch.duckdb", self.registry)
        self.store.upsert_inventory(INVENTORY)
        self.live = LiveState()
        self.alerts = None
        if with_alerts:
            timeouts = {"agent": 30.0}
            self.alerts = AlertEngine(MemoryBus(), self.registry, [], source_timeouts=timeouts)
        self.now_ms = NOW_MS
        ctx = ApiContext(
            store=self.store,
            registry=self.registry,
            live=self.live,
            bus=MemoryBus(),
            feeds_live=False,
            clock_ms=lambda: self.now_ms,
            alerts=self.alerts,
            host_offline_after_s=30.0,
        )
        self.app = create_app(ctx)

    def push(self, ts_ms: int, readings: dict[str, dict[str, float]]) -> None:
        rows = [(e, m, v) for e, metrics in readings.items() for m, v in metrics.items()]
        ids = [self.registry.intern(e, m) for e, m, _ in rows]
        batch = Batch.of([ts_ms] * len(ids), ids, [v for _, _, v in rows])
        self.live.update(batch)
        if self.alerts is not None:
            self.alerts.process(batch, source="agent")

    def get(self, **params: Any) -> httpx.Response:
        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app, client=("127.0.0.1", 40000))
            async with httpx.AsyncClient(transport=transport, base_url="http://rw") as http:
                return await http.get("/api/v1/hosts", params=params)

        return asyncio.run(go())

    def hosts(self, **params: Any) -> dict[str, dict[str, Any]]:
        response = self.get(**params)
        assert response.status_code == 200, response.text
        return {h["entity"]: h for h in response.json()["hosts"]}


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    fleet = Fleet(tmp_path)
    yield fleet
    fleet.store.close()


def test_one_row_per_host_with_the_fleet_documents_figures(fleet: Fleet) -> None:
    fleet.push(NOW_MS - 5_000, {**GPU_READINGS, **WEB_READINGS})
    answer = fleet.get().json()
    assert (answer["now_ms"], answer["offline_after_s"]) == (NOW_MS, 30.0)
    hosts = {h["entity"]: h for h in answer["hosts"]}
    assert list(hosts) == [GPU_HOST, WEB_HOST]  # by path; the twin's server is no host
    gpu = hosts[GPU_HOST]
    assert gpu["name"] == "gpu1" and gpu["online"] is True
    assert gpu["state"]["state"] == "OK" and gpu["last_seen_ms"] == NOW_MS - 5_000
    assert gpu["os"] == "Ubuntu 22.04.4 LTS"
    assert gpu["addresses"] == ["10.0.0.21", "169.254.1.1", "fe80::1"]  # IPv4 first
    assert (gpu["uptime_seconds"], gpu["cpu_utilization_ratio"]) == (7_793_761, 0.319)
    # Memory: the inventory's total, not used + available (which would be 128 GiB too here).
    assert (gpu["memory_used_bytes"], gpu["memory_total_bytes"]) == (32 * GIB, 128 * GIB)
    assert gpu["memory_utilization_ratio"] == 0.25
    assert gpu["disks"] == [
        {
            "entity": f"{GPU_HOST}/disk-root",
            "mountpoint": "/",
            "used_bytes": 250 * GIB,
            "total_bytes": 1000 * GIB,
            "utilization_ratio": 0.25,
        }
    ]
    # Network in/out: every interface summed (one sends no transmit rate).
    assert gpu["network_receive_bytes_per_second"] == 1_024.0
    assert gpu["network_transmit_bytes_per_second"] == 500.0
    # GPUs by index, memory total = used + free where the inventory has none.
    assert [(g["index"], g["name"], g["utilization_ratio"]) for g in gpu["gpus"]] == [
        (0, "TITAN Xp", 0.97),
        (1, "TITAN Xp", 0.0),
    ]
    assert gpu["gpus"][0]["memory_used_bytes"] == 7_271 * 2**20
    assert gpu["gpus"][0]["memory_total_bytes"] == 12_196 * 2**20
    assert gpu["gpus"][1]["memory_utilization_ratio"] == pytest.approx(10 / 12_196)
    web = hosts[WEB_HOST]
    assert web["memory_total_bytes"] == 2 * GIB  # no inventory: used + available
    assert (web["os"], web["addresses"], web["disks"], web["gpus"]) == (None, [], [], [])
    assert web["cpu_utilization_ratio"] is None  # never sent
    only = fleet.hosts(entity="host/web*")
    assert list(only) == [WEB_HOST]


def test_a_host_that_stops_reporting_is_offline_after_the_timeout(fleet: Fleet) -> None:
    fleet.push(NOW_MS, {**GPU_READINGS, **WEB_READINGS})
    fleet.push(NOW_MS + 25_000, WEB_READINGS)  # the gpu host goes quiet
    assert fleet.hosts()[GPU_HOST]["online"] is True
    fleet.push(NOW_MS + 30_000, WEB_READINGS)
    gpu = fleet.hosts()[GPU_HOST]
    assert gpu["online"] is False and gpu["state"]["state"] == "UNKNOWN"
    assert gpu["last_seen_ms"] == NOW_MS
    assert gpu["cpu_utilization_ratio"] == 0.319  # its last values stay
    assert fleet.hosts()[WEB_HOST]["online"] is True
    # In maintenance it shows MAINTENANCE, and is still offline.
    assert fleet.alerts is not None
    asyncio.run(fleet.alerts.set_maintenance(GPU_HOST, "ops"))
    gpu = fleet.hosts()[GPU_HOST]
    assert gpu["state"]["state"] == "MAINTENANCE" and gpu["online"] is False
    fleet.push(NOW_MS + 35_000, GPU_READINGS)
    assert fleet.hosts()[GPU_HOST]["online"] is True


def test_without_alerting_online_is_the_newest_sample_against_the_wall_clock(
    tmp_path: Path,
) -> None:
    fleet = Fleet(tmp_path, with_alerts=False)
    try:
        fleet.push(NOW_MS - 29_000, WEB_READINGS)
        hosts = fleet.hosts()
        assert hosts[WEB_HOST]["online"] is True and hosts[WEB_HOST]["state"] is None
        assert hosts[GPU_HOST]["online"] is False  # in the inventory, never heard
        assert hosts[GPU_HOST]["last_seen_ms"] is None
        fleet.now_ms = NOW_MS + 1_000
        assert fleet.hosts()[WEB_HOST]["online"] is False
    finally:
        fleet.store.close()


def test_a_bad_glob_is_a_400(fleet: Fleet) -> None:
    response = fleet.get(entity="host/[")
    assert response.status_code == 400 and "entity" in response.json()["detail"]
