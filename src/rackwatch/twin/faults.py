"""The fault catalogue: kind → FaultSpec (defaults from the users' test protocols, overridable
per injection).

A fault acts through hooks, never through branches in the simulator:

- `on_physics` edits the block's `Conditions` (fan health, utilisation floor, PDU and CRAC
  ratios, recirculation) before the physics runs, so temperatures and power respond;
- `on_readings` edits the measured values after the sensors read them (drift, stuck, NULL,
  absent rows): the physics does not see those.

Adding a fault is adding one `FaultSpec` entry and its parameter model (`fault_params.py`:
defaults and bounds, checked whenever a fault is scheduled). Every fault the twin schedules is
logged as a `fault.injected` Event with its start, planned end, entity and parameters: the
ground truth that detectors are scored against.

>>> sorted(FAULTS)[:4]
['airflow_misdistribution', 'crac_degradation', 'disk_failure', 'fan_degradation']
>>> FAULTS["fan_degradation"].planned_duration_s(FAULTS["fan_degradation"].defaults)
54000.0
"""

from __future__ import annotations

import enum
import math
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from rackwatch.errors import CommandRejected
from rackwatch.model.catalogue import METRICS
from rackwatch.model.records import Event, Severity
from rackwatch.model.series import SeriesKey
from rackwatch.twin import fault_params as fp
from rackwatch.twin.layout import SeriesLayout
from rackwatch.twin.physics import quantize
from rackwatch.twin.topology import CRAC_PATH, ROOM_PATH, Topology

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]
_NO_INDEX: I64 = np.zeros(0, dtype=np.int64)
STREAM_FAULTS = 4
STREAM_LIFETIMES = 5


# --- what a hook sees ------------------------------------------------------------------------


class Conditions:
    """Per-step inputs of the physics that faults alter, allocated only when a fault touches them.

    Each array is (steps, width) and starts neutral: fan health 1, utilisation floor 0, PDU and
    CRAC ratios 1, recirculation factor 1, disk ok 1, power delta 0.
    """

    _NEUTRAL: ClassVar[dict[str, tuple[float, str]]] = {
        "util_floor": (0.0, "servers"),
        "power_delta_w": (0.0, "servers"),
        "disk_ok": (1.0, "servers"),
        "fan_health": (1.0, "fans"),
        "pdu_capacity_ratio": (1.0, "racks"),
        "recirculation_factor": (1.0, "racks"),
        "crac_capacity_ratio": (1.0, "room"),
        "crac_cop_ratio": (1.0, "room"),
    }

    def __init__(self, n_steps: int, topo: Topology) -> None:
        self.n_steps = n_steps
        self._widths = {
            "servers": topo.n_servers,
            "fans": topo.n_fans,
            "racks": topo.n_racks,
            "room": 1,
        }
        self._arrays: dict[str, F64] = {}

    def array(self, name: str) -> F64:
        """The (steps, width) array `name`, allocated neutral on first use."""
        found = self._arrays.get(name)
        if found is None:
            fill, width = self._NEUTRAL[name]
            found = np.full((self.n_steps, self._widths[width]), fill)
            self._arrays[name] = found
        return found

    def peek(self, name: str) -> F64 | None:
        """The array if some fault touched it, else None (neutral)."""
        return self._arrays.get(name)


@dataclass(eq=False)
class Readings:
    """The measured block (steps, series) that sensor faults edit in place."""

    values: F64
    absent: Bools | None = None

    def absent_mask(self) -> Bools:
        if self.absent is None:
            self.absent = np.zeros(self.values.shape, dtype=np.bool_)
        return self.absent


@dataclass(frozen=True, slots=True)
class Window:
    """Where a fault is active inside a block."""

    rows: slice
    """Block rows where it is active."""
    first_step: int
    """Steps since the fault started, at `rows.start`."""
    elapsed_s: F64
    """Seconds since the fault started, one per active row."""


