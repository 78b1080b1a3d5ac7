"""`account` against hand-computed integrals: gaps (a minute with no reading, NULL readings, a
half-filled minute, a missing hour), the 1-hour tier with 1-minute edges, a sparse PDU,
groups, GPU hosts, facility and PUE, tariffs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from energy_support import (
    DAY,
    HOUR,
    MIN,
    MONDAY_7H,
    join,
    nulled,
    open_store,
    steady,
    without,
    write,
)

from rackwatch.engine.energy import Tariff, TariffPeriod, account
from rackwatch.store.base import EntityRecord

T0 = MONDAY_7H
J = 1 / 3.6e6  # kWh per joule
PEAK = Tariff(0.10, periods=(TariffPeriod("peak", 0.30, ("mon",), (8, 20)),))
"""Base 0.10; Monday 08-20 UTC 0.30: the second hour of the range."""


@pytest.fixture(scope="module")
def two_hours(tmp_path_factory: pytest.TempPathFactory):
    """Two hours from Monday 07:00 UTC, 5 s samples (the PDU every 5 minutes):

    - c01/r01/s01: 100 W in the first hour, with minute 10 absent, minute 20 NULL and only
      the first half of minute 30; 200 W all the second hour;
    - c01/r01/s02: 50 W throughout;
    - c01/r02/s01: 10 W, the whole second hour absent;
    - c01/r01/pdu: 150 W every 300 s.
    """
    store, registry = open_store(tmp_path_factory.mktemp("two-hours"), T0 + 2 * HOUR)
    first = steady(T0, T0 + HOUR, 5000, 100.0)
    first = without(first, T0 + 10 * MIN, T0 + 11 * MIN)
    first = nulled(first, T0 + 20 * MIN, T0 + 21 * MIN)
    first = without(first, T0 + 30 * MIN + 30_000, T0 + 31 * MIN)
    series = {
        ("c01/r01/s01", "power_watts"): join(first, steady(T0 + HOUR, T0 + 2 * HOUR, 5000, 200.0)),
        ("c01/r01/s02", "power_watts"): steady(T0, T0 + 2 * HOUR, 5000, 50.0),
        ("c01/r02/s01", "power_watts"): steady(T0, T0 + HOUR, 5000, 10.0),
        ("c01/r01/pdu", "pdu_power_watts"): steady(T0, T0 + 2 * HOUR, 300_000, 150.0),
    }
    inventory = [EntityRecord("room", "room"), EntityRecord("c01/r01", "rack")]
    write(store, registry, series, inventory)
    yield store
    store.close()


def test_gaps_are_reported_and_filled_at_the_mean_power(two_hours) -> None:
    r = account(two_hours, T0, T0 + 2 * HOUR, group="server", tariff=PEAK)
    rows = {row.entity: row for row in r.rows}
    s01 = rows["c01/r01/s01"]
    # hour 1: 3600 s - 60 (absent) - 60 (NULL) - 30 (half a minute) = 3450 s at 100 W
    assert s01.covered_s == pytest.approx(3450 + 3600)
    assert s01.gap_s == pytest.approx(150)
    assert s01.energy_kwh == pytest.approx((3450 * 100 + 3600 * 200) * J)
    mean_w = (3450 * 100 + 3600 * 200) / 7050
    assert s01.estimated_kwh == pytest.approx((3450 * 100 + 3600 * 200 + 150 * mean_w) * J)
    assert s01.coverage == pytest.approx(7050 / 7200)
    # the second hour is Monday 08:00-09:00: peak
    assert s01.cost == pytest.approx(3450 * 100 * J * 0.10 + 3600 * 200 * J * 0.30)
    r02 = rows["c01/r02/s01"]  # a whole hour missing
    assert (r02.covered_s, r02.gap_s) == (pytest.approx(3600), pytest.approx(3600))
    assert r02.energy_kwh == pytest.approx(36_000 * J)
    assert r02.estimated_kwh == pytest.approx(72_000 * J)
    assert set(rows) == {"c01/r01/s01", "c01/r01/s02", "c01/r02/s01"}


def test_racks_sum_their_servers_beside_their_pdu(two_hours) -> None:
    r = account(two_hours, T0, T0 + 2 * HOUR, group="rack", tariff=PEAK)
    rows = {row.entity: row for row in r.rows}
    r01 = rows["c01/r01"]
    assert r01.energy_kwh == pytest.approx((3450 * 100 + 3600 * 200 + 7200 * 50) * J)
    assert r01.n_series == 2
    # the PDU read once per 5 minutes: each reading covers 300 s, 24 of them
    assert r01.metered_kwh == pytest.approx(7200 * 150 * J)
    assert r01.metered_coverage == pytest.approx(1.0)
    assert rows["c01/r02"].metered_kwh is None
    assert r.energy_kwh == pytest.approx(r01.energy_kwh + 36_000 * J)


def test_the_site_total_and_tariff_periods(two_hours) -> None:
    r = account(two_hours, T0, T0 + 2 * HOUR, group="site", tariff=PEAK)
    first_hour = 3450 * 100 + 3600 * 50 + 3600 * 10
    second_hour = 3600 * 200 + 3600 * 50
    assert r.energy_kwh == pytest.approx((first_hour + second_hour) * J)
    assert r.cost == pytest.approx(first_hour * J * 0.10 + second_hour * J * 0.30)
    periods = {p.name: (p.energy_kwh, p.cost) for p in r.periods}
    assert periods["peak"] == (pytest.approx(second_hour * J), pytest.approx(second_hour * J * 0.3))
    assert periods["base"] == (pytest.approx(first_hour * J), pytest.approx(first_hour * J * 0.1))
    assert [row.entity for row in r.rows] == ["site"]
    assert r.to_dict()["tiers"] == [{"tier": "1m", "from_ms": T0, "to_ms": T0 + 2 * HOUR}]
    # no facility meter, no configured PUE: unknown
    assert (r.pue, r.facility_kwh, r.facility_source) == (None, None, None)


def test_a_configured_pue_applies_to_the_pdu_total_when_there_is_one(two_hours) -> None:
    r = account(two_hours, T0, T0 + 2 * HOUR, tariff=PEAK, pue=1.5)
    assert (r.pue, r.pue_source, r.facility_source) == (1.5, "configured", "pdu_times_pue")
    assert r.facility_kwh == pytest.approx(7200 * 150 * J * 1.5)
    only_r02 = account(two_hours, T0, T0 + 2 * HOUR, tariff=PEAK, pue=1.5, entity="c01/r02/**")
    assert only_r02.facility_source == "it_times_pue"
    assert only_r02.facility_kwh == pytest.approx(36_000 * J * 1.5)
    assert only_r02.facility_cost == pytest.approx(only_r02.cost * 1.5)


def test_the_entity_glob_selects_servers_and_their_pdu(two_hours) -> None:
    r = account(two_hours, T0, T0 + 2 * HOUR, group="rack", tariff=PEAK, entity="c01/r01/**")
    assert [row.entity for row in r.rows] == ["c01/r01"]
    assert r.total.metered_kwh == pytest.approx(7200 * 150 * J)
    one = account(two_hours, T0, T0 + 2 * HOUR, group="server", tariff=PEAK, entity="*/*/s02")
    assert [row.entity for row in one.rows] == ["c01/r01/s02"]
    assert one.energy_kwh == pytest.approx(7200 * 50 * J)


def test_rooms_come_from_the_inventory(two_hours) -> None:
    r = account(two_hours, T0, T0 + 2 * HOUR, group="room", tariff=PEAK)
    assert [row.entity for row in r.rows] == ["room"]  # the only room holds every rack
    assert r.rows[0].energy_kwh == pytest.approx(r.energy_kwh)


def test_the_range_is_taken_in_whole_minutes(two_hours) -> None:
    r = account(two_hours, T0 + 30_000, T0 + 5 * MIN + 59_999, group="server", tariff=PEAK)
    assert (r.from_ms, r.to_ms) == (T0, T0 + 5 * MIN)
    assert {row.entity: row.energy_kwh for row in r.rows}["c01/r01/s02"] == pytest.approx(
        300 * 50 * J
    )
    empty = account(two_hours, T0 + 1000, T0 + 2000, tariff=PEAK)
    assert (empty.energy_kwh, empty.total.coverage, empty.tiers) == (0.0, None, ())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"group": "cluster"}, "group must be one of"),
        ({"pue": 0.9}, "pue must be a number 1.0..3.0"),
        ({"pue": float("nan")}, "pue must be"),
        ({"start": T0 + HOUR, "end": T0}, "must be before"),
        ({"start": -1}, "start_ms must be epoch ms"),
        ({"end": T0 + 21 * 366 * DAY}, "at most 7,320 days"),
    ],
)
def test_bad_arguments_are_refused(two_hours, kwargs, message) -> None:
    start = kwargs.pop("start", T0)
    end = kwargs.pop("end", T0 + HOUR)
    with pytest.raises(ValueError, match=message):
        account(two_hours, start, end, tariff=PEAK, **kwargs)


def test_long_ranges_read_whole_hours_and_minute_edges(tmp_path: Path) -> None:
    """Four days of 100 W with hour 30 missing; the first half hour at 300 W. A range from
    00:30 to 3 d 12:30 reads [00:30, 01:00) and [3 d 12:00, 12:30) from minutes, the rest
    from hours: the hour bucket 00:00 (200 W average) is not taken."""
    store, registry = open_store(tmp_path, T0 + 4 * DAY)
    power = join(
        steady(T0, T0 + 30 * MIN, 5000, 100.0), steady(T0 + 30 * MIN, T0 + HOUR, 5000, 300.0)
    )
    power = join(
        power, without(steady(T0 + HOUR, T0 + 4 * DAY, 5000, 100.0), T0 + 30 * HOUR, T0 + 31 * HOUR)
    )
    write(store, registry, {("c01/r01/s01", "power_watts"): power})
    try:
        start, end = T0 + 30 * MIN, T0 + 3 * DAY + 12 * HOUR + 30 * MIN
        r = account(store, start, end, tariff=Tariff(0.2))
    finally:
        store.close()
    assert [(t.tier, t.from_ms, t.to_ms) for t in r.tiers] == [
        ("1m", start, T0 + HOUR),
        ("1h", T0 + HOUR, T0 + 3 * DAY + 12 * HOUR),
        ("1m", T0 + 3 * DAY + 12 * HOUR, end),
    ]
    span_s = (end - start) / 1000
    assert r.total.covered_s == pytest.approx(span_s - 3600)
    assert r.total.gap_s == pytest.approx(3600)
    assert r.energy_kwh == pytest.approx((1800 * 300 + (span_s - 1800 - 3600) * 100) * J)
    assert r.cost == pytest.approx(r.energy_kwh * 0.2)


def test_gpu_hosts_facility_meter_and_pue(tmp_path: Path) -> None:
    """A host without power_watts counts its GPUs; one with it does not add them. The room's
    meters give the PUE and, for the whole site, the facility energy."""
    store, registry = open_store(tmp_path, T0 + HOUR)
    end = T0 + HOUR
    series = {
        ("host/gpu1/gpu0", "gpu_power_watts"): steady(T0, end, 5000, 300.0),
        ("host/gpu1/gpu1", "gpu_power_watts"): steady(T0, end, 5000, 250.0),
        ("host/web1", "power_watts"): steady(T0, end, 5000, 400.0),
        ("host/web1/gpu0", "gpu_power_watts"): steady(T0, end, 5000, 70.0),
        ("room", "it_power_watts"): steady(T0, end, 5000, 950.0),
        ("room", "facility_power_watts"): steady(T0, end, 5000, 1425.0),
    }
    write(store, registry, series, [EntityRecord("room", "room")])
    try:
        r = account(store, T0, end, group="server", tariff=Tariff(0.2), pue=2.0)
        hosts = account(store, T0, end, group="server", tariff=Tariff(0.2), entity="host/**")
        rooms = account(store, T0, end, group="room", tariff=Tariff(0.2))
    finally:
        store.close()
    rows = {row.entity: row.energy_kwh for row in r.rows}
    assert rows == {"host/gpu1": pytest.approx(0.55), "host/web1": pytest.approx(0.4)}
    assert r.energy_kwh == pytest.approx(0.95)
    # measured PUE wins over the configured one; the whole site: the facility meter's energy
    assert (r.pue, r.pue_source) == (pytest.approx(1.5), "measured")
    assert (r.facility_kwh, r.facility_source) == (pytest.approx(1.425), "facility_meter")
    assert r.facility_cost == pytest.approx(1.425 * 0.2)
    # a part of the site: its IT x the measured PUE
    assert hosts.facility_source == "it_times_measured_pue"
    assert hosts.facility_kwh == pytest.approx(0.95 * 1.5)
    # hosts are in no rack or room; the room row has its meter only
    assert [(row.entity, row.energy_kwh, row.metered_kwh) for row in rooms.rows] == [
        ("room", 0.0, pytest.approx(0.95))
    ]


def test_every_number_of_the_document_is_finite(two_hours) -> None:
    document = account(two_hours, T0, T0 + 2 * HOUR, group="server", tariff=PEAK).to_dict()

    def numbers(item: object):
        if isinstance(item, dict):
            for v in item.values():
                yield from numbers(v)
        elif isinstance(item, list):
            for v in item:
                yield from numbers(v)
        elif isinstance(item, float):
            yield item

    assert all(np.isfinite(x) for x in numbers(document))
    assert document["currency"] == "EUR"
    assert set(document["rows"][0]) >= {"entity", "energy_kwh", "estimated_kwh", "coverage"}
