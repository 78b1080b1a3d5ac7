"""Real brokers for the MQTT tests: the shared Mosquitto on 127.0.0.1:1883 (running here and in
CI), with a unique topic prefix per test, and a private `mosquitto` on a free port for the
tests that stop and restart the broker (TESTING.md: started by the test, ended by its PID)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from rackwatch.bus import MemoryBus, subjects
from rackwatch.model import Batch, Event, SeriesRegistry
from rackwatch.sources.mqtt import BrokerAddress, MqttSource

MOSQUITTO = "/usr/sbin/mosquitto"
SHARED = BrokerAddress("127.0.0.1", 1883)
IN_CI = bool(os.environ.get("CI"))


def shared_broker_up() -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex((SHARED.host, SHARED.port)) == 0


needs_shared_broker = pytest.mark.skipif(
    not shared_broker_up() and not IN_CI, reason="needs Mosquitto on 127.0.0.1:1883"
)
needs_mosquitto = pytest.mark.skipif(
    shutil.which(MOSQUITTO) is None and not IN_CI,
    reason="needs Debian's mosquitto binary (apt-get install mosquitto)",
)


@pytest.fixture
def prefix() -> str:
    """A topic prefix of this test's own: tests never see each other's devices."""
    return f"rwtest-{uuid.uuid4().hex[:12]}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class PrivateBroker:
    """A mosquitto process with persistence (sessions survive a restart), on a fixed port."""

    directory: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None
    persistence: bool = True

    @property
    def address(self) -> BrokerAddress:
        return BrokerAddress("127.0.0.1", self.port)

    def start(self) -> None:
        config = self.directory / "mosquitto.conf"
        config.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
            # as root, mosquitto would drop to the `mosquitto` user, who cannot write here
            + ("user root\n" if os.geteuid() == 0 else "")
            + (
                f"persistence true\npersistence_location {self.directory}/\n"
                if self.persistence
                else "persistence false\n"
            )
        )
        log = open(self.directory / "mosquitto.log", "ab")  # noqa: SIM115 - closed in stop
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(config)], stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + 10
        while True:
            assert self.proc.poll() is None, (self.directory / "mosquitto.log").read_text()
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            assert time.monotonic() < deadline, "mosquitto did not start listening"
            time.sleep(0.05)

    def stop(self) -> None:
        """SIGTERM: mosquitto saves its sessions and queued messages, then exits."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc = None


@pytest.fixture
def private_broker(tmp_path: Path) -> Iterator[PrivateBroker]:
    broker = PrivateBroker(tmp_path, free_port())
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@dataclass
class Collected:
    """What the source put on the bus."""

    batches: list[Batch] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)

    def samples(self, registry: SeriesRegistry) -> list[tuple[int, str, str, float]]:
        rows = []
        for b in self.batches:
            for ts, sid, value in zip(
                b.ts.tolist(), b.series.tolist(), b.value.tolist(), strict=True
            ):
                key = registry.key(sid)
                rows.append((ts, key.entity, key.metric, value))
        return rows

    def kinds(self) -> list[str]:
        return [str(e.kind) for e in self.events]


@contextlib.asynccontextmanager
async def running_source(
    address: BrokerAddress, prefix: str, **options: Any
) -> AsyncIterator[tuple[MqttSource, Collected, MemoryBus]]:
    """An `MqttSource` running (ingest and commands) on a fresh bus, connected; stopped and
    its bus closed on exit."""
    bus, registry, collected = MemoryBus(), SeriesRegistry(), Collected()
    options.setdefault("client_id", f"{prefix}-ingest")
    source = MqttSource(address, registry, bus, prefix=prefix, **options)

    async def collect() -> None:
        async with bus.subscribe("telemetry.>") as tel, bus.subscribe("events.>") as ev:
            ready.set()

            async def batches() -> None:
                async for _s, batch in tel:
                    collected.batches.append(batch)

            async def events() -> None:
                async for _s, event in ev:
                    collected.events.append(event)

            await asyncio.gather(batches(), events())

    ready = asyncio.Event()
    collector = asyncio.create_task(collect())
    await ready.wait()
    run = asyncio.create_task(source.run())
    obey = asyncio.create_task(source.obey())
    await asyncio.wait_for(source.connected.wait(), 10)
    try:
        yield source, collected, bus
    finally:
        run.cancel()
        await asyncio.gather(run, return_exceptions=True)
        bus.close()
        await asyncio.gather(obey, collector)
        with contextlib.suppress(aiomqtt.MqttError):  # a restarted broker may be gone by now
            await forget_sessions(address, [str(options["client_id"])])


async def forget_sessions(address: BrokerAddress, client_ids: list[str]) -> None:
    """End the persistent sessions a test opened (a clean-session connect discards them), so
    the shared broker keeps nothing of the test."""
    for client_id in client_ids:
        async with aiomqtt.Client(
            address.host, address.port, identifier=client_id, clean_session=True
        ):
            pass


async def wait_for(condition: Any, timeout_s: float = 10.0, what: str = "condition") -> None:
    """Poll `condition()` until true (the broker's delivery is asynchronous)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def publisher(address: BrokerAddress, **options: Any) -> AsyncIterator[aiomqtt.Client]:
    async with aiomqtt.Client(address.host, address.port, **options) as client:
        yield client


def publish_subject() -> str:
    return subjects.commands("mqtt")