@dataclass(eq=False)
class ActiveFault:
    """A scheduled fault, its resolved targets and its label Event."""

    seq: int
    spec: FaultSpec
    entity: str
    params: dict[str, Any]
    start_step: int
    end_step: int | None
    event: Event
    servers: I64 = field(default_factory=lambda: _NO_INDEX)
    fans: I64 = field(default_factory=lambda: _NO_INDEX)
    racks: I64 = field(default_factory=lambda: _NO_INDEX)
    columns: I64 = field(default_factory=lambda: _NO_INDEX)
    memo: dict[str, Any] = field(default_factory=dict)


PhysicsHook = Callable[[Conditions, ActiveFault, Window], None]
ReadingsHook = Callable[[Readings, ActiveFault, Window], None]
PrepareHook = Callable[[ActiveFault, np.random.Generator, float], None]
"""Called once when the fault is scheduled, with its own RNG and the step in seconds."""


# --- targets -----------------------------------------------------------------------------------


class Target(enum.StrEnum):
    """What a fault's entity names, and so how it is resolved to indices."""

    FAN = "fan"
    SERVER = "server"
    SERVERS = "servers"
    """A server, or a rack/cluster of which `n_servers` are picked."""
    SENSOR = "sensor"
    """The series (entity, params["metric"])."""
    SENSORS = "sensors"
    """A `fraction` of the series under the entity."""
    PDU = "pdu"
    RACK = "rack"
    CRAC = "crac"


@dataclass(frozen=True, slots=True)
class Resolved:
    entity: str
    servers: I64 = field(default_factory=lambda: _NO_INDEX)
    fans: I64 = field(default_factory=lambda: _NO_INDEX)
    racks: I64 = field(default_factory=lambda: _NO_INDEX)
    columns: I64 = field(default_factory=lambda: _NO_INDEX)
    attributes: Mapping[str, Any] = field(default_factory=dict)


def _lookup(index: Mapping[str, int], entity: str, what: str) -> int:
    found = index.get(entity)
    if found is None:
        example = next(iter(index), "?")
        raise CommandRejected(f"{entity!r} is not a {what} of this twin (e.g. {example!r})")
    return found


def _one(value: int) -> I64:
    return np.array([value], dtype=np.int64)


def _servers_under(topo: Topology, entity: str) -> I64:
    prefix = entity + "/"
    return np.array(
        [i for i, p in enumerate(topo.server_paths) if p == entity or p.startswith(prefix)],
        dtype=np.int64,
    )


def _resolve_servers(
    entity: str, params: Mapping[str, Any], topo: Topology, rng: np.random.Generator
) -> Resolved:
    if entity in topo.server_index:
        return Resolved(entity, servers=_one(topo.server_index[entity]))
    pool = _servers_under(topo, entity)
    n = int(params.get("n_servers", 1))
    if len(pool) == 0:
        raise CommandRejected(f"{entity!r} is neither a server nor a rack/cluster of this twin")
    if n > len(pool):
        raise CommandRejected(f"n_servers={n} but {entity!r} holds only {len(pool)} servers")
    picked = np.sort(rng.choice(pool, size=n, replace=False))
    return Resolved(
        entity, servers=picked, attributes={"servers": [topo.server_paths[i] for i in picked]}
    )


def _resolve_sensor(entity: str, params: Mapping[str, Any], layout: SeriesLayout) -> Resolved:
    metric = str(params.get("metric"))
    column = layout.column.get(SeriesKey(entity, metric))
    if column is None:
        raise CommandRejected(
            f"the twin has no sensor {metric!r} on {entity!r}; "
            "name an entity and a metric it reports (see twin.series_keys)"
        )
    return Resolved(entity, columns=_one(column))


def _resolve_sensors(
    entity: str, params: Mapping[str, Any], layout: SeriesLayout, rng: np.random.Generator
) -> Resolved:
    pool = layout.columns_under(entity)
    if len(pool) == 0:
        raise CommandRejected(f"no series under {entity!r}; name a cluster, rack or server")
    n = max(1, round(float(params["fraction"]) * len(pool)))
    picked = np.sort(rng.choice(pool, size=n, replace=False))
    return Resolved(entity, columns=picked, attributes={"n_series": int(n)})


def _resolve_rack(entity: str, topo: Topology) -> Resolved:
    rack = entity.removesuffix("/pdu")
    return Resolved(entity, racks=_one(_lookup(topo.rack_index, rack, "rack")))


