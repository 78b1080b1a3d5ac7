"""A real Prometheus (/usr/bin/prometheus, TESTING.md recipe 2) scrapes rackwatch's /metrics,
and the values are read back through Prometheus' query API: a series under its `rackwatch_`
name, an open alert and a device state."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rackwatch.api import ApiContext, create_app
from rackwatch.api.server import serving
from rackwatch.bus import MemoryBus
from rackwatch.engine.alerts import Rule
from rackwatch.engine.alerts.engine import AlertEngine
from rackwatch.engine.live import LiveState
from rackwatch.model import Batch, SeriesRegistry
from rackwatch.store.base import EntityRecord
from rackwatch.store.duckdb import DuckDBStore

PROMETHEUS = "/usr/bin/prometheus"

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        shutil.which(PROMETHEUS) is None, reason="needs Debian's prometheus (scripts/install)"
    ),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def rackwatch_url(tmp_path: Path) -> Iterator[str]:
    """rackwatch's app on a free loopback port, with one server's CPU at 42 °C and an alert
    (critical at 40 °C) open on it."""
    registry = SeriesRegistry()
    store = DuckDBStore(tmp_path / "store", registry)
    store.upsert_inventory(
        [
            EntityRecord("c01", "cluster"),
            EntityRecord("c01/r01", "rack"),
            EntityRecord("c01/r01/s01", "server"),
        ]
    )
    live = LiveState()
    cpu = registry.intern("c01/r01/s01", "cpu_temperature_celsius")
    batch = Batch.of([time.time_ns() // 1_000_000], [cpu], [42.0])
    live.update(batch)
    bus = MemoryBus()
    alerts = AlertEngine(bus, registry, [Rule("cpu-hot", "cpu_temperature_celsius", critical=40)])
    alerts.process(batch)
    app = create_app(ApiContext(store=store, registry=registry, live=live, bus=bus, alerts=alerts))
    ready, urls = threading.Event(), []
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    async def main() -> None:
        async with serving(app, "127.0.0.1", 0) as url:
            urls.append(url)
            ready.set()
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    assert ready.wait(20)
    yield urls[0]
    loop.call_soon_threadsafe(stop.set)
    thread.join(10)
    loop.close()
    store.close()


@pytest.fixture
def prometheus(rackwatch_url: str, tmp_path: Path) -> Iterator[str]:
    cfg, port = tmp_path / "prometheus.yml", free_port()
    target = rackwatch_url.removeprefix("http://").rstrip("/")
    cfg.write_text(
        "global: {scrape_interval: 1s}\nscrape_configs:\n- job_name: rackwatch\n"
        f"  static_configs: [{{targets: ['{target}']}}]\n"
    )
    with open(tmp_path / "prometheus.log", "wb") as log:
        proc = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={cfg}",
                f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def query(prometheus: str, promql: str) -> list[dict[str, Any]]:
    url = f"{prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=2) as response:
        result: list[dict[str, Any]] = json.load(response)["data"]["result"]
        return result


def test_prometheus_scrapes_the_latest_value_with_its_labels(prometheus: str) -> None:
    deadline, result = time.monotonic() + 30, []
    while not result:
        assert time.monotonic() < deadline, "Prometheus never stored the sample"
        time.sleep(0.25)
        with contextlib.suppress(OSError):  # not listening yet
            result = query(prometheus, "rackwatch_cpu_temperature_celsius")
    (sample,) = result
    labels = sample["metric"]
    assert (labels["cluster"], labels["rack"], labels["server"]) == ("c01", "r01", "s01")
    assert labels["entity"] == "c01/r01/s01" and "component" not in labels  # empty = absent
    assert float(sample["value"][1]) == 42
    own = query(prometheus, "rackwatch_ws_clients")
    assert own and float(own[0]["value"][1]) == 0
    assert query(prometheus, "cpu_temperature_celsius") == []  # only under rackwatch_
    (alert,) = query(prometheus, 'rackwatch_alert_firing{severity="critical"} == 1')
    assert alert["metric"]["rule"] == "cpu-hot" and alert["metric"]["entity"] == "c01/r01/s01"
    assert alert["metric"]["server"] == "s01" and "component" not in alert["metric"]
    (state,) = query(prometheus, "rackwatch_device_state == 1")
    assert state["metric"]["state"] == "critical" and state["metric"]["entity"] == "c01/r01/s01"
