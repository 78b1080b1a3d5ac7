"""Trends and time to threshold on synthetic series: linear, noisy, with outliers and gaps."""

from __future__ import annotations

import numpy as np
import pytest

from rackwatch.engine.predict import (
    TrendParams,
    TrendTracker,
    crossing,
    fit_trends,
    forecast_from_history,
)

HOUR_MS = 3_600_000
STEP_MS = 5_000


def _hours(hours: float) -> np.ndarray:
    return np.arange(0, round(hours * HOUR_MS), STEP_MS, dtype=np.int64)


def test_a_line_is_fitted_exactly_and_its_crossing_is_exact() -> None:
    x = np.linspace(-6.0, 0.0, 73)
    y = np.vstack([20.0 + 0.5 * x, 20.0 - 0.5 * x])
    trend = fit_trends(x, y)
    assert trend.level == pytest.approx([20.0, 20.0])
    assert trend.slope_per_h == pytest.approx([0.5, -0.5])
    eta = crossing(trend, np.array([25.0, 17.0]), rising=np.array([True, False]))
    assert eta.eta_s == pytest.approx([10 * 3600.0, 6 * 3600.0])
    assert eta.low_s == pytest.approx(eta.eta_s) and eta.high_s == pytest.approx(eta.eta_s)


def test_flat_noisy_receding_and_far_series_predict_nothing() -> None:
    rng = np.random.default_rng(3)
    x = np.linspace(-6.0, 0.0, 361)
    noise = rng.normal(0.0, 0.5, (4, len(x)))
    y = np.vstack(
        [
            np.full_like(x, 50.0),  # flat
            50.0 + noise[1],  # noise only
            50.0 - 1.0 * x,  # falling, away from a rising threshold
            50.0 + 0.01 * x + 0.001 * noise[3],  # rising, but 300 days away
        ]
    )
    eta = crossing(fit_trends(x, y), 80.0, rising=True)
    assert np.isinf(eta.eta_s).all() and np.isinf(eta.low_s).all()
    assert not eta.is_predicted.any()


def test_a_series_already_past_its_threshold_has_crossed() -> None:
    x = np.linspace(-2.0, 0.0, 121)
    eta = crossing(fit_trends(x, (0.3 - 0.01 * x)[None, :]), 0.4, rising=False)
    assert eta.eta_s.tolist() == [0.0] and eta.high_s.tolist() == [0.0]


def test_outliers_barely_move_the_robust_fit() -> None:
    x = np.linspace(-6.0, 0.0, 361)
    y = 0.9 - 0.04 * (x + 6.0)
    spiky = y.copy()
    spiky[::40] = 0.0  # a dead reading every 40 minutes
    trends = fit_trends(x, np.vstack([y, spiky]))
    assert trends.slope_per_h[1] == pytest.approx(trends.slope_per_h[0], rel=0.02)
    plain = fit_trends(x, spiky[None, :], TrendParams(n_iterations=0))
    assert abs(plain.slope_per_h[0] + 0.04) > abs(trends.slope_per_h[1] + 0.04)


def test_gaps_are_no_data_not_zeros() -> None:
    x = np.linspace(-6.0, 0.0, 361)
    y = 10.0 + 2.0 * x
    y[100:200] = np.nan
    trend = fit_trends(x, y[None, :])
    assert trend.slope_per_h[0] == pytest.approx(2.0) and trend.n_points[0] == 261
    assert np.isnan(fit_trends(x, np.full((1, len(x)), np.nan)).slope_per_h[0])


def test_too_few_points_is_no_trend() -> None:
    x = np.linspace(-1.0, 0.0, 10)
    trend = fit_trends(x, (1.0 - x)[None, :])
    assert np.isnan(trend.slope_per_h[0])
    assert not crossing(trend, 5.0, rising=True).is_predicted.any()


def test_exponential_model_follows_a_decay_in_proportion() -> None:
    x = np.linspace(-6.0, 0.0, 361)
    y = 0.8 * np.exp(-0.1 * x)  # -10 %/h in proportion, 0.8 now
    eta = crossing(fit_trends(x, y[None, :], TrendParams(model="exponential")), 0.4, rising=False)
    assert eta.eta_s[0] / 3600 == pytest.approx(np.log(2) / 0.1)
    linear = crossing(fit_trends(x, y[None, :]), 0.4, rising=False)
    assert linear.eta_s[0] < eta.eta_s[0]  # a line through a convex decay is pessimistic


def test_disk_fill_interval_covers_the_truth_in_most_series() -> None:
    """Disks filling at random rates with noise: the interval (99 % by default) holds the true
    crossing time of most of them, and the central estimate is close."""
    rng = np.random.default_rng(7)
    ts = _hours(6)
    t_h = ts / HOUR_MS
    n = 200
    rate = rng.uniform(0.01, 0.05, n)  # per hour
    start = rng.uniform(0.4, 0.6, n)
    used = start + rate * t_h[:, None] + rng.normal(0.0, 0.01, (len(ts), n))
    forecast = forecast_from_history(ts, used, 0.95, rising=True)
    assert forecast.as_of_ms is not None
    now_h = forecast.as_of_ms / HOUR_MS
    truth_s = (0.95 - (start + rate * now_h)) / rate * 3600
    eta = forecast.eta
    predicted = eta.is_predicted
    assert predicted.mean() >= 0.9  # a few of the slowest fills are beyond the 7-day horizon
    covered = (eta.low_s <= truth_s) & (truth_s <= eta.high_s)
    assert covered[predicted].mean() >= 0.85
    error = np.abs(eta.eta_s - truth_s)[predicted] / truth_s[predicted]
    assert np.median(error) < 0.1


