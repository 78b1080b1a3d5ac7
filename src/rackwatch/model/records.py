"""The records every part exchanges: Batch (telemetry), Event, Command.

A Batch is columnar: the hot path never builds one Python object per sample. A message that
never arrived is an *absent* row; a sensor that answered NULL is a row whose value is NaN.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

TsArray = npt.NDArray[np.int64]
SeriesArray = npt.NDArray[np.int32]
ValueArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Batch:
    """Many samples at once: `ts` (int64 ms, UTC), `series` (interned id), `value` (float64).

    The three arrays have the same length. Rows need not be sorted; sources usually emit them
    time-major (every series at one instant, then the next instant).

    >>> b = Batch.from_grid([0, 5000], [7, 9], [[1.0, 2.0], [3.0, 4.0]])
    >>> b.ts.tolist(), b.series.tolist(), b.value.tolist()
    ([0, 0, 5000, 5000], [7, 9, 7, 9], [1.0, 2.0, 3.0, 4.0])
    """

    ts: TsArray
    series: SeriesArray
    value: ValueArray

    def __post_init__(self) -> None:
        if not (len(self.ts) == len(self.series) == len(self.value)):
            raise ValueError(
                f"Batch columns differ in length: ts={len(self.ts)}, "
                f"series={len(self.series)}, value={len(self.value)}"
            )
        if self.ts.dtype != np.int64 or self.series.dtype != np.int32:
            raise TypeError("Batch wants ts as int64 ms and series as int32 ids")
        if self.value.dtype != np.float64:
            raise TypeError("Batch wants value as float64 (NaN for a NULL reading)")

    def __len__(self) -> int:
        return len(self.ts)

    @classmethod
    def of(cls, ts: Any, series: Any, value: Any) -> Batch:
        """Build a Batch from array-likes, converting dtypes (copies only when needed)."""
        return cls(
            np.ascontiguousarray(ts, dtype=np.int64),
            np.ascontiguousarray(series, dtype=np.int32),
            np.ascontiguousarray(value, dtype=np.float64),
        )

    @classmethod
    def empty(cls) -> Batch:
        return cls.of([], [], [])

    @classmethod
    def from_grid(cls, ts: Any, series: Any, values: Any) -> Batch:
        """A dense block: `values[i, j]` is series `series[j]` at instant `ts[i]` (time-major)."""
        ts_arr = np.asarray(ts, dtype=np.int64)
        series_arr = np.asarray(series, dtype=np.int32)
        grid = np.asarray(values, dtype=np.float64)
        if grid.shape != (len(ts_arr), len(series_arr)):
            raise ValueError(f"grid shape {grid.shape} != ({len(ts_arr)}, {len(series_arr)})")
        return cls(
            np.repeat(ts_arr, len(series_arr)),
            np.tile(series_arr, len(ts_arr)),
            np.ascontiguousarray(grid.reshape(-1)),
        )

    @classmethod
    def concat(cls, batches: Sequence[Batch]) -> Batch:
        if not batches:
            return cls.empty()
        if len(batches) == 1:
            return batches[0]
        return cls(
            np.concatenate([b.ts for b in batches]),
            np.concatenate([b.series for b in batches]),
            np.concatenate([b.value for b in batches]),
        )

    def take(self, index: npt.NDArray[Any]) -> Batch:
        """Rows selected by an integer index or a boolean mask."""
        return Batch(self.ts[index], self.series[index], self.value[index])


class Severity(enum.IntEnum):
    INFO = 0
    WARNING = 1
    CRITICAL = 2


class EventKind(enum.StrEnum):
    """Every event kind, dotted, in one place (alerts, faults, commands, state changes...)."""

    FAULT_INJECTED = "fault.injected"
    SOURCE_UNAVAILABLE = "source.unavailable"
    SOURCE_RECOVERED = "source.recovered"
    COMMAND_APPLIED = "command.applied"
    COMMAND_REJECTED = "command.rejected"
    ALERT_FIRED = "alert.fired"
    ALERT_ESCALATED = "alert.escalated"
    ALERT_ACKNOWLEDGED = "alert.acknowledged"
    ALERT_RESOLVED = "alert.resolved"
    STATE_CHANGED = "state.changed"
    USAGE_CHANGED = "usage.changed"
    CONTROL_FAN_FAILOVER = "control.fan_failover"
    """A fan stopped while commanded on: the controller sent the server's other fans high."""
    CONTROL_FAN_RECOVERED = "control.fan_recovered"
    CONTROL_FAILSAFE = "control.failsafe"
    """Fans sent high because the controller is blind (telemetry lost) or failed (error)."""
    CONTROL_FAILSAFE_CLEARED = "control.failsafe_cleared"
    CONTROL_MODE_CHANGED = "control.mode_changed"
    """A fan handed to the operator (manual) or back to the controller (auto)."""
    ANOMALY_STARTED = "anomaly.started"
    """A series began to score as anomalous (attributes: metric, score, detector, z, start,
    peak); `engine/intelligence`."""
    ANOMALY_ENDED = "anomaly.ended"
    """That anomaly ended (its `start` and `peak` score in the attributes)."""
    PREDICTION_FAN_FAILURE = "prediction.fan_failure"
    """A fan is predicted to fail: eta and interval (first prediction, or a material change)."""
    PREDICTION_CLEARED = "prediction.cleared"
    """A fan that had a prediction has none any more (its wear trend is gone)."""
    INCIDENT_OPENED = "incident.opened"
    """Anomalies (and predictions) with one diagnosed cause, grouped by scope: server, rack or
    room (attributes: engine/diagnosis `Incident.attributes`)."""
    INCIDENT_UPDATED = "incident.updated"
    """The incident grew (more devices, a wider scope) or its diagnosis changed."""
    INCIDENT_CLOSED = "incident.closed"
    """Every anomaly of the incident ended (and stayed ended for its quiet period)."""
    PAYLOAD_REJECTED = "payload.rejected"
    """A device's message was refused (MQTT: not JSON, a field out of range...); counted."""
    DEVICE_OFFLINE = "device.offline"
    """An MQTT device said it is offline, or its last will did."""
    DEVICE_ONLINE = "device.online"
    INVENTORY_CHANGED = "inventory.changed"
    """A declared inventory entry was added, changed or removed (attributes: change, kind,
    fields); docs/INVENTORY.md."""
    INVENTORY_DISAGREEMENT = "inventory.disagreement"
    """A source reported a declared attribute otherwise (field, declared, discovered)."""
    INVENTORY_ITEM = "inventory.item"
    """An entity announced on a NATS bus by a producer with no store (a twin worker, an agent):
    attributes `kind` and `attributes`. The store worker keeps it in the inventory, not among
    the events (`engine.inventory.split_announcements`)."""
    JOB_STARTED = "job.started"
    """The twin's GPU fleet placed a job on a server (attributes: job, user, gpus, gpu_model,
    gpu_memory_bytes per card, cores, memory_bytes, gpu_utilization_ratio,
    expected_duration_s, waited_s); `end_ts` is its planned end."""
    JOB_ENDED = "job.ended"
    """That job ended and released its cards (attributes as at the start, and duration_s)."""


class CommandAction(enum.StrEnum):
    FAN_SET_LEVEL = "fan.set_level"
    FAN_SET_MODE = "fan.set_mode"
    TWIN_INJECT_FAULT = "twin.inject_fault"
    """Twin only: params `{"kind", "params"?, "start_ms"?}`, target the fault's entity."""
    ALERT_ACKNOWLEDGE = "alert.acknowledge"
    """To the alerts workers (`commands.alerts`), from a front end: params `{"ids": [...]}`;
    each worker acknowledges those it holds open (`AlertEngine.obey`)."""


@dataclass(frozen=True, slots=True)
class Event:
    """Something that happened at `ts` (ms) to `entity`; `end_ts` closes a span (e.g. a fault)."""

    ts: int
    kind: str
    entity: str
    severity: Severity = Severity.INFO
    attributes: Mapping[str, Any] = field(default_factory=dict)
    end_ts: int | None = None


@dataclass(frozen=True, slots=True)
class Command:
    """An order for one target entity, e.g. `fan.set_level` with `{"level": 3}`."""

    target: str
    action: str
    params: Mapping[str, Any] = field(default_factory=dict)
    issued_by: str = "unknown"
    ts: int | None = None
