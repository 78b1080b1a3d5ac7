"""Alert rules and their vectorised evaluation. Pure: no I/O, no clock, no bus.

A `Rule` watches one signal on every entity that matches a glob and has a WARNING and/or a
CRITICAL threshold. The signal is, by `kind`:

- `threshold`: the metric's value;
- `ratio`: the metric divided by the `denominator` metric of the same entity (the newest
  denominator sample at or before each numerator sample), e.g. PDU power over PDU capacity;
- `rate`: change per minute over `window_s` (the newest sample at least `window_s` old is the
  anchor), e.g. a CPU heating by more than 3 °C per minute;
- `absent`: seconds since the entity last sent a sample of the metric (a glob here: `*` is any
  metric), measured against "now" = the newest timestamp the evaluator has seen, so that
  simulated time at any speed works. An entity never seen is not reported: nothing says it
  should exist.

A level fires when its condition holds (`op` against the threshold) for `for_s` seconds, and
clears once the value is back past the clear level (`hysteresis` below the threshold for `>`
and `>=`, above it for `<` and `<=`), so a value hovering at the threshold does not flap.
`when` guards a rule with another metric of the same entity ("fan_level > 0"): while the guard
is false the rule is cleared; while the guard was never seen the samples are skipped.
A NaN sample (a sensor that answered NULL) says nothing: it neither fires, clears nor breaks a
`for` run. Time is always the samples' timestamps.

Samples rackwatch derives itself (`evaluate(batch, source, derived=True)`: the intelligence's
health, anomaly and time-to-failure series, stamped with the clock of the device they describe)
go through the threshold, ratio and rate rules but move no clock and are ignored by absent
rules. They are restated while they hold, so one that stops while its entity's other derived
series go on was withdrawn: after `derived_stale_after_s` (or the rule's `stale_after_s`) the
levels it held clear.

`RuleEvaluator.evaluate(batch)` returns the level changes (`Transition`s) in time order. Cost:
each rule keeps NumPy arrays indexed by a per-rule "slot" (one per matching entity); a series'
slot is looked up once when the series is first registered, a batch is mapped to slots with one
gather, and the state machine runs as a segmented scan over the rows sorted by (slot, ts) — a
few array passes per rule whatever the number of steps in the batch. Only transitions become
Python objects.

>>> from rackwatch.model import Batch, SeriesRegistry
>>> reg = SeriesRegistry()
>>> sid = reg.intern("c01/r01/s01", "cpu_temperature_celsius")
>>> rule = Rule("cpu-hot", "cpu_temperature_celsius", warning=75, hysteresis=3)
>>> ev = RuleEvaluator([rule], reg)
>>> [(t.ts, t.level) for t in ev.evaluate(Batch.of([0, 1, 2, 3], [sid] * 4, [70, 76, 73, 71]))]
[(1, <Severity.WARNING: 1>), (3, None)]
"""

from __future__ import annotations

import enum
import fnmatch
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from rackwatch.engine.alerts import display
from rackwatch.engine.live import keep_newest
from rackwatch.model import METRICS, Batch, SeriesRegistry, Severity
from rackwatch.model import entity as entity_path

I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]
Compare = Callable[[F64, float], Bools]

_COMPARE: dict[str, Compare] = {
    ">": lambda v, t: np.greater(v, t),
    ">=": lambda v, t: np.greater_equal(v, t),
    "<": lambda v, t: np.less(v, t),
    "<=": lambda v, t: np.less_equal(v, t),
}
OPS = tuple(_COMPARE)
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
_GUARD = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(>=|<=|>|<)\s*(\S+)\s*$")
_GLOB_CHARS = frozenset("*?[")


class RuleKind(enum.StrEnum):
    THRESHOLD = "threshold"
    RATIO = "ratio"
    RATE = "rate"
    ABSENT = "absent"


@dataclass(frozen=True, slots=True)
class Guard:
    """A condition on another metric of the same entity, e.g. `fan_level > 0`.

    >>> Guard.parse("fan_level > 0")
    Guard(metric='fan_level', op='>', value=0.0)
    """

    metric: str
    op: str
    value: float

    @classmethod
    def parse(cls, text: str) -> Guard:
        found = _GUARD.match(text)
        number = _float(found.group(3)) if found else None
        if found is None or number is None:
            raise ValueError(
                f"bad rule guard {text!r}: write '<metric> <op> <number>' with op one of "
                f"{', '.join(OPS)}, e.g. 'fan_level > 0'"
            )
        return cls(found.group(1), found.group(2), number)

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.value:g}"


