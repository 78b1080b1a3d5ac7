"""Every fault of the catalogue changes the data as specified and is labelled with an Event."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from twin_support import Pair, PairFactory

from rackwatch.errors import CommandRejected
from rackwatch.model import EventKind
from rackwatch.twin import FAULTS, Lifetime, Twin, build_topology, draw_random_faults

S03 = "c01/r01/s03"


def _fan_off(p: Pair) -> None:
    rpm = p.frame.values[p.start :, p.col(f"{S03}/fan1", "fan_rpm")]
    assert (rpm == 0.0).all()
    assert (p.frame.values[p.start :, p.col(f"{S03}/fan1", "fan_power_watts")] == 0.0).all()
    assert p.diff(S03, "airflow_cfm")[p.start :].mean() < -10.0


def _fan_degradation(p: Pair) -> None:
    rpm = p.frame.values[:, p.col(f"{S03}/fan1", "fan_rpm")]
    per_interval = rpm[p.start : p.start + 360 * 30].reshape(30, 360).mean(axis=1)
    assert (np.diff(per_interval) < 0).all()  # -2 % every 30 min
    assert per_interval[-1] / per_interval[0] == pytest.approx(0.42 / 1.0, abs=0.01)
    assert (rpm[p.start + 360 * 30 :] == 0.0).all()  # then off


def _sensor_drift(p: Pair) -> None:
    drift = p.diff(S03, "cpu_temperature_celsius")[p.start :]
    hours = np.arange(len(drift)) * p.twin.step_s / 3600.0
    assert np.polyfit(hours, drift, 1)[0] == pytest.approx(0.2, abs=0.02)
    assert (p.diff(S03, "chassis_temperature_celsius") == 0.0).all()  # physics unaffected


def _sensor_stuck(p: Pair) -> None:
    stuck = p.frame.values[p.start : p.start + 720, p.col(S03, "cpu_temperature_celsius")]
    assert len(set(stuck.tolist())) == 1
    live = p.base.values[p.start : p.start + 720, p.col(S03, "cpu_temperature_celsius")]
    assert len(set(live.tolist())) > 5


def _sensor_null(p: Pair) -> None:
    column = p.frame.values[:, p.col(S03, "cpu_temperature_celsius")]
    assert np.isnan(column[p.start : p.start + 120]).all()
    assert not np.isnan(np.delete(column, np.s_[p.start : p.start + 120])).any()
    assert p.frame.absent is None  # a NULL answer is a row, not a lost message


def _crac_degradation(p: Pair) -> None:
    supply = p.diff("room/crac1", "crac_supply_temperature_celsius")
    assert supply[-60:].mean() > 1.5
    inlet = p.frame.values[-60:, p.cols("inlet_temperature_celsius")]
    assert (inlet - p.base.values[-60:, p.cols("inlet_temperature_celsius")] > 1.0).all()
    assert p.diff("room", "pue_ratio")[-60:].mean() > 0.03  # a worse COP costs energy


def _pdu_cap(p: Pair) -> None:
    cap = p.frame.values[:, p.col("c01/r01/pdu", "pdu_capacity_watts")]
    assert cap[p.start] < 0.5 * cap[0]
    assert p.diff("c01/r01/pdu", "pdu_power_watts")[p.start + 1 : p.start + 300].mean() < -20.0


def _load_burst(p: Pair) -> None:
    util = p.frame.values[:, p.col(S03, "cpu_utilization_ratio")]
    assert util[p.start : p.start + 24].min() >= 0.88  # 90 % for 120 s
    assert p.diff(S03, "power_watts")[p.start : p.start + 24].mean() > 30.0
    assert p.diff(S03, "cpu_utilization_ratio")[p.start + 30 :].max() == 0.0


def _telemetry_loss(p: Pair) -> None:
    assert p.frame.absent is not None
    lost = p.frame.absent
    window = slice(p.start, p.start + 60)
    assert not lost[: p.start].any() and not lost[p.start + 60 :].any()
    share = lost[window].any(axis=0).mean()
    assert 0.15 <= share <= 0.25  # 20 % of the sensors
    padded = np.pad(lost[window], ((1, 1), (0, 0))).astype(np.int8)
    edges = np.diff(padded, axis=0)
    starts, ends = np.nonzero(edges.T == 1), np.nonzero(edges.T == -1)
    spans_s = (ends[1] - starts[1]) * p.twin.step_s
    assert len(spans_s) > 0 and spans_s.min() >= 10.0 and spans_s.max() <= 30.0
    kept = ~lost
    assert np.array_equal(p.frame.values[kept], p.base.values[kept])  # nothing else changed


def _airflow_misdistribution(p: Pair) -> None:
    inlet = p.diff(S03, "inlet_temperature_celsius")[p.start + 120 :]
    assert inlet.mean() > 1.0
    assert (
        p.diff("c01/r01/s05", "inlet_temperature_celsius")[p.start + 120 :].mean()
        > p.diff("c01/r01/s01", "inlet_temperature_celsius")[p.start + 120 :].mean()
    )


def _disk_failure(p: Pair) -> None:
    disk = p.frame.values[:, p.col(S03, "disk_ok")]
    assert (disk[: p.start] == 1.0).all() and (disk[p.start :] == 0.0).all()
    assert p.diff(S03, "power_watts")[p.start :].mean() == pytest.approx(-6.0, abs=0.5)


Check = Callable[[Pair], None]
CASES: dict[str, tuple[str, dict[str, Any], int, Check]] = {
    "fan_off": (f"{S03}/fan1", {}, 720, _fan_off),
    "fan_degradation": (f"{S03}/fan1", {}, 360 * 30 + 600, _fan_degradation),
    "sensor_drift": (S03, {}, 720 * 10, _sensor_drift),
    "sensor_stuck": (S03, {}, 1440, _sensor_stuck),
    "sensor_null": (S03, {}, 720, _sensor_null),
    "crac_degradation": ("room/crac1", {}, 1440, _crac_degradation),
    "pdu_cap": ("c01/r01/pdu", {}, 720, _pdu_cap),
    "load_burst": (S03, {}, 240, _load_burst),
    "telemetry_loss": ("c01", {}, 360, _telemetry_loss),
    "airflow_misdistribution": ("c01/r01", {}, 720, _airflow_misdistribution),
    "disk_failure": (S03, {}, 240, _disk_failure),
}


@pytest.mark.parametrize("kind", sorted(FAULTS))
def test_fault_changes_the_data_and_is_labelled(pair: PairFactory, kind: str) -> None:
    assert kind in CASES, f"add a check for the new fault kind {kind!r}"
    entity, params, n_steps, check = CASES[kind]
    p = pair(kind, entity, params, n_steps=n_steps, start=120)
    assert np.array_equal(p.frame.values[: p.start], p.base.values[: p.start], equal_nan=True)
    check(p)
    labels = [e for e in p.frame.events if e.attributes.get("fault") == kind]
    assert len(labels) == 1
    event = labels[0]
    assert event.kind == EventKind.FAULT_INJECTED
    assert event.ts == int(p.frame.ts[p.start])
    assert event.entity == p.twin.fault_events()[0].entity
    assert event.severity == FAULTS[kind].severity
    given = {k: event.attributes[k] for k in FAULTS[kind].defaults}
    assert given == {**FAULTS[kind].defaults, **params}  # every parameter, defaults included
    duration = FAULTS[kind].planned_duration_s(event.attributes)
    expected_end = None if duration is None else event.ts + round(duration * 1000)
    assert event.end_ts == expected_end


def test_fan_degradation_ends_in_a_labelled_fan_off() -> None:
    twin = Twin("small", faults=[], seed=1)
    first = twin.inject("fan_degradation", "c01/r01/s01/fan2")
    assert first.end_ts == first.ts + 15 * 3_600_000  # 30 steps of 2 % from 100 % to 40 %
    follow = [e for e in twin.fault_events() if e.attributes["fault"] == "fan_off"]
    assert [(e.ts, e.entity, e.attributes["cause"]) for e in follow] == [
        (first.end_ts, "c01/r01/s01/fan2", "fan_degradation")
    ]


def test_inject_rejects_bad_requests() -> None:
    twin = Twin("small")
    with pytest.raises(CommandRejected, match="unknown fault kind"):
        twin.inject("meteor", "c01/r01/s01")
    with pytest.raises(CommandRejected, match="not a fan"):
        twin.inject("fan_off", "c01/r01/s09/fan1")
    with pytest.raises(CommandRejected, match="no parameter"):
        twin.inject("load_burst", "c01/r01/s01", {"utilisation": 0.9})
    with pytest.raises(CommandRejected, match="outside"):
        twin.inject("load_burst", "c01/r01/s01", {"utilization": 1.5})
    with pytest.raises(CommandRejected, match="no sensor"):
        twin.inject("sensor_null", "c01/r01/s01", {"metric": "fan_rpm"})
    twin.run(10)
    with pytest.raises(CommandRejected, match="in the past"):
        twin.inject("fan_off", "c01/r01/s01/fan1", start_ms=twin.start_ms)
    assert twin.fault_events() == []  # nothing half-scheduled


def test_group_burst_picks_n_servers_and_names_them() -> None:
    twin = Twin("very-large", seed=3)
    event = twin.inject("load_burst", "c01", {"n_servers": 10})
    assert len(event.attributes["servers"]) == 10
    util = twin.run(20).values[:, twin.layout.blocks["cpu_utilization_ratio"]]
    assert int(((util >= 0.88).all(axis=0)).sum()) >= 10


def test_random_failures_follow_lifetimes() -> None:
    topo = build_topology("very-large", clusters=5)
    year = 365.25 * 86400.0
    drawn = draw_random_faults(topo, seed=1, horizon_s=year, lifetimes={"fan_off": Lifetime(year)})
    share = len(drawn) / topo.n_fans
    assert share == pytest.approx(1 - np.exp(-1), abs=0.08)  # exponential: P(T < MTBF) = 63 %
    again = draw_random_faults(topo, seed=1, horizon_s=year, lifetimes={"fan_off": Lifetime(year)})
    assert drawn == again
    twin = Twin("very-large", clusters=5, faults=drawn[:3])
    assert len(twin.fault_events()) == 3
