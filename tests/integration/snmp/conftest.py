"""A real SNMP agent for the PDU tests: snmpsim (TESTING.md, recipe 3) started once per session
on a free loopback UDP port, serving the recordings in `data/` (the community of each is its
file name: `apc-rpdu2`, `raritan-px`, `generic`, `broken`)."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from rackwatch.sources.snmp.client import SnmpClient, SnmpError, SnmpTarget

DATA = Path(__file__).parent / "data"
RESPONDER = Path(sys.executable).parent / "snmpsim-command-responder"
START_TIMEOUT_S = 30.0
V3_USER = "rackwatch"
V3_AUTH_KEY = "rackwatch-auth-key"
V3_PRIV_USER = "rackwatch-priv"
V3_PRIV_KEY = "rackwatch-priv-key"


@dataclass(frozen=True)
class Agent:
    host: str
    port: int

    def target(self, community: str, version: str = "2c", **options: float) -> SnmpTarget:
        """The agent as a PDU: the community picks the recording."""
        return SnmpTarget(
            self.host,
            self.port,
            version,  # type: ignore[arg-type]
            community,
            timeout_s=options.get("timeout_s", 2.0),
            retries=int(options.get("retries", 0)),
        )

    def v3_target(
        self, recording: str, auth_key: str = V3_AUTH_KEY, priv_key: str | None = None
    ) -> SnmpTarget:
        """The agent over SNMP v3 (authNoPriv, SHA; with `priv_key`, authPriv with AES-128):
        the context picks the recording."""
        return SnmpTarget(
            self.host,
            self.port,
            "3",
            user=V3_USER if priv_key is None else V3_PRIV_USER,
            auth_protocol="sha",
            auth_key=auth_key,
            priv_protocol="none" if priv_key is None else "aes",
            priv_key=priv_key or "",
            context=recording,
            timeout_s=1.0,
            retries=0,
        )

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _answers(agent: Agent) -> bool:
    async def ask() -> bool:
        async with SnmpClient() as client:
            target = SnmpTarget(agent.host, agent.port, "2c", "generic", timeout_s=0.5, retries=0)
            try:
                await client.get(target, ["1.3.6.1.2.1.1.1.0"])
            except SnmpError:
                return False
            return True

    return asyncio.run(ask())


def start_snmpsim(data_dir: Path, cache_dir: Path, log_path: Path) -> Iterator[Agent]:
    """snmpsim serving `data_dir` until the generator is closed (by its process id)."""
    if not RESPONDER.exists() and shutil.which("snmpsim-command-responder") is None:
        pytest.fail("snmpsim is not installed: run `bash scripts/install --dev`")
    command = str(RESPONDER) if RESPONDER.exists() else "snmpsim-command-responder"
    agent = Agent("127.0.0.1", free_udp_port())
    cache_dir.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [
                command,
                f"--data-dir={data_dir}",
                f"--cache-dir={cache_dir}",
                f"--agent-udpv4-endpoint={agent.address}",
                # SNMP v3: a user with authentication and no privacy, and one with both
                # (AES-128); the context picks the recording
                f"--v3-user={V3_USER}",
                f"--v3-auth-key={V3_AUTH_KEY}",
                "--v3-auth-proto=SHA",
                f"--v3-user={V3_PRIV_USER}",
                f"--v3-auth-key={V3_AUTH_KEY}",
                "--v3-auth-proto=SHA",
                f"--v3-priv-key={V3_PRIV_KEY}",
                "--v3-priv-proto=AES",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "SNMPSIM_ALLOW_ROOT": "true"},
        )
        try:
            deadline = time.monotonic() + START_TIMEOUT_S
            while not _answers(agent):
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"snmpsim did not start; its log: {log_path.read_text()[-2000:]}")
                time.sleep(0.2)
            yield agent
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture(scope="session")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Agent]:
    work = tmp_path_factory.mktemp("snmpsim")
    yield from start_snmpsim(DATA, work / "cache", work / "snmpsim.log")
