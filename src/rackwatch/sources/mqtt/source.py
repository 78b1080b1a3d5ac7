"""`MqttSource`: sensors and fans on an MQTT broker as a rackwatch source.

It subscribes (QoS 1, a persistent session: `clean_session=False` and a fixed client id, so the
broker keeps the subscriptions and queues QoS-1 messages while it is away) to every device's
telemetry, state, capabilities and availability under the prefix (docs/MQTT.md), and:

- turns telemetry into Batches on `telemetry.mqtt`, gathered for `flush_interval_s` (one Batch
  per flush, not one per message);
- keeps the inventory from the retained capabilities and availability (`DeviceInventory`),
  handed to `on_inventory` when it changes; an `offline` (the devices' last will) gives a
  `device.offline` Event;
- sends the `fan.set_level` Commands of `commands.mqtt` (the fan controller's, the fan API's)
  to `<device>/cmd/<fan>/level` at QoS 1, and reports each one as `command.applied` once the
  device's retained state shows the level, or `command.rejected` (reason `timeout`) when it
  does not within `command_timeout_s`;
- counts and reports a bad payload (`payload.rejected`, at most one Event per device and
  minute) and goes on: one bad device never blocks the others.

On broker loss it reconnects with exponential backoff (`backoff_s` .. `max_backoff_s`) and
subscribes again. Message handling is synchronous and cheap (a pydantic parse per message);
nothing here blocks the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import aiomqtt
import numpy as np

from rackwatch.bus import Bus, subjects
from rackwatch.errors import CommandRejected
from rackwatch.model.records import Batch, Command, CommandAction, Event, EventKind, Severity
from rackwatch.model.series import SeriesRegistry
from rackwatch.sources.mqtt import topics
from rackwatch.sources.mqtt.confirm import Confirmations, PendingCommand
from rackwatch.sources.mqtt.inventory import SOURCE, DeviceInventory
from rackwatch.sources.mqtt.payloads import (
    MAX_LEVEL,
    Capabilities,
    DeviceState,
    LevelCommand,
    PayloadError,
    Telemetry,
    decode,
    decode_availability,
    encode,
)
from rackwatch.sources.mqtt.topics import BrokerAddress
from rackwatch.sources.readings import InventoryItem

log = logging.getLogger(__name__)

PAYLOAD_REJECTED = EventKind.PAYLOAD_REJECTED
DEVICE_OFFLINE = EventKind.DEVICE_OFFLINE
DEVICE_ONLINE = EventKind.DEVICE_ONLINE
"""Event kinds of this source."""
TIMEOUT = "timeout"
REPORT_EVERY_S = 60.0
"""At most one `payload.rejected` Event per device in this many seconds (the rest counted)."""
LEVEL_NAMES = {"off": 0, "low": 1, "medium": 2, "high": 3}
MAX_UNSENT = 10_000
MAX_DEVICES = 100_000
"""Devices kept in the inventory; more capabilities are refused as bad payloads."""

InventoryListener = Callable[[list[InventoryItem]], Awaitable[None]]


def parse_level(value: Any) -> int:
    """0..3 or off/low/medium/high; CommandRejected otherwise."""
    if isinstance(value, str) and value.lower() in LEVEL_NAMES:
        return LEVEL_NAMES[value.lower()]
    if (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value == int(value)
        and 0 <= value <= MAX_LEVEL
    ):
        return int(value)
    raise CommandRejected(f"a fan level is 0..3 or off/low/medium/high, got {str(value)[:32]!r}")


class MqttSource:
    """One broker's devices. Run `run()` (ingest, until cancelled) and `obey()` (commands,
    until the bus closes) as tasks."""

    name = SOURCE

    def __init__(
        self,
        address: BrokerAddress,
        registry: SeriesRegistry,
        bus: Bus,
        *,
        prefix: str = topics.DEFAULT_PREFIX,
        client_id: str = "rackwatch-ingest",
        command_timeout_s: float = 15.0,
        flush_interval_s: float = 0.1,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        max_series: int = 200_000,
        on_inventory: InventoryListener | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.address = address
        self.registry = registry
        self.bus = bus
        self.prefix = topics.validate_prefix(prefix)
        self.client_id = client_id
        self.flush_interval_s = flush_interval_s
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.max_series = max_series
        self.on_inventory = on_inventory
        self.clock = clock
        self.monotonic = monotonic
        self.inventory = DeviceInventory()
        self.confirmations = Confirmations(command_timeout_s)
        self.connected = asyncio.Event()
        self.n_connects = 0
        self.n_messages = 0
        self.n_samples = 0
        self.n_published = 0
        self.n_bad_payloads = 0
        self.n_dropped_series = 0
        self.n_commands_sent = 0
        self.n_confirmed = 0
        self.n_timeouts = 0
        self.n_superseded = 0
        self.n_unsent_dropped = 0
        self._client: aiomqtt.Client | None = None
        self._entities: dict[str, str] = {}
        self._ts: list[int] = []
        self._series: list[int] = []
        self._values: list[float] = []
        self._events: list[Event] = []
        self._unsent: deque[tuple[str, bytes]] = deque()
        self.fan_levels: dict[str, dict[str, int]] = {}
        """device -> fan -> the level its retained state reports"""
        self._inventory_changed = False
        self._reported: dict[str, tuple[float, int]] = {}
        """device -> (when its last bad payload was reported, how many since)"""

    # --- the connection ----------------------------------------------------------------

    def _new_client(self) -> aiomqtt.Client:
        a = self.address
        return aiomqtt.Client(
            a.host,
            a.port,
            username=a.username,
            password=a.password,
            identifier=self.client_id,
            clean_session=False,
            keepalive=30,
            max_queued_incoming_messages=100_000,
        )

    async def run(self) -> None:
        """Ingest until cancelled, reconnecting with backoff whenever the broker goes."""
        flusher = asyncio.create_task(self._flush_loop(), name="mqtt-flush")
        backoff = self.backoff_s
        try:
            while True:
                try:
                    async with self._new_client() as client:
                        await self._connected(client)
                        backoff = self.backoff_s
                        async for message in client.messages:
                            self.handle(str(message.topic), _payload_bytes(message.payload))
                except aiomqtt.MqttError as exc:
                    was = self._client is not None
                    self._client = None
                    self.connected.clear()
                    first = was or backoff == self.backoff_s  # later retries: debug only
                    log.log(
                        logging.WARNING if first else logging.DEBUG,
                        "MQTT broker %s %s (%s); retrying in %.1f s",
                        self.address.display,
                        "lost" if was else "unreachable",
                        exc,
                        backoff,
                    )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff_s)
        finally:  # `connected` keeps its last value: a stopped source has not lost its broker
            self._client = None
            flusher.cancel()
            await asyncio.gather(flusher, return_exceptions=True)
            await self.flush()

    async def _connected(self, client: aiomqtt.Client) -> None:
        for pattern in topics.subscriptions(self.prefix):
            await client.subscribe(pattern, qos=1)  # again on every connection
        self._client = client
        self.n_connects += 1
        self.connected.set()
        if self.n_connects > 1:
            log.info("MQTT broker %s is back; subscribed again", self.address.display)
        while self._unsent:  # commands issued while the broker was away
            topic, payload = self._unsent.popleft()
            await client.publish(topic, payload, qos=1)

    # --- ingest (synchronous, cheap) ---------------------------------------------------

    def handle(self, topic: str, payload: bytes) -> None:
        """One message: validated and folded in; a bad one is counted and reported."""
        self.n_messages += 1
        parts = topics.parse_topic(self.prefix, topic)
        if parts is None or parts.kind == topics.CMD:
            return
        try:
            entity = self._entity(parts.device)
            if parts.kind == topics.TELEMETRY:
                self._telemetry(entity, decode(Telemetry, payload))
            elif not payload and parts.kind in (topics.STATE, topics.AVAILABILITY):
                return  # a retained state or availability cleared (a device going away)
            elif parts.kind == topics.STATE:
                self._state(parts.device, decode(DeviceState, payload))
            elif parts.kind == topics.CAPABILITIES:
                self._capabilities(parts.device, payload)
            else:
                self._availability(parts.device, entity, decode_availability(payload))
        except (PayloadError, ValueError) as exc:
            self._bad(parts.device, parts.kind, str(exc))
        except Exception as exc:  # a bug must not stop the other devices' messages
            log.exception("MQTT message on %s could not be handled", topic[:256])
            self._bad(parts.device, parts.kind, f"{type(exc).__name__}: {exc}"[:200])

    def _entity(self, device: str) -> str:
        entity = self._entities.get(device)
        if entity is None:
            entity = topics.entity_of(device)
            if len(self._entities) < self.max_series:
                self._entities[device] = entity
        return entity

    def _telemetry(self, entity: str, telemetry: Telemetry) -> None:
        ts = telemetry.ts if telemetry.ts is not None else round(self.clock() * 1000)
        rows = [(entity, m, v) for m, v in telemetry.values.items()]
        for component, values in telemetry.components.items():
            path = f"{entity}/{component}"
            rows.extend((path, m, v) for m, v in values.items())
        for path, metric, value in rows:
            series = self.registry.get(path, metric)
            if series is None:
                if len(self.registry) >= self.max_series:
                    self.n_dropped_series += 1
                    continue
                series = self.registry.intern(path, metric)
            self._ts.append(ts)
            self._series.append(series)
            self._values.append(math.nan if value is None else value)

    def _state(self, device: str, state: DeviceState) -> None:
        # kept for devices not yet announced too: retained states may come before capabilities
        levels = self.fan_levels.get(device)
        if levels is None and len(self.fan_levels) < self.max_series:
            levels = self.fan_levels[device] = {}
        if levels is not None:  # the retained state is the whole state: it replaces the last
            levels.clear()
            levels.update(state.fans)
        for pending, latency_s in self.confirmations.observe(device, state.fans, self.monotonic()):
            self._confirmed(pending, latency_s)

    def _capabilities(self, device: str, payload: bytes) -> None:
        if not payload:  # a retained message cleared: the device is gone
            if self.inventory.remove(device):
                self.fan_levels.pop(device, None)
                self._inventory_changed = True
            return
        capabilities = decode(Capabilities, payload)
        if device not in self.inventory.devices and len(self.inventory.devices) >= MAX_DEVICES:
            raise PayloadError(f"more than {MAX_DEVICES} devices announced: this one is refused")
        if self.inventory.announce(device, capabilities):
            self._inventory_changed = True

    def _availability(self, device: str, entity: str, is_online: bool) -> None:
        if not self.inventory.set_online(device, is_online):
            return
        self._inventory_changed = True
        self._events.append(
            Event(
                ts=round(self.clock() * 1000),
                kind=DEVICE_ONLINE if is_online else DEVICE_OFFLINE,
                entity=entity,
                severity=Severity.INFO if is_online else Severity.WARNING,
                attributes={"source": SOURCE, "device": device},
            )
        )
        log.log(
            logging.INFO if is_online else logging.WARNING,
            "MQTT device %s is %s",
            device,
            "online" if is_online else "offline",
        )

    def _bad(self, device: str, kind: str, reason: str) -> None:
        self.n_bad_payloads += 1
        now = self.monotonic()
        key = device[: topics.MAX_DEVICE_ID_LENGTH]
        last, suppressed = self._reported.get(key, (-math.inf, 0))
        if now - last < REPORT_EVERY_S:
            self._reported[key] = (last, suppressed + 1)
            return
        if len(self._reported) > 10_000:
            self._reported.clear()
        self._reported[key] = (now, 0)
        log.warning("MQTT device %r: bad %s payload: %s", key, kind, reason)
        try:
            entity = topics.entity_of(device)
        except ValueError:
            entity = "room"
        self._events.append(
            Event(
                ts=round(self.clock() * 1000),
                kind=PAYLOAD_REJECTED,
                entity=entity,
                severity=Severity.WARNING,
                attributes={
                    "source": SOURCE,
                    "device": key,
                    "topic": kind,
                    "reason": reason,
                    "suppressed": suppressed,
                },
            )
        )

    # --- hand-offs to the bus ----------------------------------------------------------

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval_s)
            try:
                await self.flush()
            except Exception:  # e.g. the store refused the inventory: the next flush goes on
                log.exception("MQTT source: a flush failed")

    async def flush(self) -> None:
        """Publish what was gathered: one Batch, the Events, expired commands, inventory."""
        if self._ts:
            batch = Batch.of(
                np.array(self._ts, dtype=np.int64),
                np.array(self._series, dtype=np.int32),
                np.array(self._values, dtype=np.float64),
            )
            self._ts, self._series, self._values = [], [], []
            self.n_samples += len(batch)
            self.n_published += 1
            await self.bus.publish(subjects.telemetry(SOURCE), batch)
        for pending in self.confirmations.expired(self.monotonic()):
            self._timed_out(pending)
        events, self._events = self._events, []
        for event in events:
            await self.bus.publish(subjects.events(event.kind), event)
        if self._inventory_changed and self.on_inventory is not None:
            self._inventory_changed = False
            await self.on_inventory(self.inventory.items())

    # --- commands ------------------------------------------------------------------------

    async def obey(self) -> None:
        """Send every Command of `commands.mqtt` to its device until the bus closes."""
        async with self.bus.subscribe(subjects.commands(SOURCE)) as commands:
            async for _subject, command in commands:
                try:
                    await self.send(command)
                except CommandRejected as exc:
                    self._command_event(command, EventKind.COMMAND_REJECTED, {"reason": str(exc)})
                    await self.flush_events()
                except Exception as exc:  # one bad command never stops the next ones
                    log.exception("MQTT command %r could not be sent", command)
                    reason = f"{type(exc).__name__}: {exc}"[:200]
                    self._command_event(command, EventKind.COMMAND_REJECTED, {"reason": reason})
                    await self.flush_events()

    async def flush_events(self) -> None:
        events, self._events = self._events, []
        for event in events:
            await self.bus.publish(subjects.events(event.kind), event)

    async def send(self, command: Command) -> None:
        """Publish a `fan.set_level` at QoS 1 to each fan it names and wait (without
        blocking) for the device's state; CommandRejected for anything it cannot send."""
        if command.action != CommandAction.FAN_SET_LEVEL:
            raise CommandRejected(
                f"MQTT devices take {CommandAction.FAN_SET_LEVEL.value!r}, not "
                f"{str(command.action)[:64]!r}"
            )
        level = parse_level(command.params.get("level"))
        targets = self.inventory.fan_target(command.target)
        reason = command.params.get("reason")
        now = self.monotonic()
        for device, fan in targets:
            payload = LevelCommand(
                level=level,
                id=f"{device}/{fan}@{round(self.clock() * 1000)}"[:128],
                issued_by=str(command.issued_by)[:128],
                reason=None if reason is None else str(reason)[:128],
            )
            fan_command = Command(
                self.inventory.fan_entity(device, fan),
                command.action,
                {**command.params, "level": level},
                command.issued_by,
                command.ts,
            )
            replaced = self.confirmations.expect(device, fan, level, fan_command, now)
            if replaced is not None and replaced.level != level:
                self._timed_out(replaced, reason="superseded by a newer command")
            await self._publish(topics.topic(self.prefix, device, topics.CMD, fan), encode(payload))
            self.n_commands_sent += 1
            # the state already shows it (a device that reports on change only)
            if self.fan_levels.get(device, {}).get(fan) == level:
                for pending, latency_s in self.confirmations.observe(device, {fan: level}, now):
                    self._confirmed(pending, latency_s)

    async def _publish(self, topic: str, payload: bytes) -> None:
        client = self._client
        if client is not None:
            try:
                await client.publish(topic, payload, qos=1)
                return
            except aiomqtt.MqttError:
                pass  # the connection went: sent again when it is back
        if len(self._unsent) >= MAX_UNSENT:
            self._unsent.popleft()
            self.n_unsent_dropped += 1
        self._unsent.append((topic, payload))

    def _confirmed(self, pending: PendingCommand, latency_s: float) -> None:
        self.n_confirmed += 1
        self._command_event(
            pending.command,
            EventKind.COMMAND_APPLIED,
            {"level": pending.level, "confirmed_s": round(latency_s, 3), "via": SOURCE},
        )

    def _timed_out(self, pending: PendingCommand, reason: str | None = None) -> None:
        if reason is None:
            self.n_timeouts += 1
        else:
            self.n_superseded += 1
        why = reason or (
            f"{TIMEOUT}: the device's state did not show level {pending.level} within "
            f"{self.confirmations.timeout_s:g} s"
        )
        log.warning("MQTT fan command for %s: %s", pending.command.target, why)
        self._command_event(
            pending.command,
            EventKind.COMMAND_REJECTED,
            {"level": pending.level, "reason": why, "via": SOURCE},
        )

    def _command_event(self, command: Command, kind: EventKind, details: dict[str, Any]) -> None:
        attributes: dict[str, Any] = {"action": str(command.action)}
        reason = command.params.get("reason")
        if reason is not None and kind is EventKind.COMMAND_APPLIED:
            attributes["reason"] = str(reason)[:128]
        attributes |= details
        attributes["issued_by"] = command.issued_by
        self._events.append(
            Event(
                ts=round(self.clock() * 1000),
                kind=kind,
                entity=command.target[:256],
                severity=Severity.INFO if kind is EventKind.COMMAND_APPLIED else Severity.WARNING,
                attributes=attributes,
            )
        )


