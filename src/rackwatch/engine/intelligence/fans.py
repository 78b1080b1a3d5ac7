"""Fan wear on the stream: `fan_rpm` and `fan_level` pivoted into (steps x fans) blocks for
`FanWearTracker`, and `prediction.fan_failure` events.

A fan is known by its entity once one of its two series appears. Fans are grouped by when
they appeared (the twin's all come in its first batch; a fan found later starts a new group),
so a new fan never resets what the others learned. A step without a `fan_level` sample keeps
the fan's last commanded level. The tracker refits once a minute (a bucket closed); then each
fan's forecast is compared with the one last published:

- `prediction.fan_failure` the first time a failure is predicted, and again when it changes
  materially: the predicted instant moved by more than `shift_s` and `shift_ratio` of the
  time left, or the fan has now stopped (eta 0);
- `prediction.cleared` when a fan that had a prediction has had none for `clear_after_s`
  (10 min; until then the last prediction holds, so a trend that dips under significance for
  a minute neither withdraws it nor makes the health flicker).

Attributes: `what` ("fan wear"), `metric` (fan_rpm), `eta_s`, `low_s`, `high_s` (null:
unbounded), `failure_ms`, `failure_low_ms`, `failure_high_ms`, `ratio_now` (the fitted speed
ratio) and `ratio_last` (the last minute's); severity critical when the fan has stopped or may
stop within the hour, else warning.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from rackwatch.engine.intelligence.roles import SeriesRoles
from rackwatch.engine.predict import DEFAULT_FAN_WEAR, FanForecast, FanWearParams, FanWearTracker
from rackwatch.model import Batch, Event, EventKind, Severity

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
RPM, LEVEL = "fan_rpm", "fan_level"
WHAT = "fan wear"
SOON_S = 3600.0
"""A fan that may stop within this (its interval's low end) is a critical prediction."""


@dataclass(frozen=True, slots=True)
class FanPrediction:
    """A fan's current failure prediction (eta relative to `as_of_ms`)."""

    entity: str
    as_of_ms: int
    eta_s: float
    low_s: float | None
    high_s: float | None
    ratio_now: float | None
    ratio_last: float | None

    @property
    def failure_ms(self) -> int:
        return self.as_of_ms + round(self.eta_s * 1000)

    def attributes(self) -> dict[str, object]:
        def at(seconds: float | None) -> int | None:
            return None if seconds is None else self.as_of_ms + round(seconds * 1000)

        return {
            "what": WHAT,
            "metric": RPM,
            "eta_s": round(self.eta_s, 1),
            "low_s": None if self.low_s is None else round(self.low_s, 1),
            "high_s": None if self.high_s is None else round(self.high_s, 1),
            "failure_ms": self.failure_ms,
            "failure_low_ms": at(self.low_s),
            "failure_high_ms": at(self.high_s),
            "ratio_now": self.ratio_now,
            "ratio_last": self.ratio_last,
        }

    @property
    def severity(self) -> Severity:
        soon = self.eta_s == 0.0 or (self.low_s is not None and self.low_s < SOON_S)
        return Severity.CRITICAL if soon else Severity.WARNING


@dataclass(eq=False)
class _Group:
    first: int
    """Index of its first fan (fans first..first + n - 1)."""
    tracker: FanWearTracker
    level_now: F64
    shown: FanForecast | None = None
    """The forecast last compared with the published ones."""

    @property
    def n(self) -> int:
        return self.tracker.n_fans


@dataclass
class FanStage:
    roles: SeriesRoles
    params: FanWearParams = DEFAULT_FAN_WEAR
    shift_s: float = 900.0
    shift_ratio: float = 0.25
    clear_after_s: float = 600.0
    fans: list[str] = field(default_factory=list)
    """Fan entities, by index."""
    predictions: dict[str, FanPrediction] = field(default_factory=dict)
    """Fan -> its current prediction (finite eta)."""
    _index: dict[str, int] = field(default_factory=dict)
    _column: I64 = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    """Per series: its fan's index (-1: not a fan's rpm or level)."""
    _is_rpm: npt.NDArray[np.bool_] = field(default_factory=lambda: np.zeros(0, dtype=np.bool_))
    _groups: list[_Group] = field(default_factory=list)
    _published: dict[int, FanPrediction] = field(default_factory=dict)
    _lost_since: dict[int, int] = field(default_factory=dict)

    def process(self, batch: Batch) -> list[Event]:
        self._follow()
        rows = np.flatnonzero(self._column[batch.series] >= 0)
        if not len(rows):
            return []
        fan = self._column[batch.series[rows]]
        is_rpm = self._is_rpm[batch.series[rows]]
        ts, value = batch.ts[rows], batch.value[rows]
        events: list[Event] = []
        for group in self._groups:
            mine = (fan >= group.first) & (fan < group.first + group.n)
            if mine.any():
                self._update(group, fan[mine] - group.first, is_rpm[mine], ts[mine], value[mine])
                events += self._compare(group)
        return events

    def _follow(self) -> None:
        roles = self.roles
        known = len(self._column)
        if known == len(roles):
            return
        column = np.full(len(roles) - known, -1, dtype=np.int64)
        is_rpm = np.zeros(len(roles) - known, dtype=np.bool_)
        before = len(self.fans)
        for sid in range(known, len(roles)):
            metric = roles.metric[sid]
            if metric not in (RPM, LEVEL):
                continue
            entity = roles.entity[sid]
            index = self._index.get(entity)
            if index is None:
                index = self._index[entity] = len(self.fans)
                self.fans.append(entity)
            column[sid - known] = index
            is_rpm[sid - known] = metric == RPM
        self._column = np.concatenate([self._column, column])
        self._is_rpm = np.concatenate([self._is_rpm, is_rpm])
        if len(self.fans) > before:
            n = len(self.fans) - before
            tracker = FanWearTracker(n, self.params)
            self._groups.append(_Group(before, tracker, np.full(n, np.nan)))

    def _update(
        self, group: _Group, col: I64, is_rpm: npt.NDArray[np.bool_], ts: I64, value: F64
    ) -> None:
        steps, row = np.unique(ts, return_inverse=True)
        rpm = np.full((len(steps), group.n), np.nan)
        level = np.full((len(steps), group.n), np.nan)
        rpm[row[is_rpm], col[is_rpm]] = value[is_rpm]
        level[row[~is_rpm], col[~is_rpm]] = value[~is_rpm]
        level = _carried(level, group.level_now)
        group.level_now = level[-1].copy()
        group.tracker.update(steps, rpm, level)

    def _compare(self, group: _Group) -> list[Event]:
        forecast = group.tracker.result
        if forecast is group.shown or forecast.forecast.as_of_ms is None:
            return []
        group.shown = forecast
        as_of = forecast.forecast.as_of_ms
        eta = forecast.eta
        events: list[Event] = []
        for j in range(group.n):
            index = group.first + j
            entity = self.fans[index]
            before = self._published.get(index)
            if not math.isfinite(float(eta.eta_s[j])):
                if before is None:
                    self.predictions.pop(entity, None)
                    continue
                # held for `clear_after_s`: a trend that dips under significance for a minute
                # or two does not withdraw the prediction (nor flicker the health)
                lost = self._lost_since.setdefault(index, as_of)
                if as_of - lost >= self.clear_after_s * 1000:
                    del self._published[index], self._lost_since[index]
                    self.predictions.pop(entity, None)
                    events.append(self._cleared(entity, as_of, before))
                continue
            self._lost_since.pop(index, None)
            now = FanPrediction(
                entity,
                as_of,
                float(eta.eta_s[j]),
                _finite(eta.low_s[j]),
                _finite(eta.high_s[j]),
                _finite(forecast.ratio_now[j], 4),
                _finite(forecast.ratio_last[j], 4),
            )
            self.predictions[entity] = now
            if self._is_material(before, now):
                self._published[index] = now
                events.append(
                    Event(
                        ts=as_of,
                        kind=str(EventKind.PREDICTION_FAN_FAILURE),
                        entity=entity,
                        severity=now.severity,
                        attributes=now.attributes(),
                    )
                )
        return events

    def _is_material(self, before: FanPrediction | None, now: FanPrediction) -> bool:
        if before is None:
            return True
        if now.eta_s == 0.0:
            return before.eta_s > 0.0
        moved_ms = abs(now.failure_ms - before.failure_ms)
        return moved_ms > max(self.shift_s, self.shift_ratio * now.eta_s) * 1000.0

    def _cleared(self, entity: str, as_of: int, before: FanPrediction) -> Event:
        return Event(
            ts=as_of,
            kind=str(EventKind.PREDICTION_CLEARED),
            entity=entity,
            severity=Severity.INFO,
            attributes={"what": WHAT, "metric": RPM, "was_failure_ms": before.failure_ms},
        )


def _finite(value: float | np.floating, digits: int | None = None) -> float | None:
    v = float(value)
    if not math.isfinite(v):
        return None
    return v if digits is None else round(v, digits)


def _carried(level: F64, before: F64) -> F64:
    """Each column's NaN cells filled with its last finite value above, or `before`.

    >>> _carried(np.array([[np.nan, 1.0], [2.0, np.nan]]), np.array([3.0, np.nan])).tolist()
    [[3.0, 1.0], [2.0, 1.0]]
    """
    stacked = np.vstack([before[None, :], level])
    index = np.where(np.isfinite(stacked), np.arange(len(stacked))[:, None], 0)
    index = np.maximum.accumulate(index, axis=0)
    filled = np.take_along_axis(stacked, index, axis=0)
    return filled[1:]