def _resolve_pdu(entity: str, topo: Topology) -> Resolved:
    rack = entity.removesuffix("/pdu")
    index = _lookup(topo.rack_index, rack, "rack PDU")
    return Resolved(f"{rack}/pdu", racks=_one(index))


def _resolve_crac(entity: str) -> Resolved:
    if entity not in (CRAC_PATH, ROOM_PATH):
        raise CommandRejected(f"{entity!r} is not the CRAC; use {CRAC_PATH!r}")
    return Resolved(CRAC_PATH)


def resolve_target(
    target: Target,
    entity: str,
    params: Mapping[str, Any],
    topo: Topology,
    layout: SeriesLayout,
    rng: np.random.Generator,
) -> Resolved:
    """Turn a fault's entity into server/fan/rack/column indices; CommandRejected if unknown."""
    resolvers: dict[Target, Callable[[], Resolved]] = {
        Target.FAN: lambda: Resolved(entity, fans=_one(_lookup(topo.fan_index, entity, "fan"))),
        Target.SERVER: lambda: Resolved(
            entity, servers=_one(_lookup(topo.server_index, entity, "server"))
        ),
        Target.SERVERS: lambda: _resolve_servers(entity, params, topo, rng),
        Target.SENSOR: lambda: _resolve_sensor(entity, params, layout),
        Target.SENSORS: lambda: _resolve_sensors(entity, params, layout, rng),
        Target.PDU: lambda: _resolve_pdu(entity, topo),
        Target.RACK: lambda: _resolve_rack(entity, topo),
        Target.CRAC: lambda: _resolve_crac(entity),
    }
    return resolvers[target]()


def candidates(target: Target, topo: Topology) -> tuple[str, ...]:
    """Entities a random failure of this target kind can hit."""
    table: dict[Target, tuple[str, ...]] = {
        Target.FAN: topo.fan_paths,
        Target.SERVER: topo.server_paths,
        Target.SERVERS: topo.server_paths,
        Target.SENSOR: topo.server_paths,
        Target.SENSORS: topo.rack_paths,
        Target.PDU: topo.pdu_paths,
        Target.RACK: topo.rack_paths,
        Target.CRAC: (CRAC_PATH,),
    }
    return table[target]


# --- hooks -------------------------------------------------------------------------------------


def _ramp(w: Window, ramp_s: float) -> F64:
    """0 → 1 over `ramp_s` seconds from the fault's start."""
    if ramp_s <= 0:
        return np.ones_like(w.elapsed_s)
    return np.asarray(np.minimum(w.elapsed_s / ramp_s, 1.0))


def _fan_off(cond: Conditions, fault: ActiveFault, w: Window) -> None:
    cond.array("fan_health")[w.rows, fault.fans] = 0.0


def fan_degradation_health(elapsed_s: F64, params: Mapping[str, Any]) -> F64:
    """Speed left: -step_ratio every interval_s, 0 (off) once at or below off_below_ratio.

    >>> fan_degradation_health(np.array([0.0, 1799.0, 1800.0, 53999.0, 54000.0]),
    ...                        FAULTS["fan_degradation"].defaults).round(2).tolist()
    [1.0, 1.0, 0.98, 0.42, 0.0]
    """
    steps = np.floor(elapsed_s / float(params["interval_s"]))
    health = 1.0 - float(params["step_ratio"]) * steps
    return np.where(health <= float(params["off_below_ratio"]) + 1e-9, 0.0, health)


def _fan_degradation(cond: Conditions, fault: ActiveFault, w: Window) -> None:
    health = cond.array("fan_health")
    left = fan_degradation_health(w.elapsed_s, fault.params)
    health[w.rows, fault.fans] = np.minimum(health[w.rows, fault.fans], left[:, None])


def _resolution(fault: ActiveFault) -> float | None:
    return METRICS[str(fault.params["metric"])].resolution


def _sensor_drift(readings: Readings, fault: ActiveFault, w: Window) -> None:
    column = readings.values[w.rows, int(fault.columns[0])]
    column += float(fault.params["slope_per_hour"]) * w.elapsed_s / 3600.0
    quantize(column, _resolution(fault))


