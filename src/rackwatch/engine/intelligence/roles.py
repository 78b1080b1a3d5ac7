"""Which series the intelligence scores, and which of them explain the others' changes.

Every series gets one role, from its metric, once (arrays indexed by series id, grown as the
registry grows):

- **scored**: a gauge whose sudden change says something about the device (temperatures,
  power, airflow, fan speed, memory, disk use...). Its anomalies become `anomaly.*` events
  and count in the health.
- **load**: a demand signal (`cpu_utilization_ratio`, `gpu_utilization_ratio`, a GPU's memory
  in use: a job's allocation). It is scored,
  but a burst of jobs is work, not a fault: its anomalies are never events. Its score marks
  the instants the load *moved*.
- **command**: a commanded state (`fan_level`). Not scored (every command would be an
  anomaly); a change of its value is a move.
- **ignored**: counters that only grow (`*_total`, and Prometheus' `_count`, `_sum`,
  `_bucket`, `_created`), states (`disk_ok`: its alert rule says it better), the health score
  rackwatch derives itself, and `skip` (by default: uptime, load averages, process and session
  counts, CPU frequency and the disk and network rates, which follow the workload, not the
  machine's condition; and a fan's power, which its commanded level sets and quantises: it
  holds one value for hours, which the stuck detector flags, while wear shows in the rpm).

A scored metric that *follows* a driver (`FOLLOWERS`: a server's power and temperatures follow
its load and its fans' levels; a fan's rpm its own level) has its anomaly *explained* when a
driver in its scope moved within the explain window before it started: the twin's job bursts
raise about 40 deviations per server-day of utilisation, power, CPU and chassis temperature
(docs/ANOMALY.md), and the fan controller's level changes move rpm and airflow; none of them is
a fault. An explained anomaly is counted, never published (unless it crosses the start
threshold afresh with no move to explain that: anomalies.py). The scope of a fan's rpm or power
is the fan itself (its own commanded level, within 30 s); of an inlet temperature, its device's
rack (the neighbours' exhaust comes back round); of any other follower, its device: the nearest
of the entity and its ancestors that has a load series (a server, a host), else its parent (a
rack, for a PDU), and the whole site for `room` series.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Iterable

import numpy as np
import numpy.typing as npt

from rackwatch.model import METRICS, MetricKind, SeriesRegistry
from rackwatch.model.entity import ancestors

I8 = npt.NDArray[np.int8]

HEALTH_METRIC = "health_score"
DERIVED_METRICS = frozenset({HEALTH_METRIC, "anomaly_score", "time_to_failure_seconds"})
"""The series the intelligence publishes itself (never scored)."""
LOAD_METRICS = frozenset(
    {
        "cpu_utilization_ratio",
        "gpu_utilization_ratio",
        # A job's GPU memory is its allocation: demand, like utilisation (seed 004's fleet).
        "gpu_memory_used_bytes",
        "gpu_memory_free_bytes",
        "gpu_memory_utilization_ratio",
    }
)
COMMAND_METRICS = frozenset({"fan_level"})
OWN_SCOPE = frozenset({"fan_rpm", "fan_power_watts"})
"""Followers explained by their own entity's command only (a fan's rpm by its level), within
`OWN_WINDOW_MS`: a fan reaches its new speed in seconds, so a level set minutes before does
not explain an rpm that falls now (a fan that stops)."""
OWN_WINDOW_MS = 30_000
RACK_SCOPE = frozenset({"inlet_temperature_celsius"})
"""Followers explained by a move anywhere in their device's rack (recirculated exhaust)."""
DEVICE_SCOPE = frozenset(
    {
        "power_watts",
        "cpu_temperature_celsius",
        "chassis_temperature_celsius",
        "airflow_cfm",
        "pdu_power_watts",
        "it_power_watts",
        "facility_power_watts",
        "crac_power_watts",
        "pue_ratio",
        "temperature_celsius",
        "gpu_temperature_celsius",
        "gpu_power_watts",
        "gpu_fan_ratio",
        # What a machine's jobs hold: memory and disk move when work starts and ends.
        "memory_used_bytes",
        "memory_available_bytes",
        "memory_utilization_ratio",
        "swap_used_bytes",
        "swap_utilization_ratio",
        "disk_used_bytes",
        "disk_free_bytes",
        "disk_utilization_ratio",
    }
)
"""Followers explained by a move of their device's load or of one of its fans' levels."""
FOLLOWERS = OWN_SCOPE | RACK_SCOPE | DEVICE_SCOPE
DEFAULT_SKIP = (
    "fan_power_watts",
    "uptime_seconds",
    "load_average_1m",
    "load_average_5m",
    "load_average_15m",
    "process_count",
    "user_session_count",
    "cpu_frequency_hertz",
    "disk_read_bytes_per_second",
    "disk_write_bytes_per_second",
    "network_receive_bytes_per_second",
    "network_transmit_bytes_per_second",
)
COUNTER_SUFFIXES = ("_total", "_count", "_sum", "_bucket", "_created", "_info")
SITE = ""
"""The scope of `room` series: every driver anywhere."""


