"""Seed 000's KPIs on a running server, from the events the store keeps: anomalies per day,
and the detection latency of the faults whose labels are known (the twin's `fault.injected`;
real machines have none, so their latency is unknown, never made up).

The same labels, detections and matching as `rackwatch evaluate` (truth.py, detections.py,
match.py), over the events of the last `window` (24 h by default).

>>> from rackwatch.model import Event
>>> events = [
...     Event(0, "fault.injected", "c01/r01/s03/fan1", attributes={"fault": "fan_off"}),
...     Event(5_000, "incident.opened", "c01/r01/s03", attributes={
...         "scope": "server", "nature": "real", "cause": "fan_failure",
...         "devices": ["c01/r01/s03"], "start": 5_000}),
...     Event(6_000, "anomaly.started", "c01/r01/s03", attributes={"metric": "x"}),
... ]
>>> kpis = live_kpis(events, now_ms=3_600_000, window_ms=3_600_000)
>>> kpis.anomalies_per_day, kpis.latency_median_s, kpis.n_faults, kpis.n_detected
(24.0, 5.0, 1, 1)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rackwatch.engine.evaluation.detections import detections_from_events
from rackwatch.engine.evaluation.match import match
from rackwatch.engine.evaluation.metrics import median, p95
from rackwatch.engine.evaluation.truth import labels_from_events
from rackwatch.model import Event, EventKind

DAY_MS = 86_400_000
KINDS = (
    str(EventKind.FAULT_INJECTED),
    str(EventKind.ANOMALY_STARTED),
    str(EventKind.INCIDENT_OPENED),
    str(EventKind.PREDICTION_FAN_FAILURE),
    str(EventKind.PREDICTION_CLEARED),
)
"""The event kinds the KPIs read."""


@dataclass(frozen=True, slots=True)
class LiveKpis:
    window_ms: int
    anomalies_per_day: float
    incidents_per_day: float
    n_faults: int
    """Labelled faults in the window (those the recall counts)."""
    n_detected: int
    latency_median_s: float | None
    latency_p95_s: float | None


def live_kpis(events: Sequence[Event], now_ms: int, window_ms: int = DAY_MS) -> LiveKpis:
    """The KPIs of the events stamped within `window_ms` before `now_ms`."""
    since = now_ms - window_ms
    recent = [e for e in events if since <= e.ts <= now_ms]
    days = window_ms / DAY_MS
    n_anomalies = sum(e.kind == EventKind.ANOMALY_STARTED for e in recent)
    n_incidents = sum(e.kind == EventKind.INCIDENT_OPENED for e in recent)
    labels = [label for label in labels_from_events(recent, now_ms) if label.is_counted]
    matching = match(labels, detections_from_events(recent), now_ms)
    latencies = []
    for i, label in enumerate(labels):
        first = matching.first(i)
        if first is not None:
            latencies.append(max(0.0, (first.reported_ms - label.start_ms) / 1000.0))
    return LiveKpis(
        window_ms=window_ms,
        anomalies_per_day=round(n_anomalies / days, 2),
        incidents_per_day=round(n_incidents / days, 2),
        n_faults=len(labels),
        n_detected=len(latencies),
        latency_median_s=median(latencies),
        latency_p95_s=p95(latencies),
    )
