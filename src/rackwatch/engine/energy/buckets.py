"""Energy per bucket, in SQL over the store's rollup tiers: what `account` aggregates.

**Which tier.** The range is taken in whole minutes (its start and end rounded down: the
minute in progress is left to the live accountant). Up to `MINUTE_TIER_MAX_MS` (3 days) it is
read from the 1-minute tier; beyond, the whole hours from the 1-hour tier and the partial
hours at either edge from the 1-minute tier, so a month costs about 750 rows per series,
not 45,000, and its edges are still exact to the minute. (The 1-minute tier is kept 90 days
by default: an edge older than that is missing from it and shows as a gap.)

**Energy of a bucket** = its average power x the time its readings cover. A reading covers
one sampling interval of its series, estimated per series and tier over the range: the
bucket width over the median number of readings per bucket (NULL readings included: they
were sampled, they just gave nothing), or, for a series read at most once per bucket (a PDU
polled every 5 minutes, in the 1-minute tier), the median step between its buckets, over
every tier read. So a bucket covers `n x interval`, at most its width (or one interval, for
the sparse series), and never past the range's end:

    covered_ms = least(n * interval_ms, greatest(width_ms, interval_ms), end_ms - ts)
    joules     = avg_w * covered_ms / 1000                (avg_w is NULL when n = 0: 0 J)

A bucket with no row, or whose readings were all NULL (`n = 0`), covers nothing: that time
is the series' gap. Nothing is interpolated here; `accounting` reports the gaps and fills
them, separately, at each series' mean power.

Everything runs in one analytics session (`Store.analytics()`): the tables `_sel(series)` (the
series to read) and `_price(ts, price, period)` (the tariff of every bucket start) are
registered by the caller.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

MINUTE_MS = 60_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000
MINUTE_TIER_MAX_MS = 3 * DAY_MS
"""Ranges up to this long are read from the 1-minute tier alone."""
MAX_RANGE_MS = 20 * 366 * DAY_MS
"""The longest range accounted (the price table holds a row per hour of it)."""


@dataclass(frozen=True, slots=True)
class Window:
    """A part of the range read from one tier's view: buckets starting in [from_ms, to_ms)."""

    view: str
    """`m1` or `h1` (store/analytics.py)."""
    width_ms: int
    from_ms: int
    to_ms: int

    @property
    def tier(self) -> str:
        return "1m" if self.view == "m1" else "1h"


def aligned(start_ms: int, end_ms: int) -> tuple[int, int]:
    """The range in whole minutes: both ends rounded down.

    >>> aligned(90_000, 250_000)
    (60000, 240000)
    """
    return start_ms - start_ms % MINUTE_MS, end_ms - end_ms % MINUTE_MS


def windows(start_ms: int, end_ms: int) -> list[Window]:
    """The tier windows of an aligned range (`aligned`), in time order.

    >>> [(w.tier, w.from_ms, w.to_ms) for w in windows(0, 2 * DAY_MS)]
    [('1m', 0, 172800000)]
    >>> [(w.tier, w.from_ms // MINUTE_MS, w.to_ms // MINUTE_MS)
    ...  for w in windows(30 * MINUTE_MS, 4 * DAY_MS + 90 * MINUTE_MS)]
    [('1m', 30, 60), ('1h', 60, 5820), ('1m', 5820, 5850)]
    """
    if end_ms <= start_ms:
        return []
    if end_ms - start_ms <= MINUTE_TIER_MAX_MS:
        return [Window("m1", MINUTE_MS, start_ms, end_ms)]
    first_hour = -(-start_ms // HOUR_MS) * HOUR_MS
    last_hour = end_ms - end_ms % HOUR_MS
    parts = [
        Window("m1", MINUTE_MS, start_ms, first_hour),
        Window("h1", HOUR_MS, first_hour, last_hour),
        Window("m1", MINUTE_MS, last_hour, end_ms),
    ]
    return [w for w in parts if w.to_ms > w.from_ms]


def bucket_starts(parts: list[Window]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """(start, width) of every bucket of the windows: the tariff's price table.

    >>> [a.tolist() for a in bucket_starts(windows(0, 3 * MINUTE_MS))]
    [[0, 60000, 120000], [60000, 60000, 60000]]
    """
    starts = [np.arange(w.from_ms, w.to_ms, w.width_ms, dtype=np.int64) for w in parts]
    widths = [
        np.full(len(s), w.width_ms, dtype=np.int64) for s, w in zip(starts, parts, strict=True)
    ]
    if not starts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(starts), np.concatenate(widths)


def rows_sql(parts: list[Window], selection: str, columns: str = "n, missing, avg") -> str:
    """SELECT of the buckets of the windows for the series in table `selection`:
    `series, ts, width, <columns>`."""
    selects = [
        f"SELECT t.series, t.ts, {w.width_ms} AS width, {columns} FROM {w.view} t "
        f"WHERE t.ts >= {w.from_ms} AND t.ts < {w.to_ms} "
        f"AND t.series IN (SELECT series FROM {selection})"
        for w in parts
    ]
    return " UNION ALL ".join(selects)


def energy_ctes(parts: list[Window], selection: str = "_sel") -> str:
    """`WITH` clauses ending in `e(series, ts, width, covered_ms, joules, avg)`: the energy
    of every bucket of the selected series over the windows (see the module docstring)."""
    end = parts[-1].to_ms
    return f"""
    WITH b AS MATERIALIZED ({rows_sql(parts, selection)}),
    r AS (
        SELECT series, width, median(n + missing) AS per_bucket
        FROM b GROUP BY series, width
    ),
    sparse AS (
        -- the sampling step of a series read at most once per bucket, over every tier's rows
        -- of it (an hourly series' edge minutes then know it is hourly)
        SELECT series, median(step) AS step FROM (
            SELECT b.series, b.ts - lag(b.ts) OVER (PARTITION BY b.series ORDER BY b.ts) AS step
            FROM b JOIN r USING (series, width) WHERE r.per_bucket <= 1
        ) WHERE step IS NOT NULL GROUP BY series
    ),
    iv AS (
        SELECT r.series, r.width,
               CASE WHEN r.per_bucket > 1 THEN r.width / r.per_bucket
                    ELSE greatest(r.width, coalesce(s.step, r.width)) END AS interval_ms
        FROM r LEFT JOIN sparse s USING (series)
    ),
    c AS (
        SELECT b.series, b.ts, b.width, b.avg,
               least(b.n * iv.interval_ms, greatest(b.width, iv.interval_ms), {end} - b.ts)
                   AS covered_ms
        FROM b JOIN iv USING (series, width)
    ),
    e AS (
        SELECT *, coalesce(avg, 0.0) * covered_ms / 1000.0 AS joules FROM c
    )"""


def per_series_sql(parts: list[Window]) -> str:
    """Energy, covered time and cost of each selected series, per tariff period:
    `series, period, joules, covered_ms, cost, n_buckets` (cost in the tariff's currency)."""
    return f"""{energy_ctes(parts)}
    SELECT e.series, p.period, sum(e.joules) AS joules, sum(e.covered_ms) AS covered_ms,
           sum(e.joules * p.price) / 3600000.0 AS cost, count(*) AS n_buckets
    FROM e JOIN _price p ON p.ts = e.ts
    GROUP BY e.series, p.period"""
