"""The in-memory head: recent raw samples waiting to be flushed to the database.

Samples arrive time-major (every series at one instant, then the next); the database compresses
them well only series-major, and best when every series' run starts on a 2048-row boundary
(bit-packing groups; ALP vectors are 1024). So the head keeps chunks sorted by series, and a
flush takes, per series, the largest multiple of `group` of its oldest samples: each run then
fills whole groups, its timestamps become constant deltas and its values share one ALP vector.
The rest stays in the head (and in the write-ahead log) for the next flush.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from rackwatch.store.rollup import F64, I32, I64, is_sorted_by_series_ts, sort_order

GROUP_ROWS = 2048
"""DuckDB bit-packing group size; a multiple of the ALP vector (1024)."""

_MERGE_FANIN = 64
"""Small chunks merged into one once this many accumulate, so a flush copies few pieces."""


@dataclass(frozen=True, slots=True)
class Chunk:
    """Rows sorted by (series, ts); rows of series s are `starts[s]:starts[s + 1]`."""

    ts: I64
    series: I32
    value: F64
    starts: I64

    def __len__(self) -> int:
        return len(self.ts)

    @property
    def counts(self) -> I64:
        counts: I64 = np.diff(self.starts)
        return counts

    def take(self, keep: npt.NDArray[np.bool_]) -> Chunk:
        """The rows where `keep` (still sorted by (series, ts))."""
        series = self.series[keep]
        return Chunk(self.ts[keep], series, self.value[keep], _starts(series, len(self.starts) - 1))


def _starts(series: I32, n_series: int) -> I64:
    starts = np.zeros(n_series + 1, np.int64)
    np.cumsum(np.bincount(series, minlength=n_series), out=starts[1:])
    return starts


def period(series: I32) -> int:
    """The length p of the repeating pattern of series ids, if the rows are whole repeats of p
    distinct ids (as batches from a grid of instants x series are); else 0.

    >>> period(np.array([3, 1, 2, 3, 1, 2], np.int32)), period(np.array([3, 1, 3, 3], np.int32))
    (3, 0)
    """
    n = len(series)
    if n < 2:
        return n
    again = np.flatnonzero(series[1:] == series[0])
    p = int(again[0]) + 1 if len(again) else n
    if n % p or len(np.unique(series[:p])) != p:
        return 0
    if not (series.reshape(-1, p) == series[:p]).all():
        return 0
    return p


def make_chunk(ts: I64, series: I32, value: F64, n_series: int) -> Chunk:
    """Sort rows by (series, ts) into a chunk.

    Rows that repeat one pattern of series ids (time-major grids, the common case) are sorted
    by transposing the grid, a cache-friendly copy; others by a stable sort on the id.
    """
    p = period(series)
    if p > 1 and len(series) > p:
        cols = np.argsort(series[:p], kind="stable")

        def transpose(a: npt.NDArray[Any]) -> npt.NDArray[Any]:
            return np.ascontiguousarray(a.reshape(-1, p).T[cols]).reshape(-1)

        k = len(series) // p
        instants = ts[::p]
        ts_grid = ts.reshape(k, p)
        if (ts_grid == instants[:, None]).all():  # one instant per row: every series alike
            ts_t = np.tile(instants, p)
            in_order = not (instants[1:] < instants[:-1]).any()
        else:
            ts_t = transpose(ts)
            in_order = False
        ids = series[:p][cols]
        series_t = np.repeat(ids, k)
        if in_order or is_sorted_by_series_ts(series_t, ts_t):
            starts = np.zeros(n_series + 1, np.int64)
            starts[ids + 1] = k
            np.cumsum(starts, out=starts)
            return Chunk(ts_t, series_t, transpose(value), starts)
    order = sort_order(series, ts)
    if order is not None:
        ts, series, value = ts[order], series[order], value[order]
    return Chunk(ts, series, value, _starts(series, n_series))


def _padded_counts(chunk: Chunk, n_series: int) -> I64:
    out = np.zeros(n_series, np.int64)
    counts = chunk.counts
    out[: len(counts)] = counts
    return out


def _padded_starts(chunk: Chunk, n_series: int) -> I64:
    """Where each of `n_series` series' rows start in the chunk (its end for the series that
    came after the chunk was made)."""
    out = np.full(n_series, len(chunk), np.int64)
    k = min(n_series, len(chunk.starts) - 1)
    out[:k] = chunk.starts[:k]
    return out


def _gather(
    chunks: list[Chunk],
    series_order: npt.NDArray[np.intp],
    lo: I64,
    hi: I64,
    into: _Buffers | None = None,
) -> tuple[I64, I32, F64]:
    """Rows lo[c, s]:hi[c, s] (relative to each series' rows) of every chunk, series by series
    in `series_order`, chunks in order. One copy, made of contiguous pieces, into views of
    `into` when given."""
    n_chunks = len(chunks)
    # chunks x series; a chunk made before a series was registered has no rows of it
    starts = np.stack([_padded_starts(c, lo.shape[1]) for c in chunks])
    # Pieces in output order: series-major, then chunk; empty ones dropped.
    a = (starts + lo)[:, series_order].T.reshape(-1)
    b = (starts + hi)[:, series_order].T.reshape(-1)
    which = np.tile(np.arange(n_chunks), len(series_order))
    keep = b > a
    pieces = list(zip(which[keep].tolist(), a[keep].tolist(), b[keep].tolist(), strict=True))
    if not pieces:
        return np.empty(0, np.int64), np.empty(0, np.int32), np.empty(0, np.float64)
    total = int((b[keep] - a[keep]).sum())
    targets = into.views(total) if into is not None else (None, None, None)
    cols: list[npt.NDArray[Any]] = []
    for name, target in zip(("ts", "series", "value"), targets, strict=True):
        arrays = [getattr(ch, name) for ch in chunks]
        cols.append(np.concatenate([arrays[c][i:j] for c, i, j in pieces], out=target))
    return cols[0], cols[1], cols[2]


class _Buffers:
    """Columns reused from flush to flush. A flush copies up to `flush_rows` samples; fresh
    memory for that every time costs page faults (expensive on VMs), reused memory does not."""

    def __init__(self) -> None:
        self._cols = (np.empty(0, np.int64), np.empty(0, np.int32), np.empty(0, np.float64))

    def views(self, n: int) -> tuple[I64, I32, F64]:
        if len(self._cols[0]) < n:
            size = max(n, len(self._cols[0]) * 5 // 4)
            self._cols = (
                np.empty(size, np.int64),
                np.empty(size, np.int32),
                np.empty(size, np.float64),
            )
        ts, series, value = self._cols
        return ts[:n], series[:n], value[:n]


class Head:
    """Chunks of recent samples, oldest first. Not thread-safe: the store holds its lock."""

    def __init__(self) -> None:
        self.chunks: list[Chunk] = []
        self.n_rows = 0
        self._n_small = 0
        self._flush_buffers = _Buffers()

    def add(self, chunk: Chunk) -> None:
        if not len(chunk):
            return
        self.chunks.append(chunk)
        self.n_rows += len(chunk)
        self._n_small += 1
        if self._n_small >= _MERGE_FANIN:
            tail = self.chunks[-self._n_small :]
            del self.chunks[-self._n_small :]
            self.chunks.append(merge(tail))
            self._n_small = 0

    def n_series(self) -> int:
        return max((len(c.starts) - 1 for c in self.chunks), default=0)

    def counts(self) -> I64:
        n = self.n_series()
        total = np.zeros(n, np.int64)
        for chunk in self.chunks:
            total += _padded_counts(chunk, n)
        return total

    def split(
        self,
        series_order: npt.NDArray[np.intp],
        group: int | None = GROUP_ROWS,
        older: Chunk | None = None,
    ) -> tuple[tuple[I64, I32, F64], Chunk]:
        """Rows to flush (series in `series_order`, each run a multiple of `group` of its oldest
        rows; all rows when `group` is None) and the chunk that stays. `older` adds rows held
        elsewhere (stored but not yet in aligned runs) in front of the head's. Leaves the head
        as is. The rows to flush are views of buffers that the next split reuses."""
        chunks = [c for c in ([older] if older is not None else []) + self.chunks if len(c)]
        n = max((len(c.starts) - 1 for c in chunks), default=0)
        if not chunks:
            empty = (np.empty(0, np.int64), np.empty(0, np.int32), np.empty(0, np.float64))
            return empty, make_chunk(*empty, 0)
        series_order = series_order[series_order < n]
        counts = np.stack([_padded_counts(c, n) for c in chunks])  # chunks x series
        total = counts.sum(axis=0)
        take = total if group is None else total // group * group
        before = np.cumsum(counts, axis=0) - counts  # rows of the series in earlier chunks
        cut = np.clip(take - before, 0, counts)  # rows taken from each chunk
        out = _gather(chunks, series_order, np.zeros_like(cut), cut, self._flush_buffers)
        kept = _gather(chunks, np.arange(n), cut, counts)
        kept_chunk = Chunk(*kept, _starts(kept[1], n))
        if not (
            is_sorted_by_series_ts(kept_chunk.series, kept_chunk.ts)
            and _runs_sorted(out[1], out[0])
            and _boundary_sorted(out, kept_chunk, take)
        ):
            return _split_sorted(chunks, series_order, take)
        return out, kept_chunk

    def drop_before(self, cut_ms: int) -> int:
        """Drop samples older than `cut_ms` (retention); return how many were dropped."""
        dropped = 0
        kept = []
        for chunk in self.chunks:
            keep = chunk.ts >= cut_ms
            n_old = len(chunk) - int(keep.sum())
            if n_old:
                dropped += n_old
                series = chunk.series[keep]
                chunk = Chunk(
                    chunk.ts[keep],
                    series,
                    chunk.value[keep],
                    _starts(series, len(chunk.starts) - 1),
                )
            if len(chunk):
                kept.append(chunk)
        self.chunks = kept
        self.n_rows -= dropped
        return dropped

    def replace(self, chunk: Chunk) -> None:
        self.chunks = [chunk] if len(chunk) else []
        self.n_rows = len(chunk)
        self._n_small = 0


def in_whole_runs(series: I32, group: int = GROUP_ROWS) -> npt.NDArray[np.bool_]:
    """For rows where each series' rows are together and in time order (the series in any
    order): which are among the oldest whole multiple of `group` rows of their series (the
    rows that fill aligned runs).

    >>> in_whole_runs(np.array([1, 1, 1, 1, 0, 0, 0], np.int32), group=2).tolist()
    [True, True, True, True, True, True, False]
    """
    n = len(series)
    if not n:
        return np.zeros(0, bool)
    starts = np.flatnonzero(np.concatenate(([True], series[1:] != series[:-1])))
    lengths = np.diff(np.append(starts, n))
    position = np.arange(n) - np.repeat(starts, lengths)
    out: npt.NDArray[np.bool_] = position < np.repeat(lengths // group * group, lengths)
    return out


def _split_sorted(
    chunks: list[Chunk], series_order: npt.NDArray[np.intp], take: I64
) -> tuple[tuple[I64, I32, F64], Chunk]:
    """Slow path of `Head.split` when a series' samples arrived out of time order across
    chunks."""
    whole = merge(chunks)  # sorted by (series, ts)
    n = len(whole.starts) - 1
    zero = np.zeros((1, n), np.int64)
    out = _gather([whole], series_order, zero, take[None, :])
    kept = _gather([whole], np.arange(n), take[None, :], whole.counts[None, :])
    return out, Chunk(*kept, _starts(kept[1], n))


def select_rows(
    chunks: list[Chunk], wanted: npt.NDArray[np.bool_], start_ms: int, end_ms: int
) -> tuple[I64, I32, F64]:
    """Rows of series where `wanted[series]`, with ts in [start_ms, end_ms), in chunk order."""
    parts = []
    for chunk in chunks:
        w = np.zeros(len(chunk.starts) - 1, bool)
        k = min(len(w), len(wanted))
        w[:k] = wanted[:k]
        mask = w[chunk.series] & (chunk.ts >= start_ms) & (chunk.ts < end_ms)
        if mask.any():
            parts.append((chunk.ts[mask], chunk.series[mask], chunk.value[mask]))
    if not parts:
        return np.empty(0, np.int64), np.empty(0, np.int32), np.empty(0, np.float64)
    return (
        np.concatenate([p[0] for p in parts]),
        np.concatenate([p[1] for p in parts]),
        np.concatenate([p[2] for p in parts]),
    )


def merge(chunks: list[Chunk]) -> Chunk:
    """One chunk from several (oldest first), series by series."""
    if len(chunks) == 1:
        return chunks[0]
    n = max(len(c.starts) - 1 for c in chunks)
    counts = np.stack([_padded_counts(c, n) for c in chunks])
    ts, series, value = _gather(chunks, np.arange(n), np.zeros_like(counts), counts)
    order = sort_order(series, ts)  # None unless samples of a series came out of time order
    if order is not None:
        ts, series, value = ts[order], series[order], value[order]
    return Chunk(ts, series, value, _starts(series, n))


def _runs_sorted(series: I32, ts: I64) -> bool:
    """Within each run of equal series ids, ts does not decrease (runs may be in any order)."""
    if len(ts) < 2:
        return True
    return not ((ts[1:] < ts[:-1]) & (series[1:] == series[:-1])).any()


def _boundary_sorted(out: tuple[I64, I32, F64], kept: Chunk, take: I64) -> bool:
    """The last flushed sample of each series is not newer than its first kept one."""
    o_ts, o_series, _ = out
    if not len(o_ts) or not len(kept):
        return True
    ends = np.flatnonzero(np.append(o_series[1:] != o_series[:-1], True))
    last = np.full(len(take), np.iinfo(np.int64).min)
    last[o_series[ends]] = o_ts[ends]
    first = np.full(len(take), np.iinfo(np.int64).max)
    nonempty = np.flatnonzero(kept.counts)
    first[nonempty] = kept.ts[kept.starts[nonempty]]
    return bool((last <= first).all())
