"""Telemetry, capabilities, bad payloads and the last will through the real Mosquitto."""

from __future__ import annotations

import asyncio
import json
import math
import os
import signal
import subprocess
import sys

import aiomqtt
import pytest

from rackwatch.sources.mqtt.source import DEVICE_OFFLINE, PAYLOAD_REJECTED

from .conftest import (
    SHARED,
    forget_sessions,
    needs_shared_broker,
    publisher,
    running_source,
    wait_for,
)

pytestmark = [pytest.mark.integration, needs_shared_broker]

TS = 1_767_225_600_000  # 2026-01-01


def test_telemetry_becomes_batches_with_the_right_series(prefix: str) -> None:
    async def main() -> list[tuple[int, str, str, float]]:
        async with running_source(SHARED, prefix) as (source, collected, _bus):
            async with publisher(SHARED) as client:
                payload = {
                    "ts": TS,
                    "values": {"cpu_temperature_celsius": 61.5, "power_watts": None},
                    "components": {"fan1": {"fan_rpm": 4100, "fan_level": 2}},
                }
                await client.publish(f"{prefix}/c01.r01.s01/telemetry", json.dumps(payload), qos=1)
                await client.publish(
                    f"{prefix}/room.sensor7/telemetry",
                    json.dumps({"ts": TS + 5000, "values": {"inlet_temperature_celsius": 22}}),
                    qos=1,
                )
            await wait_for(lambda: source.n_samples >= 5, what="5 samples")
            await wait_for(lambda: sum(len(b) for b in collected.batches) >= 5, what="batches")
            return collected.samples(source.registry)

    rows = asyncio.run(main())
    by_key = {(e, m): (ts, v) for ts, e, m, v in rows}
    assert by_key[("c01/r01/s01", "cpu_temperature_celsius")] == (TS, 61.5)
    assert by_key[("c01/r01/s01/fan1", "fan_rpm")] == (TS, 4100.0)
    assert by_key[("c01/r01/s01/fan1", "fan_level")] == (TS, 2.0)
    assert by_key[("room/sensor7", "inlet_temperature_celsius")] == (TS + 5000, 22.0)
    ts, null = by_key[("c01/r01/s01", "power_watts")]
    assert ts == TS and math.isnan(null)  # a NULL reading is a NaN row, not an absent one
    assert len(rows) == 5


def test_capabilities_make_the_inventory(prefix: str) -> None:
    async def main() -> list[dict[str, object]]:
        async with publisher(SHARED) as client:  # retained before the source starts
            await client.publish(
                f"{prefix}/c01.r02.s03/capabilities",
                json.dumps(
                    {
                        "kind": "server",
                        "fans": ["fan1", "fan2"],
                        "slot": 3,
                        "metrics": ["cpu_temperature_celsius"],
                    }
                ),
                qos=1,
                retain=True,
            )
            await client.publish(
                f"{prefix}/room.probe1/capabilities",
                json.dumps({"kind": "sensor", "metrics": ["inlet_temperature_celsius"]}),
                qos=1,
                retain=True,
            )
        seen: list[list[dict[str, object]]] = []

        async def on_inventory(items: list[dict[str, object]]) -> None:
            seen.append(items)

        try:
            async with running_source(SHARED, prefix, on_inventory=on_inventory):
                await wait_for(lambda: bool(seen) and len(seen[-1]) >= 6, what="inventory")
        finally:
            async with publisher(SHARED) as client:  # clear the retained messages
                for device in ("c01.r02.s03", "room.probe1"):
                    await client.publish(f"{prefix}/{device}/capabilities", b"", retain=True)
        return seen[-1]

    items = {i["entity"]: i for i in asyncio.run(main())}
    assert items["c01/r02/s03"]["kind"] == "server"
    assert items["c01/r02/s03"]["slot"] == 3
    assert items["c01/r02/s03"]["rack"] == "c01/r02"
    assert items["c01/r02/s03/fan2"] == {
        "entity": "c01/r02/s03/fan2",
        "kind": "fan",
        "server": "c01/r02/s03",
        "source": "mqtt",
    }
    assert items["c01/r02"]["kind"] == "rack" and items["c01"]["kind"] == "cluster"
    assert items["room/probe1"]["kind"] == "sensor"


