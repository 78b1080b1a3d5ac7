"""`rackwatch agent` put together: collect this host every interval; push to a server through
the disk buffer, and/or serve the host's monitoring protocol on `--listen`.

Both modes run on one event loop and take the same collections: with `--server` each one is
written to the buffer and the pusher is woken; with `--listen` each one is sent to the
connected clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rackwatch.agent.buffer import DiskBuffer
from rackwatch.agent.protocol import ProtocolServer
from rackwatch.agent.push import Pusher
from rackwatch.sources.host.loop import Collection, CollectionLoop, Collector, entities_of
from rackwatch.sources.host.machine import host_collectors, host_name

if TYPE_CHECKING:
    from rackwatch.agent.bus_push import BusPublisher

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AgentConfig:
    server: str | None
    """The rackwatch server to push to (`http://host:8000`); None: do not push."""
    token: str | None
    name: str | None
    """The host's name in entity paths (`host/<name>`); None: this machine's hostname."""
    interval_s: float = 5.0
    buffer_dir: Path = Path("rackwatch-agent-buffer")
    buffer_max_bytes: int = 64 * 2**20
    listen: tuple[str, int] | None = None
    """Serve the host monitoring protocol (`agent/protocol.py`) on (host, port); None: not."""
    nats: str | None = None
    """Publish on this NATS server's bus (`nats://host:4222`, `agent/bus_push.py`); None: not."""
    nats_prefix: str = "rackwatch"
    partitions: int = 1


class Agent:
    """The parts of one agent, built and connected, not started."""

    def __init__(self, config: AgentConfig, collectors: list[Collector] | None = None) -> None:
        if config.server is None and config.listen is None and config.nats is None:
            raise ValueError(
                "give --server (push to rackwatch), --nats (publish on a NATS bus), "
                "--listen (serve here), or several"
            )
        if config.server is not None and not config.token:
            raise ValueError(
                "pushing to a server needs a token: create one on the server with "
                "`rackwatch token create --scope ingest`, then pass --token (or set "
                "RACKWATCH_AGENT_TOKEN)"
            )
        self.config = config
        self.name = host_name(config.name)
        self.loop = CollectionLoop(
            collectors if collectors is not None else host_collectors(self.name),
            interval_s=config.interval_s,
        )
        self.wake = asyncio.Event()
        self.buffer: DiskBuffer | None = None
        self.pusher: Pusher | None = None
        if config.server is not None and config.token:
            self.buffer = DiskBuffer(config.buffer_dir, max_bytes=config.buffer_max_bytes)
            self.pusher = Pusher(config.server, config.token, self.buffer)
            self.loop.listeners.append(self._buffer)
            self.loop.inventory_listeners.append(self.pusher.set_inventory)
        self.publisher: BusPublisher | None = None
        if config.nats is not None:
            from rackwatch.agent.bus_push import BusPublisher  # the nats extra, only then

            self.publisher = BusPublisher(
                config.nats, self.name, prefix=config.nats_prefix, partitions=config.partitions
            )
            self.loop.listeners.append(self.publisher.publish)
            self.loop.inventory_listeners.append(self.publisher.announce)
        self.protocol: ProtocolServer | None = None
        if config.listen is not None:
            self.protocol = ProtocolServer(*config.listen)
            self.protocol.attach(self.loop)

    async def _buffer(self, collection: Collection) -> None:
        assert self.buffer is not None
        entry = {"ts_ms": collection.ts_ms, "entities": entities_of(collection.readings)}
        await asyncio.to_thread(self.buffer.append, entry)
        self.wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Collect (and push, and serve) until `stop` is set; OSError when `listen` cannot
        be bound."""
        if self.protocol is not None:
            await self.protocol.start()
        if self.publisher is not None:
            await self.publisher.start()
        tasks = [asyncio.create_task(self.loop.run(), name="agent-collect")]
        if self.pusher is not None:
            tasks.append(asyncio.create_task(self.pusher.run(self.wake), name="agent-push"))
        try:
            await stop.wait()
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if self.pusher is not None:
                await self.pusher.aclose()
            if self.protocol is not None:
                await self.protocol.close()
            if self.publisher is not None:
                await self.publisher.close()
