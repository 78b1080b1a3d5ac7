"""What energy costs: a price per kWh, a currency, and tariff periods by hour and weekday.

A `Tariff` has a base price and optional periods (peak, off-peak, night...), each a price on
some weekdays over an hour window `[start, end)` of the site's local time (`timezone`, an IANA
name). A window with start > end crosses midnight: it begins on the days listed and ends on
the next morning (`days=["fri"], hours=(22, 6)` is Friday 22:00 to Saturday 06:00). The week
is 7 x 24 local hours; each hour belongs to at most one period (an overlap is refused, naming
both), and an hour no period names costs the base price. Local time follows the zone's
daylight-saving rules, so on the day clocks go forward the peak starts an hour earlier in UTC.

Prices are looked up per instant (`price_at`, vectorised: the zone's UTC offset is computed
once per distinct hour of the instants, so a month of minute buckets costs a few hundred
calendar conversions, not 40,000).

>>> t = Tariff(0.15, periods=(TariffPeriod("peak", 0.25, DAYS[:5], (8, 20)),),
...            timezone="Europe/Paris")
>>> h = 3_600_000
>>> monday = 1_767_571_200_000                     # 2026-01-05T00:00Z, 01:00 in Paris
>>> t.price_at(np.array([monday + 6 * h, monday + 7 * h, monday + 19 * h])).tolist()
[0.15, 0.25, 0.15]
>>> round(Tariff(0.20).cost(np.array([0, 3_600_000]), np.array([1.0, 2.0])), 6)
0.6
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np

from rackwatch.engine.energy.integrate import F64, I64, MS_PER_HOUR
from rackwatch.model.times import MAX_TS_MS

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
"""Weekdays as tariffs name them, Monday first (Python's weekday numbers)."""
MAX_PRICE_PER_KWH = 1000.0
"""Far above any real price (a few tenths of a euro): a bigger one is a typo."""
MAX_PERIODS = 64
MAX_NAME_LENGTH = 64
BASE_PERIOD = "base"
"""The name of the hours no period names (they cost `price_per_kwh`)."""
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_MS_PER_DAY = 24 * MS_PER_HOUR
_QUARTER_MS = 15 * 60_000
_UTC = ZoneInfo("UTC")


def zone_of(name: str) -> ZoneInfo:
    """The time zone of an IANA name; ValueError saying what to give when it is unknown.

    >>> zone_of("Europe/Paris").key
    'Europe/Paris'
    """
    try:
        if not name or len(name) > 64:
            raise ValueError(name)
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        shown = name if len(name) <= 64 else name[:64] + "…"
        raise ValueError(
            f"unknown time zone {shown!r}: use an IANA name such as Europe/Paris or UTC"
        ) from None


def _check_price(value: float, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{what} must be a number, got {value!r}")
    if not (math.isfinite(value) and 0.0 <= value <= MAX_PRICE_PER_KWH):
        raise ValueError(
            f"{what} must be a finite price per kWh 0..{MAX_PRICE_PER_KWH:g} (such as 0.20), "
            f"got {value!r}"
        )
    return float(value)


@dataclass(frozen=True, slots=True)
class TariffPeriod:
    """A price on `days` (of DAYS) over the local hours `[start, end)`; start > end runs past
    midnight into the next day; (0, 24) is the whole day."""

    name: str
    price_per_kwh: float
    days: tuple[str, ...] = DAYS
    hours: tuple[int, int] = (0, 24)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not 0 < len(self.name) <= MAX_NAME_LENGTH:
            raise ValueError(f"a tariff period needs a name of 1..{MAX_NAME_LENGTH} characters")
        what = f"tariff period {self.name!r}"
        _check_price(self.price_per_kwh, f"{what}: price_per_kwh")
        days = tuple(str(d).lower() for d in self.days)
        unknown = [d for d in days if d not in DAYS]
        if unknown or not days or len(set(days)) != len(days):
            raise ValueError(
                f"{what}: days must be distinct weekdays among {', '.join(DAYS)} (at least "
                f"one), got {list(self.days)!r}"
            )
        object.__setattr__(self, "days", days)
        hours = tuple(self.hours)
        if (
            len(hours) != 2
            or not all(isinstance(h, int) and not isinstance(h, bool) for h in hours)
            or not (0 <= hours[0] <= 23 and 1 <= hours[1] <= 24)
            or hours[0] == hours[1]
        ):
            raise ValueError(
                f"{what}: hours must be [start, end) in whole local hours, start 0..23 and "
                f"end 1..24, not equal (22, 6 crosses midnight; 0, 24 is the whole day), got "
                f"{list(self.hours)!r}"
            )
        object.__setattr__(self, "hours", (int(hours[0]), int(hours[1])))

    def cells(self) -> list[int]:
        """The hours of the week it covers, as `weekday * 24 + hour` (Monday 00:00 is 0)."""
        start, end = self.hours
        out = []
        for day in (DAYS.index(d) for d in self.days):
            if start < end:
                out += [day * 24 + h for h in range(start, end)]
            else:  # past midnight: the tail belongs to the next day
                out += [day * 24 + h for h in range(start, 24)]
                out += [((day + 1) % 7) * 24 + h for h in range(end)]
        return out


@dataclass(frozen=True, slots=True)
class Tariff:
    """A price per kWh in `currency`, optionally by period (`TariffPeriod`) in `timezone`.

    Raises ValueError, saying which value is wrong and what to give, for a price that is not
    a finite number 0..1000, a currency that is not 3 capital letters (ISO 4217: EUR, USD), an
    unknown zone, a bad period, or two periods sharing an hour of the week.
    """

    price_per_kwh: float
    currency: str = "EUR"
    periods: tuple[TariffPeriod, ...] = ()
    timezone: str = "UTC"
    _week_price: F64 = field(init=False, repr=False, compare=False)
    _week_period: I64 = field(init=False, repr=False, compare=False)
    """Index into `periods` of each hour of the week, -1 for the base price."""
    _zone: ZoneInfo = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        base = _check_price(self.price_per_kwh, "price_per_kwh")
        if not isinstance(self.currency, str) or not _CURRENCY.match(self.currency):
            raise ValueError(
                "currency must be an ISO 4217 code of 3 capital letters such as EUR or USD, "
                f"got {self.currency!r}"
            )
        periods = tuple(self.periods)
        if len(periods) > MAX_PERIODS:
            raise ValueError(f"at most {MAX_PERIODS} tariff periods, got {len(periods)}")
        object.__setattr__(self, "periods", periods)
        object.__setattr__(self, "_zone", zone_of(self.timezone))
        price = np.full(7 * 24, base)
        owner = np.full(7 * 24, -1, dtype=np.int64)
        for i, period in enumerate(periods):
            if not isinstance(period, TariffPeriod):
                raise ValueError(f"tariff periods must be TariffPeriod, got {period!r}")
            for cell in period.cells():
                if owner[cell] >= 0:
                    other = periods[int(owner[cell])].name
                    day, hour = DAYS[cell // 24], cell % 24
                    raise ValueError(
                        f"tariff periods {other!r} and {period.name!r} overlap on {day} at "
                        f"{hour:02d}:00 (local time): each hour of the week may belong to one "
                        "period at most"
                    )
                owner[cell] = i
                price[cell] = period.price_per_kwh
        object.__setattr__(self, "_week_price", price)
        object.__setattr__(self, "_week_period", owner)

    @property
    def zone(self) -> ZoneInfo:
        return self._zone

    def week_hours(self, ts_ms: I64) -> I64:
        """The local hour of the week of each instant: weekday * 24 + hour (Monday 00:00: 0)."""
        ts = np.asarray(ts_ms, dtype=np.int64)
        local = ts + utc_offsets_ms(ts, self._zone)
        days = local // _MS_PER_DAY
        weekday = (days + 3) % 7  # 1970-01-01 was a Thursday
        return np.asarray(weekday * 24 + (local % _MS_PER_DAY) // MS_PER_HOUR, dtype=np.int64)

    def price_at(self, ts_ms: I64) -> F64:
        """Price per kWh at each instant."""
        if len(self.periods) == 0:
            return np.full(len(ts_ms), float(self.price_per_kwh))
        return np.asarray(self._week_price[self.week_hours(ts_ms)], dtype=np.float64)

    def period_at(self, ts_ms: I64) -> I64:
        """Index into `periods` of the period of each instant; -1 for the base price."""
        if len(self.periods) == 0:
            return np.full(len(ts_ms), -1, dtype=np.int64)
        return np.asarray(self._week_period[self.week_hours(ts_ms)], dtype=np.int64)

    def period_names(self) -> list[str]:
        """Names by index of `period_at`, the base price's (`BASE_PERIOD`) last (index -1)."""
        return [p.name for p in self.periods] + [BASE_PERIOD]

    def cost(self, ts_ms: I64, energy_kwh: F64) -> float:
        """Cost of `energy_kwh[i]` consumed at `ts_ms[i]` (e.g. per step or per hour)."""
        return float(np.nansum(self.price_at(ts_ms) * energy_kwh))

    def day_bounds(self, ts_ms: int) -> tuple[int, int]:
        """[start, end) in epoch ms of the local calendar day holding `ts_ms`: 24 h, or 23 and
        25 h on the days the clocks change."""
        ts_ms = min(max(int(ts_ms), 0), MAX_TS_MS - 2 * _MS_PER_DAY)
        day = dt.datetime.fromtimestamp(ts_ms / 1000, self._zone).date()
        start = dt.datetime.combine(day, dt.time(), tzinfo=self._zone)
        end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=self._zone)
        return round(start.timestamp() * 1000), round(end.timestamp() * 1000)


def utc_offsets_ms(ts_ms: I64, zone: ZoneInfo) -> I64:
    """The zone's UTC offset (ms, local minus UTC) at each instant.

    Computed once per distinct UTC hour of the instants (its start and end); an hour holding a
    change of offset is resolved per quarter hour, the grain of every zone's transitions.

    >>> paris = ZoneInfo("Europe/Paris")
    >>> change = 1_774_746_000_000                 # 2026-03-29T01:00Z: 02:00 CET -> 03:00 CEST
    >>> (utc_offsets_ms(np.array([change - 1, change]), paris) // 3_600_000).tolist()
    [1, 2]
    """
    ts = np.clip(np.asarray(ts_ms, dtype=np.int64), 0, MAX_TS_MS - 2 * _MS_PER_DAY)
    if zone == _UTC or len(ts) == 0:
        return np.zeros(len(ts), dtype=np.int64)
    hours, inverse = np.unique(ts // MS_PER_HOUR, return_inverse=True)
    at_start = _offsets(hours * MS_PER_HOUR, zone)
    at_end = _offsets((hours + 1) * MS_PER_HOUR - 1, zone)
    out = at_start[inverse]
    changing = (at_start != at_end)[inverse]
    if changing.any():
        quarters, back = np.unique(ts[changing] // _QUARTER_MS, return_inverse=True)
        out[changing] = _offsets(quarters * _QUARTER_MS, zone)[back]
    return out


def _offsets(instants_ms: Sequence[int] | I64, zone: ZoneInfo) -> I64:
    def offset(ms: int) -> int:
        delta = dt.datetime.fromtimestamp(ms / 1000, zone).utcoffset()
        return 0 if delta is None else int(delta.total_seconds() * 1000)

    return np.array([offset(int(ms)) for ms in instants_ms], dtype=np.int64)
