"""One short run end to end: twin + controller + intelligence, its labels, detections and
failover; the process pool gives the same results as running in this process."""

from __future__ import annotations

from rackwatch.engine.evaluation.grid import RunSpec
from rackwatch.engine.evaluation.metrics import score_run
from rackwatch.engine.evaluation.runner import CONTROL_STEPS, execute
from rackwatch.engine.evaluation.suite import run_grid
from rackwatch.twin.faults import ScheduledFault

FAN = "c01/r01/s03/fan1"
STOP_S = 2100.0


def fan_stop(seed: int = 1000, minutes: float = 45.0) -> RunSpec:
    fault = ScheduledFault("fan_off", FAN, STOP_S)
    return RunSpec(f"stop/{seed}", "catalogue", "small", seed, minutes * 60.0, (fault,))


def test_a_stopped_fan_is_labelled_remedied_and_scored() -> None:
    result = execute(fan_stop())
    assert result.n_servers == 5 and result.duration_s == 45 * 60.0
    (label,) = result.labels
    assert (label.kind, label.devices) == ("fan_off", ("c01/r01/s03",))
    assert label.start_ms == result.start_ms + STOP_S * 1000
    (failover,) = result.failovers
    assert failover.server == "c01/r01/s03" and failover.fan == FAN
    period_ms = CONTROL_STEPS * 5_000
    assert 0 <= failover.ts_ms - label.start_ms < period_ms  # at the controller's next decision
    assert result.event_counts.get("anomaly.started", 0) == len(result.anomaly_starts_ms)
    score = score_run(result)
    (outcome,) = score.outcomes
    assert outcome.remediation_s == (failover.ts_ms - label.start_ms) / 1000
    if result.event_counts.get("incident.opened"):  # once the diagnosis emits incidents
        assert outcome.is_detected


def test_the_pool_returns_the_runs_in_order_and_as_in_process() -> None:
    specs = [fan_stop(1000, 40.0), fan_stop(1001, 36.0)]
    seen: list[tuple[str, int, int]] = []
    pooled = run_grid(specs, jobs=2, on_done=lambda r, d, n: seen.append((r.spec.name, d, n)))
    assert [r.spec for r in pooled] == specs
    assert [(d, n) for _, d, n in seen] == [(1, 2), (2, 2)]
    assert {name for name, _, _ in seen} == {"stop/1000", "stop/1001"}
    alone = execute(specs[1])
    assert pooled[1].labels == alone.labels and pooled[1].detections == alone.detections
    assert pooled[1].failovers == alone.failovers
