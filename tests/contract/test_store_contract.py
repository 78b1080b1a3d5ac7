"""The Store contract, run over every implementation in conftest.OPENERS."""

from __future__ import annotations

import gc
import threading

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from store_data import (
    T0,
    Dataset,
    assert_rollup_equal,
    make_dataset,
    reference_rollup,
)

from rackwatch.errors import StoreError
from rackwatch.model import Batch, Event, SeriesKey, SeriesRegistry, Severity
from rackwatch.store.base import DAY_MS, EntityRecord, Query, Store, Tier

HOUR = 3_600_000
MIN = 60_000


def write_all(store: Store, data: Dataset) -> None:
    for batch in data.batches:
        store.write(batch)


@pytest.fixture
def loaded(harness):
    """A store holding the standard dataset, the clock at its end."""
    registry = SeriesRegistry()
    store = harness.open(registry)
    data = make_dataset(registry)
    harness.clock.now_ms = data.end_ms
    write_all(store, data)
    return store, data, registry


def assert_raw_equal(store: Store, data: Dataset, start=T0, end=None) -> None:
    end = data.end_ms if end is None else end
    result = store.query(Query(start, end))
    assert result.tier is Tier.RAW
    assert [tuple(k) for k in result.keys] == data.keys
    for i, (_key, rows) in enumerate(result):
        ts, value = data.rows_of(i)
        sel = (ts >= start) & (ts < end)
        np.testing.assert_array_equal(rows["ts"], ts[sel])
        np.testing.assert_array_equal(rows["value"], value[sel])  # NaN == NaN here


def assert_rollups_equal(store: Store, data: Dataset, width: int, start=T0) -> None:
    result = store.query(Query(start, data.end_ms, step_ms=width))
    for i, (_key, rows) in enumerate(result):
        ts, value = data.rows_of(i)
        sel = ts >= start
        assert_rollup_equal(rows, reference_rollup(ts[sel], value[sel], width))


def test_raw_round_trip_with_nan(loaded):
    store, data, _ = loaded
    assert_raw_equal(store, data)
    assert_raw_equal(store, data, start=T0 + 7 * HOUR + 1, end=T0 + 9 * HOUR)  # [from, to)


@pytest.mark.parametrize("width", [MIN, HOUR])
def test_rollups_equal_recomputation_from_raw(loaded, width):
    store, data, _ = loaded
    result = store.query(Query(T0, data.end_ms, step_ms=width))
    assert result.tier is (Tier.M1 if width == MIN else Tier.H1)
    assert result.bucket_ms == width
    assert_rollups_equal(store, data, width)


@pytest.mark.parametrize("width", [5 * MIN, 2 * HOUR])
def test_steps_coarser_than_a_tier_are_rebucketed(loaded, width):
    store, data, _ = loaded
    result = store.query(Query(T0, data.end_ms, step_ms=width))
    assert result.tier is (Tier.M1 if width < HOUR else Tier.H1)
    assert result.bucket_ms == width
    assert_rollups_equal(store, data, width)


def test_raw_rows_rebucketed_for_a_step_finer_than_a_minute(loaded):
    store, data, _ = loaded
    result = store.query(Query(T0, data.end_ms, step_ms=40_000))
    assert result.tier is Tier.RAW and result.bucket_ms == 40_000
    ts, value = data.rows_of(0)
    assert_rollup_equal(result.rows(0), reference_rollup(ts, value, 40_000))


