"""The whole loop through a real broker: the twin's servers as MQTT devices, `rackwatch run
--no-twin --mqtt` (its wiring: `app.build_services` and `app.run_live`), the fan controller.

A fan stops on one server -> its telemetry (rpm 0 while commanded on) -> the controller sends
that server's other fan high -> `commands.mqtt` -> the broker at QoS 1 -> the device applies it
to the twin -> its retained state shows level 3 -> `command.applied` (via mqtt) in the store.
The room the run stores (its inventory, what the dashboard draws) is exactly the devices.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from rackwatch import app
from rackwatch.model import EventKind
from rackwatch.settings import load_settings
from rackwatch.sources.mqtt.devices import TwinDevices
from rackwatch.twin import Twin

from .conftest import SHARED, forget_sessions, needs_shared_broker, publisher, wait_for

pytestmark = [pytest.mark.integration, needs_shared_broker]

START_MS = 1_767_225_600_000
FAILED_FAN, OTHER_FAN = "c01/r01/s02/fan1", "c01/r01/s02/fan2"


@pytest.mark.parametrize("devices_first", [True, False], ids=["announced-at-start", "later"])
def test_a_stopped_fan_is_answered_through_the_broker(
    tmp_path: Path, prefix: str, devices_first: bool
) -> None:
    """With the devices on the broker before the run starts, and announced only after it
    started (the controller takes their fans as they come)."""
    twin = Twin("small", start_ms=START_MS, seed=3)
    twin.inject("fan_off", FAILED_FAN, start_ms=START_MS + 120_000)
    room = TwinDevices(twin, SHARED, prefix=prefix, speed=60, client_prefix=prefix)
    settings = load_settings(
        data_dir=tmp_path / "data",
        twin={"enabled": False},
        host={"enabled": False},
        intelligence={"enabled": False},
        mqtt={
            "url": "mqtt://127.0.0.1:1883",
            "prefix": prefix,
            "client_id": f"{prefix}-run",
            "discovery_seconds": 1.0,
        },
    )

    async def main() -> app.Services:
        stop_devices = asyncio.Event()

        async def start_devices() -> asyncio.Task[None]:
            task = asyncio.create_task(room.run(stop_devices))
            await wait_for(lambda: all(link.connected.is_set() for link in room.links.values()))
            return task

        devices = await start_devices() if devices_first else None
        services = await asyncio.to_thread(app.build_services, settings)
        stop = asyncio.Event()
        runner = asyncio.create_task(app.run_live(services, stop))
        if devices is None:
            assert services.mqtt_controller is not None
            assert services.mqtt_controller.layout.n_fans == 0
            devices = await start_devices()
        try:
            source = services.mqtt
            assert source is not None
            await wait_for(
                lambda: (
                    source.fan_levels.get("c01.r01.s02", {}).get("fan2") == 3
                    and source.n_confirmed > 0
                ),
                30,
                "the other fan high, confirmed",
            )
        finally:
            stop.set()
            await runner
            stop_devices.set()
            await devices
            async with publisher(SHARED) as client:
                for device in room.links:
                    for kind in ("capabilities", "availability", "state"):
                        await client.publish(f"{prefix}/{device}/{kind}", b"", retain=True)
            ids = [f"{prefix}-{d}" for d in room.links] + [f"{prefix}-run"]
            await forget_sessions(SHARED, ids)
        return services

    services = asyncio.run(main())
    try:
        controller = services.mqtt_controller
        assert controller is not None and services.controller is None
        assert controller.layout.n_servers == 5 and controller.layout.n_fans == 10
        events = services.store.events(0, 2**62, kinds=None)
        failover = [e for e in events if e.kind == EventKind.CONTROL_FAN_FAILOVER]
        assert failover and failover[0].entity in (FAILED_FAN, "c01/r01/s02")
        applied = [
            e
            for e in events
            if e.kind == EventKind.COMMAND_APPLIED
            and e.entity == OTHER_FAN
            and e.attributes.get("level") == 3
        ]
        assert applied and applied[0].attributes["via"] == "mqtt"
        assert applied[0].attributes["issued_by"] == "controller"
        stored = {r.path for r in services.store.inventory()}
        assert stored == {r.replace(".", "/") for r in room.links} | {
            f"c01/r01/s0{k}/fan{f}" for k in range(1, 6) for f in (1, 2)
        }
    finally:
        services.close()
