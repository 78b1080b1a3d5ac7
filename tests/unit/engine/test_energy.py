"""Energy accounting: kWh from grids and irregular samples, cost by tariff."""

from __future__ import annotations

import numpy as np
import pytest

from rackwatch.engine.energy import Tariff, held_kwh, kwh

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


def test_peak_hours_cost_more_and_can_wrap_midnight() -> None:
    ts = np.array([7, 8, 19, 20], dtype=np.int64) * HOUR_MS
    day = Tariff(0.10, peak_price_per_kwh=0.30, peak_hours=(8, 20))
    assert day.price_at(ts).tolist() == [0.10, 0.30, 0.30, 0.10]
    night = Tariff(0.20, peak_price_per_kwh=0.05, peak_hours=(22, 6))
    assert night.price_at(np.array([23, 3, 6], dtype=np.int64) * HOUR_MS).tolist() == [
        0.05,
        0.05,
        0.20,
    ]
    assert day.cost(ts, np.ones(4)) == pytest.approx(0.8)


@pytest.mark.parametrize(
    "kwargs", [{"price_per_kwh": -1.0}, {"price_per_kwh": 1.0, "peak_hours": (8, 25)}]
)
def test_bad_tariffs_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Tariff(**kwargs)  # type: ignore[arg-type]
