"""The pure step: hysteresis, dwell, one level per decision, safety overrides, manual mode."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from control_support import make_layout, observe

from rackwatch.engine.control import ControlState, FanLayout, FanPolicy, Reason, step
from rackwatch.engine.control.fan import Decision
from rackwatch.engine.control.state import NEVER
from rackwatch.model import CommandAction, EventKind


def _levels(decision: Decision, layout: FanLayout) -> dict[str, int]:
    """Level commanded per fan path (a server command sets all its fans)."""
    out: dict[str, int] = {}
    for c in decision.commands:
        assert c.action == CommandAction.FAN_SET_LEVEL and c.issued_by == "controller"
        for f in layout.fans_of(c.target).tolist():
            out[layout.fan_paths[f]] = int(c.params["level"])
    return out


def test_first_observation_takes_over_the_reported_levels() -> None:
    layout = make_layout()
    d = step(ControlState.initial(layout, level=1), observe(0, [50, 50, 50], [3, 3, 2, 2, 1, 3]))
    assert d.state.auto_level.tolist() == [3, 2, 3]  # each server from its highest fan
    assert [(c.target, c.params["level"], c.params["reason"]) for c in d.commands] == [
        ("c01/r01/s03/fan1", 3, "align")
    ]
    assert d.events == []
    assert d.state.started_ms == 0


def test_hot_server_rises_one_level_per_raise_dwell_and_cold_ones_are_left() -> None:
    layout = make_layout()
    state = step(ControlState.initial(layout), observe(0, [60, 60, 60], [1] * 6)).state
    d = step(state, observe(5, [70, 60, 60], [1] * 6))
    assert [(c.target, c.params["level"], c.params["reason"]) for c in d.commands] == [
        ("c01/r01/s01", 2, "above_target")
    ]
    d = step(d.state, observe(20, [72, 60, 60], [2, 2, 1, 1, 1, 1]))
    assert d.commands == []  # 15 s since the raise < raise dwell
    d = step(d.state, observe(35, [72, 60, 60], [2, 2, 1, 1, 1, 1]))
    assert _levels(d, layout) == {"c01/r01/s01/fan1": 3, "c01/r01/s01/fan2": 3}
    d = step(d.state, observe(100, [90, 60, 60], [3, 3, 1, 1, 1, 1]))
    assert d.commands == []  # already high: nothing more to do


def test_lowering_needs_the_dwell_and_a_cool_prediction() -> None:
    layout = make_layout()
    policy = FanPolicy()
    state = step(ControlState.initial(layout), observe(0, [50, 50, 50], [3] * 6)).state
    # At high, 20 °C above a 24 °C inlet: medium predicts 24 + 20 / 0.85 = 47.5 <= 62 -> lower.
    # 40 °C above: 24 + 40 / 0.85 = 71 > 62 -> hold.
    d = step(state, observe(301, [44, 64, 44], [3] * 6))
    assert _levels(d, layout) == {
        "c01/r01/s01/fan1": 2,
        "c01/r01/s01/fan2": 2,
        "c01/r01/s03/fan1": 2,
        "c01/r01/s03/fan2": 2,
    }
    assert {c.params["reason"] for c in d.commands} == {"below_target"}
    d = step(d.state, observe(400, [40, 64, 40], [2, 2, 3, 3, 2, 2]))
    assert d.commands == []  # lower dwell restarts at each change
    # At medium, 20 °C above inlet: low predicts 24 + 20 * 1.4 = 52 -> lower once the dwell passed
    d = step(d.state, observe(601, [44, 64, 44], [2, 2, 3, 3, 2, 2]), policy)
    assert set(_levels(d, layout).values()) == {1}
    # At low it never goes lower: auto keeps air moving
    d = step(d.state, observe(2000, [30, 64, 30], [1, 1, 3, 3, 1, 1]), policy)
    assert d.commands == []


def test_inside_the_band_the_level_holds_so_it_does_not_oscillate() -> None:
    layout = make_layout()
    state = step(ControlState.initial(layout), observe(0, [60] * 3, [2] * 6)).state
    # 60 °C at medium with a 24 °C inlet: low would reach 24 + 36 * 1.4 = 74 °C: stay at medium.
    for t in range(5, 3600, 5):
        d = step(state, observe(t, [60 + (t % 10) / 5] * 3, [2] * 6))
        assert d.commands == []
        state = d.state


def test_a_simple_plant_settles_at_the_lowest_level_that_holds_the_target() -> None:
    """Closed loop on a first-order CPU model: the level settles and then never changes."""
    layout = FanLayout(("s1",), ("s1/fan1", "s1/fan2"), np.array([0, 0]))
    rise_at_medium = {"light": 25.0, "heavy": 36.0}
    relative = np.array([4.0, 1.34, 1.0, 0.85])
    for load, expected in (("light", 1), ("heavy", 2)):
        state = ControlState.initial(layout)
        level, cpu, changes = 3, 40.0, []
        for k in range(2000):
            now = 5 * k
            steady = 24.0 + rise_at_medium[load] * relative[level]
            cpu += (steady - cpu) * (1 - np.exp(-5 / 180))
            d = step(state, observe(now, [cpu], [level, level], inlet_c=24.0))
            state = d.state
            for c in d.commands:
                level = int(c.params["level"])
                changes.append(now)
        assert level == expected, load
        assert all(t < 2000 for t in changes), f"still changing late: {changes}"
        assert cpu < 65.0


def test_a_stopped_fan_sends_the_others_high_and_fires_an_event() -> None:
    layout = make_layout()
    state = step(ControlState.initial(layout), observe(0, [50] * 3, [1] * 6)).state
    rpm = [1000, 1000, 0, 1000, 1000, 1000]
    d = step(state, observe(5, [50] * 3, [1] * 6, rpm=rpm))
    assert [(c.target, c.params["level"], c.params["reason"]) for c in d.commands] == [
        ("c01/r01/s02/fan2", 3, "fan_failover")
    ]
    assert [(e.kind, e.entity) for e in d.events] == [
        (EventKind.CONTROL_FAN_FAILOVER, "c01/r01/s02/fan1")
    ]
    assert d.events[0].attributes["other_fans"] == ["c01/r01/s02/fan2"]
    assert d.state.failed.tolist() == [False, False, True, False, False, False]
    # while it stays failed: no new event, the failed fan is never commanded, no dwell lowering
    d = step(d.state, observe(900, [30] * 3, [1, 1, 1, 3, 1, 1], rpm=rpm))
    assert d.events == [] and "c01/r01/s02/fan1" not in _levels(d, layout)
    assert "c01/r01/s02/fan2" not in _levels(d, layout)
    # repaired: recovery event, and control steps down from high after the dwell
    d = step(d.state, observe(905, [30] * 3, [1, 1, 1, 3, 1, 1]))
    assert [(e.kind, e.entity) for e in d.events] == [
        (EventKind.CONTROL_FAN_RECOVERED, "c01/r01/s02/fan1")
    ]
    assert "c01/r01/s02/fan2" not in _levels(d, layout)
    d = step(d.state, observe(1210, [30] * 3, [1, 1, 1, 3, 1, 1]))
    assert _levels(d, layout) == {"c01/r01/s02/fan1": 2, "c01/r01/s02/fan2": 2}


def test_a_fan_at_level_off_reading_zero_rpm_has_not_failed_and_auto_turns_it_on() -> None:
    layout = make_layout()
    d = step(ControlState.initial(layout), observe(0, [50] * 3, [0, 0, 1, 1, 1, 1]))
    assert not d.state.failed.any() and d.events == []
    assert [(c.target, c.params["level"], c.params["reason"]) for c in d.commands] == [
        ("c01/r01/s01", 1, "align")
    ]


def test_lost_telemetry_sends_the_server_high_then_clears() -> None:
    layout = make_layout()
    state = step(ControlState.initial(layout), observe(0, [50] * 3, [1] * 6)).state
    # s03 answered last at 0 s; at 30 s it is not yet lost (timeout is "more than 30 s")
    d = step(state, observe(30, [50] * 3, [1] * 6, cpu_s=[30, 30, 0]))
    assert d.commands == [] and d.events == []
    d = step(d.state, observe(35, [50] * 3, [1] * 6, cpu_s=[35, 35, 0]))
    assert [(c.target, c.params["level"], c.params["reason"]) for c in d.commands] == [
        ("c01/r01/s03", 3, "telemetry_lost")
    ]
    assert [(e.kind, e.entity, e.attributes["last_sample_ms"]) for e in d.events] == [
        (EventKind.CONTROL_FAILSAFE, "c01/r01/s03", 0)
    ]
    d = step(d.state, observe(40, [50] * 3, [1, 1, 1, 1, 3, 3]))
    assert [e.kind for e in d.events] == [EventKind.CONTROL_FAILSAFE_CLEARED]
    assert d.commands == []  # held high for the lower dwell after it comes back


def test_a_server_never_heard_from_is_lost_after_the_timeout() -> None:
    layout = make_layout()
    obs = observe(0, [50, 50, np.nan], [1] * 6, cpu_s=[0, 0, NEVER / 1000])
    state = step(ControlState.initial(layout), obs).state
    obs = observe(31, [50, 50, np.nan], [1] * 6, cpu_s=[31, 31, NEVER / 1000])
    d = step(state, obs)
    assert [c.target for c in d.commands] == ["c01/r01/s03"]


def test_critical_temperature_goes_high_at_once() -> None:
    layout = make_layout()
    state = step(ControlState.initial(layout), observe(0, [50] * 3, [1] * 6)).state
    d = step(state, observe(5, [50, 86, 50], [1] * 6))
    assert [(c.target, c.params["level"], c.params["reason"]) for c in d.commands] == [
        ("c01/r01/s02", 3, "critical_temperature")
    ]


def test_manual_fans_are_left_alone_even_by_the_safety_rules() -> None:
    layout = make_layout()
    state = step(ControlState.initial(layout), observe(0, [50] * 3, [1] * 6)).state
    manual = state.manual.copy()
    manual[[0, 1, 2]] = True  # s01 both fans, s02 fan1
    state = replace(state, manual=manual)
    d = step(state, observe(5, [90, 70, 50], [1] * 6, cpu_s=[5, 5, 5]))
    assert _levels(d, layout) == {"c01/r01/s02/fan2": 2}
    assert d.state.auto_level[0] == 3  # critical still recorded for when it returns to auto


def test_a_lost_command_is_sent_again_after_resend_after() -> None:
    layout = make_layout()
    state = step(ControlState.initial(layout), observe(0, [50] * 3, [1] * 6)).state
    d = step(state, observe(5, [70, 50, 50], [1] * 6))
    assert len(d.commands) == 1
    d = step(d.state, observe(10, [70, 50, 50], [1] * 6))
    assert d.commands == []  # settling: the source has not reported the new level yet
    d = step(d.state, observe(30, [64, 50, 50], [1] * 6))
    assert [(c.target, c.params["level"], c.params["reason"]) for c in d.commands] == [
        ("c01/r01/s01", 2, Reason.RESEND.label)
    ]


def test_mixed_changes_on_one_server_become_per_fan_commands() -> None:
    layout = make_layout()
    state = step(ControlState.initial(layout), observe(0, [50] * 3, [1] * 6)).state
    manual = state.manual.copy()
    manual[0] = True
    d = step(replace(state, manual=manual), observe(5, [70, 50, 50], [1] * 6))
    assert [c.target for c in d.commands] == ["c01/r01/s01/fan2"]


def test_step_is_pure() -> None:
    layout = make_layout()
    state = step(ControlState.initial(layout), observe(0, [50] * 3, [1] * 6)).state
    before = {k: getattr(state, k).copy() for k in ("auto_level", "sent_level", "failed")}
    obs = observe(5, [90, 70, 50], [1, 1, 0, 1, 1, 1])
    first, second = step(state, obs), step(state, obs)
    assert first.commands == second.commands and first.events == second.events
    for key, value in before.items():
        np.testing.assert_array_equal(getattr(state, key), value)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"relative_rise": (1.0, 1.0)}, "one value per level"),
        ({"relative_rise": (9.0, 1.0, 1.2, 0.8)}, "must not grow"),
        ({"lower_dwell_s": -1.0}, ">= 0"),
        ({"target_c": 90.0}, "below critical_c"),
    ],
)
def test_bad_policies_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FanPolicy(**kwargs)  # type: ignore[arg-type]