def _float(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


@dataclass(frozen=True, slots=True)
class Rule:
    """One alert rule; see the module docstring for what each kind measures.

    `warning`/`critical` are in the signal's unit: the metric's base unit, a plain ratio for
    `ratio`, unit per minute for `rate`, seconds for `absent`. `is_failure` makes an entity
    FAILED (not just CRITICAL) while the alert is active, e.g. a stopped fan or a dead disk.
    """

    name: str
    metric: str
    entity: str = "**"
    kind: RuleKind = RuleKind.THRESHOLD
    op: str = ">="
    warning: float | None = None
    critical: float | None = None
    hysteresis: float = 0.0
    for_s: float = 0.0
    denominator: str | None = None
    window_s: float = 60.0
    when: Guard | None = None
    is_failure: bool = False
    summary: str = ""
    """Short human title, e.g. "CPU temperature high"; the rule name when empty."""
    stale_after_s: float | None = None
    """A level clears (and a `for` run breaks) once the series has had no sample for this
    long while its entity went on sending other series on the same source: the value was
    withdrawn, not the source silenced. None: the evaluator's `derived_stale_after_s` for a
    series of a derived source (`evaluate(..., derived=True)`), never for a device's."""

    def __post_init__(self) -> None:
        problem = self._problem()
        if problem is not None:
            raise ValueError(f"alert rule {self.name!r}: {problem}")

    def _problem(self) -> str | None:
        if not _NAME.match(self.name):
            return "the name must be letters, digits, '_', '.' or '-'"
        if self.op not in _COMPARE:
            return f"op {self.op!r} is not one of {', '.join(OPS)}"
        if self.warning is None and self.critical is None:
            return "give a warning or a critical threshold (or both)"
        for label, value in (("warning", self.warning), ("critical", self.critical)):
            if value is not None and not math.isfinite(value):
                return f"the {label} threshold must be a finite number"
        if (
            self.warning is not None
            and self.critical is not None
            and self._sign * (self.critical - self.warning) < 0
        ):
            side = "above" if self._sign > 0 else "below"
            return (
                f"critical ({self.critical:g}) must be {side} warning ({self.warning:g}) "
                f"for op {self.op!r}"
            )
        if not (self.hysteresis >= 0 and self.for_s >= 0 and self.window_s > 0):
            return "hysteresis and for_s must be >= 0 and window_s > 0"
        if (self.kind is RuleKind.RATIO) != (self.denominator is not None):
            return "a ratio rule needs a denominator metric, and only a ratio rule takes one"
        if self.stale_after_s is not None and not (
            math.isfinite(self.stale_after_s) and self.stale_after_s > 0
        ):
            return "stale_after_s must be a finite number of seconds > 0"
        if self.kind is RuleKind.ABSENT:
            if self.op != ">=" or self.when is not None or self.stale_after_s is not None:
                return (
                    "an absent rule takes no op, no guard and no stale_after_s: its thresholds "
                    "are seconds"
                )
        elif _GLOB_CHARS & set(self.metric):
            return f"metric {self.metric!r} must be one name (globs only for absent rules)"
        return None

    @property
    def _sign(self) -> int:
        return 1 if self.op.startswith(">") else -1

    def levels(self) -> list[tuple[Severity, float]]:
        """(severity, threshold) pairs, least severe first."""
        pairs = [(Severity.WARNING, self.warning), (Severity.CRITICAL, self.critical)]
        return [(sev, value) for sev, value in pairs if value is not None]

    def clear_level(self, threshold: float) -> float:
        """The value a level clears at: `hysteresis` back from its threshold."""
        return threshold - self._sign * self.hysteresis

    @property
    def signal(self) -> str:
        """What the thresholds apply to, for messages: `pdu_power_watts/pdu_capacity_watts`."""
        if self.kind is RuleKind.RATIO:
            return f"{self.metric}/{self.denominator}"
        if self.kind is RuleKind.RATE:
            return f"rate of {self.metric}"
        if self.kind is RuleKind.ABSENT:
            return "seconds without telemetry"
        return self.metric

    @property
    def unit(self) -> str:
        spec = METRICS.get(self.metric)
        if self.kind is RuleKind.RATIO:
            return "ratio"
        if self.kind is RuleKind.ABSENT:
            return "s"
        base = spec.unit if spec is not None else ""
        return f"{base}/min" if self.kind is RuleKind.RATE else base

    def message(
        self,
        entity: str,
        level: Severity | None,
        value: float,
        threshold: float,
        withdrawn_s: float | None = None,
    ) -> str:
        """One line for people: what, where, how much, against what, in the dashboard's
        units and words (display.py): `CPU temperature high — c01/r01/s01: CPU temperature
        76.0 °C (WARNING at or above 75.0 °C)`, `Disk failed — c01/r01/s02: disk failed
        (CRITICAL)`. The alert's `value` and `unit` stay in base units for machines.
        `withdrawn_s`: cleared because the series stopped (`stale_after_s`) that long ago."""
        title = self.summary or self.name
        if level is None and withdrawn_s is not None:
            what, gone = display.label(self.metric), display.duration(withdrawn_s)
            return f"{title} — {entity}: resolved, {what} withdrawn (none for {gone})"
        said = self._said(value)
        if level is None:
            return f"{title} — {entity}: resolved, {said}"
        return f"{title} — {entity}: {said} ({self._limit(level, threshold)})"

    def _said(self, value: float) -> str:
        """The signal's value in words."""
        if self.kind is RuleKind.RATIO:
            assert self.denominator is not None
            of = display.label(self.denominator)
            return f"{display.label(self.metric)} at {_percent(value)} of {of}"
        if self.kind is RuleKind.RATE:
            if not math.isfinite(value):
                return f"{display.label(self.metric)} change: {display.NO_READING}"
            way = "rising" if value >= 0 else "falling"
            return f"{display.label(self.metric)} {way} {display.rate(self.metric, value)}"
        if self.kind is RuleKind.ABSENT:
            return f"no telemetry for {display.duration(value)}"
        return display.describe(self.metric, value)

    def _limit(self, level: Severity, threshold: float) -> str:
        """The crossed level and its threshold in words (a state's threshold is left out)."""
        if self.kind is RuleKind.ABSENT:
            return f"{level.name} after {display.duration(threshold)}"
        if self.kind is RuleKind.THRESHOLD and display.is_state(self.metric):
            return level.name
        if self.kind is RuleKind.RATIO:
            shown = _percent(threshold)
        elif self.kind is RuleKind.RATE:
            shown = ("-" if threshold < 0 else "") + display.rate(self.metric, threshold)
        else:
            shown = display.show(self.metric, threshold)
        return f"{level.name} {display.OP_WORDS[self.op]} {shown}"


def _percent(ratio: float) -> str:
    return f"{ratio * 100:.1f} %" if math.isfinite(ratio) else display.NO_READING


@dataclass(frozen=True, slots=True)
class Transition:
    """A rule's level changed for one entity at `ts`: `level` None means cleared.

    `threshold` is the crossed threshold of the new level, or the clear level when cleared.
    """

    rule: Rule
    entity: str
    ts: int
    level: Severity | None
    previous: Severity | None
    value: float
    threshold: float
    is_first: bool = False
    """The entity's first evaluated sample for this rule (`previous` is then no level)."""
    withdrawn_s: float | None = None
    """Cleared because the series stopped this long ago (`Rule.stale_after_s`); `value` is
    then its last reading."""

    @property
    def message(self) -> str:
        return self.rule.message(
            self.entity, self.level, self.value, self.threshold, self.withdrawn_s
        )


def _level(code: int) -> Severity | None:
    return Severity(code) if code > 0 else None


def _grow(array: npt.NDArray[Any], size: int, fill: Any) -> npt.NDArray[Any]:
    """`array` extended along its last axis to at least `size`, new cells set to `fill`."""
    have = array.shape[-1]
    if size <= have:
        return array
    extra = np.full((*array.shape[:-1], max(size, 2 * have) - have), fill, dtype=array.dtype)
    return np.concatenate([array, extra], axis=-1)


def _segments(slot: I32) -> tuple[Bools, Bools, I64]:
    """For rows sorted by slot: first and last row of each slot, and each row's first row."""
    n = len(slot)
    first = np.ones(n, dtype=np.bool_)
    last = np.ones(n, dtype=np.bool_)
    if n > 1:
        np.not_equal(slot[1:], slot[:-1], out=first[1:])
        last[:-1] = first[1:]
    start = np.maximum.accumulate(np.where(first, np.arange(n), 0))
    return first, last, start


def asof(query_slot: I32, query_ts: I64, slot: I32, ts: I64, value: F64) -> tuple[I64, F64]:
    """For each query, the newest (ts, value) of the same slot at or before its ts.

    (-1, NaN) where there is none. Rows need not be sorted. Cost: a sort of the rows and a
    binary search per query.

    >>> asof(np.array([0, 0, 1], np.int32), np.array([5, 15, 5]),
    ...      np.array([0, 0, 1], np.int32), np.array([10, 0, 9]), np.array([1.0, 2.0, 3.0]))
    (array([ 0, 10, -1]), array([ 2.,  1., nan]))
    """
    found_ts = np.full(len(query_ts), -1, dtype=np.int64)
    found_value = np.full(len(query_ts), np.nan)
    if len(ts) == 0 or len(query_ts) == 0:
        return found_ts, found_value
    t0 = min(int(ts.min()), int(query_ts.min()))
    span = max(int(ts.max()), int(query_ts.max())) - t0 + 1
    key = slot.astype(np.int64) * span + (ts - t0)
    order = np.argsort(key, kind="stable")
    key = key[order]
    at = np.searchsorted(key, query_slot.astype(np.int64) * span + (query_ts - t0), "right") - 1
    safe = np.maximum(at, 0)
    ok = (at >= 0) & (slot[order][safe] == query_slot)
    found_ts[ok] = ts[order][safe][ok]
    found_value[ok] = value[order][safe][ok]
    return found_ts, found_value


class _Latest:
    """The newest (ts, value) per slot, carried from batch to batch (denominators, guards)."""

    def __init__(self) -> None:
        self.ts: I64 = np.full(0, -1, dtype=np.int64)
        self.value: F64 = np.full(0, np.nan)

    def grow(self, size: int) -> None:
        self.ts = _grow(self.ts, size, -1)
        self.value = _grow(self.value, size, np.nan)

    def lookup(self, query_slot: I32, query_ts: I64, slot: I32, ts: I64, value: F64) -> F64:
        """As-of values for the queries from the carried values and these new rows, which
        then become the carried values."""
        known = np.flatnonzero(self.ts >= 0).astype(np.int32)
        all_slot = np.concatenate([known, slot])
        all_ts = np.concatenate([self.ts[known], ts])
        all_value = np.concatenate([self.value[known], value])
        _, found = asof(query_slot, query_ts, all_slot, all_ts, all_value)
        keep_newest(self.ts, self.value, slot, ts, value)
        return found


class _RuleState:
    """One rule's matching entities (slots) and its per-slot state arrays."""

    def __init__(self, rule: Rule, derived_stale_ms: int | None = None) -> None:
        self.rule = rule
        self.levels = rule.levels()
        self.for_ms = round(rule.for_s * 1000)
        self.window_ms = round(rule.window_s * 1000)
        self.own_stale_ms = None if rule.stale_after_s is None else round(rule.stale_after_s * 1000)
        self.derived_stale_ms = derived_stale_ms
        self.entities: list[str] = []
        self._slot_of_entity: dict[str, int] = {}
        self.main: I32 = np.full(0, -1, dtype=np.int32)
        """Slot of each series id the rule watches (-1: not watched); likewise `den`/`guard`."""
        self.den: I32 = np.full(0, -1, dtype=np.int32)
        self.guard: I32 = np.full(0, -1, dtype=np.int32)
        n_levels = len(self.levels)
        self.active: Bools = np.zeros((n_levels, 0), dtype=np.bool_)
        self.pending: I64 = np.full((n_levels, 0), -1, dtype=np.int64)
        """Start ts of the current run of the level's condition (-1: not holding)."""
        self.level: npt.NDArray[np.int8] = np.zeros(0, dtype=np.int8)
        self.seen: Bools = np.zeros(0, dtype=np.bool_)
        self.last_seen: I64 = np.full(0, -1, dtype=np.int64)
        self.last_source: I32 = np.full(0, -1, dtype=np.int32)
        """Absent rules: the source that last sent each slot's metric (whose clock it ages on).
        Rules that go stale: likewise, and `last_seen` is the metric's newest sample."""
        self.stale_ms: I64 = np.full(0, -1, dtype=np.int64)
        """Per slot, how long its series may stop before its level clears (-1: never)."""
        self.stale_sources: set[int] = set()
        """Sources that sent a series that may go stale (nothing to check for the others)."""
        self.entity_now: I64 = np.full(0, -1, dtype=np.int64)
        """Per slot, the newest sample of any series of its entity from `last_source`: the
        clock its series goes stale on (a stopped source stops it: that is silence)."""
        self.value_ts: I64 = np.full(0, -1, dtype=np.int64)
        self.last_value: F64 = np.full(0, np.nan)
        """The newest non-NaN value per slot (said when a withdrawn level clears)."""
        self.slot_of_entity: I32 = np.full(0, -1, dtype=np.int32)
        """Slot of each entity index of the evaluator (-1: not one of this rule's)."""
        self.den_latest = _Latest()
        self.guard_latest = _Latest()
        self.tail: tuple[I32, I64, F64] = (
            np.empty(0, np.int32),
            np.empty(0, np.int64),
            np.empty(0, np.float64),
        )
        """Rate rules: the recent samples per slot, enough to find a `window_s`-old anchor."""

    # --- series -> slots ------------------------------------------------------------------

    def sync(
        self,
        registry: SeriesRegistry,
        start: int,
        stop: int,
        entity_of_series: I32,
        n_entities: int,
    ) -> None:
        """Map the series ids [start, stop) that this rule watches to slots (`entity_of_series`:
        the evaluator's index of each series' entity, `n_entities` of them)."""
        rule = self.rule
        self.main = _grow(self.main, stop, -1)
        self.den = _grow(self.den, stop, -1)
        self.guard = _grow(self.guard, stop, -1)
        self.slot_of_entity = _grow(self.slot_of_entity, n_entities, -1)
        is_absent = rule.kind is RuleKind.ABSENT
        for sid in range(start, stop):
            entity, metric = registry.key(sid)
            if is_absent:
                if not fnmatch.fnmatchcase(metric, rule.metric):
                    continue
                table = self.main
            elif metric == rule.metric:
                table = self.main
            elif metric == rule.denominator:
                table = self.den
            elif rule.when is not None and metric == rule.when.metric:
                table = self.guard
            else:
                continue
            if entity_path.matches(entity, rule.entity):
                table[sid] = slot = self._slot(entity)
                self.slot_of_entity[entity_of_series[sid]] = slot

    def _slot(self, entity: str) -> int:
        slot = self._slot_of_entity.get(entity)
        if slot is None:
            slot = len(self.entities)
            self._slot_of_entity[entity] = slot
            self.entities.append(entity)
            size = slot + 1
            self.active = _grow(self.active, size, False)
            self.pending = _grow(self.pending, size, -1)
            self.level = _grow(self.level, size, 0)
            self.seen = _grow(self.seen, size, False)
            self.last_seen = _grow(self.last_seen, size, -1)
            self.last_source = _grow(self.last_source, size, -1)
            self.stale_ms = _grow(self.stale_ms, size, -1)
            self.entity_now = _grow(self.entity_now, size, -1)
            self.value_ts = _grow(self.value_ts, size, -1)
            self.last_value = _grow(self.last_value, size, np.nan)
            self.den_latest.grow(size)
            self.guard_latest.grow(size)
        return slot

    # --- evaluation -----------------------------------------------------------------------

    def evaluate(
        self,
        batch: Batch,
        now_ms: int | None,
        source: int = 0,
        *,
        derived: bool = False,
        entity_of_series: I32 | None = None,
    ) -> list[Transition]:
        """`now_ms` is the clock of `source` (an index the evaluator gives each source);
        `derived`: the batch comes from a derived source (never for an absent rule);
        `entity_of_series`: the evaluator's entity index of each series (for staleness)."""
        kind = self.rule.kind
        if kind is RuleKind.ABSENT:
            return self._absent(batch, now_ms, source)
        slot = self.main[batch.series]
        rows = np.flatnonzero(slot >= 0)
        s, t, v = slot[rows], batch.ts[rows], batch.value[rows]
        may_go_stale = self._note(s, t, source, derived)
        if kind is RuleKind.RATIO:
            v = self._ratio(batch, s, t, v)
        elif kind is RuleKind.RATE:
            v = self._rate(s, t, v)
        if may_go_stale:
            known = ~np.isnan(v)
            keep_newest(self.value_ts, self.last_value, s[known], t[known], v[known])
        transitions = self._levels(batch, s, t, v)
        if source in self.stale_sources and entity_of_series is not None:
            transitions += self._withdrawn(batch, source, entity_of_series)
        return transitions

    def _levels(self, batch: Batch, s: I32, t: I64, v: F64) -> list[Transition]:
        """The level changes of the signal's rows (slot, ts, value)."""
        forced_clear: Bools | None = None
        if self.rule.when is not None:
            g = self._guard_values(batch, s, t)
            known = ~np.isnan(g)
            s, t, v, g = s[known], t[known], v[known], g[known]
            forced_clear = ~_COMPARE[self.rule.when.op](g, self.rule.when.value)
        keep = ~np.isnan(v)
        if forced_clear is not None:
            keep |= forced_clear  # a false guard clears even without a usable value
            forced_clear = forced_clear[keep]
        return self._scan(s[keep], t[keep], v[keep], forced_clear)

    def _note(self, s: I32, t: I64, source: int, derived: bool) -> bool:
        """Remember when each slot's series was last sampled, where it may go stale (and
        say whether it may)."""
        stale_ms = self.own_stale_ms
        if stale_ms is None and derived:
            stale_ms = self.derived_stale_ms
        if stale_ms is None or len(s) == 0:
            return False
        self.stale_sources.add(source)
        np.maximum.at(self.last_seen, s, t)  # a NaN row too: the series is still there
        np.maximum.at(self.entity_now, s, t)
        self.last_source[s] = source
        self.stale_ms[s] = stale_ms
        return True

    def _withdrawn(self, batch: Batch, source: int, entity_of_series: I32) -> list[Transition]:
        """Clear the levels (and `for` runs) of series that stopped while their entity went
        on sending on the same source: `stale_ms` after their last sample, on the clock of
        the entity's other samples from that source. Noticed at the first batch past it."""
        holding = (self.level > 0) | (self.pending >= 0).any(axis=0)
        armed = holding & (self.stale_ms >= 0) & (self.last_source == source)
        if not armed.any():
            return []
        peer = self.slot_of_entity[entity_of_series[batch.series]]
        rows = np.flatnonzero(peer >= 0)
        rows = rows[armed[peer[rows]]]
        np.maximum.at(self.entity_now, peer[rows], batch.ts[rows])
        gone = np.flatnonzero(armed & (self.entity_now - self.last_seen >= self.stale_ms))
        transitions: list[Transition] = []
        thresholds = dict(self.levels)
        for i in gone.tolist():
            old = _level(int(self.level[i]))
            self.level[i] = 0
            self.active[:, i] = False
            self.pending[:, i] = -1
            if old is None:  # a `for` run broken, no level to clear
                continue
            now = int(self.entity_now[i])
            transitions.append(
                Transition(
                    self.rule,
                    self.entities[i],
                    now,
                    None,
                    old,
                    float(self.last_value[i]),
                    self.rule.clear_level(thresholds[old]),
                    withdrawn_s=(now - int(self.last_seen[i])) / 1000.0,
                )
            )
        return transitions

    def _rows_of(self, table: I32, batch: Batch) -> tuple[I32, I64, F64]:
        slot = table[batch.series]
        rows = np.flatnonzero((slot >= 0) & ~np.isnan(batch.value))
        return slot[rows], batch.ts[rows], batch.value[rows]

    def _ratio(self, batch: Batch, s: I32, t: I64, v: F64) -> F64:
        den = self.den_latest.lookup(s, t, *self._rows_of(self.den, batch))
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(den > 0, v / den, np.nan)

    def _guard_values(self, batch: Batch, s: I32, t: I64) -> F64:
        return self.guard_latest.lookup(s, t, *self._rows_of(self.guard, batch))

    def _rate(self, s: I32, t: I64, v: F64) -> F64:
        fresh = ~np.isnan(v)
        tail_s, tail_t, tail_v = self.tail
        all_s = np.concatenate([tail_s, s[fresh]])
        all_t = np.concatenate([tail_t, t[fresh]])
        all_v = np.concatenate([tail_v, v[fresh]])
        anchor_t, anchor_v = asof(s, t - self.window_ms, all_s, all_t, all_v)
        elapsed_ms = (t - anchor_t).astype(np.float64)
        rate = np.where(
            anchor_t >= 0, (v - anchor_v) / np.maximum(elapsed_ms, 1.0) * 60_000, np.nan
        )
        self.tail = self._prune(all_s, all_t, all_v)
        return rate

    def _prune(self, s: I32, t: I64, v: F64) -> tuple[I32, I64, F64]:
        """Keep per slot the samples newer than newest - window, and the one just before."""
        if len(s) == 0:
            return s, t, v
        order = np.lexsort((t, s))
        s, t, v = s[order], t[order], v[order]
        _, last, _ = _segments(s)
        newest = np.zeros(len(self.entities), dtype=np.int64)
        newest[s[last]] = t[last]
        old = t < newest[s] - self.window_ms
        next_recent = np.zeros(len(s), dtype=np.bool_)
        next_recent[:-1] = ~old[1:] & (s[1:] == s[:-1])
        keep = ~old | next_recent
        return s[keep], t[keep], v[keep]

    def _absent(self, batch: Batch, now_ms: int | None, source: int) -> list[Transition]:
        """Ages on the clock of the source that sends each entity: a twin replaying the past
        and a host on the wall clock never make each other look silent. A source that stops
        altogether is the silence watchdog's (its entities turn UNKNOWN)."""
        slot = self.main[batch.series]
        rows = np.flatnonzero(slot >= 0)
        if len(rows):
            np.maximum.at(self.last_seen, slot[rows], batch.ts[rows])
            self.last_source[slot[rows]] = source
        if now_ms is None:
            return []
        s = np.flatnonzero((self.last_seen >= 0) & (self.last_source == source)).astype(np.int32)
        age_s = (now_ms - self.last_seen[s]) / 1000.0
        return self._scan(s, np.full(len(s), now_ms, dtype=np.int64), age_s, None)

    def _scan(self, s: I32, t: I64, v: F64, forced_clear: Bools | None) -> list[Transition]:
        """The threshold state machine over rows (slot, ts, value), carried across batches.

        Per level: `enter` rows meet the condition, `clear` rows are past the clear level; a
        level becomes active at an `enter` row whose run of `enter` rows started `for_ms` ago
        or earlier, and inactive at a `clear` row. The last of these events in a slot's rows
        (or the carried state when there is none) decides each row: a segmented forward fill.
        """
        if len(s) == 0:
            return []
        order = np.lexsort((t, s))
        s, t, v = s[order], t[order], v[order]
        if forced_clear is not None:
            forced_clear = forced_clear[order]
        first, last, start = _segments(s)
        index = np.arange(len(s))
        level = np.zeros(len(s), dtype=np.int8)
        compare = _COMPARE[self.rule.op]
        for li, (severity, threshold) in enumerate(self.levels):
            enter = compare(v, threshold)
            clear = ~compare(v, self.rule.clear_level(threshold))
            if forced_clear is not None:
                enter &= ~forced_clear
                clear |= forced_clear
            # Start of the current run of `enter` rows (or the carried start).
            last_break = np.maximum.accumulate(np.where(enter, -1, index))
            broke = last_break >= start
            carried = self.pending[li, s]
            run_start = np.where(
                broke,
                t[np.minimum(last_break + 1, len(s) - 1)],
                np.where(carried >= 0, carried, t[start]),
            )
            fire = enter & (t - run_start >= self.for_ms)
            last_event = np.maximum.accumulate(np.where(fire | clear, index, -1))
            active = np.where(
                last_event >= start, fire[np.maximum(last_event, 0)], self.active[li, s]
            )
            tail = s[last]
            self.active[li, tail] = active[last]
            self.pending[li, tail] = np.where(enter[last], run_start[last], -1)
            level[active] = int(severity)
        previous = np.empty_like(level)
        previous[1:] = level[:-1]
        previous[first] = self.level[s[first]]
        is_new = np.zeros(len(s), dtype=np.bool_)
        is_new[first] = ~self.seen[s[first]]
        self.level[s[last]] = level[last]
        self.seen[s] = True
        return [
            self._transition(i, s, t, v, level, previous, bool(is_new[i]))
            for i in np.flatnonzero(level != previous).tolist()
        ]

    def _transition(
        self,
        i: int,
        s: I32,
        t: I64,
        v: F64,
        level: npt.NDArray[np.int8],
        previous: npt.NDArray[np.int8],
        is_first: bool,
    ) -> Transition:
        new, old = _level(int(level[i])), _level(int(previous[i]))
        thresholds = dict(self.levels)
        if new is not None:
            threshold = thresholds[new]
        else:
            assert old is not None
            threshold = self.rule.clear_level(thresholds[old])
        return Transition(
            self.rule,
            self.entities[int(s[i])],
            int(t[i]),
            new,
            old,
            float(v[i]),
            threshold,
            is_first,
        )

    def current(self) -> dict[str, Severity | None]:
        """Level of every entity evaluated at least once (None: no level active)."""
        return {self.entities[i]: _level(int(self.level[i])) for i in np.flatnonzero(self.seen)}


class RuleEvaluator:
    """Evaluates rules over batches, keeping each rule's state between batches.

    Not thread-safe: one consumer feeds it. New series in the registry are picked up at the
    next `evaluate`.

    `derived_stale_after_s`: how long a series of a derived source (`evaluate(...,
    derived=True)`: the intelligence's `health_score`, `anomaly_score`,
    `time_to_failure_seconds`) may stop before the levels it holds clear, where its rule sets
    no `stale_after_s` (None: never). Derived values are restated every minute while they
    hold, so a series that stops while its entity's other derived series go on was withdrawn.
    """

    def __init__(
        self,
        rules: Sequence[Rule],
        registry: SeriesRegistry,
        *,
        derived_stale_after_s: float | None = 300.0,
    ) -> None:
        names = [rule.name for rule in rules]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"alert rule names must be unique; repeated: {duplicates}")
        if derived_stale_after_s is not None and not (
            math.isfinite(derived_stale_after_s) and derived_stale_after_s > 0
        ):
            raise ValueError("derived_stale_after_s must be a finite number of seconds > 0")
        self.rules = list(rules)
        self.registry = registry
        self.now_ms: int | None = None
        """Newest sample timestamp seen: the evaluator's "now" (simulated time)."""
        self._clocks: dict[str, int] = {}
        """Newest sample timestamp per source: the clock absence is measured on."""
        self._source_ids: dict[str, int] = {}
        derived_ms = None if derived_stale_after_s is None else round(derived_stale_after_s * 1000)
        self._states = [_RuleState(rule, derived_ms) for rule in rules]
        self._n_series = 0
        self._entity_index: dict[str, int] = {}
        self._entity_of_series: I32 = np.full(0, -1, dtype=np.int32)
        """Index of each series' entity (the samples that keep a slot's clock going)."""

    def _sync(self) -> None:
        n = len(self.registry)
        if n <= self._n_series:
            return
        start = self._n_series
        self._entity_of_series = _grow(self._entity_of_series, n, -1)
        index = self._entity_index
        for sid in range(start, n):
            entity = self.registry.key(sid).entity
            self._entity_of_series[sid] = index.setdefault(entity, len(index))
        for state in self._states:
            state.sync(self.registry, start, n, self._entity_of_series, len(index))
        self._n_series = n

    def evaluate(
        self, batch: Batch, source: str = "", *, derived: bool = False
    ) -> list[Transition]:
        """The level changes `batch` (from `source`) causes, in time order (rule order within
        one ts).

        `derived`: `source` is rackwatch's own (the intelligence), its samples stamped with
        the clock of the device they describe. They are evaluated by the threshold, ratio and
        rate rules (a `for` run and a rate are measured between their own timestamps), never
        by absent rules, and they move no clock: neither `now_ms` nor a source's, so nothing
        ages on them (see `derived_stale_after_s` for what stops)."""
        self._sync()
        if len(batch) and (batch.series.max() >= self._n_series or batch.series.min() < 0):
            raise ValueError(
                "batch has series ids the registry does not know: intern them in the registry "
                "shared with the evaluator before publishing"
            )
        source_id = self._source_ids.setdefault(source, len(self._source_ids))
        if len(batch) and not derived:
            newest = int(batch.ts.max())
            self.now_ms = newest if self.now_ms is None else max(self.now_ms, newest)
            self._clocks[source] = max(self._clocks.get(source, newest), newest)
        clock = self._clocks.get(source)
        transitions: list[Transition] = []
        for state in self._states:
            if derived and state.rule.kind is RuleKind.ABSENT:
                continue
            transitions.extend(
                state.evaluate(
                    batch,
                    clock,
                    source_id,
                    derived=derived,
                    entity_of_series=self._entity_of_series,
                )
            )
        transitions.sort(key=lambda tr: tr.ts)
        return transitions

    def levels(self, rule: str) -> dict[str, Severity | None]:
        """The current level per entity of one rule (entities evaluated at least once)."""
        for state in self._states:
            if state.rule.name == rule:
                return state.current()
        raise KeyError(f"no alert rule named {rule!r}; known: {[r.name for r in self.rules]}")
