"""PostgresStore: the Store on a PostgreSQL server, for deployments that outgrow one file.

Write path (`write`): samples older than what raw retention keeps and repeats inside the batch
are dropped in NumPy; the missing day partitions of `raw` (month of `rollup_1m`, year of
`rollup_1h`) are created; then, in one transaction, the batch goes by binary COPY into a
session staging table and on with `INSERT ... ON CONFLICT DO NOTHING` (the primary key
(ts, series) keeps one value per series and instant; the rows it refuses are the duplicates).
The 1-minute partials of the rows inserted (rollup.py, in NumPy), their 1-hour merge and the
newest instant per series go the same way into `rollup_1m`, `rollup_1h` and `latest`, merged
into stored rows by `ON CONFLICT DO UPDATE` (open from the earliest ts, close from the latest,
high/low, sum and count, missing), so late data is merged as it comes. Nothing waits in memory:
what `write` returned is committed, and a crash loses nothing.

Reads go through one connection per thread (MVCC: a query never waits for a write); the
writing connection is guarded by a lock. Entity and metric globs are matched on the registry
(results.SeriesIndex), and PostgreSQL is asked for a list of series ids.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
import urllib.parse
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import numpy.typing as npt
import psycopg

from rackwatch.errors import StoreError
from rackwatch.model import Batch, Event, SeriesRegistry
from rackwatch.store import analytics, archive, pg_copy, pg_schema, records, results, rollup
from rackwatch.store.base import (
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
from rackwatch.store.inventory import overlay
from rackwatch.store.pg_events import insert_events, read_events, read_inventory
from rackwatch.store.pg_series import SeriesMap
from rackwatch.store.rollup import F64, HOUR_MS, I32, I64, MINUTE_MS

log = logging.getLogger(__name__)

_NO_TS = -(2**63)
_MAX_NEW_PARTITIONS = 400
"""Partitions one write may create (a year of days): a batch spanning more is a wrong clock."""
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_TABLE = {Tier.M1: "rollup_1m", Tier.H1: "rollup_1h"}

Array = npt.NDArray[Any]
Conn = psycopg.Connection[Any]


def _wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


class PostgresStore:
    """The Store on PostgreSQL (see the module docstring).

    `url` is `postgresql://user[:password]@host[:port]/database` (or `postgres://`); the
    store's tables go in `schema` (created if missing), so one database can hold several
    stores. `registry` is the process' series registry: the store loads its persisted series
    into it (ids stay stable across restarts) and persists series added to it later.
    `retention` says how long each tier keeps rows (`apply_retention` drops them), `clock`
    (ms) decides which tiers a query range is still retained in. `connect_timeout` (s) bounds
    how long an unreachable server holds up the open. `synchronous_commit` False (the
    default) lets a write return before its commit reaches the disk: a crash of rackwatch loses
    nothing, one of the server's machine may lose what was written in its last ~0.6 s (3 x
    PostgreSQL's wal_writer_delay) unless `flush` followed; True waits for the disk each write.
    """

    def __init__(
        self,
        url: str,
        registry: SeriesRegistry,
        *,
        schema: str = "rackwatch",
        retention: Retention | None = None,
        clock: Callable[[], int] = _wall_clock_ms,
        connect_timeout: float = 5.0,
        synchronous_commit: bool = False,
    ) -> None:
        if not _SCHEMA_NAME.match(schema):
            raise StoreError(
                f"schema name {schema!r} is not a plain lower-case SQL name: use letters, "
                "digits and _ (at most 63)"
            )
        self.url = url
        self.where = _describe(url)
        self.schema = schema
        self.retention = retention or Retention()
        self._registry = registry
        self._series = SeriesMap(registry)
        self._series_lock = threading.Lock()
        """The registry's ids <-> the schema's (shared with other processes)."""
        self._index = results.SeriesIndex()
        self._clock = clock
        self._timeout = max(1, round(connect_timeout))
        self._lock = threading.RLock()
        self._local = threading.local()
        self._conns: list[Conn] = []
        self._closed = False
        self.n_duplicates = 0
        """Samples dropped since open because their series already had a value at that instant."""
        self.n_expired = 0
        """Samples dropped since open because raw retention had already dropped their time."""
        # Connections are closed on close(), or when the store is collected without one.
        self._release = weakref.finalize(self, _close_all, self._conns)
        self._synchronous = synchronous_commit
        try:
            self._con = self._connect(create=True)
            with _errors(self.where, "open the store"):
                self._open()
        except BaseException:
            self._release()
            raise

    def _writer(self) -> Conn:
        """The writing connection; a new one (and its staging tables) if the old one broke
        (the server restarted, say). Called with the lock held."""
        if self._con.broken or self._con.closed:
            self._con = self._connect()
            self._session()
        return self._con

    def _session(self) -> None:
        """The writing session's settings and staging tables."""
        if not self._synchronous:
            self._con.execute("SET synchronous_commit TO off")  # this session's writes only
        for ddl in pg_schema.STAGING:
            self._con.execute(ddl)

    # ------------------------------------------------------------------ setup

    def _connect(self, create: bool = False) -> Conn:
        try:
            con: Conn = psycopg.connect(
                self.url,
                autocommit=True,
                connect_timeout=self._timeout,
                application_name=f"rackwatch {self.schema}",  # who holds it, in pg_stat_activity
            )
        except psycopg.Error as exc:
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise StoreError(
                f"cannot connect to PostgreSQL at {self.where}: {detail}; start the server or "
                "fix the store URL (postgresql://user@host:port/database)"
            ) from None
        self._conns.append(con)
        if create:
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {self.schema}")
        con.execute(f"SET search_path TO {self.schema}")
        return con

    def _open(self) -> None:
        con = self._con
        with con.transaction():
            # One opener at a time creates the tables (two would race on CREATE ... IF NOT EXISTS).
            con.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [self.schema])
            for ddl in pg_schema.DDL:
                con.execute(ddl)
            for key, value in pg_schema.META_DEFAULTS.items():
                con.execute("INSERT INTO meta VALUES (%s, %s) ON CONFLICT DO NOTHING", [key, value])
        meta = dict(con.execute("SELECT key, value FROM meta").fetchall())
        if int(meta["schema_version"]) != pg_schema.SCHEMA_VERSION:
            raise StoreError(
                f"schema {self.schema} at {self.where} holds store schema "
                f"{meta['schema_version']}; this rackwatch reads {pg_schema.SCHEMA_VERSION}: "
                "use a matching version, or another schema"
            )
        self._kept_from = {t: int(meta[f"kept_{t.value}"]) for t in Tier}
        self._session()
        self._series.load(con)
        self._series.persist(con)
        self._partitions = self._load_partitions()

    def _load_partitions(self) -> set[str]:
        rows = self._con.execute(
            """SELECT c.relname FROM pg_inherits i
                 JOIN pg_class c ON c.oid = i.inhrelid
                 JOIN pg_class p ON p.oid = i.inhparent
                 JOIN pg_namespace n ON n.oid = p.relnamespace
                WHERE n.nspname = %s AND p.relname = ANY(%s)""",
            [self.schema, list(pg_schema.PARENTS)],
        ).fetchall()
        return {str(r[0]) for r in rows}

    def _ensure_partitions(self, ts: I64) -> None:
        """Create the partitions rows at `ts` go to (each in its own short transaction: it
        locks the parent table, which must not wait for a whole write)."""
        days = np.unique(ts - ts % 86_400_000)
        wanted: dict[str, tuple[str, int, int]] = {}
        for parent in pg_schema.PARENTS:
            for day in days.tolist():
                name, lo, hi = pg_schema.period(parent, int(day))
                if name not in self._partitions:
                    wanted[name] = (parent, lo, hi)
        if len(wanted) > _MAX_NEW_PARTITIONS:
            raise StoreError(
                f"a batch spanning {len(days)} days would create {len(wanted)} partitions; "
                "check the clock of the source (timestamps are ms since the epoch, UTC)"
            )
        for name, (parent, lo, hi) in sorted(wanted.items()):
            # Another writer may have made it between our check and our CREATE.
            with contextlib.suppress(psycopg.errors.DuplicateTable):
                self._con.execute(pg_schema.create_partition(parent, name, lo, hi))
            self._partitions.add(name)

    # ------------------------------------------------------------------ writing

    def write(self, batch: Batch) -> None:
        """Store samples (any order; NaN is a NULL reading), committed before this returns.
        A sample for an instant its series already has is dropped (the first value stays;
        `n_duplicates`), as is one older than what raw retention keeps (`n_expired`)."""
        if not len(batch):
            return
        with self._lock, _errors(self.where, "write"):
            self._check_open()
            self._writer()
            n_series = len(self._registry)
            with self._series_lock:
                self._series.persist(self._con)
            if int(batch.series.view(np.uint32).max()) >= n_series:
                bad = batch.series[(batch.series < 0) | (batch.series >= n_series)][0]
                raise StoreError(
                    f"batch names series id {int(bad)}, unknown to the registry ({n_series} "
                    "series): intern series in the registry given to the store"
                )
            ts, series, value = (  # stored under the schema's ids
                np.asarray(batch.ts, np.int64),
                self._to_global(np.asarray(batch.series, np.int32)),
                np.asarray(batch.value, np.float64),
            )
            # Counted once the write has committed: a failed write changes nothing.
            n_expired = n_dup = 0
            cut = self._kept_from[Tier.RAW]
            if cut > _NO_TS and int(ts.min()) < cut:
                fresh = ts >= cut
                n_expired = int(len(ts) - fresh.sum())
                ts, series, value = ts[fresh], series[fresh], value[fresh]
            order = rollup.sort_order(series, ts)
            if order is not None:
                ts, series, value = ts[order], series[order], value[order]
            repeat = np.zeros(len(ts), bool)  # a later sample of an instant in this batch
            np.logical_and(series[1:] == series[:-1], ts[1:] == ts[:-1], out=repeat[1:])
            if repeat.any():
                n_dup = int(repeat.sum())
                ts, series, value = ts[~repeat], series[~repeat], value[~repeat]
            if len(ts):
                self._ensure_partitions(ts)
                n_dup += self._insert(ts, series, value)
            self.n_expired += n_expired
            self.n_duplicates += n_dup

    def _insert(self, ts: I64, series: I32, value: F64) -> int:
        """Rows sorted by (series, ts), no instant twice: raw, rollups and latest, one commit;
        returns how many were dropped because `raw` held their instant.

        Raw rows go by COPY straight into `raw` (PostgreSQL batches the inserts) in a
        savepoint; if an instant is already held that COPY fails on the primary key and the
        batch goes again through the staging table, the held instants dropped."""
        n = len(ts)
        con = self._con
        with con.transaction(), con.cursor() as cur:
            try:
                with con.transaction():  # a savepoint: only the COPY is undone
                    _copy_in(
                        cur,
                        "raw (ts, series, value)",
                        {"ts": ts, "series": series, "value": value},
                        nullable=("value",),
                    )
            except psycopg.errors.UniqueViolation:
                ts, series, value = self._insert_new(cur, ts, series, value)
                if not len(ts):
                    return n
            p1m = rollup.partials(ts, series, value, MINUTE_MS, ordered=True)
            parts = rollup.concat([p1m, rollup.combine(p1m, HOUR_MS)])
            tier = np.repeat(np.array([1, 2], np.int32), [len(p1m), len(parts) - len(p1m)])
            _copy_in(cur, f"_parts (tier, {', '.join(_PARTS)})", _parts_columns(tier, parts))
            last = np.flatnonzero(np.append(series[1:] != series[:-1], True))
            _copy_in(
                cur,
                "_latest (series, ts, value)",
                {"series": series[last], "ts": ts[last], "value": value[last]},
            )
            with con.pipeline():  # three statements, one round trip
                cur.execute(_MERGE.format(table="rollup_1m", tier=1))
                cur.execute(_MERGE.format(table="rollup_1h", tier=2))
                cur.execute(
                    """INSERT INTO latest AS t (series, ts, value)
                       SELECT series, ts, NULLIF(value, 'NaN') FROM _latest
                       ON CONFLICT (series) DO UPDATE SET ts = excluded.ts, value = excluded.value
                       WHERE excluded.ts > t.ts"""
                )
        return n - len(ts)

    def _insert_new(
        self, cur: psycopg.Cursor[Any], ts: I64, series: I32, value: F64
    ) -> tuple[I64, I32, F64]:
        """Insert the rows whose instant `raw` does not hold yet; return them."""
        n = len(ts)
        _copy_in(
            cur,
            "_stage (i, series, ts, value)",
            {"i": np.arange(n, dtype=np.int32), "series": series, "ts": ts, "value": value},
        )
        dup = cur.execute(
            f"""DELETE FROM _stage s USING raw r
                 WHERE r.ts = s.ts AND r.series = s.series
                   AND r.ts BETWEEN {int(ts.min())} AND {int(ts.max())}
             RETURNING s.i"""
        ).fetchall()
        held = np.zeros(n, bool)
        held[np.fromiter((r[0] for r in dup), np.int64, len(dup))] = True
        # Without ON CONFLICT: an instant another writer added since the DELETE fails the
        # whole write (and changes nothing) rather than leave rollups that count it.
        cur.execute(
            "INSERT INTO raw (ts, series, value) "
            "SELECT ts, series, NULLIF(value, 'NaN') FROM _stage"
        )
        return ts[~held], series[~held], value[~held]

    def flush(self) -> None:
        """Make every write so far durable: a commit that waits for its WAL to reach the disk
        (by default writes commit asynchronously: see `synchronous_commit`)."""
        with self._lock, _errors(self.where, "flush"):
            self._check_open()
            con = self._writer()
            with con.transaction():
                con.execute("SET LOCAL synchronous_commit TO on")
                con.execute("SELECT pg_current_xact_id()")  # a commit record to flush

    # ------------------------------------------------------------------ reading

    def _reader(self) -> Conn:
        """This thread's own connection (autocommit: each statement sees the latest commit)."""
        con: Conn | None = getattr(self._local, "con", None)
        if con is None or con.closed or con.broken:
            with self._lock:
                self._check_open()
                con = self._connect()
            self._local.con = con
        return con

    def _match(self, entity: str, metrics: str | Sequence[str] | None) -> I32:
        """Local ids of the matching series, after reading in (at most every few seconds)
        the series other processes added."""
        con = self._reader()  # before the series lock: a new one takes the store's lock
        with self._series_lock:
            self._series.refresh(con)
        self._index.follow(self._registry)
        return self._index.select(entity, metrics)

    def _to_global(self, local: I32) -> I32:
        with self._series_lock:
            return self._series.to_global(local)

    def _filter(self, ids: I32) -> str:
        """SQL for the series of `ids` (local), in the schema's ids."""
        if len(ids) == len(self._registry) == self._series.n_global:
            return ""
        with self._series_lock:
            gids = self._series.to_global(ids)
        return _series_filter(np.sort(gids[gids >= 0]), -1)

    def _local_rows(self, got: dict[str, Array]) -> dict[str, Array]:
        """Rows read with the schema's ids, with this process's (rows of series it has not
        read in yet are left out)."""
        with self._series_lock:
            local = self._series.to_local(got["series"])
        known = local >= 0
        if known.all():
            return {**got, "series": local}
        return {name: (local if name == "series" else col)[known] for name, col in got.items()}

    def query(self, q: Query) -> QueryResult:
        """Rows of the matched series in [start_ms, end_ms) from the tier the query names or
        `choose_tier` picks; rebucketed when the step is coarser than the tier's buckets."""
        with _errors(self.where, "answer a query"):
            return self._query(q)

    def _query(self, q: Query) -> QueryResult:
        tier = (
            parse_tier(q.tier)
            if q.tier is not None
            else choose_tier(q.step_ms, q.start_ms, self._clock(), self.retention, self._kept_from)
        )
        self._check_open()
        ids = self._match(q.entity, q.metrics)
        keys = self._registry.keys()
        where = f"ts >= {int(q.start_ms)} AND ts < {int(q.end_ms)}" + self._filter(ids)
        rebucket = (
            q.step_ms is not None
            and q.step_ms > tier.width_ms
            and (tier is Tier.RAW or q.step_ms % tier.width_ms == 0)
        )
        con = self._reader()
        if not len(ids):
            series, ts = np.empty(0, np.int32), np.empty(0, np.int64)
            if tier is Tier.RAW and not rebucket:
                cols: dict[str, Array] = {RAW_COLUMNS[0]: np.empty(0)}
            else:
                cols = results.rollup_columns(rollup.empty())
            width = q.step_ms if rebucket and q.step_ms else tier.width_ms
            return results.assemble(tier, width, keys, ids, series, ts, cols)
        if tier is Tier.RAW:
            got = self._local_rows(pg_copy.read(con, _RAW_COLUMNS, f"FROM raw WHERE {where}"))
            series, ts, (value,) = results.group_by_series(got["series"], got["ts"], [got["value"]])
            if rebucket and q.step_ms is not None:
                p = rollup.partials(ts, series, value, q.step_ms, ordered=True)
                return results.assemble(
                    tier, q.step_ms, keys, ids, p.series, p.bucket, results.rollup_columns(p)
                )
            return results.assemble(tier, 0, keys, ids, series, ts, {RAW_COLUMNS[0]: value})
        p = self._read_partials(con, _TABLE[tier], where)
        width = tier.width_ms
        if rebucket and q.step_ms is not None:
            p, width = rollup.combine(p, q.step_ms), q.step_ms
        return results.assemble(
            tier, width, keys, ids, p.series, p.bucket, results.rollup_columns(p)
        )

    def latest(self, entity: str = "**", metrics: str | Sequence[str] | None = None) -> Latest:
        """Newest row per matched series among the raw samples kept (NaN if it was a NULL)."""
        with _errors(self.where, "read the latest values"):
            return self._latest(entity, metrics)

    def _latest(self, entity: str, metrics: str | Sequence[str] | None) -> Latest:
        self._check_open()
        ids = self._match(entity, metrics)
        keys = self._registry.keys()
        got = self._local_rows(
            pg_copy.read(self._reader(), _RAW_COLUMNS, "FROM latest WHERE true" + self._filter(ids))
        )
        order = np.argsort(got["series"], kind="stable")
        series, ts, value = got["series"][order], got["ts"][order], got["value"][order]
        keep = np.isin(series, ids)
        series, ts, value = series[keep], ts[keep], value[keep]
        return Latest(tuple(keys[int(i)] for i in series), series, ts, value)

    def _read_partials(self, con: Conn, table: str, where: str) -> rollup.Partials:
        """Rows of a rollup table as Partials under local ids, sorted by (series, bucket)."""
        got = self._local_rows(pg_copy.read(con, _PARTIAL_COLUMNS, f"FROM {table} WHERE {where}"))
        p = rollup.Partials(
            got["series"],
            got["ts"],
            got["first_ts"],
            got["first"],
            got["last_ts"],
            got["last"],
            got["high"],
            got["low"],
            got["sum"],
            got["count"],
            got["missing"],
        )
        if not rollup.is_sorted_by_series_ts(p.series, p.bucket):
            p = p.take(np.lexsort((p.bucket, p.series)))
        return p

    @contextmanager
    def analytics(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-only SQL session (DuckDB) on one consistent snapshot of the 1-minute and
        1-hour tiers: the views `series_keys`, `m1`, `h1`, `m1_named` and `h1_named` of
        store/analytics.py. Both tiers are copied out of PostgreSQL (one REPEATABLE READ
        transaction) into an in-memory DuckDB database closed when the block exits."""
        self._check_open()
        con = self._reader()
        with self._series_lock:
            self._series.load(con)  # every series another process added
        keys = self._registry.keys()
        with _errors(self.where, "read the rollup tiers"), con.transaction():
            con.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            m1 = self._read_partials(con, "rollup_1m", "true")
            h1 = self._read_partials(con, "rollup_1h", "true")
        duck = duckdb.connect()
        try:
            analytics.define_macros(duck)
            duck.register("_tier_1m", analytics.memory_table(m1))
            duck.register("_tier_1h", analytics.memory_table(h1))
            duck.register(
                "series_keys",
                analytics.keys_table([k.entity for k in keys], [k.metric for k in keys]),
            )
            for view, width, table in (("m1", MINUTE_MS, "_tier_1m"), ("h1", HOUR_MS, "_tier_1h")):
                duck.execute(analytics.tier_view(view, (), width, table))
                duck.execute(analytics.named_view(f"{view}_named", view))
            yield duck
        finally:
            duck.close()

    # ------------------------------------------------------------------ events and inventory

    def write_events(self, events: Sequence[Event]) -> None:
        table = records.events_table(events)  # refuses attributes that are not JSON first
        if table.num_rows:
            with self._lock:
                self._check_open()
                with _errors(self.where, "write events"):
                    insert_events(self._writer(), table)

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
        with _errors(self.where, "read events"):
            return read_events(self._reader(), start_ms, end_ms, entity, kinds, newest)

    def upsert_inventory(self, entities: Sequence[EntityRecord]) -> None:
        """Write each entity over the stored one: a declared part survives a discovered
        write (`store.inventory.overlay`)."""
        if not entities:
            return
        with self._lock, _errors(self.where, "write the inventory"):
            self._check_open()
            self._writer()
            paths = list(dict.fromkeys(e.path for e in entities))
            with self._con.transaction():
                held = {r.path: r for r in read_inventory(self._con, paths, lock=True)}
                merged: dict[str, EntityRecord] = {}
                for entity in entities:
                    merged[entity.path] = overlay(
                        merged.get(entity.path, held.get(entity.path)), entity
                    )
                rows = records.inventory_rows(list(merged.values()))
                with self._con.cursor() as cur:
                    cur.executemany(
                        "INSERT INTO inventory VALUES (%s, %s, %s) ON CONFLICT (path) DO UPDATE "
                        "SET kind = excluded.kind, attributes = excluded.attributes",
                        rows,
                    )

    def remove_inventory(self, paths: Sequence[str]) -> None:
        if not paths:
            return
        with self._lock, _errors(self.where, "write the inventory"):
            self._check_open()
            self._writer().execute("DELETE FROM inventory WHERE path = ANY(%s)", [list(paths)])

    def inventory(self) -> list[EntityRecord]:
        self._check_open()
        with _errors(self.where, "read the inventory"):
            return read_inventory(self._reader())

    # ------------------------------------------------------------------ housekeeping

    def apply_retention(self, now_ms: int) -> dict[str, int]:
        """Drop each tier's rows older than its retention before `now_ms`: whole partitions
        below the cut, and the rows below it in the partition the cut falls into. Returns the
        rows deleted per tier; later writes older than the raw cut are dropped (`n_expired`)."""
        cuts = {t: int(now_ms) - self.retention.of(t) for t in Tier}
        deleted: dict[str, int] = {}
        with self._lock, _errors(self.where, "apply retention"):
            self._check_open()
            con = self._writer()
            self._partitions = self._load_partitions()
            with con.transaction():
                for tier, parent in ((Tier.RAW, "raw"), *_TABLE.items()):
                    cut, n = cuts[tier], 0
                    for name in sorted(self._partitions):
                        if pg_schema.parent_of(name) != parent:
                            continue
                        lo, hi = pg_schema.bounds(name)
                        if hi <= cut:
                            n += int(con.execute(f"SELECT count(*) FROM {name}").fetchall()[0][0])
                            con.execute(f"DROP TABLE {name}")
                        elif lo < cut:
                            n += con.execute(f"DELETE FROM {name} WHERE ts < {cut}").rowcount
                    deleted[tier.value] = n
                con.execute(f"DELETE FROM latest WHERE ts < {cuts[Tier.RAW]}")
                kept = {t: max(self._kept_from[t], cuts[t]) for t in Tier}
                for tier, value in kept.items():
                    con.execute(
                        "UPDATE meta SET value = %s WHERE key = %s", [value, f"kept_{tier.value}"]
                    )
            self._kept_from = kept
            self._partitions = self._load_partitions()
        return deleted

    def export_parquet(
        self,
        start_ms: int,
        end_ms: int,
        out_dir: Path,
        tiers: Sequence[Tier | str] = (Tier.RAW, Tier.M1, Tier.H1),
    ) -> list[Path]:
        """Write the range to Parquet, one file per tier and UTC day (see archive.py)."""
        return archive.export_parquet(self, start_ms, end_ms, Path(out_dir), tiers)

    def _bytes(self, con: Conn) -> int:
        row = con.execute(
            # Main forks of tables and indexes: autovacuum adds free-space and visibility
            # maps at any moment, which would make two calls disagree.
            """SELECT coalesce(sum(pg_relation_size(c.oid)), 0) FROM pg_class c
                 JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE n.nspname = %s AND c.relkind IN ('r', 'i')""",
            [self.schema],
        ).fetchone()
        return int(row[0]) if row else 0

    def usage(self) -> StoreUsage:
        """Sizes and counters, without the store's lock (PostgreSQL's catalogue is read)."""
        self._check_open()
        with _errors(self.where, "read the store's size"):
            size = self._bytes(self._reader())
        return StoreUsage(
            bytes_on_disk=size,
            log_bytes=0,
            n_head_rows=0,
            n_duplicates=self.n_duplicates,
            n_expired=self.n_expired,
        )

    def stats(self) -> StoreStats:
        self._check_open()
        with _errors(self.where, "count rows"):
            con = self._reader()
            counts = {
                t: int(con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0])
                for t in ("raw", "rollup_1m", "rollup_1h", "events")
            }
            size = self._bytes(con)
        return StoreStats(
            n_series=len(self._registry),
            n_raw_rows=counts["raw"],
            n_head_rows=0,
            n_rollup_1m_rows=counts["rollup_1m"],
            n_rollup_1h_rows=counts["rollup_1h"],
            n_events=counts["events"],
            bytes_on_disk=size,
            used_bytes=size,
            n_duplicates=self.n_duplicates,
            n_expired=self.n_expired,
        )

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(
                f"the store in schema {self.schema} at {self.where} is closed; open a new "
                "PostgresStore"
            )

    def close(self) -> None:
        """Flush, then close every connection."""
        with self._lock:
            if self._closed:
                return
            try:
                self.flush()
            finally:
                self._closed = True
                self._release()

    def __enter__(self) -> PostgresStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextmanager
def _errors(where: str, what: str) -> Iterator[None]:
    """PostgreSQL's errors as one-line StoreErrors (a constraint violation, a lost server)."""
    try:
        yield
    except psycopg.Error as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        hint = (
            "is the server up? the next call reconnects"
            if isinstance(exc, psycopg.OperationalError)
            else "nothing was changed"
        )
        raise StoreError(f"PostgreSQL at {where} could not {what}: {detail}; {hint}") from exc


