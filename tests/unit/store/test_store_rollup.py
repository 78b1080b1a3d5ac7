"""Rollup partials: equal to a plain per-bucket recomputation, whatever the split and order."""

from __future__ import annotations

import numpy as np
import pytest

from rackwatch.store import results, rollup
from rackwatch.store.rollup import HOUR_MS, MINUTE_MS, Partials


def reference(ts, series, value, width):
    """{(series, bucket): (open, high, low, close, avg, count, missing)}, bucket by bucket."""
    out = {}
    bucket = (ts // width) * width
    for key in sorted(set(zip(series.tolist(), bucket.tolist(), strict=True))):
        sel = (series == key[0]) & (bucket == key[1])
        t, v = ts[sel], value[sel]
        order = np.argsort(t, kind="stable")
        t, v = t[order], v[order]
        ok = ~np.isnan(v)
        if ok.any():
            good = v[ok]
            row = (good[0], good.max(), good.min(), good[-1], good.mean(), ok.sum(), (~ok).sum())
        else:
            row = (np.nan, np.nan, np.nan, np.nan, np.nan, 0, len(v))
        out[key] = row
    return out


def as_dict(p: Partials):
    cols = results.rollup_columns(p)
    names = ("open", "high", "low", "close", "avg", "count", "missing")
    return {
        (int(s), int(b)): tuple(cols[n][i] for n in names)
        for i, (s, b) in enumerate(zip(p.series, p.bucket, strict=True))
    }


def assert_same(got, want):
    assert got.keys() == want.keys()
    for key, row in want.items():
        g = got[key]
        np.testing.assert_array_equal(g[:4], row[:4], err_msg=str(key))  # exact: no arithmetic
        np.testing.assert_allclose(g[4], row[4], rtol=1e-12, err_msg=str(key))
        assert g[5:] == row[5:], key


def samples(rng, n=3000, n_series=5, nan_ratio=0.05, shuffle=False):
    ts = np.sort(rng.integers(0, 3 * HOUR_MS, n)).astype(np.int64)
    series = rng.integers(0, n_series, n).astype(np.int32)
    value = np.round(rng.normal(20, 3, n), 1)
    value[rng.random(n) < nan_ratio] = np.nan
    if shuffle:
        perm = rng.permutation(n)
        ts, series, value = ts[perm], series[perm], value[perm]
    return ts, series, value


@pytest.mark.parametrize("width", [MINUTE_MS, HOUR_MS])
@pytest.mark.parametrize("shuffle", [False, True])
def test_partials_equal_recomputation(width, shuffle):
    ts, series, value = samples(np.random.default_rng(1), shuffle=shuffle)
    assert_same(
        as_dict(rollup.partials(ts, series, value, width)), reference(ts, series, value, width)
    )


def test_merging_pieces_equals_the_whole():
    rng = np.random.default_rng(2)
    ts, series, value = samples(rng, shuffle=True)
    cuts = np.sort(rng.choice(len(ts), 7, replace=False))
    pieces = [
        rollup.partials(t, s, v, MINUTE_MS)
        for t, s, v in zip(*(np.split(a, cuts) for a in (ts, series, value)), strict=True)
    ]
    merged = rollup.combine(rollup.concat(pieces[::-1]), MINUTE_MS)  # any order
    assert_same(as_dict(merged), reference(ts, series, value, MINUTE_MS))
    hourly = rollup.combine(merged, HOUR_MS)
    assert_same(as_dict(hourly), reference(ts, series, value, HOUR_MS))


def test_all_nan_bucket_counts_missing_and_has_nan_ohlc():
    ts = np.array([0, 10_000, 60_000], np.int64)
    p = rollup.partials(ts, np.zeros(3, np.int32), np.array([np.nan, np.nan, 5.0]), MINUTE_MS)
    assert p.count.tolist() == [0, 1]
    assert p.missing.tolist() == [2, 0]
    cols = results.rollup_columns(p)
    for name in ("open", "high", "low", "close", "avg"):
        assert np.isnan(cols[name][0]) and cols[name][1] == 5.0


def test_gap_leaves_no_bucket():
    ts = np.array([0, 5 * MINUTE_MS], np.int64)
    p = rollup.partials(ts, np.zeros(2, np.int32), np.array([1.0, 2.0]), MINUTE_MS)
    assert p.bucket.tolist() == [0, 5 * MINUTE_MS]  # nothing invented in between


def test_nan_free_and_nan_paths_agree():
    rng = np.random.default_rng(3)
    ts, series, value = samples(rng, nan_ratio=0.0)
    clean = as_dict(rollup.partials(ts, series, value, MINUTE_MS))
    value2 = value.copy()
    value2[5] = np.nan
    dirty = as_dict(rollup.partials(ts, series, value2, MINUTE_MS))
    assert_same(dirty, reference(ts, series, value2, MINUTE_MS))
    changed = [k for k in clean if clean[k][5] != dirty[k][5]]
    assert len(changed) == 1


def test_negative_timestamps_floor_to_their_bucket():
    ts = np.array([-1, -60_000, -60_001], np.int64)
    p = rollup.partials(ts, np.zeros(3, np.int32), np.ones(3), MINUTE_MS)
    assert p.bucket.tolist() == [-120_000, -60_000]
    assert p.count.tolist() == [1, 2]


def test_from_rows_round_trip():
    rng = np.random.default_rng(4)
    p = rollup.partials(*samples(rng), MINUTE_MS)
    cols = results.rollup_columns(p)
    back = rollup.from_rows(
        p.series, p.bucket, p.first_ts, cols["open"], p.last_ts, cols["close"],
        cols["high"], cols["low"], cols["avg"], p.count, p.missing,
    )  # fmt: skip
    np.testing.assert_allclose(back.sum, p.sum, rtol=1e-12)
    assert back.count.tolist() == p.count.tolist()
