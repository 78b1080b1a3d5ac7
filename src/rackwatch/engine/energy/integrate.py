"""Energy from power samples: the integrals every part of rackwatch takes the same way.

A sample's power is held until the next sample (left rectangle), which is exact for the twin's
step-wise power and never invents a value in a gap: a NULL (NaN) reading contributes nothing.
Pure functions over arrays (no store, no bus): the fan-policy comparison, the accounting over
the store's tiers and the live accountant share them and their constants.

>>> kwh(np.array([[100.0, 10.0], [100.0, 20.0]]), step_s=1800.0).tolist()   # 2 steps of 30 min
[0.1, 0.015]
>>> round(float(held_kwh(np.array([0, 3_600_000, 5_400_000]), np.array([1000.0, 500.0, 0.0]))), 3)
1.25
"""

from __future__ import annotations

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
