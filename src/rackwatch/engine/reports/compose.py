"""The report's sections from the SQL aggregates (stats.TierStats): pure arithmetic on a few
rows per series and per time slot.

Definitions (docs/REPORTS.md says the same for readers):

- a metric's *average* is the mean of every reading in the period (sum / count, so a series
  that reported more weighs more), its *min* and *max* the lowest and highest reading, its
  *median* the median of the bucket averages;
- a machine's value of a `total` metric (memory, disk space, power) is the sum over its
  series (its disks, say) of each one's average;
- network volumes are each bucket's average rate times the bucket's width, summed; energy
  from `power_watts` likewise;
- a GPU card is idle in a bucket whose average free memory is above 8 GiB
  (`gpu_idle_rate`) or whose average memory use is under 10 % (`gpu_low_memory_rate`); its
  rate is the share of the buckets it reported that were idle; a server's is the mean over
  its cards, the fleet's the mean over every card;
- local hours and days are those of the report's time zone; a bucket belongs to the local
  hour (or day) its start falls in.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Sequence
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from rackwatch.engine.reports import content as c
from rackwatch.engine.reports.periods import Period, PeriodKind
from rackwatch.engine.reports.scope import REPORT_METRICS, Fleet, Selection
from rackwatch.engine.reports.stats import (
    FREE_THRESHOLD_BYTES,
    LOW_USE_THRESHOLD_RATIO,
    TierStats,
)

J_PER_KWH = 3.6e6
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


def number(value: float | np.floating | None) -> float | None:
    """A float, or None for a missing (NaN) one."""
    if value is None:
        return None
    as_float = float(value)
    return None if np.isnan(as_float) else as_float


def local_iso(ts_ms: int, zone: ZoneInfo) -> str:
    return dt.datetime.fromtimestamp(ts_ms / 1000, zone).isoformat(timespec="minutes")


def hour_start_ms(ts_ms: int, zone: ZoneInfo) -> int:
    """The instant the local hour holding `ts_ms` began (distinct for a repeated hour)."""
    local = dt.datetime.fromtimestamp(ts_ms / 1000, zone)
    return ts_ms - (local.minute * 60 + local.second) * 1000 - local.microsecond // 1000


class Aggregates:
    """The per-series aggregates, indexed by the selection's rows."""

    def __init__(self, selection: Selection, stats: TierStats) -> None:
        s = stats.series
        position = {int(series): i for i, series in enumerate(s.series)}
        self.width_s = stats.width_ms / 1000
        self.n = s.n
        self.total = s.total
        self.low = s.low
        self.high = s.high
        self.sum_avg = s.sum_avg
        self.n_buckets = s.n_buckets
        self.n_free_over = s.n_free_over
        self.n_low_use = s.n_low_use
        with np.errstate(invalid="ignore", divide="ignore"):
            self.mean = np.where(s.n > 0, s.total / np.maximum(s.n, 1), np.nan)
        # metric -> indices; (machine, metric) -> indices; (card, metric) -> indices
        self.by_metric: dict[str, list[int]] = defaultdict(list)
        self.by_machine: dict[tuple[str, str], list[int]] = defaultdict(list)
        self.by_part: dict[tuple[str, str], list[int]] = defaultdict(list)
        for row in selection.rows:
            at = position.get(row.series)
            if at is None:
                continue  # no bucket in the period
            self.by_metric[row.metric].append(at)
            self.by_machine[(row.machine, row.metric)].append(at)
            self.by_part[(row.part, row.metric)].append(at)

    def average(self, at: Sequence[int]) -> float | None:
        """The mean of every reading of these series."""
        idx = np.asarray(at, dtype=np.int64)
        n = int(self.n[idx].sum()) if len(idx) else 0
        return float(self.total[idx].sum() / n) if n else None

    def total_of_means(self, at: Sequence[int]) -> float | None:
        """The sum of each series' average (None when none has a reading)."""
        means = self.mean[np.asarray(at, dtype=np.int64)]
        means = means[~np.isnan(means)]
        return float(means.sum()) if len(means) else None

    def highest(self, at: Sequence[int]) -> float | None:
        values = self.high[np.asarray(at, dtype=np.int64)]
        return None if not len(values) or np.isnan(values).all() else float(np.nanmax(values))

    def lowest(self, at: Sequence[int]) -> float | None:
        values = self.low[np.asarray(at, dtype=np.int64)]
        return None if not len(values) or np.isnan(values).all() else float(np.nanmin(values))

    def volume(self, at: Sequence[int]) -> float | None:
        """Sum over buckets of average x width (bytes from bytes/s, joules from watts)."""
        idx = np.asarray(at, dtype=np.int64)
        if not len(idx) or int(self.n_buckets[idx].sum()) == 0:
            return None
        return float(self.sum_avg[idx].sum() * self.width_s)

    def share(self, at: Sequence[int], hits: I64) -> float | None:
        """Share of the buckets with a value that count in `hits` (one series)."""
        idx = np.asarray(at, dtype=np.int64)
        seen = int(self.n_buckets[idx].sum()) if len(idx) else 0
        return float(hits[idx].sum() / seen) if seen else None


