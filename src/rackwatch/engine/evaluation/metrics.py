"""From runs to figures: each fault's outcome, then the figures per kind and overall.

Per fault (`Outcome`): detected or not; the detection latency (the first matching detection's
report minus the fault's start) and its onset latency (that detection's start minus the
fault's start); whether that first detection's nature, scope and cause are the expected ones;
for a fan that stopped, the time to the controller's failover.

Per run (`RunScore`): the detections after the warm-up, how many are explained by a fault
(precision) and how many are false alarms, per server-day of exposure after the warm-up. The
first `WARMUP_S` of every run are the detectors' warm-up from nothing (a live system has its
history): detections that start then are left out, and counted apart.

Figures (`kind_figures`, `overall_figures`):

- recall = faults detected / faults (counted kinds only: not load bursts, not telemetry loss);
- precision = detections explained by some fault / detections, over the runs that hold the
  kind (over every run, overall); F1 = 2PR / (P + R);
- false alarms per server-day = unexplained detections / (servers x days after the warm-up),
  over the runs that hold the kind; overall, on the fault-free runs (`..._all`: every run);
- detection latency: median and p95 over the detected faults;
- diagnosis accuracy = detected faults whose first detection has the expected nature, scope
  and cause / detected faults, each part also alone. A load burst whose first overlapping
  incident says "sensor" is a diagnosis error (nature part only);
- time to failure (wear runs whose fan stopped): `engine/predict/evaluate.py`'s lead, error
  at 1/3/6 h and coverage, and the share predicted >= 1 h ahead;
- seed 000's KPIs: anomalies per server-day, false-positive rate (1 - precision),
  false-negative rate (1 - recall), time to remediation (fault start, or a worn fan's stop,
  to the controller's `control.fan_failover` for that server).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rackwatch.engine.diagnosis.incident import Nature
from rackwatch.engine.evaluation.detections import INCIDENT, PREDICTION, Detection
from rackwatch.engine.evaluation.grid import FAULT_FREE
from rackwatch.engine.evaluation.match import GRACE_S, Matching, match
from rackwatch.engine.evaluation.runner import RunResult
from rackwatch.engine.evaluation.truth import (
    EXPECTED,
    GRADUAL,
    NOT_A_FAULT,
    SUDDEN,
    WEAR,
    Label,
    kind_class,
)
from rackwatch.engine.evaluation.wear import score_wear
from rackwatch.engine.predict.evaluate import WearEvaluation, WearRun

WARMUP_S = 1800.0
DAY_S = 86_400.0
FAN_KINDS = frozenset({"fan_off", WEAR})
"""Faults the controller remedies (a failover to the server's other fans)."""


@dataclass(frozen=True, slots=True)
class Target:
    """One of issue 10's targets."""

    name: str
    key: str
    """The figure it reads."""
    threshold: float
    at_least: bool

    def is_met(self, value: float | None) -> bool | None:
        if value is None:
            return None
        return value >= self.threshold if self.at_least else value <= self.threshold


TARGETS = (
    Target("recall, sudden faults", "recall", 0.95, True),
    Target("false alarms per server-day, fault-free", "false_alarms_per_server_day", 1.0, False),
    Target("median detection latency, sudden faults (s)", "detection_latency_s", 60.0, False),
    Target("fan failure predicted >= 1 h ahead, wear runs", "predicted_1h_ahead", 0.90, True),
    Target("diagnosis right", "diagnosis_accuracy", 0.90, True),
)
_BY_KEY = {t.key: t for t in TARGETS}


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one fault."""

    run: str
    kind: str
    entity: str
    start_ms: int
    is_detected: bool
    by: str | None = None
    """The first detection's source: incident or prediction."""
    latency_s: float | None = None
    onset_s: float | None = None
    is_nature_right: bool | None = None
    is_scope_right: bool | None = None
    is_cause_right: bool | None = None
    remediation_s: float | None = None
    diagnosis: str | None = None
    """The first detection's `nature/scope/cause`."""

    @property
    def is_diagnosis_right(self) -> bool | None:
        parts = (self.is_nature_right, self.is_scope_right, self.is_cause_right)
        if any(p is None for p in parts):
            return None
        return all(parts)


@dataclass(frozen=True, slots=True)
class RunScore:
    name: str
    group: str
    kinds: frozenset[str]
    server_days: float
    """Exposure after the warm-up."""
    n_detections: int
    n_explained: int
    n_warmup_detections: int
    n_anomalies: int
    false_alarm_causes: dict[str, int] = field(default_factory=dict)
    outcomes: tuple[Outcome, ...] = ()
    wear: tuple[WearRun, ...] = ()

    @property
    def n_false_alarms(self) -> int:
        return self.n_detections - self.n_explained


def _diagnosis(label: Label, first: Detection) -> tuple[bool | None, bool | None, bool | None]:
    if label.kind in NOT_A_FAULT:
        return first.nature != Nature.SENSOR, None, None
    expected = EXPECTED.get(label.kind)
    if expected is None:
        return None, None, None
    return (
        first.nature == expected.nature,
        first.scope == expected.scope,
        first.cause == expected.cause,
    )


def _remediation_s(label: Label, result: RunResult, grace_ms: int) -> float | None:
    if label.kind not in FAN_KINDS:
        return None
    since = label.failure_ms if label.kind == WEAR else label.start_ms
    if since is None:
        return None
    until = label.last_ms(result.end_ms) + grace_ms
    times = [
        f.ts_ms for f in result.failovers if f.server in label.devices and since <= f.ts_ms <= until
    ]
    return (min(times) - since) / 1000.0 if times else None


def _outcome(label: Label, m: Matching, i: int, result: RunResult, grace_ms: int) -> Outcome:
    first = m.first(i)
    remediation = _remediation_s(label, result, grace_ms)
    if first is None:
        return Outcome(
            result.spec.name,
            label.kind,
            label.entity,
            label.start_ms,
            False,
            remediation_s=remediation,
        )
    nature, scope, cause = _diagnosis(label, first)
    return Outcome(
        result.spec.name,
        label.kind,
        label.entity,
        label.start_ms,
        True,
        by=first.source,
        latency_s=(first.reported_ms - label.start_ms) / 1000.0,
        onset_s=(first.start_ms - label.start_ms) / 1000.0,
        is_nature_right=nature,
        is_scope_right=scope,
        is_cause_right=cause,
        remediation_s=remediation,
        diagnosis=f"{first.nature}/{first.scope}/{first.cause}",
    )


def score_run(
    result: RunResult, *, warmup_s: float = WARMUP_S, grace_s: float = GRACE_S
) -> RunScore:
    """Match a run's detections to its labels and score each fault."""
    after_ms = result.start_ms + round(warmup_s * 1000)
    kept = [d for d in result.detections if d.start_ms >= after_ms]
    m = match(result.labels, kept, result.end_ms, grace_s)
    grace_ms = round(grace_s * 1000)
    outcomes = tuple(_outcome(label, m, i, result, grace_ms) for i, label in enumerate(m.labels))
    wear = tuple(
        score_wear(result.predictions, result.spec.seed, lb.entity, lb.start_ms, lb.failure_ms)
        for lb in result.labels
        if lb.kind == WEAR and lb.failure_ms is not None
    )
    false_alarms = Counter(
        d.cause or "unknown" if d.source == INCIDENT else PREDICTION
        for d, is_explained in zip(m.detections, m.explained, strict=True)
        if not is_explained
    )
    exposure_s = max(0.0, result.duration_s - warmup_s)
    return RunScore(
        name=result.spec.name,
        group=result.spec.group,
        kinds=frozenset(lb.kind for lb in result.labels),
        server_days=result.n_servers * exposure_s / DAY_S,
        n_detections=len(kept),
        n_explained=sum(m.explained),
        n_warmup_detections=len(result.detections) - len(kept),
        n_anomalies=sum(ts >= after_ms for ts in result.anomaly_starts_ms),
        false_alarm_causes=dict(false_alarms),
        outcomes=outcomes,
        wear=wear,
    )


# --- statistics ----------------------------------------------------------------------------


def ratio(num: float, den: float) -> float | None:
    """num / den, None when there is nothing to divide by."""
    return num / den if den > 0 else None


def median(values: Sequence[float]) -> float | None:
    return float(np.median(values)) if len(values) else None


def p95(values: Sequence[float]) -> float | None:
    return float(np.percentile(values, 95)) if len(values) else None


def f1(precision: float | None, recall: float | None) -> float | None:
    """
    >>> f1(1.0, 0.5), f1(0.0, 0.0), f1(None, 1.0)
    (0.6666666666666666, 0.0, None)
    """
    if precision is None or recall is None:
        return None
    return 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0


def _share(flags: Iterable[bool | None]) -> float | None:
    known = [f for f in flags if f is not None]
    return ratio(sum(known), len(known))


def _one_minus(value: float | None) -> float | None:
    return None if value is None else 1.0 - value


def _detections(runs: Sequence[RunScore]) -> dict[str, Any]:
    n = sum(r.n_detections for r in runs)
    explained = sum(r.n_explained for r in runs)
    days = sum(r.server_days for r in runs)
    causes: Counter[str] = Counter()
    for r in runs:
        causes.update(r.false_alarm_causes)
    return {
        "precision": ratio(explained, n),
        "false_alarms_per_server_day": ratio(n - explained, days),
        "n_detections": n,
        "n_false_alarms": n - explained,
        "n_warmup_detections": sum(r.n_warmup_detections for r in runs),
        "false_alarm_causes": dict(causes.most_common()),
        "server_days": days,
        "n_runs": len(runs),
    }


def _latencies(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    found = [o for o in outcomes if o.is_detected]
    latency = [o.latency_s for o in found if o.latency_s is not None]
    onset = [o.onset_s for o in found if o.onset_s is not None]
    return {
        "detection_latency_s": median(latency),
        "detection_latency_p95_s": p95(latency),
        "onset_latency_s": median(onset),
        "n_faults": len(outcomes),
        "n_detected": len(found),
        "recall": ratio(len(found), len(outcomes)),
    }


def _diagnosis_figures(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    found = [o for o in outcomes if o.is_detected]
    return {
        "diagnosis_accuracy": _share(
            o.is_diagnosis_right if o.kind in EXPECTED else o.is_nature_right for o in found
        ),
        "diagnosis_nature": _share(o.is_nature_right for o in found),
        "diagnosis_scope": _share(o.is_scope_right for o in found),
        "diagnosis_cause": _share(o.is_cause_right for o in found),
    }


def _remediation(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    times = [o.remediation_s for o in outcomes if o.remediation_s is not None]
    return {
        "time_to_remediation_s": median(times),
        "time_to_remediation_p95_s": p95(times),
        "n_remediated": len(times),
    }


def wear_figures(runs: Sequence[WearRun]) -> dict[str, Any]:
    """`WearEvaluation.summary()` of the wear runs, and the target's figure."""
    if not runs:
        return {"n_runs": 0, "predicted_1h_ahead": None}
    evaluation = WearEvaluation(tuple(runs))
    return {**evaluation.summary(), "predicted_1h_ahead": evaluation.share_ahead(3600.0)}


def _targets(figures: dict[str, Any], keys: Iterable[str]) -> dict[str, bool | None]:
    return {key: _BY_KEY[key].is_met(figures.get(key)) for key in keys}


def kind_figures(kind: str, scores: Sequence[RunScore]) -> dict[str, Any]:
    """The figures of one fault kind (see the module text)."""
    outcomes = [o for s in scores for o in s.outcomes if o.kind == kind]
    runs = [s for s in scores if kind in s.kinds]
    is_counted = kind in EXPECTED
    latency = _latencies(outcomes)
    figures: dict[str, Any] = {
        "class": kind_class(kind),
        "expected": None
        if not is_counted
        else {
            "nature": str(EXPECTED[kind].nature),
            "scope": str(EXPECTED[kind].scope),
            "cause": str(EXPECTED[kind].cause),
        },
        **latency,
        "recall": latency["recall"] if is_counted else None,
        **_detections(runs),
        **_diagnosis_figures(outcomes),
        **_remediation(outcomes),
        "detected_by": dict(Counter(o.by for o in outcomes if o.by is not None)),
    }
    if not is_counted:
        figures["n_overlapped"] = figures.pop("n_detected")
        figures["detection_latency_s"] = figures["detection_latency_p95_s"] = None
        figures["onset_latency_s"] = None
    figures["f1"] = f1(figures["precision"], figures["recall"])
    if kind == WEAR:
        ttf = wear_figures([w for s in scores for w in s.wear])
        figures["time_to_failure"] = ttf
        figures["predicted_1h_ahead"] = ttf["predicted_1h_ahead"]
    keys = ["diagnosis_accuracy"] if is_counted or kind in NOT_A_FAULT else []
    if kind in SUDDEN:
        keys += ["recall", "detection_latency_s"]
    if kind == WEAR:
        keys.append("predicted_1h_ahead")
    figures["targets"] = _targets(figures, keys)
    return figures


def _group(outcomes: Sequence[Outcome], kinds: frozenset[str]) -> dict[str, Any]:
    return _latencies([o for o in outcomes if o.kind in kinds])


def overall_figures(scores: Sequence[RunScore]) -> dict[str, Any]:
    """Every counted fault together, the fault-free runs' false alarms and the KPIs."""
    outcomes = [o for s in scores for o in s.outcomes]
    counted = [o for o in outcomes if o.kind in EXPECTED]
    fault_free = [s for s in scores if s.group == FAULT_FREE]
    all_runs = _detections(scores)
    quiet = _detections(fault_free)
    latency = _latencies(counted)
    sudden = _group(counted, SUDDEN)
    gradual = _group(counted, GRADUAL)
    diagnosed = [o for o in outcomes if o.kind in EXPECTED or o.kind in NOT_A_FAULT]
    ttf = wear_figures([w for s in scores for w in s.wear])
    days_all = all_runs["server_days"]
    days_quiet = quiet["server_days"]
    figures: dict[str, Any] = {
        **latency,
        "precision": all_runs["precision"],
        "f1": f1(all_runs["precision"], latency["recall"]),
        "false_alarms_per_server_day": quiet["false_alarms_per_server_day"],
        "false_alarms_per_server_day_all": all_runs["false_alarms_per_server_day"],
        "n_detections": all_runs["n_detections"],
        "n_false_alarms": all_runs["n_false_alarms"],
        "n_false_alarms_fault_free": quiet["n_false_alarms"],
        "n_warmup_detections": all_runs["n_warmup_detections"],
        "false_alarm_causes": all_runs["false_alarm_causes"],
        "server_days": days_all,
        "server_days_fault_free": days_quiet,
        **_diagnosis_figures(diagnosed),
        "sudden": sudden,
        "gradual": gradual,
        "time_to_failure": ttf,
        "predicted_1h_ahead": ttf["predicted_1h_ahead"],
        "kpis": {
            "anomalies_per_server_day": ratio(sum(s.n_anomalies for s in scores), days_all),
            "anomalies_per_server_day_fault_free": ratio(
                sum(s.n_anomalies for s in fault_free), days_quiet
            ),
            "false_positive_rate": _one_minus(all_runs["precision"]),
            "false_negative_rate": _one_minus(latency["recall"]),
            **_remediation(outcomes),
        },
        "n_runs": len(scores),
    }
    checks = {
        "recall": sudden["recall"],
        "false_alarms_per_server_day": figures["false_alarms_per_server_day"],
        "detection_latency_s": sudden["detection_latency_s"],
        "predicted_1h_ahead": figures["predicted_1h_ahead"],
        "diagnosis_accuracy": figures["diagnosis_accuracy"],
    }
    figures["targets"] = [
        {
            "name": t.name,
            "key": t.key,
            "value": checks[t.key],
            "threshold": t.threshold,
            "at_least": t.at_least,
            "met": t.is_met(checks[t.key]),
        }
        for t in TARGETS
    ]
    return figures
