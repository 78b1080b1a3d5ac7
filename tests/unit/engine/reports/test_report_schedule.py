"""The schedule of `rackwatch run`, driven by a fake clock: the right periods at the right
instants, missed ones caught up once after a restart, and the Reporter behind it."""

from __future__ import annotations

import asyncio
import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from report_support import DAY, at, open_room

from rackwatch.engine.reports import ReportArchive, Reporter, ReportError, ReportSchedule
from rackwatch.engine.reports.periods import local_ms, period_of

PARIS = ZoneInfo("Europe/Paris")


class Clock:
    def __init__(self, now_ms: int) -> None:
        self.now_ms = now_ms
        self.waits: list[float] = []

    def __call__(self) -> int:
        return self.now_ms


class FakeReporter(Reporter):
    """Archives an empty JSON per period and remembers when (on the fake clock) it was asked."""

    def generate(self, period, **_options):  # type: ignore[override]
        self.calls.append((period.name, self.clock_ms()))
        self.archive.write(period, {"json": b"{}"})

    def has_data(self, period) -> bool:  # type: ignore[override]
        return period.end_ms > self.first_data_ms

    def __post_init__(self) -> None:
        super().__post_init__()
        self.calls: list[tuple[str, int]] = []
        self.first_data_ms = 0


def paris(y: int, m: int, d: int, hh: int = 0, mm: int = 0) -> int:
    return local_ms(dt.date(y, m, d), dt.time(hh, mm), PARIS)


def drive(schedule: ReportSchedule, clock: Clock, until_ms: int) -> None:
    """Run the schedule; each wait moves the fake clock instead of sleeping."""

    async def wait(seconds: float, stop: asyncio.Event) -> None:
        clock.waits.append(seconds)
        clock.now_ms += int(seconds * 1000)
        if clock.now_ms >= until_ms:
            stop.set()
        await asyncio.sleep(0)

    schedule.wait = wait
    asyncio.run(schedule.run(asyncio.Event()))


def make(tmp_path, now_ms: int, **kw) -> tuple[FakeReporter, Clock]:
    clock = Clock(now_ms)
    reporter = FakeReporter(
        store=None,  # type: ignore[arg-type]
        archive=ReportArchive(tmp_path / "reports"),
        zone=PARIS,
        clock_ms=clock,
        **kw,
    )
    return reporter, clock


def test_daily_weekly_monthly_at_five_past_midnight_local(tmp_path):
    # Start on Saturday 28 February 2026, 12:00 in Paris, on a fresh archive.
    reporter, clock = make(tmp_path, paris(2026, 2, 28, 12))
    schedule = ReportSchedule(reporter)
    drive(schedule, clock, until_ms=paris(2026, 3, 3, 1))
    assert reporter.calls == [
        # at start: the newest due of each kind, nothing older (a fresh archive), oldest first
        ("month-2026-01-01", paris(2026, 2, 28, 12)),
        ("week-2026-02-16", paris(2026, 2, 28, 12)),
        ("day-2026-02-27", paris(2026, 2, 28, 12)),
        # then each at 00:05 local: Sunday the 1st is also the month's first day
        ("month-2026-02-01", paris(2026, 3, 1, 0, 5)),
        ("day-2026-02-28", paris(2026, 3, 1, 0, 5)),
        ("week-2026-02-23", paris(2026, 3, 2, 0, 5)),
        ("day-2026-03-01", paris(2026, 3, 2, 0, 5)),
        ("day-2026-03-02", paris(2026, 3, 3, 0, 5)),
    ]
    assert schedule.made == [name for name, _ in reporter.calls]
    assert max(clock.waits) <= 3600  # it looks at the clock at least hourly


def test_across_the_spring_change_the_time_stays_local(tmp_path):
    reporter, clock = make(tmp_path, paris(2026, 3, 28, 12))
    drive(ReportSchedule(reporter, kinds=["day"]), clock, until_ms=paris(2026, 3, 30, 1))
    assert reporter.calls[1:] == [
        ("day-2026-03-28", paris(2026, 3, 29, 0, 5)),  # 23:05 UTC
        ("day-2026-03-29", paris(2026, 3, 30, 0, 5)),  # 22:05 UTC: summer time
    ]


