"""The report archive: atomic private files, newest first, pruning, names that stay inside."""

from __future__ import annotations

import datetime as dt
import stat
from zoneinfo import ZoneInfo

import pytest

from rackwatch.engine.reports import ReportArchive, ReportError, period_of

UTC = ZoneInfo("UTC")


def day(d: int):
    return period_of("day", dt.date(2026, 3, d), UTC)


def test_files_are_written_whole_and_private(tmp_path):
    archive = ReportArchive(tmp_path / "reports")
    entry = archive.write(day(5), {"html": b"<html>", "json": b"{}"})
    path = tmp_path / "reports" / "day" / "day-2026-03-05.html"
    assert path.read_bytes() == b"<html>"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "reports").stat().st_mode) == 0o700
    # no temporary file left
    assert sorted(p.name for p in path.parent.iterdir()) == [
        "day-2026-03-05.html",
        "day-2026-03-05.json",
    ]
    assert entry.to_dict()["formats"] == ["html", "json"]
    assert entry.to_dict()["size"] == 8
    # made again: replaced
    archive.write(day(5), {"html": b"<html>v2"})
    assert path.read_bytes() == b"<html>v2"


def test_listed_newest_first_month_before_its_first_day(tmp_path):
    archive = ReportArchive(tmp_path)
    archive.write(day(1), {"json": b"{}"})
    archive.write(day(3), {"json": b"{}"})
    archive.write(period_of("month", dt.date(2026, 3, 1), UTC), {"json": b"{}"})
    archive.write(period_of("week", dt.date(2026, 3, 2), UTC), {"csv": b"a"})
    (tmp_path / "day" / "notes.txt").write_text("not a report")
    assert [e.name for e in archive.entries()] == [
        "day-2026-03-03",
        "week-2026-03-02",
        "month-2026-03-01",
        "day-2026-03-01",
    ]
    assert [e.name for e in archive.entries("week")] == ["week-2026-03-02"]


def test_prune_keeps_the_newest_and_the_one_just_made(tmp_path):
    archive = ReportArchive(tmp_path)
    for d in (1, 2, 3, 4):
        archive.write(day(d), {"json": b"{}", "csv": b""})
    assert archive.prune("day", 2, spare="day-2026-03-01") == ["day-2026-03-02"]
    assert [e.name for e in archive.entries()] == [
        "day-2026-03-04",
        "day-2026-03-03",
        "day-2026-03-01",
    ]
    assert not (tmp_path / "day" / "day-2026-03-02.csv").exists()


@pytest.mark.parametrize(
    "name",
    [
        "../reports.json",
        "day-2026-03-05.html/../../x",
        "day/../../etc/passwd",
        "day-2026-03-05.exe",
        "year-2026-03-05.json",
        "day-2026-03-05.json\x00",
        "%2e%2e%2fday-2026-03-05.json",
        "day-٢٠٢٦-03-05.json",
    ],
)
def test_names_that_are_not_report_files_are_refused(tmp_path, name):
    with pytest.raises(ReportError, match="not a report file name"):
        ReportArchive(tmp_path).file(name)


def test_a_good_name_maps_inside_the_archive(tmp_path):
    path = ReportArchive(tmp_path).file("week-2026-03-02.csv")
    assert path == tmp_path / "week" / "week-2026-03-02.csv"
