"""What the system said: the detections of a run, read from the intelligence's events.

A detection is an `incident.opened` (its devices, its scope entity, its diagnosis) or, for fan
wear, a `prediction.fan_failure`: the first prediction of a fan counts once, and again only
after a `prediction.cleared` (the updates in between are the same warning, refined).

>>> from rackwatch.model.records import Event
>>> found = detections_from_events([
...     Event(5_000, "incident.opened", "c01/r01", attributes={
...         "id": "inc-1", "scope": "rack", "nature": "real", "cause": "power_cap",
...         "devices": ["c01/r01/s01", "c01/r01/s02"], "start": 4_000}),
...     Event(6_000, "prediction.fan_failure", "c01/r01/s03/fan1", attributes={"eta_s": 7200.0}),
...     Event(7_000, "prediction.fan_failure", "c01/r01/s03/fan1", attributes={"eta_s": 3000.0}),
... ])
>>> [(d.source, d.devices, d.start_ms, d.reported_ms, d.cause) for d in found]
[('incident', ('c01/r01/s01', 'c01/r01/s02'), 4000, 5000, 'power_cap'), \
('prediction', ('c01/r01/s03',), 6000, 6000, 'fan_wear')]
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from rackwatch.engine.diagnosis.incident import Cause, Nature, Scope
from rackwatch.engine.evaluation.truth import first_segments
from rackwatch.model.records import Event, EventKind

INCIDENT = "incident"
PREDICTION = "prediction"


@dataclass(frozen=True, slots=True)
class Detection:
    """One thing the system raised: an incident, or a fan failure prediction."""

    source: str
    """`incident` or `prediction`."""
    entity: str
    """The event's entity: the incident's scope entity (server, rack, room) or the fan."""
    devices: tuple[str, ...]
    start_ms: int
    """The incident's `start` (its first anomaly), else the event's time."""
    reported_ms: int
    """When the system said it: the event's time."""
    nature: str | None = None
    scope: str | None = None
    cause: str | None = None
    id: str = ""

    def names(self) -> tuple[str, ...]:
        """Its devices and its entity: what it points at."""
        return (*self.devices, self.entity)


def _as_ms(value: Any, default: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return default
    return int(value)


def _devices(value: Any, entity: str) -> tuple[str, ...]:
    if isinstance(value, Sequence) and not isinstance(value, str) and value:
        return tuple(sorted(str(v) for v in value))
    return (entity,)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def detections_from_events(events: Iterable[Event]) -> list[Detection]:
    """Every incident opened and every fan prediction episode, in the order reported."""
    found: list[Detection] = []
    predicted: set[str] = set()
    for event in sorted(events, key=lambda e: e.ts):
        a = event.attributes
        if event.kind == EventKind.INCIDENT_OPENED:
            found.append(
                Detection(
                    INCIDENT,
                    event.entity,
                    _devices(a.get("devices"), event.entity),
                    _as_ms(a.get("start"), event.ts),
                    event.ts,
                    _text(a.get("nature")),
                    _text(a.get("scope")),
                    _text(a.get("cause")),
                    str(a.get("id", "")),
                )
            )
        elif event.kind == EventKind.PREDICTION_FAN_FAILURE and event.entity not in predicted:
            predicted.add(event.entity)
            found.append(
                Detection(
                    PREDICTION,
                    event.entity,
                    (first_segments(event.entity, 3),),
                    event.ts,
                    event.ts,
                    str(Nature.REAL),
                    str(Scope.SERVER),
                    str(Cause.FAN_WEAR),
                    f"prediction-{event.ts}-{event.entity}",
                )
            )
        elif event.kind == EventKind.PREDICTION_CLEARED:
            predicted.discard(event.entity)
    return found
