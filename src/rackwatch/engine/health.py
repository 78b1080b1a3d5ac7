"""Health 0-100 with its reasons, seed 002's criticity classes, predicted health and time to
the next failure, for every device and every rack, cluster and room above it. Pure.

**One device.** Each thing wrong with a device is a *reason* with a penalty in points (0-100),
and the penalties combine as independent risks, so that the worst dominates, a second one still
counts, and the score never leaves [0, 100]:

    health = 100 * prod(1 - penalty_i / 100)

- an active alert: warning 30, critical 55, a failure alert (`is_failure`) 80; several combine;
- the device state: ok 0, warning 30, critical 55, failed 80, unknown 30, maintenance 0, counted
  only where it says more than the alerts (a state comes from the alerts);
- anomaly scores s in [0, 1]: 40 * (s - 0.5) / 0.5 above 0.5, for the worst detector only (they
  all look at the same device);
- a predicted failure in eta: 70 * exp(-eta / 24 h): 67 at 1 h, 26 at 24 h, 3.5 at 3 days; a
  predicted crossing of a critical threshold (not a failure): 35 * exp(-eta / 24 h);
- headroom, a value on its way from `start` to its `limit`: 25 * the share of the way used;
- seed 002's application signals (a scraped application's CPU, JVM memory, request rate,
  response time): each signal's class is a reason, medium 30, high 55, critical 80, for the
  worst signal only (see `app_reasons`).

With the defaults a warning alone gives 70 (medium), a critical alert 45 (high), a failure 20
(critical), a fan predicted to fail within the hour 33 (high).

**Up the layout.** An entity's members are the entities one path segment below it (a server's
fans, a rack's servers and PDU, a cluster's racks); top-level clusters and `room` (the CRAC) are
members of `room`, while `separate_roots` (`host`, `scrape`, `app`: real machines and scraped
applications) stay trees of their own. A parent's score is the worst-weighted mean of its
members', times its own:

    members = w * min(h) + (1 - w) * mean(h)        (w = `worst_weight`, 0.6)
    health  = own * members / 100

so one server at 20 in a rack of ten healthy ones gives the rack 49 (high): a rack is as
worrying as its worst server, tempered by how many are fine. Its reasons are its own and its
members', each naming its device, worst first (`max_reasons`).

**Criticity** (seed 002): the seed classes a *usage* percentage, higher is worse: low < 25 %,
medium < 50 %, high < 75 %, critical above. A health score is the other way round, so its
class is that of the risk `100 - health`: low for health > 75, medium > 50, high > 25,
critical <= 25 (exactly 75 is medium, exactly 25 critical).

**Predicted health** at `horizon_s`: the same score with each forecast moved `horizon_s`
closer (one that has come by then counts as a failure alert, or a critical one for a threshold
crossing), each headroom value moved along its slope, alerts, states and anomaly scores held.
**Time to the next failure**: the smallest predicted time to a failure of the entity or any
member, with the device and its interval.

**Application metrics** (seed 002's Prometheus application): `app_metrics_from_prometheus`
derives its four signals from two scrapes, `app_criticity` classes them with the seed's
thresholds, and `HealthInputs.app` (the newest values, which `rackwatch run`'s scrape loop
publishes as `app_*` gauges) makes them reasons.

>>> sick = HealthInputs(alerts=(AlertInput("fan-stopped", Severity.CRITICAL, True),))
>>> report = health_report({"c01/r01/s01/fan1": sick, "c01/r01/s02": HealthInputs()})
>>> h = report["c01/r01/s01/fan1"]
>>> round(h.score), h.criticity, h.reasons[0].detail
(20, <Criticity.CRITICAL: 'critical'>, 'failure alert fan-stopped')
>>> round(report["c01/r01"].score), report["room"].criticity   # 0.6 * 20 + 0.4 * (20 + 100) / 2
(36, <Criticity.HIGH: 'high'>)
>>> criticity_of_health(75.0), criticity_of_health(75.1), app_criticity("request_count", 30.0)
(<Criticity.MEDIUM: 'medium'>, <Criticity.LOW: 'low'>, <Criticity.HIGH: 'high'>)
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt

from rackwatch.engine.predict.trend import Eta
from rackwatch.engine.states import DeviceState
from rackwatch.model import Severity
from rackwatch.model import entity as entity_path
from rackwatch.sources.scrape_loop import APP_SIGNAL_METRICS, app_signals

F64 = npt.NDArray[np.float64]
ROOM = "room"


# --- criticity -----------------------------------------------------------------------------


class Criticity(enum.StrEnum):
    """Seed 002's classes; `regular` is the seed's word for a response time that is fine."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"
    REGULAR = "regular"

    @property
    def rank(self) -> int:
        """0 (low, regular) to 3 (critical), for sorting and colours."""
        return _RANK[self]


