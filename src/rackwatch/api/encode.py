"""Columnar results to JSON, by hand: a day of minute buckets for every series is hundreds of
thousands of rows, too many to pass through per-row models. orjson writes the NumPy columns
directly (NaN and infinities become null); gaps are reported, never filled.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from rackwatch.model import METRICS
from rackwatch.store.base import ROLLUP_COLUMNS, QueryResult

GAP_FACTOR = 1.5
"""Rows further apart than this many usual intervals have a gap between them."""


def finite_list(values: npt.NDArray[Any]) -> list[Any]:
    """Array to a JSON-ready list: NaN and infinities become None.

    >>> finite_list(np.array([1.5, np.nan, 2.0]))
    [1.5, None, 2.0]
    """
    if values.dtype.kind != "f":
        return list(values.tolist())
    bad = ~np.isfinite(values)
    if not bad.any():
        return list(values.tolist())
    out: list[Any] = values.tolist()
    for i in np.flatnonzero(bad).tolist():
        out[i] = None
    return out


def find_gaps(ts: npt.NDArray[np.int64], bucket_ms: int) -> list[list[int]]:
    """`[before, after]` row times around each hole: consecutive rows more than 1.5 x the usual
    interval apart (the bucket width for rollups, the median interval for raw rows).

    >>> find_gaps(np.array([0, 5000, 10000, 30000, 35000]), 0)
    [[10000, 30000]]
    >>> find_gaps(np.array([0, 60000, 180000]), 60000)
    [[60000, 180000]]
    """
    if len(ts) < 2:
        return []
    steps = np.diff(ts)
    usual = float(bucket_ms) if bucket_ms > 0 else float(np.median(steps))
    if usual <= 0:
        return []
    holes = np.flatnonzero(steps > GAP_FACTOR * usual)
    return [[int(ts[i]), int(ts[i + 1])] for i in holes.tolist()]


PART_BYTES = 1 << 20
"""`series_json_parts` yields pieces of about this size."""


def series_json(result: QueryResult, from_ms: int, to_ms: int) -> bytes:
    """The /series answer for a QueryResult (see docs/API.md), whole."""
    return b"".join(series_json_parts(result, from_ms, to_ms))


def series_json_parts(
    result: QueryResult, from_ms: int, to_ms: int, part_bytes: int = PART_BYTES
) -> Iterator[bytes]:
    """The /series answer in pieces of about `part_bytes`, so that the first ones travel
    while the rest is encoded.

    Each series is encoded by its own call: the encoder holds the GIL for a whole call, and
    one call for a large answer would stall the event loop's thread as long.
    """
    columns = ROLLUP_COLUMNS if "open" in result.columns else ("value",)
    head = dumps(
        {
            "tier": result.tier.value,
            "bucket_ms": result.bucket_ms,
            "from_ms": from_ms,
            "to_ms": to_ms,
        }
    )
    parts = [head[:-1] + b',"series":[']
    size = 0
    for i, (key, rows) in enumerate(result):
        ts = rows["ts"]
        spec = METRICS.get(key.metric)
        item: dict[str, Any] = {
            "entity": key.entity,
            "metric": key.metric,
            "unit": None if spec is None else spec.unit,
            "ts": ts,
        }
        for name in columns:
            item[name] = rows[name]
        item["gaps"] = find_gaps(ts, result.bucket_ms)
        encoded = dumps(item)
        parts.append(b"," + encoded if i else encoded)
        size += len(encoded)
        if size >= part_bytes:
            yield b"".join(parts)
            parts, size = [], 0
    parts.append(b"]}")
    yield b"".join(parts)


def live_json(
    keys: Sequence[tuple[str, str]],
    ids: npt.NDArray[np.int32],
    ts: npt.NDArray[np.int64],
    value: npt.NDArray[np.float64],
    now_ms: int,
) -> bytes:
    """The /live answer: newest value, time and age of each series in `ids` that has one."""
    ids = ids[ids < len(ts)]
    ids = ids[ts[ids] >= 0]
    entities: dict[str, dict[str, dict[str, Any]]] = {}
    for i, t, v in zip(ids.tolist(), ts[ids].tolist(), value[ids].tolist(), strict=True):
        entity, metric = keys[i]
        entities.setdefault(entity, {})[metric] = {
            "value": v,
            "ts_ms": t,
            "age_s": (now_ms - t) / 1000,
        }
    return dumps({"now_ms": now_ms, "entities": entities})


def dumps(body: Any) -> bytes:
    """Compact JSON; NumPy arrays as lists, NaN and infinities as null.

    >>> dumps({"v": np.array([1.5, np.nan]), "n": np.array([3], np.int64)})
    b'{"v":[1.5,null],"n":[3]}'
    """
    return orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)
