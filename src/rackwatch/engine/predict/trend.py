"""Robust trends of many series at once, and when each will cross a threshold. Pure NumPy.

`fit_trends(x_h, y, params)` fits `y = level + slope * x` to every row of a (series, points)
grid at once (x in hours, 0 = now, so `level` is the value now). The fit is weighted least
squares, made robust by a few Huber reweightings (a spike or a short glitch barely moves it),
optionally weighting recent points more (`half_life_s`). Its uncertainty allows for
autocorrelated residuals: the coefficients' covariance is the Newey-West (HAC) sandwich with a
Bartlett kernel over `hac_lags` points (statsmodels' `OLS.fit(cov_type="HAC")`, here for
thousands of series at once, by FFT), never below the textbook one. Bucket means of a slowly
varying signal (a fan that wears in steps, a load cycle) are far from independent, and an
interval that ignored it would be falsely narrow.

`crossing(trend, threshold, rising=..., params)` says when each trend reaches its threshold:
the central estimate `(threshold - level) / slope` and a Fieller-type interval: the times at
which the prediction band of the fitted points (the line's uncertainty plus the scatter of the
points around it: a failure happens when the value itself crosses, not the mean line) meets the
threshold. It is asymmetric as it should be (a slope known to +-20 % gives a time known to
-17 %/+25 %). A series whose slope is not
significant (|t| < `min_t`), points away from the threshold, or would cross beyond `horizon_s`
gets `inf`: "no crossing predicted", never a noisy number.

`exponential` fits log(y) instead (y > 0), for a decay or growth in proportion.

>>> x = np.arange(-10.0, 0.25, 0.25)                     # the last 10 h, every 15 min
>>> y = np.vstack([1.0 - 0.04 * (x + 10.0), np.full_like(x, 0.9)])  # a wearing fan, a flat one
>>> eta = crossing(fit_trends(x, y), 0.4, rising=False)
>>> (eta.eta_s / 3600).round(2).tolist()                 # hours until 0.4
[5.0, inf]
>>> bool(eta.low_s[0] <= eta.eta_s[0] <= eta.high_s[0])
True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]
C128 = npt.NDArray[np.complex128]
S_PER_H = 3600.0
Model = Literal["linear", "exponential"]


@dataclass(frozen=True, slots=True)
class TrendParams:
    """How trends are fitted and when a crossing counts as predicted.

    The defaults suit slow degradations seen through 1-minute means over a few hours (a fan
    wearing by a few % an hour, a disk filling over days).
    """

    bucket_s: float = 60.0
    """Samples are averaged into buckets of this length before fitting (streaming form)."""
    window_s: float = 6 * S_PER_H
    """How much history the fit looks at."""
    model: Model = "linear"
    huber_c: float = 2.0
    """Huber tuning constant, in robust standard deviations of the residuals."""
    n_iterations: int = 3
    """Huber reweightings after the first least-squares fit."""
    half_life_s: float | None = None
    """When set, a point this old weighs half as much as the newest one."""
    min_points: int = 30
    """Fewer valid points (buckets) than this: no trend."""
    hac_lags: int = 60
    """Lags (points) of the autocorrelation-robust covariance: 1 h of 1-minute buckets."""
    z: float = 2.576
    """Width of the intervals, in standard errors: about 99 % for Gaussian deviations. Wider
    than the usual 95 % on purpose: the low end is the earliest plausible failure, what a
    replacement is planned by, and real wear is not a line plus Gaussian noise (the twin's fan
    loses 2 % at a time, so it stops half a step before the line through its steps says; at
    1.96 the truth fell just outside the interval 6 h ahead, docs/PREDICTION.md)."""
    min_t: float = 4.0
    """A slope whose t statistic (after the autocorrelation correction) is below this is no
    trend; keep it above `z`, or the interval's far end is unbounded."""
    horizon_s: float = 7 * 86_400.0
    """A crossing further away than this is reported as none."""

    def __post_init__(self) -> None:
        if not self.bucket_s > 0 or not self.window_s >= 2 * self.bucket_s:
            raise ValueError("bucket_s must be > 0 and window_s at least two buckets")
        if self.n_iterations < 0 or self.min_points < 3 or self.hac_lags < 0:
            raise ValueError("n_iterations and hac_lags must be >= 0, min_points >= 3")
        if not self.huber_c > 0 or not self.z > 0 or not self.min_t > 0:
            raise ValueError("huber_c, z and min_t must be > 0")
        if self.half_life_s is not None and not self.half_life_s > 0:
            raise ValueError("half_life_s must be > 0 when set")

    @property
    def n_buckets(self) -> int:
        """Closed buckets in a window."""
        return max(2, round(self.window_s / self.bucket_s))


DEFAULT_TREND = TrendParams()


