"""From evidence to a finding: one device, a nature (real or sensor) and a cause.

Two kinds of evidence:

- **Direct readings** (`rule_findings`), checked on every batch, which need no statistics: a
  fan that reports (almost) no rpm while commanded on has failed; a disk that reports not ok
  has failed; a PDU whose capacity fell below what it reported before caps its rack's power.
- **Anomalies** from the detectors (`classify`), which need the context of the device:
  - a NULL run is a dead sensor (sensor_null);
  - a value stuck for `stuck_confirm_s` is a stuck sensor (sensor_stuck);
  - the CPU-temperature residual (the physics model) departing is real heat when the
    chassis temperature follows it (not an input of the model); alone, it is dropped: the
    model's own slow errors look the same;
  - the residual's slow average leaving zero under conditions the model has seen on the
    device (the `drift` detector) is a drifting probe, unless the chassis warms with it;
  - a strong jump (|z| >= `strong_z`) of one signal that no linked signal of the device
    follows is a sensor: physics would move the others too (stuck if it holds one value since,
    else sensor_disagreement); followed, it is real;
  - the CRAC's supply air warming is the room's cooling;
  - an inlet warming is a cooling or airflow symptom that only counts once it spreads (the
    incident book groups them: incidents.py);
  - a weaker change in the direction a fault would take (temperatures up, airflow and fan
    speed down, power either way) counts only when a linked signal of the same device does the
    same within `corroborate_s` (real, cause from what moved); alone, it is noise. Changes
    the other way (a temperature falling, airflow rising) are not faults.

`classify` answers a Finding, `WAIT` (more time will tell) or `DROP` (never an incident).
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from rackwatch.engine.diagnosis.incident import Cause, Nature
from rackwatch.engine.diagnosis.signals import SignalBook
from rackwatch.model import Batch, SeriesRegistry
from rackwatch.model.entity import parent

TEMPERATURES = frozenset(
    {
        "cpu_temperature_celsius",
        "chassis_temperature_celsius",
        "inlet_temperature_celsius",
        "gpu_temperature_celsius",
        "temperature_celsius",
        "crac_supply_temperature_celsius",
    }
)
FALLING_IS_FAULT = frozenset({"airflow_cfm", "fan_rpm"})
"""Metrics whose fault direction is down (the others: up; power either way)."""
EITHER_WAY = frozenset({"power_watts", "pdu_power_watts", "gpu_power_watts"})
LINKED: dict[str, frozenset[str]] = {
    "cpu_temperature_celsius": frozenset(
        {"chassis_temperature_celsius", "power_watts", "airflow_cfm", "fan_rpm"}
    ),
    "chassis_temperature_celsius": frozenset(
        {"cpu_temperature_celsius", "airflow_cfm", "fan_rpm", "inlet_temperature_celsius"}
    ),
    "airflow_cfm": frozenset({"fan_rpm", "cpu_temperature_celsius", "chassis_temperature_celsius"}),
    "fan_rpm": frozenset({"airflow_cfm", "cpu_temperature_celsius", "chassis_temperature_celsius"}),
    "power_watts": frozenset({"cpu_temperature_celsius", "chassis_temperature_celsius"}),
    "inlet_temperature_celsius": frozenset(
        {"chassis_temperature_celsius", "cpu_temperature_celsius"}
    ),
}
"""Signals that physics moves together on one device: a real change of the key shows in at
least one of its values."""
CRAC_SUPPLY = "crac_supply_temperature_celsius"
MODEL_DETECTORS = frozenset({"residual", "drift"})
INLET = "inlet_temperature_celsius"


@dataclass(frozen=True, slots=True)
class DiagnosisConfig:
    stopped_rpm: float = 100.0
    """A fan reporting at most this while commanded on has stopped."""
    capacity_drop_ratio: float = 0.95
    """A PDU whose capacity falls below this share of the most it reported is capped."""
    dead_airflow_ratio: float = 0.02
    """An airflow probe reading at most this share of the most it reported while every fan
    of its device turns is dead (stuck at zero)."""
    strong_z: float = 12.0
    """A jump this large that no linked signal follows is the sensor."""
    confirm_s: float = 15.0
    """How long a strong jump is watched before it is called (stuck or not, followed or not)."""
    stuck_confirm_s: float = 600.0
    """How long a stuck detection must last to be a stuck sensor (a quiet, quantised series
    can hold one value for minutes)."""
    corroborate_s: float = 180.0
    """Window in which a linked signal must also change for a weak change to count."""
    follow_ratio: float = 0.3
    """A linked temperature 'followed' when it moved this share of the anomaly's own move."""
    residual_confirm_s: float = 1800.0
    """How long a residual anomaly waits for the chassis to follow before it is dropped."""
    spread_devices: int = 3
    """Devices whose inlets warm together (within `spread_s`) for a rack or room incident."""
    spread_s: float = 900.0
    quiet_s: float = 300.0
    """An incident closes once every member has ended for this long."""


