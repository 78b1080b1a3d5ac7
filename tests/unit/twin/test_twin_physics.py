"""Physics sanity: the room responds the way a real one does."""

from __future__ import annotations

import numpy as np
import pytest
from twin_support import PairFactory

from rackwatch.model import Command
from rackwatch.twin import SCENARIOS, Twin


def test_fan_off_heats_its_cpu_by_several_degrees_within_minutes(pair: PairFactory) -> None:
    p = pair("fan_off", "c01/r01/s03/fan1")
    rise = p.diff("c01/r01/s03", "cpu_temperature_celsius")
    assert np.abs(rise[: p.start]).max() == 0.0
    assert rise[p.start + 24] >= 2.0  # 2 minutes
    assert rise[p.start + 60] >= 5.0  # 5 minutes
    assert rise[p.start + 120 :].min() >= 5.0
    other = p.diff("c01/r01/s01", "cpu_temperature_celsius")
    assert np.abs(other[p.start + 120 :]).mean() < 0.5  # a server away in the rack barely moves
    power = p.diff("c01/r01/s03", "power_watts")[p.start + 12 :]
    assert abs(power.mean()) < 6.0  # only the stopped fan's few watts


@pytest.mark.parametrize(("level", "lower", "upper"), [(1, 12.0, 60.0), (3, 0.5, 6.0)])
def test_remaining_fan_low_cannot_hold_high_partly_compensates(
    pair: PairFactory, level: int, lower: float, upper: float
) -> None:
    """Fan1 off; fan2 at `level`: low makes it worse than medium, high recovers part of it."""
    p = pair("fan_off", "c01/r01/s03/fan1", n_steps=120)
    p.twin.apply(Command("c01/r01/s03/fan2", "fan.set_level", {"level": level}))
    base = Twin("small", seed=11)
    base.run(120)
    j = p.col("c01/r01/s03", "cpu_temperature_celsius")
    rise = p.twin.run(360).values[-60:, j] - base.run(360).values[-60:, j]
    assert lower <= rise.mean() <= upper


def test_burst_raises_power_and_temperature(pair: PairFactory) -> None:
    p = pair("load_burst", "c01/r01/s02", {"duration_s": 600.0})
    during = slice(p.start + 60, p.start + 120)
    assert p.frame.values[during, p.col("c01/r01/s02", "cpu_utilization_ratio")].min() >= 0.88
    assert p.diff("c01/r01/s02", "power_watts")[during].mean() > 50.0
    assert p.diff("c01/r01/s02", "cpu_temperature_celsius")[during].mean() > 5.0
    assert p.diff("c01/r01/s02", "chassis_temperature_celsius")[during].mean() > 1.0


def test_degraded_crac_warms_many_servers_together() -> None:
    twin, base = Twin.from_scenario("crac-degraded", seed=2), Twin("large", seed=2)
    inlet = twin.layout.blocks["inlet_temperature_celsius"]
    rise = twin.run(720 * 3).values[:, inlet] - base.run(720 * 3).values[:, inlet]
    assert np.abs(rise[:720]).max() == 0.0
    late = rise[-120:].mean(axis=0)
    assert (late > 1.5).all(), late  # every server of the room, together
    assert late.std() < 0.5 * late.mean()  # a room pattern, not one hot spot


def test_pue_stays_realistic_across_scenarios() -> None:
    for name in ("very-large", "crac-degraded", "fan-fail", "burst-fan-degradation"):
        twin = Twin.from_scenario(name, seed=5)
        pue = twin.run(720 * 6).values[:, twin.layout.blocks["pue_ratio"]]
        assert pue.min() >= 1.1 and pue.max() <= 1.8, name


def test_pdu_cap_throttles_the_rack(pair: PairFactory) -> None:
    p = pair("pdu_cap", "c01/r01/pdu", {"capacity_ratio": 0.35})
    during = slice(p.start + 1, p.start + 300)
    cap = p.frame.values[during, p.col("c01/r01/pdu", "pdu_capacity_watts")]
    drawn = p.frame.values[during, p.col("c01/r01/pdu", "pdu_power_watts")]
    assert (drawn <= cap + 10.0).all()  # noise of the PDU meter only
    assert p.diff("c01/r01/pdu", "pdu_power_watts")[during].mean() < -50.0
    util = p.diff("c01/r01/s01", "cpu_utilization_ratio")[during]
    assert util.mean() < -0.02


def test_top_of_rack_breathes_warmer_air() -> None:
    twin = Twin("very-large", seed=4)
    inlet = twin.run(720).values[:, twin.layout.blocks["inlet_temperature_celsius"]].mean(axis=0)
    slots = twin.topology.server_slot
    assert inlet[slots == 10].mean() > inlet[slots == 1].mean() + 0.5
    assert inlet.min() >= 18.0 and inlet.max() <= 27.0  # ASHRAE recommended range


def test_a_day_of_a_room_has_the_magnitudes_of_seed_000() -> None:
    twin = Twin("very-large", seed=9)
    frame = twin.run(17280)
    values, blocks = frame.values, twin.layout.blocks
    cpu = values[:, blocks["cpu_temperature_celsius"]]
    assert cpu.min() >= 30.0 and cpu.max() <= 85.0
    assert twin.topology.idle_w.min() >= 50.0 and twin.topology.idle_w.max() <= 120.0
    assert twin.topology.peak_w.min() >= 150.0 and twin.topology.peak_w.max() <= 500.0
    assert (twin.topology.fan_max_w >= 2.0).all() and (twin.topology.fan_max_w <= 20.0).all()
    util = values[:, blocks["cpu_utilization_ratio"]].mean(axis=1)
    hour = (frame.ts - frame.ts[0]) / 3_600_000
    assert util[(hour >= 14) & (hour < 16)].mean() > util[(hour >= 2) & (hour < 4)].mean() + 0.1


def test_every_scenario_is_runnable() -> None:
    for name in SCENARIOS:
        frame = Twin.from_scenario(name, seed=1).run(10)
        assert np.isfinite(frame.values[:, :5]).all()


def _inlet_rise_from_burst(misdistribution: bool) -> np.ndarray:
    """Inlet rise of each server of c01/r01 when s03 runs hot, with or without a breach."""
    twins = [Twin("small", seed=6), Twin("small", seed=6)]
    for twin in twins:
        if misdistribution:
            twin.inject("airflow_misdistribution", "c01/r01")
    twins[0].inject("load_burst", "c01/r01/s03", {"utilization": 1.0, "duration_s": 3600.0})
    inlet = twins[0].layout.blocks["inlet_temperature_celsius"]
    hot, calm = (t.run(240).values[-60:, inlet].mean(axis=0) for t in twins)
    return np.asarray(hot - calm)


def test_a_hot_server_warms_its_neighbours_more_when_airflow_is_poor() -> None:
    normal, poor = _inlet_rise_from_burst(False), _inlet_rise_from_burst(True)
    s01, s02, _, s04, s05 = poor
    assert s02 > s01 and s04 > s05  # adjacent slots get the hot exhaust
    assert poor[[1, 3]].mean() > 2.0 * normal[[1, 3]].mean() > 0.0


def test_one_fan_off_unbalances_the_rack_and_warms_the_others_inlet(pair: PairFactory) -> None:
    p = pair("fan_off", "c01/r01/s03/fan1")
    others = [f"c01/r01/s0{k}" for k in (1, 2, 4, 5)]
    rises = [p.diff(s, "inlet_temperature_celsius")[-120:].mean() for s in others]
    assert min(rises) > 0.05
