"""Parquet archive: a time range of any tier, laid out Hive-style by tier, UTC day and metric,
so that Spark, Trino (Hive connector) and DuckDB read it as one partitioned table per tier.

Layout (docs/ARCHIVE.md): `<out_dir>/tier=<tier>/date=<YYYY-MM-DD>/metric=<metric>/part-0.parquet`,
e.g. `archive/tier=1m/date=2026-11-23/metric=cpu_temperature_celsius/part-0.parquet`. The
partition values live in the path only, never as columns in the files (readers that add them
from the path would otherwise see each twice). Each file holds `series` (int32, the store's
series id), `entity` (string), `ts` (int64 ms UTC; a bucket's start) and `value` (raw) or the
rollup columns open, high, low, close, avg (float64), count, missing (int64), ordered by
series then ts. A missing value (a NULL reading, a bucket with no reading) is a Parquet null,
not NaN, so that SQL aggregates skip it.

Metric values are escaped as Spark and Hive escape partition values (`%XX` for `/`, `=`, `:`,
`%`…), so that every reader gives back the name; the catalogue's names need none.

Each file is written under a hidden temporary name and renamed, so a reader never sees half a
file. Exporting a day again replaces the day: its metrics' files are replaced one by one and
those of metrics it no longer has are removed, so rows are never doubled. A day only partly
inside the range gets the rows of that part; days without rows are left as they are.
Works with any Store: it only calls `query`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from rackwatch.store.base import DAY_MS, Query, QueryResult, Tier, parse_tier

PART = "part-0.parquet"
"""The one file of a (tier, day, metric) partition."""
DEFAULT_PARTITION = "__HIVE_DEFAULT_PARTITION__"
"""Hive's (and Spark's) name for an empty partition value: read back as null."""
_ESCAPED = frozenset("\"#%'*/:=?\\{[]^\x7f") | frozenset(chr(c) for c in range(0x20))
"""The characters Spark's `escapePathName` (Hive's FileUtils) writes as %XX."""


class Queryable(Protocol):
    def query(self, q: Query) -> QueryResult: ...


def day_name(day_start_ms: int) -> str:
    """
    >>> day_name(1_795_392_000_000)
    '2026-11-23'
    """
    return dt.datetime.fromtimestamp(day_start_ms / 1000, dt.UTC).strftime("%Y-%m-%d")


def escape_value(value: str) -> str:
    """A partition value as Hive and Spark write it in a path.

    >>> escape_value("cpu_temperature_celsius"), escape_value("node:load/1=x%"), escape_value("")
    ('cpu_temperature_celsius', 'node%3Aload%2F1%3Dx%25', '__HIVE_DEFAULT_PARTITION__')
    """
    if not value:
        return DEFAULT_PARTITION
    return "".join(f"%{ord(ch):02X}" if ch in _ESCAPED else ch for ch in value)


def day_dir(out_dir: Path, tier: Tier | str, day_start_ms: int) -> Path:
    """The folder of one tier's UTC day.

    >>> day_dir(Path("archive"), "1m", 1_795_392_000_000).as_posix()
    'archive/tier=1m/date=2026-11-23'
    """
    return out_dir / f"tier={parse_tier(tier).value}" / f"date={day_name(day_start_ms)}"


def metric_file(out_dir: Path, tier: Tier | str, day_start_ms: int, metric: str) -> Path:
    """The file of one metric's day of a tier.

    >>> metric_file(Path("a"), "raw", 0, "fan_rpm").as_posix()
    'a/tier=raw/date=1970-01-01/metric=fan_rpm/part-0.parquet'
    """
    return day_dir(out_dir, tier, day_start_ms) / f"metric={escape_value(metric)}" / PART


def day_files(out_dir: Path, tier: Tier | str, day_start_ms: int) -> list[Path]:
    """The files already written for one tier's UTC day, sorted (none when absent)."""
    folder = day_dir(out_dir, tier, day_start_ms)
    if not folder.is_dir():
        return []
    return sorted(folder.glob(f"metric=*/{PART}"))


def result_table(result: QueryResult) -> pa.Table:
    """A query result as an Arrow table (series, entity, ts, then its value columns), entity
    names dictionary-encoded and NaN values as nulls. The metric is left out: it is the
    partition's."""
    n_rows = np.diff(result.offsets)
    entities = [k.entity for k in result.keys]
    index = np.repeat(np.arange(len(result.keys), dtype=np.int32), n_rows)
    cols: dict[str, pa.Array] = {
        "series": pa.array(np.repeat(result.series_ids, n_rows)),
        "entity": pa.DictionaryArray.from_arrays(pa.array(index), pa.array(entities, pa.string())),
        "ts": pa.array(result.ts),
    }
    for name, col in result.columns.items():
        floats = np.issubdtype(col.dtype, np.floating)
        cols[name] = pa.array(col, mask=np.isnan(col) if floats else None)
    return pa.table(cols)


def write_day(result: QueryResult, out_dir: Path, tier: Tier, day_start_ms: int) -> list[Path]:
    """Write one day's rows of `tier`, a file per metric, and remove the day's files of
    metrics not in `result`; return the files written (sorted)."""
    metrics = sorted({k.metric for k in result.keys})
    code = {m: i for i, m in enumerate(metrics)}
    per_row = np.repeat(
        np.asarray([code[k.metric] for k in result.keys], np.int64), np.diff(result.offsets)
    )
    order = np.argsort(per_row, kind="stable")  # keeps series then ts within a metric
    table = result_table(result).take(pa.array(order))
    bounds = np.searchsorted(per_row[order], np.arange(len(metrics) + 1))
    before = day_files(out_dir, tier, day_start_ms)
    written = []
    for i, metric in enumerate(metrics):
        lo, hi = int(bounds[i]), int(bounds[i + 1])
        if lo < hi:
            path = metric_file(out_dir, tier, day_start_ms, metric)
            _write_atomically(table.slice(lo, hi - lo), path)
            written.append(path)
    for stale in set(before) - set(written):  # metrics this export no longer has
        stale.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            stale.parent.rmdir()
    return sorted(written)


def _write_atomically(table: pa.Table, path: Path) -> None:
    """Write under a hidden temporary name (Spark, Hive and `*.parquet` globs skip it), then
    rename over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        pq.write_table(table, tmp, compression="zstd")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def export_parquet(
    store: Queryable,
    start_ms: int,
    end_ms: int,
    out_dir: Path,
    tiers: Sequence[Tier | str] = (Tier.RAW, Tier.M1, Tier.H1),
) -> list[Path]:
    """Write [start_ms, end_ms) of each tier by UTC day and metric; return the files
    written."""
    parsed = [parse_tier(t) for t in tiers]
    written: list[Path] = []
    for tier in parsed:
        day = start_ms - start_ms % DAY_MS
        while day < end_ms:
            lo, hi = max(start_ms, day), min(end_ms, day + DAY_MS)
            result = store.query(Query(lo, hi, tier=tier))
            if len(result):
                written += write_day(result, out_dir, tier, day)
            day += DAY_MS
    return written