@dataclass(frozen=True, slots=True)
class Trend:
    """One fitted line per series, in model units (log units for `exponential`).

    `level` is the fitted value at x = 0 (now); `slope_per_h` its change per hour. The
    variances are already inflated for autocorrelation; NaN where there was too little data.
    """

    model: Model
    level: F64
    slope_per_h: F64
    var_level: F64
    var_slope: F64
    cov: F64
    var_resid: F64
    """Variance of the points around the line."""
    n_points: I64

    @property
    def t_stat(self) -> F64:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.asarray(self.slope_per_h / np.sqrt(self.var_slope))

    @property
    def value_now(self) -> F64:
        """The fitted value now, in the series' own units."""
        return np.exp(self.level) if self.model == "exponential" else self.level


@dataclass(frozen=True, slots=True)
class Eta:
    """Seconds from now until each series crosses its threshold; `inf`: none predicted, 0: it
    already has. `low_s`/`high_s` bound it (`high_s` may be `inf` while `eta_s` is finite)."""

    eta_s: F64
    low_s: F64
    high_s: F64

    @property
    def is_predicted(self) -> Bools:
        return np.isfinite(self.eta_s)


def _masked_median(values: F64, valid: Bools) -> F64:
    """Median of each row over its valid cells, NaN for a row with none (no warning)."""
    n = valid.sum(axis=1)
    ordered = np.sort(np.where(valid, values, np.inf), axis=1)
    if ordered.shape[1] == 0:
        return np.full(len(n), np.nan)
    lo = np.take_along_axis(ordered, np.maximum((n - 1) // 2, 0)[:, None], axis=1)[:, 0]
    hi = np.take_along_axis(ordered, np.minimum(n // 2, ordered.shape[1] - 1)[:, None], axis=1)
    return np.where(n > 0, (lo + hi[:, 0]) / 2.0, np.nan)


def _bartlett_sum(fa: C128, fb: C128, n: int, lags: int) -> F64:
    """Per row: sum over |k| <= lags of (1 - |k| / (lags + 1)) * sum_i a_i b_(i+k), from the
    FFTs `fa`, `fb` (zero-padded to more than n + lags) of a and b."""
    size = 2 * (fa.shape[1] - 1)
    product = np.fft.irfft(np.conj(fa) * fb, size)
    k = np.arange(1, min(lags, n - 1) + 1)
    kernel = 1.0 - k / (lags + 1.0)
    ahead = product[:, k]  # sum_i a_i b_(i+k)
    behind = product[:, size - k]  # sum_i a_i b_(i-k)
    return np.asarray(product[:, 0] + ((ahead + behind) * kernel).sum(axis=1))


def _hac(
    x: F64, residual: F64, weight: F64, inverse: tuple[F64, F64, F64], lags: int
) -> tuple[F64, F64, F64]:
    """Newey-West covariance (level, slope, covariance) of the weighted fit: M^-1 S M^-1 with
    S the Bartlett-weighted autocovariance of the scores w r (1, x)."""
    n = x.shape[1]
    size = 1 << max(1, int(n + min(lags, n)).bit_length())  # lags up to `lags` do not wrap
    u0 = weight * residual
    f0 = np.fft.rfft(u0, size)
    f1 = np.fft.rfft(u0 * x, size)
    s00 = _bartlett_sum(f0, f0, n, lags)
    s11 = _bartlett_sum(f1, f1, n, lags)
    s01 = _bartlett_sum(f0, f1, n, lags)
    i0, i1, i2 = inverse
    v_level = i0 * i0 * s00 + 2.0 * i0 * i2 * s01 + i2 * i2 * s11
    v_slope = i2 * i2 * s00 + 2.0 * i2 * i1 * s01 + i1 * i1 * s11
    cov = i0 * i2 * s00 + (i0 * i1 + i2 * i2) * s01 + i2 * i1 * s11
    return v_level, v_slope, cov


def fit_trends(x_h: F64, y: F64, params: TrendParams = DEFAULT_TREND) -> Trend:
    """Fit every row of `y` (series, points) against `x_h` (points,) or (series, points), in
    hours with 0 = now; NaN cells are no data. Costs a few passes over the grid per Huber
    iteration (about 1 ms for 4,000 series of 360 points per iteration).
    """
    y = np.atleast_2d(np.asarray(y, dtype=np.float64))
    x = np.broadcast_to(np.asarray(x_h, dtype=np.float64), y.shape)
    if params.model == "exponential":
        with np.errstate(divide="ignore", invalid="ignore"):
            y = np.where(y > 0, np.log(y), np.nan)
    valid = np.isfinite(y) & np.isfinite(x)
    yv = np.where(valid, y, 0.0)
    xv = np.where(valid, x, 0.0)
    base = valid.astype(np.float64)
    if params.half_life_s is not None:
        base *= np.exp2(np.minimum(xv, 0.0) * S_PER_H / params.half_life_s)
    weight = base
    floor = 1e-9 * (1.0 + np.abs(yv).max(axis=1, initial=0.0))  # a perfect line has scale 0
    for iteration in range(params.n_iterations + 1):
        level, slope, inverse, sw = _wls(xv, yv, weight)
        residual = yv - level[:, None] - slope[:, None] * xv
        if iteration == params.n_iterations:
            break
        scale = 1.4826 * _masked_median(np.abs(residual), valid)
        scale = np.where(np.isfinite(scale), np.maximum(scale, floor), 1.0)
        u = np.abs(residual) / (params.huber_c * scale[:, None])
        weight = base * np.where(u <= 1.0, 1.0, 1.0 / np.maximum(u, 1.0))
    n_points = valid.sum(axis=1)
    # Kish's effective sample size of the weights, and the weights rescaled to it, so that equal
    # weights give the textbook OLS variances
    sw2 = (weight * weight).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        n_w = np.where(sw2 > 0, sw * sw / sw2, 0.0)
        norm = np.where(sw > 0, n_w / sw, 0.0)
        sigma2 = (weight * residual * residual).sum(axis=1) * norm / (n_w - 2.0)
        iid = sigma2 / norm
        hac = _hac(xv, residual, weight, inverse, params.hac_lags)
        small = n_w / (n_w - 2.0)  # the usual small-sample factor
        # the robust matrix where it says the slope is less certain than the textbook one
        robust = small * hac[1] >= iid * inverse[1]
        var_level, var_slope, cov = (
            np.where(robust, small * h, iid * i) for h, i in zip(hac, inverse, strict=True)
        )
    enough = (n_points >= params.min_points) & (n_w > 2.0) & np.isfinite(inverse[0])
    nan = np.full(len(y), np.nan)
    return Trend(
        model=params.model,
        level=np.where(enough, level, nan),
        slope_per_h=np.where(enough, slope, nan),
        var_level=np.where(enough, var_level, nan),
        var_slope=np.where(enough, var_slope, nan),
        cov=np.where(enough, cov, nan),
        var_resid=np.where(enough, sigma2, nan),
        n_points=n_points.astype(np.int64),
    )


def _wls(x: F64, y: F64, w: F64) -> tuple[F64, F64, tuple[F64, F64, F64], F64]:
    """Weighted least squares per row: level, slope, the entries (level, slope, covariance) of
    (X'WX)^-1 (NaN where singular) and the sum of weights."""
    sw = w.sum(axis=1)
    sx = (w * x).sum(axis=1)
    sy = (w * y).sum(axis=1)
    sxx = (w * x * x).sum(axis=1)
    sxy = (w * x * y).sum(axis=1)
    det = sw * sxx - sx * sx
    ok = det > 1e-12 * np.maximum(sw * sxx, 1e-300)
    with np.errstate(divide="ignore", invalid="ignore"):
        d = np.where(ok, det, np.nan)
        slope = (sw * sxy - sx * sy) / d
        level = (sy - slope * sx) / np.where(sw > 0, sw, np.nan)
        inverse = (sxx / d, sw / d, -sx / d)
    return level, slope, inverse, sw


def crossing(
    trend: Trend,
    threshold: float | F64,
    *,
    rising: bool | Bools,
    params: TrendParams = DEFAULT_TREND,
) -> Eta:
    """When each trend reaches `threshold` going up (`rising`) or down; see the module text."""
    thr = np.broadcast_to(np.asarray(threshold, dtype=np.float64), trend.level.shape)
    if trend.model == "exponential":
        with np.errstate(divide="ignore", invalid="ignore"):
            thr = np.where(thr > 0, np.log(thr), np.nan)
    sign = np.where(np.broadcast_to(rising, trend.level.shape), 1.0, -1.0)
    # in the rising frame: a crossing is level + slope * x reaching thr from below
    a, b, t = sign * trend.level, sign * trend.slope_per_h, sign * thr
    gap = t - a
    crossed = np.isfinite(a) & (gap <= 0.0)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        se_b = np.sqrt(trend.var_slope)
        heading = (b > 0.0) & (b / se_b >= params.min_t) & (gap > 0.0)
        eta_h = gap / b
        # the band level + slope x +- z sd(x), sd(x)^2 = va + 2 cov x + vb x^2 + v_resid, meets
        # the threshold at the roots of
        # (b^2 - z^2 vb) x^2 - 2 (b gap + z^2 cov) x + (gap^2 - z^2 (va + v_resid)) = 0
        z2 = params.z * params.z
        qa = b * b - z2 * trend.var_slope
        qb = -2.0 * (b * gap + z2 * trend.cov)
        qc = gap * gap - z2 * (trend.var_level + trend.var_resid)
        disc = qb * qb - 4.0 * qa * qc
        root = np.sqrt(np.maximum(disc, 0.0))
        bounded = (qa > 0.0) & (disc >= 0.0)
        low_h = np.where(bounded, (-qb - root) / (2.0 * qa), 0.0)
        high_h = np.where(bounded, (-qb + root) / (2.0 * qa), np.inf)
    horizon_h = params.horizon_s / S_PER_H
    predicted = heading & np.isfinite(eta_h) & (eta_h <= horizon_h)
    eta = np.where(crossed, 0.0, np.where(predicted, eta_h, np.inf))
    low = np.where(crossed, 0.0, np.where(predicted, np.clip(low_h, 0.0, eta_h), np.inf))
    high = np.where(crossed, 0.0, np.where(predicted, np.maximum(high_h, eta_h), np.inf))
    return Eta(eta * S_PER_H, low * S_PER_H, high * S_PER_H)
