"""The incident book: findings grouped by cause and scope, as `incident.*` events.

- A server-scope finding joins the device's open incident when it is a symptom of the same
  problem (a CPU heating after its fan stopped joins the fan's incident); a definite cause
  read from the hardware (a stopped fan, a failed disk) replaces a vaguer one.
- Sensor findings make one incident per device and cause: a bad probe is not the room.
- Inlet warming spreads: alone it is nothing; once `spread_devices` devices warm within
  `spread_s` it is one rack incident (airflow) when they share a rack, one room incident
  (cooling) when they do not, naming every device. A CRAC warming its supply air opens the
  room's cooling incident at once; later warming inlets, and vague thermal findings of the
  devices it covers, join it instead of raising their own.
- A PDU that caps its power is its rack's incident.
- An incident closes `quiet_s` after the last of its members ended.

Every change is one event carrying the whole incident (incident.py).
"""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass

from rackwatch.engine.diagnosis.findings import DiagnosisConfig, Finding
from rackwatch.engine.diagnosis.incident import (
    SENSOR_CAUSES,
    Cause,
    Incident,
    Member,
    Nature,
    Scope,
)
from rackwatch.model import Event, EventKind, Severity
from rackwatch.model.entity import parent

ROOM = "room"
VAGUE = frozenset({Cause.UNKNOWN, Cause.AIRFLOW, Cause.LOAD, Cause.COOLING})
"""Causes a covering rack or room incident explains (a definite one stands on its own)."""
DEFINITE = frozenset({Cause.FAN_FAILURE, Cause.DISK})
"""Causes read from the hardware itself: they replace a vaguer diagnosis of the device."""
MAX_EVIDENCE = 20
CRITICAL_CAUSES = frozenset({Cause.FAN_FAILURE, Cause.DISK, Cause.COOLING, Cause.POWER_CAP})


def action_for(cause: Cause, scope_entity: str, devices: list[str], finding: Finding) -> str:
    """What an operator should do, in a sentence."""
    where = scope_entity
    if cause is Cause.FAN_FAILURE:
        return (
            f"Move the load away from {where}, keep its other fans high, and replace "
            f"{finding.entity.rpartition('/')[2] or 'the fan'}."
        )
    if cause is Cause.FAN_WEAR:
        return (
            f"Plan the replacement of {finding.entity} before its predicted failure; move the "
            f"load away from {where} before then."
        )
    if cause is Cause.COOLING:
        return (
            f"Check the cooling (CRAC, chilled water, filters): {len(devices)} devices warm "
            "together. Shed or move load until the supply air is back to normal."
        )
    if cause is Cause.AIRFLOW:
        return (
            f"Check the airflow of {where} (blanking panels, floor tiles, containment, fans); "
            "move load away from its hottest servers."
        )
    if cause is Cause.POWER_CAP:
        return f"{where} is power-capped: check its PDU breaker and limit; move load elsewhere."
    if cause is Cause.DISK:
        return f"Replace the disk of {where}; move its jobs and data away first."
    if cause is Cause.LOAD:
        return f"Load, not a fault: rebalance {where} if it stays this hot."
    if cause in SENSOR_CAUSES:
        return (
            f"Do not act on {finding.metric} of {finding.entity}: the sensor is faulty. "
            "Check its probe and cable, then replace it."
        )
    return f"Inspect {where}: its temperatures rose with nothing to explain them."


@dataclass(slots=True)
class _Open:
    incident: Incident
    open_members: set[tuple[str, ...]]
    cause_finding: Finding
    """The finding the incident's cause comes from (its action names its entity)."""
    last_end_ms: int | None = None


