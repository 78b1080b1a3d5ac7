""" "Optimisation gained": the fan energy the active policy used against always-high.

The model, per fan, from what was measured (no simulation):

1. **Its power at high.** A fan's electrical power follows the third affinity law, P ∝ n³,
   and a level is a fixed share of the full speed (`twin.physics.LEVEL_SPEED`: off 0, low
   0.4, medium 0.7, high 1.0; the twin and the MQTT fans use it, and a real fan's curve is
   close). In every bucket where the fan held one level above off the whole time (the
   bucket's lowest and highest `fan_level` equal), avg power / speed(level)³ estimates its
   power at high; the fan's estimate is the median over those buckets. A worn fan (the
   twin's wear slows it) gives its worn power at high, as it should.
2. **Always-high energy** = that power x the time its power readings cover (the same
   covered time as its measured energy, buckets.py), so gaps count in neither.
3. **Saved** = always-high - measured, per bucket, priced at the bucket's tariff. Fans are
   IT equipment (inside the servers' power), so each kWh they save also saves the cooling
   and losses on top: the facility saving is saved x PUE (the period's measured PUE, else the
   configured one), and the cost is that of the facility saving (of the IT saving without a
   PUE).

**Limits.** A fan never at a steady level above off in the range (always off, or changing
level inside every bucket), or without a `fan_level` series, has no estimate: it is left out
and counted in `n_fans_unknown`. The baseline keeps everything else as it was: at high the
CPUs would run cooler and the servers' own power (leakage) and the CRAC's work would change
a little; the twin models neither, and `rackwatch fans compare` (engine/control/compare.py),
which runs the twin under both policies, measures the heat side of the trade. On the twin
the estimate matches that comparison's always-high fan energy (a test checks it).

>>> round(high_power_w(0.64, 1), 6), round(high_power_w(4.116, 2), 6)   # 10 W and 12 W fans
(10.0, 12.0)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from rackwatch.engine.energy.buckets import Window, energy_ctes, rows_sql
from rackwatch.engine.energy.integrate import J_PER_KWH
from rackwatch.engine.energy.report import FanSaving
from rackwatch.twin.physics import LEVEL_SPEED


def high_power_w(avg_power_w: float, level: int) -> float:
    """A fan's power at high from its power at a steady `level` (1..3): cube law."""
    return float(avg_power_w / LEVEL_SPEED[level] ** 3)


def _sql(parts: list[Window]) -> str:
    """One pass per fan: its power at high (the median over steady buckets), its energy and
    covered time, and both priced per bucket (the saving's cost is then linear in them)."""
    return f"""{energy_ctes(parts, "_fans")},
    lv AS ({rows_sql(parts, "_fan_levels", "low, high")})
    SELECT f.series,
           median(e.avg / s.cube)
               FILTER (WHERE lv.low = lv.high AND lv.low >= 1 AND e.avg IS NOT NULL) AS high_w,
           sum(e.joules) AS joules, sum(e.covered_ms) AS covered_ms,
           sum(e.covered_ms * p.price) AS covered_price, sum(e.joules * p.price) AS joules_price
    FROM e JOIN _fans f ON f.series = e.series
    LEFT JOIN lv ON lv.series = f.level_series AND lv.ts = e.ts AND lv.width = e.width
    LEFT JOIN _speed s ON s.level = CAST(round(lv.low) AS INTEGER)
    JOIN _price p ON p.ts = e.ts
    GROUP BY f.series"""


def fan_saving(
    sql: Any,
    parts: list[Window],
    fans: Sequence[tuple[int, int | None]],
    pue: float | None,
) -> FanSaving | None:
    """The saving of the fans `(power series, level series or None)` over the windows, in an
    analytics session `sql` where `_price` is registered; None when no fan has a reading."""
    if not fans or not parts:
        return None
    power = np.array([p for p, _ in fans], dtype=np.int32)
    level = np.array([-1 if q is None else q for _, q in fans], dtype=np.int32)
    sql.register("_fans", pa.table({"series": power, "level_series": level}))
    sql.register("_fan_levels", pa.table({"series": level[level >= 0]}))
    cube = (LEVEL_SPEED[1:] ** 3).astype(np.float64)
    sql.register(
        "_speed", pa.table({"level": np.arange(1, len(LEVEL_SPEED), dtype=np.int32), "cube": cube})
    )
    try:
        got = sql.execute(_sql(parts)).fetchnumpy()
    finally:
        for name in ("_fans", "_fan_levels", "_speed"):
            sql.unregister(name)
    if len(got["series"]) == 0:
        return None  # no fan has a reading in the range
    high = np.ma.filled(np.ma.asarray(got["high_w"], dtype=np.float64), np.nan)
    known = np.isfinite(high)
    joules = np.asarray(got["joules"], dtype=np.float64)[known]
    covered_s = np.asarray(got["covered_ms"], dtype=np.float64)[known] / 1000.0
    covered_price = np.asarray(got["covered_price"], dtype=np.float64)[known] / 1000.0
    joules_price = np.asarray(got["joules_price"], dtype=np.float64)[known]
    # Σ (high x covered - joules) x price, per bucket: linear, so from the sums
    saved_cost = float((high[known] * covered_price - joules_price).sum()) / J_PER_KWH
    fan_kwh = float(joules.sum()) / J_PER_KWH
    high_kwh = float((high[known] * covered_s).sum()) / J_PER_KWH
    saved = high_kwh - fan_kwh
    return FanSaving(
        fan_kwh=fan_kwh,
        always_high_kwh=high_kwh,
        saved_kwh=saved,
        saving_ratio=saved / high_kwh if high_kwh > 0 else None,
        pue=pue,
        saved_facility_kwh=None if pue is None else saved * pue,
        saved_cost=saved_cost * (1.0 if pue is None else pue),
        n_fans=int(known.sum()),
        n_fans_unknown=len(known) - int(known.sum()),  # fans with readings in the range
    )
