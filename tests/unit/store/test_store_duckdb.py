"""DuckDBStore specifics: aligned flushes, the write-ahead log across crashes, flush policy."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from rackwatch.errors import StoreError
from rackwatch.model import Batch, SeriesRegistry
from rackwatch.store.base import DAY_MS, Query
from rackwatch.store.duckdb import DuckDBStore
from rackwatch.store.head import GROUP_ROWS
from rackwatch.store.wal import generations, read_records, wal_path

T0 = 1_795_392_000_000
STEP = 5_000


def registry_with(n_servers: int) -> tuple[SeriesRegistry, np.ndarray]:
    reg = SeriesRegistry()
    ids = [
        reg.intern(f"c01/r01/s{i:02d}", metric)
        for i in range(n_servers)
        for metric in ("power_watts", "cpu_temperature_celsius", "fan_rpm")
    ]
    return reg, np.asarray(ids, np.int32)


def grid(ids: np.ndarray, start_step: int, n_steps: int, seed: int = 0) -> Batch:
    rng = np.random.default_rng(seed + start_step)
    ts = T0 + (start_step + np.arange(n_steps, dtype=np.int64)) * STEP
    values = np.round(rng.normal(40, 2, (n_steps, len(ids))), 1)
    return Batch.from_grid(ts, ids, values)


def open_store(path: Path, reg: SeriesRegistry, **kw: object) -> DuckDBStore:
    kw.setdefault("clock", lambda: T0 + 2 * DAY_MS)
    kw.setdefault("wal_sync_seconds", 0)
    return DuckDBStore(path, reg, **kw)  # type: ignore[arg-type]


def raw_count(store: DuckDBStore, start: int = T0, end: int = T0 + 30 * DAY_MS) -> int:
    return len(store.query(Query(start, end, tier="raw")))


def test_flushes_write_series_runs_aligned_on_2048_rows(tmp_path):
    reg, ids = registry_with(4)
    store = open_store(tmp_path, reg, flush_rows=3 * 12 * 2048, consolidate_rows=5000)
    for step in range(0, 10_000, 250):
        store.write(grid(ids, step, 250))
    store.close()
    store = open_store(tmp_path, SeriesRegistry())
    runs = store._con.execute(
        """SELECT series, min(rowid) AS first, count(*) AS n FROM (
               SELECT series, rowid, rowid - row_number() OVER (PARTITION BY series ORDER BY rowid)
               AS run FROM raw)
           GROUP BY series, run ORDER BY first"""
    ).fetchall()
    assert runs, "nothing was flushed"
    for series, first, n in runs:
        assert first % GROUP_ROWS == 0 and n % GROUP_ROWS == 0, (series, first, n)
    # within a flush, series go by (metric, entity): one metric's runs share row groups
    keys = reg.keys()
    first_flush = [keys[s] for s, first, _ in runs if first < 12 * 2 * GROUP_ROWS]
    assert first_flush == sorted(first_flush, key=lambda k: (k.metric, k.entity))
    comp = dict(
        store._con.execute(
            """SELECT column_name, string_agg(DISTINCT compression) FROM pragma_storage_info('raw')
               WHERE segment_type != 'VALIDITY' GROUP BY 1"""
        ).fetchall()
    )
    assert comp["ts"] == "BitPacking" and comp["value"] == "ALP"
    store.close()


def runs_of(store: DuckDBStore, table: str) -> list[tuple[int, int, int]]:
    """(series, first rowid, rows) of each run of one series in a table, in table order."""
    return store._con.execute(
        f"""SELECT series, min(rowid) AS first, count(*) AS n FROM (
               SELECT series, rowid, rowid - row_number() OVER (PARTITION BY series ORDER BY rowid)
               AS run FROM {table})
           GROUP BY series, run ORDER BY first"""
    ).fetchall()


def test_minute_rollups_are_written_in_whole_aligned_runs(tmp_path):
    reg, ids = registry_with(3)  # 9 series
    store = open_store(tmp_path, reg, flush_rows=9 * 12 * 1500, consolidate_rows=20_000)
    minutes = 5000
    for step in range(0, minutes * 12, 1200):
        store.write(grid(ids, step, 1200))
    store.close()
    store = open_store(tmp_path, SeriesRegistry())
    runs = runs_of(store, "rollup_1m")
    assert runs, "no whole run was written"
    for series, first, n in runs:
        assert first % GROUP_ROWS == 0 and n % GROUP_ROWS == 0, (series, first, n)
    waiting = int(store._con.execute("SELECT count(*) FROM rollup_1m_recent").fetchall()[0][0])
    # each minute once; the last one is still open (rebuilt from the raw samples on open)
    assert sum(n for _, _, n in runs) + waiting == 9 * (minutes - 1)
    result = store.query(Query(T0, T0 + 30 * DAY_MS, step_ms=60_000))
    assert len(result) == 9 * minutes and set(result["count"].tolist()) == {12}
    store.close()


def test_process_killed_after_write_loses_nothing(tmp_path):
    script = textwrap.dedent(
        f"""
        import os, numpy as np
        from rackwatch.model import Batch, SeriesRegistry
        from rackwatch.store.duckdb import DuckDBStore
        reg = SeriesRegistry()
        ids = [reg.intern("c01/r01/s01", m) for m in ("power_watts", "fan_rpm")]
        store = DuckDBStore({str(tmp_path)!r}, reg, wal_sync_seconds=0, flush_rows=3000,
                            consolidate_rows=100, clock=lambda: {T0 + DAY_MS})
        for i in range(0, 5000, 10):
            ts = {T0} + np.arange(i, i + 10) * 5000
            store.write(Batch.from_grid(ts, ids, np.full((10, 2), float(i))))
        os._exit(3)  # no close, no flush, no atexit
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 3, proc.stderr
    store = open_store(tmp_path, SeriesRegistry())
    result = store.query(Query(T0, T0 + DAY_MS))
    assert len(result) == 10_000
    for _key, rows in result:
        np.testing.assert_array_equal(rows["ts"], T0 + np.arange(5000) * 5000)
    store.close()


