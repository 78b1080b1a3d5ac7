"""`rackwatch worker` processes on a real NATS server: every sample the twin publishes is stored
once, through a store worker killed (SIGKILL) and restarted and through a NATS restart.

The twin runs fast (speed 120) so that a few seconds hold a few hundred steps. Each test has its
own subject prefix; the NATS restart test runs its own nats-server on a free port.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from rackwatch.model import SeriesRegistry
from rackwatch.store.base import Query
from rackwatch.store.duckdb import DuckDBStore

pytestmark = [pytest.mark.integration, pytest.mark.slow]
NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Workers:
    def __init__(self, tmp: Path, url: str) -> None:
        self.tmp = tmp
        self.url = url
        self.env = {
            **os.environ,
            "RACKWATCH_BUS__PREFIX": f"w{uuid.uuid4().hex[:10]}",
            "RACKWATCH_BUS__ACK_WAIT_SECONDS": "2",
            # The server reserves this per stream: the 1 GiB default, test after test,
            # would promise away a shared server's storage.
            "RACKWATCH_BUS__STREAM_MAX_BYTES": str(256 << 20),
        }
        self.procs: list[subprocess.Popen[str]] = []
        self.logs: dict[int, Path] = {}

    def start(self, role: str, *args: str) -> subprocess.Popen[str]:
        """A worker, once it says it runs."""
        return self.launch(
            f"{role}-{len(self.procs)}",
            ["worker", "--role", role, "--bus", self.url, "--data-dir", str(self.tmp / "data")],
            *args,
            ready="running",
        )

    def launch(
        self, name: str, command: list[str], *args: str, ready: str
    ) -> subprocess.Popen[str]:
        path = self.tmp / f"{name}.log"
        with path.open("w") as log:  # the process has its own copy
            proc = subprocess.Popen(
                [sys.executable, "-m", "rackwatch", *command, *args],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                text=True,
            )
        self.procs.append(proc)
        self.logs[proc.pid] = path
        self.wait_for(proc, ready)
        return proc

    def output(self, proc: subprocess.Popen[str]) -> str:
        return self.logs[proc.pid].read_text()

    def wait_for(self, proc: subprocess.Popen[str], text: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output(proc):
            assert proc.poll() is None or text in self.output(proc), self.output(proc)
            assert time.monotonic() < deadline, f"no {text!r}: {self.output(proc)}"
            time.sleep(0.1)

    def stop(self, proc: subprocess.Popen[str]) -> str:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
        out = self.output(proc)
        assert proc.returncode == 0, out
        return out

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        with contextlib.suppress(OSError, TimeoutError):  # a server the test stopped
            asyncio.run(delete_streams(self.url, self.env["RACKWATCH_BUS__PREFIX"]))


async def delete_streams(url: str, prefix: str) -> None:
    """The streams and KV buckets named after `prefix` (this test's, nobody else's)."""
    import nats

    nc = await nats.connect(url, max_reconnect_attempts=1, connect_timeout=2)
    try:
        js = nc.jetstream()
        head = prefix.upper() + "_"
        for info in await js.streams_info():
            name = info.config.name or ""
            if name.startswith((head, "KV_" + head)):
                await js.delete_stream(name)
    finally:
        await nc.close()


def count(out: str, name: str) -> int:
    """A counter of the worker's last line, `stopped: a 1, samples 27,576, ...`."""
    found = re.search(rf"(?:: |, ){name} ([\d,]+)", ": " + out.rsplit("stopped:", 1)[1])
    assert found, out
    return int(found.group(1).replace(",", ""))


def stored(data: Path) -> tuple[int, int]:
    """Samples in the store, and distinct (series, instant) pairs among them."""
    store = DuckDBStore(data / "rackwatch.duckdb", SeriesRegistry())
    try:
        result = store.query(Query(0, 1 << 62))
        distinct = sum(len(set(rows["ts"].tolist())) for _, rows in result)
        return len(result), distinct
    finally:
        store.close()


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Workers]:
    w = Workers(tmp_path, "nats://127.0.0.1:4222")
    yield w
    w.close()


def test_a_killed_store_worker_resumes_and_nothing_is_lost_or_stored_twice(
    workers: Workers,
) -> None:
    store = workers.start("store")
    twin = workers.start("twin", "--scenario", "small", "--speed", "120")
    time.sleep(4)
    store.send_signal(signal.SIGKILL)  # mid-run: what it took and did not acknowledge comes again
    store.wait()
    time.sleep(1)
    store = workers.start("store")
    time.sleep(3)
    published = count(workers.stop(twin), "samples")
    time.sleep(3)  # the last messages, and any taken by the killed worker (ack wait 2 s)
    workers.stop(store)
    n, distinct = stored(workers.tmp / "data")
    assert published > 1000
    assert n == distinct == published


