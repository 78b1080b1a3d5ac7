"""Report periods: a local day, an ISO week (Monday to Sunday) or a calendar month, in the
site's time zone, and their bounds as epoch ms (UTC).

Bounds are local midnights turned into instants by the zone's rules, so a day is 23 or 25
hours long when the clocks change, and a midnight that a zone skips (some zones change at
00:00) is the instant the day actually starts.

>>> from zoneinfo import ZoneInfo
>>> paris = ZoneInfo("Europe/Paris")
>>> spring = period_of("day", dt.date(2026, 3, 29), paris)
>>> spring.name, spring.hours
('day-2026-03-29', 23.0)
>>> period_of("week", dt.date(2026, 3, 5), paris).name    # the week of a Thursday
'week-2026-03-02'
>>> last_complete("month", utc_ms(2026, 3, 1, 0, 30), paris).name
'month-2026-02-01'
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from rackwatch.errors import RackwatchError

DAY_MS = 86_400_000


class ReportError(RackwatchError, ValueError):
    """A report cannot be made as asked (a bad period, date or name); the message says why."""


class PeriodKind(enum.StrEnum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"


KINDS = tuple(PeriodKind)
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_kind(text: str) -> PeriodKind:
    try:
        return PeriodKind(text.strip().lower())
    except ValueError:
        raise ReportError(f"unknown period {text[:40]!r}: use day, week or month") from None


def parse_day(text: str) -> dt.date:
    """A calendar day written YYYY-MM-DD; ReportError otherwise."""
    cleaned = text.strip()
    if not _DATE.match(cleaned):
        raise ReportError(f"date {text[:40]!r} is not YYYY-MM-DD (e.g. 2026-03-05)")
    try:
        return dt.date.fromisoformat(cleaned)
    except ValueError as exc:
        raise ReportError(f"date {cleaned!r} is not a calendar day: {exc}") from None


def zone_of(name: str) -> ZoneInfo:
    """The IANA time zone `name`; ReportError for an unknown one."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ReportError(
            f"unknown time zone {name[:40]!r}: use an IANA name such as Europe/Paris"
        ) from exc


def local_ms(day: dt.date, at: dt.time, zone: ZoneInfo) -> int:
    """The instant of local `day` at `at`. A time the clocks skip is read with the offset
    before the change (fold=0), so a skipped midnight is the instant the day begins."""
    when = dt.datetime.combine(day, at.replace(tzinfo=None), tzinfo=zone)
    return int(when.timestamp() * 1000)


def utc_ms(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> int:
    """Epoch ms of a UTC wall time (for examples and tests)."""
    return int(dt.datetime(year, month, day, hour, minute, tzinfo=dt.UTC).timestamp() * 1000)


def local_date(ts_ms: int, zone: ZoneInfo) -> dt.date:
    return dt.datetime.fromtimestamp(ts_ms / 1000, zone).date()


def first_day(kind: PeriodKind, day: dt.date) -> dt.date:
    """The first day of the period of `kind` that holds `day`."""
    if kind is PeriodKind.DAY:
        return day
    if kind is PeriodKind.WEEK:
        return day - dt.timedelta(days=day.weekday())
    return day.replace(day=1)


def next_first_day(kind: PeriodKind, first: dt.date) -> dt.date:
    """The first day of the period after the one starting on `first`."""
    if kind is PeriodKind.DAY:
        return first + dt.timedelta(days=1)
    if kind is PeriodKind.WEEK:
        return first + dt.timedelta(days=7)
    return (first.replace(day=28) + dt.timedelta(days=4)).replace(day=1)


@dataclass(frozen=True, slots=True)
class Period:
    """One report period: its kind, its first local day and the zone it is counted in."""

    kind: PeriodKind
    first: dt.date
    zone: ZoneInfo

    @property
    def after(self) -> dt.date:
        """The first day after the period (its end is that day's local midnight)."""
        return next_first_day(self.kind, self.first)

    @property
    def last(self) -> dt.date:
        return self.after - dt.timedelta(days=1)

    @property
    def start_ms(self) -> int:
        return local_ms(self.first, dt.time(0), self.zone)

    @property
    def end_ms(self) -> int:
        return local_ms(self.after, dt.time(0), self.zone)

    @property
    def hours(self) -> float:
        return (self.end_ms - self.start_ms) / 3_600_000

    @property
    def name(self) -> str:
        """`<kind>-<first day>`: the archive's file stem (`week-2026-03-02`)."""
        return f"{self.kind}-{self.first.isoformat()}"

    @property
    def label(self) -> str:
        """How people name it: `2026-03-05`, `week 10 of 2026 (2026-03-02 to 2026-03-08)`,
        `March 2026`."""
        if self.kind is PeriodKind.DAY:
            return self.first.isoformat()
        if self.kind is PeriodKind.WEEK:
            year, week, _ = self.first.isocalendar()
            return f"week {week} of {year} ({self.first.isoformat()} to {self.last.isoformat()})"
        return self.first.strftime("%B %Y")

    def previous(self) -> Period:
        return period_of(self.kind, self.first - dt.timedelta(days=1), self.zone)

    def following(self) -> Period:
        return Period(self.kind, self.after, self.zone)

    def due_ms(self, at: dt.time) -> int:
        """When its report is due: local `at` on the first day after the period."""
        return local_ms(self.after, at, self.zone)


def period_of(kind: PeriodKind | str, day: dt.date, zone: ZoneInfo) -> Period:
    """The period of `kind` that holds local `day`."""
    kind = parse_kind(kind) if isinstance(kind, str) else kind
    return Period(kind, first_day(kind, day), zone)


def last_complete(kind: PeriodKind | str, now_ms: int, zone: ZoneInfo) -> Period:
    """The newest period of `kind` that has ended by `now_ms` (yesterday, last week, last
    month: the default report)."""
    current = period_of(kind, local_date(now_ms, zone), zone)
    return current.previous()


def parse_name(name: str, zone: ZoneInfo) -> Period:
    """The period of an archive stem such as `day-2026-03-05` (its first day)."""
    kind, _, day = name.partition("-")
    period = period_of(parse_kind(kind), parse_day(day), zone)
    if period.first.isoformat() != day:
        raise ReportError(f"{name!r} does not start on the first day of its {kind}")
    return period