@pytest.mark.parametrize(
    ("topic_device", "payload", "reason"),
    [
        ("c01.r01.s01", b"{not json", "Invalid JSON"),
        ("c01.r01.s01", b'{"values": {"cpu_temperature_celsius": 1e300}}', "less than"),
        ("c01.r01.s01", b'{"values": {"cpu_temperature_celsius": "hot"}}', "valid number"),
        ("c01.r01.s01", b'{"values": {"bad metric!": 1}}', "pattern"),
        ("c01.r01.s01", b'{"ts": -5, "values": {}}', "greater than"),
        ("c01.r01.s01", b'{"values": {}, "extra": 1}', "Extra inputs"),
        ("c01.r01.s01", b"x" * 20_000, "over 16384"),
        ("c01/r01", b'{"values": {}}', None),  # not a topic of the scheme: ignored
        ("bad id!", b'{"values": {"cpu_temperature_celsius": 1}}', "bad device id"),
        ("bad#id", b'{"values": {"cpu_temperature_celsius": 1}}', None),
    ],
)
def test_a_bad_payload_is_counted_and_the_next_good_one_ingested(
    prefix: str, topic_device: str, payload: bytes, reason: str | None
) -> None:
    async def main() -> tuple[int, list[str], list[tuple[int, str, str, float]]]:
        async with running_source(SHARED, prefix) as (source, collected, _bus):
            async with publisher(SHARED) as client:
                if "#" in topic_device:
                    with pytest.raises((ValueError, aiomqtt.MqttError)):  # refused by paho
                        await client.publish(f"{prefix}/{topic_device}/telemetry", payload)
                else:
                    await client.publish(f"{prefix}/{topic_device}/telemetry", payload, qos=1)
                good = {"ts": TS, "values": {"cpu_temperature_celsius": 55.0}}
                await client.publish(f"{prefix}/c01.r01.s02/telemetry", json.dumps(good), qos=1)
            await wait_for(lambda: source.n_samples >= 1, what="the good payload")
            await wait_for(lambda: bool(collected.batches), what="its batch")
            reasons = [str(e.attributes["reason"]) for e in collected.events]
            return source.n_bad_payloads, reasons, collected.samples(source.registry)

    n_bad, reasons, rows = asyncio.run(main())
    assert rows == [(TS, "c01/r01/s02", "cpu_temperature_celsius", 55.0)]
    if reason is None:
        assert n_bad == 0
    else:
        assert n_bad == 1
        assert len(reasons) == 1 and reason in reasons[0], reasons


def test_bad_payload_events_are_rate_limited_but_all_counted(prefix: str) -> None:
    async def main() -> tuple[int, list[str]]:
        async with running_source(SHARED, prefix) as (source, collected, _bus):
            async with publisher(SHARED) as client:
                for _ in range(50):
                    await client.publish(f"{prefix}/c01.r01.s01/state", b'{"fans": 1}', qos=1)
                await client.publish(f"{prefix}/c01.r01.s02/state", b"[]", qos=1)
            await wait_for(lambda: source.n_bad_payloads == 51, what="51 bad payloads")
            await wait_for(lambda: len(collected.events) == 2, what="2 events")
            return source.n_bad_payloads, [(e.entity, e.kind) for e in collected.events]

    n_bad, events = asyncio.run(main())
    assert n_bad == 51
    assert sorted(events) == [  # one event per device and minute
        ("c01/r01/s01", PAYLOAD_REJECTED),
        ("c01/r01/s02", PAYLOAD_REJECTED),
    ]


def _start_devices(prefix: str, speed: float = 20.0) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rackwatch",
            "devices",
            "--mqtt",
            "mqtt://127.0.0.1:1883",
            "--scenario",
            "small",
            "--speed",
            str(speed),
            "--prefix",
            prefix,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "COLUMNS": "200"},
    )


@pytest.mark.parametrize("how", ["killed", "stopped"])
def test_devices_go_offline_by_last_will_or_cleanly(prefix: str, how: str) -> None:
    """`rackwatch devices` as its own process: SIGKILL leaves the broker to publish every
    device's last will; SIGTERM is a clean stop that publishes `offline` itself."""
    devices = _start_devices(prefix)

    async def main() -> tuple[int, int, list[str], int]:
        try:
            async with running_source(SHARED, prefix) as (source, collected, _bus):
                await wait_for(lambda: len(source.inventory.devices) == 10, 30, "10 devices")
                await wait_for(lambda: source.n_samples > 100, 30, "telemetry")
                online = sum(d.is_online for d in source.inventory.devices.values())
                devices.send_signal(signal.SIGKILL if how == "killed" else signal.SIGTERM)
                await asyncio.to_thread(devices.wait, 30)
                await wait_for(
                    lambda: not any(d.is_online for d in source.inventory.devices.values()),
                    30,
                    "every device offline",
                )
                await wait_for(lambda: collected.kinds().count(DEVICE_OFFLINE) == 10, 5)
                offline = [e.entity for e in collected.events if e.kind == DEVICE_OFFLINE]
                return online, len(source.inventory.devices), offline, devices.returncode
        finally:
            if devices.poll() is None:
                devices.kill()
                devices.wait(10)
            assert devices.stdout is not None
            devices.stdout.close()
            async with publisher(SHARED) as client:  # clear what the devices retained
                for device in list(_device_ids()):
                    for kind in ("capabilities", "availability", "state"):
                        await client.publish(f"{prefix}/{device}/{kind}", b"", retain=True)
            await forget_sessions(SHARED, [f"{prefix}-{d}" for d in _device_ids()])

    online, n_devices, offline, code = asyncio.run(main())
    assert online == n_devices == 10
    assert sorted(offline) == sorted(d.replace(".", "/") for d in _device_ids())
    assert code == (-signal.SIGKILL if how == "killed" else 0)


def _device_ids() -> list[str]:
    servers = [f"c01.r01.s0{k}" for k in range(1, 6)]
    return ["room", "room.crac1", "c01", "c01.r01", "c01.r01.pdu", *servers]