def test_flush_that_fails_changes_nothing(tmp_path, monkeypatch):
    reg, ids = registry_with(2)
    store = open_store(tmp_path, reg, flush_rows=10**9)
    store.write(grid(ids, 0, 5000))

    def broken(**_: int) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(store, "_set_meta", broken)
    with pytest.raises(RuntimeError, match="disk on fire"):
        store.flush()
    monkeypatch.undo()
    assert generations(store.wal_dir) == [0]  # the next generation was dropped
    assert raw_count(store) == 30_000
    store.flush()
    store.close()
    store = open_store(tmp_path, SeriesRegistry())
    assert raw_count(store) == 30_000
    store.close()


def test_leftover_log_generations_are_ignored(tmp_path):
    reg, ids = registry_with(1)
    store = open_store(tmp_path, reg, flush_rows=2 * 2048 * 3, consolidate_rows=1000)
    store.write(grid(ids, 0, 3000))
    old_log = wal_path(store.wal_dir, 0).read_bytes()
    store.write(grid(ids, 3000, 3000))  # crosses flush_rows: rotates to generation 1
    assert generations(store.wal_dir) == [1]
    store.close()
    # A crash right after the commit left generation 0 behind; another left an uncommitted 2.
    wal_path(store.wal_dir, 0).write_bytes(old_log)
    wal_path(store.wal_dir, 2).write_bytes(b"RWWAL001" + bytes(8))
    store = open_store(tmp_path, SeriesRegistry())
    assert raw_count(store) == 6000 * 3
    assert generations(store.wal_dir) == [1]
    store.close()


def table_rows(store: DuckDBStore, table: str) -> int:
    return int(store._con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0])


def test_samples_short_of_a_run_wait_in_raw_recent_then_join_aligned_runs(tmp_path):
    reg = SeriesRegistry()
    ids = np.asarray([reg.intern(f"e{i}", "power_watts") for i in range(400)], np.int32)
    store = open_store(tmp_path, reg, flush_rows=20_000, consolidate_rows=4000)
    for step in range(0, 100, 10):  # 40 000 rows, 100 per series: no whole run yet
        store.write(grid(ids, step, 10))
    assert table_rows(store, "raw") == 0 and table_rows(store, "raw_recent") == 40_000
    assert store.stats().n_head_rows == 0  # flushed all the same: memory and log stay small
    read_back: list[int] = []
    read_recent = store._read_recent
    store._read_recent = lambda ids: read_back.append(len(c := read_recent(ids))) or c
    for step in range(100, 2100, 100):  # 2100 per series: one run of 2048 each
        store.write(grid(ids, step, 100))
        assert table_rows(store, "raw") % GROUP_ROWS == 0  # only whole runs, always
    # A flush reads back at most flush_rows waiting samples: the runs form over a few flushes.
    for _ in range(50):
        store.flush()
    assert table_rows(store, "raw") == 400 * GROUP_ROWS
    assert table_rows(store, "raw_recent") == 400 * (2100 - GROUP_ROWS)
    assert read_back and max(read_back) <= 20_000  # bounded by flush_rows: memory stays flat
    assert raw_count(store) == 2100 * 400
    store.close()
    assert [p.stat().st_size for p in store.wal_dir.glob("*.wal")] == [16]  # an empty log
    store = open_store(tmp_path, SeriesRegistry())
    assert raw_count(store) == 2100 * 400
    store.close()