class Verdict(enum.Enum):
    WAIT = "wait"
    DROP = "drop"


WAIT, DROP = Verdict.WAIT, Verdict.DROP


@dataclass(frozen=True, slots=True)
class Finding:
    """A diagnosed member of an incident-to-be."""

    ts: int
    device: str
    nature: Nature
    cause: Cause
    key: tuple[str, ...]
    """The member's identity (its anomaly or rule), to end it later."""
    entity: str
    metric: str
    detector: str
    start_ms: int
    evidence: str
    spreads: bool = False
    """A symptom that only makes an incident once several devices share it (inlet warming)."""


@dataclass(slots=True)
class Candidate:
    """An anomaly published by the detectors, waiting for (or given) a finding."""

    key: tuple[str, ...]
    sid: int
    entity: str
    device: str
    metric: str
    detector: str
    z: float
    start_ms: int
    reference: dict[int, float] = field(default_factory=dict)
    decided: bool = False

    @property
    def rising(self) -> bool:
        return not (self.z < 0)

    def faulty_direction(self) -> bool:
        if self.metric in EITHER_WAY or math.isnan(self.z):
            return True
        return (not self.rising) if self.metric in FALLING_IS_FAULT else self.rising


def device_of(entity: str, devices: set[str]) -> str:
    """The device an entity belongs to: itself when it is one, its parent for a fan or a
    sensor under a device, else itself (a PDU, the CRAC)."""
    if entity in devices:
        return entity
    up = parent(entity)
    return up if up is not None and up in devices else entity


# --- direct readings -------------------------------------------------------------------------


@dataclass(slots=True)
class RuleState:
    """Which direct findings hold now (fan, disk, PDU keys), to report each once."""

    holding: set[tuple[str, ...]] = field(default_factory=set)


def rule_findings(
    batch: Batch,
    book: SignalBook,
    registry: SeriesRegistry,
    devices: set[str],
    config: DiagnosisConfig,
    state: RuleState,
) -> tuple[list[Finding], list[tuple[str, ...]]]:
    """(findings that start, keys that ended) from the batch's fan, disk and PDU readings, a
    few array passes whatever the batch's size. Call after `book.update(batch)`."""
    rows = np.flatnonzero(book.rule_code[batch.series] > 0)
    if not len(rows):
        return [], []
    rows = rows[np.lexsort((batch.ts[rows], batch.series[rows]))]
    sid, ts, value = batch.series[rows], batch.ts[rows], batch.value[rows]
    code = book.rule_code[sid]
    finite = np.isfinite(value)
    partner = book.partner[sid]
    level = np.where(partner >= 0, book.latest[np.maximum(partner, 0)], np.nan)
    with np.errstate(invalid="ignore"):
        low_air = (code == 4) & (value <= config.dead_airflow_ratio * book.peak[sid])
    spinning = _spinning(sid, low_air, book, registry, config)
    with np.errstate(invalid="ignore"):
        commanded = ~(level <= 0)  # an unknown level counts as on
        bad = finite & np.select(
            [code == 1, code == 2, code == 3],
            [
                (value <= config.stopped_rpm) & commanded,
                value < 0.5,
                value < config.capacity_drop_ratio * book.peak[sid],
            ],
            low_air & spinning,
        )
    found: list[Finding] = []
    ended: list[tuple[str, ...]] = []
    last = np.ones(len(sid), dtype=np.bool_)
    last[:-1] = sid[1:] != sid[:-1]
    first = np.ones(len(sid), dtype=np.bool_)
    first[1:] = sid[1:] != sid[:-1]
    group = np.cumsum(first) - 1
    any_bad = np.zeros(int(group[-1]) + 1, dtype=np.bool_)
    any_bad[group[bad]] = True
    for r in np.flatnonzero(last).tolist():
        g = int(group[r])
        key = registry.key(int(sid[r]))
        rule_key = ("rule", key.metric, key.entity)
        held = rule_key in state.holding
        if not held and any_bad[g]:
            at = int(np.flatnonzero(bad & (group == g))[0])
            what = _what(key.metric, key.entity, float(value[at]), float(level[at]), book, sid[r])
            found.append(_rule_finding(key.metric, key.entity, int(ts[at]), what, devices))
            state.holding.add(rule_key)
            held = True
        if held and finite[r] and not bad[r]:
            state.holding.discard(rule_key)
            ended.append(rule_key)
    return found, ended