_RANK = {
    Criticity.LOW: 0,
    Criticity.REGULAR: 0,
    Criticity.MEDIUM: 1,
    Criticity.HIGH: 2,
    Criticity.CRITICAL: 3,
}
PERCENT_BOUNDS: tuple[float, float, float] = (25.0, 50.0, 75.0)
"""Seed 002: low < 25 %, medium < 50 %, high < 75 %, critical."""
REQUEST_RATE_BOUNDS: tuple[float, float, float] = (15.0, 30.0, 60.0)
"""Seed 002, requests (succeeded + failed) per second: low < 15, medium < 30, high < 60,
critical "> 61"; the seed leaves 60-61 unclassified, rackwatch calls it critical."""
RESPONSE_TIME_CRITICAL_S = 0.3
"""Seed 002: a mean response time < 0.3 s is regular, above critical (0.3 itself: critical)."""


def _classify(value: float, bounds: tuple[float, float, float]) -> Criticity:
    low, medium, high = bounds
    if value < low:
        return Criticity.LOW
    if value < medium:
        return Criticity.MEDIUM
    if value < high:
        return Criticity.HIGH
    return Criticity.CRITICAL


def criticity_of_percent(percent: float) -> Criticity:
    """A usage or risk percentage (higher is worse) in seed 002's classes; NaN is critical
    (nothing known is no reassurance)."""
    return Criticity.CRITICAL if math.isnan(percent) else _classify(percent, PERCENT_BOUNDS)


def criticity_of_health(score: float) -> Criticity:
    """The class of a health score (higher is better): that of its risk, 100 - score."""
    return criticity_of_percent(100.0 - score)


# --- application metrics (seed 002) --------------------------------------------------------


class AppMetric(enum.StrEnum):
    CPU_USAGE = "cpu_usage"
    """process_cpu_usage, 0..1."""
    JVM_MEMORY_USAGE = "jvm_memory_usage"
    """sum(jvm_memory_used_bytes) / sum(jvm_memory_max_bytes), 0..1."""
    REQUEST_COUNT = "request_count"
    """irate(http_server_requests_seconds_count): requests per second, succeeded + failed."""
    RESPONSE_TIME = "response_time"
    """irate of the _sum over irate of the _count: mean seconds per request."""


def app_criticity(metric: str, value: float) -> Criticity:
    """Seed 002's class of one application metric (`AppMetric` names; ratios 0..1 for the
    usages, requests/s, seconds). Raises ValueError for another name."""
    kind = AppMetric(metric)
    if math.isnan(value):
        return Criticity.CRITICAL
    if kind in (AppMetric.CPU_USAGE, AppMetric.JVM_MEMORY_USAGE):
        return criticity_of_percent(100.0 * value)
    if kind is AppMetric.REQUEST_COUNT:
        return _classify(value, REQUEST_RATE_BOUNDS)
    return Criticity.REGULAR if value < RESPONSE_TIME_CRITICAL_S else Criticity.CRITICAL


