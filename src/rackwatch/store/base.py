"""The Store protocol and its query vocabulary: tiers, retention, queries and columnar results.

Three tiers hold the telemetry: `raw` (as sampled), `1m` and `1h` rollups (open, high, low,
close, avg, count, missing). A query names a range and a step; `choose_tier` picks the coarsest
tier that answers the step and still holds the range under its retention.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from rackwatch.errors import StoreError
from rackwatch.model import Batch, Event, SeriesKey

DAY_MS = 86_400_000


class Tier(enum.StrEnum):
    RAW = "raw"
    M1 = "1m"
    H1 = "1h"

    @property
    def width_ms(self) -> int:
        """Bucket width of the tier's rows; 0 for raw (rows are samples)."""
        return _WIDTH[self]


_WIDTH = {Tier.RAW: 0, Tier.M1: 60_000, Tier.H1: 3_600_000}

RAW_COLUMNS = ("value",)
ROLLUP_COLUMNS = ("open", "high", "low", "close", "avg", "count", "missing")


@dataclass(frozen=True, slots=True)
class Retention:
    """How long each tier keeps its rows, in ms (defaults: raw 7 d, 1m 90 d, 1h 5 y)."""

    raw_ms: int = 7 * DAY_MS
    m1_ms: int = 90 * DAY_MS
    h1_ms: int = 5 * 365 * DAY_MS

    def __post_init__(self) -> None:
        if min(self.raw_ms, self.m1_ms, self.h1_ms) <= 0:
            raise ValueError(f"retention periods must be positive: {self}")

    def of(self, tier: Tier) -> int:
        return {Tier.RAW: self.raw_ms, Tier.M1: self.m1_ms, Tier.H1: self.h1_ms}[tier]


def parse_tier(tier: Tier | str) -> Tier:
    try:
        return Tier(tier)
    except ValueError:
        names = ", ".join(t.value for t in Tier)
        raise StoreError(f"unknown tier {tier!r}: use one of {names}") from None


def choose_tier(
    step_ms: int | None,
    start_ms: int,
    now_ms: int,
    retention: Retention,
    kept_from: Mapping[Tier, int] | None = None,
) -> Tier:
    """The coarsest tier that answers `step_ms` and still holds data from `start_ms`.

    A tier answers a step when its bucket width divides the step (raw answers every step, and
    no step means raw rows). A tier holds data from `now_ms - its retention`, or, where
    `kept_from` says, from there: a store that applies retention in runs knows the cut of its
    last run (data loaded for a past period stays until a run drops it). If the range reaches
    back past what a tier holds, the next coarser tier that still holds it answers; past all
    of them, the coarsest one does.

    >>> r = Retention()
    >>> now = 100 * 86_400_000
    >>> [choose_tier(s, now - 3_600_000, now, r).value for s in (None, 5_000, 60_000, 900_000)]
    ['raw', 'raw', '1m', '1m']
    >>> choose_tier(3_600_000, now - 3_600_000, now, r).value
    '1h'
    >>> choose_tier(90_000, now, now, r).value  # 1-minute buckets cannot make 90 s ones
    'raw'
    >>> choose_tier(5_000, now - 8 * 86_400_000, now, r).value  # raw kept only 7 days
    '1m'
    >>> choose_tier(None, now - 91 * 86_400_000, now, r).value
    '1h'
    >>> choose_tier(None, now - 91 * 86_400_000, now, r, kept_from={Tier.RAW: 0}).value
    'raw'
    """
    if step_ms is not None and step_ms <= 0:
        raise StoreError(f"step must be a positive number of ms, got {step_ms}")
    tiers = list(Tier)
    fits = [
        t for t in tiers if t is Tier.RAW or (step_ms is not None and step_ms % t.width_ms == 0)
    ]
    best = fits[-1]
    for tier in tiers[tiers.index(best) :]:
        horizon = (
            kept_from[tier]
            if kept_from is not None and tier in kept_from
            else now_ms - retention.of(tier)
        )
        if start_ms >= horizon:
            return tier
    return Tier.H1


@dataclass(frozen=True, slots=True)
class Query:
    """Series matching `entity` (glob: `*` one segment, `**` any) and `metrics` (a glob or a
    list of names/globs; None = all), rows with ts in [start_ms, end_ms).

    `step_ms` picks the tier (see `choose_tier`); when it is coarser than the tier's own
    buckets, rows are merged into buckets of `step_ms` (aligned on the epoch). `tier` forces a
    tier instead of choosing one.
    """

    start_ms: int
    end_ms: int
    entity: str = "**"
    metrics: str | Sequence[str] | None = None
    step_ms: int | None = None
    tier: Tier | str | None = None

    def __post_init__(self) -> None:
        if self.end_ms < self.start_ms:
            raise StoreError(
                f"query range ends before it starts: start_ms={self.start_ms}, "
                f"end_ms={self.end_ms}; give end_ms >= start_ms"
            )
        if self.step_ms is not None and self.step_ms <= 0:
            raise StoreError(f"step must be a positive number of ms, got {self.step_ms}")
        if self.tier is not None:
            parse_tier(self.tier)
        if not self.entity:
            raise StoreError("entity pattern is empty; use '**' for every entity")


