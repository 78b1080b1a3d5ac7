"""The like index of each GPU machine (seed 004's `like_index`: three levels by use) and the
top 3 machines by free GPU memory (`like_server`).

**Like index.** A machine's load is the highest of three ratios: its cards' mean utilisation,
the share of its GPU memory in use (used over total, all cards together) and its CPU
utilisation; the ones not known are left out. The level:

- `high` (recommended): load below `high_below_ratio` (0.3): every signal shows room;
- `low` (not recommended): load at or above `low_from_ratio` (0.7): one signal is near full;
- `medium` in between; None when none of the three is known, or the machine is excluded
  (offline, in maintenance, failed: `availability.exclusion`).

The highest signal, not a mean: a machine whose GPUs idle with their memory full cannot take a
job, and a mean would call it half free.

**like_server.** The available machines with free GPU memory (> 0), most free memory on the
cards that are not busy (utilisation under `busy_card_ratio`, or unknown) first: seed 004
asks for the most *available* GPU memory, and memory free on a card computing flat out is not
(a job there runs at half speed). Ties broken by all free memory, then the lower mean card
utilisation, then the path, so the answer is the same for the same values.

>>> t = LikeThresholds()
>>> [None if x is None else str(x) for x in levels(np.array([0.1, 0.3, 0.69, 0.7, np.nan]), t)]
['high', 'medium', 'medium', 'low', None]
"""

from __future__ import annotations

import enum
import math
import warnings
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from rackwatch.engine.recommend.fleet import F64, Fleet

TOP_N = 3


class Like(enum.StrEnum):
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


@dataclass(frozen=True, slots=True)
class LikeThresholds:
    """The like index's levels and when a card counts as busy (module docstring).

    `busy_card_ratio`: a card whose utilisation is at or above it is busy: placement does not
    offer it, whatever memory it has free (a second job on a card computing flat out runs at
    half speed, and so does the first)."""

    high_below_ratio: float = 0.3
    low_from_ratio: float = 0.7
    busy_card_ratio: float = 0.8

    def __post_init__(self) -> None:
        values = (self.high_below_ratio, self.low_from_ratio, self.busy_card_ratio)
        if not all(math.isfinite(v) and 0.0 < v <= 1.0 for v in values):
            raise ValueError(f"like thresholds must be ratios in (0, 1], got {values}")
        if self.high_below_ratio > self.low_from_ratio:
            raise ValueError(
                f"high_below_ratio ({self.high_below_ratio}) must not exceed "
                f"low_from_ratio ({self.low_from_ratio})"
            )


@dataclass(frozen=True, slots=True)
class Signals:
    """Per machine: its cards' mean utilisation, its GPU memory used over total, its CPU
    utilisation, the load (the highest known of the three) and its free GPU memory (all
    cards with a known free size; NaN when none)."""

    gpu_utilization: F64
    gpu_memory_utilization: F64
    cpu_utilization: F64
    load: F64
    free_bytes: F64
    total_bytes: F64
    idle_free_bytes: F64
    """Free memory on the cards that are not busy (NaN when no card's free size is known)."""


