"""SQL over the rollup tiers, decoded: what reports and energy accounting aggregate with.

The rollup tables keep readings as small integers and differences (encoding.py), which no
one should have to decode by hand in every query. An analytics session is a DuckDB cursor
on a consistent snapshot of the store with these temporary views:

- `series_keys(series, entity, metric)`: every series the store knows;
- `m1` and `h1`: one row per (series, bucket) of the 1-minute and 1-hour tiers, the stored
  rows and the buckets still held in memory together, with plain columns `series`, `ts`
  (the bucket's start, ms UTC), `n` (readings that gave a value), `missing` (NULL readings),
  `total` (their sum), `low`, `high`, `first`, `last` (NULL when `n` is 0) and `avg`;
- `m1_named`, `h1_named`: the same joined with `series_keys` (adds `entity`, `metric`).

The decoding is the same arithmetic as `encoding.decode`: q / 10**d for a scaled row, the
IEEE-754 bits for the rare row no decimal scale fits (`f64_of_bits`, pure SQL). A query
over a month of 2,000 servers scans the integer columns DuckDB compresses well, in DuckDB's
threads, and returns only the aggregates.

>>> from rackwatch.store import rollup
>>> p = rollup.partials(np.array([0, 5_000, 60_000]), np.zeros(3, np.int32),
...                     np.array([20.5, 21.5, np.pi]), 60_000)
>>> con = duckdb.connect()
>>> define_macros(con)
>>> _ = con.register("t", encoding.encode(p, 60_000))
>>> con.sql(f"SELECT {decoded_columns(60_000)} FROM t ORDER BY ts").fetchall()[1][2:5]
(1, 0, 3.141592653589793)
"""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa

from rackwatch.store import encoding, rollup  # noqa: F401  (encoding: the doctest)

MACROS = (
    # A double from its IEEE-754 bits (what encode stores when no decimal scale fits).
    """CREATE OR REPLACE TEMP MACRO f64_of_bits(b) AS (
        CASE
            WHEN ((b >> 52) & 2047) = 2047 THEN
                CASE WHEN (b & 4503599627370495) <> 0 THEN 'nan'::DOUBLE
                     WHEN b < 0 THEN '-inf'::DOUBLE ELSE 'inf'::DOUBLE END
            WHEN ((b >> 52) & 2047) = 0 THEN
                (CASE WHEN b < 0 THEN -1.0 ELSE 1.0 END)
                * (b & 4503599627370495)::DOUBLE * pow(2.0, -1074)
            ELSE (CASE WHEN b < 0 THEN -1.0 ELSE 1.0 END)
                * (1.0 + (b & 4503599627370495)::DOUBLE / 4503599627370496.0)
                * pow(2.0, ((b >> 52) & 2047) - 1023)
        END)""",
    # q * 10**-d, one correctly rounded operation, like encoding's _MUL/_DIV.
    """CREATE OR REPLACE TEMP MACRO at_scale(q, d) AS (
        CASE WHEN d > 0 THEN q::DOUBLE / pow(10.0, d) ELSE q::DOUBLE * pow(10.0, -d) END)""",
    """CREATE OR REPLACE TEMP MACRO rollup_value(q, bits, d) AS (
        CASE WHEN d IS NULL THEN f64_of_bits(bits) ELSE at_scale(q, d) END)""",
)


def define_macros(con: duckdb.DuckDBPyConnection) -> None:
    """Create the decoding macros on a DuckDB connection (temporary: this connection only)."""
    for sql in MACROS:
        con.execute(sql)


def decoded_columns(width_ms: int) -> str:
    """SELECT list turning a rollup table's columns (alias-free) into the plain ones."""
    open_q = "(close_q + open_d)"
    high_q = f"(greatest({open_q}, close_q) + high_d)"
    low_q = f"(least({open_q}, close_q) - low_d)"
    n = "(readings - missing)"
    sum_q = f"(sum_d + ((({high_q}) + ({low_q})) * {n} >> 1))"

    def value(q: str, bits: str) -> str:
        return f"CASE WHEN {n} > 0 THEN rollup_value({q}, {bits}, scale) END"

    return (
        f"series, bucket * {int(width_ms)} AS ts, {n} AS n, missing, "
        f"CASE WHEN {n} > 0 THEN rollup_value({sum_q}, sum_d, scale) ELSE 0.0 END AS total, "
        f"{value(low_q, 'low_d')} AS low, {value(high_q, 'high_d')} AS high, "
        f"{value(open_q, 'open_d')} AS first, {value('close_q', 'close_q')} AS last"
    )


def memory_table(p: rollup.Partials) -> pa.Table:
    """Buckets held in memory in the views' plain columns."""
    has = p.count > 0
    nan = np.where(has, 0.0, np.nan)
    return pa.table(
        {
            "series": pa.array(p.series.astype(np.int32, copy=False)),
            "ts": pa.array(p.bucket.astype(np.int64, copy=False)),
            "n": pa.array(p.count.astype(np.int64, copy=False)),
            "missing": pa.array(p.missing.astype(np.int64, copy=False)),
            "total": pa.array(np.where(has, p.sum, 0.0)),
            "low": pa.array(p.low + nan, mask=~has),
            "high": pa.array(p.high + nan, mask=~has),
            "first": pa.array(p.first + nan, mask=~has),
            "last": pa.array(p.last + nan, mask=~has),
        }
    )


def tier_view(name: str, parts: tuple[str, ...], width_ms: int, memory: str) -> str:
    """CREATE VIEW `name` over the stored `parts` of a tier and the registered `memory`."""
    selects = [f"SELECT {decoded_columns(width_ms)} FROM {part}" for part in parts]
    plain = "series, ts, n, missing, total, low, high, first, last"
    selects.append(f"SELECT {plain} FROM {memory}")
    body = " UNION ALL ".join(selects)
    return (
        f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT {plain}, "
        f"CASE WHEN n > 0 THEN total / n END AS avg FROM ({body})"
    )


def named_view(name: str, tier: str) -> str:
    return (
        f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT k.entity, k.metric, t.* "
        f"FROM {tier} t JOIN series_keys k ON k.series = t.series"
    )


def keys_table(entities: list[str], metrics: list[str]) -> pa.Table:
    return pa.table(
        {
            "series": pa.array(np.arange(len(entities), dtype=np.int32)),
            "entity": pa.array(entities, pa.string()),
            "metric": pa.array(metrics, pa.string()),
        }
    )
