"""DuckDB tables of the embedded store.

Raw samples are stored series-major in `raw`, in runs of whole 2048-row groups (see head.py);
samples flushed from memory that do not make a whole run yet wait in `raw_recent` (every
sample is in exactly one of the two). The 1-minute tier is likewise `rollup_1m` (whole runs)
and `rollup_1m_recent` (the rest). `latest` holds the newest stored instant of each series
(what duplicate detection starts from). Rollups hold one row per (series, `bucket`: its start
in units of the tier's width), the readings as small integers at a decimal scale (see
encoding.py), with `open_offset`/`close_offset`, the ms from the bucket start to the readings
that gave open and close (NULL when count is 0), which merging late samples exactly needs.
`meta` records what the tables hold so that a restart rebuilds the in-memory state without
double counting:

- `wal_gen`: generation of the write-ahead log that holds the head;
- `f1m`, `f1h`: every rollup bucket starting before these is in its table, none after;
- `late_seq`: the last log record whose late samples (ts < f1m) are already in the tables;
- `seq`: the last record sequence number handed out;
- `kept_raw`, `kept_1m`, `kept_1h`: the cut of the last retention run in each table (the oldest
  data it may still hold; -2^63 until a run).

Schema 1 (rackwatch 0.1) had no `raw_recent` and `latest`, and its log kept the head's
remainder; schema 2 kept rollups as doubles.
"""

from __future__ import annotations

from rackwatch.store.encoding import ROLLUP_COLUMNS_DDL

SCHEMA_VERSION = 3

ROLLUP_TABLES = {"1m": "rollup_1m", "1h": "rollup_1h"}

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
    f"CREATE TABLE IF NOT EXISTS rollup_1m {ROLLUP_COLUMNS_DDL}",
    f"CREATE TABLE IF NOT EXISTS rollup_1m_recent {ROLLUP_COLUMNS_DDL}",
    f"CREATE TABLE IF NOT EXISTS rollup_1h {ROLLUP_COLUMNS_DDL}",
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
