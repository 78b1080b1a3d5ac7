"""One report, computed: the period's SQL aggregates (stats.py) composed into sections
(compose.py), with the period's events and energy.

A day is read from the 1-minute tier (trends in 5-minute points), a week and a month from
the 1-hour tier (trends in hourly points). Blocking and CPU-bound for seconds on a large
room: call it from a worker thread, never on the event loop.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass

from rackwatch.engine.reports import compose, scope, stats
from rackwatch.engine.reports.content import PeriodInfo, Report, SourceInfo
from rackwatch.engine.reports.energy import Accountant, energy_section
from rackwatch.engine.reports.events import events_section
from rackwatch.engine.reports.periods import Period, PeriodKind, ReportError
from rackwatch.store.base import Store

Stage = Callable[[str], None]


class ReportCancelled(ReportError):
    """The report was abandoned (the server is stopping)."""


@dataclass(frozen=True, slots=True)
class TierPlan:
    tier: str
    label: str
    slot_ms: int


PLANS = {
    PeriodKind.DAY: TierPlan("m1", "1m", 300_000),
    PeriodKind.WEEK: TierPlan("h1", "1h", 3_600_000),
    PeriodKind.MONTH: TierPlan("h1", "1h", 3_600_000),
}
TITLES = {
    PeriodKind.DAY: "Daily report",
    PeriodKind.WEEK: "Weekly report",
    PeriodKind.MONTH: "Monthly report",
}


def period_info(period: Period) -> PeriodInfo:
    def local(ms: int) -> str:
        return dt.datetime.fromtimestamp(ms / 1000, period.zone).isoformat(timespec="seconds")

    return PeriodInfo(
        kind=str(period.kind),
        name=period.name,
        label=period.label,
        first_day=period.first.isoformat(),
        last_day=period.last.isoformat(),
        timezone=period.zone.key,
        start=local(period.start_ms),
        end=local(period.end_ms),
        start_ms=period.start_ms,
        end_ms=period.end_ms,
        hours=period.hours,
    )


def notes(period: Period, plan: TierPlan, n_machines: int) -> list[str]:
    said = [
        f"Read from the {plan.label} tier; trend points are {plan.slot_ms // 60_000}-minute "
        "averages. Times are local to " + period.zone.key + ".",
        "Average: the mean of every reading in the period. Min and max: the lowest and highest "
        "reading. Median: the median of the bucket averages (the raw samples of a long period "
        f"are not kept, so it is the median of the {plan.label} buckets).",
        "Memory, disk space and power of the fleet are totals: the sum of each machine's "
        "average. Network volumes are each bucket's average rate times its width, summed.",
        "GPU idle rate: the share of the time a card reported with more than 8 GiB of memory "
        "free (gpu_idle_rate) or using under 10 % of its memory (gpu_low_memory_rate), each "
        "bucket judged by its average; a server's rate is the mean over its cards.",
    ]
    if n_machines == 0:
        said.insert(0, "No machine reported in this period.")
    return said


def build_report(
    store: Store,
    period: Period,
    *,
    accountant: Accountant | None = None,
    now_ms: int | None = None,
    on_stage: Stage | None = None,
    is_cancelled: Callable[[], bool] | None = None,
) -> Report:
    """The report of `period` from `store`. `on_stage` hears what is being done (for a
    progress display); `is_cancelled` is asked between stages (ReportCancelled)."""

    def stage(what: str) -> None:
        if is_cancelled is not None and is_cancelled():
            raise ReportCancelled(f"the {period.name} report was abandoned")
        if on_stage is not None:
            on_stage(what)

    plan = PLANS[period.kind]
    stage("selecting series")
    with store.analytics() as sql:
        wanted = ", ".join(f"'{m.name}'" for m in scope.REPORT_METRICS)
        keys = sql.execute(
            f"SELECT series, entity, metric FROM series_keys WHERE metric IN ({wanted})"
        ).fetchall()
        selection = scope.select((int(s), str(e), str(m)) for s, e, m in keys)
        stage("computing statistics")
        found = stats.compute(sql, selection.table(), plan.tier, period.start_ms, period.end_ms)
    stage("composing")
    agg = compose.Aggregates(selection, found)
    grid = compose.bucket_grid(period, found.width_ms)
    cards = compose.card_rows(selection, agg)
    gpu = compose.gpu_section(cards)
    servers = compose.server_rows(selection, agg, gpu)
    cpu = compose.cpu_section(period, found, grid, agg, servers)
    stage("reading events")
    events = events_section(store, period.start_ms, period.end_ms, period.zone)
    stage("accounting energy")
    energy = energy_section(
        store, period.start_ms, period.end_ms, compose.it_energy_kwh(servers), accountant
    )
    generated = int(time.time() * 1000) if now_ms is None else now_ms
    n_reporting = sum(1 for s in servers if s.cpu_average is not None)
    return Report(
        title=f"{TITLES[period.kind]}: {period.label}",
        period=period_info(period),
        generated_at=dt.datetime.fromtimestamp(generated / 1000, period.zone).isoformat(
            timespec="seconds"
        ),
        generated_at_ms=generated,
        source=SourceInfo(plan.label, found.width_ms, plan.slot_ms),
        n_machines=len(selection.machines),
        n_gpus=len(selection.cards),
        metrics=compose.metric_summaries(agg, found.medians),
        cpu=cpu,
        memory=compose.memory_section(found, grid, agg),
        disk=compose.disk_section(period, found, grid),
        network=compose.network_section(found, grid, agg),
        gpu=gpu,
        servers=servers,
        events=events,
        energy=energy,
        trends=compose.trends(found, grid, plan.slot_ms),
        notes=notes(period, plan, n_reporting),
    )
