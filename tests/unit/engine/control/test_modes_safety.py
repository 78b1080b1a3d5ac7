"""Modes and level parsing; the controller-error fail-safe."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from control_support import make_layout, observe

from rackwatch.engine.control import ControlState, FanMode, fail_safe, step
from rackwatch.engine.control.modes import parse_level, parse_mode, with_manual_level, with_mode
from rackwatch.engine.control.safety import SafetyLimits
from rackwatch.errors import CommandRejected


@pytest.mark.parametrize(
    ("value", "level"), [(0, 0), (3, 3), (2.0, 2), ("low", 1), ("HIGH", 3), (np.int64(1), 1)]
)
def test_levels_parse(value: Any, level: int) -> None:
    assert parse_level(value) == level


@pytest.mark.parametrize("value", [4, -1, 1.5, True, "turbo", None, float("nan"), "2"])
def test_bad_levels_are_rejected(value: Any) -> None:
    with pytest.raises(CommandRejected, match="fan level must be"):
        parse_level(value)


@pytest.mark.parametrize("value", ["off", "", None, 1, "automatic"])
def test_bad_modes_are_rejected(value: Any) -> None:
    with pytest.raises(CommandRejected, match="fan mode must be one of"):
        parse_mode(value)


def test_back_to_auto_starts_from_the_highest_reported_level() -> None:
    layout = make_layout()
    state = step(ControlState.initial(layout), observe(0, [50] * 3, [1, 3, 1, 1, 1, 1])).state
    state = with_mode(state, "c01/r01/s01", FanMode.MANUAL, 0)
    assert state.manual.tolist() == [True, True, False, False, False, False]
    state = with_mode(state, "c01/r01/s01/fan1", FanMode.AUTO, 7_000)
    assert state.auto_level.tolist()[0] == 3 and state.changed_ms.tolist()[0] == 7_000
    others = state.changed_ms.tolist()[1:]
    state = with_mode(state, "c01", FanMode.AUTO, 8_000)  # resumes s01/fan2 only
    assert not state.manual.any()
    assert state.changed_ms.tolist() == [8_000, *others]


def test_manual_level_marks_the_fans_manual() -> None:
    layout = make_layout()
    state = with_manual_level(ControlState.initial(layout), "c01/r01/s02")
    assert state.manual.tolist() == [False, False, True, True, False, False]


def test_fail_safe_sends_every_auto_fan_high_once() -> None:
    layout = make_layout()
    state = step(ControlState.initial(layout), observe(0, [50] * 3, [1] * 6)).state
    state = with_manual_level(state, "c01/r01/s03/fan2")
    state, commands = fail_safe(state, 5_000)
    assert [(c.target, c.params["level"], c.params["reason"]) for c in commands] == [
        ("c01/r01/s01", 3, "controller_error"),
        ("c01/r01/s02", 3, "controller_error"),
        ("c01/r01/s03/fan1", 3, "controller_error"),
    ]
    assert state.auto_level.tolist() == [3, 3, 3]
    assert fail_safe(state, 10_000)[1] == []  # already sent


def test_safety_limits_are_checked() -> None:
    with pytest.raises(ValueError, match="min_auto_level"):
        SafetyLimits(min_auto_level=4)
    with pytest.raises(ValueError, match="telemetry_timeout_s"):
        SafetyLimits(telemetry_timeout_s=0)