def test_gaps_stay_gaps_and_nan_is_counted_missing(loaded):
    store, _, _ = loaded
    gap_start, gap_end = T0 + 300 * 20_000, T0 + 330 * 20_000  # series 2: 10 minutes absent
    raw = store.query(Query(gap_start, gap_end, entity="c01/r01/s02", metrics=["power_watts"]))
    assert len(raw) == 0
    m1 = store.query(Query(gap_start, gap_end, step_ms=MIN, entity="c01/r01/s02"))
    assert m1.keys[0] == SeriesKey("c01/r01/s02", "power_watts")
    assert len(m1.rows(0)["ts"]) == 0  # no invented bucket
    assert len(m1.rows(1)["ts"]) == 10  # the other series of that server is there
    # series 1: instants 90..92 are NaN: minute T0 + 30 min holds only NULL readings
    nan_min = store.query(Query(T0 + 30 * MIN, T0 + 31 * MIN, step_ms=MIN)).rows(1)
    if len(nan_min["ts"]):
        assert nan_min["count"][0] == 0 and nan_min["missing"][0] >= 1
        for k in ("open", "high", "low", "close", "avg"):
            assert np.isnan(nan_min[k][0])


def test_series_selection_by_globs(loaded):
    store, data, _ = loaded

    def keys(entity, metrics=None):
        q = Query(T0, T0 + HOUR, entity=entity, metrics=metrics)
        return [tuple(k) for k in store.query(q).keys]

    assert keys("c01/*/s01") == [k for k in data.keys if k[0] == "c01/r01/s01"]
    assert keys("c01/**") == [k for k in data.keys if k[0].startswith("c01/")]
    assert keys("**", "cpu_*") == [k for k in data.keys if k[1].startswith("cpu_")]
    assert keys("**", ["fan_rpm", "crac_power_watts"]) == data.keys[4:]
    assert keys("nowhere/**") == []


def test_tier_follows_retention(loaded, harness):
    store, data, _ = loaded
    now = harness.clock.now_ms = T0 + 8 * DAY_MS
    store.apply_retention(now)  # raw (7 days) no longer covers the first day
    result = store.query(Query(T0, data.end_ms))
    assert result.tier is Tier.M1
    assert_rollups_equal(store, data, MIN)
    recent = store.query(Query(T0 + DAY_MS + HOUR, data.end_ms))
    assert recent.tier is Tier.RAW
    assert_raw_equal(store, data, start=T0 + DAY_MS + HOUR)
    forced = store.query(Query(T0, data.end_ms, tier="raw"))
    assert forced.tier is Tier.RAW


def test_latest_per_series(loaded):
    store, data, _ = loaded
    latest = store.latest()
    assert [tuple(k) for k in latest.keys] == data.keys
    for i in range(len(data.keys)):
        ts, value = data.rows_of(i)
        assert latest.ts[i] == ts[-1]
        np.testing.assert_array_equal(latest.value[i], value[-1])
    only = store.latest("room/**")
    assert [k.entity for k in only.keys] == ["room/crac1"]


def test_restart_keeps_data_series_ids_events_and_inventory(loaded, harness):
    store, data, registry = loaded
    store.write_events([Event(T0 + 5, "fault.injected", "c01/r01/s01", Severity.WARNING)])
    store.upsert_inventory([EntityRecord("c01/r01/s01", "server", {"slot": 1})])
    store.close()
    fresh = SeriesRegistry()
    reopened = harness.open(fresh)
    assert fresh.keys() == registry.keys()
    assert_raw_equal(reopened, data)
    assert_rollups_equal(reopened, data, MIN)
    assert_rollups_equal(reopened, data, HOUR)
    assert [e.kind for e in reopened.events(T0, data.end_ms)] == ["fault.injected"]
    assert reopened.inventory() == [EntityRecord("c01/r01/s01", "server", {"slot": 1})]


def test_crash_without_close_loses_nothing_written(harness):
    registry = SeriesRegistry()
    store = harness.open(registry, wal_sync_seconds=30)  # only the log holds the head
    data = make_dataset(registry, hours=8)
    harness.clock.now_ms = data.end_ms
    write_all(store, data)
    harness.opened.remove(store)
    del store  # dropped, never closed
    gc.collect()
    reopened = harness.open(SeriesRegistry())
    assert_raw_equal(reopened, data)
    assert_rollups_equal(reopened, data, MIN)
    assert_rollups_equal(reopened, data, HOUR)


