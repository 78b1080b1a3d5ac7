"""`Reporter`: makes a period's report from the store, renders it and archives it, one report
at a time. The command line (`rackwatch report`), the REST API (`POST /reports`) and the
schedule inside `rackwatch run` all go through it.

Blocking (seconds of SQL and drawing on a large room): call `generate` from a worker
thread. `stop()` makes a report in progress give up at its next stage (the server is
stopping and the store is about to close).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from rackwatch.engine.reports.archive import ArchiveEntry, ReportArchive
from rackwatch.engine.reports.build import Stage, build_report
from rackwatch.engine.reports.content import Report
from rackwatch.engine.reports.energy import Accountant
from rackwatch.engine.reports.formats import FORMATS, check_format, render
from rackwatch.engine.reports.periods import (
    Period,
    PeriodKind,
    ReportError,
    last_complete,
    local_date,
    parse_kind,
    period_of,
)
from rackwatch.store.base import Store

log = logging.getLogger(__name__)


def _wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class Generated:
    report: Report
    entry: ArchiveEntry
    files: dict[str, bytes]
    seconds: float


@dataclass
class Reporter:
    store: Store
    archive: ReportArchive
    zone: ZoneInfo
    formats: Sequence[str] = FORMATS
    """What every report is archived as."""
    keep: int | None = None
    """Reports of each period kind kept in the archive (None: all)."""
    accountant: Accountant | None = None
    clock_ms: Callable[[], int] = _wall_clock_ms
    n_generated: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _stopping: threading.Event = field(default_factory=threading.Event, repr=False)

    def __post_init__(self) -> None:
        self.formats = tuple(check_format(f) for f in self.formats)
        if self.keep is not None and self.keep < 1:
            raise ValueError(f"keep must be at least 1, got {self.keep}")

    def period(self, kind: str | PeriodKind, day: dt.date | None = None) -> Period:
        """The period of `kind` holding `day`, or the last complete one. A period that has
        not started yet, or ended before 1970, is refused; the current one may be reported
        (what it holds so far)."""
        kind = parse_kind(kind) if isinstance(kind, str) else kind
        now = self.clock_ms()
        if day is None:
            return last_complete(kind, now, self.zone)
        period = period_of(kind, day, self.zone)
        if period.start_ms > now:
            today = local_date(now, self.zone)
            raise ReportError(
                f"the {kind} of {day.isoformat()} has not started yet (today is "
                f"{today.isoformat()} in {self.zone.key}): give a day up to today"
            )
        if period.end_ms <= 0:
            raise ReportError(
                f"the {kind} of {day.isoformat()} ended before 1970: the store holds nothing "
                "that old"
            )
        return period

    def stop(self) -> None:
        self._stopping.set()

    def has_data(self, period: Period) -> bool:
        """Whether the store holds any 1-hour bucket in `period` (the schedule skips a period
        from before the first data: a fresh install does not archive empty reports)."""
        with self.store.analytics() as sql:
            found = sql.execute(
                "SELECT 1 FROM h1 WHERE ts >= ? AND ts < ? AND n > 0 LIMIT 1",
                [period.start_ms - period.start_ms % 3_600_000, period.end_ms],
            ).fetchone()
        return found is not None

    def generate(
        self,
        period: Period,
        *,
        extra_formats: Sequence[str] = (),
        on_stage: Stage | None = None,
    ) -> Generated:
        """Make `period`'s report, archive it in the configured formats and `extra_formats`,
        and prune the archive. One at a time: a second caller waits for the first."""
        formats = tuple(dict.fromkeys([*self.formats, *map(check_format, extra_formats)]))
        with self._lock:
            began = time.perf_counter()
            report = build_report(
                self.store,
                period,
                accountant=self.accountant,
                now_ms=self.clock_ms(),
                on_stage=on_stage,
                is_cancelled=self._stopping.is_set,
            )
            files = {}
            for fmt in formats:
                if on_stage is not None:
                    on_stage(f"writing {fmt.upper()}")
                files[fmt] = render(report, fmt)
            entry = self.archive.write(period, files)
            if self.keep is not None:
                self.archive.prune(period.kind, self.keep, spare=period.name)
            self.n_generated += 1
            seconds = time.perf_counter() - began
        log.info("report %s written in %.1f s (%s)", period.name, seconds, ", ".join(formats))
        return Generated(report, entry, files, seconds)