def _spinning(
    sid: npt.NDArray[np.int32],
    rows: npt.NDArray[np.bool_],
    book: SignalBook,
    registry: SeriesRegistry,
    config: DiagnosisConfig,
) -> npt.NDArray[np.bool_]:
    """For the airflow `rows` (near zero, few): whether every fan of the device reports
    turning (an airflow probe that reads nothing while they do is the probe)."""
    out = np.zeros(len(sid), dtype=np.bool_)
    for s in np.unique(sid[rows]).tolist():
        device = registry.key(s).entity
        rpm = [book.value(fan, "fan_rpm") for fan in book.fans_of(device)]
        out[sid == s] = bool(rpm) and all(r > config.stopped_rpm for r in rpm)
    return out


def _what(metric: str, entity: str, value: float, level: float, book: SignalBook, sid: int) -> str:
    if metric == "fan_rpm":
        shown = "unknown" if math.isnan(level) else f"{level:.0f}"
        return f"{entity} reports {value:.0f} rpm while commanded level {shown}"
    if metric == "disk_ok":
        return f"{entity} reports its disk not ok"
    if metric == "airflow_cfm":
        return f"airflow_cfm of {entity} reads {value:g} while its fans turn"
    return f"{entity} capacity {value:.0f} W, down from {float(book.peak[sid]):.0f} W"


def _rule_finding(metric: str, entity: str, at: int, what: str, devices: set[str]) -> Finding:
    key = ("rule", metric, entity)
    if metric == "fan_rpm":
        return Finding(
            at, device_of(entity, devices), Nature.REAL, Cause.FAN_FAILURE, key,
            entity, metric, "reading", at, f"fan stopped: {what}",
        )  # fmt: skip
    if metric == "disk_ok":
        return Finding(
            at, device_of(entity, devices), Nature.REAL, Cause.DISK, key,
            entity, metric, "reading", at, f"disk failed: {what}",
        )  # fmt: skip
    if metric == "airflow_cfm":
        return Finding(
            at, device_of(entity, devices), Nature.SENSOR, Cause.SENSOR_STUCK, key,
            entity, metric, "reading", at, f"dead probe: {what}",
        )  # fmt: skip
    return Finding(
        at, parent(entity) or entity, Nature.REAL, Cause.POWER_CAP, key,
        entity, metric, "reading", at, f"power capped: {what}",
    )  # fmt: skip


# --- anomalies ---------------------------------------------------------------------------------


def classify(
    cand: Candidate,
    now_ms: int,
    book: SignalBook,
    open_on_device: list[Candidate],
    config: DiagnosisConfig,
) -> Finding | Verdict:
    """The finding for an open anomaly at `now_ms` (sample time), or WAIT / DROP.
    `open_on_device`: the device's other open anomalies."""
    age_ms = now_ms - cand.start_ms
    if cand.detector == "null_run":
        return _found(cand, cand.start_ms, Nature.SENSOR, Cause.SENSOR_NULL, "answers NULL")
    if cand.device.startswith("room"):
        if cand.metric == CRAC_SUPPLY and cand.rising and cand.detector != "stuck":
            return _found(cand, cand.start_ms, Nature.REAL, Cause.COOLING, "supply air warming")
        return DROP if cand.detector != "stuck" else _stuck(cand, age_ms, book, config)
    if cand.detector == "stuck":
        return _stuck(cand, age_ms, book, config)
    if cand.detector == "residual":
        return _residual(cand, age_ms, open_on_device, config)
    if cand.detector == "drift":
        return _drift(cand, open_on_device)
    if not cand.faulty_direction():
        return DROP
    if cand.metric == INLET:
        return _found(cand, cand.start_ms, Nature.REAL, Cause.COOLING, "inlet warming", True)
    if cand.metric == "fan_rpm":
        # slower at the same command (a level change is explained upstream): the fan wears;
        # a tachometer that lies is rarer than a bearing that drags
        rpm = float(book.latest[cand.sid])
        return _found(cand, cand.start_ms, Nature.REAL, Cause.FAN_WEAR, f"slower: {rpm:.0f} rpm")
    strong = abs(cand.z) >= config.strong_z
    if strong:
        if age_ms < config.confirm_s * 1000:
            return WAIT
        at = cand.start_ms + round(config.confirm_s * 1000)
        if _followed(cand, book, config) or _corroborated(cand, open_on_device, config):
            return _real(cand, at, open_on_device)
        if book.flat_since[cand.sid] <= cand.start_ms + 5_000:
            value = float(book.latest[cand.sid])
            return _found(cand, at, Nature.SENSOR, Cause.SENSOR_STUCK, f"stuck at {value:g}")
        return _found(
            cand, at, Nature.SENSOR, Cause.SENSOR_DISAGREEMENT, f"moved alone, z={cand.z:.1f}"
        )
    partners = [c for c in open_on_device if _linked(cand, c) and c.faulty_direction()]
    if partners:
        latest = max(c.start_ms for c in [cand, *partners])
        return _real(cand, latest, open_on_device)
    return WAIT if age_ms < config.corroborate_s * 1000 else DROP