def test_late_data_is_merged_into_stored_rollups(harness):
    registry = SeriesRegistry()
    store = harness.open(registry)
    data = make_dataset(registry, hours=6)
    harness.clock.now_ms = data.end_ms
    write_all(store, data)
    store.flush()
    # Late samples for minutes and hours already stored, one before everything else.
    late_ts = np.array([T0 + 10 * MIN + 1, T0 + 10 * MIN + 2, T0 + 2 * HOUR + 7, T0 - 1], np.int64)
    late = Batch.of(late_ts, [0, 0, 3, 1], [1000.0, np.nan, -5.0, 7.0])
    store.write(late)
    all_ts = np.concatenate([data.ts, late.ts])
    merged = Dataset(
        data.keys,
        all_ts,
        np.concatenate([data.series, late.series]),
        np.concatenate([data.value, late.value]),
        [],
        data.end_ms,
    )
    assert_raw_equal(store, merged, start=T0 - MIN)
    assert_rollups_equal(store, merged, MIN, start=T0 - MIN)
    assert_rollups_equal(store, merged, HOUR, start=T0 - HOUR)
    # Neither a restart nor a crash merges them twice.
    store.close()
    reopened = harness.open(SeriesRegistry())
    assert_rollups_equal(reopened, merged, MIN, start=T0 - MIN)
    # A new late instant, and one the series already has (dropped: the first value stays).
    reopened.write(Batch.of([T0 + 11 * MIN + 5_000, T0 + 11 * MIN], [2, 2], [3.0, -99.0]))
    harness.opened.remove(reopened)
    del reopened
    gc.collect()
    again = harness.open(SeriesRegistry())
    merged2 = Dataset(
        data.keys,
        np.append(merged.ts, T0 + 11 * MIN + 5_000),
        np.append(merged.series, 2).astype(np.int32),
        np.append(merged.value, 3.0),
        [],
        data.end_ms,
    )
    assert_rollups_equal(again, merged2, MIN, start=T0 - MIN)
    assert_rollups_equal(again, merged2, HOUR, start=T0 - HOUR)


def test_retention_drops_old_raw_and_keeps_rollups(harness):
    registry = SeriesRegistry()
    store = harness.open(registry)
    data = make_dataset(registry, hours=10 * 24, step_ms=5 * MIN)
    end = data.end_ms
    harness.clock.now_ms = end
    write_all(store, data)
    deleted = store.apply_retention(end)
    assert deleted["raw"] > 0 and deleted["1m"] == 0 and deleted["1h"] == 0
    cutoff = end - 7 * DAY_MS
    old = store.query(Query(T0, cutoff, tier="raw"))
    assert len(old) == 0
    assert_raw_equal(store, data, start=cutoff)
    kept = store.query(Query(T0, cutoff, tier="1m"))
    assert len(kept) > 0
    assert_rollups_equal(store, data, MIN)
    assert_rollups_equal(store, data, HOUR)
    # a later run finds nothing more to delete
    assert store.apply_retention(end)["raw"] == 0


def _shifted(data: Dataset, delta: float) -> list[Batch]:
    """The dataset's batches again, every value changed: a second value for each instant."""
    return [Batch(b.ts, b.series, b.value + delta) for b in data.batches]


