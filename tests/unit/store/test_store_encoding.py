"""Rollup rows as integers: decode(encode(p)) gives p back, and the scales fit the sensors."""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from rackwatch.store import encoding, rollup
from rackwatch.store.rollup import HOUR_MS, MINUTE_MS, NO_TS_FIRST, NO_TS_LAST, Partials

T0 = 1_795_392_000_000
STEP = 5_000
FLOATS = ("first", "last", "high", "low")


def round_trip(p: Partials, width_ms: int = MINUTE_MS) -> Partials:
    """Hourly partials are whole minutes too: one width serves both here."""
    return encoding.decode(encoding.table_columns(encoding.encode(p, width_ms)), width_ms)


def same_floats(got: np.ndarray, want: np.ndarray, name: str) -> None:
    """Equal, NaN equal to NaN, and -0.0 told from 0.0."""
    np.testing.assert_array_equal(got, want, err_msg=name)
    np.testing.assert_array_equal(np.signbit(got), np.signbit(want), err_msg=name)


def assert_same(got: Partials, want: Partials, exact_sum: bool = False) -> None:
    """Field by field; the sum to float noise (decoded as the decimal sum) unless exact_sum."""
    assert len(got) == len(want)
    for name in ("series", "bucket", "first_ts", "last_ts", "count", "missing"):
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name), err_msg=name)
        assert getattr(got, name).dtype == getattr(want, name).dtype, name
    for name in FLOATS:
        same_floats(getattr(got, name), getattr(want, name), name)
    if exact_sum:
        same_floats(got.sum, want.sum, "sum")
    else:
        np.testing.assert_allclose(got.sum, want.sum, rtol=1e-13, atol=1e-9, err_msg="sum")


