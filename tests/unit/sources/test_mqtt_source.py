"""`MqttSource`'s ingest path without a broker: `handle` is synchronous and `flush` publishes
on the bus, so a message can be fed as the broker would deliver it (the broker itself is
tested in tests/integration/mqtt)."""

from __future__ import annotations

import asyncio
import json
import math

import pytest

from rackwatch.bus import MemoryBus
from rackwatch.errors import CommandRejected
from rackwatch.model import Batch, Command, Event, SeriesRegistry
from rackwatch.sources.mqtt import BrokerAddress, MqttSource
from rackwatch.sources.mqtt.source import DEVICE_OFFLINE, PAYLOAD_REJECTED, parse_level

TS = 1_767_225_600_000


def _feed(messages: list[tuple[str, bytes]], **options: object) -> tuple[MqttSource, list[object]]:
    bus = MemoryBus()
    source = MqttSource(
        BrokerAddress("127.0.0.1", 1),
        SeriesRegistry(),
        bus,
        prefix="p",
        clock=lambda: TS / 1000,
        **options,
    )  # type: ignore[arg-type]
    out: list[object] = []

    async def main() -> None:
        async with bus.subscribe(">") as sub:
            for topic, payload in messages:
                source.handle(topic, payload)
            await source.flush()
            bus.close()
            out.extend([m async for _s, m in sub])

    asyncio.run(main())
    return source, out


def test_telemetry_is_one_batch_per_flush() -> None:
    source, out = _feed(
        [
            (
                "p/c01.r01.s01/telemetry",
                json.dumps({"ts": TS, "values": {"power_watts": 200}}).encode(),
            ),
            ("p/c01.r01.s02/telemetry", json.dumps({"values": {"power_watts": None}}).encode()),
        ]
    )
    (batch,) = out
    assert isinstance(batch, Batch)
    keys = [source.registry.key(s) for s in batch.series.tolist()]
    assert [(k.entity, k.metric) for k in keys] == [
        ("c01/r01/s01", "power_watts"),
        ("c01/r01/s02", "power_watts"),
    ]
    assert batch.ts.tolist() == [TS, TS]  # the second one stamped on receipt (the clock)
    assert batch.value[0] == 200 and math.isnan(batch.value[1])


def test_bad_payloads_are_counted_reported_and_change_nothing() -> None:
    source, out = _feed(
        [
            ("p/c01.r01.s01/telemetry", b'{"values": {"power_watts": Infinity}}'),
            ("p/c01.r01.s01/capabilities", b'{"kind": "toaster"}'),
            ("p/c01.r01.s02/availability", b"maybe"),
            ("p/a..b/telemetry", b'{"values": {}}'),
            ("p/c01.r01.s03/telemetry", b'{"values": {"power_watts": 1}}'),
        ]
    )
    assert source.n_bad_payloads == 4
    assert not source.inventory.devices
    batches = [m for m in out if isinstance(m, Batch)]
    events = [m for m in out if isinstance(m, Event)]
    assert len(batches) == 1 and len(batches[0]) == 1  # the good one still went through
    # one event per device and minute: the second bad payload of s01 is counted, not reported
    assert [(e.kind, e.entity) for e in events] == [
        (PAYLOAD_REJECTED, "c01/r01/s01"),
        (PAYLOAD_REJECTED, "c01/r01/s02"),
        (PAYLOAD_REJECTED, "room"),
    ]
    assert "finite number" in events[0].attributes["reason"]


def test_last_will_marks_the_device_offline_once() -> None:
    caps = json.dumps({"kind": "server", "fans": ["fan1"]}).encode()
    source, out = _feed(
        [
            ("p/c01.r01.s01/capabilities", caps),
            ("p/c01.r01.s01/availability", b"online"),
            ("p/c01.r01.s01/availability", b"offline"),
            ("p/c01.r01.s01/availability", b"offline"),
        ]
    )
    events = [m for m in out if isinstance(m, Event)]
    assert [(e.kind, e.entity) for e in events] == [(DEVICE_OFFLINE, "c01/r01/s01")]
    assert source.inventory.devices["c01.r01.s01"].is_online is False
    item = next(i for i in source.inventory.items() if i["entity"] == "c01/r01/s01")
    assert item["online"] is False


@pytest.mark.parametrize(("value", "level"), [(0, 0), (3, 3), (2.0, 2), ("HIGH", 3), ("off", 0)])
def test_levels(value: object, level: int) -> None:
    assert parse_level(value) == level


@pytest.mark.parametrize("value", [4, -1, 1.5, True, "turbo", None, float("nan")])
def test_bad_levels(value: object) -> None:
    with pytest.raises(CommandRejected):
        parse_level(value)


def test_a_command_for_an_unknown_fan_is_refused_before_anything_is_sent() -> None:
    source, _out = _feed([])

    async def send() -> None:
        await source.send(Command("c09/r01/s01/fan1", "fan.set_level", {"level": 1}))

    with pytest.raises(CommandRejected, match="no MQTT device fan"):
        asyncio.run(send())
    assert source.n_commands_sent == 0 and len(source.confirmations) == 0


def test_a_device_whose_retained_topics_are_cleared_is_gone_without_complaint() -> None:
    """Clearing retained topics (empty payloads) is how a device leaves: no bad payload, its
    fans are no longer command targets (a clean refusal, not a KeyError), its state is
    dropped, and a later state replaces rather than accumulates."""
    caps = json.dumps({"kind": "server", "fans": ["fan1", "fan2"]}).encode()
    state = json.dumps({"fans": {"fan1": 2, "fan2": 3}}).encode()
    source, _out = _feed(
        [
            ("p/c01.r01.s01/capabilities", caps),
            ("p/c01.r01.s01/state", state),
            ("p/c01.r01.s01/state", json.dumps({"fans": {"fan1": 1}}).encode()),
        ]
    )
    assert source.fan_levels["c01.r01.s01"] == {"fan1": 1}
    assert source.inventory.fan_target("c01/r01/s01") == [
        ("c01.r01.s01", "fan1"),
        ("c01.r01.s01", "fan2"),
    ]
    for topic in ("capabilities", "state", "availability"):
        source.handle(f"p/c01.r01.s01/{topic}", b"")
    assert source.n_bad_payloads == 0
    assert "c01.r01.s01" not in source.inventory.devices
    assert "c01.r01.s01" not in source.fan_levels
    for target in ("c01/r01/s01/fan1", "c01/r01/s01"):
        with pytest.raises(CommandRejected, match="no MQTT device fan"):
            source.inventory.fan_target(target)
