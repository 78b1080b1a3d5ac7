"""The integrals every part takes the same way: grids and irregular samples."""

from __future__ import annotations

import numpy as np
import pytest

from rackwatch.engine.energy import held_kwh, kwh

HOUR_MS = 3_600_000


def test_grid_energy_skips_null_readings() -> None:
    power = np.array([[1000.0, np.nan], [1000.0, 500.0]])
    assert kwh(power, 1800.0).tolist() == [1.0, 0.25]


def test_held_energy_holds_each_sample_until_the_next() -> None:
    ts = np.array([0, HOUR_MS, 3 * HOUR_MS], dtype=np.int64)
    watts = np.array([100.0, 200.0, 50.0])
    assert held_kwh(ts, watts) == pytest.approx(0.5)
    assert held_kwh(ts, watts, end_ms=5 * HOUR_MS) == pytest.approx(0.6)
    assert held_kwh(np.array([], dtype=np.int64), np.array([])) == 0.0
