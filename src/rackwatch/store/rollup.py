"""Pure NumPy downsampling: samples -> mergeable partial aggregates -> OHLC rows.

A `Partials` holds, per (series, bucket), what is needed to merge two partial aggregates of the
same bucket exactly: the first and last *non-NaN* reading with their timestamps, high, low, sum,
`count` (non-NaN readings) and `missing` (NaN readings). Absent rows contribute nothing, so a
gap stays a gap: no bucket row exists where no sample arrived. A bucket that saw only NaN has
count 0, missing n and NaN open/high/low/close/avg. Nothing is ever interpolated.

>>> ts = np.array([0, 30_000, 60_000, 90_000, 120_000])
>>> p = partials(ts, np.zeros(5, np.int32), np.array([1.0, 3.0, np.nan, np.nan, 2.0]), 60_000)
>>> p.bucket.tolist(), p.count.tolist(), p.missing.tolist(), p.first.tolist(), p.high.tolist()
([0, 60000, 120000], [2, 0, 1], [0, 2, 0], [1.0, nan, 2.0], [3.0, nan, 2.0])
>>> p.avg().tolist()
[2.0, nan, 2.0]

Merging two partials of the same bucket gives the partial of all their samples; partials of a
fine width merge into a coarser one (1 min -> 1 h) the same way:

>>> a = partials(np.array([10, 20]), np.array([0, 0], np.int32), np.array([5.0, 1.0]), 60_000)
>>> b = partials(np.array([5, 40]), np.array([0, 0], np.int32), np.array([7.0, np.nan]), 60_000)
>>> m = combine(concat([a, b]), 60_000)
>>> m.first.tolist(), m.last.tolist(), m.low.tolist(), m.count.tolist(), m.missing.tolist()
([7.0], [1.0], [1.0], [3], [1])
>>> combine(m, 3_600_000).bucket.tolist()
[0]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import numpy.typing as npt

I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
Bool = npt.NDArray[np.bool_]
Array = npt.NDArray[Any]

NO_TS_FIRST = np.iinfo(np.int64).max
"""`first_ts` of a bucket without any non-NaN reading: sorts after every real timestamp."""
NO_TS_LAST = np.iinfo(np.int64).min

MINUTE_MS = 60_000
HOUR_MS = 3_600_000


def bucket_of(ts: I64, width_ms: int) -> I64:
    """Start of the bucket holding `ts` (floor, also for negative ts).

    >>> bucket_of(np.array([-1, 0, 59_999, 60_000]), 60_000).tolist()
    [-60000, 0, 0, 60000]
    """
    return ts - ts % width_ms


@dataclass(frozen=True, slots=True)
class Partials:
    """Mergeable partial aggregates, one row per (series, bucket), sorted by (series, bucket)."""

    series: I32
    bucket: I64
    first_ts: I64
    first: F64
    last_ts: I64
    last: F64
    high: F64
    low: F64
    sum: F64
    count: I64
    missing: I64

    def __len__(self) -> int:
        return len(self.series)

    def take(self, index: npt.NDArray[np.intp] | Bool | slice) -> Partials:
        return Partials(*(getattr(self, name)[index] for name in _FIELDS))

    def avg(self) -> F64:
        """sum / count, NaN where the bucket has no non-NaN reading."""
        with np.errstate(invalid="ignore", divide="ignore"):
            out: F64 = np.where(self.count > 0, self.sum / self.count, np.nan)
        return out

    @property
    def nbytes(self) -> int:
        return sum(getattr(self, name).nbytes for name in _FIELDS)


_FIELDS = tuple(f.name for f in fields(Partials))


def empty() -> Partials:
    i64 = np.empty(0, np.int64)
    f64 = np.empty(0, np.float64)
    return Partials(np.empty(0, np.int32), i64, i64, f64, i64, f64, f64, f64, f64, i64, i64)


def concat(parts: Sequence[Partials]) -> Partials:
    """Stack partials (not merged: the same key may appear twice; `combine` merges)."""
    parts = [p for p in parts if len(p)]
    if not parts:
        return empty()
    if len(parts) == 1:
        return parts[0]
    return Partials(*(np.concatenate([getattr(p, name) for p in parts]) for name in _FIELDS))


def _group_starts(series: I32, bucket: I64) -> npt.NDArray[np.intp]:
    n = len(series)
    if n == 0:
        return np.empty(0, np.intp)
    change = (series[1:] != series[:-1]) | (bucket[1:] != bucket[:-1])
    starts: npt.NDArray[np.intp] = np.flatnonzero(np.concatenate(([True], change)))
    return starts


def is_sorted_by_series_ts(series: I32, ts: I64) -> bool:
    """True when rows are ordered by (series, ts), ts non-decreasing within a series."""
    if len(series) < 2:
        return True
    k = min(64, len(series) - 1)
    if (series[1 : k + 1] < series[:k]).any():  # cheap early answer for time-major rows
        return False
    ds = series[1:] - series[:-1]
    if (ds < 0).any():
        return False
    return not ((ts[1:] < ts[:-1]) & (ds == 0)).any()


def sort_order(series: I32, ts: I64) -> npt.NDArray[np.intp] | None:
    """A stable permutation ordering rows by (series, ts), or None if already ordered.

    A stable sort on the series id alone keeps rows that arrived in time order in time order;
    NumPy radix-sorts 16-bit keys, so ids are narrowed when they fit. If the rows were not in
    time order and that leaves a series out of order, fall back to a full lexsort.
    """
    if is_sorted_by_series_ts(series, ts):
        return None
    in_time_order = not (ts[1:] < ts[:-1]).any()
    key = series.astype(np.uint16) if int(series.max()) < 65536 else series
    order: npt.NDArray[np.intp] = np.argsort(key, kind="stable")
    if not in_time_order and not is_sorted_by_series_ts(series[order], ts[order]):
        order = np.lexsort((ts, series))
    return order


def partials(ts: I64, series: I32, value: F64, width_ms: int, *, ordered: bool = False) -> Partials:
    """Partial aggregates of raw samples in buckets of `width_ms`.

    `ordered=True` promises rows are already sorted by (series, ts) and skips the check.
    Cost: about eight passes over the rows, plus a sort when rows are not ordered; buckets
    holding a NaN are redone on their own rows (NULL readings are rare).
    """
    if not ordered:
        order = sort_order(series, ts)
        if order is not None:
            ts, series, value = ts[order], series[order], value[order]
    n = len(ts)
    if n == 0:
        return empty()
    starts = _bucket_starts(ts, series, width_ms)
    ends = np.append(starts[1:], n)
    sizes = (ends - starts).astype(np.int64)
    # NaN-propagating reductions first; the buckets that met a NaN are fixed up below.
    first_i, last_i = starts, ends - 1
    first_ts, last_ts = ts[first_i], ts[last_i]
    first, last = value[first_i], value[last_i]
    high = np.maximum.reduceat(value, starts)
    low = np.minimum.reduceat(value, starts)
    total = np.add.reduceat(value, starts)
    count = sizes.copy()
    nan = np.isnan(value)
    if nan.any():
        bad = np.flatnonzero(np.logical_or.reduceat(nan, starts))
        rows = _ranges(starts[bad], sizes[bad])
        sub = _stats_with_nan(ts[rows], value[rows], np.cumsum(sizes[bad]) - sizes[bad])
        for name, arr in zip(
            _STAT_NAMES, (first_ts, first, last_ts, last, high, low, total), strict=True
        ):
            arr[bad] = sub[name]
        count[bad] = sub["count"]
    bucket = bucket_of(ts[starts], width_ms)
    return Partials(
        series[starts],
        bucket,
        first_ts,
        first,
        last_ts,
        last,
        high,
        low,
        total,
        count,
        sizes - count,
    )


_STAT_NAMES = ("first_ts", "first", "last_ts", "last", "high", "low", "sum")


def _bucket_starts(ts: I64, series: I32, width_ms: int) -> npt.NDArray[np.intp]:
    """Row index where each (series, bucket) group starts, for rows sorted by (series, ts)."""
    n = len(ts)
    if abs(int(ts[0])) < 2**50 and abs(int(ts[-1])) < 2**50:
        # Float division is exact enough here (quotients far from the next integer by more than
        # their rounding error) and much faster than int64 division.
        key: npt.NDArray[Any] = np.floor(ts / float(width_ms))
    else:
        key = ts // width_ms
    change = np.empty(n, bool)
    change[0] = True
    np.not_equal(key[1:], key[:-1], out=change[1:])
    change[1:] |= series[1:] != series[:-1]
    starts: npt.NDArray[np.intp] = np.flatnonzero(change)
    return starts


def _ranges(starts: npt.NDArray[np.intp], sizes: I64) -> npt.NDArray[np.intp]:
    """Concatenated index ranges starts[i] .. starts[i] + sizes[i]."""
    total = int(sizes.sum())
    offsets = np.cumsum(sizes) - sizes
    out: npt.NDArray[np.intp] = np.arange(total) + np.repeat(starts - offsets, sizes)
    return out


def _stats_with_nan(ts: I64, value: F64, starts: npt.NDArray[np.intp]) -> dict[str, Array]:
    """Bucket statistics over non-NaN readings only (NaN/no ts where a bucket has none)."""
    n = len(ts)
    valid = ~np.isnan(value)
    count = np.add.reduceat(valid, starts, dtype=np.int64)
    has = count > 0
    idx = np.arange(n)
    first_i = np.where(has, np.minimum.reduceat(np.where(valid, idx, n), starts), 0)
    last_i = np.where(has, np.maximum.reduceat(np.where(valid, idx, -1), starts), 0)
    return {
        "first_ts": np.where(has, ts[first_i], NO_TS_FIRST),
        "first": np.where(has, value[first_i], np.nan),
        "last_ts": np.where(has, ts[last_i], NO_TS_LAST),
        "last": np.where(has, value[last_i], np.nan),
        "high": np.where(has, np.maximum.reduceat(np.where(valid, value, -np.inf), starts), np.nan),
        "low": np.where(has, np.minimum.reduceat(np.where(valid, value, np.inf), starts), np.nan),
        "sum": np.add.reduceat(np.where(valid, value, 0.0), starts),
        "count": count,
    }


def combine(p: Partials, width_ms: int) -> Partials:
    """Merge partials into buckets of `width_ms` (a multiple of their own width).

    Rows with the same (series, bucket) are merged: the open is the reading with the smallest
    timestamp among them, the close the one with the largest (ties: the later row wins),
    high/low/sum/count/missing add up. Input may be in any order.
    """
    n = len(p)
    if n == 0:
        return p
    bucket = bucket_of(p.bucket, width_ms)
    if not is_sorted_by_series_ts(p.series, bucket):
        order = np.lexsort((bucket, p.series))
        p, bucket = p.take(order), bucket[order]
    starts = _group_starts(p.series, bucket)
    if len(starts) == n:  # nothing to merge
        return Partials(p.series, bucket, *(getattr(p, f.name) for f in fields(Partials)[2:]))
    sizes = np.diff(np.append(starts, n))
    idx = np.arange(n)
    first_ts = np.minimum.reduceat(p.first_ts, starts)
    at_first = p.first_ts == np.repeat(first_ts, sizes)
    first_i = np.minimum.reduceat(np.where(at_first, idx, n), starts)
    last_ts = np.maximum.reduceat(p.last_ts, starts)
    at_last = p.last_ts == np.repeat(last_ts, sizes)
    last_i = np.maximum.reduceat(np.where(at_last, idx, -1), starts)
    return Partials(
        p.series[starts],
        bucket[starts],
        first_ts,
        p.first[first_i],
        last_ts,
        p.last[last_i],
        np.fmax.reduceat(p.high, starts),  # fmax/fmin skip the NaN of all-NaN buckets
        np.fmin.reduceat(p.low, starts),
        np.add.reduceat(p.sum, starts),
        np.add.reduceat(p.count, starts),
        np.add.reduceat(p.missing, starts),
    )


def from_rows(
    series: I32,
    bucket: I64,
    open_ts: I64,
    open_: F64,
    close_ts: I64,
    close: F64,
    high: F64,
    low: F64,
    avg: F64,
    count: I64,
    missing: I64,
) -> Partials:
    """Partials back from stored rollup rows (sum = avg * count; 0 when count is 0)."""
    count = count.astype(np.int64, copy=False)
    total = np.where(count > 0, avg * count, 0.0)
    return Partials(
        series.astype(np.int32, copy=False),
        bucket,
        open_ts,
        open_,
        close_ts,
        close,
        high,
        low,
        total,
        count,
        missing.astype(np.int64, copy=False),
    )
