"""The twin's room as MQTT devices (`rackwatch devices`): the device side of docs/MQTT.md.

Every entity of the twin's inventory except the fans is one device (`c01/r01/s01` is the device
`c01.r01.s01`); a server's fans are its components (telemetry `components.fan1`, state
`fans.fan1`, commands `cmd/fan1/level`). Each device has its own MQTT connection, so each has
its own last will: `offline` (retained) on its availability topic, sent by the broker when the
process dies; a clean stop publishes `offline` itself.

The twin runs exactly as in `rackwatch run` (a `TwinSource` paced by a `PacedPoller` on a
private in-memory bus); each step's Batch is cut into one telemetry message per device, then
each server's retained state (its fans' levels as the twin reports them) follows. A level
command from the broker becomes a `fan.set_level` Command on `commands.twin`, applied by the
poller from the next step on, as the twin applies the fan controller's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import aiomqtt
import numpy as np
from pydantic import ValidationError

from rackwatch.bus import MemoryBus, Subscription, subjects
from rackwatch.errors import SourceUnavailable
from rackwatch.model.entity import parent
from rackwatch.model.records import Batch, Command, CommandAction
from rackwatch.model.series import SeriesRegistry
from rackwatch.sources.mqtt import topics
from rackwatch.sources.mqtt.payloads import (
    MAX_LEVEL,
    Capabilities,
    DeviceState,
    LevelCommand,
    PayloadError,
    Telemetry,
    decode,
    encode,
)
from rackwatch.sources.mqtt.topics import BrokerAddress
from rackwatch.sources.poller import PacedPoller
from rackwatch.sources.twin import TwinSource
from rackwatch.twin.simulator import Twin

log = logging.getLogger(__name__)

KINDS = {"server", "pdu", "crac", "rack", "cluster", "room"}
"""Inventory kinds published as devices (fans are their servers' components)."""


@dataclass
class DeviceLink:
    """One device's connection: its capabilities and availability, its commands."""

    device: str
    capabilities: Capabilities
    client: aiomqtt.Client | None = None
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    n_connects: int = 0


def capabilities_of(twin: Twin) -> dict[str, Capabilities]:
    """Each device's capabilities from the twin's inventory (static scalar facts only)."""
    items = twin.inventory()
    metrics: dict[str, list[str]] = defaultdict(list)
    for key in twin.series_keys:
        metrics[key.entity].append(key.metric)
    fans: dict[str, list[str]] = defaultdict(list)
    for item in items:
        if item["kind"] == "fan":
            fans[str(item["server"])].append(str(item["entity"]).rsplit("/", 1)[1])
    found = {}
    for item in items:
        if item["kind"] not in KINDS:
            continue
        entity = str(item["entity"])
        attributes = {
            k: v
            for k, v in item.items()
            if k not in ("entity", "kind", "rack", "slot")
            and (isinstance(v, str | bool) or (isinstance(v, int | float) and math.isfinite(v)))
        }
        found[topics.device_of(entity)] = Capabilities(
            kind=item["kind"],
            metrics=sorted(set(metrics.get(entity, []))),
            fans=fans.get(entity, []),
            rack=item.get("rack"),
            slot=item.get("slot"),
            attributes=attributes,
        )
    return found


class TwinDevices:
    """Run the twin's devices on a broker until `stop` (see the module docstring)."""

    def __init__(
        self,
        twin: Twin,
        address: BrokerAddress,
        *,
        prefix: str = topics.DEFAULT_PREFIX,
        speed: float = 1.0,
        client_prefix: str | None = None,
        telemetry_qos: int = 1,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
    ) -> None:
        self.twin = twin
        self.address = address
        self.prefix = topics.validate_prefix(prefix)
        self.client_prefix = client_prefix or self.prefix.replace("/", "_")
        """Each device's client id is `<client_prefix>-<device>` (a persistent session)."""
        self.telemetry_qos = telemetry_qos
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.registry = SeriesRegistry()
        self.bus = MemoryBus()
        self.source = TwinSource(twin, self.registry)
        self.poller = PacedPoller(self.source, self.bus, step_s=twin.step_s, speed=speed)
        self.links = {d: DeviceLink(d, c) for d, c in capabilities_of(twin).items()}
        self.n_steps = 0
        self.n_messages = 0
        self.n_lost = 0
        """Messages not sent because the device's connection was down."""
        self.n_commands = 0
        self.n_bad_commands = 0
        self.n_invalid = 0
        """Telemetry messages the schema refused (never sent)."""
        self._owner = self._owners()

    def _owners(self) -> list[tuple[str, str | None, str]]:
        """Per series id: (device, component or None, metric)."""
        by_entity = {topics.entity_of(d): d for d in self.links}
        owners: list[tuple[str, str | None, str]] = []
        for key in self.twin.series_keys:
            if key.entity in by_entity:
                owners.append((by_entity[key.entity], None, key.metric))
                continue
            up = parent(key.entity)
            while up is not None and up not in by_entity:
                up = parent(up)
            if up is None:
                raise ValueError(f"series of {key.entity!r} belongs to no device")
            component = key.entity[len(up) + 1 :].replace("/", "_")
            owners.append((by_entity[up], component, key.metric))
        return owners

    # --- the connections -----------------------------------------------------------------

    async def _link(self, link: DeviceLink) -> None:
        availability = topics.topic(self.prefix, link.device, topics.AVAILABILITY)
        backoff = self.backoff_s
        while True:
            client = aiomqtt.Client(
                self.address.host,
                self.address.port,
                username=self.address.username,
                password=self.address.password,
                identifier=f"{self.client_prefix}-{link.device}"[:128],
                clean_session=False,
                will=aiomqtt.Will(availability, b"offline", qos=1, retain=True),
                keepalive=15,
            )
            try:
                async with client:
                    await client.subscribe(
                        topics.topic(self.prefix, link.device, topics.CMD, "+"), qos=1
                    )
                    await client.publish(
                        topics.topic(self.prefix, link.device, topics.CAPABILITIES),
                        encode(link.capabilities),
                        qos=1,
                        retain=True,
                    )
                    await client.publish(availability, b"online", qos=1, retain=True)
                    link.client = client
                    link.n_connects += 1
                    link.connected.set()
                    backoff = self.backoff_s
                    try:
                        async for message in client.messages:
                            await self._command(link, str(message.topic), message.payload)
                    except asyncio.CancelledError:
                        link.client = None
                        with contextlib.suppress(aiomqtt.MqttError):  # a clean stop
                            await client.publish(availability, b"offline", qos=1, retain=True)
                        raise
            except aiomqtt.MqttError as exc:
                # the first failure of a spell is a warning, the retries that follow are not
                first = backoff == self.backoff_s
                log.log(
                    logging.WARNING if first else logging.DEBUG,
                    "device %s: broker %s (%s); retrying in %.1f s",
                    link.device,
                    "lost" if link.client is not None else "unreachable",
                    exc,
                    backoff,
                )
            link.client = None
            link.connected.clear()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self.max_backoff_s)

    async def _command(self, link: DeviceLink, topic: str, payload: Any) -> None:
        parts = topics.parse_topic(self.prefix, topic)
        if parts is None or parts.kind != topics.CMD or parts.fan is None:
            return
        try:
            if parts.fan not in link.capabilities.fans:
                raise PayloadError(f"no fan {parts.fan[:64]!r}")
            order = decode(LevelCommand, payload if isinstance(payload, bytes) else b"")
        except PayloadError as exc:
            self.n_bad_commands += 1
            log.warning("device %s: command refused: %s", link.device, exc)
            return
        self.n_commands += 1
        params: dict[str, Any] = {"level": order.level}
        if order.reason is not None:
            params["reason"] = order.reason
        target = f"{topics.entity_of(link.device)}/{parts.fan}"
        command = Command(target, CommandAction.FAN_SET_LEVEL, params, order.issued_by)
        await self.bus.publish(subjects.commands(self.source.name), command)

    async def _send(self, device: str, kind: str, payload: bytes, qos: int, retain: bool) -> None:
        client = self.links[device].client
        if client is None:
            self.n_lost += 1
            return
        try:
            await client.publish(
                topics.topic(self.prefix, device, kind), payload, qos=qos, retain=retain
            )
            self.n_messages += 1
        except aiomqtt.MqttError:
            self.n_lost += 1

    # --- telemetry -----------------------------------------------------------------------

    def messages(self, batch: Batch) -> list[tuple[str, Telemetry, DeviceState | None]]:
        """A Batch cut into (device, telemetry, state) per instant, in time order."""
        out = []
        for ts in np.unique(batch.ts).tolist():
            rows = batch.ts == ts
            values: dict[str, dict[str, float | None]] = defaultdict(dict)
            parts: dict[str, dict[str, dict[str, float | None]]] = defaultdict(
                lambda: defaultdict(dict)
            )
            for series, value in zip(
                batch.series[rows].tolist(), batch.value[rows].tolist(), strict=True
            ):
                device, component, metric = self._owner[series]
                reading = None if math.isnan(value) else value
                if component is None:
                    values[device][metric] = reading
                else:
                    parts[device][component][metric] = reading
            for device in sorted(set(values) | set(parts)):
                try:
                    telemetry = Telemetry(
                        ts=int(ts),
                        values=values.get(device, {}),
                        components={c: dict(v) for c, v in parts.get(device, {}).items()},
                    )
                except ValidationError as exc:  # e.g. an infinite reading: this device skips it
                    self.n_invalid += 1
                    log.warning("device %s: telemetry not sent: %s", device, exc.errors()[0])
                    continue
                fans = self.links[device].capabilities.fans
                levels = {
                    fan: max(0, min(MAX_LEVEL, round(level)))
                    for fan in fans
                    if (level := telemetry.components.get(fan, {}).get("fan_level")) is not None
                }
                state = DeviceState(ts=int(ts), fans=levels) if fans else None
                out.append((device, telemetry, state))
        return out

    async def _forward(self, telemetry: Subscription) -> None:
        async for _subject, batch in telemetry:
            for device, message, state in self.messages(batch):
                await self._send(
                    device, topics.TELEMETRY, encode(message), self.telemetry_qos, False
                )
                if state is not None:
                    await self._send(device, topics.STATE, encode(state), 1, True)
            self.n_steps += len(np.unique(batch.ts))

    # --- the whole -----------------------------------------------------------------------

    async def run(self, stop: asyncio.Event, *, connect_timeout_s: float = 30.0) -> None:
        """Connect every device, then step the twin until `stop`; every device goes offline
        (retained) before it returns."""
        links = [
            asyncio.create_task(self._link(link), name=f"device-{d}")
            for d, link in self.links.items()
        ]
        try:
            async with self.bus.subscribe(subjects.telemetry(self.source.name)) as telemetry:
                forward = asyncio.create_task(self._forward(telemetry), name="devices-forward")
                obey = asyncio.create_task(self.poller.obey(), name="devices-obey")
                waiting = [link.connected.wait() for link in self.links.values()]
                try:
                    await asyncio.wait_for(asyncio.gather(*waiting), connect_timeout_s)
                except TimeoutError:
                    n_up = sum(link.connected.is_set() for link in self.links.values())
                    raise SourceUnavailable(
                        f"MQTT broker {self.address.display}: {n_up} of {len(self.links)} "
                        f"devices connected within {connect_timeout_s:g} s"
                    ) from None
                await self.poller.run(stop)
                await asyncio.sleep(0)
                self.bus.close()
                await asyncio.gather(forward, obey, return_exceptions=True)
        finally:
            self.bus.close()
            for task in links:
                task.cancel()
            await asyncio.gather(*links, return_exceptions=True)
