"""PostgresStore beyond the contract suite: partitions, the COPY path, writers sharing a
schema, and the errors of a bad URL. Needs PostgreSQL on 127.0.0.1:5432 (RACKWATCH_TEST_PG_URL)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import numpy as np
import pytest

from rackwatch.errors import StoreError
from rackwatch.model import Batch, SeriesRegistry
from rackwatch.store.base import DAY_MS, Query, Retention

psycopg = pytest.importorskip("psycopg")  # the `sql` extra

from rackwatch.store import pg_copy  # noqa: E402
from rackwatch.store.postgres import PostgresStore  # noqa: E402

PG_URL = os.environ.get("RACKWATCH_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
T0 = 1_795_392_000_000  # 2026-11-23 00:00 UTC
MIN = 60_000


@pytest.fixture
def schema() -> Iterator[str]:
    name = f"test_pg_{uuid.uuid4().hex[:12]}"
    yield name
    with psycopg.connect(PG_URL, autocommit=True) as con:
        con.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")


def _sql(schema: str, query: str) -> list[tuple[object, ...]]:
    with psycopg.connect(PG_URL, autocommit=True) as con:
        con.execute(f"SET search_path TO {schema}")
        return con.execute(query).fetchall()


def _partitions(schema: str, parent: str) -> list[str]:
    rows = _sql(
        schema,
        f"""SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             WHERE i.inhparent = '{schema}.{parent}'::regclass ORDER BY 1""",
    )
    return [str(r[0]) for r in rows]


def _store(schema: str, registry: SeriesRegistry, **kw: object) -> PostgresStore:
    return PostgresStore(PG_URL, registry, schema=schema, clock=lambda: T0 + 4 * DAY_MS, **kw)  # type: ignore[arg-type]


def _days(registry: SeriesRegistry, n_days: int, step_ms: int = 10 * MIN) -> Batch:
    ids = np.array([registry.intern("c01/r01/s01", "power_watts")], np.int32)
    instants = T0 + np.arange(n_days * DAY_MS // step_ms, dtype=np.int64) * step_ms
    return Batch.from_grid(instants, ids, np.arange(len(instants), dtype=float)[:, None])


@pytest.mark.integration
def test_a_partition_per_day_month_and_year_and_retention_drops_them(schema: str) -> None:
    registry = SeriesRegistry()
    store = _store(schema, registry, retention=Retention(raw_ms=2 * DAY_MS + 12 * 3_600_000))
    batch = _days(registry, 4)  # 2026-11-23 .. 2026-11-26, one sample every 10 minutes
    store.write(batch)
    assert _partitions(schema, "raw") == [f"raw_d202611{d}" for d in (23, 24, 25, 26)]
    assert _partitions(schema, "rollup_1m") == ["rollup_1m_m202611"]
    assert _partitions(schema, "rollup_1h") == ["rollup_1h_y2026"]
    now = T0 + 4 * DAY_MS
    deleted = store.apply_retention(now)  # cut: 2026-11-24 12:00
    assert deleted == {"raw": 144 + 72, "1m": 0, "1h": 0}
    assert _partitions(schema, "raw") == ["raw_d20261124", "raw_d20261125", "raw_d20261126"]
    cut = now - store.retention.raw_ms
    assert _sql(schema, f"SELECT count(*) FROM raw WHERE ts < {cut}") == [(0,)]
    kept = store.query(Query(T0, now, tier="raw"))
    np.testing.assert_array_equal(kept.ts, batch.ts[batch.ts >= cut])
    assert store.apply_retention(now)["raw"] == 0
    store.close()


@pytest.mark.integration
def test_nan_is_stored_as_null_and_a_bucket_of_nulls_has_null_ohlc(schema: str) -> None:
    registry = SeriesRegistry()
    sid = registry.intern("room/crac1", "crac_power_watts")
    store = _store(schema, registry)
    store.write(Batch.of([T0, T0 + 5_000, T0 + MIN], [sid, sid, sid], [np.nan, 2.5, np.nan]))
    assert _sql(schema, "SELECT ts, value FROM raw ORDER BY ts") == [
        (T0, None),
        (T0 + 5_000, 2.5),
        (T0 + MIN, None),
    ]
    assert _sql(schema, "SELECT ts, first, high, count, missing FROM rollup_1m ORDER BY ts") == [
        (T0, 2.5, 2.5, 1, 1),
        (T0 + MIN, None, None, 0, 1),
    ]
    store.close()


@pytest.mark.integration
def test_two_writers_on_one_schema_keep_one_value_per_instant(schema: str) -> None:
    """A second store object (another worker) repeating instants the first wrote: the COPY
    fails on the key, the batch goes through staging, only the new instants count."""
    first_registry, second_registry = SeriesRegistry(), SeriesRegistry()
    first = _store(schema, first_registry)
    first.write(_days(first_registry, 1, step_ms=MIN))
    second = _store(schema, second_registry)  # loads the series the first one persisted
    sid = second_registry.intern("c01/r01/s01", "power_watts")
    mixed = Batch.of([T0, T0 + 30_000, T0 + MIN], [sid, sid, sid], [-1.0, 7.0, -1.0])
    second.write(mixed)
    assert second.stats().n_duplicates == 2
    minute = first.query(Query(T0, T0 + MIN, step_ms=MIN))
    assert (minute["open"][0], minute["close"][0], minute["count"][0]) == (0.0, 7.0, 2)
    assert minute["high"][0] == 7.0 and minute["avg"][0] == 3.5
    rows = first.query(Query(T0, T0 + 2 * MIN))
    assert rows["value"].tolist() == [0.0, 7.0, 1.0]
    first.close()
    second.close()


@pytest.mark.integration
def test_writers_that_met_their_series_in_other_orders_share_one_schema(schema: str) -> None:
    """Partitioned store workers each intern their own series (their registries give the same
    ids to different series); the schema's ids keep them apart, and a reader sees them all."""
    a_registry, b_registry = SeriesRegistry(), SeriesRegistry()
    a, b = _store(schema, a_registry), _store(schema, b_registry)
    a_id = a_registry.intern("c01/r01/s01", "power_watts")
    b_id = b_registry.intern("c01/r02/s01", "power_watts")
    assert a_id == b_id == 0
    a.write(Batch.of([T0, T0 + MIN], [a_id, a_id], [1.0, 2.0]))
    b.write(Batch.of([T0, T0 + MIN], [b_id, b_id], [10.0, 20.0]))
    shared = b_registry.intern("c01/r01/s01", "power_watts")  # b meets a's series late
    b.write(Batch.of([T0 + 2 * MIN], [shared], [3.0]))
    reader_registry = SeriesRegistry([("room", "pue")])
    reader = _store(schema, reader_registry)
    got = {key.entity: rows["value"].tolist() for key, rows in reader.query(Query(T0, T0 + DAY_MS))}
    assert got == {"room": [], "c01/r01/s01": [1.0, 2.0, 3.0], "c01/r02/s01": [10.0, 20.0]}
    newest = reader.latest(metrics="power_watts")
    assert dict(zip([k.entity for k in newest.keys], newest.value.tolist(), strict=True)) == {
        "c01/r01/s01": 3.0,
        "c01/r02/s01": 20.0,
    }
    with reader.analytics() as sql:
        hours = sql.execute(
            "SELECT entity, sum(n) FROM m1_named GROUP BY entity ORDER BY entity"
        ).fetchall()
    assert hours == [("c01/r01/s01", 3), ("c01/r02/s01", 2)]
    for store in (a, b, reader):
        store.close()


