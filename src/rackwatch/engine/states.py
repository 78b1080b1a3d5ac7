"""Device states (OK … FAILED, MAINTENANCE, UNKNOWN) and server usage (busy/idle). Pure.

`DeviceStates` derives each entity's state from what it is told, in this order of precedence:

1. MAINTENANCE: the entity or one of its ancestors was put in maintenance (a server's fans go
   with it); alerts are still recorded but not notified;
2. UNKNOWN: no telemetry yet, none for `unknown_after_s` (measured against the newest
   sample timestamp its source sent: simulated time for the twin; a source may have a timeout
   of its own, `unknown_after_s_of`), or its source has gone silent on the wall clock
   (`source_silent`, from a `SourceWatch`: every source stopped, so simulated time stopped);
3. FAILED: an active condition marked as a failure (a fan stopped while commanded on, a dead
   disk: the alert rules with `is_failure`);
4. CRITICAL / WARNING: the worst active condition (a server is the worst of its alerts);
5. OK.

A "condition" is what an alert is to this module: (entity, key, severity, is_failure,
reason); the alert engine raises and clears them, so this module knows nothing of alert rules.
Each change comes out as a `StateChange` (→ a `state.changed` event with from/to/reason).
An entity seen for the first time in state OK makes no event (every device would otherwise
announce itself at start).

`SourceWatch` notices a source that sends nothing at all. Rules and states run on the
samples' clock, which stops when the source stops; the watch runs on the wall clock instead
(the caller passes its time, so it stays pure). The timeout is in wall seconds: for a source
that runs at `speed` x real time, `SilencePolicy.for_speed` scales a timeout in source
seconds down by the speed, with a wall-clock floor so that a busy event loop is no outage.
A source may have a policy of its own (real machines run at speed 1 whatever the twin's).

`rollup_states` gives what a device shows: the worst of its own state and its parts' (a
server whose fan FAILED shows FAILED, from the fan), with the open alerts under it counted;
racks and clusters, which send nothing themselves, get one too.

`UsageTracker` classifies servers busy/idle from `cpu_utilization_ratio` with hysteresis (busy
at ≥ 0.5, idle again below 0.3 by default), reusing the alert rules' vectorised state machine.
"""

from __future__ import annotations

import asyncio
import enum
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
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


def details_of(
    entity: str,
    state: DeviceState,
    reason: str,
    since_ts: int | None,
    maintenance: Maintenance | None,
) -> dict[str, Any]:
    """One entity's state as GET /states reads it (`DeviceStates.details`)."""
    return {
        "entity": entity,
        "state": str(state),
        "reason": reason,
        "since_ts_ms": since_ts,
        "maintenance": None
        if maintenance is None
        else {
            "by": maintenance.by,
            "reason": maintenance.reason,
            "since_ts_ms": maintenance.since_ts,
        },
    }


