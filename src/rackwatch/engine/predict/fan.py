"""Fan wear: how much speed each fan has lost, and when it will stop. Pure NumPy.

A worn fan turns slower than it should at the level it is commanded (bearing wear, dust, a
tired motor), so the signal is the **speed ratio**: measured rpm over the rpm this fan makes at
this level when healthy. The expected rpm is learned, never assumed:

- each fan's reference at a level is the mean of its first `learn_s` of samples at that level
  (the first level a fan is learned at is its *primary* level);
- the relation between levels is learned across fans: the median, over the fans that have both
  levels learned, of ref(level) / ref(primary). A fan first seen at a new level after it was
  learned elsewhere gets ref(primary) * that median, so a fan that is already worn when the
  controller moves it to "high" is compared with what a healthy fan of its own size makes at
  "high", not with its own worn speed (used once `min_peers` fans know both levels; until then
  it learns its own, as a lone host fan must);
- level 0 (off by command) says nothing about wear and is skipped; a fan without a commanded
  level (a host's fan under firmware control) is compared with its own first `learn_s`, a weaker
  signal (its speed also follows the temperature).

The speed ratios go through a `TrendTracker` (1-minute means, robust linear trend over 6 h):
a fan is predicted to fail when its ratio is trending down significantly, has already lost at
least `min_drop_ratio`, and the trend reaches `failure_ratio` within the horizon. The default
failure ratio, 0.40, is seed 000's ("speed_percent -= 2 every 30 min until speed_percent <= 40,
then status = OFF"), and a fan below 40 % of its speed moves too little air to count as working
whatever the model. A fan already below it (stopped: 0 rpm while commanded on) has `eta_s` 0.

`FanWearTracker.update(ts_ms, rpm, level)` is the hot-stream form (a block of steps in, one
forecast per fan out); `predict_fan_wear(ts_ms, rpm, level)` the fit-from-history form (arrays
from the store); the tracker it returns carries the learned references on into the stream.

>>> ts = np.arange(0, 8 * 3_600_000, 5_000)
>>> worn = np.where(ts < 3_600_000, 1.0, 1.0 - 0.04 * (ts - 3_600_000) / 3_600_000)
>>> rpm = np.column_stack([9000.0 * worn, np.full(len(ts), 7000.0)])
>>> level = np.full(rpm.shape, 2.0)
>>> f = predict_fan_wear(ts, rpm, level).result.forecast
>>> [None if e is None else round(e / 3600, 1) for e in (f.eta_of(0)[0], f.eta_of(1)[0])]
[8.0, None]
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from rackwatch.engine.predict.tracker import Forecast, TrendTracker
from rackwatch.engine.predict.trend import F64, I64, Bools, Eta, TrendParams

N_SLOTS = 5
"""Levels 0..3, and slot 4 for a fan whose commanded level is unknown."""
NO_LEVEL = 4


@dataclass(frozen=True, slots=True)
class FanWearParams:
    failure_ratio: float = 0.40
    """Speed ratio at or below which a fan counts as failed (seed 000: off at <= 40 %)."""
    min_drop_ratio: float = 0.015
    """A fan whose fitted ratio is above 1 - this gets no prediction, whatever its trend."""
    learn_s: float = 1800.0
    """Reference: the mean of a fan's first this-many seconds at a level."""
    min_learn_samples: int = 10
    min_peers: int = 3
    """Fans that know both levels before the learned level relation replaces a fan's own."""
    fit_from_onset: bool = True
    """Fit each fan's trend from its newest 1-minute ratio still at or above
    1 - min_drop_ratio / 2 (the wear's onset), not over the whole window."""
    trend: TrendParams = field(default_factory=TrendParams)

    def __post_init__(self) -> None:
        if not 0.0 < self.failure_ratio < 1.0:
            raise ValueError(f"failure_ratio must be in (0, 1), got {self.failure_ratio}")
        if not 0.0 <= self.min_drop_ratio < 1.0 - self.failure_ratio:
            raise ValueError("min_drop_ratio must be in [0, 1 - failure_ratio)")
        if not self.learn_s > 0 or self.min_learn_samples < 1 or self.min_peers < 1:
            raise ValueError("learn_s must be > 0, min_learn_samples and min_peers >= 1")


DEFAULT_FAN_WEAR = FanWearParams()


@dataclass(frozen=True, slots=True)
class FanForecast:
    """Per fan: the fitted speed ratio now, its trend, and the time to failure."""

    forecast: Forecast
    """The speed-ratio trend and time to `failure_ratio`, gated by `min_drop_ratio`."""
    reference_rpm: F64
    """(fans, 5): the rpm in use as healthy at levels 0..3 and without a level; NaN unknown."""

    @property
    def ratio_now(self) -> F64:
        """The speed ratio on the fitted trend now (NaN until there is a trend)."""
        return self.forecast.value_now

    @property
    def ratio_last(self) -> F64:
        """The measured speed ratio over the last minute (NaN: no sample, or off by command)."""
        return self.forecast.last

    @property
    def eta(self) -> Eta:
        return self.forecast.eta


