"""The PostgreSQL store's tables and their time partitions.

`raw` is range-partitioned by UTC day, `rollup_1m` by UTC month and `rollup_1h` by UTC year,
on `ts` (ms since the epoch; a rollup row's `ts` is its bucket's start). A partition is named
for its period (`raw_d20261123`, `rollup_1m_m202611`, `rollup_1h_y2026`), so its bounds are
known from its name, and retention drops whole partitions.

>>> period("raw", 1_795_392_000_000 + 5)
('raw_d20261123', 1795392000000, 1795478400000)
>>> period("rollup_1m", 1_795_392_000_000)[0], period("rollup_1h", 1_795_392_000_000)[0]
('rollup_1m_m202611', 'rollup_1h_y2026')
>>> bounds("rollup_1m_m202612") == period("rollup_1m", 1_796_083_200_000)[1:]
True
"""

from __future__ import annotations

import datetime as dt

from rackwatch.errors import StoreError

SCHEMA_VERSION = 1

PARENTS = ("raw", "rollup_1m", "rollup_1h")

_ROLLUP_COLUMNS = """(
    ts bigint NOT NULL, series integer NOT NULL,
    first_ts bigint, first double precision, last_ts bigint, last double precision,
    high double precision, low double precision, sum double precision NOT NULL,
    count integer NOT NULL, missing integer NOT NULL,
    PRIMARY KEY (ts, series)
) PARTITION BY RANGE (ts)"""
"""first/last/high/low (and their ts) are NULL in a bucket of NULL readings only (count 0):
NULL, not NaN, because PostgreSQL orders NaN above every number and greatest() would keep
it; NULL is what greatest(), least() and the comparisons of the merge skip."""

DDL = (
    "CREATE TABLE IF NOT EXISTS meta (key text PRIMARY KEY, value bigint NOT NULL)",
    """CREATE TABLE IF NOT EXISTS series (
        id integer PRIMARY KEY, entity text COLLATE "C" NOT NULL, metric text COLLATE "C" NOT NULL,
        UNIQUE (entity, metric)
    )""",
    # Ids for every process writing the schema (store/pg_series.py).
    "CREATE SEQUENCE IF NOT EXISTS series_id AS integer MINVALUE 0 START 0",
    # (ts, series): rows arrive in time order, so inserts land at the right edge of the index.
    """CREATE TABLE IF NOT EXISTS raw (
        ts bigint NOT NULL, series integer NOT NULL, value double precision,
        PRIMARY KEY (ts, series)
    ) PARTITION BY RANGE (ts)""",
    f"CREATE TABLE IF NOT EXISTS rollup_1m {_ROLLUP_COLUMNS}",
    f"CREATE TABLE IF NOT EXISTS rollup_1h {_ROLLUP_COLUMNS}",
    """CREATE TABLE IF NOT EXISTS latest (
        series integer PRIMARY KEY, ts bigint NOT NULL, value double precision
    ) WITH (fillfactor = 50)""",
    """CREATE TABLE IF NOT EXISTS events (
        ts bigint NOT NULL, end_ts bigint, kind text COLLATE "C" NOT NULL,
        entity text COLLATE "C" NOT NULL, severity smallint NOT NULL, attributes text NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS events_ts ON events (ts)",
    """CREATE TABLE IF NOT EXISTS inventory (
        path text COLLATE "C" PRIMARY KEY, kind text NOT NULL, attributes text NOT NULL
    )""",
)

META_DEFAULTS = {
    "schema_version": SCHEMA_VERSION,
    "kept_raw": -(2**63),
    "kept_1m": -(2**63),
    "kept_1h": -(2**63),
}

# Session-local staging tables of the writing connection, emptied at each commit.
_PARTIALS = """(
    tier integer, series integer, ts bigint, first_ts bigint, first double precision,
    last_ts bigint, last double precision, high double precision, low double precision,
    sum double precision, count bigint, missing bigint
) ON COMMIT DELETE ROWS"""
STAGING = (
    """CREATE TEMP TABLE IF NOT EXISTS _stage (
        i integer, series integer, ts bigint, value double precision
    ) ON COMMIT DELETE ROWS""",
    f"CREATE TEMP TABLE IF NOT EXISTS _parts {_PARTIALS}",  # tier 1: 1m, 2: 1h
    """CREATE TEMP TABLE IF NOT EXISTS _latest (
        series integer, ts bigint, value double precision
    ) ON COMMIT DELETE ROWS""",
)

ROLLUP_FILLFACTOR = 70
"""Room in each page of a rollup partition, so that merging late data into a bucket is a HOT
update (the new row version beside the old one, no index entry)."""

_PREFIX = {"raw": "raw_d", "rollup_1m": "rollup_1m_m", "rollup_1h": "rollup_1h_y"}
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _ms(t: dt.datetime) -> int:
    return (t - _EPOCH) // dt.timedelta(milliseconds=1)


def period(parent: str, ts: int) -> tuple[str, int, int]:
    """Name and bounds [lo, hi) in ms of the partition of `parent` holding `ts`."""
    try:
        day = _EPOCH + dt.timedelta(milliseconds=ts)
        if parent == "raw":
            lo = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
            return f"raw_d{lo:%Y%m%d}", _ms(lo), _ms(lo + dt.timedelta(days=1))
        if parent == "rollup_1m":
            lo = dt.datetime(day.year, day.month, 1, tzinfo=dt.UTC)
            nxt = dt.datetime(day.year + day.month // 12, day.month % 12 + 1, 1, tzinfo=dt.UTC)
            return f"rollup_1m_m{lo:%Y%m}", _ms(lo), _ms(nxt)
        lo = dt.datetime(day.year, 1, 1, tzinfo=dt.UTC)
        return f"rollup_1h_y{lo:%Y}", _ms(lo), _ms(dt.datetime(day.year + 1, 1, 1, tzinfo=dt.UTC))
    except (OverflowError, ValueError):
        raise StoreError(
            f"timestamp {ts} ms is outside the years 1970-9998 the store partitions by; "
            "send ms since the epoch (UTC)"
        ) from None


def bounds(name: str) -> tuple[int, int]:
    """Bounds of a partition from its name (see `period`)."""
    for parent, prefix in _PREFIX.items():
        digits = name.removeprefix(prefix)
        if digits != name and digits.isdigit():
            year, month, day = int(digits[:4]), int(digits[4:6] or 1), int(digits[6:8] or 1)
            _, lo, hi = period(parent, _ms(dt.datetime(year, month, day, tzinfo=dt.UTC)))
            return lo, hi
    raise ValueError(f"not a partition name: {name}")


def parent_of(name: str) -> str:
    for parent, prefix in _PREFIX.items():
        if name.startswith(prefix):
            return parent
    raise ValueError(f"not a partition name: {name}")


def create_partition(parent: str, name: str, lo: int, hi: int) -> str:
    fill = f" WITH (fillfactor = {ROLLUP_FILLFACTOR})" if parent != "raw" else ""
    return (
        f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF {parent} "
        f"FOR VALUES FROM ({int(lo)}) TO ({int(hi)}){fill}"
    )
