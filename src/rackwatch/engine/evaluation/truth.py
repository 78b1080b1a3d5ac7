"""The ground truth: what each fault kind should be diagnosed as, and the labels of a run.

Every fault the twin schedules is logged as a `fault.injected` Event (kind, entity, start,
planned end, parameters). `labels_from_events` turns those into `Label`s naming the device an
incident must point at: the server for fan, sensor and disk faults (`c01/r01/s03` for
`c01/r01/s03/fan1`), the rack for PDU and airflow faults, `room` for the CRAC.

A worn fan stops at the end of its wear (the twin schedules a `fan_off` with
`cause: fan_degradation`): that stop is part of the wear, not a second fault, so it is folded
into the wear's label as `failure_ms` and the label lasts until the run ends.

>>> from rackwatch.model.records import Event
>>> labels = labels_from_events(
...     [Event(1_000, "fault.injected", "c01/r01/s03/fan1", attributes={"fault": "fan_off"})],
...     run_end_ms=9_000)
>>> labels[0].kind, labels[0].devices, labels[0].end_ms, EXPECTED["fan_off"].cause.value
('fan_off', ('c01/r01/s03',), None, 'fan_failure')
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from rackwatch.engine.diagnosis.incident import Cause, Nature, Scope
from rackwatch.model.records import Event, EventKind
from rackwatch.twin.faults import FAULTS, Target
from rackwatch.twin.topology import ROOM_PATH

WEAR = "fan_degradation"
"""The gradual fan fault: also detected by a `prediction.fan_failure` on its fan."""


@dataclass(frozen=True, slots=True)
class Expected:
    """The diagnosis a fault kind should get."""

    nature: Nature
    scope: Scope
    cause: Cause


EXPECTED: dict[str, Expected] = {
    "fan_off": Expected(Nature.REAL, Scope.SERVER, Cause.FAN_FAILURE),
    WEAR: Expected(Nature.REAL, Scope.SERVER, Cause.FAN_WEAR),
    "sensor_drift": Expected(Nature.SENSOR, Scope.SERVER, Cause.SENSOR_DRIFT),
    "sensor_stuck": Expected(Nature.SENSOR, Scope.SERVER, Cause.SENSOR_STUCK),
    "sensor_null": Expected(Nature.SENSOR, Scope.SERVER, Cause.SENSOR_NULL),
    "crac_degradation": Expected(Nature.REAL, Scope.ROOM, Cause.COOLING),
    "pdu_cap": Expected(Nature.REAL, Scope.RACK, Cause.POWER_CAP),
    "airflow_misdistribution": Expected(Nature.REAL, Scope.RACK, Cause.AIRFLOW),
    "disk_failure": Expected(Nature.REAL, Scope.SERVER, Cause.DISK),
}
"""Counted fault kinds (recall, latency, diagnosis) and the diagnosis each should get."""

NOT_A_FAULT = frozenset({"load_burst"})
"""Work, not a fault: never in the recall; an incident on its servers during it is no false
alarm, but one diagnosed as a sensor fault is a diagnosis error."""
EXCLUDED = frozenset({"telemetry_loss"})
"""Left to the alert engine's absence rules: not in the recall, and incidents on its series
during it are no false alarms."""
SUDDEN = frozenset({"fan_off", "sensor_stuck", "sensor_null", "disk_failure", "pdu_cap"})
"""Faults that happen at once: targets recall >= 0.95 and median latency <= 60 s."""
GRADUAL = frozenset(EXPECTED) - SUDDEN


def kind_class(kind: str) -> str:
    """sudden, gradual, not a fault or excluded.

    >>> [kind_class(k) for k in ("pdu_cap", "sensor_drift", "load_burst", "telemetry_loss")]
    ['sudden', 'gradual', 'not a fault', 'excluded']
    """
    if kind in SUDDEN:
        return "sudden"
    if kind in GRADUAL:
        return "gradual"
    if kind in NOT_A_FAULT:
        return "not a fault"
    if kind in EXCLUDED:
        return "excluded"
    raise ValueError(f"unknown fault kind {kind!r}; choose one of {sorted(FAULTS)}")


@dataclass(frozen=True, slots=True)
class Label:
    """One injected fault, as the matcher sees it."""

    kind: str
    entity: str
    """The fault's own entity (a fan, a sensor's server, a PDU, the CRAC...)."""
    devices: tuple[str, ...]
    """What an incident must name (or name something under): see the module text."""
    start_ms: int
    end_ms: int | None
    """Planned end; None: until repaired (the run's end)."""
    failure_ms: int | None = None
    """For a worn fan: when it stopped (within the run), else None."""

    @property
    def is_counted(self) -> bool:
        """In the recall, latency and diagnosis (not a load burst, not a telemetry loss)."""
        return self.kind in EXPECTED

    def last_ms(self, run_end_ms: int) -> int:
        """The fault's end within the run."""
        return run_end_ms if self.end_ms is None else min(self.end_ms, run_end_ms)


def first_segments(path: str, n: int) -> str:
    """
    >>> first_segments("c01/r01/s03/fan1", 3), first_segments("c01/r01/pdu", 2)
    ('c01/r01/s03', 'c01/r01')
    """
    return "/".join(path.split("/")[:n])


def fault_devices(kind: str, entity: str, attributes: Mapping[str, Any]) -> tuple[str, ...]:
    """The device(s) of a fault: server, rack or `room` by what the kind targets.

    >>> fault_devices("pdu_cap", "c01/r02/pdu", {}), fault_devices("crac_degradation", "x", {})
    (('c01/r02',), ('room',))
    >>> fault_devices("load_burst", "c01", {"servers": ["c01/r01/s02", "c01/r01/s05"]})
    ('c01/r01/s02', 'c01/r01/s05')
    """
    spec = FAULTS.get(kind)
    if spec is None:
        raise ValueError(f"unknown fault kind {kind!r}; choose one of {sorted(FAULTS)}")
    target = spec.target
    if target in (Target.FAN, Target.SERVER, Target.SENSOR):
        return (first_segments(entity, 3),)
    if target in (Target.PDU, Target.RACK):
        return (first_segments(entity, 2),)
    if target == Target.CRAC:
        return (ROOM_PATH,)
    servers = attributes.get("servers")
    if target == Target.SERVERS and isinstance(servers, Sequence) and servers:
        return tuple(str(s) for s in servers)
    return (entity,)  # a whole cluster, rack or server (telemetry loss)


def labels_from_events(events: Iterable[Event], run_end_ms: int) -> list[Label]:
    """The labels of the faults that started before `run_end_ms`, in start order."""
    faults = sorted(
        (e for e in events if e.kind == EventKind.FAULT_INJECTED and e.ts < run_end_ms),
        key=lambda e: e.ts,
    )
    labels: list[Label] = []
    for event in faults:
        kind = str(event.attributes.get("fault", ""))
        if event.attributes.get("cause") == WEAR:  # the worn fan's stop: part of its wear
            for i, label in enumerate(labels):
                if label.kind == WEAR and label.entity == event.entity:
                    labels[i] = replace(label, end_ms=None, failure_ms=event.ts)
                    break
            else:
                labels.append(_label(kind, event))
            continue
        labels.append(_label(kind, event))
    return labels


def _label(kind: str, event: Event) -> Label:
    devices = fault_devices(kind, event.entity, event.attributes)
    return Label(kind, event.entity, devices, event.ts, event.end_ts)
