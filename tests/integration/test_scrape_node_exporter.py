"""The real Debian prometheus-node-exporter (TESTING.md: started by the test on a free loopback
port, never as a service) scraped twice by `rackwatch.sources.scrape.Scraper`."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from rackwatch.model.series import SeriesRegistry
from rackwatch.sources.readings import Reading, to_batch
from rackwatch.sources.scrape import Scraper, ScrapeTarget

NODE_EXPORTER = "/usr/bin/prometheus-node-exporter"
IN_CI = bool(os.environ.get("CI"))

pytestmark = [
    pytest.mark.integration,
    # in CI a missing binary is a failure (scripts/install --dev installs it), not a skip
    pytest.mark.skipif(
        shutil.which(NODE_EXPORTER) is None and not IN_CI,
        reason="needs Debian's prometheus-node-exporter (bash scripts/install --dev)",
    ),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def node_exporter(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    with open(tmp_path / "node_exporter.log", "wb") as log:
        proc = subprocess.Popen(
            [NODE_EXPORTER, f"--web.listen-address=127.0.0.1:{port}"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 15
            while True:
                assert proc.poll() is None, (tmp_path / "node_exporter.log").read_text()
                try:
                    if httpx.get(url, timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass  # not listening yet
                assert time.monotonic() < deadline, "node_exporter never answered"
                time.sleep(0.05)
            yield url
        finally:
            proc.terminate()  # by its PID
            proc.wait(timeout=10)


def test_node_exporter_scraped_twice(node_exporter: str) -> None:
    target = ScrapeTarget(url=node_exporter, name="scrape/node")

    async def main() -> tuple[list[Reading], list[Reading], Scraper]:
        async with Scraper(target) as scraper:
            first = await scraper.scrape()
            await asyncio.sleep(0.3)
            second = await scraper.scrape()
            return first, second, scraper

    first, second, scraper = asyncio.run(main())
    assert (scraper.n_ok, scraper.n_failed, scraper.last_error) == (2, 0, None)
    assert scraper.n_infinite == 0 and scraper.n_bad_entities == 0 and scraper.n_bad_names == 0
    assert scraper.n_collisions == 0 and scraper.n_dropped_series == 0
    got = {(r.entity, r.metric): r.value for r in second}
    assert len(got) == len(second) > 200

    load1 = got[("scrape/node", "node_load1")]
    assert 0 <= load1 < 10_000
    available = got[("scrape/node", "node_memory_memavailable_bytes")]  # MemAvailable lowercased
    total = got[("scrape/node", "node_memory_memtotal_bytes")]
    assert 0 < available <= total
    cpu = {e: v for (e, m), v in got.items() if m == "node_cpu_seconds_total"}
    n_cpus = os.cpu_count() or 1
    idle = [f"scrape/node/cpu-{i}/mode-idle" for i in range(n_cpus)]
    assert all(e in cpu for e in idle), sorted(cpu)[:10]
    assert {"scrape/node/cpu-0/mode-user", "scrape/node/cpu-0/mode-system"} <= set(cpu)
    assert all(v >= 0 and math.isfinite(v) for v in cpu.values())
    root = [e for (e, m) in got if m == "node_filesystem_size_bytes" and "mountpoint-root" in e]
    assert root, "the file system at / is mountpoint-root"

    # counters never go backwards between the two scrapes
    before = {(r.entity, r.metric): r.value for r in first}
    counters = [k for k in got if k[1].endswith("_total") and k in before]
    assert ("scrape/node/cpu-0/mode-idle", "node_cpu_seconds_total") in counters
    went_back = [k for k in counters if got[k] < before[k]]
    assert not went_back, went_back
    requests = ("scrape/node/code-200", "promhttp_metric_handler_requests_total")
    assert got[requests] > before[requests]  # it counted our first scrape

    registry = SeriesRegistry()
    batch = to_batch(second, registry, 1_700_000_000_000)
    assert len(batch) == len(second) == len(registry)
    series = registry.get("scrape/node/cpu-0/mode-idle", "node_cpu_seconds_total")
    assert series is not None
    assert batch.value[batch.series.tolist().index(series)] == cpu["scrape/node/cpu-0/mode-idle"]
    again = to_batch(first, registry, 1_700_000_005_000)
    assert len(registry) == len({(r.entity, r.metric) for r in first + second})
    assert set(again.series.tolist()) <= set(range(len(registry)))

    (item,) = scraper.inventory()
    assert item["kind"] == "scrape_target" and item["url"] == node_exporter
    assert item["n_series"] == len(registry)


def test_run_without_twin_scrapes_the_url_it_is_given(node_exporter: str, tmp_path: Path) -> None:
    """`rackwatch run --no-twin --scrape URL`, as a user starts it: no simulated room, this
    machine and the exporter stored and listed, and Ctrl-C stops it cleanly."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/api/v1"
    command = [sys.executable, "-m", "rackwatch", "run", "--no-twin", "--scrape", node_exporter]
    command += ["--port", str(port), "--data-dir", str(tmp_path / "data")]
    with open(tmp_path / "run.log", "wb") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        kinds: set[str] = set()
        while not {"host", "scrape_target"} <= kinds:
            assert proc.poll() is None, (tmp_path / "run.log").read_text()
            assert time.monotonic() < deadline, f"inventory holds only {kinds}"
            time.sleep(0.3)
            with contextlib.suppress(httpx.HTTPError):
                inventory = httpx.get(f"{url}/inventory", timeout=5).json()
                kinds = {e["kind"] for e in inventory["entities"]}
        assert not kinds & {"room", "server", "fan", "crac"}, kinds  # no twin
        status = httpx.get(f"{url}/status", timeout=5).json()
        assert status["scenario"] is None
        (target,) = [e for e in inventory["entities"] if e["kind"] == "scrape_target"]
        assert target["attributes"]["url"] == node_exporter
        load = httpx.get(
            f"{url}/series",
            params={"entity": target["path"], "metric": "node_load1", "from": "-5m"},
            timeout=5,
        ).json()
        (series,) = load["series"]
        assert series["value"] and all(0 <= v < 10_000 for v in series["value"])
        # no fan to control without the twin: the control API says so
        assert httpx.get(f"{url}/fans", timeout=5).status_code != 200
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(30)
    log_text = (tmp_path / "run.log").read_text()
    assert code == 0, log_text
    words = " ".join(log_text.split())  # the console wraps at 80 columns off a terminal
    assert f"scraping {node_exporter}, storing in" in words
    assert "this machine as host/" in words
