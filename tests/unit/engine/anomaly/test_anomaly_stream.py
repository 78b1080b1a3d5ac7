"""Per-series detectors on synthetic signals: each fault found by its detector within its
latency, plain noise of any scale and shape left alone, and scores that depend neither on the
batches nor on what comes later."""

from __future__ import annotations

import numpy as np
import pytest

from rackwatch.engine.anomaly import AnomalyDetector, Detector, DetectorConfig, Scores
from rackwatch.model import Batch, SeriesRegistry
from rackwatch.sources.twin import TwinSource
from rackwatch.twin import Twin

STEP_MS = 5_000
FAULT_AT = 1_500
N = 2_500


def score(x: np.ndarray, ts: np.ndarray | None = None) -> Scores:
    ts = np.arange(len(x), dtype=np.int64) * STEP_MS if ts is None else ts
    return AnomalyDetector().score_arrays(ts, np.zeros(len(x), np.int32), x)


def first_start(scores: Scores) -> tuple[int, Detector] | None:
    """(row, detector) of the first anomaly start."""
    for change in scores.changes:
        if change.is_start:
            return int(np.searchsorted(scores.ts, change.ts)), change.detector
    return None


def _spike(x: np.ndarray) -> None:
    x[FAULT_AT] += 12.0


def _jump(x: np.ndarray) -> None:
    x[FAULT_AT:] += 8.0


def _step(x: np.ndarray) -> None:
    x[FAULT_AT:] += 3.0


def _drift(x: np.ndarray) -> None:
    x[FAULT_AT:] += 0.05 * np.arange(N - FAULT_AT)


def _stuck(x: np.ndarray) -> None:
    x[FAULT_AT:] = x[FAULT_AT]


def _null(x: np.ndarray) -> None:
    x[FAULT_AT : FAULT_AT + 20] = np.nan


FAULTS = {
    # name: (inject, the detector expected to start the anomaly, most samples late)
    "spike": (_spike, Detector.DEVIATION, 0),
    "jump": (_jump, Detector.DEVIATION, 0),
    "step 3 sigma": (_step, Detector.LEVEL_SHIFT, 30),
    "drift 0.05 sigma per sample": (_drift, Detector.LEVEL_SHIFT, 100),
    "stuck": (_stuck, Detector.STUCK, 6),
    "null run": (_null, Detector.NULL_RUN, 2),
}


@pytest.mark.parametrize("scale", [1e-6, 1.0, 1e9])
@pytest.mark.parametrize("name", list(FAULTS))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_each_fault_is_found_by_its_detector_in_time(name: str, scale: float, seed: int) -> None:
    inject, detector, latency = FAULTS[name]
    x = np.random.default_rng(seed).normal(0.0, 1.0, N)
    inject(x)
    found = first_start(score(40.0 * scale + x * scale))
    assert found is not None, f"{name} never detected"
    row, kind = found
    assert FAULT_AT <= row <= FAULT_AT + latency, f"{name}: started at row {row}"
    assert kind == detector


def _ar1(rng: np.random.Generator, n: int, rho: float) -> np.ndarray:
    out = np.zeros(n)
    noise = rng.normal(size=n)
    for i in range(1, n):
        out[i] = rho * out[i - 1] + noise[i]
    return out


