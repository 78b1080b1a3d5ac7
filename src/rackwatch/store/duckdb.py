"""DuckDBStore: the embedded store, one DuckDB file plus a write-ahead log in the data directory.

Write path (`write`): append the batch to the write-ahead log (buffered; synced every
`wal_sync_seconds` by a background thread) and queue it; every `consolidate_rows` queued rows
are sorted by series into a head chunk, samples that repeat an instant already held are
dropped (first write wins, see dedup.py), and the rest is folded into the in-memory 1-minute
and 1-hour rollup buckets. When the head holds `flush_rows` samples or its oldest was written
`flush_seconds` ago, it goes to the tables in one transaction: per series, whole runs of 2048
samples (with what waited in `raw_recent`) to `raw`, the rest to `raw_recent`; closed 1-minute
buckets likewise to `rollup_1m` and `rollup_1m_recent`; the log starts a new, empty
generation. Closed 1-hour buckets are written once they span `rollup_batch_ms` (each series'
hours then form a run). Samples older than the stored rollups (late data) are merged into them
at once. Queries read the tables and the in-memory head and buckets together.

Threads: writes, flushes and state snapshots take one lock; each reading thread gets its own
DuckDB cursor, and reads the tables in a transaction begun under that lock, so a query never
sees a flush half done.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import numpy.typing as npt
import pyarrow as pa

from rackwatch.errors import StoreError, StoreLocked
from rackwatch.model import Batch, Event, SeriesRegistry
from rackwatch.store import analytics, archive, dedup, encoding, records, results, rollup
from rackwatch.store.base import (
    DAY_MS,
    RAW_COLUMNS,
    EntityRecord,
    Latest,
    Query,
    QueryResult,
    Retention,
    StoreStats,
    StoreUsage,
    Tier,
    choose_tier,
    parse_tier,
)
from rackwatch.store.head import GROUP_ROWS, Chunk, Head, in_whole_runs, make_chunk, select_rows
from rackwatch.store.inventory import overlay
from rackwatch.store.rollup import F64, HOUR_MS, I32, I64, MINUTE_MS
from rackwatch.store.schema import DDL, META_DEFAULTS, ROLLUP_TABLES, SCHEMA_VERSION
from rackwatch.store.tierstate import TierState
from rackwatch.store.wal import (
    Record,
    WriteAheadLog,
    generations,
    read_records,
    wal_path,
)

log = logging.getLogger(__name__)

DB_FILE = "rackwatch.duckdb"
_NO_TS = -(2**63)

Array = npt.NDArray[Any]


def _wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


class DuckDBStore:
    """The embedded Store (see the module docstring).

    `path` is the data directory (created private, 0700, if missing), or a `*.duckdb` file in
    it; beside the database file go `<stem>-wal/` (the log of the head) and `<stem>.lock`.
    `registry` is the process' series registry: the store loads its persisted series into it
    (ids stay stable across restarts) and persists series added to it later.

    `flush_rows` and `flush_seconds` bound the head, in memory and in the log (about 20 bytes a
    sample, and as much again, reused, for flushing): it is flushed when it holds that many
    samples or its oldest was written that long ago (wall clock; None: size only).
    `consolidate_rows` is the batch size of the sort, duplicate and rollup work;
    `rollup_batch_ms` how much closed 1-hour buckets wait in memory to be written as a run per
    series (a restart rebuilds them from the 1-minute rows); `wal_sync_seconds` is the most a
    crash may lose (0: every write is fsynced before it returns); `lateness_ms` keeps a rollup
    bucket open that much past its end; `clock` (ms) decides which tiers a query range is still
    retained in; `duckdb_config` goes to DuckDB. Queries and writes may come from any thread.
    """

    def __init__(
        self,
        path: Path | str,
        registry: SeriesRegistry,
        *,
        flush_rows: int = 16_000_000,
        flush_seconds: float | None = 60.0,
        consolidate_rows: int = 262_144,
        rollup_batch_ms: int = DAY_MS,
        retention: Retention | None = None,
        wal_sync_seconds: float = 1.0,
        lateness_ms: int = 0,
        clock: Callable[[], int] = _wall_clock_ms,
        duckdb_config: Mapping[str, str | int | bool] | None = None,
    ) -> None:
        if flush_rows <= 0 or consolidate_rows <= 0:
            raise StoreError("flush_rows and consolidate_rows must be positive")
        if flush_seconds is not None and not flush_seconds > 0:
            raise StoreError(f"flush_seconds must be positive or None, got {flush_seconds}")
        given = Path(path)
        # A data directory, or the database file itself (then its siblings hold the rest).
        self.db_path = given if given.suffix == ".duckdb" else given / DB_FILE
        self.path = self.db_path.parent
        self.wal_dir = self.path / f"{self.db_path.stem}-wal"
        """The write-ahead log of the head (DuckDB keeps its own `<db>.wal` beside the file)."""
        self._registry = registry
        self._index = results.SeriesIndex()
        self._flush_rows = flush_rows
        self._flush_seconds = flush_seconds
        self._consolidate_rows = consolidate_rows
        self._rollup_batch_ms = rollup_batch_ms
        self.retention = retention or Retention()
        self._clock = clock
        self._lock = threading.RLock()
        self._local = threading.local()
        self._cursors: list[duckdb.DuckDBPyConnection] = []
        self._closed = False
        self.n_duplicates = 0
        """Samples dropped since open because their series already had a value at that instant."""
        self.n_expired = 0
        """Samples dropped since open because raw retention had already dropped their time."""
        try:
            private_dir(self.path)
            private_dir(self.wal_dir)
        except OSError as exc:
            raise StoreError(f"cannot open the store in {self.path}: {exc}") from exc
        # Released on close, or when the store is garbage-collected without a close.
        lock = self.path / f"{self.db_path.stem}.lock"
        self._release_dir = weakref.finalize(self, os.close, _lock_directory(lock))
        try:
            _check_version(self.db_path)
            config: dict[str, Any] = {**_DUCKDB_DEFAULTS, **(duckdb_config or {})}
            self._con = duckdb.connect(str(self.db_path), config=config)
        except (duckdb.Error, StoreError) as exc:
            self._release_dir()
            if isinstance(exc, StoreError):
                raise
            raise StoreError(f"cannot open the store in {self.path}: {exc}") from exc
        try:
            _make_private(self.db_path)
            self._open(lateness_ms, wal_sync_seconds)
        except BaseException:
            self._con.close()
            self._release_dir()
            raise
        self._syncer_stop = threading.Event()
        if wal_sync_seconds > 0:
            _start_syncer(self, wal_sync_seconds, self._syncer_stop)

    def _open(self, lateness_ms: int, sync_seconds: float) -> None:
        """Schema, series, and the in-memory state rebuilt from the tables and the log."""
        self._create_schema()
        meta = self._read_meta()
        self._seq = max(meta["seq"], meta["late_seq"])
        self._late_seq = meta["late_seq"]
        self._n_persisted = self._load_series()
        self._persist_series()
        self._rank_cache: tuple[int, npt.NDArray[np.intp]] = (-1, np.empty(0, np.intp))

        self._head = Head()
        self._head_since: float | None = None
        """When the oldest write still in the head arrived (time.monotonic)."""
        self._pending: list[tuple[int, Batch]] = []
        self._pending_rows = 0
        self._watermark = _NO_TS
        self._m1 = TierState(MINUTE_MS, meta["f1m"], lateness_ms)
        self._h1 = TierState(HOUR_MS, meta["f1h"], lateness_ms)
        self._recovering = False
        self._kept_from = {t: meta[f"kept_{t.value}"] for t in Tier}
        self._recent_counts = self._load_counts("raw_recent")
        self._recent_1m = self._load_counts("rollup_1m_recent")
        self._load_latest()
        self._recover(meta["wal_gen"], sync_seconds)

    # ------------------------------------------------------------------ setup and recovery

    def _create_schema(self) -> None:
        with self._lock:
            for ddl in DDL:
                self._con.execute(ddl)
            for key, value in META_DEFAULTS.items():
                self._con.execute(
                    "INSERT INTO meta VALUES (?, ?) ON CONFLICT DO NOTHING", [key, value]
                )

    def _read_meta(self) -> dict[str, int]:
        rows = self._con.execute("SELECT key, value FROM meta").fetchall()
        return {str(k): int(v) for k, v in rows}

    def _load_series(self) -> int:
        rows = self._con.execute("SELECT id, entity, metric FROM series ORDER BY id").fetchall()
        for sid, entity, metric in rows:
            got = self._registry.intern(entity, metric)
            if got != sid:
                raise StoreError(
                    f"the series registry gives id {got} to ({entity}, {metric}) but the store "
                    f"in {self.path} has it as {sid}: open the store before interning series, "
                    "or pass an empty registry"
                )
        return len(rows)

    def _persist_series(self) -> None:
        keys = self._registry.keys()
        if len(keys) <= self._n_persisted:
            return
        new = keys[self._n_persisted :]
        table = pa.table(
            {
                "id": pa.array(np.arange(self._n_persisted, len(keys), dtype=np.int32)),
                "entity": pa.array([k.entity for k in new], pa.string()),
                "metric": pa.array([k.metric for k in new], pa.string()),
            }
        )
        self._insert("series", table)
        self._n_persisted = len(keys)

    def _load_counts(self, table: str) -> I64:
        """Rows per series in a table of rows waiting for a whole run."""
        cols = self._con.execute(
            f"SELECT series, count(*) AS n FROM {table} GROUP BY series"
        ).fetchnumpy()
        counts = np.zeros(len(self._registry), np.int64)
        counts[np.asarray(cols["series"], np.int64)] = np.asarray(cols["n"], np.int64)
        return counts

    def _load_latest(self) -> None:
        """The newest stored instant and value of each series (NO_TS where none)."""
        cols = self._con.execute("SELECT series, ts, value FROM latest").fetchnumpy()
        n = len(self._registry)
        self._latest_ts = np.full(n, _NO_TS, np.int64)
        self._latest_value = np.full(n, np.nan)
        self._latest_dirty = np.zeros(n, bool)
        series = np.asarray(cols["series"], np.int64)
        self._latest_ts[series] = np.asarray(cols["ts"], np.int64)
        self._latest_value[series] = np.asarray(cols["value"], np.float64)

    def _recover(self, gen: int, sync_seconds: float) -> None:
        """Rebuild the open rollup buckets from the tables, then replay the log into the head."""
        wal_dir = self.wal_dir
        f1m, f1h = self._m1.flushed_to, self._h1.flushed_to
        # Samples stored whose minute is not in rollup_1m yet (they wait for a run of buckets).
        ts, series, value = self._fetch_raw("ts >= ?", [f1m])
        if len(ts):
            order = rollup.sort_order(series, ts)
            if order is not None:
                ts, series, value = ts[order], series[order], value[order]
            self._fold_rollups(make_chunk(ts, series, value, len(self._registry)), int(ts.max()))
        # Minutes in rollup_1m whose hour is not in rollup_1h yet (up to `rollup_batch_ms` of
        # them: read a range of series at a time, so memory holds hours, not minutes).
        span = f1m - f1h if f1h > _NO_TS and f1m > _NO_TS else self._rollup_batch_ms
        span = min(max(span, MINUTE_MS), 2 * self._rollup_batch_ms)
        n = len(self._registry)
        per_read = max(1, _READ_ROWS * MINUTE_MS // max(span, MINUTE_MS))
        hours = []
        for lo in range(0, n, per_read):
            where = (
                _buckets_in(MINUTE_MS, f1h, f1m)
                + f" AND series BETWEEN {lo} AND {lo + per_read - 1}"
            )
            hours.append(rollup.combine(self._fetch_rollup_partials("rollup_1m", where), HOUR_MS))
        stored = rollup.concat(hours)
        if len(stored):
            self._h1.add(stored, self._watermark)
        for other in generations(wal_dir):  # older ones, or one whose flush never committed
            if other != gen:
                wal_path(wal_dir, other).unlink(missing_ok=True)
        for tmp in wal_dir.glob("*.tmp"):
            tmp.unlink(missing_ok=True)
        records = read_records(wal_path(wal_dir, gen)) if wal_path(wal_dir, gen).exists() else ()
        self._wal = WriteAheadLog(wal_dir, gen, sync_seconds=sync_seconds)
        # No flush until the whole log is replayed: a flush starts a new log.
        self._recovering = True
        for record in records:
            self._seq = max(self._seq, record.seq)
            self._replay(record)
        self._consolidate()
        self._recovering = False
        if self._head.n_rows:
            self._head_since = time.monotonic()
        self._maybe_flush()

    def _replay(self, record: Record) -> None:
        n_series = len(self._registry)
        if len(record.ts) and int(record.series.max()) >= n_series:
            raise StoreError(
                f"the write-ahead log names series id {int(record.series.max())} but the store "
                f"knows {n_series} series: the log does not belong to this database"
            )
        batch = Batch(record.ts, record.series, record.value)
        if record.seq <= self._late_seq:  # its late samples were merged before the crash
            batch = batch.take(batch.ts >= self._m1.flushed_to)
        self._pending.append((record.seq, batch))
        self._pending_rows += len(batch)
        if self._pending_rows >= self._consolidate_rows:
            self._consolidate()

    # ------------------------------------------------------------------ writing

    def write(self, batch: Batch) -> None:
        """Store samples (any order; NaN is a NULL reading). They are visible to queries at
        once and durable within `wal_sync_seconds`. A sample for an instant its series already
        has is dropped (the first value stays; `n_duplicates`), as is one older than what raw
        retention keeps (`n_expired`). The store keeps references to the batch's arrays for a
        while: do not modify them after the call. Costs a few µs plus, amortised, ~0.1 µs a
        sample."""
        if not len(batch):
            return
        with self._lock:
            self._check_open()
            n_series = len(self._registry)
            if n_series > self._n_persisted:
                self._persist_series()
            # One pass validates ids: a negative id becomes huge as uint32.
            if int(batch.series.view(np.uint32).max()) >= n_series:
                bad = batch.series[(batch.series < 0) | (batch.series >= n_series)][0]
                raise StoreError(
                    f"batch names series id {int(bad)}, unknown to the registry ({n_series} "
                    "series): intern series in the registry given to the store"
                )
            self._seq += 1
            self._wal.append(self._seq, batch.ts, batch.series, batch.value)
            now = time.monotonic()
            if self._head_since is None:
                self._head_since = now
            self._pending.append((self._seq, batch))
            self._pending_rows += len(batch)
            if self._pending_rows >= self._consolidate_rows:
                self._consolidate()
            elif self._flush_seconds is not None and now - self._head_since >= self._flush_seconds:
                self._consolidate()
                self._maybe_flush()

    def _consolidate(self) -> None:
        """Sort queued batches into a head chunk, drop repeated instants, fold the rest into
        the rollup buckets."""
        if not self._pending:
            return
        pending, self._pending, self._pending_rows = self._pending, [], 0
        last_seq = pending[-1][0]
        batch = Batch.concat([b for _, b in pending])
        if not len(batch):
            return
        self._grow_series_state()
        chunk = self._first_writes(
            make_chunk(batch.ts, batch.series, batch.value, len(self._registry))
        )
        if not len(chunk):
            return
        f1m = self._m1.flushed_to
        if int(chunk.ts.min()) < f1m:
            late = chunk.ts < f1m
            self._merge_late(chunk.take(late), last_seq)
            chunk = chunk.take(~late)
            if not len(chunk):
                return
        self._head.add(chunk)
        self._update_latest(chunk)
        self._fold_rollups(chunk, int(chunk.ts.max()))
        self._maybe_flush()

    def _first_writes(self, chunk: Chunk) -> Chunk:
        """The chunk without the samples whose instant is already held (in it, in the head,
        in the tables) or older than what raw retention keeps."""
        drop = dedup.repeats_within(chunk)
        cut = self._kept_from[Tier.RAW]
        expired = (chunk.ts < cut) & ~drop if cut > _NO_TS else None
        suspect = dedup.suspects(chunk, self._latest_ts) & ~drop
        if expired is not None:
            suspect &= ~expired
        if suspect.any():
            at = np.flatnonzero(suspect)
            series, ts = chunk.series[at], chunk.ts[at]
            held = dedup.found_in(self._head.chunks, series, ts)
            rest = np.flatnonzero(~held)
            if len(rest):
                held[rest] = self._stored(series[rest], ts[rest])
            drop[at[held]] = True
        n_dup = int(drop.sum())
        n_expired = int(expired.sum()) if expired is not None else 0
        if not n_dup and not n_expired:
            return chunk
        self.n_duplicates += n_dup
        self.n_expired += n_expired
        if expired is not None:
            drop |= expired
        return chunk.take(~drop)

    def _stored(self, series: I32, ts: I64) -> npt.NDArray[np.bool_]:
        """Which (series, ts) pairs the raw tables hold."""
        keys = pa.table({"i": pa.array(np.arange(len(ts))), "series": series, "ts": ts})
        lo, hi = int(ts.min()), int(ts.max())
        self._con.register("_suspects", keys)
        try:
            found = self._con.execute(
                f"""SELECT k.i FROM _suspects k SEMI JOIN (
                        SELECT series, ts FROM raw WHERE ts BETWEEN {lo} AND {hi}
                        UNION ALL
                        SELECT series, ts FROM raw_recent WHERE ts BETWEEN {lo} AND {hi}
                    ) r ON k.series = r.series AND k.ts = r.ts"""
            ).fetchnumpy()["i"]
        finally:
            self._con.unregister("_suspects")
        out = np.zeros(len(ts), bool)
        out[np.asarray(found, np.int64)] = True
        return out

    def _maybe_flush(self) -> None:
        """Flush once the head holds `flush_rows` samples, or its oldest write is
        `flush_seconds` old."""
        if self._recovering or not (self._head.n_rows or self._pending_rows):
            return
        aged = (
            self._flush_seconds is not None
            and self._head_since is not None
            and time.monotonic() - self._head_since >= self._flush_seconds
        )
        if aged or self._head.n_rows >= self._flush_rows:
            self._consolidate()
            self._flush()

    def _grow_series_state(self) -> None:
        """Per-series arrays sized for every series of the registry."""
        n = len(self._registry)
        grow = n - len(self._latest_ts)
        if grow > 0:
            self._latest_ts = np.append(self._latest_ts, np.full(grow, _NO_TS, np.int64))
            self._latest_value = np.append(self._latest_value, np.full(grow, np.nan))
            self._latest_dirty = np.append(self._latest_dirty, np.zeros(grow, bool))
        grow = n - len(self._recent_counts)
        if grow > 0:
            self._recent_counts = np.append(self._recent_counts, np.zeros(grow, np.int64))
            self._recent_1m = np.append(self._recent_1m, np.zeros(grow, np.int64))

    def _fold_rollups(self, chunk: Chunk, max_ts: int) -> None:
        self._watermark = max(self._watermark, max_ts)
        p1m = rollup.partials(chunk.ts, chunk.series, chunk.value, MINUTE_MS, ordered=True)
        self._m1.add(p1m, self._watermark)
        self._h1.add(rollup.combine(p1m, HOUR_MS), self._watermark)

    def _update_latest(self, chunk: Chunk) -> None:
        self._grow_series_state()
        has = np.flatnonzero(chunk.counts)
        last = chunk.starts[has + 1] - 1
        newer = chunk.ts[last] > self._latest_ts[has]
        changed = has[newer]
        self._latest_ts[changed] = chunk.ts[last[newer]]
        self._latest_value[changed] = chunk.value[last[newer]]
        self._latest_dirty[changed] = True

    def _merge_late(self, late: Chunk, seq: int) -> None:
        """Samples older than the stored rollups: into `raw_recent` and merged into the rollup
        rows, in one transaction that also records `seq` so that a replay does not merge them
        twice."""
        p1m = rollup.partials(late.ts, late.series, late.value, MINUTE_MS, ordered=True)
        p1h = rollup.combine(p1m, HOUR_MS)
        stored_hours = p1h.bucket < self._h1.flushed_to
        self._update_latest(late)
        with self._transaction():
            self._merge_into("rollup_1m", p1m)
            self._merge_into("rollup_1h", p1h.take(stored_hours))
            self._insert_raw("raw_recent", late.ts, late.series, late.value)
            persisted = self._persist_latest()
            self._set_meta(late_seq=seq)
        self._latest_dirty[persisted] = False
        self._late_seq = seq
        self._recent_counts[: len(late.counts)] += late.counts
        self._recent_1m = self._load_counts("rollup_1m_recent")  # rows moved: count again
        self._h1.add(p1h.take(~stored_hours), self._watermark)

    def _merge_into(self, table: str, p: rollup.Partials) -> None:
        if not len(p):
            return
        width = _WIDTH[table]
        keys = pa.table({"series": pa.array(p.series), "bucket": pa.array(p.bucket // width)})
        self._con.register("_late_keys", keys)
        try:
            stored = self._fetch_rollup_partials(
                table,
                "EXISTS (SELECT 1 FROM _late_keys k "
                "WHERE k.series = t.series AND k.bucket = t.bucket)",
            )
            for part in _PARTS[table]:
                self._con.execute(
                    f"DELETE FROM {part} t USING _late_keys k "
                    "WHERE t.series = k.series AND t.bucket = k.bucket"
                ).fetchall()
        finally:
            self._con.unregister("_late_keys")
        merged = rollup.combine(rollup.concat([stored, p]), width)
        # Merged minutes wait with the others for a whole run (they may have left one).
        self._insert_rollup(_PARTS[table][-1], merged)

    # ------------------------------------------------------------------ flushing

    def flush(self) -> None:
        """Move everything held in memory to the tables (samples, and the closed rollup
        buckets), and sync the log: the database file alone is then complete."""
        with self._lock:
            self._check_open()
            self._consolidate()
            self._last_flush()
            self._wal.sync()

    def _last_flush(self) -> None:
        """A flush before a pause (close, or the end of a bulk load): written by the commit's
        checkpoint rather than straight to new blocks as it is inserted, so that it fills the
        space earlier flushes freed instead of leaving it empty in the file (a little slower:
        once is fine)."""
        self._con.execute("SET enable_optimistic_write = false")
        self._con.execute("SET checkpoint_threshold = '1KB'")  # commit = checkpoint, no WAL
        try:
            self._flush(rollups=True)
        finally:
            self._con.execute("RESET enable_optimistic_write")
            self._con.execute("RESET checkpoint_threshold")

    def _series_order(self) -> npt.NDArray[np.intp]:
        """Series ids by (metric, entity): rows of one metric share a row group, so DuckDB's
        per-row-group choice of ALP parameters fits all of them."""
        n = len(self._registry)
        if self._rank_cache[0] != n:
            keys = self._registry.keys()
            order = sorted(range(n), key=lambda i: (keys[i].metric, keys[i].entity))
            self._rank_cache = (n, np.asarray(order, dtype=np.intp))
        return self._rank_cache[1]

    def _hours_due(self) -> bool:
        """Closed 1-hour buckets are written once they span `rollup_batch_ms` or are many:
        each series' hours then go in as a run, which compresses."""
        h1 = self._h1
        return (
            h1.closed_to - h1.flushed_to >= self._rollup_batch_ms
            or h1.n_closed_rows >= self._consolidate_rows
        )

    def _flush(self, rollups: bool | None = None) -> None:
        """The head to the tables in one transaction; the log then starts empty.

        Per series, whole runs of 2048 samples go to `raw`, with the samples that waited in
        `raw_recent` (they are few: fewer than 2048 a series), and the rest waits there. The
        closed 1-minute buckets likewise (`rollup_1m`, `rollup_1m_recent`), except that the
        rows waiting there move only once they make whole runs themselves: there are more of
        them (a run is 34 hours of minutes), and moving rows leaves free space in the file
        (reused by later writes, but not by the flush that frees it). The closed 1-hour
        buckets when `rollups` (None: when due).
        """
        self._grow_series_state()
        order = self._series_order()
        n = len(self._registry)
        rank = np.empty(len(order), np.int64)
        rank[order] = np.arange(len(order))
        recent = self._recent_counts
        head = np.zeros(n, np.int64)
        head_counts = self._head.counts()
        head[: len(head_counts)] = head_counts
        due = _pick_due(recent, head, self._flush_rows)
        older = self._read_recent(due) if len(due) else None
        (ts, series, value), kept = self._head.split(order, GROUP_ROWS, older)
        by_metric = np.argsort(rank[kept.series], kind="stable")  # compresses better
        if rollups is None:
            rollups = self._hours_due()
        m1_runs, m1_rest, m1_cuts = self._minute_runs(self._m1.closed(), rank)
        h1 = self._h1.closed() if rollups else rollup.empty()
        if not len(ts) + len(kept) + sum(map(len, m1_runs)) + len(m1_rest) + len(h1):
            self._head_since = None
            return
        next_wal = self._wal.start_next([])
        try:
            with self._transaction():
                if len(due):
                    self._con.execute(
                        "DELETE FROM raw_recent WHERE true" + _series_filter(due, n)
                    ).fetchall()
                self._insert_raw("raw", ts, series, value)
                self._insert_raw(
                    "raw_recent", kept.ts[by_metric], kept.series[by_metric], kept.value[by_metric]
                )
                self._delete_through("rollup_1m_recent", "bucket", m1_cuts)
                for runs in m1_runs:  # each a whole number of runs per series
                    self._insert_rollup("rollup_1m", runs)
                self._insert_rollup("rollup_1m_recent", m1_rest)
                self._insert_rollup("rollup_1h", _by_rank(h1, rank))
                persisted = self._persist_latest()
                self._set_meta(
                    wal_gen=next_wal.gen,
                    f1m=self._m1.closed_to,
                    f1h=self._h1.closed_to if rollups else self._h1.flushed_to,
                    seq=self._seq,
                )
        except BaseException:
            next_wal.discard()
            raise
        self._latest_dirty[persisted] = False
        old, self._wal = self._wal, next_wal
        old.discard()
        self._head.replace(make_chunk(*_EMPTY_ROWS, 0))
        self._head_since = None
        recent[due] = 0
        recent += np.bincount(kept.series, minlength=n)
        self._recent_1m -= m1_cuts.counts(n)
        self._recent_1m += np.bincount(m1_rest.series, minlength=n)
        self._m1.flushed()
        if rollups:
            self._h1.flushed()

    def _read_recent(self, ids: I32) -> Chunk:
        """The samples of series `ids` waiting in `raw_recent`, sorted by (series, ts)."""
        n = len(self._registry)
        ts, series, value = self._fetch_raw_table("raw_recent", "true" + _series_filter(ids, n))
        order = rollup.sort_order(series, ts)
        if order is not None:
            ts, series, value = ts[order], series[order], value[order]
        return make_chunk(ts, series, value, n)

    def _minute_runs(
        self, m1: rollup.Partials, rank: npt.NDArray[np.int64]
    ) -> tuple[list[rollup.Partials], rollup.Partials, _Cuts]:
        """Closed 1-minute buckets split as the raw samples are: whole runs of 2048 rows per
        series (the oldest whole runs waiting in `rollup_1m_recent`, then the new rows'), the
        rest of the new rows, and where the waiting rows moved end. Rows come by (rank of
        series, bucket), as they are written."""
        n = len(self._registry)
        m1 = _by_rank(m1, rank)
        new_runs = in_whole_runs(m1.series)
        runs = [m1.take(new_runs)]
        rest = m1.take(~new_runs)
        # A rollup row takes about 4 times the memory of a sample (and is copied more): read
        # back fewer.
        due = _pick_due(self._recent_1m, self._recent_1m, self._flush_rows // 8)
        if not len(due):
            return runs, rest, _Cuts.none()
        older = self._fetch_rollup_table(
            "rollup_1m_recent", "true" + _series_filter(due, n), MINUTE_MS
        )
        older = older.take(np.lexsort((older.bucket, older.series)))
        older = older.take(in_whole_runs(older.series))
        cuts = _Cuts.of(older.series, older.bucket // MINUTE_MS)
        return [_by_rank(older, rank), *runs], rest, cuts

    def _delete_through(self, table: str, column: str, cuts: _Cuts) -> None:
        """Delete the rows of each series up to its cut (inclusive): the runs just moved."""
        if not len(cuts.series):
            return
        self._con.register("_cuts", pa.table({"series": cuts.series, "through": cuts.through}))
        try:
            self._con.execute(
                f"DELETE FROM {table} t USING _cuts c "
                f"WHERE t.series = c.series AND t.{column} <= c.through"
            ).fetchall()
        finally:
            self._con.unregister("_cuts")

    def _persist_latest(self) -> npt.NDArray[np.intp]:
        """The newest instant of the series that changed since it was last persisted, into
        `latest`; returns their ids (the caller marks them clean once its transaction commits).
        """
        changed: npt.NDArray[np.intp] = np.flatnonzero(self._latest_dirty)
        if not len(changed):
            return changed
        table = pa.table(
            {
                "series": pa.array(changed.astype(np.int32)),
                "ts": pa.array(self._latest_ts[changed]),
                "value": pa.array(self._latest_value[changed]),
            }
        )
        self._con.register("_latest", table)
        try:
            self._con.execute("INSERT OR REPLACE INTO latest SELECT * FROM _latest").fetchall()
        finally:
            self._con.unregister("_latest")
        return changed

    # ------------------------------------------------------------------ database helpers

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._con.execute("BEGIN TRANSACTION")
        try:
            yield
        except BaseException:
            self._con.execute("ROLLBACK")
            raise
        self._con.execute("COMMIT")

    def _insert(self, table: str, data: pa.Table) -> None:
        name = f"_insert_{table}"
        self._con.register(name, data)
        try:
            cols = ", ".join(data.column_names)
            self._con.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {name}")
        finally:
            self._con.unregister(name)

    def _insert_raw(self, table: str, ts: I64, series: I32, value: F64) -> None:
        if len(ts):
            self._insert(table, pa.table({"series": series, "ts": ts, "value": value}))

    def _insert_rollup(self, table: str, p: rollup.Partials) -> None:
        if len(p):
            self._insert(table, encoding.encode(p, _WIDTH[table]))

    def _set_meta(self, **values: int) -> None:
        for key, value in values.items():
            self._con.execute("UPDATE meta SET value = ? WHERE key = ?", [value, key])

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        """This thread's own connection to the database (DuckDB connections are not shared)."""
        cur: duckdb.DuckDBPyConnection | None = getattr(self._local, "cursor", None)
        if cur is None:
            with self._lock:
                self._check_open()
                cur = self._con.cursor()
                self._cursors.append(cur)
            self._local.cursor = cur
        return cur

    def _begin_read(self) -> duckdb.DuckDBPyConnection:
        """Begin a read transaction on this thread's cursor and pin its snapshot now. Called
        with the lock held, so the tables it sees agree with the in-memory state taken in the
        same block; the caller ends it."""
        cur = self._cursor()
        cur.execute("BEGIN TRANSACTION")
        cur.execute("SELECT count(*) FROM meta").fetchall()  # DuckDB snapshots on first read
        return cur

    def _fetch_raw(
        self, where: str, params: Sequence[Any] = (), con: duckdb.DuckDBPyConnection | None = None
    ) -> tuple[I64, I32, F64]:
        """Raw samples matching `where` from both raw tables (`raw` first)."""
        t = (con or self._con).execute(
            f"""SELECT series, ts, value FROM raw WHERE {where}
                UNION ALL SELECT series, ts, value FROM raw_recent WHERE {where}""",
            [*params, *params],
        )
        return _raw_columns(t.fetchnumpy())

    def _fetch_raw_table(self, table: str, where: str) -> tuple[I64, I32, F64]:
        t = self._con.execute(f"SELECT series, ts, value FROM {table} WHERE {where}")
        return _raw_columns(t.fetchnumpy())

    def _fetch_rollup_partials(
        self,
        table: str,
        where: str,
        con: duckdb.DuckDBPyConnection | None = None,
    ) -> rollup.Partials:
        """Rows of a tier (`rollup_1m`: with `rollup_1m_recent`; `rollup_1h`) matching `where`
        (on `t`; `bucket` is in units of the tier's width: see `_buckets_in`), decoded."""
        selects = [
            f"SELECT {encoding.SELECT_COLUMNS} FROM {part} t WHERE {where}"
            for part in _PARTS[table]
        ]
        got = (con or self._con).sql(" UNION ALL ".join(selects)).to_arrow_table()
        return encoding.decode(got, _WIDTH[table])  # Arrow: several times faster than numpy

    def _fetch_rollup_table(self, table: str, where: str, width_ms: int) -> rollup.Partials:
        got = self._con.sql(f"SELECT {encoding.SELECT_COLUMNS} FROM {table} t WHERE {where}")
        return encoding.decode(got.to_arrow_table(), width_ms)

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"the store in {self.path} is closed; open a new DuckDBStore")

    # ------------------------------------------------------------------ reading

    def _match(self, entity: str, metrics: str | Sequence[str] | None) -> I32:
        """Ids of the series matching the globs, from an index that follows the registry."""
        self._index.follow(self._registry)
        return self._index.select(entity, metrics)

    def query(self, q: Query) -> QueryResult:
        """Rows of the matched series in [start_ms, end_ms) from the tier the query names or
        `choose_tier` picks; rebucketed when the step is coarser than the tier's buckets."""
        tier = (
            parse_tier(q.tier)
            if q.tier is not None
            else choose_tier(q.step_ms, q.start_ms, self._clock(), self.retention, self._kept_from)
        )
        ids = self._match(q.entity, q.metrics)
        keys = self._registry.keys()  # after: every id matched is in it
        series_sql = _series_filter(ids, len(keys))
        if tier is Tier.RAW:
            where = f"ts >= {int(q.start_ms)} AND ts < {int(q.end_ms)}" + series_sql
        else:
            where = _buckets_in(tier.width_ms, q.start_ms, q.end_ms) + series_sql
        wanted = np.zeros(len(keys), bool)
        wanted[ids] = True
        rebucket = (
            q.step_ms is not None
            and q.step_ms > tier.width_ms
            and (tier is Tier.RAW or q.step_ms % tier.width_ms == 0)
        )
        chunks: list[Chunk] = []
        state = rollup.empty()
        with self._lock:
            self._check_open()
            self._consolidate()
            cur = self._begin_read()
            if tier is Tier.RAW:
                chunks = list(self._head.chunks)
            else:
                state = (self._m1 if tier is Tier.M1 else self._h1).snapshot()
        # The read transaction is pinned and the state taken: read without the lock.
        try:
            if tier is Tier.RAW:
                result = self._query_raw(cur, where, chunks, wanted, q, rebucket)
            else:
                result = self._query_rollup(cur, tier, where, state, wanted, q, rebucket)
        finally:
            cur.execute("ROLLBACK")  # a read: nothing to commit, and fine after an error
        series, ts, columns, bucket_ms = result
        return results.assemble(tier, bucket_ms, keys, ids, series, ts, columns)

    def _query_raw(
        self,
        cur: duckdb.DuckDBPyConnection,
        where: str,
        chunks: list[Chunk],
        wanted: npt.NDArray[np.bool_],
        q: Query,
        rebucket: bool,
    ) -> tuple[I32, I64, dict[str, Array], int]:
        ts, series, value = self._fetch_raw(where, con=cur)
        h_ts, h_series, h_value = select_rows(chunks, wanted, q.start_ms, q.end_ms)
        series, ts, (value,) = results.group_by_series(
            np.concatenate([series, h_series]),
            np.concatenate([ts, h_ts]),
            [np.concatenate([value, h_value])],
        )
        if rebucket and q.step_ms is not None:
            p = rollup.partials(ts, series, value, q.step_ms, ordered=True)
            return p.series, p.bucket, results.rollup_columns(p), q.step_ms
        return series, ts, {RAW_COLUMNS[0]: value}, 0

    def _query_rollup(
        self,
        cur: duckdb.DuckDBPyConnection,
        tier: Tier,
        where: str,
        state: rollup.Partials,
        wanted: npt.NDArray[np.bool_],
        q: Query,
        rebucket: bool,
    ) -> tuple[I32, I64, dict[str, Array], int]:
        table = ROLLUP_TABLES[tier.value]
        known = state.series < len(wanted)  # a series interned after the query matched
        pick = np.zeros(len(state), bool)
        pick[known] = wanted[state.series[known]]
        mem = state.take(pick & (state.bucket >= q.start_ms) & (state.bucket < q.end_ms))
        stored = self._fetch_rollup_partials(table, where, con=cur)
        if rebucket and q.step_ms is not None:
            p = rollup.combine(rollup.concat([stored, mem]), q.step_ms)
            return p.series, p.bucket, results.rollup_columns(p), q.step_ms
        stored_cols, mem_cols = results.rollup_columns(stored), results.rollup_columns(mem)
        names = list(mem_cols)
        series, ts, cols = results.group_by_series(
            np.concatenate([stored.series, mem.series]),
            np.concatenate([stored.bucket, mem.bucket]),
            [np.concatenate([stored_cols[k], mem_cols[k]]) for k in names],
        )
        return series, ts, dict(zip(names, cols, strict=True)), tier.width_ms

    def latest(self, entity: str = "**", metrics: str | Sequence[str] | None = None) -> Latest:
        """Newest row per matched series among the raw samples kept (NaN if it was a NULL)."""
        ids = self._match(entity, metrics)
        keys = self._registry.keys()
        with self._lock:
            self._check_open()
            self._consolidate()
            self._grow_series_state()
            n = len(keys)
            ts = self._latest_ts[:n].copy()
            value = self._latest_value[:n].copy()
        has = ids[ts[ids] != _NO_TS]
        return Latest(tuple(keys[int(i)] for i in has), has, ts[has], value[has])

    @contextmanager
    def analytics(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-only SQL session on one consistent snapshot of the 1-minute and 1-hour
        tiers, the buckets still in memory included: the views `series_keys`, `m1`, `h1`,
        `m1_named` and `h1_named` of store/analytics.py. Aggregate in SQL; the session ends
        (its transaction rolled back) when the block exits."""
        with self._lock:
            self._check_open()
            self._consolidate()
            cur = self._begin_read()
            m1, h1 = self._m1.snapshot(), self._h1.snapshot()
            keys = self._registry.keys()
        try:
            analytics.define_macros(cur)
            cur.register("_memory_1m", analytics.memory_table(m1))
            cur.register("_memory_1h", analytics.memory_table(h1))
            cur.register(
                "series_keys",
                analytics.keys_table([k.entity for k in keys], [k.metric for k in keys]),
            )
            for tier, table in (("m1", "rollup_1m"), ("h1", "rollup_1h")):
                width = _WIDTH[table]
                memory = "_memory_1m" if tier == "m1" else "_memory_1h"
                cur.execute(analytics.tier_view(tier, _PARTS[table], width, memory))
                cur.execute(analytics.named_view(f"{tier}_named", tier))
            yield cur
        finally:
            cur.execute("ROLLBACK")
            for name in ("_memory_1m", "_memory_1h", "series_keys"):
                cur.unregister(name)

    # ------------------------------------------------------------------ events and inventory

    def write_events(self, events: Sequence[Event]) -> None:
        """Store `events`; one already stored (the same instant, kind, entity, severity,
        end and attributes: a bus message delivered again) is not stored twice."""
        table = records.events_table(events)
        if not table.num_rows:
            return
        lo, hi = min(int(e.ts) for e in events), max(int(e.ts) for e in events)
        with self._lock:
            self._check_open()
            self._con.register("_new_events", table)
            try:
                self._con.execute(records.insert_new_events_sql("_new_events"), [lo, hi])
            finally:
                self._con.unregister("_new_events")

    def events(
        self,
        start_ms: int,
        end_ms: int,
        entity: str = "**",
        kinds: Sequence[str] | None = None,
        newest: int | None = None,
    ) -> list[Event]:
        """Events overlapping [start_ms, end_ms) (an event without end_ts is an instant),
        whose entity matches the glob and whose kind is in `kinds` (None: all), by ts; with
        `newest`, only that many, the newest first."""
        self._check_open()
        return records.read_events(self._cursor(), start_ms, end_ms, entity, kinds, newest)

    def upsert_inventory(self, entities: Sequence[EntityRecord]) -> None:
        """Write each entity over the stored one: a declared part survives a discovered
        write (`store.inventory.overlay`)."""
        if not entities:
            return
        with self._lock:
            self._check_open()
            paths = list(dict.fromkeys(e.path for e in entities))
            held = {r.path: r for r in records.read_inventory(self._con, paths)}
            merged: dict[str, EntityRecord] = {}
            for entity in entities:
                merged[entity.path] = overlay(
                    merged.get(entity.path, held.get(entity.path)), entity
                )
            rows = records.inventory_rows(list(merged.values()))
            self._con.executemany("INSERT OR REPLACE INTO inventory VALUES (?, ?, ?)", rows)

    def remove_inventory(self, paths: Sequence[str]) -> None:
        if not paths:
            return
        with self._lock:
            self._check_open()
            self._con.executemany("DELETE FROM inventory WHERE path = ?", [(p,) for p in paths])

    def inventory(self) -> list[EntityRecord]:
        self._check_open()
        return records.read_inventory(self._cursor())

    # ------------------------------------------------------------------ housekeeping

    def apply_retention(self, now_ms: int) -> dict[str, int]:
        """Delete rows older than each tier's retention before `now_ms`; return the rows
        deleted per tier. Later writes older than the raw cut are dropped (`n_expired`).

        Rows that the in-memory buckets still need (raw from `f1m`, 1-minute rows from `f1h`)
        are kept whatever their age, so that a restart can rebuild those buckets.
        """
        with self._lock:
            self._check_open()
            self._consolidate()
            if now_ms - self.retention.raw_ms > self._m1.flushed_to:
                # Closed buckets wait to be written as runs; write them now, or raw samples
                # past the cut must stay to rebuild them after a restart.
                self._flush(rollups=True)
            cut_raw = min(now_ms - self.retention.raw_ms, self._m1.flushed_to)
            cut_1m = min(now_ms - self.retention.m1_ms, self._h1.flushed_to)
            cut_1h = now_ms - self.retention.h1_ms
            cuts = {Tier.RAW: cut_raw, Tier.M1: cut_1m, Tier.H1: cut_1h}
            kept = {t: max(self._kept_from[t], cut) for t, cut in cuts.items()}
            tables = {
                "raw": f"ts < {cut_raw}",
                "raw_recent": f"ts < {cut_raw}",
                "latest": f"ts < {cut_raw}",  # a series with nothing left has no newest instant
                "rollup_1m": _buckets_in(MINUTE_MS, _NO_TS, cut_1m),
                "rollup_1m_recent": _buckets_in(MINUTE_MS, _NO_TS, cut_1m),
                "rollup_1h": _buckets_in(HOUR_MS, _NO_TS, cut_1h),
            }
            deleted: dict[str, int] = {}
            with self._transaction():
                for table, where in tables.items():
                    # fetchall, not fetchone: DuckDB refuses other work on a connection whose
                    # result was not read to the end (register() then raises).
                    rows = self._con.execute(f"DELETE FROM {table} WHERE {where}").fetchall()
                    deleted[table] = int(rows[0][0]) if rows else 0
                self._set_meta(**{f"kept_{t.value}": v for t, v in kept.items()})
            self._kept_from = kept
            if deleted["raw_recent"]:
                self._recent_counts = self._load_counts("raw_recent")
            if deleted["rollup_1m_recent"]:
                self._recent_1m = self._load_counts("rollup_1m_recent")
            gone = self._latest_ts < cut_raw
            self._latest_ts[gone] = _NO_TS
            self._latest_value[gone] = np.nan
            if any(deleted.values()):
                self._checkpoint_if_idle()  # gives the deleted rows' space back
            return {
                Tier.RAW.value: deleted["raw"] + deleted["raw_recent"],
                Tier.M1.value: deleted["rollup_1m"] + deleted["rollup_1m_recent"],
                Tier.H1.value: deleted["rollup_1h"],
            }

    def export_parquet(
        self,
        start_ms: int,
        end_ms: int,
        out_dir: Path,
        tiers: Sequence[Tier | str] = (Tier.RAW, Tier.M1, Tier.H1),
    ) -> list[Path]:
        """Write the range to Parquet, one file per tier and UTC day (see archive.py)."""
        return archive.export_parquet(self, start_ms, end_ms, Path(out_dir), tiers)

    def usage(self) -> StoreUsage:
        return StoreUsage(
            bytes_on_disk=store_disk_bytes(self.db_path),
            log_bytes=sum(_size(f) for f in self.wal_dir.glob("*.wal")),
            n_head_rows=self._head.n_rows,
            n_duplicates=self.n_duplicates,
            n_expired=self.n_expired,
        )

    def stats(self) -> StoreStats:
        with self._lock:
            self._check_open()
            self._consolidate()
            cur = self._con
            counts = {
                t: int(cur.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0])
                for t in (
                    "raw",
                    "raw_recent",
                    "rollup_1m",
                    "rollup_1m_recent",
                    "rollup_1h",
                    "events",
                )
            }
            size = cur.execute("SELECT block_size, used_blocks FROM pragma_database_size()")
            block_size, used_blocks = size.fetchall()[0]
            log_bytes = sum(_size(f) for f in self.wal_dir.glob("*.wal"))
            return StoreStats(
                n_series=len(self._registry),
                n_raw_rows=counts["raw"] + counts["raw_recent"],
                n_head_rows=self._head.n_rows,
                n_rollup_1m_rows=counts["rollup_1m"] + counts["rollup_1m_recent"],
                n_rollup_1h_rows=counts["rollup_1h"],
                n_events=counts["events"],
                bytes_on_disk=store_disk_bytes(self.db_path),
                used_bytes=int(block_size) * int(used_blocks),
                log_bytes=log_bytes,
                n_duplicates=self.n_duplicates,
                n_expired=self.n_expired,
            )

    def sync(self) -> None:
        """Make every write so far durable (the log is fsynced); runs every wal_sync_seconds."""
        with self._lock:
            if not self._closed:
                self._wal.sync()

    def _checkpoint_if_idle(self) -> None:
        """CHECKPOINT now unless a query holds a transaction open (DuckDB then refuses); its
        automatic checkpoints do it later."""
        try:
            self._con.execute("CHECKPOINT")
        except duckdb.Error as exc:
            log.debug("checkpoint deferred: %s", exc)

    def checkpoint(self) -> None:
        """Write DuckDB's own log into the database file (sizes are then final)."""
        with self._lock:
            self._check_open()
            self._con.execute("CHECKPOINT")

    def close(self) -> None:
        """Move everything held in memory to the tables and close: the log is left empty."""
        self._syncer_stop.set()
        with self._lock:
            if self._closed:
                return
            try:
                self._consolidate()
                self._last_flush()
            finally:
                self._wal.close()
                for cur in self._cursors:
                    cur.close()
                self._con.close()
                self._release_dir()
                self._closed = True

    def __enter__(self) -> DuckDBStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _lock_directory(lock: Path) -> int:
    """Take the store for this object alone (two writers would corrupt the log); the lock
    lasts as long as the returned descriptor is open."""
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise StoreLocked(
            f"the store in {lock.parent} is already open (in this process or another one): "
            "close it first, or use another data directory"
        ) from None
    return fd


def store_disk_bytes(path: Path | str) -> int:
    """Bytes on disk of the store in `path` (a data directory or its `*.duckdb` file): the
    database, DuckDB's own log and the head's log."""
    given = Path(path)
    db_path = given if given.suffix == ".duckdb" else given / DB_FILE
    wal_dir = db_path.with_name(f"{db_path.stem}-wal")
    files = [db_path, db_path.with_name(db_path.name + ".wal"), *wal_dir.glob("*.wal")]
    return sum(_size(f) for f in files)


def remove_store(path: Path | str) -> bool:
    """Delete the store in `path` (a data directory or its `*.duckdb` file): the database,
    its logs and its lock, nothing else. StoreError if it is open; False if there was none."""
    given = Path(path)
    db_path = given if given.suffix == ".duckdb" else given / DB_FILE
    lock = db_path.with_name(f"{db_path.stem}.lock")
    wal_dir = db_path.with_name(f"{db_path.stem}-wal")
    if not db_path.exists() and not wal_dir.exists():
        return False
    fd = _lock_directory(lock)  # refuses while a store (of any process) has it open
    try:
        for f in (db_path, db_path.with_name(db_path.name + ".wal")):
            f.unlink(missing_ok=True)
        if wal_dir.exists():
            for f in wal_dir.iterdir():
                f.unlink()
            wal_dir.rmdir()
        lock.unlink(missing_ok=True)
    finally:
        os.close(fd)
    return True


def private_dir(path: Path) -> None:
    """Create `path` (and missing parents) readable by its owner only; telemetry is private
    by default. An existing directory keeps the mode its owner gave it."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)


def _make_private(path: Path) -> None:
    """Owner-only access to a file DuckDB created (it uses the process umask)."""
    for f in (path, path.with_name(path.name + ".wal")):
        with contextlib.suppress(FileNotFoundError):
            os.chmod(f, 0o600)


def _check_version(db_path: Path) -> None:
    """Refuse a database of another schema before anything is written into it."""
    if not db_path.exists():
        return
    try:
        con = duckdb.connect(str(db_path), read_only=True)
    except duckdb.Error as exc:
        raise StoreError(f"cannot open the store in {db_path.parent}: {exc}") from exc
    try:
        row = con.execute(
            "SELECT value FROM meta WHERE key = 'schema_version'"
            if con.execute(
                "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'meta'"
            ).fetchall()[0][0]
            else "SELECT NULL"
        ).fetchall()
    finally:
        con.close()
    version = row[0][0] if row else None
    if version is not None and int(version) != SCHEMA_VERSION:
        raise StoreError(
            f"{db_path.parent} holds store schema {version}; this rackwatch reads "
            f"{SCHEMA_VERSION} (schema 1 is rackwatch 0.1's): use a matching version, or "
            "another data directory"
        )


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _raw_columns(cols: Mapping[str, Any]) -> tuple[I64, I32, F64]:
    return (
        np.asarray(cols["ts"], np.int64),
        np.asarray(cols["series"], np.int32),
        np.asarray(cols["value"], np.float64),
    )


_EMPTY_ROWS = (np.empty(0, np.int64), np.empty(0, np.int32), np.empty(0, np.float64))


_READ_ROWS = 1_000_000
"""Rows read from the tables at a time when rebuilding the in-memory buckets on open."""


def _pick_due(waiting: I64, incoming: I64, budget: int) -> I32:
    """Series whose rows waiting for a whole run are read back and join one in this flush:
    those with enough rows (waiting + incoming >= 2048), the ones waiting longest first, as
    many as `budget` rows read back allows (at least one). Sources that move together (a
    room's sensors) reach a run together: this spreads the work over several flushes.

    >>> _pick_due(np.array([0, 3000, 1000, 2500]), np.array([5000, 0, 0, 0]), 6000).tolist()
    [1, 3]
    """
    ready = np.flatnonzero((waiting > 0) & (waiting + incoming >= GROUP_ROWS))
    if waiting[ready].sum() > budget:
        ready = ready[np.argsort(-waiting[ready], kind="stable")]
        fits = np.cumsum(waiting[ready]) <= budget
        fits[0] = True
        ready = np.sort(ready[fits])
    out: I32 = ready.astype(np.int32)
    return out


@dataclass(frozen=True, slots=True)
class _Cuts:
    """Per series, the last time (ts, or bucket index) of the waiting rows that moved into
    whole runs, and how many moved."""

    series: I32
    through: I64
    moved: I64

    @classmethod
    def none(cls) -> _Cuts:
        return cls(np.empty(0, np.int32), np.empty(0, np.int64), np.empty(0, np.int64))

    @classmethod
    def of(cls, series: I32, time: I64) -> _Cuts:
        """From moved rows sorted by (series, time)."""
        if not len(series):
            return cls.none()
        last = np.flatnonzero(np.append(series[1:] != series[:-1], True))
        first = np.append(0, last[:-1] + 1)
        return cls(series[last], time[last], last - first + 1)

    def counts(self, n_series: int) -> I64:
        out = np.zeros(n_series, np.int64)
        out[self.series] = self.moved
        return out


def _start_syncer(store: DuckDBStore, interval: float, stop: threading.Event) -> None:
    """Sync the store's log every `interval` s until `stop` is set or the store is collected
    (the thread holds only a weak reference, so dropping a store without close() frees it)."""
    ref = weakref.ref(store)

    def run() -> None:
        while not stop.wait(interval):
            target = ref()
            if target is None:
                return
            try:
                target.sync()
            except Exception:
                log.exception("syncing the write-ahead log of %s failed", target.path)
            del target

    threading.Thread(target=run, name="rackwatch-wal-sync", daemon=True).start()


_DUCKDB_DEFAULTS: dict[str, str | int | bool] = {"default_block_size": "65536"}
"""Blocks of 64 KiB instead of 256 for a new database file: every table (and each of its
columns' last segment) takes at least a block, so small tables and the free blocks left by
flushes cost a quarter as much; compression is the same (it works per 2048-value group)."""

_WIDTH = {"rollup_1m": MINUTE_MS, "rollup_1m_recent": MINUTE_MS, "rollup_1h": HOUR_MS}
_PARTS = {"rollup_1m": ("rollup_1m", "rollup_1m_recent"), "rollup_1h": ("rollup_1h",)}
"""The tables holding a tier's rows: whole runs, and the rows waiting to make one."""


def _buckets_in(width_ms: int, start_ms: int, end_ms: int) -> str:
    """SQL for the rollup rows whose bucket starts in [start_ms, end_ms) (`bucket` is in units
    of the width, so bucket * width >= start  <=>  bucket >= ceil(start / width)).

    >>> _buckets_in(60_000, 59_999, 120_000)
    'bucket >= 1 AND bucket < 2'
    """
    return f"bucket >= {-(-start_ms // width_ms)} AND bucket < {-(-end_ms // width_ms)}"


def _series_filter(ids: I32, n_series: int) -> str:
    """SQL restricting to `ids` (nothing when every series is wanted). The ids are ints we
    made, so formatting them into the statement is safe; the range helps zone maps prune."""
    if len(ids) == n_series:
        return ""
    if not len(ids):
        return " AND false"
    lo, hi = int(ids[0]), int(ids[-1])
    if hi - lo + 1 == len(ids):
        return f" AND series BETWEEN {lo} AND {hi}"
    return f" AND series BETWEEN {lo} AND {hi} AND series IN ({','.join(map(str, ids.tolist()))})"


def _by_rank(p: rollup.Partials, rank: npt.NDArray[np.int64]) -> rollup.Partials:
    """Partials reordered by (rank of series, bucket), for a well-compressed insert."""
    if not len(p):
        return p
    return p.take(np.lexsort((p.bucket, rank[p.series])))
