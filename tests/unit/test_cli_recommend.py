"""`rackwatch recommend`: the top 3 and like indexes, and placements, as a table or as the REST
answer in JSON; from the store when no server runs, through the server that holds the store
when one does (the same machines, in the same order); bad options named."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from typer.testing import CliRunner, Result

from rackwatch import app
from rackwatch.api import ApiContext, create_app
from rackwatch.api.server import serving
from rackwatch.bus import MemoryBus
from rackwatch.cli import cli
from rackwatch.engine.live import LiveState
from rackwatch.model import Batch, SeriesRegistry
from rackwatch.readout import server_file
from rackwatch.settings import load_settings
from rackwatch.store.base import EntityRecord

runner = CliRunner()
GIB = 1024**3
# Free GiB and utilisation of each card (80 GiB each); the CPU's utilisation.
MACHINES = {
    "host/alpha": (0.10, [(70, 0.0), (60, 0.1), (75, 0.95)]),  # 205 GiB free
    "host/bravo": (0.50, [(79, 0.2), (79, 0.2)]),  # 158 GiB
    "host/charlie": (0.05, [(70, 0.0)]),  # 70 GiB, all idle: high
    "c01/r01/s01": (0.90, [(79, 0.0)]),  # a twin server, 79 GiB, its CPU busy
}
INVENTORY = [
    EntityRecord("host/alpha", "host", {"logical_cores": 64}),
    EntityRecord("c01/r01/s01", "server", {"logical_cores": 32, "gpu_model": "NVIDIA H200"}),
]


def readings() -> dict[tuple[str, str], float]:
    out: dict[tuple[str, str], float] = {}
    for name, (cpu, cards) in MACHINES.items():
        out[(name, "cpu_utilization_ratio")] = cpu
        for k, (free, util) in enumerate(cards):
            out[(f"{name}/gpu{k}", "gpu_memory_free_bytes")] = free * GIB
            out[(f"{name}/gpu{k}", "gpu_memory_used_bytes")] = (80 - free) * GIB
            out[(f"{name}/gpu{k}", "gpu_utilization_ratio")] = util
    return out


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A store holding the machines' newest values a second ago, and their inventory."""
    data = tmp_path / "data"
    registry = SeriesRegistry()
    with contextlib.closing(app.open_store(load_settings(data_dir=data), registry)) as store:
        values = readings()
        ids = [registry.intern(e, m) for e, m in values]
        ts_ms = int(time.time() * 1000) - 1_000
        store.write(Batch.of([ts_ms] * len(ids), ids, list(values.values())))
        store.upsert_inventory(INVENTORY)
        store.flush()
    return data


def recommend(data: Path, *args: str) -> Result:
    return runner.invoke(cli, ["recommend", "--data-dir", str(data), *args], env={"COLUMNS": "200"})


def answer(data: Path, *args: str) -> dict[str, Any]:
    shown = recommend(data, *args, "--format", "json")
    assert shown.exit_code == 0, shown.output
    parsed: dict[str, Any] = json.loads(shown.stdout)
    return parsed


def test_the_table_shows_the_top_3_in_order_and_every_like_index(data_dir: Path) -> None:
    shown = recommend(data_dir)
    assert shown.exit_code == 0, shown.output
    out = shown.stdout
    top = out[: out.index("Every GPU machine")]
    assert "from the store, as of" in top
    cells = [[c.strip() for c in line.split("│")[1:3]] for line in top.splitlines()]
    ranked = [c for c in cells if c and c[0] in ("1", "2", "3")]
    # alpha has the most free (205 GiB) but 75 of it on a busy card: bravo's 158 come first
    assert ranked == [["1", "host/bravo"], ["2", "host/alpha"], ["3", "c01/r01/s01"]]
    assert "205.0 GiB of 240.0 GiB" in top
    every = out[out.index("Every GPU machine") :]
    assert "1 high, 2 medium, 1 low, 0 excluded" in " ".join(every.split())
    assert "CPU at or above 70 %" in every  # why c01/r01/s01 is low


def test_json_is_the_rest_answer_from_the_store(data_dir: Path) -> None:
    got = answer(data_dir)
    assert got["source"] == "store"
    assert [s["entity"] for s in got["like_server"]] == [
        "host/bravo",
        "host/alpha",
        "c01/r01/s01",
    ]
    machines = {m["entity"]: m for m in got["machines"]}
    assert machines["host/charlie"]["like_index"] == "high"
    assert machines["c01/r01/s01"]["cards"][0]["model"] == "NVIDIA H200"
    assert machines["host/bravo"]["notes"] == [
        "core count not in the inventory: cores are not checked",
        "available memory not known: memory is not checked",
    ]


