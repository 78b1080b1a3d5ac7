"""One value per (series, timestamp): find the samples that repeat an instant already held.

The store keeps the first value written for an instant and drops later ones (Prometheus does
the same with a sample for a timestamp it already has): an agent replaying its buffer, a
restarted source or a rerun then never doubles a sample, and rollups never count one twice.

Checking every sample against the stored data would cost a lookup each. Instead, the store
knows the newest instant of each series (`latest_ts`): a sample newer than that cannot repeat
anything, which is every sample of a source that moves forward in time. Only the rest (late,
replayed or repeated samples: `suspects`) are looked up, in memory (`found_in`) and in the
tables.

>>> from rackwatch.store.head import make_chunk
>>> c = make_chunk(np.array([10, 20, 10, 30]), np.array([0, 0, 0, 1], np.int32),
...                np.array([1.0, 2.0, 9.0, 3.0]), 2)
>>> repeats_within(c).tolist()  # the second value for (0, 10) repeats the first
[False, True, False, False]
>>> suspects(c, np.array([15, 40])).tolist()
[True, True, False, True]
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from rackwatch.store.head import Chunk
from rackwatch.store.rollup import I32, I64

Bool = npt.NDArray[np.bool_]

NO_TS = -(2**63)


def repeats_within(chunk: Chunk) -> Bool:
    """Rows whose (series, ts) equals the row before: in a chunk sorted by (series, ts) with a
    stable sort, the first value that arrived comes first and the repeats follow it."""
    out = np.zeros(len(chunk), bool)
    if len(chunk) > 1:
        np.equal(chunk.ts[1:], chunk.ts[:-1], out=out[1:])
        out[1:] &= chunk.series[1:] == chunk.series[:-1]
    return out


def suspects(chunk: Chunk, latest_ts: I64) -> Bool:
    """Rows that are not newer than the newest instant already held for their series (the
    only ones that may repeat one). Costs O(series) when there are none, the usual case."""
    n = len(chunk.starts) - 1
    latest = np.full(n, NO_TS, np.int64)
    k = min(n, len(latest_ts))
    latest[:k] = latest_ts[:k]
    counts = chunk.counts
    has = np.flatnonzero(counts)
    first = chunk.ts[chunk.starts[has]]  # the oldest row of each series in the chunk
    if not (first <= latest[has]).any():
        return np.zeros(len(chunk), bool)
    out: Bool = chunk.ts <= latest[chunk.series]
    return out


def found_in(chunks: list[Chunk], series: I32, ts: I64) -> Bool:
    """Which (series[i], ts[i]) pairs occur in any of the chunks."""
    found = np.zeros(len(ts), bool)
    if not len(ts):
        return found
    lo, hi = int(ts.min()), int(ts.max())
    wanted = np.zeros(int(series.max()) + 1, bool)
    wanted[series] = True
    for chunk in chunks:
        k = min(len(wanted), len(chunk.starts) - 1)
        near = (chunk.ts >= lo) & (chunk.ts <= hi)
        near &= np.concatenate([wanted[:k], np.zeros(len(chunk.starts) - 1 - k, bool)])[
            chunk.series
        ]
        if near.any():
            found |= members(series, ts, chunk.series[near], chunk.ts[near])
    return found


def members(series: I32, ts: I64, in_series: I32, in_ts: I64) -> Bool:
    """Which (series[i], ts[i]) pairs are among the (in_series, in_ts) pairs.

    >>> members(np.array([1, 1, 2], np.int32), np.array([5, 6, 5]),
    ...         np.array([2, 1], np.int32), np.array([5, 6])).tolist()
    [False, True, True]
    """
    n_in = len(in_ts)
    if not len(ts):
        return np.zeros(0, bool)
    all_series = np.concatenate([in_series, series])
    all_ts = np.concatenate([in_ts, ts])
    source = np.concatenate([np.zeros(n_in, np.int8), np.ones(len(ts), np.int8)])
    order = np.lexsort((source, all_ts, all_series))  # the held pair sorts before its query
    s, t, src = all_series[order], all_ts[order], source[order]
    # Number the runs of equal pairs; a query row is found when its run holds a held row.
    same = (s[1:] == s[:-1]) & (t[1:] == t[:-1])
    run_id = np.cumsum(np.concatenate([[True], ~same])) - 1
    run_has_held = np.zeros(int(run_id[-1]) + 1, bool)
    run_has_held[run_id[src == 0]] = True
    hit = run_has_held[run_id] & (src == 1)
    out = np.zeros(len(ts), bool)
    out[order[hit] - n_in] = True
    return out
