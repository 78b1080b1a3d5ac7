"""`rackwatch run` serving HTTP in the pipeline's event loop, and stopping with everything
written."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import websockets

from rackwatch import app
from rackwatch.api.server import bind_socket, serving
from rackwatch.errors import ConfigError
from rackwatch.model import SeriesRegistry
from rackwatch.settings import load_settings
from rackwatch.store.base import Query

START_MS = 1_767_225_600_000


def test_run_live_serves_the_api_and_drains_everything_on_stop(tmp_path: Path) -> None:
    settings = load_settings(
        data_dir=tmp_path,
        twin={"scenario": "small", "speed": 600.0},
        server={"port": 0},
        host={"enabled": False},  # its collections (every 5 s of wall time) are not counted here
    )
    services = app.build_services(settings, start_ms=START_MS)
    seen: dict[str, object] = {}

    async def scenario() -> None:
        stop = asyncio.Event()
        urls: list[str] = []
        runner = asyncio.create_task(
            app.run_live(services, stop, serve_http=True, on_serving=urls.append)
        )
        while not urls:
            assert not runner.done(), runner
            await asyncio.sleep(0.01)
        url = urls[0]
        async with websockets.connect(url.replace("http", "ws") + "ws") as ws:
            assert json.loads(await ws.recv())["type"] == "connection"
            await ws.send(json.dumps({"type": "subscribe", "entity": "c01/r01/s01"}))
            assert json.loads(await ws.recv())["type"] == "subscribed"
            data = json.loads(await asyncio.wait_for(ws.recv(), 5))
            seen["ws"] = data["data"]["c01/r01/s01"]
        async with httpx.AsyncClient(base_url=url, timeout=10) as http:
            while services.poller.steps_done < 40:
                await asyncio.sleep(0.01)
            seen["status"] = (await http.get("/api/v1/status")).json()
            seen["live"] = (await http.get("/api/v1/live", params={"entity": "room"})).json()
            seen["index"] = (await http.get("/")).status_code
        stop.set()
        await asyncio.wait_for(runner, 30)
        with pytest.raises(OSError):  # the server is gone
            socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1][:-1])), timeout=1)

    try:
        asyncio.run(scenario())
        assert "power_watts" in seen["ws"]  # type: ignore[operator]
        status = seen["status"]
        assert isinstance(status, dict)
        assert status["scenario"] == "small" and status["samples_total"] > 0
        assert status["ingest_samples_per_s"] > 0 and status["sim_time_ms"] >= START_MS
        assert "pue_ratio" in seen["live"]["entities"]["room"]  # type: ignore[index]
        assert seen["index"] == 200
        assert services.intelligence is not None  # and the health samples it derives
        published = services.poller.n_samples + services.intelligence.n_health_samples
        assert services.writer.n_samples == published > services.poller.n_samples > 0
        stored = services.store.query(Query(0, 2**62, tier="raw"))
        assert len(stored) == published
    finally:
        services.close()


def test_a_port_in_use_is_a_clear_error() -> None:
    with contextlib.closing(bind_socket("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=f"cannot listen on 127.0.0.1:{port}.*--port"):
            bind_socket("127.0.0.1", port)

        async def start() -> None:
            async with serving(app_stub, "127.0.0.1", port):
                pass

        with pytest.raises(ConfigError):
            asyncio.run(start())


async def app_stub(_scope: object, _receive: object, _send: object) -> None:
    raise AssertionError("never started")


@pytest.mark.slow
def test_rackwatch_run_prints_the_dashboard_address_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "rackwatch", "run", "--scenario", "small"]
    command += ["--speed", "600", "--port", "0", "--data-dir", str(tmp_path)]
    env = {**os.environ, "COLUMNS": "160", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path
    )
    try:
        assert proc.stdout is not None
        url = None
        deadline = time.monotonic() + 30
        lines = []
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            lines.append(line)
            found = re.search(r"Dashboard: (http://127\.0\.0\.1:\d+/)", line)
            url = found.group(1) if found else None
        assert url is not None, "".join(lines)
        assert httpx.get(url, timeout=10).status_code == 200
        status = httpx.get(f"{url}api/v1/status", timeout=10).json()
        assert status["scenario"] == "small"
        time.sleep(1)
    finally:
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    found = re.findall(r"stopped: ([\d,]+) samples", stdout)
    assert found, stdout
    written = int(found[-1].replace(",", ""))
    assert written > 0
    settings = load_settings(data_dir=tmp_path)
    with contextlib.closing(app.open_store(settings, SeriesRegistry())) as store:
        assert len(store.query(Query(0, 2**62, tier="raw"))) == written


def test_answers_leave_at_once_on_kept_alive_connections() -> None:
    """The listening socket says TCP, so asyncio turns Nagle off on every connection it
    accepts: with protocol 0 each kept-alive answer waited ~40 ms for the client's ACK."""
    import socket

    with contextlib.closing(bind_socket("127.0.0.1", 0)) as sock:
        assert sock.proto == socket.IPPROTO_TCP
        client = socket.create_connection(sock.getsockname()[:2])
        accepted, _ = sock.accept()
        with client, accepted:
            assert accepted.proto == socket.IPPROTO_TCP  # what asyncio checks
