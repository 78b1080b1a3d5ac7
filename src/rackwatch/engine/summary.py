"""A room summary from the live state: what the terminal (and later the dashboard) shows first."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rackwatch.engine.live import LiveState
from rackwatch.model import SeriesRegistry


@dataclass(frozen=True, slots=True)
class RoomSummary:
    sim_time_ms: int | None
    """Newest sample timestamp seen."""
    it_power_watts: float
    facility_power_watts: float
    pue_ratio: float
    crac_supply_temperature_celsius: float
    hottest: list[tuple[str, float]]
    """(server, CPU °C), hottest first."""
    fans_stopped: list[str]
    """Fans measured at 0 rpm."""
    n_series: int
    n_series_reporting: int


def summarize(live: LiveState, registry: SeriesRegistry, top: int = 5) -> RoomSummary:
    ts, value = live.snapshot()
    keys = registry.keys()
    n = min(len(keys), len(ts))
    by_metric: dict[str, list[int]] = {}
    for i in range(n):
        by_metric.setdefault(keys[i].metric, []).append(i)

    def total(metric: str) -> float:
        ids = [i for i in by_metric.get(metric, []) if ts[i] >= 0]
        return float(np.nansum(value[ids])) if ids else math.nan

    cpu = [
        (keys[i].entity, float(value[i]))
        for i in by_metric.get("cpu_temperature_celsius", [])
        if ts[i] >= 0 and not math.isnan(value[i])
    ]
    cpu.sort(key=lambda item: item[1], reverse=True)
    stopped = [keys[i].entity for i in by_metric.get("fan_rpm", []) if ts[i] >= 0 and value[i] == 0]
    seen = ts[:n] >= 0
    return RoomSummary(
        sim_time_ms=int(ts[:n][seen].max()) if seen.any() else None,
        it_power_watts=total("it_power_watts"),
        facility_power_watts=total("facility_power_watts"),
        pue_ratio=total("pue_ratio"),
        crac_supply_temperature_celsius=total("crac_supply_temperature_celsius"),
        hottest=cpu[:top],
        fans_stopped=sorted(stopped),
        n_series=n,
        n_series_reporting=int(seen.sum()),
    )