class DeviceStates:
    """The state of every tracked entity (default: every entity that sends telemetry)."""

    def __init__(
        self,
        registry: SeriesRegistry,
        *,
        unknown_after_s: float = 60.0,
        unknown_after_s_of: Mapping[str, float] | None = None,
        tracked: Sequence[str] = ("**",),
    ) -> None:
        """`unknown_after_s_of`: a timeout of its own for a source's entities (real machines,
        `[host] offline_after_seconds`), in place of `unknown_after_s`."""
        after_of = dict(unknown_after_s_of or {})
        if unknown_after_s <= 0 or any(s <= 0 for s in after_of.values()):
            raise ValueError("unknown_after_s must be > 0")
        self.registry = registry
        self.unknown_after_ms = round(unknown_after_s * 1000)
        self._after_ms_of = {source: round(s * 1000) for source, s in after_of.items()}
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
        self._source_of: npt.NDArray[np.int32] = np.full(0, -1, dtype=np.int32)
        """Per entity, the source that last sent its telemetry (-1: none named)."""
        self._silent: npt.NDArray[np.bool_] = np.zeros(0, dtype=np.bool_)
        """Entities whose source is silent on the wall clock."""
        self._source_ids: dict[str, int] = {}
        self._source_now: list[int] = []
        """Per source, the newest sample it sent: its entities go stale on its clock, not on
        another's (the twin may run ahead of, or behind, a real host's wall clock)."""
        self._source_after_ms: list[int] = []
        """Per source, how long its entities may be silent before they are UNKNOWN."""
        self._silence_reason: dict[int, str] = {}
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
        return details_of(
            entity, device.state, device.reason, device.since_ts, self.maintenance_of(entity)
        )

    def is_reporting(self, entity: str) -> bool | None:
        """Whether `entity` sends telemetry: heard from, not silent for its timeout on its
        source's clock, its source not silent on the wall clock; maintenance aside (a host in
        maintenance may still be offline). None: never heard from."""
        index = self._index.get(entity)
        if index is None or index >= len(self._last_seen) or self._last_seen[index] < 0:
            return None
        return not (self._stale[index] or self._silent[index])

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

    def observe(self, batch: Batch, source: str | None = None) -> list[StateChange]:
        """Note who sent telemetry; entities seen first, back, or gone silent change state.

        With `source` (the `telemetry.<source>` it came on), its entities are remembered as
        that source's, and if the source was silent they are derived again (`source_silent`).
        """
        self._sync()
        sid = None if source is None else self._source_id(source)
        if len(batch):
            newest = int(batch.ts.max())
            self.now_ms = newest if self.now_ms is None else max(self.now_ms, newest)
            if sid is not None:
                self._source_now[sid] = max(self._source_now[sid], newest)
            entity = self._entity_of_series[batch.series]
            rows = entity >= 0
            np.maximum.at(self._last_seen, entity[rows], batch.ts[rows])
            if sid is not None:
                self._source_of[entity[rows]] = sid
        if self.now_ms is None:
            return []
        seen = self._last_seen >= 0
        stale = seen & (self._now_of_entities() - self._last_seen >= self._after_of_entities())
        first = seen & ~self._announced
        heard_again = np.zeros_like(seen)
        if sid is not None:
            self._silence_reason.pop(sid, None)
            if self._silent.any():  # its entities (and any it now sends for) are heard again
                heard_again = self._silent & (self._source_of == sid)
                self._silent &= ~heard_again
        changed = np.flatnonzero(first | (stale != self._stale) | heard_again)
        self._stale = stale
        self._announced |= seen
        changes: list[StateChange] = []
        for i in changed.tolist():
            name = self._names[i]
            is_new = name not in self._devices
            if is_new:
                self._devices[name] = _Device()
            change = self._update(name, self._now_of(i), quiet_ok=is_new)
            if change is not None:
                changes.append(change)
        return changes

    def _source_id(self, source: str) -> int:
        sid = self._source_ids.setdefault(source, len(self._source_ids))
        if sid == len(self._source_now):
            self._source_now.append(-1)
            self._source_after_ms.append(self._after_ms_of.get(source, self.unknown_after_ms))
        return sid

    def _now_of_entities(self) -> npt.NDArray[np.int64]:
        """Each entity's clock: the newest sample of the source that sent its telemetry (the
        newest of all where no source was named)."""
        assert self.now_ms is not None
        clocks = np.array([*self._source_now, self.now_ms], dtype=np.int64)
        clocks[clocks < 0] = self.now_ms
        return clocks[self._source_of]  # -1 (no source named): the last, the overall newest

    def _after_of_entities(self) -> npt.NDArray[np.int64]:
        """Each entity's timeout (ms): its source's own, else `unknown_after_ms`."""
        after = np.array([*self._source_after_ms, self.unknown_after_ms], dtype=np.int64)
        return after[self._source_of]

    def _now_of(self, index: int) -> int:
        sid = int(self._source_of[index])
        assert self.now_ms is not None
        return self._source_now[sid] if sid >= 0 and self._source_now[sid] >= 0 else self.now_ms

    def source_silent(self, source: str, ts: int, reason: str) -> list[StateChange]:
        """Every entity last heard from `source` is UNKNOWN (`reason`) until the source sends
        again (`observe(batch, source)`); for a source gone silent on the wall clock."""
        self._sync()
        sid = self._source_id(source)
        self._silence_reason[sid] = reason
        silenced = (self._source_of == sid) & (self._last_seen >= 0) & ~self._silent
        self._silent |= silenced
        changes = []
        for i in np.flatnonzero(silenced).tolist():
            name = self._names[i]
            self._devices.setdefault(name, _Device())
            change = self._update(name, ts)
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
            self._source_of = np.concatenate([self._source_of, np.full(extra, -1, np.int32)])
            self._silent = np.concatenate([self._silent, np.zeros(extra, np.bool_)])
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
        if index is None or self._last_seen[index] < 0:
            return DeviceState.UNKNOWN, "no telemetry yet"
        last_seen = int(self._last_seen[index])
        if self._silent[index]:
            return DeviceState.UNKNOWN, self._silence_reason[int(self._source_of[index])]
        if self._stale[index]:
            age_s = (self._now_of(index) - last_seen) / 1000
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