def test_a_temperature_creeping_toward_its_critical_threshold() -> None:
    """A CPU warming 1.5 °C/h under a load cycle: the trend and its interval hold the time it
    reaches 85 °C (the cycle biases the slope a little; the interval allows for it)."""
    ts = _hours(6)
    t_h = ts / HOUR_MS
    cycle = 2.0 * np.sin(2 * np.pi * t_h / 1.5)  # load swings every 90 min
    temperature = 60.0 + 1.5 * t_h + cycle
    forecast = forecast_from_history(ts, temperature[:, None], 85.0, rising=True)
    assert forecast.as_of_ms is not None
    truth_h = (85.0 - 60.0) / 1.5 - forecast.as_of_ms / HOUR_MS
    eta_h = forecast.eta.eta_s[0] / 3600
    assert eta_h == pytest.approx(truth_h, rel=0.2)
    assert forecast.eta.low_s[0] / 3600 <= truth_h <= forecast.eta.high_s[0] / 3600
    assert forecast.eta.high_s[0] < 2 * truth_h * 3600  # still bounded, still informative


def test_the_stream_says_what_the_history_says_however_it_is_cut() -> None:
    rng = np.random.default_rng(1)
    ts = _hours(5)
    values = np.column_stack(
        [0.5 + 0.05 * ts / HOUR_MS + rng.normal(0, 0.01, len(ts)), np.full(len(ts), 3.0)]
    )
    values[rng.random(values.shape) < 0.05] = np.nan  # lost samples
    whole = forecast_from_history(ts, values, 0.95, rising=True)
    tracker = TrendTracker(2, 0.95, rising=True)
    cuts = np.sort(rng.choice(np.arange(1, len(ts)), 300, replace=False))
    for rows_ts, rows in zip(np.split(ts, cuts), np.split(values, cuts), strict=True):
        streamed = tracker.update(rows_ts, rows)
    assert streamed.as_of_ms == whole.as_of_ms
    np.testing.assert_allclose(streamed.eta.eta_s, whole.eta.eta_s, rtol=1e-9)
    np.testing.assert_allclose(streamed.trend.level, whole.trend.level, rtol=1e-9)


def test_the_tracker_refits_only_when_a_bucket_closes_and_forgets_old_buckets() -> None:
    params = TrendParams(window_s=3600.0, min_points=10)
    tracker = TrendTracker(1, 10.0, rising=True, params=params)
    first = tracker.update(np.array([0, 5_000]), np.array([[1.0], [1.0]]))
    assert first.as_of_ms is None  # nothing closed yet
    again = tracker.update(np.array([10_000]), np.array([[1.0]]))
    assert again is first
    ts = np.arange(60_000, 3 * HOUR_MS, STEP_MS)
    late = tracker.update(ts, 1.0 + 3.0 * ts[:, None] / HOUR_MS)
    assert late.as_of_ms == (3 * HOUR_MS // 60_000 - 1) * 60_000
    assert late.trend.n_points[0] == 60  # one hour of 1-minute buckets, the rest forgotten
    assert late.trend.slope_per_h[0] == pytest.approx(3.0)
    stale = tracker.update(np.array([0]), np.array([[100.0]]))  # older than the window
    assert stale is late


def test_a_last_bucket_past_the_threshold_is_crossed_whatever_the_fit() -> None:
    ts = _hours(3)
    ratio = np.where(ts < ts[-1] - 120_000, 0.9, 0.0)  # stopped for the last two minutes
    forecast = forecast_from_history(ts, ratio[:, None], 0.4, rising=False)
    assert forecast.eta.eta_s.tolist() == [0.0]


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="window_s"):
        TrendParams(bucket_s=60.0, window_s=60.0)
    with pytest.raises(ValueError, match="half_life_s"):
        TrendParams(half_life_s=0.0)
    with pytest.raises(ValueError, match="n_series"):
        TrendTracker(-1, 1.0, rising=True)


def test_recent_points_weigh_more_with_a_half_life() -> None:
    x = np.linspace(-6.0, 0.0, 361)
    y = np.where(x < -2.0, 1.0, 1.0 - 0.05 * (x + 2.0))  # flat, then falling for 2 h
    even = fit_trends(x, y[None, :])
    recent = fit_trends(x, y[None, :], TrendParams(half_life_s=1800.0))
    assert abs(recent.slope_per_h[0] + 0.05) < abs(even.slope_per_h[0] + 0.05)


def test_the_autocorrelation_robust_covariance_is_newey_west() -> None:
    """The FFT form gives what the textbook sandwich gives, lag by lag (statsmodels' HAC)."""
    rng = np.random.default_rng(0)
    n, lags = 200, 20
    x = np.linspace(-3.0, 0.0, n)
    y = 1.0 + 0.3 * x + np.cumsum(rng.normal(0.0, 0.05, n))  # a random walk around a line
    design = np.column_stack([np.ones(n), x])
    beta, *_ = np.linalg.lstsq(design, y, rcond=None)
    scores = design * (y - design @ beta)[:, None]
    s = scores.T @ scores
    for k in range(1, lags + 1):
        g = scores[k:].T @ scores[:-k]
        s += (1.0 - k / (lags + 1.0)) * (g + g.T)
    bread = np.linalg.inv(design.T @ design)
    expected = bread @ s @ bread * n / (n - 2.0)
    trend = fit_trends(x, y[None, :], TrendParams(n_iterations=0, hac_lags=lags))
    assert trend.level[0] == pytest.approx(beta[0]) and trend.slope_per_h[0] == pytest.approx(
        beta[1]
    )
    assert trend.var_level[0] == pytest.approx(expected[0, 0])
    assert trend.var_slope[0] == pytest.approx(expected[1, 1])
    assert trend.cov[0] == pytest.approx(expected[0, 1])
