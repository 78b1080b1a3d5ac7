"""Fault parameters (issue 8): one model per kind, every number finite and bounded, checked
where the twin schedules a fault, so a programmatic caller cannot pass an unbounded value
either."""

from __future__ import annotations

import math
from typing import Any

import pytest

from rackwatch.errors import CommandRejected
from rackwatch.model import Command
from rackwatch.twin import Twin
from rackwatch.twin.fault_params import FAULT_PARAMS, MAX_DURATION_S, bounds_of
from rackwatch.twin.faults import FAULTS

S01 = "c01/r01/s01"
INT64_MAX = 2**63 - 1


def test_each_kind_has_its_model_and_the_catalogue_takes_its_defaults_from_it() -> None:
    assert set(FAULT_PARAMS) == set(FAULTS)
    for kind, spec in FAULTS.items():
        assert spec.params is FAULT_PARAMS[kind] and spec.params.kind == kind
        assert spec.defaults == spec.params.model_validate({}).model_dump()


@pytest.mark.parametrize("kind", sorted(FAULT_PARAMS))
def test_every_numeric_parameter_is_bounded_on_both_sides(kind: str) -> None:
    model = FAULT_PARAMS[kind]
    numbers = (float, int, float | None)
    numeric = {name for name, info in model.model_fields.items() if info.annotation in numbers}
    bounds = bounds_of(model)
    assert numeric and numeric == set(bounds)
    assert all(low is not None and high is not None for low, high in bounds.values())


@pytest.mark.parametrize(
    ("kind", "entity", "params", "field"),
    [
        ("load_burst", "c01", {"duration_s": 1e308}, "duration_s"),  # the injection
        ("load_burst", S01, {"duration_s": math.inf}, "duration_s"),
        ("load_burst", S01, {"utilization": math.nan}, "utilization"),
        ("load_burst", "c01", {"n_servers": 10**400}, "n_servers"),
        ("sensor_drift", S01, {"slope_per_hour": 1e300}, "slope_per_hour"),
        ("sensor_stuck", S01, {"value": -1e300}, "value"),
        ("fan_off", f"{S01}/fan1", {"duration_s": 1e12}, "duration_s"),
        ("telemetry_loss", "c01", {"duration_s": 10 * 86_400.0}, "duration_s"),
        ("telemetry_loss", "c01", {"min_gap_s": 40.0, "max_gap_s": 20.0}, "max_gap_s"),
        ("fan_degradation", f"{S01}/fan1", {"step_ratio": 1e-4, "interval_s": 1e8}, "interval_s"),
    ],
)
def test_the_twin_refuses_an_unbounded_parameter_and_schedules_nothing(
    kind: str, entity: str, params: dict[str, Any], field: str
) -> None:
    twin = Twin("small")
    with pytest.raises(CommandRejected, match=field) as refused:
        twin.inject(kind, entity, params)
    assert len(str(refused.value)) < 300  # the value is quoted short, whatever it was
    with pytest.raises(CommandRejected, match=field):
        twin.apply(Command(entity, "twin.inject_fault", {"kind": kind, "params": params}))
    assert twin.fault_events() == []


def test_the_longest_fault_still_ends_within_an_int64_of_milliseconds() -> None:
    twin = Twin("small")
    event = twin.inject("load_burst", S01, {"duration_s": MAX_DURATION_S})
    assert event.end_ts is not None and event.end_ts - event.ts == round(MAX_DURATION_S * 1000)
    assert event.end_ts < INT64_MAX


def test_a_whole_number_where_a_float_is_expected_is_accepted_as_a_float() -> None:
    twin = Twin("small")
    event = twin.inject("load_burst", S01, {"duration_s": 60, "utilization": 1})
    assert event.attributes["duration_s"] == 60.0 and event.attributes["utilization"] == 1.0


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"utilization": True}, "utilization"),
        ({"utilization": "0.5"}, "utilization"),
        ({"n_servers": 1.5}, "n_servers"),
        ({"speed": 1}, "has no parameter 'speed'"),
    ],
)
def test_no_conversion_from_booleans_or_strings(params: dict[str, Any], says: str) -> None:
    with pytest.raises(CommandRejected, match=says):
        Twin("small").inject("load_burst", S01, params)
