"""The head: chunks sorted by series; flushes take multiples of 2048 oldest samples per series."""

from __future__ import annotations

import numpy as np

from rackwatch.model import Batch
from rackwatch.store.head import GROUP_ROWS, Head, make_chunk, merge, period, select_rows


def grid(n_steps, ids, t0=0):
    ts = t0 + np.arange(n_steps, dtype=np.int64) * 5000
    values = np.arange(n_steps * len(ids), dtype=np.float64).reshape(n_steps, len(ids))
    return Batch.from_grid(ts, ids, values)


def sorted_by_series_ts(chunk):
    key = np.lexsort((chunk.ts, chunk.series))
    return np.array_equal(key, np.arange(len(key)))


def test_grid_is_transposed_into_series_runs():
    b = grid(5, [3, 0, 2])
    chunk = make_chunk(b.ts, b.series, b.value, 4)
    assert chunk.series.tolist() == [0] * 5 + [2] * 5 + [3] * 5
    assert chunk.starts.tolist() == [0, 5, 5, 10, 15]
    assert sorted_by_series_ts(chunk)
    # every sample kept with its own ts and value
    got = set(zip(chunk.ts.tolist(), chunk.series.tolist(), chunk.value.tolist(), strict=True))
    assert got == set(zip(b.ts.tolist(), b.series.tolist(), b.value.tolist(), strict=True))


def test_irregular_rows_are_sorted_stably():
    rng = np.random.default_rng(0)
    n = 500
    ts = np.sort(rng.integers(0, 10_000, n)).astype(np.int64)[::-1].copy()  # reversed time
    series = rng.integers(0, 7, n).astype(np.int32)
    chunk = make_chunk(ts, series, ts.astype(np.float64), 7)
    assert sorted_by_series_ts(chunk)
    assert np.array_equal(chunk.ts.astype(np.float64), chunk.value)


def test_period():
    assert period(np.array([2, 0, 1, 2, 0, 1], np.int32)) == 3
    assert period(np.array([2, 0, 1, 2, 0], np.int32)) == 0
    assert period(np.array([1, 1, 1], np.int32)) == 1
    assert period(np.array([0, 1, 1, 0, 1, 1], np.int32)) == 0  # ids repeat inside a period


def test_split_takes_multiples_of_2048_oldest_rows_per_series():
    head = Head()
    ids = [0, 1, 2]
    counts = {0: 5000, 1: 2047, 2: 4096}
    for t0 in range(0, 5000, 700):
        for s in ids:
            n = max(0, min(700, counts[s] - t0))
            if n:
                b = grid(n, [s], t0=t0 * 5000)
                head.add(make_chunk(b.ts, b.series, b.value, 3))
    order = np.array([2, 0, 1])
    (ts, series, _), kept = head.split(order)
    runs = [(int(s), int(n)) for s, n in zip(*np.unique(series, return_counts=True), strict=True)]
    assert dict(runs) == {0: 4096, 2: 4096}
    assert series[:4096].tolist() == [2] * 4096  # in the order asked
    first0 = series.tolist().index(0)
    assert first0 % GROUP_ROWS == 0
    assert np.array_equal(ts[first0 : first0 + 4096], np.arange(4096) * 5000)  # oldest first
    assert kept.counts.tolist() == [5000 - 4096, 2047, 0]
    assert sorted_by_series_ts(kept)
    assert kept.ts[0] == 4096 * 5000


def test_split_copes_with_samples_out_of_time_order():
    head = Head()
    late = grid(3000, [0], t0=0)
    early = grid(3000, [0], t0=-10_000_000_000)
    head.add(make_chunk(late.ts, late.series, late.value, 1))
    head.add(make_chunk(early.ts, early.series, early.value, 1))
    (ts, _, _), kept = head.split(np.array([0]))
    assert len(ts) == 4096
    assert (np.diff(ts) >= 0).all()
    assert kept.ts.min() >= ts.max()


def test_full_split_takes_everything():
    head = Head()
    b = grid(100, [0, 1])
    head.add(make_chunk(b.ts, b.series, b.value, 2))
    (ts, _, _), kept = head.split(np.array([1, 0]), group=None)
    assert len(ts) == 200 and len(kept) == 0


def test_merge_and_select():
    a, b = grid(10, [0, 1]), grid(10, [0, 1], t0=50_000)
    chunks = [make_chunk(x.ts, x.series, x.value, 2) for x in (a, b)]
    merged = merge(chunks)
    assert sorted_by_series_ts(merged) and len(merged) == 40
    ts, series, _ = select_rows(chunks, np.array([False, True]), 20_000, 60_000)
    assert set(series.tolist()) == {1}
    assert sorted(ts.tolist()) == list(range(20_000, 60_000, 5000))


def test_series_registered_after_older_chunks_split_and_merge_with_them():
    """A source that starts later (an agent's host) adds series while older chunks, made
    with fewer, are still in the head."""
    head = Head()
    before = grid(3000, [0, 1])
    after = grid(3000, [0, 1, 2, 3], t0=3000 * 5000)
    head.add(make_chunk(before.ts, before.series, before.value, 2))
    head.add(make_chunk(after.ts, after.series, after.value, 4))
    (_, series, _), kept = head.split(np.array([3, 2, 1, 0]))
    taken = dict(zip(*np.unique(series, return_counts=True), strict=True))
    assert taken == {0: 4096, 1: 4096, 2: 2048, 3: 2048}
    assert kept.counts.tolist() == [6000 - 4096, 6000 - 4096, 3000 - 2048, 3000 - 2048]
    (all_ts, _, _), rest = head.split(np.arange(4), group=None)
    assert len(all_ts) == 2 * 6000 + 2 * 3000 and len(rest) == 0
    merged = merge(head.chunks)
    assert sorted_by_series_ts(merged) and merged.counts.tolist() == [6000, 6000, 3000, 3000]
