"""DuckDB tables of the embedded store.

Raw samples are stored series-major in `raw`, in runs of whole 2048-row groups (see head.py);
samples flushed from memory that do not make a whole run yet wait in `raw_recent` (every
sample is in exactly one of the two). `latest` holds the newest stored instant of each series
(what duplicate detection starts from). Rollups hold one row per (series, bucket
start `ts`) with `open_offset`/`close_offset`, the ms from the bucket start to the readings that
gave open and close (NULL when count is 0), which merging late samples exactly needs. `meta`
records what the tables hold so that a restart rebuilds the in-memory state without double
counting:

- `wal_gen`: generation of the write-ahead log that holds the head;
- `f1m`, `f1h`: every rollup bucket starting before these is in its table, none after;
- `late_seq`: the last log record whose late samples (ts < f1m) are already in the tables;
- `seq`: the last record sequence number handed out;
- `kept_raw`, `kept_1m`, `kept_1h`: the cut of the last retention run in each table (the oldest
  data it may still hold; -2^63 until a run).

Schema 1 (rackwatch 0.1) had no `raw_recent` and `latest`; its log kept the head's remainder.
"""

from __future__ import annotations

SCHEMA_VERSION = 2

ROLLUP_TABLES = {"1m": "rollup_1m", "1h": "rollup_1h"}

_ROLLUP_COLUMNS = """(
    series INTEGER NOT NULL,
    ts BIGINT NOT NULL,
    open DOUBLE NOT NULL,
    high DOUBLE NOT NULL,
    low DOUBLE NOT NULL,
    close DOUBLE NOT NULL,
    avg DOUBLE NOT NULL,
    count INTEGER NOT NULL,
    missing INTEGER NOT NULL,
    open_offset INTEGER,
    close_offset INTEGER
)"""

DDL = [
    "CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value BIGINT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS series (
        id INTEGER PRIMARY KEY, entity VARCHAR NOT NULL, metric VARCHAR NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS inventory (
        path VARCHAR PRIMARY KEY, kind VARCHAR NOT NULL, attributes JSON NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS raw (
        series INTEGER NOT NULL, ts BIGINT NOT NULL, value DOUBLE NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS raw_recent (
        series INTEGER NOT NULL, ts BIGINT NOT NULL, value DOUBLE NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS latest (
        series INTEGER PRIMARY KEY, ts BIGINT NOT NULL, value DOUBLE NOT NULL)""",
    f"CREATE TABLE IF NOT EXISTS rollup_1m {_ROLLUP_COLUMNS}",
    f"CREATE TABLE IF NOT EXISTS rollup_1h {_ROLLUP_COLUMNS}",
    """CREATE TABLE IF NOT EXISTS events (
        ts BIGINT NOT NULL, end_ts BIGINT, kind VARCHAR NOT NULL, entity VARCHAR NOT NULL,
        severity TINYINT NOT NULL, attributes JSON NOT NULL)""",
]

META_DEFAULTS = {
    "schema_version": SCHEMA_VERSION,
    "wal_gen": 0,
    "f1m": -(2**63),
    "f1h": -(2**63),
    "late_seq": 0,
    "seq": 0,
    "kept_raw": -(2**63),
    "kept_1m": -(2**63),
    "kept_1h": -(2**63),
}
