"""The Parquet archive's Hive layout: one file per tier, UTC day and metric, partition values
escaped as Spark writes them, nulls for missing values, and a day exported again replaced
rather than doubled."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pyarrow.parquet as pq

from rackwatch.model import Batch, SeriesRegistry
from rackwatch.store.archive import PART, day_files, export_parquet
from rackwatch.store.base import DAY_MS, Query
from rackwatch.store.duckdb import DuckDBStore

T0 = 1_795_392_000_000  # 2026-11-23T00:00:00Z
ODD = "node:load/1=x%"
"""A metric name (Prometheus allows colons) whose characters must be escaped in a path."""


def open_store(path: Path, reg: SeriesRegistry) -> DuckDBStore:
    return DuckDBStore(path, reg, clock=lambda: T0 + 2 * DAY_MS, wal_sync_seconds=0)


def filled(path: Path) -> tuple[DuckDBStore, dict[str, int]]:
    """Two metrics over two UTC days (a reading every minute from 23:00 to 01:00) and one
    NaN reading."""
    reg = SeriesRegistry()
    ids = {m: reg.intern("c01/r01/s01", m) for m in ("power_watts", ODD)}
    store = open_store(path, reg)
    ts = T0 + DAY_MS - 3_600_000 + np.arange(120, dtype=np.int64) * 60_000
    values = np.round(np.linspace(100, 200, 240).reshape(120, 2), 2)
    values[5, 0] = np.nan
    store.write(Batch.from_grid(ts, np.asarray(list(ids.values()), np.int32), values))
    store.flush()
    return store, ids


def test_a_file_per_day_and_metric_that_duckdb_reads_back_as_the_query(tmp_path: Path) -> None:
    store, _ = filled(tmp_path / "store")
    out = tmp_path / "archive"
    try:
        written = export_parquet(store, T0, T0 + 3 * DAY_MS, out, tiers=["raw"])
        result = store.query(Query(T0, T0 + 3 * DAY_MS, tier="raw"))
    finally:
        store.close()
    names = [p.relative_to(out).as_posix() for p in written]
    assert names == [
        f"tier=raw/date={day}/metric={metric}/{PART}"
        for day in ("2026-11-23", "2026-11-24")
        for metric in ("node%3Aload%2F1%3Dx%25", "power_watts")
    ]
    assert not list(out.rglob("*.tmp"))
    table = pq.read_table(written[1])  # power_watts, the first day: the NaN is there
    assert table.column_names == ["series", "entity", "ts", "value"]
    assert table.column("value").null_count == 1
    found = duckdb.execute(
        f"""SELECT metric, entity, ts, value
            FROM read_parquet('{out}/tier=raw/**/*.parquet', hive_partitioning = true)
            ORDER BY metric, ts"""
    ).fetchall()
    expected = sorted(
        (key.metric, key.entity, int(t), None if np.isnan(v) else float(v))
        for key, cols in result
        for t, v in zip(cols["ts"], cols["value"], strict=True)
    )
    assert found == expected and len(found) == 240


def test_a_day_exported_again_is_replaced_not_doubled(tmp_path: Path) -> None:
    store, _ = filled(tmp_path / "store")
    out = tmp_path / "archive"
    try:
        first = export_parquet(store, T0, T0 + 3 * DAY_MS, out, tiers=["1m"])
        again = export_parquet(store, T0, T0 + 3 * DAY_MS, out, tiers=["1m"])
        assert again == first
        # An earlier export had a metric this one lacks: its file of the day goes.
        stale = first[2].parent.parent / "metric=gone" / PART  # on the second day
        stale.parent.mkdir()
        stale.write_bytes(first[0].read_bytes())
        only_day_two = export_parquet(store, T0 + DAY_MS, T0 + 3 * DAY_MS, out, tiers=["1m"])
    finally:
        store.close()
    assert not stale.parent.exists()
    assert [p.parent.parent.name for p in only_day_two] == ["date=2026-11-24"] * 2
    assert day_files(out, "1m", T0) == first[:2]  # a day not in the range is left alone
    n_rows = duckdb.execute(
        f"SELECT count(*), count(DISTINCT (metric, ts)) FROM "
        f"read_parquet('{out}/**/*.parquet', hive_partitioning = true)"
    ).fetchall()
    assert n_rows == [(240, 240)]  # 2 h of minutes of two metrics, each once