def test_the_head_is_flushed_when_it_is_old(tmp_path):
    reg, ids = registry_with(1)
    store = open_store(tmp_path, reg, flush_rows=10**9, flush_seconds=0.05)
    store.write(grid(ids, 0, 10))
    assert store.stats().n_head_rows == 30
    time.sleep(0.1)
    store.write(grid(ids, 10, 10))  # the head is older than flush_seconds: it goes
    assert store.stats().n_head_rows == 0 and table_rows(store, "raw_recent") == 60
    assert store.stats().log_bytes == 16
    store.close()


def test_retention_also_drops_old_samples_from_the_head(tmp_path):
    reg, ids = registry_with(1)
    store = open_store(tmp_path, reg, flush_rows=10**9)
    store.write(grid(ids, 0, 100))
    store.write(grid(ids, 8 * 17_280, 100))  # 8 days later
    now = T0 + 8 * DAY_MS + DAY_MS // 2
    deleted = store.apply_retention(now)
    assert deleted["raw"] == 300
    assert raw_count(store) == 300
    store.close()
    store = open_store(tmp_path, SeriesRegistry())
    assert raw_count(store) == 300
    assert len(store.query(Query(T0, T0 + DAY_MS, step_ms=60_000))) == 3 * 9  # rollups kept
    store.close()


def test_series_added_later_are_persisted(tmp_path):
    reg, ids = registry_with(1)
    store = open_store(tmp_path, reg)
    store.write(grid(ids, 0, 10))
    new = reg.intern("room/crac1", "crac_power_watts")
    store.write(Batch.of([T0], [new], [5000.0]))
    store.close()
    fresh = SeriesRegistry()
    store = open_store(tmp_path, fresh)
    assert fresh.keys() == reg.keys()
    assert store.latest("room/**").value.tolist() == [5000.0]
    store.close()


def test_a_source_that_starts_later_is_flushed_with_the_first_ones(tmp_path):
    """An agent's host registers its series while the twin's are in the head: flushes (and
    the last one at close) take both, whole runs and the rest."""
    reg, ids = registry_with(1)
    store = open_store(tmp_path, reg, consolidate_rows=1000)  # a head chunk per write
    store.write(grid(ids, 0, 3000))
    host = np.asarray([reg.intern("host/web1", "uptime_seconds")], np.int32)
    store.write(grid(np.concatenate([ids, host]), 3000, 3000))
    store.flush()
    store.write(grid(np.concatenate([ids, host]), 6000, 100))
    store.close()
    store = open_store(tmp_path, SeriesRegistry())
    assert raw_count(store) == 3 * 6100 + 3100
    assert len(store.query(Query(T0, T0 + 30 * DAY_MS, entity="host/**", tier="raw"))) == 3100
    store.close()


def test_stats_and_sizes(tmp_path):
    reg, ids = registry_with(2)
    store = open_store(tmp_path, reg, flush_rows=6 * 2048)
    store.write(grid(ids, 0, 5000))
    store.checkpoint()
    stats = store.stats()
    assert stats.n_series == 6
    assert stats.n_raw_rows + stats.n_head_rows == 30_000
    assert table_rows(store, "raw") % GROUP_ROWS == 0
    assert stats.n_rollup_1m_rows > 0 and stats.n_rollup_1h_rows > 0
    assert stats.bytes_on_disk >= os.path.getsize(store.db_path)
    assert stats.used_bytes > 0
    store.close()


def test_closing_twice_and_opening_a_bad_directory(tmp_path):
    reg, _ = registry_with(1)
    store = open_store(tmp_path / "a", reg)
    store.close()
    store.close()
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match="cannot open the store"):
        open_store(tmp_path / "file", SeriesRegistry())


def test_a_directory_is_open_by_one_store_at_a_time(tmp_path):
    reg, _ = registry_with(1)
    store = open_store(tmp_path, reg)
    with pytest.raises(StoreError, match="already open"):
        open_store(tmp_path, SeriesRegistry())
    with pytest.raises(StoreError, match="already open"):
        open_store(tmp_path / "rackwatch.duckdb", SeriesRegistry())  # the same, by file
    store.close()
    open_store(tmp_path, SeriesRegistry()).close()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "rackwatch-wal",
        "rackwatch.duckdb",
        "rackwatch.lock",
    ]


@pytest.mark.parametrize("step", [None, 60_000])
def test_a_flush_during_a_query_is_not_seen_twice(tmp_path, monkeypatch, step):
    reg, ids = registry_with(2)
    store = open_store(tmp_path, reg, flush_rows=10**9)
    store.write(grid(ids, 0, 5000))
    expected = store.query(Query(T0, T0 + DAY_MS, step_ms=step))
    inner = store._query_raw if step is None else store._query_rollup

    def flush_meanwhile(*args: object) -> object:
        # The query has taken its snapshot and released the lock: another thread flushes now.
        t = threading.Thread(target=store.flush)
        t.start()
        t.join()
        return inner(*args)

    monkeypatch.setattr(store, "_query_raw" if step is None else "_query_rollup", flush_meanwhile)
    got = store.query(Query(T0, T0 + DAY_MS, step_ms=step))
    assert store.stats().n_raw_rows > 0  # the flush did move rows
    np.testing.assert_array_equal(got.ts, expected.ts)
    np.testing.assert_array_equal(got.offsets, expected.offsets)
    store.close()