# --- a device's shown state: the worst of its own and its parts' -------------------------------

ROLLUP_ORDER: tuple[DeviceState, ...] = (
    DeviceState.OK,
    DeviceState.MAINTENANCE,
    DeviceState.UNKNOWN,
    DeviceState.WARNING,
    DeviceState.CRITICAL,
    DeviceState.FAILED,
)
"""Least to most severe, for roll-ups. UNKNOWN is worse than MAINTENANCE (a part nobody hears
from needs a look; one in maintenance is being looked after) and better than WARNING (no
alert says something is wrong)."""
_ROLLUP_RANK = {state: rank for rank, state in enumerate(ROLLUP_ORDER)}


@dataclass(frozen=True, slots=True)
class Rollup:
    """What a device shows: its own state and the worst under it (docs/ALERTS.md)."""

    state: DeviceState | None
    """Its own state; None for an entity that has none (a rack: only its parts send)."""
    rollup_state: DeviceState
    """The worst of its own state and every descendant's, by `ROLLUP_ORDER`."""
    rollup_from: str | None
    """The descendant whose state that is; None when it is the entity's own (own wins a tie,
    then the first descendant in path order)."""
    n_warning: int = 0
    """Open WARNING alerts on the entity and its descendants (suppressed ones included)."""
    n_critical: int = 0
    """Open CRITICAL alerts on the entity and its descendants (suppressed ones included)."""


def rollup_states(
    states: Mapping[str, DeviceState], alerts: Iterable[tuple[str, Severity]] = ()
) -> dict[str, Rollup]:
    """The roll-up of every entity in `states` and of each of their ancestors (racks and
    clusters have no telemetry of their own but contain devices), by path.

    `alerts` are the open alerts as (entity, level). Maintenance needs no rule of its own:
    everything under an entity in maintenance is itself MAINTENANCE (`DeviceStates`), so a
    server in maintenance rolls up MAINTENANCE even with a stopped fan, while its alerts are
    still counted. Cost: one walk up the path per entity and per alert (paths are a few
    segments deep).

    >>> ok, failed = DeviceState.OK, DeviceState.FAILED
    >>> r = rollup_states({"c01/r01/s01": ok, "c01/r01/s01/fan1": failed},
    ...                   [("c01/r01/s01/fan1", Severity.CRITICAL)])
    >>> r["c01/r01/s01"].rollup_state, r["c01/r01/s01"].rollup_from, r["c01/r01/s01"].n_critical
    (<DeviceState.FAILED: 'failed'>, 'c01/r01/s01/fan1', 1)
    >>> r["c01/r01"].state, r["c01"].rollup_state
    (None, <DeviceState.FAILED: 'failed'>)
    """
    worst: dict[str, tuple[int, str]] = {}
    # In path order an entity comes before its descendants, so its own state is seen first
    # and only a strictly worse descendant replaces it (ties: own, then first in path order).
    for path in sorted(states):
        rank = _ROLLUP_RANK[states[path]]
        node: str | None = path
        while node is not None:
            found = worst.get(node)
            if found is None or rank > found[0]:
                worst[node] = (rank, path)
            node = entity_path.parent(node)
    counts: dict[str, list[int]] = {}
    for entity, level in alerts:
        if level < Severity.WARNING:
            continue
        column = 1 if level >= Severity.CRITICAL else 0
        node = entity
        while node is not None:
            if node in worst:
                counts.setdefault(node, [0, 0])[column] += 1
            node = entity_path.parent(node)
    out: dict[str, Rollup] = {}
    for node, (rank, source) in sorted(worst.items()):
        n_warning, n_critical = counts.get(node, (0, 0))
        out[node] = Rollup(
            state=states.get(node),
            rollup_state=ROLLUP_ORDER[rank],
            rollup_from=None if source == node else source,
            n_warning=n_warning,
            n_critical=n_critical,
        )
    return out


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