def test_a_second_value_for_an_instant_is_dropped_everywhere(harness):
    """First write wins, whether the first value is in memory, in the tables or came
    before a restart; raw rows and rollup counts stay those of one value per instant."""
    registry = SeriesRegistry()
    store = harness.open(registry)
    data = make_dataset(registry, hours=6)
    harness.clock.now_ms = data.end_ms
    half = len(data.batches) // 2
    for batch in data.batches[:half]:
        store.write(batch)
    store.flush()  # the first half is in the tables, the second half will be in memory
    for batch in data.batches[half:]:
        store.write(batch)
    for batch in _shifted(data, 1000.0):  # every instant again, other values
        store.write(batch)
    store.write(Batch.concat([data.batches[0], data.batches[0]]))  # repeats within a batch
    assert_raw_equal(store, data)
    assert_rollups_equal(store, data, MIN)
    assert_rollups_equal(store, data, HOUR)
    assert store.stats().n_duplicates == len(data.ts) + 2 * len(data.batches[0])
    store.close()
    reopened = harness.open(SeriesRegistry())  # and after a restart
    for batch in _shifted(data, -1000.0):
        reopened.write(batch)
    assert_raw_equal(reopened, data)
    assert_rollups_equal(reopened, data, MIN)
    np.testing.assert_array_equal(
        reopened.latest().value, [data.rows_of(i)[1][-1] for i in range(len(data.keys))]
    )


def test_late_samples_for_new_instants_are_kept_beside_repeated_ones(harness):
    registry = SeriesRegistry()
    store = harness.open(registry)
    data = make_dataset(registry, hours=3)
    harness.clock.now_ms = data.end_ms
    write_all(store, data)
    store.flush()
    # One batch mixing an instant already held and a new one between two held instants.
    late = Batch.of([T0 + 40_000, T0 + 45_000], [0, 0], [-1.0, 42.0])
    store.write(late)
    ts, value = data.rows_of(0)
    got = store.query(Query(T0, T0 + MIN, entity=data.keys[0][0], metrics=data.keys[0][1]))
    rows = got.rows(0)
    want_ts = np.sort(np.append(ts[ts < T0 + MIN], T0 + 45_000))
    np.testing.assert_array_equal(rows["ts"], want_ts)
    assert rows["value"][rows["ts"] == T0 + 40_000].tolist() == value[ts == T0 + 40_000].tolist()
    assert rows["value"][rows["ts"] == T0 + 45_000].tolist() == [42.0]
    minute = store.query(Query(T0, T0 + MIN, step_ms=MIN, metrics=data.keys[0][1]))
    assert int(minute.rows(0)["count"][0] + minute.rows(0)["missing"][0]) == len(want_ts)


def test_samples_older_than_raw_retention_are_dropped(harness):
    registry = SeriesRegistry()
    store = harness.open(registry)
    data = make_dataset(registry, hours=10 * 24, step_ms=5 * MIN)
    harness.clock.now_ms = data.end_ms
    write_all(store, data)
    store.apply_retention(data.end_ms)  # raw keeps 7 days
    before = store.query(Query(T0, data.end_ms, step_ms=HOUR))
    old = Batch.of([T0 + 5_000], [0], [1.0])  # a new instant, but in a dropped period
    store.write(old)
    after = store.query(Query(T0, data.end_ms, step_ms=HOUR))
    np.testing.assert_array_equal(after["count"], before["count"])  # rollups unchanged
    assert store.stats().n_expired == 1


def test_events_by_range_entity_and_kind(harness):
    store = harness.open()
    events = [
        Event(T0 + 10, "alert.fired", "c01/r01/s01", Severity.CRITICAL, {"rule": "hot"}),
        Event(T0 + 20, "fault.injected", "c01/r02/s03/fan1", end_ts=T0 + 500),
        Event(T0 + 30, "alert.fired", "room/crac1", Severity.WARNING),
        Event(T0 + 1000, "alert.fired", "c01/r01/s02"),
    ]
    store.write_events(events)
    assert store.events(T0, T0 + 100) == events[:3]
    assert store.events(T0 + 100, T0 + 200) == [events[1]]  # the fault spans the window
    assert store.events(T0, T0 + 2000, entity="c01/**") == [events[0], events[1], events[3]]
    assert store.events(T0, T0 + 2000, entity="c01/*/*") == [events[0], events[3]]
    assert store.events(T0, T0 + 2000, kinds=["fault.injected"]) == [events[1]]
    assert store.events(T0, T0 + 2000, kinds=[]) == []
    assert store.events(T0 + 31, T0 + 999) == [events[1]]
    with pytest.raises(StoreError, match="ends before it starts"):
        store.events(5, 1)