def _irregular(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    ts = np.cumsum(rng.exponential(STEP_MS, n)).astype(np.int64)
    ts[n // 2 :] += 3_600_000  # and an hour-long gap
    x = rng.normal(size=n)
    x[rng.random(n) < 0.02] = np.nan  # sparse NULL readings
    return x, ts


NOISE = {
    "gaussian": lambda rng, n: (rng.normal(size=n), None),
    "uniform": lambda rng, n: (rng.random(n), None),
    "autocorrelated 0.9": lambda rng, n: (_ar1(rng, n, 0.9), None),
    "autocorrelated 0.99": lambda rng, n: (_ar1(rng, n, 0.99), None),
    "quantised to 0.1": lambda rng, n: (np.round(20.0 + 0.07 * rng.normal(size=n), 1), None),
    "poisson counts": lambda rng, n: (rng.poisson(3.0, n).astype(float), None),
    "irregular with a gap and nulls": _irregular,
}


@pytest.mark.parametrize("scale", [1e-3, 1e6])
@pytest.mark.parametrize("name", list(NOISE))
def test_plain_noise_raises_almost_nothing(name: str, scale: float) -> None:
    n = 20_000
    x, ts = NOISE[name](np.random.default_rng(7), n)
    scores = score(x * scale, ts)
    starts = sum(c.is_start for c in scores.changes)
    assert starts <= 1, f"{name}: {starts} false alarms in {n} samples"
    assert scores.is_anomaly.mean() <= 1e-3


def test_scores_ignore_the_unit_of_values_and_of_time() -> None:
    x = np.random.default_rng(3).normal(size=1_000)
    x[600] += 9.0
    ts = np.arange(1_000, dtype=np.int64) * 5
    base = score(x, ts)
    for rescaled in (score(1e9 + 1e6 * x, ts), score(x, ts * 1_000), score(-x * 1e-4, ts)):
        np.testing.assert_allclose(rescaled.score, base.score, atol=1e-9)
    assert base.score[600] > 0.9


def test_nothing_is_scored_during_warm_up_but_null_runs() -> None:
    x = np.random.default_rng(0).normal(size=100)
    x[10] += 100.0
    x[20:25] = np.nan
    scores = score(x)
    warmup = DetectorConfig().warmup
    assert np.all(scores.components[Detector.DEVIATION][: warmup + 5] == 0.0)
    assert scores.score[10] == 0.0 and np.isnan(scores.z[10])
    assert scores.detector[22] == Detector.NULL_RUN and scores.is_anomaly[22]


def test_a_sensor_that_never_answers_is_a_null_run() -> None:
    scores = score(np.full(10, np.nan))
    assert scores.is_anomaly.tolist() == [False, False] + [True] * 8


def test_a_constant_state_is_not_stuck_and_its_change_is_an_anomaly() -> None:
    x = np.ones(3_000)
    x[2_000:] = 0.0  # disk_ok going 1 -> 0
    found = first_start(score(x))
    assert found == (2_000, Detector.DEVIATION)


def _rooms(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seven series of mixed scales, irregular clocks, NULLs, a spike and a stuck run."""
    rng = np.random.default_rng(seed)
    parts = []
    for sid in range(7):
        n = 1_500
        ts = np.cumsum(rng.integers(1, 20, n)) * 1_000
        x = rng.normal(0.0, 10.0**sid, n) + sid
        x[rng.random(n) < 0.02] = np.nan
        x[300:310] = np.nan
        x[700] += 50 * 10.0**sid
        x[1_000:1_100] = x[1_000]
        parts.append((ts, np.full(n, sid), x))
    ts, series, value = (np.concatenate(p) for p in zip(*parts, strict=True))
    order = np.argsort(ts, kind="stable")
    return ts[order], series[order], value[order]


def _changes(scores: list[Scores]) -> list[tuple[int, int, bool, int, int]]:
    return [
        (c.ts, c.series, c.is_start, int(c.detector), c.start_ts) for s in scores for c in s.changes
    ]


@pytest.mark.parametrize("seed", [0, 1])
def test_scores_do_not_depend_on_how_the_stream_is_cut_into_batches(seed: int) -> None:
    ts, series, value = _rooms(seed)
    whole = AnomalyDetector().score(Batch.of(ts, series, value))
    detector = AnomalyDetector()
    cuts = np.sort(np.random.default_rng(seed).choice(len(ts), 300, replace=False))
    parts = [
        detector.score(Batch.of(ts[a:b], series[a:b], value[a:b]))
        for a, b in zip(np.r_[0, cuts], np.r_[cuts, len(ts)], strict=True)
    ]
    np.testing.assert_allclose(np.concatenate([p.score for p in parts]), whole.score, atol=1e-9)
    assert np.array_equal(np.concatenate([p.is_anomaly for p in parts]), whole.is_anomaly)
    assert _changes(parts) == _changes([whole]) and len(whole.changes) >= 14
    peaks = [c.peak_score for p in parts for c in p.changes]
    np.testing.assert_allclose(peaks, [c.peak_score for c in whole.changes], atol=1e-9)


def test_no_look_ahead_the_first_rows_score_the_same_without_the_rest() -> None:
    ts, series, value = _rooms(2)
    full = AnomalyDetector().score_arrays(ts, series, value)
    for k in (1, 77, 3_000, 8_191):
        head = AnomalyDetector().score_arrays(ts[:k], series[:k], value[:k])
        assert np.array_equal(head.score, full.score[:k])
        assert np.array_equal(head.is_anomaly, full.is_anomaly[:k])


def test_rows_come_back_in_the_batch_order_whatever_it_is() -> None:
    ts, series, value = _rooms(3)
    in_order = AnomalyDetector().score_arrays(ts, series, value)
    shuffle = np.random.default_rng(0).permutation(len(ts))
    shuffled = AnomalyDetector().score_arrays(ts[shuffle], series[shuffle], value[shuffle])
    np.testing.assert_allclose(shuffled.score, in_order.score[shuffle], atol=1e-12)
    assert np.array_equal(shuffled.series, series[shuffle])


def test_state_grows_with_new_series_ids_and_a_late_row_is_taken() -> None:
    detector = AnomalyDetector()
    detector.score_arrays([0, 0], [0, 1], [1.0, 2.0])
    assert detector.n_series == 2
    detector.score_arrays([5, 5], [1, 5_000], [1.0, 2.0])
    assert detector.n_series == 5_001
    late = detector.score_arrays([1], [1], [3.0])  # older than the series' last row
    assert late.score.tolist() == [0.0]
    with pytest.raises(ValueError, match=">= 0"):
        detector.score_arrays([1], [-1], [0.0])
    assert len(detector.score(Batch.empty())) == 0


def test_config_is_checked() -> None:
    with pytest.raises(ValueError, match="max_gap"):
        DetectorConfig(max_gap=1_000.0)
    with pytest.raises(ValueError, match="off <= on"):
        DetectorConfig(on=0.3)


def test_a_stopped_fan_is_flagged_on_the_twin_when_it_stops() -> None:
    registry = SeriesRegistry()
    source = TwinSource(Twin.from_scenario("fan-fail", seed=4), registry)
    detector = AnomalyDetector()
    batch, events = source.read(420)  # the fan stops at 30 min (step 360)
    scores = detector.score(batch)
    fault_ts = next(e.ts for e in events if e.kind == "fault.injected")
    rpm = registry.get("c01/r01/s03/fan1", "fan_rpm")
    starts = [c for c in scores.changes if c.is_start and c.series == rpm]
    assert [c.ts - fault_ts for c in starts] == [0]
