"""Figures from synthetic runs: recall, precision, latency, diagnosis and its parts, false
alarms per server-day, the warm-up, load bursts, telemetry loss, remediation, wear."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from rackwatch.engine.evaluation.detections import Detection
from rackwatch.engine.evaluation.grid import FAULT_FREE, RunSpec
from rackwatch.engine.evaluation.metrics import (
    TARGETS,
    WARMUP_S,
    kind_figures,
    overall_figures,
    score_run,
)
from rackwatch.engine.evaluation.runner import Failover, RunResult
from rackwatch.engine.evaluation.truth import Label
from rackwatch.model.records import Event

START = 1_767_225_600_000
S = 1_000
MIN = 60 * S
HOUR = 60 * MIN
T0 = START + HOUR  # faults start after the warm-up


def run(
    labels: Sequence[Label] = (),
    detections: Sequence[Detection] = (),
    *,
    name: str = "run",
    group: str = "catalogue",
    n_servers: int = 10,
    hours: float = 6.0,
    failovers: Sequence[Failover] = (),
    anomalies: Sequence[int] = (),
    predictions: Sequence[Event] = (),
) -> RunResult:
    spec = RunSpec(name, group, "medium", 1000, hours * 3600.0)
    return RunResult(
        spec,
        n_servers,
        START,
        START + round(hours * HOUR),
        tuple(labels),
        tuple(detections),
        tuple(failovers),
        tuple(anomalies),
        tuple(predictions),
    )


def fan_off(server: str, at: int = T0) -> Label:
    return Label("fan_off", f"{server}/fan1", (server,), at, None)


def found(
    server: str,
    reported: int,
    *,
    nature: str = "real",
    scope: str = "server",
    cause: str = "fan_failure",
    start: int | None = None,
) -> Detection:
    return Detection(
        "incident",
        server,
        (server,),
        reported if start is None else start,
        reported,
        nature,
        scope,
        cause,
    )


def test_recall_latency_and_the_parts_of_the_diagnosis() -> None:
    labels = [fan_off(f"c01/r01/s0{i}") for i in range(1, 5)]
    detections = [
        found("c01/r01/s01", T0 + 10 * S),
        found("c01/r01/s02", T0 + 20 * S, scope="rack"),
        found("c01/r01/s03", T0 + 100 * S, start=T0 + 40 * S),
    ]
    scores = [score_run(run(labels, detections))]
    outcomes = scores[0].outcomes
    assert [o.diagnosis for o in outcomes] == [
        "real/server/fan_failure",
        "real/rack/fan_failure",
        "real/server/fan_failure",
        None,
    ]
    f = kind_figures("fan_off", scores)
    assert f["recall"] == 0.75 and (f["n_faults"], f["n_detected"]) == (4, 3)
    assert f["detection_latency_s"] == 20.0
    assert f["detection_latency_p95_s"] == pytest.approx(92.0)
    assert f["onset_latency_s"] == 20.0
    assert f["diagnosis_accuracy"] == pytest.approx(2 / 3)
    assert (f["diagnosis_nature"], f["diagnosis_cause"]) == (1.0, 1.0)
    assert f["diagnosis_scope"] == pytest.approx(2 / 3)
    assert f["precision"] == 1.0 and f["f1"] == pytest.approx(2 * 0.75 / 1.75)
    assert f["targets"] == {
        "diagnosis_accuracy": False,
        "recall": False,
        "detection_latency_s": True,
    }
    overall = overall_figures(scores)
    assert overall["recall"] == 0.75 and overall["sudden"]["recall"] == 0.75
    assert overall["gradual"]["n_faults"] == 0
    assert overall["kpis"]["false_negative_rate"] == 0.25


def test_false_alarms_per_server_day_come_from_the_fault_free_runs() -> None:
    hours = 24.0 + WARMUP_S / 3600.0  # 10 servers x 1 day after the warm-up
    quiet = run(
        detections=[found(f"c01/r01/s0{i}", T0 + i * MIN) for i in range(1, 6)],
        name="quiet",
        group=FAULT_FREE,
        hours=hours,
    )
    busy = run(
        [fan_off("c01/r01/s01")],
        [found("c01/r01/s01", T0 + 5 * S), found("c01/r01/s09", T0 + 5 * S, cause="cooling")],
        name="busy",
        hours=hours,
    )
    scores = [score_run(quiet), score_run(busy)]
    overall = overall_figures(scores)
    assert overall["server_days_fault_free"] == pytest.approx(10.0)
    assert overall["false_alarms_per_server_day"] == pytest.approx(0.5)
    assert overall["false_alarms_per_server_day_all"] == pytest.approx(6 / 20)
    assert overall["precision"] == pytest.approx(1 / 7)
    assert overall["kpis"]["false_positive_rate"] == pytest.approx(6 / 7)
    assert overall["false_alarm_causes"] == {"fan_failure": 5, "cooling": 1}
    met = {t["key"]: t["met"] for t in overall["targets"]}
    assert met["false_alarms_per_server_day"] is True
    # per kind: only the runs that hold the kind
    f = kind_figures("fan_off", scores)
    assert f["precision"] == 0.5 and f["false_alarms_per_server_day"] == pytest.approx(0.1)


def test_detections_in_the_warm_up_are_left_out() -> None:
    early = found("c01/r01/s01", START + 10 * MIN)
    score = score_run(run(detections=[early], group=FAULT_FREE))
    assert (score.n_detections, score.n_false_alarms, score.n_warmup_detections) == (0, 0, 1)
    assert score.server_days == pytest.approx(10 * 5.5 / 24)


def test_a_load_burst_is_never_recalled_but_a_sensor_diagnosis_on_it_is_an_error() -> None:
    burst = Label("load_burst", "c01", ("c01/r01/s02", "c01/r01/s05"), T0, T0 + 2 * MIN)
    other = Label("load_burst", "c01/r01/s07", ("c01/r01/s07",), T0, T0 + 2 * MIN)
    detections = [
        found("c01/r01/s05", T0 + MIN, nature="sensor", cause="sensor_stuck"),
        found("c01/r01/s07", T0 + MIN, cause="load"),
    ]
    scores = [score_run(run([burst, other], detections))]
    f = kind_figures("load_burst", scores)
    assert f["recall"] is None and f["n_overlapped"] == 2
    assert f["detection_latency_s"] is None
    assert f["precision"] == 1.0 and f["false_alarms_per_server_day"] == 0.0
    assert f["diagnosis_accuracy"] == 0.5 and f["targets"] == {"diagnosis_accuracy": False}
    overall = overall_figures(scores)
    assert overall["n_faults"] == 0 and overall["recall"] is None
    assert overall["diagnosis_accuracy"] == 0.5 and overall["diagnosis_nature"] == 0.5


def test_telemetry_loss_is_excluded_and_explains_incidents_on_its_series() -> None:
    loss = Label("telemetry_loss", "c01/r02", ("c01/r02",), T0, T0 + 5 * MIN)
    detections = [found("c01/r02/s03", T0 + MIN, nature="sensor", cause="sensor_null")]
    scores = [score_run(run([loss], detections))]
    f = kind_figures("telemetry_loss", scores)
    assert f["recall"] is None and f["diagnosis_accuracy"] is None
    assert f["false_alarms_per_server_day"] == 0.0 and f["targets"] == {}
    assert overall_figures(scores)["n_faults"] == 0


def test_time_to_remediation_is_the_controllers_failover_for_that_server() -> None:
    labels = [fan_off("c01/r01/s01"), fan_off("c01/r01/s02")]
    failovers = [
        Failover(T0 + 10 * S, "c01/r01/s01/fan1", "c01/r01/s01"),
        Failover(T0 - MIN, "c01/r01/s02/fan1", "c01/r01/s02"),  # before the fault: not it
        Failover(T0 + 25 * S, "c01/r01/s03/fan1", "c01/r01/s03"),  # another server
    ]
    scores = [score_run(run(labels, failovers=failovers))]
    kpis = overall_figures(scores)["kpis"]
    assert (kpis["time_to_remediation_s"], kpis["n_remediated"]) == (10.0, 1)


def wear_events(fan: str, failure_ms: int) -> list[Event]:
    """Predicted 3 h before the stop, exact, with an interval of +- 10 min."""
    at = failure_ms - 3 * HOUR
    return [
        Event(
            at,
            "prediction.fan_failure",
            fan,
            attributes={
                "failure_ms": failure_ms,
                "failure_low_ms": failure_ms - 10 * MIN,
                "failure_high_ms": failure_ms + 10 * MIN,
            },
        )
    ]


def test_wear_is_detected_by_its_prediction_and_scored_ahead_of_the_stop() -> None:
    fan, server = "c01/r01/s05/fan2", "c01/r01/s05"
    failure = T0 + 5 * HOUR
    label = Label("fan_degradation", fan, (server,), T0, None, failure_ms=failure)
    prediction = Detection("prediction", fan, (server,), failure - 3 * HOUR, failure - 3 * HOUR,
                           "real", "server", "fan_wear")  # fmt: skip
    result = run(
        [label],
        [prediction],
        hours=7.0,
        failovers=[Failover(failure + 5 * S, fan, server)],
        predictions=wear_events(fan, failure),
    )
    scores = [score_run(result)]
    f = kind_figures("fan_degradation", scores)
    assert f["recall"] == 1.0 and f["detected_by"] == {"prediction": 1}
    assert f["detection_latency_s"] == 2 * 3600.0
    assert f["diagnosis_accuracy"] == 1.0
    assert f["time_to_remediation_s"] == 5.0
    ttf = f["time_to_failure"]
    assert ttf["n_runs"] == 1 and f["predicted_1h_ahead"] == 1.0
    assert ttf["lead_h_median"] == pytest.approx(3.0)
    assert ttf["at_lead"]["1h"]["median_error_s"] == pytest.approx(0.0)
    assert ttf["at_lead"]["1h"]["coverage"] == 1.0
    assert f["targets"]["predicted_1h_ahead"] is True
    assert f["class"] == "gradual"


def test_anomalies_per_server_day_count_after_the_warm_up() -> None:
    hours = 24.0 + WARMUP_S / 3600.0
    anomalies = [START + MIN, T0, T0 + HOUR, T0 + 2 * HOUR]
    scores = [score_run(run(group=FAULT_FREE, hours=hours, anomalies=anomalies))]
    kpis = overall_figures(scores)["kpis"]
    assert kpis["anomalies_per_server_day"] == pytest.approx(0.3)
    assert kpis["anomalies_per_server_day_fault_free"] == pytest.approx(0.3)


def test_no_data_is_none_never_a_made_up_number() -> None:
    overall = overall_figures([score_run(run())])
    assert overall["recall"] is None and overall["precision"] is None
    assert overall["f1"] is None and overall["detection_latency_s"] is None
    assert [t["met"] for t in overall["targets"]] == [None] * len(TARGETS)