def _sensor_stuck(readings: Readings, fault: ActiveFault, w: Window) -> None:
    column = readings.values[w.rows, int(fault.columns[0])]
    if "frozen" not in fault.memo:
        given = fault.params.get("value")
        fault.memo["frozen"] = float(column[0]) if given is None else float(given)
    column[:] = fault.memo["frozen"]


def _sensor_null(readings: Readings, fault: ActiveFault, w: Window) -> None:
    readings.values[w.rows, fault.columns] = np.nan


def telemetry_gaps(
    n_columns: int,
    n_steps: int,
    step_s: float,
    params: Mapping[str, Any],
    rng: np.random.Generator,
) -> tuple[I64, I64]:
    """Lost cells of a telemetry_loss window: (step since start, column number), vectorised.

    Each column alternates telemetry (≥ 1 step, exponential with mean `mean_interval_s`) and
    gaps of `min_gap_s`-`max_gap_s`; gaps that would cross the window's end are dropped.
    """
    lo = max(1, math.ceil(float(params["min_gap_s"]) / step_s - 1e-9))
    hi = max(lo, math.floor(float(params["max_gap_s"]) / step_s + 1e-9))
    per_column = n_steps // (lo + 1) + 1
    shape = (n_columns, per_column)
    up = np.maximum(1, np.rint(rng.exponential(float(params["mean_interval_s"]), shape) / step_s))
    down = rng.integers(lo, hi + 1, shape)
    start = (np.cumsum(up + down, axis=1) - down).astype(np.int64)
    keep = start + down <= n_steps
    starts, lengths = start[keep], down[keep]
    column = np.repeat(np.nonzero(keep)[0], lengths)
    first = np.repeat(starts - np.concatenate(([0], np.cumsum(lengths)[:-1])), lengths)
    step = first + np.arange(int(lengths.sum()))
    return step.astype(np.int64), column.astype(np.int64)


def _prepare_telemetry_loss(fault: ActiveFault, rng: np.random.Generator, step_s: float) -> None:
    if fault.end_step is None:
        raise CommandRejected("telemetry_loss needs a duration_s (the window of intermittent loss)")
    n_steps = fault.end_step - fault.start_step
    fault.memo["gaps"] = telemetry_gaps(len(fault.columns), n_steps, step_s, fault.params, rng)


def _telemetry_loss(readings: Readings, fault: ActiveFault, w: Window) -> None:
    step, column = fault.memo["gaps"]
    n_rows = w.rows.stop - w.rows.start
    hit = (step >= w.first_step) & (step < w.first_step + n_rows)
    rows = step[hit] - w.first_step + w.rows.start
    readings.absent_mask()[rows, fault.columns[column[hit]]] = True


def _crac_degradation(cond: Conditions, fault: ActiveFault, w: Window) -> None:
    p, ramp = fault.params, _ramp(w, float(fault.params["ramp_s"]))
    cond.array("crac_capacity_ratio")[w.rows, 0] *= 1.0 - (1.0 - p["capacity_ratio"]) * ramp
    cond.array("crac_cop_ratio")[w.rows, 0] *= 1.0 - (1.0 - p["cop_ratio"]) * ramp
    less_air = 1.0 + (1.0 / float(p["airflow_ratio"]) - 1.0) * ramp
    cond.array("recirculation_factor")[w.rows, :] *= less_air[:, None]


def _pdu_cap(cond: Conditions, fault: ActiveFault, w: Window) -> None:
    ratio = cond.array("pdu_capacity_ratio")
    ratio[w.rows, fault.racks] = np.minimum(
        ratio[w.rows, fault.racks], float(fault.params["capacity_ratio"])
    )


def _load_burst(cond: Conditions, fault: ActiveFault, w: Window) -> None:
    floor = cond.array("util_floor")
    floor[w.rows, fault.servers] = np.maximum(
        floor[w.rows, fault.servers], float(fault.params["utilization"])
    )


def _airflow_misdistribution(cond: Conditions, fault: ActiveFault, w: Window) -> None:
    cond.array("recirculation_factor")[w.rows, fault.racks] *= float(fault.params["factor"])


