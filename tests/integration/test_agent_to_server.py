"""`rackwatch agent` pushing to `rackwatch run`, both as a user starts them: the server is
stopped in the middle and started again, and every collection of the agent is stored once,
none lost, none twice (issue 9's proof)."""

from __future__ import annotations

import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RACKWATCH = [sys.executable, "-m", "rackwatch"]
INTERVAL_S = 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def wait_for(what: str, check: Any, timeout_s: float = 30) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            found = check()
        except OSError:
            found = None
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


class Server:
    def __init__(self, data_dir: Path, port: int) -> None:
        self.data_dir, self.port = data_dir, port
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with (self.data_dir.parent / "server.log").open("ab") as log:
            self.proc = subprocess.Popen(
                [*RACKWATCH, "run", "--data-dir", str(self.data_dir), "--port", str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for("the server", lambda: get(f"{self.url}/api/v1/status"))

    def stop(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGINT)
        assert self.proc.wait(30) == 0
        self.proc = None


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    s = Server(tmp_path / "data", free_port())
    s.start()
    yield s
    if s.proc is not None:
        s.proc.kill()
        s.proc.wait()


def uptime_stamps(server: Server, name: str) -> list[int]:
    """The stored instants of the agent host's uptime series, raw."""
    query = f"{server.url}/api/v1/series?entity=host/{name}&metric=uptime_seconds&from=-1h"
    body = get(query)
    assert body["tier"] == "raw"
    stamps: list[int] = [t for series in body["series"] for t in series["ts"]]
    return stamps


def test_the_agent_loses_and_duplicates_nothing_across_a_server_restart(
    server: Server, tmp_path: Path
) -> None:
    created = subprocess.run(
        [*RACKWATCH, "token", "create", "--data-dir", str(server.data_dir), "--scope", "ingest"],
        capture_output=True,
        text=True,
        check=True,
    )
    token = next(w for w in created.stdout.split() if w.startswith("rw_"))
    env = {**os.environ, "RACKWATCH_AGENT_TOKEN": token}
    agent = subprocess.Popen(
        [
            *RACKWATCH,
            "agent",
            "--server",
            server.url,
            "--name",
            "itest",
            "--interval",
            str(INTERVAL_S),
            "--buffer",
            str(tmp_path / "buffer"),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for("the agent's first collections", lambda: len(uptime_stamps(server, "itest")) >= 3)
        server.stop()
        time.sleep(4)  # the agent collects on into its buffer
        server.start()
        back_ms = int(time.time() * 1000)
        wait_for(
            "the agent to catch up",
            lambda: max(uptime_stamps(server, "itest")) >= back_ms,
        )
    finally:
        agent.send_signal(signal.SIGINT)
        output = agent.communicate(timeout=30)[0].decode()
    assert agent.returncode == 0, output
    assert "0 waiting" in output, output
    stamps = uptime_stamps(server, "itest")
    assert len(stamps) == len(set(stamps))  # stored once each
    steps = {b - a for a, b in itertools.pairwise(stamps)}
    assert steps == {INTERVAL_S * 1000}, f"a gap or a doubled instant: {sorted(steps)}"
    assert stamps[-1] - stamps[0] >= 8_000  # it spans the outage
    inventory = get(f"{server.url}/api/v1/inventory?kind=host")["entities"]
    assert any(e["path"] == "host/itest" for e in inventory)