def samples(
    rng: np.random.Generator,
    n_series: int = 3,
    minutes: int = 90,
    level: float = 40.0,
    sigma: float = 1.0,
    decimals: int | None = 1,
    nan_ratio: float = 0.01,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """5 s readings of random walks, series-major, rounded to `decimals` (None: not at all)."""
    n = minutes * 12
    ts = np.tile(T0 + np.arange(n, dtype=np.int64) * STEP, n_series)
    series = np.repeat(np.arange(n_series, dtype=np.int32), n)
    value = level + np.cumsum(rng.normal(0, sigma, n * n_series))
    if decimals is not None:
        value = np.round(value, decimals) + 0.0  # no -0.0 (it would keep its bits)
    value[rng.random(len(value)) < nan_ratio] = np.nan
    return ts, series, value


def minute_partials(ts: np.ndarray, series: np.ndarray, value: np.ndarray) -> Partials:
    return rollup.partials(ts, series, value, MINUTE_MS)


def scales(p: Partials) -> list[int | None]:
    scale: list[int | None] = encoding.encode(p, MINUTE_MS).column("scale").to_pylist()
    return scale


@pytest.mark.parametrize(
    ("decimals", "level", "sigma"),
    [
        (-2, 5_000, 300),
        (-1, 3_000, 30),
        (0, 300, 3),
        (1, 40, 0.3),
        (2, 5, 0.05),
        (3, 0.5, 0.01),
        (6, 1.5, 1e-5),
    ],
)
def test_grid_data_round_trips_at_its_own_scale(decimals, level, sigma):
    p = minute_partials(
        *samples(np.random.default_rng(decimals + 10), 3, 90, level, sigma, decimals)
    )
    assert_same(round_trip(p), p)
    assert set(scales(p)) == {decimals}


def test_scales_of_sensor_resolutions():
    rng = np.random.default_rng(3)
    temperature = minute_partials(*samples(rng, level=45, sigma=0.2, decimals=1))
    watts = minute_partials(*samples(rng, level=250, sigma=3, decimals=0))
    ts, series, value = samples(rng, level=3500, sigma=20, decimals=None)
    rpm = minute_partials(ts, series, np.round(value, -1))
    assert set(scales(temperature)) == {1}
    assert set(scales(watts)) == {0}
    assert set(scales(rpm)) == {-1}


def test_negative_values_round_trip():
    p = minute_partials(*samples(np.random.default_rng(4), level=-3, sigma=0.5, decimals=2))
    assert (p.low < 0).any() and (p.high > 0).any()  # crosses zero
    assert_same(round_trip(p), p)
    assert set(scales(p)) == {2}


def test_values_off_any_grid_keep_their_bits():
    ts, series, _ = samples(np.random.default_rng(5), nan_ratio=0)
    value = np.random.default_rng(6).random(len(ts)) * 100
    p = minute_partials(ts, series, value)
    assert_same(round_trip(p), p, exact_sum=True)
    assert set(scales(p)) == {None}


def test_mixed_rows_round_trip_and_only_the_odd_ones_lose_their_scale():
    rng = np.random.default_rng(7)
    ts, series, value = samples(rng, n_series=4, nan_ratio=0.02)
    odd = series == 2
    value[odd] = rng.normal(0, 1, odd.sum())  # a whole series off the grid
    odd_rows = (series == 1) & (ts // MINUTE_MS % 7 == 0)
    value[odd_rows] += np.pi * 1e-9  # and some buckets of another (15 decimals)
    odd |= odd_rows
    p = minute_partials(ts, series, value)
    # the buckets that hold an odd reading
    marks = minute_partials(ts, series, np.where(np.isnan(value), np.nan, odd * 1.0))
    off_grid = marks.high == 1.0
    assert 0 < off_grid.sum() < len(p)
    got = round_trip(p)
    assert_same(got, p)
    raw = np.array([s is None for s in scales(p)])
    np.testing.assert_array_equal(raw, off_grid)
    same_floats(got.sum[raw], p.sum[raw], "sum of rows without a scale")


def test_a_sum_off_the_readings_grid_takes_a_finer_scale():
    # open, high, low, close are whole numbers; the sum (1.05 in the middle) is not
    p = minute_partials(
        np.array([0, 5_000, 10_000]), np.zeros(3, np.int32), np.array([1.0, 1.05, 2.0])
    )
    assert scales(p) == [2]
    assert round_trip(p).sum.tolist() == [4.05]


def test_a_bucket_on_a_coarser_grid_keeps_the_scale_of_its_run():
    ts, series, value = samples(np.random.default_rng(8), n_series=1, nan_ratio=0)
    whole = ts // MINUTE_MS % 10 == 3
    value[whole] = 41.0  # every reading of these buckets a whole degree
    p = minute_partials(ts, series, value)
    assert set(scales(p)) == {1}
    single = p.take(np.flatnonzero(p.high == 41.0)[:1])
    assert len(single) == 1 and scales(single) == [0]  # alone, its own smallest scale
    assert_same(round_trip(p), p)


def test_empty_buckets_decode_as_no_reading():
    ts, series, value = samples(np.random.default_rng(9), n_series=2, nan_ratio=0)
    gap = (ts // MINUTE_MS % 10 == 4) | (ts // MINUTE_MS == T0 // MINUTE_MS)  # incl. the first
    value[gap] = np.nan
    p = minute_partials(ts, series, value)
    empty = p.count == 0
    assert empty.sum() > 4 and empty[0]
    got = round_trip(p)
    assert_same(got, p)
    assert np.isnan(got.first[empty]).all() and (got.sum[empty] == 0).all()
    assert (got.first_ts[empty] == NO_TS_FIRST).all() and (got.last_ts[empty] == NO_TS_LAST).all()
    t = encoding.encode(p, MINUTE_MS)
    assert t.column("open_offset").null_count == t.column("close_offset").null_count == empty.sum()
    assert t.column("scale").null_count == 0  # empty rows take the run's scale
    for name in ("open_d", "high_d", "low_d", "sum_d"):
        assert (t.column(name).to_numpy()[empty] == 0).all(), name
    close_q = t.column("close_q").to_numpy()
    inner = np.flatnonzero(empty)[np.flatnonzero(empty) > 0]
    np.testing.assert_array_equal(close_q[inner], close_q[inner - 1])  # repeats the close


def test_rows_with_count_0_but_readings_keep_them():
    # not what rollup makes (count 0 has NaN readings and sum 0), but nothing is lost either
    p = one_per_bucket([1.5, 2.5])
    p = Partials(*(getattr(p, f) for f in rollup._FIELDS[:9]), np.zeros(2, np.int64), p.missing)
    assert scales(p) == [None, None]
    got = round_trip(p)
    for name in (*FLOATS, "sum"):
        same_floats(getattr(got, name), getattr(p, name), name)


@pytest.mark.parametrize("seed", range(5))
def test_random_mixtures_round_trip(seed):
    """Rows drawn from every kind at once, in short runs of a few series."""
    rng = np.random.default_rng(seed)
    n = 4000
    decimals = rng.integers(-4, 12, n)  # some beyond SCALE_MIN..SCALE_MAX
    x = rng.normal(0, 10.0 ** rng.integers(-3, 8, n), (4, n))
    on_grid = rng.random(n) < 0.7
    x[:, on_grid] = np.round(x[:, on_grid] * 10.0 ** decimals[on_grid]) / 10.0 ** decimals[on_grid]
    specials = np.array([-0.0, np.inf, -np.inf, 1e300, 5e-324, 2.0**60])
    pick = rng.random((4, n)) < 0.02
    x[pick] = rng.choice(specials, pick.sum())
    count = rng.integers(1, 800, n)
    empty = rng.random(n) < 0.05
    count[empty] = 0
    high, low = x.max(axis=0), x.min(axis=0)
    with np.errstate(invalid="ignore", over="ignore"):  # inf - inf: a NaN sum, kept too
        total = np.where(rng.random(n) < 0.8, (high + low) / 2 * count, x[0] * 3.3)
    readings = [np.where(empty, np.nan, v) for v in (x[0], x[1], high, low)]
    series = np.repeat(np.arange(n // 100, dtype=np.int32), 100)
    bucket = np.tile(np.arange(100, dtype=np.int64) * MINUTE_MS, n // 100)
    p = Partials(
        series,
        bucket,
        np.where(empty, NO_TS_FIRST, bucket + rng.integers(0, MINUTE_MS, n)),
        readings[0],
        np.where(empty, NO_TS_LAST, bucket + MINUTE_MS - 1),
        readings[1],
        readings[2],
        readings[3],
        np.where(empty, 0.0, total),
        count.astype(np.int64),
        rng.integers(0, 5, n),
    )
    got = round_trip(p)
    raw = np.array([s is None for s in scales(p)])
    assert 0 < raw.sum() < n
    assert_same(got.take(~raw), p.take(~raw))
    assert_same(got.take(raw), p.take(raw), exact_sum=True)


def one_per_bucket(values: list[float]) -> Partials:
    n = len(values)
    ts = np.arange(n, dtype=np.int64) * MINUTE_MS
    return minute_partials(ts, np.zeros(n, np.int32), np.array(values))


@pytest.mark.parametrize(
    "values",
    [
        [1e300, -1e300, 1.7976931348623157e308, 5e-324, 1e-300],
        [1e18, 2e18, -3e18, 9_007_199_254_740_993.0, 2.0**62, 2.0**63, -(2.0**70)],
        [np.inf, -np.inf, 1.0, np.inf],
        [-0.0, 0.0, -0.0, 1.5, -0.0],
    ],
    ids=["huge-and-tiny", "huge-integers", "infinities", "negative-zero"],
)
def test_extreme_values_round_trip_exactly(values):
    p = one_per_bucket(values)
    assert_same(round_trip(p), p, exact_sum=True)


def test_huge_integers_take_a_negative_scale_not_raw_bits():
    p = one_per_bucket([1e18, 2e18, 3e18])
    assert scales(p) == [-3, -3, -3]


def test_negative_zero_keeps_its_sign():
    p = one_per_bucket([-0.0, 0.0])
    got = round_trip(p)
    assert np.signbit(got.first).tolist() == [True, False]
    assert scales(p)[0] is None  # 0 / 10**d would lose the sign


def test_sums_past_2_53_keep_their_bits():
    # whole numbers that fit at scale 0, but 720 of them add up past 2**53, where the sum
    # would no longer be exact as a float64 integer
    value = np.full(720, 13e12 + 1)
    ts = np.arange(720, dtype=np.int64) * STEP
    p = rollup.partials(ts, np.zeros(720, np.int32), value, HOUR_MS)
    assert p.sum[0] > 2.0**53
    assert scales(one_per_bucket([13e12 + 1])) == [0]
    assert scales(p) == [None]
    assert_same(round_trip(p), p, exact_sum=True)


def test_products_that_could_leave_int64_keep_their_bits():
    # count * (high_q + low_q) would pass 2**63 at scale 0
    value = np.full(720, 9e15 + 1)
    p = rollup.partials(np.arange(720) * STEP, np.zeros(720, np.int32), value, HOUR_MS)
    p = Partials(*(getattr(p, f) for f in rollup._FIELDS[:8]), np.zeros(1), p.count, p.missing)
    assert scales(p) == [None]
    assert_same(round_trip(p), p, exact_sum=True)


def test_single_row_and_empty_input():
    p = one_per_bucket([21.5])
    assert_same(round_trip(p), p)
    assert scales(p) == [1]
    empty = rollup.empty()
    t = encoding.encode(empty, MINUTE_MS)
    assert t.num_rows == 0 and t.column_names == column_names()
    assert_same(round_trip(empty), empty)


def column_names() -> list[str]:
    return [c.strip() for c in encoding.SELECT_COLUMNS.split(",")]


def realistic() -> tuple[Partials, Partials]:
    """1 minute partials of three sensors over six hours, and the hourly ones merged from them."""
    rng = np.random.default_rng(11)
    n = 6 * 720
    t = np.arange(n)
    ts = np.tile(T0 + t.astype(np.int64) * STEP, 3)
    heat = 0.5 + 0.3 * np.sin(2 * np.pi * t / n)
    value = np.concatenate(
        [
            np.round(30 + 20 * heat + rng.normal(0, 0.15, n), 1),  # degC
            np.round(150 + 300 * heat + rng.normal(0, 2, n), 0),  # W
            np.round(2000 + 1500 * heat + rng.normal(0, 15, n), -1),  # rpm
        ]
    )
    value[rng.random(len(value)) < 5e-3] = np.nan
    series = np.repeat(np.arange(3, dtype=np.int32), n)
    # split into writes, the way the store folds them, then merged
    cuts = np.sort(rng.choice(len(ts), 9, replace=False))
    pieces = [
        rollup.partials(a, b, c, MINUTE_MS)
        for a, b, c in zip(*(np.split(x, cuts) for x in (ts, series, value)), strict=True)
    ]
    m1 = rollup.combine(rollup.concat(pieces), MINUTE_MS)
    return m1, rollup.combine(m1, HOUR_MS)


def test_real_looking_partials_round_trip_at_both_tiers():
    m1, h1 = realistic()
    assert (m1.missing > 0).any()
    for p, want in ((m1, [1, 0, -1]), (h1, [1, 0, -1])):
        assert_same(round_trip(p), p)
        first_per_series = np.searchsorted(p.series, [0, 1, 2])
        assert [scales(p)[i] for i in first_per_series] == want
        np.testing.assert_allclose(round_trip(p).avg(), p.avg(), rtol=1e-13)


def test_through_duckdb_with_nulls_and_without():
    m1, _ = realistic()
    odd = one_per_bucket([np.pi, 2.5])
    odd = Partials(odd.series + 7, *(getattr(odd, f) for f in rollup._FIELDS[1:]))
    con = duckdb.connect()
    con.execute(f"CREATE TABLE r {encoding.ROLLUP_COLUMNS_DDL}")
    for p in (m1, odd):
        con.register("batch", encoding.encode(p, MINUTE_MS))
        con.execute(f"INSERT INTO r SELECT {encoding.SELECT_COLUMNS} FROM batch")
        con.unregister("batch")
    for where, want in (
        ("series < 7", m1),
        ("series = 7", odd),
        ("true", rollup.concat([m1, odd])),
    ):
        cols = con.execute(f"SELECT {encoding.SELECT_COLUMNS} FROM r WHERE {where}").fetchnumpy()
        assert_same(encoding.decode(cols, MINUTE_MS), want)
        got = con.sql(f"SELECT {encoding.SELECT_COLUMNS} FROM r WHERE {where}").to_arrow_table()
        assert_same(encoding.decode(encoding.table_columns(got), MINUTE_MS), want)
    types = dict(
        con.execute(
            "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = 'r'"
        ).fetchall()
    )
    assert types["close_q"] == "BIGINT" and types["scale"] == "TINYINT"


def test_columns_are_in_table_order():
    con = duckdb.connect()
    con.execute(f"CREATE TABLE r {encoding.ROLLUP_COLUMNS_DDL}")
    names = [
        r[0]
        for r in con.execute(
            "SELECT column_name FROM duckdb_columns() WHERE table_name = 'r' ORDER BY column_index"
        ).fetchall()
    ]
    assert names == column_names() == encoding.encode(one_per_bucket([1.0]), MINUTE_MS).column_names


def test_table_columns_masks_nulls():
    cols = encoding.table_columns(pa.table({"a": pa.array([1, None, 3], pa.int32())}))
    assert cols["a"].mask.tolist() == [False, True, False]
    assert cols["a"].data.dtype == np.int32


def test_buckets_are_stored_in_units_of_their_width():
    _, h1 = realistic()
    t = encoding.encode(h1, HOUR_MS)
    np.testing.assert_array_equal(t.column("bucket").to_numpy(), h1.bucket // HOUR_MS)
    assert_same(encoding.decode(t, HOUR_MS), h1)
    with pytest.raises(ValueError, match="multiples"):
        encoding.encode(one_per_bucket([1.0, 2.0]), HOUR_MS)  # minute buckets are not hours
