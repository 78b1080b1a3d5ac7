"""The Locust locustfiles (bench/locust/) against a real `rackwatch run`: each runs headless
for a few seconds, makes requests of every user class, and none fails; the shape ends the
test by itself. Locust monkey-patches with gevent, so it only ever runs in a subprocess."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
LOCUST = shutil.which("locust", path=str(BIN))
RACKWATCH = shutil.which("rackwatch", path=str(BIN))
LOCUST_DIR = Path(__file__).resolve().parents[2] / "bench" / "locust"
BROKER = ("127.0.0.1", 1883)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(LOCUST is None, reason="locust is not installed (pip install locust)"),
    pytest.mark.skipif(RACKWATCH is None, reason="the rackwatch executable is not installed"),
]


def broker_up() -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(BROKER) == 0


@dataclass
class Run:
    url: str
    data_dir: Path
    run_id: str
    prefix: str
    ingest_token: str


@pytest.fixture(scope="module")
def run_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    """`rackwatch run` on the small room, with MQTT under a prefix of its own."""
    if not broker_up():
        pytest.skip("needs Mosquitto on 127.0.0.1:1883")
    assert RACKWATCH is not None
    data_dir = tmp_path_factory.mktemp("locust") / "data"
    run_id = uuid.uuid4().hex[:8]
    prefix = f"rwtest-locust-{run_id}"
    env = {
        **os.environ,
        "RACKWATCH_MQTT__PREFIX": prefix,
        "RACKWATCH_MQTT__CLIENT_ID": f"rackwatch-{prefix}",
    }
    log = (data_dir.parent / "run.log").open("w")
    proc = subprocess.Popen(
        [
            RACKWATCH,
            "run",
            "--port",
            "0",
            "--data-dir",
            str(data_dir),
            "--scenario",
            "small",
            "--no-host",
            "--mqtt",
            f"mqtt://{BROKER[0]}:{BROKER[1]}",
        ],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    try:
        url = ""
        deadline = time.monotonic() + 60
        while not url and time.monotonic() < deadline and proc.poll() is None:
            with contextlib.suppress(OSError, ValueError, KeyError):
                url = json.loads((data_dir / "server.json").read_text())["url"].rstrip("/")
            time.sleep(0.2)
        assert url, "rackwatch run did not start: " + Path(log.name).read_text()[-2000:]
        created = subprocess.run(
            [RACKWATCH, "token", "create", "--scope", "ingest", "--data-dir", str(data_dir)],
            capture_output=True,
            text=True,
            env={**env, "COLUMNS": "400"},
            check=True,
        )
        token = created.stdout.strip().splitlines()[-1].strip()
        yield Run(url, data_dir, run_id, prefix, token)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def locust(
    run: Run, out: Path, files: list[str], args: list[str], env: dict[str, str] | None = None
) -> tuple[int, dict[tuple[str, str], tuple[int, int]], str]:
    """Run Locust headless: (exit code, (type, name) -> (requests, failures), its output)."""
    assert LOCUST is not None
    paths = ",".join(str(LOCUST_DIR / f) for f in files)
    command = [LOCUST, "-f", paths, "--headless", "--host", run.url, "--only-summary"]
    command += ["--csv", str(out / "stats"), "--stop-timeout", "5", *args]
    environment = {
        **os.environ,
        "RACKWATCH_LOCUST_RUN_ID": run.run_id,
        "RACKWATCH_LOCUST_INGEST_TOKEN": run.ingest_token,
        "RACKWATCH_LOCUST_MQTT_PREFIX": run.prefix,
        "RACKWATCH_LOCUST_INTERVAL_S": "1",
        **(env or {}),
    }
    done = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=60)
    rows: dict[tuple[str, str], tuple[int, int]] = {}
    with (out / "stats_stats.csv").open() as f:
        for row in csv.DictReader(f):
            rows[row["Type"], row["Name"]] = int(row["Request Count"]), int(row["Failure Count"])
    return done.returncode, rows, done.stdout + done.stderr


def live(run: Run, entity: str) -> dict[str, dict[str, object]]:
    with urllib.request.urlopen(f"{run.url}/api/v1/live?entity={entity}", timeout=10) as r:
        entities: dict[str, dict[str, object]] = json.loads(r.read())["entities"]
        return entities


def test_producers_push_through_ingest_and_mqtt(run_server: Run, tmp_path: Path) -> None:
    rc, rows, output = locust(
        run_server, tmp_path, ["producers.py"], ["-u", "4", "-r", "4", "-t", "5s"]
    )

    assert rc == 0, output[-3000:]
    assert rows["POST", "/api/v1/ingest"][0] >= 4
    assert rows["MQTT", "publish telemetry"][0] >= 4
    assert rows["", "Aggregated"][1] == 0, output[-3000:]
    # What they pushed is in the server's live state, under their own names.
    host = f"host/locust-{run_server.run_id}-00000"
    assert "cpu_utilization_ratio" in live(run_server, host)[host]
    probe = f"locust-{run_server.run_id}/rack00/probe00"
    assert "temperature_celsius" in live(run_server, probe)[probe]


def test_consumers_read_and_subscribe(run_server: Run, tmp_path: Path) -> None:
    rc, rows, output = locust(
        run_server, tmp_path, ["consumers.py"], ["-u", "4", "-r", "4", "-t", "7s"]
    )

    assert rc == 0, output[-3000:]
    by_page = {(kind, name.split(" ", 1)[0]) for (kind, name), (n, _) in rows.items() if n}
    assert {("GET", "overview"), ("GET", "server"), ("WS", "overview"), ("WS", "server")} <= by_page
    assert rows["WS", "overview subscribe"][0] >= 1
    assert rows["WS", "overview monitoring_data (snapshot)"][0] >= 1
    assert rows["", "Aggregated"][1] == 0, output[-3000:]


def test_shape_runs_its_hour_and_stops(run_server: Run, tmp_path: Path) -> None:
    env = {
        "RACKWATCH_LOCUST_HOUR_SECONDS": "10",
        "RACKWATCH_LOCUST_MIN_USERS": "1",
        "RACKWATCH_LOCUST_MAX_USERS": "4",
    }
    began = time.monotonic()
    rc, rows, output = locust(
        run_server, tmp_path, ["consumers.py", "shapes.py"], ["OverviewReader"], env
    )

    assert rc == 0, output[-3000:]
    assert time.monotonic() - began < 30  # it ended by itself after its one "hour"
    assert rows["", "Aggregated"][0] > 0
    with (tmp_path / "stats_stats_history.csv").open() as f:
        users = [int(r["User Count"]) for r in csv.DictReader(f) if r["Name"] == "Aggregated"]
    assert max(users) == 4  # the peak of the curve, reached mid-"hour"