def _mean_of(values: Iterable[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return float(np.mean(known)) if known else None


# --------------------------------------------------------------------------- metrics


def metric_summaries(agg: Aggregates, medians: dict[str, float]) -> list[c.MetricSummary]:
    out = []
    for metric in REPORT_METRICS:
        at = agg.by_metric.get(metric.name, [])
        if not at:
            continue
        idx = np.asarray(at, dtype=np.int64)
        out.append(
            c.MetricSummary(
                metric=metric.name,
                title=metric.title,
                unit=metric.unit,
                scope=str(metric.scope),
                n_series=int((agg.n[idx] > 0).sum()),
                n_readings=int(agg.n[idx].sum()),
                average=agg.average(at),
                median=medians.get(metric.name),
                min=agg.lowest(at),
                max=agg.highest(at),
            )
        )
    return out


# --------------------------------------------------------------------------- machines, GPUs


def card_rows(selection: Selection, agg: Aggregates) -> list[c.CardRow]:
    machine_of = {r.part: r.machine for r in selection.rows}
    rows = []
    for card in selection.cards:
        free = agg.by_part.get((card, "gpu_memory_free_bytes"), [])
        use = agg.by_part.get((card, "gpu_memory_utilization_ratio"), [])
        seen = [i for m in REPORT_METRICS for i in agg.by_part.get((card, m.name), [])]
        buckets = int(agg.n_buckets[np.asarray(seen, dtype=np.int64)].max()) if seen else 0
        rows.append(
            c.CardRow(
                entity=card,
                server=machine_of[card],
                utilization_ratio=agg.average(agg.by_part.get((card, "gpu_utilization_ratio"), [])),
                memory_utilization_ratio=agg.average(use),
                gpu_idle_rate=agg.share(free, agg.n_free_over) if free else None,
                gpu_low_memory_rate=agg.share(use, agg.n_low_use) if use else None,
                observed_hours=buckets * agg.width_s / 3600,
            )
        )
    return rows


def gpu_section(cards: list[c.CardRow]) -> c.GpuSection:
    by_server: dict[str, list[c.CardRow]] = defaultdict(list)
    for card in cards:
        by_server[card.server].append(card)
    servers = [
        c.GpuServerRow(
            entity=server,
            n_cards=len(held),
            gpu_idle_rate=_mean_of(x.gpu_idle_rate for x in held),
            gpu_low_memory_rate=_mean_of(x.gpu_low_memory_rate for x in held),
        )
        for server, held in sorted(by_server.items())
    ]
    return c.GpuSection(
        n_cards=len(cards),
        idle_free_bytes=FREE_THRESHOLD_BYTES,
        low_memory_ratio=LOW_USE_THRESHOLD_RATIO,
        gpu_idle_rate=_mean_of(x.gpu_idle_rate for x in cards),
        gpu_low_memory_rate=_mean_of(x.gpu_low_memory_rate for x in cards),
        servers=servers,
        cards=cards,
    )


def server_rows(selection: Selection, agg: Aggregates, gpu: c.GpuSection) -> list[c.ServerRow]:
    gpus = {s.entity: s for s in gpu.servers}
    rows = []
    for machine in selection.machines:

        def of(metric: str, machine: str = machine) -> list[int]:
            return agg.by_machine.get((machine, metric), [])

        energy_j = agg.volume(of("power_watts"))
        held = gpus.get(machine)
        rows.append(
            c.ServerRow(
                entity=machine,
                cpu_average=agg.average(of("cpu_utilization_ratio")),
                cpu_max=agg.highest(of("cpu_utilization_ratio")),
                memory_used_bytes=agg.total_of_means(of("memory_used_bytes")),
                memory_utilization_ratio=agg.average(of("memory_utilization_ratio")),
                disk_used_bytes=agg.total_of_means(of("disk_used_bytes")),
                disk_utilization_ratio=agg.average(of("disk_utilization_ratio")),
                network_up_bytes=agg.volume(of("network_transmit_bytes_per_second")),
                network_down_bytes=agg.volume(of("network_receive_bytes_per_second")),
                power_watts=agg.total_of_means(of("power_watts")),
                energy_kwh=None if energy_j is None else energy_j / J_PER_KWH,
                n_gpus=0 if held is None else held.n_cards,
                gpu_utilization_ratio=agg.average(of("gpu_utilization_ratio")),
                gpu_idle_rate=None if held is None else held.gpu_idle_rate,
                gpu_low_memory_rate=None if held is None else held.gpu_low_memory_rate,
            )
        )
    return rows


# --------------------------------------------------------------------------- time slots


class Slots:
    """The per-bucket aggregates of one metric on the period's full grid of buckets (NaN,
    and 0 readings, where a bucket has none)."""

    def __init__(self, stats: TierStats, metric: str, grid: I64) -> None:
        b = stats.buckets
        mask = b.metric == metric
        ts = b.ts[mask]
        where = np.searchsorted(grid, ts)
        inside = (where < len(grid)) & (grid[np.minimum(where, len(grid) - 1)] == ts)
        at = where[inside]
        self.grid = grid
        self.n = np.zeros(len(grid), dtype=np.int64)
        self.total = np.zeros(len(grid))
        self.sum_means = np.full(len(grid), np.nan)
        self.max_mean = np.full(len(grid), np.nan)
        self.n[at] = b.n[mask][inside]
        self.total[at] = b.total[mask][inside]
        self.sum_means[at] = b.sum_means[mask][inside]
        self.max_mean[at] = b.max_mean[mask][inside]

    @property
    def has_data(self) -> bool:
        return bool(self.n.sum() > 0)

    def average(self) -> F64:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.n > 0, self.total / np.maximum(self.n, 1), np.nan)

    def grouped_average(self, keys: Sequence[object]) -> dict[object, float | None]:
        """Mean of the readings of the buckets sharing a key."""
        n: dict[object, int] = defaultdict(int)
        total: dict[object, float] = defaultdict(float)
        for key, count, value in zip(keys, self.n, self.total, strict=True):
            n[key] += int(count)
            total[key] += float(value) if count else 0.0
        return {k: (total[k] / n[k] if n[k] else None) for k in n}

    def grouped_total(self, keys: Sequence[object]) -> dict[object, float | None]:
        """Mean over the buckets sharing a key of the fleet total (sum of series averages)."""
        values: dict[object, list[float]] = {}
        for key, value in zip(keys, self.sum_means, strict=True):
            values.setdefault(key, [])
            if not np.isnan(value):
                values[key].append(float(value))
        return {k: (float(np.mean(v)) if v else None) for k, v in values.items()}

    def merged(self, factor: int) -> tuple[I64, F64, F64, F64]:
        """(starts, average, total, high) over runs of `factor` buckets: the mean of the
        readings, the mean of the fleet totals, the highest series' bucket average."""
        starts = np.arange(0, len(self.grid), factor)
        if not len(starts):
            empty = np.zeros(0)
            return self.grid[:0], empty, empty, empty
        n = np.add.reduceat(self.n, starts)
        total = np.add.reduceat(self.total, starts)
        has = ~np.isnan(self.sum_means)
        seen = np.add.reduceat(has.astype(np.int64), starts)
        sums = np.add.reduceat(np.where(has, self.sum_means, 0.0), starts)
        high = np.fmax.reduceat(self.max_mean, starts)
        with np.errstate(invalid="ignore", divide="ignore"):
            average = np.where(n > 0, total / np.maximum(n, 1), np.nan)
            totals = np.where(seen > 0, sums / np.maximum(seen, 1), np.nan)
        return self.grid[starts], average, totals, high


def bucket_grid(period: Period, width_ms: int) -> I64:
    """Every bucket start of the period: the buckets of `width_ms` that start in it."""
    first = -(-period.start_ms // width_ms) * width_ms
    return np.arange(first, period.end_ms, width_ms, dtype=np.int64)


def trends(stats: TierStats, grid: I64, trend_ms: int) -> list[c.Trend]:
    """Each metric's fleet value in points of `trend_ms` (a whole number of buckets)."""
    factor = max(1, trend_ms // stats.width_ms)
    out = []
    for metric in REPORT_METRICS:
        slots = Slots(stats, metric.name, grid)
        if not slots.has_data:
            continue
        starts, average, totals, high = slots.merged(factor)
        is_average = metric.fleet is Fleet.AVERAGE
        out.append(
            c.Trend(
                metric=metric.name,
                title=metric.title,
                unit=metric.unit,
                statistic=str(metric.fleet),
                bucket_ms=factor * stats.width_ms,
                ts_ms=[int(t) for t in starts],
                value=[number(v) for v in (average if is_average else totals)],
                high=[number(v) for v in high] if is_average else None,
            )
        )
    return out


def cpu_section(
    period: Period, stats: TierStats, grid: I64, agg: Aggregates, servers: list[c.ServerRow]
) -> c.CpuSection:
    zone = period.zone
    slots = Slots(stats, "cpu_utilization_ratio", grid)
    local = [dt.datetime.fromtimestamp(int(t) / 1000, zone) for t in grid]
    by_hour_map = slots.grouped_average([t.hour for t in local])
    by_hour = [c.HourValue(int(h), by_hour_map.get(h)) for h in range(24) if h in by_hour_map]
    known_hours = [h for h in by_hour if h.value is not None]
    busiest_hour = None
    if known_hours:
        top = max(known_hours, key=lambda h: (h.value, -h.hour))
        assert top.value is not None
        label = f"{top.hour:02d}:00-{(top.hour + 1) % 24:02d}:00"
        busiest_hour = c.BusiestHour(top.hour, label, top.value)
    by_day: list[c.TimeValue] = []
    busiest_day = None
    if period.kind is not PeriodKind.DAY:
        days = [t.date() for t in local]
        by_day_map = slots.grouped_average(days)
        for day in sorted(by_day_map, key=str):
            assert isinstance(day, dt.date)
            start = dt.datetime.combine(day, dt.time(0), tzinfo=zone)
            by_day.append(
                c.TimeValue(day.isoformat(), int(start.timestamp() * 1000), by_day_map[day])
            )
        known_days = [d for d in by_day if d.value is not None]
        if known_days:
            busiest_day = max(known_days, key=lambda d: d.value or 0.0)
    cpu = [(s.cpu_average, s.entity) for s in servers if s.cpu_average is not None]
    # Ties: the first machine by name, either way.
    busiest = min(cpu, key=lambda x: (-x[0], x[1]), default=None)
    idlest = min(cpu, key=lambda x: (x[0], x[1]), default=None)
    return c.CpuSection(
        average=agg.average(agg.by_metric.get("cpu_utilization_ratio", [])),
        busiest_hour=busiest_hour,
        busiest_day=busiest_day,
        busiest_server=None if busiest is None else c.ServerValue(busiest[1], busiest[0]),
        idlest_server=None if idlest is None else c.ServerValue(idlest[1], idlest[0]),
        by_hour=by_hour,
        by_day=by_day,
    )


def memory_section(stats: TierStats, grid: I64, agg: Aggregates) -> c.MemorySection:
    per_machine = [
        agg.total_of_means(at)
        for (machine, metric), at in agg.by_machine.items()
        if metric == "memory_used_bytes"
    ]
    slots = Slots(stats, "memory_used_bytes", grid)
    totals = slots.sum_means[~np.isnan(slots.sum_means)]
    return c.MemorySection(
        average_utilization_ratio=agg.average(agg.by_metric.get("memory_utilization_ratio", [])),
        average_used_bytes=_mean_of(per_machine),
        total_used_bytes=float(totals.mean()) if len(totals) else None,
    )


def disk_section(period: Period, stats: TierStats, grid: I64) -> c.DiskSection:
    zone = period.zone
    by = "day" if period.kind is PeriodKind.MONTH else "hour"
    keys: list[int] = []
    for t in grid:
        if by == "hour":
            keys.append(hour_start_ms(int(t), zone))
        else:
            day = dt.datetime.fromtimestamp(int(t) / 1000, zone).date()
            start = dt.datetime.combine(day, dt.time(0), tzinfo=zone)
            keys.append(int(start.timestamp() * 1000))
    used = Slots(stats, "disk_used_bytes", grid)
    ratio = Slots(stats, "disk_utilization_ratio", grid)
    used_by = used.grouped_total(keys)
    ratio_by = ratio.grouped_average(keys)
    rows = []
    for key in sorted(set(keys)):
        used_value, ratio_value = used_by.get(key), ratio_by.get(key)
        if used_value is None and ratio_value is None:
            continue
        label = local_iso(key, zone)
        rows.append(c.DiskSlot(label if by == "hour" else label[:10], key, used_value, ratio_value))
    totals = used.sum_means[~np.isnan(used.sum_means)]
    ratio_n = int(ratio.n.sum())
    return c.DiskSection(
        by=by,
        average_used_bytes=float(totals.mean()) if len(totals) else None,
        average_utilization_ratio=float(ratio.total.sum() / ratio_n) if ratio_n else None,
        slots=rows,
    )


def network_section(stats: TierStats, grid: I64, agg: Aggregates) -> c.NetworkSection:
    def peak(metric: str) -> float | None:
        values = Slots(stats, metric, grid).sum_means
        return None if np.isnan(values).all() else float(np.nanmax(values))

    return c.NetworkSection(
        up_bytes=agg.volume(agg.by_metric.get("network_transmit_bytes_per_second", [])),
        down_bytes=agg.volume(agg.by_metric.get("network_receive_bytes_per_second", [])),
        peak_up_bytes_per_second=peak("network_transmit_bytes_per_second"),
        peak_down_bytes_per_second=peak("network_receive_bytes_per_second"),
    )


def it_energy_kwh(servers: list[c.ServerRow]) -> float | None:
    known = [s.energy_kwh for s in servers if s.energy_kwh is not None]
    return float(sum(known)) if known else None
