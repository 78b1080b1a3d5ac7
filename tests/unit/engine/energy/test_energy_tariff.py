"""Tariffs: periods by weekday and local hour, across midnight, in a zone with daylight saving;
the local day; refusals."""

from __future__ import annotations

import numpy as np
import pytest
from energy_support import HOUR, MONDAY_7H

from rackwatch.engine.energy import DAYS, Tariff, TariffPeriod

MONDAY = MONDAY_7H - 7 * HOUR  # 2026-01-05T00:00Z
WEEKDAYS = DAYS[:5]


def at(day: int, hour: float) -> np.ndarray:
    """Monday 2026-01-05 + `day` days + `hour` hours, UTC."""
    return np.array([MONDAY + int((day * 24 + hour) * HOUR)], dtype=np.int64)


def test_peak_on_weekdays_off_peak_otherwise() -> None:
    t = Tariff(0.15, periods=(TariffPeriod("peak", 0.25, WEEKDAYS, (8, 20)),))
    assert t.price_at(at(0, 7.99))[0] == 0.15
    assert t.price_at(at(0, 8))[0] == 0.25
    assert t.price_at(at(4, 19.5))[0] == 0.25  # Friday
    assert t.price_at(at(4, 20))[0] == 0.15
    assert t.price_at(at(5, 12))[0] == 0.15  # Saturday noon
    assert t.period_names() == ["peak", "base"]
    assert t.period_at(np.concatenate([at(0, 9), at(6, 9)])).tolist() == [0, -1]


def test_a_night_period_crosses_midnight_into_the_next_day() -> None:
    """Friday 22:00 to Saturday 06:00 is Friday's night; Saturday 22:00 is no night."""
    night = TariffPeriod("night", 0.08, ("fri",), (22, 6))
    t = Tariff(0.2, periods=(night,))
    prices = [t.price_at(at(d, h))[0] for d, h in ((4, 21), (4, 22), (5, 3), (5, 6), (5, 23))]
    assert prices == [0.2, 0.08, 0.08, 0.2, 0.2]
    assert Tariff(0.2, periods=(TariffPeriod("n", 0.1, ("sun",), (23, 1)),)).price_at(
        at(7, 0.5)  # Sunday night runs into the next Monday
    )[0] == pytest.approx(0.1)


def test_local_hours_follow_daylight_saving() -> None:
    """Europe/Paris: peak 08-20 local is 07-19 UTC in winter, 06-18 UTC from 2026-03-29 (the
    clocks went forward at 01:00 UTC that Sunday) and on the Monday after."""
    t = Tariff(0.1, periods=(TariffPeriod("peak", 0.3, DAYS, (8, 20)),), timezone="Europe/Paris")
    sunday = 1_774_742_400_000  # 2026-03-29T00:00Z
    saturday = sunday - 24 * HOUR
    utc = np.array(
        [saturday + 6 * HOUR, saturday + 7 * HOUR, sunday + 6 * HOUR, sunday + 18 * HOUR]
    )
    assert t.price_at(utc).tolist() == [0.1, 0.3, 0.3, 0.1]
    # the local day of the change is 23 hours long, from 23:00 UTC the day before
    assert t.day_bounds(sunday + 12 * HOUR) == (sunday - HOUR, sunday + 22 * HOUR)
    assert t.day_bounds(saturday + 12 * HOUR) == (saturday - HOUR, sunday - HOUR)


def test_cost_of_energies_at_their_instants() -> None:
    t = Tariff(0.1, "USD", (TariffPeriod("peak", 0.3, WEEKDAYS, (8, 20)),))
    ts = np.concatenate([at(0, 7), at(0, 8), at(0, 19), at(0, 20)])
    assert t.cost(ts, np.array([1.0, 2.0, 3.0, 4.0])) == pytest.approx(0.1 + 0.6 + 0.9 + 0.4)


def test_utc_day_bounds() -> None:
    assert Tariff(0.2).day_bounds(MONDAY_7H) == (MONDAY, MONDAY + 24 * HOUR)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Tariff(-0.1), "price_per_kwh must be a finite price"),
        (lambda: Tariff(float("inf")), "price_per_kwh must be a finite price"),
        (lambda: Tariff(True), "price_per_kwh must be a number"),  # type: ignore[arg-type]
        (lambda: Tariff(0.2, "euro"), "currency must be an ISO 4217 code"),
        (lambda: Tariff(0.2, timezone="Mars/Olympus"), "unknown time zone 'Mars/Olympus'"),
        (lambda: TariffPeriod("", 0.1), "needs a name"),
        (lambda: TariffPeriod("p", 0.1, ("monday",)), "days must be distinct weekdays"),
        (lambda: TariffPeriod("p", 0.1, ("mon", "mon")), "days must be distinct weekdays"),
        (lambda: TariffPeriod("p", 0.1, hours=(8, 8)), "hours must be"),
        (lambda: TariffPeriod("p", 0.1, hours=(8, 25)), "hours must be"),
        (lambda: TariffPeriod("p", 0.1, hours=(8.5, 20)), "hours must be"),  # type: ignore[arg-type]
        (lambda: TariffPeriod("p", 2000.0), "finite price per kWh 0..1000"),
    ],
)
def test_bad_tariffs_are_refused_with_a_reason(make, message) -> None:
    with pytest.raises(ValueError, match=message):
        make()


def test_overlapping_periods_are_refused_naming_both() -> None:
    day = TariffPeriod("day", 0.3, WEEKDAYS, (8, 20))
    night = TariffPeriod("night", 0.1, ("mon",), (19, 7))
    with pytest.raises(ValueError, match="'day' and 'night' overlap on mon at 19:00"):
        Tariff(0.2, periods=(day, night))
