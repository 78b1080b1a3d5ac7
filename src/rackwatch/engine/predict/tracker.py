"""Time to threshold on the hot stream: bucket means in a ring, refitted when a bucket closes.

`TrendTracker(n_series, threshold, rising=...)` keeps, for every series, the mean of each
`bucket_s` bucket over the last `window_s` (a ring of sums and counts: 16 bytes per series and
bucket, 5.5 MB for 2,000 series over 6 h of 1-minute buckets). `update(ts_ms, values)` adds a
block of samples (rows are instants, columns series, NaN = no sample) and returns the
`Forecast`; the trends are refitted only when a bucket has closed since the last fit, so feeding
it one 5-second step at a time costs a fit a minute. The open bucket is left out of fits: a
minute of latency is nothing next to hours of warning, and a half-filled bucket is noisier.

`forecast_from_history(ts_ms, values, threshold, rising=...)` is the same computation over
arrays read from the store (the whole history as one block): what it returns is what the
stream would say at the end of that history.

Use it for any slow, steady drift toward a limit: a disk filling (`disk_utilization_ratio` to
0.95, rising), a temperature creeping toward its critical threshold, a fan wearing (see
`fan.py`, which feeds it speed ratios). Not for fast faults: a 1-minute bucket and the
significance test need tens of minutes of trend.

>>> ts = np.arange(0, 6 * 3_600_000, 5_000)               # 6 h every 5 s
>>> used = 0.5 + 0.05 * ts / 3_600_000                    # a disk filling 5 % an hour
>>> f = forecast_from_history(ts, used[:, None], 0.95, rising=True)
>>> round(float(f.eta.eta_s[0]) / 3600, 1), round(float(f.value_now[0]), 3)
(3.0, 0.799)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rackwatch.engine.predict.trend import (
    DEFAULT_TREND,
    F64,
    I64,
    S_PER_H,
    Bools,
    Eta,
    Trend,
    TrendParams,
    crossing,
    fit_trends,
)


@dataclass(frozen=True, slots=True)
class Forecast:
    """What the trackers say for every series at `as_of_ms` (the end of the last closed
    bucket; None before any bucket closed)."""

    as_of_ms: int | None
    trend: Trend
    eta: Eta
    last: F64
    """Mean of the newest closed bucket (the one ending at `as_of_ms`), NaN where it held no
    sample."""

    @property
    def value_now(self) -> F64:
        return self.trend.value_now

    @property
    def failure_ms(self) -> F64:
        """Predicted crossing instant (epoch ms) per series; inf where none."""
        base = np.nan if self.as_of_ms is None else float(self.as_of_ms)
        return np.asarray(base + self.eta.eta_s * 1000.0)

    def eta_of(self, index: int) -> tuple[float | None, float | None, float | None]:
        """(eta, low, high) in seconds of one series, None where no crossing is predicted."""
        eta, low, high = (
            float(v) if np.isfinite(v) else None
            for v in (self.eta.eta_s[index], self.eta.low_s[index], self.eta.high_s[index])
        )
        return eta, low, high


def empty_forecast(n_series: int, params: TrendParams = DEFAULT_TREND) -> Forecast:
    """No data yet: every trend NaN, nothing predicted."""
    nothing = np.full(n_series, np.nan)
    trend = Trend(
        params.model,
        nothing,
        nothing,
        nothing,
        nothing,
        nothing,
        nothing,
        np.zeros(n_series, dtype=np.int64),
    )
    never = np.full(n_series, np.inf)
    return Forecast(None, trend, Eta(never, never, never), nothing)


class TrendTracker:
    """Bucket means of `n_series` series over a sliding window, and their time to threshold.

    `threshold` is one value or one per series; `rising` says which way each crosses it.
    Samples must come in time order between calls (a sample older than the window is dropped;
    inside the window a late one still counts in its bucket). Rows within one call may be in
    any order.

    `onset` (one value or one per series, None: off) is the healthy side's edge: a fit starts
    at the newest bucket still on the healthy side of it (at or above it for a series falling
    toward its threshold, at or below for a rising one), so that a degradation that began an
    hour ago is not averaged with the five flat hours before it (a line through "flat, then
    falling" is too shallow, and predicts too late).
    """

    def __init__(
        self,
        n_series: int,
        threshold: float | F64,
        *,
        rising: bool | Bools,
        params: TrendParams = DEFAULT_TREND,
        onset: float | F64 | None = None,
    ) -> None:
        if n_series < 0:
            raise ValueError(f"n_series must be >= 0, got {n_series}")
        self.params = params
        self.n_series = n_series
        self.threshold = np.broadcast_to(np.asarray(threshold, dtype=np.float64), (n_series,))
        self.rising = np.broadcast_to(np.asarray(rising, dtype=np.bool_), (n_series,))
        self.onset = (
            None
            if onset is None
            else np.broadcast_to(np.asarray(onset, dtype=np.float64), (n_series,))
        )
        self.bucket_ms = round(params.bucket_s * 1000.0)
        n_slots = params.n_buckets + 1  # the closed window and the open bucket
        self._sums = np.zeros((n_series, n_slots))
        self._counts = np.zeros((n_series, n_slots))
        self._bucket = np.full(n_slots, -1, dtype=np.int64)
        self._newest = -1
        self._fitted_at = -1
        self._forecast = empty_forecast(n_series, params)

    @property
    def forecast(self) -> Forecast:
        """The latest forecast (refitted by `update` when a bucket closed)."""
        return self._forecast

    def update(self, ts_ms: I64, values: F64) -> Forecast:
        """Add samples `values[i, j]` of series j at `ts_ms[i]`; refit if a bucket closed."""
        ts = np.asarray(ts_ms, dtype=np.int64)
        block = np.asarray(values, dtype=np.float64).reshape(len(ts), self.n_series)
        if len(ts):
            self._add(ts, block)
        closed = (self._bucket >= 0) & (self._bucket < self._newest)
        if self._newest > self._fitted_at and closed.any():
            self._forecast = self._fit()
            self._fitted_at = self._newest
        return self._forecast

    def _add(self, ts: I64, block: F64) -> None:
        n_slots = len(self._bucket)
        bucket = ts // self.bucket_ms
        order = np.argsort(bucket, kind="stable")
        bucket, block = bucket[order], block[order]
        newest = max(self._newest, int(bucket[-1]))
        keep = bucket > newest - n_slots
        bucket, block = bucket[keep], block[keep]
        if len(bucket) == 0:
            return
        ids, starts = np.unique(bucket, return_index=True)
        finite = np.isfinite(block)
        sums = np.add.reduceat(np.where(finite, block, 0.0), starts, axis=0).T
        counts = np.add.reduceat(finite.astype(np.float64), starts, axis=0).T
        slots = ids % n_slots
        held = self._bucket[slots]
        fresh = ids > held
        self._sums[:, slots[fresh]] = 0.0
        self._counts[:, slots[fresh]] = 0.0
        self._bucket[slots[fresh]] = ids[fresh]
        live = ids >= held  # a bucket older than its slot's has left the window
        self._sums[:, slots[live]] += sums[:, live]
        self._counts[:, slots[live]] += counts[:, live]
        self._newest = newest

    def _fit(self) -> Forecast:
        p = self.params
        closed = (self._bucket >= 0) & (self._bucket < self._newest)
        closed &= self._bucket >= self._newest - p.n_buckets
        slots = np.nonzero(closed)[0]
        slots = slots[np.argsort(self._bucket[slots])]  # time order, for the autocorrelation
        as_of_ms = self._newest * self.bucket_ms
        centre_ms = (self._bucket[slots] + 0.5) * self.bucket_ms
        x_h = np.asarray((centre_ms - as_of_ms) / (S_PER_H * 1000.0), dtype=np.float64)
        counts = self._counts[:, slots]
        with np.errstate(divide="ignore", invalid="ignore"):
            means = np.where(counts > 0, self._sums[:, slots] / counts, np.nan)
        fitted = (
            means
            if self.onset is None
            else _since_onset(means, self.onset, self.rising, p.min_points)
        )
        trend = fit_trends(x_h, fitted, p)
        eta = crossing(trend, self.threshold, rising=self.rising, params=p)
        # the newest closed bucket's mean past the threshold has crossed, whatever the fit says
        # (a fan that just stopped is an outlier to a robust fit of the hours before)
        newest = len(slots) and self._bucket[slots[-1]] == self._newest - 1
        last = means[:, -1] if newest else np.full(self.n_series, np.nan)
        crossed = np.where(self.rising, last >= self.threshold, last <= self.threshold)
        if crossed.any():
            eta = Eta(*(np.where(crossed, 0.0, v) for v in (eta.eta_s, eta.low_s, eta.high_s)))
        return Forecast(int(as_of_ms), trend, eta, last)


def _since_onset(means: F64, onset: F64, rising: Bools, min_points: int) -> F64:
    """`means` with the points before each row's newest healthy-side point made NaN, unless
    that leaves fewer than `min_points` (a healthy series keeps its whole window)."""
    healthy = np.where(rising[:, None], means <= onset[:, None], means >= onset[:, None])
    n = means.shape[1]
    last = n - 1 - np.argmax(healthy[:, ::-1], axis=1)
    start = np.where(healthy.any(axis=1), last, 0)
    after = np.arange(n)[None, :] >= start[:, None]
    enough = (after & np.isfinite(means)).sum(axis=1) >= min_points
    return np.where(after | ~enough[:, None], means, np.nan)


def forecast_from_history(
    ts_ms: I64,
    values: F64,
    threshold: float | F64,
    *,
    rising: bool | Bools,
    params: TrendParams = DEFAULT_TREND,
    onset: float | F64 | None = None,
) -> Forecast:
    """The forecast at the end of a history (ts (n,), values (n, series)), e.g. read from the
    store; the same computation as the streaming `TrendTracker` fed that history."""
    values = np.asarray(values, dtype=np.float64)
    n_series = values.shape[1] if values.ndim == 2 else 1
    tracker = TrendTracker(n_series, threshold, rising=rising, params=params, onset=onset)
    return tracker.update(ts_ms, values)
