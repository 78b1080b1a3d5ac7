"""Array primitives that run a per-series recursion along time for many series at once.

Every detector's state is updated by one of three kinds of recursion, each of which has a
closed form over a block of samples, so a block costs a few whole-array NumPy calls instead of
one Python step per sample:

- exponentially weighted averages, `v[t] = (1 - a[t]) v[t-1] + a[t] u[t]` (`ew_scan`): a
  cumulative product of the decays and a cumulative sum;
- the CUSUM / Lindley recursion `S[t] = max(0, S[t-1] + y[t])` (`lindley`): a cumulative sum
  less its running minimum;
- "the value at the last sample that did X" (`last_index`): a running maximum of indices.

Arrays are grids `(rows, columns)`: a row is one series (or device), its columns are its
samples in time order, and each row's state before the block comes as a 1-D array. The
results do not depend on how a stream is cut into blocks beyond floating-point rounding.

>>> a = np.full((1, 3), 0.5)
>>> ew_scan(np.array([0.0]), a, np.ones((1, 3))).round(3).tolist()
[[0.5, 0.75, 0.875]]
>>> lindley(np.array([0.0]), np.array([[1.0, -3.0, 2.0]])).tolist()
[[1.0, 0.0, 2.0]]
>>> last_index(np.array([[True, False, False, True]])).tolist()
[[0, 0, 0, 3]]
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]

MAX_DECAY = 0.5
"""Largest weight `a` a single sample may get in `ew_scan`; with `SCAN_WIDTH` it bounds the
cumulative decay of a block (2**-256), far from float64 underflow."""
SCAN_WIDTH = 256


def alpha(halflife: float | F64, steps: float | F64 = 1.0) -> F64:
    """Weight of a new sample in an average whose memory halves every `halflife` steps, when
    the sample stands for `steps` steps (time-aware decay): 1 - 2**(-steps / halflife).

    >>> float(alpha(1.0)), float(alpha(10.0, 10.0))
    (0.5, 0.5)
    """
    return np.asarray(-np.expm1(-np.log(2.0) * np.asarray(steps) / halflife), dtype=np.float64)


def ew_scan(v0: F64, a: F64, u: F64) -> F64:
    """`v[t] = (1 - a[t]) v[t-1] + a[t] u[t]` along each row from `v0`: the values after each
    column. A column with `a == 0` leaves the value as it is (its `u` is ignored, NaN or not).

    `a` must lie in [0, MAX_DECAY]. Cost: about six array passes; the rounding error is a few
    ulps of the largest |u - v0| of the block.
    """
    return _ew(v0, None, a, u)[0]


def ew_average(num0: F64, w0: F64, a: F64, u: F64) -> tuple[F64, F64]:
    """`ew_scan` of an average started from nothing, with its total weight (the same scan of
    1s from `w0`): `num / w` is the average without the start-up bias."""
    num, weight = _ew(num0, w0, a, u)
    assert weight is not None
    return num, weight


def _ew(v0: F64, w0: F64 | None, a: F64, u: F64) -> tuple[F64, F64 | None]:
    rows, cols = a.shape
    out = np.empty((rows, cols))
    weights = None if w0 is None else np.empty((rows, cols))
    v = np.array(v0, dtype=np.float64)
    w = None if w0 is None else np.array(w0, dtype=np.float64)
    for c0 in range(0, cols, SCAN_WIDTH):
        c1 = min(cols, c0 + SCAN_WIDTH)
        block = a[:, c0:c1]
        keep = np.cumprod(1.0 - block, axis=1)
        # Centred on the block's first value so that a large offset (1e9 ± 1) keeps its digits.
        pull = np.where(block > 0.0, block * (u[:, c0:c1] - v[:, None]), 0.0)
        out[:, c0:c1] = v[:, None] + keep * np.cumsum(pull / keep, axis=1)
        v = out[:, c1 - 1]
        if weights is not None and w is not None:
            weights[:, c0:c1] = 1.0 - keep * (1.0 - w[:, None])
            w = weights[:, c1 - 1]
    return out, weights


def lindley(s0: F64, y: F64) -> F64:
    """`S[t] = max(0, S[t-1] + y[t])` along each row from `s0 >= 0` (one-sided CUSUM)."""
    total = s0[:, None] + np.cumsum(y, axis=1)
    return np.asarray(total - np.minimum(np.minimum.accumulate(total, axis=1), 0.0))


def last_index(mask: Bools) -> I64:
    """Column of the last True at or before each column of its row; -1 where none yet."""
    cols = np.arange(mask.shape[1], dtype=np.int64)
    return np.maximum.accumulate(np.where(mask, cols, -1), axis=1)


def prev_index(mask: Bools) -> I64:
    """Column of the last True strictly before each column of its row; -1 where none."""
    return shift_right(last_index(mask), np.full(mask.shape[0], -1, dtype=np.int64))


def shift_right(grid: npt.NDArray[Any], first: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """Each row moved one column right, `first` in column 0: the values *before* each sample
    when `grid` holds the values after it."""
    out = np.empty_like(grid)
    out[:, 0] = first
    out[:, 1:] = grid[:, :-1]
    return out


def at(grid: npt.NDArray[Any], index: I64, missing: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """`grid[row, index[row, col]]`, or `missing[row]` where the index is -1."""
    found = grid[np.arange(grid.shape[0])[:, None], np.maximum(index, 0)]
    return np.where(index >= 0, found, missing[:, None])


def squash(severity: F64, half: float, width: float) -> F64:
    """Map a severity >= 0 onto a score in [0, 1): smooth, increasing, 0 at 0 and 0.5 at
    `half`; `width` sets how sharply it climbs (a logistic curve rescaled to start at 0).

    >>> squash(np.array([0.0, 5.0, 6.0, 8.0]), 5.0, 0.5).round(3).tolist()
    [0.0, 0.5, 0.881, 0.998]
    """
    base = 1.0 / (1.0 + np.exp(half / width))
    raw = 1.0 / (1.0 + np.exp((half - np.asarray(severity)) / width))  # severity >= 0: no overflow
    return np.asarray(np.maximum((raw - base) / (1.0 - base), 0.0), dtype=np.float64)


def group_rows(keys: npt.NDArray[Any], ts: I64) -> tuple[I64, npt.NDArray[Any], I64, I64]:
    """Lay samples out as a ragged grid: one row per distinct key, its samples by ts.

    Returns `(order, row_keys, row, col)`: sample `order[i]` goes to `(row[i], col[i])`,
    `row_keys[r]` is row r's key. Ties in ts keep their input order.
    """
    order = np.lexsort((ts, keys)).astype(np.int64)
    sorted_keys = keys[order]
    n = len(order)
    if n == 0:
        empty = np.zeros(0, dtype=np.int64)
        return order, sorted_keys, empty, empty
    starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
    counts = np.diff(np.r_[starts, n])
    row = np.repeat(np.arange(len(starts), dtype=np.int64), counts)
    col = np.arange(n, dtype=np.int64) - np.repeat(starts, counts)
    return order, sorted_keys[starts], row, col