class Role(enum.IntEnum):
    IGNORED = 0
    SCORED = 1
    LOAD = 2
    COMMAND = 3


def role_of(metric: str, skip: frozenset[str] = frozenset(DEFAULT_SKIP)) -> Role:
    """The role of a metric (see the module docstring).

    >>> [role_of(m).name for m in ("fan_rpm", "fan_level", "cpu_utilization_ratio")]
    ['SCORED', 'COMMAND', 'LOAD']
    >>> [role_of(m).name for m in ("network_receive_bytes_total", "uptime_seconds", "jvm_x_sum")]
    ['IGNORED', 'IGNORED', 'IGNORED']
    """
    if metric in DERIVED_METRICS or metric in skip:
        return Role.IGNORED
    if metric in COMMAND_METRICS:
        return Role.COMMAND
    if metric in LOAD_METRICS:
        return Role.LOAD
    spec = METRICS.get(metric)
    if spec is not None:
        return Role.SCORED if spec.kind is MetricKind.GAUGE else Role.IGNORED
    return Role.IGNORED if metric.endswith(COUNTER_SUFFIXES) else Role.SCORED


class SeriesRoles:
    """Roles, entities and metrics of a registry's series, followed as it grows (cheap: only
    the new ids are looked at). Not thread-safe: one consumer owns it."""

    def __init__(self, registry: SeriesRegistry, skip: Iterable[str] = DEFAULT_SKIP) -> None:
        self.registry = registry
        self.skip = frozenset(skip)
        self.entity: list[str] = []
        self.metric: list[str] = []
        self.role: I8 = np.zeros(0, dtype=np.int8)
        self.load_entities: set[str] = set()
        """Entities with a load series: the devices that followers are scoped to."""
        self._scope: dict[int, str | None] = {}

    def __len__(self) -> int:
        return len(self.entity)

    def follow(self) -> bool:
        """Take in the series registered since the last call; True when there were any."""
        n, known = len(self.registry), len(self.entity)
        if n == known:
            return False
        roles = np.zeros(n - known, dtype=np.int8)
        for i in range(known, n):
            key = self.registry.key(i)
            self.entity.append(key.entity)
            self.metric.append(key.metric)
            role = role_of(key.metric, self.skip)
            roles[i - known] = role
            if role is Role.LOAD:
                self.load_entities.add(key.entity)
        self.role = np.concatenate([self.role, roles])
        self._scope.clear()  # a new load series may change a device's scope
        return True

    def mask(self, series: npt.NDArray[np.int32], *roles: Role) -> npt.NDArray[np.bool_]:
        """Rows whose series has one of `roles`."""
        found = self.role[series]
        mask: npt.NDArray[np.bool_] = found == roles[0]
        for role in roles[1:]:
            mask |= found == role
        return mask

    def window_ms(self, series: int) -> int | None:
        """The explain window of this follower when shorter than the default (None)."""
        return OWN_WINDOW_MS if self.metric[series] in OWN_SCOPE else None

    def scope(self, series: int) -> str | None:
        """Where a move explains this series' anomaly (None: nothing explains it)."""
        if series not in self._scope:
            self._scope[series] = self._find_scope(series)
        return self._scope[series]

    def _find_scope(self, series: int) -> str | None:
        metric, entity = self.metric[series], self.entity[series]
        if metric not in FOLLOWERS:
            return None
        if metric in OWN_SCOPE:
            return entity
        if entity.split("/", 1)[0] == "room":
            return SITE
        device = next((p for p in (entity, *ancestors(entity)) if p in self.load_entities), None)
        if device is None:
            device, up = entity, next(ancestors(entity), None)
            return entity if up is None else up
        if metric in RACK_SCOPE:
            return next(ancestors(device), device)
        return device


class Moves:
    """When the drivers (load, commands) moved, per scope: each move is recorded under its
    entity, every ancestor and the site, so a rack's PDU or the room's totals see their
    servers' moves. Keeps the moves of the last two windows."""

    def __init__(self, window_ms: int) -> None:
        self.window_ms = window_ms
        self._at: dict[str, deque[int]] = {}
        self.newest_ms = -(2**62)

    def record(self, entity: str, ts: int) -> None:
        if self.window_ms <= 0:
            return
        self.newest_ms = max(self.newest_ms, ts)
        for scope in (entity, *ancestors(entity), SITE):
            moves = self._at.setdefault(scope, deque())
            if not moves or moves[-1] < ts:
                moves.append(ts)
            elif ts not in moves:  # an older move arriving late: keep the deque sorted
                moves.append(ts)
                ordered = sorted(moves)
                moves.clear()
                moves.extend(ordered)
            cut = self.newest_ms - 2 * self.window_ms
            while moves and moves[0] < cut:
                moves.popleft()

    def explains(self, scope: str, start_ms: int, window_ms: int | None = None) -> bool:
        """Whether a driver in `scope` moved within the window (or `window_ms`, shorter) up
        to `start_ms`."""
        window = self.window_ms if window_ms is None else min(window_ms, self.window_ms)
        if window <= 0:
            return False
        moves = self._at.get(scope)
        if not moves:
            return False
        return any(start_ms - window <= t <= start_ms for t in moves)
