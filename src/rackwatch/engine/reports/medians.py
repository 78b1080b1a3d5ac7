"""Exact medians of each metric's bucket averages, in bounded memory.

DuckDB's `median` holds every value of a group in memory: a month of 2,000 servers is
about 50 M averages (400 MB), more than `rackwatch run` lets DuckDB use (128 MB). So a
small period is answered by `median` directly, and a large one by narrowing: each pass
counts the values of every metric still open in `BINS` bins of its current interval (with
each bin's lowest and highest value), keeps the bins that hold the middle ranks, and stops
once the interval holds few enough values to fetch, or a single value. Bins are monotone in
the value, so the count of values below the interval stays exact and the answer is the
exact median (the mean of the two middle values for an even count), as `median` gives.
Two or three scans of the period's buckets in all.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import numpy as np
import pyarrow as pa

BINS = 4096
FETCH_LIMIT = 2_000_000
"""Values fetched into Python at most per pass (16 MB), over every metric."""
DIRECT_LIMIT = 4_000_000
"""Below this many values in all, DuckDB's `median` answers in one query (32 MB)."""
MAX_PASSES = 12


@dataclass
class _Open:
    """A metric whose median is not known yet: ranks `r1`, `r2` (0-based, the two middle
    ones) among the values in [lo, hi], of which `n` there are."""

    lo: float
    hi: float
    n: int
    r1: int
    r2: int


def _values(tier: str, where: str) -> str:
    return (
        f"FROM {tier} t JOIN report_series r ON r.series = t.series "
        f"WHERE {where} AND t.avg IS NOT NULL"
    )


def direct(con: duckdb.DuckDBPyConnection, tier: str, where: str) -> dict[str, float]:
    rows = con.execute(
        f"SELECT r.metric, median(t.avg) {_values(tier, where)} GROUP BY r.metric"
    ).fetchall()
    return {str(m): float(v) for m, v in rows if v is not None}


def narrowed(
    con: duckdb.DuckDBPyConnection,
    tier: str,
    where: str,
    ranges: dict[str, tuple[int, float, float]],
    *,
    fetch_limit: int = FETCH_LIMIT,
) -> dict[str, float]:
    """The medians for `ranges` (metric -> (count, lowest, highest average))."""
    found: dict[str, float] = {}
    pending: dict[str, _Open] = {}
    for metric, (n, lo, hi) in ranges.items():
        if n <= 0:
            continue
        if lo == hi:
            found[metric] = lo
        else:
            pending[metric] = _Open(lo, hi, n, (n - 1) // 2, n // 2)
    for _ in range(MAX_PASSES):
        if not pending:
            break
        if sum(o.n for o in pending.values()) <= fetch_limit:  # one pass fetches them all
            found.update(_fetch(con, tier, where, pending))
            pending = {}
        else:  # one pass narrows them all
            _narrow(con, tier, where, pending, found)
    if pending:  # pathological precision: take what DuckDB's own median says
        left = direct(con, tier, where)
        found.update({m: left[m] for m in pending if m in left})
    return found


def _ranges_table(pending: dict[str, _Open]) -> pa.Table:
    return pa.table(
        {
            "metric": pa.array(list(pending), pa.string()),
            "lo": pa.array([o.lo for o in pending.values()], pa.float64()),
            "hi": pa.array([o.hi for o in pending.values()], pa.float64()),
        }
    )


def _fetch(
    con: duckdb.DuckDBPyConnection, tier: str, where: str, chosen: dict[str, _Open]
) -> dict[str, float]:
    con.register("_median_ranges", _ranges_table(chosen))
    try:
        got = con.sql(
            f"""SELECT r.metric, t.avg FROM {tier} t JOIN report_series r ON r.series = t.series
                JOIN _median_ranges g ON g.metric = r.metric
                WHERE {where} AND t.avg BETWEEN g.lo AND g.hi"""
        ).to_arrow_table()
    finally:
        con.unregister("_median_ranges")
    metrics = np.asarray(got["metric"].to_pylist(), dtype=np.str_)
    values = np.asarray(got["avg"].to_numpy(zero_copy_only=False), dtype=np.float64)
    out = {}
    for metric, o in chosen.items():
        mine = np.sort(values[metrics == metric])
        if len(mine) != o.n:  # cannot happen with exact counts; fail loudly if it does
            raise RuntimeError(f"median of {metric}: {len(mine)} values, expected {o.n}")
        out[metric] = float((mine[o.r1] + mine[o.r2]) / 2)
    return out


def _narrow(
    con: duckdb.DuckDBPyConnection,
    tier: str,
    where: str,
    pending: dict[str, _Open],
    found: dict[str, float],
) -> None:
    con.register("_median_ranges", _ranges_table(pending))
    try:
        width = f"((g.hi - g.lo) / {BINS})"
        rows = con.execute(
            f"""SELECT r.metric, least({BINS - 1}, floor((t.avg - g.lo) / {width}))::BIGINT AS bin,
                       count(*) AS k, min(t.avg) AS lo, max(t.avg) AS hi
                FROM {tier} t JOIN report_series r ON r.series = t.series
                JOIN _median_ranges g ON g.metric = r.metric
                WHERE {where} AND t.avg BETWEEN g.lo AND g.hi
                GROUP BY ALL ORDER BY 1, 2"""
        ).fetchall()
    finally:
        con.unregister("_median_ranges")
    bins: dict[str, list[tuple[int, float, float]]] = {m: [] for m in pending}
    for metric, _bin, k, lo, hi in rows:
        bins[str(metric)].append((int(k), float(lo), float(hi)))
    for metric in list(pending):
        o = pending[metric]
        below = 0
        first: tuple[int, float] | None = None  # (values below its bin, its lowest value)
        for k, lo, hi in bins[metric]:
            if first is None and o.r1 < below + k:
                first = (below, lo)
            if o.r2 < below + k:
                assert first is not None
                skipped, new_lo = first
                n = below + k - skipped
                if new_lo == hi:
                    found[metric] = new_lo
                    del pending[metric]
                else:
                    pending[metric] = _Open(new_lo, hi, n, o.r1 - skipped, o.r2 - skipped)
                break
            below += k
