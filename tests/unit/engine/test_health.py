"""Health scores, reasons, aggregation up the layout, criticity classes (seed 002), predicted
health, time to the next failure, and seed 002's application metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rackwatch.engine.health import (
    AlertInput,
    AppMetrics,
    Criticity,
    FailureForecast,
    Headroom,
    HealthInputs,
    HealthParams,
    ReasonKind,
    advanced,
    app_criticity,
    app_metrics_from_prometheus,
    criticity_of_health,
    criticity_of_percent,
    forecasts_from_eta,
    health_report,
    parent_of,
)
from rackwatch.engine.predict import predict_fan_wear
from rackwatch.engine.predict.evaluate import WEAR_SCENARIO, wear_labels
from rackwatch.engine.states import DeviceState
from rackwatch.model import Severity
from rackwatch.twin import Twin

WARNING = AlertInput("cpu-temperature", Severity.WARNING)
CRITICAL = AlertInput("cpu-temperature", Severity.CRITICAL)
FAILURE = AlertInput("fan-stopped", Severity.CRITICAL, is_failure=True)
SERVER = "c01/r01/s01"


def _score(inputs: HealthInputs) -> float:
    return health_report({SERVER: inputs})[SERVER].score


# --- one device ----------------------------------------------------------------------------


def test_a_critical_alert_scores_lower_than_a_warning_lower_than_healthy() -> None:
    healthy, warned, critical, failed = (
        _score(HealthInputs(alerts=alerts)) for alerts in ((), (WARNING,), (CRITICAL,), (FAILURE,))
    )
    assert healthy == 100.0
    assert healthy > warned > critical > failed >= 0.0
    assert (warned, critical, failed) == pytest.approx((70.0, 45.0, 20.0))
    classes = [criticity_of_health(s) for s in (healthy, warned, critical, failed)]
    assert classes == [Criticity.LOW, Criticity.MEDIUM, Criticity.HIGH, Criticity.CRITICAL]


def test_reasons_say_what_takes_points_off_worst_first() -> None:
    inputs = HealthInputs(
        alerts=(WARNING,),
        anomaly_scores={"cpu_residual": 0.9, "power": 0.2},
        forecasts=(FailureForecast("fan wear", 6 * 3600.0, 5 * 3600.0, 7 * 3600.0),),
        headroom=(Headroom.of_thresholds("cpu_temperature_celsius", 80.0, 75.0, 85.0),),
    )
    h = health_report({SERVER: inputs})[SERVER]
    kinds = [r.kind for r in h.reasons]
    assert kinds == [ReasonKind.FORECAST, ReasonKind.ANOMALY, ReasonKind.ALERT, ReasonKind.HEADROOM]
    penalties = [r.penalty for r in h.reasons]
    assert penalties == sorted(penalties, reverse=True)
    assert h.reasons[0].detail == "fan wear: failure predicted in 6.0 h (5.0 h-7.0 h)"
    assert h.reasons[1].detail == "anomaly score 0.90 (cpu_residual)"
    assert h.reasons[3].detail == "cpu_temperature_celsius at 75% of its way to 85"
    assert all(r.entity == SERVER for r in h.reasons)
    assert h.score == pytest.approx(100.0 * math.prod(1 - p / 100 for p in penalties))


def test_several_alerts_combine_and_the_state_only_counts_beyond_them() -> None:
    assert _score(HealthInputs(alerts=(WARNING, WARNING))) == pytest.approx(49.0)
    failed_state = HealthInputs(state=DeviceState.FAILED, alerts=(FAILURE,))
    assert _score(failed_state) == pytest.approx(20.0)  # the state comes from that alert
    assert _score(HealthInputs(state=DeviceState.UNKNOWN)) == pytest.approx(70.0)
    assert _score(HealthInputs(state=DeviceState.OK)) == 100.0
    assert _score(HealthInputs(state=DeviceState.MAINTENANCE)) == 100.0
    assert _score(HealthInputs(alerts=(AlertInput("note", Severity.INFO),))) == 100.0


def test_anomaly_scores_count_above_the_floor_from_a_mapping_or_an_array() -> None:
    assert _score(HealthInputs(anomaly_scores=np.array([0.1, 0.5]))) == 100.0
    assert _score(HealthInputs(anomaly_scores=np.array([0.2, 1.0]))) == pytest.approx(60.0)
    assert _score(HealthInputs(anomaly_scores=[0.75, np.nan])) == pytest.approx(80.0)
    h = health_report({SERVER: HealthInputs(anomaly_scores=np.array([0.2, 0.95]))})[SERVER]
    assert h.reasons[0].detail == "anomaly score 0.95 (#1)"


def test_a_closer_failure_scores_lower() -> None:
    scores = [
        _score(HealthInputs(forecasts=(FailureForecast("fan wear", hours * 3600.0),)))
        for hours in (0.5, 1, 6, 24, 72, 24 * 30)
    ]
    assert scores == sorted(scores) and scores[-1] > 99.9
    assert scores[1] == pytest.approx(100 - 70 * math.exp(-1 / 24))
    crossing = FailureForecast("cpu temperature", 3600.0, is_failure=False)
    assert _score(HealthInputs(forecasts=(crossing,))) > scores[1]  # a threshold, not a failure
    now = FailureForecast("fan wear", 0.0)
    assert _score(HealthInputs(forecasts=(now,))) == pytest.approx(20.0)  # it has failed


def test_headroom_counts_the_way_to_the_limit_in_either_direction() -> None:
    hot = Headroom.of_thresholds("cpu", 70.0, 75.0, 85.0)  # starts counting at 65
    assert (hot.start, hot.used_ratio()) == (65.0, 0.25)
    cold = Headroom("inlet", 16.0, 20.0, 15.0)  # must stay high
    assert cold.used_ratio() == pytest.approx(0.8)
    assert Headroom("x", 90.0, 65.0, 85.0).used_ratio() == 1.0
    assert Headroom("x", math.nan, 65.0, 85.0).used_ratio() == 0.0
    assert _score(HealthInputs(headroom=(hot,))) == pytest.approx(100 - 25 * 0.25)


# --- predicted health and time to the next failure -------------------------------------------


def test_predicted_health_moves_forecasts_and_headroom_along_their_trends() -> None:
    inputs = HealthInputs(
        alerts=(WARNING,),
        forecasts=(FailureForecast("fan wear", 1800.0, 1200.0, 2400.0),),
        headroom=(Headroom("cpu", 70.0, 65.0, 85.0, slope_per_s=10.0 / 3600),),
    )
    h = health_report({SERVER: inputs}, horizon_s=3600.0)[SERVER]
    assert h.predicted_score < h.score
    later = advanced(inputs, 3600.0)
    assert later.forecasts[0].eta_s == 0.0 and later.headroom[0].value == pytest.approx(80.0)
    assert later.alerts == inputs.alerts
    # by then the fan has failed (80), the warning holds (30), the CPU is 75 % of the way (18.75)
    assert h.predicted_score == pytest.approx(100 * 0.2 * 0.7 * (1 - 0.1875))
    assert h.predicted_criticity is Criticity.CRITICAL and h.horizon_s == 3600.0


def test_the_next_failure_is_the_soonest_below_and_names_its_device() -> None:
    report = health_report(
        {
            "c01/r01/s01/fan1": HealthInputs(forecasts=(FailureForecast("fan wear", 7200.0),)),
            "c01/r01/s02/fan2": HealthInputs(forecasts=(FailureForecast("fan wear", 3600.0),)),
            "c01/r01/s02": HealthInputs(
                forecasts=(FailureForecast("cpu temperature", 600.0, is_failure=False),)
            ),
            "c01/r02/s01": HealthInputs(),
        }
    )
    assert report["c01/r01/s01"].next_failure is not None
    assert report["c01/r01/s01"].next_failure.eta_s == 7200.0
    room = report["room"].next_failure
    assert room is not None and (room.entity, room.eta_s) == ("c01/r01/s02/fan2", 3600.0)
    assert report["c01/r02"].next_failure is None


# --- aggregation ------------------------------------------------------------------------------


def test_a_rack_is_its_worst_server_tempered_by_the_healthy_ones() -> None:
    inputs = {f"c01/r01/s{i:02d}": HealthInputs() for i in range(1, 11)}
    inputs["c01/r01/s03"] = HealthInputs(alerts=(FAILURE,))
    report = health_report(inputs)
    rack = report["c01/r01"]
    assert rack.score == pytest.approx(0.6 * 20.0 + 0.4 * (20.0 + 9 * 100.0) / 10)
    assert rack.n_members == 10 and rack.criticity is Criticity.HIGH
    assert rack.reasons[0].entity == "c01/r01/s03"
    assert report["c01"].score == pytest.approx(rack.score)  # one rack: the same
    assert report["room"].score == pytest.approx(rack.score)
    even = health_report(inputs, params=HealthParams(worst_weight=0.0))["c01/r01"]
    assert even.score == pytest.approx(92.0)  # the plain mean


def test_a_parents_own_signals_multiply_its_members() -> None:
    report = health_report(
        {
            "c01/r01/s01": HealthInputs(),
            "c01/r01/pdu": HealthInputs(alerts=(AlertInput("pdu-power", Severity.WARNING),)),
            "c01/r01": HealthInputs(anomaly_scores={"rack inlet": 1.0}),
        }
    )
    # members: worst 70 (the PDU), mean 85; own: 60 (anomaly 1.0)
    assert report["c01/r01"].score == pytest.approx(60.0 * (0.6 * 70 + 0.4 * 85) / 100)
    assert {r.entity for r in report["c01/r01"].reasons} == {"c01/r01", "c01/r01/pdu"}


def test_the_layout_puts_clusters_and_the_crac_in_the_room_and_hosts_apart() -> None:
    assert [parent_of(p) for p in ("c01", "room", "room/crac1", "host", "host/db1")] == [
        "room",
        None,
        "room",
        None,
        "host",
    ]
    report = health_report(
        {
            "c01/r01/s01": HealthInputs(),
            "c02/r01/s01": HealthInputs(alerts=(CRITICAL,)),
            "room/crac1": HealthInputs(),
            "host/db1": HealthInputs(alerts=(FAILURE,)),
            "host/db1/disk-root": HealthInputs(),
        }
    )
    assert set(report) >= {"c01/r01", "c01", "c02", "room", "host", "host/db1"}
    assert report["room"].n_members == 3  # c01, c02 and the CRAC
    assert all(r.entity != "host/db1" for r in report["room"].reasons)
    assert report["host"].score == pytest.approx(report["host/db1"].score)


def test_reasons_are_capped() -> None:
    inputs = {f"c01/r01/s{i:02d}": HealthInputs(alerts=(WARNING,)) for i in range(1, 9)}
    report = health_report(inputs, params=HealthParams(max_reasons=3))
    assert len(report["c01/r01"].reasons) == 3


def test_bad_health_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="worst_weight"):
        HealthParams(worst_weight=1.5)
    with pytest.raises(ValueError, match="max_reasons"):
        HealthParams(max_reasons=0)


# --- criticity (seed 002) ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("percent", "expected"),
    [
        (0.0, Criticity.LOW),
        (24.999, Criticity.LOW),
        (25.0, Criticity.MEDIUM),
        (49.999, Criticity.MEDIUM),
        (50.0, Criticity.HIGH),
        (74.999, Criticity.HIGH),
        (75.0, Criticity.CRITICAL),
        (100.0, Criticity.CRITICAL),
        (math.nan, Criticity.CRITICAL),
    ],
)
def test_percent_classes_at_their_boundaries(percent: float, expected: Criticity) -> None:
    assert criticity_of_percent(percent) is expected


@pytest.mark.parametrize(
    ("score", "expected"),
    [
        (100.0, Criticity.LOW),
        (75.001, Criticity.LOW),
        (75.0, Criticity.MEDIUM),  # risk 25 %: not < 25 %
        (50.001, Criticity.MEDIUM),
        (50.0, Criticity.HIGH),
        (25.001, Criticity.HIGH),
        (25.0, Criticity.CRITICAL),
        (0.0, Criticity.CRITICAL),
    ],
)
def test_health_is_classed_by_its_risk(score: float, expected: Criticity) -> None:
    assert criticity_of_health(score) is expected


def test_criticity_ranks() -> None:
    assert [c.rank for c in Criticity] == [0, 1, 2, 3, 0]


# --- application metrics (seed 002) -------------------------------------------------------------


@pytest.mark.parametrize(
    ("metric", "value", "expected"),
    [
        ("cpu_usage", 0.0, Criticity.LOW),
        ("cpu_usage", 0.2499, Criticity.LOW),
        ("cpu_usage", 0.25, Criticity.MEDIUM),
        ("cpu_usage", 0.5, Criticity.HIGH),
        ("cpu_usage", 0.75, Criticity.CRITICAL),
        ("cpu_usage", 1.0, Criticity.CRITICAL),
        ("jvm_memory_usage", 0.49, Criticity.MEDIUM),
        ("jvm_memory_usage", 0.74, Criticity.HIGH),
        ("request_count", 14.9, Criticity.LOW),
        ("request_count", 15.0, Criticity.MEDIUM),
        ("request_count", 29.9, Criticity.MEDIUM),
        ("request_count", 30.0, Criticity.HIGH),
        ("request_count", 59.9, Criticity.HIGH),
        ("request_count", 60.0, Criticity.CRITICAL),  # the seed's 60-61 gap: critical
        ("request_count", 61.5, Criticity.CRITICAL),
        ("response_time", 0.299, Criticity.REGULAR),
        ("response_time", 0.3, Criticity.CRITICAL),
        ("response_time", 2.0, Criticity.CRITICAL),
        ("cpu_usage", math.nan, Criticity.CRITICAL),
    ],
)
def test_app_metric_classes_follow_seed_002(metric: str, value: float, expected: Criticity) -> None:
    assert app_criticity(metric, value) is expected


def test_an_unknown_app_metric_is_refused() -> None:
    with pytest.raises(ValueError, match="disk_usage"):
        app_criticity("disk_usage", 0.5)


def test_app_metrics_from_two_scrapes() -> None:
    now = {
        "process_cpu_usage": 0.8,
        "jvm_memory_used_bytes": [200.0, 50.0, 50.0],
        "jvm_memory_max_bytes": [400.0, 200.0, -1.0],  # Micrometer's "no max": Prometheus' sum
        "http_server_requests_seconds_count_total": 150.0,
        "http_server_requests_seconds_sum_total": 45.0,
    }
    before = {
        "http_server_requests_seconds_count_total": 100.0,
        "http_server_requests_seconds_sum_total": 30.0,
    }
    m = app_metrics_from_prometheus(now, before, 5.0)
    assert m.cpu_usage == 0.8 and m.jvm_memory_usage == pytest.approx(300.0 / 599.0)
    assert (m.request_count, m.response_time) == pytest.approx((10.0, 0.3))
    assert m.criticity() == {
        "cpu_usage": Criticity.CRITICAL,
        "jvm_memory_usage": Criticity.HIGH,
        "request_count": Criticity.LOW,
        "response_time": Criticity.CRITICAL,
    }
    first = app_metrics_from_prometheus(now)  # no earlier scrape: no rates
    assert (first.request_count, first.response_time) == (None, None)
    restarted = app_metrics_from_prometheus(now, {"http_server_requests_seconds_count": 900.0}, 5)
    assert restarted.request_count is None
    idle = app_metrics_from_prometheus(before, before, 5.0)
    assert (idle.request_count, idle.response_time) == (0.0, None)
    assert AppMetrics().criticity() == {}


# --- from the predictor to the health -------------------------------------------------------------


def test_a_wearing_fan_lowers_its_server_rack_and_room_and_is_the_next_failure() -> None:
    """8 h of burst-fan-degradation through the fan predictor into the health."""
    twin = Twin.from_scenario(WEAR_SCENARIO, seed=100)
    worn, _, failure_ms = wear_labels(twin)
    fans = list(twin.topology.fan_paths)
    frame = twin.run(8 * 720)
    rpm = frame.values[:, [twin.column(f, "fan_rpm") for f in fans]]
    level = frame.values[:, [twin.column(f, "fan_level") for f in fans]]
    eta = predict_fan_wear(frame.ts, rpm, level).result.eta
    forecasts = forecasts_from_eta(fans, eta, "fan wear")
    assert list(forecasts) == [worn]
    inputs = {p: HealthInputs() for p in twin.topology.server_paths}
    inputs |= {f: HealthInputs(forecasts=(forecasts[f],)) for f in forecasts}
    report = health_report(inputs, horizon_s=3600.0)
    server = "c01/r02/s05"
    scores = {p: report[p].score for p in twin.topology.server_paths}
    assert min(scores, key=scores.__getitem__) == server
    assert all(s == 100.0 for p, s in scores.items() if p != server)
    assert report[server].reasons[0].entity == worn
    room = report["room"].next_failure
    assert room is not None and room.entity == worn
    truth_s = (failure_ms - int(frame.ts[-1])) / 1000.0
    assert room.eta_s == pytest.approx(truth_s, abs=1800.0)
    assert report["room"].predicted_score <= report["room"].score
