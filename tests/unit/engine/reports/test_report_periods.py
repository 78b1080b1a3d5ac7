"""Report periods in the site's time zone: bounds, DST days, ISO weeks, the default period."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from rackwatch.engine.reports.compose import bucket_grid
from rackwatch.engine.reports.periods import (
    ReportError,
    last_complete,
    local_ms,
    parse_day,
    parse_kind,
    parse_name,
    period_of,
    utc_ms,
)

PARIS = ZoneInfo("Europe/Paris")
UTC = ZoneInfo("UTC")


def test_a_day_is_local_midnight_to_midnight():
    day = period_of("day", dt.date(2026, 3, 5), PARIS)
    assert day.start_ms == utc_ms(2026, 3, 4, 23)  # 00:00 CET = 23:00 UTC the day before
    assert day.end_ms == utc_ms(2026, 3, 5, 23)
    assert (day.name, day.label, day.hours) == ("day-2026-03-05", "2026-03-05", 24.0)


@pytest.mark.parametrize(
    ("day", "hours", "minute_buckets"),
    [(dt.date(2026, 3, 29), 23.0, 1380), (dt.date(2026, 10, 25), 25.0, 1500)],
)
def test_dst_days_are_23_and_25_hours(day, hours, minute_buckets):
    period = period_of("day", day, PARIS)
    assert period.hours == hours
    assert len(bucket_grid(period, 60_000)) == minute_buckets


def test_a_week_spanning_the_spring_change_is_167_hours():
    week = period_of("week", dt.date(2026, 3, 29), PARIS)  # a Sunday
    assert (week.first, week.last) == (dt.date(2026, 3, 23), dt.date(2026, 3, 29))
    assert week.hours == 167.0


def test_a_midnight_the_clocks_skip_starts_the_day_when_it_begins():
    santiago = ZoneInfo("America/Santiago")
    day = period_of("day", dt.date(2026, 9, 6), santiago)  # clocks go 24:00 -> 01:00
    begins = dt.datetime.fromtimestamp(day.start_ms / 1000, santiago)
    assert (begins.date(), begins.hour) == (dt.date(2026, 9, 6), 1)
    assert day.hours == 23.0


def test_iso_weeks_start_on_monday_even_across_a_year():
    week = period_of("week", dt.date(2026, 1, 1), UTC)  # a Thursday
    assert week.name == "week-2025-12-29"
    assert week.label == "week 1 of 2026 (2025-12-29 to 2026-01-04)"
    assert period_of("week", dt.date(2026, 3, 8), UTC).first == dt.date(2026, 3, 2)


def test_months():
    feb = period_of("month", dt.date(2028, 2, 17), UTC)
    assert (feb.first, feb.last, feb.hours, feb.label) == (
        dt.date(2028, 2, 1),
        dt.date(2028, 2, 29),
        29 * 24.0,
        "February 2028",
    )
    dec = period_of("month", dt.date(2026, 12, 31), UTC)
    assert dec.after == dt.date(2027, 1, 1)
    assert dec.following().name == "month-2027-01-01"
    assert dec.previous().name == "month-2026-11-01"


def test_the_default_is_the_last_complete_period():
    now = local_ms(dt.date(2026, 3, 2), dt.time(0, 30), PARIS)  # Monday 00:30
    assert last_complete("day", now, PARIS).name == "day-2026-03-01"
    assert last_complete("week", now, PARIS).name == "week-2026-02-23"
    assert last_complete("month", now, PARIS).name == "month-2026-02-01"
    # 23:30 UTC on 1 March is already 2 March in Paris
    assert last_complete("day", utc_ms(2026, 3, 1, 23, 30), PARIS).name == "day-2026-03-01"
    assert last_complete("day", utc_ms(2026, 3, 1, 23, 30), UTC).name == "day-2026-02-28"


def test_due_time_is_local():
    day = period_of("day", dt.date(2026, 3, 28), PARIS)
    # due at 00:05 on the 29th, which is still CET (the change is at 02:00)
    assert day.due_ms(dt.time(0, 5)) == utc_ms(2026, 3, 28, 23, 5)


def test_names_round_trip_and_bad_input_is_refused():
    assert parse_name("week-2026-03-02", UTC).label.startswith("week 10 of 2026")
    with pytest.raises(ReportError, match="first day"):
        parse_name("week-2026-03-03", UTC)
    with pytest.raises(ReportError, match="YYYY-MM-DD"):
        parse_day("yesterday")
    with pytest.raises(ReportError, match="not a calendar day"):
        parse_day("2026-02-30")
    with pytest.raises(ReportError, match="day, week or month"):
        parse_kind("year")
    assert parse_kind(" Month ") == "month"


def test_hour_buckets_in_a_half_hour_zone_start_in_the_period():
    kolkata = ZoneInfo("Asia/Kolkata")
    day = period_of("day", dt.date(2026, 3, 5), kolkata)  # starts 18:30 UTC
    grid = bucket_grid(day, 3_600_000)
    assert grid[0] == day.start_ms + 1_800_000 and len(grid) == 24