def test_a_placement_lists_the_machines_best_first_and_why_not(data_dir: Path) -> None:
    got = answer(data_dir, "--gpus", "2", "--gpu-memory", "50", "--cores", "8")
    assert [c["entity"] for c in got["candidates"]] == ["host/bravo", "host/alpha"]
    assert {r["entity"]: r["why"] for r in got["rejected"]} == {
        "c01/r01/s01": "1 of 1 cards fit, 2 needed; 3.2 of 32 cores free, 8 needed",
        "host/charlie": "1 of 1 cards fit, 2 needed",
    }
    shown = recommend(data_dir, "--gpus", "2", "--gpu-memory", "50")
    assert shown.exit_code == 0, shown.output
    assert "Where 2 GPU(s) with 50 GB free each fits" in shown.stdout
    assert "Cannot take it" in shown.stdout


def test_a_job_that_fits_nowhere_exits_1(data_dir: Path) -> None:
    shown = recommend(data_dir, "--gpus", "4")
    assert shown.exit_code == 1
    assert "0 machine(s) can take it" in " ".join(shown.stdout.split())


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--gpus", "0"], "--gpus"),
        (["--gpus", "65"], "--gpus"),
        (["--gpu-memory", "nan"], "--gpu-memory"),
        (["--gpu-memory", "inf"], "--gpu-memory"),
        (["--gpu-memory", "-1"], "--gpu-memory"),
        (["--cores", "-2"], "--cores"),
        (["--memory", "1e400"], "--memory"),
        (["--limit", "0"], "--limit"),
        (["--gpus", "two"], "--gpus"),
    ],
)
def test_bad_options_are_refused_naming_them(data_dir: Path, args: list[str], option: str) -> None:
    shown = recommend(data_dir, *args)
    assert shown.exit_code == 2 and option in shown.output, shown.output


def test_a_directory_without_a_store_is_refused(tmp_path: Path) -> None:
    shown = recommend(tmp_path / "empty")
    assert shown.exit_code == 2 and "--data-dir" in shown.output and "no store" in shown.output


def test_no_gpu_machine_says_so_and_exits_1(tmp_path: Path) -> None:
    data = tmp_path / "data"
    registry = SeriesRegistry()
    with contextlib.closing(app.open_store(load_settings(data_dir=data), registry)) as store:
        store.write(
            Batch.of([1_000], [registry.intern("host/web", "cpu_utilization_ratio")], [0.1])
        )
        store.flush()
    shown = recommend(data)
    assert shown.exit_code == 1 and "No GPU machine is known" in shown.stdout


# --------------------------------------------------------------------------- through a server


@contextlib.contextmanager
def served(api: FastAPI) -> Iterator[str]:
    """The app served by uvicorn on a free loopback port, in a thread with its own loop."""
    ready = threading.Event()
    box: dict[str, Any] = {}

    async def main() -> None:
        box["loop"], box["stop"] = asyncio.get_running_loop(), asyncio.Event()
        async with serving(api, "127.0.0.1", 0) as url:
            box["url"] = url
            ready.set()
            await box["stop"].wait()

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    assert ready.wait(20), "the test server did not start"
    try:
        yield box["url"]
    finally:
        box["loop"].call_soon_threadsafe(box["stop"].set)
        thread.join(10)


@contextlib.contextmanager
def running_server(data: Path) -> Iterator[str]:
    """What `rackwatch run` does for the command: hold the store, serve the API over it (its
    live state holding each series' newest value), and record the server."""
    registry = SeriesRegistry()
    with contextlib.closing(app.open_store(load_settings(data_dir=data), registry)) as store:
        latest = store.latest()
        live = LiveState(len(registry))
        live.update(Batch.of(latest.ts, latest.series_ids, latest.value))
        ctx = ApiContext(store=store, registry=registry, live=live, bus=MemoryBus())
        with served(create_app(ctx)) as url:
            server_file.record(data, url)
            try:
                yield url
            finally:
                server_file.discard(data)


def test_through_the_running_server_the_same_machines_in_the_same_order(data_dir: Path) -> None:
    asks = [(), ("--gpus", "2", "--gpu-memory", "50", "--cores", "8"), ("--gpus", "1")]
    with running_server(data_dir) as url:
        remote = [recommend(data_dir, *ask, "--format", "json") for ask in asks]
    local = [recommend(data_dir, *ask, "--format", "json") for ask in asks]
    for ask, there, here in zip(asks, remote, local, strict=True):
        assert there.exit_code == 0 and here.exit_code == 0, (ask, there.output, here.output)
        assert f"read through the running server at {url}" in there.stderr
        a, b = json.loads(there.stdout), json.loads(here.stdout)
        assert (a["source"], b["source"]) == ("live", "store")
        keys = [k for k in ("like_server", "machines", "candidates", "rejected") if k in b]
        assert len(keys) == 2, (ask, sorted(b))  # the recommendation's, or the placement's
        for key in keys:
            assert a[key] == b[key], (ask, key)
