"""Energy accounting: kWh from power, facility energy and PUE, cost by tariff, and what the fan
policy saves (docs/ENERGY.md).

- `integrate.py`: `kwh`, `held_kwh`, the integrals every part takes the same way;
- `tariff.py`: `Tariff`, `TariffPeriod`: prices by hour and weekday in the site's time zone;
- `members.py`: which series measure what, and which server, rack and room they belong to;
- `buckets.py`: energy per bucket in SQL over the store's rollup tiers, and the tier choice;
- `accounting.py`: `account(store, start_ms, end_ms, *, group, tariff, pue, entity)`, the
  report over any period (`report.py`: `EnergyReport` and its rows);
- `optimisation.py`: "optimisation gained", the fans' energy against always-high;
- `live.py`: `LiveEnergy`, the live accountant (today's kWh, cost and PUE, counters);
- `config.py`: `EnergyConfig`, what the API and the command line are given.

>>> kwh(np.array([[100.0, 10.0], [100.0, 20.0]]), step_s=1800.0).tolist()   # 2 steps of 30 min
[0.1, 0.015]
>>> round(float(held_kwh(np.array([0, 3_600_000, 5_400_000]), np.array([1000.0, 500.0, 0.0]))), 3)
1.25
>>> round(Tariff(0.20).cost(np.array([0, 3_600_000]), np.array([1.0, 2.0])), 6)
0.6
"""

import numpy as np  # noqa: F401  (the examples)

from rackwatch.engine.energy.accounting import GROUPS, PUE_BOUNDS, account, check_pue
from rackwatch.engine.energy.config import EnergyConfig
from rackwatch.engine.energy.integrate import J_PER_KWH, held_kwh, kwh
from rackwatch.engine.energy.live import LiveEnergy, LiveTotals
from rackwatch.engine.energy.members import Membership
from rackwatch.engine.energy.report import EnergyReport, FanSaving, GroupRow, PeriodRow
from rackwatch.engine.energy.tariff import DAYS, Tariff, TariffPeriod, zone_of

__all__ = [
    "DAYS",
    "GROUPS",
    "J_PER_KWH",
    "PUE_BOUNDS",
    "EnergyConfig",
    "EnergyReport",
    "FanSaving",
    "GroupRow",
    "LiveEnergy",
    "LiveTotals",
    "Membership",
    "PeriodRow",
    "Tariff",
    "TariffPeriod",
    "account",
    "check_pue",
    "held_kwh",
    "kwh",
    "zone_of",
]