def _disk_failure(cond: Conditions, fault: ActiveFault, w: Window) -> None:
    cond.array("disk_ok")[w.rows, fault.servers] = 0.0
    cond.array("power_delta_w")[w.rows, fault.servers] += float(fault.params["power_delta_watts"])


# --- the catalogue -----------------------------------------------------------------------------


def as_number(value: Any) -> float | None:
    """`value` as a finite float, or None if it is not a number (booleans are not numbers).

    >>> as_number(3), as_number(np.float32(0.5)), as_number(True), as_number("1"), as_number(1e999)
    (3.0, 0.5, None, None, None)
    """
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | float | np.number):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _duration_param(params: Mapping[str, Any]) -> float | None:
    value = params.get("duration_s")
    return None if value is None else float(value)


@dataclass(frozen=True, slots=True)
class FaultSpec:
    """One kind of fault: what it targets, its default parameters and how it acts."""

    kind: str
    target: Target
    severity: Severity
    description: str
    params: type[fp.FaultParams]
    """The parameter model: names, defaults, bounds; `duration_s` None means
    until repaired."""
    on_physics: PhysicsHook | None = None
    on_readings: ReadingsHook | None = None
    prepare: PrepareHook | None = None
    duration: Callable[[Mapping[str, Any]], float | None] = _duration_param
    then: str | None = None
    """Fault that follows at the planned end (a worn fan ends up off)."""

    def planned_duration_s(self, params: Mapping[str, Any]) -> float | None:
        return self.duration(params)

    @property
    def defaults(self) -> dict[str, Any]:
        return self.params.defaults()

    @property
    def bounds(self) -> dict[str, tuple[float | None, float | None]]:
        """[low, high] of the numeric parameters (None: open on that side)."""
        return fp.bounds_of(self.params)

    def merge(self, params: Mapping[str, Any] | None) -> dict[str, Any]:
        """Defaults overridden by `params`, validated by the kind's model; `BadFaultParams`
        (a CommandRejected) naming each bad parameter."""
        return fp.check_params(self.params, params)


FAULTS: dict[str, FaultSpec] = {
    spec.kind: spec
    for spec in (
        FaultSpec(
            "fan_off",
            Target.FAN,
            Severity.CRITICAL,
            "The fan stops at once (bearing seized, cable out); it stays off whatever its level.",
            fp.FanOffParams,
            on_physics=_fan_off,
        ),
        FaultSpec(
            "fan_degradation",
            Target.FAN,
            Severity.WARNING,
            "Wear: the fan loses step_ratio of its speed every interval_s, then stops once at or "
            "below off_below_ratio (by default -2 % every 30 min until ≤ 40 %, then off).",
            fp.FanDegradationParams,
            on_physics=_fan_degradation,
            duration=fp.fan_degradation_duration_s,
            then="fan_off",
        ),
        FaultSpec(
            "sensor_drift",
            Target.SENSOR,
            Severity.WARNING,
            "The sensor's reading drifts by slope_per_hour (by default +0.2 °C/h); the physics "
            "does not.",
            fp.SensorDriftParams,
            on_readings=_sensor_drift,
        ),
        FaultSpec(
            "sensor_stuck",
            Target.SENSOR,
            Severity.WARNING,
            "The sensor repeats one value: its reading at the start, or `value` if given.",
            fp.SensorStuckParams,
            on_readings=_sensor_stuck,
        ),
        FaultSpec(
            "sensor_null",
            Target.SENSOR,
            Severity.WARNING,
            "The sensor answers NULL: NaN readings (rows present, values missing).",
            fp.SensorNullParams,
            on_readings=_sensor_null,
        ),
        FaultSpec(
            "crac_degradation",
            Target.CRAC,
            Severity.CRITICAL,
            "The CRAC loses capacity, efficiency and airflow over ramp_s: supply air and every "
            "inlet warm slowly, room-wide, and cooling costs more per watt.",
            fp.CracDegradationParams,
            on_physics=_crac_degradation,
        ),
        FaultSpec(
            "pdu_cap",
            Target.PDU,
            Severity.WARNING,
            "The rack PDU lets through only capacity_ratio of its rating: CPUs are throttled "
            "until the rack fits (lower power and utilisation).",
            fp.PduCapParams,
            on_physics=_pdu_cap,
        ),
        FaultSpec(
            "load_burst",
            Target.SERVERS,
            Severity.INFO,
            "A CPU-intensive job holds utilisation at least at `utilization` on n_servers "
            "(by default 90 % for 120 s).",
            fp.LoadBurstParams,
            on_physics=_load_burst,
        ),
        FaultSpec(
            "telemetry_loss",
            Target.SENSORS,
            Severity.WARNING,
            "Intermittent network loss: a `fraction` of the series under the entity drop messages "
            "for min_gap_s-max_gap_s at a time (absent rows, not NaN); by default 10-30 s on 20 %.",
            fp.TelemetryLossParams,
            on_readings=_telemetry_loss,
            prepare=_prepare_telemetry_loss,
        ),
        FaultSpec(
            "airflow_misdistribution",
            Target.RACK,
            Severity.WARNING,
            "Hot-aisle breach or blocked tiles: the rack's recirculation is multiplied by factor; "
            "upper slots and the neighbours of hot servers warm most.",
            fp.AirflowMisdistributionParams,
            on_physics=_airflow_misdistribution,
        ),
        FaultSpec(
            "disk_failure",
            Target.SERVER,
            Severity.CRITICAL,
            "The disk stops answering: disk_ok goes 0 and the server draws power_delta_watts more.",
            fp.DiskFailureParams,
            on_physics=_disk_failure,
        ),
    )
}


