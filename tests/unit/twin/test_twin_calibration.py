"""The calibration of docs/TWIN.md: the twin reports what real servers report, idle and loaded,
and its faults move the signals by the amounts the seed and the sources give."""

from __future__ import annotations

import numpy as np
import pytest

from rackwatch.engine.alerts.rules import RuleEvaluator
from rackwatch.model import Batch, SeriesRegistry
from rackwatch.settings import AlertSettings, build_alert_rules
from rackwatch.twin import Twin, TwinFrame
from rackwatch.twin.plant import PlantParams

DAY = 17280


@pytest.fixture(scope="module")
def day() -> tuple[Twin, TwinFrame]:
    """A day of the default room, fans held at the design level (medium), no fault."""
    twin = Twin("very-large", seed=9)
    return twin, twin.run(DAY)


def _server(twin: Twin, frame: TwinFrame, metric: str) -> np.ndarray:
    return frame.values[:, twin.layout.blocks[metric]]


def test_cpus_idle_and_loaded_in_the_ranges_real_servers_report(
    day: tuple[Twin, TwinFrame],
) -> None:
    twin, frame = day
    cpu = _server(twin, frame, "cpu_temperature_celsius")
    util = _server(twin, frame, "cpu_utilization_ratio")
    assert 40.0 <= np.median(cpu[util < 0.3]) <= 55.0  # idle: 40-55 °C
    assert 60.0 <= np.median(cpu[util > 0.6]) <= 80.0  # loaded: 65-85 °C at full load
    assert cpu.min() >= 35.0 and cpu.max() < 90.0  # far from Tjmax (100 °C)


def test_inlets_stay_in_the_ashrae_recommended_range(day: tuple[Twin, TwinFrame]) -> None:
    twin, frame = day
    inlet = _server(twin, frame, "inlet_temperature_celsius")
    assert inlet.min() >= 18.0 and inlet.max() <= 27.0 - 2.0  # with room for the alert's noise
    slots = twin.topology.server_slot
    top, bottom = inlet[:, slots == 10].mean(), inlet[:, slots == 1].mean()
    assert 0.5 < top - bottom < 5.5  # recirculation: the top of a rack breathes warmer air


def test_power_airflow_and_exhaust_have_server_magnitudes(day: tuple[Twin, TwinFrame]) -> None:
    twin, frame = day
    util = _server(twin, frame, "cpu_utilization_ratio")
    power = _server(twin, frame, "power_watts")
    cfm = _server(twin, frame, "airflow_cfm")
    loaded = util > 0.6
    assert 50.0 <= np.median(power[util < 0.3]) <= 200.0
    assert 150.0 <= np.median(power[loaded]) <= 500.0
    cfm_per_kw = cfm[loaded] / power[loaded] * 1000.0
    assert 100.0 <= np.median(cfm_per_kw) <= 200.0  # ~120-160 CFM per kW under load
    exhaust = (
        _server(twin, frame, "chassis_temperature_celsius")
        - _server(twin, frame, "inlet_temperature_celsius")
    ) / PlantParams().chassis_mix
    assert 8.0 <= np.median(exhaust[loaded]) <= 17.0  # ΔT 20-30 °F through a loaded server


def test_a_stopped_fan_heats_its_cpu_as_the_seed_says_when_nothing_compensates() -> None:
    """Seed 000 "fan fail" at its protocol's hour: +6-12 °C, every server of the room at once."""
    twin, base = Twin("very-large", seed=1), Twin("very-large", seed=1)
    for fan in twin.topology.fan_paths[::2]:
        twin.inject("fan_off", fan, start_ms=twin.start_ms + 1800 * 1000)
    cpu = twin.layout.blocks["cpu_temperature_celsius"]
    steps = 360 + 360  # to 30 min after the fault
    rise = twin.run(steps).values[-240:, cpu] - base.run(steps).values[-240:, cpu]
    per_server = rise.mean(axis=0)
    assert per_server.min() >= 6.0 and per_server.max() <= 12.0, per_server.round(1)


def test_a_load_step_shows_in_the_cpu_at_once_then_settles_over_minutes() -> None:
    twin, base = Twin("small", seed=3), Twin("small", seed=3)
    start = twin.start_ms + 60 * twin.step_ms
    twin.inject("load_burst", "c01/r01/s02", {"utilization": 1.0, "duration_s": 1800.0}, start)
    j = twin.column("c01/r01/s02", "cpu_temperature_celsius")
    rise = (twin.run(300).values[:, j] - base.run(300).values[:, j])[60:]
    assert rise[0] >= 0.4 * rise[-1] > 0.0  # die and spreader: within one 5 s step
    assert rise[36] < 0.9 * rise[-1]  # heatsink: still warming after 3 minutes


def test_a_cpu_without_airflow_throttles_at_tjmax() -> None:
    twin = Twin("small", seed=3)
    twin.inject("load_burst", "c01/r01/s02", {"utilization": 1.0, "duration_s": 3600.0})
    twin.inject("fan_off", "c01/r01/s02/fan1")
    twin.inject("fan_off", "c01/r01/s02/fan2")
    cpu = twin.run(360).values[:, twin.column("c01/r01/s02", "cpu_temperature_celsius")]
    assert 99.5 <= cpu[-60:].mean() <= 100.5  # held at 100 °C (noise of the sensor only)


def test_a_degraded_crac_takes_every_inlet_past_the_recommended_range() -> None:
    twin = Twin.from_scenario("crac-degraded", seed=1)
    inlet = twin.run(720 * 5).values[:, twin.layout.blocks["inlet_temperature_celsius"]]
    before, late = inlet[:720], inlet[-720:]
    assert before.max() < 27.0
    assert (late.max(axis=0) > 27.0).all()  # ASHRAE's 27 °C: a room-wide warning
    assert late.max() < 35.0


def test_the_default_rules_stay_quiet_on_a_fault_free_day(day: tuple[Twin, TwinFrame]) -> None:
    """No inlet warning, no "rising" on ordinary bursts. With the fans held at medium (no
    controller) a burst near 100 % may take a CPU just past the 80 °C warning, and nothing else."""
    twin, frame = day
    registry = SeriesRegistry()
    ids = registry.intern_many(twin.series_keys)
    evaluator = RuleEvaluator(build_alert_rules(AlertSettings()), registry)
    fired = [
        tr
        for tr in evaluator.evaluate(Batch.from_grid(frame.ts, ids, frame.values))
        if tr.level is not None and tr.previous is None
    ]
    assert {tr.rule.name for tr in fired} <= {"cpu-temperature"}, fired
    util = _server(twin, frame, "cpu_utilization_ratio")
    for tr in fired:
        row = int((tr.ts - frame.ts[0]) // twin.step_ms)
        server = twin.topology.server_index[tr.entity]
        assert util[row - 60 : row + 1, server].max() >= 0.9, tr.message
