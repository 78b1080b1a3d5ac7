"""Parquet archive: a time range of any tier written as one file per UTC day.

Layout: `<out_dir>/<tier>/<YYYY-MM-DD>.parquet`, e.g. `archive/raw/2026-11-23.parquet`, with
columns series, entity, metric, ts (int64 ms, UTC) and `value` (raw) or the rollup columns.
A day only partly inside the range gets a file with that part; days without rows get none.
Works with any Store: it only calls `query`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from rackwatch.store.base import DAY_MS, Query, QueryResult, Tier, parse_tier


class Queryable(Protocol):
    def query(self, q: Query) -> QueryResult: ...


def day_name(day_start_ms: int) -> str:
    """
    >>> day_name(1_795_392_000_000)
    '2026-11-23'
    """
    return dt.datetime.fromtimestamp(day_start_ms / 1000, dt.UTC).strftime("%Y-%m-%d")


def result_table(result: QueryResult) -> pa.Table:
    """A query result as an Arrow table, series names dictionary-encoded."""
    n_rows = np.diff(result.offsets)
    entities = [k.entity for k in result.keys]
    metrics = [k.metric for k in result.keys]
    index = np.repeat(np.arange(len(result.keys), dtype=np.int32), n_rows)
    cols: dict[str, pa.Array] = {
        "series": pa.array(np.repeat(result.series_ids, n_rows)),
        "entity": pa.DictionaryArray.from_arrays(pa.array(index), pa.array(entities, pa.string())),
        "metric": pa.DictionaryArray.from_arrays(pa.array(index), pa.array(metrics, pa.string())),
        "ts": pa.array(result.ts),
    }
    cols.update({name: pa.array(col) for name, col in result.columns.items()})
    return pa.table(cols)


def export_parquet(
    store: Queryable,
    start_ms: int,
    end_ms: int,
    out_dir: Path,
    tiers: Sequence[Tier | str] = (Tier.RAW, Tier.M1, Tier.H1),
) -> list[Path]:
    """Write [start_ms, end_ms) of each tier by UTC day; return the files written."""
    parsed = [parse_tier(t) for t in tiers]
    written: list[Path] = []
    for tier in parsed:
        day = start_ms - start_ms % DAY_MS
        while day < end_ms:
            lo, hi = max(start_ms, day), min(end_ms, day + DAY_MS)
            result = store.query(Query(lo, hi, tier=tier))
            if len(result):
                path = out_dir / tier.value / f"{day_name(day)}.parquet"
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(".parquet.tmp")
                pq.write_table(result_table(result), tmp, compression="zstd")
                tmp.replace(path)
                written.append(path)
            day += DAY_MS
    return written