def test_flush_moves_everything_and_writing_goes_on(tmp_path):
    reg, ids = registry_with(2)
    store = open_store(tmp_path, reg, flush_rows=10**9)
    store.write(grid(ids, 0, 3000))
    store.flush()
    assert store.stats().n_head_rows == 0 and store.stats().n_raw_rows == 18_000
    store.write(grid(ids, 3000, 3000))
    store.close()
    store = open_store(tmp_path, SeriesRegistry())
    assert raw_count(store) == 36_000
    assert len(store.query(Query(T0, T0 + DAY_MS, step_ms=3_600_000))) == 6 * 9
    store.close()


def test_background_sync_writes_the_log_out(tmp_path):
    reg, ids = registry_with(1)
    store = open_store(tmp_path, reg, wal_sync_seconds=0.02)
    store.write(grid(ids, 0, 10))
    log = wal_path(store.wal_dir, 0)
    deadline = time.monotonic() + 5
    while not list(read_records(log)) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [len(r.ts) for r in read_records(log)] == [30]
    store.close()


def test_tiers_hold_data_until_a_retention_run_drops_it(tmp_path):
    reg, ids = registry_with(1)
    now = T0 + 30 * DAY_MS  # a dataset for a past period
    store = open_store(tmp_path, reg, clock=lambda: now)
    store.write(grid(ids, 0, 1000))
    assert store.query(Query(T0, now)).tier.value == "raw"  # still there: answered from raw
    store.apply_retention(now)
    assert store.query(Query(T0, now)).tier.value == "1m"
    store.close()
    store = open_store(tmp_path, SeriesRegistry(), clock=lambda: now)
    assert store.query(Query(T0, now)).tier.value == "1m"  # the cut is remembered
    store.close()


def test_writes_still_work_after_stats_and_retention(tmp_path):
    # Regression: a result read with fetchone() stays unfinished in DuckDB 2.0, and the next
    # write on that connection (events, a flush) was refused: `rackwatch run` lost the events
    # written after the first GET /api/v1/status.
    from rackwatch.model import Event

    reg, ids = registry_with(1)
    store = open_store(tmp_path, reg)
    store.write(grid(ids, 0, 10))
    store.stats()
    store.write_events([Event(ts=T0, kind="fault.injected", entity="c01/r01/s01")])
    store.apply_retention(T0 + DAY_MS)
    store.write_events([Event(ts=T0 + DAY_MS, kind="fault.injected", entity="c01/r01/s01")])
    assert len(store.events(0, 2**62)) == 2
    store.close()


def test_replaying_a_log_that_repeats_flushed_values_stores_each_instant_once(tmp_path):
    import gc

    reg, ids = registry_with(2)
    store = open_store(tmp_path, reg, flush_rows=10**9)
    first = grid(ids, 0, 300)
    store.write(first)
    store.flush()  # the first values are in the tables
    again = grid(ids, 0, 600, seed=7)  # the same 300 instants with other values, and 300 new
    store.write(again)  # only in the log (and memory) when the process dies
    del store
    gc.collect()
    store = open_store(tmp_path, SeriesRegistry())
    assert store.n_duplicates == 300 * len(ids)
    result = store.query(Query(T0, T0 + DAY_MS))
    assert len(result) == 600 * len(ids)
    for i, (_key, rows) in enumerate(result):
        np.testing.assert_array_equal(rows["value"][:300], first.value.reshape(300, -1)[:, i])
        np.testing.assert_array_equal(rows["value"][300:], again.value.reshape(600, -1)[300:, i])
    minutes = store.query(Query(T0, T0 + DAY_MS, step_ms=60_000))
    assert set(minutes["count"].tolist()) == {12}  # 5 s samples: 12 a minute, never 24
    store.close()


def test_store_files_are_private(tmp_path):
    reg, ids = registry_with(1)
    data_dir = tmp_path / "data"
    store = open_store(data_dir, reg)
    store.write(grid(ids, 0, 10))
    store.flush()
    store.close()
    assert data_dir.stat().st_mode & 0o777 == 0o700
    files = list(data_dir.rglob("*"))
    assert files, "the store wrote nothing"
    for path in files:
        mode = path.stat().st_mode & 0o777
        assert mode == (0o700 if path.is_dir() else 0o600), (path, oct(mode))