# --- schedules -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScheduledFault:
    """A fault planned `offset_s` after the twin's start."""

    kind: str
    entity: str
    offset_s: float
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Lifetime:
    """Time to failure: Weibull with mean `mtbf_s` and `shape` (1 is exponential)."""

    mtbf_s: float
    shape: float = 1.0

    @property
    def scale_s(self) -> float:
        return self.mtbf_s / math.gamma(1.0 + 1.0 / self.shape)


_YEAR_S = 365.25 * 86400.0
DEFAULT_LIFETIMES: dict[str, Lifetime] = {
    "fan_off": Lifetime(3 * _YEAR_S, 1.0),
    "fan_degradation": Lifetime(2 * _YEAR_S, 2.0),
    "disk_failure": Lifetime(1.5 * _YEAR_S, 1.2),
    "sensor_drift": Lifetime(4 * _YEAR_S, 1.0),
    "sensor_stuck": Lifetime(6 * _YEAR_S, 1.0),
    "sensor_null": Lifetime(6 * _YEAR_S, 1.0),
}
"""Realistic per-entity lifetimes; pass shorter ones to see failures in a short run."""


def draw_random_faults(
    topo: Topology,
    seed: int,
    horizon_s: float,
    lifetimes: Mapping[str, Lifetime] | None = None,
) -> list[ScheduledFault]:
    """First failure of each candidate entity, drawn per kind; those before `horizon_s`.

    >>> from rackwatch.twin.topology import build_topology
    >>> faults = draw_random_faults(build_topology("small"), 0, 86400.0,
    ...                             {"fan_off": Lifetime(mtbf_s=86400.0)})
    >>> len(faults) > 0 and all(f.kind == "fan_off" and f.offset_s < 86400 for f in faults)
    True
    """
    schedule: list[ScheduledFault] = []
    for kind, life in sorted((lifetimes or DEFAULT_LIFETIMES).items()):
        if kind not in FAULTS:
            raise ValueError(f"unknown fault kind {kind!r}; choose from {sorted(FAULTS)}")
        entities = candidates(FAULTS[kind].target, topo)
        stream = zlib.crc32(kind.encode())  # a kind's draws do not depend on the other kinds
        rng = np.random.Generator(
            np.random.PCG64(np.random.SeedSequence([seed, STREAM_LIFETIMES, stream]))
        )
        when = life.scale_s * rng.weibull(life.shape, len(entities))
        schedule += [
            ScheduledFault(kind, entities[i], round(float(when[i]), 3))
            for i in np.nonzero(when < horizon_s)[0]
        ]
    return sorted(schedule, key=lambda f: (f.offset_s, f.kind, f.entity))
