"""The intelligence consumer: anomaly scores, fan wear and health on `rackwatch run`'s stream.

Wiring (app.py)::

    intelligence = Intelligence(bus, registry, alerts=alert_engine)
    task = asyncio.create_task(intelligence.run())   # consumes `telemetry.>` until the bus closes
    await intelligence.ready.wait()
    ...
    await intelligence.settle()                      # at stop, before the bus closes

For the API::

    intelligence.snapshot -> Snapshot      # open anomalies, fan predictions, counters (atomic)
    await intelligence.health() -> HealthReport   # every entity now; cached `health_cache_s`

Each telemetry batch is scored by `IntelligenceCore.process` (the anomaly stage, then the fan
stage), whose events go on the bus as `events.<kind>` (`anomaly.started`, `anomaly.ended`,
`prediction.fan_failure`, `prediction.cleared`), where the store writer keeps them. The work
is CPU-bound NumPy (about 25 ms per 5-s step at 2,000 servers, bench/bench_intelligence.py),
so it runs in a worker thread and never holds up the event loop that drives the fans; the
batches that arrive meanwhile are taken together on the next call (at most `max_coalesce`),
which changes no score (the detectors do not depend on how the stream is cut). Every
`health_interval_s` of sample time the health of every entity goes out as `health_score`
telemetry on `telemetry.intelligence`, so the store keeps its history (the alert engine is
told to ignore that source: the samples are derived, not a device speaking). The consumer
skips its own source.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from rackwatch.bus import Bus, Subscription, subjects
from rackwatch.engine.alerts.lifecycle import Alert
from rackwatch.engine.anomaly import DetectorConfig, ResidualModel, ResidualScorer
from rackwatch.engine.diagnosis import DiagnosisConfig, DiagnosisStage
from rackwatch.engine.health import DEFAULT_HEALTH, HealthParams
from rackwatch.engine.intelligence.anomalies import AnomalyStage
from rackwatch.engine.intelligence.clocks import SourceClocks
from rackwatch.engine.intelligence.fans import FanStage
from rackwatch.engine.intelligence.healthview import AppSignalTable, HealthReport, health_now
from rackwatch.engine.intelligence.roles import DEFAULT_SKIP, HEALTH_METRIC, SeriesRoles
from rackwatch.engine.intelligence.snapshot import Snapshot, Stats
from rackwatch.engine.predict import DEFAULT_FAN_WEAR, FanWearParams
from rackwatch.engine.states import DeviceState
from rackwatch.model import Batch, Event, SeriesRegistry

log = logging.getLogger(__name__)

SOURCE = "intelligence"
"""`telemetry.intelligence`: the health samples."""
ANOMALY_METRIC = "anomaly_score"
TTF_METRIC = "time_to_failure_seconds"


@dataclass(frozen=True, slots=True)
class IntelligenceConfig:
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    skip_metrics: tuple[str, ...] = DEFAULT_SKIP
    """Gauges not scored (on top of counters, states and commands): see roles.py."""
    explain_window_s: float = 600.0
    """A follower's anomaly starting this soon after its driver moved is explained (0: off)."""
    fan_wear: FanWearParams = DEFAULT_FAN_WEAR
    prediction_shift_s: float = 900.0
    prediction_shift_ratio: float = 0.25
    diagnosis: DiagnosisConfig = field(default_factory=DiagnosisConfig)
    health: HealthParams = DEFAULT_HEALTH
    health_horizon_s: float = 3600.0
    health_interval_s: float = 60.0
    """Sample time between `health_score` samples (0: none are published)."""
    health_cache_s: float = 5.0
    """Wall seconds an on-demand health report is reused."""
    max_coalesce: int = 120
    """Most batches scored in one call when the consumer is behind."""
    in_thread: bool = True
    """Score in a worker thread (False: on the loop, for tests that want one thread)."""


