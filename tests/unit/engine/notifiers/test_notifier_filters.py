"""Notifier filters: minimum level, entity globs, a time window crossing midnight in a zone."""

from __future__ import annotations

from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import pytest
from notifier_support import make_notification

from rackwatch.engine.notifiers import NotificationFilter, TimeWindow
from rackwatch.model import Severity

PARIS = ZoneInfo("Europe/Paris")


def at(text: str) -> int:
    """UTC ISO text to ms."""
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


@pytest.mark.parametrize(
    ("utc", "inside"),
    [
        ("2026-01-15T20:59", False),  # 21:59 in Paris (UTC+1 in winter)
        ("2026-01-15T21:00", True),  # 22:00: start is inside
        ("2026-01-15T23:30", True),  # 00:30 the next day: past midnight
        ("2026-01-16T05:59", True),  # 06:59
        ("2026-01-16T06:00", False),  # 07:00: end is outside
        ("2026-01-16T12:00", False),
        ("2026-07-15T20:30", True),  # 22:30 in summer (UTC+2); 20:30 UTC would be outside
        ("2026-07-16T04:59", True),  # 06:59 in summer
        ("2026-07-16T05:00", False),  # 07:00 in summer
    ],
)
def test_night_window_crossing_midnight_in_paris(utc: str, inside: bool) -> None:
    nights = TimeWindow(time(22), time(7), PARIS)
    assert nights.contains(at(utc)) is inside


def test_day_window_and_empty_window() -> None:
    office = TimeWindow(time(9), time(18), PARIS)
    assert office.contains(at("2026-01-15T08:00"))  # 09:00 Paris
    assert not office.contains(at("2026-01-15T17:00"))  # 18:00 Paris
    with pytest.raises(ValueError, match="different start and end"):
        TimeWindow(time(9), time(9), PARIS)


def test_level_entity_and_window_together() -> None:
    f = NotificationFilter(
        min_level=Severity.CRITICAL,
        entities=("c01/r01/**", "room/*"),
        window=TimeWindow(time(22), time(7), PARIS),
    )
    night = at("2026-01-15T23:00")
    assert f.accepts(make_notification(ts_ms=night))
    assert not f.accepts(make_notification(ts_ms=night, level=Severity.WARNING))
    assert not f.accepts(make_notification(ts_ms=night, entity="c01/r02/s01"))
    assert f.accepts(make_notification(ts_ms=night, entity="room/crac1"))
    assert not f.accepts(make_notification(ts_ms=at("2026-01-15T12:00")))
    # A resolution passes on the level its alert had.
    assert f.accepts(make_notification(ts_ms=night, kind="alert.resolved"))