# --- sources that go silent on the wall clock ----------------------------------------------------

MIN_SILENCE_S = 5.0
"""The shortest wall-clock silence taken for an outage: a loop stalled by a flush or a garbage
collection for a second or two is not one, whatever the source's speed."""


@dataclass(frozen=True, slots=True)
class SilencePolicy:
    """When a consumer declares its source silent, and the wall clock it measures that on.

    `timeout_s` is in wall seconds. `speed` is source seconds per wall second (the twin's
    `--speed`; 1 for real devices): it only dates the silence in the source's time
    (`last sample + silence x speed`). `monotonic` and `sleep` are injected in tests.
    """

    timeout_s: float
    speed: float = 1.0
    monotonic: Callable[[], float] = time.monotonic
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    def __post_init__(self) -> None:
        if not (math.isfinite(self.timeout_s) and self.timeout_s > 0):
            raise ValueError(f"silence timeout_s must be > 0, got {self.timeout_s}")
        if not (math.isfinite(self.speed) and self.speed > 0):
            raise ValueError(f"silence speed must be > 0, got {self.speed}")

    @classmethod
    def for_speed(
        cls, source_timeout_s: float, speed: float, *, min_s: float = MIN_SILENCE_S
    ) -> SilencePolicy:
        """The wall timeout for a source at `speed` x: `source_timeout_s` of its time, i.e.
        `source_timeout_s / speed` wall seconds, but never under `min_s`.

        >>> SilencePolicy.for_speed(30, 1).timeout_s, SilencePolicy.for_speed(30, 60).timeout_s
        (30.0, 5.0)
        """
        return cls(max(float(min_s), source_timeout_s / speed), speed)


@dataclass(frozen=True, slots=True)
class SourceChange:
    """A source went silent on the wall clock (`is_silent`), or was heard again."""

    source: str
    is_silent: bool
    ts: int
    """Source time (ms): for silence, its last sample plus the silence at its speed (where its
    clock would be); for a recovery, the newest sample of the batch that ended it."""
    silent_s: float
    """Wall seconds without telemetry (up to now, or up to the recovery)."""
    last_sample_ms: int | None
    timeout_s: float

    def event(self) -> Event:
        """`source.unavailable` (critical: everything it watches is blind) or
        `source.recovered`."""
        return Event(
            ts=self.ts,
            kind=EventKind.SOURCE_UNAVAILABLE if self.is_silent else EventKind.SOURCE_RECOVERED,
            entity=self.source,
            severity=Severity.CRITICAL if self.is_silent else Severity.INFO,
            attributes={
                "source": self.source,
                "silent_s": round(self.silent_s, 3),
                "timeout_s": self.timeout_s,
                "last_sample_ms": self.last_sample_ms,
            },
        )


@dataclass(slots=True)
class _Heard:
    wall_s: float
    """When it last delivered telemetry (wall clock)."""
    last_ms: int | None
    is_silent: bool = False
    postponed_s: float = -math.inf
    """The consumer had telemetry queued then: the deadline counts from here at the earliest."""

    @property
    def since_s(self) -> float:
        return max(self.wall_s, self.postponed_s)


