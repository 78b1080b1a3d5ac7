"""Fan wear prediction on twin runs (the wear scenario, healthy rooms, level changes) and on
synthetic fans (references, stopped fans, fans without a level, stream vs history)."""

from __future__ import annotations

import numpy as np
import pytest

from rackwatch.engine.predict import FanWearParams, FanWearTracker, TrendParams, predict_fan_wear
from rackwatch.engine.predict.evaluate import (
    LEADS_S,
    WEAR_SCENARIO,
    WearSetup,
    evaluate_fan_wear,
    evaluate_healthy,
    random_wear,
    wear_labels,
)
from rackwatch.model.records import Command
from rackwatch.twin import Twin

HOUR_MS = 3_600_000
STEP_MS = 5_000


def test_the_twins_label_is_when_the_worn_fan_stops() -> None:
    twin = Twin.from_scenario(WEAR_SCENARIO, seed=4)
    fan, wear_start_ms, failure_ms = wear_labels(twin)
    assert fan == "c01/r02/s05/fan2" and failure_ms - wear_start_ms == 15 * HOUR_MS
    frame = twin.run((failure_ms - twin.start_ms) // STEP_MS + 10)
    rpm = frame.values[:, twin.column(fan, "fan_rpm")]
    assert (rpm[frame.ts < failure_ms] > 0).all() and (rpm[frame.ts >= failure_ms] == 0).all()


def test_the_worn_fan_is_predicted_hours_ahead_on_every_seed() -> None:
    """burst-fan-degradation, four seeds: the failure is predicted from ~1.5 h into the wear
    (> 13 h ahead), within 30 min of the truth 1 h ahead, its interval holds the truth, and no
    other fan of the room is ever predicted to fail."""
    result = evaluate_fan_wear(range(100, 104), update_s=300.0)
    assert result.share_ahead(3600.0) == 1.0
    assert min(r.lead_s for r in result.runs) > 13 * 3600
    for i, lead_s in enumerate(LEADS_S):
        errors = result.errors_at(i)
        assert len(errors) == 4
        assert max(abs(e) for e in errors) < 0.4 * 3600, lead_s  # predicted a little late
        coverage = result.coverage_at(i)
        assert coverage is not None and coverage >= 0.8, lead_s
    assert sum(r.n_false_fans for r in result.runs) == 0
    summary = result.summary()
    assert summary["n_runs"] == 4 and summary["share_ahead_1h"] == 1.0


def test_healthy_fans_get_no_prediction() -> None:
    """The fault-free very-large room (40 fans) for 16 h: no fan is ever predicted to fail."""
    assert evaluate_healthy((100, 101), hours=16.0, update_s=300.0) == [0, 0]


def test_the_prediction_survives_level_changes() -> None:
    """A faster wear (-3 % every 15 min) on a small room whose fans all go to "high" for 1.5 h
    and back: the worn fan's speed at "high" is compared with what healthy fans make there."""
    servers = [f"c01/r01/s0{i}" for i in range(1, 6)]
    commands = tuple(
        (offset_s, Command(server, "fan.set_level", {"level": level}))
        for offset_s, level in ((2 * 3600.0, 3), (3.5 * 3600.0, 2))
        for server in servers
    )
    setup = WearSetup(
        preset="small",
        fan="c01/r01/s03/fan1",
        params={"step_ratio": 0.03, "interval_s": 900.0},
        commands=commands,
    )
    result = evaluate_fan_wear((100, 101, 102), update_s=300.0, wear=setup)
    assert result.share_ahead(3600.0) == 1.0
    assert all(r.lead_s > 4 * 3600 for r in result.runs)
    errors = result.errors_at(0)
    assert len(errors) == 3 and max(abs(e) for e in errors) < 0.25 * 3600
    assert result.coverage_at(0) == 1.0 and result.coverage_at(1) == 1.0
    assert sum(r.n_false_fans for r in result.runs) == 0


def _fans(hours: float, rpm_of: dict[int, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    ts = np.arange(0, round(hours * HOUR_MS), STEP_MS, dtype=np.int64)
    return ts, np.column_stack([rpm_of[j] for j in sorted(rpm_of)])


def test_references_are_learned_per_level_and_carried_across_fans() -> None:
    """Four fans of different sizes at medium for 2 h, then high: each fan's reference at high
    is its own at medium times the fans' median high/medium ratio, so fan 0, already worn when
    it goes high, is still measured against a healthy fan of its size."""
    ts = np.arange(0, 4 * HOUR_MS, STEP_MS, dtype=np.int64)
    high = ts >= 2 * HOUR_MS
    max_rpm = np.array([9000.0, 10000.0, 11000.0, 12000.0])
    speed = np.where(high, 1.0, 0.7)[:, None] * np.ones(4)
    wear = np.where(high, 0.9, 1.0)  # fan 0 has lost 10 % by the time it goes high
    speed[:, 0] *= wear
    rpm = speed * max_rpm
    level = np.where(high, 3.0, 2.0)[:, None] * np.ones(4)
    tracker = predict_fan_wear(ts, rpm, level)
    reference = tracker.result.reference_rpm
    np.testing.assert_allclose(reference[:, 2], 0.7 * max_rpm)
    np.testing.assert_allclose(reference[:, 3], max_rpm, rtol=1e-9)
    assert np.isnan(reference[:, 0]).all()  # off by command teaches nothing
    # fan 0's ratio fell from 1 to 0.9 (a line through that step is a little lower now)
    assert tracker.result.ratio_now[0] == pytest.approx(0.9, abs=0.03)
    assert tracker.result.ratio_now[1:] == pytest.approx([1.0, 1.0, 1.0])
    assert tracker.result.ratio_last == pytest.approx([0.9, 1.0, 1.0, 1.0])  # the last minute


def test_a_stopped_fan_has_failed_now() -> None:
    ts, rpm = _fans(3, {0: np.full(2160, 8000.0), 1: np.full(2160, 8000.0)})
    rpm[-30:, 0] = 0.0  # stopped for the last 2.5 minutes, commanded medium
    result = predict_fan_wear(ts, rpm, np.full(rpm.shape, 2.0)).result
    assert result.eta.eta_s.tolist() == [0.0, np.inf]
    assert result.forecast.eta_of(0) == (0.0, 0.0, 0.0)
    assert result.forecast.eta_of(1) == (None, None, None)


def test_a_fan_switched_off_by_command_is_not_wearing() -> None:
    ts, rpm = _fans(4, {0: np.full(2880, 8000.0)})
    level = np.full(rpm.shape, 2.0)
    off = (ts >= 2 * HOUR_MS) & (ts < 3 * HOUR_MS)
    rpm[off], level[off] = 0.0, 0.0
    result = predict_fan_wear(ts, rpm, level).result
    assert result.eta.eta_s.tolist() == [np.inf]


def test_a_fan_without_a_commanded_level_is_compared_with_its_own_start() -> None:
    """A host's fan (no fan_level series): wear shows against its own first 30 minutes."""
    ts = np.arange(0, 8 * HOUR_MS, STEP_MS, dtype=np.int64)
    worn = np.where(ts < HOUR_MS, 1.0, 1.0 - 0.05 * (ts - HOUR_MS) / HOUR_MS)
    rpm = np.column_stack([2400.0 * worn, np.full(len(ts), 2400.0)])
    result = predict_fan_wear(ts, rpm).result
    assert result.reference_rpm[:, 4] == pytest.approx([2400.0, 2400.0])
    eta_h = result.eta.eta_s / 3600
    assert eta_h[0] == pytest.approx((0.65 - 0.4) / 0.05, abs=0.2) and np.isinf(eta_h[1])


def test_the_stream_says_what_the_history_says() -> None:
    """The same samples in one block (from the store) or in 1-minute blocks (the stream)."""
    ts = np.arange(0, 6 * HOUR_MS, STEP_MS, dtype=np.int64)
    worn = np.where(ts < HOUR_MS, 1.0, 1.0 - 0.04 * (ts - HOUR_MS) / HOUR_MS)
    rng = np.random.default_rng(2)
    rpm = np.column_stack([9000.0 * worn, np.full(len(ts), 7000.0)])
    rpm *= 1.0 + rng.normal(0.0, 0.005, rpm.shape)
    level = np.full(rpm.shape, 2.0)
    history = predict_fan_wear(ts, rpm, level).result
    stream = FanWearTracker(2)
    for start in range(0, len(ts), 12):
        rows = slice(start, start + 12)
        streamed = stream.update(ts[rows], rpm[rows], level[rows])
    assert streamed.forecast.as_of_ms == history.forecast.as_of_ms
    np.testing.assert_allclose(streamed.eta.eta_s, history.eta.eta_s, rtol=1e-9)
    assert np.isfinite(history.eta.eta_s[0]) and np.isinf(history.eta.eta_s[1])


def test_a_fan_that_lost_less_than_the_minimum_drop_gets_no_prediction() -> None:
    """A significant but tiny decline (1 % over hours) is not called wear."""
    ts = np.arange(0, 6 * HOUR_MS, STEP_MS, dtype=np.int64)
    slow = 1.0 - 0.002 * ts / HOUR_MS
    result = predict_fan_wear(ts, (8000.0 * slow)[:, None], np.full((len(ts), 1), 2.0)).result
    assert result.forecast.trend.t_stat[0] < -4  # the trend is real
    assert np.isinf(result.eta.eta_s[0])  # but 1 % lost is not a failing fan
    strict = FanWearParams(min_drop_ratio=0.0, trend=TrendParams(horizon_s=400 * 86_400.0))
    again = predict_fan_wear(ts, (8000.0 * slow)[:, None], None, strict).result
    assert np.isfinite(again.eta.eta_s[0])


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="failure_ratio"):
        FanWearParams(failure_ratio=1.2)
    with pytest.raises(ValueError, match="min_drop_ratio"):
        FanWearParams(failure_ratio=0.5, min_drop_ratio=0.6)


def test_random_wear_rates_fans_and_onsets_are_predicted_too() -> None:
    """Three drawn wear runs (3.9 h, 6.1 h and 9.9 h from onset to stop, 2.9-3.1 % lost every
    12-38 min): each predicted over an hour ahead, within 20 min of the truth 1 h ahead."""
    result = evaluate_fan_wear((104, 108, 115), update_s=300.0, wear=random_wear)
    assert [round((r.failure_ms - r.wear_start_ms) / HOUR_MS, 1) for r in result.runs] == [
        9.9,
        6.1,
        3.9,
    ]
    assert result.share_ahead(3600.0) == 1.0
    errors = result.errors_at(0)
    assert len(errors) == 3 and max(abs(e) for e in errors) < 1200.0
    assert result.coverage_at(0) == 1.0
    assert sum(r.n_false_fans for r in result.runs) == 0
