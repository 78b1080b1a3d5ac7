"""Reports on schedule inside `rackwatch run`: the previous day's at 00:05, the previous ISO
week's on Monday at 00:05, the previous month's on the 1st at 00:05 (the time is `[reports]
at`), in the site's time zone, on the wall clock.

At start, and whenever it wakes, the schedule makes every report that is due and not in
the archive: the newest due period of each kind, and the ones before it back to the newest
one archived (at most `max_catch_up` per kind), oldest first. So a server that was down at
00:05 makes the missed reports once when it is back; a fresh data directory makes only the
newest, and a period with no stored data at all (from before the first sample) is skipped.
A period is tried once per run (a failure is logged and counted, not retried in a
loop). Each report is made in a worker thread (`Reporter.generate`), never on the event
loop; the clock and the wait are injectable, so a test drives the schedule with a fake
clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from rackwatch.engine.reports.build import ReportCancelled
from rackwatch.engine.reports.periods import KINDS, Period, PeriodKind, last_complete
from rackwatch.engine.reports.service import Reporter

log = logging.getLogger(__name__)

MAX_WAIT_S = 3600.0
"""The longest single wait: the schedule looks at the clock at least hourly (a clock set
forward, a machine that slept)."""
Wait = Callable[[float, asyncio.Event], Awaitable[None]]


async def wait_or_stop(seconds: float, stop: asyncio.Event) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


@dataclass
class ReportSchedule:
    reporter: Reporter
    at: dt.time = dt.time(0, 5)
    kinds: Sequence[PeriodKind] = KINDS
    max_catch_up: int = 7
    wait: Wait = wait_or_stop
    made: list[str] = field(default_factory=list)
    """Names of the reports made by this schedule, in order."""
    skipped: list[str] = field(default_factory=list)
    """Periods due but with no stored data (before the first sample): no report."""
    n_errors: int = 0
    _tried: set[str] = field(default_factory=set)

    def newest_due(self, kind: PeriodKind, now_ms: int) -> Period:
        """The newest period of `kind` whose report is due at `now_ms`."""
        period = last_complete(kind, now_ms, self.reporter.zone)
        return period if period.due_ms(self.at) <= now_ms else period.previous()

    def due(self, now_ms: int) -> list[Period]:
        """The reports to make now, oldest first."""
        out: list[Period] = []
        archive = self.reporter.archive
        for kind in self.kinds:
            newest = self.newest_due(kind, now_ms)
            if not archive.entries(str(kind)):
                wanted = [newest]  # a fresh archive: no back-filling of its whole history
            else:
                wanted, period = [], newest
                while len(wanted) < self.max_catch_up and not archive.has(period):
                    wanted.append(period)
                    period = period.previous()
            out.extend(p for p in reversed(wanted) if p.name not in self._tried)
        # oldest first; at the same end, the longer period first (month, week, day)
        return sorted(out, key=lambda p: (p.end_ms, p.start_ms))

    def next_due_ms(self, now_ms: int) -> int:
        """The first instant after `now_ms` when a report falls due."""
        return min(self.newest_due(k, now_ms).following().due_ms(self.at) for k in self.kinds)

    async def run_due(self, stop: asyncio.Event) -> None:
        for period in self.due(self.reporter.clock_ms()):
            if stop.is_set():
                return
            self._tried.add(period.name)
            try:
                if not await asyncio.to_thread(self.reporter.has_data, period):
                    self.skipped.append(period.name)
                    log.info("no data in %s: no report", period.name)
                    continue
                await asyncio.to_thread(self.reporter.generate, period)
            except ReportCancelled:
                return
            except Exception:
                self.n_errors += 1
                log.exception("the %s report failed", period.name)
            else:
                self.made.append(period.name)

    async def run(self, stop: asyncio.Event) -> None:
        """Make what is due, then wait for the next due instant, until `stop` is set."""
        stopper = asyncio.create_task(self._stop_reporter(stop))
        try:
            while not stop.is_set():
                await self.run_due(stop)
                now = self.reporter.clock_ms()
                delay_s = max(0.0, (self.next_due_ms(now) - now) / 1000)
                await self.wait(min(delay_s, MAX_WAIT_S), stop)
        finally:
            stopper.cancel()

    async def _stop_reporter(self, stop: asyncio.Event) -> None:
        # A report in its worker thread gives up at its next stage once the run stops.
        await stop.wait()
        self.reporter.stop()