class SourceWatch:
    """Which telemetry sources have sent nothing for their policy's `timeout_s` wall seconds.
    Pure: the caller passes the wall time (seconds of a monotonic clock) and acts on the
    changes.

    >>> watch = SourceWatch(SilencePolicy(30, speed=2.0))
    >>> watch.expect("twin", wall_s=0.0)
    >>> watch.heard("twin", 10.0, newest_ms=100_000) is None
    True
    >>> watch.next_deadline(), watch.check(39.9, fallback_ms=0)
    (40.0, [])
    >>> [(c.source, c.is_silent, c.ts, c.silent_s) for c in watch.check(40.0, fallback_ms=0)]
    [('twin', True, 160000, 30.0)]
    >>> watch.check(100.0, fallback_ms=0), watch.next_deadline()  # told once
    ([], None)
    >>> back = watch.heard("twin", 41.0, newest_ms=105_000)
    >>> back is not None and (back.is_silent, back.ts, back.silent_s)
    (False, 105000, 31.0)
    """

    def __init__(
        self, policy: SilencePolicy, overrides: Mapping[str, SilencePolicy] | None = None
    ) -> None:
        """`overrides`: a policy of its own for some sources (the real machines' sources run
        on the wall clock, whatever the twin's speed); the others follow `policy`, whose
        clock and sleep serve them all."""
        self.policy = policy
        self.overrides = dict(overrides or {})
        self._sources: dict[str, _Heard] = {}

    def policy_of(self, source: str) -> SilencePolicy:
        return self.overrides.get(source, self.policy)

    def expect(self, source: str, wall_s: float) -> None:
        """Watch `source` from `wall_s` on, before it has sent anything."""
        self._sources.setdefault(source, _Heard(wall_s, None))

    def heard(self, source: str, wall_s: float, newest_ms: int | None) -> SourceChange | None:
        """`source` delivered telemetry (newest sample `newest_ms`); a change if it was silent."""
        known = self._sources.get(source)
        if known is None:
            self._sources[source] = _Heard(wall_s, newest_ms)
            return None
        change = None
        if known.is_silent:
            ts = newest_ms if newest_ms is not None else known.last_ms
            change = SourceChange(
                source,
                False,
                ts if ts is not None else 0,
                wall_s - known.wall_s,
                known.last_ms,
                self.policy_of(source).timeout_s,
            )
        known.wall_s, known.is_silent = wall_s, False
        if newest_ms is not None:
            known.last_ms = newest_ms if known.last_ms is None else max(known.last_ms, newest_ms)
        return change

    def check(self, wall_s: float, *, fallback_ms: int) -> list[SourceChange]:
        """Sources that have just gone silent at `wall_s`; each is reported once.
        `fallback_ms` dates the silence of a source that never sent a sample."""
        changes = []
        for source, known in self._sources.items():
            policy = self.policy_of(source)
            if known.is_silent or wall_s - known.since_s < policy.timeout_s:
                continue
            silent_s = wall_s - known.wall_s
            known.is_silent = True
            if known.last_ms is None:
                ts = fallback_ms
            else:
                ts = known.last_ms + round(silent_s * policy.speed * 1000)
            changes.append(
                SourceChange(source, True, ts, silent_s, known.last_ms, policy.timeout_s)
            )
        return changes

    def postpone(self, wall_s: float) -> None:
        """Count every source not silent as heard at `wall_s`: the consumer has telemetry
        queued that it has not read yet, so it is behind, not the sources silent."""
        for known in self._sources.values():
            if not known.is_silent:
                known.postponed_s = max(known.postponed_s, wall_s)

    def next_deadline(self) -> float | None:
        """The wall time at which the next source would go silent (None: all are silent)."""
        waiting = [
            known.since_s + self.policy_of(source).timeout_s
            for source, known in self._sources.items()
            if not known.is_silent
        ]
        return min(waiting) if waiting else None

    def shortest_timeout_s(self) -> float:
        """The shortest timeout of any policy, heard from or not."""
        return min([self.policy.timeout_s, *(p.timeout_s for p in self.overrides.values())])

    def is_silent(self, source: str) -> bool:
        known = self._sources.get(source)
        return known is not None and known.is_silent

    def silent_sources(self) -> list[str]:
        return sorted(s for s, known in self._sources.items() if known.is_silent)

    def sources(self) -> dict[str, bool]:
        """Every watched source -> whether it is silent."""
        return {s: known.is_silent for s, known in sorted(self._sources.items())}


async def sleep_until_silence(watch: SourceWatch) -> None:
    """Sleep (on the policy's clock) until a watched source may have gone silent: its
    deadline, or one timeout while every source is already silent or none is watched. Never
    longer than the shortest timeout of all the policies: a source first heard during the
    sleep has no deadline before its end."""
    policy = watch.policy
    cap = watch.shortest_timeout_s()
    deadline = watch.next_deadline()
    if deadline is None:
        await policy.sleep(cap)
    else:
        await policy.sleep(min(cap, max(0.0, deadline - policy.monotonic())))