def test_a_nats_restart_loses_nothing(tmp_path: Path) -> None:
    if not Path(NATS_SERVER).exists():
        pytest.skip("nats-server is not installed (apt install nats-server)")
    port = free_port()
    store_dir = tmp_path / "jetstream"

    def nats() -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [NATS_SERVER, "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(store_dir)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    return proc
            time.sleep(0.05)
        raise AssertionError("nats-server did not start")

    server = nats()
    w = Workers(tmp_path, f"nats://127.0.0.1:{port}")
    try:
        store = w.start("store")
        twin = w.start("twin", "--scenario", "small", "--speed", "120")
        time.sleep(3)
        server.send_signal(signal.SIGTERM)  # a clean restart, as an operator's would be
        server.wait(timeout=20)
        time.sleep(1.5)
        server = nats()
        time.sleep(6)  # both reconnect (nats-py tries every 2 s) and the twin catches up
        published = count(w.stop(twin), "samples")
        time.sleep(3)
        w.stop(store)
        n, distinct = stored(tmp_path / "data")
        assert published > 1000
        assert n == distinct == published
    finally:
        w.close()
        server.kill()
        server.wait()


def test_a_server_without_room_for_the_streams_is_one_clear_error(tmp_path: Path) -> None:
    if not Path(NATS_SERVER).exists():
        pytest.skip("nats-server is not installed (apt install nats-server)")
    port = free_port()
    config = tmp_path / "nats.conf"
    config.write_text(f'jetstream {{ store_dir: "{tmp_path / "js"}", max_file_store: 64MB }}\n')
    server = subprocess.Popen(
        [NATS_SERVER, "-a", "127.0.0.1", "-p", str(port), "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    w = Workers(tmp_path, f"nats://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 10
        while True:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert time.monotonic() < deadline, "nats-server did not start"
            time.sleep(0.05)
        del w.env["RACKWATCH_BUS__STREAM_MAX_BYTES"]  # the 1 GiB default > 64 MB
        refused = subprocess.run(
            [sys.executable, "-m", "rackwatch", "worker", "--role", "store", "--bus", w.url],
            env=w.env,
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
        )
        assert refused.returncode == 2, refused.stderr
        assert "cannot reserve 1,024 MiB for stream" in refused.stderr
        assert "Lower [bus] stream_max_bytes" in refused.stderr
        w.env["RACKWATCH_BUS__STREAM_MAX_BYTES"] = str(16 << 20)  # 3 streams x 16 MiB fit
        store = w.start("store")
        w.stop(store)
    finally:
        w.close()
        server.kill()
        server.wait()


def test_an_agent_publishes_this_host_onto_the_bus_for_the_store_worker(
    workers: Workers,
) -> None:
    store = workers.start("store")
    agent = workers.launch(
        "agent",
        ["agent", "--nats", workers.url, "--name", "bus-agent-01", "--interval", "0.5"],
        ready="Press Ctrl-C",
    )
    time.sleep(4)
    out = workers.stop(agent)
    published = int(re.search(r"(\d+) collections published", out).group(1))  # type: ignore[union-attr]
    assert published >= 3, out
    time.sleep(1)
    workers.stop(store)
    db = DuckDBStore(workers.tmp / "data" / "rackwatch.duckdb", SeriesRegistry())
    try:
        result = db.query(Query(0, 1 << 62, entity="host/bus-agent-01/**"))
        cpu = [rows for key, rows in result if key.metric == "cpu_utilization_ratio"]
        assert cpu, [k for k, _ in result]
        assert len(cpu[0]["ts"]) >= published - 1  # the first has no CPU rate yet
    finally:
        db.close()


@pytest.fixture
def database() -> Iterator[str]:
    psycopg = pytest.importorskip("psycopg")
    name = f"rw_{uuid.uuid4().hex[:12]}"
    admin = "postgresql://postgres@127.0.0.1:5432/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_partitioned_store_workers_share_postgresql_and_a_front_end_serves_it(
    workers: Workers, database: str
) -> None:
    import httpx

    workers.env["RACKWATCH_BUS__PARTITIONS"] = "2"
    stores = [workers.start("store", "--partition", f"{k}/2", "--store", database) for k in (0, 1)]
    twin = workers.start("twin", "--partition", "0/2", "--scenario", "large", "--speed", "120")
    port = free_port()
    front = workers.launch(
        "serve",
        ["serve", "--bus", workers.url, "--store", database, "--port", str(port)],
        *("--data-dir", str(workers.tmp / "data")),
        ready="Ctrl-C stops",
    )
    time.sleep(4)
    stores[1].send_signal(signal.SIGKILL)  # one partition's worker dies and comes back
    stores[1].wait()
    stores[1] = workers.start("store", "--partition", "1/2", "--store", database)
    time.sleep(2)
    base = f"http://127.0.0.1:{port}/api/v1"
    live = httpx.get(f"{base}/status", timeout=10).json()
    assert live["samples_total"] > 0  # the front end follows the bus
    published = count(workers.stop(twin), "samples")
    time.sleep(4)  # ack wait 2 s: what the killed worker held comes again
    stored = [count(workers.stop(store), "samples") for store in stores]
    assert all(stored), "each partition's worker stored its racks"

    from rackwatch.model import SeriesRegistry as Registry
    from rackwatch.store.postgres import PostgresStore

    shared = PostgresStore(database, Registry())
    try:
        result = shared.query(Query(0, 1 << 62))
        distinct = sum(len(set(rows["ts"].tolist())) for _, rows in result)
        assert len(result) == distinct == published  # none lost, none twice
        servers = [key.entity for key, rows in result if key.entity.count("/") == 2]
        racks = {path.split("/")[1] for path in servers}
        assert len(racks) > 1
    finally:
        shared.close()
    answer = httpx.get(
        f"{base}/series",
        params={"entity": "c01/*/s01", "metric": "power_watts", "from": "2020-01-01T00:00:00Z"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    served = answer.json()["series"]
    assert len(served) == len(racks)  # history from the shared store, every rack
    assert all(len(s["ts"]) > 10 for s in served)
    workers.stop(front)


def test_a_front_end_shows_the_alert_workers_alerts_states_and_the_inventory(
    workers: Workers, database: str
) -> None:
    import httpx

    workers.start("alerts")
    # fan-fail: c01/r01/s03/fan1 stops at 30 simulated minutes, 9 s at speed 200
    stats = workers.tmp / "twin.json"
    workers.start("twin", "--scenario", "fan-fail", "--speed", "200", "--stats", str(stats))
    # The store worker first runs after the twin has announced its inventory: its events
    # consumer, new, starts at the oldest event the stream holds.
    deadline = time.monotonic() + 30
    while not stats.exists() or json.loads(stats.read_text()).get("announced_entities", 0) < 5:
        assert time.monotonic() < deadline, "the twin announced no inventory"
        time.sleep(0.2)
    workers.start("store", "--store", database)

    def front_end() -> tuple[subprocess.Popen[str], str]:
        port = free_port()
        proc = workers.launch(
            f"serve-{len(workers.procs)}",
            ["serve", "--bus", workers.url, "--store", database, "--port", str(port)],
            *("--data-dir", str(workers.tmp / "data")),
            ready="Ctrl-C stops",
        )
        return proc, f"http://127.0.0.1:{port}/api/v1"

    def fan_alerts(base: str) -> list[dict[str, object]]:
        alerts = httpx.get(f"{base}/alerts", timeout=10).json()["alerts"]
        return [a for a in alerts if a["entity"] == "c01/r01/s03/fan1"]

    front, base = front_end()
    deadline = time.monotonic() + 90
    while not fan_alerts(base):
        assert time.monotonic() < deadline, httpx.get(f"{base}/events", timeout=10).text
        time.sleep(0.5)
    [alert] = fan_alerts(base)
    assert (alert["rule"], alert["level"], alert["status"]) == ("fan-stopped", "CRITICAL", "firing")
    states = httpx.get(f"{base}/states", params={"entity": "c01/r01/**"}, timeout=10).json()
    states = states["entities"]
    assert states["c01/r01/s03/fan1"]["state"] == "FAILED"
    assert states["c01/r01/s03"]["state"] == "OK"  # heard, no change of its own
    assert (states["c01/r01/s03"]["rollup_state"], states["c01/r01/s03"]["rollup_from"]) == (
        "FAILED",
        "c01/r01/s03/fan1",
    )
    assert states["c01/r01"]["alerts"]["critical"] >= 1
    assert states["c01/r01/s01"]["rollup_state"] == "OK"
    inventory = httpx.get(f"{base}/inventory", timeout=10).json()["entities"]
    servers = sorted(e["path"] for e in inventory if e["kind"] == "server")
    assert servers == [f"c01/r01/s0{n}" for n in range(1, 6)]  # the twin announced them

    # Acknowledged on the front end, by the alerts worker: the answer waits for its event.
    token = control_token(workers)
    headers = {"Authorization": f"Bearer {token}"}
    answer = httpx.post(f"{base}/alerts/{alert['id']}/ack", headers=headers, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json()["alert"]["status"] == "acknowledged"
    assert answer.json()["alert"]["acknowledged_by"].startswith("site tests")
    many = httpx.post(
        f"{base}/alerts/ack", json={"ids": [alert["id"], "nope"]}, headers=headers, timeout=30
    )
    assert many.json() == {"acknowledged": [alert["id"]], "not_found": ["nope"]}, many.text
    workers.stop(front)

    # A front end started later reads the open alert back from the store, acknowledged.
    _again, base = front_end()
    [alert] = fan_alerts(base)
    assert alert["status"] == "acknowledged"
    events = httpx.get(f"{base}/events", params={"kind": "alert.acknowledged"}, timeout=10)
    assert len(events.json()["events"]) == 1, events.text  # once, by the one alerts worker


def control_token(workers: Workers) -> str:
    command = [sys.executable, "-m", "rackwatch", "token", "create", "--scope", "control"]
    command += ["--data-dir", str(workers.tmp / "data"), "--name", "site tests"]
    out = subprocess.run(command, capture_output=True, text=True, check=True, timeout=60).stdout
    lines = [line.strip() for line in out.splitlines()]
    return lines[next(i for i, line in enumerate(lines) if "created" in line) + 1]