def test_missed_reports_are_caught_up_once_after_a_restart(tmp_path):
    reporter, clock = make(tmp_path, paris(2026, 3, 10, 12))
    reporter.archive.write(period_of("day", dt.date(2026, 3, 6), PARIS), {"json": b"{}"})
    schedule = ReportSchedule(reporter, kinds=["day"])
    drive(schedule, clock, until_ms=paris(2026, 3, 10, 23))
    # down since the 7th: the 7th, 8th and 9th are made at start, oldest first, once
    assert reporter.calls == [
        ("day-2026-03-07", paris(2026, 3, 10, 12)),
        ("day-2026-03-08", paris(2026, 3, 10, 12)),
        ("day-2026-03-09", paris(2026, 3, 10, 12)),
    ]
    # restarted again: nothing is made twice
    again, clock2 = make(tmp_path, paris(2026, 3, 10, 13))
    drive(ReportSchedule(again, kinds=["day"]), clock2, until_ms=paris(2026, 3, 10, 23))
    assert again.calls == []


def test_catch_up_is_bounded(tmp_path):
    reporter, clock = make(tmp_path, paris(2026, 3, 30, 12))
    reporter.archive.write(period_of("day", dt.date(2026, 3, 1), PARIS), {"json": b"{}"})
    drive(ReportSchedule(reporter, kinds=["day"], max_catch_up=3), clock, paris(2026, 3, 30, 13))
    assert [name for name, _ in reporter.calls] == [
        "day-2026-03-27",
        "day-2026-03-28",
        "day-2026-03-29",
    ]


def test_a_failing_report_is_counted_and_not_retried_in_a_loop(tmp_path):
    reporter, clock = make(tmp_path, paris(2026, 3, 10, 12))

    def fail(period, **_kw):
        reporter.calls.append((period.name, clock()))
        raise RuntimeError("disk full")

    reporter.generate = fail  # type: ignore[method-assign]
    schedule = ReportSchedule(reporter, kinds=["day"])
    drive(schedule, clock, until_ms=paris(2026, 3, 10, 20))
    assert reporter.calls == [("day-2026-03-09", paris(2026, 3, 10, 12))]
    assert schedule.n_errors == 1 and schedule.made == []


def test_the_reporter_writes_every_format_and_prunes(tmp_path):
    store = open_room(tmp_path / "store")
    try:
        reporter = Reporter(
            store, ReportArchive(tmp_path / "reports"), ZoneInfo("UTC"), ("json",), keep=1,
            clock_ms=lambda: at(0, day=2),
        )  # fmt: skip
        older = reporter.generate(period_of("day", dt.date(2026, 3, 4), ZoneInfo("UTC")))
        made = reporter.generate(reporter.period("day", DAY), extra_formats=["csv"])
        assert made.entry.name == "day-2026-03-05"
        assert sorted(made.files) == ["csv", "json"]
        assert made.report.cpu.busiest_server is not None
        # keep = 1: the older day is gone
        assert [e.name for e in reporter.archive.entries()] == ["day-2026-03-05"]
        assert older.entry.name == "day-2026-03-04"
        assert reporter.period("week").name == "week-2026-02-23"  # the last complete week
        with pytest.raises(ReportError, match="has not started"):
            reporter.period("day", dt.date(2026, 3, 8))
        reporter.stop()
        with pytest.raises(ReportError, match="abandoned"):
            reporter.generate(reporter.period("day", DAY))
    finally:
        store.close()


def test_periods_before_the_first_data_are_skipped(tmp_path):
    # A fresh install on Wednesday 4 March 2026: data only from Tuesday the 3rd at 10:00.
    reporter, clock = make(tmp_path, paris(2026, 3, 4, 12))
    reporter.first_data_ms = paris(2026, 3, 3, 10)
    schedule = ReportSchedule(reporter)
    drive(schedule, clock, until_ms=paris(2026, 3, 4, 13))
    assert [name for name, _ in reporter.calls] == ["day-2026-03-03"]
    assert schedule.skipped == ["month-2026-02-01", "week-2026-02-23"]
