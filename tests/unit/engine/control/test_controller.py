"""The async shell on a MemoryBus: telemetry in, Commands and Events out; operators; errors."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import numpy as np
import pytest
from control_support import FakeTime, make_layout

from rackwatch.bus import MemoryBus, subjects
from rackwatch.engine.control import (
    CONTROL,
    ControlState,
    Decision,
    FanController,
    FanLayout,
    FanPolicy,
    Observation,
    step,
)
from rackwatch.engine.states import SilencePolicy
from rackwatch.errors import CommandRejected
from rackwatch.model import Batch, Command, EventKind, SeriesRegistry


class Rig:
    """A controller on a bus, with what it publishes collected."""

    def __init__(self, bus: MemoryBus, controller: FanController, registry: SeriesRegistry):
        self.bus, self.controller, self.registry = bus, controller, registry
        self.layout: FanLayout = controller.layout
        self.commands: list[Command] = []
        self.events: list[Any] = []

    def batch(self, t_s: float, cpu: Sequence[float], levels: Sequence[float]) -> Batch:
        keys = [(s, "cpu_temperature_celsius") for s in self.layout.server_paths]
        keys += [(s, "inlet_temperature_celsius") for s in self.layout.server_paths]
        keys += [(f, "fan_level") for f in self.layout.fan_paths]
        keys += [(f, "fan_rpm") for f in self.layout.fan_paths]
        ids = self.registry.intern_many(keys)
        values = [*cpu, *[24.0] * len(cpu), *levels, *[1000.0 * lv for lv in levels]]
        return Batch.from_grid([int(t_s * 1000)], ids, [values])

    async def tick(self, t_s: float, cpu: Sequence[float], levels: Sequence[float]) -> None:
        await self.bus.publish(subjects.telemetry("twin"), self.batch(t_s, cpu, levels))
        await settle()


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


def run_rig(
    body: Callable[[Rig], Awaitable[None]], layout: FanLayout | None = None, **kwargs: Any
) -> Rig:
    async def main() -> Rig:
        bus, registry = MemoryBus(), SeriesRegistry()
        controller = FanController(bus, layout or make_layout(), registry, **kwargs)
        rig = Rig(bus, controller, registry)

        async def collect() -> None:
            async with (
                bus.subscribe(subjects.commands("twin")) as commands,
                bus.subscribe("events.>") as events,
            ):

                async def take_commands() -> None:
                    async for _s, c in commands:
                        rig.commands.append(c)

                async def take_events() -> None:
                    async for _s, e in events:
                        rig.events.append(e)

                await asyncio.gather(take_commands(), take_events())

        tasks = [asyncio.create_task(controller.run()), asyncio.create_task(collect())]
        await controller.ready.wait()
        await settle()
        await body(rig)
        await settle()
        bus.close()
        await asyncio.gather(*tasks)
        return rig

    return asyncio.run(main())


def test_hot_server_gets_a_command_on_the_source_subject() -> None:
    async def body(rig: Rig) -> None:
        await rig.tick(0, [50, 50, 50], [1] * 6)
        await rig.tick(5, [70, 50, 50], [1] * 6)

    rig = run_rig(body)
    assert [(c.target, c.params["level"], c.issued_by, c.ts) for c in rig.commands] == [
        ("c01/r01/s01", 2, "controller", 5000)
    ]
    assert rig.controller.n_steps == 2 and rig.controller.n_commands == 1


def test_manual_level_goes_to_the_source_and_auto_leaves_the_fan_alone() -> None:
    async def body(rig: Rig) -> None:
        await rig.tick(0, [50, 50, 50], [1] * 6)
        await rig.controller.set_level("c01/r01/s01/fan1", "low", by="alice")
        await rig.tick(5, [70, 50, 50], [1] * 6)
        status = {s.fan: s for s in rig.controller.status()}
        assert status["c01/r01/s01/fan1"].mode == "manual"
        assert status["c01/r01/s01/fan2"].mode == "auto"
        await rig.controller.set_mode("c01/r01/s01/fan1", "auto", by="alice")

    rig = run_rig(body)
    assert [(c.target, c.params["level"], c.issued_by) for c in rig.commands] == [
        ("c01/r01/s01/fan1", 1, "alice"),
        ("c01/r01/s01/fan2", 2, "controller"),
    ]
    modes = [(e.entity, e.attributes["mode"]) for e in rig.events]
    assert modes == [("c01/r01/s01/fan1", "manual"), ("c01/r01/s01/fan1", "auto")]
    assert all(e.kind == EventKind.CONTROL_MODE_CHANGED for e in rig.events)


def test_commands_on_the_control_subject_are_obeyed_or_rejected() -> None:
    async def body(rig: Rig) -> None:
        await rig.tick(0, [50, 50, 50], [1] * 6)
        orders = subjects.commands(CONTROL)
        await rig.bus.publish(orders, Command("c01/r01", "fan.set_mode", {"mode": "manual"}, "op"))
        await rig.bus.publish(orders, Command("c01/r01/s01", "fan.set_level", {"level": 9}, "op"))
        await rig.bus.publish(orders, Command("c01/r01/s01", "fan.set_level", {}, "op"))
        await rig.bus.publish(orders, Command("c01/r01/s01", "fan.reboot", {}, "op"))
        await rig.bus.publish(orders, Command("c01/r09", "fan.set_mode", {"mode": "auto"}, "op"))
        await settle()
        await rig.tick(5, [90, 90, 90], [1] * 6)

    rig = run_rig(body)
    assert rig.commands == []  # everything manual: even 90 °C is the operator's business
    kinds = [(str(e.kind), e.entity) for e in rig.events]
    assert kinds == [
        ("control.mode_changed", "c01/r01"),
        ("command.rejected", "c01/r01/s01"),
        ("command.rejected", "c01/r01/s01"),
        ("command.rejected", "c01/r01/s01"),
        ("command.rejected", "c01/r09"),
    ]
    reasons = [e.attributes["reason"] for e in rig.events[1:]]
    assert "fan level must be" in reasons[0] and "needs params" in reasons[1]
    assert "cannot do" in reasons[2] and "no fan at or below" in reasons[3]


def test_direct_calls_reject_bad_input_and_change_nothing() -> None:
    async def body(rig: Rig) -> None:
        before = rig.controller.state
        with pytest.raises(CommandRejected):
            await rig.controller.set_mode("c01/r01/s01", "turbo", by="x")
        with pytest.raises(CommandRejected):
            await rig.controller.set_level("c01/r01", 3, by="x")
        with pytest.raises(CommandRejected):
            await rig.controller.set_level("c01/r01/s01", 7, by="x")
        assert rig.controller.state is before

    rig = run_rig(body)
    assert rig.commands == [] and rig.events == []


def test_a_failing_step_sends_the_fans_high_once_and_recovers() -> None:
    calls = {"n": 0}

    def flaky(state: ControlState, obs: Observation, policy: FanPolicy) -> Decision:
        calls["n"] += 1
        if calls["n"] in (2, 3):
            raise RuntimeError("boom")
        return step(state, obs, policy)

    async def body(rig: Rig) -> None:
        await rig.tick(0, [50, 50, 50], [1] * 6)
        await rig.tick(5, [50, 50, 50], [1] * 6)
        await rig.tick(10, [50, 50, 50], [3] * 6)
        await rig.tick(15, [50, 50, 50], [3] * 6)

    rig = run_rig(body, step_fn=flaky)
    assert [(c.target, c.params["level"], c.params["reason"]) for c in rig.commands] == [
        (s, 3, "controller_error") for s in ("c01/r01/s01", "c01/r01/s02", "c01/r01/s03")
    ]
    assert [(str(e.kind), e.entity, e.attributes["reason"]) for e in rig.events] == [
        ("control.failsafe", "room", "controller_error"),
        ("control.failsafe_cleared", "room", "controller_error"),
    ]
    assert "RuntimeError: boom" in rig.events[0].attributes["error"]
    assert rig.controller.n_errors == 2 and not rig.controller.is_in_error
    assert rig.controller.state.auto_level.tolist() == [3, 3, 3]  # resumes from high


def test_a_backlog_is_folded_into_one_decision() -> None:
    async def body(rig: Rig) -> None:
        for t in range(5):
            await rig.bus.publish(
                subjects.telemetry("twin"), rig.batch(5 * t, [50 + t, 50, 50], [1] * 6)
            )
        await settle()

    rig = run_rig(body)
    assert rig.controller.n_steps == 1
    np.testing.assert_array_equal(rig.controller.view.observation().cpu_c, [54.0, 50.0, 50.0])


def test_a_silent_source_sends_the_fans_high_on_the_wall_clock_and_recovers() -> None:
    """Issue 8 item 6: the step's clock is the telemetry's and stops with it; the watchdog
    runs on the (injected) wall clock and acts at the silence deadline."""
    wall = FakeTime()
    silence = SilencePolicy(30.0, speed=2.0, monotonic=wall, sleep=wall.sleep)

    async def body(rig: Rig) -> None:
        await rig.tick(0, [50, 50, 50], [1] * 6)
        await rig.controller.set_level("c01/r01/s03/fan2", "low", by="alice")  # manual: kept
        await wall.advance(29.9)
        assert rig.commands[1:] == [] and not rig.controller.is_source_silent
        await wall.advance(0.1)  # 30 s of wall-clock silence: act now, no new telemetry
        assert rig.controller.is_source_silent
        assert all(s.is_failsafe for s in rig.controller.status())
        await wall.advance(100)  # still silent: nothing sent again
        await rig.tick(65, [50, 50, 50], [3, 3, 3, 3, 3, 1])
        assert not any(s.is_failsafe for s in rig.controller.status())

    rig = run_rig(body, silence=silence)
    sent = [(c.target, c.params["level"], c.params["reason"], c.ts) for c in rig.commands]
    assert sent == [
        ("c01/r01/s03/fan2", 1, "manual", 0),
        ("c01/r01/s01", 3, "telemetry_lost", 60_000),  # last sample + 30 s x speed 2
        ("c01/r01/s02", 3, "telemetry_lost", 60_000),
        ("c01/r01/s03/fan1", 3, "telemetry_lost", 60_000),
    ]
    control = [e for e in rig.events if str(e.kind).startswith("control.failsafe")]
    assert [(str(e.kind), e.entity, e.ts) for e in control] == [
        ("control.failsafe", "room", 60_000),
        ("control.failsafe_cleared", "room", 65_000),  # the batch that ended it
    ]
    assert control[0].attributes["reason"] == "telemetry_lost"
    assert control[0].attributes["source"] == "twin"
    assert control[0].attributes["silent_s"] == 30.0
    assert control[1].attributes["silent_s"] == 130.0
    assert rig.controller.n_silences == 1
    assert rig.controller.state.auto_level.tolist() == [3, 3, 3]  # comes down one by one


def test_a_source_that_never_sends_is_silent_too() -> None:
    wall = FakeTime()
    silence = SilencePolicy(10.0, monotonic=wall, sleep=wall.sleep)

    async def body(_rig: Rig) -> None:
        await wall.advance(10)

    rig = run_rig(body, silence=silence, clock=lambda: 1_767_225_600.0)
    assert {(c.target, c.params["level"], c.ts) for c in rig.commands} == {
        (s, 3, 1_767_225_600_000) for s in ("c01/r01/s01", "c01/r01/s02", "c01/r01/s03")
    }
    assert [e.attributes["last_sample_ms"] for e in rig.events] == [None]


def test_a_controller_with_nothing_to_drive_raises_no_silence_alarm_until_it_grows() -> None:
    """An MQTT controller starts empty: a quiet broker is no alarm. Once a device announces
    itself, its silence counts like any other's."""
    wall = FakeTime()
    silence = SilencePolicy(10.0, monotonic=wall, sleep=wall.sleep)
    empty = FanLayout((), (), np.zeros(0, dtype=np.int64))
    server = "c01/r01/s01"
    items = [{"entity": server, "kind": "server"}] + [
        {"entity": f"{server}/fan{k}", "kind": "fan", "server": server} for k in (1, 2)
    ]

    async def body(rig: Rig) -> None:
        await wall.advance(30)
        await settle()
        assert rig.events == [] and rig.commands == []
        assert rig.controller.grow(items)
        await wall.advance(10)

    rig = run_rig(body, layout=empty, silence=silence, clock=lambda: 1_767_225_600.0)
    assert {(c.target, c.params["level"]) for c in rig.commands} == {(server, 3)}
    assert [e.kind for e in rig.events] == ["control.failsafe"]