def _found(
    cand: Candidate, at: int, nature: Nature, cause: Cause, what: str, spreads: bool = False
) -> Finding:
    return Finding(
        ts=at,
        device=cand.device,
        nature=nature,
        cause=cause,
        key=cand.key,
        entity=cand.entity,
        metric=cand.metric,
        detector=cand.detector,
        start_ms=cand.start_ms,
        evidence=f"{cand.metric} of {cand.entity}: {what} ({cand.detector})",
        spreads=spreads,
    )


def _stuck(
    cand: Candidate, age_ms: int, book: SignalBook, config: DiagnosisConfig
) -> Finding | Verdict:
    if age_ms < config.stuck_confirm_s * 1000:
        return WAIT
    value = float(book.latest[cand.sid])
    at = cand.start_ms + round(config.stuck_confirm_s * 1000)
    return _found(cand, at, Nature.SENSOR, Cause.SENSOR_STUCK, f"stuck at {value:g}")


def _residual(
    cand: Candidate, age_ms: int, others: list[Candidate], config: DiagnosisConfig
) -> Finding | Verdict:
    """The CPU temperature left what its load, power, inlet and airflow explain. Real heat
    shows in the chassis too (not an input of the model). Alone, it is dropped once
    `residual_confirm_s` has passed: the model's own errors in conditions it never saw look
    the same (a drifting probe is the `drift` detector's: docs/ANOMALY.md, "Slow sensor
    drift")."""
    if _chassis_follows(cand, others):
        at = max(cand.start_ms, max(c.start_ms for c in others))
        return _found(cand, at, Nature.REAL, Cause.UNKNOWN, "hotter than its load explains")
    return WAIT if age_ms < config.residual_confirm_s * 1000 else DROP


def _drift(cand: Candidate, others: list[Candidate]) -> Finding:
    """The residual's slow average left zero under conditions the model has seen on this
    device: the same load, inlet and airflow now read differently. Real heat (dust in the
    heat sink, dried paste) warms the chassis too; a probe that drifts warms nothing else."""
    level = "" if math.isnan(cand.z) else f" by {cand.z:+.1f} sigma"
    if _chassis_follows(cand, others):
        at = max(cand.start_ms, max(c.start_ms for c in others))
        return _found(cand, at, Nature.REAL, Cause.UNKNOWN, f"slowly hotter{level}, chassis too")
    return _found(
        cand,
        cand.start_ms,
        Nature.SENSOR,
        Cause.SENSOR_DRIFT,
        f"drifted{level} from what its load, inlet and airflow explain; no other probe follows",
    )


def _chassis_follows(cand: Candidate, others: list[Candidate]) -> bool:
    return any(
        c.metric == "chassis_temperature_celsius" and c.rising == cand.rising for c in others
    )


def _followed(cand: Candidate, book: SignalBook, config: DiagnosisConfig) -> bool:
    """Whether a linked temperature of the device moved with the anomaly's own move, or one of
    its fans stopped."""
    own = book.moved(cand.entity, cand.metric, cand.reference)
    for metric in LINKED.get(cand.metric, ()):
        if metric == "fan_rpm":
            for fan in book.fans_of(cand.device):
                rpm = book.value(fan, "fan_rpm")
                if math.isfinite(rpm) and rpm <= config.stopped_rpm:
                    return True
            continue
        if metric not in TEMPERATURES or not math.isfinite(own) or own == 0.0:
            continue
        moved = book.moved(cand.device, metric, cand.reference)
        if (
            math.isfinite(moved)
            and moved * own > 0
            and abs(moved) >= config.follow_ratio * abs(own)
        ):
            return True
    return False


def _linked(a: Candidate, b: Candidate) -> bool:
    """Whether `b` is another signal that physics moves with `a` (the residual is `a`'s own
    signal seen through a model: no second witness)."""
    return b.detector not in MODEL_DETECTORS and b.metric in LINKED.get(a.metric, frozenset())


def _corroborated(cand: Candidate, others: list[Candidate], config: DiagnosisConfig) -> bool:
    window = config.corroborate_s * 1000
    return any(
        _linked(cand, c) and c.faulty_direction() and abs(c.start_ms - cand.start_ms) <= window
        for c in others
    )


def _real(cand: Candidate, at: int, others: list[Candidate]) -> Finding:
    metrics = {cand.metric, *(c.metric for c in others if _linked(cand, c))}
    if "fan_rpm" in metrics or "airflow_cfm" in metrics:
        cause, what = Cause.AIRFLOW, "less air through the chassis"
    elif "power_watts" in metrics:
        cause, what = Cause.LOAD, "power and temperature rose together"
    else:
        cause, what = Cause.UNKNOWN, "temperatures rose together"
    return _found(cand, at, Nature.REAL, cause, what)