class IncidentBook:
    def __init__(self, config: DiagnosisConfig | None = None) -> None:
        self.config = config or DiagnosisConfig()
        self.open: dict[str, _Open] = {}
        self.n_opened = 0
        self._member_of: dict[tuple[str, ...], str] = {}
        self._pool: deque[Finding] = deque()
        """Inlet-warming findings waiting to spread."""
        self._seq = itertools.count(1)

    # --- queries ---------------------------------------------------------------------------

    def incidents(self) -> list[Incident]:
        return [o.incident for o in self.open.values()]

    def covering(self, device: str) -> Incident | None:
        """The open incident that speaks for `device`: its own real one, else its rack's,
        else the room's."""
        found = self._covering(device)
        return None if found is None else found.incident

    def _covering(self, device: str) -> _Open | None:
        rack = parent(device)
        best: _Open | None = None
        for o in self.open.values():
            inc = o.incident
            if device in inc.devices and inc.scope is Scope.SERVER and inc.nature is Nature.REAL:
                return o
            in_rack = inc.scope is Scope.RACK and inc.scope_entity == rack
            if in_rack or (inc.scope is Scope.ROOM and best is None):
                best = o
        return best

    def member(self, key: tuple[str, ...]) -> bool:
        return key in self._member_of

    # --- changes ---------------------------------------------------------------------------

    def add(self, finding: Finding) -> list[Event]:
        if finding.key in self._member_of:
            return []
        if finding.spreads:
            return self._spread(finding)
        if finding.cause is Cause.COOLING:
            room = self._find(Scope.ROOM, ROOM, Cause.COOLING)
            if room is not None:
                return [self._join(room, finding)]
            events = [self._new(Scope.ROOM, ROOM, finding)]
            room = self._find(Scope.ROOM, ROOM, Cause.COOLING)
            assert room is not None
            events += [self._join(room, f) for f in self._drain_pool()]
            return events
        if finding.cause is Cause.POWER_CAP:
            rack = self._find(Scope.RACK, finding.device, Cause.POWER_CAP)
            if rack is not None:
                return [self._join(rack, finding)]
            return [self._new(Scope.RACK, finding.device, finding)]
        if finding.nature is Nature.SENSOR:
            mine = self._find(Scope.SERVER, finding.device, finding.cause)
            if mine is not None:
                return [self._join(mine, finding)]
            return [self._new(Scope.SERVER, finding.device, finding)]
        own = self._own_real(finding.device)
        if own is not None:
            return [self._join(own, finding, rediagnose=finding.cause in DEFINITE)]
        if finding.cause in VAGUE:
            wide = self._covering(finding.device)
            if wide is not None and wide.incident.scope is not Scope.SERVER:
                return [self._join(wide, finding)]
        return [self._new(Scope.SERVER, finding.device, finding)]

    def end(self, key: tuple[str, ...], ts: int) -> None:
        """A member (anomaly, rule, prediction) ended at `ts`."""
        self._pool = deque(f for f in self._pool if f.key != key)
        found = self._member_of.pop(key, None)
        if found is None or found not in self.open:
            return
        o = self.open[found]
        o.open_members.discard(key)
        if not o.open_members:
            o.last_end_ms = ts

    def tick(self, now_ms: int) -> list[Event]:
        """Close the incidents quiet for `quiet_s` at `now_ms`; drop stale spread findings."""
        quiet = round(self.config.quiet_s * 1000)
        spread = round(self.config.spread_s * 1000)
        while self._pool and self._pool[0].ts < now_ms - spread:
            self._pool.popleft()
        events = []
        for inc_id, o in list(self.open.items()):
            if o.open_members or o.last_end_ms is None or now_ms - o.last_end_ms < quiet:
                continue
            inc = o.incident
            inc.end_ms = o.last_end_ms + quiet
            del self.open[inc_id]
            events.append(self._event(EventKind.INCIDENT_CLOSED, inc, inc.end_ms))
        return events

    # --- internals -------------------------------------------------------------------------

    def _find(self, scope: Scope, entity: str, cause: Cause) -> _Open | None:
        for o in self.open.values():
            inc = o.incident
            if inc.scope is scope and inc.scope_entity == entity and inc.cause is cause:
                return o
        return None

    def _own_real(self, device: str) -> _Open | None:
        for o in self.open.values():
            inc = o.incident
            if (
                inc.scope is Scope.SERVER
                and inc.scope_entity == device
                and inc.nature is Nature.REAL
            ):
                return o
        return None

    def _spread(self, finding: Finding) -> list[Event]:
        for scope, entity in ((Scope.RACK, parent(finding.device)), (Scope.ROOM, ROOM)):
            for o in self.open.values():
                inc = o.incident
                if (
                    inc.scope is scope
                    and inc.scope_entity == entity
                    and inc.cause in (Cause.AIRFLOW, Cause.COOLING)
                ):
                    return [self._join(o, finding)]
        self._pool.append(finding)
        devices = {f.device for f in self._pool}
        if len(devices) < self.config.spread_devices:
            return []
        racks = {parent(d) or d for d in devices}
        pooled = self._drain_pool()
        first = pooled[0]
        if len(racks) >= 2:
            scope, entity, cause = Scope.ROOM, ROOM, Cause.COOLING
        else:
            scope, entity, cause = Scope.RACK, next(iter(racks)), Cause.AIRFLOW
        opened = self._new(scope, entity, first, cause=cause, at=finding.ts)
        made = self._find(scope, entity, cause)
        assert made is not None
        events = [opened]
        for f in pooled[1:]:
            self._add_member(made, f)
        if len(pooled) > 1:
            events.append(self._event(EventKind.INCIDENT_UPDATED, made.incident, finding.ts))
        return events

    def _drain_pool(self) -> list[Finding]:
        pooled = list(self._pool)
        self._pool.clear()
        return pooled

    def _new(
        self,
        scope: Scope,
        entity: str,
        finding: Finding,
        *,
        cause: Cause | None = None,
        at: int | None = None,
    ) -> Event:
        cause = finding.cause if cause is None else cause
        inc = Incident(
            id=f"inc-{finding.start_ms}-{next(self._seq)}",
            scope=scope,
            scope_entity=entity,
            nature=finding.nature,
            cause=cause,
            action="",
            start_ms=finding.start_ms,
        )
        o = _Open(inc, set(), finding)
        self.open[inc.id] = o
        self.n_opened += 1
        self._add_member(o, finding)
        return self._event(EventKind.INCIDENT_OPENED, inc, finding.ts if at is None else at)

    def _join(self, o: _Open, finding: Finding, *, rediagnose: bool = False) -> Event:
        inc = o.incident
        if rediagnose and inc.cause is not finding.cause:
            inc.evidence.append(f"rediagnosed: {inc.cause} -> {finding.cause}")
            inc.cause = finding.cause
            inc.nature = finding.nature
            o.cause_finding = finding
        self._add_member(o, finding)
        return self._event(EventKind.INCIDENT_UPDATED, inc, finding.ts)

    def _add_member(self, o: _Open, finding: Finding) -> None:
        inc = o.incident
        inc.members.append(
            Member(finding.entity, finding.metric, finding.detector, finding.start_ms)
        )
        if finding.device not in inc.devices:
            inc.devices.append(finding.device)
        if len(inc.evidence) < MAX_EVIDENCE:
            inc.evidence.append(finding.evidence)
        inc.start_ms = min(inc.start_ms, finding.start_ms)
        inc.action = action_for(inc.cause, inc.scope_entity, inc.devices, o.cause_finding)
        o.open_members.add(finding.key)
        o.last_end_ms = None
        self._member_of[finding.key] = inc.id

    def _event(self, kind: EventKind, inc: Incident, ts: int) -> Event:
        severity = Severity.CRITICAL if inc.cause in CRITICAL_CAUSES else Severity.WARNING
        if kind is EventKind.INCIDENT_CLOSED:
            severity = Severity.INFO
        return Event(
            ts=ts,
            kind=str(kind),
            entity=inc.scope_entity,
            severity=severity,
            attributes=inc.attributes(),
        )