@dataclass(frozen=True, slots=True)
class ModelInUse:
    """The learned model the stream scores with (engine/intelligence/retrain.py)."""

    version: str
    trained_at_ms: int
    n_devices: int


class AlertView(Protocol):
    """What the health reads of the alert engine (`AlertEngine`)."""

    def active_alerts(self) -> list[Alert]: ...

    def states(self) -> dict[str, DeviceState]: ...


class IntelligenceCore:
    """The synchronous part: one batch in, events out; then `snapshot()`. One thread at a
    time (the consumer's worker)."""

    def __init__(self, registry: SeriesRegistry, config: IntelligenceConfig) -> None:
        self.registry = registry
        self.config = config
        self.roles = SeriesRoles(registry, config.skip_metrics)
        self.anomalies = AnomalyStage(
            self.roles, config.detector, explain_window_ms=round(config.explain_window_s * 1000)
        )
        self.fans = FanStage(
            self.roles,
            config.fan_wear,
            shift_s=config.prediction_shift_s,
            shift_ratio=config.prediction_shift_ratio,
        )
        self.diagnosis = DiagnosisStage(registry, self.roles.load_entities, config.diagnosis)
        self.clocks = SourceClocks(self.roles)
        self.model: ModelInUse | None = None
        self._entities: frozenset[str] = frozenset()
        self._n_entity_series = 0
        self._stats = Stats()
        self.app_signals = AppSignalTable(self.roles)
        """Seed 002's application signals of scraped applications (healthview.py)."""

    def process(self, batch: Batch, source: str = "", n_messages: int = 1) -> list[Event]:
        """Score one batch of `source` (`telemetry.<source>`); the events, time order."""
        began = time.thread_time()
        if self.roles.follow():
            self._follow_entities()
        self.clocks.observe(batch, source)
        self.app_signals.observe(batch)
        events = self.anomalies.process(batch) + self.fans.process(batch)
        events += self.diagnosis.process(batch, events)
        events.sort(key=lambda e: e.ts)
        cpu = time.thread_time() - began
        s = self._stats
        self._stats = Stats(
            n_batches=s.n_batches + 1,
            n_messages=s.n_messages + n_messages,
            n_samples=s.n_samples + len(batch),
            n_scored=self.anomalies.n_scored,
            n_explained=self.anomalies.n_explained,
            n_events=s.n_events + len(events),
            last_cpu_s=cpu,
            cpu_s=s.cpu_s + cpu,
            max_cpu_s=max(s.max_cpu_s, cpu),
        )
        return events

    def process_many(self, batches: Sequence[tuple[str, Batch, int]]) -> list[Event]:
        """`process` for each (source, batch, messages in it), in order."""
        return [e for source, batch, n in batches for e in self.process(batch, source, n)]

    def use_model(self, model: ResidualModel, version: str, trained_at_ms: int) -> None:
        """Score CPU temperatures against `model` (the learned physics) from the next batch."""
        self.anomalies.use_residual(ResidualScorer(model, self.registry))
        self.model = ModelInUse(version, trained_at_ms, len(model.entities))

    def _follow_entities(self) -> None:
        roles = self.roles
        new = {
            roles.entity[sid]
            for sid in range(self._n_entity_series, len(roles))
            if roles.metric[sid] != HEALTH_METRIC
        }
        self._n_entity_series = len(roles)
        if not new <= self._entities:
            self._entities = self._entities | new

    def snapshot(self) -> Snapshot:
        return Snapshot(
            clocks=dict(self.clocks.now),
            source_of=self.clocks.source_of,
            entities=self._entities,
            open_anomalies=tuple(
                sorted(self.anomalies.all_open(), key=lambda a: (-a.start_ms, a.entity))
            ),
            anomaly_scores=self.anomalies.entity_scores(),
            predictions=dict(self.fans.predictions),
            app_signals=self.app_signals.latest(),
            incidents=tuple(
                i.attributes()
                for i in sorted(self.diagnosis.open_incidents(), key=lambda i: -i.start_ms)
            ),
            stats=self._stats,
        )


