"""Energy accounting: kWh from power samples, and what it costs under a tariff.

Pure functions over arrays (no store, no bus): the fan-policy comparison, reports and a live
accountant all integrate power the same way. A sample's power is held until the next sample
(left rectangle), which is exact for the twin's step-wise power and never invents a value in a
gap: a NULL (NaN) reading contributes nothing.

>>> kwh(np.array([[100.0, 10.0], [100.0, 20.0]]), step_s=1800.0).tolist()   # 2 steps of 30 min
[0.1, 0.015]
>>> round(float(held_kwh(np.array([0, 3_600_000, 5_400_000]), np.array([1000.0, 500.0, 0.0]))), 3)
1.25
>>> round(Tariff(0.20).cost(np.array([0, 3_600_000]), np.array([1.0, 2.0])), 6)
0.6
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
J_PER_KWH = 3.6e6
MS_PER_HOUR = 3_600_000


def kwh(power_w: F64, step_s: float) -> F64:
    """Energy of each column of a (steps, columns) grid sampled every `step_s`; NaN counts 0."""
    return np.asarray(np.nansum(power_w, axis=0) * step_s / J_PER_KWH)


def held_kwh(ts_ms: I64, power_w: F64, end_ms: int | None = None) -> float:
    """Energy of one series sampled at irregular `ts_ms` (sorted): each sample holds until the
    next, the last one until `end_ms` (or not at all when None)."""
    if len(ts_ms) == 0:
        return 0.0
    last = int(ts_ms[-1]) if end_ms is None else end_ms
    held_ms = np.diff(np.append(ts_ms, last))
    return float(np.nansum(power_w * held_ms) / 1000.0 / J_PER_KWH)


@dataclass(frozen=True, slots=True)
class Tariff:
    """A price per kWh, optionally higher during peak hours (UTC, [start, end))."""

    price_per_kwh: float
    currency: str = "EUR"
    peak_price_per_kwh: float | None = None
    peak_hours: tuple[int, int] = (8, 20)

    def __post_init__(self) -> None:
        if self.price_per_kwh < 0 or (self.peak_price_per_kwh or 0.0) < 0:
            raise ValueError("a tariff's prices must be >= 0")
        start, end = self.peak_hours
        if not (0 <= start <= 24 and 0 <= end <= 24):
            raise ValueError(f"peak_hours must be hours 0..24, got {self.peak_hours}")

    def price_at(self, ts_ms: I64) -> F64:
        """Price per kWh at each instant."""
        price = np.full(len(ts_ms), self.price_per_kwh)
        if self.peak_price_per_kwh is not None:
            hour = (np.asarray(ts_ms) // MS_PER_HOUR) % 24
            start, end = self.peak_hours
            if start <= end:
                peak = (hour >= start) & (hour < end)
            else:  # across midnight, e.g. (22, 6)
                peak = (hour >= start) | (hour < end)
            price[peak] = self.peak_price_per_kwh
        return price

    def cost(self, ts_ms: I64, energy_kwh: F64) -> float:
        """Cost of `energy_kwh[i]` consumed at `ts_ms[i]` (e.g. per step or per hour)."""
        return float(np.nansum(self.price_at(ts_ms) * energy_kwh))
