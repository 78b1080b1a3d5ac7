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