class Intelligence:
    """The async shell around `IntelligenceCore`; see the module docstring."""

    def __init__(
        self,
        bus: Bus,
        registry: SeriesRegistry,
        config: IntelligenceConfig | None = None,
        *,
        alerts: AlertView | None = None,
        max_pending: int = 10_000,
    ) -> None:
        self.bus = bus
        self.registry = registry
        self.config = config or IntelligenceConfig()
        self.alerts = alerts
        self.core = IntelligenceCore(registry, self.config)
        self.snapshot = Snapshot()
        self.ready = asyncio.Event()
        self._max_pending = max_pending
        self._subscription: Subscription | None = None
        self.n_health_samples = 0
        """`health_score` samples published since start."""
        self.publishes_health_of: Callable[[str], bool] = _every_entity
        """Whose `health_score` is published: a detect worker of one partition among several
        sees only its racks, so the clusters and the room are not its to score."""
        self._busy = False
        """Batches taken from the bus and not yet scored and published."""
        self._next_health_ms: dict[str, int] = {}
        self._health: tuple[float, HealthReport] | None = None
        self._health_lock = asyncio.Lock()
        self._model: tuple[ResidualModel, str, int] | None = None
        """A model handed over, applied by the worker before the next batch."""

    async def run(self) -> None:
        """Consume telemetry until the bus closes."""
        prefix = f"{subjects.TELEMETRY}."
        async with self.bus.subscribe(
            f"{subjects.TELEMETRY}.>", max_pending=self._max_pending
        ) as telemetry:
            self._subscription = telemetry
            self.ready.set()
            pending: list[tuple[str, Batch]] = []
            async for subject, batch in telemetry:
                source = subject.removeprefix(prefix)
                if source != SOURCE:  # never its own health samples
                    pending.append((source, batch))
                self._busy = bool(pending)
                if not pending or (telemetry.pending and len(pending) < self.config.max_coalesce):
                    continue  # behind: take what is queued together
                await self._take(pending)
                pending = []
                self._busy = False
            if pending:
                await self._take(pending)
            self._busy = False

    def process(self, batch: Batch, source: str = "") -> list[Event]:
        """Score one batch here and now (no bus, this thread): for tests and tools that feed
        the consumer directly. Returns the events `run` would publish."""
        handed, self._model = self._model, None
        if handed is not None:
            self.core.use_model(*handed)
        events = self.core.process(batch, source)
        self.snapshot = self.core.snapshot()
        return events

    async def _take(self, messages: Sequence[tuple[str, Batch]]) -> None:
        by_source: dict[str, list[Batch]] = {}
        for source, batch in messages:
            by_source.setdefault(source, []).append(batch)
        work = [(source, bs, len(bs)) for source, bs in by_source.items()]
        try:
            if self.config.in_thread:
                events, snapshot = await asyncio.to_thread(self._score, work)
            else:
                events, snapshot = self._score(work)
            self.snapshot = snapshot
        except Exception:  # one bad batch must not end the consumer
            n = sum(len(batch) for _source, batch in messages)
            log.exception("scoring %d samples failed; they are skipped", n)
            return
        for event in events:
            await self.bus.publish(subjects.events(event.kind), event)
        await self._sample_health()

    async def settle(self, timeout_s: float = 30.0) -> bool:
        """Wait until every batch received so far is scored and its events published (at
        stop, before the bus closes, so that the store writer gets them); False on timeout."""
        deadline = time.monotonic() + timeout_s
        while self._busy or (self._subscription is not None and self._subscription.pending):
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.005)
        return True

    # --- health -----------------------------------------------------------------------------

    async def health(self, *, fresh: bool = False) -> HealthReport:
        """The health of every entity now (reused for `health_cache_s` unless `fresh`)."""
        async with self._health_lock:
            cached = self._health
            if (
                not fresh
                and cached is not None
                and time.monotonic() - cached[0] < self.config.health_cache_s
            ):
                return cached[1]
            snap = self.snapshot
            alerts = [] if self.alerts is None else self.alerts.active_alerts()
            states = {} if self.alerts is None else self.alerts.states()
            report = await asyncio.to_thread(
                health_now,
                snap,
                alerts,
                states,
                params=self.config.health,
                horizon_s=self.config.health_horizon_s,
                fallback_ms=int(time.time() * 1000),
            )
            self._health = (time.monotonic(), report)
            return report

    def use_model(self, model: ResidualModel, version: str, trained_at_ms: int) -> None:
        """Hand a learned model over (from the retrainer, on the event loop): the worker
        takes it before it scores the next batch, so no batch sees half a swap."""
        self._model = (model, version, trained_at_ms)

    @property
    def model(self) -> ModelInUse | None:
        return self.core.model

    def _score(self, work: Sequence[tuple[str, list[Batch], int]]) -> tuple[list[Event], Snapshot]:
        """The worker thread's part: every batch joined, scored, and the new snapshot."""
        handed, self._model = self._model, None
        if handed is not None:
            self.core.use_model(*handed)
        events = self.core.process_many([(s, Batch.concat(bs), n) for s, bs, n in work])
        return events, self.core.snapshot()

    async def _sample_health(self) -> None:
        """Every `health_interval_s` of each source's clock: the health of the entities that
        source speaks for (and their racks, clusters, room) as telemetry, stamped with it."""
        interval_ms = round(self.config.health_interval_s * 1000)
        snap = self.snapshot
        if interval_ms <= 0:
            return
        due = []
        for source, now in snap.clocks.items():
            boundary = self._next_health_ms.get(source)
            if boundary is None or now >= boundary:
                self._next_health_ms[source] = (now // interval_ms + 1) * interval_ms
                if boundary is not None:  # the first sample of a source only sets its clock
                    due.append((source, now))
        if not due:
            return
        report = await self.health(fresh=True)
        samples = await asyncio.to_thread(self._health_samples, report, snap, due)
        for sample in samples:
            self.n_health_samples += len(sample)
            await self.bus.publish(subjects.telemetry(SOURCE), sample)

    def _health_samples(
        self, report: HealthReport, snap: Snapshot, due: Sequence[tuple[str, int]]
    ) -> list[Batch]:
        """One batch of `health_score` per source due, stamped with its clock (in a worker
        thread: thousands of entities)."""
        samples = []
        for source, now in due:
            paths = sorted(
                p
                for p in report.entities
                if snap.source_of.get(p) == source and self.publishes_health_of(p)
            )
            if not paths:
                continue
            keys = [(path, HEALTH_METRIC) for path in paths]
            values = [round(report.entities[p].score, 1) for p in paths]
            # the devices' anomaly score (0: none open), and each predicted fan's time to
            # failure on its own clock (none once withdrawn: the alert rule then clears)
            devices = [p for p in paths if p in snap.entities]
            keys += [(p, ANOMALY_METRIC) for p in devices]
            values += [
                round(max(snap.anomaly_scores.get(p, {}).values(), default=0.0), 3) for p in devices
            ]
            for fan, p in snap.predictions.items():
                if snap.source_of.get(fan) == source and math.isfinite(p.eta_s) and p.eta_s > 0:
                    keys.append((fan, TTF_METRIC))
                    values.append(round(max(0.0, (p.failure_ms - now) / 1000.0), 0))
            ids = self.registry.intern_many(keys)
            samples.append(
                Batch.of(
                    np.full(len(keys), now, dtype=np.int64),
                    ids,
                    np.array(values, dtype=np.float64),
                )
            )
        return samples


def _every_entity(_path: str) -> bool:
    return True