@pytest.mark.integration
def test_a_batch_spanning_years_is_refused_and_changes_nothing(schema: str) -> None:
    registry = SeriesRegistry()
    sid = registry.intern("c01/r01/s01", "power_watts")
    store = _store(schema, registry)
    with pytest.raises(StoreError, match="partitions"):
        store.write(Batch.of(T0 + np.arange(500) * DAY_MS, np.full(500, sid), np.ones(500)))
    assert _partitions(schema, "raw") == []
    assert store.stats().n_raw_rows == 0
    store.close()


@pytest.mark.integration
def test_a_closed_store_and_its_connections(schema: str) -> None:
    store = _store(schema, SeriesRegistry())
    store.query(Query(T0, T0 + MIN))  # opens this thread's reading connection
    held = f"SELECT count(*) FROM pg_stat_activity WHERE application_name = 'rackwatch {schema}'"
    assert _sql(schema, held) == [(2,)]  # the writing one and this thread's
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.query(Query(T0, T0 + MIN))
    assert _sql(schema, held) == [(0,)]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://root@localhost/db", "not a PostgreSQL URL"),
        ("postgresql://postgres@127.0.0.1:99999/x", "bad port"),
        (
            "postgresql://postgres@127.0.0.1:1/postgres",
            "cannot connect to PostgreSQL at 127.0.0.1:1",
        ),
    ],
)
def test_a_bad_url_says_what_to_do(url: str, message: str) -> None:
    with pytest.raises(StoreError, match=message) as info:
        PostgresStore(url, SeriesRegistry(), connect_timeout=1)
    assert "postgresql://user@host:port/database" in str(info.value)
    assert "\n" not in str(info.value)


def test_a_schema_name_that_is_not_plain_sql_is_refused() -> None:
    with pytest.raises(StoreError, match="schema name"):
        PostgresStore(PG_URL, SeriesRegistry(), schema="x; DROP TABLE raw")


def test_copy_encoding_round_trips_and_sends_nan_as_null() -> None:
    ts = np.array([1, -2, 2**62], np.int64)
    value = np.array([0.5, np.nan, -np.inf])
    cols = {"ts": ts, "value": value}
    out = pg_copy.decode(pg_copy.encode(cols), {"ts": "i8", "value": "f8"})
    np.testing.assert_array_equal(out["ts"], ts)
    np.testing.assert_array_equal(out["value"], value)
    with_null = pg_copy.encode(cols, nullable=("value",))
    assert len(with_null) == len(pg_copy.encode(cols)) - 8
    assert b"\xff\xff\xff\xff" in with_null  # the NULL's length field


@pytest.mark.integration
def test_a_lost_connection_fails_one_write_and_the_next_reconnects(schema: str) -> None:
    registry = SeriesRegistry()
    sid = registry.intern("c01/r01/s01", "power_watts")
    store = _store(schema, registry)
    store.write(Batch.of([T0], [sid], [1.0]))
    store.query(Query(T0, T0 + MIN))
    _sql(  # what a server restart does to the store's sessions
        schema,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        f"WHERE application_name = 'rackwatch {schema}'",
    )
    with pytest.raises(StoreError, match="the next call reconnects"):
        store.write(Batch.of([T0 + 5_000], [sid], [2.0]))
    store.write(Batch.of([T0 + 10_000], [sid], [3.0]))
    with pytest.raises(StoreError, match="the next call reconnects"):
        store.query(Query(T0, T0 + MIN))
    rows = store.query(Query(T0, T0 + MIN))
    assert rows["value"].tolist() == [1.0, 3.0]
    assert store.query(Query(T0, T0 + MIN, step_ms=MIN))["count"].tolist() == [2]
    store.close()
