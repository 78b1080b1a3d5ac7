"""Helpers for the energy tests (imported by name: tests/ has no packages): hand-made series
written into a real DuckDBStore, so the accounting's SQL runs over the real tiers."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import numpy.typing as npt

from rackwatch.model import Batch, SeriesRegistry
from rackwatch.store.base import EntityRecord
from rackwatch.store.duckdb import DuckDBStore

MIN = 60_000
HOUR = 3_600_000
DAY = 86_400_000
MONDAY_7H = 1_767_596_400_000
"""2026-01-05T07:00:00Z, a Monday."""

Series = Mapping[tuple[str, str], tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]]


def steady(
    start_ms: int, end_ms: int, step_ms: int, watts: float
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    ts = np.arange(start_ms, end_ms, step_ms, dtype=np.int64)
    return ts, np.full(len(ts), float(watts))


def join(
    *parts: tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]],
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def without(
    part: tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]], start_ms: int, end_ms: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """The samples outside [start, end): a hole."""
    ts, value = part
    keep = (ts < start_ms) | (ts >= end_ms)
    return ts[keep], value[keep]


def nulled(
    part: tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]], start_ms: int, end_ms: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """The samples in [start, end) read NULL (NaN)."""
    ts, value = part
    value = value.copy()
    value[(ts >= start_ms) & (ts < end_ms)] = np.nan
    return ts, value


def open_store(path: Path, now_ms: int) -> tuple[DuckDBStore, SeriesRegistry]:
    registry = SeriesRegistry()
    return DuckDBStore(path, registry, clock=lambda: now_ms, wal_sync_seconds=0), registry


def write(
    store: DuckDBStore,
    registry: SeriesRegistry,
    series: Series,
    inventory: Iterable[EntityRecord] = (),
) -> None:
    for (entity, metric), (ts, value) in series.items():
        sid = registry.intern(entity, metric)
        store.write(Batch.of(ts, np.full(len(ts), sid), value))
    store.upsert_inventory(list(inventory))
    store.flush()
