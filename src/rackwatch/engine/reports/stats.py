"""The report's statistics in SQL over one rollup tier (store/analytics.py's views `m1` or
`h1`): three aggregate queries over the period's buckets, and only their results come back
to Python (a few rows per series, and per metric and bucket: never a row per series and bucket).

- `per_series`: for each series, its readings (`n`, `total`), lowest and highest reading,
  the sum and count of its bucket averages, and how many buckets lie above the GPU free
  memory threshold or below the GPU memory use threshold (each bucket decided by its
  average);
- `per_bucket`: for each metric and bucket, its readings, the sum of the series' averages
  (the fleet's total) and the highest series' average;
- medians: for each metric, the median of its bucket averages (the raw samples of a month
  of a large room are not kept, so the median is of the tier the period is read from;
  medians.py computes it exactly in bounded memory).

Cost: one scan of the period's buckets per query, in DuckDB's threads; a month of 2,000
servers (about 50 M hourly buckets) takes seconds (bench/bench_report.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import duckdb
import numpy as np
import numpy.typing as npt
import pyarrow as pa

from rackwatch.engine.reports import medians

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

GIB = 1024**3
FREE_THRESHOLD_BYTES = 8 * GIB
"""A card with more than this much memory free is idle (seed 004's "显存剩余超过8G": GiB,
the unit nvidia-smi's MiB figures add up to)."""
LOW_USE_THRESHOLD_RATIO = 0.10
"""A card using less than this share of its memory is idle (seed 004's "显存占用少于10%")."""
TIERS = {"m1": 60_000, "h1": 3_600_000}


@dataclass(frozen=True, slots=True)
class SeriesStats:
    series: npt.NDArray[np.int32]
    n: I64
    total: F64
    low: F64
    high: F64
    sum_avg: F64
    n_buckets: I64
    n_free_over: I64
    n_low_use: I64
    min_avg: F64
    max_avg: F64

    def __len__(self) -> int:
        return len(self.series)


@dataclass(frozen=True, slots=True)
class BucketStats:
    metric: npt.NDArray[np.str_]
    ts: I64
    n: I64
    total: F64
    low: F64
    high: F64
    sum_means: F64
    max_mean: F64
    n_series: I64

    def __len__(self) -> int:
        return len(self.ts)


@dataclass(frozen=True, slots=True)
class TierStats:
    tier: str
    width_ms: int
    series: SeriesStats
    buckets: BucketStats
    medians: dict[str, float]


def _where(start_ms: int, end_ms: int) -> str:
    return f"t.ts >= {int(start_ms)} AND t.ts < {int(end_ms)}"


def _f64(column: Any) -> F64:
    return np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.float64)


def _i64(column: Any) -> I64:
    return np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.int64)


def _arrow(con: duckdb.DuckDBPyConnection, query: str) -> pa.Table:
    # Nulls (a series with no reading) come back as NaN through to_numpy of a float column.
    return con.sql(query).to_arrow_table()


def per_series(
    con: duckdb.DuckDBPyConnection, tier: str, start_ms: int, end_ms: int
) -> SeriesStats:
    got = _arrow(
        con,
        f"""SELECT t.series, sum(t.n)::BIGINT AS n, sum(t.total) AS total,
                   min(t.low) AS low, max(t.high) AS high,
                   coalesce(sum(t.avg), 0.0) AS sum_avg, count(t.avg) AS n_buckets,
                   count(*) FILTER (WHERE t.avg > {FREE_THRESHOLD_BYTES}) AS n_free_over,
                   count(*) FILTER (WHERE t.avg < {LOW_USE_THRESHOLD_RATIO}) AS n_low_use,
                   min(t.avg) AS min_avg, max(t.avg) AS max_avg
            FROM {tier} t
            WHERE {_where(start_ms, end_ms)} AND t.series IN (SELECT series FROM report_series)
            GROUP BY t.series ORDER BY t.series""",
    )
    return SeriesStats(
        np.asarray(got["series"].to_numpy(), dtype=np.int32),
        _i64(got["n"]),
        _f64(got["total"].cast(pa.float64())),
        _f64(got["low"]),
        _f64(got["high"]),
        _f64(got["sum_avg"]),
        _i64(got["n_buckets"]),
        _i64(got["n_free_over"]),
        _i64(got["n_low_use"]),
        _f64(got["min_avg"]),
        _f64(got["max_avg"]),
    )


def per_bucket(
    con: duckdb.DuckDBPyConnection, tier: str, start_ms: int, end_ms: int
) -> BucketStats:
    got = _arrow(
        con,
        f"""SELECT r.metric, t.ts, sum(t.n)::BIGINT AS n, sum(t.total) AS total,
                   min(t.low) AS low, max(t.high) AS high, sum(t.avg) AS sum_means,
                   max(t.avg) AS max_mean, count(t.avg) AS n_series
            FROM {tier} t JOIN report_series r ON r.series = t.series
            WHERE {_where(start_ms, end_ms)}
            GROUP BY r.metric, t.ts ORDER BY r.metric, t.ts""",
    )
    return BucketStats(
        np.asarray([str(m) for m in got["metric"].to_pylist()], dtype=np.str_),
        _i64(got["ts"]),
        _i64(got["n"]),
        _f64(got["total"].cast(pa.float64())),
        _f64(got["low"]),
        _f64(got["high"]),
        _f64(got["sum_means"]),
        _f64(got["max_mean"]),
        _i64(got["n_series"]),
    )


def metric_medians(
    con: duckdb.DuckDBPyConnection,
    series_table: pa.Table,
    found: SeriesStats,
    tier: str,
    start_ms: int,
    end_ms: int,
) -> dict[str, float]:
    """Each metric's median bucket average (medians.py: exact, in bounded memory)."""
    metric_of = dict(
        zip(series_table["series"].to_pylist(), series_table["metric"].to_pylist(), strict=True)
    )
    ranges: dict[str, tuple[int, float, float]] = {}
    for i, series in enumerate(found.series):
        if found.n_buckets[i] == 0:
            continue
        metric = str(metric_of[int(series)])
        n, lo, hi = ranges.get(metric, (0, np.inf, -np.inf))
        ranges[metric] = (
            n + int(found.n_buckets[i]),
            min(lo, float(found.min_avg[i])),
            max(hi, float(found.max_avg[i])),
        )
    where = _where(start_ms, end_ms)
    if sum(n for n, _, _ in ranges.values()) <= medians.DIRECT_LIMIT:
        return medians.direct(con, tier, where)
    return medians.narrowed(con, tier, where, ranges)


def compute(
    con: duckdb.DuckDBPyConnection,
    series_table: pa.Table,
    tier: str,
    start_ms: int,
    end_ms: int,
) -> TierStats:
    """Every aggregate of the period [start_ms, end_ms) on `tier` (`m1` or `h1`) for the
    series of `series_table` (scope.Selection.table())."""
    if tier not in TIERS:
        raise ValueError(f"unknown tier {tier!r}: m1 or h1")
    con.register("report_series", series_table)
    try:
        series = per_series(con, tier, start_ms, end_ms)
        return TierStats(
            tier,
            TIERS[tier],
            series,
            per_bucket(con, tier, start_ms, end_ms),
            metric_medians(con, series_table, series, tier, start_ms, end_ms),
        )
    finally:
        con.unregister("report_series")