Array = npt.NDArray[Any]


@dataclass(frozen=True, slots=True)
class QueryResult:
    """Columnar answer: rows of every matched series, grouped by series, ordered by ts.

    Rows of `keys[i]` are `offsets[i]:offsets[i + 1]` in `ts` and in each of `columns`:
    `value` for raw rows; open/high/low/close/avg (float64) and count/missing (int64) for
    bucket rows, where `ts` is the bucket start and `bucket_ms` the width.
    """

    tier: Tier
    bucket_ms: int
    keys: tuple[SeriesKey, ...]
    series_ids: npt.NDArray[np.int32]
    offsets: npt.NDArray[np.int64]
    ts: npt.NDArray[np.int64]
    columns: Mapping[str, Array]

    def __len__(self) -> int:
        return len(self.ts)

    def __getitem__(self, column: str) -> Array:
        return self.ts if column == "ts" else self.columns[column]

    def rows(self, i: int) -> dict[str, Array]:
        """Columns (with `ts`) of the i-th series: views, not copies."""
        lo, hi = int(self.offsets[i]), int(self.offsets[i + 1])
        out = {"ts": self.ts[lo:hi]}
        out.update({name: col[lo:hi] for name, col in self.columns.items()})
        return out

    def __iter__(self) -> Iterator[tuple[SeriesKey, dict[str, Array]]]:
        for i, key in enumerate(self.keys):
            yield key, self.rows(i)


@dataclass(frozen=True, slots=True)
class Latest:
    """Last row written per matched series (value NaN if the last reading was NULL)."""

    keys: tuple[SeriesKey, ...]
    series_ids: npt.NDArray[np.int32]
    ts: npt.NDArray[np.int64]
    value: npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class EntityRecord:
    """An inventory entry: entity path, kind (server, fan, pdu, crac...) and static attributes."""

    path: str
    kind: str
    attributes: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StoreStats:
    n_series: int
    n_raw_rows: int
    """Raw samples in the tables, head excluded."""
    n_head_rows: int
    """Samples held in memory (and in the write-ahead log) waiting for an aligned flush."""
    n_rollup_1m_rows: int
    n_rollup_1h_rows: int
    n_events: int
    bytes_on_disk: int
    """Database file plus write-ahead logs."""
    used_bytes: int
    """Blocks in use inside the database file (free blocks excluded)."""
    log_bytes: int = 0
    """The write-ahead log of the head (included in bytes_on_disk)."""
    n_duplicates: int = 0
    """Samples dropped since the store was opened: their instant already had a value."""
    n_expired: int = 0
    """Samples dropped since the store was opened: older than what raw retention keeps."""


@dataclass(frozen=True, slots=True)
class StoreUsage:
    """What `StoreStats` says without counting rows: files and counters only, read without
    the store's lock (for `/status`, which must answer while queries run)."""

    bytes_on_disk: int
    log_bytes: int
    n_head_rows: int
    n_duplicates: int
    n_expired: int


@runtime_checkable
class Store(Protocol):
    """Time series at rest: raw samples, rollups, events and the inventory."""

    def write(self, batch: Batch) -> None: ...

    def write_events(self, events: Sequence[Event]) -> None: ...

    def upsert_inventory(self, entities: Sequence[EntityRecord]) -> None:
        """Write each entity over the stored one (`store.inventory.overlay`: a declared part
        survives a discovered write)."""
        ...

    def remove_inventory(self, paths: Sequence[str]) -> None: ...

    def inventory(self) -> list[EntityRecord]: ...

    def query(self, q: Query) -> QueryResult: ...

    def analytics(self) -> AbstractContextManager[Any]:
        """A read-only SQL session (a DuckDB connection, DuckDB's dialect) on one consistent
        snapshot, with the views of store/analytics.py: `series_keys`, `m1`, `h1`,
        `m1_named`, `h1_named`. Reports and energy accounting aggregate there."""
        ...

    def latest(self, entity: str = "**", metrics: str | Sequence[str] | None = None) -> Latest: ...

    def events(
        self,
        start_ms: int,
        end_ms: int,
        entity: str = "**",
        kinds: Sequence[str] | None = None,
        newest: int | None = None,
    ) -> list[Event]: ...

    def flush(self) -> None: ...

    def apply_retention(self, now_ms: int) -> dict[str, int]: ...

    def export_parquet(
        self,
        start_ms: int,
        end_ms: int,
        out_dir: Path,
        tiers: Sequence[Tier | str] = ...,
    ) -> list[Path]: ...

    def stats(self) -> StoreStats: ...

    def usage(self) -> StoreUsage: ...

    def close(self) -> None: ...