@dataclass(frozen=True, slots=True)
class AppMetrics:
    """Seed 002's four signals of one application; None where the scrapes do not tell."""

    cpu_usage: float | None = None
    jvm_memory_usage: float | None = None
    request_count: float | None = None
    response_time: float | None = None

    def criticity(self) -> dict[str, Criticity]:
        """The class of every signal that is known, by `AppMetric` name."""
        values = {
            AppMetric.CPU_USAGE: self.cpu_usage,
            AppMetric.JVM_MEMORY_USAGE: self.jvm_memory_usage,
            AppMetric.REQUEST_COUNT: self.request_count,
            AppMetric.RESPONSE_TIME: self.response_time,
        }
        return {str(k): app_criticity(k, v) for k, v in values.items() if v is not None}


APP_METRIC_OF: dict[AppMetric, str] = {AppMetric(k): m for k, m in APP_SIGNAL_METRICS.items()}
"""The gauge each signal is published as (`app_cpu_usage_ratio`...): the scrape loop's."""
APP_SIGNAL_OF: dict[str, AppMetric] = {m: k for k, m in APP_METRIC_OF.items()}
"""Gauge name -> the seed 002 signal it carries."""


def app_metrics_from_prometheus(
    current: Mapping[str, float | Sequence[float]],
    previous: Mapping[str, float | Sequence[float]] | None = None,
    interval_s: float | None = None,
) -> AppMetrics:
    """Seed 002's signals from a scrape (metric name -> value, or the values of its label sets)
    and the one before it `interval_s` earlier (for the two rates, as Prometheus' irate).
    The arithmetic is the scrape loop's (`sources.scrape_loop.app_signals`), which publishes
    the same signals as `app_*` gauges.

    A counter that went down (the application restarted) gives no rate this time; a value
    that comes out negative or not finite is unknown (None).

    >>> now = {"process_cpu_usage": 0.31, "jvm_memory_used_bytes": [300.0, 100.0],
    ...        "jvm_memory_max_bytes": [1000.0, 600.0],
    ...        "http_server_requests_seconds_count": 1200.0,
    ...        "http_server_requests_seconds_sum": 130.0}
    >>> before = {"http_server_requests_seconds_count": 1000.0,
    ...           "http_server_requests_seconds_sum": 100.0}
    >>> m = app_metrics_from_prometheus(now, before, 5.0)
    >>> m.cpu_usage, m.jvm_memory_usage, m.request_count, m.response_time
    (0.31, 0.25, 40.0, 0.15)
    >>> [str(c) for c in m.criticity().values()]       # cpu, memory, requests, response time
    ['medium', 'medium', 'high', 'regular']
    """
    return AppMetrics(**app_signals(current, previous, interval_s))


# --- inputs ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AlertInput:
    """An active alert on the entity (WARNING or CRITICAL; INFO counts nothing)."""

    rule: str
    severity: Severity
    is_failure: bool = False


@dataclass(frozen=True, slots=True)
class Headroom:
    """A signal on its way from `start` (comfortable) to `limit` (its critical threshold);
    `limit < start` for a signal that must stay high (an inlet too cold, a fan too slow)."""

    name: str
    value: float
    start: float
    limit: float
    slope_per_s: float | None = None
    """Its trend, to move it for the predicted health."""

    @classmethod
    def of_thresholds(
        cls,
        name: str,
        value: float,
        warning: float,
        critical: float,
        slope_per_s: float | None = None,
    ) -> Headroom:
        """Comfortable one warning-to-critical gap before the warning threshold: a CPU rule at
        75/85 °C starts counting at 65 °C."""
        return cls(name, value, warning - (critical - warning), critical, slope_per_s)

    def used_ratio(self) -> float:
        """Share of the way from start to limit, in [0, 1] (0 when unknown)."""
        span = self.limit - self.start
        if not math.isfinite(self.value) or span == 0 or not math.isfinite(span):
            return 0.0
        return min(1.0, max(0.0, (self.value - self.start) / span))


@dataclass(frozen=True, slots=True)
class FailureForecast:
    """A predicted event of the entity: a failure (fan stopping, disk full) or, with
    `is_failure` False, a signal crossing its critical threshold."""

    what: str
    eta_s: float
    low_s: float | None = None
    high_s: float | None = None
    is_failure: bool = True