def test_an_event_written_again_is_stored_once(harness):
    store = harness.open()
    fired = Event(T0 + 10, "alert.fired", "c01/r01/s01", Severity.CRITICAL, {"rule": "hot"})
    fault = Event(T0 + 20, "fault.injected", "c01/r02/s03/fan1", end_ts=T0 + 500)
    store.write_events([fired, fault, fired])  # twice in one write
    store.write_events([fault, fired])  # a bus message delivered again
    # ...but an event that differs in anything is another event
    other = [
        Event(T0 + 10, "alert.fired", "c01/r01/s01", Severity.CRITICAL, {"rule": "cold"}),
        Event(T0 + 10, "alert.fired", "c01/r01/s01", Severity.WARNING, {"rule": "hot"}),
        Event(T0 + 20, "fault.injected", "c01/r02/s03/fan1"),
        Event(T0 + 11, "alert.fired", "c01/r01/s01", Severity.CRITICAL, {"rule": "hot"}),
    ]
    store.write_events(other)
    got = store.events(T0, T0 + 1000)
    assert len(got) == 6
    assert got.count(fired) == 1 and got.count(fault) == 1
    assert all(e in got for e in other)


def test_the_newest_events_are_read_first_and_the_glob_applies_before_the_limit(harness):
    store = harness.open()
    servers = [Event(T0 + i, "alert.fired", f"c01/r01/s{i % 3:02d}") for i in range(3000)]
    store.write_events(servers)
    newest = store.events(T0, T0 + 10_000, entity="c01/r01/s01", newest=5)
    assert [e.ts for e in newest] == [T0 + i for i in (2998, 2995, 2992, 2989, 2986)]
    assert store.events(T0, T0 + 10_000, newest=2) == servers[:-3:-1]
    assert len(store.events(T0, T0 + 10_000, entity="c01/**", newest=10_000)) == 3000
    store.write_events([Event(T0, "after", "room")])  # the connection is free for more work
    assert store.events(T0, T0 + 1, kinds=["after"]) == [Event(T0, "after", "room")]


def test_inventory_upsert(harness):
    store = harness.open()
    store.upsert_inventory([EntityRecord("c01/r01/s01", "server", {"u": 2})])
    store.upsert_inventory(
        [
            EntityRecord("c01/r01/s01", "server", {"u": 1, "model": "x"}),
            EntityRecord("room/crac1", "crac"),
        ]
    )
    assert store.inventory() == [
        EntityRecord("c01/r01/s01", "server", {"u": 1, "model": "x"}),
        EntityRecord("room/crac1", "crac", {}),
    ]


def test_a_declared_part_survives_a_discovered_write_and_removal(harness):
    store = harness.open()
    declared = {"owner": "ml", "slot": 12, "declared": ["owner", "slot"]}
    store.upsert_inventory([EntityRecord("host/gpu01", "machine", declared)])
    store.upsert_inventory(
        [EntityRecord("host/gpu01", "host", {"slot": 7, "cpu_model": "EPYC", "owner": "ml"})]
    )
    assert store.inventory() == [
        EntityRecord(
            "host/gpu01",
            "machine",
            {**declared, "cpu_model": "EPYC", "discovered": {"slot": 7}},
        )
    ]
    store.remove_inventory(["host/gpu01", "never/there"])
    assert store.inventory() == []


