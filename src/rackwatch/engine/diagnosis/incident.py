"""What a diagnosis says: the incident, its scope, its nature, its cause and what to do.

An incident gathers the anomalies (and fan failure predictions) that one cause explains. It is
published as `incident.opened`, then `incident.updated` whenever its devices, scope or
diagnosis change, and `incident.closed` once every anomaly in it has ended. Each event carries
the whole incident in its attributes (`Incident.attributes`), so a reader never has to replay
the history to know an incident's state::

    {
      "id": "inc-1732924800000-c01/r01/s03",   # stable for the incident's life
      "scope": "server" | "rack" | "room",
      "nature": "real" | "sensor",              # a real thermal/power problem, or the sensor
      "cause": "fan_failure" | "fan_wear" | "cooling" | "airflow" | "load" | "power_cap"
               | "disk" | "sensor_stuck" | "sensor_null" | "sensor_drift"
               | "sensor_disagreement" | "unknown",
      "action": "Move the load away from c01/r01/s03 and replace fan1 ...",
      "devices": ["c01/r01/s03"],               # the servers/hosts/PDUs affected, sorted
      "anomalies": [{"entity", "metric", "detector", "start"}],   # at most MAX_LISTED
      "n_anomalies": 3,
      "evidence": ["cpu_temperature_celsius +9.1 °C with chassis +4.2 °C", ...],
      "start": 1732924800000,                   # first anomaly's start (ms)
      "end": null | 1732925400000               # set on incident.closed
    }

The event's `entity` is the scope's entity: the device (server scope), the rack, or `room`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class Scope(enum.StrEnum):
    SERVER = "server"
    RACK = "rack"
    ROOM = "room"


class Nature(enum.StrEnum):
    REAL = "real"
    SENSOR = "sensor"


class Cause(enum.StrEnum):
    FAN_FAILURE = "fan_failure"
    FAN_WEAR = "fan_wear"
    COOLING = "cooling"
    AIRFLOW = "airflow"
    LOAD = "load"
    POWER_CAP = "power_cap"
    DISK = "disk"
    SENSOR_STUCK = "sensor_stuck"
    SENSOR_NULL = "sensor_null"
    SENSOR_DRIFT = "sensor_drift"
    SENSOR_DISAGREEMENT = "sensor_disagreement"
    UNKNOWN = "unknown"


SENSOR_CAUSES = frozenset(
    {Cause.SENSOR_STUCK, Cause.SENSOR_NULL, Cause.SENSOR_DRIFT, Cause.SENSOR_DISAGREEMENT}
)
MAX_LISTED = 50
"""Anomalies listed in an incident's attributes (the count is always whole)."""


@dataclass(frozen=True, slots=True)
class Member:
    """One anomaly (or prediction) inside an incident."""

    entity: str
    metric: str
    detector: str
    start_ms: int

    def attributes(self) -> dict[str, Any]:
        return {
            "entity": self.entity,
            "metric": self.metric,
            "detector": self.detector,
            "start": self.start_ms,
        }


@dataclass(slots=True)
class Incident:
    id: str
    scope: Scope
    scope_entity: str
    nature: Nature
    cause: Cause
    action: str
    start_ms: int
    devices: list[str] = field(default_factory=list)
    members: list[Member] = field(default_factory=list)
    evidence: list[str] = field(default_factory=list)
    end_ms: int | None = None

    def attributes(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "scope": str(self.scope),
            "nature": str(self.nature),
            "cause": str(self.cause),
            "action": self.action,
            "devices": sorted(self.devices),
            "anomalies": [m.attributes() for m in self.members[:MAX_LISTED]],
            "n_anomalies": len(self.members),
            "evidence": list(self.evidence),
            "start": self.start_ms,
            "end": self.end_ms,
        }
