"""Building query answers: which series a query names, and rows grouped by series.

Shared by every Store implementation, so they select and shape results the same way.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from rackwatch.model import SeriesKey
from rackwatch.model.entity import matches
from rackwatch.store import rollup
from rackwatch.store.base import QueryResult, Tier
from rackwatch.store.rollup import I32, I64, Partials

Array = npt.NDArray[Any]


def match_series(
    keys: Sequence[SeriesKey], entity: str, metrics: str | Sequence[str] | None
) -> I32:
    """Ids (ascending) of the series whose entity matches the glob `entity` (`*` one segment,
    `**` any) and whose metric matches `metrics`: a glob, a list of names/globs, or None (all).

    >>> keys = [SeriesKey("c01/r01/s01", "power_watts"), SeriesKey("c01/r01/s01/fan1", "fan_rpm")]
    >>> match_series(keys, "c01/**", ["fan_*"]).tolist(), match_series(keys, "*/*/*", None).tolist()
    ([1], [0])
    """
    patterns = [metrics] if isinstance(metrics, str) else None if metrics is None else list(metrics)
    entity_ok: dict[str, bool] = {}
    out = []
    for i, key in enumerate(keys):
        ok = entity_ok.get(key.entity)
        if ok is None:
            ok = entity_ok[key.entity] = entity == "**" or matches(key.entity, entity)
        if ok and (patterns is None or any(fnmatch.fnmatchcase(key.metric, p) for p in patterns)):
            out.append(i)
    return np.asarray(out, dtype=np.int32)


def group_by_series(series: I32, ts: I64, columns: Sequence[Array]) -> tuple[I32, I64, list[Array]]:
    """Reorder rows so that each series' rows are together and in time order.

    Rows usually come as runs (one series, time-ordered), in any order: then reordering the
    runs is a few large copies; otherwise (or when a series' runs overlap in time) a sort.
    """
    n = len(series)
    if n == 0 or rollup.is_sorted_by_series_ts(series, ts):
        return series, ts, list(columns)
    run_starts = np.flatnonzero(np.concatenate(([True], series[1:] != series[:-1])))
    if len(run_starts) * 64 < n:
        run_ends = np.append(run_starts[1:], n)
        order = np.lexsort((ts[run_starts], series[run_starts]))  # a series' runs by time
        runs = [(int(run_starts[i]), int(run_ends[i])) for i in order]
        arrays: list[Array] = [series, ts, *columns]
        cols = [np.concatenate([a[lo:hi] for lo, hi in runs]) for a in arrays]
        if rollup.is_sorted_by_series_ts(cols[0], cols[1]):
            return cols[0], cols[1], cols[2:]
    perm = rollup.sort_order(series, ts)
    assert perm is not None
    return series[perm], ts[perm], [a[perm] for a in columns]


def rollup_columns(p: Partials) -> dict[str, Array]:
    """Partials as the public rollup columns."""
    return {
        "open": p.first,
        "high": p.high,
        "low": p.low,
        "close": p.last,
        "avg": p.avg(),
        "count": p.count,
        "missing": p.missing,
    }


def assemble(
    tier: Tier,
    bucket_ms: int,
    keys: Sequence[SeriesKey],
    ids: I32,
    series: I32,
    ts: I64,
    columns: Mapping[str, Array],
) -> QueryResult:
    """A QueryResult from rows already grouped by series (ascending ids) and ordered by ts."""
    bounds = np.searchsorted(series, ids, side="left")
    offsets = np.append(bounds, len(series)).astype(np.int64)
    if len(ids):
        offsets[-1] = np.searchsorted(series, ids[-1], side="right")
    return QueryResult(
        tier=tier,
        bucket_ms=bucket_ms,
        keys=tuple(keys[int(i)] for i in ids),
        series_ids=ids,
        offsets=offsets,
        ts=ts,
        columns=dict(columns),
    )