@dataclass(frozen=True, slots=True)
class HealthInputs:
    """What is known of one entity. `state` is the entity's own state, not its roll-up
    (members are aggregated separately). `anomaly_scores`: one score in [0, 1] per detector
    or series, a mapping (named in the reasons) or an array."""

    state: DeviceState | None = None
    alerts: Sequence[AlertInput] = ()
    anomaly_scores: Mapping[str, float] | Sequence[float] | F64 = ()
    forecasts: Sequence[FailureForecast] = ()
    headroom: Sequence[Headroom] = ()
    app: Mapping[str, float] = field(default_factory=dict)
    """Seed 002's application signals (`AppMetric` name -> newest value) of a scraped
    application: ratios 0..1, requests/s, seconds."""


def forecasts_from_eta(
    names: Sequence[str], eta: Eta, what: str, *, is_failure: bool = True
) -> dict[str, FailureForecast]:
    """One forecast per series whose crossing is predicted (finite eta), by name: the bridge
    from the predictors' arrays (a `FanForecast.eta`, a `Forecast.eta`) to the health."""
    found: dict[str, FailureForecast] = {}
    for i in np.nonzero(np.isfinite(eta.eta_s))[0].tolist():
        low, high = float(eta.low_s[i]), float(eta.high_s[i])
        found[names[i]] = FailureForecast(
            what,
            float(eta.eta_s[i]),
            low if math.isfinite(low) else None,
            high if math.isfinite(high) else None,
            is_failure,
        )
    return found


# --- parameters and results ------------------------------------------------------------------


def _state_penalties() -> dict[DeviceState, float]:
    return {
        DeviceState.OK: 0.0,
        DeviceState.WARNING: 30.0,
        DeviceState.CRITICAL: 55.0,
        DeviceState.FAILED: 80.0,
        DeviceState.UNKNOWN: 30.0,
        DeviceState.MAINTENANCE: 0.0,
    }


def _app_penalties() -> dict[Criticity, float]:
    return {Criticity.MEDIUM: 30.0, Criticity.HIGH: 55.0, Criticity.CRITICAL: 80.0}