class FanWearTracker:
    """Speed ratios and time to failure of `n_fans` fans, updated block by block."""

    def __init__(self, n_fans: int, params: FanWearParams = DEFAULT_FAN_WEAR) -> None:
        self.params = params
        self.n_fans = n_fans
        self._first_ms = np.full((n_fans, N_SLOTS), np.nan)
        self._sum = np.zeros((n_fans, N_SLOTS))
        self._n = np.zeros((n_fans, N_SLOTS))
        self._learned = np.zeros((n_fans, N_SLOTS), dtype=np.bool_)
        self._primary = np.full(n_fans, -1, dtype=np.int64)
        self._newest_ms = -np.inf
        onset = 1.0 - params.min_drop_ratio / 2.0 if params.fit_from_onset else None
        self._trends = TrendTracker(
            n_fans, params.failure_ratio, rising=False, params=params.trend, onset=onset
        )
        self._reference = np.full((n_fans, N_SLOTS), np.nan)
        self._raw = self._trends.forecast
        self._result = FanForecast(self._gate(self._raw), self._reference.copy())

    @property
    def result(self) -> FanForecast:
        return self._result

    def update(self, ts_ms: I64, rpm: F64, level: F64 | None = None) -> FanForecast:
        """Add a block: `rpm[i, j]` of fan j at `ts_ms[i]`, commanded `level[i, j]` (0..3; NaN
        or None: unknown). NaN rpm is no sample. Returns the forecast for every fan."""
        ts = np.asarray(ts_ms, dtype=np.int64)
        rpm = np.asarray(rpm, dtype=np.float64).reshape(len(ts), self.n_fans)
        slot = _slots(level, rpm.shape)
        if len(ts) == 0:
            return self._result
        learning = self._learn(ts, rpm, slot)
        self._reference = self._references()
        forecast = self._trends.update(ts, self._ratios(rpm, slot, learning))
        if forecast is not self._raw:  # refitted: a bucket closed
            self._raw = forecast
            self._result = FanForecast(self._gate(forecast), self._reference.copy())
        return self._result

    def _learn(self, ts: I64, rpm: F64, slot: I64) -> Bools:
        """Accumulate the first `learn_s` of each (fan, level); returns the samples used."""
        p = self.params
        usable = np.isfinite(rpm) & (slot > 0)
        learning = np.zeros(rpm.shape, dtype=np.bool_)
        t = ts.astype(np.float64)[:, None]
        for s in range(1, N_SLOTS):
            at = usable & (slot == s) & ~self._learned[:, s]
            if not at.any():
                continue
            has = at.any(axis=0)
            first = t[np.argmax(at, axis=0), 0]
            fresh = has & np.isnan(self._first_ms[:, s])
            self._first_ms[fresh, s] = first[fresh]
            take = at & (t < self._first_ms[:, s] + p.learn_s * 1000.0)
            self._sum[:, s] += np.where(take, rpm, 0.0).sum(axis=0)
            self._n[:, s] += take.sum(axis=0)
            learning |= take
        self._newest_ms = max(self._newest_ms, float(ts.max()))
        done = (self._newest_ms >= self._first_ms + p.learn_s * 1000.0) & (
            self._n >= p.min_learn_samples
        )
        done &= self._sum > 0.0  # a fan stopped from its first sample has no healthy speed
        self._learned |= done
        unset = (self._primary < 0) & self._learned.any(axis=1)
        self._primary[unset] = np.argmax(self._learned[unset], axis=1)
        return learning

    def _references(self) -> F64:
        """The rpm used as healthy per (fan, slot): own for the primary level, the learned
        level relation times the primary's for the others (own until enough peers)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            own = np.where(self._learned, self._sum / self._n, np.nan)
        reference = own.copy()
        fans = np.arange(self.n_fans)
        has_primary = self._primary >= 0
        primary_rpm = np.where(has_primary, own[fans, np.maximum(self._primary, 0)], np.nan)
        for p in range(1, N_SLOTS):
            of_p = has_primary & (self._primary == p)
            if not of_p.any():
                continue
            for s in range(1, N_SLOTS):
                if s == p:
                    continue
                peers = np.isfinite(own[:, p]) & np.isfinite(own[:, s])
                if peers.sum() < self.params.min_peers:
                    continue
                relation = float(np.median(own[peers, s] / own[peers, p]))
                reference[of_p, s] = primary_rpm[of_p] * relation
        reference[:, 0] = np.nan
        return reference

    def _ratios(self, rpm: F64, slot: I64, learning: Bools) -> F64:
        ref = np.take_along_axis(self._reference, slot.T, axis=1).T
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = rpm / ref
        return np.where(learning | (slot == 0) | ~np.isfinite(ratio), np.nan, ratio)

    def _gate(self, forecast: Forecast) -> Forecast:
        """No prediction for a fan that has not lost at least `min_drop_ratio` yet."""
        worn = forecast.value_now <= 1.0 - self.params.min_drop_ratio
        eta = forecast.eta
        gated = Eta(
            np.where(worn | (eta.eta_s == 0.0), eta.eta_s, np.inf),
            np.where(worn | (eta.eta_s == 0.0), eta.low_s, np.inf),
            np.where(worn | (eta.eta_s == 0.0), eta.high_s, np.inf),
        )
        return Forecast(forecast.as_of_ms, forecast.trend, gated, forecast.last)


def _slots(level: F64 | None, shape: tuple[int, ...]) -> I64:
    if level is None:
        return np.full(shape, NO_LEVEL, dtype=np.int64)
    lv = np.asarray(level, dtype=np.float64).reshape(shape)
    known = np.isfinite(lv) & (lv >= 0) & (lv <= NO_LEVEL - 1)
    return np.where(known, np.rint(np.where(known, lv, 0)), NO_LEVEL).astype(np.int64)


def predict_fan_wear(
    ts_ms: I64, rpm: F64, level: F64 | None = None, params: FanWearParams = DEFAULT_FAN_WEAR
) -> FanWearTracker:
    """Learn the references and fit the trends over a history (ts (n,), rpm and level
    (n, fans)); the tracker's `result` is the forecast at its end, and it goes on from there
    with `update` on the stream."""
    rpm = np.asarray(rpm, dtype=np.float64)
    tracker = FanWearTracker(rpm.shape[1] if rpm.ndim == 2 else 1, params)
    tracker.update(ts_ms, rpm, level)
    return tracker