def _payload_bytes(payload: Any) -> bytes:
    if isinstance(payload, bytes):
        return payload
    if isinstance(payload, bytearray):
        return bytes(payload)
    if isinstance(payload, str):
        return payload.encode()
    return b"" if payload is None else str(payload).encode()


async def discover(
    address: BrokerAddress, *, prefix: str = topics.DEFAULT_PREFIX, wait_s: float = 2.0
) -> list[InventoryItem]:
    """The inventory the devices have announced (their retained capabilities), gathered for
    `wait_s` on a throwaway clean session; MqttError when the broker cannot be reached."""
    inventory = DeviceInventory()
    async with aiomqtt.Client(
        address.host, address.port, username=address.username, password=address.password
    ) as client:
        await client.subscribe(f"{topics.validate_prefix(prefix)}/+/{topics.CAPABILITIES}", qos=1)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        messages = client.messages.__aiter__()
        while (left := deadline - loop.time()) > 0:
            try:
                message = await asyncio.wait_for(messages.__anext__(), left)
            except TimeoutError:
                break
            parts = topics.parse_topic(prefix, str(message.topic))
            if parts is None or parts.kind != topics.CAPABILITIES:
                continue
            try:
                topics.entity_of(parts.device)
                inventory.announce(
                    parts.device, decode(Capabilities, _payload_bytes(message.payload))
                )
            except ValueError as exc:
                log.warning("MQTT device %r: bad capabilities: %s", parts.device[:128], exc)
    return inventory.items()


def discover_blocking(
    address: BrokerAddress, *, prefix: str = topics.DEFAULT_PREFIX, wait_s: float = 2.0
) -> list[InventoryItem]:
    """`discover` from synchronous code, in a thread of its own (so it works whether or not
    the caller's thread runs an event loop); blocks for about `wait_s`."""
    found: list[list[InventoryItem]] = []
    failed: list[BaseException] = []

    def work() -> None:
        try:
            found.append(asyncio.run(discover(address, prefix=prefix, wait_s=wait_s)))
        except BaseException as exc:  # handed to the caller's thread
            failed.append(exc)

    thread = threading.Thread(target=work, name="mqtt-discover")
    thread.start()
    thread.join()
    if failed:
        raise failed[0]
    return found[0]
