"""The live accountant: held samples, gaps, NULLs, several samples of a series in one batch,
late samples, today in the site's zone, cost, PUE and the counters by group."""

from __future__ import annotations

import numpy as np
import pytest
from energy_support import HOUR

from rackwatch.engine.energy import LiveEnergy, Membership, Tariff, TariffPeriod
from rackwatch.engine.live import LiveState
from rackwatch.model import Batch, SeriesRegistry
from rackwatch.store.base import EntityRecord

T0 = 1_767_225_600_000  # 2026-01-01T00:00Z
KEYS = [
    ("c01/r01/s01", "power_watts"),
    ("c01/r01/s02", "power_watts"),
    ("c01/r01/s01/fan1", "fan_power_watts"),
    ("c01/r01/s01", "cpu_temperature_celsius"),
    ("room", "it_power_watts"),
    ("room", "facility_power_watts"),
    ("host/g", "load_average_1m"),
    ("host/g/gpu0", "gpu_power_watts"),
]
VALUES = [100.0, 50.0, 5.0, 60.0, 150.0, 225.0, 1.0, 300.0]


def accountant(tariff: Tariff | None = None, pue: float | None = None) -> LiveEnergy:
    registry = SeriesRegistry()
    for entity, metric in KEYS:
        registry.intern(entity, metric)
    membership = Membership.of([EntityRecord("room", "room")])
    return LiveEnergy(registry, tariff or Tariff(0.2), pue=pue, membership=membership)


def step(ts: int, values: list[float] = VALUES) -> Batch:
    return Batch.from_grid([ts], np.arange(len(values)), [values])


def test_each_sample_holds_until_the_next_and_gaps_count_one_interval() -> None:
    live = accountant()
    live.update(step(T0))
    live.update(step(T0 + 5000))  # 5 s of every series
    live.update(step(T0 + 20_000))  # 15 s later: a gap; one usual interval (5 s) counts
    values = list(VALUES)
    values[0] = np.nan
    live.update(step(T0 + 25_000, values))  # s01's 100 W held 5 s more, then NULL
    live.update(step(T0 + 30_000))  # the NULL held nothing
    counters = {(g, e): j for g, e, j in live.totals().counters()}
    assert counters[("server", "c01/r01/s01")] == pytest.approx(100 * 15)
    assert counters[("server", "c01/r01/s02")] == pytest.approx(50 * 20)
    assert counters[("server", "host/g")] == pytest.approx(300 * 20)  # its GPU: no power_watts
    assert counters[("rack", "c01/r01")] == pytest.approx(1500 + 1000)
    assert counters[("room", "room")] == pytest.approx(2500)
    assert counters[("site", "site")] == pytest.approx(2500 + 6000)
    totals = live.totals()
    assert totals.fan_joules == pytest.approx(5 * 20)
    assert totals.facility_joules == pytest.approx(225 * 20)
    assert (totals.pue, totals.pue_source) == (pytest.approx(1.5), "measured")
    assert totals.since_ms == T0 and totals.newest_ms == T0 + 30_000


def test_samples_in_one_batch_late_samples_and_repeats() -> None:
    live = accountant()
    sid = np.zeros(4, dtype=np.int32)
    # three samples of s01 in one batch, out of order, one repeated
    live.update(Batch.of([T0 + 10_000, T0, T0 + 5000, T0 + 5000], sid, [1.0, 100.0, 200.0, 7.0]))
    assert live.totals().it_joules == pytest.approx(100 * 5 + 200 * 5)
    live.update(Batch.of([T0 + 2000], [0], [1e6]))  # older than the newest: the store's
    live.update(Batch.of([T0 + 15_000], [0], [0.0]))
    assert live.totals().it_joules == pytest.approx(1500 + 1 * 5)


def test_a_series_first_interval_counts_up_to_ten_minutes() -> None:
    live = accountant()
    live.update(Batch.of([T0], [1], [60.0]))
    live.update(Batch.of([T0 + 11 * 60_000], [1], [60.0]))  # 11 min: nothing known, a gap
    live.update(Batch.of([T0 + 12 * 60_000], [1], [60.0]))  # within 1.5 x 11 min: counted
    assert live.totals().it_joules == pytest.approx(60 * 60)


def test_today_is_the_local_day_and_costs_by_period() -> None:
    """Europe/Paris in winter: local midnight is 23:00 UTC. Night 22-06 local at 0.10. A
    sample every 10 minutes from 21:00 local; an interval is priced and dated by its start."""
    night = TariffPeriod("night", 0.10, ("mon", "tue", "wed", "thu", "fri", "sat", "sun"), (22, 6))
    live = accountant(Tariff(0.30, periods=(night,), timezone="Europe/Paris"), pue=2.0)
    eve = T0 + 20 * HOUR  # 2026-01-01 21:00 local
    ten = 600_000
    for k in range(13):  # 21:00 .. 23:00 local: 12 intervals of 1 kW x 10 min
        live.update(step(eve + k * ten, [1000.0]))
    totals = live.totals()
    assert totals.it_kwh_today == pytest.approx(2.0)
    assert totals.cost_today == pytest.approx(0.30 + 0.10)
    assert (totals.day_from_ms, totals.day_to_ms) == (T0 - HOUR, T0 + 23 * HOUR)
    # no facility meter among these series' samples: the configured PUE
    assert (totals.pue, totals.pue_source) == (2.0, "configured")
    assert totals.facility_kwh_today == pytest.approx(4.0)
    assert totals.facility_cost_today == pytest.approx(0.8)
    for k in range(13, 19):  # 23:00 .. 00:00 local, then the first 10 min of the next day
        live.update(step(eve + k * ten, [1000.0]))
    after = live.totals()
    assert after.day_from_ms == T0 + 23 * HOUR
    assert after.it_kwh_today == pytest.approx(0.0)  # 23:50-00:00 was yesterday's
    live.update(step(eve + 19 * ten, [1000.0]))
    assert live.totals().it_kwh_today == pytest.approx(1 / 6)
    assert live.totals().cost_today == pytest.approx(0.10 / 6)
    assert live.totals().it_joules == pytest.approx(19 * 600_000)  # since start: every one


def test_a_gpu_stops_counting_once_its_host_reports_its_own_power() -> None:
    live = accountant()
    live.update(step(T0))
    live.update(step(T0 + 5000))
    assert {e: j for g, e, j in live.totals().counters() if g == "server"}["host/g"] == 1500
    host = live.registry.intern("host/g", "power_watts")
    live.update(Batch.of([T0 + 10_000, T0 + 10_000], [host, 7], [500.0, 300.0]))
    live.update(Batch.of([T0 + 15_000, T0 + 15_000], [host, 7], [500.0, 300.0]))
    servers = {e: j for g, e, j in live.totals().counters() if g == "server"}
    assert servers["host/g"] == pytest.approx(500 * 5)  # its power only, from now on


def test_it_listens_to_the_live_state() -> None:
    live = accountant()
    state = LiveState()
    state.listen(live.update)
    state.update(step(T0))
    state.update(step(T0 + 5000))
    assert live.totals().to_dict(detail=False)["it_joules"] == pytest.approx(5 * 450)
    document = live.totals().to_dict()
    assert document["groups"]["rack"] == {"c01/r01": 750.0}
    assert document["groups"]["site"] == {"site": 2250.0}
