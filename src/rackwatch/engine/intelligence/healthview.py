"""The health of every entity from what the intelligence and the alert engine know now.

`health_now(snapshot, alerts, states)` puts together, per entity: its open alerts (suppressed
ones left out: the entity is in maintenance) and its own device state (from the alert engine),
the scores of its open anomalies, its fans' failure predictions (counted down on the fan's
source clock) and, for a scraped application, seed 002's signals from its newest scrape
(`Snapshot.app_signals`, kept by `AppSignalTable`), then runs
`engine.health.health_report` over them (every entity and every rack, cluster and the room
above it). Pure; about 25 µs per entity, so the consumer runs it in a worker thread.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from rackwatch.engine.alerts.lifecycle import Alert
from rackwatch.engine.health import (
    APP_SIGNAL_OF,
    DEFAULT_HEALTH,
    AlertInput,
    FailureForecast,
    Health,
    HealthInputs,
    HealthParams,
    health_report,
)
from rackwatch.engine.intelligence.fans import WHAT, FanPrediction
from rackwatch.engine.intelligence.roles import DERIVED_METRICS, SeriesRoles
from rackwatch.engine.intelligence.snapshot import AppSignals, Snapshot
from rackwatch.engine.states import DeviceState
from rackwatch.model import Batch

NOTHING = HealthInputs()
_SIGNALS = tuple(APP_SIGNAL_OF)
"""The application gauges (`app_cpu_usage_ratio`...), in a fixed order: code = index."""


class AppSignalTable:
    """The newest value of each application gauge (`APP_SIGNAL_OF`) per series, from the
    stream. `observe` costs one gather and one comparison over the batch (a code per series
    id, grown as the roles follow the registry); only the few rows of those gauges are then
    looked at one by one; nothing at all until an application gauge has been registered.
    Not thread-safe: the consumer's worker owns it."""

    def __init__(self, roles: SeriesRoles) -> None:
        self.roles = roles
        self._code: npt.NDArray[np.int8] = np.zeros(0, dtype=np.int8)
        """Per series id: the index of its gauge in `_SIGNALS`, -1 for any other metric."""
        self._newest: dict[int, tuple[int, float]] = {}
        """Series id -> (ts, value) of its newest finite sample."""
        self._has_any = False

    def observe(self, batch: Batch) -> None:
        known = len(self._code)
        if len(self.roles) > known:
            new = [
                _SIGNALS.index(m) if m in APP_SIGNAL_OF else -1 for m in self.roles.metric[known:]
            ]
            self._code = np.concatenate([self._code, np.array(new, dtype=np.int8)])
            self._has_any = self._has_any or max(new) >= 0
        if not len(batch) or not self._has_any:
            return  # no application scraped (the twin, hosts): nothing to look at
        series = batch.series
        inside = series < len(self._code)  # a series the roles have not followed yet: not ours
        rows = np.flatnonzero(inside & (self._code[np.where(inside, series, 0)] >= 0))
        newest = self._newest
        for i in rows.tolist():
            sid, ts, value = int(series[i]), int(batch.ts[i]), float(batch.value[i])
            if not math.isfinite(value):
                continue
            held = newest.get(sid)
            if held is None or ts >= held[0]:
                newest[sid] = (ts, value)

    def latest(self) -> dict[str, AppSignals]:
        """Each entity's signals from its newest scrape with any: a signal older than that
        (a response time while no request came) is left out, not held."""
        by_entity: dict[str, dict[str, tuple[int, float]]] = {}
        for sid, (ts, value) in self._newest.items():
            signal = str(APP_SIGNAL_OF[self.roles.metric[sid]])
            by_entity.setdefault(self.roles.entity[sid], {})[signal] = (ts, value)
        found = {}
        for entity, signals in by_entity.items():
            newest = max(ts for ts, _value in signals.values())
            values = {k: v for k, (ts, v) in sorted(signals.items()) if ts == newest}
            found[entity] = AppSignals(newest, values)
        return found


@dataclass(frozen=True, slots=True)
class HealthReport:
    """Health of every entity at `now_ms` (the newest sample's instant)."""

    now_ms: int
    horizon_s: float
    entities: Mapping[str, Health] = field(default_factory=dict)
    snapshot: Snapshot = field(default_factory=Snapshot)
    """What it was computed from: `snapshot.now_of(device)` is the clock a device's eta
    counts from."""


def health_now(
    snapshot: Snapshot,
    alerts: Sequence[Alert],
    states: Mapping[str, DeviceState],
    *,
    params: HealthParams = DEFAULT_HEALTH,
    horizon_s: float = 3600.0,
    fallback_ms: int = 0,
) -> HealthReport:
    """The health of every entity the snapshot knows (and of every entity with an alert).
    A fan's predicted failure counts down on its own source's clock; a scraped application's
    seed 002 signals (`snapshot.app_signals`) become reasons (`engine.health.app_reasons`)."""
    by_entity: dict[str, list[AlertInput]] = {}
    for a in alerts:
        # an alert on the health's own signals would feed back into the health (a rule
        # "health < 50" holding itself up), or count a predicted failure twice
        if not a.is_suppressed and a.metric not in DERIVED_METRICS:
            by_entity.setdefault(a.entity, []).append(AlertInput(a.rule, a.severity, a.is_failure))
    forecasts = {
        fan: _forecast(p, snapshot.now_of(fan))
        for fan, p in snapshot.predictions.items()
        # a stopped fan with its failure alert open: the alert says it, not twice
        if p.eta_s > 0 or not any(a.is_failure for a in by_entity.get(fan, ()))
    }
    scores = snapshot.anomaly_scores
    apps = snapshot.app_signals
    inputs: dict[str, HealthInputs] = {}
    for entity in {*snapshot.entities, *by_entity, *scores, *forecasts, *apps}:
        state = states.get(entity)
        found_alerts = by_entity.get(entity, ())
        found_scores = scores.get(entity, {})
        forecast = forecasts.get(entity)
        app = apps.get(entity)
        if state in (None, DeviceState.OK) and not (
            found_alerts or found_scores or forecast or app is not None
        ):
            inputs[entity] = NOTHING
            continue
        inputs[entity] = HealthInputs(
            state=state,
            alerts=tuple(found_alerts),
            anomaly_scores=dict(found_scores),
            forecasts=() if forecast is None else (forecast,),
            app={} if app is None else app.values,
        )
    report = health_report(inputs, params=params, horizon_s=horizon_s)
    now = snapshot.now_ms
    return HealthReport(fallback_ms if now is None else now, horizon_s, report, snapshot)


def _forecast(p: FanPrediction, now_ms: int | None) -> FailureForecast:
    """The prediction made at `p.as_of_ms`, moved to `now_ms` (its source's clock)."""
    elapsed = 0.0 if now_ms is None else max(0.0, (now_ms - p.as_of_ms) / 1000.0)

    def left(seconds: float | None) -> float | None:
        return None if seconds is None else max(0.0, seconds - elapsed)

    eta = 0.0 if p.eta_s == 0 else max(0.0, p.eta_s - elapsed)
    return FailureForecast(WHAT, eta, left(p.low_s), left(p.high_s))