def signals(fleet: Fleet, busy_card_ratio: float = 0.8) -> Signals:
    """The machines' signals: O(cards) NumPy."""
    n = len(fleet.machines)
    rows = fleet.card_machine
    util = fleet.card_utilization
    gpu_util = mean_by(rows, util, n)
    both = ~np.isnan(fleet.card_used_bytes) & ~np.isnan(fleet.card_total_bytes)
    used = np.bincount(rows[both], fleet.card_used_bytes[both], minlength=n)
    total = np.bincount(rows[both], fleet.card_total_bytes[both], minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        gpu_memory = np.where(total > 0, used / total, np.nan)
    free = sum_by(rows, fleet.card_free_bytes, n)
    busy = np.nan_to_num(util, nan=0.0) >= busy_card_ratio
    idle_free = sum_by(rows, np.where(busy, 0.0, fleet.card_free_bytes), n)
    sizes = sum_by(rows, fleet.card_total_bytes, n)
    stacked = np.vstack([gpu_util, gpu_memory, fleet.cpu_utilization])
    with warnings.catch_warnings():  # a machine that sent nothing yet: all NaN, load NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        load = np.nanmax(stacked, axis=0) if n else np.zeros(0)
    return Signals(gpu_util, gpu_memory, fleet.cpu_utilization, load, free, sizes, idle_free)


def levels(load: F64, thresholds: LikeThresholds) -> list[Like | None]:
    """The like index of each load (None for NaN)."""
    out: list[Like | None] = []
    for x in load.tolist():
        if math.isnan(x):
            out.append(None)
        elif x < thresholds.high_below_ratio:
            out.append(Like.HIGH)
        elif x >= thresholds.low_from_ratio:
            out.append(Like.LOW)
        else:
            out.append(Like.MEDIUM)
    return out


def level_why(level: Like | None, s: Signals, row: int, thresholds: LikeThresholds) -> str:
    """The like index in words: the signals, and which one decided."""
    named = [
        ("GPUs", float(s.gpu_utilization[row]), "busy"),
        ("GPU memory", float(s.gpu_memory_utilization[row]), "used"),
        ("CPU", float(s.cpu_utilization[row]), "busy"),
    ]
    known = [(name, x, verb) for name, x, verb in named if not math.isnan(x)]
    if level is None or not known:
        return "no GPU, GPU memory or CPU value yet"
    said = ", ".join(f"{name} {pct(x)} {verb}" for name, x, verb in known)
    name, top, _ = max(known, key=lambda k: k[1])
    if level is Like.HIGH:
        return f"{said}: all under {pct(thresholds.high_below_ratio)}"
    if level is Like.LOW:
        return f"{said}: {name} at or above {pct(thresholds.low_from_ratio)}"
    return (
        f"{said}: {name} at {pct(top)}, between {pct(thresholds.high_below_ratio)} "
        f"and {pct(thresholds.low_from_ratio)}"
    )


def like_server(s: Signals, available: npt.NDArray[np.bool_], n: int = TOP_N) -> list[int]:
    """Rows of the top `n` available machines by free GPU memory (module docstring); rows
    are in path order, so the row breaks the last tie."""
    rows = np.flatnonzero(available & (np.nan_to_num(s.free_bytes, nan=0.0) > 0))
    idle_free = np.nan_to_num(s.idle_free_bytes[rows], nan=0.0)
    order = np.lexsort(
        (rows, unknown_last(s.gpu_utilization[rows]), -s.free_bytes[rows], -idle_free)
    )
    return [int(r) for r in rows[order][:n]]


def sum_by(rows: npt.NDArray[np.int32], x: F64, n: int) -> F64:
    """The sum of `x` per row (0..n-1) over its known values; NaN for a row with none."""
    known = ~np.isnan(x)
    count = np.bincount(rows[known], minlength=n)
    total = np.bincount(rows[known], x[known], minlength=n).astype(np.float64)
    return np.where(count > 0, total, np.nan)


def mean_by(rows: npt.NDArray[np.int32], x: F64, n: int) -> F64:
    """The mean of `x` per row (0..n-1) over its known values; NaN for a row with none."""
    known = ~np.isnan(x)
    count = np.bincount(rows[known], minlength=n)
    total = np.bincount(rows[known], x[known], minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def unknown_last(x: F64) -> F64:
    """A sort key for "lower first" that puts unknown values after every known one."""
    return np.nan_to_num(x, nan=np.inf)


def pct(x: float) -> str:
    """A ratio as a whole percentage, as the explanations write it.

    >>> pct(0.125), pct(1.0)
    ('12 %', '100 %')
    """
    return f"{x * 100:.0f} %"
