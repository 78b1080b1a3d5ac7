"""Exact medians in bounded memory: the narrowing passes give DuckDB's own median."""

from __future__ import annotations

import numpy as np
import pytest

from rackwatch.engine.reports import medians, scope, stats
from rackwatch.model import Batch, SeriesRegistry
from rackwatch.store.duckdb import DuckDBStore

T0 = 1_772_668_800_000  # 2026-03-05 00:00 UTC
END = T0 + 86_400_000


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    registry = SeriesRegistry()
    store = DuckDBStore(
        tmp_path_factory.mktemp("medians"), registry, clock=lambda: END, wal_sync_seconds=0
    )
    rng = np.random.default_rng(4)
    ts, ids, values = [], [], []
    for i in range(4):
        for metric in ("cpu_utilization_ratio", "power_watts"):
            series = registry.intern(f"c01/r01/s0{i}", metric)
            minutes = rng.choice(1440, size=300 + 7 * i, replace=False)
            raw = rng.integers(0, 40, size=len(minutes)) * 0.025  # many ties
            if metric == "power_watts":
                raw = rng.normal(300, 50, size=len(minutes))
            ts += list(T0 + minutes * 60_000)
            ids += [series] * len(minutes)
            values += list(raw)
    store.write(Batch(np.asarray(ts), np.asarray(ids, np.int32), np.asarray(values)))
    yield store, registry
    store.close()


def expected(store) -> dict[str, float]:
    q = store.query(stats_query())
    out: dict[str, list[float]] = {}
    for key, rows in q:
        out.setdefault(key.metric, []).extend(rows["avg"].tolist())
    return {m: float(np.median(v)) for m, v in out.items()}


def stats_query():
    from rackwatch.store.base import Query

    return Query(T0, END, metrics=["cpu_utilization_ratio", "power_watts"], step_ms=60_000)


@pytest.mark.parametrize("fetch_limit", [1, 10, 500, 2_000_000])
def test_narrowing_gives_the_exact_median(store, fetch_limit):
    store, registry = store
    selection = scope.select((i, k.entity, k.metric) for i, k in enumerate(registry.keys()))
    table = selection.table()
    with store.analytics() as sql:
        sql.register("report_series", table)
        found = stats.per_series(sql, "m1", T0, END)
        where = stats._where(T0, END)
        direct = medians.direct(sql, "m1", where)
        ranges: dict[str, tuple[int, float, float]] = {}
        for i, series in enumerate(found.series):
            metric = registry.keys()[int(series)].metric
            n, lo, hi = ranges.get(metric, (0, np.inf, -np.inf))
            ranges[metric] = (
                n + int(found.n_buckets[i]),
                min(lo, found.min_avg[i]),
                max(hi, found.max_avg[i]),
            )
        narrowed = medians.narrowed(sql, "m1", where, ranges, fetch_limit=fetch_limit)
    assert narrowed == direct == pytest.approx(expected(store), rel=0, abs=0)
    assert set(narrowed) == {"cpu_utilization_ratio", "power_watts"}


def test_every_value_equal_is_answered_without_fetching():
    assert medians.narrowed(None, "m1", "true", {"x": (5, 2.5, 2.5)}) == {"x": 2.5}  # type: ignore[arg-type]
