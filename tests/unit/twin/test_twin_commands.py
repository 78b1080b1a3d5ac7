"""Commands change the physics; bad ones are rejected with a clear message and change nothing."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from rackwatch.errors import CommandRejected
from rackwatch.model import Command, EventKind
from rackwatch.twin import Twin

S01 = "c01/r01/s01"


def _after(level: Any, target: str = S01) -> tuple[Twin, np.ndarray]:
    twin = Twin("small", seed=2)
    twin.run(10)
    twin.apply(Command(target, "fan.set_level", {"level": level}, issued_by="test"))
    return twin, twin.run(240).values


def test_fan_level_changes_airflow_power_rpm_and_temperature() -> None:
    low = _after(1)[1]
    twin, high = _after(3)
    col = twin.column

    def delta(entity: str, metric: str) -> float:
        j = col(entity, metric)
        return float(high[-60:, j].mean() - low[-60:, j].mean())

    assert delta(f"{S01}/fan1", "fan_level") == 2.0
    assert delta(S01, "airflow_cfm") > 20.0
    assert delta(f"{S01}/fan1", "fan_power_watts") > 2.0  # ∝ speed³
    assert delta(S01, "power_watts") > 4.0
    assert delta(f"{S01}/fan2", "fan_rpm") > 3000.0
    assert delta(S01, "cpu_temperature_celsius") < -5.0


def test_command_targets_one_fan_or_both_and_is_an_event() -> None:
    twin = Twin("small")
    event = twin.apply(Command(f"{S01}/fan2", "fan.set_level", {"level": "high"}, issued_by="ui"))
    assert twin.fan_levels()[f"{S01}/fan2"] == 3 and twin.fan_levels()[f"{S01}/fan1"] == 2
    assert (event.kind, event.entity, event.ts) == (
        EventKind.COMMAND_APPLIED,
        f"{S01}/fan2",
        twin.start_ms,
    )
    assert event.attributes == {"action": "fan.set_level", "level": 3, "issued_by": "ui"}
    twin.apply(Command(S01, "fan.set_level", {"level": 0}))
    assert twin.fan_levels()[f"{S01}/fan1"] == 0 == twin.fan_levels()[f"{S01}/fan2"]
    assert [e.entity for e in twin.run(1).events] == [f"{S01}/fan2", S01]


def test_a_command_reason_is_kept_in_its_event() -> None:
    twin = Twin("small")
    params = {"level": 1, "reason": "below_target"}
    event = twin.apply(Command(S01, "fan.set_level", params, issued_by="controller"))
    assert event.attributes == {
        "action": "fan.set_level",
        "level": 1,
        "reason": "below_target",
        "issued_by": "controller",
    }


def test_a_failed_fan_stays_off_whatever_its_level() -> None:
    twin = Twin("small")
    twin.inject("fan_off", f"{S01}/fan1")
    twin.apply(Command(f"{S01}/fan1", "fan.set_level", {"level": 3}))
    frame = twin.run(5)
    assert (frame.values[:, twin.column(f"{S01}/fan1", "fan_level")] == 3.0).all()
    assert (frame.values[:, twin.column(f"{S01}/fan1", "fan_rpm")] == 0.0).all()


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (Command("c01/r01/s99/fan1", "fan.set_level", {"level": 1}), "unknown fan target"),
        (Command("c01/r01", "fan.set_level", {"level": 1}), "unknown fan target"),
        (Command(f"{S01}/fan1", "fan.set_level", {"level": 4}), "level must be 0..3"),
        (Command(f"{S01}/fan1", "fan.set_level", {"level": True}), "level must be 0..3"),
        (Command(f"{S01}/fan1", "fan.set_level", {"level": 1.5}), "level must be 0..3"),
        (Command(f"{S01}/fan1", "fan.set_level", {"level": "turbo"}), "level must be 0..3"),
        (Command(f"{S01}/fan1", "fan.set_level", {}), "needs params"),
        (Command(f"{S01}/fan1", "fan.set_mode", {"mode": "auto"}), "no firmware mode"),
        (Command(f"{S01}/fan1", "server.reboot", {}), "cannot do"),
    ],
)
def test_bad_command_is_rejected_and_changes_nothing(command: Command, message: str) -> None:
    twin = Twin("small")
    before = twin.fan_levels()
    with pytest.raises(CommandRejected, match=message):
        twin.apply(command)
    assert twin.fan_levels() == before and twin.run(1).events == []


def test_inject_fault_command_schedules_the_fault_and_returns_its_label() -> None:
    twin = Twin("small")
    twin.run(3)
    fan = f"{S01}/fan1"
    command = Command(fan, "twin.inject_fault", {"kind": "fan_off", "params": {}}, issued_by="t")
    event = twin.apply(command)
    assert (event.kind, event.entity, event.ts) == (EventKind.FAULT_INJECTED, fan, twin.now_ms)
    frame = twin.run(3)
    assert frame.events == [event]  # once, in the frame where the fault starts
    assert (frame.values[:, twin.column(fan, "fan_rpm")] == 0.0).all()


def test_inject_fault_command_takes_parameters_and_a_start() -> None:
    twin = Twin("small")
    start = twin.start_ms + 10 * twin.step_ms
    params = {"kind": "load_burst", "params": {"duration_s": 60}, "start_ms": start}
    event = twin.apply(Command(S01, "twin.inject_fault", params))
    assert event.ts == start and event.end_ts == start + 60_000
    assert event.attributes["duration_s"] == 60.0
    assert twin.run(10).events == [] and twin.run(1).events == [event]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "needs params"),
        ({"kind": "meteor"}, "unknown fault kind"),
        ({"kind": "fan_off", "params": [1]}, "must be an object"),
        ({"kind": "fan_off", "params": {"speed": 1}}, "has no parameter"),
        ({"kind": "fan_off", "start_ms": "soon"}, "start_ms must be"),
        ({"kind": "fan_off", "start_ms": 0}, "in the past"),
        ({"kind": "sensor_null", "params": {"metric": ["x"]}}, "bad fault parameters"),
    ],
)
def test_bad_inject_fault_command_is_rejected_and_changes_nothing(
    params: dict[str, Any], message: str
) -> None:
    twin = Twin("small")
    twin.run(1)
    with pytest.raises(CommandRejected, match=message):
        twin.apply(Command(f"{S01}/fan1", "twin.inject_fault", params))
    assert twin.fault_events() == [] and twin.run(1).events == []


def test_inject_fault_command_on_an_entity_of_the_wrong_kind_is_rejected() -> None:
    twin = Twin("small")
    with pytest.raises(CommandRejected, match="is not a fan"):
        twin.apply(Command(S01, "twin.inject_fault", {"kind": "fan_off"}))


def test_injecting_at_an_impossible_time_is_refused_not_an_overflow() -> None:
    from rackwatch.errors import CommandRejected
    from rackwatch.twin import Twin

    twin = Twin("small", start_ms=1_767_225_600_000)
    for start_ms in (10**400, -5, 2**63):
        with pytest.raises(CommandRejected, match="start_ms"):
            twin.inject("fan_off", "c01/r01/s01/fan1", start_ms=start_ms)
    assert twin.fault_events() == []