def test_parquet_export_by_day_equals_the_query(loaded, tmp_path):
    store, data, _ = loaded
    out = tmp_path / "archive"
    paths = store.export_parquet(T0, data.end_ms, out)
    days = sorted({p.relative_to(out).parent.parent.as_posix() for p in paths})
    assert days == [
        f"tier={tier}/date={day}"
        for tier in ("1h", "1m", "raw")
        for day in ("2026-11-23", "2026-11-24")
    ]
    assert all(p.name == "part-0.parquet" and p.parent.name.startswith("metric=") for p in paths)
    for tier in ("raw", "1m", "1h"):
        files = sorted((out / f"tier={tier}").glob("date=*/metric=*/part-0.parquet"))
        table = pa.concat_tables([pq.read_table(f) for f in files])
        table = table.sort_by([("series", "ascending"), ("ts", "ascending")])
        result = store.query(Query(T0, data.end_ms, tier=tier))
        np.testing.assert_array_equal(table["ts"].to_numpy(), result.ts)
        for name, col in result.columns.items():
            np.testing.assert_array_equal(table[name].to_numpy(), col)
        n = np.diff(result.offsets)
        assert table["entity"].to_pylist() == [
            k.entity for k, m in zip(result.keys, n, strict=True) for _ in range(m)
        ]


def test_bad_input_is_refused_and_changes_nothing(loaded):
    store, data, registry = loaded
    before = len(store.query(Query(T0, data.end_ms)))
    with pytest.raises(StoreError, match="unknown to the registry"):
        store.write(Batch.of([T0], [len(registry) + 5], [1.0]))
    with pytest.raises(StoreError, match="unknown to the registry"):
        store.write(Batch.of([T0], [-1], [1.0]))
    with pytest.raises(StoreError, match="JSON"):
        store.write_events([Event(T0, "x", "y", attributes={"bad": object()})])
    with pytest.raises(StoreError):
        store.query(Query(T0, data.end_ms, tier="weekly"))
    assert len(store.query(Query(T0, data.end_ms))) == before
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.write(data.batches[0])


def test_a_registry_that_disagrees_is_refused_or_mapped(loaded, harness):
    """A registry that gave the stored series' ids to others: DuckDB (one process) refuses
    it; a store shared by processes (PostgreSQL) maps each process's ids onto its own, so
    every read answers under the caller's ids."""
    store, data, registry = loaded
    store.close()
    other = SeriesRegistry()
    other.intern("somewhere/else", "power_watts")
    if harness.kind == "duckdb":
        with pytest.raises(StoreError, match="registry"):
            harness.open(other)
        return
    reopened = harness.open(other)
    assert other.key(0) == ("somewhere/else", "power_watts")
    assert sorted(other.keys()[1:]) == sorted(registry.keys())
    result = reopened.query(Query(T0, data.end_ms))
    by_key = {key: rows["value"] for key, rows in result if len(rows["ts"])}
    expected = reopened_expected(data, registry)
    assert by_key.keys() == expected.keys()
    for key, values in expected.items():
        np.testing.assert_array_equal(by_key[key], values)
    newest = reopened.latest(metrics="power_watts")
    assert all(k.metric == "power_watts" for k in newest.keys)
    assert all(other.key(int(i)) == k for i, k in zip(newest.series_ids, newest.keys, strict=True))


def reopened_expected(data, registry):
    """Each series' raw values by key, in time order, from the dataset's batches."""
    batch = Batch.concat(data.batches)
    out = {}
    for sid in np.unique(batch.series):
        rows = batch.series == sid
        order = np.argsort(batch.ts[rows], kind="stable")
        out[registry.key(int(sid))] = batch.value[rows][order]
    return out


def test_queries_from_threads_while_writing(harness):
    registry = SeriesRegistry()
    store = harness.open(registry)
    data = make_dataset(registry, hours=6)
    harness.clock.now_ms = data.end_ms
    errors: list[BaseException] = []
    seen: list[list[int]] = [[], []]
    done = threading.Event()

    def reader(counts: list[int]) -> None:
        try:
            while not done.is_set():
                result = store.query(Query(T0, data.end_ms))
                for _key, rows in result:
                    assert (np.diff(rows["ts"]) > 0).all()  # no duplicates, in order
                counts.append(len(result))
                store.query(Query(T0, data.end_ms, step_ms=MIN))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=reader, args=(counts,)) for counts in seen]
    for t in threads:
        t.start()
    write_all(store, data)
    done.set()
    for t in threads:
        t.join()
    assert not errors, errors
    assert all(counts == sorted(counts) for counts in seen)  # never loses rows it showed
    assert_raw_equal(store, data)