@dataclass(frozen=True, slots=True)
class HealthParams:
    warning_penalty: float = 30.0
    critical_penalty: float = 55.0
    failure_penalty: float = 80.0
    state_penalty: Mapping[DeviceState, float] = field(default_factory=_state_penalties)
    anomaly_penalty: float = 40.0
    anomaly_floor: float = 0.5
    """Anomaly scores at or below this cost nothing."""
    failure_forecast_penalty: float = 70.0
    crossing_forecast_penalty: float = 35.0
    forecast_tau_s: float = 86_400.0
    """Forecast penalties decay as exp(-eta / tau)."""
    headroom_penalty: float = 25.0
    app_penalty: Mapping[Criticity, float] = field(default_factory=_app_penalties)
    """Per seed 002 class of an application signal (low and regular: 0); worst signal only."""
    worst_weight: float = 0.6
    """Weight of the worst member in a parent's aggregate, the mean has the rest."""
    max_reasons: int = 5
    separate_roots: tuple[str, ...] = ("host", "scrape", "app")
    """Top-level trees that do not roll up into `room`."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.worst_weight <= 1.0:
            raise ValueError(f"worst_weight must be in [0, 1], got {self.worst_weight}")
        if not self.forecast_tau_s > 0 or not 0.0 <= self.anomaly_floor < 1.0:
            raise ValueError("forecast_tau_s must be > 0 and anomaly_floor in [0, 1)")
        if self.max_reasons < 1:
            raise ValueError("max_reasons must be >= 1")


DEFAULT_HEALTH = HealthParams()


class ReasonKind(enum.StrEnum):
    ALERT = "alert"
    STATE = "state"
    ANOMALY = "anomaly"
    FORECAST = "forecast"
    HEADROOM = "headroom"
    APP = "app"


@dataclass(frozen=True, slots=True)
class Reason:
    entity: str
    kind: ReasonKind
    detail: str
    penalty: float
    """Points this reason alone takes off 100."""


@dataclass(frozen=True, slots=True)
class NextFailure:
    entity: str
    what: str
    eta_s: float
    low_s: float | None
    high_s: float | None


@dataclass(frozen=True, slots=True)
class Health:
    entity: str
    score: float
    criticity: Criticity
    reasons: tuple[Reason, ...]
    """Worst first, at most `max_reasons`, the entity's own and its members'."""
    predicted_score: float
    predicted_criticity: Criticity
    horizon_s: float
    next_failure: NextFailure | None
    n_members: int


# --- scoring ---------------------------------------------------------------------------------


def _combine(penalties: Sequence[float]) -> float:
    """100 * prod(1 - p / 100): independent risks."""
    health = 100.0
    for p in penalties:
        health *= 1.0 - min(100.0, max(0.0, p)) / 100.0
    return health


def _alert_penalty(alert: AlertInput, params: HealthParams) -> float:
    if alert.is_failure:
        return params.failure_penalty
    if alert.severity >= Severity.CRITICAL:
        return params.critical_penalty
    if alert.severity >= Severity.WARNING:
        return params.warning_penalty
    return 0.0


def _scores(values: Mapping[str, float] | Sequence[float] | F64) -> list[tuple[str, float]]:
    if isinstance(values, Mapping):
        return [(str(k), float(v)) for k, v in values.items()]
    return [(f"#{i}", float(v)) for i, v in enumerate(np.asarray(values, dtype=np.float64))]


def own_reasons(
    entity: str, inputs: HealthInputs, params: HealthParams = DEFAULT_HEALTH
) -> list[Reason]:
    """What takes points off one entity, its members aside (`advanced(inputs, h)` for `h`
    from now)."""
    return [
        *_condition_reasons(entity, inputs, params),
        *_anomaly_reasons(entity, inputs.anomaly_scores, params),
        *_forecast_reasons(entity, inputs.forecasts, params),
        *_headroom_reasons(entity, inputs.headroom, params),
        *app_reasons(entity, inputs.app, params),
    ]


def own_score(reasons: Sequence[Reason]) -> float:
    """The score of an entity's own reasons: independent risks combined, except the
    application signals, of which only the worst counts (`app_reasons`)."""
    app = max((r.penalty for r in reasons if r.kind is ReasonKind.APP), default=0.0)
    return _combine([r.penalty for r in reasons if r.kind is not ReasonKind.APP] + [app])


def _condition_reasons(entity: str, inputs: HealthInputs, params: HealthParams) -> list[Reason]:
    """Alerts (a forecast whose time has come counts as one) and the state beyond them."""
    alerts = list(inputs.alerts)
    alerts += [
        AlertInput(f.what, Severity.CRITICAL, f.is_failure)
        for f in inputs.forecasts
        if f.eta_s <= 0.0  # it has happened (a fan already below its failure ratio)
    ]
    reasons = []
    for alert in alerts:
        penalty = _alert_penalty(alert, params)
        if penalty > 0:
            label = "failure alert" if alert.is_failure else f"{alert.severity.name.lower()} alert"
            reasons.append(Reason(entity, ReasonKind.ALERT, f"{label} {alert.rule}", penalty))
    if inputs.state is not None:
        penalty = params.state_penalty.get(inputs.state, 0.0)
        if penalty > 100.0 - _combine([r.penalty for r in reasons]):  # says more than alerts
            reasons.append(Reason(entity, ReasonKind.STATE, f"state {inputs.state}", penalty))
    return reasons


def _anomaly_reasons(
    entity: str, scores: Mapping[str, float] | Sequence[float] | F64, params: HealthParams
) -> list[Reason]:
    scored = [(k, v) for k, v in _scores(scores) if math.isfinite(v)]
    if not scored:
        return []
    key, worst = max(scored, key=lambda kv: kv[1])
    excess = (min(worst, 1.0) - params.anomaly_floor) / (1.0 - params.anomaly_floor)
    if excess <= 0:
        return []
    detail = f"anomaly score {worst:.2f} ({key})"
    return [Reason(entity, ReasonKind.ANOMALY, detail, params.anomaly_penalty * excess)]


def _forecast_reasons(
    entity: str, forecasts: Sequence[FailureForecast], params: HealthParams
) -> list[Reason]:
    reasons = []
    for f in forecasts:
        if f.eta_s <= 0 or not math.isfinite(f.eta_s):
            continue
        if f.is_failure:
            weight, event = params.failure_forecast_penalty, "failure"
        else:
            weight, event = params.crossing_forecast_penalty, "critical threshold"
        detail = f"{f.what}: {event} predicted in {_duration(f.eta_s)}"
        if f.low_s is not None:
            high = "?" if f.high_s is None else _duration(f.high_s)
            detail += f" ({_duration(f.low_s)}-{high})"
        penalty = weight * math.exp(-f.eta_s / params.forecast_tau_s)
        reasons.append(Reason(entity, ReasonKind.FORECAST, detail, penalty))
    return reasons


def _headroom_reasons(
    entity: str, headroom: Sequence[Headroom], params: HealthParams
) -> list[Reason]:
    reasons = []
    for h in headroom:
        used = h.used_ratio()
        if used > 0:
            detail = f"{h.name} at {used:.0%} of its way to {h.limit:g}"
            reasons.append(
                Reason(entity, ReasonKind.HEADROOM, detail, params.headroom_penalty * used)
            )
    return reasons


def app_reasons(
    entity: str, app: Mapping[str, float], params: HealthParams = DEFAULT_HEALTH
) -> list[Reason]:
    """One reason per application signal whose seed 002 class is above low/regular, with the
    class's penalty.

    The penalties are the alerts': medium 30 as a warning, high 55 as a critical alert,
    critical 80 as a failure, so that an application's health falls in the class of its worst
    signal (70 medium, 45 high, 20 critical), as the seed classes it. Only the worst signal
    counts in the score (`own_score`), as only the worst anomaly score does: the four signals
    are one application's load seen four ways (more requests, more CPU, slower answers), not
    independent risks, and an application busy on all of them at once (medium, medium,
    medium) must not come out high.

    >>> [(r.detail, r.penalty) for r in app_reasons("app/a", {"cpu_usage": 0.6,
    ...  "request_count": 12.0, "response_time": 0.45})]
    [('cpu_usage 60%: high (seed 002)', 55.0), ('response_time 0.450 s: critical (seed 002)', 80.0)]
    """
    reasons = []
    for metric in AppMetric:
        value = app.get(metric)
        if value is None:
            continue
        criticity = app_criticity(metric, value)
        penalty = params.app_penalty.get(criticity, 0.0)
        if penalty > 0:
            detail = f"{metric} {_app_value(metric, value)}: {criticity} (seed 002)"
            reasons.append(Reason(entity, ReasonKind.APP, detail, penalty))
    return reasons


def _app_value(metric: AppMetric, value: float) -> str:
    if metric is AppMetric.REQUEST_COUNT:
        return f"{value:.1f}/s"
    if metric is AppMetric.RESPONSE_TIME:
        return f"{value:.3f} s"
    return f"{value:.0%}"


def _duration(seconds: float) -> str:
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86_400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86_400:.1f} d"


def _own_next_failure(entity: str, inputs: HealthInputs) -> NextFailure | None:
    failures = [f for f in inputs.forecasts if f.is_failure and math.isfinite(f.eta_s)]
    if not failures:
        return None
    f = min(failures, key=lambda f: f.eta_s)
    return NextFailure(entity, f.what, f.eta_s, f.low_s, f.high_s)


def parent_of(path: str, params: HealthParams = DEFAULT_HEALTH) -> str | None:
    """The entity a path rolls up into: its path parent; a top-level one other than `room` and
    `separate_roots` goes into `room`."""
    found = entity_path.parent(path)
    if found is not None:
        return found
    if path == ROOM or path in params.separate_roots:
        return None
    return ROOM


def health_report(
    inputs: Mapping[str, HealthInputs],
    *,
    params: HealthParams = DEFAULT_HEALTH,
    horizon_s: float = 3600.0,
) -> dict[str, Health]:
    """The health of every entity in `inputs` and of every ancestor (racks, clusters, room),
    now and predicted at `horizon_s`. Costs a few microseconds per entity and reason."""
    children: dict[str, list[str]] = {}
    nodes: set[str] = set()
    for path in inputs:
        node: str | None = path
        while node is not None and node not in nodes:
            nodes.add(node)
            up = parent_of(node, params)
            if up is not None:
                children.setdefault(up, []).append(node)
            node = up
    report: dict[str, Health] = {}
    # deepest first, so that members are scored before their parent
    for path in sorted(nodes, key=lambda p: (-p.count("/"), p == ROOM, p)):
        report[path] = _node_health(
            path,
            inputs.get(path, HealthInputs()),
            [report[c] for c in sorted(children.get(path, ()))],
            params,
            horizon_s,
        )
    return report


def _aggregate(scores: Sequence[float], w: float) -> float:
    return w * min(scores) + (1.0 - w) * sum(scores) / len(scores)


def _node_health(
    path: str,
    inputs: HealthInputs,
    members: Sequence[Health],
    params: HealthParams,
    horizon_s: float,
) -> Health:
    if _says_nothing(inputs, params):  # most entities: skip the reasons, now and later
        own: list[Reason] = []
        score = predicted = 100.0
    else:
        own = own_reasons(path, inputs, params)
        score = own_score(own)
        predicted = own_score(own_reasons(path, advanced(inputs, horizon_s), params))
    reasons = list(own)
    next_failure = _own_next_failure(path, inputs)
    if members:
        w = params.worst_weight
        score *= _aggregate([m.score for m in members], w) / 100.0
        predicted *= _aggregate([m.predicted_score for m in members], w) / 100.0
        reasons += [r for m in members for r in m.reasons]
        soonest = [m.next_failure for m in members if m.next_failure is not None]
        if next_failure is not None:
            soonest.append(next_failure)
        next_failure = min(soonest, key=lambda f: f.eta_s, default=None)
    reasons.sort(key=lambda r: (-r.penalty, r.entity, r.detail))
    return Health(
        entity=path,
        score=score,
        criticity=criticity_of_health(score),
        reasons=tuple(reasons[: params.max_reasons]),
        predicted_score=predicted,
        predicted_criticity=criticity_of_health(predicted),
        horizon_s=horizon_s,
        next_failure=next_failure,
        n_members=len(members),
    )


def _says_nothing(inputs: HealthInputs, params: HealthParams) -> bool:
    """No state that costs points and nothing else: no reason, now or later."""
    return (
        (inputs.state is None or params.state_penalty.get(inputs.state, 0.0) <= 0.0)
        and not inputs.alerts
        and not len(inputs.anomaly_scores)
        and not inputs.forecasts
        and not inputs.headroom
        and not inputs.app
    )


def advanced(inputs: HealthInputs, after_s: float) -> HealthInputs:
    """The inputs `after_s` later by their trends: forecasts that much closer (0: it has
    happened), headroom values moved along their slopes; alerts, state and anomaly scores
    held."""
    forecasts = tuple(
        replace(
            f,
            eta_s=max(0.0, f.eta_s - after_s),
            low_s=None if f.low_s is None else max(0.0, f.low_s - after_s),
            high_s=None if f.high_s is None else max(0.0, f.high_s - after_s),
        )
        for f in inputs.forecasts
    )
    headroom = tuple(
        replace(h, value=h.value + h.slope_per_s * after_s) if h.slope_per_s is not None else h
        for h in inputs.headroom
    )
    return replace(inputs, forecasts=forecasts, headroom=headroom)
