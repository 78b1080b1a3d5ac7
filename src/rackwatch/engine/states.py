"""Device states (OK … FAILED, MAINTENANCE, UNKNOWN) and server usage (busy/idle). Pure.

Seed 000 asks for "un système à état" and a "status d'utilisation (en cours ou non)".

`DeviceStates` derives each entity's state from what it is told, in this order of precedence:

1. MAINTENANCE: the entity or one of its ancestors was put in maintenance (a server's fans go
   with it); alerts are still recorded but not notified;
2. UNKNOWN: no telemetry yet, or none for `unknown_after_s` (measured against the newest
   sample timestamp seen: simulated time);
3. FAILED: an active condition marked as a failure (a fan stopped while commanded on, a dead
   disk: the alert rules with `is_failure`);
4. CRITICAL / WARNING: the worst active condition (a server is the worst of its alerts);
5. OK.

A "condition" is what an alert is to this module: (entity, key, severity, is_failure,
reason); the alert engine raises and clears them, so this module knows nothing of alert rules.
Each change comes out as a `StateChange` (→ a `state.changed` event with from/to/reason).
An entity seen for the first time in state OK makes no event (every device would otherwise
announce itself at start).

`UsageTracker` classifies servers busy/idle from `cpu_utilization_ratio` with hysteresis (busy
at ≥ 0.5, idle again below 0.3 by default), reusing the alert rules' vectorised state machine.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from rackwatch.engine.alerts.rules import Rule, RuleEvaluator
from rackwatch.model import Batch, Event, EventKind, SeriesRegistry, Severity
from rackwatch.model import entity as entity_path


class DeviceState(enum.StrEnum):
    OK = "ok"
    WARNING = "warning"
    CRITICAL = "critical"
    FAILED = "failed"
    MAINTENANCE = "maintenance"
    UNKNOWN = "unknown"


_EVENT_SEVERITY = {
    DeviceState.OK: Severity.INFO,
    DeviceState.MAINTENANCE: Severity.INFO,
    DeviceState.WARNING: Severity.WARNING,
    DeviceState.UNKNOWN: Severity.WARNING,
    DeviceState.CRITICAL: Severity.CRITICAL,
    DeviceState.FAILED: Severity.CRITICAL,
}


class UsageStatus(enum.StrEnum):
    BUSY = "busy"
    IDLE = "idle"


@dataclass(frozen=True, slots=True)
class StateChange:
    entity: str
    ts: int
    previous: DeviceState
    state: DeviceState
    reason: str
    by: str | None = None
    """Who caused it, for maintenance set or cleared by someone."""

    def event(self) -> Event:
        attributes = {"from": str(self.previous), "to": str(self.state), "reason": self.reason}
        if self.by is not None:
            attributes["by"] = self.by
        return Event(
            ts=self.ts,
            kind=EventKind.STATE_CHANGED,
            entity=self.entity,
            severity=_EVENT_SEVERITY[self.state],
            attributes=attributes,
        )


@dataclass(frozen=True, slots=True)
class UsageChange:
    entity: str
    ts: int
    previous: UsageStatus | None
    status: UsageStatus
    utilization_ratio: float

    def event(self) -> Event:
        return Event(
            ts=self.ts,
            kind=EventKind.USAGE_CHANGED,
            entity=self.entity,
            attributes={
                "from": None if self.previous is None else str(self.previous),
                "to": str(self.status),
                "cpu_utilization_ratio": self.utilization_ratio,
            },
        )


@dataclass(frozen=True, slots=True)
class Condition:
    severity: Severity
    is_failure: bool
    reason: str


@dataclass(slots=True)
class _Device:
    state: DeviceState = DeviceState.UNKNOWN
    reason: str = "no telemetry yet"
    since_ts: int | None = None
    conditions: dict[str, Condition] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Maintenance:
    by: str
    reason: str
    since_ts: int


class DeviceStates:
    """The state of every tracked entity (default: every entity that sends telemetry)."""

    def __init__(
        self,
        registry: SeriesRegistry,
        *,
        unknown_after_s: float = 60.0,
        tracked: Sequence[str] = ("**",),
    ) -> None:
        if unknown_after_s <= 0:
            raise ValueError("unknown_after_s must be > 0")
        self.registry = registry
        self.unknown_after_ms = round(unknown_after_s * 1000)
        self.tracked = tuple(tracked)
        self.now_ms: int | None = None
        self._n_series = 0
        self._entity_of_series: npt.NDArray[np.int32] = np.full(0, -1, dtype=np.int32)
        self._names: list[str] = []
        self._index: dict[str, int] = {}
        self._last_seen: npt.NDArray[np.int64] = np.full(0, -1, dtype=np.int64)
        self._stale: npt.NDArray[np.bool_] = np.zeros(0, dtype=np.bool_)
        self._announced: npt.NDArray[np.bool_] = np.zeros(0, dtype=np.bool_)
        """Entities whose first sighting was handled."""
        self._devices: dict[str, _Device] = {}
        self._maintenance: dict[str, Maintenance] = {}

    # --- queries --------------------------------------------------------------------------

    def states(self) -> dict[str, DeviceState]:
        """Current state of every entity seen or put in maintenance, by entity."""
        return {name: device.state for name, device in sorted(self._devices.items())}

    def details(self, entity: str) -> dict[str, Any] | None:
        """State, reason, since when, and maintenance info of one entity (None: not known)."""
        device = self._devices.get(entity)
        if device is None:
            return None
        maintenance = self.maintenance_of(entity)
        return {
            "entity": entity,
            "state": str(device.state),
            "reason": device.reason,
            "since_ts_ms": device.since_ts,
            "maintenance": None
            if maintenance is None
            else {
                "by": maintenance.by,
                "reason": maintenance.reason,
                "since_ts_ms": maintenance.since_ts,
            },
        }

    def maintenance_of(self, entity: str) -> Maintenance | None:
        """The maintenance covering `entity` (its own or an ancestor's), if any."""
        path: str | None = entity
        while path is not None:
            found = self._maintenance.get(path)
            if found is not None:
                return found
            path = entity_path.parent(path)
        return None

    def in_maintenance(self, entity: str) -> bool:
        return self.maintenance_of(entity) is not None

    # --- inputs ---------------------------------------------------------------------------

    def observe(self, batch: Batch) -> list[StateChange]:
        """Note who sent telemetry; entities seen first, back, or gone silent change state."""
        self._sync()
        if len(batch):
            newest = int(batch.ts.max())
            self.now_ms = newest if self.now_ms is None else max(self.now_ms, newest)
            entity = self._entity_of_series[batch.series]
            rows = entity >= 0
            np.maximum.at(self._last_seen, entity[rows], batch.ts[rows])
        if self.now_ms is None:
            return []
        seen = self._last_seen >= 0
        stale = seen & (self.now_ms - self._last_seen >= self.unknown_after_ms)
        first = seen & ~self._announced
        changed = np.flatnonzero(first | (stale != self._stale))
        self._stale = stale
        self._announced |= seen
        changes: list[StateChange] = []
        for i in changed.tolist():
            name = self._names[i]
            is_new = name not in self._devices
            if is_new:
                self._devices[name] = _Device()
            change = self._update(name, self.now_ms, quiet_ok=is_new)
            if change is not None:
                changes.append(change)
        return changes

    def raise_condition(
        self, entity: str, key: str, condition: Condition, ts: int
    ) -> StateChange | None:
        """Add or replace a condition (an alert) on a tracked entity."""
        device = self._device(entity)
        if device is None:
            return None
        device.conditions[key] = condition
        return self._update(entity, ts)

    def clear_condition(self, entity: str, key: str, ts: int) -> StateChange | None:
        device = self._devices.get(entity)
        if device is None or device.conditions.pop(key, None) is None:
            return None
        return self._update(entity, ts)

    def set_maintenance(self, entity: str, by: str, reason: str, ts: int) -> list[StateChange]:
        """Put `entity` and everything under it in maintenance."""
        entity_path.validate(entity)
        if not by.strip():
            raise ValueError("say who puts the entity in maintenance (a user or service name)")
        self._maintenance[entity] = Maintenance(by, reason, ts)
        self._devices.setdefault(entity, _Device())
        return self._update_under(entity, ts, by)

    def clear_maintenance(self, entity: str, by: str, ts: int) -> list[StateChange]:
        """End the maintenance set on `entity` (KeyError if none was set on it)."""
        if self._maintenance.pop(entity, None) is None:
            raise KeyError(
                f"{entity!r} is not in maintenance (maintenance set on a parent must be "
                "cleared on that parent)"
            )
        return self._update_under(entity, ts, by)

    # --- internals ------------------------------------------------------------------------

    def _sync(self) -> None:
        n = len(self.registry)
        if n <= self._n_series:
            return
        table = np.full(n, -1, dtype=np.int32)
        table[: self._n_series] = self._entity_of_series
        for sid in range(self._n_series, n):
            entity = self.registry.key(sid).entity
            index = self._index.get(entity)
            if index is None:
                if not any(entity_path.matches(entity, glob) for glob in self.tracked):
                    continue
                index = self._index[entity] = len(self._names)
                self._names.append(entity)
            table[sid] = index
        self._entity_of_series = table
        extra = len(self._names) - len(self._last_seen)
        if extra > 0:
            self._last_seen = np.concatenate([self._last_seen, np.full(extra, -1, np.int64)])
            self._stale = np.concatenate([self._stale, np.zeros(extra, np.bool_)])
            self._announced = np.concatenate([self._announced, np.zeros(extra, np.bool_)])
        self._n_series = n

    def _device(self, entity: str) -> _Device | None:
        device = self._devices.get(entity)
        if device is None and any(entity_path.matches(entity, g) for g in self.tracked):
            device = self._devices[entity] = _Device()
        return device

    def _update_under(self, entity: str, ts: int, by: str) -> list[StateChange]:
        changes = []
        for name in sorted(self._devices):
            if name == entity or name.startswith(entity + "/"):
                change = self._update(name, ts, by=by)
                if change is not None:
                    changes.append(change)
        return changes

    def _derive(self, entity: str, device: _Device) -> tuple[DeviceState, str]:
        maintenance = self.maintenance_of(entity)
        if maintenance is not None:
            why = f": {maintenance.reason}" if maintenance.reason else ""
            return DeviceState.MAINTENANCE, f"maintenance by {maintenance.by}{why}"
        index = self._index.get(entity)
        last_seen = int(self._last_seen[index]) if index is not None else -1
        if last_seen < 0:
            return DeviceState.UNKNOWN, "no telemetry yet"
        if self._stale[index]:
            age_s = ((self.now_ms or last_seen) - last_seen) / 1000
            return DeviceState.UNKNOWN, f"no telemetry for {age_s:.0f} s"
        if device.conditions:
            worst = max(device.conditions.values(), key=lambda c: (c.is_failure, c.severity))
            if worst.is_failure:
                return DeviceState.FAILED, worst.reason
            if worst.severity >= Severity.CRITICAL:
                return DeviceState.CRITICAL, worst.reason
            if worst.severity >= Severity.WARNING:
                return DeviceState.WARNING, worst.reason
        return DeviceState.OK, "no active alert"

    def _update(
        self, entity: str, ts: int, *, quiet_ok: bool = False, by: str | None = None
    ) -> StateChange | None:
        device = self._devices[entity]
        state, reason = self._derive(entity, device)
        previous = device.state
        device.reason = reason
        if state is previous:
            return None
        device.state = state
        device.since_ts = ts
        if quiet_ok and state is DeviceState.OK:
            return None
        return StateChange(entity, ts, previous, state, reason, by)


class UsageTracker:
    """busy/idle per server from CPU utilisation, with hysteresis (vectorised)."""

    def __init__(
        self,
        registry: SeriesRegistry,
        *,
        busy_at_ratio: float = 0.5,
        idle_below_ratio: float = 0.3,
        metric: str = "cpu_utilization_ratio",
        entity: str = "**",
    ) -> None:
        if not 0 <= idle_below_ratio <= busy_at_ratio:
            raise ValueError(
                f"usage needs 0 <= idle_below_ratio ({idle_below_ratio}) <= busy_at_ratio "
                f"({busy_at_ratio})"
            )
        rule = Rule(
            "usage",
            metric,
            entity,
            op=">=",
            warning=busy_at_ratio,
            hysteresis=busy_at_ratio - idle_below_ratio,
        )
        self._evaluator = RuleEvaluator([rule], registry)

    def update(self, batch: Batch) -> list[UsageChange]:
        """The busy/idle changes in `batch` (a server first seen idle makes none)."""
        changes = []
        for tr in self._evaluator.evaluate(batch):
            status = UsageStatus.IDLE if tr.level is None else UsageStatus.BUSY
            previous = None if tr.is_first else _usage(tr.previous)
            changes.append(UsageChange(tr.entity, tr.ts, previous, status, tr.value))
        return changes

    def usage(self) -> dict[str, UsageStatus]:
        """busy/idle of every server whose utilisation was seen."""
        levels = self._evaluator.levels("usage")
        return {entity: _usage(level) for entity, level in sorted(levels.items())}


def _usage(level: Severity | None) -> UsageStatus:
    return UsageStatus.IDLE if level is None else UsageStatus.BUSY


def changes_to_events(changes: Iterable[StateChange | UsageChange]) -> list[Event]:
    return [change.event() for change in changes]
