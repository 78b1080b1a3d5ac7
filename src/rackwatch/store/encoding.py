"""Rollup rows as small integers: `Partials` <-> the columns of a rollup table.

Why: DuckDB compresses integer columns far better than doubles (BitPacking with CONSTANT/FOR/
DELTA_FOR per group of 2048 values, RLE), and sensor readings sit on a decimal grid (0.1 degC,
1 W, 10 rpm, 0.001). So each row gets a decimal `scale` d, and its readings are stored as
integers q in units of 10**-d, as differences that stay small for smooth signals:

- `close_q` = close * 10**d: changes little from one bucket to the next (DELTA_FOR);
- `open_d` = open_q - close_q, `high_d` = high_q - max(open_q, close_q) (>= 0) and
  `low_d` = min(open_q, close_q) - low_q (>= 0): the spread within the bucket;
- `sum_d` = sum_q - count * (high_q + low_q) // 2: the sum less `count` midranges (the
  midrange guesses the mean better than the close: about 1 bit a row less at 1 minute);
- `bucket`: the bucket's start in units of its width (minutes or hours since the epoch): rows
  go in as runs of one series, and at each change of series a start in ms would jump back by
  hours or days, widening the whole 2048-value group; in bucket units the jump is small;
- `readings` (count + missing: the samples that arrived, constant for a steady source, where
  `count` would change with every NULL reading), `missing`, and `open_offset`/`close_offset`
  (ms from the bucket start to the readings that gave open and close; NULL when count is 0).

d is the smallest in [SCALE_MIN, SCALE_MAX] for which open, high, low and close are exactly
q / 10**d (q * 10**-d for d <= 0), checked bit for bit, and the sum is within float noise of an
integer at that scale, with every product far inside int64. A row takes the larger d most
common among the closes of its series' run in the batch when that also fits, so that a bucket
whose readings happen to sit on a coarser grid (whole degrees, say) does not break the run's
small deltas with a value ten times smaller. Rows with no such scale (values off any decimal
grid, -0.0, infinities, huge magnitudes) have a NULL `scale` and keep the float64 bit patterns
of close, open, high, low and sum in the same columns: nothing is ever rounded. A bucket with
no reading (count 0: NaN readings, sum 0) stores zero differences and decodes as such.

Open, high, low and close come back bit for bit. The sum comes back as sum_q / 10**d, the
correctly rounded decimal sum, which may differ from the float-accumulated one by an ulp or
so (so may avg = sum / count); today's `avg * count` is no more exact.

>>> from rackwatch.store import rollup
>>> ts = np.arange(24, dtype=np.int64) * 5_000  # two minutes of 5 s readings
>>> value = np.round(20 + np.arange(24) * 0.1, 1)
>>> p = rollup.partials(ts, np.zeros(24, np.int32), value, 60_000)
>>> t = encode(p, 60_000)
>>> t.column("bucket").to_pylist()  # in minutes
[0, 1]
>>> t.column_names == [c.split()[0] for c in SELECT_COLUMNS.split(", ")]
True
>>> {k: t.column(k).to_pylist() for k in ("scale", "close_q", "open_d", "high_d", "sum_d")}
... # doctest: +NORMALIZE_WHITESPACE
{'scale': [1, 1], 'close_q': [211, 223], 'open_d': [-11, -11], 'high_d': [0, 0],
 'sum_d': [0, 0]}
>>> t.column("open_offset").to_pylist(), t.column("close_offset").to_pylist()
([0, 0], [55000, 55000])
>>> q = decode(t, 60_000)  # or decode(con.execute(...).fetchnumpy(), 60_000)
>>> q.first.tolist(), q.high.tolist(), q.last_ts.tolist(), q.avg().tolist()
([20.0, 21.2], [21.1, 22.3], [55000, 115000], [20.55, 21.75])

A value off the decimal grid keeps its bits:

>>> odd = rollup.partials(np.array([0]), np.zeros(1, np.int32), np.array([np.pi]), 60_000)
>>> t = encode(odd, 60_000)
>>> t.column("scale").to_pylist(), decode(t, 60_000).last.tolist() == [np.pi]
([None], True)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from rackwatch.store.rollup import NO_TS_FIRST, NO_TS_LAST, Partials

I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
Bool = npt.NDArray[np.bool_]

SCALE_MIN = -3
SCALE_MAX = 9
"""The decimal scales tried: 10**3 (kW steps in W) down to 10**-9 (nano units)."""

ROLLUP_COLUMNS_DDL = """(
    series INTEGER NOT NULL,
    bucket BIGINT NOT NULL,
    scale TINYINT,
    close_q BIGINT NOT NULL,
    open_d BIGINT NOT NULL,
    high_d BIGINT NOT NULL,
    low_d BIGINT NOT NULL,
    sum_d BIGINT NOT NULL,
    readings INTEGER NOT NULL,
    missing INTEGER NOT NULL,
    open_offset INTEGER,
    close_offset INTEGER
)"""
"""Column list of a rollup table, for CREATE TABLE (`scale` NULL: the row holds float bits)."""

SELECT_COLUMNS = (
    "series, bucket, scale, close_q, open_d, high_d, low_d, sum_d, readings, missing, "
    "open_offset, close_offset"
)
"""Every column, in table order: SELECT this for `decode`."""

_N_SCALES = SCALE_MAX - SCALE_MIN + 1
# q / _MUL[d] * _DIV[d] is q / 10**d for d > 0 and q * 10**-d for d <= 0, each one correctly
# rounded operation (the other factor is 1; 10**k is exact in float64 for k <= 22).
_MUL = np.array([10.0 ** max(d, 0) for d in range(SCALE_MIN, SCALE_MAX + 1)])
_DIV = np.array([10.0 ** max(-d, 0) for d in range(SCALE_MIN, SCALE_MAX + 1)])
_POW = np.array([10.0**d for d in range(SCALE_MIN, SCALE_MAX + 1)])
_EXACT = 2.0**53  # |q| below this is exact in float64, so q / 10**d is correctly rounded
_SUM_NOISE = 1e-6  # how far sum * 10**d may sit from an integer (accumulated rounding)
_SUM_LIMIT = 2.0**60  # bound on |count * high_q|, |count * low_q|: sums stay inside int64


def encode(p: Partials, width_ms: int) -> pa.Table:
    """The rows of `p` (buckets of `width_ms`) as a rollup table's columns (`SELECT_COLUMNS`
    order), for an INSERT.

    Rows keep their order: long runs of one series in time order compress best. Vectorised:
    about 60 ns a row (bench/bench_rollup_encoding.py measures it).
    """
    n = len(p)
    bucket = p.bucket // width_ms
    if n and (bucket * width_ms != p.bucket).any():
        raise ValueError(f"bucket starts are not multiples of the width {width_ms} ms")
    count = p.count.astype(np.int64, copy=False)
    # Readings stacked as close, open, high, low: one pass of each step covers all four.
    x4 = np.stack([p.last, p.first, p.high, p.low])
    empty = np.zeros(n, bool)
    zero = np.flatnonzero(count == 0)
    empty[zero] = np.isnan(x4[:, zero]).all(axis=0) & (p.sum[zero].view(np.int64) == 0)
    scale, y4, y_sum = _choose_scale(x4, p.sum, count, p.series, empty)
    raw = scale == _NO_SCALE
    q4 = y4.astype(np.int64)  # integers below 2**53 where the row has a scale, else 0
    sum_q = y_sum.astype(np.int64)
    if len(zero) and empty.any():
        # No reading: repeat the previous row's close (so that the column's deltas stay small)
        # in all four, so that the differences are 0.
        prev = np.maximum.accumulate(np.where(empty, 0, np.arange(n)))
        q4[:, empty] = q4[0, prev[empty]]
    close_q, open_q, high_q, low_q = q4
    open_d = open_q - close_q
    high_d = high_q - np.maximum(open_q, close_q)
    low_d = np.minimum(open_q, close_q) - low_q
    sum_d = sum_q - ((high_q + low_q) * count >> 1)
    if raw.any():
        bits = x4[:, raw].view(np.int64)
        close_q[raw], open_d[raw], high_d[raw], low_d[raw] = bits
        sum_d[raw] = p.sum[raw].view(np.int64)
    no_ts = count == 0
    return pa.table(
        {
            "series": pa.array(p.series.astype(np.int32, copy=False)),
            "bucket": pa.array(bucket),
            "scale": pa.array(scale.astype(np.int8), mask=raw),
            "close_q": pa.array(close_q),
            "open_d": pa.array(open_d),
            "high_d": pa.array(high_d),
            "low_d": pa.array(low_d),
            "sum_d": pa.array(sum_d),
            "readings": pa.array((count + p.missing).astype(np.int32)),
            "missing": pa.array(p.missing.astype(np.int32)),
            "open_offset": pa.array(_offset(p.first_ts, p.bucket, no_ts), mask=no_ts),
            "close_offset": pa.array(_offset(p.last_ts, p.bucket, no_ts), mask=no_ts),
        }
    )


def decode(columns: Mapping[str, Any] | pa.Table, width_ms: int) -> Partials:
    """`Partials` back from a rollup table's columns (buckets of `width_ms`): what
    `fetchnumpy()` returns for SELECT
    `SELECT_COLUMNS` (NULLable columns come as masked arrays when they hold a NULL), or the
    Arrow table of `.to_arrow_table()`, which DuckDB produces several times faster.

    Vectorised: about 15 ns a row (bench/bench_rollup_encoding.py measures it).
    """
    if isinstance(columns, pa.Table):
        columns = table_columns(columns)
    scale_col = columns["scale"]
    raw = np.ma.getmaskarray(scale_col)
    any_raw = bool(raw.any())
    k = np.ma.getdata(scale_col).astype(np.int64) - SCALE_MIN
    if any_raw:
        k[raw] = 0
    mul, div = _MUL[k], _DIV[k]
    missing = np.asarray(columns["missing"], np.int64)
    count = np.asarray(columns["readings"], np.int64) - missing
    close_q = np.asarray(columns["close_q"], np.int64)
    open_d = np.asarray(columns["open_d"], np.int64)
    high_d = np.asarray(columns["high_d"], np.int64)
    low_d = np.asarray(columns["low_d"], np.int64)
    sum_d = np.asarray(columns["sum_d"], np.int64)
    # Wrapping int64 arithmetic on raw rows gives garbage that `value` replaces.
    open_q = close_q + open_d
    high_q = np.maximum(open_q, close_q) + high_d
    low_q = np.minimum(open_q, close_q) - low_d
    sum_q = sum_d + ((high_q + low_q) * count >> 1)
    empty = np.flatnonzero((count == 0) & ~raw)

    def value(q: I64, bits: I64, if_empty: float) -> F64:
        out: F64 = np.divide(q, mul)
        out *= div
        if any_raw:
            np.copyto(out, bits.view(np.float64), where=raw)
        out[empty] = if_empty
        return out

    bucket = np.asarray(columns["bucket"], np.int64) * width_ms
    return Partials(
        np.asarray(columns["series"], np.int32),
        bucket,
        _timestamp(bucket, columns["open_offset"], NO_TS_FIRST),
        value(open_q, open_d, np.nan),
        _timestamp(bucket, columns["close_offset"], NO_TS_LAST),
        value(close_q, close_q, np.nan),
        value(high_q, high_d, np.nan),
        value(low_q, low_d, np.nan),
        value(sum_q, sum_d, 0.0),
        count,
        missing,
    )


def table_columns(table: pa.Table) -> dict[str, Any]:
    """An Arrow table's columns as `decode` takes them (NULLs as masked arrays).

    >>> table_columns(pa.table({"a": pa.array([1, None])}))["a"].mask.tolist()
    [False, True]
    """
    out: dict[str, Any] = {}
    for name in table.column_names:
        col = table.column(name)
        if col.null_count:
            mask = col.is_null().to_numpy(zero_copy_only=False)
            out[name] = np.ma.masked_array(col.fill_null(0).to_numpy(), mask)
        else:
            out[name] = col.to_numpy()
    return out


_NO_SCALE = SCALE_MIN - 1


def _choose_scale(
    x4: F64, total: F64, count: I64, series: I32, empty: Bool
) -> tuple[I64, F64, F64]:
    """Per row: the scale d (see the module docstring), or _NO_SCALE where none fits; and the
    readings and sum times 10**d (integers as floats; 0 where the row has no scale).

    The search runs on the close alone (a quarter of the work): its smallest fitting d, then
    the most common of those in the row's run. The whole row is checked once at the larger of
    the two; the few rows that fail there go up from the close's d one step at a time. Empty
    rows (no reading) take their run's scale, so that the column stays constant.
    """
    with np.errstate(invalid="ignore", over="ignore"):
        by_close = _smallest_scale(x4[0])
        by_close[count == 0] = _NO_SCALE  # decoded as no reading when scaled: only if so
        mode = _run_mode(by_close, series)
        d = np.maximum(by_close, mode)
        d[by_close == _NO_SCALE] = 0  # any d: these fail on the close
        ok, y4, y_sum = _fits(x4, total, count, d)
        ok &= by_close != _NO_SCALE
        scale = np.where(ok, d, _NO_SCALE)
        # Retry the rest from the close's own d when the run's was larger, else one up.
        rows = np.flatnonzero(~ok & (by_close != _NO_SCALE))
        d = np.where(d[rows] > by_close[rows], by_close[rows], d[rows] + 1)
        while len(rows):
            keep = d <= SCALE_MAX
            rows, d = rows[keep], d[keep]
            ok, y4[:, rows], y_sum[rows] = _fits(x4[:, rows], total[rows], count[rows], d)
            scale[rows[ok]] = d[ok]
            rows, d = rows[~ok], d[~ok] + 1
    no_scale = scale == _NO_SCALE
    y4[:, no_scale] = 0.0
    y_sum[no_scale] = 0.0
    scale[empty] = np.where(mode[empty] == _NO_SCALE, 0, mode[empty])
    return scale, y4, y_sum


def _smallest_scale(x: F64) -> I64:
    """Per value, the smallest d in [SCALE_MIN, SCALE_MAX] with x exactly q / 10**d, or
    _NO_SCALE.

    Tried at 0 first, then down for the values that fit (coarser grids) and up for the others;
    a value on the grid of some d fits every larger d while q * 10**(SCALE_MAX - d) stays
    below 2**50 (x * 10**SCALE_MAX then rounds to it), so one try at SCALE_MAX, after 1, sets
    aside the values off every grid.
    """
    out = np.full(len(x), _NO_SCALE, np.int64)
    at0 = _fits_values(x, 0)[0]
    down = np.flatnonzero(at0)
    out[down] = 0
    for d in range(-1, SCALE_MIN - 1, -1):
        down = down[_fits_values(x[down], d)[0]]
        out[down] = d
    up = np.flatnonzero(~at0)
    for d in range(1, SCALE_MAX + 1):
        if d == 2:
            top = _fits_values(x[up], SCALE_MAX)[0]
            up = up[top | (np.abs(x[up]) * 10.0**SCALE_MAX >= 2.0**50)]
        ok = _fits_values(x[up], d)[0]
        out[up[ok]] = d
        up = up[~ok]
    for d in range(-1, SCALE_MIN - 1, -1):  # too large for 0 (|x| >= 2**53): 1e18 fits at -3
        ok = _fits_values(x[up], d)[0]
        out[up[ok]] = d
        up = up[~ok]
    return out


def _fits_values(x: F64, d: int | I64) -> tuple[Bool, F64]:
    """Whether x is exactly q / 10**d (bit for bit: -0.0 is not 0 / 10**d) with |q| < 2**53,
    and q (as floats)."""
    k = np.asarray(d) - SCALE_MIN
    # 10.0**d is inexact for d < 0, but the product still rounds to q for |q| < 2**51, and a
    # wrong q only fails the check below.
    y = x * _POW[k]
    np.rint(y, out=y)
    y += 0.0  # -0.0 becomes 0.0 (as q = 0 will), which then fails the check
    back = y / _MUL[k] if k.ndim or _MUL[k] != 1 else y.copy()
    if k.ndim or _DIV[k] != 1:
        back *= _DIV[k]
    ok: Bool = back.view(np.int64) == x.view(np.int64)
    ok &= np.less(np.abs(y, out=back), _EXACT)  # also False for NaN and inf
    return ok, y


def _fits(x4: F64, total: F64, count: I64, d: I64) -> tuple[Bool, F64, F64]:
    """Whether whole rows fit scale d (the four readings exactly, the sum within noise of an
    integer, the products of `encode` far inside int64), and readings and sum times 10**d."""
    ok, y4 = _fits_values(x4, d)
    ok4: Bool = np.logical_and.reduce(ok, axis=0)
    y = total * _POW[d - SCALE_MIN]
    y_sum = np.rint(y)
    ok4 &= np.abs(y - y_sum) < _SUM_NOISE
    ok4 &= np.abs(y_sum) < _EXACT
    ok4 &= np.maximum(np.abs(y4[2]), np.abs(y4[3])) * count < _SUM_LIMIT
    return ok4, y4, y_sum


def _run_mode(scale: I64, series: I32) -> I64:
    """Per row, the most common scale (other than _NO_SCALE) among the rows of its run of one
    series; _NO_SCALE for a run without any. Ties go to the larger scale, which fits more.
    Rows not grouped in runs (many short runs) get their own scale back."""
    n = len(scale)
    change = np.empty(n, bool)
    change[:1] = True
    np.not_equal(series[1:], series[:-1], out=change[1:])
    run = np.cumsum(change) - 1
    n_runs = int(run[-1]) + 1 if n else 0
    if n_runs * 16 > n:
        return scale
    width = _N_SCALES + 1
    hits = np.bincount(run * width + (scale - _NO_SCALE), minlength=n_runs * width)
    hits = hits.reshape(n_runs, width)[:, :0:-1]  # drop _NO_SCALE, largest scale first
    best = np.where(hits.max(axis=1) > 0, SCALE_MAX - hits.argmax(axis=1), _NO_SCALE)
    out: I64 = best[run]
    return out


def _offset(ts: I64, bucket: I64, none: Bool) -> I32:
    """ms from the bucket start to `ts` (0 where there is none: masked as NULL)."""
    out: I32 = np.where(none, 0, ts - bucket).astype(np.int32)
    return out


def _timestamp(bucket: I64, offset: Any, none: int) -> I64:
    """bucket + offset, `none` where the offset is NULL."""
    mask = np.ma.getmaskarray(offset)
    out: I64 = np.where(mask, none, bucket + np.ma.getdata(offset).astype(np.int64))
    return out
