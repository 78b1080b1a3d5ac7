""" "Optimisation gained": fans' energy against always-high, on a hand-made case and on the twin
(against `compare.run_policy`, which runs the twin at high)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from energy_support import HOUR, MIN, MONDAY_7H, join, open_store, steady, write

from rackwatch import app
from rackwatch.engine.control.compare import run_policy
from rackwatch.engine.energy import Tariff, account
from rackwatch.model import SeriesRegistry
from rackwatch.settings import load_settings

T0 = MONDAY_7H
J = 1 / 3.6e6
SWITCH = T0 + 30 * MIN + 30_000
"""fan1 goes from low to medium half way through minute 30: that bucket is not steady."""


def test_power_at_high_from_the_cube_law(tmp_path: Path) -> None:
    """fan1 (10 W at high): low 0.64 W then medium 3.43 W; fan2 (12 W) at high all along;
    fan3 off all along (no estimate). PUE 1.5 configured, 0.20 per kWh."""
    store, registry = open_store(tmp_path, T0 + HOUR)
    series = {
        ("c01/r01/s01/fan1", "fan_power_watts"): join(
            steady(T0, SWITCH, 5000, 10 * 0.4**3), steady(SWITCH, T0 + HOUR, 5000, 10 * 0.7**3)
        ),
        ("c01/r01/s01/fan1", "fan_level"): join(
            steady(T0, SWITCH, 5000, 1), steady(SWITCH, T0 + HOUR, 5000, 2)
        ),
        ("c01/r01/s01/fan2", "fan_power_watts"): steady(T0, T0 + HOUR, 5000, 12.0),
        ("c01/r01/s01/fan2", "fan_level"): steady(T0, T0 + HOUR, 5000, 3),
        ("c01/r01/s02/fan1", "fan_power_watts"): steady(T0, T0 + HOUR, 5000, 0.0),
        ("c01/r01/s02/fan1", "fan_level"): steady(T0, T0 + HOUR, 5000, 0),
    }
    write(store, registry, series)
    try:
        r = account(store, T0, T0 + HOUR, tariff=Tariff(0.2), pue=1.5)
    finally:
        store.close()
    saving = r.optimisation
    assert saving is not None
    fan1 = 0.64 * 1830 + 3.43 * 1770
    assert saving.fan_kwh == pytest.approx((fan1 + 12 * 3600) * J)
    assert saving.always_high_kwh == pytest.approx((10 + 12) * 3600 * J)
    assert saving.saved_kwh == pytest.approx((10 * 3600 - fan1) * J)
    assert saving.saving_ratio == pytest.approx((10 * 3600 - fan1) / (22 * 3600))
    assert (saving.n_fans, saving.n_fans_unknown) == (2, 1)
    assert saving.saved_facility_kwh == pytest.approx(saving.saved_kwh * 1.5)
    assert saving.saved_cost == pytest.approx(saving.saved_kwh * 1.5 * 0.2)
    assert r.fan_kwh == pytest.approx((fan1 + 12 * 3600) * J)  # fan3's zero included
    assert saving.to_dict()["cost_basis"] == "facility"


def test_on_the_twin_the_estimate_matches_a_run_at_high(tmp_path: Path) -> None:
    """An hour of the small room at its design level (medium): the always-high energy the
    accounting estimates is what the twin draws when run at high, within 2 %, and its
    measured fan energy is what a run at medium draws."""
    settings = load_settings(twin={"scenario": "small", "seed": 5})
    start = T0
    app.simulate(settings, duration_s=3600, out=tmp_path, start_ms=start)
    with app.open_store(settings, SeriesRegistry(), tmp_path) as store:
        r = account(store, start, start + HOUR, tariff=Tariff(0.2))
    high = run_policy("small", "always-high", 3600, seed=5)
    medium = run_policy("small", "always-medium", 3600, seed=5)
    saving = r.optimisation
    assert saving is not None and saving.n_fans_unknown == 0
    assert saving.always_high_kwh == pytest.approx(high.fan_kwh, rel=0.02)
    assert saving.fan_kwh == pytest.approx(medium.fan_kwh, rel=0.02)
    assert saving.saving_ratio == pytest.approx(1 - 0.7**3, rel=0.03)
    assert np.isfinite(saving.saved_cost) and saving.pue == pytest.approx(r.pue)
