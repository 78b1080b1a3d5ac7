"""The diagnosis stage of the stream: anomaly and prediction events in, incident events out.

`DiagnosisStage.process(batch, events)` runs after the anomaly and fan stages on the same
batch: it updates its signal book with the batch, reads the direct findings (stopped fans,
failed disks, capped PDUs), turns each new `anomaly.started` into a candidate and each
`prediction.fan_failure` into a fan-wear finding, asks `classify` about every candidate not
yet decided (a candidate on a device whose real incident is open joins it at once), hands
the findings to the incident book and closes the incidents gone quiet. Pure and synchronous:
the intelligence consumer runs it in its worker thread.
"""

from __future__ import annotations

from collections.abc import Sequence

from rackwatch.engine.diagnosis.findings import (
    DROP,
    Candidate,
    DiagnosisConfig,
    Finding,
    RuleState,
    classify,
    device_of,
    rule_findings,
)
from rackwatch.engine.diagnosis.incident import Cause, Incident, Nature
from rackwatch.engine.diagnosis.incidents import IncidentBook
from rackwatch.engine.diagnosis.signals import SignalBook
from rackwatch.model import Batch, Event, EventKind, SeriesRegistry

SENSOR_DETECTORS = frozenset({"null_run", "stuck", "residual", "drift"})
"""Detectors whose anomalies are classified on their own even on a device in trouble."""


def anomaly_key(event: Event) -> tuple[str, ...]:
    """One open anomaly per series and family: the series' own detectors, the physics
    residual."""
    detector = event.attributes.get("detector")
    family = detector if detector in ("residual", "drift") else "series"
    return ("anomaly", event.entity, str(event.attributes.get("metric", "")), str(family))


class DiagnosisStage:
    def __init__(
        self,
        registry: SeriesRegistry,
        devices: set[str],
        config: DiagnosisConfig | None = None,
    ) -> None:
        """`devices`: the entities with a load series (servers, hosts), kept up to date by
        the caller (the roles' `load_entities`)."""
        self.registry = registry
        self.devices = devices
        self.config = config or DiagnosisConfig()
        self.book = SignalBook(registry)
        self.incidents = IncidentBook(self.config)
        self.rules = RuleState()
        self.candidates: dict[tuple[str, ...], Candidate] = {}
        self.n_dropped = 0
        """Anomalies the diagnosis judged noise (no incident)."""

    def open_incidents(self) -> list[Incident]:
        return self.incidents.incidents()

    def process(self, batch: Batch, events: Sequence[Event]) -> list[Event]:
        """The incident events that `batch` and the stages' `events` (about the same batch)
        cause, in time order."""
        self.book.update(batch)
        now = int(batch.ts.max()) if len(batch) else max((e.ts for e in events), default=None)
        if now is None:
            return []
        out: list[Event] = []
        found, ended = rule_findings(
            batch, self.book, self.registry, self.devices, self.config, self.rules
        )
        for finding in found:
            out += self.incidents.add(finding)
        for key in ended:
            self.incidents.end(key, now)
        for event in sorted(events, key=lambda e: e.ts):
            out += self._event(event)
        out += self._classify(now)
        out += self.incidents.tick(now)
        out.sort(key=lambda e: e.ts)
        return out

    def _event(self, event: Event) -> list[Event]:
        kind = event.kind
        if kind == EventKind.ANOMALY_STARTED:
            self._candidate(event)
        elif kind == EventKind.ANOMALY_ENDED:
            key = anomaly_key(event)
            self.candidates.pop(key, None)
            self.incidents.end(key, event.ts)
        elif kind == EventKind.PREDICTION_FAN_FAILURE:
            return self._wear(event)
        elif kind == EventKind.PREDICTION_CLEARED:
            self.incidents.end(("prediction", event.entity), event.ts)
        return []

    def _candidate(self, event: Event) -> None:
        metric = str(event.attributes.get("metric", ""))
        sid = self.book.series(event.entity, metric)
        if sid is None:
            return
        z = event.attributes.get("z")
        device = device_of(event.entity, self.devices)
        start = event.attributes.get("start", event.ts)
        key = anomaly_key(event)
        self.candidates[key] = Candidate(
            key=key,
            sid=sid,
            entity=event.entity,
            device=device,
            metric=metric,
            detector=str(event.attributes.get("detector", "")),
            z=float(z) if isinstance(z, int | float) else float("nan"),
            start_ms=int(start) if isinstance(start, int) else event.ts,
            reference=self.book.capture(device),
        )

    def _wear(self, event: Event) -> list[Event]:
        key = ("prediction", event.entity)
        if self.incidents.member(key) or ("rule", "fan_rpm", event.entity) in self.rules.holding:
            return []  # known, or the fan already stopped (its failure is the incident)
        eta = event.attributes.get("eta_s")
        when = f" in about {float(eta) / 3600:.1f} h" if isinstance(eta, int | float) else ""
        finding = Finding(
            ts=event.ts,
            device=device_of(event.entity, self.devices),
            nature=Nature.REAL,
            cause=Cause.FAN_WEAR,
            key=key,
            entity=event.entity,
            metric="fan_rpm",
            detector="prediction",
            start_ms=event.ts,
            evidence=f"{event.entity} is wearing: predicted to fail{when}",
        )
        return self.incidents.add(finding)

    def _classify(self, now: int) -> list[Event]:
        waiting = [c for c in self.candidates.values() if not c.decided]
        if not waiting:
            return []
        by_device: dict[str, list[Candidate]] = {}
        for c in self.candidates.values():
            by_device.setdefault(c.device, []).append(c)
        out: list[Event] = []
        for cand in sorted(waiting, key=lambda c: c.start_ms):
            own = self.incidents.covering(cand.device)
            held = ("rule", cand.metric, cand.entity) in self.rules.holding
            if (
                own is not None
                and cand.device in own.devices
                and own.nature is Nature.REAL
                and (cand.detector not in SENSOR_DETECTORS or held)
            ):
                cand.decided = True
                out += self.incidents.add(self._symptom(cand, own, now))
                continue
            probe = self._sensor_incident(cand.device)
            if cand.detector in ("residual", "drift") and probe is not None:
                cand.decided = True  # a broken input probe misleads the model: its symptom
                out += self.incidents.add(self._symptom(cand, probe, now))
                continue
            others = [c for c in by_device.get(cand.device, []) if c is not cand]
            verdict = classify(cand, now, self.book, others, self.config)
            if isinstance(verdict, Finding):
                cand.decided = True
                out += self.incidents.add(verdict)
            elif verdict is DROP:
                cand.decided = True
                self.n_dropped += 1
        return out

    def _sensor_incident(self, device: str) -> Incident | None:
        for inc in self.incidents.incidents():
            if inc.nature is Nature.SENSOR and inc.scope_entity == device:
                return inc
        return None

    def _symptom(self, cand: Candidate, incident: Incident, now: int) -> Finding:
        """An anomaly of a device whose real incident is open: a symptom of it."""
        z = "" if cand.z != cand.z else f", z={cand.z:+.1f}"
        return Finding(
            ts=now,
            device=cand.device,
            nature=incident.nature,
            cause=incident.cause,
            key=cand.key,
            entity=cand.entity,
            metric=cand.metric,
            detector=cand.detector,
            start_ms=cand.start_ms,
            evidence=f"{cand.metric} of {cand.entity}: moved with it ({cand.detector}{z})",
        )
