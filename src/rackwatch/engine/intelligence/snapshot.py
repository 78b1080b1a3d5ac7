"""What the intelligence consumer shows the API: one immutable snapshot, replaced whole after
each batch (the worker thread builds it, the event loop reads it; no lock)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from rackwatch.engine.intelligence.anomalies import OpenAnomaly
from rackwatch.engine.intelligence.fans import FanPrediction


@dataclass(frozen=True, slots=True)
class Stats:
    n_batches: int = 0
    """Calls of `process` (each may hold several coalesced bus batches)."""
    n_messages: int = 0
    n_samples: int = 0
    n_scored: int = 0
    n_explained: int = 0
    n_events: int = 0
    last_cpu_s: float = 0.0
    """Thread CPU of the last call."""
    cpu_s: float = 0.0
    """Thread CPU of every call since start."""
    max_cpu_s: float = 0.0


@dataclass(frozen=True, slots=True)
class AppSignals:
    """A scraped application's seed 002 signals from its newest scrape that had any."""

    ts_ms: int
    """That scrape's instant."""
    values: Mapping[str, float]
    """Signal (`cpu_usage`, `jvm_memory_usage`, `request_count`, `response_time`) -> value;
    a signal that scrape did not give (no request, no earlier scrape) is absent."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the API reads, replaced whole after each batch (no lock needed)."""

    clocks: Mapping[str, int] = field(default_factory=dict)
    """Source -> its newest sample (ms): each source's own clock (clocks.py)."""
    source_of: Mapping[str, str] = field(default_factory=dict)
    """Entity (and its racks, clusters, room) -> the source that speaks for it."""
    entities: frozenset[str] = frozenset()
    open_anomalies: tuple[OpenAnomaly, ...] = ()
    anomaly_scores: dict[str, dict[str, float]] = field(default_factory=dict)
    predictions: dict[str, FanPrediction] = field(default_factory=dict)
    app_signals: Mapping[str, AppSignals] = field(default_factory=dict)
    """Entity (a scrape target's name) -> its application signals (healthview.AppSignalTable)."""
    incidents: tuple[dict[str, object], ...] = ()
    """The open incidents' attributes (engine/diagnosis/incident.py), newest first."""
    stats: Stats = Stats()

    @property
    def now_ms(self) -> int | None:
        """The newest sample of any source (None: none yet)."""
        return max(self.clocks.values(), default=None)

    def now_of(self, entity: str) -> int | None:
        """The clock of the source that speaks for `entity` (None: never heard of it)."""
        source = self.source_of.get(entity)
        return None if source is None else self.clocks.get(source)
