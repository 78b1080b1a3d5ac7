"""The fan API over two controllers (the twin's and the MQTT devices'): each target goes to
the controller that drives it, a rack's mode to both, an unknown one is refused saying why."""

from __future__ import annotations

import asyncio

import pytest
from control_support import make_layout

from rackwatch.bus import MemoryBus, subjects
from rackwatch.engine.control import FanController
from rackwatch.engine.control.group import ControllerGroup
from rackwatch.errors import CommandRejected
from rackwatch.model import SeriesRegistry


def test_each_target_goes_to_the_controller_that_drives_it() -> None:
    async def main() -> None:
        bus = MemoryBus()
        registry = SeriesRegistry()
        twin = FanController(bus, make_layout(("c01/r01/s01",)), registry, source="twin")
        mqtt = FanController(bus, make_layout(("c01/r01/s02",)), registry, source="mqtt")
        group = ControllerGroup([twin, mqtt])
        async with (
            bus.subscribe(subjects.commands("twin")) as to_twin,
            bus.subscribe(subjects.commands("mqtt")) as to_mqtt,
        ):
            await group.set_level("c01/r01/s02/fan1", 3, by="alice")
            _subject, command = await asyncio.wait_for(anext(aiter(to_mqtt)), 5)
            assert (command.target, command.params["level"]) == ("c01/r01/s02/fan1", 3)
            assert to_twin.pending == 0
            await group.set_level("c01/r01/s01", "low", by="alice")
            _subject, command = await asyncio.wait_for(anext(aiter(to_twin)), 5)
            assert command.target == "c01/r01/s01"
        assert twin.state.manual.all() and mqtt.state.manual.tolist() == [True, False]
        await group.set_mode("c01/r01", "auto", by="bob")  # a rack: both controllers
        assert not twin.state.manual.any() and not mqtt.state.manual.any()
        assert [f.fan for f in group.status()] == [
            "c01/r01/s01/fan1",
            "c01/r01/s01/fan2",
            "c01/r01/s02/fan1",
            "c01/r01/s02/fan2",
        ]
        assert group.layout.fans_of("c01/r01/s02").tolist() == [0, 1]
        for call in (
            group.set_level("c01/r01/s09/fan1", 2, by="x"),
            group.set_mode("c09", "auto", by="x"),
        ):
            with pytest.raises(CommandRejected, match="c01/r01/s01"):  # the first one's example
                await call

    asyncio.run(main())


def test_the_fan_api_gets_one_controller_or_a_group() -> None:
    from rackwatch.app import fan_api_controller

    bus, registry = MemoryBus(), SeriesRegistry()
    twin = FanController(bus, make_layout(("c01/r01/s01",)), registry)
    mqtt = FanController(bus, make_layout(("c01/r01/s02",)), registry, source="mqtt")
    assert fan_api_controller(None, None) is None
    assert fan_api_controller(twin, None) is twin and fan_api_controller(None, mqtt) is mqtt
    both = fan_api_controller(twin, mqtt)
    assert isinstance(both, ControllerGroup) and both.controllers == (twin, mqtt)