def test_implements_the_store_protocol(harness):
    assert isinstance(harness.open(), Store)


def test_usage_says_what_stats_says_without_counting(loaded):
    store, _, _ = loaded
    usage, stats = store.usage(), store.stats()
    assert usage.bytes_on_disk == stats.bytes_on_disk > 0
    assert (usage.log_bytes, usage.n_head_rows) == (stats.log_bytes, stats.n_head_rows)
    assert (usage.n_duplicates, usage.n_expired) == (stats.n_duplicates, stats.n_expired)


# ---------------------------------------------------------------------- analytics (SQL tiers)


def _sql_rollup(store: Store, view: str, sid: int) -> dict[str, np.ndarray]:
    with store.analytics() as sql:
        got = sql.execute(
            f"SELECT ts, first, high, low, last, avg, n, missing FROM {view} "
            "WHERE series = ? ORDER BY ts",
            [sid],
        ).fetchnumpy()
    names = {"first": "open", "last": "close", "n": "count"}
    return {
        names.get(k, k): np.asarray(np.ma.filled(v.astype(float), np.nan))
        if k not in ("ts", "n", "missing")
        else np.asarray(v)
        for k, v in got.items()
    }


@pytest.mark.parametrize(("view", "width"), [("m1", MIN), ("h1", HOUR)])
def test_the_analytics_views_decode_every_bucket_of_a_tier(loaded, view, width) -> None:
    """Stored rows and the buckets still in memory, each once, equal to a plain rollup."""
    store, data, _ = loaded
    for sid in range(len(data.keys)):
        ts, value = data.rows_of(sid)
        assert_rollup_equal(_sql_rollup(store, view, sid), reference_rollup(ts, value, width))


def test_the_analytics_views_name_series_and_see_new_writes(harness) -> None:
    registry = SeriesRegistry()
    store = harness.open(registry)
    data = make_dataset(registry, hours=3.0)
    harness.clock.now_ms = data.end_ms
    write_all(store, data)
    store.flush()
    with store.analytics() as sql:
        before = sql.execute("SELECT count(*) FROM m1").fetchone()[0]
    sid = registry.intern("c01/r01/s03", "power_watts")
    store.write(Batch.from_grid(np.array([data.end_ms]), np.array([sid], np.int32), [[np.pi]]))
    with store.analytics() as sql:
        rows = sql.execute(
            "SELECT entity, metric, n, last FROM m1_named WHERE entity = 'c01/r01/s03'"
        ).fetchall()
        assert sql.execute("SELECT count(*) FROM m1").fetchone()[0] == before + 1
    assert rows == [("c01/r01/s03", "power_watts", 1, np.pi)]  # off any decimal grid: bits


def test_f64_of_bits_decodes_any_double(harness) -> None:
    store = harness.open()
    rng = np.random.default_rng(3)
    x = np.concatenate(
        [
            rng.normal(0, 1e6, 500) * 10.0 ** rng.integers(-300, 300, 500),
            [0.0, -0.0, 5e-324, -2.2e-308, 1.7976931348623157e308, np.inf, -np.inf],
        ]
    )
    bits = [int(b) for b in x.view(np.int64)]
    with store.analytics() as sql:
        got = [sql.execute("SELECT f64_of_bits(?::BIGINT)", [b]).fetchone()[0] for b in bits]
    np.testing.assert_array_equal(np.array(got), x)
    with store.analytics() as sql:
        nan_bits = int(np.array([np.nan]).view(np.int64)[0])
        assert np.isnan(sql.execute("SELECT f64_of_bits(?::BIGINT)", [nan_bits]).fetchone()[0])