def _close_all(conns: list[Conn]) -> None:
    for con in conns:
        try:
            con.close()
        except psycopg.Error as exc:  # already broken: nothing left to release
            log.debug("closing a PostgreSQL connection failed: %s", exc)


def _describe(url: str) -> str:
    """The URL without its password, for messages; StoreError if it is not a PostgreSQL one."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise StoreError(f"not a PostgreSQL URL: {url!r}; use postgresql://user@host:port/database")
    host = parts.hostname or "localhost"
    try:
        port = parts.port or 5432
    except ValueError:
        raise StoreError(
            f"bad port in the store URL {parts.netloc!r}; use postgresql://user@host:port/database"
        ) from None
    return f"{host}:{port}{parts.path or '/'}"


def _series_filter(ids: I32, n_series: int) -> str:
    """SQL restricting to `ids` (nothing when every series is wanted). The ids are ints we
    made, so formatting them into the statement is safe."""
    if len(ids) == n_series:
        return ""
    if not len(ids):
        return " AND false"
    lo, hi = int(ids[0]), int(ids[-1])
    if hi - lo + 1 == len(ids):
        return f" AND series BETWEEN {lo} AND {hi}"
    return f" AND series = ANY('{{{','.join(map(str, ids.tolist()))}}}'::integer[])"


def _copy_in(
    cur: psycopg.Cursor[Any], target: str, columns: dict[str, Array], nullable: Sequence[str] = ()
) -> None:
    with cur.copy(f"COPY {target} FROM STDIN (FORMAT BINARY)") as copy:
        copy.write(pg_copy.encode(columns, nullable))


_PARTS = (
    "series", "ts", "first_ts", "first", "last_ts", "last", "high", "low", "sum", "count",
    "missing",
)  # fmt: skip


def _parts_columns(tier: I32, p: rollup.Partials) -> dict[str, Array]:
    cols: dict[str, Array] = {"tier": tier, "series": p.series, "ts": p.bucket}
    cols.update({name: getattr(p, name) for name in _PARTS[2:]})
    return cols


_SOME = "CASE WHEN count > 0 THEN {} END"
_MERGE = f"""INSERT INTO {{table}} AS t ({", ".join(_PARTS)})
    SELECT series, ts, {_SOME.format("first_ts")}, {_SOME.format("first")},
           {_SOME.format("last_ts")}, {_SOME.format("last")},
           {_SOME.format("high")}, {_SOME.format("low")}, sum, count, missing
      FROM _parts WHERE tier = {{tier}}
    ON CONFLICT (ts, series) DO UPDATE SET
      first = CASE WHEN t.first_ts IS NULL OR excluded.first_ts < t.first_ts
                   THEN excluded.first ELSE t.first END,
      first_ts = least(t.first_ts, excluded.first_ts),
      last = CASE WHEN t.last_ts IS NULL OR excluded.last_ts >= t.last_ts
                  THEN excluded.last ELSE t.last END,
      last_ts = greatest(t.last_ts, excluded.last_ts),
      high = greatest(t.high, excluded.high),
      low = least(t.low, excluded.low),
      sum = t.sum + excluded.sum,
      count = t.count + excluded.count,
      missing = t.missing + excluded.missing"""
"""Partials of one tier from `_parts` into its table, merged into the rows already there:
open from the earliest reading, close from the latest, the rest added up. Buckets of NULL
readings only (count 0) carry NULL, which the comparisons, least() and greatest() skip."""

_RAW_COLUMNS = {
    "series": ("series", "i4"),
    "ts": ("ts", "i8"),
    "value": ("coalesce(value, 'NaN')", "f8"),
}
_PARTIAL_COLUMNS = {
    "series": ("series", "i4"),
    "ts": ("ts", "i8"),
    "first_ts": (f"coalesce(first_ts, {rollup.NO_TS_FIRST})", "i8"),
    "first": ("coalesce(first, 'NaN')", "f8"),
    "last_ts": (f"coalesce(last_ts, {rollup.NO_TS_LAST})", "i8"),
    "last": ("coalesce(last, 'NaN')", "f8"),
    "high": ("coalesce(high, 'NaN')", "f8"),
    "low": ("coalesce(low, 'NaN')", "f8"),
    "sum": ("sum", "f8"),
    "count": ("count::bigint", "i8"),
    "missing": ("missing::bigint", "i8"),
}
