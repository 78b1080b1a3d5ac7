"""Fan commands out at QoS 1, confirmed by the device's retained state (or reported late)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from rackwatch.bus import subjects
from rackwatch.model import Command, EventKind
from rackwatch.sources.mqtt.devices import TwinDevices
from rackwatch.twin import Twin

from .conftest import (
    SHARED,
    forget_sessions,
    needs_shared_broker,
    publisher,
    running_source,
    wait_for,
)

pytestmark = [pytest.mark.integration, needs_shared_broker]

START_MS = 1_767_225_600_000


async def _clear(prefix: str, devices: list[str]) -> None:
    async with publisher(SHARED) as client:
        for device in devices:
            for kind in ("capabilities", "availability", "state"):
                await client.publish(f"{prefix}/{device}/{kind}", b"", retain=True)


def test_a_command_goes_out_at_qos1_and_is_confirmed_by_the_state(prefix: str) -> None:
    """The twin's servers as devices; `fan.set_level` on the bus reaches the device through the
    broker at QoS 1, the twin applies it, the next retained state shows it: command.applied."""
    twin = Twin("small", start_ms=START_MS)
    room = TwinDevices(twin, SHARED, prefix=prefix, speed=50, client_prefix=prefix)

    async def main() -> tuple[list[Any], list[tuple[int, bool, dict[str, Any]]], float]:
        stop = asyncio.Event()
        devices = asyncio.create_task(room.run(stop))
        seen: list[tuple[int, bool, dict[str, Any]]] = []
        try:
            async with (
                publisher(SHARED) as spy,
                running_source(SHARED, prefix, command_timeout_s=10) as (source, collected, bus),
            ):
                await spy.subscribe(f"{prefix}/+/cmd/+/level", qos=1)
                await wait_for(lambda: "c01.r01.s02" in source.inventory.devices, what="device")
                await wait_for(lambda: bool(source.fan_levels.get("c01.r01.s02")))
                command = Command(
                    "c01/r01/s02/fan2", "fan.set_level", {"level": 0, "reason": "test"}, "tester"
                )
                await bus.publish(subjects.commands("mqtt"), command)
                message = await asyncio.wait_for(anext(aiter(spy.messages)), 10)
                seen.append((message.qos, message.retain, json.loads(message.payload)))  # type: ignore[arg-type]
                await wait_for(lambda: source.n_confirmed == 1, what="confirmation")
                levels = dict(source.fan_levels.get("c01.r01.s02"))
                return collected.events, seen, levels["fan2"]
        finally:
            stop.set()
            await devices
            await _clear(prefix, list(room.links))
            await forget_sessions(SHARED, [f"{prefix}-{d}" for d in room.links])

    events, seen, level = asyncio.run(main())
    assert seen == [
        (1, False, {"level": 0, "id": seen[0][2]["id"], "issued_by": "tester", "reason": "test"})
    ]
    applied = [e for e in events if e.kind == EventKind.COMMAND_APPLIED]
    assert len(applied) == 1
    assert applied[0].entity == "c01/r01/s02/fan2"
    assert applied[0].attributes["level"] == 0 and applied[0].attributes["issued_by"] == "tester"
    assert applied[0].attributes["confirmed_s"] > 0
    assert level == 0
    assert room.n_commands == 1


def test_a_command_the_state_never_confirms_is_reported(prefix: str) -> None:
    """A device that announces a fan but never obeys: the command times out, reported once."""

    async def main() -> list[Any]:
        async with publisher(SHARED) as device:
            await device.publish(
                f"{prefix}/c01.r01.s09/capabilities",
                json.dumps({"kind": "server", "fans": ["fan1"]}),
                qos=1,
                retain=True,
            )
            await device.publish(
                f"{prefix}/c01.r01.s09/state", json.dumps({"fans": {"fan1": 1}}), retain=True
            )
        try:
            async with running_source(SHARED, prefix, command_timeout_s=0.5) as (
                source,
                collected,
                bus,
            ):
                await wait_for(lambda: "c01.r01.s09" in source.inventory.devices)
                await wait_for(lambda: bool(source.fan_levels.get("c01.r01.s09")))
                for command in (
                    Command("c01/r01/s09/fan1", "fan.set_level", {"level": 1}, "tester"),
                    Command("c01/r01/s09/fan7", "fan.set_level", {"level": 1}, "tester"),
                    Command("c01/r01/s09/fan1", "fan.set_level", {"level": 9}, "tester"),
                    Command("c01/r01/s09/fan1", "fan.set_mode", {"mode": "auto"}, "tester"),
                    Command("c01/r01/s09", "fan.set_level", {"level": "high"}, "tester"),
                ):
                    await bus.publish(subjects.commands("mqtt"), command)
                await wait_for(lambda: source.n_timeouts == 1, what="the timeout")
                await wait_for(lambda: len(collected.events) == 5, what="5 events")
                assert source.n_commands_sent == 2 and source.n_confirmed == 1
                return collected.events
        finally:
            await _clear(prefix, ["c01.r01.s09"])

    events = asyncio.run(main())
    rejected = [e for e in events if e.kind == EventKind.COMMAND_REJECTED]
    reasons = sorted(str(e.attributes["reason"])[:40] for e in rejected)
    assert len(rejected) == 4, reasons
    assert any(r.startswith("timeout: the device's state did not") for r in reasons)
    assert any("no MQTT device fan is named" in r for r in reasons)
    assert any("a fan level is 0..3" in r for r in reasons)
    assert any("MQTT devices take 'fan.set_level'" in r for r in reasons)
    applied = [e for e in events if e.kind == EventKind.COMMAND_APPLIED]
    # level 1 is what the retained state already shows: confirmed at once
    assert [(e.entity, e.attributes["level"]) for e in applied] == [("c01/r01/s09/fan1", 1)]
